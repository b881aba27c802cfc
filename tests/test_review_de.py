"""Review DE (recipes): every integer setting takes a whole number written 1e1 or 10.0 (``threads`` did not), the
one table of keys another setting makes ignored (warned about or refused, as the two tables before it did), and
recipe mistakes that still ended in a traceback or in PyYAML's words."""

from __future__ import annotations

import logging
import types
import typing

import pytest
from pydantic import BaseModel

from automl.cli import main
from automl.recipe import Recipe, load_recipe, parse_recipe

from test_recipe_checks import HEAD, QUICK, error_of, write  # the recipe-file helpers

# ------------------------------------------------------------- 1: whole numbers in every integer setting


def _int_fields(model: type[BaseModel], prefix: tuple = ()):
    """``(keys, field)`` of every setting of the recipe whose type takes an integer (``int``, ``int | None``,
    ``"auto" | int``, ``float | int``), found from the pydantic models, sections followed."""
    for name, field in model.model_fields.items():
        ann = field.annotation
        args = set(typing.get_args(ann)) if typing.get_origin(ann) in (typing.Union, types.UnionType) else {ann}
        sections = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if sections:
            yield from _int_fields(sections[0], prefix + (name,))
        elif int in args:
            yield prefix + (name,), field


INT_FIELDS = list(_int_fields(Recipe))


def _whole_value(field) -> int:
    """A whole number the field takes: 10, or its bounds' nearest."""
    low, high = 10, None
    for m in field.metadata:
        if getattr(m, "ge", None) is not None:
            low = max(low, m.ge)
        if getattr(m, "gt", None) is not None:
            low = max(low, m.gt + 1)
        for bound in ("le", "lt"):
            if getattr(m, bound, None) is not None:
                high = m.le if bound == "le" else m.lt - 1
    return low if high is None else min(low, high)


def _flow(keys: tuple, value: str) -> str:
    """``data: {synthetic: {size: 1e1}}``: ``keys`` set to ``value`` as a recipe file writes it."""
    text = f"{keys[-1]}: {value}"
    for k in reversed(keys[:-1]):
        text = f"{k}: {{{text}}}"
    return text + "\n"


def _value_at(recipe, keys):
    for k in keys:
        recipe = getattr(recipe, k)
    return recipe


def test_the_integer_settings_are_found_from_the_models():
    names = {".".join(k) for k, _ in INT_FIELDS}
    assert {"threads", "seed", "search.lam", "data.synthetic.size", "ranking.seeds", "data.theta_split"} <= names
    assert len(names) > 25


@pytest.mark.parametrize("keys, field", INT_FIELDS, ids=[".".join(k) for k, _ in INT_FIELDS])
def test_every_integer_setting_takes_a_whole_number_written_1e1_or_10_0(tmp_path, keys, field):
    # was: threads (a custom "auto" | int type) refused 1e1, 10.0 and '10', which every other integer setting takes
    n = _whole_value(field)
    for written in (f"{n}e0", f"{n / 10:g}e1", f"{n}.0", f"'{n}'"):
        got = _value_at(load_recipe(write(tmp_path, HEAD + _flow(keys, written))), keys)
        assert got == n and type(got) is int, (written, got)
        got = _value_at(load_recipe(QUICK, [f"{'.'.join(keys)}={written}"]), keys)
        assert got == n and type(got) is int, (written, got)


@pytest.mark.parametrize("keys, field", INT_FIELDS, ids=[".".join(k) for k, _ in INT_FIELDS])
def test_every_integer_setting_refuses_a_fraction_naming_its_key_and_line(tmp_path, keys, field):
    n = _whole_value(field)
    for written in (f"{n}.5", f"{n}.5e0"):
        e = error_of(write(tmp_path, HEAD + _flow(keys, written)))
        assert f":3: {'.'.join(keys)}: must be " in e and "\n" not in e, e
        assert any(w in e for w in ("integer", "whole number", "count")), e


def test_threads_still_refuses_what_it_refused(tmp_path):
    for written in ("0", "0e0", "true", "1025.0", "1e4", "x", "2.5"):
        e = error_of(write(tmp_path, HEAD + f"threads: {written}\n"))
        assert ":3: threads: must be 'auto' or a whole number of threads from 1 to " in e, e
    assert load_recipe(write(tmp_path, HEAD + "threads: auto\n")).threads == "auto"


