"""Several supernets trained independently and scored together (``search.supernets``, automl/nn/ensemble.py)."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from automl.cli import main
from automl.compile import load_compiled
from automl.nn.ensemble import SupernetEnsemble, ensemble_size, member_weights, path_outputs
from automl.pipeline import Run
from automl.recipe import load_recipe
from automl.train import loops
from automl.train.checkpoint import CheckpointStore
from automl.train.distributed import DistInfo

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
TINY = ["data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=2", "search.theta_epochs=2", "search.lam=2", "search.budgets=[null,40k]",
        "retrain.epochs=0", "export.onnx=false", "search.log_every=2"]


@pytest.fixture(scope="module")
def space():
    return load_compiled(ROOT / "spaces" / "digits.space")


def _ensemble(space, m=2):
    nets = []
    for i in range(m):
        torch.manual_seed(i)
        nets.append(space.build_supernet())
    return SupernetEnsemble(nets)


def test_forward_is_the_log_of_the_mean_probability(space):
    ens = _ensemble(space, 3).eval()
    x, y = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 3, 4])
    arch = torch.as_tensor(space.cost_table.cheapest())
    with torch.no_grad():
        out = ens(x, arch)
        probs = torch.stack([F.softmax(m(x, arch), 1) for m in ens.members]).mean(0)
    assert torch.allclose(out, probs.log(), atol=1e-6)
    assert torch.allclose(out.exp().sum(1), torch.ones(5), atol=1e-6)
    # cross_entropy takes it as logits: the ensemble's negative log-likelihood
    assert float(F.cross_entropy(out, y)) == pytest.approx(float(-probs[torch.arange(5), y].log().mean()), rel=1e-6)
    assert ens.path_params(arch) == ens.members[0].path_params(arch)


def test_state_dict_members_and_size(space):
    ens = _ensemble(space)
    sd = ens.state_dict()
    assert ensemble_size(sd) == 2
    for m in range(2):
        want = ens.members[m].state_dict()
        got = member_weights(sd, m)
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert not torch.equal(member_weights(sd, 0)["conv_stem.weight"], member_weights(sd, 1)["conv_stem.weight"])
    single = space.build_supernet().state_dict()
    assert ensemble_size(single) == 1 and member_weights(single) is single
    with pytest.raises(IndexError):
        member_weights(single, 1)
    with pytest.raises(IndexError):
        member_weights(sd, 2)
    with pytest.raises(ValueError):
        SupernetEnsemble([space.build_supernet()])


@pytest.mark.parametrize("opt", ["sgd", "adamw"])
def test_a_members_step_leaves_the_other_member_alone(space, opt):
    """The weight stage steps the members one after the other with one optimiser over the ensemble: a step
    on member 0 must not move member 1 (no weight decay or momentum on parameters without a gradient)."""
    ens = _ensemble(space).train()
    optimizer = loops.create_optimizer(ens, opt, 0.1, 0.1, 0.9)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)
    archs = torch.zeros(2, len(space.num_choices), dtype=torch.long)
    crit = torch.nn.CrossEntropyLoss()
    for step in range(2):  # twice: momentum / Adam state exists for member 0 after the first step
        for m in range(2):
            before = [p.detach().clone() for p in ens.members[1 - m].parameters()]
            mine = [p.detach().clone() for p in ens.members[m].parameters()]
            loops.weight_step(ens.members[m], x, y, archs, optimizer, crit, DistInfo(), 5.0, torch.device("cpu"))
            assert all(torch.equal(a, b) for a, b in zip(before, ens.members[1 - m].parameters()))
            assert any(not torch.equal(a, b) for a, b in zip(mine, ens.members[m].parameters()))


def _run(tmp_path, extra, name="run", resume=False):
    return Run(load_recipe(QUICK, TINY + extra), tmp_path / name, resume=resume, tty=False).execute()


def test_a_run_with_two_supernets(tmp_path, space):
    res = _run(tmp_path, ["search.supernets=2", "ranking.archs=3", "ranking.retrain_epochs=0"])
    state = CheckpointStore(tmp_path / "run" / "checkpoints").load()
    sd = state["supernet"]
    assert ensemble_size(sd) == 2
    m0, m1 = member_weights(sd, 0), member_weights(sd, 1)
    # both members trained (their weights left their initialisation), and differently
    torch.manual_seed(0 * 1009 + 0)
    init0 = space.build_supernet().state_dict()
    assert not torch.equal(m0["conv_stem.weight"], init0["conv_stem.weight"])
    assert not torch.equal(m0["conv_stem.weight"], m1["conv_stem.weight"])
    # the ranking scored the architectures on the ensemble; retrain.epochs 0 exported member 0's path
    assert len(res["ranking"]["archs"]) == 3
    top = res["architectures"][0]
    exported = load_file(tmp_path / "run" / "export" / "budget-0-none" / "model.safetensors")
    assert torch.equal(exported["conv_stem.weight"], m0["conv_stem.weight"])
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == res


def test_two_supernets_rank_by_their_members_mean_loss(tmp_path):
    """The θ phase scores a path by the mean of the members' losses on it (not member 0's, and not the loss
    of the ensemble's mean prediction, which also rewards the members' disagreement), and its first logged
    loss is that score averaged over its first λ paths on its first D_θ batch."""
    _run(tmp_path, ["search.supernets=2", "search.log_every=1"])
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    ens_loss = next(r["loss"] for r in rows if r.get("phase") == "theta")
    from automl.pipeline import open_workspace
    ws = open_workspace(load_recipe(QUICK, TINY + ["search.supernets=2"]))
    sd = CheckpointStore(tmp_path / "run" / "checkpoints").load()["supernet"]
    ens = ws.supernet(sd)
    one, two = ws.supernet(member_weights(sd, 0)), ws.supernet(member_weights(sd, 1))
    assert isinstance(ens, SupernetEnsemble) and not isinstance(one, SupernetEnsemble)
    x, y = next(iter(ws.data.theta.epoch(0)))
    archs = torch.tensor([[0] * len(ws.spaces.search.num_choices), ws.spaces.search.cost_table.cheapest()])
    l_ens = loops.path_losses(ens, x, y, archs, ws.device)
    l_one, l_two = (loops.path_losses(n, x, y, archs, ws.device) for n in (one, two))
    assert torch.allclose(l_ens, (l_one + l_two) / 2, rtol=1e-6) and not torch.allclose(l_ens, l_one)
    with torch.no_grad():
        ens.train()
        prediction = torch.stack([F.cross_entropy(ens(x, a), y) for a in archs])
    assert not torch.allclose(l_ens, prediction, rtol=1e-4)  # the ensemble's own loss is lower (Jensen)
    assert bool((prediction < l_ens).all())
    first = ws.searcher(list(range(ws.members.n))).ask()  # the θ stage's searcher: the same seed, same first ask
    epoch0 = next(iter(ws.data.theta.epoch(0)))
    assert ens_loss == pytest.approx(float(loops.path_losses(ens, *epoch0, first.cpu(), ws.device).mean()), rel=1e-5)


def test_evaluate_scores_each_member_and_averages(space):
    """loops.evaluate on a forward that returns the members' logits: the mean of their losses and accuracies."""
    ens = _ensemble(space, 3).eval()
    arch = torch.as_tensor(space.cost_table.cheapest())

    class Loader:
        def epoch(self, e):
            g = torch.Generator().manual_seed(1)
            return [(torch.randn(6, 1, 8, 8, generator=g), torch.randint(0, 10, (6,), generator=g))
                    for _ in range(3)]

    cpu, info = torch.device("cpu"), DistInfo()
    loss, acc = loops.evaluate(lambda x: path_outputs(ens, x, arch), Loader(), cpu, info)
    each = [loops.evaluate(lambda x, m=m: m(x, arch), Loader(), cpu, info) for m in ens.members]
    assert loss == pytest.approx(sum(e[0] for e in each) / 3, rel=1e-9)
    assert acc == pytest.approx(sum(e[1] for e in each) / 3, rel=1e-9)
    assert loss != pytest.approx(loops.evaluate(lambda x: ens(x, arch), Loader(), cpu, info)[0], rel=1e-4)
    single = ens.members[0]
    assert path_outputs(single, torch.zeros(1, 1, 8, 8), arch)[0].shape == (1, 10)


