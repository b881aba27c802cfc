"""Review by the lead (session 38): the exact knapsack's inputs, the budgets' per-tell cost of the mode, the
warm-up rate's product with the weight decay, cost tables read as the other user files, and one threads warning."""
import json
import math
from pathlib import Path

import pytest
import torch
from test_edge_fixes import _fake_time
from test_review_ez import DIGITS, SMALL

import automl.profile as profile
from automl._io import MAX_TEXT_BYTES
from automl.cli import main
from automl.compile import load_compiled
from automl.errors import RecipeError, UserError
from automl.profile import read_cost_table, threads_warning
from automl.recipe import load_recipe
from automl.search import ContextCosts
from automl.search._budgets import BudgetTargets
from automl.search._knapsack import best_within_budget

COSTS = torch.tensor([[1.0, 2.0], [3.0, 4.0]])


def test_a_budget_beyond_float_is_inf_or_nothing():
    """An int too large for a float fits every architecture (positive) or none (negative); it was an OverflowError."""
    assert best_within_budget(COSTS, COSTS, 10 ** 400).tolist() == best_within_budget(COSTS, COSTS, math.inf).tolist()
    assert best_within_budget(COSTS, COSTS, -10 ** 400) is None


@pytest.mark.parametrize("mask, message", [
    ([[1, 0.5], [1, 1]], r"mask must be True/False \(or 0/1\).*\[0\.5\]"),
    ([[1, 1]], r"mask must be the shape of the costs \(2, 2\)"),
    ([[0, 0], [1, 1]], r"mask has a decision with no choice \(rows \[0\] all False\)"),
])
def test_a_mask_is_checked_as_everywhere(mask, message):
    """0.5 was read as True (a choice that exists); the mask is checked as the searchers check theirs."""
    with pytest.raises(ValueError, match=message):
        best_within_budget(-COSTS, COSTS, 5.0, mask)


def test_an_integer_mask_gives_the_bool_masks_answer():
    ints = best_within_budget(-COSTS, COSTS, 5.0, [[0, 1], [1, 1]])
    bools = best_within_budget(-COSTS, COSTS, 5.0, torch.tensor([[False, True], [True, True]]))
    assert ints.tolist() == bools.tolist() == [1, 0]


def test_the_mode_cost_of_context_costs_skips_the_users_check(monkeypatch):
    """mode_cost reads the searcher's own argmax rows: it takes the unchecked path, and gives the checked totals."""
    mask = torch.ones(2, 2, dtype=torch.bool)
    tables = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]])
    costs = ContextCosts([0], tables, torch.tensor([0.5, 1.5]), mask)
    theta = torch.tensor([[[0.9, 0.1], [0.2, 0.8]], [[0.3, 0.7], [0.6, 0.4]]])
    targets = BudgetTargets.__new__(BudgetTargets)
    targets._costs = costs
    expected = costs.totals(theta.argmax(-1))
    calls = []
    monkeypatch.setattr(ContextCosts, "_checked_arch", lambda self, arch: calls.append(arch) or arch)
    assert torch.equal(BudgetTargets.mode_cost(targets, theta), expected)
    assert not calls


# ------------------------------------------------------------------------------ recipes: the warm-up's rate too

def test_a_warmup_rate_times_weight_decay_of_1_is_refused_naming_warmup_lr():
    """lr x weight_decay below 1 was checked, but a larger warm-up rate took the whole weight away in the warm-up."""
    quick = str(Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml")
    with pytest.raises(RecipeError) as info:
        load_recipe(quick, ["optim.warmup_lr=50", "optim.warmup_epochs=1", "optim.weight_decay=0.5"])
    assert info.value.key == "optim.weight_decay" and "optim.warmup_lr (50) x optim.weight_decay (0.5) is 25" \
        in str(info.value), str(info.value)
    # without warm-up epochs the warm-up rate is not used: lr's product decides
    assert load_recipe(quick, ["optim.warmup_lr=50", "optim.weight_decay=0.5"]).optim.weight_decay == 0.5


# ------------------------------------------------------------------------------ cost tables read as user files

@pytest.fixture
def digits_table(tmp_path, monkeypatch):
    """A real (fake-clocked) table of the digits space, its text, and the compiled space."""
    monkeypatch.setattr(profile, "time_module", _fake_time)
    out = tmp_path / "t.json"
    assert main(["space", "profile", DIGITS, *SMALL, "--threads", "1", "--out", str(out)]) == 0
    return out, out.read_text(encoding="utf-8"), load_compiled(DIGITS)


def test_a_cost_table_with_a_byte_order_mark_is_read(digits_table):
    out, text, cs = digits_table
    out.write_text("\ufeff" + text, encoding="utf-8")  # a Windows editor's "UTF-8 with BOM"
    assert read_cost_table(out, cs)["decisions"] == json.loads(text)["decisions"]


def test_a_key_given_twice_in_a_cost_table_is_refused_at_its_line(digits_table):
    out, text, cs = digits_table
    out.write_text(text.replace('"metric": "latency",', '"metric": "latency",\n  "metric": "latency",', 1))
    assert text.count('"metric"') == 1
    with pytest.raises(UserError) as info:
        read_cost_table(out, cs)
    line = [i for i, text in enumerate(out.read_text().splitlines(), 1) if '"metric"' in text][1]  # the second
    assert f"{out}:{line}: key \"metric\" is given twice in one JSON object" in str(info.value), str(info.value)


def test_a_cost_table_past_the_size_of_any_is_refused_unread(tmp_path):
    """/dev/zero (or a wrong file of gigabytes) was read whole: a MemoryError traceback."""
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(MAX_TEXT_BYTES + 10)  # sparse: no disk
    with pytest.raises(UserError) as info:
        read_cost_table(big, load_compiled(DIGITS))
    assert "larger than 16 MiB, which no cost table is" in str(info.value), str(info.value)


def test_threads_warning_is_said_alike_by_profile_and_the_benchmarks():
    assert threads_warning(2, 2, "so x") is None
    w = threads_warning(3, 2, "so the timings will not reflect the machine")
    assert w == ("warning: --threads 3 is more than the 2 CPUs this process can use (its CPU affinity and any cgroup "
                 "CPU quota): the threads take turns on them, so the timings will not reflect the machine; use "
                 "--threads 2 or fewer here")
    assert threads_warning(2, 1, "so x", "torch's default of 2 threads").startswith(
        "warning: torch's default of 2 threads is more than the 1 CPU this")
