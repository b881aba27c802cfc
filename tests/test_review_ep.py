"""Review EP: what `automl run` prints as a user reads it: members named in report.md's words and numbers, test
accuracies as the report and the summary table give them, one stream for the run's lines, warnings once and marked
as such, counts with their plurals, the simultaneous search's θ on its epoch lines, ranking lines that name their
seed, and a progress bar that reads like the epoch's line."""

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from rich.progress import TextColumn
from torch import nn

import automl.export.onnx as onnx_mod
from automl.errors import UserError
from automl.pipeline import Run
from automl.pipeline.members import Members
from automl.pipeline.search_stages import WeightTask, report_nonfinite
from automl.pipeline.state import RunState
from automl.recipe import load_recipe
from automl.report import format_accuracy
from automl.train import loops, progress

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
# D: 192 images = 6 retraining steps per epoch; one supernet, one epoch of each phase
TINY = ["threads=1", "device=cpu", "data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32",
        "data.test_batch_size=512", "search.weight_epochs=1", "search.theta_epochs=1", "search.lam=2",
        "search.supernets=1", "retrain.epochs=1", "export.onnx=false", "search.log_every=2"]


def _run(out: Path, overrides) -> dict:
    return Run(load_recipe(QUICK, TINY + overrides), out, tty=False).execute()


def _phases(out: Path) -> set[str]:
    return {json.loads(line)["phase"] for line in (out / "metrics.jsonl").read_text().splitlines()}


def _tags(overrides) -> list[str]:
    members = Members.of(load_recipe(QUICK, overrides).search, sampled=False)
    return [members.tag(i, RunState("")) for i in range(members.n)]


# ---- members: named in the logs as report.md names them ----------------------------------------------------------

def test_the_member_without_a_budget_is_unconstrained_in_the_logs_as_in_the_report():
    # was: "budget=none", where report.md and the summary table say "unconstrained"
    assert _tags(["search.budgets=[null,80k]"]) == ["unconstrained", "budget=80k"]


def test_a_latency_budget_is_named_with_its_unit():
    # was: "retrain budget=0.05", where report.md says "≤ 0.05 ms"
    assert _tags(["search.cost=latency", "search.budgets=[null,0.05,0.1]"]) == [
        "unconstrained", "budget=0.05 ms", "budget=0.1 ms"]
    assert _tags(["search.cost=macs", "search.budgets=[2M]"]) == ["budget=2M"]  # a count has no unit


def test_budgets_alike_in_short_are_given_in_full_as_the_report_gives_them():
    # was: "budget=1234567" where the report says "≤ 1,234,567"
    assert _tags(["search.budgets=[1234567,1235000,80000]"]) == ["budget=1,234,567", "budget=1,235,000",
                                                                "budget=80k"]


def test_an_epsilon_is_written_as_the_report_and_its_export_folder_write_it():
    # was: "retrain eps=0.0" beside the report's "ε=0" and the folder export/eps-0
    assert _tags(["search.budgets=null", "search.epsilons=[0,0.5,2]"]) == ["eps=0", "eps=0.5", "eps=2"]


# ---- a real run's lines --------------------------------------------------------------------------------------------

def test_a_runs_lines_use_the_reports_words_and_numbers(tmp_path, capsys, caplog, monkeypatch):
    """Two members of one network (the second budget is the largest network's size), ONNX on, the second
    member's ONNX export failing."""
    calls, real_export = [], onnx_mod._torch_export

    def torch_export(model, example, path, opset):
        calls.append(path)
        if len(calls) == 2:
            raise RuntimeError("exporter bug")
        return real_export(model, example, path, opset)
    monkeypatch.setattr(onnx_mod, "_torch_export", torch_export)
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        res = _run(out, ["search.epsilons=null", "search.budgets=[null,178170]", "export.onnx=true"])
    printed = capsys.readouterr().out
    first = res["architectures"][0]
    assert res["architectures"][1]["same_network_as"] == 0  # the premise
    # the test accuracy as report.md and the summary table give it (was "test accuracy 0.6583")
    said = f"retrain unconstrained: test accuracy {format_accuracy(first['test_accuracy'])} (loss "
    assert said in printed, printed
    assert format_accuracy(first["test_accuracy"]) in (out / "report.md").read_text()
    assert ("retrain budget=178.2k: the same network as the unconstrained member, which was retrained before: not "
            f"retrained again; its weights and test accuracy {format_accuracy(first['test_accuracy'])} are this "
            "member's too") in printed, printed
    assert "budget=none" not in printed and "none" not in " ".join(_phases(out))
    assert "retrain unconstrained" in _phases(out)
    # what was exported is said with the run's other lines, on standard output (was the log's stream, stderr)
    assert printed.count("exported digits (") == 2, printed
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and warned[0].startswith("warning: ") and "the ONNX export failed" in warned[0], warned


