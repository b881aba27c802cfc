"""The supernet's ranking (automl/ranking.py, the recipe's ``ranking`` section, ``automl rank``) and the
weight-phase sampling options (automl/train/sampling.py)."""

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from automl.cli import main
from automl.errors import UserError
from automl.pipeline import Run
from automl.ranking import kendall_tau_b, mean_over_seeds, pair_counts, select_archs, spearman, summarize
from automl.recipe import load_recipe
from automl.train.sampling import fair_archs, sandwich_archs, sandwich_ends, uniform_archs

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
TINY = ["data.dataset=synthetic", "data.synthetic.channels=1", "data.synthetic.num_train=128",
        "data.synthetic.num_test=64", "data.batch_size=32", "data.theta_batch_size=32", "search.weight_epochs=1",
        "search.theta_epochs=1", "search.epsilons=[0,0.5]", "search.lam=2", "retrain.epochs=1",
        "export.onnx=false", "search.log_every=2"]


# ---- rank correlations against brute force ------------------------------------------------------

def _brute_tau_b(x, y):
    c = d = tx = ty = 0
    n = len(x)
    for i, j in itertools.combinations(range(n), 2):
        sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        c += sx * sy > 0
        d += sx * sy < 0
        tx += sx == 0
        ty += sy == 0
    n0 = n * (n - 1) / 2
    return (c - d) / math.sqrt((n0 - tx) * (n0 - ty))


def _brute_spearman(x, y):
    def ranks(v):  # 1 + number smaller + half the others equal to it
        return [1 + sum(w < a for w in v) + (sum(w == a for w in v) - 1) / 2 for a in v]
    rx, ry = np.array(ranks(list(x))), np.array(ranks(list(y)))
    return float(np.corrcoef(rx, ry)[0, 1])


@pytest.mark.parametrize("seed", range(6))
def test_tau_b_and_spearman_equal_brute_force_with_and_without_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 25))
    # seeds 0-2: coarse values with many ties; 3-5: continuous values
    x = rng.integers(0, 4, n).astype(float) if seed < 3 else rng.normal(size=n)
    y = x + rng.normal(scale=1.0, size=n) if seed % 2 else rng.integers(0, 5, n).astype(float)
    if seed < 3:
        y = np.round(y)
    assert kendall_tau_b(x, y) == pytest.approx(_brute_tau_b(x, y), abs=1e-12)
    assert spearman(x, y) == pytest.approx(_brute_spearman(x, y), abs=1e-12)
    p = pair_counts(x, y)
    assert p["concordant"] + p["discordant"] + p["tied"] == p["total"] == n * (n - 1) // 2


def test_perfect_and_reversed_orders_and_constants():
    x = [3.0, 1.0, 2.0, 5.0]
    assert kendall_tau_b(x, [2 * v for v in x]) == 1.0 and spearman(x, x) == pytest.approx(1.0)
    assert kendall_tau_b(x, [-v for v in x]) == -1.0 and spearman(x, [-v for v in x]) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau_b(x, [1.0] * 4)) and math.isnan(spearman(x, [1.0] * 4))


# ---- which architectures are ranked -------------------------------------------------------------

def test_select_archs_spreads_over_the_cost_range_without_repeats():
    costs = torch.tensor([[0.0, 1.0, 5.0]] * 4 + [[0.0, 2.0, 0.0]] * 3, dtype=torch.float64)
    nc = [3] * 4 + [2] * 3
    a = select_archs(nc, costs, 10, seed=0)
    assert a.shape == (10, 7) and len({tuple(r) for r in a.tolist()}) == 10
    c = costs.gather(1, a.t()).sum(0)
    assert float(c.min()) == 0.0 and float(c.max()) == 26.0  # the cheapest and the costliest (small space: all)
    assert torch.all(c[1:] >= c[:-1])  # targets in increasing order
    assert torch.equal(a, select_archs(nc, costs, 10, seed=0))
    with pytest.raises(ValueError, match="only 648"):
        select_archs(nc, costs, 649, seed=0)


