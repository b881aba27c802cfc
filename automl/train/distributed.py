"""Data-parallel training under ``torchrun`` (no launcher of our own).

Design (see README "Distributed"):

* Every rank runs the same program with the same seed, so every rank samples the **same** λ architectures
  at every step (the engine's RNG is identical everywhere). Each rank computes the loss of those paths on
  its own shard of the mini-batch.
* Weight phase: a single-path supernet leaves most parameters without a gradient. Because the paths are
  identical on all ranks, the set of parameters that have a gradient is identical too, so we all-reduce
  exactly those gradients (flattened into one buffer) instead of paying DDP's ``find_unused_parameters``
  graph traversal every step.
* θ phase: the λ losses are all-reduced (mean over ranks) and every rank applies the identical ``tell()``,
  so θ never diverges between ranks.
* BatchNorm: each rank's forward passes update the running statistics from its own shard; every weight and
  retraining step averages them over the ranks in the gradients' all-reduce (:func:`all_reduce_grads`), every
  θ step in one small all-reduce of its own, so every rank holds the same network after every step: the one
  rank 0 checkpoints, evaluates and exports.
* Only rank 0 writes files; all ranks read the same checkpoint on ``--resume``.
* A rank that ends (a crash, an out-of-memory kill) or stops answering for :data:`TIMEOUT` leaves the others
  in a collective that fails: each of them stops with :class:`RanksLost` (one message, exit code 1).
"""

from __future__ import annotations

import datetime
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from automl.errors import UserError, say

__all__ = ["DistInfo", "RanksLost", "TIMEOUT", "launch_info", "init_distributed", "elastic_restart", "reported",
           "said_by_this_rank", "shutdown_distributed", "collective", "batchnorm_stats", "average_over_ranks",
           "all_reduce_grads", "all_reduce_mean", "all_reduce_sum", "barrier", "broadcast_object",
           "assert_same_on_all_ranks", "local_world_size", "losses_unsaid", "as_launched", "continued_by"]

# how long a rank waits for the others, in a collective or as the run starts (rank 0 may checkpoint, evaluate or
# export alone meanwhile); then it stops with RanksLost
TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launch_info() -> DistInfo:
    """This process's place in the run, from the variables torchrun sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
    ``MASTER_ADDR``, ``MASTER_PORT``), checked before anything else of the run is read (``automl run`` calls it
    first, so a mistake in them is what every process says, not a recipe's mistake only rank 0 would print); no
    process group is started. A ``WORLD_SIZE`` above 1 without the rest of what torchrun sets, a value that is not
    a whole number, a ``RANK`` outside 0 … ``WORLD_SIZE`` - 1 (which would wait for ranks that never come), a
    negative ``LOCAL_RANK``, a ``MASTER_PORT`` that is no port, or Slurm's ``srun`` starting several tasks without
    any of them (:func:`_check_slurm_step`) is a :class:`UserError`, printed by this process."""
    world, rank = _env_int("WORLD_SIZE", "1"), _env_int("RANK", "0")
    if not 0 <= rank < max(world, 1):
        raise _printed(UserError(f"the environment sets RANK={rank} with WORLD_SIZE={world} (1 when unset): a rank "
                                 f"is 0 … WORLD_SIZE - 1; torchrun sets both for each process it starts: start the "
                                 f"run with torchrun, or unset RANK to run one process"))
    if world <= 1:
        _check_slurm_step()
        return DistInfo()
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k, "").strip()]
    if missing:
        raise _printed(UserError(f"the environment sets WORLD_SIZE={world} but not {', '.join(missing)}: automl "
                                 f"runs several processes only under torchrun, which sets them all; start the run "
                                 f"with torchrun --nproc_per_node={world} -m automl run ..., or unset WORLD_SIZE to "
                                 f"run one process"))
    if not 0 < _env_int("MASTER_PORT", "0") < 65536:
        raise _printed(UserError(f"the environment sets MASTER_PORT={os.environ['MASTER_PORT'].strip()}, which is "
                                 f"no port (1 … 65535): give every process of the run the same free port "
                                 f"(torchrun --master_port=N)"))
    local = _env_int("LOCAL_RANK", "0")
    if local < 0:
        raise _printed(UserError(f"the environment sets LOCAL_RANK={local}: it is the process's index among the "
                                 f"run's processes on its machine, 0 or more; torchrun sets it (Slurm's srun without "
                                 f"torchrun: LOCAL_RANK=$SLURM_LOCALID)"))
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def _check_slurm_step() -> None:
    """Slurm's ``srun -n N`` (N > 1) starting ``automl run`` itself, without torchrun and without ``RANK`` and
    ``WORLD_SIZE``, would start N runs of one process each, side by side: a :class:`UserError`, printed once (by
    the step's task 0; the others stop on it unsaid). A batch script or ``salloc`` shell is no step of several
    tasks (Slurm sets ``SLURM_STEP_NUM_TASKS`` for the tasks ``srun`` starts)."""
    tasks = os.environ.get("SLURM_STEP_NUM_TASKS", "").strip()
    if not tasks.isdigit() or int(tasks) <= 1 or "SLURM_PROCID" not in os.environ:
        return
    if any(os.environ.get(k, "").strip() for k in ("RANK", "WORLD_SIZE")):
        return
    e = UserError(f"Slurm's srun started {tasks} tasks of this command (SLURM_STEP_NUM_TASKS={tasks}) without "
                  f"torchrun: each would run the whole search alone; start one torchrun per machine (srun "
                  f"--ntasks-per-node=1 torchrun --nnodes=$SLURM_NNODES --nproc_per_node=N ... -m automl run ...), or "
                  f"set RANK=$SLURM_PROCID WORLD_SIZE=$SLURM_NTASKS LOCAL_RANK=$SLURM_LOCALID, MASTER_ADDR and "
                  f"MASTER_PORT for each task; for one process, srun --ntasks=1")
    e.printed = os.environ["SLURM_PROCID"].strip() != "0"
    raise e


