"""Property: any mutation of a shipped recipe either loads or raises RecipeError naming the file and a line,
a key path or the override; never any other exception. Loaded recipes also compile their space or raise a
UserError.

Mutations: character edits of the YAML text, deleted keys, values swapped for values of other types, and
random ``key.path=value`` overrides (known keys, misspelt keys, sections, garbage).
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from automl.cli import main
from automl.errors import RecipeError, UserError
from automl.recipe import Recipe, parse_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "recipes").glob("*.yaml"))}
# Small values for the space parameters, so that compiling a mutated recipe's space stays quick.
VALUES = [None, True, False, 0, 1, -1, 2, 3, 0.5, -0.5, 1e-9, 1e400, float("nan"), "", "x", "auto", "cpu",
          "sgd", "digits", "[1, 2]", [], [0.1, 0.2], [-1], {}, {"a": 1}, {"lr": 0.1}, "../x", "/tmp/none",
          "ünï", 10**30, "!!python/object/apply:os.system [echo hi]", "{", "[", ":", "- a"]
OVERRIDE_VALUES = ["4", "0", "-1", "1.5", "null", "true", "x", "[0, 0.5]", "[]", "{}", "{a: 1}", "[", "{",
                   "'", "1e999", ".nan", "auto", "cpu", "sgd", "../out", "/abs", "!!python/name:os.system",
                   "", "a=b", "ü"]
PATHS_IN_MODEL: list[str] = []


def _paths(model: type[BaseModel], prefix: str = "") -> None:
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        PATHS_IN_MODEL.append(dotted)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            _paths(ann, dotted + ".")


_paths(Recipe)
OVERRIDE_KEYS = PATHS_IN_MODEL + ["serch.lam", "search.lamb", "search.lam.x", "space_args.channels",
                                  "retrain.space_args.width", "", ".", "a..b", "data.synthetic.size.x",
                                  "=", "search.", "ëxport.dir"]


def check(text: str, overrides: list[str], filename: str = "recipes/fuzz.yaml") -> None:
    try:
        recipe = parse_recipe(text, filename=filename, base_dir=ROOT / "recipes", overrides=overrides)
    except RecipeError as e:
        msg = str(e)
        assert msg.startswith(filename), msg
        assert e.line is not None or e.key or "override" in msg, msg
        assert e.exit_code == 2
        return
    # A valid recipe: its space compiles with its space_args, or the mistake is a UserError.
    assert isinstance(recipe, Recipe)
    args = {k: str(v) for k, v in recipe.space_args.items()}
    key = (str(recipe.space_path), tuple(sorted(args.items())))
    if key not in _COMPILED:  # most mutations keep the space and its arguments: compile each once
        from automl.compile import load_compiled

        try:
            load_compiled(recipe.space_path, args)
            _COMPILED[key] = None
        except UserError as e:
            _COMPILED[key] = e


_COMPILED: dict = {}


@st.composite
def char_edits(draw):
    name = draw(st.sampled_from(sorted(RECIPES)))
    text = RECIPES[name]
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, max(len(text) - 1, 0)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "dup_line", "drop_line", "indent"]))
        if kind == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 10)):]
        elif kind == "insert":
            text = text[:i] + draw(st.sampled_from([":", " ", "\t", "-", "[", "{", "'", '"', "#", "\n", "&a",
                                                    "*a", "!!", "0", "x"])) + text[i:]
        elif kind == "replace":
            text = text[:i] + draw(st.characters(codec="utf-8")) + text[i + 1:]
        else:
            lines = text.split("\n")
            j = draw(st.integers(0, len(lines) - 1))
            if kind == "dup_line":
                lines.insert(j, lines[j])
            elif kind == "drop_line":
                del lines[j]
            else:
                lines[j] = "  " + lines[j]
            text = "\n".join(lines)
    return text


def _leaves(d, prefix=()):
    for k, v in d.items():
        yield prefix + (k,)
        if isinstance(v, dict):
            yield from _leaves(v, prefix + (k,))


@st.composite
def structural_edits(draw):
    name = draw(st.sampled_from(sorted(RECIPES)))
    data = yaml.safe_load(RECIPES[name])
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_leaves(data))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for k in path[:-1]:
            parent = parent[k]
        if draw(st.booleans()):
            del parent[path[-1]]  # key deletion
        else:
            # value type swap; a copy: a later edit may delete a key inside it, and VALUES must stay as it is
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(VALUES)))
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


overrides = st.lists(st.builds(lambda k, v: f"{k}={v}", st.sampled_from(OVERRIDE_KEYS),
                               st.sampled_from(OVERRIDE_VALUES))
                     | st.sampled_from(["search.lam", "=4", "nokey", ""]), max_size=3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(char_edits())
def test_character_edits(text):
    check(text, [])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structural_edits())
def test_deleted_keys_and_swapped_values(text):
    check(text, [])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(RECIPES)), overrides)
def test_random_overrides(name, items):
    check(RECIPES[name], items)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(char_edits(), overrides)
def test_cli_exit_code_is_0_or_2(tmp_path_factory, text, items):
    """Through the CLI: a bad recipe exits 2 before any work (``--resume`` on an empty folder stops a good
    recipe before training, so no example trains a network)."""
    d = tmp_path_factory.mktemp("fuzz")
    path = d / "r.yaml"
    path.write_text(text.replace("../spaces/", f"{ROOT / 'spaces'}/"), encoding="utf-8")
    code = main(["run", str(path), *items, "device=cpu", "--out", str(d / "out"), "--resume"])
    assert code == 2
    assert not (d / "out" / "metrics.jsonl").exists()
