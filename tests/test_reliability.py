"""Hardening: CLI misuse and exit codes, safe loading, NaN/inf handling, write errors, where a run writes."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

import automl.train.loops
from automl.cli import main
from automl.errors import RecipeError, UserError
from automl.pipeline import Run
from automl.recipe import load_recipe, parse_recipe
from automl.train.checkpoint import CheckpointStore
from automl.train.distributed import DistInfo
from automl.train.loops import weight_step
from helpers import cli_err

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
# One supernet, epochs of 3 weight steps, one θ epoch, no retraining (the exported net inherits supernet
# weights).
SMALL = ["search.supernets=1",
         "data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
         "search.weight_epochs=2", "search.theta_epochs=1", "search.epsilons=[0,0.5]", "search.lam=2", "retrain.epochs=0",
         "export.onnx=false", "search.log_every=1", "device=cpu"]
AS_ROOT = os.name == "posix" and os.geteuid() == 0


cli = partial(cli_err, internal_ok=True)  # (code, stderr); no traceback


# ---------------------------------------------------------------------------------------- CLI misuse


def test_missing_recipe(tmp_path, capsys):
    code, err = cli(capsys, "run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o"))
    assert code == 2 and "no such recipe file" in err and len(err.strip().splitlines()) == 1


def test_directory_instead_of_recipe(tmp_path, capsys):
    code, err = cli(capsys, "run", str(tmp_path), "--out", str(tmp_path / "o"))
    assert code == 2 and "is a directory" in err


def test_directory_instead_of_space(tmp_path, capsys):
    code, err = cli(capsys, "space", "check", str(tmp_path))
    assert code == 2 and str(tmp_path) in err


def test_wrong_flag(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", QUICK, "--bogus"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "unrecognized arguments: --bogus" in err and "Traceback" not in err


@pytest.mark.skipif(AS_ROOT or os.name != "posix", reason="root reads anything")
def test_unreadable_recipe(tmp_path, capsys):
    p = tmp_path / "r.yaml"
    shutil.copy(QUICK, p)
    p.chmod(0)
    try:
        code, err = cli(capsys, "run", str(p), "--out", str(tmp_path / "o"))
    finally:
        p.chmod(0o644)
    assert code == 2 and "cannot read" in err


def test_out_under_a_regular_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = cli(capsys, "run", QUICK, *SMALL, "--out", str(blocker / "run"))
    assert code == 2 and "cannot write there" in err and str(blocker / "run") in err


def test_out_is_a_regular_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    for extra in ([], ["--resume"]):
        code, err = cli(capsys, "run", QUICK, *SMALL, "--out", str(f), *extra)
        assert code == 2 and "is a file, not a folder" in err
    assert f.read_text() == "x"


def test_resume_with_no_checkpoint_starts_nothing(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    code, err = cli(capsys, "run", QUICK, *SMALL, "--out", str(out), "--resume")
    assert code == 2 and "no checkpoint" in err and len(err.strip().splitlines()) == 1
    assert list(out.iterdir()) == []


def _python_m(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "automl", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.mark.parametrize("case", [
    "missing recipe",
    # the same messages in-process: test_out_under_a_regular_file, test_resume_with_no_checkpoint_starts_nothing
    pytest.param("out under a file", marks=pytest.mark.heavy),
    pytest.param("resume nothing", marks=pytest.mark.heavy),
])
def test_real_process_user_errors_exit_2(tmp_path, case):
    """``python -m automl``'s exit code and stderr for a user error (about 6 s a process: one in the default run)."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    args, message = {
        "missing recipe": (["run", "missing.yaml"], "no such recipe file"),
        "out under a file": (["run", QUICK, *SMALL, "--out", str(blocker / "run")], "cannot write there"),
        "resume nothing": (["run", QUICK, *SMALL, "--out", str(tmp_path / "empty"), "--resume"], "no checkpoint"),
    }[case]
    p = _python_m(*args, cwd=tmp_path)
    assert p.returncode == 2, (args, p.stderr)
    assert "Traceback" not in p.stderr and message in p.stderr, (args, p.stderr)


# ---------------------------------------------------------------------------------------- exit codes


