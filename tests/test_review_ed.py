"""Review ED: mistakes in a .space file found by mutating the shipped spaces (a line deleted or doubled, a
character pasted in, a name repeated). Each ends in one message at the file's line and column that says how to
fix it, exit 2, no traceback."""

from __future__ import annotations

import pytest

from automl.cli import main

HEADER = "space t\ninput 1 x 8 x 8\nclasses 10\n"
CHOICES = "choices b = ir_k3_e1, ir_k3_e3\n"
NETWORK = "network\n  stem width 16\n  stage s1 width 24 repeat 2 choose b\nend\n"
CHAIN = HEADER + CHOICES + NETWORK
CELLS = (HEADER + "choices op = none, identity, conv_k3\n"
         "cell a\n  node n1 sums 2 distinct of earlier through op\nend\n"
         "network\n  stem width 4\n  cells a x 1 width 4\nend\n")


def check_fails(tmp_path, capsys, text: str) -> str:
    """``automl space check`` of ``text``: exit 2, one located message (FILE:LINE:COL:), no traceback."""
    path = tmp_path / "t.space"
    path.write_text(text, encoding="utf-8", newline="")
    assert main(["space", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.startswith(f"{path}:"), err
    return err.replace(str(path), "t.space").split("\n")[0]


# ---- a character outside the language: every one says what to do -------------------------------------------------

@pytest.mark.parametrize("char, fix", [
    ("\u0301", "names are written with the letters a-z"),  # a combining accent, as `é` typed as e + U+0301
    ("\u2212", "write the plain `-`"),  # a minus sign pasted from a word processor
    ("\u2013", "write the plain `-`"),  # an en dash
    ("\u00bd", "write numbers with the digits 0-9"),
    ("\x07", "a control character: delete it"),
    ("$", "written by its name alone"),
    ("|", "separate choices with `,`"),
    ("\\", "remove the `\\`"),
    ("^", "no power operator"),
    ("!", "delete it"),
    ("@", "delete it"),
    ("\u20ac", "delete it"),
    ("\U0001F600", "delete it"),
])
def test_an_unexpected_character_comes_with_a_fix(tmp_path, capsys, char, fix):
    text = CHAIN.replace("ir_k3_e1,", f"ir_k3_e1{char},")
    err = check_fails(tmp_path, capsys, text)
    assert err.startswith("t.space:4:21: unexpected character "), err
    assert fix in err, err


def test_a_combining_accent_is_named_by_its_code_point(tmp_path, capsys):
    """A lone combining accent prints as nothing (or on the quote before it): the message names U+0301."""
    err = check_fails(tmp_path, capsys, CHAIN.replace("ir_k3_e1,", "ir_k3_e1\u0301,"))
    assert "unexpected character U+0301 " in err, err


# ---- a name given twice: the message says to rename or remove one ------------------------------------------------

@pytest.mark.parametrize("text, where, fix", [
    (HEADER + "param a = 1\nparam a = 2\n" + CHOICES + NETWORK, "5:7", "rename or remove one of them"),
    (HEADER + "classes 3\n" + CHOICES + NETWORK, "4:1", "remove one of them"),
    (HEADER + CHOICES + "choices b = ir_k3_e6\n" + NETWORK, "5:9", "rename or remove one of them"),
    (HEADER + CHOICES + NETWORK.replace("  stem width 16\n", "  stem width 16\n  stem width 16\n"), "7:3",
     "remove one of them"),
    (CELLS.replace("  cells a x 1 width 4\n", "  cells a x 1 width 4\n  cells a x 1 width 4\n"), "11:3",
     "write the whole layout in one"),
    (HEADER + CHOICES + NETWORK.replace("end\n", "  stage s1 width 24 choose b\nend\n"), "8:9",
     "rename one of them"),
    (HEADER + CHOICES + NETWORK.replace("repeat 2", "repeat 2 repeat 2"), "7:30", "give it once"),
    (HEADER + "choices b = ir_k3_e1, b\n" + NETWORK, "4:23", "remove 'b' from this list"),
    (HEADER + "choices b = ir_k3_e1, c\nchoices c = b\n" + NETWORK, "5:13", "(through b -> c -> b)"),
    (CELLS.replace("cell a\n  node n1 sums 2 distinct of earlier through op\nend\n",
                   "cell a\n  node n1 sums 2 distinct of earlier through op\nend\n" * 2), "8:6",
     "rename or remove one of them"),
    (CELLS.replace("cell a\n", "cell a inputs c0, c0\n"), "5:19", "give the two inputs two names"),
    (CELLS.replace("  node n1 sums", "  node c1 sums"), "6:8", "rename it"),
    (CELLS.replace("sums 2 distinct", "sums 3 distinct"), "6:16", "sum fewer or list more"),
    (CHAIN + "metric m\n  default = 1\n  default = 2\nend\n", "11:3", "remove one of them"),
    (CHAIN + "metric m\n  fixed = 1\n  fixed = 2\n  default = 1\nend\n", "11:3", "remove one of them"),
    (CHAIN + "metric m\n  default = 1\nend\nmetric m\n  default = 2\nend\n", "12:8", "merge the two blocks"),
], ids=["param", "classes", "choices", "stem", "cells", "stage", "option", "set-itself", "set-cycle", "cell",
        "cell-inputs", "node", "distinct", "metric-default", "metric-fixed", "metric"])
def test_a_name_given_twice_says_how_to_fix_it(tmp_path, capsys, text, where, fix):
    err = check_fails(tmp_path, capsys, text)
    assert err.startswith(f"t.space:{where}: "), err
    assert fix in err, err