def init_distributed(device_kind: str) -> DistInfo:
    """Initialise the process group when started by torchrun (``WORLD_SIZE`` > 1); gloo on CPU, nccl on CUDA.
    The environment is checked as :func:`launch_info` does; nccl also needs ``LOCAL_RANK`` and a GPU for it
    (:func:`_check_gpus`), and a ``MASTER_PORT`` another program listens on is a :class:`UserError`, printed by
    this rank."""
    info = launch_info()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        bound = {}
        if backend == "nccl":
            _check_gpus(info.local_rank)
            torch.cuda.set_device(info.local_rank)
            # the group's GPU: barrier() would otherwise guess it and warn on rank 0 ("using the device under
            # current context"), and the ranks' NCCL connections are made here, inside _starting's errors
            bound = {"device_id": torch.device("cuda", info.local_rank)}
        with _starting(info):
            dist.init_process_group(backend=backend, timeout=TIMEOUT, **bound, **_restarted_store(info))
    return info


def elastic_restart() -> int:
    """How many times torchrun has restarted this process's worker group (``--max-restarts``): its
    ``TORCHELASTIC_RESTART_COUNT``, 0 when unset (a first start, or no torchrun)."""
    return _env_int("TORCHELASTIC_RESTART_COUNT", "0")


def _restarted_store(info: DistInfo) -> dict:
    """``init_process_group``'s ``store``, ``rank`` and ``world_size`` for a worker group torchrun restarted
    (:func:`elastic_restart` > 0), else nothing (torch's own ``env://``). torchrun's restarted workers meet in
    the same agent store as the ones before them, where the dead ranks' gloo addresses are still written: a new
    rank that reads one before its peer overwrites it connects to a process that is gone and retries until the
    timeout (30 minutes, no word). Each restart's keys go under a prefix of their own instead."""
    restart = elastic_restart()
    if restart <= 0:
        return {}
    store, _, _ = next(dist.rendezvous("env://", info.rank, info.world_size, timeout=TIMEOUT))
    return {"store": dist.PrefixStore(f"automl/restart-{restart}", store), "rank": info.rank,
            "world_size": info.world_size}


