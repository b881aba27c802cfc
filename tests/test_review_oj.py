"""Review OJ: `automl space show|check` print a space's size whole (15,625) below 10^15 and to 3 significant
digits, rounded as the whole number rounds, above; `space check --help` names its extra files apart from the
first; a reduction that doubles the cells' width past the bound names the largest width that fits; a message
about a parameter's value quotes its default as the file writes it (`1.0`, not `1`)."""

from __future__ import annotations

import decimal
import re
from pathlib import Path

import pytest

from automl.cli import main
from automl.commands import space as space_command
from automl.compile import load_compiled
from automl.errors import SpaceError

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "spaces"

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _three_digits(n: int) -> str:
    """``n`` to 3 significant digits, rounded half up in decimal (not through a float)."""
    with decimal.localcontext() as ctx:
        ctx.rounding = decimal.ROUND_HALF_UP
        return format(decimal.Decimal(n), ".2e")


# ---- 1. sizes: whole below 10^15, 3 significant digits above --------------------------------------------------

@pytest.mark.parametrize("name", ["nasbench201", "digits", "mobilenetv3", "darts", "ofa_mbv3"])
def test_show_and_check_print_the_size_whole_or_to_3_significant_digits(name, capsys):
    path = str(SPACES / f"{name}.space")
    cs = load_compiled(path)
    shown = f"{cs.size:,}" if cs.size < 10**15 else _three_digits(cs.size)
    assert main(["space", "show", path]) == 0
    out = capsys.readouterr().out
    assert f"size = {shown} architectures" in out, out
    assert main(["space", "check", path]) == 0
    out = capsys.readouterr().out
    assert f", {shown} architectures" in out, out
    if cs.networks != cs.size:  # ofa_mbv3: elastic depth
        assert f"{_three_digits(cs.networks)} distinct networks" in out, out


@pytest.mark.parametrize("n", [15_625, 110_592, 10**15 - 1, 10**15, 1125 * 10**15, 1_124_999 * 10**12,
                               9995 * 10**15, 12345678901234567890123, 10**299 + 5 * 10**296])
def test_counts_round_as_the_whole_number_rounds(n):
    """1,125 x 10^15 is 1.13e+18 (a float's `.3g` says 1.12e+18); 15,625 was `1.562e+04` with 4 digits."""
    shown = space_command._count(n)
    assert shown == (f"{n:,}" if n < 10**15 else _three_digits(n)), shown
    assert "," not in shown or int(shown.replace(",", "")) == n


# ---- 2. check --help: the extra files have their own name ----------------------------------------------------

def test_check_help_names_the_first_file_and_the_others_apart(capsys):
    with pytest.raises(SystemExit) as e:
        main(["space", "check", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    usage = " ".join(out.split("positional arguments:")[0].split())
    assert re.search(r" (\w+) \[(\w+) \.\.\.\]$", usage), usage
    first, more = re.search(r" (\w+) \[(\w+) \.\.\.\]$", usage).groups()
    assert first != more, usage
    positional = out.split("positional arguments:")[1].split("options:")[0]
    names = [line.split()[0] for line in positional.splitlines() if line.startswith("  ") and
             not line.startswith("   ")]
    assert names == [first, more], positional


# ---- 3. too many reductions: the largest width that fits ------------------------------------------------------

CELLS = """space t
input 3 x 8 x 8
param w = 65536
classes 10
choices ops = identity, sep_k3, avgpool_k3
cell normal
  node n1 sums 1 of earlier through ops
  node n2 sums 1 of earlier through ops
  output {output}
end
{reduction}network
  stem width 16
  cells {layout} width w
end
"""
REDUCTION = "cell reduction stride 2\n  node r1 sums 1 of earlier through ops\nend\n"


def _fits(path: Path, width: int) -> bool:
    try:
        load_compiled(str(path), {"w": str(width)})
    except SpaceError as e:
        assert "more than 65536" in str(e), str(e)
        return False
    return True


@pytest.mark.parametrize("layout, output, reduction, what", [
    ("normal x 2 split by reduction x 1", "n2", REDUCTION, "cells"),  # the reviewer's: n r n
    ("normal x 2 split by reduction x 1", "concat n1, n2", REDUCTION, "cells"),  # the last cell twice as wide
    ("normal x 1 split by resnet_block x 2", "n2", "", "blocks"),  # n b b
    ("normal x 2 split by resnet_block x 2", "concat n1, n2", "", "blocks"),
])
def test_too_many_reductions_name_the_largest_width_that_fits(tmp_path, capsys, layout, output, reduction, what):
    path = tmp_path / "t.space"
    text = CELLS.format(layout=layout, output=output, reduction=reduction)
    path.write_text(text)
    line = text.split("\n").index(f"  cells {layout} width w") + 1
    with pytest.raises(SpaceError) as e:
        load_compiled(str(path))
    message = str(e.value)
    assert e.value.line == line and f"too many reduction {what}" in message, message
    m = re.search(rf"lower the cells' `width` \(line {line}\) to at most (\d+) \(from `param w = 65536` at line 3\)",
                  message)
    assert m, message
    most = int(m.group(1))
    assert _fits(path, most) and not _fits(path, most + 1)  # the largest width that fits, as the checks say
    assert main(["space", "check", str(path)]) == 2
    assert f"to at most {most}" in capsys.readouterr().err


def test_reductions_no_width_survives_say_so(tmp_path):
    path = tmp_path / "t.space"
    path.write_text(CELLS.format(layout="normal x 1 split by resnet_block x 17", output="n2", reduction=""))
    with pytest.raises(SpaceError) as e:
        load_compiled(str(path), {"w": "1"})
    assert "no width is small enough: use fewer reductions" in str(e.value), str(e.value)


# ---- 4. a parameter's default as written ----------------------------------------------------------------------

@pytest.mark.parametrize("written, expr", [("1.0", "16 / (width - 1)"), ("-2.50", "16 / (width + 2.5)"),
                                           ("1e0", "16 / (width - 1)"), ("- 1.", "16 / (width + 1)")])
def test_a_message_quotes_the_default_as_the_file_writes_it(tmp_path, written, expr):
    path = tmp_path / "t.space"
    path.write_text(f"space t\ninput 3 x 8 x 8\nparam width = {written}   # the default\nclasses 10\n"
                    "choices ops = identity, sep_k3\ncell normal\n  node n1 sums 1 of earlier through ops\nend\n"
                    f"network\n  stem width {expr}\n  cells normal x 2 width 16\nend\n")
    with pytest.raises(SpaceError) as e:
        load_compiled(str(path))
    message = str(e.value)
    assert "division by zero" in message, message
    assert f"(from `param width = {written.replace(' ', '')}` at line 3)" in message, message
