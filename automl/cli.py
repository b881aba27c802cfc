"""The ``automl`` command: ``run``, ``rank``, ``space show|check|encode|cost|profile``, ``export``.

Each subcommand lives in ``automl/commands/<name>.py`` as ``main(args) -> int`` and is imported
lazily (``importlib`` in :func:`main`: the one place automl defers its own imports, for start-up time), so
``automl space check`` does not pay for importing the training stack.
User mistakes (:class:`automl.errors.UserError`) and argparse's usage errors print one message and exit 2
(under torchrun, every rank exits 2 and rank 0 alone prints it: :func:`_rank_zero`); a path argument's leading
``~`` is expanded, as in a recipe (:func:`_as_shell_gives`); a run stopped by SIGTERM, SIGINT,
SIGHUP, SIGUSR1 or SIGUSR2 (:class:`automl.errors.Stopped`) exits 128 + the signal (143, 130, 129, 138,
140); a full disk (``ENOSPC``, ``EDQUOT``) or a path the
machine refuses (too long, no permission, read-only) or a file past a size limit (``EFBIG``: ``ulimit -f``) that a
command does not word itself exits 2 naming the file;
anything else is an internal error: exit 1 with a request to
report it.
Ordinary shell plumbing is no error: output piped into a reader that stops early (``automl space show F | head
-1``) ends the command quietly with exit 1, as Python's recipe for a closed pipe does (the ``signal`` module's
"Note on SIGPIPE"); standard output and error in an encoding that lacks automl's θ, ε or — (``LC_ALL=C`` outside
UTF-8 mode, ``PYTHONIOENCODING=ascii``) print those as ``?`` or a backslash escape instead of failing.
"""

from __future__ import annotations

import argparse
import codecs
import decimal
import errno
import importlib
import logging
import os
import re
import shlex
import sys
import tempfile
import traceback
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from automl import __version__
from automl._io import reader_gone
from automl.commands import parse_set_args  # re-exported: scripts import it from here
from automl.errors import Stopped, UserError, interrupted_before_the_run, shortened
from automl.limits import MAX_WHOLE_EXPONENT, SET_ASIDE, THREAD_ENV_VARS, omp_refuses

__all__ = ["main", "build_parser", "parse_set_args", "whole_number", "GivenOnce"]

SET_HELP = "override a space parameter (repeatable; for a key given twice, the later wins)"

ISSUES_URL = "the automl issue tracker"
# a disk (or quota) that is full: the user's machine, not a bug (exit 2)
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# a file past a limit on its size (the shell's `ulimit -f`; a file system's own, FAT32's 4 GiB): the user's (exit 2)
FILE_TOO_LARGE = (errno.EFBIG,)
# a path the machine refuses (too long, no permission, a read-only file system, a loop of links): the user's
PATH_REFUSED = (errno.ENAMETOOLONG, errno.EACCES, errno.EPERM, errno.EROFS, errno.ELOOP)
# a folder where a file is to be written (or removed): the user's
IS_FOLDER = (errno.EISDIR,)
# a file where a folder is to be made (mkdir of an existing file), or a file on the way to a path: the user's
IS_FILE = (errno.EEXIST, errno.ENOTDIR)
# the arguments that name a file or folder to read, by verb: (attribute, name in messages, what to give, an
# example); an empty one (`"$SPACE"` with SPACE unset) would be read as the current folder ('' is '.' to
# pathlib). An empty --out is each command's own check (its message says what it writes).
PATH_ARGS = {
    "run": [("recipe", "RECIPE", "a recipe YAML file", "recipes/quickstart.yaml"),
            ("supernet", "--supernet", "the folder of a finished run whose supernet to reuse", "runs/quickstart")],
    "rank": [("run_dir", "RUN_DIR", "the --out folder of a finished run", "runs/quickstart")],
    "space": [("file", "FILE", "a .space file", "spaces/digits.space"),
              ("more", "FILE", "a .space file", "spaces/digits.space"),
              ("arch_def", "--arch-def", "a JSON timm arch_def or an export's manifest.json", "manifest.json"),
              ("arch", "--arch", "an ARCH.json with the chosen choice names", "arch.json"),
              ("cost_table", "--cost-table", "a table written by `automl space profile`", "latency.json")],
    "export": [("space", "SPACE", "a .space file", "spaces/digits.space"),
               ("arch", "--arch", "an ARCH.json with the chosen choice names", "arch.json"),
               ("weights", "--weights", "a run's supernet checkpoint or an export's weights file",
                "runs/quickstart/checkpoints/ckpt-000004.pt"),
               ("recipe", "--recipe", "a recipe YAML file", "recipes/quickstart.yaml")],
}
# the arguments that name a file or folder to write, by verb (`space`: encode's and profile's --out)
OUT_ARGS = {"run": [("out", "--out")], "export": [("out", "--out")], "space": [("out", "--out")]}
# a shell variable in a path that no shell expanded (`--out '$HOME/runs/x'`, `--out=${RUNS}/x` in a file of flags)
SHELL_VARIABLE = re.compile(r"\$(?:[A-Za-z_]\w*|\{[^}]*\})")


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # a value that starts with a minus and a digit is a value, a negative number with an exponent too
        # (`--calibrate -1e1`, which Python < 3.13 took for an option: "expected one argument"); 3.13's own rule
        self._negative_number_matcher = re.compile(r"-\.?\d")

    def error(self, message):  # one line, exit 2, no usage dump of every subcommand; under torchrun, rank 0's only
        message += _dash_hint(self, message)
        if _rank_zero():
            self.print_usage(sys.stderr)
            self.exit(2, f"{self.prog}: error: {message}\n")
        self.exit(2)


