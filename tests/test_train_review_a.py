"""The training code's review fixes: BatchNorm recalibration on elastic-width paths, the sandwich rule's
largest and smallest paths on every shipped space, the weight phase's epoch loss with skipped steps."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import automl.train.loops
from automl.cli import main
from automl.compile import load_compiled
from automl.pipeline.search_stages import path_sampler
from automl.train.loops import recalibrate_bn
from automl.train.sampling import uniform_archs

ROOT = Path(__file__).resolve().parents[1]
SPACES = sorted((ROOT / "spaces").glob("*.space"))
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
OFA_SMALL = {"classes": "4", "size": "16", "width": "0.25", "wide": "2", "head": "32"}


@pytest.fixture(scope="module")
def ofa():
    return load_compiled(str(ROOT / "spaces" / "ofa_mbv3.space"), OFA_SMALL)


def _arch(cs, pick) -> torch.Tensor:
    """``pick(name, choices)`` -> the index chosen for every decision."""
    return torch.tensor([pick(d.name, d.choices) for d in cs.decisions])


def _sandwich(cs, n: int = 5) -> torch.Tensor:
    ctx = SimpleNamespace(spaces=SimpleNamespace(search=cs), sampler=torch.Generator().manual_seed(0))
    return path_sampler(ctx, SimpleNamespace(weight_sampling="sandwich"), n)()


# ---- BatchNorm recalibration on a path that runs layers at smaller widths ---------------------------

def _running_stats(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: b for n, b in net.named_buffers() if "running" in n}


def _assert_same_stats(got: torch.nn.Module, want: torch.nn.Module) -> None:
    got, want = _running_stats(got), _running_stats(want)
    assert list(got) == list(want) and got
    for n in got:
        assert torch.allclose(got[n], want[n], rtol=0, atol=1e-6), (n, (got[n] - want[n]).abs().max())


def test_recalibrating_a_sliced_path_gives_the_standalone_networks_statistics(ofa):
    # the narrower width of every stage, the deepest and largest ops, the data's size (path_network does not
    # resize)
    arch = _arch(ofa, lambda name, ch: 0 if name.endswith("_width") else len(ch) - 1)
    torch.manual_seed(0)
    net = ofa.build_supernet()
    assert net.slices(arch)
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(8, *ofa.input_shape, generator=g) * 2 + 1 for _ in range(4)]
    alone = net.path_network(arch)  # copies of the sliced weights: ordinary modules
    recalibrate_bn(alone, alone, batches)
    recalibrate_bn(net, lambda x: net(x, arch), batches)
    _assert_same_stats(net.path_network(arch), alone)
    # after recalibration the momentum is the master's again: one training step moves both alike
    alone.train()
    net.train()
    with torch.no_grad():
        alone(batches[0])
        net(batches[0], arch)
    _assert_same_stats(net.path_network(arch), alone)


# ---- the sandwich rule's largest and smallest paths ---------------------------------------------------

@pytest.mark.parametrize("path", [p for p in SPACES if p.stem != "ofa_mbv3"], ids=lambda p: p.stem)
def test_sandwich_paths_of_the_spaces_without_elastic_decisions_are_the_additive_tables_extremes(path):
    """Without elastic depth, width or resolution the params table is exact and additive: the largest and the
    smallest paths are its costliest and cheapest choice of every decision (a cell's op decision never
    `none` for the smallest: its cells would output zeros), and the uniform rows follow from the same
    generator, so a run samples the same paths as before."""
    cs = load_compiled(str(path))
    t = cs.cost_table
    assert not t.gates and not t.context_decisions and cs.resolution_dec is None
    costs, ks = t.costs("params"), cs.num_choices
    largest = torch.stack([costs[d, :k].argmax() for d, k in enumerate(ks)])
    low = costs.clone()
    for template in getattr(cs.plan, "templates", ()):
        for node in template.nodes:
            for d in node.op_decisions:
                low[d, [j for j, c in enumerate(cs.decisions[d].choices) if c == "none"]] = float("inf")
    smallest = torch.stack([low[d, :k].argmin() for d, k in enumerate(ks)])
    rest = uniform_archs(ks, 3, torch.Generator().manual_seed(0))
    assert torch.equal(_sandwich(cs), torch.cat([largest[None], smallest[None], rest]))


def test_sandwich_paths_of_ofa_mbv3_are_the_largest_and_smallest_networks(ofa):
    """BigNAS: the largest child has the widest width, the deepest depth, the largest kernel and expansion and
    the largest input size; the smallest the least of each (every decision here lists them in that order)."""
    paths = _sandwich(ofa)
    t = ofa.cost_table
    assert ofa.decisions[ofa.resolution_dec].choices[-1] == f"r{max(ofa.resolutions)}"
    assert ofa.decisions[1].choices[-1] == "d4" and ofa.decisions[2].choices[-1] == "ir_k7_e6"
    assert paths[0].tolist() == _arch(ofa, lambda name, ch: len(ch) - 1).tolist()
    assert paths[1].tolist() == [0] * len(ofa.decisions)
    assert t.total(paths[0], "params") == t.max_total("params")
    assert t.total(paths[1], "params") == t.min_total("params")


# ---- the weight phase's epoch loss with skipped steps ------------------------------------------------

def test_epoch_loss_with_a_skipped_step_is_the_mean_over_the_applied_steps(tmp_path, monkeypatch, capsys):
    real = automl.train.loops.weight_step
    calls = {"n": 0}

    def step(net, x, *a, **k):  # the second weight step sees a NaN input: skipped
        calls["n"] += 1
        return real(net, torch.full_like(x, float("nan")) if calls["n"] == 2 else x, *a, **k)

    monkeypatch.setattr(automl.train.loops, "weight_step", step)
    out = tmp_path / "o"
    code = main(["run", QUICK, "search.supernets=1", "data.limit_train=192", "data.batch_size=32",
                 "data.theta_batch_size=32", "data.test_batch_size=512", "search.weight_epochs=1",
                 "search.theta_epochs=1", "search.epsilons=[0]", "search.lam=2", "retrain.epochs=0",
                 "export.onnx=false", "search.log_every=1", "search.nan_policy=skip", "device=cpu", "threads=1",
                 "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    weights = [x for x in lines if x.get("phase") == "weights"]
    assert [x["step"] for x in weights if x.get("skipped")] == [2]
    logged = [x["loss"] for x in weights if "loss" in x][-1]  # the epoch's mean so far, at its last step
    shown = re.search(r"weights epoch 1/1: loss (\S+)", printed.out + printed.err).group(1)
    assert shown == f"{logged:.4f}"


def test_the_weight_phases_fair_paths_balance_a_gated_layer_over_the_paths_that_keep_it(ofa):
    """search.weight_sampling: fair on a space of elastic depth: a layer a shallower depth drops trains its
    choices as equally as possible over the paths that keep it (the cost table's gates reach fair_archs)."""
    gates = ofa.cost_table.gates
    assert gates
    n = 2 * max(ofa.num_choices)
    ctx = SimpleNamespace(spaces=SimpleNamespace(search=ofa), sampler=torch.Generator().manual_seed(0))
    paths = path_sampler(ctx, SimpleNamespace(weight_sampling="fair"), n)()
    for d, (depth, kept) in gates.items():
        keep = torch.tensor([bool(kept[int(v)]) for v in paths[:, depth]])
        counts = torch.bincount(paths[keep, d], minlength=ofa.num_choices[d])
        assert int(counts.max() - counts.min()) <= 1, (ofa.decisions[d].name, counts.tolist())
