"""Review BQ: compiling a space. Names the compiler generates (a stage's layers NAME_1, NAME_2, ..., its
NAME_width and NAME_depth decisions, a cell node's decisions) are unique or a located error that says which
construct made the name first; the supernet's parameters are counted without memory and a supernet whose
float32 parameters exceed the memory available is refused before anything is allocated."""

from __future__ import annotations

import copy
import functools
import glob
from pathlib import Path

import pytest
import torch

import automl.compile.compiler as compiler
from automl.cli import main
from automl.compile import compile_space, load_compiled
from automl.dsl import parse_space
from automl.errors import SpaceError
from automl.nn import build_supernet
from automl.nn.measure import count_params

HEAD = ("space t\ninput 3 x 32 x 32\nclasses 10\nchoices mb = ir_k3_e3, ir_k5_e6\nnetwork\n  stem width 16\n")
SPACES = sorted(glob.glob("spaces/*.space"))
_shipped = functools.lru_cache(load_compiled)  # ofa_mbv3.space compiles in seconds: once for every test


def compile_text(text: str, filename: str = "t.space"):
    return compile_space(parse_space(text, filename))


def space_error(text: str) -> SpaceError:
    with pytest.raises(SpaceError) as info:
        compile_text(text)
    return info.value


# ---- generated names ------------------------------------------------------------------------------

def test_layer_named_like_a_fixed_stage_layer_is_an_error_at_the_layer():
    # `stage s1 repeat 2 fixed ...` makes layers s1_1, s1_2 (no decision): a `layer s1_1` made a second layer
    # of that name, which messages, profiles (fixed_parts) and membership name the layers by
    e = space_error(HEAD + "  stage s1 width 24 stride 2 repeat 2 fixed ir_k3_e3\n"
                    "  layer s1_1 width 24 choose [ir_k3_e3, skip]\n  head width 64\nend\n")
    assert (e.line, e.column) == (8, 9)
    assert "duplicate name 's1_1' (first at line 7: fixed layer 1 of stage s1)" in e.message
    assert "rename layer s1_1" in e.message and "NAME_1, NAME_2" in e.message


def test_two_fixed_layers_of_one_name_are_an_error():
    e = space_error(HEAD + "  stage s1 width 24 stride 2 repeat 2 fixed ir_k3_e3\n"
                    "  layer s1_2 width 24 fixed ir_k5_e6\n  stage s2 width 32 stride 2 choose mb\nend\n")
    assert (e.line, e.column) == (8, 9)
    assert "duplicate name 's1_2' (first at line 7: fixed layer 2 of stage s1): fixed layer s1_2" in e.message


def test_fixed_layer_named_like_a_width_decision_is_an_error():
    e = space_error(HEAD + "  stage s1 width 24, 32 stride 2 repeat 2 choose mb\n"
                    "  layer s1_width width 32 fixed ir_k5_e6\nend\n")
    assert (e.line, e.column) == (8, 9)
    assert "duplicate name 's1_width' (first at line 7: the width decision of stage s1)" in e.message


def test_stage_whose_layer_has_a_layers_name_says_which_constructs():
    e = space_error(HEAD + "  layer s1_1 width 24 choose mb\n  stage s1 width 24 stride 2 repeat 2 choose mb\nend\n")
    assert (e.line, e.column) == (8, 9)
    assert ("duplicate decision name 's1_1' (first at line 7: layer s1_1): layer 1 of stage s1 has it too; "
            "rename stage s1") in e.message


def test_depth_decision_name_taken_by_a_layer():
    e = space_error(HEAD + "  stage s1 width 24 stride 2 depth 1, 2 choose mb\n  layer s1_depth width 24 choose mb\nend\n")
    assert (e.line, e.column) == (8, 9)
    assert "duplicate decision name 's1_depth' (first at line 7: the depth decision of stage s1)" in e.message


def test_cell_decision_generated_twice_names_the_other_node():
    text = ("space c\ninput 3 x 32 x 32\nclasses 10\nchoices ops = identity, conv_k3, sep_k3\n"
            "cell a\n  node b_c sums 2 of earlier through ops\nend\n"
            "cell a_b\n  node c sums 2 of earlier through ops\nend\n"
            "network\n  stem width 16\n  cells a x 2, a_b x 2 width 16\nend\n")
    e = space_error(text)
    assert (e.line, e.column) == (9, 8)
    assert "'a_b_c_input1' is generated twice: node b_c of cell a (line 6) makes it too" in e.message
    assert "rename this node or cell a_b" in e.message


