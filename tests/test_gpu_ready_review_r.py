"""CUDA-readiness fixes checked on the CPU: BatchNorm recalibration that never reads the device (it runs on the
meta device, which raises on a host read as CUDA would sync), Method 1 drawing every supernet's paths before the
first weight step, a blocking device-to-host copy of a told architecture, and evaluation in full precision."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from automl.compile import load_compiled
from automl.pipeline import Run
from automl.pipeline import search_stages
from automl.recipe import load_recipe
from automl.search import MultiEpsilonSearch
from automl.search._inputs import TellInputs
from automl.train import loops
from automl.train.distributed import DistInfo

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
META = torch.device("meta")
OFA_SMALL = {"classes": "4", "size": "16", "width": "0.25", "wide": "2", "head": "32"}


def _bns(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@pytest.fixture(scope="module")
def digits():
    return load_compiled(ROOT / "spaces" / "digits.space")


# ---- BatchNorm recalibration without host reads ------------------------------------------------------

@pytest.mark.parametrize("space,args", [("digits", {}), ("ofa_mbv3", OFA_SMALL)])
def test_recalibrate_bn_reads_nothing_back_from_the_device(space, args):
    # on the meta device every host read raises (torch's momentum=None BatchNorm reads num_batches_tracked)
    cs = load_compiled(ROOT / "spaces" / f"{space}.space", args)
    net = loops.for_training(cs.build_supernet(), META)
    arch = torch.tensor([len(d.choices) - 1 for d in cs.decisions])
    x = torch.empty(4, *cs.input_shape, device=META)
    momenta = [m.momentum for m in _bns(net)]
    loops.recalibrate_bn(net, lambda b: net(b, arch), [x, x])
    assert not net.training
    assert [m.momentum for m in _bns(net)] == momenta  # the BatchNorms' own momentum is back
    y = torch.zeros(4, dtype=torch.long, device=META)
    loops.path_losses(net.train(), x, y, arch[None], META, calibration=[x, x])


def test_recalibrated_statistics_are_torchs_cumulative_average(digits):
    # the reference: the same supernet's BatchNorms running torch's own cumulative average (momentum None)
    torch.manual_seed(0)
    net = loops.for_training(digits.build_supernet(), torch.device("cpu"))
    ref = copy.deepcopy(net)
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(16, *digits.input_shape, generator=g) * 3 + 1 for _ in range(5)]
    arch = torch.tensor([len(d.choices) - 1 for d in digits.decisions])
    momenta = [m.momentum for m in _bns(net)]
    for m in _bns(ref):
        m.reset_running_stats()
        m.momentum = None
    ref.train()
    with torch.no_grad():
        for x in batches:
            ref(x, arch)
    loops.recalibrate_bn(net, lambda x: net(x, arch), batches)
    got, want = dict(net.named_buffers()), dict(ref.named_buffers())
    assert list(got) == list(want) and any("running_var" in k for k in got)
    for k in got:
        assert torch.equal(got[k], want[k]), k
    assert [m.momentum for m in _bns(net)] == momenta and all(m is not None for m in momenta)


def test_a_single_batchnorms_statistics_are_the_plain_average_over_the_batches():
    # independent of torch's BatchNorm: the mean of the batch means and of the unbiased batch variances
    bn = nn.BatchNorm1d(3, momentum=0.25).double()
    g = torch.Generator().manual_seed(2)
    batches = [torch.randn(8, 3, generator=g, dtype=torch.float64) * (k + 1) + k for k in range(4)]
    loops.recalibrate_bn(bn, bn, batches)
    want_mean = torch.stack([b.mean(0) for b in batches]).mean(0)
    want_var = torch.stack([b.var(0, unbiased=True) for b in batches]).mean(0)
    assert torch.allclose(bn.running_mean, want_mean, rtol=1e-12, atol=0)
    assert torch.allclose(bn.running_var, want_var, rtol=1e-12, atol=0)
    assert int(bn.num_batches_tracked) == 4 and bn.momentum == 0.25


# ---- Method 1: every member's paths before the first weight step -----------------------------------

class _Stop(Exception):
    pass


def test_method1_asks_for_every_supernets_paths_before_the_first_weight_step(tmp_path, monkeypatch):
    calls = []
    ask, weight_step = MultiEpsilonSearch.ask, loops.weight_step

    def recording_ask(self, *a, **k):
        calls.append("ask")
        return ask(self, *a, **k)

    def recording_weight_step(*a, **k):
        calls.append("weight_step")
        return weight_step(*a, **k)

    def theta_step(self, x, y):
        raise _Stop  # the first step's weight updates are done

    monkeypatch.setattr(MultiEpsilonSearch, "ask", recording_ask)
    monkeypatch.setattr(loops, "weight_step", recording_weight_step)
    monkeypatch.setattr(search_stages.ThetaStep, "__call__", theta_step)
    recipe = load_recipe(QUICK, ["threads=1", "data.limit_train=256", "data.batch_size=32", "search.lam=2",
                                 "search.method=simultaneous", "search.budgets=[null]", "search.supernets=3",
                                 "search.weight_epochs=1", "retrain.epochs=0", "export.onnx=false"])
    with pytest.raises(_Stop):
        Run(recipe, tmp_path / "run", tty=False).execute()
    assert calls == ["ask"] * 3 + ["weight_step"] * 3


# ---- TellInputs: a blocking copy to a CPU engine -------------------------------------------------------

class _RecordingTensor(torch.Tensor):
    """Records the keyword arguments of every ``.to`` called on it."""

    to_kwargs: list = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.Tensor.to:
            cls.to_kwargs.append(dict(kwargs or {}))
        return super().__torch_function__(func, types, args, kwargs)


@pytest.mark.parametrize("engine_device,non_blocking", [("cpu", False), ("meta", True)])
def test_tell_inputs_copies_to_a_cpu_engine_blocking(monkeypatch, engine_device, non_blocking):
    # a CPU engine reads the architecture at once: a non-blocking copy from CUDA could still be in flight
    monkeypatch.setattr(_RecordingTensor, "to_kwargs", [])
    inputs = TellInputs([2, 3, 4], torch.device(engine_device), torch.float64, host_checks=True)
    arch = torch.tensor([[1, 2, 3], [0, 0, 0]]).as_subclass(_RecordingTensor)
    out = inputs.arch(arch, 2, trusted=False)
    assert out.device.type == engine_device
    assert _RecordingTensor.to_kwargs, "the architecture was not moved with .to"
    assert all(bool(kw.get("non_blocking", False)) is non_blocking for kw in _RecordingTensor.to_kwargs)


# ---- evaluation in full precision ------------------------------------------------------------------------

class _Loader:
    def __init__(self, batches):
        self.batches = batches

    def epoch(self, e):
        return iter(self.batches)


def test_evaluate_runs_in_full_precision_where_the_steps_use_autocast(monkeypatch):
    # autocast_for as on CUDA (bf16): the training steps use it, evaluation must not
    monkeypatch.setattr(loops, "autocast_for", lambda device: torch.autocast("cpu", dtype=torch.bfloat16))
    torch.manual_seed(0)
    lin = nn.Linear(5, 3)
    seen = []

    def forward(x):
        out = lin(x)
        seen.append((out.dtype, torch.is_autocast_enabled("cpu")))
        return out

    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    loss, acc = loops.evaluate(forward, _Loader([(x, y)]), torch.device("cpu"), DistInfo())
    assert seen == [(torch.float32, False)]
    with torch.no_grad():
        want = nn.functional.cross_entropy(lin(x), y).item()
    assert loss == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("kind,given,expected", [("cuda", [], False), ("cuda", ["cudnn_benchmark=true"], True),
                                                  ("cpu", ["cudnn_benchmark=true"], False)])
def test_a_run_on_a_gpu_sets_cudnn_benchmark_from_the_recipe(tmp_path, monkeypatch, kind, given, expected):
    """cuDNN's autotuning is the recipe's ``cudnn_benchmark`` (off unless asked: on the digits supernet it made
    the weight phase 2.9x slower on an H200) for every run on a GPU (``Run(...)`` in scripts and benchmarks,
    ``automl rank``), not for the ``automl run`` command alone; a CPU run leaves torch's setting alone; building
    a Run computes nothing on the device."""
    # a CPU run starts from False and keeps it; a GPU run starts from the opposite of what it should set
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", kind == "cuda" and not expected)
    Run(load_recipe(QUICK, given), tmp_path / "o",
        device=torch.device(kind, 0) if kind == "cuda" else torch.device(kind))
    assert torch.backends.cudnn.benchmark is expected


def test_cudnn_benchmark_does_not_change_the_resume_fingerprint():
    """Like the thread count, cuDNN's algorithm choice changes float rounding only: a run started with it on
    resumes with it off (and the other way), and a run recorded before the key existed still resumes."""
    assert load_recipe(QUICK, ["cudnn_benchmark=true"]).fingerprint() == load_recipe(QUICK).fingerprint()
    assert load_recipe(QUICK, ["seed=1"]).fingerprint() != load_recipe(QUICK).fingerprint()
