"""Review L: results.json, report.md and the ranking measurement (``automl rank``)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from automl.cli import main
from automl.pipeline import Run
from automl.ranking import kendall_tau_b, select_archs, space_size, spearman, summarize
from automl.recipe import load_recipe

from test_ranking import QUICK, ROOT, TINY  # the ranking tests' tiny synthetic run
NAN = float("nan")


# ---- automl rank on a path that is no run folder ---------------------------------------------------

def test_automl_rank_on_a_missing_folder_says_it_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    assert main(["rank", str(missing)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"{missing} does not exist" in err and "no recipe.resolved.yaml" not in err
    assert not missing.exists()  # nothing is created


def test_automl_rank_on_a_file_says_it_is_not_a_folder(tmp_path, capsys):
    f = tmp_path / "results.json"
    f.write_text("{}")
    assert main(["rank", str(f)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"{f} is not a folder" in err


# ---- rank correlations with a value that is not a number ------------------------------------------

@pytest.mark.parametrize("x,y", [([1, 2, NAN], [1, 2, 3]), ([1, 2, 3, 4], [4, 3, 2, NAN]),
                                 ([NAN, 1, 2], [3, 2, 1])])
def test_spearman_is_undefined_like_kendall_when_a_value_is_nan(x, y):
    """NaN has no place in an order: both correlations are NaN (results.json: null), as for Kendall's τ."""
    assert math.isnan(kendall_tau_b(x, y))
    assert math.isnan(spearman(x, y)) and math.isnan(spearman(y, x))


def test_a_diverged_retraining_leaves_both_correlations_undefined():
    losses = [(1.0, 1.0), (2.0, 2.0), (3.0, NAN)]  # (supernet loss, stand-alone test loss): the last diverged
    entries = [{"supernet_loss": s, "supernet_accuracy": 0.5, "supernet_loss_batch_stats": s,
                "supernet_accuracy_batch_stats": 0.5,
                "retrainings": [{"seed": 0, "test_loss": t, "test_accuracy": 0.5}]} for s, t in losses]
    rk = summarize(entries, "loss")
    assert rk["kendall_tau"] is None and rk["spearman"] is None


# ---- automl rank on a run killed after its own ranking's retrainings ------------------------------

def killed_after_ranking(tmp_path, die_after_save):
    """The folder of a tiny run with a ranking section (3 architectures, 1-epoch retrainings) killed after its
    ranking's retrainings, before its report."""
    out = tmp_path / "run"
    recipe = load_recipe(QUICK, TINY + ["ranking.archs=3", "ranking.retrain_epochs=1", "ranking.bn_batches=1"])
    report = 2 + 2 + 3  # weights, θ, two retrainings, three ranking stages: the report stage's index
    die_after_save(lambda state, n: state["stage"] >= report)
    with pytest.raises(KeyboardInterrupt):
        Run(recipe, out, tty=False).execute()
    return out


@pytest.mark.heavy  # a run killed in its ranking, then automl rank twice: 20 s
def test_automl_rank_with_other_epochs_never_reuses_the_killed_runs_own_retrainings(tmp_path, capsys, monkeypatch,
                                                                                     die_after_save):
    """A run with a ranking section (1-epoch retrainings) killed after them, before its report; then
    ``automl rank --retrain-epochs 2`` whose report fails (a full disk): results.json keeps this command's
    retrainings (ranking_partial) and no ranking section built from the run's 1-epoch ones, so the rerun's
    ranking is made of this command's 2-epoch retrainings."""
    import automl.pipeline.rank as rank

    out = killed_after_ranking(tmp_path, die_after_save)

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rank, "write_report", full)
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "2"]) == 2
    first = json.loads((out / "results.json").read_text())
    partial = first["ranking_partial"]
    assert partial["retrain_epochs"] == 2 and all(len(a["retrainings"]) == 1 for a in partial["archs"])
    assert first.get("ranking") is None  # none is finished: the run's own was of 1-epoch retrainings
    monkeypatch.undo()
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "2"]) == 0
    final = json.loads((out / "results.json").read_text())["ranking"]
    assert final["retrain_epochs"] == 2
    assert [a["retrainings"] for a in final["archs"]] == [a["retrainings"] for a in partial["archs"]]


# ---- the ranking's K architectures are distinct ---------------------------------------------------

def _distinct(archs: torch.Tensor) -> int:
    return len(torch.unique(archs, dim=0))


@pytest.mark.parametrize("ks,k", [([2, 2, 2], 4), ([2] * 20, 4), ([3, 3], 9)])
def test_select_archs_is_distinct_when_every_architecture_costs_the_same(ks, k):
    """A space whose choices all cost the same (say, activations only, cost params): the cheapest and the
    costliest architecture are one; it is chosen once, and the K architectures are K different ones."""
    archs = select_archs(ks, torch.ones(len(ks), max(ks)), k, seed=0)
    assert archs.shape == (k, len(ks)) and _distinct(archs) == k


