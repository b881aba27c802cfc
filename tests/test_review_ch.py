"""The paper's recipes and search spaces against the paper (Noda, Saito, Shirakawa: "Efficient Search of Multiple
Neural Architectures with Different Complexities via Importance Sampling"), setting by setting.

Each assertion pins a number the paper states (the section is in the comment), read from the recipe as
load_recipe resolves it or from the space as the compiler builds it. Where the paper delegates ("the other
retraining settings are the same as [1]"), the value is the cited work's: ASNG-NAS's published code
(github.com/shirakawas/ASNG-NAS, classification/main_classification.py). No training runs here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from automl.compile import load_compiled
from automl.pipeline.setup import engine_costs
from automl.recipe import load_recipe
from automl.search import SearchProblem, get_searcher
from automl.search._utilities import quantile_utilities

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
CIFAR_METHODS = {"cifar10": "importance_sampling", "cifar10-method1": "simultaneous", "cifar10-method2": "separate"}
CIFAR_ALL = [*CIFAR_METHODS, "cifar10-random"]
MBCONV = ("ir_k3_e3", "ir_k3_e6", "ir_k5_e3", "ir_k5_e6", "ir_k7_e3", "ir_k7_e6")


def _recipe(name: str):
    return load_recipe(RECIPES / f"{name}.yaml")


def _space(recipe, retrain: bool = False):
    args = {**recipe.space_args, **(recipe.retrain.space_args if retrain else {})}
    return load_compiled(recipe.space, {k: str(v) for k, v in args.items()})


def _kinds(cs) -> str:
    """'n' and 'r' for each cell instance of a cell space, in order."""
    return "".join(cs.plan.templates[i.template].name[0] for i in cs.plan.instances)


def _engine_lr(recipe) -> float:
    """η of the engine the pipeline builds for the recipe (options as automl.pipeline.plan.search_problem)."""
    cs, s = _space(recipe), recipe.search
    problem = SearchProblem(list(cs.num_choices), engine_costs(cs, s.cost, s.normalize_costs).costs,
                            list(range(len(s.epsilons))), list(s.epsilons), None, s.lam, recipe.seed,
                            options={"theta_lr": s.theta_lr, "theta_min": s.theta_min, "utility": s.utility})
    return get_searcher(s.method).create(problem).lr


# ------------------------------------------------------------------------------------------- §4.1 CIFAR-10
@pytest.mark.parametrize("name", CIFAR_METHODS)
def test_cifar10_search_settings_are_the_papers(name):
    r = _recipe(name)
    s, o, d = r.search, r.optim, r.data
    assert s.method == CIFAR_METHODS[name]                       # Algorithms 1, 2 (Method 1), 3 (Method 2)
    assert Path(r.space).name == "enas_micro.space"              # "the cell-based ... space used in [1,15]"
    assert s.epsilons == [0.0, 0.1, 0.3, 0.5]                    # "ε_n to {0.0, 0.1, 0.3, 0.5}"
    assert s.budgets is None
    assert s.lam == 2                                            # "the sample size of the architecture λ to 2"
    assert (s.weight_epochs, s.theta_epochs) == (200, 200)       # "T_W = T_θ = 200" (Method 1, 2: "T = 200")
    assert (d.batch_size, d.theta_batch_size) == (64, 64)        # "|D_W| and |D_θ| are set to 64"
    assert d.dataset == "cifar10" and d.theta_split == 0.5       # D split into D_W, D_θ (ASNG-NAS: 25,000 each)
    # "SGD with a momentum of 0.9 ... weight decay to 3e-4 ... cosine ... from 0.025 to 0"
    assert (o.name, o.momentum, o.weight_decay, o.lr, o.schedule, o.min_lr, o.warmup_epochs) == \
        ("sgd", 0.9, 3e-4, 0.025, "cosine", 0.0, 0)
    assert o.grad_clip == 5.0                                    # ASNG-NAS [1]: grad_clip_value_search=5
    assert s.utility == "paper"                                  # eq. 9 as written
    assert s.cost == "params"                                    # §3.1: "the number of weight parameters"
    assert (s.supernets, s.weight_sampling) == (1, "uniform")    # Algorithm 1: one W, uniform sampling
    assert r.space_args == {"channels": 16, "normal_cells": 6}   # "six normal and two reduction cells ... 16"


@pytest.mark.parametrize("name", CIFAR_METHODS)
def test_cifar10_theta_learning_rate_is_one_over_180(name):
    """§4.1: "η_θ = (Σ_d K_d)^-1 = 1/180", from theta_lr: auto through the searcher the pipeline builds."""
    assert _engine_lr(_recipe(name)) == pytest.approx(1 / 180, rel=1e-12)


@pytest.mark.parametrize("name", CIFAR_ALL)
def test_cifar10_retraining_is_the_papers_and_asng_nas(name):
    rt = _recipe(name).retrain
    assert rt.space_args == {"channels": 50, "normal_cells": 10}  # "normal cells to 10 ... channels ... to 50"
    # "The other retraining settings are the same as [1]": ASNG-NAS's experiment() call: n_epochs_retrain=600,
    # batch_size_retrain=80, SGD lr 0.025 momentum 0.9 weight decay 3e-4, CosineAnnealingLR (to 0), clip 5
    assert rt.epochs == 600
    assert rt.batch_size == 80
    assert (rt.optimizer, rt.lr, rt.momentum, rt.weight_decay, rt.schedule, rt.min_lr, rt.warmup_epochs) == \
        ("sgd", 0.025, 0.9, 3e-4, "cosine", 0.0, 0)
    assert rt.grad_clip == 5.0
    assert (rt.label_smoothing, rt.ema, rt.se) == (0.0, None, 0.0)


def test_cifar10_random_baseline_sizes_are_the_papers():
    """§4.1: "We sample architectures with weight parameters of 2.5M, 3.0M, 4.0M, and 5.0M"."""
    s = _recipe("cifar10-random").search
    assert s.method == "random" and s.random_budgets == [2.5e6, 3.0e6, 4.0e6, 5.0e6]


def test_enas_micro_search_and_retraining_networks_are_the_papers():
    r = _recipe("cifar10")
    search, retrain = _space(r), _space(r, retrain=True)
    # DESIGN / ASNG-NAS: per node (2+i), (2+i), 5, 5 choices; normal + reduction: 40 decisions, Σ K = 180
    assert search.num_choices == [c for i in range(5) for c in (2 + i, 2 + i, 5, 5)] * 2
    assert (search.num_decisions, search.sum_k) == (40, 180)
    ops = {tuple(n.ops) for t in search.plan.templates for n in t.nodes}
    assert ops == {("identity", "sep_k3", "sep_k5", "avgpool_k3", "maxpool_k3")}
    assert [t.stride for t in search.plan.templates] == [1, 2]
    # §4.1: "six normal and two reduction cells ... channels in the first cell to 16" (ASNG-NAS: reductions at
    # n//3 and 2n//3 of n = 8 cells; stem 3 x 16)
    assert _kinds(search) == "nnrnnrnn" and search.plan.instances[0].channels == 16
    assert search.plan.stem_width == 48 and search.input_shape == (3, 32, 32) and search.num_classes == 10
    # retraining: 10 normal cells, 50 channels; 12 cells with ASNG-NAS's reductions at 12//3 = 4 and 2*12//3 = 8
    assert _kinds(retrain) == "nnnnrnnnrnnn" and retrain.plan.instances[0].channels == 50
    assert (retrain.num_decisions, retrain.sum_k) == (40, 180)  # the same decisions: the searched cells


def test_paper_utility_with_the_cifar10_lambda():
    """§2, w(x): -2 for x <= 1/4, 0 up to 3/4, 2 above; with λ = 2 and distinct losses the better sample
    has q = 1/2 (w = 0) and the worse q = 1 (w = 2)."""
    got = quantile_utilities(torch.tensor([[0.3, 0.1]], dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64), 2)
    assert got.tolist() == [[2.0, 0.0]]


# ------------------------------------------------------------------------------------------- §4.2 ImageNet
def test_imagenet_search_settings_are_the_papers():
    r = _recipe("imagenet")
    s, o, d = r.search, r.optim, r.data
    # "the CNN architecture search space proposed in ProxylessNAS [3]"
    assert s.method == "importance_sampling" and Path(r.space).name == "proxylessnas.space"
    assert s.epsilons == [0.0, 0.5, 1.0]                          # "ε_n ∈ {0.0, 0.5, 1.0}"
    assert d.theta_split == 50000                                 # "θ with 50,000 randomly selected images"
    assert (s.weight_epochs, s.theta_epochs) == (60, 60)          # "weights and distribution parameters for 60 epochs"
    assert (d.batch_size, d.theta_batch_size) == (350, 350)       # "|D_W| and |D_θ| to 350"
    assert s.lam == 8                                             # "the number of samples λ to 8"
    # "SGD with a momentum of 0.9 ... weight decay to 5e-5 ... cosine ... from 0.068 to 0"
    assert (o.name, o.momentum, o.weight_decay, o.lr, o.schedule, o.min_lr, o.warmup_epochs) == \
        ("sgd", 0.9, 5e-5, 0.068, "cosine", 0.0, 0)
    assert s.utility == "paper" and s.cost == "params" and (s.supernets, s.weight_sampling) == (1, "uniform")
    assert d.dataset == "imagefolder" and d.image_size == 224
    assert r.space_args == {"classes": 1000, "size": 224}         # ImageNet: 1,000 classes


def test_imagenet_theta_learning_rate_is_one_over_141():
    """§4.2: "η_θ = (Σ_d K_d)^-1 = 1/141"."""
    assert _engine_lr(_recipe("imagenet")) == pytest.approx(1 / 141, rel=1e-12)


def test_imagenet_retraining_is_the_papers():
    rt = _recipe("imagenet").retrain
    assert (rt.epochs, rt.batch_size) == (350, 768)              # "350 epochs with a mini-batch size of 768"
    assert rt.optimizer in ("rmsprop", "rmsproptf") and rt.weight_decay == 1e-5  # "RMSProp ... 1e-5"
    # "In the first five epochs, the learning rate increases linearly from 0 to 0.192"
    assert (rt.warmup_epochs, rt.warmup_lr, rt.lr) == (5, 0.0, 0.192)
    # "decreases by multiplying 0.963 every three epochs"
    assert (rt.schedule, rt.decay_rate, rt.decay_epochs) == ("step", 0.963, 3)
    assert rt.label_smoothing > 0                                # "label smoothing technique [22]"
    assert rt.se > 0                                             # "squeeze and excitation ... into the MBConv"
    assert rt.ema is not None                                    # "model exponential moving average (EMA)"
    assert rt.space_args == {}                                   # the searched space itself, at 224


def test_proxylessnas_space_is_the_papers():
    """DESIGN, "Facts about the two spaces of the paper" (ProxylessNAS mobile; §4.2's Σ K = 141)."""
    cs = _space(_recipe("imagenet"))
    p = cs.plan
    assert cs.input_shape == (3, 224, 224) and cs.num_classes == 1000
    assert (cs.num_decisions, cs.sum_k) == (21, 141)
    assert (p.stem_size, p.stem_kernel, p.num_features) == (32, 3, 1280)  # stem 3x3, 32; head 1x1 to 1280
    first, searched = p.layers[0], p.layers[1:]
    assert (first.choices, first.decision, first.in_ch, first.out_ch, first.stride) == (("ds_k3",), None, 32, 16, 1)
    stages = {}
    for layer in searched:
        stages.setdefault(layer.stage, []).append(layer)
    # (width, first stride, layers): (24,2,4) (40,2,4) (80,2,4) (96,1,4) (192,2,4) (320,1,1)
    assert [(ls[0].out_ch, ls[0].stride, len(ls)) for ls in stages.values()] == \
        [(24, 2, 4), (40, 2, 4), (80, 2, 4), (96, 1, 4), (192, 2, 4), (320, 1, 1)]
    for ls in stages.values():
        assert ls[0].choices == MBCONV                           # the first layer of a stage cannot skip
        assert all(layer.choices == MBCONV + ("skip",) and layer.stride == 1 for layer in ls[1:])
    assert [layer.decision for layer in searched] == list(range(21))
    # the layers halve the resolution 4 times (with the stem's stride 2, checked by spnasnet_100's membership in
    # tests/test_export_spaces.py: 224 -> 7)
    assert torch.tensor([layer.stride for layer in p.layers]).prod().item() == 16


# ------------------------------------------------------------------------------------------- DARTS (not the paper's)
def test_darts_space_is_dartss():
    """spaces/darts.space is DARTS's (Liu et al. 2019) CIFAR-10 space, not one the paper searches (§4.1 uses
    ENAS's cells, [1,15]): 4 nodes of 2 distinct inputs and 8 PRIMITIVES; 8 search cells of 16 channels;
    retraining 20 cells of 36 channels with reductions at 20//3 and 2*20//3."""
    cs = load_compiled(ROOT / "spaces" / "darts.space")
    ops = {tuple(n.ops) for t in cs.plan.templates for n in t.nodes}
    assert ops == {("none", "maxpool_k3", "avgpool_k3", "identity", "sep_k3", "sep_k5", "dil_k3", "dil_k5")}
    assert cs.num_choices == [c for i in range(4) for c in ((2 + i) * (1 + i) // 2, 8, 8)] * 2
    assert _kinds(cs) == "nnrnnrnn" and cs.plan.instances[0].channels == 16 and cs.plan.stem_width == 48
    big = load_compiled(ROOT / "spaces" / "darts.space", {"normal_cells": "18", "channels": "36"})
    assert _kinds(big) == "n" * 6 + "r" + "n" * 6 + "r" + "n" * 6 and big.plan.instances[0].channels == 36
