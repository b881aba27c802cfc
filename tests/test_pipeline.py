"""End-to-end runs of ``automl run`` on tiny settings: every method, resume equivalence, CLI errors."""

import functools
import json
from pathlib import Path

import PIL.Image
import pytest
import torch

import automl.compile.compiler
import automl.train.loops
from automl.cli import main
from automl.export import load_model
from automl.pipeline import Run
from automl.pipeline.setup import load_spaces
from automl.recipe import load_recipe
from automl.train.data import build_data

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
TINY = ["data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=2", "search.theta_epochs=2", "search.epsilons=[0,0.5]", "search.lam=2", "retrain.epochs=1",
        "export.onnx=false", "search.log_every=2"]


BUDGETS = ["search.budgets=[null,30k]"]  # inside the digits space's range of parameters (space_range)


@functools.cache
def space_range() -> tuple[float, float]:
    """The parameters of the quickstart space's smallest and largest networks, from its cost table."""
    table = load_spaces(load_recipe(QUICK, TINY)).search.cost_table
    return table.min_total("params"), table.max_total("params")


def run(tmp_path, overrides, resume=False, name="run"):
    tiny = [o for o in TINY if not o.startswith("search.epsilons")] if BUDGETS[0] in overrides else TINY
    recipe = load_recipe(QUICK, tiny + overrides)
    return Run(recipe, tmp_path / name, resume=resume, tty=False).execute()


def accuracy(model, loader) -> float:
    """The fraction of ``loader``'s images (one pass) that ``model`` classifies right."""
    right = total = 0
    with torch.no_grad():
        for x, y in loader.epoch(0):
            right += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return right / total


@pytest.mark.parametrize("method", ["importance_sampling", "separate", "simultaneous", "random"])
def test_each_method_end_to_end(tmp_path, method):
    res = run(tmp_path, [f"search.method={method}"])
    out = tmp_path / "run"
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == res
    assert res["method"] == method and res["recipe"] == "quickstart"
    assert len(res["architectures"]) == 2
    for a in res["architectures"]:
        assert set(a) == {"epsilon", "budget", "choices", "params", "se", "cost", "test_accuracy", "weights",
                          "same_network_as", "onnx", "onnx_error", "macs", "latency_ms", "int8"}
        assert a["weights"] == "retrained"
        assert a["macs"] > 0 and a["latency_ms"] is None and a["int8"] is None  # export.onnx=false: not measured
        assert a["onnx_error"] is None
        assert a["budget"] is None
        assert isinstance(a["params"], int) and a["params"] > 0
        assert 0.0 <= a["test_accuracy"] <= 1.0
        assert len(a["choices"]) >= 8
    for folder in (out / "export").iterdir():
        assert json.loads((folder / "manifest.json").read_text())["weights"]["source"] == "retrained"
    if method == "random":
        assert all(a["epsilon"] is None for a in res["architectures"])
    else:
        assert [a["epsilon"] for a in res["architectures"]] == [0.0, 0.5]
        assert res["search_seconds"] > 0
    for f in ("recipe.resolved.yaml", "metrics.jsonl", "report.md", "pareto.png"):
        assert (out / f).is_file(), f
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"phase", "epoch", "step", "loss", "seconds"} <= set(lines[0])
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ("| draw |" if method == "random" else "| ε |") in (out / "report.md").read_text()  # random: no ε
    # test_accuracy is the exported network's accuracy on the recipe's test split (not on its training images)
    recipe = load_recipe(QUICK, TINY + [f"search.method={method}"])
    data = build_data(recipe.data, base_dir=recipe.base_dir, seed=recipe.seed, device="cpu")
    for i, a in enumerate(res["architectures"]):
        model = load_model(out / "export" / (f"random-{i}" if method == "random" else f"eps-{a['epsilon']:g}"))
        assert a["test_accuracy"] == accuracy(model, data.test)