@pytest.mark.parametrize("ks,k,pool", [([4] * 6, 200, 64), ([4] * 6, 4000, 64), ([2] * 30, 300, 64)])
def test_select_archs_is_distinct_when_k_exceeds_the_sampled_pool(ks, k, pool):
    """A space larger than the pool, K larger than the distinct architectures the pool's tilted samples hold:
    still K different architectures, within the space, in increasing cost."""
    g = torch.Generator().manual_seed(1)
    costs = torch.rand(len(ks), max(ks), generator=g)
    assert space_size(ks) > pool
    archs = select_archs(ks, costs, k, seed=0, pool=pool)
    assert archs.shape == (k, len(ks)) and _distinct(archs) == k
    assert all(int(archs[:, d].max()) < kd for d, kd in enumerate(ks))
    total = costs.double().gather(1, archs.t()).sum(0)
    assert bool((total[1:] >= total[:-1]).all())


# ---- the plots leave the caller's matplotlib as it was ----------------------------------------------

def test_the_report_plots_keep_the_callers_matplotlib_backend_and_figures(tmp_path):
    """Run(...).execute() from a notebook or a script that plots: writing pareto.png and ranking.png neither
    switches the process's matplotlib backend (a notebook's inline one) nor opens or closes pyplot figures."""
    import matplotlib
    import matplotlib.pyplot as plt

    from automl.report import plot_pareto, plot_ranking

    archs = [{"epsilon": e, "budget": None, "choices": ["a"], "params": 10 + i, "cost": 10.0 + i,
              "test_accuracy": 0.5 + i / 10} for i, e in enumerate((0.0, 0.5))]
    rk_arch = {"supernet_loss": 1.0, "test_loss": 1.0, "params": 10}
    results = {"recipe": "r", "method": "importance_sampling", "cost_metric": "params", "architectures": archs,
               "ranking": {"archs": [rk_arch, {**rk_arch, "supernet_loss": 2.0, "test_loss": 3.0}],
                           "truth": "loss", "kendall_tau": 1.0, "spearman": 1.0, "retrain_epochs": 1}}
    before = matplotlib.get_backend()
    try:
        plt.switch_backend("svg")
        mine = plt.figure()
        assert plot_pareto(results).startswith(b"\x89PNG") and plot_ranking(results).startswith(b"\x89PNG")
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == [mine.number]
    finally:
        plt.close("all")
        plt.switch_backend(before)


# ---- the command that continues a stopped automl rank ----------------------------------------------

def test_the_continue_command_of_automl_rank_keeps_a_device_flag_that_differs_from_the_runs(tmp_path):
    """A run of device cuda ranked with ``--device cpu`` on a machine without a GPU: the command printed to go on
    after a stop (or a full disk) says --device cpu too (without it, it stops on the run's cuda); with the run's
    own device it is the command as before."""
    from automl.pipeline.rank import rank_command

    out = tmp_path / "run"
    out.mkdir()
    resolved = out / "recipe.resolved.yaml"
    resolved.write_text(load_recipe(QUICK, TINY + ["device=cuda"]).to_yaml())
    on_cpu = load_recipe(resolved, ["ranking={}", "ranking.archs=3", "device=cpu"])
    assert rank_command(on_cpu, out).endswith(" --truth loss --device cpu")
    own = load_recipe(resolved, ["ranking={}", "ranking.archs=3"])
    assert rank_command(own, out) == f"automl rank {out} --archs 3 --retrain-epochs 1 --seeds 1 --truth loss"


# ---- automl rank after the run's space file was edited ---------------------------------------------

def test_automl_rank_after_the_space_file_changed_shape_is_one_clear_message(tmp_path, capsys):
    """The run's .space file edited since the run (its head narrowed): the checkpoint's supernet no longer fits
    what the file builds. One message naming the file, exit 2; results.json is left as it was."""
    space = tmp_path / "digits.space"
    space.write_text((ROOT / "spaces" / "digits.space").read_text())
    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY + [f"space={space}"]), out, tty=False).execute()
    before = (out / "results.json").read_text()
    text = space.read_text()
    assert "param head = 128" in text
    space.write_text(text.replace("param head = 128", "param head = 64"))
    capsys.readouterr()
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert str(space) in err and "changed since the run" in err
    assert (out / "results.json").read_text() == before


def test_automl_rank_after_an_edit_that_keeps_the_shapes_is_refused_but_not_after_a_comment(tmp_path, capsys):
    """The stride moved from stage s2 to s3: every weight keeps its shape, so the supernet still loads, but it was
    trained as another network; rank ranked it silently. A comment added changes nothing the run depends on."""
    space = tmp_path / "digits.space"
    text = (ROOT / "spaces" / "digits.space").read_text()
    space.write_text(text)
    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY + [f"space={space}"]), out, tty=False).execute()
    before = (out / "results.json").read_text()
    moved = text.replace("width 32 * width stride 2", "width 32 * width").replace("width 48 * width",
                                                                                   "width 48 * width stride 2")
    assert moved.count("stride 2") == text.count("stride 2") and moved != text
    space.write_text(moved)
    capsys.readouterr()
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "says something else" in err and str(space) in err, err
    assert (out / "results.json").read_text() == before
    space.write_text("# a comment\n" + text)
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "0"]) == 0
    assert len(json.loads((out / "results.json").read_text())["ranking"]["archs"]) == 3
