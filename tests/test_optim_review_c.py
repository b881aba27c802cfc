"""Optimiser and schedule keys of the weight phase (``optim``) and the retraining (``retrain``): the step
schedule's decay keys and floor, ``min_lr`` above ``lr``, keys Method 1 would ignore, and TF-style RMSprop."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import timm.optim
import timm.scheduler
import torch
import yaml

from automl.cli import main
from automl.errors import RecipeError
from automl.recipe import OptimConfig, load_recipe
from automl.train.loops import create_optimizer, create_scheduler

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "recipes" / "quickstart.yaml"


def error_of(path, overrides) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    assert info.value.exit_code == 2
    return info.value


def lrs_used(schedule: str, epochs: int, spe: int, lr: float = 0.1, **kw) -> list[float]:
    """The lr each update uses, stepped as the weight phase and the retraining step it (``step_update(n)``
    after update n)."""
    opt = create_optimizer(torch.nn.Linear(3, 3), "sgd", lr, 0.0)
    sched = create_scheduler(opt, schedule, epochs, spe, **kw)
    out = []
    for n in range(1, epochs * spe + 1):
        out.append(opt.param_groups[0]["lr"])
        sched.step_update(n)
    return out


# ------------------------------------------------------------------ finding 6: optim's step-schedule keys


def test_optim_takes_the_step_schedule_keys_with_the_old_behaviour_as_defaults():
    o = OptimConfig()
    assert (o.decay_rate, o.decay_epochs, o.warmup_lr) == (0.1, 30, 0.0)
    r = load_recipe(QUICK, ["optim.schedule=step", "optim.decay_rate=0.5", "optim.decay_epochs=2",
                            "optim.warmup_lr=0.001"])
    assert (r.optim.decay_rate, r.optim.decay_epochs, r.optim.warmup_lr) == (0.5, 2, 0.001)
    # the defaults reproduce what create_scheduler did without them
    assert lrs_used("step", 40, 2, decay_rate=o.decay_rate, decay_epochs=o.decay_epochs,
                    warmup_lr=o.warmup_lr, warmup_epochs=1) == lrs_used("step", 40, 2, warmup_epochs=1)


def test_the_new_optim_keys_at_their_defaults_leave_the_resume_fingerprint_as_it_was():
    """A run checkpointed before the keys existed resumes: the YAML hashed is the one without them."""
    recipe = load_recipe(QUICK)
    data = recipe.model_dump(mode="json", exclude={"checkpoint", "threads", "cudnn_benchmark"})
    data["search"].pop("random_band")
    for key in ("decay_rate", "decay_epochs", "warmup_lr"):
        del data["optim"][key]
    del data["data"]["cutout"]  # added since, as the optim keys
    head = recipe.to_yaml().splitlines()[0] + "\n"
    text = head + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    assert recipe.legacy_fingerprint() == hashlib.sha256(text.encode()).hexdigest()
    assert load_recipe(QUICK, ["optim.warmup_lr=0.01"]).fingerprint() != recipe.fingerprint()


@pytest.mark.parametrize("overrides,keys", [
    (["optim.schedule=step"], ("optim.decay_epochs", "search.weight_epochs")),  # 30 >= the quickstart's 15
    (["optim.schedule=step", "optim.decay_epochs=15"], ("optim.decay_epochs", "search.weight_epochs")),
    (["retrain.schedule=step", "retrain.epochs=3"], ("retrain.decay_epochs", "retrain.epochs")),  # 3 >= 3
    (["retrain.schedule=step", "retrain.epochs=10", "retrain.decay_epochs=12"],
     ("retrain.decay_epochs", "retrain.epochs")),
])
def test_a_step_schedule_that_never_decays_is_refused(overrides, keys):
    e = error_of(QUICK, overrides)
    assert all(k in str(e) for k in keys), str(e)
    assert "never" in str(e) and "schedule" in str(e)


def test_a_step_schedule_that_never_decays_exits_2_without_a_traceback(tmp_path, capsys):
    # --resume on an empty folder: an accepted recipe stops too, before any training, with another message
    code = main(["run", str(QUICK), "retrain.schedule=step", "retrain.epochs=2", "--out", str(tmp_path / "x"),
                 "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and "retrain.decay_epochs" in err and "Traceback" not in err


@pytest.mark.parametrize("overrides", [
    ["optim.schedule=step", "optim.decay_epochs=14"],
    ["optim.schedule=step", "search.weight_epochs=0"],          # no weight phase: no schedule
    ["optim.schedule=cosine", "optim.decay_epochs=100"],        # not the step schedule
    ["retrain.schedule=step", "retrain.epochs=4"],              # decays once, after epoch 3
    ["retrain.schedule=step", "retrain.epochs=0"],              # no retraining
    ["retrain.schedule=constant", "retrain.epochs=2"],
])
def test_a_step_schedule_that_decays_or_does_not_run_is_accepted(overrides):
    load_recipe(QUICK, overrides)


def test_no_shipped_recipe_is_refused():
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        load_recipe(path)


# ----------------------------------------------------------- finding 7: min_lr is the floor of every schedule


def test_the_step_schedule_stops_at_min_lr():
    used = lrs_used("step", 30, 2, lr=0.1, min_lr=0.05, decay_rate=0.5, decay_epochs=3)
    assert min(used) == pytest.approx(0.05)
    assert used[0] == pytest.approx(0.1) and used[6] == pytest.approx(0.05)  # halved once after 3 epochs
    assert used[-1] == pytest.approx(0.05)


def test_the_floor_leaves_the_warm_up_as_cosine_has_it():
    """The warm-up rises from warmup_lr as with the cosine schedule (whose floor applies after it)."""
    kw = dict(min_lr=0.05, warmup_epochs=2, warmup_lr=0.0)
    step = lrs_used("step", 30, 4, decay_rate=0.5, decay_epochs=3, **kw)
    cosine = lrs_used("cosine", 30, 4, **kw)
    assert step[:8] == pytest.approx(cosine[:8]) and step[0] == 0.0
    assert min(step[8:]) == pytest.approx(0.05)


def test_a_resumed_step_schedule_sets_the_floored_lr_in_one_call():
    used = lrs_used("step", 20, 3, lr=0.2, min_lr=0.03, decay_rate=0.3, decay_epochs=2, warmup_epochs=1)
    for n in (0, 2, 3, 17, 40):
        opt = create_optimizer(torch.nn.Linear(3, 3), "sgd", 0.2, 0.0)
        create_scheduler(opt, "step", 20, 3, min_lr=0.03, decay_rate=0.3, decay_epochs=2,
                         warmup_epochs=1).step_update(n)
        assert opt.param_groups[0]["lr"] == used[n]


def test_without_a_floor_the_step_schedule_is_timms():
    opt = create_optimizer(torch.nn.Linear(3, 3), "sgd", 0.192, 1e-5)
    ref, _ = timm.scheduler.create_scheduler_v2(opt, sched="step", num_epochs=350, decay_epochs=3,
                                                decay_rate=0.963, warmup_lr=0.0, warmup_epochs=5,
                                                step_on_epochs=False, updates_per_epoch=7)
    want = []
    for n in range(1, 350 * 7 + 1, 13):
        ref.step_update(n)
        want.append(opt.param_groups[0]["lr"])
    opt = create_optimizer(torch.nn.Linear(3, 3), "sgd", 0.192, 1e-5)
    ours = create_scheduler(opt, "step", 350, 7, warmup_epochs=5, decay_rate=0.963, decay_epochs=3)
    got = []
    for n in range(1, 350 * 7 + 1, 13):
        ours.step_update(n)
        got.append(opt.param_groups[0]["lr"])
    assert got == want  # bit for bit


@pytest.mark.parametrize("section,lr", [("optim", "lr"), ("retrain", "lr")])
def test_min_lr_above_lr_is_refused(section, lr):
    e = error_of(QUICK, [f"{section}.{lr}=0.1", f"{section}.min_lr=0.5"])
    assert f"{section}.min_lr" in str(e) and f"{section}.lr" in str(e), str(e)
    e = error_of(QUICK, [f"{section}.min_lr=0.3", f"{section}.lr=0.01"])  # the lr lowered below the floor
    assert f"{section}.min_lr" in str(e) and f"{section}.lr=0.01" in str(e), str(e)
    load_recipe(QUICK, [f"{section}.lr=0.1", f"{section}.min_lr=0.1"])


def test_min_lr_above_lr_in_the_file_names_its_line(tmp_path):
    text = QUICK.read_text().replace("  schedule: cosine\n", "  schedule: cosine\n  min_lr: 9.0\n", 1)
    p = tmp_path / "r.yaml"
    p.write_text(text.replace("../spaces/", f"{ROOT / 'spaces'}/"))
    e = error_of(p, [])
    assert e.line is not None and text.splitlines()[e.line - 1].strip() == "min_lr: 9.0", (e.line, str(e))


# ------------------------------------------------------------ finding 8: keys Method 1 (simultaneous) ignores


@pytest.mark.parametrize("override", ["search.weight_sampling=fair", "search.weight_sampling=sandwich",
                                      "search.inplace_distill=true", "search.theta_bn=recalibrate"])
def test_simultaneous_refuses_the_keys_it_would_ignore(override):
    key = override.split("=")[0]
    e = error_of(QUICK, ["search.method=simultaneous", override])
    assert e.key == key and "Method 1" in str(e) and "own distribution" in str(e), str(e)
    load_recipe(QUICK, ["search.method=separate", override, "search.weight_sampling=sandwich"])


def test_simultaneous_with_distillation_names_method_1_first():
    e = error_of(QUICK, ["search.method=simultaneous", "search.inplace_distill=true"])
    assert e.key == "search.inplace_distill" and "Method 1" in str(e)


def test_simultaneous_at_the_defaults_loads():
    r = load_recipe(QUICK, ["search.method=simultaneous", "search.weight_sampling=uniform",
                            "search.theta_bn=batch", "search.inplace_distill=false"])
    assert r.search.method == "simultaneous"
    load_recipe(ROOT / "recipes" / "cifar10-method1.yaml")


# --------------------------------------------------------------------- finding 10: TF-style RMSprop


def test_rmsproptf_is_timms_tensorflow_rmsprop_with_the_given_eps_and_alpha():
    opt = create_optimizer(torch.nn.Linear(3, 3), "rmsproptf", 0.192, 1e-5, 0.9, eps=1e-3, alpha=0.85)
    assert type(opt) is timm.optim.RMSpropTF
    g = opt.param_groups[0]
    assert (g["eps"], g["alpha"], g["momentum"], g["lr"]) == (1e-3, 0.85, 0.9, 0.192)
    opt = create_optimizer(torch.nn.Linear(3, 3), "rmsprop", 0.192, 1e-5, 0.9, eps=1e-3, alpha=0.85)
    assert type(opt) is torch.optim.RMSprop and opt.param_groups[0]["eps"] == 1e-3


def test_rmsproptf_is_a_choice_of_both_sections():
    r = load_recipe(QUICK, ["optim.name=rmsproptf", "retrain.optimizer=rmsproptf"])
    assert r.optim.name == "rmsproptf" and r.retrain.optimizer == "rmsproptf"


def test_the_imagenet_recipe_retrains_with_tensorflow_rmsprop():
    r = load_recipe(ROOT / "recipes" / "imagenet.yaml")
    rt = r.retrain
    assert rt.optimizer == "rmsproptf" and (rt.rmsprop_eps, rt.rmsprop_alpha) == (1e-3, 0.9)
    assert (rt.lr, rt.weight_decay, rt.warmup_epochs, rt.decay_rate, rt.decay_epochs) == (0.192, 1e-5, 5, 0.963, 3)
