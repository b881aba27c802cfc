"""Review LA: :func:`automl.profile.read_cost_table` refuses a table with a :class:`~automl.profile.CostTableRefusal`
(:class:`~automl.profile.CostTableMismatch` for one that does not fit the space) whose ``reason`` is what is wrong
alone, its message unchanged; ``automl export --recipe`` says that reason in its note on a table that prices
nothing, where it cut the message at its first "; " (a "; " inside a file name, a choice or a decision name of the
table cut the reason short). A table records the working folder it was profiled in (``space.cwd``): a relative
space file of the same name in another folder is another space, not this one edited."""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_edge_fixes import _fake_time  # a latency of exactly 1 ms + 1 µs per parameter

import automl.profile as profile
from automl.cli import main
from automl.commands import export as export_cmd
from automl.compile import load_compiled
from automl.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"
WIDE = ("stage s1 width 24 * width", "stage s1 width 40 * width")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture(autouse=True)
def _fake_timing(monkeypatch):
    monkeypatch.setattr(profile, "time_module", _fake_time)


@pytest.fixture(scope="module")
def digits_table(tmp_path_factory) -> dict:
    """digits' latency table, timed by the fake clock."""
    path = tmp_path_factory.mktemp("la") / "latency.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(profile, "time_module", _fake_time)
        assert main(["space", "profile", str(DIGITS), "--repeat", "1", "--calibrate", "0", "--out", str(path)]) == 0
    return json.loads(path.read_text())


def _space(folder: Path, edit=None, name: str = "digits.space") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = DIGITS.read_text()
    if edit is not None:
        assert edit[0] in text, edit
        text = text.replace(*edit, 1)
    (folder / name).write_text(text)
    return folder / name


def _first_choices(t: dict) -> dict:
    return t["decisions"][0]["choices"]


# kind -> (how the table is edited, how the space is edited or None, --set values, the refusal's class, its head)
MISMATCH = "cost table {path} does not fit space {space}: "
KINDS = {
    "decisions of another space": (lambda t: t["space"].update(name="other", file="/x/other.space"),
                                   ("stage s1 ", "stage t1 "), {}, "CostTableMismatch", MISMATCH),
    "decisions of this space, edited": (None, ("stage s1 ", "stage t1 "), {}, "CostTableMismatch", MISMATCH),
    "decisions, other --set values": (lambda t: t["space"].update(args={"width": "2.0"}), ("stage s1 ", "stage t1 "),
                                      {}, "CostTableMismatch", MISMATCH),
    "a decision named with '; '": (lambda t: t["decisions"][0].update(name="s1; 1"), None, {}, "CostTableMismatch",
                                   MISMATCH),
    "input size not a list": (lambda t: t.update(input_size="8; 8"), None, {}, "CostTableMismatch", MISMATCH),
    "input size": (lambda t: t.update(input_size=[1, 9, 9]), None, {}, "CostTableMismatch", MISMATCH),
    "widths of this space, edited": (None, WIDE, {}, "CostTableMismatch", MISMATCH),
    "widths of another space": (lambda t: t["space"].update(name="other", file="/x; y/other.space"), WIDE, {},
                                "CostTableMismatch", MISMATCH),
    "widths, other --set values": (None, None, {"width": "0.5"}, "CostTableMismatch", MISMATCH),
    "layers": (None, ("32 * width stride 2", "32 * width stride 1"), {}, "CostTableMismatch", MISMATCH),
    "a choice missing": (lambda t: _first_choices(t).pop(next(iter(_first_choices(t)))), None, {},
                         "CostTableMismatch", MISMATCH),
    "a choice named with '; '": (lambda t: _first_choices(t).update({"ir; k9": 1.0}), None, {}, "CostTableMismatch",
                                 MISMATCH),
    "unit": (lambda t: t.update(unit="us"), None, {}, "CostTableRefusal", "{path}: "),
    "a negative cost": (lambda t: _first_choices(t).update({c: -1.0 for c in _first_choices(t)}), None, {},
                        "CostTableRefusal", "{path}: "),
    "no fixed cost": (lambda t: t.pop("fixed"), None, {}, "CostTableRefusal", "{path}: "),
    "a clock of its own": (lambda t: t.update(clock="sundial"), None, {}, "CostTableRefusal", "{path}: "),
}