# the arguments main() parses, for an error's hint (_dash_hint)
_ARGV: list[str] = []


def _dash_hint(parser: argparse.ArgumentParser, message: str) -> str:
    """For a missing or unrecognized argument where the command line holds a file or folder whose name starts with
    a dash (``automl space show -x.space``: argparse reads it as an option), how to give it; else empty."""
    if not message.startswith(("the following arguments are required", "unrecognized arguments")):
        return ""
    named = [a for a in _ARGV if a.startswith("-") and a != "--" and a.split("=")[0] not in
             parser._option_string_actions and not _NEGATIVE.fullmatch(a) and os.path.lexists(a)]
    if not named:
        return ""
    return (f"; {named[0]} is read as an option: for a file or folder whose name starts with -, write "
            f"./{named[0]} (or put -- before it, after the options)")


_NEGATIVE = re.compile(r"-\.?\d[\w.+-]*")  # a negative number is a value, not a file (`--se -1`)


def build_parser() -> argparse.ArgumentParser:
    """The ``automl`` parser; ``parser.verbs`` maps each verb's prog (``automl space check``) to its parser."""
    p = _Parser(prog="automl", description="Search a family of networks, one per size budget, in one run.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--version", action="version", version=f"automl {__version__}")
    # the verbs are required, but checked in main() after unknown options: `automl --bogus` names --bogus
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    # -v after the verb too (automl run R -v); SUPPRESS: absent there, it keeps what was given before the verb
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    verbs = [*_run_and_rank(sub, verbose), *_space(sub, verbose), _export(sub, verbose)]
    p.verbs = {q.prog: q for q in verbs}  # type: ignore[attr-defined]
    return p


GIVEN_ONCE = "_given_once"  # the namespace attribute where GivenOnce records the options given so far


class GivenOnce:
    """Mixed in before an argparse action class (``class Once(GivenOnce, argparse._StoreAction)``): an option that
    may be given once. argparse would keep the last of two silently (``--out a --out b`` ran in b; ``export --arch
    a.json --arch b.json`` exported b), so a second one is an error naming both values (an abbreviation, ``--ou``,
    is the same option). Its words: automl's own ``--out given twice (a, then b); give it once``, or, with
    ``prefixed`` True, argparse's ``argument --out: given twice (a, then b); give it once`` (the benchmark scripts',
    benchmarks/_common.py). What it records in the namespace (:data:`GIVEN_ONCE`) :meth:`forget` removes."""

    prefixed = False

    def __call__(self, parser, namespace, values, option_string=None):
        given = namespace.__dict__.setdefault(GIVEN_ONCE, {})
        if self.dest in given:
            both = "" if self.nargs == 0 else f" ({_values(given[self.dest])}, then {_values(values)})"
            if self.prefixed:  # argparse puts "argument --out: " before it
                raise argparse.ArgumentError(self, f"given twice{both}; give it once")
            raise argparse.ArgumentError(None, f"{self.option_strings[-1]} given twice{both}; give it once")
        given[self.dest] = values
        super().__call__(parser, namespace, values, option_string)

    @staticmethod
    def forget(namespace: argparse.Namespace) -> None:
        """``namespace`` without the record of the options given (after parsing: it is no option)."""
        namespace.__dict__.pop(GIVEN_ONCE, None)


def _values(values) -> str:
    return " ".join(map(str, values)) if isinstance(values, list) else str(values)


class _Store(argparse.Action):
    """An option's value stored; ``flag=True``: an option without a value (``store_true``)."""

    def __init__(self, option_strings, dest, flag: bool = False, **kwargs):
        if flag:
            kwargs.update(nargs=0, const=True, default=False)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


class _Once(GivenOnce, _Store):
    """Every option of every verb but ``space``'s and ``export``'s repeatable ``--set``: given once
    (:class:`GivenOnce`)."""


