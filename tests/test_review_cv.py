"""Review CV: op names built from their name (automl/nn/ops.py), the check of an architecture (automl/plan.py) and
`automl space` (automl/commands/space.py): each user mistake says what is wrong and what is allowed."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from automl.cli import main
from automl.compile import create_op, is_op, load_compiled
from automl.errors import UserError
from automl.plan import check_arch

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")


def _op_error(name: str) -> str:
    with pytest.raises(ValueError) as info:
        is_op(name)
    return str(info.value)


# ---- op names (automl/nn/ops.py) ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, shown", [("ir_k3_e1e3", "'1e3'"), ("ir_k3_e6.5e", "'6.5e'"),
                                         ("ir_k3_e1e3_se0.25", "'1e3'")])
def test_an_expansion_that_is_no_number_is_named_not_called_missing(name, shown):
    msg = _op_error(name)
    assert f"expansion {shown} is not a number" in msg and "e.g. ir_k3_e6" in msg
    assert "need an expansion" not in msg


def test_an_ir_block_without_expansion_still_says_it_needs_one():
    assert "ir blocks need an expansion" in _op_error("ir_k3")
    assert "ir blocks need an expansion" in _op_error("ir_k3_se0.25")


@pytest.mark.parametrize("name", ["ds_k3_e6", "cn_k3_e2"])
def test_a_ds_or_cn_block_with_an_expansion_says_that_kind_takes_none(name):
    kind = name[:2]
    msg = _op_error(name)
    assert f"{kind} blocks take no expansion" in msg and "ir blocks need" not in msg


def test_a_group_suffix_after_se_says_it_comes_right_after_the_expansion():
    msg = _op_error("ir_k3_e6_se0.25_g2")
    assert "comes right after the expansion, before `_se`" in msg and "ir_k3_e6_g2_se0.25" in msg
    assert "unknown suffix" not in msg
    assert is_op("ir_k3_e6_g2_se0.25")  # the order the message asks for is an op


@pytest.mark.parametrize("name, said", [("ir_k3_e6_se0.25_se0.5", "squeeze-excitation (`_seR`) is given twice"),
                                        ("ir_k3_e6_nre_nhs", "two activations"),
                                        ("ir_k3_e6_g2_g4", "group count is given twice")])
def test_a_suffix_given_twice_says_twice_not_unknown(name, said):
    msg = _op_error(name)
    assert said in msg and "unknown suffix" not in msg


def test_a_group_count_other_than_2_4_8_on_an_ir_block_names_the_counts_not_the_kind():
    msg = _op_error("ir_k3_e6_g3")
    assert "the group count G of ir_kK_eE_gG is 2, 4 or 8" in msg and "are for ir blocks" not in msg
    assert "are for ir blocks" in _op_error("ds_k3_g2")


@pytest.mark.parametrize("name", ["ir_r1_k3_s2_e6_c24", "ir_k3_e6_s2", "ir_k3_e6_c24", "ds_k3_r2"])
def test_timm_block_string_parts_say_the_stage_gives_them(name):
    msg = _op_error(name)
    assert "the stage gives a block's repeat, stride and width" in msg and "ir_r1_k3_s2_e6_c24 is ir_k3_e6" in msg


def test_an_unknown_activation_suffix_lists_the_activations():
    msg = _op_error("ir_k3_e6_ngelu")
    assert "unknown activation `_ngelu`" in msg and "`_nre` (ReLU)" in msg


def test_an_op_name_in_capitals_says_names_are_lower_case():
    assert "op names are lower case (ir_k3_e6_nre)" in _op_error("ir_k3_e6_Nre")


def test_a_bad_op_name_in_a_space_file_is_one_located_message_exit_2(tmp_path, capsys):
    text = Path(DIGITS).read_text(encoding="utf-8").replace("choices block = ir_k3_e1,",
                                                            "choices block = ir_k3_e6_se0.25_g2,")
    path = tmp_path / "g.space"
    path.write_text(text, encoding="utf-8")
    assert main(["space", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:15:17: op 'ir_k3_e6_se0.25_g2': `_g2`: the group suffix comes right after")
    assert "Traceback" not in err


@pytest.mark.parametrize("kw, said", [({"block_act": "gelu"}, "activation 'gelu': a block's activation is one of"),
                                      ({"se": 1.5}, "se 1.5: the squeeze-excitation ratio is a number in [0, 1)"),
                                      ({"se": "0.25"}, "se '0.25'"),
                                      ({"family": "resnet"}, "family 'resnet': a chain network's family is one of")])
def test_create_op_refuses_a_stage_option_it_cannot_build_with_a_value_error(kw, said):
    with pytest.raises(ValueError) as info:
        create_op("ir_k3_e6", 16, 24, 2, **kw)
    assert said in str(info.value)


def test_create_op_builds_with_the_stage_options_it_takes():
    block = create_op("ir_k3_e6", 16, 24, 2, se=0.25, block_act="hard_swish", family="mobilenetv3")
    assert type(block.se).__name__ == "SqueezeExcite" and type(block.bn1.act).__name__ == "Hardswish"


# ---- architectures (automl/plan.py) ---------------------------------------------------------------------------

NC, NAMES = [3, 2, 4], ["a", "b", "c"]


@pytest.mark.parametrize("arch, said", [([0, True, 2], "decision b: choice index True (bool) is not an integer"),
                                        ([False, 1, 2], "decision a: choice index False (bool) is not an integer"),
                                        (torch.tensor([True, False, True]), "got shape (3,) torch.bool"),
                                        ([0, 1.0, 2], "decision b: choice index 1.0 (float) is not an integer"),
                                        ([0, 1, np.float64(2.0)], "np.float64(2.0) (float64) is not an integer"),
                                        (["0", 1, 2], "decision a: choice index '0' (str) is not an integer")])
def test_check_arch_refuses_bools_floats_and_strings_as_not_integers(arch, said):
    with pytest.raises(UserError) as info:
        check_arch(arch, NC, NAMES, "sp")
    assert said in str(info.value)


@pytest.mark.parametrize("arch, said", [(5, "got 5 (int)"), (None, "got None (NoneType)"),
                                        (np.array(5), "got array(5) (ndarray)"),
                                        ("012", "got '012' (str); choice names go through encode()"),
                                        ({"a": 0}, "(dict); choice names go through encode()")])
def test_check_arch_refuses_what_is_no_sequence_with_a_user_error(arch, said):
    with pytest.raises(UserError) as info:
        check_arch(arch, NC, NAMES, "sp")
    assert "an architecture of space sp is 3 choice indices" in str(info.value) and said in str(info.value)


def test_check_arch_takes_ints_numpy_ints_and_integer_tensors():
    assert check_arch([np.int64(2), torch.tensor(1), 3], NC, NAMES) == [2, 1, 3]
    assert check_arch(torch.tensor([0, 1, 3], dtype=torch.uint8), NC) == [0, 1, 3]
    with pytest.raises(UserError, match=r"decision c: choice index 4 is not in 0\.\.3"):
        check_arch([0, 1, 4], NC, NAMES)


def test_encode_refuses_a_string_or_a_number_for_the_list_of_choice_names():
    cs = load_compiled(DIGITS)
    for bad in ("ir_k3_e1", None, 3):
        with pytest.raises(UserError, match="are a list of 9 choice names"):
            cs.encode(bad)
    assert cs.encode(["ir_k3_e1"] * 9).tolist() == [0] * 9


# ---- automl space (automl/commands/space.py) ------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_space_show_fits_a_narrow_terminal(monkeypatch, capsys):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: the output is a terminal
    monkeypatch.setenv("COLUMNS", "50")
    assert main(["space", "show", DIGITS]) == 0
    lines = ANSI.sub("", capsys.readouterr().out).splitlines()
    assert any("ir_k5_e6" in line for line in lines)
    assert max(len(line) for line in lines) <= 50, "\n".join(line for line in lines if len(line) > 50)


def test_space_show_into_a_pipe_keeps_its_rows_whole(monkeypatch, capsys):
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    monkeypatch.setenv("COLUMNS", "50")
    assert main(["space", "show", DIGITS]) == 0
    out = capsys.readouterr().out
    assert "│ 1 │ s1_2     │ 4 │ ir_k3_e1 1,512, ir_k3_e3 4,440, ir_k5_e6 11.1K, skip 0 │" in out


def test_space_profile_names_an_empty_metric(tmp_path, capsys):
    assert main(["space", "profile", DIGITS, "--metric", "", "--out", str(tmp_path / "t.json")]) == 2
    assert "--metric '': pick a new metric name" in capsys.readouterr().err


def test_a_supernets_forward_refuses_a_bool_architecture_as_check_arch_does():
    # was: forward's fast path took tensor([True, False, ...]) as 1/0 where check_arch refuses it
    from automl.compile import load_compiled
    cs = load_compiled("spaces/digits.space")
    net = cs.build_supernet().eval()
    arch = torch.zeros(cs.num_decisions, dtype=torch.bool)
    with pytest.raises(UserError, match="integer tensor"):
        net(torch.zeros(1, *cs.input_shape), arch)
    net(torch.zeros(1, *cs.input_shape), arch.long())  # the same indices as integers run