@contextmanager
def _starting(info: DistInfo):
    """Around ``init_process_group``: ``MASTER_PORT`` taken by another program is a :class:`UserError` (rank 0
    listens there when no torchrun does), and the ranks that did not all meet is :class:`RanksLost`, saying how long
    this rank waited and why the backend gave up: within :data:`TIMEOUT`, or at once (a rank's address refused the
    connection: its process had ended)."""
    began = time.monotonic()
    try:
        yield
    except RuntimeError as e:
        if isinstance(e, dist.DistNetworkError) and "EADDRINUSE" in str(e):
            port = os.environ.get("MASTER_PORT", "")
            raise _printed(UserError(f"MASTER_PORT={port} is in use on this machine (address already in use): "
                                     f"another run or program listens there; give every process of this run a free "
                                     f"port (torchrun --master_port=N, or MASTER_PORT=N)")) from None
        if not _lost(e):
            raise
        raise _printed(RanksLost(_not_met(info, e, time.monotonic() - began))) from None


def _not_met(info: DistInfo, e: RuntimeError, waited: float) -> str:
    """:class:`RanksLost`'s message for the ranks that did not all meet in ``init_process_group``, which raised
    ``e`` after ``waited`` seconds: the whole :data:`TIMEOUT` (a rank never came: a different ``MASTER_ADDR`` or
    ``MASTER_PORT``, a process not started) or less (the backend gave up: a rank's address refused or closed the
    connection, its process gone)."""
    where = f"{os.environ.get('MASTER_ADDR', '')}:{os.environ.get('MASTER_PORT', '')}"
    head = f"rank {info.rank} of {info.world_size}: the run's {info.world_size} processes did not all meet at {where}"
    if waited >= TIMEOUT.total_seconds() * 0.95:
        return (f"{head} within {_span(TIMEOUT)} ({_reason(e)}): start every process with the same MASTER_ADDR and "
                f"MASTER_PORT, or start the run with torchrun")
    gone = any(w in str(e).lower() for w in _GONE_WORDS)
    why = ("; another of its processes had ended (its own message above, or torchrun's summary, says why)" if gone
           else "")
    return (f"{head}: the backend gave up after {_waited(waited)} ({_reason(e)}){why}; start the run again (with "
            f"--resume if it had written a checkpoint)")


def _env_int(name: str, default: str) -> int:
    """The environment variable ``name`` as a whole number (``default`` when unset or empty); anything else is a
    :class:`UserError` (torchrun sets these to whole numbers)."""
    value = os.environ.get(name, "").strip() or default
    try:
        return int(value)
    except ValueError:
        raise _printed(UserError(f"the environment variable {name}={value!r} is not a whole number; torchrun sets "
                                 f"it for each process it starts: unset it, or start the run with torchrun")) from None


def _quiet_int(name: str) -> int:
    """The environment variable ``name`` as a whole number, 0 when unset or no number, with no word said (on any
    rank): a lost rank's message is of the lost rank, not of a variable torchrun sets (:func:`_what_next`)."""
    try:
        return int(os.environ.get(name, "").strip() or "0")
    except ValueError:
        return 0


def local_world_size(info: DistInfo) -> int:
    """The run's processes on this machine: torchrun's ``LOCAL_WORLD_SIZE`` (without it, ``info``'s world size);
    a value that is not a whole number is a :class:`UserError` naming it."""
    return local_processes(info.world_size)


def local_processes(world_size: int) -> int:
    """:func:`local_world_size` of a run of ``world_size`` processes."""
    return _env_int("LOCAL_WORLD_SIZE", str(world_size))


def _check_gpus(local: int) -> None:
    """nccl puts each of this machine's processes on a GPU of its own (its ``LOCAL_RANK``): refuse, on every
    rank alike, more local processes than visible GPUs (``set_device`` would fail with "invalid device
    ordinal" on some ranks only), and a run of several processes without ``LOCAL_RANK`` (a launch of one's own,
    Slurm's srun without torchrun), whose processes would all take GPU 0."""
    if not os.environ.get("LOCAL_RANK", "").strip():
        raise _printed(UserError("the environment sets WORLD_SIZE and RANK but not LOCAL_RANK, which picks each "
                                 "process's GPU with device cuda (or auto, with a GPU visible): every process would "
                                 "take GPU 0; torchrun sets it; in a launch of your own set it to the process's index "
                                 "on its machine (Slurm's srun: LOCAL_RANK=$SLURM_LOCALID), or start the run with "
                                 "torchrun"))
    procs = max(_env_int("LOCAL_WORLD_SIZE", "0"), local + 1)
    gpus = torch.cuda.device_count()
    if procs > gpus:
        fix = f"use --nproc_per_node={gpus}, or device=cpu" if gpus else "use device=cpu"
        raise UserError(f"torchrun started {procs} processes on this machine but it has {gpus} CUDA GPU"
                        f"{'' if gpus == 1 else 's'} visible, and device cuda (or auto, with a GPU visible) "
                        f"runs each process on a GPU of its own; {fix} to run the {procs} processes on the CPU")


