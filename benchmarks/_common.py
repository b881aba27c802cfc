"""Shared bits of the benchmark scripts: timing with warm-up, the machine they ran on, the JSON line each script
ends with (:func:`json_line`, strict JSON), files written atomically and read back only when whole, and how a
user's mistake ends: one message and exit 2 (argument types below, :func:`run_main` for automl's ``UserError``
and a child ``automl run`` that failed), never a traceback; and the child processes (:func:`run_child`), which
Ctrl-C stops as it stops ``automl run``: passed on once, waited for while they save a checkpoint; and the run
folders the scripts read back (:func:`run_results`: a damaged results.json is one message naming it) and start
again (:func:`check_not_running`: not while an automl run still holds the folder's lock).

The atomic write is automl's public one (``automl.files``): ``automl._io`` is private to the automl package
(docs/internals.md)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from automl.cli import DISK_FULL, FILE_TOO_LARGE, PATH_REFUSED, GivenOnce, whole_number
from automl.errors import UserError, shortened
from automl.files import atomic_write_text, strict_json  # noqa: F401  (atomic_write_text: the scripts')
from automl.limits import MAX_BATCH
from automl.profile import threads_warning as profile_threads_warning
from automl.recipe import SEED_LIMIT  # a recipe's seed: from -10^15 to 10^15
from automl.train.threads import MAX_THREADS, usable_cores

try:
    import fcntl
except ImportError:  # Windows: no flock (automl run takes no lock there either)
    fcntl = None


def machine() -> str:
    """The CPU, its cores, this process's intra-op thread count and torch's version; the GPUs first when torch
    sees any (a GPU machine's scripts time CPU cases too). The cores are those the process can keep busy
    (:func:`automl.train.threads.usable_cores`: ``taskset``, a container's cpuset, a cgroup CPU quota), with the
    machine's count after them where it has more, as automl's own machine records (``cores``, ``machine_cores``)."""
    # the intra-op thread count changes CPU figures (and their ratios): set it with OMP_NUM_THREADS
    threads, cores, total = torch.get_num_threads(), usable_cores(), os.cpu_count()
    of = f" (of the machine's {total})" if total and total != cores else ""
    cpu = (f"{platform.processor() or platform.machine()}, {cores} CPU cores{of}, "
           f"{threads} thread{'s' if threads != 1 else ''}, torch {torch.__version__}")
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}; {cpu}"
    return cpu


def synchronizer(device):
    """A function that waits until the work queued on ``device`` is done: ``torch.cuda.synchronize(device)`` on a
    CUDA device (that GPU's, e.g. cuda:1's, not the current GPU's: a model on cuda:1 would otherwise be timed by
    when its kernels were queued), nothing elsewhere (the CPU runs each call to its end)."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return lambda: None
    return lambda: torch.cuda.synchronize(dev)


def timeit(fn, repeat: int = 20, warmup: int = 3, sync: bool | str | torch.device = False) -> list[float]:
    """Seconds per call of ``fn`` after ``warmup`` untimed calls. ``sync``: the device ``fn`` runs on, whose queued
    work each timing waits for (:func:`synchronizer`); True: the current GPU; False: none (the CPU)."""
    wait = synchronizer("cuda" if sync is True else sync) if sync else (lambda: None)
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        wait()
        t0 = time.perf_counter()
        fn()
        wait()
        out.append(time.perf_counter() - t0)
    return out


# ------------------------------------------------------------------------------------------ arguments


def _default_shown(action: argparse.Action) -> str | None:
    """``(default: 30)`` for an option's --help, or None where there is none to show: a switch (``store_true``),
    an unset option (None), an empty list, or a help that already names its default."""
    value = action.default
    if (value is None or value is False or value is argparse.SUPPRESS or value == [] or "default" in (action.help or "")
            or isinstance(action, (argparse._HelpAction, argparse._StoreConstAction))):
        return None
    shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return f"(default: {shown.replace('%', '%%')})"  # a help string is %-formatted


class DefaultsFormatter(argparse.HelpFormatter):
    """--help with each option's default after its help (:func:`_default_shown`)."""

    def _get_help_string(self, action):
        default = _default_shown(action)
        return action.help if default is None else f"{action.help} {default}"


class _Once(GivenOnce):
    """Mixed into an option's action by :class:`Parser`: a second ``--threads 4`` after ``--threads 1`` is an error
    naming both, as automl's own options (:class:`automl.cli.GivenOnce`), in argparse's words (``argument
    --threads: given twice (1, then 4); give it once``), where argparse would keep the last without a word."""

    prefixed = True


_ONCE = {cls: type(f"Once{cls.__name__}", (_Once, cls), {})
         for cls in (argparse._StoreAction, argparse._StoreTrueAction, argparse._StoreFalseAction)}


class Parser(argparse.ArgumentParser):
    """argparse with a mistake reported as one line (``PROG: error: ...``), exit 2; usage is in --help, which
    gives each option's default (:class:`DefaultsFormatter`; an option without a help gets its default as one).
    An option given twice is a mistake (:class:`_Once`), but for a repeatable one (``--set``, ``append``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        action = super().add_argument(*args, **kwargs)
        if not action.help:  # argparse prints no help line, so no default, for an option without a help
            action.help = _default_shown(action)
        if action.option_strings and type(action) in _ONCE:
            action.__class__ = _ONCE[type(action)]
        return action

    def parse_known_args(self, args=None, namespace=None):
        ns, rest = super().parse_known_args(args, namespace)
        GivenOnce.forget(ns)
        return ns, rest

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parser(doc: str | None) -> Parser:
    """A :class:`Parser` described by the first paragraph of ``doc`` (a script's docstring), whole."""
    first = (doc or "").strip().split("\n\n")[0]
    return Parser(description=" ".join(first.split()))


def int_at_least(low: int, most: int | None = None):
    """An argparse ``type=``: a whole number >= ``low`` (and <= ``most``, when given: a typo's extra digits),
    read as automl's own integer flags read one (:func:`automl.cli.whole_number`: ``10``, ``10.0`` and ``1e1``
    are 10; ``2.5``, ``nan``, ``1e400`` one message naming the flag)."""

    def parse(text: str) -> int:
        value = whole_number(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{value}: must be a whole number >= {low}")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"{value}: at most {most:,} (a typo?)")
        return value

    parse.__name__ = f"int>={low}"
    return parse


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)


def seed_int(text: str) -> int:
    """An argparse ``type=``: a seed, a whole number from -10^15 to 10^15 as a recipe's (torch's are 64-bit)."""
    value = whole_number(text)
    if abs(value) > SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"{value}: must be a seed from -10^15 to 10^15")
    return value


thread_count = int_at_least(1, MAX_THREADS)  # a flag that sets torch's (or OpenMP's) threads: automl's bound
batch_size = int_at_least(1, MAX_BATCH)  # a batch flag: automl's bound (a typo's extra digits would allocate)


TIMINGS_MEANINGLESS = "so the timings will not reflect the machine"


def threads_warning(threads: int, effect: str = TIMINGS_MEANINGLESS, given: bool = True) -> str | None:
    """:func:`automl.profile.threads_warning` for ``threads`` (``automl space profile --threads``'s words) on the
    CPUs this process can keep busy, or None within them. ``effect``: what the oversubscription does to the
    script's figures; ``given`` False: the count is torch's default, not a ``--threads`` the user gave."""
    what = None if given else f"torch's default of {threads} threads (--threads not given)"
    return profile_threads_warning(threads, usable_cores(), effect, what)


def warn_threads(threads: int, effect: str = TIMINGS_MEANINGLESS, given: bool = True) -> None:
    """Print :func:`threads_warning` on stderr, where there is one (after the arguments' checks: a refused
    command prints its error alone)."""
    warning = threads_warning(threads, effect, given)
    if warning:
        print(warning, file=sys.stderr, flush=True)


def finite_float(text: str) -> float:
    """An argparse ``type=``: a finite number (``nan`` and ``inf`` are no setting: a figure of NaN, or a timeout
    that Python cannot wait for)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text}: must be a finite number")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text}: must be > 0")
    return value


def nonneg_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be >= 0")
    return value


def int_list(low: int = 0, most: int | None = None):
    """An argparse ``type=``: comma-separated whole numbers >= ``low`` (and <= ``most``, when given) (``0,1,2``),
    as a list."""
    one = int_at_least(low, most)

    def parse(text: str) -> list[int]:
        return [one(x.strip()) for x in text.split(",")]

    parse.__name__ = "list"
    return parse


def seed_list(text: str) -> list[int]:
    """An argparse ``type=``: comma-separated seeds from 0 to 10^15 (a recipe's bound, :func:`seed_int`)."""
    return int_list(0, SEED_LIMIT)(text)


def names(choices):
    """An argparse ``type=``: comma-separated names, each one of ``choices`` (``choices=`` for a list flag)."""
    choices = [str(c) for c in choices]

    def parse(text: str) -> list[str]:
        got = [x.strip() for x in text.split(",")]
        for x in got:
            if x not in choices:
                raise argparse.ArgumentTypeError(f"invalid choice: {x!r} (choose from {', '.join(choices)})")
        return got

    parse.__name__ = "list"
    return parse


def device(text: str) -> torch.device:
    """An argparse ``type=``: a torch device that exists here (``cpu``, ``cuda``, ``cuda:1``)."""
    try:
        dev = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device (cpu or cuda)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text}: torch sees no CUDA GPU on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text}: torch sees {torch.cuda.device_count()} CUDA GPU(s) here "
                                         f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    if dev.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text}: the benchmarks run on cpu or cuda")
    return dev


