"""Review IK: `automl export` stopped by a signal (a new --out removed with what it held, an existing one said as it
is left, a signal after the export finished exits 0), a weight-phase checkpoint suggests only one that holds a
trained supernet, an architecture file of another space says so first (export, space cost), and `automl rank` on
a file of a run folder names the folder."""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import automl.cli as cli_module
import automl.commands.export as export_cmd
import automl.export._export as export_impl
from automl.cli import main
from automl.compile import load_compiled

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
PROXYLESS = str(ROOT / "spaces" / "proxylessnas.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def digits():
    return load_compiled(DIGITS)


@pytest.fixture
def arch(tmp_path, digits) -> Path:
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[-1] for d in digits.decisions]}))
    return path


@pytest.fixture(scope="module")
def earlier(tmp_path_factory, digits) -> Path:
    """A complete export of digits, copied where a test needs an existing --out."""
    folder = tmp_path_factory.mktemp("earlier")
    arch = folder / "arch.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in digits.decisions]}))
    assert main(["export", DIGITS, "--arch", str(arch), "--out", str(folder / "net")]) == 0
    return folder / "net"


def _copy(folder: Path, to: Path) -> dict[str, bytes]:
    to.mkdir()
    for f in folder.iterdir():
        (to / f.name).write_bytes(f.read_bytes())
    return {f.name: f.read_bytes() for f in to.iterdir()}


def _interrupt(*a, **k):
    raise KeyboardInterrupt


# ---- 1. a stop signal during `automl export` ------------------------------------------------------------------

def test_ctrl_c_while_writing_removes_a_new_out_and_the_folders_it_made(tmp_path, arch, capsys, monkeypatch):
    monkeypatch.setattr(export_impl, "write_manifest", _interrupt)  # weights and ONNX written, manifest not
    out = tmp_path / "a" / "b"
    code, stdout, err = cli(capsys, "export", DIGITS, "--arch", arch, "--out", out)
    assert code == 130 and not stdout, err
    assert not (tmp_path / "a").exists(), list((tmp_path / "a").rglob("*"))
    assert "SIGINT" in err and "nothing was written" in err and str(out) in err, err


