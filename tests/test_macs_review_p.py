"""Review P, findings 2 and 3: ``count_macs`` leaves the caller's module as it was, and results.json's ``macs``
is the exported network's multiply-adds, counted on it (for cell spaces the cost table only approximates it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from automl.compile import load_compiled
from automl.export import load_model
from automl.nn import count_macs
from automl.pipeline import Run
from automl.pipeline.results import exported_macs
from automl.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")


def _flop_macs(model: nn.Module, shape) -> int:
    """Half the FLOPs torch's own counter counts over one forward at batch 1 (2 FLOPs a multiply-add)."""
    model.eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(torch.zeros(1, *shape))
    return fc.get_total_flops() // 2


def _small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))


def test_count_macs_leaves_a_real_model_as_it_was():
    model = _small_net()
    model.train()
    model[1].eval()  # a mixed mode is kept as it was, module by module
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    macs, out = count_macs(model, (3, 6, 6))
    # conv 8*6*6*3*9 + grouped conv 8*4*4*4*9 + linear 8*5
    assert (macs, out) == (8 * 36 * 27 + 8 * 16 * 36 + 40, (5,))
    assert all(v.device.type == "cpu" for v in model.state_dict().values())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert [m.training for m in model.modules()] == modes
    y = model(torch.randn(2, 3, 6, 6))  # still runs, on its own device
    assert y.shape == (2, 5) and y.device.type == "cpu"


def test_count_macs_on_a_meta_module_keeps_its_training_mode():
    with torch.device("meta"):
        model = _small_net()
    model.train()
    macs, _ = count_macs(model, (3, 6, 6))
    assert macs == 8 * 36 * 27 + 8 * 16 * 36 + 40
    assert all(m.training for m in model.modules())
    assert next(model.parameters()).is_meta


def test_count_macs_of_a_real_model_equals_the_flop_counter():
    cs = load_compiled(ROOT / "spaces" / "digits.space")
    model = cs.build_standalone(cs.cost_table.most_expensive())
    assert count_macs(model, cs.input_shape)[0] == _flop_macs(model, cs.input_shape) > 0


def _tiny_run(tmp_path, space: str, args: dict, extra=()) -> dict:
    cs = load_compiled(ROOT / "spaces" / f"{space}.space", {k: str(v) for k, v in args.items()})
    channels, size = cs.input_shape[0], cs.input_shape[1]
    overrides = [f"space={ROOT / 'spaces' / space}.space", *(f"space_args.{k}={v}" for k, v in args.items()),
                 "data.dataset=synthetic", "data.synthetic.num_train=16", "data.synthetic.num_test=8",
                 "data.synthetic.num_classes=4", f"data.synthetic.channels={channels}", f"data.synthetic.size={size}",
                 "data.batch_size=4", "data.theta_batch_size=4", "data.test_batch_size=8",
                 "search.method=random", "search.epsilons=[0,0.1,0.2,0.3,0.5,1.0]", "search.supernets=1",
                 "retrain.epochs=0", "export.onnx=false", "device=cpu", *extra]
    return Run(load_recipe(QUICK, overrides), tmp_path / "run", resume=False, tty=False).execute()


def _exported(tmp_path) -> dict[tuple[str, ...], tuple[nn.Module, tuple[int, ...]]]:
    """The run's exported networks as ``automl.export.load_model`` rebuilds them, with their manifests' input
    shapes (C, H, W), by their choices."""
    out = {}
    for manifest in (tmp_path / "run" / "export").glob("*/manifest.json"):
        m = json.loads(manifest.read_text())
        out[tuple(m["choices"])] = (load_model(manifest.parent), tuple(m["input_shape"]))
    return out


def test_results_macs_of_a_cell_space_are_the_exported_networks(tmp_path):
    args = {"classes": 4, "size": 8, "channels": 4, "normal_cells": 1}
    res = _tiny_run(tmp_path, "enas_micro", args)
    cs = load_compiled(ROOT / "spaces" / "enas_micro.space", {k: str(v) for k, v in args.items()})
    exported = _exported(tmp_path)
    archs = res["architectures"]
    assert len(archs) >= 4 and len(exported) >= 4
    table = []
    for a in archs:
        model, shape = exported[tuple(a["choices"])]
        assert a["macs"] == _flop_macs(model, shape) > 0
        table.append(cs.cost_table.total(cs.encode(a["choices"]), "macs"))
    # the table's approximation is not what is reported (it differs from the network here)
    assert any(t != a["macs"] for t, a in zip(table, archs))


@pytest.mark.parametrize("se", [0.0, 0.25])
def test_results_macs_of_a_chain_space_are_the_exported_networks(tmp_path, se):
    # chain spaces: the table is exact, so counting on the network changes nothing; with retrain.se the
    # exported network has squeeze-and-excitation, which the table (the space's own blocks) does not price
    args = {"classes": 4, "size": 8}
    res = _tiny_run(tmp_path, "digits", args, [f"retrain.se={se}"])
    cs = load_compiled(ROOT / "spaces" / "digits.space", {k: str(v) for k, v in args.items()})
    exported = _exported(tmp_path)
    assert len(res["architectures"]) >= 4
    for a in res["architectures"]:
        model, shape = exported[tuple(a["choices"])]
        table = cs.cost_table.total(cs.encode(a["choices"]), "macs")
        assert a["macs"] == _flop_macs(model, shape) > 0
        assert a["macs"] == table if se == 0 else a["macs"] > table
    # each manifest's cost counts the network it holds, as its params does; the table's figures (what the
    # search priced, without squeeze-and-excitation) are its search_cost
    for manifest in (tmp_path / "run" / "export").glob("*/manifest.json"):
        m = json.loads(manifest.read_text())
        arch = cs.encode(m["choices"])
        assert m["cost"]["params"] == m["params"] and m["cost"]["macs"] == _flop_macs(*exported[tuple(m["choices"])])
        if se:
            assert m["search_cost"] == {k: cs.cost_table.total(arch, k) for k in cs.cost_table.metrics}
            assert m["params"] > m["search_cost"]["params"]
        else:
            assert "search_cost" not in m


def test_exported_macs_of_an_elastic_space_equal_the_table_at_each_resolution():
    cs = load_compiled(ROOT / "spaces" / "ofa_mbv3.space", {"classes": "4", "size": "16", "width": "0.25",
                                                            "wide": "2", "head": "32"})
    ct, g = cs.cost_table, torch.Generator().manual_seed(0)
    archs = [ct.cheapest("macs"), ct.most_expensive("macs")]
    archs += [torch.tensor([int(torch.randint(n, (1,), generator=g)) for n in cs.num_choices]) for _ in range(6)]
    assert len({cs.resolution(a) for a in archs}) > 1
    for a in archs:
        macs = exported_macs(cs, a)
        assert macs == ct.total(a, "macs")
        assert macs == _flop_macs(cs.build_standalone(a), cs.arch_input_shape(a))


def test_count_macs_of_a_module_deepcopy_refuses_leaves_it_working():
    """The hook-based ``nn.utils.weight_norm`` keeps ``weight`` as a non-leaf tensor, which ``copy.deepcopy``
    refuses: the count runs the module itself with meta tensors in place of its own, and the module still runs
    on the CPU with its weights afterwards."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = nn.Sequential(nn.utils.weight_norm(nn.Conv2d(3, 8, 3)), nn.ReLU())
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    before = m(x)
    assert count_macs(m, (3, 8, 8)) == (8 * 6 * 6 * 3 * 3 * 3, (8, 6, 6))
    assert next(m.parameters()).device.type == "cpu" and torch.equal(m(x), before)
