"""Review K: the θ phase, members and the weight phase's path samplers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import automl.train.loops
from automl.cli import main
from automl.compile import load_compiled
from automl.compile.compiler import compile_space
from automl.dsl import load_space
from automl.pipeline import Run
from automl.pipeline.members import Members
from automl.pipeline.search_stages import PROBE_PATHS, probe_paths
from automl.pipeline.state import RunState
from automl.recipe import load_recipe
from automl.train.sampling import fair_archs

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
# D_W 96 items = 3 weight steps per epoch, D_θ 3 steps; every step logged and checkpointed after every 2 steps
TINY = ["data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=1", "search.theta_epochs=2", "search.epsilons=[0,0.5]", "search.lam=2",
        "search.supernets=1", "retrain.epochs=0", "export.onnx=false", "search.log_every=1", "device=cpu",
        "checkpoint.every_steps=2"]


def _nonfinite_lines(out: Path) -> list[dict]:
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in x.items() if k != "seconds"} for x in lines if "nonfinite_path_losses" in x]


@pytest.mark.filterwarnings("ignore:.*rank worst:RuntimeWarning")  # the NaN loss this test makes
@pytest.mark.parametrize("method,phase", [("importance_sampling", "theta"), ("simultaneous", "simultaneous eps=0")])
def test_nonfinite_theta_losses_before_a_mid_epoch_checkpoint_are_still_reported_after_resume(
        tmp_path, monkeypatch, die_after_save, method, phase):
    """One θ loss is NaN in the θ phase's first step; the run dies after a checkpoint inside that epoch and
    is resumed: the epoch's report (log line and metrics.jsonl) counts that loss, as an uninterrupted run's
    does (the resumed searcher's count already held it, so the resumed run reported nothing)."""
    real, calls = automl.train.loops.path_losses, [0]

    def first_loss_nan(*args, **kwargs):
        calls[0] += 1
        out = real(*args, **kwargs)
        return torch.cat([out[:1] * float("nan"), out[1:]]) if calls[0] == 1 else out

    monkeypatch.setattr(automl.train.loops, "path_losses", first_loss_nan)
    overrides = TINY + [f"search.method={method}"]
    search_stage = 1 if method == "importance_sampling" else 0  # the stage that runs θ steps
    saved = die_after_save(lambda state, n: state["stage"] == search_stage and state["step"] > 0)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        Run(load_recipe(QUICK, overrides), out, tty=False).execute()
    assert saved[-1][0] == search_stage and saved[-1][1:] == (0, 2), saved  # epoch 0 + 2 steps: after the NaN
    assert calls[0] >= 1
    Run(load_recipe(QUICK, overrides), out, resume=True, tty=False).execute()
    assert _nonfinite_lines(out) == [{"phase": phase, "epoch": 1, "nonfinite_path_losses": 1}]


@pytest.fixture(scope="module")
def ofa_small():
    """ofa_mbv3 (elastic depth, width and resolution) at 32x32 with 10 classes: compiled in seconds."""
    return compile_space(load_space(str(ROOT / "spaces" / "ofa_mbv3.space"), {"classes": "10", "size": "32"}))


def test_the_weight_phase_probe_runs_every_choice_of_every_layer_with_elastic_depth(ofa_small):
    """The check after the weight phase's last epoch computes every choice of every layer on some path: a
    choice of a layer that a shallower depth drops counts only on a path that keeps the layer (45 of the 209
    choices of ofa_mbv3 were on no such path)."""
    paths = probe_paths(ofa_small).tolist()
    layers = [layer for layer in ofa_small.plan.layers if layer.decision is not None]
    assert any(layer.gate is not None for layer in layers)
    for layer in layers:
        run = {a[layer.decision] for a in paths if layer.active(a)}
        assert run == set(range(len(layer.choices))), layer.name
    for d, k in enumerate(ofa_small.num_choices):  # and every choice of every decision (depth too) is taken
        assert {a[d] for a in paths} == set(range(k)), ofa_small.decisions[d].name


def test_the_probe_of_a_space_without_elastic_depth_is_kmax_fair_paths():
    """Without elastic depth the probe is unchanged: Kmax fair paths from its own seeded generator."""
    space = load_compiled(str(ROOT / "spaces" / "digits.space"))
    expected = fair_archs(space.num_choices, max(space.num_choices), torch.Generator().manual_seed(PROBE_PATHS))
    assert torch.equal(probe_paths(space), expected)


DEPTH_SPACE = """space tiny_depth
input 1 x 8 x 8
classes 10
choices mb = ir_k3_e1, ir_k3_e3
network
  stem width 8
  stage s1 width 8 depth 1, 2 choose mb
  head width 16
end
"""


def test_a_layer_only_the_deeper_depth_keeps_is_probed_after_the_weight_phase(tmp_path, capsys, monkeypatch):
    """The weight phase's one step leaves finite weights on the second layer's ir_k3_e3 (which only depth 2
    keeps) that are too large to compute with: the check after the phase stops the run (exit 2) before the θ
    phase. Kmax = 2 fair paths alone put that choice only on the depth-1 path, which never runs it."""
    space = tmp_path / "tiny_depth.space"
    space.write_text(DEPTH_SPACE)
    real, thetas = automl.train.loops.weight_step, []

    def step_then_overflow(net, *args, **kwargs):
        out = real(net, *args, **kwargs)
        with torch.no_grad():
            for p in net.layers[1].ops[1].parameters():
                p.fill_(3e38)  # finite, but its products overflow
        return out

    monkeypatch.setattr(automl.train.loops, "weight_step", step_then_overflow)
    monkeypatch.setattr(automl.train.loops, "path_losses", lambda *a, **k: thetas.append(1))
    code = main(["run", QUICK, f"space={space}", "data.limit_train=96", "data.batch_size=64",
                 "data.theta_batch_size=64", "search.weight_epochs=1", "search.theta_epochs=1", "search.supernets=1",
                 "search.epsilons=[0]", "search.lam=2", "retrain.epochs=0", "export.onnx=false", "device=cpu",
                 "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "outputs became NaN or inf on a D_W batch" in err
    assert thetas == []


def test_members_whose_budgets_look_alike_in_short_get_distinct_log_names():
    """Logs name a member by its budget in short (``budget=80k``): two budgets equal to 4 digits would share a
    phase name in the log and metrics.jsonl, so those two are named by their exact values; others keep theirs."""
    search = load_recipe(QUICK, ["search.budgets=[1234567,1235000,80000,null]"]).search
    members = Members.of(search, sampled=False)
    tags = [members.tag(i, RunState("")) for i in range(members.n)]
    assert tags == ["budget=1,234,567", "budget=1,235,000", "budget=80k", "unconstrained"]