def test_select_archs_samples_a_large_space():
    nc = [4] * 12  # 16.7 M architectures: a seeded pool
    costs = torch.arange(4, dtype=torch.float64).expand(12, 4).clone()
    a = select_archs(nc, costs, 20, seed=3)
    c = costs.gather(1, a.t()).sum(0)
    assert c[0] == 0 and c[-1] == 36 and len({tuple(r) for r in a.tolist()}) == 20
    assert float((c[1:] - c[:-1]).max()) <= 3  # evenly spread (36 / 19 apart): no big gap


# ---- weight-phase sampling ----------------------------------------------------------------------

@pytest.mark.parametrize("lam", [2, 3, 8, 13])
def test_fair_archs_cover_every_choice_as_equally_as_possible(lam):
    nc = [3, 4, 2, 1, 5]
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        a = fair_archs(nc, lam, g)
        assert a.shape == (lam, len(nc))
        for d, k in enumerate(nc):
            counts = torch.bincount(a[:, d], minlength=k)
            assert len(counts) == k
            assert counts.min() >= lam // k and counts.max() <= -(-lam // k), (d, counts)


def test_fair_archs_marginals_are_uniform_and_decisions_independent():
    nc, lam, steps = [3, 4], 8, 20000
    g = torch.Generator().manual_seed(1)
    a = torch.cat([fair_archs(nc, lam, g) for _ in range(steps)]).view(steps, lam, 2)
    for row in (0, lam - 1):  # every row position, not only the sum over rows, is uniform
        for d, k in enumerate(nc):
            freq = torch.bincount(a[:, row, d], minlength=k).double() / steps
            assert torch.allclose(freq, torch.full((k,), 1 / k, dtype=torch.float64), atol=0.015), (row, d, freq)
    joint = torch.zeros(3, 4)
    for r in a[:, 0].tolist():
        joint[r[0], r[1]] += 1
    assert torch.allclose(joint / steps, torch.full((3, 4), 1 / 12), atol=0.01)


def test_sandwich_archs_start_with_largest_and_smallest():
    ends = (torch.tensor([1, 0]), torch.tensor([0, 1]))
    a = sandwich_archs([3, 2], ends, 6, torch.Generator().manual_seed(0))
    assert a[0].tolist() == [1, 0] and a[1].tolist() == [0, 1] and a.shape == (6, 2)
    assert torch.equal(a[2:], uniform_archs([3, 2], 4, torch.Generator().manual_seed(0)))


# ---- the ranking section in a run, and automl rank ----------------------------------------------

def _check_ranking(rk, k, seeds=1, truth="loss"):
    assert set(rk) >= {"kendall_tau", "spearman", "archs", "pairs", "seeds", "truth"}
    assert rk["seeds"] == seeds and rk["truth"] == truth
    assert len(rk["archs"]) == k and rk["pairs"]["total"] == k * (k - 1) // 2
    for e in rk["archs"]:
        assert {"choices", "params", "cost", "supernet_loss", "supernet_loss_batch_stats", "supernet_accuracy",
                "test_accuracy", "test_loss", "retrainings"} <= set(e)
        assert 0.0 <= e["test_accuracy"] <= 1.0 and e["supernet_loss"] > 0 and len(e["retrainings"]) == seeds
        assert [r["seed"] for r in e["retrainings"]] == list(range(seeds))  # the run's seed 0, then 1, ...
    if truth == "loss":
        score, target = [-e["supernet_loss"] for e in rk["archs"]], [-e["test_loss"] for e in rk["archs"]]
    else:
        score, target = [e["supernet_accuracy"] for e in rk["archs"]], [e["test_accuracy"] for e in rk["archs"]]
    assert rk["kendall_tau"] == pytest.approx(_brute_tau_b(score, target)) or math.isnan(rk["kendall_tau"])
    costs = [e["cost"] for e in rk["archs"]]
    assert costs == sorted(costs) and costs[0] < costs[-1]