def whole_number(text: str) -> int:
    """The ``type`` of every integer flag (the benchmark scripts' too, benchmarks/_common.py): ``10``, ``10.0``,
    ``1e1`` (blank spaces around allowed) are 10, as a recipe's integer setting reads them; anything else (``2.5``,
    ``nan``, ``inf``, ``ten``, ``1e400``) is one message that argparse prefixes with the flag (``argument
    --threads: ...``). The flag's range is its command's check, as before; a plain integer is read by ``int``
    exactly as before."""
    try:
        return int(text)
    except ValueError:
        pass
    shown = repr(text) if len(text) <= 40 else f"{text[:20]!r}... ({len(text)} characters)"
    forms = "written as 10, 10.0 or 1e1"
    try:
        x = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise argparse.ArgumentTypeError(f"must be a whole number, {forms} (got {shown}, not a number)") from None
    if not x.is_finite():
        raise argparse.ArgumentTypeError(f"must be a whole number, {forms} (got {shown}, not a finite number)")
    if x.adjusted() > MAX_WHOLE_EXPONENT:
        raise argparse.ArgumentTypeError(f"must be a whole number of at most {MAX_WHOLE_EXPONENT + 1} digits "
                                         f"(got {shown})")
    if x != x.to_integral_value():
        low = int(x.to_integral_value(decimal.ROUND_FLOOR))
        raise argparse.ArgumentTypeError(f"must be a whole number (got {shown}); give {low} or {low + 1}")
    return int(x)


def _run_and_rank(sub, verbose) -> list[argparse.ArgumentParser]:
    r = sub.add_parser("run", parents=[verbose],
                       help="run a recipe: train supernet, search, derive, retrain, export, report")
    r.add_argument("recipe", help="recipe YAML file, e.g. recipes/quickstart.yaml")
    r.add_argument("overrides", nargs="*", default=[], metavar="key.path=value",
                   help="recipe overrides: search.lam=4 (for a key given twice, the later wins)")
    r.add_argument("--out", action=_Once, default=None, metavar="DIR",
                   help="the run's folder (default: a new runs/<name>-YYYYmmdd-HHMMSS in the current folder)")
    r.add_argument("--resume", action=_Once, flag=True,
                   help="continue a stopped run from its last checkpoint: give the recipe and overrides it started "
                        "with again (a recipe that differs is refused, naming the keys); the run in --out; without "
                        "--out, the latest runs/<name>-YYYYmmdd-HHMMSS of the recipe. One stopped before its first "
                        "checkpoint starts afresh")
    r.add_argument("--supernet", action=_Once, default=None, metavar="RUN_DIR",
                   help="reuse the trained supernet of that run's folder (a finished run, or one past its weight "
                        "phase): the weight phase is skipped")
    r.add_argument("--supernet-force", action=_Once, flag=True,
                   help="with --supernet (or the recipe's supernet key): use it even if it was trained with other "
                        "settings (a warning); never one of another shape")
    r.set_defaults(module="automl.commands.run")

    k = sub.add_parser("rank", parents=[verbose],
                       help="measure how well a finished run's supernet ranks architectures (Kendall's tau)",
                       description="Score K architectures on a finished run's supernet, compare with their "
                                   "stand-alone test loss (or accuracy) after --retrain-epochs each, and write "
                                   "Kendall's tau and Spearman's rho into the run's results.json and report.md.")
    k.add_argument("run_dir", metavar="RUN_DIR",
                   help="output folder of a finished run (importance_sampling or separate)")
    k.add_argument("--archs", action=_Once, type=whole_number, default=None, metavar="K",
                   help="K architectures (default: the run's ranking.archs, or 20)")
    k.add_argument("--retrain-epochs", action=_Once, type=whole_number, default=None, metavar="E",
                   help="stand-alone epochs of each (default: the run's ranking.retrain_epochs, or retrain.epochs)")
    k.add_argument("--seeds", action=_Once, type=whole_number, default=None, metavar="S",
                   help="retrainings of each, averaged (default: the run's ranking.seeds, or 1)")
    k.add_argument("--truth", action=_Once, choices=("loss", "accuracy"), default=None,
                   help="rank by mean test loss or accuracy (default: the run's ranking.truth, or loss)")
    k.add_argument("--device", action=_Once, choices=("auto", "cpu", "cuda"), default=None,
                   help="compute on this device (default: the run's recipe device; the scores change only by "
                        "float rounding)")
    k.set_defaults(module="automl.commands.rank")
    return [r, k]


