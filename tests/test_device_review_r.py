"""The device around a run (CUDA-path review R): torchrun with more processes than GPUs, ``automl rank
--device``, the tensor ``assert_same_on_all_ranks`` hands to nccl, and the device results.json records.
CPU only: CUDA is faked where a test needs it, and nothing networked starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from automl.cli import main
from automl.errors import UserError
from automl.pipeline import results
from automl.train import distributed
from automl.train.distributed import DistInfo, assert_same_on_all_ranks, init_distributed

ROOT = Path(__file__).resolve().parent.parent
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
# as tests/test_user_errors_recipe.py's TINY: one epoch of each phase on a few digits
TINY = ["threads=1", "data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32", "search.lam=2",
        "search.weight_epochs=1", "search.theta_epochs=1", "search.budgets=[null,40k]", "retrain.epochs=0",
        "export.onnx=false"]


def run_cli(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    return code, err


# --------------------------------------------------------------- torchrun: more processes than GPUs

def _torchrun_env(monkeypatch, gpus: int, calls: list) -> None:
    """Rank 1 of 2 on one machine (as torchrun --nproc_per_node=2 sets it), ``gpus`` CUDA GPUs visible;
    set_device and init_process_group record their calls instead of touching a GPU or the network."""
    for k, v in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                 "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)

    def set_device(i):
        if i >= gpus:
            raise RuntimeError("CUDA error: invalid device ordinal")
        calls.append(("set_device", i))

    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: calls.append(("init", kw["backend"])))


def test_more_local_processes_than_gpus_is_one_message_naming_the_counts_and_the_fix(monkeypatch):
    calls = []
    _torchrun_env(monkeypatch, 1, calls)
    with pytest.raises(UserError) as info:
        init_distributed("cuda")
    text = str(info.value)
    assert "2 processes" in text and "1 CUDA GPU" in text, text
    assert "--nproc_per_node=1" in text and "device=cpu" in text, text
    assert calls == []  # refused before any GPU or process group was touched


def test_as_many_gpus_as_local_processes_initialises_nccl_on_the_local_gpu(monkeypatch):
    calls = []
    _torchrun_env(monkeypatch, 2, calls)
    info = init_distributed("cuda")
    assert (info.rank, info.world_size, info.local_rank) == (1, 2, 1)
    assert calls == [("set_device", 1), ("init", "nccl")]


def test_gloo_on_the_cpu_does_not_count_gpus(monkeypatch):
    calls = []
    _torchrun_env(monkeypatch, 0, calls)
    init_distributed("cpu")
    assert calls == [("init", "gloo")]


# ------------------------------------------------------------------------ nccl gets a CUDA tensor

def _fake_gather(monkeypatch, backend: str) -> dict:
    """dist with ``backend`` and an all_gather that records the tensor it gets; Tensor.to records where a
    tensor is moved (a CPU copy stands for the CUDA one)."""
    seen: dict = {"to": []}
    monkeypatch.setattr(dist, "get_backend", lambda *a, **k: backend)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    real_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        if args and isinstance(args[0], torch.device) and args[0].type == "cuda":
            seen["to"].append(args[0])
            moved = self.clone()
            seen["moved"] = moved
            return moved
        return real_to(self, *args, **kwargs)

    def all_gather(out, t):
        seen["gathered"] = t
        for o in out:
            o.copy_(t)

    monkeypatch.setattr(torch.Tensor, "to", to)
    monkeypatch.setattr(dist, "all_gather", all_gather)
    return seen


def test_assert_same_on_all_ranks_moves_a_cpu_tensor_to_the_current_gpu_for_nccl(monkeypatch):
    seen = _fake_gather(monkeypatch, "nccl")
    t = torch.tensor([0, 2, 1])
    assert_same_on_all_ranks(t, DistInfo(rank=0, world_size=2), "θ")
    assert seen["to"] == [torch.device("cuda", 3)]
    assert seen["gathered"] is seen["moved"]


def test_assert_same_on_all_ranks_keeps_the_tensor_where_it_is_for_gloo(monkeypatch):
    seen = _fake_gather(monkeypatch, "gloo")
    t = torch.tensor([0, 2, 1])
    assert_same_on_all_ranks(t, DistInfo(rank=0, world_size=2), "θ")
    assert seen["to"] == [] and seen["gathered"] is t


def test_for_backend_is_the_tensor_itself_off_nccl():
    t = torch.ones(2)
    assert distributed._for_backend(t, "gloo") is t


# -------------------------------------------------------------- automl rank --device, results.json

@pytest.fixture
def cuda_run(tmp_path, capsys, monkeypatch):
    """A finished tiny CPU run whose recipe.resolved.yaml then says device: cuda (as a run started on a GPU
    does); no CUDA GPU is visible."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    code, err = run_cli(["run", QUICK, *TINY, "search.method=importance_sampling", "--out", str(out)], capsys)
    assert code == 0, err
    resolved = out / "recipe.resolved.yaml"
    text = resolved.read_text(encoding="utf-8")
    assert "\ndevice: auto\n" in text, text
    resolved.write_text(text.replace("\ndevice: auto\n", "\ndevice: cuda\n"), encoding="utf-8")
    return out


def test_results_json_records_the_device_that_ran(cuda_run):
    assert json.loads((cuda_run / "results.json").read_text())["device"] == "cpu"


def test_automl_rank_runs_a_cuda_run_on_the_cpu_with_device_cpu(cuda_run, capsys):
    code, err = run_cli(["rank", str(cuda_run), "--device", "cpu", "--archs", "3", "--retrain-epochs", "0"], capsys)
    assert code == 0, err
    after = json.loads((cuda_run / "results.json").read_text())
    assert len(after["ranking"]["archs"]) == 3
    assert after["device"] == "cpu"  # the run's device, kept


def test_automl_rank_of_a_cuda_run_without_a_gpu_names_device_cpu(cuda_run, capsys):
    code, err = run_cli(["rank", str(cuda_run), "--archs", "3", "--retrain-epochs", "0"], capsys)
    assert code == 2
    assert "--device cpu" in err and "cuda" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert "ranking" not in json.loads((cuda_run / "results.json").read_text())


def test_automl_rank_device_takes_only_auto_cpu_cuda(tmp_path, capsys):
    code, err = run_cli(["rank", str(tmp_path), "--device", "tpu"], capsys)
    assert code == 2 and "--device" in err and "tpu" in err, err


def test_device_record_names_the_gpu_of_a_cuda_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: f"Fake GPU {torch.device(d).index}")
    assert results.device_record(torch.device("cuda", 1)) == "cuda (Fake GPU 1)"
    assert results.device_record(torch.device("cpu")) == "cpu"
