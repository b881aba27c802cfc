"""A cost table of this space that no longer fits it (its widths, or its decisions, changed since) says the space
file changed and suggests profiling it again into the same table, also when the space file is reached through a
symlinked folder or is itself a link (the recorded path is the one given, or the tail of its path as given); a table
of this space with other --set values (other decisions) points at a file of its own for those values."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from automl.compile import load_compiled
from test_review_kh import _cli, _fake_timing, _latency_recipe, _profile  # noqa: F401 (_fake_timing: an autouse fixture)

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"
WIDE = ("stage s1 width 24 * width", "stage s1 width 40 * width")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared




def _cost(capsys, space, table, arch_dir: Path) -> tuple[int, str]:
    cs = load_compiled(str(space))
    arch = arch_dir / "arch.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    return _cli(capsys, "space", "cost", space, "--arch", arch, "--cost-table", table)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def _linked_folder(tmp_path: Path, monkeypatch) -> Path:
    """tmp/real/digits.space reached as tmp/sp/digits.space (sp a link to real); the working folder is tmp."""
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "digits.space"
    real.write_text(DIGITS.read_text())
    (tmp_path / "sp").symlink_to(tmp_path / "real", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return real


def test_a_relative_path_through_a_linked_folder_given_again_is_this_space(tmp_path, capsys, monkeypatch):
    """The reviewer's case: `space cost sp/digits.space` with the table profiled from `sp/digits.space` (sp a
    link) named the same file "another space" and suggested a second table."""
    real = _linked_folder(tmp_path, monkeypatch)
    _profile(capsys, "sp/digits.space", "latency.json")
    assert json.loads(Path("latency.json").read_text())["space"]["file"] == "sp/digits.space"
    _edit(real, *WIDE)
    code, err = _cost(capsys, "sp/digits.space", "latency.json", tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "(has sp/digits.space changed since it was profiled?); profile it again with " \
           f"`automl space profile {tmp_path / 'sp' / 'digits.space'} --out {tmp_path / 'latency.json'}`" in err, err
    assert "profiled for space" not in err, err


def test_the_linked_folder_given_by_its_absolute_path_is_this_space(tmp_path, capsys, monkeypatch):
    """Given from elsewhere by the absolute path through the link: its tail is the recorded sp/digits.space
    (the path with links followed ends in real/digits.space)."""
    real = _linked_folder(tmp_path, monkeypatch)
    _profile(capsys, "sp/digits.space", "latency.json")
    _edit(real, *WIDE)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    space, table = tmp_path / "sp" / "digits.space", tmp_path / "latency.json"
    code, err = _cost(capsys, space, table, tmp_path)
    assert code == 2 and f"(has {space} changed since it was profiled?)" in err, err
    assert f"--out {table}`" in err and "profiled for space" not in err, err


def test_a_linked_space_file_given_by_its_absolute_path_is_this_space(tmp_path, capsys, monkeypatch):
    """link.space a link to real/digits.space, profiled as link.space: the absolute path of the link ends with it."""
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "digits.space"
    real.write_text(DIGITS.read_text())
    link = tmp_path / "link.space"
    link.symlink_to(real)
    monkeypatch.chdir(tmp_path)
    _profile(capsys, "link.space", "latency.json")
    _edit(real, *WIDE)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, err = _cost(capsys, link, tmp_path / "latency.json", tmp_path)
    assert code == 2 and f"(has {link} changed since it was profiled?)" in err, err
    assert "profiled for space" not in err, err


def test_a_space_file_elsewhere_with_the_recorded_name_is_still_another_file(tmp_path, capsys, monkeypatch):
    """The same recorded name in another folder (no link): still another file, whose table is kept."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        (tmp_path / d / "digits.space").write_text(DIGITS.read_text())
    monkeypatch.chdir(tmp_path)
    _profile(capsys, "a/digits.space", "latency.json")
    _edit(tmp_path / "b" / "digits.space", *WIDE)
    code, err = _cost(capsys, "b/digits.space", "latency.json", tmp_path)
    assert code == 2 and "profiled for space digits (a/digits.space)" in err, err
    assert f"--out {tmp_path / 'latency.json'}`" not in err, err


def test_renamed_decisions_of_this_space_say_its_file_changed(tmp_path, capsys):
    """A stage of the profiled space renamed: the table is stale, so profiling again into it is right (the message
    suggested a new file, as for another space's table)."""
    space = tmp_path / "digits.space"
    space.write_text(DIGITS.read_text())
    table = tmp_path / "latency.json"
    _profile(capsys, space, table)
    _edit(space, "stage s1 ", "stage t1 ")
    code, err = _cost(capsys, space, table, tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"cost table {table} does not fit space {space}: other decisions (decision #1 is 's1_1' there, " \
           "'t1_1' here)" in err, err
    assert f"(has {space} changed since it was profiled?); profile it again with " \
           f"`automl space profile {space} --out {table}`" in err, err
    assert "profiled for space" not in err and "digits-latency.json" not in err, err


def test_renamed_decisions_of_this_space_in_a_recipe_say_its_file_changed(tmp_path, capsys):
    space = tmp_path / "digits.space"
    space.write_text(DIGITS.read_text())
    table = tmp_path / "latency.json"
    _profile(capsys, space, table)
    _edit(space, "stage s1 ", "stage t1 ")
    recipe = _latency_recipe(tmp_path, space, table)
    code, err = _cli(capsys, "run", recipe, "search.budgets=[null]", "--out", tmp_path / "run")
    assert code == 2 and "Traceback" not in err, err
    assert f"{recipe}:" in err and "other decisions" in err and f"(has {space} changed since it was profiled?)" in err
    assert f"--out {table}`" in err and "profiled for space" not in err, err


def test_other_decisions_from_other_set_values_point_at_a_file_of_their_own(tmp_path, capsys):
    """A space whose depth is a parameter, profiled with --set depth=2 and used with its default 3: the table still
    fits depth 2, so the message says so and points at a file for the values here (not at the same table)."""
    space = tmp_path / "digits.space"
    space.write_text(DIGITS.read_text().replace("param head = 128", "param head = 128\nparam depth = 3")
                     .replace("stage s3 width 48 * width repeat 3", "stage s3 width 48 * width repeat depth"))
    table = tmp_path / "latency.json"
    _profile(capsys, space, table, "--set", "depth=2")
    code, err = _cost(capsys, space, table, tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "other decisions" in err, err
    new = tmp_path / "latency-default.json"
    assert "(the table was profiled with --set depth=2, the space here is compiled with no --set values)" in err, err
    assert f"`automl space profile {space} --out {new}` and give --cost-table {new} (keep {table} for --set " \
           "depth=2)" in err, err
    assert f"--out {table}`" not in err and "profiled for space" not in err, err


def test_the_real_path_of_a_linked_folder_from_where_it_was_profiled_is_this_space(tmp_path, capsys, monkeypatch):
    """Profiled as sp/digits.space (sp a link), given as real/digits.space from the same folder: the recorded path
    read from here is the file given."""
    real = _linked_folder(tmp_path, monkeypatch)
    _profile(capsys, "sp/digits.space", "latency.json")
    _edit(real, *WIDE)
    code, err = _cost(capsys, "real/digits.space", "latency.json", tmp_path)
    assert code == 2 and "(has real/digits.space changed since it was profiled?)" in err, err
    assert f"--out {tmp_path / 'latency.json'}`" in err and "profiled for space" not in err, err
