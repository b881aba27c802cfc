"""Compile a parsed space into its plan (:mod:`automl.plan`: decisions, network, cost table).

>>> from automl.compile import load_compiled
>>> cs = load_compiled("spaces/digits.space")          # doctest: +SKIP
>>> net = cs.build_supernet(); logits = net(x, cs.cost_table.cheapest())   # doctest: +SKIP

The model builders and the op registry live in :mod:`automl.nn`; they are re-exported here, where they
were first published.
"""

from automl.compile.compiler import ACTIVATIONS, CompiledSpace, compile_space, load_compiled
from automl.compile.costs import CostTable
from automl.nn import (CellNet, CellSupernet, ChainSupernet, OpInfo, Supernet, arch_def, block_map, build_standalone,
                       build_supernet, count_params, create_op, get_op, is_op, list_ops, register_op)
from automl.plan import CellPlan, ChainLayer, ChainPlan, Decision, SpacePlan

__all__ = [
    "compile_space", "load_compiled", "CompiledSpace", "SpacePlan", "Decision", "ChainPlan", "ChainLayer",
    "CellPlan", "CostTable", "count_params", "Supernet", "ChainSupernet", "CellSupernet", "build_supernet",
    "build_standalone", "arch_def", "block_map", "CellNet", "register_op", "list_ops", "create_op", "get_op",
    "is_op", "OpInfo", "ACTIVATIONS",
]
