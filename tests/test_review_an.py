"""Review AN: `automl run` and `automl rank` as a user drives them. A flag given twice is refused (argparse kept
the last one silently); --supernet is a folder's name, not YAML (``--supernet null`` trained a new supernet, a
folder named 2024 was "not a string"); an --out inside an absolute export.dir (or an export.dir inside the run's
own files) is refused before anything is written; the help texts say what the commands do."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from automl.cli import build_parser, main
from automl.commands.rank import _older_paths
from automl.commands.run import supernet_overrides
from automl.pipeline.setup import check_out_and_export
from automl.errors import UserError
from automl.recipe import load_recipe
from helpers import cli_err as cli

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
FAST = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "search.budgets=null", "search.epsilons=[0]", "export.onnx=false"]

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def refused(capsys, *argv) -> str:
    """The argparse error of ``argv``: exit 2, a usage line and one error line; returns the error line."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1, err
    return errors[0]


# ---- 1. a flag given twice ----------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, named", [
    (["--out", "a", "--out", "b"], "--out given twice (a, then b)"),
    (["--out", "a", "--ou", "b"], "--out given twice (a, then b)"),  # an abbreviation is the same flag
    (["--out=a", "--out", "a"], "--out given twice (a, then a)"),
    (["--resume", "--resume"], "--resume given twice"),
    (["--supernet", "r1", "--supernet", "r2"], "--supernet given twice (r1, then r2)"),
    (["--supernet", "r1", "--supernet-force", "--supernet-force"], "--supernet-force given twice"),
])
def test_a_run_flag_given_twice_is_refused(tmp_path, monkeypatch, capsys, flags, named):
    monkeypatch.chdir(tmp_path)  # nothing may be written: no runs/, no --out
    line = refused(capsys, "run", QUICK, *FAST, *flags)
    assert line.startswith("automl run: error: ") and named in line and "give it once" in line, line
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("flags, named", [
    (["--archs", "3", "--archs", "5"], "--archs given twice (3, then 5)"),
    (["--retrain-epochs", "0", "--retrain-epochs", "1"], "--retrain-epochs given twice (0, then 1)"),
    (["--seeds", "1", "--seeds", "2"], "--seeds given twice (1, then 2)"),
    (["--truth", "loss", "--truth", "accuracy"], "--truth given twice (loss, then accuracy)"),
    (["--device", "cpu", "--device", "auto"], "--device given twice (cpu, then auto)"),
])
def test_a_rank_flag_given_twice_is_refused(tmp_path, capsys, flags, named):
    line = refused(capsys, "rank", tmp_path, *flags)
    assert line.startswith("automl rank: error: ") and named in line and "give it once" in line, line


def test_flags_given_once_still_parse():
    args = build_parser().parse_args(["run", QUICK, "--out", "o", "--resume", "--supernet", "s", "--supernet-force"])
    assert (args.out, args.resume, args.supernet, args.supernet_force) == ("o", True, "s", True)
    args = build_parser().parse_args(["run", QUICK])
    assert (args.out, args.resume, args.supernet, args.supernet_force) == (None, False, None, False)
    args = build_parser().parse_args(["rank", "r", "--archs", "4", "--seeds", "2", "--truth", "accuracy"])
    assert (args.archs, args.seeds, args.truth, args.retrain_epochs, args.device) == (4, 2, "accuracy", None, None)


# ---- 2. --supernet names a folder, whatever YAML would read in it ---------------------------------------------

@pytest.mark.parametrize("name", ["null", "2024", "true", "#1", "a #b", "[x]", "{x}", "'q'", "x: y", "*a",
                                  "&a x", "!!str y", 'say "hi"', "back\\slash", "é 😀"])
