"""Session 48's own fixes (the lead's)."""
from __future__ import annotations

import json
import logging
import math
import shlex
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import automl.train.data as data_module
from automl.cli import main
from automl.commands._arch_args import space_args_for
from automl.compile import load_compiled
from automl.errors import json_text
from automl.errors import UserError
import automl.commands.export as export_command
from automl.pipeline.members import Members
from automl.pipeline.search_stages import ThetaTask
from automl.profile import read_cost_table
from automl.report import _pareto_xlabel
from automl.recipe import DataConfig, load_recipe
from automl.train.data import build_data
from helpers import write_images

ROOT = Path(__file__).resolve().parents[1]


def _theta_task(batches, lines):
    """A ThetaTask whose θ step returns the path losses of ``batches`` in turn; its lines go to ``lines``."""
    losses = iter(batches)
    task = object.__new__(ThetaTask)
    reporter = SimpleNamespace(info=lines.append, log=lambda **kw: None)
    task.ctx = SimpleNamespace(device=torch.device("cpu"), reporter=reporter)
    task.phase, task.epochs, task.nonfinite = "theta", 2, 0
    task.method = SimpleNamespace(nonfinite=lambda s: 0, log_fields=lambda s: {}, epoch_note=lambda s: "")
    task.theta = lambda x, y: torch.tensor(next(losses))
    task.theta.searcher = None
    return task


def test_a_nonfinite_path_loss_leaves_the_theta_epochs_loss_the_finite_ones_mean():
    # was: "theta epoch 1/2: loss inf" from the first step with an inf path loss to the epoch's end
    lines: list[str] = []
    task = _theta_task([[1.0, math.inf], [3.0, 5.0], [math.nan, math.nan]], lines)
    task.begin_epoch(0, 0, None)
    for step in range(3):
        task.step(0, step, (None, None))
    assert task.progress(0, 3)["loss"] == 2.5  # (1 + 4) / 2: the third step had no finite loss
    task.end_epoch(0)
    assert lines[-1] == "theta epoch 1/2: loss 2.5000", lines


def test_a_theta_epoch_without_a_finite_path_loss_says_so():
    lines: list[str] = []
    task = _theta_task([[math.nan]], lines)
    task.begin_epoch(1, 0, None)
    task.step(1, 0, (None, None))
    assert task.progress(1, 1)["loss"] is None
    task.end_epoch(1)
    assert lines[-1] == "theta epoch 2/2: loss none (every path loss was NaN or inf)", lines


def test_a_theta_epoch_resumed_from_sums_without_a_count_takes_its_steps_as_counted():
    # a checkpoint written inside an epoch before "good" was in its sums: every step's loss was in the sum
    lines: list[str] = []
    task = _theta_task([[4.0]], lines)
    task.begin_epoch(0, 2, {"loss": torch.tensor(2.0, dtype=torch.float64), "nonfinite": 0})
    task.step(0, 2, (None, None))
    assert task.progress(0, 3)["loss"] == 2.0  # (2 + 4) / 3
    again = _theta_task([], lines)
    again.begin_epoch(0, 3, task.sums())
    assert again.progress(0, 3)["loss"] == 2.0


