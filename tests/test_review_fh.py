"""Review FH: one computation of how weights differ from a network's (``automl export --weights`` and ``automl run
--supernet`` each word it); an architecture file that is not JSON names its flag; ``--supernet`` given a file or
folder of a run, an export's folder, a run stopped before its first checkpoint, or a checkpoint whose supernet is
no state_dict, says so in one message (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.errors import UserError
from automl.export._export import _differences
from automl.export.inherit import state_differences
from automl.pipeline.reuse import _shape_mismatch, fingerprint_digest, load_supernet
from automl.pipeline.state import CKPT_FORMAT
from automl.train.checkpoint import CheckpointStore

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
FP = {"seed": 0}  # a weights fingerprint: both sides the same, so nothing differs


# --------------------------------------------------------------------------------------- the shared computation

def test_state_differences_gives_missing_extra_and_reshaped_in_order():
    given = {"b": torch.zeros(2, 3), "x": torch.zeros(1), "a": torch.zeros(4), "y": (5,), "c": (1, 1)}
    want = {"a": (4,), "b": torch.zeros(3, 2), "m": (7,), "c": torch.zeros(2), "n": torch.zeros(1)}
    missing, extra, reshaped = state_differences(given, want)
    assert missing == ["m", "n"]  # the network's order
    assert extra == ["x", "y"]  # the given state's order
    assert reshaped == [("b", (2, 3), (3, 2)), ("c", (1, 1), (2,))]  # (name, given, the network's), network's order
    assert state_differences(want, want) == ([], [], [])


def test_both_commands_word_the_same_differences_as_before():
    """--supernet and --weights each keep their own words for what the shared computation finds."""
    given = {"a": torch.zeros(2, 3), "x": torch.zeros(1), "y": torch.zeros(1)}
    want = {"a": torch.zeros(3, 3), "m": torch.zeros(1)}
    shapes = {k: tuple(v.shape) for k, v in given.items()}, {k: tuple(v.shape) for k, v in want.items()}
    assert _shape_mismatch(*shapes, few=1) == ("1 tensor missing (m), 2 tensors not in this space (x, ...), "
                                               "1 tensor of another size (a 2x3 there, 3x3 here)")
    assert _differences(given, want, few=1) == ("1 missing key(s) (m); 2 unexpected key(s) (x, 1 more); "
                                                "a is (2, 3), the network's (3, 3)")
    assert _shape_mismatch(*shapes[1:] * 2) == "" and _differences(want, want) == "the same tensors"


# ------------------------------------------------------------------------------ architecture files: the flag

def _one_error(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.out + captured.err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("argv, flag", [
    (["export", DIGITS, "--arch", "{bad}", "--out", "{out}"], "--arch"),
    (["space", "cost", DIGITS, "--arch", "{bad}"], "--arch"),
    (["space", "encode", DIGITS, "--arch-def", "{bad}", "--out", "{out}"], "--arch-def"),
])
def test_an_architecture_file_that_is_not_json_names_its_flag(tmp_path, capsys, argv, flag):
    """was "BAD:1:13: not valid JSON: ..." without the option that gave the file."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"choices": [\n  "ir_k3_e1",\n]}\n', encoding="utf-8")
    argv = [a.format(bad=bad, out=tmp_path / "out") for a in argv]
    assert main(argv) == 2
    err = _one_error(capsys)
    assert err.startswith(f"error: {flag} {bad}:3:1: not valid JSON: "), err  # path:line:col, as editors jump to
    assert not (tmp_path / "out").exists()


def test_an_architecture_file_with_a_huge_number_gives_no_python_advice(tmp_path, capsys):
    """was "... (Exceeds the limit (4300 digits) ...; use sys.set_int_max_str_digits() to increase the limit)"."""
    bad = tmp_path / "arch.json"
    bad.write_text('{"choices": [' + "9" * 5000 + "]}", encoding="utf-8")
    assert main(["space", "cost", DIGITS, "--arch", str(bad)]) == 2
    err = _one_error(capsys)
    assert err.startswith(f"error: --arch {bad}: not an architecture file") and "4300 digits" in err, err
    assert "sys.set_int_max_str_digits" not in err and "give an ARCH.json" in err, err


