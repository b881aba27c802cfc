"""Reusing a trained supernet keeps its true provenance and refuses one of another shape; the timm rebuild
check judges structure, not float rounding; search.random_band holds on exact totals with elastic depth."""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import build_timm_model
from automl.export.timm_spec import StandaloneSpecError, timm_spec
from automl.nn.ensemble import SupernetEnsemble
from automl.pipeline.members import Members
from automl.pipeline.plan import search_problem
from automl.pipeline.reuse import differences, fingerprint_digest, load_supernet, weights_fingerprint
from automl.pipeline.setup import engine_costs, load_spaces
from automl.recipe import load_recipe
from automl.search import get_searcher
from automl.train.checkpoint import CheckpointStore
from helpers import fake_supernet_run

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
DIGITS = ROOT / "spaces" / "digits.space"
FAST = ["data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=1", "search.theta_epochs=1", "search.lam=2", "retrain.epochs=0", "export.onnx=false",
        "device=cpu", "threads=1", "search.epsilons=[0]", "search.supernets=1"]


def _cli(capsys, *args):
    code = main(["run", QUICK, *FAST, *args])
    return code, capsys.readouterr()


def _fingerprint(*overrides, space=DIGITS):
    recipe = load_recipe(QUICK, FAST + list(overrides))
    return weights_fingerprint(recipe, Path(space), {k: str(v) for k, v in recipe.space_args.items()})


_fake_run = fake_supernet_run


# ------------------------------------------------------------------------------------------- F1: provenance

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("reuse") / "A"
    assert main(["run", QUICK, *FAST, "--out", str(out)]) == 0
    return out


def test_a_forced_supernet_stays_forced_when_another_run_reuses_it(trained, tmp_path, capsys):
    other = ["search.weight_epochs=2", "optim.lr=0.01"]
    code, _ = _cli(capsys, *other, "--out", str(tmp_path / "B"), "--supernet", str(trained), "--supernet-force")
    assert code == 0
    a_fp = CheckpointStore(trained / "checkpoints").load()["weights_fingerprint"]
    b = CheckpointStore(tmp_path / "B" / "checkpoints").load()
    # B's checkpoint records what trained its weights: A's settings, as its results.json says
    assert b["weights_fingerprint"] == a_fp
    b_res = json.loads((tmp_path / "B" / "results.json").read_text())["supernet"]
    assert b_res["fingerprint"] == fingerprint_digest(a_fp) and b_res["forced"]

    # a third run with B's settings is refused like B was, naming the key that differs
    code, out = _cli(capsys, *other, "--out", str(tmp_path / "C"), "--supernet", str(tmp_path / "B"))
    assert code == 2 and "search.weight_epochs: 1 there, 2 here" in out.err and not (tmp_path / "C").exists()
    code, _ = _cli(capsys, *other, "--out", str(tmp_path / "C"), "--supernet", str(tmp_path / "B"), "--supernet-force")
    c = json.loads((tmp_path / "C" / "results.json").read_text())["supernet"]
    assert code == 0 and c["forced"] and "search.weight_epochs: 1 there, 2 here" in c["differs"]
    assert c["fingerprint"] == fingerprint_digest(a_fp)
    # with the settings that did train the weights, it is no forced reuse
    code, _ = _cli(capsys, "--out", str(tmp_path / "D"), "--supernet", str(tmp_path / "B"))
    d = json.loads((tmp_path / "D" / "results.json").read_text())["supernet"]
    assert code == 0 and not d["forced"] and d["differs"] == [] and d["fingerprint"] == fingerprint_digest(a_fp)


def test_a_forced_reuse_recorded_by_an_older_automl_is_not_taken_for_its_own_settings(tmp_path):
    """Before the fix a reusing run recorded its own recipe's fingerprint: its forced origin still shows."""
    a_fp, b_fp = _fingerprint(), _fingerprint("search.weight_epochs=2")
    forced = {"from": str(tmp_path / "A"), "fingerprint": fingerprint_digest(a_fp), "forced": True,
              "differs": ["search.weight_epochs: 1 there, 2 here"]}
    old = _fake_run(tmp_path / "B", b_fp, origin=forced)
    with pytest.raises(UserError, match="--supernet-force") as e:
        load_supernet(old, b_fp, False, DIGITS)
    assert str(tmp_path / "A") in str(e.value) and "search.weight_epochs: 1 there, 2 here" in str(e.value)
    reused = load_supernet(old, b_fp, True, DIGITS)
    assert reused.origin["forced"] and reused.differs
    # an older run that reused without forcing recorded the same settings: still accepted as it was
    plain = {**forced, "fingerprint": fingerprint_digest(b_fp), "forced": False, "differs": []}
    reused = load_supernet(_fake_run(tmp_path / "B2", b_fp, origin=plain), b_fp, False, DIGITS)
    assert reused.differs == [] and not reused.origin["forced"] and reused.fingerprint == b_fp


