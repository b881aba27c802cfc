"""A first-time user's `.space` mistakes, checked with `automl space check FILE`: each either works as
docs/space-language.md says, or ends in one message `FILE:LINE:COL: ...` that says how to fix it (exit 2).

The corpus tests/space_cases/ holds one file per mistake for the plain cases; these are the ones that need
bytes the corpus cannot hold (a BOM, `\\r\\n`, no final line break) or several variants of one mistake.
"""

from __future__ import annotations

import re

import pytest

from automl.cli import main
from automl.dsl import parse_space
from automl.errors import SpaceError

HEAD = "space my\ninput 3 x 32 x 32\nclasses 10\nchoices mb = ir_k3_e3, ir_k5_e6\n"
NETWORK = "network\n  stem width 16\n  stage s1 width 24 repeat 2 choose mb then [mb, skip]\nend\n"


def _check(tmp_path, capsys, data: str | bytes) -> tuple[int, str, str]:
    path = tmp_path / "my.space"
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8", newline="")
    code = main(["space", "check", str(path)])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.err, str(path)


def _error(tmp_path, capsys, data) -> tuple[str, str]:
    """The position and the message of the one error: `FILE:LINE:COL: message`, then the line and a caret."""
    code, err, path = _check(tmp_path, capsys, data)
    assert code == 2, err
    first = err.split("\n")[0]
    assert first.startswith(path + ":"), err
    where, _, message = first[len(path) + 1:].partition(": ")
    assert not re.search(r"_NL|__ANON|\bNAME\b|\bNUMBER\b|\$END", message), message  # Lark's own names
    return where, message


# ---- what works as documented ---------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    HEAD + NETWORK.replace("  ", "\t"),                                    # tabs for indentation
    (HEAD + NETWORK).replace("\n", "\r\n"),                                # Windows line breaks
    b"\xef\xbb\xbf" + (HEAD + NETWORK).encode(),                           # a UTF-8 byte order mark
    HEAD + NETWORK + "# the end, and no line break after it",              # a last comment without "\n"
    "# f\u00fcr den Anfang: \u201cMBConv\u201d\n" + HEAD + NETWORK,        # non-ASCII text in a comment
    HEAD.replace("choices mb = ir_k3_e3, ir_k5_e6\n", "") + NETWORK + "choices mb = ir_k3_e3, ir_k5_e6\n",
])
def test_documented_forms_check(tmp_path, capsys, data):
    code, err, _ = _check(tmp_path, capsys, data)
    assert code == 0, err


def test_a_later_choice_set_and_1e3_parse_as_the_plain_spelling():
    """Statements may come in any order, and `1e3` is a number: the IR is that of the plain spelling."""
    later = HEAD.replace("choices mb = ir_k3_e3, ir_k5_e6\n", "") + NETWORK + "choices mb = ir_k3_e3, ir_k5_e6\n"
    sets = [[(s.name, [n.name for n in s.items]) for s in parse_space(t).choice_sets] for t in (later, HEAD + NETWORK)]
    assert sets[0] == sets[1]
    assert parse_space("param w = 1e3\n").params[0].value == 1000.0


# ---- a missing `end`, `]` or `)`: say which block is open and where the `end` goes ----------------------

@pytest.mark.parametrize("data, where, hint", [
    (HEAD + NETWORK[:-4] + "\nmetric lat\n  default = 1\nend\n", "9:1",
     "the `network` block of line 5 has no `end`: add `end` before line 9"),
    (HEAD + NETWORK[:-4], "7:55", "the `network` block of line 5 has no `end`: add `end` at the end of the file"),
    ((HEAD + NETWORK[:-4] + "# done").replace("\n", "\r\n"), "7:55",
     "the `network` block of line 5 has no `end`: add `end` at the end of the file"),
    (b"\xef\xbb\xbf" + (HEAD + NETWORK[:-4]).encode(), "7:55", "the `network` block of line 5 has no `end`"),
    (HEAD + NETWORK + "metric lat\n  default = 1\n", "10:14",
     "the `metric` block of line 9 has no `end`: add `end` at the end of the file"),
    (HEAD + "metric lat\n  default = 1\n\n" + NETWORK, "8:1", "the `metric` block of line 5 has no `end`: add `end` "
     "before line 8"),
    (HEAD + "cell normal\n  node n1 sums 1 of earlier through [sep_k3, identity]\n" + NETWORK, "7:1",
     "the `cell` block of line 5 has no `end`: add `end` before line 7"),
    (HEAD + NETWORK + "end\n", "9:1", "no `network`, `cell` or `metric` block is open for this `end` to close"),
    (HEAD + NETWORK.replace("[mb, skip]", "[mb, skip\n  head width 64"), "8:3",
     "the `[` on line 7 is not closed: add `]` at the end of its list"),
    (HEAD + NETWORK.replace("width 16", "width (16 * 2"), "7:3", "the `(` on line 6 is not closed: add `)`"),
    (HEAD + NETWORK.replace("skip]\nend\n", "skip"), "7:54", "the `[` on line 7 is not closed: add `]`"),
])
def test_an_open_block_or_bracket_is_named(tmp_path, capsys, data, where, hint):
    got, message = _error(tmp_path, capsys, data)
    assert got == where and hint in message, message


