"""Recipe checks that close silent or internal failures: relative cost tables, upper bounds, booleans that are
not numbers, keys that would be ignored, keys YAML does not read as names, ``--resume`` without ``--out``, and
flags after a verb."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import yaml

from automl.cli import main
from automl.commands.run import _latest_run
from automl.dsl import space_digest
from automl.errors import RecipeError, UserError
from automl.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "recipes" / "quickstart.yaml"
DIGITS = ROOT / "spaces" / "digits.space"
HEAD = f"name: x\nspace: {DIGITS}\n"
TINY = ["threads=1", "device=cpu", "data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32",
        "data.test_batch_size=512", "search.weight_epochs=2", "search.theta_epochs=1", "search.epsilons=[0,0.5]",
        "search.lam=2", "retrain.epochs=0", "export.onnx=false", "search.log_every=2"]


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error_of(path, overrides=None) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    assert isinstance(info.value, UserError) and info.value.exit_code == 2
    return str(info.value)


def assert_names(e: str, item: str, message: str) -> None:
    """``message`` is ``key: what``: an override's error reads ``FILE: key: override ITEM: what``."""
    key, _, what = message.partition(": ")
    assert f" {key}: override {item}: {what}" in e, e


# ---------------------------------------------------------------------------- 1: search.cost_table paths


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "lat.json"
    assert main(["space", "profile", str(DIGITS), "--repeat", "2", "--calibrate", "3", "--out", str(path)]) == 0
    return path


