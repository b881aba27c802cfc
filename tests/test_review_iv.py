"""Review IV: a reused supernet of another shape is refused as that before its other settings are, and
``--resume`` names another recipe before the data or the cost table it asks for is looked for.

1. ``--supernet RUN`` whose supernet has another shape (search.supernets, the space or its space_args) and was
   trained with other settings: the one message says it has another shape, which forcing cannot take, and gives
   no advice to force it (the advice then led to a second refusal); other settings alone still offer forcing. The
   counts of tensors and supernets in that message are singular for one.
2. ``--resume`` with a recipe whose keys differ from the run's is refused with "the recipe differs" first, not
   with a missing cost table or data set the other recipe asks for; the same recipe still resumes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.nn.ensemble import SupernetEnsemble
from automl.pipeline.reuse import _shape_mismatch, check_fits, load_supernet, weights_fingerprint
from automl.recipe import load_recipe
from helpers import fake_supernet_run

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
CIFAR = str(ROOT / "recipes" / "cifar10.yaml")
DIGITS = ROOT / "spaces" / "digits.space"
FAST = ["data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=1", "search.theta_epochs=1", "search.lam=2", "retrain.epochs=0", "export.onnx=false",
        "device=cpu", "threads=1", "search.epsilons=[0]", "search.supernets=1"]
FORCE_ADVICE = "to use the supernet anyway"

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _fingerprint(*overrides, space=DIGITS):
    recipe = load_recipe(QUICK, FAST + list(overrides))
    return weights_fingerprint(recipe, Path(space), {k: str(v) for k, v in recipe.space_args.items()})


def _supernet(members=1, space=DIGITS):
    cs = load_compiled(space, {})
    nets = [cs.build_supernet() for _ in range(members)]
    return (nets[0] if members == 1 else SupernetEnsemble(nets)).state_dict()


_fake_run = fake_supernet_run


# ---------------------------------------------------------------- 1. another shape first, never advised to force
def test_a_supernet_of_fewer_members_and_other_settings_is_refused_for_its_shape(tmp_path, capsys):
    src = _fake_run(tmp_path / "A", _fingerprint("search.weight_epochs=2"), _supernet())
    code = main(["run", QUICK, *FAST, "search.supernets=2", "--out", str(tmp_path / "C"), "--supernet", str(src)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "another shape" in err and "a single supernet there, an ensemble of 2 here (search.supernets)" in err, err
    assert "search.weight_epochs: 2 there, 1 here" in err, err  # the settings it was trained with, named
    assert FORCE_ADVICE not in err and "other settings than this recipe asks for" not in err, err
    assert not (tmp_path / "C").exists()


def test_a_supernet_of_another_space_and_other_settings_is_refused_for_its_shape(tmp_path, capsys):
    other = tmp_path / "other.space"
    other.write_text(DIGITS.read_text().replace("head = 128", "head = 96"))
    src = _fake_run(tmp_path / "A", _fingerprint("search.weight_epochs=2", space=other), _supernet(space=other))
    code = main(["run", QUICK, *FAST, "--out", str(tmp_path / "C"), "--supernet", str(src)])
    err = capsys.readouterr().err
    assert code == 2 and "another shape" in err and "head" in err, err
    assert FORCE_ADVICE not in err, err


def test_other_settings_alone_still_offer_forcing(tmp_path):
    src = _fake_run(tmp_path / "A", _fingerprint("search.weight_epochs=2"), _supernet())
    space = load_compiled(DIGITS, {})

    def fits(weights, differs):
        check_fits(src, weights, space, {}, 1, differs)

    with pytest.raises(UserError, match=FORCE_ADVICE):
        load_supernet(src, _fingerprint(), False, DIGITS, fits=fits)
    assert load_supernet(src, _fingerprint(), True, DIGITS, fits=fits).differs  # forced: taken


def test_the_shape_check_runs_before_the_settings_refusal(tmp_path):
    """A resumed run's ReusedWeightsStage reads the supernet with the same order: shape, then settings."""
    src = _fake_run(tmp_path / "A", _fingerprint("search.weight_epochs=2"), _supernet())
    space = load_compiled(DIGITS, {})

    def fits(weights, differs):
        check_fits(src, weights, space, {}, 3, differs)

    with pytest.raises(UserError) as e:
        load_supernet(src, _fingerprint(), False, DIGITS, fits=fits)
    assert "another shape" in str(e.value) and FORCE_ADVICE not in str(e.value)


def test_counts_of_one_are_singular():
    have = {"a": (2, 3), "x": (1,), "y": (1,)}
    want = {"a": (3, 3), "m": (1,)}
    assert _shape_mismatch(have, want, few=1) == ("1 tensor missing (m), 2 tensors not in this space (x, ...), "
                                                  "1 tensor of another size (a 2x3 there, 3x3 here)")
    assert _shape_mismatch(want, have) == ("2 tensors missing (x, y), 1 tensor not in this space (m), "
                                           "1 tensor of another size (a 3x3 there, 2x3 here)")
    have2 = {"a": (2, 3), "b": (1,)}
    want2 = {"a": (3, 3), "b": (2,)}
    assert "2 tensors of other sizes" in _shape_mismatch(have2, want2)


# ---------------------------------------------------------------- 2. --resume: another recipe is named first
@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("iv") / "A"
    assert main(["run", QUICK, *FAST, "--out", str(out)]) == 0
    return out


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of the run (its lock file aside: it names the last command that held the folder)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def test_resume_with_another_cost_names_the_recipe_before_the_missing_cost_table(finished, tmp_path, capsys):
    before = _files(finished)
    code = main(["run", QUICK, *FAST, "--out", str(finished), "--resume",
                 f"search.cost_table={tmp_path / 'nolat.json'}", "search.cost=latency"])
    err = capsys.readouterr().err
    assert code == 2 and "--resume: the recipe differs" in err, err
    assert 'search.cost: "params" there, "latency" here' in err, err
    assert "no such file" not in err and "profile" not in err, err
    assert _files(finished) == before


def test_resume_with_another_recipe_names_the_recipe_before_its_missing_data(finished, capsys):
    before = _files(finished)
    code = main(["run", CIFAR, "data.root=/nonexistent/cifar10", "device=cpu", "threads=1", "--out", str(finished),
                 "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and "--resume: the recipe differs" in err, err
    assert 'data.dataset: "digits" there, "cifar10" here' in err, err
    assert "not found" not in err, err
    assert _files(finished) == before


def test_resume_with_the_same_recipe_still_resumes(finished, capsys):
    code = main(["run", QUICK, *FAST, "--out", str(finished), "--resume"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"resuming {finished} at report" in captured.out + captured.err
