"""Review AL: the architecture files of `automl export` and `automl space cost|encode`.

1. An architecture copied from a run's results.json (its "architectures" entry) records the retrained network's
   "params": with retrain.se they count squeeze-and-excitation layers the space's cost table does not price,
   and for a cell space the network's own count, which the table approximates. The params warning compares
   with the count of the network the entry describes (its "se", or export's --se), or its "cost" (the table's
   figure the search used), and still warns when the --set values are not the run's.
2. User mistakes with those files: one message, exit 2 (a "params" or "se" too large for a float, JSON nested
   too deeply, a whole results.json, an export of another space, a manifest exported with se given to encode,
   a run's checkpoint without a supernet as --weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from automl.compile import load_compiled
from automl.nn.measure import count_params
from automl.pipeline import Run
from automl.recipe import load_recipe
from test_review_aa import cli  # the CLI runner: exit code, stdout, stderr (and no traceback)

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
DARTS = str(ROOT / "spaces" / "darts.space")
FBNET = str(ROOT / "spaces" / "fbnet.space")
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
RUN_ARGS = {"classes": "4", "size": "8"}  # the run's space_args
SETS = [x for k, v in RUN_ARGS.items() for x in ("--set", f"{k}={v}")]

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture(scope="module")
def se_run(tmp_path_factory):
    """A tiny run of digits (classes 4, size 8) with retrain.se 0.25: its folder and results.json."""
    out = tmp_path_factory.mktemp("al") / "run"
    overrides = [*(f"space_args.{k}={v}" for k, v in RUN_ARGS.items()),
                 "data.dataset=synthetic", "data.synthetic.num_train=16", "data.synthetic.num_test=8",
                 "data.synthetic.num_classes=4", "data.synthetic.channels=1", "data.synthetic.size=8",
                 "data.batch_size=4", "data.theta_batch_size=4", "data.test_batch_size=8",
                 "search.method=random", "search.epsilons=[0,1.0]", "search.supernets=1",
                 "retrain.epochs=1", "retrain.se=0.25", "export.onnx=false", "device=cpu", "threads=1"]
    results = Run(load_recipe(QUICK, overrides), out, resume=False, tty=False).execute()
    return out, results


def _entry(se_run, tmp_path, drop=(), **extra) -> Path:
    """The results.json's first architecture, copied into a file of its own as a user would (less ``drop``,
    plus ``extra``)."""
    entry = {k: v for k, v in se_run[1]["architectures"][0].items() if k not in drop}
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({**entry, **extra}, indent=1))
    return path


def _one_line(err: str) -> str:
    assert len(err.strip().splitlines()) == 1, err
    return err


# ---- 1. the params warning for a results.json entry ------------------------------------------------------

def test_the_entry_of_a_run_with_se_is_not_warned(se_run, tmp_path, capsys):
    entry = se_run[1]["architectures"][0]
    cs = load_compiled(DIGITS, RUN_ARGS)
    assert entry["params"] > cs.cost_table.total(cs.encode(entry["choices"]))  # the SE layers' weights
    path = _entry(se_run, tmp_path)
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", path, *SETS)
    assert code == 0 and not err, err
    assert json.loads(out)["params"] == cs.cost_table.total(cs.encode(entry["choices"]))
    # export: an unsupported opset stops it after the architecture is read (and warned about)
    code, _, err = cli(capsys, "export", DIGITS, "--arch", path, *SETS, "--out", tmp_path / "x", "--opset", "1")
    assert code == 2 and "warning" not in err and "--opset 1" in err, err


def test_the_entry_is_compared_with_its_networks_count_at_its_se(se_run, tmp_path, capsys):
    # without "cost", only its "se" (as results.json could record it) explains the SE layers' weights
    path = _entry(se_run, tmp_path, drop=("cost",), se=0.25)
    code, _, err = cli(capsys, "space", "cost", DIGITS, "--arch", path, *SETS)
    assert code == 0 and not err, err
    path = _entry(se_run, tmp_path, drop=("cost",), se=0)  # the network without SE has fewer weights
    code, _, err = cli(capsys, "space", "cost", DIGITS, "--arch", path, *SETS)
    assert code == 0 and err.startswith(f"warning: --arch {path} records \"params\""), err
    _one_line(err)


def test_export_compares_with_the_network_of_its_se(se_run, tmp_path, capsys):
    path = _entry(se_run, tmp_path, drop=("cost", "se"))  # as results.json had it before recording "se"
    argv = ["export", DIGITS, "--arch", path, *SETS, "--out", tmp_path / "x", "--opset", "1"]
    code, _, err = cli(capsys, *argv, "--se", "0.25")
    assert code == 2 and "warning" not in err, err
    code, _, err = cli(capsys, *argv)
    assert code == 2 and err.startswith(f"warning: --arch {path} records \"params\""), err


def test_results_json_records_each_members_se(se_run):
    assert [a["se"] for a in se_run[1]["architectures"]] == [0.25, 0.25]


def test_export_notes_that_it_exports_another_network_than_the_runs(se_run, tmp_path, capsys):
    path = _entry(se_run, tmp_path, drop=("se",))  # as results.json had it before recording "se"
    argv = ["export", DIGITS, "--arch", path, *SETS, "--out", tmp_path / "x", "--opset", "1"]
    code, _, err = cli(capsys, *argv)  # without --se: the network without the run's SE layers
    want = se_run[1]["architectures"][0]["params"]
    assert code == 2 and err.startswith(f"note: --arch {path} records \"params\" {want:,}, the run's"), err
    assert "retrain.se" in err and "--se" in err and "warning" not in err, err
    code, _, err = cli(capsys, *argv, "--se", "0.25")  # the run's network
    assert code == 2 and "note" not in err and "warning" not in err, err
    path = _entry(se_run, tmp_path)  # the entry as results.json records it now: with its "se"
    code, _, err = cli(capsys, "export", DIGITS, "--arch", path, *SETS, "--out", tmp_path / "x", "--opset", "1")
    assert code == 2 and "note" in err and "give --se 0.25 (its \"se\")" in err, err
    # --weights decides the network (a supernet's has no SE weights): no note
    code, _, err = cli(capsys, "export", DIGITS, "--arch", path, *SETS, "--out", tmp_path / "x", "--weights",
                       _checkpoint(se_run))
    assert code == 2 and "note" not in err, err


def test_an_entry_with_other_set_values_is_still_warned(se_run, tmp_path, capsys):
    path = _entry(se_run, tmp_path)
    code, _, err = cli(capsys, "space", "cost", DIGITS, "--arch", path)  # the run's classes=4 size=8 missing
    assert code == 0 and err.startswith(f"warning: --arch {path} records \"params\""), err
    assert "results.json" in err and "recipe.resolved.yaml" in err and "encoded" not in err, err
    _one_line(err)
    path = _entry(se_run, tmp_path, se=0.25)  # its se does not explain another network's count either
    code, _, err = cli(capsys, "space", "cost", DIGITS, "--arch", path, "--set", "classes=5", "--set", "size=8")
    assert code == 0 and "warning" in err, err


def test_a_cell_space_entry_counts_its_network(tmp_path, capsys):
    args = {"channels": "4", "normal_cells": "3"}
    cs = load_compiled(DARTS, args)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):  # an architecture whose network the cost table prices only approximately
        arch = torch.tensor([int(torch.randint(k, (1,), generator=g)) for k in cs.num_choices])
        with torch.device("meta"):
            counted = count_params(cs.build_standalone(arch))
        if counted != cs.cost_table.total(arch):
            break
    else:
        pytest.fail("no architecture whose table params differ from its network's")
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": cs.decode(arch), "params": counted, "test_accuracy": 0.5}))
    code, _, err = cli(capsys, "space", "cost", DARTS, "--arch", path, *[f"--set={k}={v}" for k, v in args.items()])
    assert code == 0 and "warning" not in err and f"builds has {counted:,} params" in err, err


@pytest.mark.parametrize("se", ['"0.25"', "-0.1", "1", "true", "1e400", "1" + "0" * 400])
def test_a_bad_se_is_the_files_mistake(se_run, tmp_path, capsys, se):
    path = _entry(se_run, tmp_path, drop=("se",))  # its "se" written once: a key given twice is refused anyway
    path.write_text(path.read_text().rstrip()[:-1] + f', "se": {se}}}')
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", path, *SETS)
    assert code == 2 and not out, (out, err)
    assert f"--arch {path}" in _one_line(err) and '"se"' in err and "[0, 1)" in err, err


def test_se_on_a_cell_space_is_refused(tmp_path, capsys):
    cs = load_compiled(DARTS, {"channels": "4", "normal_cells": "3"})
    names = [d.choices[0] for d in cs.decisions]
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": names, "params": 1, "se": 0.25}))
    code, _, err = cli(capsys, "space", "cost", DARTS, "--arch", path, "--set", "channels=4", "--set", "normal_cells=3")
    assert code == 2 and "cell space" in _one_line(err) and '"se"' in err, err


def test_params_too_large_for_a_float(se_run, tmp_path, capsys):
    path = _entry(se_run, tmp_path)
    text = json.loads(path.read_text())
    text["params"] = 10 ** 400  # json writes it digit by digit
    path.write_text(json.dumps(text))
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", path, *SETS)
    assert code == 0 and json.loads(out)["params"] > 0, err


def test_a_manifest_cost_too_large_for_a_float_is_not_kept(se_run, tmp_path, capsys):
    manifest = sorted((se_run[0] / "export").glob("*/manifest.json"))[0]
    obj = json.loads(manifest.read_text())
    obj["cost"] = {**obj["cost"], "latency": 10 ** 400, "energy": 2.5}  # metrics the space file does not compute
    edited = tmp_path / "manifest.json"
    edited.write_text(json.dumps(obj))
    code, _, err = cli(capsys, "export", DIGITS, "--arch", edited, "--out", tmp_path / "x")
    assert code == 0, err
    cost = json.loads((tmp_path / "x" / "manifest.json").read_text())["cost"]
    assert cost["energy"] == 2.5 and "latency" not in cost, cost


# ---- 2. user mistakes with architecture files ------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["space", "cost", DIGITS, "--arch", "{deep}"],
    ["space", "encode", DIGITS, "--arch-def", "{deep}"],
    ["export", DIGITS, "--arch", "{deep}", "--out", "{tmp}/x"],
    ["space", "cost", DIGITS, "--arch", "{arch}", "--cost-table", "{deep}"],
])
def test_json_nested_too_deeply(tmp_path, capsys, argv):
    deep = tmp_path / "deep.json"
    deep.write_text('{"choices": ' + "[" * 100_000 + "]" * 100_000 + "}")
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in load_compiled(DIGITS).decisions]}))
    argv = [a.format(deep=deep, tmp=tmp_path, arch=arch) for a in argv]
    code, out, err = cli(capsys, *argv)
    assert code == 2 and not out and str(deep) in _one_line(err) and "nest" in err, err


def test_a_whole_results_json_names_its_architectures(se_run, capsys):
    results = se_run[0] / "results.json"
    for verb in (["space", "cost", DIGITS], ["export", DIGITS, "--out", se_run[0] / "never"]):
        code, out, err = cli(capsys, *verb, "--arch", results, *SETS)
        assert code == 2 and not out, err
        assert f"--arch {results}" in _one_line(err) and '"architectures"' in err and "2 architectures" in err, err
        assert f"jq '.architectures[0]' {results} > arch.json" in err, err
    assert not (se_run[0] / "never").exists()
    listed = se_run[0].parent / "architectures.json"  # the list copied whole
    listed.write_text(json.dumps(se_run[1]["architectures"]))
    code, _, err = cli(capsys, "space", "cost", DIGITS, "--arch", listed, *SETS)
    assert code == 2 and f"--arch {listed} is a list of 2 architectures" in _one_line(err), err


def test_an_export_of_another_space_names_it(se_run, capsys):
    manifest = sorted((se_run[0] / "export").glob("*/manifest.json"))[0]
    code, _, err = cli(capsys, "space", "cost", FBNET, "--arch", manifest)
    assert code == 2 and "9 choices given" in _one_line(err), err
    assert "space digits" in err and str(manifest.parent / "space.space") in err, err


def test_an_arch_def_given_as_arch_says_to_encode_it(tmp_path, capsys):
    cs = load_compiled(DIGITS)
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(cs.arch_def(cs.encode([d.choices[-1] for d in cs.decisions]))))
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", bare)
    assert code == 2 and not out and f"--arch {bare} is a timm arch_def" in _one_line(err), err
    assert f"automl space encode {DIGITS} --arch-def {bare}" in err, err


def test_encode_of_a_manifest_exported_with_se_says_so(se_run, capsys):
    manifest = sorted((se_run[0] / "export").glob("*/manifest.json"))[0]
    code, out, err = cli(capsys, "space", "encode", DIGITS, "--arch-def", manifest)
    assert code == 2 and not out, err
    assert "se 0.25" in _one_line(err) and "--arch" in err, err


def _checkpoint(se_run) -> Path:
    return sorted((se_run[0] / "checkpoints").glob("ckpt-*.pt"))[-1]


def test_a_run_checkpoint_without_a_supernet_as_weights(se_run, tmp_path, capsys):
    ckpt = _checkpoint(se_run)  # search.method random: no supernet
    code, out, err = cli(capsys, "export", DIGITS, "--arch", _entry(se_run, tmp_path), *SETS, "--out",
                         tmp_path / "x", "--weights", ckpt)
    assert code == 2 and not out, err
    assert f"--weights {ckpt}" in err and "no supernet" in err and "search.method random" in err, err
    assert "not a state_dict" not in err and not (tmp_path / "x").exists()


def test_a_checkpoint_of_the_weight_phase_as_weights(se_run, tmp_path, capsys):
    obj = torch.load(_checkpoint(se_run), map_location="cpu", weights_only=True)
    obj["inner"] = {"supernet_train": {"w": torch.zeros(1)}}  # as written inside the weight phase
    ckpt = tmp_path / "ckpt-000001.pt"
    torch.save(obj, ckpt)
    code, _, err = cli(capsys, "export", DIGITS, "--arch", _entry(se_run, tmp_path), *SETS, "--out",
                       tmp_path / "x", "--weights", ckpt)
    assert code == 2 and f"--weights {ckpt}" in err and "weight phase" in err and "not a state_dict" not in err, err


@pytest.mark.parametrize("n", ["10001", "1" + "0" * 30])
def test_profile_calibrate_has_an_upper_bound(tmp_path, capsys, monkeypatch, n):
    def refuse(*a, **k):
        raise AssertionError("measuring started before the flags were checked")
    monkeypatch.setattr("automl.commands.space.profile_space", refuse)
    code, out, err = cli(capsys, "space", "profile", DIGITS, "--out", tmp_path / "t.json", "--calibrate", n)
    assert code == 2 and not out and f"--calibrate {n}: at most 10,000" in _one_line(err), err
