"""User mistakes in recipes and on the ``automl run`` command line: one message naming the file, key or
argument, exit code 2, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automl.cli import main
from automl.errors import RecipeError
from automl.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
SEED_LIMIT = 10**15  # the message says -10^15 to 10^15
HEAD = f"name: x\nspace: {ROOT / 'spaces' / 'digits.space'}\n"
# seconds, not minutes: one epoch of each phase on a few digits
TINY = ["threads=1", "data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32", "search.lam=2",
        "search.weight_epochs=1", "search.theta_epochs=1", "search.budgets=[null,40k]", "retrain.epochs=0",
        "export.onnx=false"]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def run_cli(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


# ------------------------------------------------------------------------- theta_lr / theta_min as 1e-3


@pytest.mark.parametrize("key", ["theta_lr", "theta_min"])
@pytest.mark.parametrize("text,value", [("1e-3", 1e-3), ("2.5E-2", 0.025), ("1e30", 1e30), (" 3 ", 3.0)])
def test_theta_keys_take_exponent_numbers_as_overrides(key, text, value):
    r = load_recipe(QUICK, [f"search.{key}={text}"])
    assert getattr(r.search, key) == value


def test_theta_lr_takes_an_exponent_number_in_a_file(tmp_path):
    r = load_recipe(write(tmp_path, HEAD + "search:\n  theta_lr: 1e-3\n  theta_min: 5e-2\n"))
    assert r.search.theta_lr == 1e-3 and r.search.theta_min == 0.05


@pytest.mark.parametrize("text,got", [("fast", "'fast'"), ("-1e-3", "'-1e-3'"), ("inf", "'inf'"),
                                      ("nan", "'nan'"), ("0e0", "'0e0'")])
def test_theta_lr_still_refuses_what_is_not_a_number_above_zero(text, got):
    with pytest.raises(RecipeError) as info:
        load_recipe(QUICK, [f"search.theta_lr={text}"])
    assert f"search.theta_lr: override search.theta_lr={text}: must be 'auto' or a number > 0 (got {got})" \
        in str(info.value)


def test_theta_min_zero_in_exponent_form_is_allowed():
    assert load_recipe(QUICK, ["search.theta_min=0e0"]).search.theta_min == 0.0


# ------------------------------------------------------------------------------------------------- seed


@pytest.mark.parametrize("seed", ["18446744073709551616", "99999999999999999999999", str(SEED_LIMIT + 1),
                                  str(-SEED_LIMIT - 1)])
def test_a_seed_torch_cannot_take_is_a_recipe_error_on_the_command_line(tmp_path, capsys, seed):
    code, err = run_cli(["run", QUICK, *TINY, f"seed={seed}", "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert f"seed: override seed={seed}: must be an integer from -10^15 to 10^15" in err, err
    assert not (tmp_path / "o").exists()


def test_a_seed_torch_cannot_take_is_a_recipe_error_in_a_file(tmp_path):
    path = write(tmp_path, HEAD + "seed: 99999999999999999999999\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert str(info.value).startswith(f"{path}:3: seed: must be an integer from -10^15 to 10^15")


@pytest.mark.parametrize("seed", [SEED_LIMIT, -SEED_LIMIT, 0, 12345])
def test_seeds_within_the_limit_load(seed):
    assert load_recipe(QUICK, [f"seed={seed}"]).seed == seed


@pytest.mark.parametrize("seed,method", [(SEED_LIMIT, "importance_sampling"), (-SEED_LIMIT, "random")])
def test_a_run_at_the_seed_limits_completes(tmp_path, capsys, seed, method):
    """The seeds a run derives from its own (the supernet members, each architecture's network, each ranking
    retraining's (seed + s) * 7919 + 100_003 + j) fit torch's range at both limits."""
    extra = ["search.supernets=2"] if method != "random" else ["search.supernets=1"]
    if method != "random":
        extra += ["ranking.archs=3", "ranking.retrain_epochs=1", "ranking.seeds=2"]
    code, err = run_cli(["run", QUICK, *TINY, *extra, f"seed={seed}", f"search.method={method}",
                         "--out", str(tmp_path / "o")], capsys)
    assert code == 0, err
    if method != "random":
        ranking = json.loads((tmp_path / "o" / "results.json").read_text())["ranking"]
        assert ranking["seeds"] == 2 and len(ranking["archs"]) == 3


# ------------------------------------------------------------------------------------ a list as a key


@pytest.mark.parametrize("text,line,kind", [("? [a, b]\n: 1\n", 3, "list"), ("[a]: 1\n", 3, "list"),
                                            ("{a: 1}: 2\n", 3, "mapping")])
def test_a_list_or_mapping_as_a_top_level_key_is_named(tmp_path, text, line, kind):
    path = write(tmp_path, HEAD + text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:{line}: a key must be a name, not a {kind}"), msg
    assert "tag" not in msg and "unhashable" not in msg


def test_a_list_as_a_key_inside_a_section_names_the_section(tmp_path):
    path = write(tmp_path, HEAD + "search:\n  lam: 2\n  [a]: 1\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert str(info.value).startswith(f"{path}:5: search: a key must be a name, not a list"), str(info.value)


def test_a_list_as_a_key_in_an_override_is_named():
    with pytest.raises(RecipeError) as info:
        load_recipe(QUICK, ["space_args={[a]: 1}"])
    msg = str(info.value)
    assert "override space_args={[a]: 1}: a key must be a name, not a list" in msg, msg
    assert "unhashable" not in msg


def test_a_list_as_a_key_exits_2_from_the_cli(tmp_path, capsys):
    path = write(tmp_path, HEAD + "[a]: 1\n")
    code, err = run_cli(["run", str(path), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and f"{path}:3: a key must be a name" in err, err


# --------------------------------------------------------------------------------- automl run, no args


def test_run_without_arguments_names_only_the_recipe(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "the following arguments are required: recipe" in err, err
    assert "key.path=value" not in err.splitlines()[-1], err


def test_run_overrides_stay_optional_and_positional(tmp_path, monkeypatch):
    seen = {}

    def fake_main(args):
        seen["args"] = args
        return 0

    monkeypatch.setattr("automl.commands.run.main", fake_main)
    assert main(["run", QUICK]) == 0 and seen["args"].overrides == []
    assert main(["run", QUICK, "search.lam=4", "seed=3", "--out", "o"]) == 0
    assert seen["args"].overrides == ["search.lam=4", "seed=3"] and seen["args"].out == "o"
    assert main(["run", QUICK, "--out", "o", "search.lam=4"]) == 0 and seen["args"].overrides == ["search.lam=4"]


def test_run_help_shows_the_overrides(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert "recipe" in out and "key.path=value" in out and "recipe overrides" in out


@pytest.mark.parametrize("key", ["budgets", "random_budgets"])
def test_the_budget_a_message_suggests_is_accepted(key):
    """A budget below the smallest network names a minimum; that minimum, as written, passes the check
    (digits' smallest network has 13,554 parameters: '13.55k' would be refused again)."""
    import re

    from automl.compile import load_compiled
    from automl.errors import UserError
    from automl.pipeline.setup import check_budgets
    from automl.pipeline.plan import _sampled_problem

    digits = load_compiled(str(ROOT / "spaces" / "digits.space"))

    def check(budget):
        extra = ["search.method=random"] if key == "random_budgets" else []
        recipe = load_recipe(QUICK, extra + [f"search.{key}=[{budget}]"] + (["search.budgets=null",
                             "search.epsilons=[0]"] if key == "random_budgets" else []))
        if key == "budgets":
            check_budgets(recipe, digits, print)
        else:
            spaces = type("Spaces", (), {"search": digits, "retrain": digits})()
            _sampled_problem(recipe, spaces, [0])

    with pytest.raises(UserError) as e:
        check("13000")
    suggested = re.search(r"at least ([0-9.,]+k?)", str(e.value)).group(1).replace(",", "")
    check(suggested)