def space_parser(default_space: str, doc: str | None = None) -> Parser:
    """The arguments every per-space benchmark takes: SPACE, --set k=v, --batch, --device."""
    p = parser(doc)
    p.add_argument("space", nargs="?", default=default_space, help="the .space file of the supernet")
    p.add_argument("--set", action="append", help="space parameter override k=v")
    p.add_argument("--batch", type=batch_size, default=64, help="images per step (a batch)")
    p.add_argument("--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu or cuda")
    return p


# ------------------------------------------------------------------------------------------ how a script ends


def show(cmd: list[str]) -> str:
    """A child's command line as a user would type it (``python -m automl run ...``)."""
    return shlex.join(["python" if c == sys.executable else str(c) for c in cmd])


class ChildFailed(Exception):
    """A child process (``automl run``, torchrun) exited non-zero: the script stops with one line naming the
    command; exit 2 when the child's was 2 (a user mistake it reported), else 1."""

    def __init__(self, cmd: list[str], returncode: int, detail: str | None = None, log=None):
        self.cmd, self.returncode, self.detail, self.log = list(cmd), returncode, detail, log
        self.exit_code = 2 if returncode == 2 else 1
        super().__init__(self.text())

    def text(self) -> str:
        extra = f": {self.detail}" if self.detail else ""
        log = f" (log: {self.log})" if self.log else ""
        return f"error: `{show(self.cmd)}` failed (exit {self.returncode}){extra}{log}"


