"""Small helpers the test files share: an ImageFolder writer, in-process runners of the ``automl`` CLI, a
digits export and a quantised one."""
from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import automl.pipeline.rank as rank
from automl.cli import main
from automl.pipeline.reuse import fingerprint_digest
from automl.pipeline.state import CKPT_FORMAT
from automl.train.checkpoint import CheckpointStore

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
DIGITS_SPACE = str(ROOT / "spaces" / "digits.space")


def write_images(root: Path, classes=("a", "b"), per_class: int | dict[str, int] = 3, *, splits=("train", "val"),
                 val_classes=None, val_per_class: int | None = None, size: int = 12, ext: str = "jpg") -> Path:
    """Writes an ImageFolder ``root/<split>/<class>/<i>.<ext>`` of random ``size`` x ``size`` RGB images and returns
    ``root``. The pixels come from one generator seeded 0 at each call, drawn split by split, class by class, image by
    image. ``per_class`` is a count for every class, or a ``{class: count}`` whose keys are the classes; the split
    named ``val`` holds ``val_classes`` (default: the classes) with ``val_per_class`` images each (default: as in
    ``per_class``). Folders that exist already are written into."""
    if isinstance(per_class, dict):
        classes = tuple(per_class)
    rng = np.random.default_rng(0)
    for split in splits:
        is_val = split == "val"
        for cls in (val_classes or classes) if is_val else classes:
            n = val_per_class if is_val and val_per_class is not None else (
                per_class[cls] if isinstance(per_class, dict) else per_class)
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.{ext}")
    return root


def rgb_folder_run(tmp_path: Path, data: Path) -> list[str]:
    """The arguments of ``automl run`` of quickstart.yaml on the two-class ImageFolder ``data`` with digits.space
    made RGB (written to ``tmp_path/rgb.space``): one supernet, one epoch of each search phase, no retraining; the run
    folder is ``tmp_path/run``."""
    space = tmp_path / "rgb.space"
    space.write_text((ROOT / "spaces" / "digits.space").read_text().replace("input 1 x", "input 3 x"))
    return ["run", QUICK, f"space={space}", "data.dataset=imagefolder", f"data.root={data}",
            "space_args.classes=2", "data.image_size=8", "data.batch_size=4", "threads=1",
            "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0", "search.supernets=1",
            "--out", str(tmp_path / "run")]


def cli_out_err(capsys, *argv, internal_ok: bool = False, usage_exit: bool = False) -> tuple[int, str, str]:
    """Runs ``automl ARGV`` in this process (each argument ``str()``-ed) and returns the exit code, standard output
    and standard error. Standard error holds no traceback, nor "internal error" unless ``internal_ok``; with
    ``usage_exit`` a ``SystemExit`` (argparse's usage errors) is taken as the exit code."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        if not usage_exit:
            raise
        code = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    if not internal_ok:
        assert "internal error" not in err, err
    return code, out, err


def cli_err(capsys, *argv, internal_ok: bool = False, usage_exit: bool = False) -> tuple[int, str]:
    """``cli_out_err``'s exit code and standard error."""
    code, _, err = cli_out_err(capsys, *argv, internal_ok=internal_ok, usage_exit=usage_exit)
    return code, err


def cli_said(capsys, *argv) -> tuple[int, str]:
    """``cli_out_err``'s exit code, and standard output and error together."""
    code, out, err = cli_out_err(capsys, *argv)
    return code, out + err


def quantised_digits(out: Path, calibration, test) -> Path:
    """The digits space's first network (the current torch seed's fresh weights) exported into ``out`` and
    quantised to int8 on ``calibration`` batches, with the test accuracies of ``test()``'s batches."""
    from automl.compile import load_compiled
    from automl.export import export_architecture
    from automl.export.quantize import INT8_NAME, measure_export

    cs = load_compiled(DIGITS_SPACE)
    export_architecture(cs, [0] * cs.num_decisions, out, space_path=DIGITS_SPACE)
    m = measure_export(out, quantize="int8", calibration=calibration, test=test)
    assert m["int8"]["file"] == INT8_NAME and m["int8"]["size_bytes"] > 0 and m["latency"]["int8_ms"] > 0
    return out


def digits_export(base: Path) -> tuple[Path, Path]:
    """(an ARCH.json of the digits space, each decision's first choice; one ``automl export`` of it, fresh weights)
    in ``base``."""
    from automl.compile import load_compiled

    digits = load_compiled(DIGITS_SPACE)
    arch = base / "arch.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in digits.decisions]}))
    out = base / "export"
    assert main(["export", DIGITS_SPACE, "--arch", str(arch), "--out", str(out)]) == 0
    return arch, out


def copy_of(folder: Path, tmp_path: Path) -> Path:
    """A copy of ``folder`` in ``tmp_path``, for a test that changes it."""
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def fake_supernet_run(folder: Path, fingerprint: dict, weights=None, origin=None) -> Path:
    """A run folder whose checkpoint holds a trained supernet (``weights``; a stand-in tensor by default) recorded
    with ``fingerprint``, and ``origin`` as its supernet_origin (by default: trained there)."""
    CheckpointStore(folder / "checkpoints").save({
        "format": CKPT_FORMAT, "recipe_sha256": "x", "stage": 1,
        "supernet": weights if weights is not None else {"w": torch.zeros(3)},
        "supernet_origin": origin or {"from": None, "fingerprint": fingerprint_digest(fingerprint), "forced": False,
                                      "differs": []},
        "weights_fingerprint": fingerprint})
    return folder


def stopped_rank(out: str | Path, monkeypatch, capsys, stop_at: int, *flags: str) -> tuple[str, int]:
    """``automl rank out flags`` stopped (SIGTERM) after its ``stop_at``-th stage: what it said, and its exit code."""
    real_stop, calls = rank.stop_ranking_if_signalled, []

    def stop(preempt, reporter, recipe, where, done):
        calls.append(done)
        if len(calls) == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
        real_stop(preempt, reporter, recipe, where, done)

    monkeypatch.setattr(rank, "stop_ranking_if_signalled", stop)
    code = main(["rank", str(out), *flags])
    monkeypatch.setattr(rank, "stop_ranking_if_signalled", real_stop)
    return "".join(capsys.readouterr()), code
