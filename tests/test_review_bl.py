"""Review BL: the compiler at the edges of valid-looking spaces.

* A chain layer whose only choice is ``skip`` (``choose skip``, ``then skip``, a set holding only ``skip``) is never
  there and its decision changes nothing; it passed ``automl space check`` and ``automl space profile`` then
  crashed (StopIteration). It is now an error at the choices, as a cell node that offers only ``none``.
* A ``metric`` block whose costs are each finite but whose largest total is not (``default = 1e308`` over a few
  decisions) passed ``check``; ``space show`` printed ``inf`` and ``space cost`` printed ``Infinity``, which is not
  JSON. It is now an error at the metric.
"""

from __future__ import annotations

import json

import pytest

from automl.cli import main as cli_main
from automl.compile import compile_space
from automl.dsl import parse_space
from automl.errors import SpaceError

HEAD = "space t\ninput 3 x 8 x 8\nclasses 5\nchoices only_skip = skip\nnetwork\n stem width 16\n"


def _space(stages: str, tail: str = "") -> str:
    return HEAD + stages + "\nend\n" + tail


def _error(src: str) -> SpaceError:
    with pytest.raises(SpaceError) as info:
        compile_space(parse_space(src, "t.space"))
    return info.value


@pytest.mark.parametrize("stage, at, who, fix", [
    (" stage s1 width 16 choose skip", "skip", "layer s1_1 of stage s1", "remove stage s1"),
    (" layer l1 width 16 choose [skip]", "[skip]", "layer l1 offers", "remove layer l1"),
    (" stage s1 width 16 repeat 2 choose only_skip", "only_skip", "layer s1_1 of stage s1", "remove stage s1"),
    (" stage s1 width 24 stride 2 repeat 3 choose [ir_k3_e3, ds_k3] then skip", "skip", "layer s1_2 of stage s1",
     "leave the layers after the first out"),
    (" stage s1 width 24 depth 1, 2 choose [ir_k3_e3, ds_k3] then only_skip", "only_skip",
     "layer s1_2 of stage s1", "leave the layers after the first out"),
    (" stage s1 width 16 repeat 3 choose skip then [ir_k3_e3, skip]", "skip", "layer s1_1 of stage s1",
     "leave the first layer out"),
])
def test_layer_that_offers_only_skip_is_an_error(stage, at, who, fix):
    """The error is at the choices that offer only ``skip`` (line 8: the stage's line), and says how to fix it."""
    e = _error(_space(" stage s0 width 16 choose [ir_k3_e3, ds_k3]\n" + stage))
    assert (e.line, e.column) == (8, stage.index(at) + 1), str(e)
    msg = str(e)
    assert who in msg and "offers only 'skip'" in msg and fix in msg, msg


def test_skip_among_other_choices_still_compiles():
    """The check is about a layer with nothing but ``skip``: ``skip`` among ops is the usual optional layer."""
    src = _space(" stage s0 width 24 stride 2 repeat 3 choose [ir_k3_e3, ds_k3] then [ir_k3_e3, skip]")
    cs = compile_space(parse_space(src, "t.space"))
    assert cs.decisions[1].choices == ("ir_k3_e3", "skip")


def test_only_skip_layer_is_refused_by_space_check(tmp_path, capsys):
    """The CLI: exit 2 with the file and line (``space profile`` of this space used to crash on StopIteration)."""
    path = tmp_path / "s.space"
    path.write_text(_space(" stage s0 width 16 choose [ir_k3_e3, ds_k3]\n stage s1 width 16 choose skip"))
    assert cli_main(["space", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:8:27:" in err and "offers only 'skip'" in err and "Traceback" not in err


METRIC = " stage s0 width 16 repeat 3 choose [ir_k3_e3, ds_k3]"


@pytest.mark.parametrize("body", ["default = 1e308\n fixed = 1e308", "default = 1e308\n fixed = 0",
                                  "default = 1\n ir_k3_e3 = 8e307"])
def test_metric_whose_largest_total_overflows_is_an_error(body):
    e = _error(_space(METRIC, f"metric m\n {body}\nend\n"))
    assert (e.line, e.column) == (9, 8), str(e)
    assert "metric m" in str(e) and "larger unit" in str(e)


def test_metric_with_a_large_but_finite_total_compiles(tmp_path, capsys):
    """The largest total 3 x 5e307 + 1 is finite: the space compiles and ``space cost`` prints JSON."""
    path = tmp_path / "s.space"
    path.write_text(_space(METRIC, "metric m\n default = 5e307\n fixed = 1\nend\n"))
    cs = compile_space(parse_space(path.read_text(), str(path)))
    assert cs.cost_table.max_total("m") == pytest.approx(1.5e308)
    arch = tmp_path / "a.json"
    arch.write_text(json.dumps({"choices": ["ir_k3_e3"] * 3}))
    assert cli_main(["space", "cost", str(path), "--arch", str(arch)]) == 0
    out = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert out["m"] == pytest.approx(1.5e308)


@pytest.mark.parametrize("stage, fix", [
    (" stage s1 width 24 stride 2 repeat 2 choose [ir_k3_e3, skip, ds_k3]",
     "`choose [ir_k3_e3, ds_k3] then [ir_k3_e3, skip, ds_k3]`"),
    (" stage s1 width 24 repeat 2 choose skip", "`choose [OP, ...] then [OP, ..., skip]`"),
    (" stage s1 width 24 repeat 2 choose mbs", "`choose SET then mbs`"),
])
def test_skip_on_a_first_layer_that_changes_shape_suggests_the_ops_written(stage, fix):
    """Choices written in place (not through a set) are suggested back as the first layer's own choices, where the
    message said `choose SET then SET` though the space has no set."""
    src = HEAD.replace("only_skip = skip", "mbs = ir_k3_e3, skip") + stage + "\nend\n"
    e = _error(src)
    assert "so it cannot be 'skip'" in str(e) and fix in str(e), str(e)
