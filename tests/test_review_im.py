"""Review IM: how a forced supernet, the advice to force one, and the thread count are said.

1. The warning of a supernet trained with other settings names ``supernet_force`` as the command line gave it (the
   flag ``--supernet-force``, the override ``supernet_force=true``), which wins over the recipe file's line; the
   command passes how it was given to ``Run`` (``force_typed``), not a command text to parse.
2. report.md names a forced supernet by the flag and by the recipe key (results.json does not record which).
3. A refused supernet (other settings, other training data) advises forcing it as the supernet was given: the
   flag with ``--supernet``, ``supernet_force: true`` with the recipe key, the override with ``supernet=DIR``; and
   ``--supernet-force`` without ``--supernet`` says what to do with a recipe's own ``supernet``.
4. ``threads: N (...)`` is said once the start-up's checks passed: a recipe refused for its data, space or shapes
   prints only its error.
5. pareto.png leaves out a member without a cost (it was drawn at x=0), and report.md says so.
"""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

import pytest

import automl.commands.run as cmd_run
import automl.pipeline.run as run_mod
import automl.report as report
from automl.cli import main
from automl.errors import RecipeError, UserError
from automl.pipeline import Run
from automl.pipeline.reuse import FLAG, Given, Reused, on_data
from automl.recipe import load_recipe

from helpers import cli_out_err

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

TINY = ["search.supernets=1", "search.weight_epochs=1", "search.theta_epochs=1", "search.epsilons=[0]",
        "retrain.epochs=0", "export.onnx=false", "data.limit_train=96", "data.batch_size=32",
        "data.theta_batch_size=32", "device=cpu"]