def test_mean_over_seeds_and_summary_equal_a_loop():
    rng = np.random.default_rng(3)
    entries = [{"supernet_loss": float(rng.uniform(0.5, 2)), "supernet_loss_batch_stats": float(rng.uniform(0.5, 2)),
                "supernet_accuracy": float(rng.uniform()), "supernet_accuracy_batch_stats": float(rng.uniform()),
                "retrainings": [{"seed": s, "test_loss": float(rng.uniform()), "test_accuracy": float(rng.uniform())}
                                for s in range(3)]} for _ in range(6)]
    for truth in ("loss", "accuracy"):
        rk = summarize(entries, truth)
        key = f"test_{truth}"
        means = []
        for e in entries:
            total = 0.0
            for r in e["retrainings"]:
                total += r[key]
            means.append(total / len(e["retrainings"]))
        assert [a[key] for a in rk["archs"]] == pytest.approx(means)
        assert [mean_over_seeds(e["retrainings"])[key] for e in entries] == pytest.approx(means)
        score = [-e["supernet_loss"] if truth == "loss" else e["supernet_accuracy"] for e in entries]
        target = [-m if truth == "loss" else m for m in means]
        assert rk["kendall_tau"] == pytest.approx(_brute_tau_b(score, target))
        assert rk["spearman"] == pytest.approx(_brute_spearman(score, target))
        assert rk["seeds"] == 3 and rk["truth"] == truth


# heavy (11 s): results' ranking fields are also test_automl_rank_on_a_finished_run's, and a resume of a run
# stopped in its ranking test_review_s's
@pytest.mark.heavy
def test_ranking_section_writes_results_fields_on_synthetic_data_and_resumes(tmp_path, die_after_save):
    recipe = load_recipe(QUICK, TINY + ["ranking.archs=3", "ranking.retrain_epochs=2", "ranking.bn_batches=1",
                                        "ranking.seeds=2"])
    res = Run(recipe, tmp_path / "run", tty=False).execute()
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(res))
    _check_ranking(on_disk["ranking"], 3, seeds=2)
    # another initialisation and batch order per seed: the two retrainings of an architecture differ
    assert all(len({r["test_loss"] for r in e["retrainings"]}) == 2 for e in on_disk["ranking"]["archs"])
    assert (tmp_path / "run" / "ranking.png").read_bytes()[:4] == b"\x89PNG"
    assert "Kendall's τ" in (tmp_path / "run" / "report.md").read_text()

    # killed mid-way through the stand-alone training of the second ranked architecture, then resumed
    # (checkpoints: weights, θ, retrain/0 after its last epoch and end, retrain/1 the same, ranking/0 epoch 1, after
    # its last and end, ranking/0/1 epoch 1)
    die_after_save(lambda state, n: n == 10)
    with pytest.raises(KeyboardInterrupt):
        Run(recipe, tmp_path / "killed", tty=False).execute()
    resumed = Run(recipe, tmp_path / "killed", resume=True, tty=False).execute()
    assert resumed["ranking"]["archs"] == res["ranking"]["archs"]


def test_automl_rank_on_a_finished_run(tmp_path, capsys):
    recipe = load_recipe(QUICK, TINY)
    res = Run(recipe, tmp_path / "run", tty=False).execute()
    assert "ranking" not in res
    ckpt_index = (tmp_path / "run" / "checkpoints" / "checkpoints.json").read_text()
    # 0 epochs: the supernet's own weights, one evaluation whatever --seeds says
    assert main(["rank", str(tmp_path / "run"), "--archs", "4", "--retrain-epochs", "0", "--seeds", "3",
                 "--truth", "accuracy"]) == 0
    assert "kendall_tau" in capsys.readouterr().out
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    _check_ranking(on_disk["ranking"], 4, truth="accuracy")
    assert "accuracy on D_θ" in (tmp_path / "run" / "report.md").read_text()
    assert on_disk["architectures"] == json.loads(json.dumps(res["architectures"]))
    assert (tmp_path / "run" / "checkpoints" / "checkpoints.json").read_text() == ckpt_index  # untouched


