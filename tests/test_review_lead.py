"""Recipe checks: the sandwich rule needs lam >= 3, each member its own epsilon or budget, and data keys the
dataset does not read are warned about."""
import json
import math
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

import automl.cli as cli
import automl.commands.run as run_command
import automl.pipeline.final_stages as fs
from automl.cli import main
from automl.pipeline import Run
from automl.errors import RecipeError
from automl.pipeline.state import CKPT_FORMAT
from automl.recipe import load_recipe
from automl.train.checkpoint import CheckpointStore
from test_ranking import TINY
from test_review_s import RANKING
from test_review_ay import export, exported  # noqa: F401 - fixtures: a digits export, copied per test

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "recipes" / "quickstart.yaml"


def error_of(overrides, path=QUICK) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    assert info.value.exit_code == 2
    return info.value


def test_sandwich_with_two_paths_per_step_is_refused_naming_the_key_set_last():
    e = error_of(["search.weight_sampling=sandwich", "search.lam=2"])
    assert e.key == "search.lam" and "search.lam: 3 or more" in str(e), str(e)
    e = error_of(["search.lam=2", "search.weight_sampling=sandwich"])
    assert e.key == "search.weight_sampling" and "no random path is left" in str(e), str(e)
    assert load_recipe(QUICK, ["search.weight_sampling=sandwich", "search.lam=3"]).search.lam == 3
    assert load_recipe(QUICK, ["search.weight_sampling=fair", "search.lam=2"]).search.lam == 2


def test_sandwich_with_two_paths_in_the_file_names_its_line(tmp_path):
    text = QUICK.read_text().replace("  lam: 8 ", "  weight_sampling: sandwich\n  lam: 2 ")
    assert text != QUICK.read_text()
    path = tmp_path / "q.yaml"
    path.write_text(text.replace("../spaces/", str(ROOT / "spaces") + "/"))
    e = error_of([], path)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("  weight_sampling: sandwich"))
    assert e.key == "search.weight_sampling" and f"q.yaml:{line}:" in str(e), str(e)


@pytest.mark.parametrize("override,key,item", [
    ("search.epsilons=[0,0.5,0.0]", "search.epsilons", 3),
    ("search.budgets=[null,20k,null]", "search.budgets", 3),
    ("search.budgets=[80k,40k,80000]", "search.budgets", 3),
])
def test_a_member_given_twice_is_refused(override, key, item):
    e = error_of([override])
    assert e.key == key and f"item {item} " in str(e) and "given twice" in str(e), str(e)


def test_epsilons_that_would_share_an_export_folder_are_refused():
    e = error_of(["search.epsilons=[0.1234561,0.1234562]"])
    assert e.key == "search.epsilons" and "eps-0.123456" in str(e), str(e)
    assert load_recipe(QUICK, ["search.epsilons=[0.123451,0.123452]"]).search.epsilons == [0.123451, 0.123452]