# ------------------------------------------------------------------------------------------- F2: another shape

def _supernet(space_args=None, members=1, space=DIGITS):
    cs = load_compiled(space, space_args or {})
    nets = [cs.build_supernet() for _ in range(members)]
    return (nets[0] if members == 1 else SupernetEnsemble(nets)).state_dict()


@pytest.mark.parametrize("case", ["width", "members", "space"])
def test_a_forced_supernet_of_another_shape_is_one_message_before_anything_is_written(tmp_path, capsys, case):
    here = []
    if case == "width":
        src = _fake_run(tmp_path / "src", _fingerprint("space_args.width=0.5"), _supernet({"width": "0.5"}))
        want = "space_args.width: 0.5 there, 1.0 here"
    elif case == "members":
        src = _fake_run(tmp_path / "src", _fingerprint("search.supernets=2"), _supernet(members=2))
        want = "an ensemble of 2 supernets there, 1 here"
    else:
        other = tmp_path / "other.space"
        other.write_text(DIGITS.read_text().replace("head = 128", "head = 96"))
        src = _fake_run(tmp_path / "src", _fingerprint(space=other), _supernet(space=other))
        want = "head"
        here = [f"space={other}", "space_args.head=128"]
    code, out = _cli(capsys, *here, "--out", str(tmp_path / "new"), "--supernet", str(src), "--supernet-force")
    assert code == 2 and "Traceback" not in out.err and "internal error" not in out.err
    assert str(src) in out.err and "another shape" in out.err and want in out.err, out.err
    assert not (tmp_path / "new").exists()


# ------------------------------------------------------------------------------------------- F8: messages

def test_refusals_show_effective_values_and_compare_space_args_by_value(tmp_path):
    two = _fake_run(tmp_path / "two", _fingerprint("search.supernets=2"))
    with pytest.raises(UserError) as e:
        load_supernet(two, _fingerprint(), False, DIGITS)
    assert "search.supernets: 2 there, 1 here" in str(e.value) and "(absent)" not in str(e.value)
    seed0 = _fake_run(tmp_path / "seed0", _fingerprint())
    with pytest.raises(UserError) as e:
        load_supernet(seed0, _fingerprint("seed=3", "data.split_seed=3"), False, DIGITS)
    assert "data.split_seed: 0 there, 3 here" in str(e.value) and "(absent)" not in str(e.value)
    # the same network: 64 and 64.0 for a whole-number parameter; a default given or left out
    head = _fake_run(tmp_path / "head", _fingerprint("space_args.head=64"))
    assert load_supernet(head, _fingerprint("space_args.head=64.0"), False, DIGITS).differs == []
    plain = _fake_run(tmp_path / "plain", _fingerprint())
    assert load_supernet(plain, _fingerprint("space_args.head=128", "space_args.width=1"), False, DIGITS).differs == []
    with pytest.raises(UserError, match="space_args.head: 64 there, 96 here"):
        load_supernet(head, _fingerprint("space_args.head=96"), False, DIGITS)


# ------------------------------------------------------------------------------------------- F3: timm rebuild

ARCH_DEF = [["ds_r1_k3_s1_c8"], ["ir_r2_k5_s2_e3_c16_se0.25"], ["ir_r2_k3_s2_e6_c24_se0.25"], ["cn_r1_k1_s1_c48"]]
KW = {"num_classes": 10, "in_chans": 3, "stem_size": 8, "num_features": 64, "act_layer": "hard_swish",
      "timm_class": "MobileNetV3", "se_layer": "mobilenetv3"}


def _ill_conditioned(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """BatchNorm statistics recalibrated on ``x`` with a large shift after every inner BatchNorm: each layer then
    subtracts large means (as a badly trained supernet's recalibrated network does), and the classifier's outputs
    are in the thousands."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    model.eval()
    for bn in bns:
        seen = []
        hook = bn.register_forward_pre_hook(lambda _, inp: seen.append(inp[0].double()))
        with torch.no_grad():
            model(x)
        hook.remove()
        bn.running_mean.copy_(seen[0].mean((0, 2, 3)))
        bn.running_var.copy_(seen[0].var((0, 2, 3)))
        bn.bias.data.fill_(0.0 if bn is bns[0] or bn is bns[-1] else 100.0)
    model.classifier.weight.data.mul_(5000.0)
    return model


def test_timm_spec_accepts_a_channels_last_network_with_large_outputs():
    """The channels_last model and timm's contiguous rebuild differ only by float rounding, which the network
    amplifies past 1e-5 of its largest output."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # what the check feeds it
    model = _ill_conditioned(build_timm_model(ARCH_DEF, KW), x)
    with torch.no_grad():
        y = model(x)
        y_last = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert torch.isfinite(y).all() and float(y.abs().max()) > 300
    assert not torch.allclose(y, y_last, rtol=1e-4, atol=1e-5 * float(y.abs().max()))  # rounding, amplified
    kw = timm_spec(model.train(), ARCH_DEF, (3, 32, 32))
    assert kw["timm_class"] == "MobileNetV3" and model.training
    assert model.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)  # the model is left as it was