def test_threads_1e1_in_the_cli_starts_no_traceback(tmp_path, capsys):
    path = write(tmp_path, HEAD + "threads: 2.5\n")
    assert main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: threads: must be 'auto' or a whole number" in err and "Traceback" not in err, err


# --------------------------------------------- 2: keys another setting makes ignored: warned about or refused

# What the two tables (_IGNORED_UNLESS: warnings, _METHOD_1_IGNORES: refusals) printed before they became one,
# for recipes that set every key of both: the same warnings, in the same order, and the same refusals.
Q = str(QUICK)
IGNORED_CASES = [
    (["search.theta_bn_batches=4"], [f"warning: {Q}: search.theta_bn_batches is set, but applies only with "
                                     f"search.theta_bn: recalibrate; this recipe ignores it"], None),
    (["optim.decay_rate=0.5", "optim.decay_epochs=5", "retrain.decay_rate=0.5", "retrain.decay_epochs=5"],
     [f"warning: {Q}: {k} is set, but applies only with {s}.schedule: step; this recipe ignores it"
      for s, k in (("optim", "optim.decay_rate"), ("optim", "optim.decay_epochs"), ("retrain", "retrain.decay_rate"),
                   ("retrain", "retrain.decay_epochs"))], None),
    (["optim.warmup_lr=0.01", "retrain.warmup_lr=0.01"],
     [f"warning: {Q}: {s}.warmup_lr is set, but applies only with {s}.warmup_epochs above 0; this recipe ignores it"
      for s in ("optim", "retrain")], None),
    (["optim.nesterov=true", "optim.name=adamw", "optim.momentum=0.8"],
     [f"warning: {Q}: optim.nesterov is set, but applies only with optim.name: sgd; this recipe ignores it",
      f"warning: {Q}: optim.momentum is set, but applies only with optim.name sgd, rmsprop or rmsproptf; this recipe "
      f"ignores it"], None),
    (["retrain.optimizer=adamw", "retrain.momentum=0.8", "retrain.rmsprop_eps=0.01", "retrain.rmsprop_alpha=0.5"],
     [f"warning: {Q}: retrain.momentum is set, but applies only with retrain.optimizer sgd, rmsprop or rmsproptf; "
      f"this recipe ignores it"] +
     [f"warning: {Q}: retrain.{k} is set, but applies only with retrain.optimizer rmsprop or rmsproptf; this recipe "
      f"ignores it" for k in ("rmsprop_eps", "rmsprop_alpha")], None),
    (["optim.name=rmsprop", "optim.nesterov=true", "optim.momentum=0.8", "optim.schedule=step", "optim.decay_rate=0.5",
      "optim.decay_epochs=5", "retrain.optimizer=rmsproptf", "retrain.rmsprop_eps=0.01"],
     [f"warning: {Q}: optim.nesterov is set, but applies only with optim.name: sgd; this recipe ignores it"], None),
    (["optim.warmup_lr=0.01", "optim.warmup_epochs=1", "search.theta_bn=recalibrate", "search.theta_bn_batches=4"],
     [], None),
    (["search.method=simultaneous", "search.theta_bn_batches=4", "search.theta_epochs=15"],
     [f"warning: {Q}: search.theta_bn_batches is set, but applies only with search.theta_bn: recalibrate; this "
      f"recipe ignores it"], None),
    (["search.method=simultaneous", "search.weight_sampling=fair", "optim.decay_rate=0.5"], [],
     f"{Q}: search.weight_sampling: override search.weight_sampling=fair: does not apply to search.method "
     f"simultaneous: Method 1 draws its paths from each member's own distribution, not by search.weight_sampling; "
     f"remove search.weight_sampling (default uniform), or choose another search.method"),
    (["search.method=simultaneous", "search.inplace_distill=true"], [],
     f"{Q}: search.inplace_distill: override search.inplace_distill=true: does not apply to search.method "
     f"simultaneous: Method 1 draws its paths from each member's own distribution, so no step has the largest path "
     f"to distil from; remove search.inplace_distill (default false), or choose another search.method"),
    (["search.method=simultaneous", "search.theta_bn=recalibrate"], [],
     f"{Q}: search.theta_bn: override search.theta_bn=recalibrate: does not apply to search.method simultaneous: "
     f"Method 1 draws its paths from each member's own distribution, and scores θ with each batch's own BatchNorm "
     f"statistics; remove search.theta_bn (default batch), or choose another search.method"),
    (["search.method=simultaneous", "search.theta_bn=recalibrate", "search.weight_sampling=sandwich",
      "search.inplace_distill=true"], [],
     f"{Q}: search.weight_sampling: override search.weight_sampling=sandwich: does not apply to search.method "
     f"simultaneous: Method 1 draws its paths from each member's own distribution, not by search.weight_sampling; "
     f"remove search.weight_sampling (default uniform), or choose another search.method"),
    # a refusal after the warnings' checks stops the run before they are printed; one after them, after
    (["optim.decay_rate=0.5", "optim.min_lr=1"], [], f"{Q}: optim.min_lr: override optim.min_lr=1: optim.min_lr (1) "
     f"is above optim.lr (0.3): the floor of the learning rate must be at most its initial value (a cosine schedule "
     f"would rise to it); lower optim.min_lr or raise optim.lr"),
]