def test_internal_error_exits_1_and_asks_for_a_report(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("internal boom")

    monkeypatch.setattr("automl.commands.space.main", broken)
    assert main(["space", "check", str(ROOT / "spaces" / "digits.space")]) == 1
    err = capsys.readouterr().err
    assert "internal boom" in err and "internal error" in err and "please report" in err


def test_success_exits_0(capsys):
    assert main(["space", "check", str(ROOT / "spaces" / "digits.space")]) == 0


# ---------------------------------------------------------------------------------------- safe loading


def test_yaml_python_tag_is_rejected_and_not_run(tmp_path, capsys):
    marker = tmp_path / "hacked"
    p = tmp_path / "r.yaml"
    p.write_text(f'name: x\nspace: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(RecipeError) as info:
        load_recipe(p)
    assert info.value.line == 2 and "no Python objects" in str(info.value)
    code, err = cli(capsys, "run", str(p), "--out", str(tmp_path / "o"))
    assert code == 2 and not marker.exists()
    with pytest.raises(RecipeError, match="override"):
        load_recipe(QUICK, [f"name=!!python/object/apply:os.system [touch {marker}]"])
    assert not marker.exists()


class _Evil:
    marker = None

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_checkpoint_with_custom_class_is_refused(tmp_path, caplog):
    marker = tmp_path / "pwned"
    store = CheckpointStore(tmp_path / "ck")
    store.save({"step": 1})
    evil = _Evil()
    evil.marker = str(marker)
    store.save({"step": 2, "x": evil})  # a valid checksum: the content itself is refused
    assert store.load()["step"] == 1 and not marker.exists()
    assert "refused" in caplog.text
    only = CheckpointStore(tmp_path / "ck2")
    only.save({"x": evil})
    assert only.load() is None and not marker.exists()


def test_loaders_use_weights_only():
    """Every torch.load in the package reads weights only (grep, so a new one cannot slip in)."""
    import re

    calls = []
    for f in (ROOT / "automl").rglob("*.py"):
        for m in re.finditer(r"torch\.load\((.*)", f.read_text()):
            calls.append((f.name, m.group(1)))
            assert "weights_only=True" in m.group(1), (f, m.group(0))
    assert calls
    for f in (ROOT / "automl").rglob("*.py"):
        text = f.read_text()
        assert "yaml.load(" not in text and "yaml.unsafe_load" not in text and "pickle.load(" not in text, f
        assert not re.search(r"(?<![\w.])(?<!def )(eval|exec)\(", text), f  # builtins; a method may be named eval


@pytest.mark.parametrize("protocol", [2, 4])
def test_cifar_pickles_load_arrays_only(tmp_path, protocol):
    import pickle

    import numpy as np

    from automl.errors import DataError
    from automl.recipe import DataConfig
    from automl.train.data import build_data

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8), b"labels": [i % 10 for i in range(10)],
                 b"batch_label": name.encode()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c"] * 10}, protocol=protocol))
    cfg = DataConfig(dataset="cifar10", root=str(tmp_path), batch_size=8)
    assert build_data(cfg, ".", 0, "cpu").num_classes == 10
    marker = tmp_path / "pwned"
    evil = _Evil()
    evil.marker = str(marker)
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": evil, b"labels": []}, protocol=protocol))
    with pytest.raises(DataError, match="refused to load"):
        build_data(cfg, ".", 0, "cpu")
    assert not marker.exists()


# ---------------------------------------------------------------------------------------- NaN / inf


def test_nan_policy_in_the_schema():
    r = load_recipe(QUICK)
    assert r.search.nan_policy == "stop" and r.search.max_bad_steps == 10
    r = load_recipe(QUICK, ["search.nan_policy=skip", "search.max_bad_steps=0"])
    assert r.search.nan_policy == "skip" and r.search.max_bad_steps == 0
    with pytest.raises(RecipeError, match="must be one of stop, skip"):
        load_recipe(QUICK, ["search.nan_policy=ignore"])
    with pytest.raises(RecipeError, match="must be >= 0"):
        load_recipe(QUICK, ["search.max_bad_steps=-1"])
    for bad in ("optim.lr=.inf", "optim.lr=.nan", "search.epsilons=[.inf]"):
        with pytest.raises(RecipeError, match="finite|must be"):
            load_recipe(QUICK, [bad])


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.bn = nn.BatchNorm1d(3)

    def forward(self, x, arch):
        return self.bn(self.lin(x))


@pytest.mark.parametrize("poison", ["input", "weights"])
def test_skipped_step_is_not_applied(poison):
    torch.manual_seed(0)
    net = _Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)
    archs = torch.zeros(2, 1, dtype=torch.long)
    args = (nn.CrossEntropyLoss(), DistInfo(), 5.0, torch.device("cpu"))
    loss, _ = weight_step(net, x, y, archs, opt, *args, skip_nonfinite=True)
    assert math.isfinite(loss.item())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    momentum = [opt.state[p]["momentum_buffer"].clone() for p in net.parameters()]
    if poison == "input":
        x = x.clone()
        x[0, 0] = float("nan")
    else:
        y = y.clone()
        with torch.no_grad():
            net.lin.weight[0, 0] = float("inf")
        before["lin.weight"][0, 0] = float("inf")
    loss, _ = weight_step(net, x, y, archs, opt, *args, skip_nonfinite=True)
    assert not math.isfinite(loss.item())
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    for p, m in zip(net.parameters(), momentum):
        assert torch.equal(opt.state[p]["momentum_buffer"], m)
        assert p.grad is None