def test_run_exports_onnx_per_epsilon(tmp_path):
    res = run(tmp_path, ["export.onnx=true", "search.epsilons=[0.2]"])
    a = res["architectures"][0]
    assert a["onnx"] == "export/eps-0.2/model.onnx"
    manifest = json.loads((tmp_path / "run" / "export" / "eps-0.2" / "manifest.json").read_text())
    assert manifest["params"] == a["params"] and manifest["choices"] == a["choices"]
    assert manifest["epsilon"] == 0.2
    # the digits' input normalisation travels with the model, for deployment code to apply
    assert len(manifest["normalize"]["mean"]) == 1 and manifest["normalize"]["std"][0] > 0
    # and the data set it was tested on (digits are resized whole: no crop recorded, timm's config takes 1.0)
    assert manifest["dataset"] == "digits" and "crop_pct" not in manifest


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """``reference(overrides)``: the results of an uninterrupted run with ``overrides``, run once per module."""
    cache = {}

    def get(overrides: list[str]) -> dict:
        key = tuple(overrides)
        if key not in cache:
            cache[key] = run(tmp_path_factory.mktemp("ref"), overrides)
        return cache[key]
    return get


@pytest.mark.parametrize("method,kill_after", [
    # heavy (CI): a resume mid weight phase and mid retraining is also checked by test_preempt's
    # test_checkpoints_inside_an_epoch... (every_steps=2-1 and every_steps=4-10) and test_threads' resumed run
    pytest.param("importance_sampling", 1, marks=pytest.mark.heavy),
    ("importance_sampling", 2),   # weight -> θ boundary
    # heavy: mid θ phase with importance sampling is also importance_sampling+budgets' case below (8 s)
    pytest.param("importance_sampling", 3, marks=pytest.mark.heavy),   # mid θ phase
    pytest.param("importance_sampling", 5, marks=pytest.mark.heavy),  # mid retraining of the first architecture
    pytest.param("importance_sampling", 8, marks=pytest.mark.heavy),  # mid retraining of the second
    # heavy (13 s): Method 1 resumed mid-step is also test_preempt's SIGTERM test at its "simultaneous" point
    pytest.param("simultaneous", 2, marks=pytest.mark.heavy),
    ("separate", 3),
    ("importance_sampling+budgets", 3),  # mid θ phase: the adapted ε resume with the engine
])
def test_resume_after_interruption_gives_identical_results(tmp_path, reference, die_after_save, method, kill_after):
    method, _, budgets = method.partition("+")
    extra = [f"search.method={method}", "retrain.epochs=2"] + (BUDGETS if budgets else [])
    reference = reference(extra)

    die_after_save(lambda state, n: n == kill_after)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, extra, name="killed")
    assert not (tmp_path / "killed" / "results.json").exists()
    resumed = run(tmp_path, extra, resume=True, name="killed")
    strip = lambda r: [(a["choices"], a["params"], a["test_accuracy"], a["epsilon"])  # noqa: E731
                       for a in r["architectures"]]
    assert strip(resumed) == strip(reference)


@pytest.mark.parametrize("method", ["importance_sampling", "separate", "simultaneous", "random"])
def test_each_method_meets_budgets(tmp_path, method):
    res = run(tmp_path, [f"search.method={method}", "retrain.epochs=0", "search.theta_epochs=3"] + BUDGETS)
    top, low = res["architectures"]
    assert top["budget"] is None and low["budget"] == 30e3
    smallest, largest = space_range()
    assert smallest < 30e3 < largest
    assert low["cost"] <= 30e3 and smallest <= top["cost"] <= largest and smallest <= low["cost"]
    if method == "random":
        assert top["epsilon"] is None and low["epsilon"] is None
    else:
        assert top["epsilon"] == 0.0 and low["epsilon"] >= 0.0      # the final adapted ε
    assert (tmp_path / "run" / "export" / "budget-1-30k").is_dir()
    report = (tmp_path / "run" / "report.md").read_text()
    assert f"| budget | {'draw' if method == 'random' else 'ε'} |" in report and "≤ 30k" in report


