"""Recipe mistakes a fuzzer of the shipped recipes found ending otherwise than in one clear message (exit 2) before
training: a data.image_size that resizes an in-memory dataset past memory (learning rates and weight decays past
float32, once torch's overflow at the first step, are refused far below it: test_review_fb.py), ``.inf`` in a
``"auto" | number`` field or in space_args (a garbled union message), YAML syntax errors inside brackets, after a key
or a tag and after a quoted value (pyyaml's own words, no fix), a tag on a value of another kind, and a space path
the machine refuses (an OSError naming no key)."""

from pathlib import Path

import pytest

from automl.errors import RecipeError
from automl.pipeline.setup import load_spaces
from automl.recipe import DIGITS_IMAGES, load_recipe
from automl.train.data import _digits_split

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
SPACE = str(ROOT / "spaces" / "digits.space")


def _refused(overrides: list[str]) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        load_recipe(QUICK, overrides)
    return info.value


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(f"name: r\nspace: {SPACE}\n" + text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ data.image_size past memory


def test_image_size_that_resizes_digits_past_memory_is_refused_at_load():
    """digits' 1,797 images are resized whole when the run starts: at 4096 pixels 3e10 floats (torch's allocation
    failed, an internal error; a larger machine would have swapped)."""
    e = _refused(["data.image_size=4096"])
    assert e.key == "data.image_size" and "override data.image_size=4096" in str(e)
    assert "set data.image_size to at most 1093" in str(e) and "null" in str(e)
    assert load_recipe(QUICK, ["data.image_size=1093"]).data.image_size == 1093  # the most that fits
    _, y_train, _, y_test = _digits_split()
    assert len(y_train) + len(y_test) == DIGITS_IMAGES  # the count the recipe checks is the data set's


def test_image_size_past_memory_is_refused_for_synthetic_at_its_line(tmp_path):
    path = _file(tmp_path, "data:\n  dataset: synthetic\n  image_size: 2048\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    e = info.value
    assert e.key == "data.image_size" and e.line == 5
    assert "320 images (num_train + num_test) of 3 channels" in str(e) and "at most 1495" in str(e)
    # cifar10 and image folders are resized a batch at a time: not refused
    assert load_recipe(QUICK, ["data.dataset=cifar10", "data.root=/x", "data.image_size=4096"]).data.image_size == 4096


# ------------------------------------------------------------------------------ .inf: one message, not a union


@pytest.mark.parametrize("key, op", [("search.theta_lr", "> 0"), ("search.theta_min", ">= 0")])
def test_inf_in_an_auto_or_number_field_says_finite(key, op):
    for value in (".inf", ".nan"):
        msg = str(_refused([f"{key}={value}"]))
        assert msg.endswith(f"must be 'auto' or a finite number {op} (got {value})"), msg
        assert "must be one of" not in msg


@pytest.mark.parametrize("key", ["space_args.width", "retrain.space_args.width"])
def test_inf_in_space_args_says_finite_once(key):
    msg = str(_refused([f"{key}=-.inf"]))
    assert msg.endswith("must be a finite number, a string or a boolean (got -.inf)"), msg
    assert msg.count("(got") == 1 and "true or false" not in msg and "put it in quotes" not in msg


# ------------------------------------------------------------------------------ YAML syntax errors with a fix

SYNTAX = [
    ("search:\n  epsilons: - 0\n", 4, "a list item ('- ') right after a key", "sequence entries"),
    ("search: {epsilons: [0,, 1]}\n", 3, "a ',' with no value before it", "node content"),
    ("search: {epsilons: [1, - 2]}\n", 3, "a list item ('- ') inside brackets", "node content"),
    ("search: {epsilons: [}\n", 3, "'}' where YAML expects a value: close each '['", "node content"),
    ("space_args: {width: !!str}\n", 3, "as a tag, which is followed by a space", "scanning a tag"),
    ('seed: "3" 4\n', 3, "text after the closing quote of a value", "indentation"),
    ("search: !!str\n  lam: 4\n", 3, "a YAML tag (such as !!str, !!int, !!seq, !!map) that makes a single value is "
                                    "given a mapping; remove the tag", "Python objects"),
    ("search: !!map [4]\n", 3, "that makes a mapping is given a list", "Python objects"),
]


@pytest.mark.parametrize("text, line, hint, raw", SYNTAX)
def test_yaml_syntax_error_says_how_to_fix_it(tmp_path, text, line, hint, raw):
    path = _file(tmp_path, text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    e = info.value
    assert e.line == line and hint in str(e) and raw not in str(e), str(e)


@pytest.mark.parametrize("value, hint", [("[0,, 1]", "a ',' with no value before it"),
                                         ("[1, - 2]", "a list item ('- ') inside brackets"),
                                         ('"0" 1', "text after the closing quote"),
                                         ("!!str [1]", "that makes a single value is given a list")])
def test_override_syntax_error_says_how_to_fix_it(value, hint):
    msg = str(_refused([f"search.epsilons={value}"]))
    assert hint in msg and "document" not in msg and "in double quotes" not in msg, msg


# ------------------------------------------------------------------------------ paths the machine refuses

LONG = "n" * 256 + "/x"
LONG_NAMES = {"space": f"name: r\nspace: {LONG}\n", "supernet": f"name: r\nspace: {SPACE}\nsupernet: {LONG}\n",
              "search.cost_table": f"name: r\nspace: {SPACE}\nsearch:\n  cost_table: {LONG}\n",
              "export.dir": f"name: r\nspace: {SPACE}\nexport:\n  dir: {LONG}\n",
              "data.root": f"name: r\nspace: {SPACE}\ndata:\n  dataset: cifar10\n  root: {LONG}\n"}


@pytest.mark.parametrize("key", sorted(LONG_NAMES))
def test_path_with_a_name_too_long_is_refused_at_load_at_its_line(tmp_path, key):
    """A name of more than 255 bytes: the run stopped where it first looked at the path (``Path.is_file()`` of
    search.cost_table as the run started, ``is_dir()`` of supernet, the space's compilation), an internal error or
    an OSError naming no key."""
    path = tmp_path / "r.yaml"
    path.write_text(LONG_NAMES[key], encoding="utf-8")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    e = info.value
    assert e.key == key and e.line == LONG_NAMES[key].count("\n"), str(e)
    assert "is 256 bytes long, more than file systems take (255); check the path" in str(e)


def test_path_too_long_as_a_whole_is_refused_at_load():
    long = "/" + "/".join(["d" * 200] * 25)
    e = _refused([f"search.cost_table={long}.json"])
    assert e.key == "search.cost_table" and "this path is 5,030 bytes long" in str(e) and "override" in str(e)
    assert load_recipe(QUICK, [f"data.root={long}"]).data.root == long  # digits reads no data.root: warned of only


def test_data_root_too_long_is_left_alone_where_the_dataset_reads_none():
    assert load_recipe(QUICK, [f"data.root={'r' * 300}"]).data.root.endswith("r" * 300)


def test_space_path_the_machine_refuses_is_a_recipe_error_at_its_key(tmp_path, monkeypatch):
    """An OSError reading the space (a folder on the way without permission, which root's tests cannot make: the
    error is the one ``Path.exists()`` raises) named the path only; it names the recipe's space key and line."""
    path = _file(tmp_path, "")
    recipe = load_recipe(path)

    def refuse(p, args):
        raise PermissionError(13, "Permission denied", str(p))

    monkeypatch.setattr("automl.pipeline.setup.load_compiled", refuse)
    with pytest.raises(RecipeError) as info:
        load_spaces(recipe)
    e = info.value
    assert e.key == "space" and e.line == 2 and f"{SPACE}: Permission denied; check the path" in str(e)