def test_a_member_given_twice_exits_2_before_training(tmp_path, capsys):
    code = main(["run", str(QUICK), "search.budgets=[null,40k,40k]", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "search.budgets" in err and "Traceback" not in err, err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_data_keys_the_dataset_does_not_read_are_warned_about(caplog):
    load_recipe(QUICK, ["data.root=/data", "data.workers=2"])
    assert "data.root applies to dataset cifar10 and imagefolder only; dataset digits ignores it" in caplog.text
    assert "data.workers applies to dataset imagefolder only" in caplog.text
    assert "data.download" not in caplog.text
    caplog.clear()
    load_recipe(QUICK, ["data.dataset=imagefolder", "data.root=/data", "data.workers=2"])
    assert "ignores" not in caplog.text


def test_the_random_baseline_takes_one_list_of_budgets():
    """With both lists the members were search.budgets' and the random_budgets were ignored without a word.
    Both given on the command line (or both in the file) are refused; one on the command line replaces the
    other from the file, as search.epsilons and search.budgets do."""
    e = error_of(["search.method=random", "search.budgets=[80k,40k]", "search.random_budgets=[30k]"])
    assert e.key == "search.random_budgets" and "takes one list of budgets" in str(e), str(e)
    e = error_of(["search.method=random", "search.random_budgets=[30k]", "search.budgets=[80k,40k]"])
    assert e.key == "search.budgets" and "remove one" in str(e), str(e)
    s = load_recipe(QUICK, ["search.method=random", "search.random_budgets=[30k]"]).search  # budgets in the file
    assert s.random_budgets == [30e3] and s.budgets is None
    paper = ROOT / "recipes" / "cifar10-random.yaml"                                     # random_budgets there
    s = load_recipe(paper, ["search.budgets=[3M,5M]"]).search
    assert s.budgets == [3e6, 5e6] and s.random_budgets is None


def test_a_warm_up_as_long_as_the_training_is_warned_about(caplog):
    """A 3-epoch cosine after a 5-epoch warm-up only rises (to 0.55 x lr) and never decays; said, not refused:
    a short smoke run of a recipe with a warm-up is one."""
    epochs = load_recipe(QUICK).search.weight_epochs
    load_recipe(QUICK, [f"optim.warmup_epochs={epochs}"])
    assert f"optim.warmup_epochs ({epochs}) is not below search.weight_epochs ({epochs})" in caplog.text
    caplog.clear()
    load_recipe(QUICK, ["retrain.warmup_epochs=5", "retrain.epochs=3"])
    assert "retrain.warmup_epochs (5) is not below retrain.epochs (3)" in caplog.text
    caplog.clear()
    load_recipe(QUICK, [f"optim.warmup_epochs={epochs - 1}", "retrain.warmup_epochs=5", "retrain.epochs=0"])
    assert "warmup_epochs" not in caplog.text  # shorter than the training, or no retraining at all


@pytest.mark.parametrize("field", ["epsilon", "se"])
def test_a_manifest_number_past_a_floats_range_is_the_files_mistake(field):
    """A hand-edited manifest's integer of 400 digits was an OverflowError in math.isfinite (exit 1)."""
    from automl.errors import UserError
    from automl.export.manifest import check_recorded

    with pytest.raises(UserError, match=f'm.json: "{field}" must be'):
        check_recorded({field: 10**400}, "m.json")


def test_a_file_that_is_no_cost_table_is_not_suggested_as_profiles_out(tmp_path):
    """`automl space profile --out FILE` overwrites FILE: the fix for a run's results.json given as a cost table
    names a new file beside it, not the results.json."""
    from automl.compile import load_compiled
    from automl.errors import UserError
    from automl.profile import read_cost_table

    results = tmp_path / "results.json"
    results.write_text('{"architectures": []}')
    with pytest.raises(UserError, match="not a cost table") as info:
        read_cost_table(results, load_compiled(ROOT / "spaces" / "digits.space"))
    assert f"--out {tmp_path / 'latency.json'}" in str(info.value) and f"--out {results}" not in str(info.value)


def test_a_cost_table_nested_too_deeply_is_the_files_mistake(tmp_path):
    """A recipe's search.cost_table reaches read_cost_table without the CLI: RecursionError was exit 1."""
    from automl.compile import load_compiled
    from automl.errors import UserError
    from automl.profile import read_cost_table

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserError, match="nests too deeply"):
        read_cost_table(deep, load_compiled(ROOT / "spaces" / "digits.space"), source="r.yaml")


def test_a_recipe_of_nested_yaml_aliases_is_refused_without_expanding_them(tmp_path):
    """Nine levels of nine aliases stand for 9**9 values: the key checks walked every one (3.5 minutes before
    exit 2); each node an alias repeats is now checked once. A subprocess, so a regression is a time-out here,
    not a stalled suite."""
    import subprocess
    import sys

    levels = ["a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]"] + [
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text((QUICK.read_text() + "\nbomb:\n" + "".join(f"  {x}\n" for x in levels))
                    .replace("../spaces/", str(ROOT / "spaces") + "/"))
    code = ("import sys\nfrom automl.recipe import load_recipe\nfrom automl.errors import RecipeError\n"
            f"try:\n    load_recipe({str(bomb)!r})\nexcept RecipeError as e:\n    print(e); sys.exit(2)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "bomb" in r.stdout and "unknown key" in r.stdout, (r.stdout, r.stderr[-500:])


@pytest.mark.parametrize("argv", [["run", "/dev/zero"], ["space", "check", "/dev/zero"]])
def test_an_endless_file_as_recipe_or_space_is_refused(argv, capsys):
    """/dev/zero (or any file past 16 MiB) was read to the end: memory grew until the machine gave out."""
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("/dev/zero: cannot read") and "larger than 16 MiB" in err, err


def test_a_runs_ranking_reads_its_results_json_once_for_all_its_retrainings(tmp_path, monkeypatch):
    """The retrainings results.json records (of an ``automl rank`` of the run) are looked up once per run, not
    once per ranking stage (3 architectures × 2 seeds here), and the run's ranking records all six."""
    reads = []
    real = fs.read_results
    monkeypatch.setattr(fs, "read_results", lambda path: reads.append(path) or real(path))
    Run(load_recipe(QUICK, TINY + RANKING), tmp_path / "run", tty=False).execute()
    assert reads == [tmp_path / "run" / "results.json"]
    archs = json.loads((tmp_path / "run" / "results.json").read_text())["ranking"]["archs"]
    assert [len(a["retrainings"]) for a in archs] == [2, 2, 2]


@pytest.mark.parametrize("override", ["space=loop1", "search.cost_table=loop1", "supernet=loop1"])
def test_a_relative_path_through_a_loop_of_links_is_the_users_mistake(tmp_path, monkeypatch, capsys, override):
    """A path key whose relative path runs into a loop of symbolic links was an internal error (Path.resolve's
    RuntimeError); it is absolute as written, and reading it says what is wrong, exit 2."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    r = load_recipe(QUICK, [override])
    assert str(tmp_path / "loop1") in json.dumps(r.model_dump(mode="json"))  # the key holds it, absolute
    code = main(["run", str(QUICK), override, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "loop1" in err, err


def test_out_that_is_a_link_to_nothing_says_so(tmp_path, capsys):
    """``--out L`` where L links to a folder that does not exist said "cannot write there (File exists)"."""
    (tmp_path / "L").symlink_to(tmp_path / "gone")
    code = main(["run", str(QUICK), "--out", str(tmp_path / "L")])
    err = capsys.readouterr().err
    assert code == 2 and f"is a link to {tmp_path / 'gone'}, which does not exist" in err, err
    assert "File exists" not in err and not (tmp_path / "gone").exists()


def _huge_space(templates: int = 4, nodes: int = 64) -> str:
    """A cell space of more than 10^4300 architectures (Python writes no int of over 4,300 digits)."""
    cells = "".join(f"cell t{t}\n" + "".join(f"  node n{i} sums 8 of earlier through ops\n" for i in range(nodes))
                    + "end\n" for t in range(templates))
    names = ", ".join(f"t{t}" for t in range(templates))
    return ("space p\ninput 3 x 8 x 8\nclasses 3\nchoices ops = none, maxpool_k3, avgpool_k3, identity, sep_k3, "
            f"sep_k5, dil_k3, dil_k5\n{cells}network\n  stem width 4\n  cells {names} width 2\nend\n")


def test_a_space_of_more_architectures_than_python_writes_is_counted_by_its_power_of_ten(tmp_path, capsys):
    """space check/show of ~10^4758 architectures was an internal error (int to str past 4,300 digits)."""
    path = tmp_path / "huge.space"
    path.write_text(_huge_space())
    assert main(["space", "check", str(path)]) == 0
    assert "~10^4758 architectures" in capsys.readouterr().out
    assert main(["space", "show", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["size"] == "~10^4758"
    path.write_text(_huge_space(templates=1, nodes=4))  # a count JSON holds: the whole number
    assert main(["space", "show", "--json", str(path)]) == 0
    size = json.loads(capsys.readouterr().out)["size"]
    assert isinstance(size, int) and size > 10**20


CELL_LIST = ("space p\ninput 3 x 8 x 8\nclasses 3\ncell normal\n  node n1 sums 1 of earlier through [identity, sep_k3]\n"
             "  output concat{names}\nend\nnetwork\n  stem width 4\n  cells normal x 2 width 2\nend\n")


@pytest.mark.parametrize("names, hint", [("", True), (" n1,", True), (" n1", False)])
def test_an_end_read_as_a_name_of_the_list_before_it_is_said(tmp_path, capsys, names, hint):
    """Keywords are soft: `output concat` with no names took the `end` below it for one, and the error named
    the statement after the block; it now says why. A space without the mistake compiles."""
    path = tmp_path / "c.space"
    path.write_text(CELL_LIST.format(names=names))
    code = main(["space", "check", str(path)])
    err = capsys.readouterr().err
    if not hint:
        assert code == 0, err
        return
    assert code == 2 and err.startswith(f"{path}:8:1: unexpected 'network'"), err
    assert "(the `end` on line 7 was read as a name of the list before it" in err, err


def test_a_node_read_as_the_name_of_an_inputs_list_is_said(tmp_path, capsys):
    """`cell normal inputs` with its names left out took the `node` below it for one."""
    path = tmp_path / "c.space"
    path.write_text(CELL_LIST.format(names=" n1").replace("cell normal\n", "cell normal inputs\n"))
    code = main(["space", "check", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"{path}:5:8: unexpected name 'n1'"), err
    assert "(the `node` on line 5 was read as a name of the list before it" in err, err


@pytest.mark.parametrize("verb, name", [(["profile"], "latency.json"), (["encode", "--timm", "spnasnet_100"],
                                                                         "arch.json")])
def test_out_that_is_a_folder_suggests_the_commands_own_file_name(tmp_path, capsys, verb, name):
    space = "spaces/digits.space" if verb == ["profile"] else "spaces/proxylessnas.space"
    code = main(["space", verb[0], str(ROOT / space), *verb[1:], "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and f"is a folder; give a file name, e.g. {tmp_path / name}" in err, err


FAST_RUN = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
            "search.supernets=1", "data.limit_train=64", "search.epsilons=[0]", "search.budgets=null"]


@pytest.mark.parametrize("saved", [True, False])
def test_a_run_whose_output_reader_went_away_says_how_to_go_on(tmp_path, monkeypatch, capsys, saved):
    def closed_pipe(self):
        if saved:
            (self.out / "checkpoints").mkdir(parents=True)
            (self.out / "checkpoints" / "checkpoints.json").write_text('{"checkpoints": ["a"]}')
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(Run, "execute", closed_pipe)
    monkeypatch.setattr(run_command.CheckpointStore, "exists", lambda self: saved)
    gone = {"stdout": True}
    for module in (run_command, cli):
        monkeypatch.setattr(module, "reader_gone", lambda s: gone["stdout"] and s is sys.stdout)
    out = tmp_path / "r"
    assert main(["run", str(QUICK), *FAST_RUN, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "its standard output was closed" in err and "Traceback" not in err, err
    if saved:
        assert err.rstrip().endswith(f"--out {out} --resume"), err
    else:
        assert "no checkpoint was written yet" in err and "--resume" not in err, err
    gone["stdout"] = False  # a broken pipe that is not standard output's: no word about it (an internal error)
    assert main(["run", str(QUICK), *FAST_RUN, "--out", str(tmp_path / "r2")]) == 1
    err = capsys.readouterr().err
    assert "internal error" in err and "standard output was closed" not in err, err


@pytest.mark.parametrize("both", [False, True])
def test_a_users_mistake_exits_2_when_its_message_cannot_be_written(tmp_path, both):
    r, w = os.pipe()
    os.close(r)  # `2>&1 | head -0`: standard error's reader has gone
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "automl", "space", "check", str(tmp_path / "missing.space")]
    try:
        done = subprocess.run(cmd, stdout=w if both else subprocess.DEVNULL, stderr=w, env=env, timeout=120)
    finally:
        os.close(w)
    assert done.returncode == 2


def test_a_duplicate_key_inside_a_list_is_named_as_other_keys_are(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(f"name: q\nspace: {ROOT / 'spaces' / 'digits.space'}\nsearch:\n  budgets:\n    - a: 1\n      a: 2\n")
    e = error_of([], path)
    assert e.key == "search.budgets[0].a" and "line 5" in str(e), str(e)


def test_resume_of_a_checkpoint_of_another_format_says_so_before_comparing_recipes(tmp_path, capsys):
    """Another automl's checkpoint (another format, and so perhaps another way of fingerprinting the recipe) was
    told "the recipe differs ..."; the format is checked first, naming the checkpoint file."""
    out = tmp_path / "run"
    assert main(["run", str(QUICK), *FAST_RUN, "export.onnx=false", "--out", str(out)]) == 0
    store = CheckpointStore(out / "checkpoints")
    ckpt = store.load()
    ckpt.update(format=CKPT_FORMAT + 1, recipe_sha256="written by another automl")
    newest = store.save(ckpt)
    capsys.readouterr()
    assert main(["run", str(QUICK), *FAST_RUN, "export.onnx=false", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{newest}: the checkpoint has format {CKPT_FORMAT + 1}" in err and "recipe differs" not in err, err


def test_the_log_is_on_the_disk_before_a_checkpoint_records_its_length(tmp_path, monkeypatch):
    """A checkpoint records metrics.jsonl's length; after a power cut the log must not be shorter than that (the
    resumed run would leave a gap): the log is fsynced before each checkpoint is written."""
    events = []
    real_fsync, real_save = os.fsync, CheckpointStore.save

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("metrics.jsonl"):
            events.append("log synced")
        return real_fsync(fd)

    def save(self, state):
        events.append(("checkpoint", os.path.getsize(self.folder.parent / "metrics.jsonl") == state["metrics_bytes"]))
        return real_save(self, state)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(CheckpointStore, "save", save)
    assert main(["run", str(QUICK), *FAST_RUN, "export.onnx=false", "--out", str(tmp_path / "run")]) == 0
    saves = [i for i, e in enumerate(events) if e != "log synced"]
    assert saves and all(events[i - 1] == "log synced" and events[i][1] for i in saves), events


def test_a_local_world_size_that_is_no_number_is_one_message(tmp_path, monkeypatch, capsys):
    """LOCAL_WORLD_SIZE (set by torchrun; by hand in an srun launch) that is not a whole number was a ValueError
    traceback when the run chose its threads."""
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "two")
    assert main(["run", str(QUICK), *FAST_RUN, "export.onnx=false", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "LOCAL_WORLD_SIZE='two' is not a whole number" in err and "Traceback" not in err, err


def test_a_weight_epoch_whose_every_step_was_skipped_shows_no_loss_rather_than_zero(tmp_path, monkeypatch, capsys):
    # was: "weights epoch 1/2: loss 0.0000 acc 0.000" and metrics lines of loss 0.0, accuracy 0.0
    from test_reliability import SMALL, _poison_steps  # epochs of 3 weight steps
    _poison_steps(monkeypatch, {1, 2, 3})
    out = tmp_path / "o"
    assert main(["run", str(QUICK), *SMALL, "search.nan_policy=skip", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "weights epoch 1/2: no step applied (every one had a non-finite loss and was skipped)" in printed, printed
    assert "weights epoch 2/2: loss " in printed
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    first = [x for x in lines if x.get("phase") == "weights" and x.get("epoch") == 1 and "loss" in x]
    assert first and all(x["loss"] is None and x["accuracy"] is None for x in first), first
    second = [x for x in lines if x.get("phase") == "weights" and x.get("epoch") == 2 and "loss" in x]
    assert second and all(x["loss"] > 0 and x["accuracy"] is not None for x in second), second


def test_a_retraining_loss_that_diverges_names_the_step_and_the_clip_in_force(tmp_path, capsys, monkeypatch):
    from test_reliability import SMALL
    monkeypatch.setattr("automl.recipe.MAX_LR", math.inf)  # a recipe refuses lr 1e30 at load; the run's own check
    code = main(["run", str(QUICK), *SMALL, "retrain.epochs=1", "retrain.lr=1e30", "retrain.weight_decay=0",
                 "retrain.grad_clip=null",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert re.search(r"the training loss became (nan|inf) at epoch 1, by step \d+; lower retrain.lr or set "
                     r"retrain.grad_clip \(now None\)", err), err


def test_a_resumed_epochs_bar_starts_at_the_steps_done(monkeypatch):
    from automl.train import progress
    made = []

    class Recorded(progress.Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, auto_refresh=False, **kwargs)
            made.append(self)

    monkeypatch.setattr(progress, "Progress", Recorded)
    with progress.Reporter(None, tty=True).epoch("weights", 1, 3, 50, done=20):
        assert made[0].tasks[0].completed == 20  # was 0 until the first logged point after the resume


@pytest.mark.parametrize("split", ["train", "val"])
def test_images_beside_the_class_folders_are_not_silently_left_out(tmp_path, split):
    # was: a half-sorted val/ (ImageNet's comes flat) evaluated on the sorted part only, without a word
    from automl.errors import DataError
    from automl.train.data import build_data
    from test_user_errors_data import folder_cfg, write_images
    write_images(tmp_path)
    for name in ("0.png", "1.png"):
        (tmp_path / split / "a" / name).rename(tmp_path / split / f"loose{name}")
    (tmp_path / split / ".preview.png").write_bytes(b"")  # hidden: not an image of the split
    (tmp_path / split / "README.txt").write_text("labels")  # no image: left alone
    with pytest.raises(DataError) as info:
        build_data(folder_cfg(tmp_path), ".", 0, "cpu")
    text = str(info.value)
    assert f"{tmp_path / split} holds 2 image files beside its class folders (loose0.png, loose1.png)" in text, text
    assert "move each into the folder of its class" in text and "README" not in text and ".preview" not in text


def test_an_image_folder_without_loose_images_still_loads(tmp_path):
    from automl.train.data import build_data
    from test_user_errors_data import folder_cfg, write_images
    write_images(tmp_path)
    (tmp_path / "val" / "notes.txt").write_text("x")
    assert len(build_data(folder_cfg(tmp_path), ".", 0, "cpu").test.dataset) == 8


def test_a_new_run_in_the_folder_of_a_run_of_another_recipe_is_not_told_to_resume_it(tmp_path, capsys):
    # was: "pass --resume to continue that run", which --resume then refused: the recipe differs
    from test_user_errors_run import FAST
    out = tmp_path / "r"
    assert main(["run", str(QUICK), *FAST, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["run", str(QUICK), *FAST, "seed=3", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already holds files" in err and "whose recipe differs from this one (seed: 0 there, 3 here)" in err, err
    assert "pass --resume" not in err and f"--supernet {out}" in err and len(err.strip().splitlines()) == 1, err
    assert main(["run", str(QUICK), *FAST, "--out", str(out)]) == 2  # the same recipe: resume it
    assert "pass --resume to continue that run" in capsys.readouterr().err


def test_a_resume_without_the_supernet_the_run_reused_says_to_pass_it_again(tmp_path, capsys):
    from test_user_errors_run import FAST
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["run", str(QUICK), *FAST, "--out", str(first)]) == 0
    assert main(["run", str(QUICK), *FAST, "--out", str(second), "--supernet", str(first)]) == 0
    capsys.readouterr()
    assert main(["run", str(QUICK), *FAST, "--out", str(second), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"(it was started with --supernet {first}: pass it again)" in err, err
    assert main(["run", str(QUICK), *FAST, "--out", str(second), "--resume", "--supernet", str(first)]) == 0


# ---- memory a supernet may take: MemAvailable, or less under a cgroup memory limit -----------------------------

MEMINFO = "MemTotal: 131072000 kB\nMemFree: 1000 kB\nMemAvailable: 104857600 kB\n"  # 100 GiB available


def test_memory_available_is_meminfos_without_a_cgroup_limit(tmp_path, monkeypatch):
    from automl.train import threads as th
    monkeypatch.setattr(th, "FS_ROOT", str(tmp_path))
    assert th.memory_available() is None  # no /proc/meminfo: not Linux, no check
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text(MEMINFO)
    assert th.memory_available() == 100 << 30
    (tmp_path / "proc" / "self").mkdir()
    (tmp_path / "proc" / "self" / "cgroup").write_text("0::/user.slice\n")
    job = tmp_path / "sys" / "fs" / "cgroup" / "user.slice"
    job.mkdir(parents=True)
    (job / "memory.max").write_text("max\n")
    (job / "memory.current").write_text("123456\n")
    assert th.memory_available() == 100 << 30  # "max": no limit


@pytest.mark.parametrize("version", [1, 2])
def test_a_slurm_jobs_memory_limit_bounds_the_memory_available(tmp_path, monkeypatch, version):
    # was: MemAvailable alone (100 GiB here), where the job may take 8 GiB and has used 3: the build would be killed
    from automl.train import threads as th
    monkeypatch.setattr(th, "FS_ROOT", str(tmp_path))
    for path, text in {"proc/meminfo": MEMINFO}.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    (tmp_path / "proc" / "self").mkdir()
    if version == 2:
        (tmp_path / "proc" / "self" / "cgroup").write_text("0::/slurm/job_5/step_0/task_0\n")
        task = tmp_path / "sys/fs/cgroup/slurm/job_5/step_0/task_0"
        task.mkdir(parents=True)
        job, (limit, usage) = task.parents[1], ("memory.max", "memory.current")
        (task / limit).write_text("max\n")
    else:
        (tmp_path / "proc" / "self" / "cgroup").write_text("4:memory:/slurm/job_5\n1:cpu,cpuacct:/slurm/job_5\n")
        job, (limit, usage) = tmp_path / "sys/fs/cgroup/memory/slurm/job_5", ("memory.limit_in_bytes",
                                                                            "memory.usage_in_bytes")
        job.mkdir(parents=True)
        (job.parents[1] / limit).write_text(f"{(1 << 63) - 4096}\n")  # the root: no limit
        (job.parents[1] / usage).write_text(f"{50 << 30}\n")
    (job / limit).write_text(f"{8 << 30}\n")
    (job / usage).write_text(f"{3 << 30}\n")
    assert th.memory_available() == 5 << 30


def test_space_profile_in_a_log_says_how_far_it_is_every_half_minute(tmp_path, monkeypatch, caplog):
    # was: nothing at all until the end where stderr is no terminal (nohup, a batch job's log: 78 s for ProxylessNAS)
    import automl.profile as profile
    clock = [0.0]

    def timed(m, *a, **k):  # every piece takes 7 s of the fake clock
        clock[0] += 7.0
        return 1.0
    monkeypatch.setattr(profile, "time_module", timed)
    monkeypatch.setattr(profile.time, "monotonic", lambda: clock[0])
    with caplog.at_level("INFO", logger="automl.profile"):
        assert main(["space", "profile", "spaces/digits.space", "--out", str(tmp_path / "t.json"),
                     "--calibrate", "0", "--repeat", "1"]) == 0
    lines = [r.getMessage() for r in caplog.records if "done, about" in r.getMessage()]
    assert lines, [r.getMessage() for r in caplog.records]
    first = re.fullmatch(r"profiling digits: (\d+)/(\d+) done, about (\d+) s left", lines[0])
    assert first, lines
    done, total, left = map(int, first.groups())
    assert 0 < done < total and left == 7 * (total - done) and done * 7 >= profile.PLAIN_EVERY, lines
    assert len(lines) <= 7 * total / profile.PLAIN_EVERY + 1  # one line a half minute, not one a piece


def test_an_int8_model_onnxruntime_cannot_run_is_recorded_and_the_fp32_export_stays(export, monkeypatch):
    # was: only the quantisation was guarded; timing the int8 model raised, the run ended (exit 1) and every
    # --resume raised again, so no results.json was ever written
    from automl.export import quantize
    from test_review_bi import _batches, _manifest
    real = quantize.ort_session

    def no_int8_kernel(model, *a, **k):  # onnxruntime looks its kernels up when it makes the session
        if isinstance(model, bytes) and b"QuantizeLinear" in model:  # the int8 model, made from its bytes
            raise RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for "
                               "ConvInteger(10) node")
        return real(model, *a, **k)
    monkeypatch.setattr(quantize, "ort_session", no_int8_kernel)
    m = quantize.measure_export(export, quantize="int8", calibration=iter(_batches(1)))
    assert m["int8"]["file"] is None and not (export / quantize.INT8_NAME).exists()
    assert m["int8"]["error"].startswith("quantised, but onnxruntime cannot run the int8 model: RuntimeError: "
                                         "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED"), m["int8"]
    assert "int8_ms" not in m["latency"] and m["latency"]["fp32_ms"] > 0
    assert _manifest(export)["int8"] == m["int8"] and quantize.int8_summary(m) == {"error": m["int8"]["error"]}


def test_a_ranking_of_more_archs_than_the_space_has_networks_is_refused(tmp_path):
    # s1: depth 1 or 2 of 2 ops: 2 + 4 = 6 networks in 8 architectures (the second layer's op at depth 1 is moot);
    # was: accepted up to 8, and the ranking then retrained one network twice under two encodings
    from automl.compile import load_compiled
    from automl.pipeline.setup import TooManyArchs, check_ranking, ranked_pool
    from automl.ranking import space_size
    from test_review_cj import DEPTH, _space
    space = _space(DEPTH.replace("depth 1, 2, 3 choose mb", "depth 1, 2 choose [ir_k3_e3, ir_k5_e6]")
                   .replace("  stage s2 width 24 stride 2 depth 1, 2 choose mb\n", ""))
    assert space_size(space.num_choices) == 8 and ranked_pool(space) == (6, True)
    digits = load_compiled(str(ROOT / "spaces" / "digits.space"))
    assert ranked_pool(digits) == (space_size(digits.num_choices), False)  # no elastic depth: architectures
    check_ranking(load_recipe(QUICK, ["ranking.archs=6"]), space, True)
    with pytest.raises(TooManyArchs) as info:
        check_ranking(load_recipe(QUICK, ["ranking.archs=7"]), space, True)
    assert "7 architectures asked for, but the space digits.space has only 6 distinct networks (elastic depth" in str(
        info.value) and "set ranking.archs to at most 6" in str(info.value)


def test_members_that_differ_only_in_a_layer_their_depth_leaves_out_are_one_network():
    # the retraining's "same network" test compared raw choices: two such members were retrained twice
    from automl.pipeline.final_stages import _network_of
    from test_review_cj import DEPTH, _space
    space = _space(DEPTH.replace("depth 1, 2, 3 choose mb", "depth 1, 2 choose [ir_k3_e3, ir_k5_e6]")
                   .replace("  stage s2 width 24 stride 2 depth 1, 2 choose mb\n", ""))
    (gated, (depth, kept)), = space.cost_table.gates.items()
    short, full = kept.index(False), kept.index(True)
    network = _network_of(space)

    def arch(d, k):
        a = [0] * space.num_decisions
        a[depth], a[gated] = d, k
        return a
    assert network(arch(short, 0)) == network(arch(short, 1))  # the second layer is not there: one network
    assert network(arch(full, 0)) != network(arch(full, 1))
    from automl.compile import load_compiled
    digits = load_compiled(str(ROOT / "spaces" / "digits.space"))  # no elastic depth: the choices themselves
    assert _network_of(digits)([1] * digits.num_decisions) == [1] * digits.num_decisions


def test_the_summary_table_shows_each_onnx_path_whole_in_a_log_and_in_a_narrow_terminal(tmp_path, capsys):
    # was: "export/budget-0-none/…" in the quickstart's log (rich's 80 columns when the output is no terminal)
    import io
    from rich.console import Console
    from automl.report import summary_table, write_report
    from automl.train.progress import Reporter
    path = "export/budget-0-a-rather-long-folder-name/model.onnx"
    member = {"epsilon": 0.0, "budget": None, "choices": ["x"], "params": 106_722, "cost": 106_722.0,
              "test_accuracy": 0.9889, "weights": "retrained", "macs": 1e6, "latency_ms": None, "int8": None,
              "onnx": path}
    results = {"recipe": "quickstart", "method": "importance_sampling", "search_seconds": 1.0,
               "phase_seconds": {"weights": 0.5, "theta": 0.5}, "cost_metric": "params", "supernet": None,
               "architectures": [member]}
    write_report(tmp_path, results, Reporter(None, enabled=True))
    assert path in capsys.readouterr().out  # pytest's capture is no terminal, as a log is not
    narrow = Console(file=io.StringIO(), width=70)
    narrow.print(summary_table(results))
    cells = "".join(line.split("│")[-2].strip() for line in narrow.file.getvalue().splitlines() if "│" in line)
    assert path in cells and "…" not in narrow.file.getvalue()  # folded over lines, every character kept


def test_members_of_one_network_by_elastic_depth_are_named_one_network_and_drawn_as_one_point():
    # was: members whose choices differ only in a layer their depth leaves out were retrained once but reported as
    # two networks (report.md had no line for them, pareto.png two points at one place)
    from automl.report import _networks, render_markdown, summary_table

    def member(choices, same=None, budget=None):
        return {"epsilon": 0.0, "budget": budget, "choices": choices, "params": 50_000, "cost": 50_000.0,
                "test_accuracy": 0.97, "weights": "retrained", "same_network_as": same, "macs": 1e6,
                "latency_ms": None, "int8": None, "onnx": None}
    archs = [member(["d2", "ir_k3_e3", "ir_k3_e3", "ir_k5_e6"]),
             member(["d2", "ir_k3_e3", "ir_k3_e3", "skip"], same=0, budget=60e3),  # its 3rd layer is left out
             member(["d1", "ir_k3_e3", "skip", "skip"], budget=40e3)]
    archs[2]["params"], archs[2]["cost"] = 30_000, 30_000.0
    results = {"recipe": "r", "method": "importance_sampling", "search_seconds": 1.0,
               "phase_seconds": {"weights": 0.5, "theta": 0.5}, "cost_metric": "params", "supernet": None,
               "architectures": archs}
    assert _networks(results, [0, 1, 2]) == [[0, 1], [2]]
    text = render_markdown(results)
    assert "are one network (their choices differ only in layers their elastic depth leaves out): one " \
           "retraining, one test accuracy" in text, text
    assert "one network" in (summary_table(results).caption or "")
    archs[1]["same_network_as"] = None  # not recorded (a results.json written before): two networks, as said
    assert _networks(results, [0, 1, 2]) == [[0], [1], [2]] and "one network" not in render_markdown(results)


def test_epsilons_minus_zero_and_zero_are_one_member_given_twice():
    # was: two members searching for the same network, exported to eps--0 and eps-0
    with pytest.raises(RecipeError, match=r"item 2 \(0\) is given twice \(item 1\)"):
        load_recipe("recipes/quickstart.yaml", ["search.budgets=null", "search.epsilons=[-0.0, 0.0]"])


def test_an_error_on_a_very_long_line_shows_the_part_around_its_column(tmp_path):
    # was: the whole line under the message (a space written on one line: thousands of characters)
    from automl.dsl import load_space
    from automl.errors import SpaceError
    src = tmp_path / "long.space"
    filler = "  ".join(f"param p{i} = {i}" for i in range(400))
    src.write_text(filler + "  param bad = ?  " + filler + "\n")
    with pytest.raises(SpaceError) as info:
        load_space(src)
    lines = str(info.value).splitlines()
    shown, caret = lines[-2], lines[-1]
    assert len(shown) <= 4 + 2 + 100 and shown.startswith("    …") and shown.endswith("…"), shown
    assert shown[caret.index("^")] == "?"  # the caret still under the character it points at


def test_keys_another_setting_makes_ignored_are_warned_about(caplog):
    # was: silent (optim.decay_rate under the cosine schedule, AdamW's momentum, theta_bn_batches with batch stats)
    load_recipe(QUICK, ["optim.decay_rate=0.5", "optim.name=adamw", "optim.momentum=0.8",
                        "search.theta_bn=batch", "search.theta_bn_batches=4", "retrain.rmsprop_eps=0.01"])
    text = caplog.text
    assert "optim.decay_rate is set, but applies only with optim.schedule: step" in text
    assert "optim.momentum is set, but applies only with optim.name sgd, rmsprop or rmsproptf" in text
    assert "search.theta_bn_batches is set, but applies only with search.theta_bn: recalibrate" in text
    assert "retrain.rmsprop_eps is set, but applies only with retrain.optimizer rmsprop or rmsproptf" in text
    caplog.clear()  # the same keys where they apply, and every shipped recipe: no warning
    load_recipe(QUICK, ["optim.decay_rate=0.5", "optim.schedule=step", "optim.decay_epochs=5", "optim.momentum=0.8",
                        "search.theta_bn=recalibrate", "search.theta_bn_batches=4"])
    for recipe in sorted(Path("recipes").glob("*.yaml")):
        load_recipe(str(recipe))
    assert "is set, but applies only" not in caplog.text


def test_a_resolved_recipe_warns_only_of_ignored_keys_its_recipe_changed(tmp_path, caplog):
    # a recipe.resolved.yaml writes every key at its value: keys left at their defaults are no warning there
    recipe = load_recipe(QUICK, ["search.theta_bn=batch"])
    resolved = recipe.dump_resolved(tmp_path / "recipe.resolved.yaml")
    caplog.clear()
    load_recipe(str(resolved))
    assert "is set, but applies only" not in caplog.text
    load_recipe(QUICK, ["optim.decay_rate=0.5"]).dump_resolved(tmp_path / "r2.yaml")
    caplog.clear()
    load_recipe(str(tmp_path / "r2.yaml"))
    assert caplog.text.count("is set, but applies only") == 1 and "optim.decay_rate" in caplog.text