def _space(sub, verbose) -> list[argparse.ArgumentParser]:
    s = sub.add_parser("space", parents=[verbose], help="inspect a .space file")
    ssub = s.add_subparsers(dest="space_command", parser_class=_Parser)  # required: checked in main()
    show = ssub.add_parser("show", parents=[verbose], help="decisions, choices, costs and size of a space")
    show.add_argument("file")
    show.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    show.add_argument("--json", action=_Once, flag=True, help="print one JSON object instead of a table")
    show.add_argument("--metric", action=_Once, default="params", help="cost metric to show (default params)")
    show.set_defaults(module="automl.commands.space")
    check = ssub.add_parser("check", parents=[verbose], help="validate a space file")
    check.add_argument("file", help="a .space file")
    check.add_argument("more", nargs="*", default=[], metavar="FILE",
                       help="more space files, each checked as the first (the --set values apply to each)")
    check.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    check.set_defaults(module="automl.commands.space")
    enc = ssub.add_parser("encode", parents=[verbose], help="the arch.json of a timm network the space contains")
    enc.add_argument("file")
    src = enc.add_mutually_exclusive_group(required=True)
    src.add_argument("--timm", action=_Once, metavar="MODEL_NAME",
                     help="a timm model name, e.g. mobilenetv3_large_100")
    src.add_argument("--arch-def", action=_Once, metavar="FILE",
                     help="JSON timm arch_def (or an export's manifest.json)")
    enc.add_argument("--out", action=_Once, default=None, help="write the arch.json here (default: print it)")
    enc.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    enc.set_defaults(module="automl.commands.space")
    cost = ssub.add_parser("cost", parents=[verbose],
                           help="predicted cost of one architecture under every metric (JSON)")
    cost.add_argument("file")
    cost.add_argument("--arch", action=_Once, required=True, help="ARCH.json with the chosen choice names")
    cost.add_argument("--cost-table", action=_Once, default=None,
                      help="a table from `automl space profile` (adds its metric)")
    cost.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    cost.set_defaults(module="automl.commands.space")
    prof = ssub.add_parser("profile", parents=[verbose], help="measure a latency table of every choice on this machine")
    prof.add_argument("file")
    prof.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    prof.add_argument("--runtime", action=_Once, default="onnxruntime",
                      help="runtime to measure with: onnxruntime (the default and only one)")
    prof.add_argument("--threads", action=_Once, type=whole_number, default=1,
                      help="intra-op threads of the runtime (default 1)")
    prof.add_argument("--batch", action=_Once, type=whole_number, default=1, help="batch size (default 1)")
    prof.add_argument("--repeat", action=_Once, type=whole_number, default=20,
                      help="timed runs per piece, after warm-up (default 20)")
    prof.add_argument("--metric", action=_Once, default="latency", help="metric name in the table (default latency)")
    prof.add_argument("--clock", action=_Once, default="wall",
                      help="wall: elapsed time (default); cpu: the calling thread's CPU time (--threads 1; a shared "
                           "machine)")
    prof.add_argument("--calibrate", action=_Once, type=whole_number, default=8,
                      help="whole random networks timed to fit the per-piece graph cost (chains; default 8, at most "
                           "10,000; 0: off)")
    prof.add_argument("--out", action=_Once, required=True, help="TABLE.json to write")
    prof.set_defaults(module="automl.commands.space")
    return [s, show, check, enc, cost, prof]


def _export(sub, verbose) -> argparse.ArgumentParser:
    e = sub.add_parser("export", parents=[verbose], help="export one architecture as a standalone torch model and ONNX")
    e.add_argument("space", help=".space file")
    e.add_argument("--arch", action=_Once, required=True, help="ARCH.json with the chosen choice names")
    e.add_argument("--out", action=_Once, required=True, help="output directory")
    e.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    e.add_argument("--weights", action=_Once, default=None,
                   help="supernet checkpoint to inherit weights from, or an export's own model.safetensors "
                        "(with --arch its manifest.json: that network again)")
    e.add_argument("--se", action=_Once, type=float,
                   help="squeeze-and-excitation ratio of MBConv blocks (0; a manifest's)")
    e.add_argument("--opset", action=_Once, type=whole_number, default=17, help="ONNX opset (>= 17; default 17)")
    e.add_argument("--quantize", action=_Once, default=None, help="int8: also write model.int8.onnx (needs --recipe)")
    e.add_argument("--recipe", action=_Once, default=None,
                   help="recipe whose data recalibrates inherited BatchNorm and tests int8")
    e.set_defaults(module="automl.commands.export")
    return e


def main(argv: list[str] | None = None) -> int:
    """Run the command of ``argv`` (default: ``sys.argv[1:]``) and return its exit status."""
    try:
        try:
            if _closed_at_start():  # under torchrun every rank stops, rank 0 says why
                if _rank_zero():
                    _say("automl: standard output is closed (the command was started with >&-); give it one: "
                         "> FILE, or > /dev/null to discard what it prints")
                return 2
            _printable_output()
            return _main(argv)
        finally:
            # what is still buffered is written here, where a reader that has gone (`| head -1`) is caught
            # below, not at exit (Python's "Exception ignored ... BrokenPipeError" and status 120)
            _flush_output()
    except BrokenPipeError:
        return _broken_pipe()
    except OSError as e:  # standard output on a full disk (`> /dev/full`)
        return _os_error(e)


def _set_aside_thread_env() -> dict[str, str]:
    """Moves each thread count of the environment that libgomp would complain about (:func:`omp_refuses`: a
    malformed one, :func:`env_thread_count`, and ``""``, ``4,x``) to ``SET_ASIDE + name`` before a command imports
    torch, so libgomp does not print its own complaint: automl reads the value there as it would have (a run that
    sets its threads itself ignores a malformed one, one that takes it from the environment refuses it in automl's
    words: automl.train.threads.env_counts). Returns {name: value} of those moved, for :func:`_restore_thread_env`.
    No automl command starts another automl process, which would read the moved value as unset."""
    moved = {}
    for name in THREAD_ENV_VARS:
        os.environ.pop(SET_ASIDE + name, None)  # one an automl process above this one set aside: that one's
        if omp_refuses(os.environ.get(name)):
            moved[name] = os.environ.pop(name)
            os.environ[SET_ASIDE + name] = moved[name]
    return moved