class RanksLost(UserError):
    """Another process of the run ended (a crash, an out-of-memory kill, a signal) or stopped answering, and this
    rank's collective failed. Not a mistake in the input, nor in automl: exit code 1, one message per surviving
    rank (rank 0's printed by the CLI, the others' as they are raised: :func:`_printed`), no traceback."""

    exit_code = 1


# what gloo says when the other end of a connection is gone, and (_LOST_WORDS) what gloo, nccl and torch's store say
# when the other end of a collective is gone or silent
_GONE_WORDS = ("closed by peer", "reset by peer", "pair closure", "broken pipe", "connection refused")
_LOST_WORDS = _GONE_WORDS + ("timed out", "timeout", "remote process exited", "communicator was aborted",
                             "network error")


def _lost(e: RuntimeError) -> bool:
    return isinstance(e, (dist.DistNetworkError, dist.DistStoreError)) or any(w in str(e).lower() for w in _LOST_WORDS)


def _reason(e: BaseException) -> str:
    """The backend's message, first sentence only, without its source-file references (``[.../pair.cc:152]``,
    at its start or inside: gloo's ``connectFullMesh failed with [...] ...``) nor gloo's ``$N`` after an address."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
    text = re.sub(r"\[[^\]\s]*\.(?:cc|cpp|cu|h|hpp|py):\d+\]\s*", "", text)
    text = re.sub(r"(\]:\d+)\$\d+", r"\1", text)
    return text.split(". ")[0].rstrip(".")


def _waited(seconds: float) -> str:
    """``seconds`` as a person says it: ``3 s``, ``2 minutes``."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} minutes"


def _span(t: datetime.timedelta) -> str:
    s = t.total_seconds()
    return f"{s / 60:g} minutes" if s >= 60 else f"{s:g} s"


def _printed(e: UserError) -> UserError:
    """``e``, printed now when this process is not rank 0: the CLI prints only rank 0's errors (under torchrun
    the others stop on the same one), but a rank's own error would then go unsaid. A :class:`RanksLost` inside
    :func:`losses_unsaid` is not printed: the caller says what it means."""
    if os.environ.get("RANK", "0") != "0" and not (_unsaid_depth and isinstance(e, RanksLost)):
        _say(e)
    return e


# how many losses_unsaid() blocks this process is in
_unsaid_depth = 0


@contextmanager
def losses_unsaid():
    """Inside the block, a collective that fails on a lost rank raises :class:`RanksLost` without printing it on a
    rank other than 0 (:func:`_printed`): where the caller knows better what the loss means (the run is complete
    once rank 0 has written its report: automl/pipeline/run.py), and says that instead (or raises it, printed with
    :func:`said_by_this_rank`)."""
    global _unsaid_depth
    _unsaid_depth += 1
    try:
        yield
    finally:
        _unsaid_depth -= 1


def said_by_this_rank(e: UserError) -> UserError:
    """``e``, a rank's own error (its environment, its GPU), printed now when this process is not rank 0, which
    alone the CLI prints for: the other ranks stop on it too (:class:`RanksLost`), unsaid."""
    return _printed(e)


def reported(e: UserError, info: DistInfo, *, before_start: bool = False) -> UserError:
    """``e``, printed now where this process is one to say it but the CLI, which prints the error of the process
    whose ``RANK`` is unset or "0", would not: rank 0 with ``RANK`` empty or spelled otherwise (``RANK=``,
    ``RANK=00``); with ``before_start`` (a mistake each process finds for itself before the ranks meet: a recipe
    missing on one machine only), also the first process of every other machine (``LOCAL_RANK=0``), whose output
    is that machine's own. Under torchrun on one machine: rank 0 alone says it."""
    if e.printed:
        return e
    if info.is_main:
        say = os.environ.get("RANK", "0") != "0"
    else:
        say = before_start and info.local_rank == 0 and bool(os.environ.get("LOCAL_RANK", "").strip())
    if say:
        _say(e)
    return e