@pytest.mark.parametrize("overrides, warnings, refusal", IGNORED_CASES)
def test_ignored_keys_warn_or_refuse_as_before(caplog, overrides, warnings, refusal):
    caplog.set_level(logging.WARNING, logger="automl")
    if refusal is None:
        load_recipe(QUICK, overrides)
    else:
        assert error_of(QUICK, overrides) == refusal
    assert [r.getMessage() for r in caplog.records if "ignore" in r.getMessage()] == warnings


def test_an_ignored_key_in_the_file_is_refused_at_its_line_or_warned_once(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="automl")
    path = write(tmp_path, HEAD + "search:\n  method: simultaneous\n  theta_bn: recalibrate\n")
    e = error_of(path)
    assert e.startswith(f"{path}:5: search.theta_bn: does not apply to search.method simultaneous: "), e
    path = write(tmp_path, HEAD + "optim:\n  name: adamw\n  momentum: 0.5\n  nesterov: true\n")
    load_recipe(path)
    assert [r.getMessage() for r in caplog.records] == [
        f"warning: {path}: optim.nesterov is set, but applies only with optim.name: sgd; this recipe ignores it",
        f"warning: {path}: optim.momentum is set, but applies only with optim.name sgd, rmsprop or rmsproptf; this "
        f"recipe ignores it"]
    caplog.clear()  # at their defaults (a resolved recipe writes every key): nothing
    load_recipe(write(tmp_path, HEAD + "optim:\n  name: adamw\n  momentum: 0.9\n  nesterov: false\n"
                                       "search:\n  method: simultaneous\n  theta_bn: batch\n"))
    assert not caplog.records


# --------------------------------------------------------------- 3: recipe mistakes still unhandled


@pytest.mark.parametrize("value, reads", [("!!bool maybe", "a boolean"), ("!!timestamp soon", "a date"),
                                          ("!!int x", "an integer")])
def test_a_value_its_yaml_tag_cannot_build_is_one_message_not_a_traceback(tmp_path, value, reads):
    # was: KeyError ('maybe') and AttributeError tracebacks, exit 1
    e = error_of(write(tmp_path, HEAD + f"export:\n  onnx: {value}\n"))
    assert f":4: export.onnx: YAML reads {value.split()[1]} as {reads} but cannot build it" in e, e
    assert "quote it" in e and "Traceback" not in e, e
    e = error_of(QUICK, [f"export.onnx={value}"])
    assert f"export.onnx: override export.onnx={value}: YAML reads {value.split()[1]} as {reads}" in e, e