@pytest.mark.parametrize("other", [
    [["ds_r1_k3_s1_c8"], ["ir_r2_k3_s2_e3_c16_se0.25"], ["ir_r2_k3_s2_e6_c24_se0.25"], ["cn_r1_k1_s1_c48"]],  # kernel
    [["ds_r1_k3_s1_c8"], ["ir_r2_k5_s2_e3_c16"], ["ir_r2_k3_s2_e6_c24_se0.25"], ["cn_r1_k1_s1_c48"]],  # no SE
    [["ds_r1_k3_s1_c8"], ["ir_r2_k5_s2_e3_c16_se0.25_nre"], ["ir_r2_k3_s2_e6_c24_se0.25"], ["cn_r1_k1_s1_c48"]],
    [["ds_r1_k3_s1_c8"], ["ir_r2_k5_s1_e3_c16_se0.25"], ["ir_r2_k3_s2_e6_c24_se0.25"], ["cn_r1_k1_s1_c48"]],  # stride
])
def test_timm_spec_still_refuses_another_network(other):
    torch.manual_seed(0)
    model = build_timm_model(other, KW).to(memory_format=torch.channels_last)
    with pytest.raises(StandaloneSpecError, match="does not rebuild"):
        timm_spec(model, ARCH_DEF, (3, 32, 32))


# ------------------------------------------------------------------------------------------- F4: the band

DEPTH_SPACE = """space ewr
input 1 x 8 x 8
classes 10
choices mb = ir_k3_e1, ir_k3_e3_se0.25, ir_k5_e6
network
  family mobilenetv3
  activation hard_swish
  stem width 16
  stage s1 width 16, 24 depth 1, 2 activation relu choose mb
  stage s2 width 24, 32 stride 2 depth 2, 3 se 0.25 choose mb
  stage last width 48, 64 fixed cn_k1
  head width 96
end
"""


@pytest.mark.parametrize("key", ["random_budgets", "budgets"])
def test_the_band_holds_on_exact_totals_with_elastic_depth(tmp_path, key):
    space = tmp_path / "ewr.space"
    space.write_text(DEPTH_SPACE)
    totals = [40_000, 25_000]
    given = ([f"search.random_budgets=[{','.join(map(str, totals))}]", "search.epsilons=[0.0]"]
             if key == "random_budgets" else [f"search.budgets=[{','.join(map(str, totals))}]"])
    recipe = load_recipe(QUICK, ["search.method=random", "device=cpu", f"space={space}", "search.random_band=0.8",
                                 "search.lam=50", *given])
    spaces = load_spaces(recipe)
    assert spaces.search.cost_table.gates  # elastic depth
    members = Members.of(recipe.search, sampled=True)
    costs = engine_costs(spaces.search, "params", True)
    ct = spaces.search.cost_table
    for i, b in enumerate(totals):
        searcher = get_searcher("random").create(search_problem(recipe, members, [i], spaces, costs,
                                                                torch.device("cpu")))
        got = [ct.total(a.tolist(), "params") for _ in range(4) for a in searcher.ask()]
        assert all(0.8 * b <= t <= b for t in got), (b, min(got), max(got))


def test_a_supernet_recorded_before_the_optim_schedule_keys_is_still_the_same_supernet():
    """optim.warmup_lr, decay_rate and decay_epochs were added after supernets were first recorded: at the values
    that behave as before (0, 0.1, 30) they are left out of the fingerprint, so an older run's fingerprint (which
    lacks them) has the same digest and no differences; another value is a difference."""
    ours = _fingerprint()
    old = {k: v for k, v in ours.items() if k not in ("optim.warmup_lr", "optim.decay_rate", "optim.decay_epochs")}
    assert fingerprint_digest(ours) == fingerprint_digest(old)
    assert differences(old, ours, DIGITS) == []
    changed = _fingerprint("optim.decay_rate=0.5", "optim.warmup_lr=0.01")
    assert sorted(d.split(":")[0] for d in differences(old, changed, DIGITS)) == ["optim.decay_rate",
                                                                                    "optim.warmup_lr"]
