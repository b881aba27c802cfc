"""Review NI: `automl run R --set K=V` says that run's overrides are positional `K=V` (and `automl rank --set`
that rank takes none); a checkpoint folder's cleanup on resume deletes only the temporaries the atomic writer
names (`.NAME.XXXXXXXX[.ext].tmp`), nothing else ending in `.tmp`; an export's manifest records the member's
`budget` where the export is given one (null: none), and a manifest's `budget` is checked as `epsilon` is."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.export import export_architecture, read_manifest
from automl.train.checkpoint import CheckpointStore
from helpers import cli_err

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"
QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


# 1. `automl run R --set K=V`

@pytest.mark.parametrize("argv", [["--set", "search.lam=4"], ["--set=search.lam=4"]])
def test_set_given_to_run_says_overrides_are_positional(capsys, argv):
    code, err = cli_err(capsys, "run", QUICKSTART, *argv, usage_exit=True)
    assert code == 2
    said = [line for line in err.splitlines() if "error:" in line]
    assert len(said) == 1 and "Traceback" not in err, err
    assert f"unrecognized arguments: {argv[0]}; " in said[0], err
    assert "positional KEY=VALUE" in said[0], err
    assert f"e.g. automl run {shlex.quote(QUICKSTART)} search.lam=4;" in said[0], err


def test_set_given_twice_to_run_shows_both_overrides(capsys):
    code, err = cli_err(capsys, "run", QUICKSTART, "--set", "search.lam=4", "--set=seed=3", usage_exit=True)
    assert code == 2 and f"e.g. automl run {shlex.quote(QUICKSTART)} search.lam=4 seed=3;" in err, err


def test_set_given_to_rank_says_it_takes_no_overrides(capsys, tmp_path):
    code, err = cli_err(capsys, "rank", str(tmp_path), "--set", "search.lam=4", usage_exit=True)
    assert code == 2 and "automl rank takes no --set" in err and "recipe.resolved.yaml" in err, err


def test_other_unknown_flags_of_run_keep_their_message(capsys):
    code, err = cli_err(capsys, "run", QUICKSTART, "--settings", "x", usage_exit=True)
    assert code == 2 and "takes no --set" not in err, err


# 2. the checkpoint folder's temporaries

def test_checkpoint_cleanup_deletes_only_the_atomic_writers_temporaries(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save({"step": 1})
    cut_short = [".ckpt-000002.pt.0123abcd.tmp",      # this automl's (4 random bytes as hex)
                 ".checkpoints.json.ab_c12x9.tmp"]    # an earlier automl's (tempfile's 8 characters)
    for name in cut_short:
        (tmp_path / name).write_bytes(b"half")
    kept = [".notes.tmp", ".ckpt-000003.pt.abc.tmp", ".backup.tmp"]  # no temporary of the atomic writer
    for name in kept:
        (tmp_path / name).write_bytes(b"the user's")
    (tmp_path / ".scratch.0123abcd.tmp").mkdir()  # a folder so named: not a file a write left
    assert store.remove_temporaries() == len(cut_short)
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"checkpoints.json", "ckpt-000001.pt", ".scratch.0123abcd.tmp", *kept}
    assert store.load() == {"step": 1}


# 3. the manifest's budget

@pytest.fixture(scope="module")
def digits():
    cs = load_compiled(str(DIGITS))
    return cs, [d.choices[1] for d in cs.decisions]


def _export(digits, out: Path, **kw) -> dict:
    cs, arch = digits
    torch.manual_seed(0)
    export_architecture(cs, arch, out, onnx=False, space_path=DIGITS, cost_metric="params", **kw)
    return json.loads((out / "manifest.json").read_text())


def test_manifest_records_the_members_budget(digits, tmp_path):
    m = _export(digits, tmp_path / "b", epsilon=0.0, budget=80000.0)
    assert m["budget"] == 80000 and isinstance(m["budget"], int) and m["epsilon"] == 0.0  # a count: an int
    assert read_manifest(tmp_path / "b")["budget"] == 80000
    unconstrained = _export(digits, tmp_path / "u", epsilon=0.0, budget=None)
    assert "budget" in unconstrained and unconstrained["budget"] is None
    plain = _export(digits, tmp_path / "p")  # no member: no budget recorded
    assert "budget" not in plain and read_manifest(tmp_path / "p")["choices"] == plain["choices"]


def test_a_manifest_without_or_with_a_budget_exports_again(digits, tmp_path, capsys):
    _export(digits, tmp_path / "old", epsilon=0.5)  # as an older automl wrote it: no budget
    assert main(["export", str(DIGITS), "--arch", str(tmp_path / "old" / "manifest.json"),
                 "--out", str(tmp_path / "old-again")]) == 0
    assert "budget" not in json.loads((tmp_path / "old-again" / "manifest.json").read_text())
    m = _export(digits, tmp_path / "new", epsilon=0.0, budget=80000.0)
    assert main(["export", str(DIGITS), "--arch", str(tmp_path / "new" / "manifest.json"),
                 "--out", str(tmp_path / "new-again")]) == 0
    assert json.loads((tmp_path / "new-again" / "manifest.json").read_text())["budget"] == 80000  # kept
    m["budget"] = "80k"  # hand-edited: refused, naming the field
    (tmp_path / "new" / "manifest.json").write_text(json.dumps(m))
    capsys.readouterr()
    code, err = cli_err(capsys, "export", str(DIGITS), "--arch", str(tmp_path / "new" / "manifest.json"),
                        "--out", str(tmp_path / "bad"))
    assert code == 2 and '"budget"' in err and "a number" in err and "Traceback" not in err, err