def test_a_tag_that_cannot_build_in_the_cli_is_exit_2(tmp_path, capsys):
    path = write(tmp_path, HEAD + "export: {onnx: !!bool maybe}\n")
    assert main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
    assert main(["run", str(QUICK), "seed=!!timestamp x", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("cannot build it") == 2, err


@pytest.mark.parametrize("opening, closing", [("[", "]"), ("{a: ", "}")])
def test_lists_or_mappings_nested_too_deep_are_one_message_at_their_line(tmp_path, opening, closing):
    # was: RecursionError from PyYAML's composer, exit 1, from about 400 levels
    deep = opening * 2000 + "1" + closing * 2000
    e = error_of(write(tmp_path, HEAD + f"search:\n  lam: 4\n  epsilons: {deep}\n"))
    assert e.startswith(f"{tmp_path / 'r.yaml'}:5: ") and "nested" in e and "deep" in e and len(e) < 400, e
    e = error_of(QUICK, [f"search.epsilons={deep}"])
    assert "search.epsilons: override search.epsilons=" in e and "nested" in e and len(e) < 400, e


def test_a_block_mapping_nested_too_deep_is_one_message(tmp_path):
    deep = "".join(" " * i + "a:\n" for i in range(1, 1500))
    e = error_of(write(tmp_path, HEAD + "space_args:\n" + deep))
    assert "nested" in e and len(e) < 400, e


def test_nesting_a_recipe_uses_still_loads(tmp_path):
    r = load_recipe(write(tmp_path, HEAD + "search: {epsilons: [0, 0.5], lam: 4}\nspace_args: {a: 1}\n"))
    assert r.search.epsilons == [0, 0.5]


@pytest.mark.parametrize("body, key, want", [
    ("SEED: 3\n", "SEED", "seed"),
    ("search:\n  LAM: 4\n", "search.LAM", "search.lam"),
    ("DATA:\n  root: x\n", "DATA", "data"),
])
def test_a_key_in_another_case_is_named_with_its_spelling(tmp_path, body, key, want):
    # was: "unknown key; known keys here: ..." (difflib's match is case-sensitive)
    e = error_of(write(tmp_path, HEAD + body))
    assert f":3: {key}: unknown key; did you mean {want}?" in e or f":4: {key}: unknown key; did you mean {want}?" in e, e


@pytest.mark.parametrize("item, want", [("SEARCH.LAM=4", "search"), ("search.LAM=4", "search.lam"),
                                        ("search={LAM: 4}", "search.lam")])
def test_an_override_key_in_another_case_is_named_with_its_spelling(item, want):
    assert f"did you mean {want}?" in error_of(QUICK, [item])


@pytest.mark.parametrize("body, line", [
    ("<<: 1\n", 3),
    ("search:\n  <<: [1]\n", 4),
    ("search:\n  lam: 4\n  <<: seed\n", 5),
])
def test_a_merge_key_given_no_mapping_says_what_merge_takes(tmp_path, body, line):
    # was: "unsupported YAML tag (expected a mapping for merging, but found scalar); a recipe holds plain values
    # only, no Python objects": no tag was given
    e = error_of(write(tmp_path, HEAD + body))
    assert e.startswith(f"{tmp_path / 'r.yaml'}:{line}: ") and "<<" in e and "mapping" in e, e
    assert "tag" not in e and "Python" not in e, e


@pytest.mark.parametrize("body, line", [("name: x\n...\nseed: 4\n", 3), ("%YAML 1.1\nname: x\nseed: 4\n", 2)])
def test_settings_after_the_end_of_the_document_say_how_to_fix_it(tmp_path, body, line):
    # was: "expected '<document start>', but found '<block mapping start>'", PyYAML's words
    e = error_of(write(tmp_path, body))
    assert f":{line}: YAML syntax error: " in e and "<document start>" not in e, e
    assert ("'...'" in e or "---" in e) and "remove" in e, e


@pytest.mark.parametrize("key, char", [("\u200bseed", "U+200B"), ("search:\n  lam\u00a0", "U+00A0"),
                                       ("search:\n  \ufefflam", "U+FEFF")])
def test_a_key_with_an_invisible_character_says_which(tmp_path, key, char):
    # was: "r.yaml:3: \u200bseed: unknown key; did you mean seed?", which reads "seed: ... did you mean seed?"
    e = error_of(write(tmp_path, HEAD + f"{key}: 3\n"))
    assert f"invisible character {char}" in e and "retype" in e, e


@pytest.mark.parametrize("item, char", [("\u200bseed=3", "U+200B"), ("search.\ufefflam=3", "U+FEFF")])
def test_an_override_key_with_an_invisible_character_says_which(item, char):
    e = error_of(QUICK, [item])
    assert f"invisible character {char}" in e and "retype" in e, e