# ---- keywords: typos, and soft keywords taken for the name that is missing before them -------------------

@pytest.mark.parametrize("data, where, hint", [
    (HEAD + NETWORK.replace("\nend", "\nedn"), "8:1", "did you mean 'end'?"),
    (HEAD + NETWORK.replace("network", "NETWORK"), "5:1", "did you mean 'network'?"),
    (HEAD + NETWORK.replace("stem", "Stem"), "6:3", "did you mean 'stem'?"),
    (HEAD + NETWORK.replace("stem width", "stem witdh"), "6:8", "did you mean 'width'?"),
    (HEAD + NETWORK.replace("then [mb, skip]", "then"), "8:4",
     "(the `end` on line 8 was read as the choices after the `then` on line 7: write the choices after that `then`"),
    (HEAD + NETWORK.replace("repeat 2 choose mb then [mb, skip]", "fixed\n  stage s2 width 24 choose mb"), "8:9",
     "(the `stage` on line 8 was read as the op after the `fixed` on line 7"),
    (HEAD + NETWORK.replace("then [mb, skip]", "thenmbs"), "7:40", "put a space after `then`: `then mbs`"),
])
def test_keyword_mistakes_say_the_fix(tmp_path, capsys, data, where, hint):
    got, message = _error(tmp_path, capsys, data)
    assert got == where and hint in message, message


# ---- numbers as other languages write them: the message is at the number and gives the number -----------

@pytest.mark.parametrize("number, fix", [
    ("0x10", "`0x10`: write the number in decimal digits: `16`"),
    ("1_000", "`1_000`: write the number without `_`: `1000`"),
    ("16px", "`16px`: a number takes no unit: write `16`"),
    ("1,024", "`1,024`: write numbers without a thousands separator: `1024`"),
])
@pytest.mark.parametrize("where", ["param", "stem"])
def test_a_number_written_another_way_says_how_to_write_it(tmp_path, capsys, number, fix, where):
    text = HEAD + NETWORK
    if where == "param":
        text = text.replace("space my\n", f"space my\nparam w = {number}\n")
        expected = "2:11"
    else:
        text = text.replace("stem width 16", f"stem width {number}")
        expected = "6:14"
    got, message = _error(tmp_path, capsys, text)
    assert (got, message) == (expected, fix)


def test_a_mark_after_a_plain_number_is_not_called_a_malformed_number(tmp_path, capsys):
    got, message = _error(tmp_path, capsys, HEAD + NETWORK.replace("stem width 16", "stem width 16)"))
    assert got == "6:16" and message.startswith("unexpected ')'; expected one of"), message


# ---- lists and marks of other languages -----------------------------------------------------------------

@pytest.mark.parametrize("old, new, where, hint", [
    ("ir_k3_e3, ir_k5_e6", "ir_k3_e3 ir_k5_e6", "4:23", "separate the names of a list with `,`: `ir_k3_e3, ir_k5_e6`"),
    ("[mb, skip]", "[mb skip]", "7:49", "separate the names of a list with `,`: `mb, skip`"),
    ("[mb, skip]", "[mb, skip,]", "7:55", "remove the `,` before the `]`"),
    ("= ir_k3_e3, ir_k5_e6", "= [ir_k3_e3, ir_k5_e6]", "4:14", "a choice set lists its names without brackets"),
    ("[mb, skip]", "[[mb], skip]", "7:46", "a list of choices holds names"),
    ("stem width 16", "stem width=16", "6:13", "an option takes its value without `=`: `width 24`"),
    ("choose mb then", "choose mb // c-style\n  then", "7:40", "comments start with `#`"),
    ("space my", "space m\u00f6", "1:8", "names are written with the letters a-z and A-Z"),
    ("3 x 32", "3 \u00d7 32", "2:9", "write the letter `x`: `input 3 x 32 x 32`"),
    ("stem width 16", "stem width 16\u200b", "6:16", "an invisible formatting character"),
    ("space my", 'space "my"', "1:7", "names and numbers are written without quotes"),
    ("classes 10", "classes 10;", "3:11", "a statement ends at the end of its line: remove the `;`"),
    ("network\n", "network {\n", "5:9", "a block has no braces"),
    ("network\n", "network:\n", "5:8", "remove the `:`"),
    ("choices mb =", "choices mb:", "4:11", "a choices statement takes `=`: `choices mb = ...`"),
])
def test_other_languages_marks_say_the_fix(tmp_path, capsys, old, new, where, hint):
    text = HEAD + NETWORK
    assert old in text
    got, message = _error(tmp_path, capsys, text.replace(old, new, 1))
    assert got == where and hint in message, message


def test_error_is_raised_as_space_error_with_the_same_position():
    """The Python API raises the same error the command prints."""
    with pytest.raises(SpaceError) as info:
        parse_space(HEAD + NETWORK.replace("\nend", "\nedn"), "my.space")
    assert (info.value.line, info.value.column) == (8, 1) and "did you mean 'end'?" in info.value.message
