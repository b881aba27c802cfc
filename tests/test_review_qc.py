"""Review QC: export's CPU copies of a model are made with no copy on the model's device (a GPU's memory), and the
benchmarks wait for the GPU the model runs on (cuda:1), not the current one.

No GPU here: a copy "on the model's device" is any ``copy.deepcopy`` of one of the model's tensors (what
``copy.deepcopy(model).cpu()`` does first, on the GPU where the model is), made to fail; torch.cuda.synchronize is a
mock that records its device.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from automl.export import _export as export_mod
from automl.export import onnx as onnx_mod
from automl.export._copy import cpu_copy
from automl.export.timm_spec import build_timm_model, timm_spec

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import engine_speed  # noqa: E402


@pytest.fixture
def no_copy_on_device(monkeypatch):
    """``watch(model)``: from then on a deepcopy of any of ``model``'s tensors raises (a second copy where the model
    lives)."""
    watched: set[int] = set()
    tensor_copy, param_copy = torch.Tensor.__deepcopy__, nn.Parameter.__deepcopy__

    def guard(original):
        def deepcopy(self, memo):
            if id(self) in watched:
                raise AssertionError(f"a {tuple(self.shape)} tensor of the model was copied on its device")
            return original(self, memo)
        return deepcopy

    monkeypatch.setattr(torch.Tensor, "__deepcopy__", guard(tensor_copy))
    monkeypatch.setattr(nn.Parameter, "__deepcopy__", guard(param_copy))

    def watch(model: nn.Module) -> nn.Module:
        watched.update(id(t) for t in (*model.parameters(), *model.buffers()))
        return model
    return watch


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 4)
        self.head = nn.Linear(4, 4)
        self.head.weight = self.embed.weight  # tied
        self.bn = nn.BatchNorm1d(4)
        self.frozen = nn.Linear(4, 2)
        self.frozen.requires_grad_(False)
        self.scale = torch.tensor([2.0])  # a plain tensor attribute, neither parameter nor buffer

    def forward(self, x):
        return self.frozen(self.head(self.bn(self.embed(x)))) * self.scale


def test_cpu_copy_copies_no_tensor_where_the_model_is(no_copy_on_device):
    torch.manual_seed(0)
    model = no_copy_on_device(Tied()).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    objects = {k: v for k, v in model.state_dict(keep_vars=True).items()}
    copied = cpu_copy(model)
    # the copy: same values, CPU, its own tensors, tie kept, flags and training mode kept
    assert all(torch.equal(v, before[k]) for k, v in copied.state_dict().items())
    assert all(t.device.type == "cpu" for t in (*copied.parameters(), *copied.buffers(), copied.scale))
    assert not any(a is b for a, b in zip(copied.state_dict(keep_vars=True).values(), objects.values()))
    assert copied.scale is not model.scale and torch.equal(copied.scale, model.scale)
    assert copied.head.weight is copied.embed.weight and isinstance(copied.head.weight, nn.Parameter)
    assert len(list(copied.parameters())) == len(list(model.parameters()))
    assert copied.training and not copied.frozen.weight.requires_grad and copied.embed.weight.requires_grad
    assert copied.bn.num_batches_tracked.dtype == torch.int64
    # the model: untouched, and independent of its copy
    with torch.no_grad():
        copied.embed.weight.add_(1.0)
    copied.eval()
    assert model.training and model.embed.weight.requires_grad and not model.frozen.weight.requires_grad
    assert all(v is objects[k] and torch.equal(v, before[k]) for k, v in model.state_dict(keep_vars=True).items())
    x = torch.randn(3, 4)
    model.eval()
    assert torch.allclose(cpu_copy(model)(x), model(x))


def test_cpu_copy_keeps_the_memory_layout():
    conv = nn.Conv2d(3, 8, 3).to(memory_format=torch.channels_last)
    assert cpu_copy(conv).weight.is_contiguous(memory_format=torch.channels_last)


def test_export_standalone_model_copies_nothing_on_the_device(no_copy_on_device):
    """export_architecture(model=...)'s copy of the caller's model (a GPU one after training)."""
    model = no_copy_on_device(Tied().double())
    got, source = export_mod._standalone_model(None, None, 0.0, model, None, None)
    assert source == "model" and got is not model and got.embed.weight.dtype == torch.float32
    assert model.embed.weight.dtype == torch.float64


def test_timm_spec_reference_copies_nothing_on_the_device(no_copy_on_device):
    arch_def = [["ds_r1_k3_s1_c8"], ["ir_r1_k3_s2_e3_c16"]]
    kwargs = {"num_classes": 3, "in_chans": 3, "stem_size": 8, "num_features": 32}
    model = no_copy_on_device(build_timm_model(arch_def, kwargs))
    spec = timm_spec(model, arch_def, (3, 16, 16))
    assert {k: spec[k] for k in kwargs} == kwargs


def test_rounding_explains_copies_nothing_on_the_device(no_copy_on_device, monkeypatch):
    """The float64 reference of the ONNX parity check; onnxruntime's answer is the model's own."""
    torch.manual_seed(0)
    model = no_copy_on_device(nn.Sequential(nn.Flatten(), nn.Linear(12, 3))).eval()
    monkeypatch.setattr(onnx_mod, "_session", lambda path: None)
    monkeypatch.setattr(onnx_mod, "_run", lambda session, x: model(x).detach().numpy().astype(np.float32))
    assert onnx_mod.rounding_explains("unused.onnx", model, [torch.randn(2, 3, 2, 2)])
    assert not model.training


@pytest.fixture
def gpu_waits(monkeypatch):
    """torch.cuda.synchronize replaced by a mock that records the device it was given (None: the current GPU)."""
    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize",
                        lambda device=None: waited.append(None if device is None else str(torch.device(device))))
    return waited


def test_timeit_waits_for_the_models_gpu(gpu_waits):
    calls = []
    times = _common.timeit(lambda: calls.append(1), repeat=3, warmup=1, sync=torch.device("cuda:1"))
    assert len(times) == 3 and len(calls) == 4
    assert gpu_waits == ["cuda:1"] * 6  # before and after each timed call; None was the current GPU


def test_timeit_on_the_cpu_waits_for_no_gpu(gpu_waits):
    _common.timeit(lambda: None, repeat=2, warmup=0, sync=torch.device("cpu"))
    _common.timeit(lambda: None, repeat=2, warmup=0)
    assert gpu_waits == []


def test_engine_speed_waits_for_the_engines_gpu(gpu_waits, monkeypatch):
    """time_engine on "cuda:1": the engine and its losses made on the CPU (no GPU here), the waits recorded."""
    real = engine_speed.MultiEpsilonSearch
    monkeypatch.setattr(engine_speed, "MultiEpsilonSearch", lambda *a, **k: real(*a, **{**k, "device": "cpu"}))
    real_rand = torch.rand
    monkeypatch.setattr(engine_speed.torch, "rand", lambda *a, **k: real_rand(*a, **{**k, "device": "cpu"}))
    row = engine_speed.time_engine(2, 3, 2, 4, "cuda:1", iters=2, warmup=1)
    assert row["device"] == "cuda:1" and gpu_waits == ["cuda:1"] * 6


# gpu_check.sh's tests step is pytest with the project's config, whose addopts pass -n (pytest-xdist); a Python
# without pytest-xdist is simulated by a module "xdist" on PYTHONPATH that fails to import
NO_XDIST = 'raise ModuleNotFoundError("No module named \'xdist\' (hidden by the test)")\n'
FAKE_PY = """#!/bin/sh
case "$*" in
  *"torch.cuda.is_available()"*) echo True; exit 0 ;;
  *"import torch, timm"*) echo "torch 0 timm 0"; exit 0 ;;
  *"importlib.import_module"*) PYTHONPATH="$HIDE:$PYTHONPATH" exec "$REAL" "$@" ;;