def _case(tmp_path: Path, digits_table: dict, kind: str, folder: str = "sp"):
    """The table file, the space (compiled) and the refusal's class name and head for one kind of refusal; the space
    file is in ``folder`` under ``tmp_path`` and the table was profiled for it there (its name and the working
    folder recorded)."""
    edit_table, edit_space, sets, cls, head = KINDS[kind]
    space = _space(tmp_path / folder, edit_space)
    t = json.loads(json.dumps(digits_table))
    t["space"].update(file=str(space.relative_to(tmp_path)), cwd=str(tmp_path))
    if edit_table is not None:
        edit_table(t)
    path = tmp_path / "latency.json"
    path.write_text(json.dumps(t))
    cs = load_compiled(str(space), sets or None)
    return path, cs, cls, head.format(path=path, space=cs.filename)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_refusal_carries_its_bare_reason_and_its_whole_message(tmp_path, digits_table, kind):
    path, cs, cls, head = _case(tmp_path, digits_table, kind)
    with pytest.raises(UserError) as info:
        profile.read_cost_table(path, cs)
    e = info.value
    assert type(e) is getattr(profile, cls), (type(e), str(e))
    assert isinstance(e, profile.CostTableRefusal) and e.exit_code == 2
    reason = e.reason
    assert reason and str(e).startswith(head + reason), (str(e), reason)
    rest = str(e)[len(head + reason):]
    assert rest == "" or rest.startswith(("; ", ": ")), rest  # what follows is the fix, said after it
    assert str(path) not in reason and "automl space profile" not in reason, reason


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_export_note_gives_the_reason_whole(tmp_path, digits_table, kind, capsys):
    """The note of `automl export --recipe` on a table that does not price the exported space: the refusal's reason
    in parentheses, nothing of the table's name or its fix ahead of it, nothing cut off."""
    path, cs, _, _ = _case(tmp_path, digits_table, kind)
    with pytest.raises(UserError) as info:
        profile.read_cost_table(path, cs)
    recipe = SimpleNamespace(cost_table_path=path, source=tmp_path / "r.yaml",
                             search=SimpleNamespace(cost_table="latency.json"))
    capsys.readouterr()
    export_cmd._price(recipe, cs, {"batch": 1, "threads": 1, "clock": "wall"})
    notes = [line for line in capsys.readouterr().err.splitlines() if "does not price" in line]
    assert len(notes) == 1, notes
    assert f"does not price the exported space {cs.filename}" in notes[0], notes[0]
    assert f" ({info.value.reason}): the latency is timed as the table was " in notes[0], (notes[0], info.value)
    assert "latency" not in cs.cost_table.metrics


@pytest.mark.parametrize("where", ["a; b", "plain"])
def test_a_space_file_in_a_folder_named_with_a_semicolon_is_said_whole(tmp_path, digits_table, capsys, where):
    """This space's table, the space edited since: the note said "(... (has /tmp/.../a" and stopped there."""
    path, cs, _, _ = _case(tmp_path, digits_table, "widths of this space, edited", folder=where)
    recipe = SimpleNamespace(cost_table_path=path, source=None, search=SimpleNamespace(cost_table=str(path)))
    capsys.readouterr()
    export_cmd._price(recipe, cs, {"batch": 2, "threads": 1, "clock": "wall"})
    err = capsys.readouterr().err
    assert f"(has {cs.filename} changed since it was profiled?)): the latency is timed as the table was (by the " \
           f"wall clock at batch 2 on one thread)" in err, err


@pytest.mark.parametrize("kind,whole", [
    ("a decision named with '; '", "(other decisions (decision #1 is 's1; 1' there, 's1_1' here) (has "),
    ("a choice named with '; '", "'ir; k9'"),
    ("input size not a list", "(\"input_size\" must be a list [C, H, W], got '8; 8'): the latency"),
    ("widths of another space", "(the table was profiled for space other (/x; y/other.space), and this space's "
                                "widths or ops differ from those profiled): the latency"),
])
def test_a_reason_that_holds_a_semicolon_is_not_cut_there(tmp_path, digits_table, kind, whole, capsys):
    """The note cut the message at its first "; ", which here is inside a name the table holds."""
    path, cs, _, _ = _case(tmp_path, digits_table, kind)
    recipe = SimpleNamespace(cost_table_path=path, source=None, search=SimpleNamespace(cost_table=str(path)))
    capsys.readouterr()
    export_cmd._price(recipe, cs, {"batch": 1, "threads": 1, "clock": "wall"})
    err = capsys.readouterr().err
    assert whole in err and err.count("does not price") == 1, err


