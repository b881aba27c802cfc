"""Review KP of the benchmark scripts.

1. ``ranking.py``: a RECIPE is "given" when it is on the command line, whatever path spells it. The default
   recipe given explicitly (its absolute path) with ``--replay`` or ``--one-se`` was taken for "none given" and
   ignored without a word, while the same file as ``recipes/quickstart.yaml`` was refused; now both are refused.
   A RECIPE left out is still the quickstart for everything that reads it, and --help still names it.
2. ``export_latency.py``: the table's milliseconds keep 3 significant figures where rounding reaches the next
   power of ten (999.6 was printed ``1000`` as if 4 figures were meant, 0.09996 ``0.1000``; now ``1000`` and
   ``0.100``); the JSON line keeps every digit.

Nothing here runs a search or times a network: the functions that would are replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
# fixtures: ranking.py with its work replaced, a finished run's folder
from test_review_kb import Started, _refused, ranking, run  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"


# ---------------------------------------------------------------------------------------- ranking.py


# the default recipe, spelled three ways (the test runs from the repository root for the relative one)
SPELLINGS = {"absolute": str(QUICKSTART), "relative": "recipes/quickstart.yaml",
             "roundabout": f"{ROOT}/recipes/../recipes/quickstart.yaml"}


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_replay_refuses_the_default_recipe_given_in_any_spelling(ranking, capsys, monkeypatch, tmp_path, run,
                                                                  spelling):
    # was: the absolute path (the default's own string) was taken for "no RECIPE" and ignored
    monkeypatch.chdir(ROOT)
    recipe = SPELLINGS[spelling]
    err = _refused(capsys, ranking, ["--replay", str(run), recipe, "search.lam=4", "--out", str(tmp_path / "rk")])
    assert f"error: {recipe}: --replay replays each run with its own recipe" in err and "leave it out" in err, err


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_one_se_refuses_the_default_recipe_given_in_any_spelling(ranking, capsys, monkeypatch, tmp_path, run,
                                                                  spelling):
    # was: the absolute path was ignored without a word
    monkeypatch.chdir(ROOT)
    recipe = SPELLINGS[spelling]
    err = _refused(capsys, ranking, ["--one-se", str(run), recipe, "--out", str(tmp_path / "rk")])
    assert f"error: {recipe}: --one-se reads each run's own recipe" in err and "leave it out" in err, err


@pytest.mark.parametrize("argv, recipe, overrides",
                         [([], str(QUICKSTART), []),
                          (["search.lam=4"], str(QUICKSTART), ["search.lam=4"]),
                          (["search.lam=4", "seed=3"], str(QUICKSTART), ["search.lam=4", "seed=3"]),
                          ([str(ROOT / "recipes" / "cifar10.yaml"), "seed=3"], str(ROOT / "recipes" / "cifar10.yaml"),
                           ["seed=3"])],
                         ids=["none", "override", "overrides", "recipe"])
def test_a_recipe_left_out_is_the_quickstart_for_what_reads_it(ranking, monkeypatch, tmp_path, argv, recipe,
                                                               overrides):
    seen = {}

    def study(recipe, overrides, out, k, seeds, epochs):
        seen.update(recipe=recipe, overrides=overrides)
        raise Started()

    monkeypatch.setattr(ranking, "truth_study", study)
    with pytest.raises(Started):
        ranking.main(["--truth-seeds", "0", "--truth-epochs", "1", *argv, "--out", str(tmp_path / "rk")])
    assert seen == {"recipe": recipe, "overrides": overrides}


def test_help_names_the_default_recipe(ranking):
    shown = " ".join(ranking._parser().format_help().split())
    assert f"recipe (default: {QUICKSTART})" in shown, shown


# ---------------------------------------------------------------------------------------- export_latency.py

@pytest.fixture
def export_latency(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import export_latency

    return export_latency


@pytest.mark.parametrize("x, shown", [(999.6, "1000"), (0.09996, "0.100"), (9.9996, "10.0"), (99.96, "100"),
                                      (0.0009996, "0.00100"), (-999.6, "-1000"), (999.4, "999"), (0.09994, "0.0999"),
                                      (1000.0, "1000"), (12345.6, "12346"), (0.0371234, "0.0371")])
def test_significant_keeps_three_figures_where_rounding_reaches_a_power_of_ten(export_latency, x, shown):
    assert export_latency.significant(x) == shown


def test_the_table_shows_three_figures_and_the_json_line_every_digit(export_latency, tmp_path, monkeypatch, capsys):
    member = tmp_path / "digits-0"
    member.mkdir()
    (member / "manifest.json").write_text(json.dumps({"choices": ["a"], "params": 5, "input_shape": [1, 8, 8]}))
    (member / "model.onnx").write_bytes(b"x")

    def bench_dir(folder, threads, runs):
        return {"dir": str(folder), "params": 5, "input_shape": [1, 8, 8], "choices": ["a"],
                "torch_b1_ms": {"median": 999.6, "p95": 1234.5}, "onnxruntime_b1_ms": {"median": 0.09996, "p95": 0.1},
                "torch_b32_img_s": {"median": 30.0, "p95": 20.0}, "onnxruntime_b32_img_s": {"median": 3.0, "p95": 2.0}}

    monkeypatch.setattr(export_latency, "bench_dir", bench_dir)
    before = torch.get_num_threads()
    try:
        export_latency.main([str(member), "--runs", "1", "--threads", "1"])
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if ln.startswith("digits-0"))
    assert "   1000 (   1234)" in row and "  0.100 (  0.100)" in row, row
    line = json.loads(out.splitlines()[-1])
    assert line["results"][0]["torch_b1_ms"] == {"median": 999.6, "p95": 1234.5}
    assert line["results"][0]["onnxruntime_b1_ms"] == {"median": 0.09996, "p95": 0.1}