def test_budgets_outside_the_space_range(tmp_path, capsys):
    smallest, largest = space_range()
    assert 10e3 < smallest and largest <= 1e6
    tiny = [o for o in TINY if not o.startswith("search.epsilons")] + ["retrain.epochs=0", "search.theta_epochs=1"]
    code = main(["run", QUICK, *tiny, "search.budgets=[null,10k]", "--out", str(tmp_path / "low")])
    err = capsys.readouterr().err
    assert code == 2 and "search.budgets[1]" in err and "below the smallest" in err and "Traceback" not in err
    code = main(["run", QUICK, *tiny, "search.budgets=[null,1M]", "search.utility=paper",
                 "--out", str(tmp_path / "high")])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 0 and "search.budgets[1] = 1M is at or above the largest" in text
    assert text.count("may pull the members together") == 1      # lam / N = 2 / 2 < 8 with eq. 9


def test_resume_refuses_a_different_recipe(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", QUICK, *TINY, "retrain.epochs=0", "--out", str(out)]) == 0
    code = main(["run", QUICK, *TINY, "retrain.epochs=0", "search.lam=3", "--out", str(out), "--resume"])
    assert code == 2
    assert "recipe differs" in capsys.readouterr().err


def test_resume_without_checkpoint_is_a_user_error(tmp_path, capsys):
    code = main(["run", QUICK, *TINY, "--out", str(tmp_path / "empty"), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and "no checkpoint" in err and "Traceback" not in err


def test_out_dir_with_files_is_refused(tmp_path, capsys):
    (tmp_path / "old.txt").write_text("x")
    code = main(["run", QUICK, *TINY, "--out", str(tmp_path)])
    assert code == 2 and "--resume" in capsys.readouterr().err


def test_bad_override_is_a_user_error(tmp_path, capsys):
    code = main(["run", QUICK, "search.lam=1", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "search.lam" in err and "Traceback" not in err


def test_overrides_may_follow_the_options(tmp_path, capsys):
    code = main(["run", QUICK, "--out", str(tmp_path / "x"), "search.lam=1"])
    err = capsys.readouterr().err
    assert code == 2 and "search.lam" in err  # read as an override (and rejected by the schema)
    with pytest.raises(SystemExit) as exc:  # argparse's exit, as for any bad flag
        main(["run", QUICK, "--out", str(tmp_path / "y"), "--bogus"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "unrecognized arguments: --bogus" in err


def test_imagenet_recipe_with_missing_root_fails_fast(tmp_path, capsys, monkeypatch):
    """A wrong data.root is named before any network is built, any image read or any step taken."""
    def expensive(*args, **kwargs):
        pytest.fail("work before data.root was checked")

    for owner, name in [(automl.compile.compiler.CompiledSpace, "build_supernet"),
                        (automl.compile.compiler.CompiledSpace, "build_standalone"),
                        (automl.train.loops, "weight_step"), (automl.train.loops, "evaluate"),
                        (PIL.Image, "open")]:
        monkeypatch.setattr(owner, name, expensive)
    code = main(["run", str(ROOT / "recipes" / "imagenet.yaml"), "data.root=/does/not/exist", "device=cpu",
                 "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "/does/not/exist" in err and "Traceback" not in err, err


@pytest.mark.heavy
def test_quickstart_as_a_user_runs_it(tmp_path):
    """The README's main command on the real recipe (CI only: a few minutes)."""
    res = run_full = Run(load_recipe(QUICK), tmp_path / "q", tty=False).execute()
    archs = run_full["architectures"]
    assert len(archs) == 4
    assert archs[0]["test_accuracy"] >= 0.90
    params = [a["params"] for a in archs]
    assert len(set(params)) >= 3
    assert params == sorted(params, reverse=True)
    assert all(a["onnx"] for a in res["architectures"])
