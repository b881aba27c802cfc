"""Recipe loading: defaults, located errors, typed overrides, relative paths, resolved round trip."""

from __future__ import annotations

import os
from pathlib import Path

import pydantic
import pytest

from automl.errors import RecipeError, UserError
from automl.recipe import Recipe, load_recipe, parse_recipe

CASES = Path(__file__).parent / "recipe_cases"
MINIMAL = "name: demo\nspace: spaces/demo.space\n"


def write(tmp_path: Path, text: str | bytes, name: str = "r.yaml") -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def error_of(path, overrides=None) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    assert isinstance(info.value, UserError) and info.value.exit_code == 2
    return info.value


def test_defaults_fill_in(tmp_path):
    r = load_recipe(write(tmp_path, MINIMAL))
    assert r.name == "demo" and r.seed == 0 and r.device == "auto" and r.space_args == {}
    assert r.data.dataset == "digits" and r.data.root is None and r.data.theta_split == 0.5
    assert r.data.batch_size == 64 and r.data.theta_batch_size is None and r.data.test_batch_size == 256
    assert r.data.synthetic.num_train == 256 and r.data.synthetic.size == 8
    assert r.search.method == "importance_sampling" and r.search.epsilons == [0.0, 0.1, 0.3, 0.5]
    assert r.search.lam == 2 and r.search.theta_lr == "auto" and r.search.theta_min == "auto"
    assert r.search.cost == "params" and r.search.normalize_costs and r.search.random_budgets is None
    assert r.optim.name == "sgd" and r.optim.lr == 0.025 and r.optim.momentum == 0.9
    assert r.optim.weight_decay == 3e-4 and r.optim.schedule == "cosine" and r.optim.grad_clip == 5.0
    assert r.retrain.epochs == 10 and r.retrain.decay_rate == 0.963 and r.retrain.ema is None
    assert r.export.onnx and r.export.dir is None and r.export.opset == 17


def test_source_base_dir_and_relative_paths(tmp_path):
    sub = tmp_path / "recipes"
    sub.mkdir()
    p = write(sub, MINIMAL + "data: {dataset: cifar10, root: ../data}\nexport: {dir: out/export}\n")
    r = load_recipe(p)
    assert r.source == p.absolute() and r.base_dir == sub.absolute()
    assert r.space_path == (sub / "spaces/demo.space").resolve() and r.space_path.is_absolute()
    assert r.data_root == (tmp_path / "data").resolve() and Path(r.data.root).is_absolute()
    assert r.export_dir is None  # relative: inside the run's output folder, not next to the recipe
    assert r.export_root(tmp_path / "run") == tmp_path / "run" / "out" / "export"
    assert r.data_root and load_recipe(write(tmp_path, MINIMAL)).data_root is None


def test_override_paths_are_relative_to_cwd(tmp_path, monkeypatch):
    sub = tmp_path / "recipes"
    sub.mkdir()
    p = write(sub, MINIMAL)
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = load_recipe(p, ["data.root=./data", "space=my.space", "export.dir=/abs/x"])
    assert r.data_root == elsewhere.resolve() / "data"
    assert r.space_path == elsewhere.resolve() / "my.space"
    assert r.export_dir == Path("/abs/x")


def test_overrides_are_typed(tmp_path):
    r = load_recipe(write(tmp_path, MINIMAL), [
        "search.lam=4", "search.epsilons=[0,0.5]", "retrain.epochs=0", "data.root=/data/imagenet",
        "export.onnx=false", "data.theta_split=100", "search.theta_lr=0.01", "space_args.channels=32",
        "retrain.space_args.cells=10", "data.image_size=null", "optim.lr=1e-3"])
    assert r.search.lam == 4 and r.search.epsilons == [0.0, 0.5] and r.retrain.epochs == 0
    assert r.data.root == "/data/imagenet" and r.export.onnx is False
    assert r.data.theta_split == 100 and isinstance(r.data.theta_split, int)
    assert r.search.theta_lr == 0.01 and r.space_args == {"channels": 32}
    assert r.retrain.space_args == {"cells": 10} and r.optim.lr == pytest.approx(1e-3)


def test_override_without_equals(tmp_path):
    e = error_of(write(tmp_path, MINIMAL), ["search.lam"])
    assert "override 'search.lam'" in str(e) and "key.path=value" in str(e)


def test_override_unknown_key_suggests(tmp_path):
    e = error_of(write(tmp_path, MINIMAL), ["search.lamb=4"])
    assert "override search.lamb=4: unknown key search.lamb; did you mean search.lam?" in str(e)
    e = error_of(write(tmp_path, MINIMAL), ["serch.lam=4"])
    assert "unknown key serch; did you mean search?" in str(e)
    e = error_of(write(tmp_path, MINIMAL), ["search.lam.x=4"])
    assert "search.lam is a value, not a section" in str(e)


