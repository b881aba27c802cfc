"""Model building: the candidate ops and their registry, the weight-sharing supernet, the standalone network
of one architecture, and costs measured on the meta device. Everything here takes a typed plan
(:class:`automl.plan.SpacePlan` and its :class:`~automl.plan.ChainPlan` / :class:`~automl.plan.CellPlan`);
:mod:`automl.compile` makes plans from ``.space`` files and builds no torch module itself.

>>> from automl.compile import load_compiled
>>> from automl.nn import build_standalone, build_supernet
>>> cs = load_compiled("spaces/digits.space")
>>> net = build_supernet(cs); logits = net(x, cs.cost_table.cheapest())   # doctest: +SKIP
"""

from automl.nn.registry import OpInfo, create_op, get_op, is_op, list_ops, register_op, register_resolver
from automl.nn import ops  # noqa: E402,F401 - registers the built-in ops (after the registry exists)
from automl.nn.depthwise import FastDepthwiseConv2d, plain_convs, use_fast_depthwise_grad
from automl.nn.measure import count_macs, count_params, measure_macs, measure_params
from automl.nn.standalone import CellNet, arch_def, block_map, build_standalone, timm_network
from automl.nn.supernet import CellSupernet, ChainSupernet, Supernet, build_supernet

__all__ = [
    "OpInfo", "create_op", "get_op", "is_op", "list_ops", "register_op", "register_resolver",
    "build_supernet", "Supernet", "ChainSupernet", "CellSupernet",
    "build_standalone", "arch_def", "block_map", "timm_network", "CellNet",
    "count_params", "count_macs", "measure_params", "measure_macs",
    "plain_convs", "use_fast_depthwise_grad", "FastDepthwiseConv2d",
]
