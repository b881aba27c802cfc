"""Review GJ: `.space` mistakes found by fuzzing the shipped spaces that did not end in one prompt message.

- a syntax error after a very long name (pasted text, a name typed with `-`) took time quadratic in the name's
  length to word its hint (a regex ``[...]*$`` searched over everything before the error): a 150 KB file spent
  75 s there;
- a decision offering thousands of ops, and elastic widths or resolutions of thousands of combinations, each
  with many choices, compiled for minutes (every op built and counted at every shape) or gigabytes (one cost
  table per combination): refused with a limit message at the construct.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from automl.compile import load_compiled
from automl.errors import SpaceError

ROOT = Path(__file__).resolve().parents[1]
MAX_OPS = 256  # automl.compile.resolve.MAX_OPS: ops offered in one place
MAX_COSTS = 1 << 20  # automl.compile.compiler.MAX_COSTS: costs measured when a space compiles
MAX_TABLE_ENTRIES = 1 << 24  # automl.compile.compiler.MAX_TABLE_ENTRIES: with elastic widths or resolutions

LONG_NAME = """
import sys
from automl.dsl import parse_space
from automl.errors import SpaceError
text = "space s\\nparam " + "a" * 1_000_000 + " = 1\\n" + sys.argv[1] + "\\n"
try:
    parse_space(text, "long.space")
except SpaceError as e:
    print(e.line, e.column, e.message[:80])
"""


def _cpu_limit():
    resource.setrlimit(resource.RLIMIT_CPU, (60, 60))


@pytest.mark.parametrize("line, column, says", [
    ("param b-c = 1", 8, "unexpected '-'"),  # the hint for a name written with `-`
    ("classes 10px", 9, "`10px`: a number takes no unit"),  # the hint for a number written with a unit
])
def test_a_syntax_error_after_a_name_of_a_million_characters_is_worded_in_linear_time(line, column, says):
    """A name of 10^6 letters on line 2, a syntax error on line 3: the hint searched a regex ending in ``*$``
    over the text before the error, which retried it at every position of the name (10^12 steps); the child
    process, limited to 60 s of CPU (a linear pass takes well under a second), was killed before it printed."""
    r = subprocess.run([sys.executable, "-c", LONG_NAME, line], cwd=ROOT, capture_output=True, text=True,
                       preexec_fn=_cpu_limit)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith(f"3 {column} {says}"), r.stdout


def _ops(n: int) -> str:
    """``n`` distinct block ops (expansions 1.001, 1.002, ...)."""
    return ", ".join(f"ir_k3_e{1 + (i + 1) / 1000:g}" for i in range(n))


def test_a_choice_set_of_more_than_max_ops_is_refused_at_the_op_beyond(tmp_path):
    """257 ops in one set: compiled (2,000 took two minutes: each op built at every shape), now an error at op
    257 that names the limit."""
    path = tmp_path / "many.space"
    path.write_text(f"space m\ninput 3 x 8 x 8\nclasses 10\nchoices big = {_ops(MAX_OPS + 1)}\nnetwork\n"
                    "  stem width 16\n  stage s1 width 16 choose big\nend\n")
    with pytest.raises(SpaceError) as e:
        load_compiled(path)
    text = path.read_text()
    op = _ops(MAX_OPS + 1).split(", ")[-1]
    assert (e.value.filename, e.value.line, e.value.column) == (str(path), 4, text.split("\n")[3].index(op) + 1)
    assert f"choice set big offers more than {MAX_OPS} ops ({op!r} is op {MAX_OPS + 1})" in e.value.message


def test_max_ops_in_a_set_are_accepted(tmp_path):
    path = tmp_path / "ok.space"
    path.write_text(f"space m\ninput 3 x 8 x 8\nclasses 10\nchoices big = {_ops(MAX_OPS)}\nnetwork\n"
                    "  stem width 16\n  stage s1 width 16 choose [ir_k3_e3, ir_k5_e3]\nend\n")
    assert load_compiled(path).num_decisions == 1


def test_an_inline_list_of_more_than_max_ops_names_its_stage(tmp_path):
    path = tmp_path / "inline.space"
    path.write_text(f"input 3 x 8 x 8\nclasses 10\nnetwork\n  stem width 16\n  stage s1 width 16 choose "
                    f"[{_ops(MAX_OPS + 1)}]\nend\n")
    with pytest.raises(SpaceError) as e:
        load_compiled(path)
    assert e.value.line == 5 and f"stage s1 offers more than {MAX_OPS} ops" in e.value.message, e.value


def test_resolutions_of_too_many_table_entries_are_refused_at_the_resolution_statement(tmp_path):
    """4,096 resolutions (the most combinations): 4,096 tables of 2 decisions x 4,096 choices (the resolution
    decision's own), 33,554,432 entries held as Python numbers: gigabytes, now an error at `resolution`."""
    path = tmp_path / "res.space"
    path.write_text("input 3 x 4096 x 4096\nclasses 10\nresolution " + ", ".join(str(v) for v in range(1, 4097))
                    + "\nnetwork\n  stem width 16\n  stage s1 width 16 choose [ir_k3_e3, ir_k5_e6]\nend\n")
    with pytest.raises(SpaceError) as e:
        load_compiled(path)
    assert (e.value.line, e.value.column) == (3, 1), e.value
    assert f"make {4096 * 2 * 4096:,} cost table entries, more than {MAX_TABLE_ENTRIES:,}" in e.value.message, e.value


def test_ofa_with_its_25_resolutions_and_an_elastic_final_conv_compiles(tmp_path):
    """OFA's own settings (resolutions 128 to 224 by 4, the final conv's width elastic too): 1,600 tables of 800
    entries, compiled in seconds; a cap on their product (1,280,000) refused it."""
    text = (ROOT / "spaces" / "ofa_mbv3.space").read_text(encoding="utf-8")
    text = text.replace("resolution size // 7 * 4, size // 7 * 5, size // 7 * 6, size",
                        "resolution " + ", ".join(str(v) for v in range(128, 225, 4)))
    text = text.replace("stage final width 960 * width fixed",
                        "stage final width 960 * width, 960 * wide * width fixed")
    path = tmp_path / "ofa25.space"
    path.write_text(text, encoding="utf-8")
    cs = load_compiled(path)
    assert len(cs.decisions[-1].choices) == 25 and cs.decisions[-1].name == "resolution"


def test_a_network_of_too_many_choices_is_refused_at_network(tmp_path):
    """Without elastic widths: 17 stages of 256 layers offering 256 ops each are 1,114,112 op costs to measure
    (each op built at each stage's two shapes): minutes of `space check`, now an error at `network`."""
    stages = "".join(f"  stage s{i} width 16 repeat 256 choose big\n" for i in range(17))
    path = tmp_path / "deep.space"
    path.write_text(f"input 3 x 8 x 8\nclasses 10\nchoices big = {_ops(MAX_OPS)}\nnetwork\n  stem width 16\n"
                    f"{stages}end\n")
    with pytest.raises(SpaceError) as e:
        load_compiled(path)
    assert (e.value.line, e.value.column) == (4, 1), e.value
    assert f"the network has {17 * 256 * MAX_OPS:,} choices in all (over every layer)" in e.value.message, e.value