def test_a_simultaneous_searchs_epoch_line_shows_its_theta_as_the_theta_phases_does(tmp_path, capsys):
    # was: "simultaneous budget=20k epoch 1/1: loss 2.5606 acc 0.095 lr 0.005111", the adapted ε nowhere on screen
    res = _run(tmp_path / "run", ["search.method=simultaneous", "search.epsilons=null", "search.budgets=[null,20k]",
                                  "retrain.epochs=0"])
    printed = capsys.readouterr().out
    line = next(ln for ln in printed.splitlines() if ln.startswith("simultaneous budget=20k epoch 1/1: "))
    assert " max θ " in line and f" ε {res['architectures'][1]['epsilon']:.3g}" in line, line
    assert "unconstrained, the supernet's weights: test accuracy " in printed, printed


def test_the_random_baselines_untrained_export_is_said_once_not_once_per_member(tmp_path, capsys):
    _run(tmp_path / "run", ["search.method=random", "search.budgets=null", "search.epsilons=[0,0.5,1]",
                            "retrain.epochs=0"])
    warnings = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "every member is exported with untrained weights" in warnings[0], warnings


def test_ranking_lines_name_their_seed_and_do_not_repeat_the_supernets_scores(tmp_path, capsys):
    # was: "ranking 1/3: 13,554 params, supernet loss 2.5121 (...)" twice, once per seed, naming neither
    _run(tmp_path / "run", ["search.epsilons=[0]", "retrain.epochs=0", "ranking.archs=3", "ranking.seeds=2",
                            "ranking.retrain_epochs=1", "ranking.bn_batches=1"])
    printed = capsys.readouterr().out.splitlines()
    res = json.loads((tmp_path / "run" / "results.json").read_text())["ranking"]["archs"][0]
    first, second = ([ln for ln in printed if ln.startswith(f"ranking 1/3 seed {s}: ")] for s in (0, 1))
    assert len(first) == 2 and len(second) == 2, printed  # the retraining's test line and its summary
    assert "supernet loss" in first[1] and "supernet loss" not in second[1], (first, second)
    runs = res["retrainings"]
    acc = sum(r["test_accuracy"] for r in runs) / 2
    assert second[1].endswith(f"mean of the 2 seeds: test loss {sum(r['test_loss'] for r in runs) / 2:.4f}, "
                              f"accuracy {format_accuracy(acc)}"), second


# ---- counts --------------------------------------------------------------------------------------------------------

def test_one_nonfinite_path_loss_is_one(capsys):
    ctx = SimpleNamespace(reporter=progress.Reporter(None, tty=False))
    method = SimpleNamespace(nonfinite=lambda searcher: 1)
    assert report_nonfinite(ctx, method, None, "theta", 0, 0) == 1
    assert "theta epoch 1: 1 path loss was NaN or inf; it ranked worst" in capsys.readouterr().out
    method = SimpleNamespace(nonfinite=lambda searcher: 3)
    report_nonfinite(ctx, method, None, "theta", 1, 1)
    assert "theta epoch 2: 2 path losses were NaN or inf; they ranked worst" in capsys.readouterr().out


def test_one_nonfinite_tensor_is_one_tensor():
    net = nn.Linear(2, 2)
    with torch.no_grad():
        net.weight[0, 0] = float("nan")
    task = SimpleNamespace(net=net, epochs=3, phase="weights", grad_clip=None, ctx=None)
    with pytest.raises(UserError, match=r"weights became NaN or inf \(1 tensor, e\.g\. weight\)"):
        WeightTask._check_weights(task, 0)


def test_one_copy_is_one_copy(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (16, 1 << 30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    with pytest.raises(UserError, match=r"for its weights \(1 copy;"):
        loops.check_fits_on_gpu(nn.Linear(8, 8), torch.device("cuda", 0), 1)


# ---- the progress bar ----------------------------------------------------------------------------------------------

def test_the_bar_reads_like_the_epochs_line(monkeypatch):
    # was: "weights 2/3 ━━━ 20/50 loss 2.66 acc 0.09844": two bare fractions, and figures as the line gives none
    made = []

    class Recorded(progress.Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, auto_refresh=False, **kwargs)
            made.append(self)

    monkeypatch.setattr(progress, "Progress", Recorded)
    with progress.Reporter(None, tty=True).epoch("retrain unconstrained", 1, 3, 50) as update:
        update(20, loss=2.65991, acc=0.09844)
        bar = made[0]
        task = bar.tasks[0]
        shown = " ".join(str(c.render(task)) for c in bar.columns if isinstance(c, TextColumn))
    assert shown == "retrain unconstrained epoch 2/3 20/50 steps loss 2.6599 acc 0.098", shown