def _restore_thread_env(moved: dict[str, str]) -> None:
    """The environment as it was before :func:`_set_aside_thread_env` (``main`` called in a process that goes on)."""
    for name, text in moved.items():
        os.environ.pop(SET_ASIDE + name, None)
        os.environ[name] = text


def _main(argv: list[str] | None) -> int:
    moved = _set_aside_thread_env()  # before any command imports torch
    try:
        return _command(argv)
    finally:
        _restore_thread_env(moved)


def _command(argv: list[str] | None) -> int:
    parser = build_parser()
    # `automl run R --out D a.b=1`: argparse fills the positionals `recipe overrides*` in one go, before
    # --out, so overrides written after an option come back as extras; they are still overrides. The overrides'
    # default ([]) keeps them optional: argparse calls a nargs="*" positional without a default required. A `--`
    # there (`automl run R --out D -- a.b=1`), the end of the options, comes back as an extra too.
    argv = sys.argv[1:] if argv is None else list(argv)
    _ARGV[:] = argv
    args, extra = parser.parse_known_args(argv)
    if args.command == "run":
        extra = [e for e in extra if e != "--"]
    if extra and args.command == "run" and not any(e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra and getattr(args, "space_command", None) == "check" and not any(e.startswith("-") for e in extra):
        args.more = [*args.more, *extra]  # `automl space check a.space --set k=v b.space`: files after an option
    elif extra:
        _unrecognized(parser, args, argv, extra)
    _require_verb(parser, args)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    begun = False  # the command's main began: what a Ctrl-C then left is its to say
    try:
        _check_paths(args)
        _check_temporary_folder()
        command = importlib.import_module(args.module)
        begun = True
        return int(command.main(args) or 0)
    except UserError as e:
        # under torchrun every rank stops on it: one message (already printed by a check of rank 0 alone)
        if _rank_zero() and not e.printed:
            _say(e.text())
        return e.exit_code
    except Stopped as e:  # a stop signal (preempt.SIGNALS): the run wrote a checkpoint and printed the --resume command
        return e.exit_code
    except KeyboardInterrupt:  # `automl export` says itself what a stop left once it began (its main)
        _say(_interrupted(args, begun))
        return 130
    except BrokenPipeError:  # main's to handle, once standard output and error are flushed
        raise
    except OSError as e:
        return _os_error(e)
    except RuntimeError as e:  # a loop of symbolic links met by Path.resolve() (before Python 3.13: not an OSError)
        loop = _symlink_loop(e)
        return _internal_error() if loop is None else _os_error(OSError(errno.ELOOP, os.strerror(errno.ELOOP), loop))
    except Exception:  # noqa: BLE001 - the last line of defence: internal error, exit 1
        return _internal_error()


def _interrupted(args, begun: bool) -> str:
    """What a Ctrl-C (KeyboardInterrupt) that reached the CLI says; ``begun``: the command's main had begun (else it
    came as automl loaded, before anything was written)."""
    if args.command == "export":
        return "interrupted before the export began: nothing was written"
    if args.command == "run" and not begun:
        return interrupted_before_the_run(args.out)
    return "interrupted"


_SYMLINK_LOOP = re.compile(r"Symlink loop from (['\"])(.+)\1")


def _symlink_loop(e: RuntimeError) -> str | None:
    """The path of ``Path.resolve()``'s ``RuntimeError("Symlink loop from '...'")`` (Python 3.11, 3.12), which
    Python 3.13 raises as ``OSError`` ELOOP; None for any other ``RuntimeError``."""
    found = _SYMLINK_LOOP.fullmatch(str(e))
    return found.group(2) if found else None


def _closed_at_start() -> bool:
    """Point each of the file descriptors 0, 1 and 2 that was closed when the process started (``>&-``, ``2>&-``;
    Python then sets ``sys.stdout`` or ``sys.stderr`` to None), or 1 and 2 open only for reading (the script file
    bash opens there when a script is started with ``2>&-``), at ``os.devnull``, so that no file the command
    opens takes its number (a library's C code writes its messages to 1 and 2, which would land in that file). A
    closed standard error discards what would be said there, as ``2> /dev/null`` does. Returns whether standard
    output was closed: what the command prints, its whole answer for ``space`` and ``rank``, would be lost."""
    closed = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            if fd and _read_only(fd):  # a bash script started with 2>&- has its own file there, opened to read
                raise OSError(errno.EBADF, "open only for reading")
        except OSError:
            devnull = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: fd itself, unless a lower is free
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)
            closed.append(fd)
    if 2 in closed or sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    return 1 in closed or sys.stdout is None


