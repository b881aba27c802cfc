"""What a user ships from a search, on every shipped space: the standalone network with the supernet's weights on
its path computes what the path computes (skipped layers, elastic depth, width and resolution, cells' `none` edges),
its parameter count is the path's (and, for chain spaces, the cost table's), its state_dict round-trips, and its
BatchNorm statistics, recalibrated, are the ones the path gets recalibrated on the same batches."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from automl.compile import load_compiled
from automl.export import count_params, inherit_weights
from automl.nn import block_map
from automl.nn.elastic import prefix_index
from automl.nn.resize import resize_input
from automl.train.loops import recalibrate_bn

ROOT = Path(__file__).resolve().parents[1]

# small enough that a space's checks take about a second on one core
SMALL = {
    "digits": {},
    "proxylessnas": {"size": "16", "width": "0.25", "head": "32", "classes": "10"},
    "fbnet": {"size": "16", "width": "0.25", "head": "32", "classes": "10"},
    "mobilenetv3": {"size": "16", "width": "0.25", "head": "32", "classes": "10"},
    "ofa_mbv3": {"size": "28", "width": "0.25", "wide": "2", "head": "32", "classes": "10"},
    "enas_micro": {"size": "8", "channels": "4", "normal_cells": "1"},
    "darts": {"size": "8", "channels": "4", "normal_cells": "1"},
    "nasbench201": {"size": "8", "channels": "4", "cells": "1"},
}
SPACES = sorted(p.stem for p in (ROOT / "spaces").glob("*.space"))

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _trained_looking(net: torch.nn.Module, seed: int) -> None:
    """Every weight and BN statistic moved away from its initialisation, so that any tensor copied to the wrong
    place, or not copied, shows in the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.add_(torch.randn(t.shape, generator=g) * 0.1)


def _archs(cs) -> list[torch.Tensor]:
    """The first choice of every decision (the smallest width, depth and resolution; cells: `none` where it is
    an op), the last (skip where a layer may skip; the largest width, depth and resolution), and a random one."""
    g = torch.Generator().manual_seed(len(cs.decisions))
    return [torch.zeros(len(cs.decisions), dtype=torch.long),
            torch.tensor([len(d.choices) - 1 for d in cs.decisions]),
            torch.tensor([int(torch.randint(len(d.choices), (1,), generator=g)) for d in cs.decisions])]


def _check_the_extremes_are_there(cs) -> None:
    """The architectures of :func:`_archs` reach `none` edges, the smallest depth and resolution, and skips."""
    names = cs.decode(torch.zeros(len(cs.decisions), dtype=torch.long))
    if cs.name in ("darts", "nasbench201"):
        assert "none" in names
    if cs.name == "ofa_mbv3":
        assert {"d2", "r16"} <= set(names)
    last = cs.decode(torch.tensor([len(d.choices) - 1 for d in cs.decisions]))
    if cs.name in ("digits", "proxylessnas", "mobilenetv3", "fbnet"):
        assert "skip" in last


@pytest.mark.parametrize("name", SPACES)
def test_shipped_network_is_the_supernet_path(name):
    cs = load_compiled(str(ROOT / "spaces" / f"{name}.space"), SMALL[name])
    _check_the_extremes_are_there(cs)
    supernet = cs.build_supernet()
    _trained_looking(supernet, 0)
    supernet.eval()
    x = torch.randn(3, *cs.input_shape, generator=torch.Generator().manual_seed(1))
    for arch in _archs(cs):
        what = f"{name} {cs.decode(arch)}"
        shape = tuple(int(v) for v in cs.arch_input_shape(arch))
        net = cs.build_standalone(arch)
        inherit_weights(supernet, arch, net, shape)
        net.eval()
        small = resize_input(x, cs.resolution(arch))  # elastic resolution: the data at the chosen size
        with torch.no_grad():
            want, got = supernet(x, arch), net(small)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=what)

        # parameters: the path's, and (chain spaces: exact; cells: an approximation, docs/space-language.md) the
        # cost table's
        assert count_params(net) == supernet.path_params(arch), what
        if cs.kind == "chain":
            assert count_params(net) == cs.cost_table.total(arch, "params"), what

        # the state_dict round-trips (safetensors, as an export writes it, and torch.save) into a fresh network
        state = net.state_dict()
        for blob in (load_safetensors(save_safetensors({k: v.contiguous() for k, v in state.items()})),
                     _torch_round_trip(state)):
            again = cs.build_standalone(arch)
            again.load_state_dict(blob, strict=True)
            with torch.no_grad():
                assert torch.equal(again.eval()(small), got), what