def _recipe(folder: Path, top: str = "", name: str = "r.yaml", data: str = "  dataset: digits\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"name: im\nthreads: 1\n{top}space: {DIGITS}\ndata:\n{data}")
    return path


def _line(path: Path, start: str) -> int:
    return next(i + 1 for i, line in enumerate(path.read_text().split("\n")) if line.startswith(start))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished tiny digits run whose supernet later runs reuse."""
    folder = tmp_path_factory.mktemp("im")
    out = folder / "first"
    assert main(["run", str(_recipe(folder)), *TINY, "--out", str(out)]) == 0
    return out


# ---------------------------------------------------------------- 1. how supernet_force was given
def test_force_named_takes_how_the_command_line_gave_it(tmp_path):
    path = _recipe(tmp_path, top="supernet: /nowhere\nsupernet_force: true\n")
    recipe = load_recipe(path)
    assert run_mod.force_named(recipe) == f"supernet_force ({path}:{_line(path, 'supernet_force')})"
    assert run_mod.force_named(recipe, "--supernet-force") == "--supernet-force"  # applied last: it is named
    assert run_mod.force_named(recipe, "override") == "supernet_force=true"
    assert Run(recipe, tmp_path / "o", force_typed="--supernet-force").force_given == "--supernet-force"
    # a script's Run (no command): the recipe's own line, whatever its made-up resume command says
    assert Run(recipe, tmp_path / "o", resume_command="automl run x --supernet-force").force_given == \
        f"supernet_force ({path}:{_line(path, 'supernet_force')})"
    plain = load_recipe(_recipe(tmp_path, top="supernet: /nowhere\n", name="p.yaml"), ["supernet_force=true"])
    assert run_mod.force_named(plain) == "supernet_force=true"


def test_the_command_tells_how_supernet_force_was_given():
    typed = cmd_run._force_typed
    assert typed(Namespace(supernet_force=True, overrides=["supernet_force=true"])) == "--supernet-force"
    assert typed(Namespace(supernet_force=False, overrides=[" supernet_force = true"])) == "override"
    assert typed(Namespace(supernet_force=False, overrides=["supernet=/x", "seed=1"])) is None


def test_the_warning_names_the_flag_typed_over_the_recipe_line(trained, tmp_path, capsys):
    """The recipe file says ``supernet_force: true`` and the command types --supernet-force too: the flag, applied
    last, is what the warning names (it named the file's line)."""
    path = _recipe(tmp_path, top="supernet_force: true\n")
    code, out, err = cli_out_err(capsys, "run", path, *TINY, "search.lam=3", "--out", tmp_path / "forced",
                                 "--supernet", trained, "--supernet-force")
    assert code == 0, err
    assert "warning: --supernet-force: the supernet of" in out, out
    assert "warning: supernet_force (" not in out, out


# ---------------------------------------------------------------- 2. report.md
def test_the_report_names_both_ways_of_forcing():
    lines = report._supernet_lines({"from": "/runs/a", "fingerprint": "f", "forced": True,
                                    "differs": ["seed: 0 there, 1 here"]})
    assert "**forced** (`--supernet-force` / `supernet_force: true`)" in lines[0], lines


# ---------------------------------------------------------------- 3. the advice to force
def test_refused_settings_advise_forcing_as_the_supernet_was_given(trained, tmp_path, capsys):
    keyed = _recipe(tmp_path, top=f"supernet: {trained}\n")
    code, _, err = cli_out_err(capsys, "run", keyed, *TINY, "search.lam=3", "--out", tmp_path / "k")
    assert code == 2 and err.startswith(f"{keyed}:{_line(keyed, 'supernet')}: supernet: {trained}:"), err
    assert "or set supernet_force: true in the recipe to use the supernet anyway" in err, err
    assert "--supernet-force" not in err, err  # refused with the recipe key: supernet_overrides

    plain = _recipe(tmp_path, name="plain.yaml")
    code, _, err = cli_out_err(capsys, "run", plain, *TINY, "search.lam=3", f"supernet={trained}", "--out",
                               tmp_path / "o")
    assert code == 2 and "or add the override supernet_force=true to use the supernet anyway" in err, err

    code, _, err = cli_out_err(capsys, "run", plain, *TINY, "search.lam=3", "--supernet", trained, "--out",
                               tmp_path / "f")
    assert code == 2 and "or pass --supernet-force to use the supernet anyway" in err, err


def test_refused_data_advises_forcing_as_the_supernet_was_given(tmp_path):
    before = {"dataset": "digits", "train": {"count": 20, "classes": 2}}
    now = {"dataset": "digits", "train": {"count": 21, "classes": 2}}
    reused = Reused({}, {"from": "/a", "fingerprint": "f", "forced": False, "differs": []}, [], {}, before)
    cases = ((FLAG, UserError, "or pass --supernet-force to use"),
             (Given("r.yaml", 4), RecipeError, "or set supernet_force: true in the recipe to use"),
             (Given("r.yaml", None, True), RecipeError, "or add the override supernet_force=true to use"))
    for given, kind, advice in cases:
        with pytest.raises(kind) as e:
            on_data(reused, now, Path("/a"), False, given)
        assert advice in str(e.value), (given, str(e.value))


def test_the_flag_without_supernet_says_what_a_recipes_supernet_takes(tmp_path, capsys):
    path = _recipe(tmp_path, top=f"supernet: {tmp_path}\n")
    code, _, err = cli_out_err(capsys, "run", path, *TINY, "--supernet-force", "--out", tmp_path / "o")
    assert code == 2 and "--supernet-force needs --supernet RUN_DIR" in err, err
    assert "set supernet_force: true in the recipe" in err, err


# ---------------------------------------------------------------- 4. the threads line
@pytest.mark.parametrize("case, top, data, overrides, said", [
    ("data", "", "  dataset: imagefolder\n  root: {tmp}/nothere\n", [], "image folder not found"),
    ("space", "", "  dataset: digits\n", ["space_args.widht=2"], "widht"),
    ("shapes", "", "  dataset: digits\n", ["space_args.classes=3"], "classes"),
])
def test_a_refused_start_up_prints_no_threads_line(tmp_path, capsys, case, top, data, overrides, said):
    path = _recipe(tmp_path, top=top, data=data.format(tmp=tmp_path))
    code, out, err = cli_out_err(capsys, "run", path, *overrides, "--out", tmp_path / "o")
    assert code == 2 and said in err, (case, err)
    assert "threads:" not in out + err, (case, out, err)


def test_the_threads_line_comes_before_the_first_epoch(tmp_path, capsys):
    code, out, err = cli_out_err(capsys, "run", _recipe(tmp_path), *TINY, "--out", tmp_path / "o")
    assert code == 0, err
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("weights epoch"))
    assert lines.index("threads: 1 (from the recipe)") < first, lines


# ---------------------------------------------------------------- 5. pareto.png
def test_a_member_without_a_cost_is_not_plotted(monkeypatch):
    results = {"recipe": "r", "method": "importance_sampling", "search_seconds": 1.0, "phase_seconds": {},
               "cost_metric": "params",
               "architectures": [{"choices": ["a"], "epsilon": 0, "params": 10, "cost": 10.0, "test_accuracy": 0.5},
                                 {"choices": ["b"], "epsilon": 0.5, "params": 20, "cost": None,
                                  "test_accuracy": 0.6}]}
    drawn = []
    real = report._png

    def spy(fig, ax, labels):
        drawn.extend(tuple(p) for line in ax.get_lines() for p in line.get_xydata())
        return real(fig, ax, labels)

    monkeypatch.setattr(report, "_png", spy)
    report.plot_pareto(results)
    assert drawn == [(10.0, 50.0)], drawn
    md = report.render_markdown(results)
    assert "pareto.png leaves out the 1 architecture without a cost" in md, md