def check_child(cmd: list[str], returncode: int, stderr: str | None = None, log=None) -> None:
    """Raise :class:`ChildFailed` unless ``returncode`` is 0; ``stderr``'s last line is its detail."""
    if returncode != 0:
        lines = [x for x in (stderr or "").splitlines() if x.strip()]
        raise ChildFailed(cmd, returncode, lines[-1].strip() if lines else None, log)


def run_main(main, *args) -> None:
    """A script's entry point: ``main(*args)``; automl's ``UserError`` (RecipeError, SpaceError, ParamError,
    DataError are ones) and a failed child print one message and exit 2 (a failed child: its own code); a path
    the machine refuses (a full disk, no permission; a missing folder or a file where a folder should be on a path
    the user named, :func:`users_os_error`) one line naming it and exit 2; Ctrl-C (``KeyboardInterrupt``) one
    line and exit 130 (128 + SIGINT, as a shell reports it), SIGTERM 143 and SIGHUP 129 (:class:`Stop`), no
    traceback: the children still running are first passed the signal and given :data:`STOP_WAIT` seconds to
    exit on their own (:func:`stop_children`). Each call is a run of the script: an earlier call's stop refuses
    none of its children."""
    _STOPPING.clear()
    with _stops_raised():
        try:
            rc = main(*args)
        except KeyboardInterrupt as e:
            signum = getattr(e, "signum", signal.SIGINT)
            stop_children(signum)
            how = "Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name
            print(f"{_prog()}: stopped by {how}: what it had not printed was not measured", file=sys.stderr)
            sys.exit(128 + signum)
        except UserError as e:
            print(e.text(), file=sys.stderr)
            sys.exit(e.exit_code)
        except ChildFailed as e:
            print(e.text(), file=sys.stderr)
            sys.exit(e.exit_code)
        except OSError as e:
            if not users_os_error(e, args):
                raise  # an internal error: its traceback
            print(f"{_prog()}: {e.filename}: {e.strerror}; check the path (and its permissions, and the free "
                  f"space) and run the command again", file=sys.stderr)
            sys.exit(2)
    sys.exit(rc or 0)