def test_supernet_is_a_folder_name_not_yaml(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(QUICK, FAST + supernet_overrides(name, False))
    assert recipe.supernet == str(tmp_path / name)


@pytest.mark.parametrize("name", ["runs/\udcff", "a\nb", "a\tb"])
def test_a_supernet_name_a_recipe_cannot_hold_is_named(tmp_path, monkeypatch, capsys, name):
    """A folder name with bytes that are not UTF-8 (argv's surrogates) or a control character cannot be recorded
    in recipe.resolved.yaml: one line naming --supernet (was the recipe's YAML or string error)."""
    monkeypatch.chdir(tmp_path)
    code, err = cli(capsys, "run", QUICK, *FAST, "--supernet", name, "--out", "o")
    assert code == 2 and err.startswith(f"error: --supernet {name!r}: ") and "rename" in err, err
    assert len(err.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


def test_supernet_null_is_looked_for_not_ignored(tmp_path, monkeypatch, capsys):
    """``--supernet null`` trained a new supernet (YAML's null: no --supernet at all)."""
    monkeypatch.chdir(tmp_path)
    code, err = cli(capsys, "run", QUICK, *FAST, "--supernet", "null", "--out", "o")
    assert code == 2 and f"--supernet {tmp_path / 'null'}: no checkpoint there" in err, err
    assert not (tmp_path / "o" / "results.json").exists()
    code, err = cli(capsys, "run", QUICK, *FAST, "--supernet", "2024", "--out", "o")
    assert code == 2 and f"--supernet {tmp_path / '2024'}: no checkpoint there" in err, err


def test_the_resume_command_gives_the_supernet_as_given(tmp_path, monkeypatch, capsys):
    """The command a stopped run prints (``resume_command``) names --supernet and --supernet-force as flags: run
    again, it loads the same recipe (it held ``supernet=null``, which YAML reads as no supernet)."""
    monkeypatch.chdir(tmp_path)
    seen = {}

    class FakeRun:
        def __init__(self, recipe, out, **kwargs):
            seen.update(recipe=recipe, command=kwargs["resume_command"])
            self.finished, self.late_signal = True, 0  # what Run says after its stages

        def execute(self):
            return None

    monkeypatch.setattr("automl.commands.run.Run", FakeRun)
    code, err = cli(capsys, "run", QUICK, *FAST, "--supernet", "null", "--supernet-force", "--out", "o")
    assert code == 0, err
    argv = shlex.split(seen["command"])
    assert argv[:2] == ["automl", "run"] and argv[-1] == "--resume", argv
    args = build_parser().parse_args(argv[1:])
    assert (args.out, args.resume, args.supernet, args.supernet_force) == (str(tmp_path / "o"), True,
                                                                          str(tmp_path / "null"), True), argv
    again = load_recipe(args.recipe, args.overrides + supernet_overrides(args.supernet, args.supernet_force))
    assert again == seen["recipe"] and again.supernet == str(tmp_path / "null")


def test_an_older_resolved_recipe_in_a_folder_with_a_hash_keeps_its_cost_table(tmp_path):
    """rank.py's override for an older recipe.resolved.yaml's relative cost table is a path, not YAML: a folder
    named ``exp #2`` is not cut at its ``#``."""
    folder = tmp_path / "exp #2"
    folder.mkdir()
    resolved = folder / "recipe.resolved.yaml"
    resolved.write_text(f"# resolved from {folder / 'r.yaml'}\n"
                        + load_recipe(QUICK, FAST + ["search.cost_table=latency.json"]).to_yaml()
                        .replace(str(Path.cwd() / "latency.json"), "latency.json"))
    base = _older_paths(resolved)
    assert base and load_recipe(resolved, base).search.cost_table == str(folder / "latency.json"), base


# ---- 3. --out and an absolute export.dir ---------------------------------------------------------------------

def _recipe(export_dir: Path):
    return load_recipe(QUICK, FAST + [f"export.dir={export_dir}"])


@pytest.mark.parametrize("out, export, named", [
    ("E", "E", "is export.dir itself"),
    ("E/run", "E", "is inside export.dir"),
    ("E/budget-0-none", "E", "is inside export.dir"),
    ("R", "R/checkpoints", "checkpoints"),
    ("R", "R/results.json/x", "results.json"),
])
def test_out_and_an_absolute_export_dir_that_overlap_are_refused(tmp_path, out, export, named):
    with pytest.raises(UserError) as e:
        check_out_and_export(_recipe(tmp_path / export), tmp_path / out)
    text = str(e.value)
    assert named in text and "--out" in text and "export.dir" in text and "\n" not in text, text


@pytest.mark.parametrize("out, export", [("R", "E"), ("R", "R/exports"), ("R", "R/export"), ("E2", "E")])
def test_out_and_an_export_dir_apart_are_accepted(tmp_path, out, export):
    check_out_and_export(_recipe(tmp_path / export), tmp_path / out)
    check_out_and_export(load_recipe(QUICK, FAST + ["export.dir=sub"]), tmp_path / out)  # relative: no check


def test_out_inside_export_dir_stops_the_run_before_it_writes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = cli(capsys, "run", QUICK, *FAST, f"export.dir={tmp_path / 'E'}", "--out", tmp_path / "E" / "run")
    assert code == 2 and f"--out {tmp_path / 'E' / 'run'} is inside export.dir {tmp_path / 'E'}" in err, err
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())
    # without --out: the folder this command created for the run is removed again
    code, err = cli(capsys, "run", QUICK, *FAST, f"export.dir={tmp_path / 'runs'}")
    assert code == 2 and "is inside export.dir" in err, err
    assert not list(tmp_path.iterdir())


# ---- 4. automl rank of a space smaller than its default K -------------------------------------------------------

@pytest.fixture(scope="module")
def nine(tmp_path_factory):
    """A finished run of a space of 9 architectures (digits with two stages of one searched layer)."""
    folder = tmp_path_factory.mktemp("nine")
    text = (ROOT / "spaces" / "digits.space").read_text()
    text = text.replace("repeat 3 choose block then block_or_skip", "repeat 1 choose block").replace("  skip = 0\n", "")
    text = text.replace("  stage s3 width 48 * width repeat 1 choose block\n", "")
    (folder / "nine.space").write_text(text)
    out = folder / "run"
    assert main(["run", QUICK, *FAST, f"space={folder / 'nine.space'}", "--out", str(out)]) == 0
    return out


def test_rank_of_a_small_space_without_archs_names_the_flag_not_the_recipe(nine, capsys):
    """20 (the default K) above a space of 9: the way out is --archs, not the ranking.archs of the run's
    recipe.resolved.yaml (which `automl rank` only reads)."""
    code, err = cli(capsys, "rank", nine)
    assert code == 2 and err.startswith(f"error: {nine}: 20 architectures to rank (automl rank's default), "), err
    assert "only 9; pass --archs 9 or less" in err and "set ranking.archs" not in err, err
    code, err = cli(capsys, "rank", nine, "--archs", "12")
    assert code == 2 and "--archs 12: 12 architectures asked for" in err and "pass --archs 9 or less" in err, err


# ---- 5. --help says what the commands do ---------------------------------------------------------------------

def test_run_and_rank_help_use_the_readme_s_names(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    run_help = " ".join(capsys.readouterr().out.split())
    assert "--out DIR" in run_help, run_help
    assert "without --out" in run_help and "latest" in run_help, run_help  # --resume alone picks the latest run
    assert "supernet key" in run_help, run_help  # --supernet-force with the recipe's supernet
    with pytest.raises(SystemExit):
        main(["rank", "--help"])
    rank_help = " ".join(capsys.readouterr().out.split())
    for flag in ("--archs K", "--retrain-epochs E", "--seeds S", "--truth {loss,accuracy}", "RUN_DIR"):
        assert flag in rank_help, (flag, rank_help)
    assert "results.json" in rank_help and "report.md" in rank_help, rank_help