def test_diverging_weights_stop_with_step_and_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("automl.recipe.MAX_LR", math.inf)  # a recipe refuses lr 1e30 at load; the run's own check
    code, err = cli(capsys, "run", QUICK, *SMALL, "optim.lr=1e30", "optim.weight_decay=0", "optim.grad_clip=null",
                    "--out", str(tmp_path / "o"))
    assert code == 2
    assert "weights: the training loss became" in err and "epoch 1, by step" in err
    assert "lower optim.lr" in err and "nan_policy=skip" in err
    assert not (tmp_path / "o" / "results.json").exists()


def _poison_steps(monkeypatch, bad: set[int]):
    """Make the weight steps numbered in ``bad`` (1-based, whole run) see a NaN input."""
    real = automl.train.loops.weight_step
    calls = {"n": 0}

    def step(net, x, *a, **k):
        calls["n"] += 1
        if calls["n"] in bad:
            x = torch.full_like(x, float("nan"))
        return real(net, x, *a, **k)

    monkeypatch.setattr(automl.train.loops, "weight_step", step)


def test_nan_policy_skip_skips_and_counts(tmp_path, monkeypatch, capsys):
    _poison_steps(monkeypatch, {2, 5})
    out = tmp_path / "o"
    code, err = cli(capsys, "run", QUICK, *SMALL, "search.nan_policy=skip", "--out", str(out))
    assert code == 0, err
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    skipped = [x for x in lines if x.get("skipped")]
    assert [(x["epoch"], x["step"], x["bad_steps"]) for x in skipped] == [(1, 2, 1), (2, 2, 2)]
    assert all(x["loss"] is None or math.isfinite(x["loss"]) for x in lines if "loss" in x)
    res = json.loads((out / "results.json").read_text())
    assert len(res["architectures"]) == 2
    state = CheckpointStore(out / "checkpoints").load()
    assert state["bad_steps"] == 2
    assert all(torch.isfinite(v).all() for v in state["supernet"].values() if v.is_floating_point())


def test_nan_policy_skip_with_four_supernets_counts_and_names_each_supernets_step(tmp_path, monkeypatch, capsys):
    # the quickstart's four supernets: a step is four weight_step calls; call 6 is step 2's second supernet
    _poison_steps(monkeypatch, {6, 16})
    out = tmp_path / "o"
    code, err = cli(capsys, "run", QUICK, *SMALL, "search.supernets=4", "search.nan_policy=skip", "--out", str(out))
    assert code == 0, err
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    skipped = [(x["epoch"], x["step"], x["supernet"], x["bad_steps"]) for x in lines if x.get("skipped")]
    assert skipped == [(1, 2, 1, 1), (2, 1, 3, 2)]
    state = CheckpointStore(out / "checkpoints").load()
    assert all(torch.isfinite(v).all() for v in state["supernet"].values() if v.is_floating_point())
    _poison_steps(monkeypatch, {1, 2})
    code, err = cli(capsys, "run", QUICK, *SMALL, "search.supernets=4", "search.nan_policy=skip",
                    "search.max_bad_steps=1", "--out", str(tmp_path / "stop"))
    assert code == 2
    assert "2 weight steps (of 4 supernets, each step one per supernet) had a non-finite loss" in err
    assert "epoch 1, step 1, supernet 1;" in err