# a path with a file where a folder should be (``--out`` naming a file, or a folder under one), or under a folder
# that does not exist: the user's only on a path the user named (:func:`users_os_error`)
NOT_A_FOLDER = (errno.EEXIST, errno.ENOTDIR, errno.ENOENT)
_OUT_FOLDERS: set[Path] = set()  # the folders out_folder made or found, absolute: the script's output


def _absolute(path) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fsdecode(path))))


def named_paths(args=()) -> list[Path]:
    """The paths the user named, absolute: the script's output folders (:func:`out_folder`) and each word of its
    command line (``sys.argv`` and the arguments ``args`` a script's ``main`` takes), whole, and its value after
    ``=`` (``--out=DIR``, ``data.root=DIR``) and that value's comma-separated parts (``--one-se RUN1,RUN2``)."""
    words = list(sys.argv[1:])
    for a in args:
        words += a if isinstance(a, (list, tuple)) else [a]
    named = set(_OUT_FOLDERS)
    for word in words:
        if not isinstance(word, str):
            continue
        value = word.split("=", 1)[-1]
        named.update(_absolute(w) for w in (word, value, *value.split(",")) if w.strip())
    return sorted(named)


def users_os_error(e: OSError, args=()) -> bool:
    """Whether ``e`` is the user's to fix (exit 2, one line) rather than a bug (its traceback, exit 1): a full
    disk, a file past a size limit (``ulimit -f``) or a path the machine refuses (no permission, too long, a
    read-only file system), wherever it is; a
    missing file or folder, or a file where a folder should be (:data:`NOT_A_FOLDER`), only on a path the user
    named or under one (:func:`named_paths`): elsewhere it is a file the script ships or made itself, and missing
    it is the script's fault. Only an error that names its file."""
    files = [f for f in (e.filename, e.filename2) if isinstance(f, (str, bytes, os.PathLike)) and os.fsdecode(f)]
    if not files:
        return False
    if e.errno in (*DISK_FULL, *FILE_TOO_LARGE, *PATH_REFUSED):
        return True
    if e.errno not in NOT_A_FOLDER:
        return False
    named = named_paths(args)
    return any(p == n or n in p.parents for p in map(_absolute, files) for n in named)


def _prog() -> str:
    return Path(sys.argv[0]).name


def out_folder(text: str, flag: str = "--out") -> Path:
    """The folder ``text`` that a script writes into (``--out``), created with its parents: one that cannot be
    (a file there, a file among its parents, no permission) is a :class:`UserError` naming ``flag``."""
    if not text.strip():
        raise UserError(f"{flag} is empty: give the folder to write into (e.g. {flag} runs/bench)")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {text} is a file, not a folder; choose a folder (a new one, or one of this "
                        f"script's earlier runs)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{flag} {text}: cannot create it ({e.strerror}); choose a folder you can write") from None
    _OUT_FOLDERS.add(_absolute(path))
    return path


