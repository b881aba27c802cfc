"""A short search (synthetic data, one epoch, no retraining) runs on every shipped space."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automl.compile import load_compiled
from automl.export import count_params
from automl.pipeline import Run
from automl.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
SPACES = sorted((ROOT / "spaces").glob("*.space"))
# small search networks: every space has `classes` and `size`; the rest keeps each network small
SMALL = {
    "digits": {"size": 8},
    "proxylessnas": {"size": 16, "width": 0.25, "head": 32},
    "fbnet": {"size": 16, "width": 0.25, "head": 32},
    "mobilenetv3": {"size": 16, "width": 0.25, "head": 32},
    "enas_micro": {"size": 8, "channels": 4, "normal_cells": 1},
    "darts": {"size": 8, "channels": 4, "normal_cells": 1},
    "nasbench201": {"size": 8, "channels": 4, "cells": 1},
    "ofa_mbv3": {"size": 16, "width": 0.25, "wide": 2, "head": 32},
}


def test_every_space_has_small_settings():
    assert {p.stem for p in SPACES} == set(SMALL)


# ofa_mbv3 (about 15 s) in CI only: its constructs are also checked by test_macs (exact MACs) and
# test_space_constructs (exact cost table), and a whole run on an elastic space by test_elastic_run
@pytest.mark.parametrize("space", [pytest.param(p, marks=pytest.mark.heavy) if p.stem == "ofa_mbv3" else p
                                   for p in SPACES], ids=[p.stem for p in SPACES])
def test_short_search(space, tmp_path):
    args = {"classes": 4, **SMALL[space.stem]}
    cs = load_compiled(space, {k: str(v) for k, v in args.items()})
    channels, size = cs.input_shape[0], cs.input_shape[1]
    overrides = [f"space={space}", *(f"space_args.{k}={v}" for k, v in args.items()),
                 "data.dataset=synthetic", "data.synthetic.num_train=16", "data.synthetic.num_test=8",
                 "data.synthetic.num_classes=4", f"data.synthetic.channels={channels}", f"data.synthetic.size={size}",
                 "data.batch_size=4", "data.theta_batch_size=4", "data.test_batch_size=8",
                 "search.weight_epochs=1", "search.theta_epochs=1", "search.epsilons=[0]", "search.lam=2",
                 "retrain.epochs=0", "export.onnx=false", "device=cpu",
                 # one thread: where ATen's strided 1x1 weight gradient crashed on few channels (the cell spaces'
                 # factorized reduce; automl.nn.depthwise.StridedPointwiseConv2d), whatever the machine's load
                 "threads=1"]
    res = Run(load_recipe(QUICK, overrides), tmp_path / "run", resume=False, tty=False).execute()
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == res
    (arch,) = res["architectures"]
    assert len(arch["choices"]) == cs.num_decisions
    # the exported network is the one chosen: its parameters are those of its choices' network, and the cost
    # table's total where that is exact (chain spaces and NAS-Bench-201's cells: docs/space-language.md, Costs)
    chosen = cs.encode(arch["choices"])
    assert arch["params"] == count_params(cs.build_standalone(chosen)) > 0
    if cs.kind == "chain" or space.stem == "nasbench201":
        assert arch["params"] == cs.cost_table.total(chosen, "params")
