"""Cell spaces (DARTS / NAS-Bench-201 style): mistakes in a cell network that used to compile into a network
that does not do what it says (reductions past a 1 x 1 feature map, a node that can only add zeros, a cell
repeated zero times). Each is one located message, exit 2 through `automl space check`, no traceback."""

from __future__ import annotations

import pytest

from automl.cli import main
from automl.compile import compile_space, load_compiled
from automl.dsl import parse_space
from automl.errors import SpaceError


def cell_space(layout: str, *, size: int = 8, stem: str = "stem width 8", extra: str = "",
               normal_ops: str = "ops", header: str = "") -> str:
    return (f"space t\n{header}input 1 x {size} x {size}\nclasses 10\n"
            "choices ops = none, identity, sep_k3, avgpool_k3\n"
            "cell normal\n"
            f"  node n1 sums 2 of earlier through {normal_ops}\n"
            "  node n2 sums 2 of earlier through ops\n"
            "end\n"
            "cell reduction stride 2\n"
            "  node n1 sums 2 of earlier through ops\n"
            "end\n"
            f"{extra}"
            f"network\n  {stem}\n  cells {layout} width 8\nend\n")


def compile_text(text: str, overrides=None):
    return compile_space(parse_space(text, "t.space", overrides))


def space_error(text: str, overrides=None) -> SpaceError:
    with pytest.raises(SpaceError) as info:
        compile_text(text, overrides)
    return info.value