def _read_only(fd: int) -> bool:
    """Whether the open file descriptor ``fd`` takes no writes (where the system can tell)."""
    if fcntl is None:
        return False
    try:
        return fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
    except OSError:
        return False


def _replace_keeping_bytes(error: UnicodeEncodeError) -> tuple[str | bytes, int]:
    """The error handler ``automl.replace``: the first character ``error`` could not encode as ``?``, but a byte
    the system gave undecoded (a file name's, under ``surrogateescape``) as that byte again."""
    code = ord(error.object[error.start])
    return (bytes([code - 0xDC00]) if 0xDC80 <= code <= 0xDCFF else "?"), error.start + 1


codecs.register_error("automl.replace", _replace_keeping_bytes)


def _printable_output() -> None:
    """Standard output and error in an encoding other than UTF-8 write what it cannot encode (θ, ε, λ, ×, —, a
    non-ASCII file name) as ``?`` on standard output (a table keeps its columns; undecoded bytes stay as they
    were) and as a backslash escape on standard error (Python's own choice there), instead of raising
    ``UnicodeEncodeError`` in the middle of a command. Rich consoles and the logging handler write through
    these same stream objects. A UTF-8 stream whose errors are "strict" (``PYTHONIOENCODING=utf-8:strict``, a
    UTF-8 locale other than C.UTF-8) gets the same: it cannot encode an undecoded byte of a file name either."""
    for stream, errors in ((sys.stdout, "automl.replace"), (sys.stderr, "backslashreplace")):
        try:
            encodes_all = codecs.lookup(stream.encoding).name.startswith("utf-")
        except (AttributeError, LookupError, TypeError):  # no stream, or not a text stream with an encoding
            continue
        replaced = not encodes_all or stream.errors == "strict"
        if replaced and stream.errors != errors and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors=errors)


def _flush_output() -> None:
    """Flush standard output and error. A stream that cannot be written (a full disk) is pointed at
    ``os.devnull``, so that Python does not try again at exit, and its ``OSError`` raised naming it."""
    for name, stream in (("standard output", sys.stdout), ("standard error", sys.stderr)):
        try:
            if stream is not None and not getattr(stream, "closed", True):
                stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            _to_devnull([stream])
            e.filename = e.filename or name
            raise


def _broken_pipe() -> int:
    """Exit 1 without a word when standard output or error is a pipe whose reader has gone (``| head``): each such
    stream is pointed at ``os.devnull``, so that what Python still flushes at exit goes nowhere (the recipe of
    Python's docs). A ``BrokenPipeError`` of anything else (a worker's pipe, a socket) is an internal error."""
    closed = [s for s in (sys.stdout, sys.stderr) if reader_gone(s)]
    if not closed:
        return _internal_error()
    _to_devnull(closed)
    return 1


def _to_devnull(streams: list) -> None:
    """Point the file descriptors of ``streams`` at ``os.devnull`` (a stream without one is left as it is)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in streams:
            try:
                os.dup2(devnull, stream.fileno())
            except (AttributeError, OSError, ValueError):  # not a file (a test's captured output)
                continue
    finally:
        os.close(devnull)


def _unrecognized(parser, args, argv: list[str], extra: list[str]) -> None:
    """Stop on arguments no parser took, naming the verb they followed (``automl run: error: unrecognized
    arguments: --bogus; see automl run --help``), or ``automl`` for those before the verb or without one."""
    verb_at = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
    before = [e for e in extra if e in argv[:verb_at]]
    if before or args.command is None:
        parser.error(f"unrecognized arguments: {' '.join(before or extra)}")
    space_command = getattr(args, "space_command", None) if args.command == "space" else None
    prog = " ".join(["automl", args.command, *([space_command] if space_command else [])])
    verb = parser.verbs[prog]
    hint = ""
    if args.command == "run":  # the others are overrides written after an option
        extra = [e for e in extra if e.startswith("-")]
        hint = _set_hint(args, argv, extra) or _override_hint(argv, extra, set(verb._option_string_actions))
    elif args.command == "rank":
        hint = _set_hint(args, argv, extra)
    verb.error(f"unrecognized arguments: {' '.join(extra)}; {hint}see {prog} --help")


def _set_hint(args, argv: list[str], extra: list[str]) -> str:
    """For ``--set`` given to ``automl run`` or ``automl rank`` (``automl export`` and ``automl space`` take it, so
    it is tried there too): how to give the override instead. ``run``'s overrides are positional ``KEY=VALUE``
    after the recipe (``automl run RECIPE search.lam=4``, with the values given to ``--set``); ``rank`` takes none,
    it ranks with the run's own recipe; else ""."""
    if not any(e == "--set" or e.startswith("--set=") for e in extra):
        return ""
    if args.command == "rank":
        return ("automl rank takes no --set (no recipe overrides): it ranks with the run's own recipe "
                "(RUN_DIR/recipe.resolved.yaml); --archs, --retrain-epochs, --seeds, --truth and --device change "
                "its ranking; ")
    given = []
    for i, a in enumerate(argv):
        value = a.removeprefix("--set=") if a.startswith("--set=") else argv[i + 1] if a == "--set" and \
            i + 1 < len(argv) else ""
        if "=" in value and not value.startswith("-"):  # KEY=VALUE, not an empty --set= or another option
            given.append(value)
    recipe = args.recipe  # `automl run --set a.b=1 R.yaml` took a.b=1 for the recipe
    if recipe in given:
        recipe = next((o for o in args.overrides if "=" not in o), "RECIPE")
    own = [o for o in args.overrides if "=" in o and o not in given]  # the overrides given as they should be
    example = shlex.join(["automl", "run", str(recipe), *own, *(given or ["search.lam=4"])])
    return (f"automl run takes no --set: its recipe overrides are positional KEY=VALUE after the recipe, "
            f"e.g. {example}; ")