def test_automl_rank_on_a_full_disk_is_a_user_error_and_its_rerun_keeps_the_retrainings(tmp_path, capsys,
                                                                                         monkeypatch):
    import automl.pipeline.final_stages as fs
    import automl.pipeline.rank as rank

    Run(load_recipe(QUICK, TINY), tmp_path / "run", tty=False).execute()
    run = str(tmp_path / "run")

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rank, "write_report", full)  # the retrainings are recorded, the report is not
    assert main(["rank", run, "--archs", "3"]) == 2
    err = capsys.readouterr().err
    assert f"cannot write the results in {run} (No space left on device)" in err and "Traceback" not in err
    assert f"(No space left on device); free space and continue with: automl rank {run} --archs 3" in err
    assert "ranking" not in json.loads((tmp_path / "run" / "results.json").read_text())
    monkeypatch.undo()
    calls = []
    real = fs.retrain
    monkeypatch.setattr(fs, "retrain", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert main(["rank", run, "--archs", "3"]) == 0
    assert calls == []  # every retraining was recorded before the report failed
    _check_ranking(json.loads((tmp_path / "run" / "results.json").read_text())["ranking"], 3)


@pytest.mark.heavy  # CI only (pytest -m heavy): the default suite stays under 15 minutes
def test_automl_rank_reuses_the_retrainings_an_earlier_ranking_recorded(tmp_path, capsys, monkeypatch):
    import automl.pipeline.final_stages as fs

    calls = []
    real = fs.retrain
    # the ranking's retrainings (the family's own pass no data_seed)
    monkeypatch.setattr(fs, "retrain", lambda *a, **k: ("data_seed" in k and calls.append(k["data_seed"]))
                        or real(*a, **k))
    recipe = load_recipe(QUICK, TINY)
    Run(recipe, tmp_path / "run", tty=False).execute()
    run = str(tmp_path / "run")
    calls.clear()
    assert main(["rank", run, "--archs", "3", "--seeds", "2"]) == 0
    assert sorted(calls) == [0, 0, 0, 1, 1, 1]
    two = json.loads((tmp_path / "run" / "results.json").read_text())["ranking"]
    assert two["retrain_epochs"] == 1
    calls.clear()
    assert main(["rank", run, "--archs", "3", "--seeds", "3"]) == 0
    assert calls == [2, 2, 2]  # seeds 0 and 1 of every architecture were recorded
    assert "6 of 9 retrainings were recorded" in capsys.readouterr().out
    three = json.loads((tmp_path / "run" / "results.json").read_text())["ranking"]
    _check_ranking(three, 3, seeds=3)
    for a, b in zip(two["archs"], three["archs"]):
        assert b["retrainings"][:2] == a["retrainings"] and b["params"] == a["params"]
    # the same as a run that retrains all three seeds itself
    fresh = Run(load_recipe(QUICK, TINY + ["ranking.archs=3", "ranking.seeds=3"]), tmp_path / "fresh",
                tty=False).execute()["ranking"]
    assert [a["retrainings"] for a in fresh["archs"]] == [a["retrainings"] for a in three["archs"]]
    assert fresh["kendall_tau"] == three["kendall_tau"]
    # other epochs or other architectures: nothing is reused
    calls.clear()
    assert main(["rank", run, "--archs", "3", "--seeds", "1", "--retrain-epochs", "2"]) == 0
    assert calls == [0, 0, 0]
    calls.clear()
    assert main(["rank", run, "--archs", "4", "--seeds", "1"]) == 0
    assert calls == [0, 0, 0, 0]


@pytest.mark.parametrize("args,key", [
    (["ranking.archs=2"], "ranking.archs"),
    (["ranking.archs=200000"], "ranking.archs"),  # the digits space has 110,592 architectures
    (["ranking.archs=5", "ranking.retrain_epochs=-1"], "ranking.retrain_epochs"),
    (["ranking.archs=5", "search.method=random"], "ranking"),
    (["ranking.archs=5", "ranking.seeds=0"], "ranking.seeds"),
    (["ranking.archs=5", "ranking.seeds=1.5"], "ranking.seeds"),
    (["ranking.archs=5", "ranking.seeds=two"], "ranking.seeds"),
    (["ranking.archs=5", "ranking.truth=tau"], "ranking.truth"),
])
def test_bad_ranking_settings_are_one_clear_message(tmp_path, capsys, args, key):
    rc = main(["run", QUICK, *TINY, *args, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and f"{key}:" in err, err


def test_automl_rank_bad_settings(tmp_path, capsys):
    assert main(["rank", str(tmp_path / "nothing")]) == 2
    assert "recipe.resolved.yaml" in capsys.readouterr().err
    recipe = load_recipe(QUICK, TINY + ["search.method=random"])
    Run(recipe, tmp_path / "run", tty=False).execute()
    assert main(["rank", str(tmp_path / "run"), "--archs", "3"]) == 2
    assert "supernet" in capsys.readouterr().err



@pytest.fixture
def torch_threads():
    saved = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(saved)


def test_automl_rank_computes_with_the_runs_thread_count_and_leaves_its_record(tmp_path, capsys, monkeypatch,
                                                                                torch_threads):
    import automl.pipeline.final_stages as fs

    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY + ["threads=1"]), out, tty=False).execute()
    record = (out / "threads.json").read_bytes()
    (out / "results.json").unlink()  # automl rank rebuilds it
    torch_threads(2)  # a shell that did not set OMP_NUM_THREADS
    seen = []
    real = fs.evaluate
    monkeypatch.setattr(fs, "evaluate", lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k))
    assert main(["rank", str(out), "--archs", "3"]) == 0
    assert seen and set(seen) == {1}
    assert "threads: 1" in capsys.readouterr().out
    assert (out / "threads.json").read_bytes() == record
    assert json.loads((out / "results.json").read_text())["threads"]["threads"] == 1