def check_cli(tmp_path, capsys, text: str, *args: str) -> str:
    path = tmp_path / "t.space"
    path.write_text(text, encoding="utf-8")
    assert main(["space", "check", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    return err.replace(str(path), "t.space")


def where(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """(line, column), 1-based, of the ``nth`` occurrence of ``needle`` in ``text``."""
    i = -1
    for _ in range(nth):
        i = text.index(needle, i + 1)
    line = text.count("\n", 0, i) + 1
    return line, i - (text.rfind("\n", 0, i) + 1) + 1


# ---- 1. reductions: an 8 x 8 input halves three times to 1 x 1; a fourth halving has nothing to halve ----

def test_three_reductions_of_an_8x8_input_compile():
    cs = compile_text(cell_space("normal x 4 split by reduction x 3"))
    assert sum(1 for i in cs.plan.instances if cs.plan.templates[i.template].stride == 2) == 3


def test_a_fourth_reduction_of_an_8x8_input_is_refused_at_its_count(tmp_path, capsys):
    text = cell_space("normal x 5 split by reduction x 4")
    e = space_error(text)
    assert (e.line, e.column) == where(text, "4 width")
    assert "1 x 1" in e.message and "at most 3" in e.message
    assert check_cli(tmp_path, capsys, text).startswith(f"t.space:{e.line}:{e.column}: ")


def test_the_stem_stride_counts_as_a_halving():
    text = cell_space("normal x 4 split by reduction x 3", stem="stem width 8 stride 2")
    e = space_error(text)
    assert "1 x 1" in e.message and "at most 2" in e.message
    compile_text(cell_space("normal x 3 split by reduction x 2", stem="stem width 8 stride 2"))


def test_fixed_reduction_blocks_count_too():
    text = cell_space("normal x 4 split by resnet_block x 3").replace(
        "cell reduction stride 2\n  node n1 sums 2 of earlier through ops\nend\n", "")
    compile_text(text)
    text = text.replace("x 3", "x 4").replace("normal x 4", "normal x 5")
    e = space_error(text)
    assert (e.line, e.column) == where(text, "4 width") and "resnet_block" in e.message


def test_an_explicit_sequence_points_at_the_item_that_reduces_too_far():
    text = cell_space("normal, reduction x 3, normal, reduction")
    e = space_error(text)
    assert (e.line, e.column) == where(text, "reduction", nth=3)  # the template, the 3-count, then this one


def test_an_odd_size_halves_rounding_up():
    # 5 -> 3 -> 2 -> 1: three halvings (the ops pad: a stride-2 conv of a 5-pixel map gives 3 pixels)
    compile_text(cell_space("normal x 4 split by reduction x 3", size=5))
    assert "at most 3" in space_error(cell_space("normal x 5 split by reduction x 4", size=5)).message


def test_the_smallest_resolution_decides():
    text = cell_space("normal x 3 split by reduction x 2", header="resolution 2, 8\n")
    e = space_error(text)
    assert "resolution 2" in e.message and "at most 1" in e.message
    compile_text(text.replace("resolution 2, 8", "resolution 4, 8"))


def test_a_parameter_set_too_large_says_where_its_value_came_from(tmp_path, capsys):
    text = "param reductions = 2\n" + cell_space("normal x 6 split by reduction x reductions")
    compile_text(text)
    err = check_cli(tmp_path, capsys, text, "--set", "reductions=5")
    assert "reductions=5" in err and "at most 3" in err


# ---- 2. a node whose only op is `none` always adds zeros -----------------------------------------------

def test_a_node_whose_only_op_is_none_is_refused_at_its_ops(tmp_path, capsys):
    text = cell_space("normal x 2", normal_ops="none").replace("cell reduction stride 2\n  node n1 sums 2 of "
                                                                "earlier through ops\nend\n", "")
    e = space_error(text)
    assert (e.line, e.column) == where(text, "none\n")
    assert "node n1" in e.message and "'none'" in e.message and "zeros" in e.message
    assert check_cli(tmp_path, capsys, text).startswith(f"t.space:{e.line}:{e.column}: ")


@pytest.mark.parametrize("ops", ["[none]", "nothing", "none"])
def test_an_edge_node_whose_only_op_is_none_is_refused(ops):
    text = ("space t\ninput 1 x 8 x 8\nclasses 10\nchoices ops = none, identity, conv_k3\nchoices nothing = none\n"
            f"cell c inputs x\n  node n1 sums edges from x through ops\n  node n2 sums edges from x, n1 through {ops}\n"
            "  output n2\nend\nnetwork\n  stem width 8\n  cells c x 2 width 8\nend\n")
    e = space_error(text)
    line, column = where(text, f"through {ops}\n")
    assert (e.line, e.column) == (line, column + len("through ")) and "'none'" in e.message


def test_none_among_other_ops_is_still_a_choice():
    cs = compile_text(cell_space("normal x 2 split by reduction x 1"))
    assert "none" in cs.decisions[2].choices and len(cs.decisions[2].choices) == 4


# ---- 3. a cell repeated zero times: refused as a chain's `repeat 0` is ------------------------------

@pytest.mark.parametrize("layout, needle", [("normal x 0, normal x 2, reduction", "0,"),
                                            ("normal x 2, reduction x 0, normal", "0,"),
                                            ("normal x 0 split by reduction x 1", "0 split")])
def test_a_cell_count_of_zero_is_refused_at_the_count(tmp_path, capsys, layout, needle):
    text = cell_space(layout)
    e = space_error(text)
    assert (e.line, e.column) == where(text, needle)
    assert "cell count must be between 1 and" in e.message and "got 0" in e.message
    assert check_cli(tmp_path, capsys, text).startswith(f"t.space:{e.line}:{e.column}: cell count")


@pytest.mark.parametrize("space, key", [("spaces/darts.space", "normal_cells"), ("spaces/enas_micro.space",
                                                                                   "normal_cells"),
                                        ("spaces/nasbench201.space", "cells")])
def test_a_shipped_cell_space_with_zero_cells_names_the_setting(space, key):
    with pytest.raises(SpaceError) as info:
        load_compiled(space, {key: "0"})
    assert "cell count must be between 1 and" in info.value.message and f"{key}=0" in info.value.message


# ---- 4. `split by` a cell without `stride 2` puts no reduction between the groups ------------------------

def test_split_by_a_cell_without_stride_2_is_refused_at_its_name(tmp_path, capsys):
    text = cell_space("normal x 4 split by reduction x 2").replace("cell reduction stride 2", "cell reduction")
    e = space_error(text)
    assert (e.line, e.column) == where(text, "reduction x 2")
    assert "stride 2" in e.message and "cell reduction" in e.message
    assert check_cli(tmp_path, capsys, text).startswith(f"t.space:{e.line}:{e.column}: ")


def test_an_explicit_sequence_may_still_mix_cells_of_stride_1():
    text = cell_space("normal x 2, other, reduction, normal", extra="cell other\n  node n1 sums 2 of earlier "
                                                                   "through ops\nend\n")
    cs = compile_text(text)
    assert [cs.plan.templates[i.template].name for i in cs.plan.instances] == [
        "normal", "normal", "other", "reduction", "normal"]


# ---- 5. `earlier` as a node or input name: `sums K of earlier` would not mean it -------------------------

@pytest.mark.parametrize("old, new, needle", [
    ("cell normal\n  node n1 ", "cell normal\n  node earlier ", "earlier sums"),
    ("cell normal\n", "cell normal inputs earlier, c1\n", "earlier,")])
def test_a_node_or_input_named_earlier_is_refused(old, new, needle):
    text = cell_space("normal x 2 split by reduction x 1").replace(old, new, 1)
    e = space_error(text)
    assert (e.line, e.column) == where(text, needle) and "'earlier'" in e.message


# ---- 6. a cell's `inputs` or `stride` given twice: the later silently won -----------------------------

@pytest.mark.parametrize("old, new, needle, kind", [
    ("cell reduction stride 2", "cell reduction stride 2 stride 1", "stride 1", "stride"),
    ("cell normal\n", "cell normal inputs x inputs c0, c1\n", "inputs c0", "inputs")])
def test_a_cell_option_given_twice_is_refused_at_the_second(tmp_path, capsys, old, new, needle, kind):
    text = cell_space("normal, reduction, normal").replace(old, new, 1)
    e = space_error(text)
    assert (e.line, e.column) == where(text, needle)
    assert f"`{kind}`" in e.message and "cell" in e.message
    assert check_cli(tmp_path, capsys, text).startswith(f"t.space:{e.line}:{e.column}: ")


# ---- 7. `sums K distinct of` many inputs: one decision of C(n, K) choices, built before any check --------

def test_too_many_distinct_input_sets_are_refused_before_they_are_built(tmp_path, capsys):
    nodes = "".join(f"  node m{i} sums 1 of earlier through ops\n" for i in range(17))
    text = cell_space("normal x 2 split by reduction x 1").replace(
        "  node n2 sums 2 of earlier through ops\n", nodes + "  node n2 sums 8 distinct of earlier through ops\n")
    e = space_error(text)  # C(20, 8) = 125,970 sets of inputs; with 40 nodes C(43, 8) would not fit in memory
    assert (e.line, e.column) == where(text, "8 distinct")
    assert "node n2" in e.message and "distinct" in e.message
    assert check_cli(tmp_path, capsys, text).startswith(f"t.space:{e.line}:{e.column}: ")


def test_a_node_reading_itself_says_so():
    text = cell_space("normal x 2 split by reduction x 1").replace("node n2 sums 2 of earlier",
                                                                   "node n2 sums 2 of n2, c1")
    e = space_error(text)
    assert (e.line, e.column) == where(text, "n2, c1") and "cannot read itself" in e.message


# ---- 8. a two-input cell none of whose nodes reads one input: its preprocessing is dead weight ----------

@pytest.mark.parametrize("inputs, needle", [("", "normal\n"), (" inputs a, b", "a, b")])
def test_a_cell_input_no_node_reads_is_refused(inputs, needle):
    read = "b" if inputs else "c1"
    text = cell_space("normal x 2 split by reduction x 1").replace(
        "cell normal\n  node n1 sums 2 of earlier", f"cell normal{inputs}\n  node n1 sums 2 of {read}")
    text = text.replace("node n2 sums 2 of earlier", f"node n2 sums 2 of {read}, n1")
    e = space_error(text)
    unread = "a" if inputs else "c0"
    assert (e.line, e.column) == where(text, needle) and f"reads its input {unread!r}" in e.message


def test_a_cell_input_read_by_one_node_only_is_fine():
    text = cell_space("normal x 2 split by reduction x 1").replace("node n2 sums 2 of earlier",
                                                                   "node n2 sums 2 of c0, n1")
    compile_text(text.replace("node n1 sums 2 of earlier", "node n1 sums 2 of c1", 1))
