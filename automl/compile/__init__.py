"""Compile a parsed space into a supernet (timm blocks) and a cost table.

>>> from automl.compile import load_compiled
>>> cs = load_compiled("spaces/digits.space")          # doctest: +SKIP
>>> net = cs.build_supernet(); logits = net(x, cs.cost_table.cheapest())   # doctest: +SKIP
"""

from automl.compile._registry import OpInfo, create_op, get_op, is_op, list_ops, register_op
from automl.compile.compiler import (ACTIVATIONS, CellPlan, ChainLayer, ChainPlan, CompiledSpace, Decision,
                                     compile_space, load_compiled)
from automl.compile.costs import CostTable, count_params
from automl.compile.standalone import CellNet, arch_def, block_map, build_standalone
from automl.compile.supernet import CellSupernet, ChainSupernet, Supernet, build_supernet

__all__ = [
    "compile_space", "load_compiled", "CompiledSpace", "Decision", "ChainPlan", "ChainLayer", "CellPlan",
    "CostTable", "count_params", "Supernet", "ChainSupernet", "CellSupernet", "build_supernet",
    "build_standalone", "arch_def", "block_map", "CellNet", "register_op", "list_ops", "create_op", "get_op",
    "is_op", "OpInfo", "ACTIVATIONS",
]