def test_automl_rank_on_a_run_still_writing_says_to_rank_again_after_it(tmp_path, capsys):
    from test_preempt import _hold_lock

    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY), out, tty=False).execute()
    holder = _hold_lock(out)
    try:
        assert main(["rank", str(out), "--archs", "3"]) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"{out} is in use" in err and f"then run automl rank {out} again" in err
    assert "--resume" not in err and "--out" not in err


def test_automl_rank_locks_a_folder_that_lost_its_lock_file(tmp_path, monkeypatch):
    from automl._lock import RunLock
    import automl.pipeline.rank as rank

    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY), out, tty=False).execute()
    (out / ".lock").unlink()  # a copy made without dot files
    held = []
    real = rank.rank_finished_run

    def probe(run):
        with pytest.raises(UserError, match="is in use"):  # a second writer is refused meanwhile
            RunLock(out).acquire()
        held.append(True)
        return real(run)

    monkeypatch.setattr(rank, "rank_finished_run", probe)
    monkeypatch.setattr("automl.pipeline.run.rank_finished_run", probe)
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "0"]) == 0
    assert held == [True]


def test_automl_rank_refuses_a_run_that_has_not_finished(tmp_path, capsys, die_after_save):
    out = tmp_path / "run"
    die_after_save(lambda state, n: state["stage"] >= 2)  # after the weight and θ phases
    with pytest.raises(KeyboardInterrupt):
        Run(load_recipe(QUICK, TINY), out, tty=False).execute()
    assert main(["rank", str(out), "--archs", "3"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "has not finished" in err and "--resume" in err
    assert not (out / "results.json").exists()


# ---- the training options in the steps --------------------------------------------------------

@pytest.fixture(scope="module")
def digits_supernet():
    from automl.compile import load_compiled

    sp = load_compiled(ROOT / "spaces" / "digits.space")
    torch.manual_seed(0)
    return sp, sp.build_supernet()


def test_weight_step_inplace_distillation_gradient(digits_supernet):
    """distill: path 0 learns the labels, the others path 0's detached soft predictions (BigNAS)."""
    from automl.train.distributed import DistInfo
    from automl.train.loops import weight_step

    sp, net = digits_supernet
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)
    archs = sandwich_archs(sp.num_choices, sandwich_ends(sp), 3, g)
    net.eval()  # BatchNorm fixed, so the two computations see the same function
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    weight_step(net, x, y, archs, opt, torch.nn.CrossEntropyLoss(), DistInfo(), None, torch.device("cpu"),
                distill=True)
    got = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    net.zero_grad(set_to_none=True)
    teacher = torch.softmax(net(x, archs[0]).detach(), 1)
    loss = torch.nn.functional.cross_entropy(net(x, archs[0]), y)
    for a in archs[1:]:
        loss = loss - (teacher * torch.log_softmax(net(x, a), 1)).sum(1).mean()
    (loss / 3).backward()
    want = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    assert got.keys() == want.keys()
    for n in want:
        torch.testing.assert_close(got[n], want[n], rtol=1e-4, atol=1e-6)
    net.zero_grad(set_to_none=True)


def test_path_losses_with_recalibrated_batchnorm(digits_supernet):
    from automl.train.loops import path_losses, recalibrate_bn

    sp, net = digits_supernet
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)
    calib = [torch.randn(16, 1, 8, 8, generator=g) + 1.0 for _ in range(2)]
    archs = fair_archs(sp.num_choices, 2, g)
    net.train()
    got = path_losses(net, x, y, archs, torch.device("cpu"), calibration=calib)
    assert net.training  # left as the θ phase keeps it
    batch = path_losses(net, x, y, archs, torch.device("cpu"))
    for i, a in enumerate(archs):
        recalibrate_bn(net, lambda b: net(b, a), calib)
        with torch.no_grad():
            want = torch.nn.functional.cross_entropy(net(x, a), y)
        assert float(got[i]) == pytest.approx(float(want), rel=1e-5)
        assert abs(float(got[i]) - float(batch[i])) > 1e-4  # the batch's own statistics give another loss
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert bn.momentum == 0.1  # restored after the cumulative average