def test_a_fitting_table_prices_the_export_without_a_note(tmp_path, digits_table, capsys):
    path = tmp_path / "latency.json"
    path.write_text(json.dumps(digits_table))
    cs = load_compiled(str(DIGITS))
    recipe = SimpleNamespace(cost_table_path=path, source=None, search=SimpleNamespace(cost_table=str(path)))
    export_cmd._price(recipe, cs, {"batch": 1, "threads": 1, "clock": "wall"})
    assert "latency" in cs.cost_table.metrics and "does not price" not in capsys.readouterr().err


def test_the_reason_defaults_to_the_message():
    e = profile.CostTableMismatch("cost table t.json does not fit space s.space: other decisions", "other decisions")
    assert str(e) == "cost table t.json does not fit space s.space: other decisions" and e.reason == "other decisions"
    assert isinstance(e, profile.CostTableRefusal) and isinstance(e, UserError)
    assert profile.CostTableRefusal("whole").reason == "whole"


# ---- the same relative path in another working folder -----------------------------------------------------------

def _cli(capsys, *argv) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _cost(capsys, space, table, tmp_path) -> tuple[int, str]:
    cs = load_compiled(str(space))
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    return _cli(capsys, "space", "cost", space, "--arch", arch, "--cost-table", table)


def test_a_table_records_the_folder_it_was_profiled_in(tmp_path, capsys, monkeypatch):
    _space(tmp_path / "spaces")
    monkeypatch.chdir(tmp_path)
    code, err = _cli(capsys, "space", "profile", "spaces/digits.space", "--repeat", "1", "--calibrate", "0",
                     "--out", "latency.json")
    assert code == 0, err
    t = json.loads((tmp_path / "latency.json").read_text())
    assert t["space"]["file"] == "spaces/digits.space" and t["space"]["cwd"] == os.getcwd(), t["space"]


def test_the_same_relative_path_in_another_folder_is_another_space(tmp_path, capsys, monkeypatch):
    """Project a's table of spaces/digits.space, read from project b for b's spaces/digits.space (wider): the
    refusal called it this space edited, and told to profile it again into a's table, which still fits a's space."""
    _space(tmp_path / "a" / "spaces")
    _space(tmp_path / "b" / "spaces", WIDE)
    monkeypatch.chdir(tmp_path / "a")
    code, err = _cli(capsys, "space", "profile", "spaces/digits.space", "--repeat", "1", "--calibrate", "0",
                     "--out", "latency.json")
    assert code == 0, err
    table = tmp_path / "a" / "latency.json"
    monkeypatch.chdir(tmp_path / "b")
    code, err = _cost(capsys, "spaces/digits.space", table, tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"profiled for space digits ({tmp_path / 'a' / 'spaces' / 'digits.space'})" in err, err
    assert "changed since it was profiled" not in err and f"--out {table}`" not in err, err
    # the same file, edited, from either folder: this space changed since
    monkeypatch.chdir(tmp_path / "a")
    space = tmp_path / "a" / "spaces" / "digits.space"
    space.write_text(space.read_text().replace(*WIDE, 1))
    for cwd, given in ((tmp_path / "a", "spaces/digits.space"), (tmp_path / "b", space)):
        monkeypatch.chdir(cwd)
        code, err = _cost(capsys, given, table, tmp_path)
        assert code == 2 and f"(has {given} changed since it was profiled?)" in err, err


def test_a_table_profiled_elsewhere_is_still_this_space_by_its_path(tmp_path, capsys, monkeypatch, digits_table):
    """A recorded working folder that does not hold the file here (a table profiled on another machine, or before
    its project moved): the recorded path is compared as before (its tail)."""
    space = _space(tmp_path / "spaces", WIDE)
    t = json.loads(json.dumps(digits_table))
    t["space"].update(file="spaces/digits.space", cwd="/nowhere/project")
    table = tmp_path / "latency.json"
    table.write_text(json.dumps(t))
    code, err = _cost(capsys, space, table, tmp_path)
    assert code == 2 and f"(has {space} changed since it was profiled?)" in err, err