def _torch_round_trip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("name", ["ofa_mbv3", "proxylessnas", "enas_micro", "nasbench201"])
def test_recalibrated_network_is_the_recalibrated_path(name):
    """The shipped network (`retrain.epochs: 0`) inherits the supernet's BatchNorm statistics, an average over
    random paths, and recalibrates them: that gives what the path gives recalibrated on the same batches (the
    ranking's and `search.theta_bn: recalibrate`'s scores are the shipped network's), and not what the supernet's
    shared statistics give."""
    cs = load_compiled(str(ROOT / "spaces" / f"{name}.space"), SMALL[name])
    supernet = cs.build_supernet()
    _trained_looking(supernet, 2)
    batches = [torch.randn(4, *cs.input_shape, generator=torch.Generator().manual_seed(10 + k)) for k in range(3)]
    x = torch.randn(2, *cs.input_shape, generator=torch.Generator().manual_seed(3))
    for arch in _archs(cs)[1:]:
        what = f"{name} {cs.decode(arch)}"
        size = cs.resolution(arch)
        net = cs.build_standalone(arch)
        inherit_weights(supernet.eval(), arch, net, tuple(int(v) for v in cs.arch_input_shape(arch)))
        with torch.no_grad():
            shared = net.eval()(resize_input(x, size))
            recalibrate_bn(net, net, [resize_input(b, size) for b in batches])
            got = net(resize_input(x, size))
            path = copy.deepcopy(supernet)
            recalibrate_bn(path, lambda b: path(b, arch), batches)
            want = path(x, arch)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=what)
        assert not torch.allclose(shared, want, atol=1e-3), what  # the supernet's own statistics: another network


def test_inherit_weights_takes_a_list_of_choice_indices():
    """The supernet, build_standalone and cost table all take an architecture as a list of indices; weight
    inheritance did too, except on a path with no sliced module (AttributeError: 'list' object has no attribute
    'to')."""
    cs = load_compiled(str(ROOT / "spaces" / "digits.space"))
    supernet = cs.build_supernet()
    _trained_looking(supernet, 4)
    arch = [len(d.choices) - 1 for d in cs.decisions]
    net = cs.build_standalone(arch)
    assert inherit_weights(supernet, arch, net, cs.input_shape) > 0
    x = torch.randn(2, *cs.input_shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), supernet.eval()(x, torch.tensor(arch)))


def test_inheritance_leaves_each_module_in_its_mode():
    """A network fine-tuned with frozen BatchNorm (its BN modules in eval mode, the rest training) keeps them frozen
    through weight inheritance; the probe forward used to switch every module to the network's own mode."""
    cs = load_compiled(str(ROOT / "spaces" / "digits.space"))
    supernet = cs.build_supernet().train()
    arch = torch.zeros(len(cs.decisions), dtype=torch.long)
    net = cs.build_standalone(arch).train()
    for m in (*net.modules(), *supernet.modules()):
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    inherit_weights(supernet, arch, net, cs.input_shape)
    for model in (net, supernet):
        bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        assert model.training and bns and convs
        assert not any(m.training for m in bns) and all(m.training for m in convs)


@pytest.mark.parametrize("name", ["ofa_mbv3", "fbnet"])
def test_block_map_names_the_op_each_block_inherits(name):
    """block_map's (layer, choice, stage, block) is the supernet op whose weights (their first channels, at a smaller
    width) the standalone block inherits: elastic depth, skips and FBNet's group-conv blocks included."""
    cs = load_compiled(str(ROOT / "spaces" / f"{name}.space"), SMALL[name])
    supernet = cs.build_supernet()
    _trained_looking(supernet, 6)
    for arch in _archs(cs):
        net = cs.build_standalone(arch)
        inherit_weights(supernet, arch, net, tuple(int(v) for v in cs.arch_input_shape(arch)))
        pairs = block_map(cs, arch)
        assert len(pairs) == sum(len(stage) for stage in net.blocks)
        for layer, choice, stage, block in pairs:
            theirs = supernet.layers[layer].ops[choice].state_dict()
            for key, mine in net.blocks[stage][block].state_dict().items():
                assert torch.equal(mine, theirs[key][prefix_index(mine.shape)]), (cs.decode(arch), layer, key)


def _freeze_bn(net: torch.nn.Module) -> list[torch.nn.Module]:
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.eval()
    return bns


def test_frozen_batchnorm_stays_frozen_on_a_path_at_smaller_widths():
    """A supernet trained (or fine-tuned) with frozen BatchNorm, its BN modules in eval mode: a path that runs a
    stage at a smaller width (elastic width) used its BNs in training mode (batch statistics, running statistics
    updated) where the full-width path used the frozen statistics; and weight inheritance from such a path set
    every module of the supernet to training mode."""
    cs = load_compiled(str(ROOT / "spaces" / "ofa_mbv3.space"), SMALL["ofa_mbv3"])
    supernet = cs.build_supernet()
    _trained_looking(supernet, 8)
    supernet.train()
    bns = _freeze_bn(supernet)
    arch = torch.zeros(len(cs.decisions), dtype=torch.long)  # the smallest widths: every searched stage sliced
    assert supernet.slices(arch)
    x = torch.randn(2, *cs.input_shape, generator=torch.Generator().manual_seed(9))
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    with torch.no_grad():
        got = supernet(x, arch)
    after = supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # frozen: no running statistic moved
    with torch.no_grad():
        want = supernet.eval()(x, arch)  # nothing else depends on the mode in these blocks
    torch.testing.assert_close(got, want)

    supernet.train()
    _freeze_bn(supernet)
    net = cs.build_standalone(arch)
    inherit_weights(supernet, arch, net, tuple(int(v) for v in cs.arch_input_shape(arch)))
    assert supernet.training and not any(m.training for m in bns)
    path = supernet.path_network(arch)  # the path as a network: its sliced copies' BNs frozen too
    path_bns = [m for m in path.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert path.training and len(path_bns) > len(set(path_bns) & set(bns)) > 0
    assert not any(m.training for m in path_bns) and not any(m.training for m in bns)
