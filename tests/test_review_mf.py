"""Review MF (recipes): keys the chosen search method never reads are warned about (Method 1's search.theta_epochs,
the random baseline's ε, λ, epochs and θ settings), and a repeated ε or budget is shown as written, not with
float noise."""
from __future__ import annotations

import logging

import pytest

from automl.recipe import load_recipe
from test_recipe_checks import HEAD, QUICK, ROOT, error_of, write  # the recipe-file helpers

METHOD_1 = ROOT / "recipes" / "cifar10-method1.yaml"
RANDOM = ROOT / "recipes" / "cifar10-random.yaml"


def _ignored(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "ignore" in r.getMessage()]


# --------------------------------------------------------- 1: keys the search method never reads

def test_method_1_warns_of_theta_epochs_it_never_reads(caplog):
    caplog.set_level(logging.WARNING, logger="automl")
    r = load_recipe(METHOD_1, ["data.root=/data", "search.theta_epochs=0"])
    assert r.search.method == "simultaneous" and r.search.theta_epochs == 0
    assert _ignored(caplog) == [
        f"warning: {METHOD_1}: search.theta_epochs is set, but applies only with search.method importance_sampling "
        f"or separate; Method 1 (simultaneous) steps θ after each W step, for search.weight_epochs epochs; this "
        f"recipe ignores it"]


def test_a_shipped_recipe_does_not_warn_of_itself(caplog):
    caplog.set_level(logging.WARNING, logger="automl")
    for path in (METHOD_1, RANDOM):
        load_recipe(path, ["data.root=/data"])
    assert not _ignored(caplog)


@pytest.mark.parametrize("weight, theta, warns", [(7, 7, False), (7, 8, True), (10, 3, True)])
def test_theta_epochs_in_a_method_1_file_warns_unless_it_is_weight_epochs(tmp_path, caplog, weight, theta, warns):
    caplog.set_level(logging.WARNING, logger="automl")
    path = write(tmp_path, HEAD + f"search:\n  method: simultaneous\n  weight_epochs: {weight}\n"
                                  f"  theta_epochs: {theta}\n")
    load_recipe(path)
    assert bool(_ignored(caplog)) == warns
    assert all("search.theta_epochs is set" in m for m in _ignored(caplog))
    caplog.clear()
    load_recipe(path, ["search.method=separate"])  # Method 2 reads it
    assert not _ignored(caplog)


def test_random_warns_of_epsilons_beside_random_budgets(caplog):
    caplog.set_level(logging.WARNING, logger="automl")
    r = load_recipe(RANDOM, ["data.root=/data", "search.epsilons=[0,0.1]"])
    assert r.search.epsilons == [0.0, 0.1] and len(r.search.random_budgets) == 4
    assert _ignored(caplog) == [f"warning: {RANDOM}: search.epsilons is set, but search.method random draws one "
                                f"network per item of search.random_budgets; this recipe ignores it"]


def test_random_without_budgets_reads_the_length_of_epsilons_so_does_not_warn(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="automl")
    load_recipe(write(tmp_path, HEAD + "search:\n  method: random\n  epsilons: [0, 0.5]\n"))
    assert not _ignored(caplog)


def test_random_warns_once_of_every_setting_of_the_supernet_and_theta(caplog):
    caplog.set_level(logging.WARNING, logger="automl")
    sets = {"lam": "4", "weight_epochs": "3", "theta_epochs": "5", "theta_lr": "0.1", "utility": "paper",
            "normalize_costs": "false", "supernets": "2", "nan_policy": "skip", "max_bad_steps": "3",
            "weight_sampling": "fair"}
    load_recipe(RANDOM, ["data.root=/data"] + [f"search.{k}={v}" for k, v in sets.items()])
    (message,) = _ignored(caplog)
    assert message.startswith(f"warning: {RANDOM}: search.lam, search.weight_epochs, search.theta_epochs, "), message
    assert all(f"search.{k}" in message for k in sets), message
    assert "are set, but search.method random trains no supernet and no θ" in message
    assert message.endswith("this recipe ignores them"), message


def test_random_keeps_its_warning_of_a_key_another_setting_ignores_and_names_it_once(caplog):
    caplog.set_level(logging.WARNING, logger="automl")
    load_recipe(RANDOM, ["data.root=/data", "search.theta_bn_batches=4"])
    # random never reads it, whatever search.theta_bn says: its own warning names it (not "applies only with")
    assert _ignored(caplog) == [f"warning: {RANDOM}: search.theta_bn_batches is set, but search.method random trains "
                                f"no supernet and no θ (it draws each member's network uniformly, within its budget "
                                f"if any); this recipe ignores it"]
    caplog.clear()
    load_recipe(RANDOM, ["data.root=/data", "search.lam=3"])
    assert _ignored(caplog) == [f"warning: {RANDOM}: search.lam is set, but search.method random trains no "
                                f"supernet and no θ (it draws each member's network uniformly, within its budget if "
                                f"any); this recipe ignores it"]


def test_the_keys_random_reads_are_not_warned_of(caplog):
    caplog.set_level(logging.WARNING, logger="automl")
    load_recipe(QUICK, ["search.method=random", "search.lam=2", "search.weight_epochs=10", "search.theta_epochs=10",
                        "search.supernets=1", "search.log_every=3", "search.cost=params"])
    named = [m.split(": ", 2)[2].split(" is set")[0].split(" are set")[0] for m in _ignored(caplog)]
    assert named == ["optim.lr"], named  # the quickstart's, for the supernet random does not train


# --------------------------------------------------------- 2: a repeated ε or budget, as written

@pytest.mark.parametrize("given, shown", [
    ("search.epsilons=[0,0.1,0.1]", "item 3 (0.1) is given twice (item 2)"),
    ("search.epsilons=[0,0.3,1e-1,0.1]", "item 4 (0.1) is given twice (item 3)"),
    ("search.epsilons=[0.7,0.7]", "item 2 (0.7) is given twice (item 1)"),
    ("search.budgets=[null,150k,150000]", "item 3 (150000) is given twice (item 2)"),
    ("search.budgets=[null,0.3M,300000.0]", "item 3 (300000) is given twice (item 2)"),
])
def test_a_repeated_member_is_shown_without_float_noise(given, shown):
    e = error_of(QUICK, [given])
    assert shown in e and "0000000" not in e, e


def test_two_epsilons_alike_to_6_digits_are_still_shown_apart():
    e = error_of(QUICK, ["search.epsilons=[0,0.1,0.1000001]"])
    assert "item 3 (0.1000001) equals item 2 (0.1) to 6 significant digits" in e, e
    e = error_of(QUICK, ["search.epsilons=[0.30000000000000004,0.3]"])
    assert "item 2 (0.3) equals item 1 (0.30000000000000004) to 6 significant digits" in e, e