def test_override_bad_value_names_the_override(tmp_path):
    e = error_of(write(tmp_path, MINIMAL + "search:\n  lam: 3\n"), ["search.lam=1"])
    assert "override search.lam=1: must be >= 2 (got 1)" in str(e) and e.key == "search.lam"
    assert e.line is None  # the bad value is not in the file


def test_errors_carry_file_key_line(tmp_path):
    p = write(tmp_path, MINIMAL + "search:\n  epsilons: [0.1]\n  lam: 1\n")
    e = error_of(p)
    assert (e.filename, e.key, e.line) == (str(p), "search.lam", 5)
    assert str(e) == f"{p}:5: search.lam: must be >= 2 (got 1)"


def test_several_errors_in_one_message(tmp_path):
    p = write(tmp_path, MINIMAL + "search:\n  lam: 1\n  bogus: 2\noptim:\n  lr: -1\n")
    text = str(error_of(p))
    lines = text.splitlines()
    assert lines[0] == f"{p}: 3 errors in the recipe:"
    assert lines[1] == f"{p}:4: search.lam: must be >= 2 (got 1)"
    assert lines[2] == f"{p}:5: search.bogus: unknown key; known keys here: " + ", ".join(
        Recipe.model_fields["search"].annotation.model_fields)
    assert lines[3] == f"{p}:7: optim.lr: must be > 0 (got -1)"