esac
echo "fake step: $*"
exit 0
"""


def _gpu_check_env(tmp_path: Path) -> dict:
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "xdist.py").write_text(NO_XDIST)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), HIDE=str(hide), REAL=sys.executable)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


@pytest.mark.heavy  # two Pythons that import torch: seconds
def test_gpu_check_refuses_a_python_without_pytest_xdist_before_any_step(tmp_path):
    env = _gpu_check_env(tmp_path)
    # the premise: the tests step's pytest, with this project's config, cannot run without pytest-xdist
    premise = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                              "tests/test_gpu.py"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                             env=dict(env, PYTHONPATH=f"{env['HIDE']}:{ROOT}"))
    assert premise.returncode != 0, premise.stdout
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PY)
    fake.chmod(0o755)
    r = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120, env=dict(env, OUT=str(tmp_path / "gpu"), PY=str(fake)))
    assert r.returncode == 2 and "fake step" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert "cannot import xdist" in r.stderr and "nothing was run" in r.stderr, r.stderr


class _Anchored(nn.Module):
    """Keeps a list of tensors it moves itself in ``_apply`` (the pattern of torch's RNNs' ``_flat_weights``)."""

    def __init__(self):
        super().__init__()
        self.lin, self.anchors, self.applied = nn.Linear(2, 2), [torch.ones(2)], 0

    def _apply(self, fn, recurse=True):
        self.anchors, self.applied = [fn(a) for a in self.anchors], self.applied + 1
        return super()._apply(fn, recurse)


def test_cpu_copy_runs_a_modules_own_apply_as_cpu_does():
    """State a module moves in its own ``_apply`` is moved in the copy too, as ``copy.deepcopy(model).cpu()`` did."""
    assert cpu_copy(_Anchored()).applied == 1