def test_nan_policy_skip_stops_past_max_bad_steps(tmp_path, monkeypatch, capsys):
    _poison_steps(monkeypatch, {1, 3})
    code, err = cli(capsys, "run", QUICK, *SMALL, "search.nan_policy=skip", "search.max_bad_steps=1",
                    "--out", str(tmp_path / "o"))
    assert code == 2
    assert "2 weight steps had a non-finite loss (more than search.max_bad_steps=1)" in err
    assert "epoch 1, step 3" in err and "lower optim.lr" in err


@pytest.mark.filterwarnings("ignore:.*rank worst:RuntimeWarning")
def test_nan_path_losses_rank_worst_and_theta_stays_finite(tmp_path, monkeypatch, capsys):
    from automl.search import MultiEpsilonSearch

    real_losses = automl.train.loops.path_losses
    calls = {"n": 0, "nan_told": 0, "bad": 0}

    def losses(*a, **k):
        out = real_losses(*a, **k).clone()
        calls["n"] += 1
        out[calls["n"] % out.numel()] = float("nan") if calls["n"] % 2 else float("inf")
        if calls["n"] % 5 == 0:
            out[:] = float("nan")  # every path bad at once
        calls["bad"] += int((~torch.isfinite(out)).sum())
        return out

    real_tell = MultiEpsilonSearch.tell

    def tell(self, archs, losses_):
        calls["nan_told"] += int((~torch.isfinite(losses_)).any())
        real_tell(self, archs, losses_)
        assert torch.isfinite(self.theta).all()
        assert torch.allclose(self.theta.sum(-1), torch.ones(()).double().to(self.theta), atol=1e-6)

    monkeypatch.setattr(automl.train.loops, "path_losses", losses)
    monkeypatch.setattr(MultiEpsilonSearch, "tell", tell)
    res = Run(load_recipe(QUICK, SMALL + ["search.theta_epochs=2"]), tmp_path / "o", tty=False).execute()
    assert calls["nan_told"] == calls["n"] >= 6
    assert len(res["architectures"]) == 2 and all(a["params"] > 0 for a in res["architectures"])
    lines = (tmp_path / "o" / "metrics.jsonl").read_text()
    assert "NaN" not in lines and "Infinity" not in lines  # strict JSON
    # counted by the engine, reported once per θ epoch (how a GPU run, which never reads back per step, hears of them)
    reported = [json.loads(x) for x in lines.splitlines() if "nonfinite_path_losses" in x]
    assert [r["epoch"] for r in reported] == [1, 2]
    assert sum(r["nonfinite_path_losses"] for r in reported) == calls["bad"]
    assert "path losses were NaN or inf; they ranked worst" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:.*rank worst:RuntimeWarning")
def test_nan_path_losses_are_reported_once_across_a_resume(tmp_path, monkeypatch, die_after_save):
    # The engine's count of non-finite losses is in its checkpoint; the θ epochs after a resume report only
    # what is new, so the run's reports add up to what was told, epoch by epoch, with no epoch twice.
    real_losses = automl.train.loops.path_losses
    calls = {"n": 0, "bad": 0}

    def losses(*a, **k):
        out = real_losses(*a, **k).clone()
        calls["n"] += 1
        out[0] = float("nan")
        calls["bad"] += 1
        return out

    monkeypatch.setattr(automl.train.loops, "path_losses", losses)
    recipe = load_recipe(QUICK, SMALL + ["search.theta_epochs=3"])
    die_after_save(lambda state, n: state["stage"] == 1 and state["epoch"] == 2)  # after θ epoch 2
    with pytest.raises(KeyboardInterrupt):
        Run(recipe, tmp_path / "o", tty=False).execute()
    told_before = calls["bad"]
    Run(recipe, tmp_path / "o", resume=True, tty=False).execute()
    lines = (tmp_path / "o" / "metrics.jsonl").read_text().splitlines()
    reported = [json.loads(x) for x in lines if "nonfinite_path_losses" in x]
    assert [r["epoch"] for r in reported] == [1, 2, 3]
    assert sum(r["nonfinite_path_losses"] for r in reported) == calls["bad"] > told_before


