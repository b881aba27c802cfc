"""Settings a run can check before it trains are checked at start-up (search.theta_min against the space,
export.opset against the installed exporters, every searcher argument); a run whose weights diverge stops
with one message (exit 2) instead of an internal error at export; the logged ``lr`` is the rate the step used."""

import importlib
import json
import math
from pathlib import Path

import onnx
import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import export_architecture
from automl.pipeline.search_stages import buildable
from automl.pipeline.setup import check_export, check_theta_min
from automl.recipe import load_recipe
from automl.search import SearchProblem, get_searcher
from automl.train import loops
from helpers import cli_err as cli

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
DIGITS = ROOT / "spaces" / "digits.space"
FAST = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "search.budgets=null", "search.epsilons=[0]", "export.onnx=false"]
# what torch's exporter writes, read here independently of automl.export.onnx
TORCH_NEWEST = min(importlib.import_module("torch.onnx._constants").ONNX_MAX_OPSET, onnx.defs.onnx_opset_version())

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture
def weight_steps(monkeypatch):
    """The weight steps the run took (none: it stopped before training)."""
    calls, real = [], loops.weight_step
    monkeypatch.setattr(loops, "weight_step", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def digits_kmax() -> int:
    return max(load_compiled(str(DIGITS)).num_choices)


# ------------------------------------------------------------------------------------------- search.theta_min


def test_theta_min_at_or_above_one_over_kmax_stops_before_training(tmp_path, capsys, weight_steps):
    kmax = digits_kmax()
    code, err = cli(capsys, "run", QUICK, *FAST, f"search.theta_min={1.2 / kmax}", "--out", tmp_path / "r")
    assert code == 2 and weight_steps == []
    assert "quickstart.yaml: search.theta_min:" in err
    assert f"Kmax = {kmax}" in err and f"1/Kmax = {1 / kmax:.4g}" in err and "digits" in err
    assert len(err.strip().splitlines()) == 1


def test_theta_min_names_the_recipe_file_and_line(tmp_path, capsys, weight_steps):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(f"name: mine\nspace: {DIGITS}\ndata:\n  dataset: digits\nsearch:\n  epsilons: [0]\n"
                      f"  theta_min: 5\n")
    code, err = cli(capsys, "run", recipe, *FAST[:-2], "--out", tmp_path / "r")
    assert code == 2 and weight_steps == []
    assert err.startswith(f"{recipe}:7: search.theta_min: 5 is too large")


def test_theta_min_bound_is_the_spaces():
    kmax = digits_kmax()
    space = load_compiled(str(DIGITS))
    check_theta_min(load_recipe(QUICK, [f"search.theta_min={0.99 / kmax}"]), space)  # below 1/Kmax: fine
    check_theta_min(load_recipe(QUICK, ["search.theta_min=auto"]), space)
    with pytest.raises(UserError, match="search.theta_min"):
        check_theta_min(load_recipe(QUICK, [f"search.theta_min={1 / kmax}"]), space)  # the bound is open


def test_every_searcher_argument_is_checked_when_the_stages_are_built():
    """The backstop behind setup's named checks: a stage builds its searcher once when the plan is built
    (start-up), so an argument the engine refuses stops the run there."""
    kmax = digits_kmax()
    problem = SearchProblem([kmax, 2], torch.ones(2, kmax), [0], [0.0], None, 2, 0,
                            options={"theta_min": 1.0, "theta_lr": "auto"})
    with pytest.raises(UserError, match="theta_min must be None or a number in"):
        buildable(get_searcher("importance_sampling"), problem)
    problem.options["theta_min"] = "auto"
    assert buildable(get_searcher("separate"), problem) is problem


# ------------------------------------------------------------------------------------------------ export.opset


@pytest.mark.parametrize("opset", [TORCH_NEWEST + 1, 99])
def test_export_opset_beyond_the_exporter_stops_before_training_naming_the_key(tmp_path, capsys, weight_steps,
                                                                               opset):
    code, err = cli(capsys, "run", QUICK, *FAST, "export.onnx=true", f"export.opset={opset}", "--out",
                    tmp_path / "r")
    assert code == 2 and weight_steps == []
    assert f"quickstart.yaml: export.opset: {opset}:" in err and "--opset" not in err
    assert f"17 to {TORCH_NEWEST}" in err


def test_export_opset_is_not_checked_without_onnx():
    check_export(load_recipe(QUICK, ["export.onnx=false", "export.opset=99"]))
    check_export(load_recipe(QUICK, [f"export.opset={TORCH_NEWEST}"]))
    with pytest.raises(UserError, match="export.opset"):
        check_export(load_recipe(QUICK, [f"export.opset={TORCH_NEWEST + 1}"]))


# ---------------------------------------------------------------------------------------- weights gone NaN / inf

# one weight step per epoch (limit_train 96: 48 D_W images in one batch of 64): its loss, computed before the
# update, is finite; the update with lr 1e30 leaves weights no later loss of the phase sees
DIVERGE = [*FAST, "data.limit_train=96", "data.batch_size=64", "data.theta_batch_size=64"]


def poison_after(monkeypatch, name: str):
    """``loops.<name>`` (a training step) then one weight of the network set to inf: an update that overflowed
    after its loss was computed."""
    real = getattr(loops, name)

    def step(net, *args, **kwargs):
        out = real(net, *args, **kwargs)
        with torch.no_grad():
            next(net.parameters()).view(-1)[0] = float("inf")
        return out
    monkeypatch.setattr(loops, name, step)


@pytest.mark.parametrize("policy, poison, what", [
    ("stop", False, "outputs became NaN or inf on a D_W batch"),  # finite weights, too large to compute with
    ("skip", False, "outputs became NaN or inf on a D_W batch"),
    ("stop", True, "weights became NaN or inf (1 tensor, e.g. "),
    ("skip", True, "weights became NaN or inf (1 tensor, e.g. "),
])
def test_a_supernet_diverged_in_its_last_step_stops_the_run_before_the_theta_phase(tmp_path, capsys, monkeypatch,
                                                                                   policy, poison, what):
    thetas = []
    monkeypatch.setattr(loops, "path_losses", lambda *a, **k: thetas.append(1))
    if poison:
        poison_after(monkeypatch, "weight_step")
    monkeypatch.setattr("automl.recipe.MAX_LR", math.inf)  # a recipe refuses lr 1e30 at load; the run's own check
    code, err = cli(capsys, "run", QUICK, *DIVERGE, "optim.lr=0.1" if poison else "optim.lr=1e30",
                    "optim.weight_decay=0", f"search.nan_policy={policy}", "--out", tmp_path / "r")
    assert code == 2, err
    assert err.startswith(f"error: weights: the supernet's {what}") and "by the end of epoch 1" in err
    assert "lower optim.lr or set optim.grad_clip (now 5.0)" in err
    assert thetas == []  # stopped after the weight phase, before the θ phase
    assert not (tmp_path / "r" / "export").exists()


@pytest.mark.parametrize("poison, what", [(False, "test loss is nan"), (True, "weights became NaN or inf")])
def test_a_retraining_diverged_in_its_last_step_stops_before_the_export(tmp_path, capsys, monkeypatch, poison, what):
    if poison:
        poison_after(monkeypatch, "train_step")
    monkeypatch.setattr("automl.recipe.MAX_LR", math.inf)  # a recipe refuses lr 1e30 at load; the run's own check
    code, err = cli(capsys, "run", QUICK, *DIVERGE, "retrain.epochs=1", "retrain.batch_size=96",
                    "retrain.weight_decay=0", "retrain.lr=0.05" if poison else "retrain.lr=1e30", "--out", tmp_path / "r")
    assert code == 2, err
    assert err.startswith(f"error: retrain eps=0: the network's {what}")
    assert "lower retrain.lr or set retrain.grad_clip" in err
    assert not (tmp_path / "r" / "export" / "eps-0" / "manifest.json").exists()


def test_export_refuses_a_nonfinite_network(tmp_path):
    space = load_compiled(str(DIGITS))
    arch = space.encode([d.choices[0] for d in space.decisions])
    model = space.build_standalone(arch)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(UserError, match="the trained network's weights hold NaN or inf in 1 tensors"):
        export_architecture(space, arch, tmp_path / "x", model=model, onnx=False)
    with torch.no_grad():  # finite, but so large that the network overflows
        for p in model.parameters():
            p.fill_(1e30)
    with pytest.raises(UserError, match="make it compute NaN or inf on an input"):
        export_architecture(space, arch, tmp_path / "x", model=model, onnx=False)


# -------------------------------------------------------------------------------------------------- logged lr


def test_the_logged_lr_is_the_rate_the_step_used(tmp_path, capsys):
    lr, rlr = 0.2, 0.05
    args = [*FAST, "data.limit_train=128", "search.weight_epochs=2", "search.log_every=1", "optim.schedule=cosine",
            f"optim.lr={lr}", "retrain.epochs=1", f"retrain.lr={rlr}", "retrain.schedule=cosine"]
    out = tmp_path / "r"
    assert main(["run", QUICK, *args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]

    def cosine(base, t, total):  # timm's cosine without warm-up: update t (0-based) of total uses this rate
        return 0.5 * base * (1 + math.cos(math.pi * t / total))

    weights = [m["lr"] for m in lines if m.get("phase") == "weights" and "lr" in m]
    assert len(weights) == 4  # 2 epochs of 2 steps (64 D_W images, batches of 32)
    assert weights == pytest.approx([cosine(lr, t, 4) for t in range(4)])
    retrain = [m["lr"] for m in lines if str(m.get("phase")).startswith("retrain") and "lr" in m]
    assert retrain and retrain[0] == pytest.approx(rlr)
    assert retrain == pytest.approx([cosine(rlr, t, len(retrain)) for t in range(len(retrain))])
    assert f"lr {cosine(lr, 3, 4):.4g}" in printed.split("weights epoch 2/2: ")[1].splitlines()[0]  # not 0
