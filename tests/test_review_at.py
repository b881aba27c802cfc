"""Bounds of cell spaces (helper AT's review of automl/compile/cells.py): a cell's output width (its width,
doubled at each reduction, times the nodes of ``output concat``) and the number of nodes of a cell are
bounded, each with one located message instead of a network that does not fit in memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl.cli import main
from automl.compile import compile_space, load_compiled
from automl.compile.cells import MAX_NODES
from automl.compile.resolve import MAX_CH
from automl.dsl import parse_space
from automl.errors import SpaceError

ROOT = Path(__file__).resolve().parents[1]


def _concat_space(width: int, nodes: int = 8) -> str:
    """A DARTS-like space: a normal and a reduction cell, each concatenating ``nodes`` nodes, laid out
    ``n n r n n r n n`` with the first cell ``width`` wide."""
    names = ", ".join(f"n{i}" for i in range(1, nodes + 1))
    body = "".join(f"  node n{i} sums 2 distinct of earlier through ops\n" for i in range(1, nodes + 1))
    return ("space wide\nparam channels = %d\ninput 3 x 32 x 32\nclasses 10\n"
            "choices ops = none, identity, sep_k3\n"
            "cell normal inputs c0, c1\n%s  output concat %s\nend\n"
            "cell reduction inputs c0, c1 stride 2\n%s  output concat %s\nend\n"
            "network\n  stem width 48\n  cells normal x 6 split by reduction x 2 width channels\nend\n"
            % (width, body, names, body, names))


def _line_of(text: str, start: str) -> int:
    return next(i for i, line in enumerate(text.split("\n"), 1) if line.startswith(start))


def test_concat_output_wider_than_the_channel_bound_is_an_error_at_the_cell():
    """8 nodes of 16384 channels: 131072 channels out of the first normal cell (before the bound, the space
    compiled to a 195G-parameter network whose supernet could not be allocated). The error is at the first
    such cell's declaration and names the first-cell width that keeps every cell within the bound."""
    text = _concat_space(16384)
    with pytest.raises(SpaceError) as info:
        compile_space(parse_space(text, "wide.space"))
    e = info.value
    assert (e.line, e.column) == (_line_of(text, "cell normal"), 6), str(e)
    assert "cell normal's output is too wide" in e.message
    assert f"makes 131072 channels, more than {MAX_CH}" in e.message
    # the reduction cells have 4 times the width: 2048 * 4 * 8 = MAX_CH
    assert "lower the cells' `width`" in e.message and "to at most 2048" in e.message
    assert "(from `param channels = 16384`" in e.message


def test_concat_output_bound_after_reductions_and_at_its_edge():
    """One channel over the bound in the last reduction cell fails there; the width it names compiles."""
    text = _concat_space(2049)
    with pytest.raises(SpaceError) as info:
        compile_space(parse_space(text, "wide.space"))
    e = info.value
    assert e.line == _line_of(text, "cell reduction"), str(e)
    assert "8 nodes of 8196 channels (the cells' width 2049 doubled by 2 reductions) makes 65568" in e.message
    assert "to at most 2048" in e.message
    cs = compile_space(parse_space(_concat_space(2048), "wide.space"))
    assert max(inst.out_channels for inst in cs.plan.instances) == MAX_CH


def test_shipped_darts_width_through_set(capsys):
    """--set channels=4097 in darts.space: the error names the --set value and exits 2 without a traceback;
    4096 (4 nodes x 16384 channels in the last cells) is within the bound."""
    path = ROOT / "spaces" / "darts.space"
    assert main(["space", "check", str(path), "--set", "channels=4097"]) == 2
    err = capsys.readouterr().err
    line = _line_of(path.read_text(encoding="utf-8"), "cell reduction")
    assert err.startswith(f"{path}:{line}:6: cell reduction's output is too wide"), err
    assert "from channels=4097, given with --set" in err and "Traceback" not in err
    assert load_compiled(path, {"channels": "4096"}).plan.instances[-1].out_channels == MAX_CH


def _many_nodes(n: int) -> str:
    nodes = "".join(f"  node n{i} sums 2 of earlier through ops\n" for i in range(1, n + 1))
    return ("space many\ninput 3 x 8 x 8\nclasses 3\nchoices ops = identity, sep_k3\n"
            f"cell normal\n{nodes}end\nnetwork\n  stem width 4\n  cells normal x 2 width 2\nend\n")


def test_too_many_nodes_is_an_error_at_the_first_extra_node(capsys, tmp_path):
    """A cell's supernet holds an op per node, source and op (quadratic in the nodes): 2000 nodes used to
    end `space check` in an internal error, 300 in a MemoryError when the supernet was built."""
    text = _many_nodes(MAX_NODES + 1)
    with pytest.raises(SpaceError) as info:
        compile_space(parse_space(text, "many.space"))
    e = info.value
    assert (e.line, e.column) == (_line_of(text, f"  node n{MAX_NODES + 1} "), 8), str(e)
    assert f"cell normal has {MAX_NODES + 1} nodes, more than {MAX_NODES}" in e.message
    p = tmp_path / "many.space"
    p.write_text(_many_nodes(2000), encoding="utf-8")
    assert main(["space", "check", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{p}:") and "has 2000 nodes" in err and "Traceback" not in err


def test_the_most_nodes_compile():
    cs = compile_space(parse_space(_many_nodes(MAX_NODES), "many.space"))
    assert len(cs.plan.templates[0].nodes) == MAX_NODES