def _latency_recipe(folder: Path, table: Path) -> Path:
    """The README's workflow: the table next to the recipe, named relative to it."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(table, folder / "lat.json")
    text = QUICK.read_text().replace("../spaces/digits.space", str(DIGITS))
    return write(folder, text.replace("  cost: params", "  cost: latency\n  cost_table: lat.json"), "lat.yaml")


def test_a_relative_cost_table_is_written_out_absolute(tmp_path, table, monkeypatch):
    recipe_file = _latency_recipe(tmp_path / "recipes", table)
    monkeypatch.chdir(tmp_path)
    r = load_recipe(recipe_file)
    assert r.search.cost_table == str(tmp_path / "recipes" / "lat.json")
    assert yaml.safe_load(r.to_yaml())["search"]["cost_table"] == str(tmp_path / "recipes" / "lat.json")
    # an override is relative to the current folder, as every other path given on the command line
    shutil.copy(table, tmp_path / "here.json")
    r = load_recipe(recipe_file, ["search.cost_table=here.json"])
    assert r.cost_table_path == tmp_path / "here.json" and r.search.cost_table == str(tmp_path / "here.json")


def test_the_fingerprint_counts_the_cost_table_by_what_it_says_not_where_it_is(tmp_path, table):
    a = load_recipe(_latency_recipe(tmp_path / "a", table))
    b = load_recipe(_latency_recipe(tmp_path / "b" / "deeper", table))
    assert a.fingerprint() == b.fingerprint()
    (tmp_path / "b" / "deeper" / "lat.json").write_text(table.read_text().replace("{", "{\"x\": 1, ", 1))
    assert load_recipe(tmp_path / "b" / "deeper" / "lat.yaml").fingerprint() != a.fingerprint()
    # a run checkpointed by an earlier automl hashed the path as the recipe wrote it: it still resumes
    data = a.model_dump(mode="json", exclude=a._fingerprint_exclude())
    data["space"] = "sha256:" + space_digest(DIGITS.read_bytes())
    data["search"]["cost_table"] = "lat.json"
    data["data"].pop("root", None)
    older = hashlib.sha256(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).encode()).hexdigest()
    assert older in a.earlier_fingerprints()


@pytest.mark.heavy  # CI only (pytest -m heavy): the default suite stays under 15 minutes
def test_a_run_with_a_relative_cost_table_resumes_and_ranks(tmp_path, table, monkeypatch, die_after_save, capsys):
    recipe_file = _latency_recipe(tmp_path / "recipes", table)
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = tmp_path / "run"
    die_after_save(lambda state, n: n == 1)
    assert main(["run", str(recipe_file), "--out", str(out), *TINY]) == 130
    assert main(["run", str(recipe_file), "--out", str(out), *TINY, "--resume"]) == 0
    resolved = yaml.safe_load((out / "recipe.resolved.yaml").read_text())
    assert resolved["search"]["cost_table"] == str(tmp_path / "recipes" / "lat.json")
    capsys.readouterr()
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "0"]) == 0, capsys.readouterr().err
    assert "kendall_tau" in capsys.readouterr().out
    # a folder an earlier automl wrote kept the path relative to the recipe its first line names
    text = (out / "recipe.resolved.yaml").read_text()
    (out / "recipe.resolved.yaml").write_text(text.replace(str(tmp_path / "recipes" / "lat.json"), "lat.json"))
    assert "cost_table: lat.json" in (out / "recipe.resolved.yaml").read_text()
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "0"]) == 0, capsys.readouterr().err
    assert "kendall_tau" in capsys.readouterr().out


# ------------------------------------------------------------------------------------- 4: upper bounds


@pytest.mark.parametrize("item,message", [
    ("threads=1000000", "threads: must be 'auto' or a whole number of threads from 1 to 1024"),
    ("search.lam=99999999999999999999", "search.lam: must be <= 4096"),
    ("data.split_seed=99999999999999999999", "data.split_seed: must be an integer from -10^15 to 10^15"),
    ("data.batch_size=99999999999999999999", "data.batch_size: must be <= 1048576"),
    ("data.theta_batch_size=2000000", "data.theta_batch_size: must be <= 1048576"),
    ("data.test_batch_size=2000000", "data.test_batch_size: must be <= 1048576"),
    ("retrain.batch_size=2000000", "retrain.batch_size: must be <= 1048576"),
    ("data.image_size=100000", "data.image_size: must be <= 4096"),
    ("data.workers=100000", "data.workers: must be <= 1024"),
    ("search.weight_epochs=10000000", "search.weight_epochs: must be <= 100000"),
    ("search.theta_epochs=10000000", "search.theta_epochs: must be <= 100000"),
    ("retrain.epochs=10000000", "retrain.epochs: must be <= 100000"),
    ("ranking.seeds=10000000", "ranking.seeds: must be <= 1000"),
    ("ranking.archs=10000000", "ranking.archs: must be <= 10000"),
    ("data.synthetic.num_train=10000000000", "data.synthetic.num_train: must be <= 1000000"),
    ("data.synthetic.size=100000", "data.synthetic.size: must be <= 1024"),
])
def test_numbers_too_large_to_run_are_recipe_errors(item, message):
    assert_names(error_of(QUICK, [item]), item, message)


@pytest.mark.parametrize("item", ["threads=1000000", "search.lam=99999999999999999999"])
def test_the_run_stops_before_it_starts(tmp_path, capsys, item):
    code = main(["run", str(QUICK), item, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and item.split("=")[0] in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


def test_a_synthetic_dataset_too_large_to_hold_is_a_recipe_error():
    e = error_of(QUICK, ["data.dataset=synthetic", "data.synthetic.num_train=1000000", "data.synthetic.size=1024"])
    assert "data.synthetic: the synthetic dataset would hold" in e


@pytest.mark.parametrize("item", ["threads=1024", "search.lam=4096", "data.batch_size=1048576",
                                  "data.split_seed=-1000000000000000", "ranking.seeds=1000"])
def test_the_bounds_themselves_load(item):
    load_recipe(QUICK, [item])


# -------------------------------------------------------------------------- 6: booleans are not numbers


@pytest.mark.parametrize("item,message", [
    ("seed=true", "seed: must be an integer (got true)"),
    ("search.supernets=true", "search.supernets: must be an integer (got true)"),
    ("retrain.epochs=false", "retrain.epochs: must be an integer (got false)"),
    ("optim.lr=true", "optim.lr: must be a number (got true)"),
    ("data.batch_size=true", "data.batch_size: must be an integer (got true)"),
    ("data.theta_batch_size=true", "data.theta_batch_size: must be an integer (got true)"),
    ("search.epsilons=[0,true]", "search.epsilons[1]: must be a number (got true)"),
    ("search.random_band=true", "search.random_band: must be a number (got true)"),
    ("retrain.ema=false", "retrain.ema: must be a number (got false)"),
    ("checkpoint.every_minutes=true", "checkpoint.every_minutes: must be a number (got true)"),
    ("data.synthetic.size=true", "data.synthetic.size: must be an integer (got true)"),
    ("ranking.archs=true", "ranking.archs: must be an integer (got true)"),
])
def test_a_boolean_is_not_a_number(item, message):
    assert_names(error_of(QUICK, [item]), item, message)


def test_a_boolean_in_the_file_names_its_line(tmp_path):
    e = error_of(write(tmp_path, HEAD + "optim:\n  lr: yes\n"))
    assert e.endswith("r.yaml:4: optim.lr: must be a number (got true)"), e


def test_numbers_written_in_every_way_still_load():
    r = load_recipe(QUICK, ["optim.lr=1e-3", "seed=3", "search.epsilons=[0, 1, 0.5]", "retrain.lr=2",
                            "data.batch_size=32.0", "space_args.width=true"])
    assert r.optim.lr == pytest.approx(1e-3) and r.seed == 3 and r.search.epsilons == [0.0, 1.0, 0.5]
    assert r.retrain.lr == 2.0 and r.data.batch_size == 32 and r.space_args["width"] is True
    for recipe in sorted((ROOT / "recipes").glob("*.yaml")):
        load_recipe(recipe, ["data.root=/data"])


# --------------------------------------------------------------------- 7: keys that would be ignored


@pytest.mark.parametrize("items,message", [
    (["search.random_band=0.9", "search.budgets=[null,40k]"],
     "search.random_band: applies to search.method random only"),
    (["search.random_budgets=[40k]"], "search.random_budgets: applies to search.method random only"),
    (["supernet_force=true"], "supernet_force: applies only with supernet"),
    (["export.dir="], "export.dir: '' is the run's output folder itself"),
    (["export.dir=."], "export.dir: '.' is the run's output folder itself"),
])
def test_keys_that_would_be_ignored_are_errors(items, message):
    assert_names(error_of(QUICK, items), items[0], message)


def test_an_ignored_key_in_the_file_names_its_line(tmp_path):
    e = error_of(write(tmp_path, HEAD + "search:\n  random_band: 0.9\n  budgets: [null, 40k]\n"))
    assert e.startswith(f"{tmp_path / 'r.yaml'}:4: search.random_band: applies to search.method random only"), e
    e = error_of(write(tmp_path, HEAD + "supernet_force: true\n"))
    assert e.startswith(f"{tmp_path / 'r.yaml'}:3: supernet_force: applies only with supernet"), e


def test_the_random_keys_still_load_with_method_random():
    r = load_recipe(ROOT / "recipes" / "cifar10-random.yaml", ["data.root=/data"])
    assert r.search.method == "random" and r.search.random_band == 0.9


# ----------------------------------------------------------------------- 10: keys YAML reads as values


@pytest.mark.parametrize("text,message", [
    ("search:\n  1: 2\n", ":4: search.1: unknown key (YAML reads 1 as a number, not a name); known keys here"),
    ("yes: 2\n", ":3: yes: unknown key (YAML reads yes as true, not a name); known keys here"),
    ("search:\n  ~: 2\n", ":4: search.~: unknown key (YAML reads ~ as null, not a name); known keys here"),
    ("search:\n  on: 2\n", ":4: search.on: unknown key (YAML reads on as true, not a name)"),
    ("space_args:\n  3.5: 2\n", ":4: space_args.3.5: unknown key (YAML reads 3.5 as a number, not a name); "
                                "quote it"),
])
def test_a_key_yaml_reads_as_a_value_is_named_as_written(tmp_path, text, message):
    e = error_of(write(tmp_path, HEAD + text))
    assert message in e and "Keys should be strings" not in e and "None" not in e, e


def test_a_key_yaml_reads_as_a_value_in_an_override():
    e = error_of(QUICK, ["search={1: 2}"])
    assert "override search={1: 2}: search.1: unknown key (YAML reads 1 as a number, not a name)" in e, e


# --------------------------------------------------------------------- 5: --resume without --out


def test_resume_without_out_takes_only_this_recipes_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for i, name in enumerate(["quickstart-20260101-000000", "quickstart-big-20260101-000000", "quickstart-x",
                              "quickstart-20260101-000000-old"]):
        (tmp_path / "runs" / name).mkdir(parents=True)
        os.utime(tmp_path / "runs" / name, (1000 + i, 1000 + i))
    assert _latest_run("quickstart") == Path("runs") / "quickstart-20260101-000000"
    with pytest.raises(UserError, match="no earlier run of 'quickstart-b'"):
        _latest_run("quickstart-b")


# ---------------------------------------------------------------------------- 11: flags after the verb


def test_an_unknown_flag_after_a_verb_names_the_verb(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", str(QUICK), "--bogus", "seed=1"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("usage: automl run"), err
    assert "automl run: error: unrecognized arguments: --bogus; see automl run --help" in err, err
    with pytest.raises(SystemExit):
        main(["space", "check", str(DIGITS), "--bogus"])
    err = capsys.readouterr().err
    assert err.startswith("usage: automl space check") and "see automl space check --help" in err, err
    with pytest.raises(SystemExit):
        main(["--bogus", "space", "check", str(DIGITS)])
    assert "automl: error: unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["space", "check", str(DIGITS), "-v"], ["-v", "space", "check", str(DIGITS)],
                                  ["space", "check", str(DIGITS), "--verbose"]])
def test_verbose_works_before_and_after_the_verb(monkeypatch, argv):
    seen = {}
    monkeypatch.setattr("automl.commands.space.main", lambda args: seen.setdefault("v", args.verbose) and 0)
    assert main(argv) == 0 and seen["v"] is True
    seen.clear()
    assert main(["space", "check", str(DIGITS)]) == 0 and seen["v"] is False