def test_resume_mid_weight_phase_with_two_supernets(tmp_path, die_after_save):
    extra = ["search.supernets=2", "checkpoint.every_steps=2"]
    reference = _run(tmp_path, extra, name="ref")
    saved = die_after_save(lambda state, n: state["stage"] == 0 and state["step"] > 0)  # inside a weight epoch
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, extra, name="killed")
    assert saved[-1][0] == 0 and saved[-1][2] > 0
    resumed = _run(tmp_path, extra, name="killed", resume=True)
    strip = lambda r: [(a["choices"], a["params"]) for a in r["architectures"]]  # noqa: E731
    assert strip(resumed) == strip(reference)
    a = CheckpointStore(tmp_path / "ref" / "checkpoints").load()["supernet"]
    b = CheckpointStore(tmp_path / "killed" / "checkpoints").load()["supernet"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_reusing_an_ensemble(tmp_path, capsys):
    first = _run(tmp_path, ["search.supernets=2"])
    src = tmp_path / "run"
    again = tmp_path / "again"
    assert main(["run", QUICK, *TINY, "search.supernets=2", "--supernet", str(src), "--out", str(again)]) == 0
    res = json.loads((again / "results.json").read_text())
    assert [a["choices"] for a in res["architectures"]] == [a["choices"] for a in first["architectures"]]
    capsys.readouterr()
    code = main(["run", QUICK, *TINY, "--supernet", str(src), "--out", str(tmp_path / "one")])
    err = capsys.readouterr().err
    assert code == 2 and "search.supernets" in err and "Traceback" not in err


@pytest.mark.parametrize("args,key", [
    (["search.supernets=0"], "search.supernets"),
    (["search.supernets=17"], "search.supernets"),
])
def test_bad_supernets_setting_is_one_clear_message(tmp_path, capsys, args, key):
    code = main(["run", QUICK, *TINY, *args, "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and key in err and "Traceback" not in err


def test_method_1_with_two_supernets(tmp_path, monkeypatch):
    """search.method simultaneous (Algorithm 2): each member's W is an ensemble of two, both members updated in
    every step on paths from the searcher, and θ told the members' mean loss."""
    from automl.pipeline import search_stages
    updated, scored = [], []
    step, losses = loops.weight_step, loops.path_losses

    def spy_step(net, *a, **k):
        updated.append(id(net))
        return step(net, *a, **k)

    def spy_losses(net, *a, **k):
        scored.append(net)
        return losses(net, *a, **k)

    monkeypatch.setattr(search_stages.loops, "weight_step", spy_step)
    monkeypatch.setattr(search_stages.loops, "path_losses", spy_losses)
    res = _run(tmp_path, ["search.supernets=2", "search.method=simultaneous", "search.weight_epochs=1"])
    assert len(res["architectures"]) == 2 and res["method"] == "simultaneous"
    assert scored and all(isinstance(n, SupernetEnsemble) and len(n.members) == 2 for n in scored)
    nets = {id(m) for n in scored for m in n.members}
    assert set(updated) == nets and len(nets) == 4  # two ensembles (one per member of the family), two nets each
    # per step, each of the ensemble's two nets once: as many updates as θ steps, twice over
    assert len(updated) == 2 * len(scored)


def test_the_random_baseline_trains_no_supernet_whatever_search_supernets_says(tmp_path):
    one = _run(tmp_path, ["search.method=random"], name="one")
    four = _run(tmp_path, ["search.method=random", "search.supernets=4"], name="four")
    assert [a["choices"] for a in four["architectures"]] == [a["choices"] for a in one["architectures"]]
    assert "weights" not in four["phase_seconds"]
    assert CheckpointStore(tmp_path / "four" / "checkpoints").load().get("supernet") is None