# ---------------------------------------------------------------------------------------- write errors


def test_disk_full_while_checkpointing_keeps_previous(tmp_path, monkeypatch, capsys):
    import automl.train.checkpoint as ck

    real = ck.atomic_write_bytes
    calls = {"n": 0}

    def write(path, data):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(ck, "atomic_write_bytes", write)
    out = tmp_path / "o"
    code, err = cli(capsys, "run", QUICK, *SMALL, "--out", str(out))
    assert code == 2 and "No space left on device" in err and "previous checkpoint is intact" in err
    monkeypatch.undo()
    store = CheckpointStore(out / "checkpoints")
    first = store.load()
    assert (first["stage"], first["epoch"]) == (0, 1)  # the one written before the failure
    assert not list((out / "checkpoints").glob(".*.tmp"))
    code, err = cli(capsys, "run", QUICK, *SMALL, "--out", str(out), "--resume")
    assert code == 0, err
    assert (out / "results.json").is_file()


def _disk_full(*args, **kwargs):
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("where", ["export", "report"])
def test_disk_full_while_exporting_or_reporting_is_a_user_error_and_resumes(tmp_path, monkeypatch, capsys, where):
    """The exported network (after its retraining) or results.json cannot be written: one message naming
    what, exit 2, and --resume writes it once there is space."""
    import automl.pipeline.final_stages as fs
    import automl.pipeline.results as res

    if where == "export":
        monkeypatch.setattr(fs, "export_architecture", _disk_full)
    else:
        monkeypatch.setattr(res, "write_report", _disk_full)
    out = tmp_path / "o"
    code, err = cli(capsys, "run", QUICK, *SMALL, "--out", str(out))
    what = f"the export in {out / 'export'}" if where == "export" else f"the results in {out}"
    assert code == 2 and f"cannot write {what}" in err and "No space left on device" in err, err
    assert "--resume" in err and "internal error" not in err
    assert not (out / "results.json").exists()
    monkeypatch.undo()
    code, err = cli(capsys, "run", QUICK, *SMALL, "--out", str(out), "--resume")
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert len(results["architectures"]) == 2
    assert len(list((out / "export").glob("*/manifest.json"))) == 2


# ---------------------------------------------------------------------------------------- where a run writes


def test_export_dir_rule(tmp_path):
    base = "name: x\nspace: s.space\n"
    r = parse_recipe(base + "export: {dir: models}\n", "r.yaml", base_dir=tmp_path)
    assert r.export_dir is None and r.export_root(tmp_path / "run") == tmp_path / "run" / "models"
    r = parse_recipe(base + "export: {dir: a/../b}\n", "r.yaml", base_dir=tmp_path)
    assert r.export_root(tmp_path / "run") == tmp_path / "run" / "b"
    assert parse_recipe(base, "r.yaml").export_root(tmp_path / "run") == tmp_path / "run" / "export"
    absolute = str(tmp_path / "elsewhere")
    r = parse_recipe(base + f"export: {{dir: {absolute}}}\n", "r.yaml", base_dir=tmp_path)
    assert r.export_dir == Path(absolute) and r.export_root(tmp_path / "run") == Path(absolute)
    for bad in ("..", "../x", "a/../../x", "./../x"):
        with pytest.raises(RecipeError) as info:
            parse_recipe(base + f"export: {{dir: '{bad}'}}\n", "r.yaml", base_dir=tmp_path)
        assert info.value.key == "export.dir" and info.value.line == 3 and "absolute path" in str(info.value)
        with pytest.raises(RecipeError, match="override export.dir="):
            parse_recipe(base, "r.yaml", overrides=[f"export.dir={bad}"])


def _tree(root: Path, skip: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")
            if skip not in p.parents and p != skip}