def test_ctrl_c_into_an_existing_folder_through_a_new_one_and_dotdot_keeps_it(tmp_path, arch, capsys,
                                                                                 monkeypatch):
    """``new/../mine``: ``new`` does not exist, so the path did not either as the export began, yet it is the
    user's folder ``mine`` once ``new`` is made; a stop must not remove it (it removed it with what it held)."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(export_impl, "write_manifest", _interrupt)
    code, _, err = cli(capsys, "export", DIGITS, "--arch", arch, "--out", "new/../mine")
    assert code == 130, err
    assert (mine / "precious.txt").read_text() == "keep", err
    assert not (tmp_path / "new").exists()  # the folder the export made on the way, empty


def test_a_second_ctrl_c_while_a_stopped_export_removes_its_out_does_not_cut_it_short(tmp_path, arch, capsys,
                                                                                       monkeypatch):
    """A second SIGINT while the first one's cleanup removes the new --out: the removal goes on and the message
    is the first one's (it raised KeyboardInterrupt in shutil.rmtree, left the folder half removed, and cli.py
    said "interrupted before the export began")."""
    monkeypatch.setattr(export_impl, "write_manifest", _interrupt)
    real = export_cmd.shutil.rmtree

    def again(*a, **k):
        signal.raise_signal(signal.SIGINT)
        return real(*a, **k)

    monkeypatch.setattr(export_cmd.shutil, "rmtree", again)
    out, before = tmp_path / "a" / "b", signal.getsignal(signal.SIGINT)
    code, _, err = cli(capsys, "export", DIGITS, "--arch", arch, "--out", out)
    assert code == 130 and not (tmp_path / "a").exists(), err
    assert "nothing was written" in err and "before the export began" not in err, err
    assert signal.getsignal(signal.SIGINT) == before  # restored


def test_a_real_sigint_while_writing_removes_a_new_out(tmp_path, arch, capsys, monkeypatch):
    def sigint(*a, **k):
        signal.raise_signal(signal.SIGINT)  # as Ctrl-C: the handler the export set runs here

    monkeypatch.setattr(export_impl, "write_manifest", sigint)
    out = tmp_path / "net"
    code, _, err = cli(capsys, "export", DIGITS, "--arch", arch, "--out", out)
    assert code == 130 and not out.exists() and "nothing was written" in err, err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored after the export


def test_ctrl_c_while_measuring_removes_a_new_out(tmp_path, arch, capsys, monkeypatch):
    """The files are written, the manifest without its latency: no complete-looking export is left behind."""
    monkeypatch.setattr(export_cmd, "measure_export", _interrupt)
    out = tmp_path / "net"
    code, _, err = cli(capsys, "export", DIGITS, "--arch", arch, "--out", out)
    assert code == 130 and not out.exists() and "nothing was written" in err, err


def test_ctrl_c_while_writing_into_an_existing_export_says_what_is_left(tmp_path, arch, earlier, capsys,
                                                                        monkeypatch):
    out = tmp_path / "net"
    _copy(earlier, out)
    monkeypatch.setattr(export_impl, "write_manifest", _interrupt)
    code, _, err = cli(capsys, "export", DIGITS, "--arch", arch, "--out", out)
    assert code == 130 and out.is_dir() and not (out / "manifest.json").exists(), err
    assert f"{out}" in err and "no complete export" in err and "manifest.json" in err, err


def test_ctrl_c_before_anything_is_written_leaves_an_existing_export_as_it_was(tmp_path, arch, earlier, capsys,
                                                                              monkeypatch):
    out = tmp_path / "net"
    before = _copy(earlier, out)
    monkeypatch.setattr(export_impl, "_standalone_model", _interrupt)  # building the network
    code, _, err = cli(capsys, "export", DIGITS, "--arch", arch, "--out", out)
    assert code == 130 and {f.name: f.read_bytes() for f in out.iterdir()} == before, err
    assert "nothing was written" in err and "left as it was" in err, err


def test_ctrl_c_before_the_export_began_says_nothing_was_written(tmp_path, arch, capsys, monkeypatch):
    monkeypatch.setattr(cli_module, "_check_temporary_folder", _interrupt)
    out = tmp_path / "net"
    code, _, err = cli(capsys, "export", DIGITS, "--arch", arch, "--out", out)
    assert code == 130 and not out.exists() and "nothing was written" in err, err


def test_a_signal_after_the_export_finished_exits_0_and_says_so(tmp_path, arch, capsys, monkeypatch):
    report = export_cmd._report

    def then_ctrl_c(*a, **k):
        report(*a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(export_cmd, "_report", then_ctrl_c)
    out = tmp_path / "net"
    code, stdout, err = cli(capsys, "export", DIGITS, "--arch", arch, "--out", out)
    assert code == 0 and "exported digits" in stdout, err
    assert "after the export had finished" in err and (out / "manifest.json").is_file(), err
    assert "latency" in json.loads((out / "manifest.json").read_text())


def test_a_finished_export_ignores_stop_signals_as_python_exits(tmp_path, arch, capsys, monkeypatch):
    """Unloading torch takes seconds after the export's last line: a signal there ends no complete export."""
    registered = []
    real = atexit.register

    def record(fn, *a, **k):
        registered.append(fn)
        return real(fn, *a, **k)

    monkeypatch.setattr(atexit, "register", record)
    code, _, err = cli(capsys, "export", DIGITS, "--arch", arch, "--out", tmp_path / "net")
    assert code == 0, err
    ignoring = [fn for fn in registered if getattr(fn, "__module__", "") == "automl._signals"]
    assert ignoring, registered
    stops = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    # every handler it may set: the process's earlier `automl run`s add SIGUSR1 and SIGUSR2
    before = {s: signal.getsignal(s) for s in (*stops, signal.SIGUSR1, signal.SIGUSR2)}
    try:
        ignoring[-1]()
        assert all(signal.getsignal(s) is signal.SIG_IGN for s in stops)
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def test_sigterm_while_writing_removes_a_new_out_and_exits_143(tmp_path, arch):
    """A process of its own: SIGTERM's default handler would end the test run."""
    out = tmp_path / "net"
    script = (
        "import os, signal, sys\n"
        "import automl.export._export as e\n"
        "e.write_manifest = lambda *a, **k: os.kill(os.getpid(), signal.SIGTERM)\n"
        "from automl.cli import main\n"
        f"sys.exit(main(['export', {DIGITS!r}, '--arch', {str(arch)!r}, '--out', {str(out)!r}]))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 143, (done.returncode, done.stderr[-2000:])
    assert "SIGTERM" in done.stderr and not out.exists(), done.stderr[-2000:]


# ---- 2. a checkpoint of the weight phase as --weights ---------------------------------------------------------

def _phase_checkpoint(path: Path, supernet=None) -> None:
    inner = {} if supernet is not None else {"supernet_train": {"w": torch.zeros(1)}}
    torch.save({"format": 1, "supernet": supernet, "inner": inner}, path)


def test_a_weight_phase_checkpoint_suggests_none_written_inside_it(tmp_path, arch, capsys):
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    _phase_checkpoint(ckpts / "ckpt-000002.pt")
    _phase_checkpoint(ckpts / "ckpt-000003.pt")  # the run's last, still inside the weight phase
    code, _, err = cli(capsys, "export", DIGITS, "--arch", arch, "--out", tmp_path / "x",
                       "--weights", ckpts / "ckpt-000002.pt")
    assert code == 2 and "weight phase" in err and "ckpt-000003" not in err, err
    assert "none of the run's checkpoints holds a trained supernet yet" in err and "wait" in err, err
    assert not (tmp_path / "x").exists()


def test_a_weight_phase_checkpoint_suggests_one_written_after_it(tmp_path, arch, digits, capsys):
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    _phase_checkpoint(ckpts / "ckpt-000002.pt")
    _phase_checkpoint(ckpts / "ckpt-000003.pt", supernet=digits.build_supernet().state_dict())
    code, _, err = cli(capsys, "export", DIGITS, "--arch", arch, "--out", tmp_path / "x",
                       "--weights", ckpts / "ckpt-000002.pt")
    assert code == 2 and f"{ckpts / 'ckpt-000003.pt'}, which holds the trained supernet" in err, err


# ---- 3 and 5. an architecture file of another space -----------------------------------------------------------

def test_export_with_a_manifest_of_another_space_says_which_space_first(tmp_path, earlier, capsys):
    manifest = json.loads((earlier / "manifest.json").read_text())
    manifest["normalize"] = {"mean": [0.5], "std": [0.25]}  # as a run on digits records
    folder = tmp_path / "member"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "space.space").write_bytes((earlier / "space.space").read_bytes())
    code, _, err = cli(capsys, "export", PROXYLESS, "--arch", folder / "manifest.json", "--out", tmp_path / "x")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    head = f"error: --arch {folder / 'manifest.json'} is an export of space digits, not of proxylessnas"
    assert err.startswith(head) and str(folder / "space.space") in err and "normalize" not in err, err
    assert not (tmp_path / "x").exists()