def test_workers_of_several_torchrun_processes_on_one_machine_are_counted_together(tmp_path, caplog, monkeypatch):
    # was: 2 workers in each of 2 local processes on 3 CPUs (4 worker processes) said nothing
    write_images(tmp_path)
    monkeypatch.setattr(data_module, "usable_cores", lambda: 3, raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    cfg = DataConfig(dataset="imagefolder", root=str(tmp_path), image_size=8, batch_size=2, theta_split=2, workers=2)
    with caplog.at_level(logging.WARNING, logger="automl.train.data"):
        build_data(cfg, ".", 0, "cpu")
    said = [r.getMessage() for r in caplog.records if "data.workers" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(
        "warning: data.workers: 2 in each of the run's 2 processes on this machine, 4 in all, is more than the 3 CPUs "
        "they share (unless each process is pinned to CPUs of its own)"), said
    assert "set data.workers=1 or fewer" in said[0], said
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")  # one process: 2 workers on 3 CPUs are fine
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="automl.train.data"):
        build_data(cfg, ".", 0, "cpu")
    assert not [r for r in caplog.records if "data.workers" in r.getMessage()]


def test_more_local_processes_than_cpus_advise_no_workers():
    said = data_module._workers_warning(1, 2, local=4)
    assert "set data.workers=0 (each process then reads its images itself)" in said, said


def test_a_suggested_profile_command_quotes_a_path_with_spaces(tmp_path):
    # was: `automl space profile .../my spaces/digits.space --out .../my tables/latency.json`, which a shell splits
    spaces = tmp_path / "my spaces"
    spaces.mkdir()
    space = spaces / "digits.space"
    shutil.copy(Path(__file__).resolve().parents[1] / "spaces" / "digits.space", space)
    missing = tmp_path / "my tables" / "latency.json"
    with pytest.raises(UserError) as info:
        read_cost_table(missing, load_compiled(str(space)))
    text = str(info.value)
    command = text[text.index("`") + 1:text.rindex("`")]
    assert shlex.split(command) == ["automl", "space", "profile", str(space), "--out", str(missing)], text


@pytest.mark.parametrize("version", [True, 1.0])
def test_a_cost_table_version_is_the_whole_number_1_not_true(tmp_path, version):
    # was: "version": true and 1.0 read as version 1 (True == 1 == 1.0 in Python)
    table = tmp_path / "latency.json"
    table.write_text(json.dumps({"format": "automl-cost-table", "version": version}))
    with pytest.raises(UserError, match=rf"cost table version {json.dumps(version)}; this automl reads version 1"):
        read_cost_table(table, load_compiled(str(Path(__file__).resolve().parents[1] / "spaces" / "digits.space")))


def test_pareto_axis_says_it_is_the_searchs_count_where_the_exported_one_differs():
    # was: "parameters" under networks searched at 15k and retrained at 26k (retrain.space_args), accuracy the 26k's
    same = [{"cost": 62290, "params": 62290, "macs": 399808}]
    assert _pareto_xlabel("params", same) == "parameters"
    wider = [{"cost": 15126, "params": 26008, "macs": 6082800}]
    assert _pareto_xlabel("params", wider) == \
        "parameters (as the search counts them; the exported networks' own: report.md)"
    assert _pareto_xlabel("latency", wider) == "latency [ms] (table)"  # a table's latency is not re-counted


def _names(compiled) -> list[str]:
    return [d.choices[0] for d in compiled.decisions]


@pytest.mark.parametrize("field, value, shown", [("params", True, "true"), ("se", None, None),
                                                 ("se", "quarter", '"quarter"'), ("se", True, "true")])
def test_an_arch_files_values_are_shown_as_json(tmp_path, capsys, field, value, shown):
    # was: "params" ... got True; "se" ... got 'quarter' (Python's spelling of what the JSON file says)
    digits = load_compiled(str(ROOT / "spaces" / "digits.space"))
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": _names(digits), field: value}))
    code = main(["space", "cost", str(ROOT / "spaces" / "digits.space"), "--arch", str(path)])
    err = capsys.readouterr().err
    if shown is None:  # "se": null is no se
        assert code == 0, err
        return
    assert code == 2 and f"got {shown}; fix it, or drop \"{field}\"" in " ".join(err.split()), err


def test_a_manifests_recorded_space_arg_is_shown_as_json(tmp_path):
    # was: its "space_args" classes=True (the manifest says true)
    with pytest.raises(UserError) as info:
        space_args_for(str(ROOT / "spaces" / "digits.space"), "m.json", {"space_args": {"classes": True}}, [],
                       "--arch-def")
    assert "its \"space_args\" classes=true:" in str(info.value), str(info.value)


def test_json_text_keeps_non_ascii_text_as_written():
    # was: "\uff10.\uff12\uff15" for a manifest's "se": "０.２５"
    assert json_text("０.２５") == '"０.２５"'
    assert json_text(None) == "null" and json_text(True) == "true"


def test_a_suggested_encode_command_quotes_paths(tmp_path, capsys):
    # was: `automl space encode .../my spaces/digits.space --arch-def .../my files/a.json --out arch.json`
    folder = tmp_path / "my files"
    folder.mkdir()
    arch = folder / "a.json"
    arch.write_text(json.dumps([["ds_r1_k3_s1_e1_c16"], ["ir_r1_k3_s2_e4_c24"]]))
    code = main(["space", "cost", str(ROOT / "spaces" / "digits.space"), "--arch", str(arch)])
    err = capsys.readouterr().err
    assert code == 2 and f"--arch-def {shlex.quote(str(arch))} --out arch.json" in " ".join(err.split()), err


def _warnings_of(caplog, overrides) -> str:
    with caplog.at_level(logging.WARNING):
        load_recipe(str(ROOT / "recipes" / "quickstart.yaml"), overrides)
    return "\n".join(r.getMessage() for r in caplog.records)


def test_random_does_not_check_the_supernets_optim_schedule_it_never_uses(caplog):
    # was: exit 2, "... search.weight_epochs is 15: it would never decay", for a run that trains no supernet
    err = _warnings_of(caplog, ["search.method=random", "optim.schedule=step", "optim.decay_epochs=20"])
    assert "optim.schedule, optim.decay_epochs" in err and "search.method random trains no supernet" in err, err


def test_random_names_theta_bn_batches_among_the_keys_it_never_reads(caplog):
    # was: "search.theta_bn_batches is set, but applies only with search.theta_bn: recalibrate" (never, with random)
    err = _warnings_of(caplog, ["search.method=random", "search.theta_bn_batches=4"])
    assert "applies only with" not in err and "search.theta_bn_batches" in err, err


def test_members_of_a_repeated_random_budget_are_told_apart():
    search = SimpleNamespace(budgets=[50000.0, 50000.0, 20000.0], epsilons=None, random_budgets=None, cost="params")
    members = Members.of(search, sampled=True)
    assert [members.tag(i, None) for i in range(3)] == ["budget=50k #0", "budget=50k #1", "budget=20k"]


def test_an_out_below_a_folder_that_cannot_be_entered_is_no_run(tmp_path, monkeypatch):
    # was: PermissionError from Path.is_file on Python 3.11, said as "<out>/.lock: Permission denied"
    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))
    monkeypatch.setattr(Path, "is_file", refuse)
    assert export_command._run_above(tmp_path / "a" / "b") is None