def _say(e: UserError) -> None:
    """``e``'s message on standard error, now; ``e`` is marked printed (the CLI prints it no more)."""
    say(e.text())
    e.printed = True


@contextmanager
def collective(info: DistInfo, what: str):
    """Around a collective (``what``: what it exchanges): when another rank has ended or does not answer within
    the process group's timeout, :class:`RanksLost` naming it, instead of the backend's traceback."""
    try:
        yield
    except RuntimeError as e:
        if not info.enabled or not _lost(e):
            raise
        other = f"rank {1 - info.rank}, the run's other process," if info.world_size == 2 else "another rank"
        if "timed out" in str(e).lower() or "timeout" in str(e).lower():
            how = (f"{other} did not answer within the process group's timeout ({_span(TIMEOUT)}): it is stuck "
                   f"or paused, or the ranks are in different steps")
        else:
            how = (f"{other} ended (a crash, an out-of-memory kill, a signal) or its machine went away: its own "
                   f"message above, or torchrun's summary, says why")
        raise _printed(RanksLost(f"rank {info.rank} of {info.world_size}: {how} ({what}: {_reason(e)}); "
                                 f"{_what_next()}")) from None


# the command that continues this run (:func:`as_launched`) and whether it has --out (a restarted worker group
# resumes the run in it), which RanksLost's message names: set by ``automl run`` (:func:`continued_by`)
_continue: dict = {"command": "", "out": False}


@contextmanager
def continued_by(command: str, out_given: bool):
    """Inside the block, :class:`RanksLost`'s message for a lost rank names ``command`` (the run's resume command,
    as launched: :func:`as_launched`), and with torchrun restarts left (``--max-restarts``) says what the restarted
    workers do: resume the run (``out_given``: the command has ``--out``) or start a new one."""
    before = dict(_continue)
    _continue.update(command=command, out=out_given)
    try:
        yield
    finally:
        _continue.update(before)


def restarts_left() -> bool:
    """Whether torchrun restarts this worker group when a rank is lost (``--max-restarts``): its
    ``TORCHELASTIC_RESTART_COUNT`` below its ``TORCHELASTIC_MAX_RESTARTS`` (unset or no number: 0)."""
    return _quiet_int("TORCHELASTIC_RESTART_COUNT") < _quiet_int("TORCHELASTIC_MAX_RESTARTS")


def _what_next() -> str:
    """What a rank that lost another says comes next: torchrun restarts the workers when it has restarts left
    (``TORCHELASTIC_RESTART_COUNT`` below ``TORCHELASTIC_MAX_RESTARTS``), else the run is continued by hand."""
    command = _continue["command"]
    by_hand = "continue the run with --resume" + (f": {command}" if command else "")
    if not restarts_left():
        return f"the checkpoints written so far are intact: {by_hand}"
    restart, most = _quiet_int("TORCHELASTIC_RESTART_COUNT"), _quiet_int("TORCHELASTIC_MAX_RESTARTS")
    restarting = f"torchrun restarts the workers (restart {restart + 1} of its --max-restarts={most})"
    if _continue["out"]:
        return (f"{restarting}, which resume the run in its folder by themselves, from its last checkpoint "
                f"(from the start if it has none)")
    if command:
        return (f"{restarting}, which start the run anew in a new folder (the command has no --out); the checkpoints "
                f"written so far are intact: to continue this run instead, stop torchrun and {by_hand}")
    return f"{restarting}, which start the command again; the checkpoints written so far are intact"


