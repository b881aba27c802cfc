"""Review HO: `automl space show|cost|encode|profile` (automl/commands/space.py, automl/profile.py): each user
mistake is one message, exit 2, naming the flag or file and saying how to fix it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automl.cli import main
from automl.compile import load_compiled
from automl.profile import TABLE_FORMAT, TABLE_VERSION

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _table(cs, **changes) -> dict:
    """A hand-written latency table of ``cs`` (what `space profile` writes, without its fingerprints)."""
    table = {"format": TABLE_FORMAT, "version": TABLE_VERSION, "metric": "latency", "unit": "ms",
             "input_size": list(cs.input_shape), "fixed": 0.01,
             "decisions": [{"name": d.name, "choices": {c: 0.1 for c in d.choices}} for d in cs.decisions]}
    table.update(changes)
    return table


def _arch_file(tmp_path, cs) -> Path:
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": {d.name: d.choices[0] for d in cs.decisions}}))
    return path


# ---- space profile --metric ----------------------------------------------------------------------------------

def test_profile_metric_that_is_no_word_says_what_a_name_is(tmp_path, capsys):
    # was: "pick a new metric name (the space has params, macs, layers), e.g. latency", as if 1x were taken
    assert main(["space", "profile", DIGITS, "--metric", "1x", "--out", str(tmp_path / "t.json")]) == 2
    err = _one_error(capsys)
    assert "--metric 1x" in err and "letters, digits and _" in err and "--metric latency" in err
    assert not (tmp_path / "t.json").exists()


def test_profile_metric_taken_by_the_space_suggests_a_free_name(tmp_path, capsys):
    # a space declaring `metric latency`: the default --metric latency is taken, and was suggested all the same
    space = tmp_path / "lat.space"
    space.write_text(Path(DIGITS).read_text().replace("metric layers", "metric latency"))
    assert main(["space", "profile", str(space), "--out", str(tmp_path / "t.json")]) == 2
    err = _one_error(capsys)
    assert "--metric latency: pick a new metric name" in err and "params, macs, latency" in err
    assert "e.g. --metric latency_2" in err and "e.g. latency\n" not in err + "\n"


@pytest.mark.parametrize("metric", ["params", "macs", "layers"])
def test_profile_metric_of_the_space_is_refused_before_measuring(tmp_path, capsys, metric):
    assert main(["space", "profile", DIGITS, "--metric", metric, "--out", str(tmp_path / "t.json")]) == 2
    err = _one_error(capsys)
    assert f"--metric {metric}: pick a new metric name" in err and "e.g. --metric latency" in err


# ---- space encode --arch-def of choices ----------------------------------------------------------------------

@pytest.mark.parametrize("kind, what", [("arch", "an ARCH.json"), ("entry", "a results.json entry"),
                                        ("results", "a run's results.json"), ("list", "a list of architectures")])
def test_encode_arch_def_of_encoded_choices_says_to_give_it_as_arch(tmp_path, capsys, kind, what):
    # was: "expected a timm arch_def, a list of stages of block strings ..." with no word of what the file is
    cs = load_compiled(str(ROOT / "spaces" / "mobilenetv3.space"))
    arch = {"choices": {d.name: d.choices[0] for d in cs.decisions}}
    obj = {"arch": arch, "entry": {**arch, "test_accuracy": 0.9, "params": 1},
           "results": {"architectures": [{**arch, "test_accuracy": 0.9}]}, "list": [arch]}[kind]
    path = tmp_path / "given.json"
    path.write_text(json.dumps(obj))
    space = str(ROOT / "spaces" / "mobilenetv3.space")
    assert main(["space", "encode", space, "--arch-def", str(path)]) == 2
    err = _one_error(capsys)
    assert f"--arch-def {path} is {what}" in err and f"automl space cost {space} --arch {path}" in err


def test_encode_arch_def_of_a_manifest_without_arch_def_says_so(tmp_path, capsys):
    cs = load_compiled(DIGITS)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"format_version": 1, "choices": [d.choices[0] for d in cs.decisions]}))
    assert main(["space", "encode", DIGITS, "--arch-def", str(path)]) == 2
    assert "is an export's manifest.json without an \"arch_def\"" in _one_error(capsys)


def test_encode_arch_def_still_reads_a_bare_arch_def(tmp_path, capsys):
    path = tmp_path / "ad.json"
    path.write_text(json.dumps([["ir_r1_k3_s1_e1_c16"], ["ir_r1_k3_s2_e3_c16"], ["ir_r1_k5_s1_e6_c24"]]))
    out = tmp_path / "arch.json"
    assert main(["space", "encode", DIGITS, "--set", "width=0.5", "--arch-def", str(path), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["choices"]["s1_1"] == "ir_k3_e1"


# ---- space cost --cost-table with a bad entry ----------------------------------------------------------------

@pytest.mark.parametrize("value, shown", [(float("nan"), "got nan"), ("0.1", "got '0.1'"), (None, "got None"),
                                          (True, "got True"), (10**400, "too large")],
                         ids=["nan", "string", "null", "bool", "huge"])
def test_cost_table_bad_entry_says_how_to_fix_it(tmp_path, capsys, value, shown):
    # was: "decision s1_1, choice 'ir_k3_e1': expected a number, got nan" and nothing on what to do
    cs = load_compiled(DIGITS)
    table = _table(cs)
    table["decisions"][0]["choices"]["ir_k3_e1"] = value
    path = tmp_path / "t.json"
    path.write_text(json.dumps(table))
    assert main(["space", "cost", DIGITS, "--arch", str(_arch_file(tmp_path, cs)), "--cost-table", str(path)]) == 2
    err = _one_error(capsys)
    assert f"{path}: decision s1_1, choice 'ir_k3_e1'" in err and shown in err
    assert "re-profile with `automl space profile`" in err


def test_cost_table_bad_fixed_says_how_to_fix_it(tmp_path, capsys):
    cs = load_compiled(DIGITS)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(_table(cs, fixed="x")))
    assert main(["space", "cost", DIGITS, "--arch", str(_arch_file(tmp_path, cs)), "--cost-table", str(path)]) == 2
    err = _one_error(capsys)
    assert f"{path}: \"fixed\": expected a number" in err and "re-profile" in err


def test_cost_with_a_valid_table_gives_the_same_output_twice(tmp_path, capsys):
    cs = load_compiled(DIGITS)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(_table(cs)))
    args = ["space", "cost", DIGITS, "--arch", str(_arch_file(tmp_path, cs)), "--cost-table", str(path)]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first
    got = json.loads(first)
    assert set(got) == {"params", "macs", "layers", "latency"} and got["latency"] == pytest.approx(0.01 + 9 * 0.1)


def test_cost_table_that_is_a_folder_names_the_file_to_give(tmp_path, capsys):
    # was: "cost table DIR: not a readable JSON cost table (it is a folder)", with no file to give instead
    cs = load_compiled(DIGITS)
    arch = _arch_file(tmp_path, cs)
    assert main(["space", "cost", DIGITS, "--arch", str(arch), "--cost-table", str(tmp_path)]) == 2
    err = _one_error(capsys)
    assert f"cost table {tmp_path} is a folder" in err and str(tmp_path / "latency.json") in err