def test_a_run_writes_only_inside_out(tmp_path, monkeypatch):
    """Default settings (export.dir null) and a relative export.dir: nothing appears outside --out."""
    (tmp_path / "recipes").mkdir()
    (tmp_path / "spaces").mkdir()
    shutil.copy(QUICK, tmp_path / "recipes" / "q.yaml")
    shutil.copy(ROOT / "spaces" / "digits.space", tmp_path / "spaces" / "digits.space")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "out"
    before = _tree(tmp_path, out)
    assert main(["run", str(tmp_path / "recipes" / "q.yaml"), *SMALL, "search.epsilons=[0.3]",
                 "--out", str(out)]) == 0
    assert _tree(tmp_path, out) == before
    assert (out / "export" / "eps-0.3" / "manifest.json").is_file()
    out2 = tmp_path / "out2"
    before = _tree(tmp_path, out2)
    assert main(["run", str(tmp_path / "recipes" / "q.yaml"), *SMALL, "search.epsilons=[0.3]",
                 "export.dir=models", "--out", str(out2)]) == 0
    assert _tree(tmp_path, out2) == before
    assert (out2 / "models" / "eps-0.3" / "manifest.json").is_file()
    assert not (out2 / "export").exists() and list(cwd.iterdir()) == []


def test_a_run_resumes_after_its_space_comments_changed_and_from_a_byte_wise_fingerprint(tmp_path, die_after_save,
                                                                                         monkeypatch):
    """The resume check counts what the space says: an edited comment (an upgrade's new header, CRLF line
    endings) continues the run. A run checkpointed when the space counted by its bytes resumes too."""
    from automl.recipe import Recipe

    (tmp_path / "recipes").mkdir()
    shutil.copytree(ROOT / "spaces", tmp_path / "spaces")
    recipe_path = shutil.copy(QUICK, tmp_path / "recipes")
    space = tmp_path / "spaces" / "digits.space"
    reference = Run(load_recipe(recipe_path, SMALL), tmp_path / "ref", tty=False).execute()
    for name, older in (("comments", False), ("bytes", True)):
        original = space.read_bytes()
        if older:  # as the previous automl recorded it
            byte_wise = Recipe.fingerprint
            monkeypatch.setattr(Recipe, "fingerprint", lambda self, space_bytes=False: byte_wise(self, True))
        die_after_save(lambda state, n: n == 2)
        with pytest.raises(KeyboardInterrupt):
            Run(load_recipe(recipe_path, SMALL), tmp_path / name, tty=False).execute()
        monkeypatch.undo()
        if not older:
            space.write_bytes(b"# a new header\r\n" + original.replace(b"\n", b"\r\n").replace(b"# ", b"#  "))
        resumed = Run(load_recipe(recipe_path, SMALL), tmp_path / name, resume=True, tty=False).execute()
        assert [a["choices"] for a in resumed["architectures"]] == [a["choices"] for a in reference["architectures"]]
        space.write_bytes(original)


def test_a_run_resumes_with_its_recipe_and_space_at_other_paths(tmp_path, die_after_save):
    """A preempted job requeued on a machine with the checkout elsewhere: the same recipe and space, at other
    paths, continue the run (and finish as the uninterrupted one would)."""
    def copy(where: str) -> str:
        (tmp_path / where / "recipes").mkdir(parents=True)
        shutil.copytree(ROOT / "spaces", tmp_path / where / "spaces")
        shutil.copy(QUICK, tmp_path / where / "recipes")
        return str(tmp_path / where / "recipes" / "quickstart.yaml")

    first, second = copy("node-a"), copy("node-b/checkout")
    die_after_save(lambda state, n: n == 2)
    with pytest.raises(KeyboardInterrupt):
        Run(load_recipe(first, SMALL), tmp_path / "o", tty=False).execute()
    resumed = Run(load_recipe(second, SMALL), tmp_path / "o", resume=True, tty=False).execute()
    reference = Run(load_recipe(first, SMALL), tmp_path / "ref", tty=False).execute()
    assert [a["choices"] for a in resumed["architectures"]] == [a["choices"] for a in reference["architectures"]]
    space = tmp_path / "node-b/checkout/spaces/digits.space"
    space.write_text(space.read_text().replace("ir_k5_e6", "ir_k3_e6"))  # another space: refused
    with pytest.raises(UserError, match="the recipe differs"):
        Run(load_recipe(second, SMALL), tmp_path / "o", resume=True, tty=False).execute()