@pytest.mark.parametrize("argv", [
    ["export", DIGITS, "--arch", "{arch}", "--out", "{out}"],
    ["space", "cost", DIGITS, "--arch", "{arch}"],
])
def test_choices_that_do_not_fit_name_the_flag_too(tmp_path, capsys, argv):
    """was "ARCH: 1 choices given ..." with the bare path, where the file-level errors name --arch."""
    arch = tmp_path / "arch.json"
    arch.write_text('{"choices": ["ir_k3_e1"]}', encoding="utf-8")
    assert main([a.format(arch=arch, out=tmp_path / "out") for a in argv]) == 2
    err = _one_error(capsys)
    assert err.startswith(f"error: --arch {arch}: "), err


# ----------------------------------------------------------------------------------- --supernet: what it is

def _run(folder: Path, supernet=None) -> Path:
    """A run folder whose checkpoint holds ``supernet`` (a trained one's place)."""
    CheckpointStore(folder / "checkpoints").save({
        "format": CKPT_FORMAT, "recipe_sha256": "x", "stage": 1,
        "supernet": {"w": torch.zeros(3)} if supernet is None else supernet,
        "supernet_origin": {"from": None, "fingerprint": fingerprint_digest(FP), "forced": False, "differs": []},
        "weights_fingerprint": FP})
    return folder


def _refused(source: Path) -> str:
    with pytest.raises(UserError) as e:
        load_supernet(source, FP, False, None)
    return str(e.value)


@pytest.mark.parametrize("inside", ["checkpoints/ckpt-000001.pt", "checkpoints/checkpoints.json", "export",
                                    "export/eps-0", "export/eps-0/manifest.json"])
def test_supernet_of_a_file_or_folder_in_a_run_names_the_run(tmp_path, inside):
    """was "X is a file, not a run's folder; check --supernet" or "no checkpoint there (looked for ...)"."""
    run = _run(tmp_path / "run")
    (run / "export" / "eps-0").mkdir(parents=True)
    (run / "export" / "eps-0" / "manifest.json").write_text("{}")
    text = _refused(run / inside)
    assert f"of the run in {run}; give the run's folder: --supernet {run}" in text, text


def test_supernet_of_a_file_in_a_run_through_the_cli(tmp_path, capsys):
    run = _run(tmp_path / "run")
    code = main(["run", QUICK, "device=cpu", "--out", str(tmp_path / "new"), "--supernet",
                 str(run / "checkpoints" / "ckpt-000001.pt")])
    err = _one_error(capsys)
    assert code == 2 and err.endswith(f"give the run's folder: --supernet {run}") and not (tmp_path / "new").exists()


def test_supernet_of_an_export_folder_says_so(tmp_path):
    """was "no checkpoint there (looked for EXPORT/checkpoints/checkpoints.json)"."""
    export = tmp_path / "exported"
    export.mkdir()
    (export / "manifest.json").write_text(json.dumps({"format_version": 1, "choices": []}))
    text = _refused(export)
    assert "is an export's folder" in text and "the automl run that trained the supernet" in text, text


def test_supernet_of_a_run_stopped_before_its_first_checkpoint_says_so(tmp_path):
    """A half-written run folder (its start-up's recipe.resolved.yaml, no checkpoint; nothing running there)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.resolved.yaml").write_text("seed: 0\n")
    text = _refused(run)
    assert "it stopped before its first one" in text, text
    assert f"automl run {run / 'recipe.resolved.yaml'} --out {run}: it starts afresh" in text, text


@pytest.mark.parametrize("supernet, why", [({"w": 1}, "its entry 'w' is 1 (int), not a tensor"),
                                           ([1, 2], "it holds [1, 2], a list")])
def test_supernet_checkpoint_holding_no_state_dict_is_refused(tmp_path, supernet, why):
    """was an AttributeError ('int' object has no attribute 'shape') in check_fits: an internal error."""
    run = _run(tmp_path / "run", supernet)
    text = _refused(run)
    assert f"--supernet {run}: the supernet in its checkpoint" in text and why in text, text
    assert "train the supernet again" in text, text
