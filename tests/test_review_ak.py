"""Review AK: cell layouts. `cells NORMAL x N split by REDUCTION x R` is DARTS's layout, R reductions between
R + 1 groups of normal cells, earlier groups taking the remainder; with fewer than R + 1 normal cells the last
groups are empty (reductions back to back, as DARTS's own code places them in a network of 3 or 4 layers).
A stride-2 stem of a 1 x 1 input is refused like any other halving of a 1 x 1 map; odd sizes, paths and costs
agree between supernet, stand-alone network and cost table."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.export import count_params, inherit_weights
from automl.nn.measure import count_macs
from test_review_z import compile_text, space_error  # parse and compile a space's text; its SpaceError

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def cell_space(layout: str, *, size: int = 32, header: str = "", stem: str = "stem width 8") -> str:
    return (f"space t\n{header}input 1 x {size} x {size}\nclasses 10\n"
            "choices ops = none, identity, sep_k3, avgpool_k3\n"
            "cell normal\n"
            "  node n1 sums 2 of earlier through ops\n"
            "end\n"
            "cell reduction stride 2\n"
            "  node n1 sums 2 of earlier through ops\n"
            "end\n"
            f"network\n  {stem}\n  cells {layout} width 4\nend\n")


def where(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """(line, column), 1-based, of the ``nth`` occurrence of ``needle`` in ``text``."""
    i = -1
    for _ in range(nth):
        i = text.index(needle, i + 1)
    return text.count("\n", 0, i) + 1, i - (text.rfind("\n", 0, i) + 1) + 1


def cli(tmp_path, capsys, text: str, command: str = "check", *args: str) -> tuple[int, str]:
    path = tmp_path / "t.space"
    path.write_text(text, encoding="utf-8")
    code = main(["space", command, str(path), *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    return code, err.replace(str(path), "t.space")


def kinds(cs) -> str:
    """The layout as letters: n (a stride-1 cell), r (a reduction cell), b (a fixed reduction block)."""
    return "".join("b" if i.op is not None else "r" if cs.plan.templates[i.template].stride == 2 else "n"
                   for i in cs.plan.instances)


# ---- 1. `split by REDUCTION x R`: R + 1 groups, the last ones empty when the normal cells run out ---------

@pytest.mark.parametrize("layout, expect", [
    ("normal x 6 split by reduction x 2", "nnrnnrnn"),
    ("normal x 3 split by reduction x 2", "nrnrn"),
    ("normal x 10 split by reduction x 2", "nnnnrnnnrnnn"),
    ("normal x 2 split by reduction", "nrn"),
    ("normal x 1 split by reduction x 2", "nrr"),        # DARTS's code with 3 layers: reductions at 1 and 2
    ("normal x 2 split by reduction x 5", "nrnrrrr"),    # 32 x 32 halved five times: 1 x 1, still valid
])
def test_split_puts_each_reduction_between_two_groups(layout, expect):
    assert kinds(compile_text(cell_space(layout))) == expect


def test_a_split_with_empty_groups_still_stops_at_a_1x1_map():
    e = space_error(cell_space("normal x 2 split by reduction x 6"))
    assert "1 x 1" in e.message


def test_back_to_back_reductions_stay_possible_written_in_order():
    cs = compile_text(cell_space("normal, reduction, reduction, normal"))
    assert kinds(cs) == "nrrn"
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert cs.build_supernet().eval()(x, torch.zeros(cs.num_decisions, dtype=torch.long)).shape == (1, 10)


# ---- 2. a stride-2 stem of a 1 x 1 input is a reduction of a 1 x 1 feature map too --------------------

@pytest.mark.parametrize("header, size, what", [("", 1, "the 1 x 1 input"),
                                                ("resolution 1, 4\n", 4, "the smallest resolution 1")])
def test_a_stride_2_stem_of_a_1x1_input_is_refused_at_its_stride(tmp_path, capsys, header, size, what):
    text = cell_space("normal x 2", size=size, header=header, stem="stem width 8 stride 2").replace(
        "cell reduction stride 2\n  node n1 sums 2 of earlier through ops\nend\n", "")
    e = space_error(text)
    assert (e.line, e.column) == where(text, "2\n  cells")
    assert "stem" in e.message and "1 x 1" in e.message and what in e.message and "stride 1" in e.message
    code, err = cli(tmp_path, capsys, text)
    assert code == 2 and err.startswith(f"t.space:{e.line}:{e.column}: ")
    compile_text(text.replace("stride 2", "stride 1"))
    compile_text(text.replace("input 1 x 1 x 1", "input 1 x 2 x 2").replace("resolution 1, 4", "resolution 2, 4"))


# ---- 3. what was checked and found right: kept as guards ---------------------------------------------

def test_a_32x32_input_takes_five_reductions_not_a_sixth():
    compile_text(cell_space("normal x 6 split by reduction x 5"))
    e = space_error(cell_space("normal x 7 split by reduction x 6"))
    assert "1 x 1" in e.message and "at most 5" in e.message


EXACT_OPS = "none, sep_k3, sep_k5, avgpool_k3, maxpool_k5, conv_k1, conv_k3, dil_k3, dil_k5"


def exact_space(layout: str, h: int, w: int, stem: str = "stem width 6", header: str = "") -> str:
    """Cells whose cost table is exact (no identity, which is a factorized reduce in a reduction cell; distinct
    inputs, so no module is shared by two slots; concatenated outputs, no output conv per node)."""
    cells = "".join(f"cell {name}{extra}\n  node n1 sums 2 distinct of earlier through ops\n"
                    f"  node n2 sums 2 distinct of earlier through ops\n  output concat n1, n2\nend\n"
                    for name, extra in (("normal", ""), ("reduction", " stride 2")) if name in layout)
    one = "cell single inputs x\n  node n1 sums 1 of x through ops\n  output n1\nend\n" if "single" in layout else ""
    return (f"space t\n{header}input 2 x {h} x {w}\nclasses 3\nchoices ops = {EXACT_OPS}\n{cells}{one}"
            f"network\n  {stem}\n  cells {layout} width 5\nend\n")


@pytest.mark.parametrize("layout", ["normal x 3 split by reduction x 2", "reduction, reduction, normal",
                                    "normal, resnet_block, reduction, single, normal", "single, reduction, normal"])
@pytest.mark.parametrize("h, w, stem", [(7, 7, "stem width 6"), (5, 9, "stem width 6 stride 2"),
                                        (6, 3, "stem width 6")])
def test_odd_sizes_path_standalone_and_costs_agree(layout, h, w, stem):
    """7 x 7 halves to 4 x 4 then 2 x 2 (rounding up, as every op and the factorized reduce pad): the supernet's
    path is the standalone network, and params and MACs in the table are the standalone network's."""
    cs = compile_text(exact_space(layout, h, w, stem))
    supernet = cs.build_supernet().eval()
    x = torch.randn(2, 2, h, w, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        arch = torch.tensor([int(torch.randint(len(d.choices), (1,), generator=g)) for d in cs.decisions])
        model = cs.build_standalone(arch).eval()
        inherit_weights(supernet, arch, model, cs.input_shape)
        with torch.no_grad():
            torch.testing.assert_close(model(x), supernet(x, arch))
        assert cs.cost_table.total(arch) == count_params(model) == supernet.path_params(arch)
        assert cs.cost_table.total(arch, "macs") == count_macs(model, cs.input_shape)[0]


def test_darts_v2_has_the_parameter_count_darts_reports():
    """DARTS's published cell (genotype DARTS_V2) retrained with 20 cells of 36 channels: 3,349,342 parameters
    without the auxiliary head, what the DARTS code logs (`param size = 3.349342MB`); the table says the same."""
    darts = Path(__file__).resolve().parents[1] / "spaces" / "darts.space"
    cs = load_compiled(darts, {"normal_cells": "18", "channels": "36"})
    sep, idt, mp = "sep_k3", "identity", "maxpool_k3"
    nodes = {"normal": [("c0+c1", sep, sep), ("c0+c1", sep, sep), ("c0+c1", idt, sep), ("c0+n1", idt, "dil_k3")],
             "reduction": [("c0+c1", mp, mp), ("c1+n1", mp, idt), ("c0+n1", mp, idt), ("c1+n1", mp, idt)]}
    names = {}
    for cell, spec in nodes.items():
        for i, (inputs, op1, op2) in enumerate(spec, 1):
            names |= {f"{cell}_n{i}_inputs": inputs, f"{cell}_n{i}_op1": op1, f"{cell}_n{i}_op2": op2}
    arch = cs.encode(names)
    assert count_params(cs.build_standalone(arch)) == cs.cost_table.total(arch) == 3_349_342
