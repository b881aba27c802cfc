"""The supernet refuses an architecture that is not one choice index per decision, with the UserError of
:func:`automl.plan.check_arch`; a ``block`` op is refused at registration without its timm block string."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from automl.compile import load_compiled, register_op
from automl.errors import UserError
from automl.nn.ensemble import SupernetEnsemble
from automl.nn.registry import is_op

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def chain():
    cs = load_compiled(ROOT / "spaces" / "digits.space")
    return cs, cs.build_supernet().eval()


@pytest.fixture(scope="module")
def cell():
    cs = load_compiled(ROOT / "spaces" / "nasbench201.space", {"size": "8", "channels": "4", "cells": "1"})
    return cs, cs.build_supernet().eval()


def _bad_archs(cs):
    """(what, arch) pairs check_arch refuses: -1s, one entry too many, one too few, K_d at the last decision."""
    top = torch.tensor([k - 1 for k in cs.num_choices])
    past_end = top.clone()
    past_end[-1] = cs.num_choices[-1]
    return [("minus ones", torch.full((cs.num_decisions,), -1)),
            ("D+1 entries", torch.cat([top, torch.zeros(1, dtype=torch.long)])),
            ("D-1 entries", top[:-1]),
            ("K_d at the last decision", past_end),
            ("2-D", top[None]),
            ("float", top.float())]


def _check_arch_message(cs, arch) -> str:
    with pytest.raises(UserError) as e:
        cs.check_arch(arch)
    return str(e.value)


def _assert_refused_like_check_arch(cs, fn, arch):
    want = _check_arch_message(cs, arch)
    with pytest.raises(UserError) as e:
        fn(arch)
    assert str(e.value) == want


@pytest.mark.parametrize("space", ["chain", "cell"])
def test_forward_refuses_what_check_arch_refuses(space, request):
    cs, net = request.getfixturevalue(space)
    x = torch.randn(2, *cs.input_shape)
    for _, arch in _bad_archs(cs):
        with torch.no_grad():
            _assert_refused_like_check_arch(cs, lambda a: net(x, a), arch)


@pytest.mark.parametrize("space", ["chain", "cell"])
def test_messages_name_the_decision_or_the_count(space, request):
    cs, net = request.getfixturevalue(space)
    x = torch.randn(1, *cs.input_shape)
    first, last = cs.decisions[0].name, cs.decisions[-1].name
    archs = dict(_bad_archs(cs))
    expected = {"minus ones": f"decision {first}: choice index -1",
                "K_d at the last decision": f"decision {last}: choice index {cs.num_choices[-1]}",
                "D+1 entries": f"{cs.num_decisions} decisions; the architecture has {cs.num_decisions + 1}",
                "D-1 entries": f"{cs.num_decisions} decisions; the architecture has {cs.num_decisions - 1}"}
    for what, part in expected.items():
        with pytest.raises(UserError, match=part), torch.no_grad():
            net(x, archs[what])


@pytest.mark.parametrize("space", ["chain", "cell"])
def test_path_params_and_path_modules_refuse_a_bad_arch(space, request):
    cs, net = request.getfixturevalue(space)
    for _, arch in _bad_archs(cs):
        _assert_refused_like_check_arch(cs, net.path_params, arch)
        _assert_refused_like_check_arch(cs, net.path_modules, arch)
    # a list of ints, as the non-hot paths accept, is checked the same way
    _assert_refused_like_check_arch(cs, net.path_params, [-1] * cs.num_decisions)


def test_chain_slices_and_path_network_refuse_a_bad_arch(chain):
    cs, net = chain
    for _, arch in _bad_archs(cs):
        _assert_refused_like_check_arch(cs, net.slices, arch)
        _assert_refused_like_check_arch(cs, net.path_network, arch)


def test_ensemble_refuses_a_bad_arch(chain):
    cs, _ = chain
    ens = SupernetEnsemble([cs.build_supernet(), cs.build_supernet()]).eval()
    x = torch.randn(2, *cs.input_shape)
    for _, arch in _bad_archs(cs):
        with torch.no_grad():
            _assert_refused_like_check_arch(cs, lambda a: ens(x, a), arch)
        _assert_refused_like_check_arch(cs, ens.path_params, arch)


def test_the_largest_valid_indices_still_run(chain):
    """The last choice of every decision (what -1 used to alias) is accepted by forward and path_params."""
    cs, net = chain
    top = torch.tensor([k - 1 for k in cs.num_choices])
    with torch.no_grad():
        out = net(torch.randn(3, *cs.input_shape), top)
    assert out.shape == (3, cs.num_classes) and torch.isfinite(out).all()
    assert net.path_params(top) == net.path_params(top.tolist()) == cs.cost_table.total(top, "params")


def test_block_op_without_block_str_is_refused_at_registration():
    with pytest.raises(ValueError, match="block_str"):
        register_op("test_review_p_block", "block")
    assert not is_op("test_review_p_block")


def test_block_op_with_block_str_registers():
    @register_op("test_review_p_block_ok", "block", block_str="ds_r1_k3_s{stride}_c{out}")
    def _op(in_ch, out_ch, stride, device=None, **_):  # pragma: no cover - only registered
        return nn.Identity()

    assert is_op("test_review_p_block_ok")