# the top-level keys of a recipe (automl.recipe.Recipe's fields, which cli does not import: it loads pydantic)
RECIPE_KEYS = frozenset({"name", "seed", "device", "threads", "cudnn_benchmark", "space", "space_args", "data",
                         "search", "optim", "retrain", "export", "checkpoint", "ranking", "supernet",
                         "supernet_force"})
_DOTTED_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)+")


def _override_hint(argv: list[str], extra: list[str], flags: set[str]) -> str:
    """``did you mean the override threads=1? `` for the first of ``automl run``'s unrecognized options ``extra``
    that is a recipe key written as a flag (``--threads 1``, ``--seed=3``, ``--search.epochs 2``: a top-level
    key of :data:`RECIPE_KEYS`, or a dotted key; a dash in a key is its underscore), with the value that followed
    it in ``argv``; ``did you mean --supernet-force? `` for one of the verb's ``flags`` written with underscores;
    else ""."""
    for e in extra:
        if not e.startswith("--"):
            continue
        key, eq, value = e[2:].partition("=")
        if "--" + key.replace("_", "-") in flags:
            return f"did you mean --{key.replace('_', '-')}? "
        if not _DOTTED_KEY.fullmatch(key) and key.replace("-", "_") not in RECIPE_KEYS:
            continue
        key = key.replace("-", "_")
        if not eq:
            after = argv[argv.index(e) + 1:argv.index(e) + 2]
            value = after[0] if after and not after[0].startswith("-") and "=" not in after[0] else "VALUE"
        return f"did you mean the override {key}={value}? "
    return ""


def _require_verb(parser, args) -> None:
    """Stop when no verb (or no ``space`` subcommand) was given, as argparse words a missing argument."""
    if args.command is None:
        parser.error(f"the following arguments are required: command ({_verbs(parser)})")
    if args.command == "space" and args.space_command is None:
        space = parser.verbs["automl space"]
        space.error(f"the following arguments are required: a subcommand ({_verbs(space)})")