def test_layer_error_exits_2_with_the_location(tmp_path, capsys):
    path = tmp_path / "dup.space"
    path.write_text(HEAD + "  stage s1 width 24 stride 2 repeat 2 fixed ir_k3_e3\n"
                    "  layer s1_1 width 24 choose [ir_k3_e3, skip]\nend\n")
    assert main(["space", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:8:9: duplicate name 's1_1'" in err and "Traceback" not in err


@pytest.mark.parametrize("path", SPACES)
def test_shipped_spaces_keep_their_names(path):
    """The published spaces compile as before: every layer name is unique and a searched layer's decision
    carries the layer's name (what results.json and manifests write)."""
    cs = _shipped(path)
    names = [d.name for d in cs.decisions]
    assert len(set(names)) == len(names)
    if cs.kind == "chain":
        layers = [layer.name for layer in cs.plan.layers]
        assert len(set(layers)) == len(layers)
        assert all(names[layer.decision] == layer.name for layer in cs.plan.layers if layer.decision is not None)


# ---- the supernet's size ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", SPACES)
def test_supernet_params_counts_the_built_supernet(path):
    cs = _shipped(path)
    with torch.device("meta"):
        net = build_supernet(cs)
    assert cs.supernet_params() == count_params(net)


def test_supernet_params_of_cells_with_fixed_blocks_and_one_input():
    text = ("space c\ninput 3 x 16 x 16\nclasses 10\nchoices ops = identity, conv_k1, conv_k3, avgpool_k3, none\n"
            "cell a inputs x\n  node n1 sums edges from x through ops\n  node n2 sums edges from x, n1 through ops\n"
            "  output n2\nend\ncell b\n  node n1 sums 2 distinct of earlier through ops\n"
            "  node n2 sums 1 of earlier through ops\n  output concat n1, n2\nend\n"
            "network\n  stem width 8 stride 2\n  cells a x 2, b, resnet_block, b, a width 8\n  head bn\nend\n")
    cs = compile_text(text)
    with torch.device("meta"):
        assert cs.supernet_params() == count_params(build_supernet(cs))


def _spy(monkeypatch):
    """The devices automl.nn.build_supernet is called with from CompiledSpace."""
    calls = []
    real = compiler.models.build_supernet

    def spy(cs, device=None):
        calls.append(str(device) if device is not None else str(torch.get_default_device()))
        return real(cs, device)
    monkeypatch.setattr(compiler.models, "build_supernet", spy)
    return calls


def test_supernet_larger_than_the_available_memory_is_refused_before_it_is_built(monkeypatch):
    cs = load_compiled("spaces/digits.space")  # 274,618 parameters: 1.05 MiB as float32
    monkeypatch.setattr(compiler, "_available_memory", lambda: 512 << 10, raising=False)
    calls = _spy(monkeypatch)
    with pytest.raises(SpaceError) as info:
        cs.build_supernet()
    msg = str(info.value)
    assert msg.startswith("spaces/digits.space: the supernet of space digits would hold 274,618 parameters, "
                          "0.001 GiB as float32, more than the 0.00049 GiB of memory available")
    assert "make the space smaller" in msg and "such as classes, size, width, head change with --set" in msg
    assert "cpu" not in calls  # counted on the meta device only: nothing was allocated


def test_supernet_within_the_available_memory_is_built(monkeypatch):
    cs = load_compiled("spaces/digits.space")
    monkeypatch.setattr(compiler, "_available_memory", lambda: 4 * 274_618, raising=False)
    assert count_params(cs.build_supernet()) == 274_618
    with pytest.raises(SpaceError, match="2 supernets of space digits would hold 549,236 parameters"):
        cs.check_supernet_fits(members=2)


def test_supernet_on_the_meta_device_is_not_checked(monkeypatch):
    # reuse.py builds supernets under `with torch.device("meta")` to read their shapes: nothing to allocate
    cs = load_compiled("spaces/digits.space")
    monkeypatch.setattr(compiler, "_available_memory", lambda: 1, raising=False)
    with torch.device("meta"):
        assert count_params(cs.build_supernet()) == 274_618


def test_no_memory_figure_no_check(monkeypatch):
    cs = load_compiled("spaces/digits.space")
    monkeypatch.setattr(compiler, "_available_memory", lambda: None, raising=False)
    assert count_params(cs.build_supernet()) == 274_618


def test_available_memory_reads_meminfo(tmp_path, monkeypatch):
    # this machine's /proc/meminfo, read once into a file system of the test's own: MemAvailable changes from one
    # read to the next under load (CI saw the figure grow between the two reads), and no cgroup limit is there
    from automl.train import threads
    text = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").is_file() else ""
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text(text)
    monkeypatch.setattr(threads, "FS_ROOT", str(tmp_path))
    available = compiler._available_memory()
    line = next((x for x in text.splitlines() if x.startswith("MemAvailable:")), None)
    if line is None:
        assert available is None
    else:
        assert available == int(line.split()[1]) * 1024


def test_the_check_leaves_the_random_state_and_the_weights_as_they_were():
    cs = load_compiled("spaces/digits.space")
    torch.manual_seed(3)
    checked = cs.build_supernet().state_dict()  # counts its parameters first (on the meta device)
    after = torch.rand(4)
    torch.manual_seed(3)
    plain = build_supernet(cs).state_dict()
    assert torch.equal(after, torch.rand(4))
    assert all(torch.equal(checked[k], plain[k]) for k in plain)


# ---- cell sources named like ops ------------------------------------------------------------------

CELL_METRIC = ("space c\ninput 3 x 16 x 16\nclasses 10\nchoices ops = identity, conv_k3, sep_k3\n{cell}\n"
               "  node {node} sums 1 of earlier through ops\n  node n2 sums 1 of earlier through ops\nend\n"
               "network\n  stem width 8\n  cells a x 2 width 8\nend\nmetric lat\n  default = 1\n  identity = 0\nend\n")


def test_node_named_like_an_op_is_an_error_at_the_node():
    # the metric entry `identity = 0` priced both the op identity and n2's input choice `identity` (the node)
    e = space_error(CELL_METRIC.format(cell="cell a", node="identity"))
    assert (e.line, e.column) == (6, 8)
    assert "a node of cell a is named 'identity', the name of an op" in e.message
    assert "pick another name" in e.message


def test_input_named_like_an_op_is_an_error_at_the_input():
    e = space_error(CELL_METRIC.format(cell="cell a inputs x, conv_k1", node="n1"))
    assert (e.line, e.column) == (5, 18)
    assert "an input of cell a is named 'conv_k1', the name of an op" in e.message


def test_node_names_that_are_no_op_keep_their_input_choices():
    cs = compile_text(CELL_METRIC.format(cell="cell a", node="n1"))
    assert cs.decisions[2].name == "a_n2_input1" and cs.decisions[2].choices == ("c0", "c1", "n1")
    assert cs.cost_table.costs("lat")[2].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("path", [p for p in SPACES if Path(p).stem not in ("darts", "enas_micro", "nasbench201")])
def test_a_chain_supernets_table_count_is_at_least_its_parameters_and_spares_the_meta_build(path, monkeypatch):
    cs = _shipped(path)
    assert cs.kind == "chain" and compiler._table_params(cs) >= cs.supernet_params()
    fresh = copy.copy(cs)
    fresh.__dict__.pop("_supernet_params")
    monkeypatch.setattr(compiler, "_available_memory", lambda: 1 << 50, raising=False)
    monkeypatch.setattr(compiler, "_count_supernet", lambda cs: pytest.fail("counted by a meta build"))
    fresh.check_supernet_fits(members=4)


def test_an_ensemble_that_does_not_fit_is_refused_before_its_first_supernet_is_built(monkeypatch):
    from automl.pipeline.search_stages import build_supernet as build_members
    cs = load_compiled("spaces/digits.space")
    monkeypatch.setattr(compiler, "_available_memory", lambda: 4 * 274_618 * 3, raising=False)  # three fit
    calls = _spy(monkeypatch)
    with pytest.raises(SpaceError, match="4 supernets of space digits would hold 1,098,472 parameters"):
        build_members(cs, torch.device("cpu"), 0, 0, members=4)
    assert "cpu" not in calls  # counted on the meta device only
