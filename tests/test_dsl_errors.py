"""Every user mistake in a .space file: FILE:LINE:COL, the message, the line and a caret; exit 2 from the CLI.

The malformed inputs live in tests/space_cases/, one file per mistake, with the expected position and
message in the first line: ``# expect: LINE:COL: message`` (``...`` separates several expected parts).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from automl.cli import main
from automl.compile import load_compiled
from automl.dsl import load_space, parse_space
from automl.errors import SpaceError, UserError

CASES = sorted((Path(__file__).parent / "space_cases").glob("*.space"))


def _expectation(path: Path) -> tuple[int, int, list[str]]:
    header = path.read_text(encoding="utf-8").split("\n", 1)[0]
    assert header.startswith("# expect: "), f"{path.name}: first line must be '# expect: LINE:COL: message'"
    where, _, message = header[len("# expect: "):].partition(": ")
    line, col = (int(v) for v in where.split(":"))
    return line, col, [part.strip() for part in message.split("...")]


def test_corpus_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_error_case(path: Path):
    line, col, parts = _expectation(path)
    with pytest.raises(SpaceError) as info:
        load_compiled(path)
    e = info.value
    assert (e.line, e.column) == (line, col), str(e)
    for part in parts:
        assert part in e.message, str(e)
    text = str(e)
    assert text.startswith(f"{path}:{line}:{col}: ")
    shown, caret = text.split("\n")[1:3]
    assert shown.strip() == path.read_text(encoding="utf-8").split("\n")[line - 1].strip()
    assert caret.index("^") == 4 + col - 1


@pytest.mark.parametrize("path", CASES[:6], ids=[p.stem for p in CASES[:6]])
def test_error_case_cli(path: Path, capsys):
    line, col, _ = _expectation(path)
    assert main(["space", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:{line}:{col}: ")
    assert "Traceback" not in err


def test_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.space"
    with pytest.raises(SpaceError, match="no such file") as info:
        load_space(missing)
    assert info.value.filename == str(missing)
    assert main(["space", "show", str(missing)]) == 2
    assert capsys.readouterr().err.startswith(f"{missing}: no such file")


def test_directory(tmp_path):
    with pytest.raises(SpaceError, match="is a directory") as info:
        load_space(tmp_path)
    assert info.value.filename == str(tmp_path)


def test_not_utf8(tmp_path, capsys):
    p = tmp_path / "latin1.space"
    p.write_bytes("space t\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpaceError, match="not UTF-8") as info:
        load_space(p)
    assert (info.value.line, info.value.column) == (2, 6)
    assert main(["space", "check", str(p)]) == 2
    assert capsys.readouterr().err.startswith(f"{p}:2:6: the file is not UTF-8")


def test_unknown_set_parameter_lists_parameters(capsys):
    with pytest.raises(SpaceError) as info:
        load_space("spaces/digits.space", {"chanels": "8"})
    msg = info.value.message
    assert "unknown parameter 'chanels'" in msg and "classes, head, size, width" in msg
    assert main(["space", "show", "spaces/digits.space", "--set", "chanels=8"]) == 2
    assert capsys.readouterr().err.startswith("spaces/digits.space: --set chanels: unknown parameter")


@pytest.mark.parametrize("value, message", [("abc", "expected a number"), ("2.5", "whole number"),
                                            ("inf", "finite")])
def test_bad_set_value(value, message):
    with pytest.raises(SpaceError, match=message):
        load_space("spaces/digits.space", {"size": value})


def test_malformed_set_argument(capsys):
    assert main(["space", "show", "spaces/digits.space", "--set", "size"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_overridden_value_checked_at_use(tmp_path):
    with pytest.raises(SpaceError, match="input height must be between 1 and") as info:
        load_compiled("spaces/digits.space", {"size": "0"})
    assert info.value.line is not None


def test_empty_file_and_bom():
    with pytest.raises(SpaceError, match="no network") as info:
        from automl.compile import compile_space
        compile_space(parse_space("", "empty.space"))
    assert (info.value.line, info.value.column) == (1, 1)
    assert parse_space("\ufeffspace t".lstrip("\ufeff"), "x.space").name == "t"


def test_errors_are_user_errors():
    assert issubclass(SpaceError, UserError)
    with pytest.raises(UserError):
        parse_space("space 3", "x.space")


def test_shape_written_without_spaces_parses():
    s = parse_space("input 3x32x32", "x.space")
    assert [e.value for e in s.input_shape] == [3, 32, 32]


def test_tab_and_unicode_characters():
    with pytest.raises(SpaceError, match="unexpected character") as info:
        parse_space("space t\nparam a = 1 \u00a7\n", "x.space")
    assert (info.value.line, info.value.column) == (2, 13)