def test_missing_file(tmp_path):
    e = error_of(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(e) and "no such recipe file" in str(e)


def test_directory_given(tmp_path):
    assert "is a directory" in str(error_of(tmp_path))


def test_not_utf8(tmp_path):
    e = error_of(write(tmp_path, b"name: demo\nspace: caf\xe9.space\n"))
    assert "not UTF-8" in str(e) and e.line == 2


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable(tmp_path):
    p = write(tmp_path, MINIMAL)
    p.chmod(0)
    try:
        assert "cannot read" in str(error_of(p))
    finally:
        p.chmod(0o644)


def test_empty_file_says_it_is_empty(tmp_path):
    text = str(error_of(write(tmp_path, "")))
    assert "the recipe is empty" in text and "recipes/quickstart.yaml" in text
    text = str(error_of(write(tmp_path, "{}")))  # a mapping: its missing keys
    assert "name: required key is missing" in text and "space: required key is missing" in text


def test_resolved_yaml_round_trips(tmp_path):
    p = write(tmp_path, MINIMAL + "data: {dataset: imagefolder, root: imgs, theta_split: 0.25}\n"
              "search: {epsilons: [0, 0.3], theta_lr: 0.02}\nspace_args: {channels: 16, op: conv}\n")
    r = load_recipe(p, ["retrain.space_args.cells=10", "export.dir=exp"])
    out = tmp_path / "elsewhere"
    out.mkdir()
    resolved = r.dump_resolved(out / "recipe.resolved.yaml")
    again = load_recipe(resolved)
    assert again == r and again.source == resolved and again.data_root == r.data_root
    assert "theta_batch_size: null" in r.to_yaml()  # every default is written out


def test_recipe_is_frozen(tmp_path):
    r = load_recipe(write(tmp_path, MINIMAL))
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        r.seed = 3  # type: ignore[misc]


CASE_FILES = sorted(CASES.glob("*.yaml"))


def test_corpus_is_large_enough():
    assert len(CASE_FILES) >= 20


@pytest.mark.parametrize("case", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_malformed_recipe_corpus(case):
    first = case.read_text().splitlines()[0]
    assert first.startswith("# expect:"), f"{case.name} must start with '# expect: <message fragment>'"
    expected = first.split("# expect:", 1)[1].strip()
    e = error_of(case)
    assert expected in str(e), f"{case.name}: {str(e)!r} lacks {expected!r}"
    assert str(e).startswith(str(case))  # every message names the file first


def test_budgets_parse_suffixes_and_replace_epsilons(tmp_path):
    text = MINIMAL + "search:\n  budgets: [null, 150k, 2.5M, 1G, 1200, 3.5e4]\n"
    r = load_recipe(write(tmp_path, text))
    assert r.search.budgets == [None, 150e3, 2.5e6, 1e9, 1200.0, 3.5e4]
    assert r.search.epsilons is None and r.search.utility == "weighted_quantile"
    again = parse_recipe(r.to_yaml())                     # the resolved recipe loads back the same
    assert again == r and again.search.epsilons is None


def test_epsilons_or_budgets_on_the_command_line_replace_the_files(tmp_path):
    with_budgets = write(tmp_path, MINIMAL + "search:\n  budgets: [null, 50k]\n", "b.yaml")
    r = load_recipe(with_budgets, ["search.epsilons=[0,0.5]"])
    assert r.search.epsilons == [0.0, 0.5] and r.search.budgets is None
    with_eps = write(tmp_path, MINIMAL + "search:\n  epsilons: [0, 1]\n", "e.yaml")
    r = load_recipe(with_eps, ["search.budgets=[null,10k]"])
    assert r.search.budgets == [None, 10e3] and r.search.epsilons is None
    e = error_of(with_eps, ["search.budgets=[null,10k]", "search.epsilons=[0,1]"])
    assert "search.budgets" in str(e) and "not both" in str(e)
    e = error_of(with_eps, ["search.epsilons=null"])
    assert "search.epsilons" in str(e) and "give one of them" in str(e)


def test_a_removed_key_in_an_old_run_folder_is_dropped_with_a_warning(tmp_path, caplog):
    # recipe.resolved.yaml of a run written before search.random_budget was deleted still loads
    old = load_recipe(write(tmp_path, MINIMAL + "search:\n  random_budget: true\n  lam: 4\n"))
    assert "search.random_budget is no longer a setting" in caplog.text
    assert old.search.lam == 4 and not hasattr(old.search, "random_budget")
    assert old.model_dump() == load_recipe(write(tmp_path, MINIMAL + "search:\n  lam: 4\n", "new.yaml")).model_dump()
    # typed on the command line today it is a mistake, as any unknown key
    assert "unknown key" in str(error_of(write(tmp_path, MINIMAL, "c.yaml"), ["search.random_budget=true"]))


def test_a_key_added_later_leaves_the_resume_fingerprint_as_it_was_at_its_old_value():
    """A run checkpointed by an automl without the key resumes: at the value that behaves as before, the key is
    not part of the fingerprint (the YAML hashed is the one the older automl hashed); any other value is."""
    import hashlib

    import yaml

    from automl.recipe import ADDED_KEYS

    quick = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"
    recipe = load_recipe(quick)
    data = recipe.model_dump(mode="json", exclude={"checkpoint", "threads", "cudnn_benchmark"})  # as an older automl
    for (section, key), before in ADDED_KEYS.items():
        assert getattr(getattr(recipe, section), key) == before
        del data[section][key]
    head = recipe.to_yaml().splitlines()[0] + "\n"
    older = hashlib.sha256((head + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)).encode())
    assert recipe.legacy_fingerprint() == older.hexdigest()
    assert load_recipe(quick, ["search.method=random", "search.random_band=0.9"]).fingerprint() != \
        load_recipe(quick, ["search.method=random"]).fingerprint()


def test_random_budgets_take_the_suffixes_budgets_take_but_not_null():
    random = Path(__file__).resolve().parents[1] / "recipes" / "cifar10-random.yaml"
    assert load_recipe(random, ["search.random_budgets=[2.5M,300k]"]).search.random_budgets == [2.5e6, 3e5]
    with pytest.raises(RecipeError, match=r"search.random_budgets\[1\].*must be a number \(k, M, G"):
        load_recipe(random, ["search.random_budgets=[1M,null]"])


def test_the_fingerprint_follows_what_the_recipe_says_not_where_its_files_are(tmp_path):
    """A requeued job may find its checkout, recipe, space and data at other paths: the space counts by its
    content, the recipe's and the data's paths not at all."""
    import shutil

    root = Path(__file__).resolve().parents[1]
    prints = []
    for where in ("a", "b/deeper"):
        (tmp_path / where / "recipes").mkdir(parents=True)
        shutil.copytree(root / "spaces", tmp_path / where / "spaces")
        shutil.copy(root / "recipes" / "quickstart.yaml", tmp_path / where / "recipes")
        recipe = load_recipe(tmp_path / where / "recipes" / "quickstart.yaml", [f"data.root={tmp_path / where}"])
        prints.append((recipe.fingerprint(), recipe.legacy_fingerprint()))
    assert prints[0][0] == prints[1][0] and prints[0][1] != prints[1][1]
    space = tmp_path / "a" / "spaces" / "digits.space"
    text = space.read_text()
    a = tmp_path / "a" / "recipes" / "quickstart.yaml"
    # what the space says counts; its comments and line endings do not (the earlier, byte-wise print does)
    space.write_bytes((text.replace("# input height", "#   the input's height") + "\n# an edit\n")
                      .replace("\n", "\r\n").encode())
    assert load_recipe(a).fingerprint() == prints[0][0]
    assert load_recipe(a).earlier_fingerprints()[0] != load_recipe(tmp_path / "b/deeper/recipes/quickstart.yaml",
                                                                    ).earlier_fingerprints()[0]
    for edit in (("head = 128", "head = 96"), ("repeat 3", "repeat 2"), ("24 * width", "2 4 * width")):
        assert edit[0] in text
        space.write_text(text.replace(edit[0], edit[1], 1))
        assert load_recipe(a).fingerprint() != prints[0][0], edit
    assert load_recipe(tmp_path / "b/deeper" / "recipes" / "quickstart.yaml", ["seed=1"]).fingerprint() != prints[1][0]