@pytest.mark.heavy  # CI only (pytest -m heavy): the default suite stays under 15 minutes
def test_training_options_reach_the_run(tmp_path):
    """Each option changes what the weight or θ phase computes (their first logged losses differ from the
    default run's), and the run completes."""
    def first_losses(name, extra):
        recipe = load_recipe(QUICK, TINY + ["search.log_every=1"] + extra)
        Run(recipe, tmp_path / name, tty=False).execute()
        rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        return {ph: next(r["loss"] for r in rows if r.get("phase") == ph) for ph in ("weights", "theta")}

    base = first_losses("base", [])
    fair = first_losses("fair", ["search.weight_sampling=fair"])
    recal = first_losses("recal", ["search.theta_bn=recalibrate", "search.theta_bn_batches=1"])
    sandwich = first_losses("sandwich", ["search.weight_sampling=sandwich", "search.lam=3"])
    distill = first_losses("distill", ["search.weight_sampling=sandwich", "search.lam=3",
                                       "search.inplace_distill=true"])
    assert fair["weights"] != base["weights"] and sandwich["weights"] != base["weights"]
    assert recal["weights"] == base["weights"] and recal["theta"] != base["theta"]  # θ phase only
    # the first step's loss is the same (path 0 is the teacher); the steps after it differ
    assert distill["theta"] != sandwich["theta"]


def _but_threads(results: dict) -> dict:
    """results.json but its threads record (a resumed run's says it kept the count it started with)."""
    return {k: v for k, v in results.items() if k != "threads"}


def _lines_but_clock(out: Path) -> list[str]:
    return [line.split(', "seconds"')[0] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_resume_of_a_finished_run_keeps_the_ranking_automl_rank_recorded(tmp_path, capsys):
    recipe = load_recipe(QUICK, TINY)
    out = tmp_path / "run"
    Run(recipe, out, tty=False).execute()
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "1"]) == 0
    ranked = json.loads((out / "results.json").read_text())
    lines = _lines_but_clock(out)
    assert any('"phase": "ranking' in line for line in lines)
    # a requeue script that always passes --resume: the finished run only writes its report again
    res = Run(recipe, out, resume=True, tty=False).execute()
    assert res["ranking"] == ranked["ranking"]
    assert _but_threads(json.loads((out / "results.json").read_text())) == _but_threads(ranked)
    assert "Kendall's τ" in (out / "report.md").read_text()
    assert _lines_but_clock(out) == lines  # the ranking's lines are kept too


def test_resume_of_a_run_with_its_own_ranking_writes_it_as_it_was(tmp_path):
    recipe = load_recipe(QUICK, TINY + ["ranking.archs=3", "ranking.bn_batches=1"])
    out = tmp_path / "run"
    first = json.loads(json.dumps(Run(recipe, out, tty=False).execute()))
    assert Run(recipe, out, resume=True, tty=False).execute()["ranking"] == first["ranking"]
    assert _but_threads(json.loads((out / "results.json").read_text())) == _but_threads(first)