def test_space_cost_with_an_arch_of_another_space_says_which_space_first(tmp_path, capsys):
    proxyless = load_compiled(PROXYLESS)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": {d.name: d.choices[-1] for d in proxyless.decisions},
                                "space": PROXYLESS, "space_args": {}}))
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", path)
    assert code == 2 and not out, err
    assert err.startswith(f"error: --arch {path} was encoded for the space file {PROXYLESS}"), err
    assert err.index("unknown decision") > err.index("encoded for"), err


def test_an_arch_of_a_copy_of_the_space_elsewhere_still_fits(tmp_path, digits, capsys):
    copy = tmp_path / "digits.space"
    copy.write_bytes(Path(DIGITS).read_bytes())
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[0] for d in digits.decisions], "space": DIGITS,
                                "space_args": {}}))
    code, out, err = cli(capsys, "space", "cost", copy, "--arch", path)
    assert code == 0 and "params" in json.loads(out), err


# ---- 4. automl rank on a file of a run folder ------------------------------------------------------------------

def test_rank_on_a_file_of_a_run_folder_names_the_folder(tmp_path, capsys):
    run = tmp_path / "first"
    run.mkdir()
    (run / "recipe.resolved.yaml").write_text("name: first\n")
    (run / "results.json").write_text("{}")
    code, out, err = cli(capsys, "rank", run / "results.json")
    assert code == 2 and not out, err
    assert "is not a folder" in err and f"is inside the run folder {run}" in err and f"automl rank {run}" in err, err
