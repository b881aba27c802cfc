"""Review AU: non-finite values in the ranking's statistics (automl/ranking.py) and user errors in the data
(automl/train/data.py)."""

from __future__ import annotations

import math
import pickle
import warnings

import numpy as np
import pytest
import torch

from automl.errors import DataError
from automl.ranking import kendall_tau_b, pair_counts, spearman, summarize
from automl.report import render_markdown
from automl.recipe import DataConfig
from automl.train.data import build_data
from test_review_ao import _member, _ranking, _results
from test_user_errors_data import CIFAR_FILES, QUICK, write_cifar

NAN, INF = float("nan"), float("inf")


# ---- 1. ranking: a value that is NaN or ±inf -------------------------------------------------------------

def test_pair_counts_add_up_with_a_nan():
    """A pair with a NaN is counted as undefined, so the four counts add up to the total."""
    p = pair_counts([1.0, 2.0, NAN, 4.0], [1.0, 2.0, 3.0, 4.0])
    assert p == {"total": 6, "concordant": 3, "discordant": 0, "tied": 0, "undefined": 3}
    p = pair_counts([NAN, 2.0, 1.0], [3.0, NAN, 2.0])  # only architecture 2 has two finite values
    assert p["undefined"] == 3 and p["concordant"] + p["discordant"] + p["tied"] == 0


@pytest.mark.parametrize("score", [[1.0, 2.0, INF, 4.0], [1.0, -INF, 3.0, 4.0], [1.0, 2.0, INF, INF]])
def test_an_infinite_value_leaves_both_correlations_undefined_as_nan_does(score):
    """results.json writes inf as null, which automl rank reads back as NaN: inf must give what NaN gives (both
    correlations undefined), never one defined and the other not, nor a warning on stderr."""
    truth = [1.0, 2.0, 3.0, 4.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(kendall_tau_b(score, truth)) and math.isnan(spearman(score, truth))
        assert math.isnan(kendall_tau_b(truth, score)) and math.isnan(spearman(truth, score))
        p = pair_counts(score, truth)
    assert p["undefined"] == sum(1 for i in range(4) for j in range(i + 1, 4)
                                 if not (math.isfinite(score[i]) and math.isfinite(score[j])))
    assert p["concordant"] + p["discordant"] + p["tied"] + p["undefined"] == p["total"] == 6


def _entries(supernet_losses, test_losses):
    return [{"choices": [], "supernet_loss": s, "supernet_accuracy": 0.5, "supernet_loss_batch_stats": s,
             "supernet_accuracy_batch_stats": 0.5, "retrainings": [{"seed": 0, "test_loss": t, "test_accuracy": 0.5}]}
            for s, t in zip(supernet_losses, test_losses)]


@pytest.mark.parametrize("bad", [INF, NAN])
def test_a_supernet_loss_that_overflowed_gives_the_ranking_that_results_json_reads_back(bad):
    """One architecture's supernet loss overflowed: the section computed in the run equals the one computed
    again from results.json (where the value is null, read as NaN), and its pairs add up."""
    test = [1.0, 2.1, 3.0, 4.2, 5.5]
    run = summarize(_entries([1.0, 2.0, bad, 4.0, 5.0], test))
    again = summarize(_entries([1.0, 2.0, NAN, 4.0, 5.0], test))
    for key in ("kendall_tau", "spearman", "kendall_tau_batch_stats", "pairs"):
        assert run[key] == again[key], key
    assert run["kendall_tau"] is None and run["spearman"] is None
    assert run["pairs"] == {"total": 10, "concordant": 6, "discordant": 0, "tied": 0, "undefined": 4}


# ---- 2. data: CIFAR-10 batches that cannot be read ---------------------------------------------------------

def _cut(folder, name="data_batch_2"):
    path = folder / name
    path.write_bytes(path.read_bytes()[:500])
    return path


@pytest.mark.parametrize("download", [False, True])
def test_a_truncated_cifar_batch_says_to_replace_it_not_to_download(tmp_path, download):
    """The files are there, so data.download (which fetches missing ones) would not replace a damaged one: the
    message says to delete the folder first, as for a batch with wrong contents."""
    folder = write_cifar(tmp_path)
    bad = _cut(folder)
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="cifar10", root=str(tmp_path), download=download), ".", 0, "cpu")
    text = str(info.value)
    assert str(bad) in text and "truncated" in text and f"Delete {folder} and run with data.download=true" in text
    assert "Get it with data.download=true" not in text and ".." not in text.replace("...", "")


def test_a_cifar_batch_with_a_multi_line_reason_is_one_line(tmp_path):
    folder = write_cifar(tmp_path)
    torch.save({"data": torch.zeros(10, 3072, dtype=torch.uint8), "labels": [0] * 10}, folder / "test_batch")
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="cifar10", root=str(tmp_path)), ".", 0, "cpu")
    text = str(info.value)
    assert str(folder / "test_batch") in text and "\n" not in text


def test_a_truncated_cifar_batch_through_the_cli_exits_2_in_one_line(tmp_path, capsys):
    from automl.cli import main

    folder = write_cifar(tmp_path / "data")
    bad = _cut(folder, "test_batch")
    rc = main(["run", QUICK, "data.dataset=cifar10", f"data.root={tmp_path / 'data'}", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and err.count("error:") == 1 and len(err.strip().splitlines()) == 1, err
    assert str(bad) in err and f"Delete {folder}" in err


def test_cifar_batches_pickled_with_protocol_5_load(tmp_path):
    """Protocol 5 (Python 3.14's default pickle protocol) writes arrays through numpy's ``_frombuffer``: a
    plain array, which the arrays-only unpickler accepts."""
    folder = write_cifar(tmp_path)
    for name in CIFAR_FILES:
        batch = pickle.loads((folder / name).read_bytes())
        batch[b"labels"] = np.asarray(batch[b"labels"], dtype=np.int64)
        (folder / name).write_bytes(pickle.dumps(batch, protocol=5))
    d = build_data(DataConfig(dataset="cifar10", root=str(tmp_path), theta_split=0.5), ".", 0, "cpu")
    x, y = next(iter(d.test.epoch(0)))
    assert len(d.full.indices) == 50 and x.shape[1:] == (3, 32, 32)
    first = pickle.loads((folder / "test_batch").read_bytes())
    assert torch.equal(y.cpu(), torch.as_tensor(first[b"labels"][:len(y)]))


def test_report_md_counts_the_pairs_with_a_value_that_is_not_a_number():
    """report.md's pairs sentence adds up to the total: the undefined pairs are said, where they are any."""
    rk = _ranking()
    rk["archs"][1]["supernet_accuracy"] = NAN
    rk["pairs"] = {"concordant": 1, "discordant": 0, "tied": 0, "undefined": 2, "total": 3}
    rk["kendall_tau"] = rk["spearman"] = None
    md = render_markdown(_results([_member(100, 0.5)], ranking=rk))
    assert "(1 of 3 pairs in the same order, 0 reversed, 0 tied, 2 with a value that is NaN or inf)" in md, md
    md = render_markdown(_results([_member(100, 0.5)], ranking=_ranking()))
    assert "0 tied)" in md and "NaN or inf)" not in md