def _verbs(parser) -> str:
    """The verbs ``parser``'s subcommands take, for a message: ``run, rank, space, export``."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return ", ".join(sub.choices)


def _check_paths(args) -> None:
    """Stop on an empty (or blank) file or folder argument (:data:`PATH_ARGS`), naming it and what to give; then
    make each path argument, the ``--out`` folders too (:data:`OUT_ARGS`), what a shell would have given
    (:func:`_as_shell_gives`)."""
    verb = " ".join(["automl", args.command, *([args.space_command] if args.command == "space" else [])])
    for attr, name, what, example in PATH_ARGS.get(args.command, ()):
        given = getattr(args, attr, None)
        for value in given if isinstance(given, list) else [given]:  # `space check`'s further files: a list
            if value is None or str(value).strip():
                continue
            if name.startswith("-"):
                raise UserError(f"{name} {value!r} is empty; give {what}, e.g. {name} {example}")
            raise UserError(f"{verb}: {name} is empty ({value!r}); give {what}, e.g. {verb} {example}")
    paths = [(attr, name) for attr, name, *_ in PATH_ARGS.get(args.command, ())] + OUT_ARGS.get(args.command, [])
    for attr, name in paths:
        value, label = getattr(args, attr, None), name if name.startswith("-") else f"{verb}: {name}"
        if isinstance(value, str) and value.strip():
            setattr(args, attr, _as_shell_gives(value, label))
        elif isinstance(value, list):
            setattr(args, attr, [_as_shell_gives(v, label) for v in value])


def _as_shell_gives(value: str, label: str) -> str:
    """``value``, a path given as ``label``, with a leading ``~`` or ``~user`` expanded, as a recipe's paths are:
    the shell leaves it in ``--out=~/runs/x`` and in quotes, and a folder named ``~`` would be created. A
    ``~user`` of no user, or a shell variable no shell expanded (``--out '$HOME/runs/x'``: single quotes), in a
    path that does not exist, is a :class:`UserError`: a file or folder named so is meant by no one. A variable is
    taken as unexpanded only where the part of the path up to the end of its name does not exist (an existing
    folder ``price $x`` is a name)."""
    expanded = os.path.expanduser(value) if value.startswith("~") else value
    exists = os.path.lexists(expanded)
    if expanded == value and value.startswith("~") and not exists:
        head = value.split(os.sep, 1)[0]
        raise UserError(f"{label} {value!r}: {head} is no user's home folder on this machine; write the path out "
                        f"(./{value} for a file or folder whose name starts with ~)")
    for variable in () if exists else SHELL_VARIABLE.finditer(expanded):
        # the part of the path that holds it: an existing folder named with a `$` is the user's
        end = expanded.find(os.sep, variable.end())
        part = expanded if end < 0 else expanded[:end]
        if os.path.lexists(part):
            continue
        missing = "nothing of that name exists" if part == expanded else f"{part!r} does not exist"
        raise UserError(f"{label} {value!r} holds {variable[0]}, a shell variable the shell did not expand (single "
                        f"quotes keep it as written), and {missing}; give the path with the "
                        f"variable's value (the shell expands it in double quotes: \"{value}\")")
    return expanded


def _check_temporary_folder() -> None:
    """Stop when no folder for temporary files can be written (Python's search: ``TMPDIR``, /tmp, /var/tmp,
    /usr/tmp, the current folder): torch, which every command imports, needs one as it is imported."""
    try:
        tempfile.gettempdir()
    except FileNotFoundError as e:
        raise UserError(f"no folder for temporary files can be written ({e.strerror or e}: each is full, read-only "
                        f"or not writable by you); torch, which automl imports, needs one: set TMPDIR to a writable "
                        f"folder with free space (TMPDIR=$HOME/tmp automl ...)") from None


def _rank_zero() -> bool:
    """Whether this process prints the errors the CLI words (under torchrun, rank 0 alone: the other ranks stop on
    the same error). ``RANK`` is read as :mod:`automl.train.distributed` reads it: blank spaces stripped, unset or
    empty is 0, then a whole number (``RANK=00`` and ``RANK=" 0"`` are rank 0). Only a whole number of 1 or more
    names another process than rank 0; a ``RANK`` that is no whole number, or a negative one, names none that
    would speak for this process (``automl run`` refuses it, as torchrun never sets it), so this one speaks."""
    try:
        return int(os.environ.get("RANK", "").strip() or "0") < 1
    except ValueError:
        return True


def _say(message: str) -> None:
    """``message`` on standard error; where that is a pipe whose reader has gone (``2>&1 | head``), nothing, so
    that the command still exits with its own status (2 for a user's mistake), not a closed pipe's 1."""
    try:
        print(message, file=sys.stderr, flush=True)
    except BrokenPipeError:
        _to_devnull([sys.stderr])


def _os_error(e: OSError) -> int:
    """Exit 2 with one line for what the machine refuses (a full disk, a file past a size limit, a path too long,
    no permission), naming the file; any other ``OSError`` is an internal error (exit 1)."""
    if e.errno in DISK_FULL:  # a write the command does not word itself (a run's checkpoints, exports, results)
        message = f"cannot write {_shown(e.filename) or 'a file'} ({e.strerror}); free space and run the command again"
    elif e.errno in FILE_TOO_LARGE:
        message = (f"cannot write {_shown(e.filename) or 'a file'} ({e.strerror}): a limit on a file's size was "
                   f"reached (the shell's `ulimit -f`, or the file system's own, such as FAT32's 4 GiB); raise the "
                   f"limit or write to another file system, and run the command again")
    elif e.errno in IS_FOLDER and e.filename:
        message = (f"{_shown(e.filename)} is a folder, where a file is to be written; remove or rename that folder (or "
                   f"write elsewhere) and run the command again")
    elif e.errno in PATH_REFUSED and e.filename:
        message = f"{_shown(e.filename)}: {e.strerror}; check the path (and its permissions) and run the command again"
    elif e.errno in IS_FILE and _file_on_the_way(e.filename):
        message = (f"{_shown(_file_on_the_way(e.filename))} is a file, where a folder is to be made; remove or rename "
                   f"that file (or write elsewhere) and run the command again")
    else:
        return _internal_error()
    if _rank_zero():
        _say(f"automl: {message}")
    return 2


def _file_on_the_way(filename) -> str | None:
    """The first part of the path ``filename`` (itself included) that is there and is not a folder, where a folder
    was to be: what ``mkdir`` (EEXIST) or a path through a file (ENOTDIR) stopped on; None when there is none."""
    if not isinstance(filename, (str, bytes)) or not filename:
        return None
    path = Path(os.fsdecode(filename))
    for part in (*reversed(path.parents), path):
        if os.path.lexists(part) and not part.is_dir():
            return str(part)
    return None


def _shown(filename) -> str:
    """A file name for a message: one longer than 100 characters shortened (a name too long is the mistake)."""
    return shortened(os.fsdecode(filename) if isinstance(filename, (str, bytes)) else str(filename or ""))


def _internal_error() -> int:
    traceback.print_exc()
    print(f"automl: internal error (a bug, not your input); please report it with the traceback above "
          f"to {ISSUES_URL}.", file=sys.stderr)
    return 1
