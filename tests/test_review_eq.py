"""Start-up time of the quick commands (review EQ): the ``.space`` parser comes from Lark's cache in the user's
cache folder instead of being built in every process (automl/dsl/_parser.py), and importing the CLI (every
``automl`` call, ``automl --help`` too) loads neither the parser nor torch (automl/commands/__init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lark
import pytest
from lark.utils import FS

from automl.dsl import _parser
from automl.dsl import parse_space, space_parser
from automl.errors import SpaceError

ROOT = Path(__file__).resolve().parents[1]
SPACES = sorted((ROOT / "spaces").glob("*.space")) + sorted((ROOT / "tests" / "space_cases").glob("*.space"))
# syntax errors: their messages come from the parser's tables (expected tokens, terminals, keywords)
BAD = ["space x\nnetwork chain\n  stem conv 3x3\n", "space\n", "space s\nparam = 3\n", "space s\nchoices c = a b\n",
       "space s\nchoices c = [a, b\n", "space s\nnetwork chain\n  stage s1 repeat2\n", "space 3x\n",
       "space s\nnetwork chain\n  stage s\n    layer l choose a, b\n"]


def _outcome(text: str, name: str = "t.space") -> str:
    """What parsing ``text`` gives: the IR (positions included) or the error message."""
    try:
        return repr(parse_space(text, name))
    except SpaceError as e:
        return f"error: {e}"


def _texts() -> list[tuple[str, str]]:
    return [(p.name, p.read_text(encoding="utf-8")) for p in SPACES] + [(f"bad{i}.space", t) for i, t in
                                                                         enumerate(BAD)]


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """A cache folder of the test's own (``$XDG_CACHE_HOME``), and a parser built afresh in it; the process's
    parser is built again afterwards (from the user's cache), as the other tests had it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    space_parser.cache_clear()
    yield tmp_path / "cache"
    space_parser.cache_clear()


def _fresh():
    space_parser.cache_clear()
    return space_parser()


def _cache_file() -> Path:
    return Path(_parser.parser_cache_file(_parser.grammar_text()))


def test_the_parser_is_cached_and_loaded_in_the_next_process(cache_home):
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    code = "from automl.dsl import space_parser; print(space_parser().source_path)"
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                           cwd=ROOT) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    # the first process builds it from the grammar and stores it, the second loads what the first stored
    assert [r.stdout.strip() for r in runs] == ["<string>", "<deserialized>"]
    files = list((cache_home / "automl").iterdir())
    assert files == [_cache_file()] and files[0].stat().st_size > 1000


def test_the_cached_parser_parses_every_space_and_error_as_the_built_one(cache_home, monkeypatch):
    with monkeypatch.context() as m:  # no cache at all: the parser built from the grammar
        m.setattr(_parser, "parser_cache_file", lambda text: None)
        assert _fresh().source_path == "<string>"
        built = [_outcome(t, n) for n, t in _texts()]
    assert _fresh().source_path == "<string>"  # builds, and writes the cache
    assert _fresh().source_path == "<deserialized>"  # loads it
    p = space_parser()
    assert p.options.parser == "lalr" and p.options.propagate_positions and p.options.maybe_placeholders
    assert isinstance(p.options.postlex, _parser._WholeWords)
    assert [_outcome(t, n) for n, t in _texts()] == built
    assert sum(o.startswith("error: ") for o in built) >= len(BAD) and any(o.startswith("Space(") for o in built)


@pytest.mark.parametrize("damage", ["garbage", "cut short", "empty"])
def test_a_corrupt_cache_is_built_again_and_rewritten(cache_home, damage):
    _fresh()
    path = _cache_file()
    good = path.read_bytes()
    bad = {"garbage": b"not a cache\n" + os.urandom(200), "cut short": good[:len(good) // 2], "empty": b""}[damage]
    path.write_bytes(bad)
    assert _fresh().source_path == "<string>"  # Lark falls back to building it
    assert "Space(" in _outcome((ROOT / "spaces" / "digits.space").read_text(encoding="utf-8"))
    assert path.read_bytes() != bad and len(path.read_bytes()) > len(good) // 2  # and stores a whole one again
    assert _fresh().source_path == "<deserialized>"


def test_another_grammar_in_the_cache_file_is_not_used(cache_home):
    path = _cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    lark.Lark('start: "a"', parser="lalr", cache=str(path))  # a parser of another grammar at that path
    assert _fresh().source_path == "<string>"  # Lark's key (grammar, options, versions) differs: built again
    assert "Space(" in _outcome((ROOT / "spaces" / "digits.space").read_text(encoding="utf-8"))
    assert _fresh().source_path == "<deserialized>"
    # another grammar (an edited space.lark) is cached in a file of its own
    text = _parser.grammar_text()
    assert _parser.parser_cache_file(text + "\n// edited\n") != _parser.parser_cache_file(text)


def test_a_cache_that_cannot_be_read_or_written_still_parses(cache_home, monkeypatch):
    def refuse(name, mode="r", **kwargs):  # a read-only cache folder, and a file we may not read
        raise PermissionError(13, "Permission denied", name)

    monkeypatch.setattr(FS, "open", staticmethod(refuse))
    assert _fresh().source_path == "<string>"
    assert "Space(" in _outcome((ROOT / "spaces" / "digits.space").read_text(encoding="utf-8"))
    assert not _cache_file().exists()


def test_a_cache_folder_that_cannot_be_made_means_no_cache(cache_home, monkeypatch, tmp_path):
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))  # not a folder: automl/ cannot be made in it
    assert _parser.parser_cache_file("g") is None
    assert _fresh().source_path == "<string>"
    assert "Space(" in _outcome((ROOT / "spaces" / "digits.space").read_text(encoding="utf-8"))
    # the cache file's place is taken by a folder: neither read nor written, the parser is built
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    _cache_file().mkdir(parents=True)
    assert _fresh().source_path == "<string>" and _cache_file().is_dir()
    # a relative XDG_CACHE_HOME is ignored (the XDG spec): ~/.cache, and no home folder means no cache
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _parser.parser_cache_file("g").startswith(str(tmp_path / "home" / ".cache" / "automl") + os.sep)
    monkeypatch.setattr(os.path, "expanduser", lambda p: p)
    assert _parser.parser_cache_file("g") is None


def test_importing_the_cli_loads_neither_the_parser_nor_torch():
    code = ("import sys, automl.cli, automl.commands; "
            "print(sorted(m for m in ('lark', 'automl.dsl', 'torch', 'timm') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
    # the helpers that load a space moved beside the other architecture-file helpers
    from automl.commands import _arch_args
    assert callable(_arch_args.space_args_for) and callable(_arch_args.recorded_space_args)
