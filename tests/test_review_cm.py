"""A supernet (or network) that training cannot hold in the GPU's free memory is refused before it is moved to the
GPU (review CM: ``automl.train.loops.check_fits_on_gpu`` from ``for_training``). CPU only: CUDA is faked, and a
test that reached a real ``.to("cuda")`` would fail on this machine with torch's own error, not the UserError."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from automl.compile import load_compiled
from automl.errors import UserError
from automl.nn.measure import count_params
from automl.pipeline.search_stages import build_supernet
from automl.train import loops

DIGITS_PARAMS = 274_618  # spaces/digits.space's supernet (tests/test_review_bq.py)
GIB = 1 << 30


@pytest.fixture(scope="module")
def digits():
    return load_compiled("spaces/digits.space")


def _fake_gpu(monkeypatch, free: int, total: int = 80 * GIB, reserved: int = 0, allocated: int = 0) -> list:
    """CUDA visible with ``free`` bytes free of ``total`` (and this process's caching allocator holding
    ``reserved`` bytes, ``allocated`` of them in tensors); returns the devices mem_get_info was asked about."""
    asked = []

    def mem_get_info(device=None):
        asked.append(torch.device(device))
        return free, total
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: reserved)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: allocated)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: f"Fake GPU {torch.device(device).index}")
    return asked


def test_a_supernet_larger_than_the_gpus_free_memory_is_refused_before_it_is_moved(digits, monkeypatch, capsys):
    # was: model.to(cuda) raised CUDA's out-of-memory error (an internal error, exit 1) after the data was loaded
    asked = _fake_gpu(monkeypatch, free=GIB // 1024, total=80 * GIB)
    with pytest.raises(UserError) as info:
        build_supernet(digits, torch.device("cuda", 0), seed=0, idx=0)
    msg = str(info.value)
    assert msg.startswith(f"the supernet of space digits holds {DIGITS_PARAMS:,} parameters, 0.001 GiB; training it "
                          f"on cuda:0 (Fake GPU 0) needs at least 0.002 GiB for its weights and SGD momentum "
                          f"(2 copies; "), msg
    assert "more than the 0.00098 GiB free of the GPU's 80.0 GiB (torch.cuda.mem_get_info)" in msg, msg
    assert "use a smaller space" in msg and "space_args" in msg and msg.endswith("or device=cpu"), msg
    assert "search.supernets" not in msg  # one supernet: no fewer to ask for
    assert asked == [torch.device("cuda", 0)]
    assert capsys.readouterr().err == ""  # rank 0 (no RANK): the CLI prints it, once


def test_an_ensemble_is_checked_once_for_all_its_members(digits, monkeypatch):
    asked = _fake_gpu(monkeypatch, free=2 * 4 * DIGITS_PARAMS * 2 - 1)  # 2 members x 2 copies, one byte short
    with pytest.raises(UserError) as info:
        build_supernet(digits, torch.device("cuda", 0), seed=0, idx=0, members=2)
    msg = str(info.value)
    assert msg.startswith(f"the 2 supernets of space digits (search.supernets: 2) hold {2 * DIGITS_PARAMS:,} "
                          f"parameters"), msg
    assert "fewer search.supernets, or device=cpu" in msg
    assert len(asked) == 1


@pytest.mark.parametrize("copies,default", [(None, 2), (1, 1), (3, 3)])
def test_the_supernet_fits_with_exactly_its_copies_free(digits, monkeypatch, copies, default):
    net = digits.build_supernet()
    need = default * 4 * count_params(net)
    _fake_gpu(monkeypatch, free=need)
    loops.check_fits_on_gpu(net, torch.device("cuda", 0), copies)  # enough: nothing raised
    _fake_gpu(monkeypatch, free=need - 1)
    with pytest.raises(UserError, match=f"\\({default} {'copy' if default == 1 else 'copies'};"):
        loops.check_fits_on_gpu(net, torch.device("cuda", 0), copies)


def test_memory_the_caching_allocator_holds_unused_counts_as_free(digits, monkeypatch):
    # a stage's supernet, freed, stays in torch's cache (mem_get_info no longer counts it): the next stage reuses it
    net = digits.build_supernet()
    need = 2 * 4 * DIGITS_PARAMS  # its weights and SGD momentum
    _fake_gpu(monkeypatch, free=1000, reserved=need, allocated=1000)  # exactly need
    loops.check_fits_on_gpu(net, torch.device("cuda", 0))
    _fake_gpu(monkeypatch, free=1000, reserved=need, allocated=1001)
    with pytest.raises(UserError):
        loops.check_fits_on_gpu(net, torch.device("cuda", 0))


def test_a_network_for_retraining_counts_its_gradients_too(monkeypatch):
    net = nn.Sequential(nn.Linear(100, 100), nn.Linear(100, 10))  # 11,110 parameters
    _fake_gpu(monkeypatch, free=3 * 4 * 11_110 - 1)
    with pytest.raises(UserError) as info:
        loops.for_training(net, torch.device("cuda", 0))
    msg = str(info.value)
    assert msg.startswith("the network holds 11,110 parameters") and "its weights, their gradients and SGD " \
        "momentum (3 copies; the activations come on top)" in msg, msg
    assert msg.endswith("retrain a smaller network (the recipe's retrain.space_args), or use device=cpu"), msg


def test_each_torchrun_rank_checks_its_own_gpu_and_says_its_refusal(digits, monkeypatch, capsys):
    # rank 1's refusal: the CLI prints rank 0's errors only, so the rank prints its own (rank 0 sees RanksLost)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    asked = _fake_gpu(monkeypatch, free=1000)
    with pytest.raises(UserError) as info:
        build_supernet(digits, torch.device("cuda", 1), seed=0, idx=0)
    assert asked == [torch.device("cuda", 1)]
    assert "training it on cuda:1 (Fake GPU 1)" in str(info.value)
    err = capsys.readouterr().err
    assert err.startswith("error: the supernet of space digits holds") and err.count("\n") == 1, err


def test_the_cpu_never_asks_cuda(digits, monkeypatch):
    def no(*a, **k):
        raise AssertionError("CUDA was asked on the CPU")
    for fn in ("mem_get_info", "memory_reserved", "memory_allocated", "get_device_name", "is_available"):
        monkeypatch.setattr(torch.cuda, fn, no)
    net = build_supernet(digits, torch.device("cpu"), seed=0, idx=0, members=2)
    assert next(net.parameters()).device.type == "cpu" and count_params(net) == 2 * DIGITS_PARAMS
    assert loops.for_training(nn.Linear(3, 2), torch.device("cpu")).weight.device.type == "cpu"


def test_a_supernet_read_back_to_search_or_rank_counts_its_weights_only(digits, monkeypatch):
    # the θ phase, the ranking and automl rank keep no optimiser state: a GPU that holds the weights once will do
    from automl.pipeline.search_stages import supernet_from_state
    asked = []

    def check(model, device, copies=None):
        asked.append(copies)
        raise RuntimeError("stop before the move")
    monkeypatch.setattr(loops, "check_fits_on_gpu", check)
    weights = build_supernet(digits, torch.device("cpu"), seed=0, idx=0).state_dict()
    for build in (lambda: supernet_from_state(digits, torch.device("cuda", 0), weights, 0, 1),
                  lambda: build_supernet(digits, torch.device("cuda", 0), seed=0, idx=0)):
        with pytest.raises(RuntimeError, match="stop before the move"):
            build()
    assert asked == [1, None]  # None: a training's copies with SGD (loops.training_copies)


@pytest.mark.parametrize("epochs, copies", [(0, 1), (1, (3, "its weights, their gradients and SGD momentum"))])
def test_a_network_that_is_not_retrained_counts_its_weights_only(tmp_path, monkeypatch, epochs, copies):
    # retrain.epochs 0 evaluates and exports the supernet's weights: no gradients, no optimiser state on the GPU
    import automl.pipeline.final_stages as fs
    from test_review_ce import QUICK, TINY
    from automl.pipeline import Run
    from automl.recipe import load_recipe
    seen, real = [], loops.for_training

    def for_training(model, device, *, copies=None):
        seen.append(copies)
        return real(model, device, copies=copies)
    monkeypatch.setattr(fs.loops, "for_training", for_training)
    Run(load_recipe(QUICK, TINY + ["search.epsilons=[0]", "search.budgets=null", f"retrain.epochs={epochs}"]),
        tmp_path / "r", tty=False).execute()
    # loops is one module: the weight phase's build (a training's), the θ phase's read-back (1), the retraining
    assert seen == [(2, "its weights and SGD momentum"), 1, copies], seen


@pytest.mark.parametrize("optimizer, momentum, supernet, copies, words", [
    ("sgd", 0.9, True, 2, "its weights and SGD momentum"),
    ("sgd", 0.0, True, 1, "its weights"),
    ("sgd", 0.0, False, 2, "its weights and their gradients"),
    ("adamw", 0.9, True, 3, "its weights and AdamW's two moment estimates"),
    ("adamw", 0.9, False, 4, "its weights, their gradients and AdamW's two moment estimates"),
    ("rmsprop", 0.9, False, 4, "its weights, their gradients, RMSprop's square average and momentum"),
    ("rmsproptf", 0.0, True, 2, "its weights and RMSprop's square average"),
])
def test_the_copies_follow_the_optimisers_state(optimizer, momentum, supernet, copies, words):
    # was: SGD's one momentum buffer for every optimiser (AdamW keeps two tensors per weight)
    assert loops.training_copies(optimizer, momentum, supernet=supernet) == (copies, words)
    # the count is the optimiser's real state: one training step of each, with every weight stepped
    net = nn.Linear(4, 3)
    opt = loops.create_optimizer(net, optimizer, 0.1, 0.0, momentum)
    net(torch.ones(2, 4)).sum().backward()
    opt.step()
    state = sum(t.numel() for s in opt.state.values() for t in s.values() if torch.is_tensor(t) and t.dim())
    assert state == (copies - 1 - (not supernet)) * sum(p.numel() for p in net.parameters())


def test_a_search_and_a_retraining_with_adamw_count_its_two_moments(monkeypatch, tmp_path):
    import automl.pipeline.final_stages as fs
    from test_review_ce import QUICK, TINY
    from automl.pipeline import Run
    from automl.recipe import load_recipe
    seen, real = [], loops.for_training

    def for_training(model, device, *, copies=None):
        seen.append(copies)
        return real(model, device, copies=copies)
    monkeypatch.setattr(fs.loops, "for_training", for_training)
    Run(load_recipe(QUICK, TINY + ["search.epsilons=[0]", "search.budgets=null", "retrain.epochs=1",
                                   "optim.name=adamw", "retrain.optimizer=adamw"]), tmp_path / "r", tty=False).execute()
    assert [c if isinstance(c, int) else c.count for c in seen] == [3, 1, 4], seen
