"""Review ES: what ``automl run`` prints. Where a stopped run resumes, in the log's words (``weights epoch 2/2, after
step 2``, ``retrain budget=80k``), not a stage key and a 0-based epoch (``weights, epoch 1 + 2 steps``,
``retrain/1``); the threads line, one clause in one pair of parentheses; the summary table in a log (no trailing
spaces; the search time as report.md's column says it); the θ line's note (ε to 3 significant digits, one member's
numbers without a list, max θ explained once)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

import automl.train.loops
from automl.errors import Stopped
from automl.pipeline import Run
from automl.pipeline.plan import build_plan
from automl.pipeline.setup import load_spaces, recipe_costs
from automl.pipeline.state import RunState
from automl.recipe import load_recipe
from automl.report import summary_table, write_report
from automl.search import MultiEpsilonSearch, SearchProblem, get_searcher
from automl.train import threads as th

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
TINY = ["data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=2", "search.theta_epochs=2", "search.budgets=[null,80k]", "search.lam=2",
        "search.supernets=1", "retrain.epochs=2", "export.onnx=false", "threads=1", "device=cpu"]


# ------------------------------------------------------------------------------- 1. where a run resumes


def _plan(tmp_path, overrides):
    from automl.pipeline.run import resume_position  # the function under test (absent before the fix)
    r = load_recipe(QUICK, TINY + overrides)
    spaces = load_spaces(r)
    plan = build_plan(r, tmp_path, get_searcher(r.search.method), spaces, recipe_costs(r, spaces.search),
                      torch.device("cpu"))
    state = RunState("x")
    return plan, lambda stage, epoch=0, step=0: resume_position(plan, state, stage, epoch, step)


def test_a_resume_position_is_said_as_the_log_says_its_epochs_and_members(tmp_path):
    """Was "weights, epoch 1 + 2 steps" (a 0-based epoch beside the log's "weights epoch 2/2"), "retrain/1",
    "ranking/0/1"."""
    plan, at = _plan(tmp_path, ["search.method=separate", "ranking.archs=3", "ranking.seeds=2"])
    keys = plan.keys
    assert at(keys.index("weights"), 1, 2) == "weights epoch 2/2, after step 2"
    assert at(keys.index("weights"), 1) == "weights epoch 2/2"
    assert at(keys.index("theta/1"), 0, 3) == "theta budget=80k epoch 1/2, after step 3"
    assert at(keys.index("retrain/0"), 0, 4) == "retrain unconstrained epoch 1/2, after step 4"
    assert at(keys.index("retrain/1")) == "retrain budget=80k epoch 1/2"
    # the ranking's phases: "ranking 1/3 seed 0", "... seed 1" (its epochs: the retrain section's)
    assert at(keys.index("ranking/0/1"), 0, 1).startswith("ranking 1/3 seed 1 epoch 1/")
    assert at(keys.index("report")) == "report"
    for stage in range(len(keys)):  # no stage key, no 0-based "epoch 0", no "+ N steps"
        said = at(stage, 0, 1)
        assert not any(key in said for key in keys if "/" in key), said
        assert "epoch 0" not in said and " + " not in said, said


def test_a_stopped_run_and_its_resume_name_the_member_and_the_epoch_as_the_log_does(tmp_path, monkeypatch, capfd):
    out = tmp_path / "run"
    real, calls = automl.train.loops.train_step, []

    def train_step(*a, **k):  # a SIGTERM during the unconstrained member's retraining, its 3rd step
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    monkeypatch.setattr(automl.train.loops, "train_step", train_step)
    with pytest.raises(Stopped):
        Run(load_recipe(QUICK, TINY), out, tty=False).execute()
    printed = capfd.readouterr().out
    assert "retrain unconstrained epoch 1/2" not in printed.split("stopped by")[0]  # the epoch was not done
    assert "resumes at retrain unconstrained epoch 1/2, after step 3. Continue with: " in printed, printed
    monkeypatch.setattr(automl.train.loops, "train_step", real)
    Run(load_recipe(QUICK, TINY), out, resume=True, tty=False).execute()
    printed = capfd.readouterr().out
    assert f"resuming {out} at retrain unconstrained epoch 1/2, after step 3\n" in printed, printed
    assert "retrain unconstrained epoch 1/2: loss" in printed  # the log's own line for that epoch


# ------------------------------------------------------------------------------- 2. the threads line


def _one_clause(line: str) -> None:
    """``threads: N (REASON)``: one pair of parentheses, at the end, and "threads:" said once."""
    assert line.count("(") == 1 and line.count(")") == 1 and line.endswith(")"), line
    assert line.count("threads:") == 1, line


def test_the_threads_line_is_one_clause_for_every_source(tmp_path):
    """Was "threads: 1 (auto: ... too small to gain from more threads (2 cores))", "threads: 1 (the count this run
    started with (kept on --resume: ...))" and "threads: 1 (threads: 1 in the recipe)"."""
    auto = th.resolve_threads("auto", work=184_320, environ={}, measure=False)
    _one_clause(auto.line())
    assert auto.line().startswith("threads: 1 (auto: a step of 0.18 M activations is too small"), auto.line()
    n, reason = th.choose_threads(50_000_000, 4, 1.0, 2, quota=3, quota_busy=0.5)
    big = th.ThreadChoice(n, "auto", reason)
    _one_clause(big.line())
    recipe = th.resolve_threads(1, environ={"OMP_NUM_THREADS": "3"}, measure=False)
    _one_clause(recipe.line())
    assert recipe.line() == "threads: 1 (from the recipe; OMP_NUM_THREADS=3 ignored)", recipe.line()
    th.save_choice(tmp_path, th.ThreadChoice(2, "auto", "x"))
    kept = th.resolve_threads("auto", out_dir=tmp_path, resume=True, environ={}, measure=False)
    assert kept.threads == 2 and "kept on --resume" in kept.line()
    _one_clause(kept.line())
    lost = th.resolve_threads("auto", out_dir=tmp_path / "none", resume=True, environ={}, measure=False,
                              recorded=lambda: (2, "its checkpoint in DIR/checkpoints"))
    _one_clause(lost.line())