def as_launched(command: str) -> str:
    """``command`` (``automl ...``, one process's) as this run's processes were launched, to be pasted to continue
    it: as it is for one process; under torchrun (which sets ``GROUP_WORLD_SIZE``, its machines) on one machine
    ``torchrun --nproc_per_node=LOCAL_WORLD_SIZE -m automl ...``; on several machines with ``--nnodes`` too,
    saying that the rendezvous flags the run was started with are to be added (no process knows them); another
    launch of several processes (``RANK``, ``WORLD_SIZE``... set by hand) with a word on that."""
    world = _env_int("WORLD_SIZE", "1")
    if world <= 1:
        return command
    if not os.environ.get("GROUP_WORLD_SIZE", "").strip():
        return (f"{command}, in each of the run's {world} processes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and "
                f"MASTER_PORT set as for this run)")
    machines = max(_env_int("GROUP_WORLD_SIZE", "1"), 1)
    local = local_processes(world // machines)  # torchrun sets LOCAL_WORLD_SIZE; a launch by hand may not
    rest = command.removeprefix("automl ")
    if machines <= 1:
        return f"torchrun --nproc_per_node={local} -m automl {rest}"
    return (f"torchrun --nnodes={machines} --nproc_per_node={local} -m automl {rest} (on each of the {machines} "
            f"machines, with the rendezvous flags the run was started with added before -m: --rdzv-backend=c10d "
            f"--rdzv-endpoint=HOST:PORT, or --node-rank=N --master-addr=HOST --master-port=PORT)")


def shutdown_distributed() -> None:
    """Destroy the process group, if one was initialised. A rank that exits with it alive leaves gloo's threads
    to the interpreter's teardown, which can abort the process (SIGABRT, "terminate called without an active
    exception") after the run has finished."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def batchnorm_stats(module: nn.Module) -> list[torch.Tensor]:
    """The running means and variances of every BatchNorm in ``module`` that tracks them (not
    ``num_batches_tracked``: every rank counts the same steps)."""
    return [t for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
            for t in (m.running_mean, m.running_var) if t is not None]


def average_over_ranks(tensors: list[torch.Tensor], info: DistInfo) -> None:
    """Replace each of ``tensors`` in place by its mean over the ranks: one flattened all-reduce per dtype."""
    if not info.enabled:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        with collective(info, "averaging gradients or BatchNorm statistics"):
            dist.all_reduce(flat)
        flat /= info.world_size
        for t, v in zip(group, flat.split([t.numel() for t in group])):
            t.copy_(v.view_as(t))


def all_reduce_grads(params, info: DistInfo, stats_of: nn.Module | None = None) -> None:
    """Average the gradients of ``params`` that have one and, with ``stats_of``, that module's BatchNorm
    running statistics (:func:`batchnorm_stats`) over the ranks, in a single flattened all-reduce."""
    if not info.enabled:
        return
    stats = batchnorm_stats(stats_of) if stats_of is not None else []
    average_over_ranks([p.grad for p in params if p.grad is not None] + stats, info)


def all_reduce_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        t = t.clone()
        with collective(info, "averaging over the ranks"):
            dist.all_reduce(t)
        t /= info.world_size
    return t


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        t = t.clone()
        with collective(info, "summing over the ranks"):
            dist.all_reduce(t)
    return t


def barrier(info: DistInfo) -> None:
    if info.enabled:
        with collective(info, "waiting for every rank"):
            dist.barrier()


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    with collective(info, "rank 0 telling the others"):
        dist.broadcast_object_list(box, src=0)
    return box[0]


def assert_same_on_all_ranks(t: torch.Tensor, info: DistInfo, what: str) -> None:
    """Raise if ``t`` differs between ranks (θ must never diverge: every rank applies the same tell())."""
    if not info.enabled:
        return
    t = _for_backend(t, dist.get_backend()).contiguous()
    gathered = [torch.empty_like(t) for _ in range(info.world_size)]
    with collective(info, f"comparing {what}"):
        dist.all_gather(gathered, t)
    for r, g in enumerate(gathered):
        if not torch.equal(g, gathered[0]):
            raise RuntimeError(f"{what} differs between rank 0 and rank {r}: the ranks diverged")


def _for_backend(t: torch.Tensor, backend: str) -> torch.Tensor:
    """``t`` where the backend's collectives take it: nccl only on this rank's GPU (a searcher may return a
    CPU tensor), gloo where it is."""
    if backend == "nccl":
        return t.to(torch.device("cuda", torch.cuda.current_device()))
    return t
