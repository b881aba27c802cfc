"""Review PJ: commands automl prints for pasting name their files by absolute, shell-quoted paths (``automl space
profile`` in `automl export --recipe`'s messages, ``automl export`` again from a manifest, ``automl space show`` after
an architecture of another space, ``chmod u+rw`` of an unreadable results.json); `automl export` says a user error
behind which an ``OSError`` stands as a refused write only when quantize says the measurements' write was refused
(:class:`~automl.export.quantize.MeasurementsUnwritten`), not a read that failed (EACCES on the manifest)."""

from __future__ import annotations

import errno
import json
import re
import shlex
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

import automl.export.quantize as quantize
import automl.pipeline.results as results
from automl.cli import main
from automl.commands import export as export_cmd
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export._arch import choices_from_json
from automl.export.manifest import export_again

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture()
def spaced(tmp_path, monkeypatch) -> Path:
    """The current folder ``.../my runs`` (a space in its name), holding a copy of digits as ``d.space``."""
    here = tmp_path / "my runs"
    here.mkdir()
    shutil.copy(DIGITS, here / "d.space")
    monkeypatch.chdir(here)
    return here


def _command(text: str, start: str) -> list[str]:
    """The words of the command that begins with ``start``, to the backquote or parenthesis that closes it (or the
    end of ``text``), outside quotes."""
    found = re.search(re.escape(start) + r"(?:'[^']*'|[^`)'])*", text)
    assert found, text
    return shlex.split(found.group(0))


# ---- 1. commands printed for pasting: absolute and quoted ----------------------------------------------------------

def test_export_recipes_profile_command_names_the_space_absolute_and_quoted(spaced, monkeypatch):
    """The wall-clock `automl space profile` that a refused table clock suggests: a relative space file from a folder
    with a space in its name, a --set value with a space in it."""
    (spaced / "t.json").write_text("{}")
    seen = []

    def refuse(clock, what, timed, fix):
        seen.append(fix)
        raise UserError(f"refused; {fix}")

    monkeypatch.setattr(export_cmd, "table_timing", lambda path, space: {"batch": 1, "threads": 1, "clock": "cpu"})
    monkeypatch.setattr(export_cmd, "check_clock", refuse)
    monkeypatch.setattr(export_cmd, "file_line", lambda recipe, keys: None)
    recipe = SimpleNamespace(cost_table_path="t.json", source=None, search=SimpleNamespace(cost_table="t.json"),
                             space_path="d.space", space_args={"head": "64"},
                             retrain=SimpleNamespace(space_args={"width": "2 0"}))
    with pytest.raises(UserError):
        export_cmd._timing(recipe, None)
    words = _command(seen[0], "automl space profile")
    assert words[:4] == ["automl", "space", "profile", str(spaced / "d.space")], seen[0]
    assert words[4:8] == ["--set", "head=64", "--set", "width=2 0"], seen[0]


def test_export_note_on_a_table_that_prices_nothing_names_the_space_absolute_and_quoted(spaced, capsys):
    (spaced / "t.json").write_text("{}")  # no table: it prices nothing
    cs = load_compiled("d.space", {"head": "64"})
    recipe = SimpleNamespace(cost_table_path=Path("t.json"), source=None, search=SimpleNamespace(cost_table="t.json"))
    capsys.readouterr()
    export_cmd._price(recipe, cs, {"batch": 1, "threads": 1, "clock": "wall"})
    err = capsys.readouterr().err
    words = _command(err.partition("or profile it (")[2], "automl space profile")  # the note's own command
    assert words == ["automl", "space", "profile", str(spaced / "d.space"), "--set", "head=64", "--out",
                     "TABLE.json"], err


def test_export_again_names_the_space_manifest_weights_and_out_absolute(spaced):
    out = Path("out")
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"")
    words = shlex.split(export_again(out, {"space": "d.space", "weights": {"file": "model.safetensors"}}))
    assert words == ["automl", "export", str(spaced / "d.space"), "--arch", str(spaced / "out" / "manifest.json"),
                     "--weights", str(spaced / "out" / "model.safetensors"), "--out", str(spaced / "out")], words


def test_export_again_keeps_the_space_placeholder(spaced):
    words = shlex.split(export_again(Path("out"), {}))
    assert words[:3] == ["automl", "export", "SPACE"] and words[-2:] == ["--out", str(spaced / "out")], words


def test_space_show_after_an_architecture_of_another_space_names_the_space_absolute(spaced):
    cs = load_compiled("d.space")
    with pytest.raises(UserError) as info:
        choices_from_json({"choices": ["no_such_choice"]}, cs)
    words = _command(str(info.value), "automl space show")
    assert words == ["automl", "space", "show", str(spaced / "d.space")], str(info.value)


def test_chmod_of_an_unreadable_results_json_names_it_absolute(spaced, monkeypatch):
    path = Path("run") / "results.json"
    path.parent.mkdir()
    path.write_text("{}")

    def denied(file, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(file))

    monkeypatch.setattr(results, "read_utf8_text", denied)
    monkeypatch.setattr(results, "open", denied, raising=False)  # the module's open (builtins' otherwise)
    with pytest.raises(UserError) as info:
        results.read_results(path)
    words = _command(str(info.value), "chmod u+rw")
    assert words == ["chmod", "u+rw", str(spaced / "run" / "results.json")], str(info.value)


# ---- 2. a read that failed while measuring is no refused write -----------------------------------------------------

@pytest.fixture()
def arch(tmp_path) -> str:
    compiled = load_compiled(str(DIGITS))
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[0] for d in compiled.decisions]}))
    return str(path)


def test_an_unreadable_manifest_while_measuring_is_said_as_it_is(tmp_path, arch, capsys, monkeypatch):
    """read_manifest's "not a readable manifest" (its OSError, EACCES, the UserError's __context__) was said as a
    write --out refused ("cannot write ... make it writable"), the export's folder removed for it."""
    real = quantize.read_manifest

    def read_denied(out_dir, **kwargs):
        def denied(self, *a, **k):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))

        with monkeypatch.context() as m:
            m.setattr(Path, "read_text", denied)
            return real(out_dir, **kwargs)

    monkeypatch.setattr(quantize, "read_manifest", read_denied)
    out = tmp_path / "out"
    assert main(["export", str(DIGITS), "--arch", arch, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "not a readable manifest" in err and "Permission denied" in err, err
    assert "cannot write" not in err, err


def test_a_refused_measurements_write_carries_its_os_error(tmp_path, monkeypatch):
    """quantize's own refused write is the UserError that says it, with the OSError as ``os_error``."""
    refused = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "manifest.json"))

    def full(out_dir, manifest):
        raise refused

    monkeypatch.setattr(quantize, "write_manifest", full)
    with pytest.raises(quantize.MeasurementsUnwritten) as info:
        quantize._write_measurements(tmp_path, {})
    assert info.value.os_error is refused and isinstance(info.value, UserError)
    assert "cannot write the measurements (No space left on device)" in str(info.value)