# ------------------------------------------------------------------------------- 3. the summary table


def _member(cost, budget=None, eps=0.0):
    return {"epsilon": eps, "budget": budget, "choices": [str(cost)], "params": int(cost * 1e5), "cost": cost * 1e5,
            "test_accuracy": 0.5, "weights": "retrained", "macs": 1e6, "latency_ms": None, "int8": None,
            "onnx": f"export/m{cost}/model.onnx"}


def _results(method):
    phases = {"weights": 4.3, "theta": 7.0, "retrain": 1.6}
    # two members of one architecture: the table's caption says so (a second line, justified by rich)
    archs = [_member(1.0), _member(1.0, budget=2e5, eps=0.5), _member(0.5, budget=6e4, eps=0.0578)]
    return {"recipe": "quickstart", "method": method, "search_seconds": 11.3, "phase_seconds": phases,
            "cost_metric": "params", "supernet": None, "architectures": archs}


class _Reporter:
    enabled = True

    def info(self, text):
        print(text)


def test_the_summary_table_in_a_log_has_no_trailing_spaces(tmp_path, capsys):
    """rich pads its centred title and its caption to the table's width; a log kept those spaces."""
    write_report(tmp_path, _results("separate"), _Reporter())
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert any(ln.lstrip().startswith("quickstart: separate, search") for ln in lines), printed
    assert any("one network" in ln or "same architecture" in ln for ln in lines), printed  # the caption
    assert [ln for ln in lines if ln != ln.rstrip()] == [], printed


@pytest.mark.parametrize("method, said", [("separate", "search 11.3 s in all (weights shared, a θ phase each)"),
                                          ("simultaneous", "search 11.3 s in all (a search each)"),
                                          ("random", "search 11.3 s in all (drawing only)"),
                                          ("importance_sampling", "search 11.3 s")])
def test_the_summary_tables_title_says_the_search_time_as_report_mds_column_does(method, said):
    title = summary_table(_results(method)).title
    assert title.endswith(said), title
    if method == "importance_sampling":  # one search for all: its time alone
        assert "in all" not in title and "shared" not in title, title


# ------------------------------------------------------------------------------- 4. the θ line's note


class _Engine:
    """What the note reads of an engine: its members' θ and (with budgets) ε."""

    def __init__(self, epsilons, theta):
        self.budgets, self.epsilons, self.theta = [1.0] * len(epsilons), epsilons, torch.tensor(theta)


@pytest.mark.parametrize("method", ["importance_sampling", "separate", "simultaneous"])
def test_the_theta_note_gives_epsilon_to_3_significant_digits_and_one_member_without_a_list(method):
    """Was " max θ [0.6] ε [0.058]" for separate's member of ε 0.0578 (report.md: 0.0578)."""
    note = get_searcher(method).epoch_note(_Engine([0.05781], [[[0.3, 0.7], [0.5, 0.5]]]))
    assert note == " max θ 0.6 ε 0.0578", note
    both = get_searcher(method).epoch_note(_Engine([0.0, 0.01234], [[[0.3, 0.7]], [[0.9, 0.1]]]))
    assert both == " max θ [0.7, 0.9] ε [0, 0.0123]", both


def _problem(members):
    costs = torch.tensor([[1.0, 2.0, 0.0], [1.0, 2.0, 3.0]])
    return SearchProblem([2, 3], costs, members, None, [None] * len(members), 2, 0, options={"theta_min": 0.0})


def test_max_theta_is_explained_once_on_the_first_theta_line_of_a_run():
    method = get_searcher("separate")
    first, second = method.create(_problem([0])), method.create(_problem([1]))
    notes = [method.epoch_note(first), method.epoch_note(first), method.epoch_note(second)]
    assert "(max θ: θ's highest choice probability, mean over the decisions" in notes[0], notes
    assert "(" not in notes[1] and "(" not in notes[2], notes  # once: not each epoch, not each member
    assert isinstance(first, MultiEpsilonSearch)