# ------------------------------------------------------------------------------------------ child processes

# seconds a child is given to exit on its own after a stop signal is passed on to it (automl run finishes its
# training step and writes a checkpoint, seconds on a large supernet); then, or at a second Ctrl-C, it is killed
STOP_WAIT = 30.0
_CHILDREN: set[subprocess.Popen] = set()
_CHILDREN_LOCK = threading.Lock()
_STOPPING = threading.Event()  # set by stop_children: no child is started after it; run_main clears it


class Stop(KeyboardInterrupt):
    """SIGTERM or SIGHUP while :func:`run_main` runs the script, raised where Ctrl-C raises
    ``KeyboardInterrupt``: the script stops as on Ctrl-C, passing ``signum`` on to its children."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def _stops_raised():
    """SIGTERM and SIGHUP raise :class:`Stop` inside the block, where their handler is the default (not one a
    script set, nor SIG_IGN under ``nohup``); in the main thread only (Python's handlers are set there)."""
    wanted = [signal.SIGTERM, signal.SIGHUP] if threading.current_thread() is threading.main_thread() else []
    caught = [s for s in wanted if signal.getsignal(s) == signal.SIG_DFL]

    def stop(signum, frame):
        raise Stop(signum)

    old = {s: signal.signal(s, stop) for s in caught}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def run_child(cmd: list[str], env=None, stdout=None, stderr=None, timeout: float | None = None) -> int | None:
    """``subprocess.run(cmd, ...).returncode``, but with the child in a session of its own, so that a Ctrl-C at
    the terminal reaches this script alone, which passes it on to the child once (:func:`stop_children`; a second
    SIGINT would stop ``automl run`` at once, without its checkpoint) and waits for it to exit on its own, where
    ``subprocess.run`` kills a child 0.25 s after Ctrl-C, perhaps while it writes. ``timeout``: seconds, after
    which the child is killed and None returned. Safe in threads; after a stop no child is started (Ctrl-C's
    ``KeyboardInterrupt`` instead)."""
    with _CHILDREN_LOCK:
        if _STOPPING.is_set():
            raise KeyboardInterrupt
        child = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
        _CHILDREN.add(child)
    try:
        return child.wait(timeout)
    except subprocess.TimeoutExpired:
        _signal(child, signal.SIGKILL)
        child.wait()
        return None
    except KeyboardInterrupt as e:  # the main thread's Ctrl-C (or Stop): the child stops before anything is removed
        stop_children(getattr(e, "signum", signal.SIGINT))
        raise
    finally:
        if child.returncode is not None:
            with _CHILDREN_LOCK:
                _CHILDREN.discard(child)


def run_child_captured(cmd: list[str], env=None, timeout: float | None = None) -> tuple[int | None, str, str]:
    """:func:`run_child` with its standard output and error read back (exit code, out, err): through files, not
    pipes, which no one would read while a stopped child prints its last lines."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        rc = run_child(cmd, env, out, err, timeout)
        out.seek(0)
        err.seek(0)
        return rc, out.read().decode(errors="replace"), err.read().decode(errors="replace")


def stop_children(signum: int = signal.SIGINT, by_signal: bool = True) -> KeyboardInterrupt | None:
    """Pass ``signum`` on to each child of :func:`run_child` still running (to its process group: an image
    folder's DataLoader workers as Ctrl-C reaches them) and wait up to :data:`STOP_WAIT` seconds for them to exit
    on their own, saying so in one line; those still running then, or at a Ctrl-C (a second one where the stop
    is a signal's; ``by_signal`` False: the script stops them for a reason of its own), are killed. No child is
    started after it (until :func:`run_main` runs a script again). Returns the Ctrl-C (``KeyboardInterrupt``, or
    :class:`Stop`) that cut the wait short, or None. Ctrl-C reaches the main thread alone: called in another
    thread, the wait cannot be cut short."""
    with _CHILDREN_LOCK:
        _STOPPING.set()
        running = [c for c in _CHILDREN if c.poll() is None]
    if not running:
        return None
    interrupt = None
    try:
        for child in running:
            _signal(child, signum)
        them = f"{len(running)} child processes" if len(running) > 1 else "the child process"
        print(f"{_prog()}: {signal.Signals(signum).name} passed on; waiting up to {STOP_WAIT:g} s for {them} to "
              f"stop (a child running automl run saves a checkpoint first); "
              f"Ctrl-C {'again ' if by_signal else ''}to kill now",
              file=sys.stderr, flush=True)
        deadline = time.monotonic() + STOP_WAIT
        for child in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt as e:  # a second Ctrl-C (or a SIGTERM, Stop): kill now
        interrupt = e
    finally:
        left = [c for c in running if c.poll() is None]
        for child in left:
            _signal(child, signal.SIGKILL)
            child.wait()
        if left:
            print(f"{_prog()}: killed {len(left)} child process{'es' if len(left) > 1 else ''} that had not "
                  f"stopped (a run folder may hold an unfinished step: its last checkpoint is whole)",
                  file=sys.stderr, flush=True)
    return interrupt


def _signal(child: subprocess.Popen, signum: int) -> None:
    """``signum`` to ``child``'s process group (its session's, which :func:`run_child` made), while it runs."""
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signum)


def median(xs) -> float:
    return statistics.median(xs)


def json_line(name: str, **fields) -> None:
    """The one machine-readable line a script ends with: ``{"benchmark": name, "machine": machine(), **fields}``
    as strict JSON (a NaN or inf is ``null``)."""
    line = {"benchmark": name, "machine": machine(), **fields}
    print(json.dumps(strict_json(line), allow_nan=False), flush=True)


def progress(row: dict) -> None:
    """One finished row of a table still being measured, as ``key=value`` pairs (floats as in :func:`emit`)."""
    print("  ".join(f"{k}={_fmt(v)}" for k, v in row.items()), flush=True)


def emit(name: str, rows: list[dict], **extra) -> None:
    """A human table, then one JSON line (:func:`json_line`, with ``rows`` and ``extra``)."""
    if rows:
        keys = list(rows[0])
        widths = [max(len(str(k)), *(len(_fmt(r[k])) for r in rows)) for k in keys]
        print("  ".join(str(k).ljust(w) for k, w in zip(keys, widths)))
        for r in rows:
            print("  ".join(_fmt(r[k]).ljust(w) for k, w in zip(keys, widths)))
    json_line(name, rows=rows, **extra)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# ------------------------------------------------------------------------------------------ files


def cached_json(path: str | os.PathLike, problem=None):
    """The JSON an earlier run of the script left in ``path``, or None: when there is none, or when it cannot be
    used (not UTF-8 JSON, e.g. a file another program cut short, or ``problem(value)`` names what is wrong
    with it): then a line on stderr says it is computed again."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        why = f"not JSON ({e})"
    else:
        why = problem(value) if problem else None
        if why is None:
            return value
    print(f"{path}: {why}; computing it again", file=sys.stderr, flush=True)
    return None


# ------------------------------------------------------------------------------------------ run folders

RESULTS = "results.json"
# automl run's lock on its folder: an exclusive flock on OUT/.lock, held while the run writes there (the kernel
# drops it when the run's process ends, however it ends); tests/test_review_gd.py checks the name is automl's
LOCK_FILE = ".lock"

class Fields(BaseModel):
    """What a script reads of a run's results.json: each field of the type automl writes (strict: ``true`` is no
    number, ``"3"`` no count; a whole number is a number), ``float | None`` a measurement (null where the run
    has none, or a non-finite one); fields the script does not read are not looked at. :func:`fields_problem`
    checks a value against one."""

    model_config = ConfigDict(strict=True, extra="ignore")


# what a field should be, by pydantic's error type, for :func:`fields_problem`
_SHOULD_BE = {"int_type": "a whole number", "float_type": "a number", "string_type": "a string",
              "list_type": "a list", "dict_type": "a JSON object", "model_type": "a JSON object",
              "too_short": "a list of at least one entry"}


def fields_problem(model: type[BaseModel], value, where: str = "") -> str | None:
    """What makes ``value`` (parsed JSON) not what ``model`` (a :class:`Fields`) describes, in one line naming
    the first such field after ``where`` (``architectures[0].params: "x" is not a whole number``,
    ``search_seconds: missing``), or None."""
    try:
        model.model_validate(value)
        return None
    except ValidationError as e:
        error = e.errors()[0]
    key = where
    for part in error["loc"]:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    if error["type"] == "missing":
        return f"{key}: missing"
    got = shortened(json.dumps(error["input"], allow_nan=True, default=str))
    what = f"{got} is not {_SHOULD_BE.get(error['type'], error['msg'])}"
    return f"{key}: {what}" if key else what


def damaged(path, why: str, fix: str) -> UserError:
    """The one-line refusal of a run's results file that cannot be used: ``path``, ``why``, and ``fix``."""
    return UserError(f"{path}: {why}; not an automl run's whole results (damaged, cut short or edited): {fix}")


def run_results(folder, model: type[BaseModel], fix: str) -> dict:
    """``folder``'s results.json, an automl run's, checked against ``model`` (:func:`fields_problem`); one that
    cannot be read, is not JSON, or is not what ``model`` says is a :class:`UserError` (:func:`damaged`) naming
    the file, what is wrong, and ``fix`` (what to do: e.g. delete the folder to run it again)."""
    path = Path(folder) / RESULTS
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:  # gone, a folder, no permission
        why = f"cannot be read ({e.strerror or e})"
    except ValueError as e:  # JSONDecodeError (cut short), UnicodeDecodeError
        why = f"not JSON ({e})"
    else:
        why = fields_problem(model, value)
        if why is None:
            return value
    raise damaged(path, why, fix)


def measured(value) -> float:
    """A measurement as results.json holds it: a number, or null for a non-finite one (strict JSON has no NaN),
    read as NaN."""
    return float("nan") if value is None else float(value)


def running_in(folder) -> str | None:
    """The automl run still writing in ``folder`` (one that holds its lock, :data:`LOCK_FILE`: e.g. the child of
    a script that was killed, still running in a session of its own), in words ("process 1234 (automl run ...)"),
    or None when none does (no lock file, or its lock is free, or the file system has no locks)."""
    held = _lock_holder(folder)
    return None if held is None else held[0]


def _lock_holder(folder) -> tuple[str, str] | None:
    """(who holds the lock on ``folder``, how to stop it), or None (:func:`running_in`). Only looks: a shared lock
    tried without waiting and dropped at once, on the file opened for reading."""
    if fcntl is None:
        return None
    try:
        fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None  # a file system that refuses locks: nothing is known
        return _holder(fd)
    finally:
        os.close(fd)  # drops the shared lock, if taken
    return None


def _holder(fd: int) -> tuple[str, str]:
    """The holder a lock file names (automl run writes ``{"pid", "host", "command"}`` into the file it locks) and
    how to stop it: ``kill PID`` for a process on this machine."""
    try:
        record = json.loads(os.pread(fd, 65536, 0).decode())
        pid, host, command = int(record["pid"]), str(record.get("host", "")), str(record.get("command", ""))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # not written yet, or not a record
        return "its process not named yet", "stop it"
    there = host and host != socket.gethostname()
    who = f"process {pid}" + (f" on {host}" if there else "") + (f" ({shortened(command)})" if command else "")
    return who, ("stop it where it runs" if there else f"stop it (kill {pid})")


def check_not_running(folder) -> None:
    """A :class:`UserError` when an automl run still writes in ``folder`` (:func:`running_in`): the folder is
    not to be removed or written to while it does."""
    held = _lock_holder(folder)
    if held is not None:
        raise UserError(f"{folder} is in use by a running automl process ({held[0]}); wait for it to end, or "
                        f"{held[1]}: it saves a checkpoint and exits; then run this script again")
