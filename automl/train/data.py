"""Datasets and deterministic loaders for D_W, D_theta, D = D_W ∪ D_theta and the test set (paper §4).

>>> from automl.recipe import DataConfig
>>> data = build_data(DataConfig(dataset="digits"), base_dir=".", seed=0, device="cpu")
>>> data.input_shape, data.num_classes, len(data.w) > 0
((1, 8, 8), 10, True)
>>> x, y = next(iter(data.w.epoch(0)))

The order of the batches of every :class:`Loader` is a pure function of (seed, epoch, rank): resuming a run
at the start of an epoch replays exactly the batches it would have seen, and inside an epoch
``loader.epoch(e, start=k)`` yields the batches after the first k. Training loaders shuffle with a
``torch.Generator`` seeded from (seed, epoch, loader name); with ``world_size > 1`` each rank takes a
disjoint, equal-size shard of that permutation (the remainder is dropped so every rank runs the same
number of steps). A training loader's batches are cut from that order ``batch_size`` at a time, except that
a single item left over joins the batch before it (BatchNorm cannot train on a batch of one). The test
loader does not shuffle and covers each test item exactly once across ranks.

Small datasets (digits, synthetic, CIFAR-10) live on the device as tensors and are batched by indexing,
with CIFAR's augmentation done on the device in batch: no DataLoader, no worker processes. With
``data.cutout`` (CIFAR-10), the D_W and D loaders also cut one square out of each image (:func:`cutout`),
centred from a generator seeded from (seed, epoch, loader name, rank); D_theta, the test set and the BatchNorm
recalibration batches (:meth:`Data.bn_batches`) are whole images.
An image folder's D_W / D_theta split is drawn class by class (each class in the data.theta_split proportion, and
in both halves where it has two images or more); the other datasets' is drawn from all their items at once, and
their data.limit_train keeps the first items (a warning names the classes those miss). A data.theta_split that
leaves D_W or D_theta no item of a class of two items or more is warned about too, with one that keeps them all.
ImageNet-style folders go through a torch DataLoader whose batch sampler replays the same batches; each
training item's random crop and flip are seeded from (seed, epoch, loader name, item), so they do not
depend on the DataLoader workers or on where a run resumed. The workers ignore SIGTERM, SIGINT and SIGHUP from
anyone but the run (:func:`leave_signals_to_the_main_process`): a signal to the whole process group stops the
run through its main process (:mod:`automl.train.preempt`), which still needs batches until it does.
"""

from __future__ import annotations

import copy
import errno
import functools
import gzip
import hashlib
import logging
import math
import os
import pickle
import shlex
import signal
import stat
import threading
import typing
import unicodedata
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from automl.nn.resize import resize_input
from automl.errors import DataError
from automl.train.distributed import local_processes, said_by_this_rank
from automl.train.threads import usable_cores
from automl.recipe import DIGITS_IMAGES, DIGITS_TEST_IMAGES, DataConfig

__all__ = ["Data", "Loader", "TensorLoader", "FolderLoader", "build_data", "cutout", "NATIVE_SIZE", "DIGITS_CSV",
           "DATASETS", "normalization", "eval_crop", "leave_signals_to_the_main_process", "data_changes"]

_logger = logging.getLogger(__name__)

DIGITS_CSV = Path(__file__).resolve().parent.parent / "data" / "digits.csv.gz"
NATIVE_SIZE = {"digits": 8, "cifar10": 32, "imagefolder": 224}
# 360 of the DIGITS_IMAGES (1,797): 1,437 train + 360 test, like scikit-learn's usual 80/20 split
DIGITS_TEST = DIGITS_TEST_IMAGES
DIGITS_SPLIT_SEED = 20240501  # a constant: the digits test set never depends on the recipe's seed
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_CONSTANT_NORMALIZE = {"cifar10": (CIFAR_MEAN, CIFAR_STD), "imagefolder": (IMAGENET_MEAN, IMAGENET_STD)}
# an image folder's test images: resized to size / crop_pct (the shorter side) and centre-cropped to size
_EVAL_CROP = {"imagefolder": {"crop_pct": 0.875, "interpolation": "bilinear"}}
DATASETS: tuple[str, ...] = typing.get_args(DataConfig.model_fields["dataset"].annotation)  # the recipe's choices
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"  # what CIFAR-10's python version comes as; extracted: CIFAR_DIR
_TARS = (".tar", ".tar.gz", ".tgz")
_ARCHIVES = _TARS + (".zip",)  # a file in an image folder's train/ or val/ that is an archive of images
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
# the recipe keys a DataError names as its fix (DataError.recipe_key), for the caller to locate it at their line
_ROOT, _DATASET = ("data", "root"), ("data", "dataset")
_THETA_SPLIT, _LIMIT_TRAIN = ("data", "theta_split"), ("data", "limit_train")

Batch = tuple[torch.Tensor, torch.Tensor]


def _seed_of(*parts: object) -> int:
    """A 63-bit seed from any parts; stable across processes and Python versions (unlike hash())."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class ResizedLoader:
    """A loader's batches resized to one resolution (:meth:`Loader.with_resolution`); everything else is
    the loader's."""

    def __init__(self, loader: "Loader", size: int):
        self.loader, self.size = loader, int(size)

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        for x, y in self.loader.epoch(epoch, start):
            yield resize_input(x, self.size), y

    def with_batch_size(self, batch_size: int | None) -> "ResizedLoader":
        return ResizedLoader(self.loader.with_batch_size(batch_size), self.size)

    def with_seed(self, seed: int | None) -> "ResizedLoader":
        return ResizedLoader(self.loader.with_seed(seed), self.size)

    def with_resolution(self, size: int | None) -> "Loader":
        return self.loader.with_resolution(size)

    def without_cutout(self) -> "ResizedLoader":
        return ResizedLoader(self.loader.without_cutout(), self.size)

    def __getattr__(self, name):
        if name == "loader":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)


class Loader:
    """Batches of one split. ``len(loader)`` is the number of batches per epoch for this rank.

    ``loader.epoch(e)`` yields ``(x, y)``: ``x`` float on the device, ``y`` long. The batch order is a
    pure function of (seed, epoch, rank). Training loaders shuffle; their last batch may be smaller but is
    never empty and never a single item: one item left over joins the batch before it (``batch_size + 1``
    items). The test loader does not shuffle and strides its items over the ranks.
    """

    def __init__(self, name: str, indices: torch.Tensor, batch_size: int, seed: int, shuffle: bool,
                 rank: int = 0, world_size: int = 1):
        self.name, self.batch_size, self.seed, self.shuffle = name, int(batch_size), seed, shuffle
        self.indices = indices.long().cpu()  # dataset items of this split (all ranks)
        self.rank, self.world_size = rank, world_size

    @property
    def num_samples(self) -> int:
        """Items this rank sees per epoch."""
        n = len(self.indices)
        if self.shuffle:
            return n // self.world_size
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size) - self._merges_last()

    def _merges_last(self) -> bool:
        """Whether one item is left over after the full batches of a training loader, to join the last of
        them (BatchNorm in train mode cannot normalise a batch of one)."""
        full, rest = divmod(self.num_samples, self.batch_size)
        return self.shuffle and rest == 1 and full > 0

    def order(self, epoch: int) -> torch.Tensor:
        """Dataset indices this rank visits in ``epoch``, in order."""
        if not self.shuffle:
            return self.indices[self.rank::self.world_size]
        g = torch.Generator().manual_seed(_seed_of(self.seed, epoch, self.name))
        perm = self.indices[torch.randperm(len(self.indices), generator=g)]
        per_rank = len(perm) // self.world_size
        return perm[self.rank: per_rank * self.world_size: self.world_size]

    def batches(self, epoch: int, device: torch.device | None = None) -> list[torch.Tensor]:
        """The index batches of ``epoch`` (none empty; ``len(self)`` of them); with ``device``, views of one
        non-blocking copy of the epoch's order there (a blocking copy per batch would wait for the GPU at every
        step)."""
        order = self.order(epoch)
        if device is not None:
            order = order.to(device, non_blocking=True)
        parts = [b for b in order.split(self.batch_size) if len(b)]
        if self._merges_last():
            parts[-2:] = [order[-(self.batch_size + 1):]]
        return parts

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """The batches of ``epoch`` from batch ``start`` on (a run resumed inside the epoch skips the
        batches it already trained on; the rest are the same batches as in an uninterrupted epoch)."""
        raise NotImplementedError

    def with_batch_size(self, batch_size: int | None) -> "Loader":
        """The same split and order with another batch size (``retrain.batch_size``); None: unchanged."""
        if batch_size is None or batch_size == self.batch_size:
            return self
        return self._replaced(batch_size=int(batch_size))

    def with_seed(self, seed: int | None) -> "Loader":
        """The same split and batch size, ordered (and augmented) from another seed; None: unchanged."""
        return self if seed is None or seed == self.seed else self._replaced(seed=seed)

    def with_resolution(self, size: int | None) -> "Loader":
        """The same batches resized to ``size`` x ``size`` (an architecture's elastic resolution); None:
        unchanged."""
        return self if size is None else ResizedLoader(self, size)

    def without_cutout(self) -> "Loader":
        """The same batches without Cutout (``data.cutout``): whole images, for BatchNorm recalibration and
        calibration; a loader without Cutout: itself."""
        return self

    def unsharded(self) -> "Loader":
        """The same loader over every item, not this rank's share (one process: itself)."""
        return self if self.world_size == 1 else self._replaced(rank=0, world_size=1)

    def _replaced(self, **attrs) -> "Loader":
        other = copy.copy(self)
        other.__dict__.update(attrs)
        if isinstance(other, FolderLoader):
            other._batch_sampler, other._loader = _EpochBatches(), None
        return other

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, items={len(self.indices)}, batch_size={self.batch_size},"
                f" batches={len(self)}, shuffle={self.shuffle}, rank={self.rank}/{self.world_size})")


class TensorLoader(Loader):
    """A loader over tensors already on the device: a batch is one indexing op (plus ``augment``).

    ``cutout``: the side of a Cutout square (:func:`cutout`) cut from each image of each batch after
    ``transform``; 0: none. Its centres come from a generator of their own, seeded from (seed, epoch, loader
    name, rank) like the augmentation's, so a resumed epoch replays them and the crops and flips are the same
    with and without Cutout."""

    def __init__(self, name: str, x: torch.Tensor, y: torch.Tensor, indices: torch.Tensor, batch_size: int,
                 seed: int, shuffle: bool, rank: int = 0, world_size: int = 1,
                 transform: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None = None,
                 augment: bool = False, cutout: int = 0):
        super().__init__(name, indices, batch_size, seed, shuffle, rank, world_size)
        self.x, self.y, self.transform, self.augment, self.cutout = x, y, transform, augment, int(cutout)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        # Augmentation draws from its own generator so it, too, replays exactly on resume.
        g = torch.Generator().manual_seed(_seed_of(self.seed, epoch, self.name, self.rank, "augment")) \
            if self.augment else None
        gc = torch.Generator().manual_seed(_seed_of(self.seed, epoch, self.name, self.rank, "cutout")) \
            if self.cutout else None
        for i, idx in enumerate(self.batches(epoch, self.x.device)):
            if i < start and g is None and gc is None:
                continue
            x = self.x[idx]  # a skipped batch, too, makes its draws, so the next batch gets its own
            if self.transform is not None:
                x = self.transform(x, g)
            if gc is not None:
                x = cutout(x, self.cutout, gc)
            if i >= start:
                yield x, self.y[idx]

    def without_cutout(self) -> "TensorLoader":
        return self._replaced(cutout=0) if self.cutout else self


class _EpochBatches(torch.utils.data.Sampler):
    """A DataLoader's batch sampler: yields the batches set for the current epoch (``batches``, index tensors),
    each a list of ``(key, index)`` for :class:`_SeededItems` (``key``: the epoch's augmentation seed, or None
    for no seeding). The DataLoader reads it anew each epoch."""

    def __init__(self):
        self.key: int | None = None
        self.batches: list[torch.Tensor] = []

    def __iter__(self):
        key, batches = self.key, self.batches
        return ([(key, i) for i in b.tolist()] for b in batches)

    def __len__(self):
        return len(self.batches)


class _SeededItems(torch.utils.data.Dataset):
    """``dataset`` indexed by ``(key, index)``: with a key, the item's transform draws from the global torch
    generator seeded from (key, index), and the generator's state is restored afterwards. An item's random
    crop and flip are then a function of its key and index alone, the same in any worker process or in the
    main one, and the process's own random stream (which training draws from too) does not move."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        key, index = item
        if key is None:
            return self.dataset[index]
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(_seed_of(key, index))  # the CPU generator only, not CUDA's
            return self.dataset[index]


# what to do after fixing an image met in a batch: a run goes on from its checkpoint, automl rank and export start over
_AGAIN = "run the same command again (automl run: with --resume)"


class _BadImage:
    """What :func:`_read_image` returns for a file it cannot decode: the batch that holds it becomes this
    object (:func:`_collate`), and :meth:`FolderLoader.epoch` raises it as a :class:`DataError` in the main
    process (an exception raised in a DataLoader worker would come back wrapped in the worker's traceback)."""

    def __init__(self, path: str, reason: str, denied: bool = False):
        self.path, self.reason, self.denied = path, reason, denied

    def error(self, in_batch: bool = False, training: bool = False) -> DataError:
        """The error naming the file. ``in_batch``: met when its batch came up (:meth:`FolderLoader.epoch`), so a
        run may have trained already and resumes from its checkpoint (``--resume``) once the file is fixed;
        ``training``: the file is one of train/'s images. Those are numbered in the order they are listed, and the
        D_W / D_theta split and data.limit_train are drawn from those numbers: a resumed run without the file
        would draw another split, whose D_theta holds images the weights have trained on, so the fix for it is a
        readable copy under the same name."""
        if self.denied:
            fix = _make_readable(self.path) + (f", then {_AGAIN}" if in_batch else "")
            return DataError(f"cannot read the image {self.path}: {_DENIED_FILE}; {fix}")
        if in_batch and training:
            return DataError(f"cannot read the image {self.path}: {self.reason}; replace it with a readable image of "
                             f"its class under the same name and {_AGAIN}, or remove it and start a new run: the "
                             f"D_W / D_theta split is drawn from the list of training images, so a run resumed "
                             f"without it would search on images its weights trained on ({_IMAGE_RULE})")
        then = f", then {_AGAIN}" if in_batch else ""
        return DataError(f"cannot read the image {self.path}: {self.reason}; remove or replace it{then} "
                         f"({_IMAGE_RULE})")


def _read_image(path: str, reduced: bool = False):
    """The image at ``path`` as RGB (as torchvision's PIL loader reads it, except that a 16-bit grayscale image
    is scaled to 8 bits first, where PIL's conversion would clip it to white), or a :class:`_BadImage` saying
    why it cannot be read. ``reduced``: a JPEG decoded at 1/8 of its size (PIL's draft mode, about 4 times
    faster; every byte of it is still read, so a damaged or truncated file is still found), to check it."""
    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            if reduced:
                img.draft("RGB", (1, 1))
            if img.mode in _SIXTEEN_BIT_MODES or (img.mode == "I" and img.format == "PNG"):
                img = Image.fromarray((np.clip(np.asarray(img, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8))
            return img.convert("RGB")
    except UnidentifiedImageError:
        return _BadImage(path, "the file is empty (0 bytes)" if _is_empty(path) else "not an image file PIL can read")
    except PermissionError:
        return _BadImage(path, "permission denied", denied=True)
    except OSError as e:  # truncated data, the file vanished, a symbolic link to nothing
        if os.path.islink(path) and _leads_nowhere(path):
            return _BadImage(path, f"it is a symbolic link to {os.readlink(path)}, which does not exist")
        return _BadImage(path, e.strerror or str(e))
    except (ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:  # PIL's decoders
        return _BadImage(path, str(e) or type(e).__name__)


# How much of an image folder's train/ and val/ is decoded before a run, each, to check that its images can be read:
# every image of a small folder, a sample drawn with a fixed seed of a larger one. Files and bytes rather than
# seconds, so that every torchrun rank checks the same files and all stop on the same error. Decoded reduced
# (:func:`_read_image`): about 0.3 ms a small JPEG (64 x 64), 1.4 ms an ImageNet-sized one (500 x 375, 55 KB), 80 ms
# a 12-megapixel photo, so at most about 0.3 s for a folder of 1,000 small images and 1 s for 32 MiB of photos
CHECK_FILES, CHECK_BYTES = 1000, 32 << 20


def _check_images(folder: Path, samples: list[tuple[str, int]], files: int | None = None,
                  size: int | None = None) -> int:
    """Refuse images of ``folder`` (train/ or val/ of an image folder) that cannot be read, naming them: decodes
    them in an order drawn from a fixed seed until all are read, or ``files`` of them, or ``size`` bytes, so that a
    damaged file of a small folder, or files that are no images at all (Git LFS pointers, web pages saved as .jpg),
    stop the run before it starts, not when the batch that holds one comes up, hours in (val/ is read only once the
    search is over). Returns how many it read. ``files`` and ``size``: None for :data:`CHECK_FILES` and
    :data:`CHECK_BYTES`."""
    files, size = CHECK_FILES if files is None else files, CHECK_BYTES if size is None else size
    g = torch.Generator().manual_seed(_seed_of(folder.name, "check"))
    bad, checked, read = [], 0, 0
    for i in torch.randperm(len(samples), generator=g)[:files].tolist():
        img = _read_image(samples[i][0], reduced=True)
        checked += 1
        if isinstance(img, _BadImage):
            bad.append(img)
        try:
            read += os.path.getsize(samples[i][0])
        except OSError:
            pass
        if read > size:
            break
    _logger.debug("%s: %d of %d images checked, %d unreadable", folder, checked, len(samples), len(bad))
    if len(bad) == 1:
        raise bad[0].error()
    if bad:
        of = f"the {checked} images" if checked == len(samples) else f"{checked} images checked (of {len(samples)})"
        fix = f"; {_make_readable(folder)}" if any(b.denied for b in bad) else ""
        raise DataError(f"cannot read {len(bad)} of {of} in {folder}: "
                        f"{_listed([f'{b.path} ({b.reason})' for b in bad], 5)}; remove or replace them "
                        f"({_IMAGE_RULE}){fix}")
    return checked


def _is_empty(path: str) -> bool:
    """Whether the file at ``path`` holds 0 bytes."""
    try:
        return os.stat(path).st_size == 0
    except OSError:
        return False


# PIL's modes of 16-bit grayscale images; older Pillow reads a 16-bit PNG as mode "I" (32-bit integers), and
# a PNG holds no 32-bit samples, so a PNG of mode "I" is 16-bit too (a 32-bit TIFF is read as PIL reads it)
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


class _SkipBad:
    """A transform that passes a :class:`_BadImage` through untouched (a class, so workers can pickle it)."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, img):
        return img if isinstance(img, _BadImage) else self.transform(img)


def _collate(items):
    """torch's default collate, or the first :class:`_BadImage` among the items."""
    for x, _ in items:
        if isinstance(x, _BadImage):
            return x
    return torch.utils.data.default_collate(items)


# Signals that stop a run (automl.train.preempt): a DataLoader worker leaves them to the run's main process.
_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2")
                      if hasattr(signal, name))


def leave_signals_to_the_main_process(worker_id: int) -> None:
    """A DataLoader worker's ``worker_init_fn``: SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 sent to the whole
    process group (Slurm's ``scancel`` or ``--signal``, systemd, ``kill -- -PGID``, a terminal's Ctrl-C or
    hang-up) are left to the main process, which finishes its step, checkpoints and stops
    (:mod:`automl.train.preempt`), with batches from these workers until then; a worker that died of them would
    make torch raise in the main process.

    torch ends its workers by ``None`` on their index queues, or, when they do not join in time and at
    interpreter exit (``multiprocessing`` terminates daemon children), by SIGTERM from the parent, after which
    torch's own handler exits at once. So these signals stay blocked (from the fork on,
    :func:`_stop_signals_held`) and a thread takes them (``sigwaitinfo``, which says who sent one): SIGTERM from
    the parent, or any of them once the parent is gone, ends the worker as torch's handler would (exit 0);
    from anyone else, they are ignored. Where
    ``sigwaitinfo`` does not exist (macOS, Windows), the others, which torch never sends, are ignored and
    SIGTERM is left to torch."""
    if not hasattr(signal, "sigwaitinfo"):
        for signum in _STOP_SIGNALS:
            if signum != signal.SIGTERM:
                signal.signal(signum, signal.SIG_IGN)
        return
    parent = os.getppid()
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)  # threads started later inherit the mask
    threading.Thread(target=_take_stop_signals, args=(parent,), name="automl-worker-signals", daemon=True).start()


@contextmanager
def _stop_signals_held():
    """The stop signals (SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2) blocked in this thread inside the block,
    where DataLoader workers are forked: a worker then starts with them blocked, and one sent to the group
    before its ``worker_init_fn`` takes them waits for it instead of killing the worker; this process receives
    any that came meanwhile as the block ends. Nothing where workers cannot take them so (no ``sigwaitinfo``):
    they would keep SIGTERM blocked."""
    if not hasattr(signal, "sigwaitinfo"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _take_stop_signals(parent: int) -> None:
    """A worker's signal thread (:func:`leave_signals_to_the_main_process`)."""
    while True:
        info = signal.sigwaitinfo(_STOP_SIGNALS)
        if (info.si_signo == signal.SIGTERM and info.si_pid == parent) or os.getppid() != parent:
            os._exit(0)


# The start of the warning torch gives, at each DataLoader and at its first iterator, for more workers than the CPUs
# of this process's affinity; automl says it once, naming data.workers (:func:`_workers_warning`)
_TORCH_WORKER_COUNT_WARNING = r"This DataLoader will create \d+ worker processes in total"


@contextmanager
def _no_worker_count_warning():
    """torch's warning for more DataLoader workers than CPUs silenced inside the block (only that warning)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_TORCH_WORKER_COUNT_WARNING, category=UserWarning)
        yield


def _workers_warning(workers: int, cpus: int, local: int = 1) -> str | None:
    """The warning for ``workers`` (data.workers) in each of the run's ``local`` processes on this machine
    (torchrun's, each with loaders of its own) above ``cpus``, the CPUs this process can keep busy
    (:func:`usable_cores`), or None within them. The count is the user's: it is used as set."""
    if workers * local <= cpus:
        return None
    s = "s" * (cpus != 1)
    if local == 1:
        what = f"{workers} is more than the {cpus} CPU{s} this process can use"
    else:
        what = (f"{workers} in each of the run's {local} processes on this machine, {workers * local} in all, is more "
                f"than the {cpus} CPU{s} they share (unless each process is pinned to CPUs of its own)")
    return (f"warning: data.workers: {what} (its CPU affinity and any cgroup CPU quota): the DataLoader worker "
            f"processes take turns on them, which slows the run and may stall it; set data.workers="
            + (f"{cpus // local} or fewer" if cpus >= local else "0 (each process then reads its images itself)")
            + f" (the {workers} workers are used as set)")


class FolderLoader(Loader):
    """A torch DataLoader over an ImageFolder whose batch sampler yields :meth:`Loader.batches`. A training
    item's random transform is seeded from (seed, epoch, loader name, item) (:class:`_SeededItems`), so the
    images of an epoch, or of its rest after ``start`` batches, do not depend on the workers or on what ran
    before; the DataLoader's own seed comes from a private generator, not the process's. A file that is not a
    readable image raises a :class:`DataError` naming it when its batch comes up, with or without workers (said by
    the torchrun rank that meets it), which says to fix it and run the command again (a run: --resume), a training
    image by a readable copy under its name (:meth:`_BadImage.error`); :func:`build_data` decodes the images of a
    small folder, and a sample of a larger one's, before that (:func:`_check_images`)."""

    def __init__(self, name: str, dataset, indices: torch.Tensor, batch_size: int, seed: int, shuffle: bool,
                 device: torch.device, workers: int, rank: int = 0, world_size: int = 1):
        super().__init__(name, indices, batch_size, seed, shuffle, rank, world_size)
        self.dataset, self.device, self.workers = dataset, device, workers
        self._batch_sampler = _EpochBatches()
        self._loader = None  # built on first use: the loader used only for retraining spawns no workers early

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        self._batch_sampler.key = _seed_of(self.seed, epoch, self.name, "augment") if self.shuffle else None
        self._batch_sampler.batches = self.batches(epoch)[start:]
        with _no_worker_count_warning():  # build_data said it, in automl's words (_workers_warning)
            if self._loader is None:
                self._loader = torch.utils.data.DataLoader(
                    _SeededItems(self.dataset), batch_sampler=self._batch_sampler, num_workers=self.workers,
                    pin_memory=self.device.type == "cuda", persistent_workers=self.workers > 0, collate_fn=_collate,
                    generator=torch.Generator().manual_seed(_seed_of(self.seed, self.name, "workers")),
                    worker_init_fn=leave_signals_to_the_main_process)
            with _stop_signals_held():  # the first epoch forks the workers here
                batches = iter(self._loader)
        for batch in batches:
            if isinstance(batch, _BadImage):  # in this rank's share only: said by this rank (torchrun)
                raise said_by_this_rank(batch.error(in_batch=True, training=self.shuffle))
            x, y = batch
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


@dataclass
class Data:
    """The four loaders of a run and the shape of its inputs."""

    input_shape: tuple[int, int, int]  # (C, H, W) after resizing
    num_classes: int
    w: Loader       # D_W: updates the supernet weights
    theta: Loader   # D_theta: updates the distribution parameters theta
    full: Loader    # D = D_W ∪ D_theta: retraining
    test: Loader    # held-out test/validation set
    dataset: str = ""
    # per-channel mean/std applied to pixels in [0, 1] (recorded in export manifests); None: not normalised
    normalize: dict | None = None
    # what the training samples are, as a run records it at its start and --resume compares (data_changes)
    fingerprint: dict | None = None

    def bn_batches(self, n: int, size: int | None = None) -> list[torch.Tensor]:
        """The first ``n`` D_W batches of epoch 0, without Cutout: the fixed images BatchNorm is recalibrated on
        (the same for every path, so paths differ only by their weights); ``size``: resized to an architecture's
        resolution."""
        return [x for x, _ in islice(self.w.without_cutout().with_resolution(size).epoch(0), n)]


# ------------------------------------------------------------------------------------------- building


def build_data(cfg: DataConfig, base_dir: str | os.PathLike, seed: int, device: str | torch.device,
               rank: int = 0, world_size: int = 1) -> Data:
    """Load ``cfg.dataset`` and return its loaders; raises :class:`DataError` for missing data.

    ``cfg.root`` is resolved against ``base_dir`` when relative (a recipe's roots are already absolute).
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} out of range for world_size {world_size}")
    device = torch.device(device)
    root = None
    if cfg.root is not None:
        root = Path(os.path.expanduser(cfg.root))
        if not root.is_absolute():
            root = (Path(base_dir) / root).resolve()
    size = cfg.image_size
    common = dict(seed=seed, rank=rank, world_size=world_size)

    if cfg.dataset == "imagefolder":
        return _build_imagefolder(cfg, root, size or NATIVE_SIZE["imagefolder"], device, common)

    if cfg.dataset == "digits":
        x_tr, y_tr, x_te, y_te, classes, normalize = _load_digits()
        transform_train = transform_test = None
    elif cfg.dataset == "synthetic":
        x_tr, y_tr, x_te, y_te, classes = _make_synthetic(cfg, seed)
        transform_train = transform_test = normalize = None
    elif cfg.dataset == "cifar10":
        x_tr, y_tr, x_te, y_te, classes = _load_cifar10(root, cfg.download)
        normalize = normalization("cifar10")
        target = size or NATIVE_SIZE["cifar10"]
        transform_train = _cifar_transform(train=True, size=target)
        transform_test = _cifar_transform(train=False, size=target)
    else:  # the recipe schema prevents this
        raise DataError(f"unknown dataset {cfg.dataset!r}")

    if cfg.dataset != "cifar10" and size is not None and size != x_tr.shape[-1]:
        x_tr, x_te = _resize(x_tr, size), _resize(x_te, size)

    fingerprint = {"dataset": cfg.dataset, "train": _tensor_fingerprint(y_tr, classes)}
    if cfg.dataset == "cifar10":
        fingerprint["train"]["batches"] = _cifar_sizes(root)
    n_train = len(y_tr) if cfg.limit_train is None else min(cfg.limit_train, len(y_tr))
    idx_w, idx_theta = _split_tensors(cfg, y_tr, n_train, split_seed(cfg, seed), rank, world_size)
    x_tr, y_tr = x_tr[:n_train], y_tr[:n_train]

    x_tr, y_tr, x_te, y_te = (t.to(device) for t in (x_tr, y_tr, x_te, y_te))
    c, h, w = x_tr.shape[1:]
    if cfg.dataset == "cifar10":
        h = w = size or NATIVE_SIZE["cifar10"]
    augment = cfg.dataset == "cifar10"

    def train(name, idx, bs, cut=0):
        return TensorLoader(name, x_tr, y_tr, idx, bs, shuffle=True, transform=transform_train,
                            augment=augment, cutout=cut, **common)

    # Cutout (cifar10) on the batches that train the weights, D_W and D. Not on D_theta, whose batches also score
    # the architectures in the ranking stage: there they stay whole, where ASNG-NAS's search cuts them as well
    cut = cfg.cutout if cfg.dataset == "cifar10" else 0

    _logger.debug("data %s: %d train (D_W %d, D_theta %d), %d test", cfg.dataset, n_train, len(idx_w),
                  len(idx_theta), len(y_te))
    return Data(
        input_shape=(int(c), int(h), int(w)), num_classes=classes, dataset=cfg.dataset, normalize=normalize,
        fingerprint=fingerprint,
        w=train("w", idx_w, cfg.batch_size, cut),
        theta=train("theta", idx_theta, cfg.theta_batch_size or cfg.batch_size),
        full=train("full", torch.arange(n_train), cfg.batch_size, cut),
        test=TensorLoader("test", x_te, y_te, torch.arange(len(y_te)), cfg.test_batch_size, shuffle=False,
                          transform=transform_test, **common),
    )


def _split_tensors(cfg: DataConfig, y_tr: torch.Tensor, n_train: int, seed: int, rank: int,
                   world_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_split` of the first ``n_train`` items of a dataset whose training labels are ``y_tr``, with its
    checks; rank 0 logs the warnings for classes that data.limit_train or data.theta_split leave out (not for
    synthetic data, whose labels are random)."""
    what, limited = f"the {cfg.dataset} training set", n_train < len(y_tr)
    n_theta = _theta_count(n_train, cfg.theta_split, what, limited)
    order = _random_order(n_train, seed)
    idx_w, idx_theta = order[n_theta:].sort().values, order[:n_theta].sort().values  # as _split draws them
    _check_shares(len(idx_w), len(idx_theta), cfg.theta_split, world_size, what, limited=limited)
    if cfg.dataset != "synthetic" and rank == 0:
        for warning in (_classes_cut(y_tr, n_train, what),
                        _classes_split_off(y_tr[:n_train][order], n_theta, cfg.theta_split, what)):
            if warning:
                _logger.warning(warning)
    return idx_w, idx_theta


# ------------------------------------------------------------------------------------------- fingerprint
# The training samples are numbered in the order they are listed, and the D_W / D_theta split and data.limit_train are
# drawn from those numbers: a run resumed on other training data draws another split, whose D_theta holds images its
# weights have trained on. A run records what its training samples are when it starts (``Data.fingerprint``, from
# what is already listed or loaded: no file is read for it, no random number drawn), and ``--resume`` compares
# (:func:`data_changes`). The test set is left out: a test image may be removed or replaced before a resume (the
# error for an unreadable one says so), which changes no split.


def _tensor_fingerprint(y: torch.Tensor, classes: int) -> dict:
    """A loaded training set's: its count, classes, and a digest of its labels in order."""
    labels = np.ascontiguousarray(y.numpy(), dtype=np.int64).tobytes()
    return {"count": len(y), "classes": int(classes), "labels": "sha256:" + hashlib.sha256(labels).hexdigest()}


def _cifar_sizes(root: Path) -> dict[str, int]:
    """The sizes in bytes of CIFAR-10's training batch files (just read, so each can be looked at)."""
    return {name: os.stat(root / CIFAR_DIR / name).st_size for name in CIFAR_FILES[:5]}


def _folder_fingerprint(folder: Path, dataset) -> dict:
    """An image folder's train/: its image count, class names, and a digest of its images' paths below ``folder``
    in the order torchvision lists them (the order they are numbered in)."""
    prefix = str(folder) + os.sep
    cut = len(prefix)
    paths = [p[cut:] if p.startswith(prefix) else os.path.relpath(p, folder) for p, _ in dataset.samples]
    digest = hashlib.sha256("\0".join(paths).encode("utf-8", "surrogateescape")).hexdigest()
    return {"count": len(paths), "classes": list(dataset.classes), "paths": "sha256:" + digest}


_TRAINING_DATA = {"imagefolder": "train/", "cifar10": "CIFAR-10's training batches", "digits": "the bundled digits "
                  "data's training split", "synthetic": "the synthetic training set"}


def _class_count(classes) -> int:
    return len(classes) if isinstance(classes, list) else int(classes)


def _held(train: dict) -> str:
    """``1,281,167 images in 1,000 classes``."""
    k = _class_count(train.get("classes", 0))
    return f"{train.get('count', 0):,} images in {k:,} class{'es' * (k != 1)}"


def _class_changes(before, now) -> str:
    """Which class folders were added and which removed (``before`` and ``now``: lists of names), else ""."""
    if not (isinstance(before, list) and isinstance(now, list)) or before == now:
        return ""
    added, removed = sorted(set(now) - set(before)), sorted(set(before) - set(now))
    parts = ([f"added: {_listed(added, 5)}"] if added else []) + ([f"removed: {_listed(removed, 5)}"] if removed
                                                                  else [])
    return f"class folders {'; '.join(parts)}" if parts else "the class folders are listed in another order"


def data_changes(before: dict, now: dict) -> str | None:
    """How the training data ``now`` (a :attr:`Data.fingerprint`) differs from ``before`` (the one a run recorded
    at its start), in words; None when it is the same."""
    if before == now:
        return None
    b, n = before.get("train") or {}, now.get("train") or {}
    where = _TRAINING_DATA.get(str(before.get("dataset")), "the training set")
    found = []
    if b.get("count") != n.get("count") or _class_count(b.get("classes", 0)) != _class_count(n.get("classes", 0)):
        found.append(f"{where} held {_held(b)} when the run started, now {_held(n)}")
    classes = _class_changes(b.get("classes"), n.get("classes"))
    if classes:
        found.append(classes)
    sizes, sizes_now = b.get("batches") or {}, n.get("batches") or {}
    found += [f"{CIFAR_DIR}/{name} was {size:,} bytes when the run started, now {sizes_now.get(name, 0):,}"
              for name, size in sizes.items() if sizes_now.get(name) != size]
    if not found and b.get("paths") != n.get("paths"):
        found.append(f"the list of training images in {where} differs (same count, same classes: an image renamed, "
                     f"or one removed and another added)")
    if not found and b.get("labels") != n.get("labels"):
        found.append(f"the labels of {where} differ (same count)")
    return "; ".join(found) or f"{where} differs"


def split_seed(cfg: DataConfig, seed: int) -> int:
    """The seed that draws the D_W / D_theta split: ``data.split_seed``, or the run's ``seed`` when null."""
    return seed if cfg.split_seed is None else cfg.split_seed


def _split(n: int, theta_split: float | int, seed: int, what: str = "the training set",
           limited: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Hold out D_theta from the n training items: a count, or a fraction rounded to the nearest item
    (:func:`_theta_count`), drawn from all n at once.

    ``what`` names the training set and ``limited`` says data.limit_train cut it, for the error when n < 2.
    """
    n_theta = _theta_count(n, theta_split, what, limited)
    perm = _random_order(n, seed)
    return perm[n_theta:].sort().values, perm[:n_theta].sort().values


def _random_order(n: int, seed: int) -> torch.Tensor:
    """The order in which :func:`_split` holds out the n items: D_theta is its first n_theta."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(_seed_of(seed, "theta_split")))


def _stratified_split(labels: torch.Tensor, theta_split: float | int, seed: int, what: str = "the training set",
                      limited: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_split` class by class: the positions of D_W and D_theta among items whose classes are ``labels``,
    as many in D_theta as :func:`_split` holds out (with its checks and errors), each class in that proportion.

    A class of c of the n items holds out c x n_theta / n of them rounded down, and the items still to hold out go
    to the classes with the largest remainders (ties in an order seeded from ``seed``), except that a class of 2
    items or more keeps at least one in each half wherever the total allows: its first item is held out before
    any class's second, its last only once every other class holds out all but its last. Which items of a class
    are held out is drawn from ``seed``."""
    n_theta = _theta_count(len(labels), theta_split, what, limited)
    order = _stratified_order(labels, n_theta, seed)
    return order[n_theta:].sort().values, order[:n_theta].sort().values


def _stratified_order(labels: torch.Tensor, n_theta: int, seed: int) -> torch.Tensor:
    """The order in which :func:`_stratified_split` holds out ``n_theta`` of the items whose classes are ``labels``:
    D_theta is its first ``n_theta``. Each class of 2 items or more has one item among the first as many items as
    there are such classes, and one among the last as many, whatever ``n_theta``."""
    n, labels = len(labels), labels.long().cpu()
    g = torch.Generator().manual_seed(_seed_of(seed, "theta_split"))  # as _split seeds its draw
    by_class, cls, counts, k = _grouped_by_class(labels, g)
    c = counts[cls]                                                # the size of each item's class
    # holding out a class's (k+1)-th item leaves it (k + 1 - c x n_theta / n) above its share: n times that
    over = (k + 1) * n - c * n_theta
    tier = torch.ones(n, dtype=torch.long)
    tier[(k == 0) & (c > 1)], tier[(k == c - 1) & (c > 1)] = 0, 2
    order = torch.randperm(len(counts), generator=g)[cls].argsort()  # ties between classes: a seeded order
    order = order[over[order].argsort(stable=True)]
    order = order[tier[order].argsort(stable=True)]
    return by_class[order]


def _theta_count(n: int, theta_split: float | int, what: str, limited: bool) -> int:
    """How many of n training items D_theta holds: ``theta_split`` as a count, or a fraction rounded to the nearest
    item (at least 1, at most n - 1); a :class:`DataError` when n < 2 or the count leaves D_W no item."""
    if n < 2:
        fix = f"raise data.limit_train (now {n})" if limited else "add training items"
        raise DataError(f"{what} has {n} item{'s' * (n != 1)}: too small to split into D_W and D_theta "
                        f"(data.theta_split needs at least 2 training items); {fix}", _LIMIT_TRAIN if limited else None)
    n_theta = theta_split if isinstance(theta_split, int) else round(theta_split * n)
    if isinstance(theta_split, float):
        n_theta = min(max(n_theta, 1), n - 1)
    if not 1 <= n_theta < n:
        raise DataError(f"data.theta_split={theta_split} holds out {n_theta} of {n} training items, leaving "
                        f"none for D_W; use a fraction such as data.theta_split=0.5 or a count below {n}", _THETA_SPLIT)
    return n_theta


def _check_shares(n_w: int, n_theta: int, theta_split: float | int, world_size: int, what: str,
                  limited: bool = False) -> None:
    """Refuse a split that leaves a rank no item of D_W or of D_theta (each rank trains on ``n // world_size``
    of them, :meth:`Loader.order`): that rank's phase would have no batch, so the phase would take no step
    at all (θ would learn nothing). ``what`` names the training set."""
    for name, n, fix in (("D_W", n_w, "lower data.theta_split"), ("D_theta", n_theta, "raise data.theta_split")):
        if n >= world_size:
            continue
        fixes = [fix] + ["raise data.limit_train"] * limited
        raise DataError(f"{name} holds {n} of the {n_w + n_theta} items of {what} (data.theta_split={theta_split}), "
                        f"fewer than the {world_size} ranks of torchrun: each rank trains on its own share of "
                        f"{name}, and a share of {n} // {world_size} = 0 items would take no step; {', '.join(fixes)} "
                        f"or start at most {n} rank{'s' * (n != 1)} (torchrun --nproc_per_node)",
                        _LIMIT_TRAIN if limited else _THETA_SPLIT)


def _classes_cut(labels: torch.Tensor, n: int, what: str) -> str | None:
    """The warning for data.limit_train keeping the first ``n`` of the items of ``what`` (digits, CIFAR-10) whose
    labels are ``labels`` when they miss classes that the others hold: the run would never train on those, yet
    test on them. It names the smallest data.limit_train that keeps every class. None when none is missing."""
    if n >= len(labels):
        return None
    kept, held = set(labels[:n].tolist()), sorted(set(labels.tolist()))
    missing = [c for c in held if c not in kept]
    if not missing:
        return None
    enough = max(int(torch.nonzero(labels == c)[0]) for c in missing) + 1  # the first item of the last class met
    m = len(missing)
    return (f"warning: data.limit_train={n} keeps the first {n} of the {len(labels)} items of {what}, which hold no "
            f"item of {m} of its {len(held)} classes (class{'es' * (m > 1)} {_listed([str(c) for c in missing], 10)}"
            f"): the run trains without {'them' if m > 1 else 'it'} and is still tested on "
            f"{'them' if m > 1 else 'it'}; set data.limit_train to at least {enough} (the first {enough} items hold "
            f"every class), or null")


def _classes_split_off(held_out: torch.Tensor, n_theta: int, theta_split: float | int, what: str,
                        names: list[str] | None = None) -> str | None:
    """The warning for a data.theta_split whose D_W or D_theta holds no item of some classes of ``what`` that have
    2 items or more: ``held_out`` are the labels of its items in the order the split holds them out (D_theta is the
    first ``n_theta``). The supernet's weights never train on a class D_W misses; θ is never updated on one D_theta
    misses. It names the data.theta_split that keeps every such class in both halves. None when none is missing.
    ``names`` are the classes' names (the labels themselves when None)."""
    held_out = held_out.long().cpu()
    counts = torch.bincount(held_out)
    held = torch.nonzero(counts > 1).flatten().tolist()
    halves = {"D_W": set(held_out[n_theta:].tolist()), "D_theta": set(held_out[:n_theta].tolist())}
    missing = {half: [c for c in held if c not in kept] for half, kept in halves.items()}
    if not any(missing.values()):
        return None
    # D_theta holds class c from one count above its first position in the order, D_W up to its last position
    first = [int(torch.nonzero(held_out == c)[0]) + 1 for c in held]
    last = [int(torch.nonzero(held_out == c)[-1]) for c in held]
    low, high, n = max(first), min(last), len(held_out)
    said = [f"{half} no item of {len(m)} of its {len(held)} classes of two items or more (class{'es' * (len(m) > 1)} "
            f"{_listed([str(c) if names is None else names[c] for c in m], 10)})" for half, m in missing.items() if m]
    if low > high:
        fix = ("no data.theta_split keeps every class in both halves with this split seed; set data.split_seed "
               "(another seed draws another order)")
    else:
        bound = f"from {low} to {high}" if all(missing.values()) else \
            (f"at most {high}" if missing["D_W"] else f"at least {low}")
        fix = f"set data.theta_split to a count {bound}"
        fraction = _theta_fraction(n, low, high, up=not missing["D_W"])
        if isinstance(theta_split, float) and fraction is not None:
            fix = f"set data.theta_split to {fraction} (a fraction; or a count {bound})"
        fix += ", which keeps every class of two items or more in both halves"
    return (f"warning: data.theta_split={theta_split} holds out {n_theta} of the {n} items of {what} as D_theta, "
            f"which leaves {' and '.join(said)}: the search trains the supernet's weights on D_W and updates θ on "
            f"D_theta without them; {fix}")


def _theta_fraction(n: int, low: int, high: int, up: bool) -> float | None:
    """The shortest fraction (2 to 6 decimals) that :func:`_theta_count` turns into a count from ``low`` to ``high``
    of n items: the largest of its decimals, or with ``up`` the smallest. None when none is."""
    for d in range(2, 7):
        scale = 10 ** d
        f = (-(-low * scale // n) if up else high * scale // n) / scale
        if 0 < f < 1 and low <= round(f * n) <= high:
            return f
    return None


def _spread_over_classes(targets: list[int], n: int, seed: int) -> torch.Tensor:
    """``n`` of the items whose labels are ``targets`` (an image folder lists them class by class), sorted:
    drawn in rounds that take one item of each class with items left, the classes and each class's items in an
    order seeded from ``seed``. Every class is kept when ``n`` is at least the number of classes, and the
    classes' counts differ by at most one but where a class runs out of items."""
    g = torch.Generator().manual_seed(_seed_of(seed, "limit_train"))
    by_class, cls, counts, rank = _grouped_by_class(torch.as_tensor(targets, dtype=torch.long), g)
    turn = torch.randperm(len(counts), generator=g)                # the classes' order within a round
    return by_class[torch.argsort(rank * len(counts) + turn[cls])[:n]].sort().values


def _grouped_by_class(labels: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """The items whose classes are ``labels`` (long, on the CPU) grouped by class, each class's items in an order
    drawn from ``g``: ``(their positions, their classes, each class's count, each item's rank in its class)``, the
    rank 0 for a class's first item. One draw of ``g`` (a permutation of the items)."""
    perm = torch.randperm(len(labels), generator=g)               # each class's items in a seeded order
    by_class = perm[torch.argsort(labels[perm], stable=True)]      # grouped by class, that order kept
    cls = labels[by_class]
    counts = torch.bincount(cls)
    return by_class, cls, counts, torch.arange(len(cls)) - (torch.cumsum(counts, 0) - counts)[cls]


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < x.shape[-1])


# ------------------------------------------------------------------------------------------- datasets


def _stat(path: Path) -> os.stat_result | None:
    """``path``'s status (links followed), or None where ``Path.exists`` would say False; a folder on the way
    that this user may not enter is a :class:`DataError` naming it (``Path.exists`` raises PermissionError)."""
    try:
        return os.stat(path)
    except PermissionError:
        raise _not_enterable(path) from None
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP):
            return None
        raise


def _exists(path: Path) -> bool:
    return _stat(path) is not None


def _is_dir(path: Path) -> bool:
    st = _stat(path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def _is_file(path: Path) -> bool:
    st = _stat(path)
    return st is not None and stat.S_ISREG(st.st_mode)


def _not_enterable(path: Path) -> DataError:
    """The error for a ``path`` whose status this user may not read: it names the first folder on the way that
    may not be entered (the parent of the first of ``path`` and the folders above it that cannot be stat'ed)."""
    blocked = path.parent
    for p in [*reversed(path.parents), path][1:]:
        try:
            os.stat(p)
        except PermissionError:
            blocked = p.parent
            break
        except OSError:
            break
    return DataError(f"cannot read {path}: this user may not enter the folder {blocked} (permission denied); "
                     f"make it readable (e.g. chmod a+rx {blocked}) or set data.root to a copy this user can read")


def _does_not_exist(path: Path) -> str:
    """"PATH does not exist", and why where ``path`` or a folder above it is a symbolic link to nothing (a drive
    that is not mounted, a dataset moved away): ``ls`` lists such a link, so "does not exist" alone would puzzle."""
    for p in [*reversed(path.parents), path]:
        if os.path.islink(p) and _leads_nowhere(str(p)):
            link = f"is a symbolic link to {os.readlink(p)}, which does not exist"
            return f"{path} {link}" if p == path else f"{path} does not exist: {p} {link}"
    return f"{path} does not exist"


_DENIED_FILE = "this user may not read it (permission denied)"
# The files of an image folder's class folders that are read as images: those whose names end in one of these (in
# any case) and do not start with '.' (:func:`_is_visible_image`); other files are skipped, as torchvision's
# ImageFolder skips them. torchvision's IMG_EXTENSIONS (0.29) as a constant of automl's, which decides what is read
# (ImageFolder's is_valid_file), so that the messages can name the list without importing torchvision
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
_IMAGE_ENDINGS = f"{', '.join(_IMAGE_EXTENSIONS[:-1])} or {_IMAGE_EXTENSIONS[-1]}, in any case"
_IMAGE_RULE = (f"every file of a class folder whose name ends in {_IMAGE_ENDINGS}, is read as an image and must be "
               f"one; files of other names, and those whose names start with '.', are skipped")
_DENIED_FOLDER = "this user may not list the folder (permission denied)"


def _make_readable(path: str | os.PathLike) -> str:
    """How to fix a file or folder this user may not read."""
    return f"make it readable (e.g. chmod -R a+rX {path}) or set data.root to a copy this user can read"


def _listed(names: list[str], limit: int) -> str:
    """The first ``limit`` of ``names`` separated by commas, then "and N more" for the rest."""
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def normalization(dataset: str) -> dict | None:
    """The input normalisation a run's data of ``dataset`` applies (its :attr:`Data.normalize`):
    ``{"mean": [...], "std": [...]}``, one of each per channel, on pixels scaled to [0, 1]; None for synthetic data,
    which is not normalised. Digits: the mean and std of the pixels of the fixed training split (the same whatever
    the recipe: ``limit_train``, ``theta_split`` and ``image_size`` apply after it), read from the bundled data;
    cifar10 and imagefolder: constants."""
    if dataset == "digits":
        return _digits_normalization(_digits_split()[0])
    if dataset in _CONSTANT_NORMALIZE:
        mean, std = _CONSTANT_NORMALIZE[dataset]
        return {"mean": list(mean), "std": list(std)}
    if dataset in DATASETS:
        return None
    raise ValueError(f"unknown dataset {dataset!r}; one of {', '.join(DATASETS)}")


def eval_crop(dataset: str) -> dict:
    """How ``dataset``'s test images are brought to the input size, in timm's terms, where they are cropped:
    ``{"crop_pct": 0.875, "interpolation": "bilinear"}`` for an image folder (the shorter side resized to
    ``size / crop_pct``, then the centre ``size`` x ``size`` cropped); ``{}`` where images are resized whole."""
    return dict(_EVAL_CROP.get(dataset, {}))


def _digits_normalization(x_tr: torch.Tensor) -> dict:
    """The digits' normalisation: the mean and std of the training split's pixels (:func:`_digits_split`)."""
    return {"mean": [float(x_tr.mean())], "std": [float(x_tr.std())]}


def _load_digits():
    """The digits' split (:func:`_digits_split`) normalised, with its classes and normalisation."""
    x_tr, y_tr, x_te, y_te = _digits_split()
    norm = _digits_normalization(x_tr)
    mean, std = norm["mean"][0], norm["std"][0]
    return (x_tr - mean) / std, y_tr, (x_te - mean) / std, y_te, 10, norm


def _digits_split():
    """scikit-learn's 8x8 digits from the bundled CSV, pixels in [0, 1]: a fixed, stratified 1437/360 split
    ``(x_train, y_train, x_test, y_test)``, not normalised."""
    try:
        with gzip.open(DIGITS_CSV, "rt") as f:
            arr = np.loadtxt(f, delimiter=",", dtype=np.float32)
    except OSError as e:
        raise DataError(f"cannot read the bundled digits data {DIGITS_CSV}: {e}; reinstall automl") from None
    if arr.shape != (DIGITS_IMAGES, 65):  # the recipe's checks count on its size
        rows, values = arr.shape if arr.ndim == 2 else (int(arr.size > 0), arr.size)  # one line: 1 row
        raise DataError(f"the bundled digits data {DIGITS_CSV} holds {rows} rows of {values} values, where it has "
                        f"{DIGITS_IMAGES} rows of 65 (64 pixels and a label); reinstall automl")
    x = torch.from_numpy(arr[:, :64] / 16.0).reshape(-1, 1, 8, 8)
    y = torch.from_numpy(arr[:, 64]).long()
    # Stratified: each class gives its share of the 360 test items, in a fixed shuffled order.
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(DIGITS_SPLIT_SEED))
    test_mask = torch.zeros(len(y), dtype=torch.bool)
    counts = torch.bincount(y, minlength=10)
    quota = (counts.double() * DIGITS_TEST / len(y)).floor().long()
    rest = DIGITS_TEST - int(quota.sum())  # largest remainders get one more
    frac = counts.double() * DIGITS_TEST / len(y) - quota
    quota[frac.argsort(descending=True)[:rest]] += 1
    for c in range(10):
        members = perm[y[perm] == c]
        test_mask[members[: quota[c]]] = True
    train_idx = perm[~test_mask[perm]]
    test_idx = torch.nonzero(test_mask).flatten()
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


def _make_synthetic(cfg: DataConfig, seed: int):
    """Random images whose mean depends on the label, so a network can learn them (smoke tests)."""
    s = cfg.synthetic
    g = torch.Generator().manual_seed(_seed_of(seed, "synthetic"))
    means = torch.randn(s.num_classes, s.channels, s.size, s.size, generator=g)

    def make(n):
        y = torch.randint(0, s.num_classes, (n,), generator=g)
        return means[y] + torch.randn(n, s.channels, s.size, s.size, generator=g), y

    x_tr, y_tr = make(s.num_train)
    x_te, y_te = make(s.num_test)
    return x_tr, y_tr, x_te, y_te, s.num_classes


def _cifar_help(root: Path) -> str:
    return (f"CIFAR-10 must be at {root / CIFAR_DIR}/ ({', '.join(CIFAR_FILES)}). Get it with "
            f"data.download=true on a machine with internet, or copy the python version of CIFAR-10 "
            f"(cifar-10-python.tar.gz, extracted) into {root}")


# CIFAR-10's other versions, which automl does not read: the folder each extracts to, and what it is
_OTHER_CIFARS = {"cifar-10-batches-bin": "CIFAR-10's binary version (cifar-10-binary.tar.gz)",
                 "cifar-10-batches-mat": "CIFAR-10's MATLAB version (cifar-10-matlab.tar.gz)",
                 "cifar-100-python": "CIFAR-100 (cifar-100-python.tar.gz)"}


# The files of CIFAR-100's python version (cifar-100-python.tar.gz extracts them to cifar-100-python/)
_CIFAR100_FILES = ("train", "test", "meta")


def _other_data_in(root: Path, image_folder: bool) -> str:
    """A sentence on data found in ``root`` where CIFAR-10's python batches are missing: another version of
    CIFAR-10 (or CIFAR-100), which is not read, in a folder of ``root`` or as the files of ``root`` itself or of
    its cifar-10-batches-py/; CIFAR-10's batches in a folder further down (an archive extracted into a folder of
    its own), whose parent is the data.root to set; or, with ``image_folder`` (``root`` holds train/ and val/:
    :func:`_holds_image_folder`), an image folder (data.dataset is then wrong); "" if none."""
    found = [f"{root / name}/ is {what}, and dataset cifar10 reads only CIFAR-10's python version"
             for name, what in _OTHER_CIFARS.items() if _is_dir(root / name)]
    found += [f"{where} holds {', '.join(_CIFAR100_FILES)}, the files of CIFAR-100 (cifar-100-python.tar.gz), and "
              f"dataset cifar10 reads only CIFAR-10's python version (cifar-10-python.tar.gz)"
              for where in (root, root / CIFAR_DIR) if all(_is_file(where / f) for f in _CIFAR100_FILES)]
    deeper = _image_folder_below(root, holds=_holds_cifar10)
    if deeper is not None:
        found.append(f"{deeper / CIFAR_DIR}/ holds CIFAR-10's batch files: set data.root={deeper}")
    if image_folder:
        found.append(f"{root} holds train/ and val/, as an image folder does: for an image folder, set "
                     f"data.dataset=imagefolder")
    return "; ".join(found) + ". " if found else ""


def _holds_image_folder(root: Path) -> bool:
    """Whether ``root`` holds train/ and val/, as an image folder does (data.dataset, not data.root, is then
    what a cifar10 recipe has wrong)."""
    return _is_dir(root / "train") and _is_dir(root / "val")


def _holds_cifar10(folder: Path) -> bool:
    """Whether ``folder`` holds cifar-10-batches-py/ with CIFAR-10's batch files (False where it may not be entered:
    it only gives a hint)."""
    try:
        return all(_is_file(folder / CIFAR_DIR / f) for f in CIFAR_FILES)
    except DataError:
        return False


def _replace_cifar(folder: Path, root: Path) -> str:
    return (f"Delete {folder} and run with data.download=true (which fetches only missing files), or extract "
            f"cifar-10-python.tar.gz into {root} again")


def _reason(e: Exception) -> str:
    """An exception's message on one line, without a final period (it goes inside a sentence)."""
    return " ".join(str(e).split()).rstrip(".") or type(e).__name__


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """CIFAR-10's python batches are pickles of dicts, lists, bytes and numpy arrays: anything else (a
    pickle that would call a function while loading) is refused, so a planted data file cannot run code.
    Protocol 5 (Python 3.14's default) writes an array as ``_frombuffer`` of its bytes (a dtype of objects
    cannot be read from bytes, so it builds plain arrays only)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name} (only arrays, lists and dicts)")


def _load_cifar10(root: Path | None, download: bool):
    """The python pickles of CIFAR-10 as uint8 tensors (N, 3, 32, 32); downloads them if asked."""
    if root is None:
        raise DataError("dataset cifar10 needs data.root: set data.root=/path/to/data", _ROOT)
    if _exists(root) and not _is_dir(root):
        if root.name.lower().endswith(_TARS):
            raise DataError(f"data.root {root} is an archive, not a folder: extract it (tar -xf {root} -C "
                            f"{root.parent}, which makes {root.parent / CIFAR_DIR}/) and set data.root={root.parent}",
                            _ROOT)
        raise DataError(f"data.root {root} is a file, not a folder; set data.root to the folder that holds "
                        f"{CIFAR_DIR}/. {_cifar_help(root)}", _ROOT)
    folder = root / CIFAR_DIR
    missing = [f for f in CIFAR_FILES if not _is_file(folder / f)]
    if missing and root.name == CIFAR_DIR:
        raise DataError(f"data.root {root} is the {CIFAR_DIR} folder itself, not the folder that holds it; "
                        f"set data.root={root.parent}", _ROOT)
    if missing and any(_is_file(root / f) for f in CIFAR_FILES):
        raise DataError(f"data.root {root} holds CIFAR-10's batch files itself, where {folder}/ should hold them; "
                        f"move them into {folder}/", _ROOT)
    if missing and not _exists(folder) and os.path.islink(folder):  # data.download would fail on it
        raise DataError(f"CIFAR-10 not found: {_does_not_exist(folder)}; make the link lead to the folder that "
                        f"holds CIFAR-10's batch files, or remove it and run with data.download=true", _ROOT)
    archive = root / CIFAR_ARCHIVE
    if missing and not download and not _exists(folder) and _is_file(archive):
        raise DataError(f"CIFAR-10 is not extracted: {root} holds {CIFAR_ARCHIVE} but not {CIFAR_DIR}/; extract "
                        f"it (tar -xf {archive} -C {root}), or run with data.download=true, which extracts it "
                        f"(and downloads it again only if it is damaged)")
    if missing and download:
        try:
            import torchvision

            torchvision.datasets.CIFAR10(str(root), train=True, download=True)
        except Exception as e:  # no network, no disk space, bad checksum: all the user's to fix
            raise DataError(f"could not download CIFAR-10 into {root}: {e}. {_cifar_help(root)}") from None
        missing = [f for f in CIFAR_FILES if not _is_file(folder / f)]
    if missing:
        what = _does_not_exist(root) if not _exists(root) else \
            f"missing {', '.join(str(folder / f) for f in missing)}"
        image_folder = _holds_image_folder(root)
        raise DataError(f"CIFAR-10 not found: {what}. {_other_data_in(root, image_folder)}{_cifar_help(root)}",
                        _DATASET if image_folder else _ROOT)

    def read(names):
        xs, ys = [], []
        for name in names:
            try:
                with open(folder / name, "rb") as f:
                    d = _ArraysOnlyUnpickler(f, encoding="latin1").load()
            except PermissionError:  # the file is fine: deleting it, as below, would not help
                raise DataError(f"cannot read {folder / name}: {_DENIED_FILE}; "
                                f"{_make_readable(folder / name)}") from None
            except Exception as e:  # damaged, cut short, or another format: its files are there, so
                # data.download would not replace them
                raise DataError(f"cannot read {folder / name} as a CIFAR-10 python batch: {_reason(e)}. "
                                f"{_replace_cifar(folder, root)}") from None
            try:
                x, y = _cifar_arrays(d)
            except ValueError as e:
                raise DataError(f"{folder / name} is not a CIFAR-10 python batch: {_reason(e)}. "
                                f"{_replace_cifar(folder, root)}") from None
            xs.append(x)
            ys.append(y)
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    x_tr, y_tr = read(CIFAR_FILES[:5])
    x_te, y_te = read(CIFAR_FILES[5:])
    return x_tr, y_tr, x_te, y_te, 10


def _cifar_arrays(d) -> tuple[np.ndarray, np.ndarray]:
    """The images (N, 3, 32, 32) uint8 and labels (N,) int64 of one unpickled CIFAR-10 batch; ValueError saying
    what is wrong when it is not a dict whose b'data' is N images of 3x32x32 pixels in 0..255 (N x 3072 or
    N x 3 x 32 x 32) and whose b'labels' are N classes in 0..9."""
    if not isinstance(d, dict):
        raise ValueError(f"it holds a {type(d).__name__}, not a dict with b'data' and b'labels'")
    entries = {}
    for key in ("data", "labels"):
        if key in d:
            entries[key] = d[key]
        elif key.encode() in d:
            entries[key] = d[key.encode()]
        else:
            fine = key == "labels" and any(k in d for k in ("fine_labels", b"fine_labels"))
            raise ValueError(f"it has no b'{key}' entry (its keys: {', '.join(map(repr, d)) or 'none'})"
                             + (", as a batch of CIFAR-100 has (b'fine_labels'), not one of CIFAR-10" if fine else ""))
    data, labels = np.asarray(entries["data"]), np.asarray(entries["labels"])
    if data.ndim not in (2, 4) or data.shape[1:] not in ((3072,), (3, 32, 32)):
        raise ValueError(f"b'data' has shape {data.shape}; expected (N, 3072) or (N, 3, 32, 32): N images "
                         f"of 3 x 32 x 32 pixels")
    if data.dtype.kind not in "ui":
        raise ValueError(f"b'data' holds {data.dtype} values; expected uint8 pixels")
    if len(data) == 0:
        raise ValueError("b'data' holds no images")
    if data.dtype != np.uint8 and (data.min() < 0 or data.max() > 255):
        raise ValueError(f"b'data' holds pixel values {data.min()}..{data.max()}; expected 0..255")
    if labels.ndim != 1 or labels.dtype.kind not in "ui":
        raise ValueError(f"b'labels' must be a list of {len(data)} integer classes (got {labels.dtype} values "
                         f"of shape {labels.shape})")
    if len(labels) != len(data):
        raise ValueError(f"it has {len(data)} images but {len(labels)} labels")
    if labels.min() < 0 or labels.max() > 9:
        bad = labels[(labels < 0) | (labels > 9)]
        raise ValueError(f"b'labels' holds {len(bad)} label{'s' * (len(bad) != 1)} outside the classes 0..9 "
                         f"(first: {bad[0]})")
    return data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32), labels.astype(np.int64, copy=False)


def cutout(x: torch.Tensor, side: int, g: torch.Generator) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017) of a batch ``x`` (N, C, H, W): in each image, the pixels of a ``side`` x
    ``side`` square centred on a pixel drawn uniformly from ``g`` are set to 0 (after normalisation: the
    dataset's mean), in every channel. The square is clipped at the image's border, so it may lie partly
    outside. Rows ``cy - side // 2`` to ``cy - side // 2 + side - 1`` (columns alike): for an even side, the
    reference code's square (ASNG-NAS's and DARTS's ``Cutout(16)``); for an odd one, one row and column more
    than theirs (which cut ``side - 1``). The centres are drawn on the host, so they do not depend on the
    device; ``x`` is not changed."""
    n, _, h, w = x.shape
    cy, cx = (torch.randint(0, d, (n,), generator=g).to(x.device, non_blocking=True) for d in (h, w))
    rows = torch.arange(h, device=x.device) - (cy - side // 2)[:, None]   # (N, H): row's offset in the square
    cols = torch.arange(w, device=x.device) - (cx - side // 2)[:, None]
    inside = ((rows >= 0) & (rows < side))[:, :, None] & ((cols >= 0) & (cols < side))[:, None, :]
    return x.masked_fill(inside[:, None], 0)


def _cifar_transform(train: bool, size: int):
    """uint8 batch -> normalised float batch; for training a random 32x32 crop of the 4-padded image and a
    horizontal flip, both drawn per image on the device in one go."""

    consts: dict = {}  # mean and std, copied to each device once

    def transform(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        dev = x.device
        if dev not in consts:
            consts[dev] = (torch.tensor(CIFAR_MEAN, device=dev).view(1, 3, 1, 1),
                           torch.tensor(CIFAR_STD, device=dev).view(1, 3, 1, 1))
        mean, std = consts[dev]
        if train:
            b = x.shape[0]
            # drawn on the host (the run's generator, so a resumed run replays them), copied without
            # waiting for the GPU
            ox, oy, flip = (torch.randint(0, 9, (b,), generator=g), torch.randint(0, 9, (b,), generator=g),
                            torch.rand(b, generator=g) < 0.5)
            ox, oy, flip = (t.to(dev, non_blocking=True) for t in (ox, oy, flip))
            xp = F.pad(x, (4, 4, 4, 4))  # zero padding, like torchvision's RandomCrop(32, padding=4)
            ar = torch.arange(32, device=dev)
            rows = (oy[:, None] + ar)[:, None, :, None]
            cols = (ox[:, None] + ar)[:, None, None, :]
            x = xp[torch.arange(b, device=dev)[:, None, None, None], torch.arange(3, device=dev)[None, :, None, None],
                   rows, cols]
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        x = (x.float() / 255.0 - mean) / std
        if size != 32:
            x = _resize(x, size)
        return x

    return transform


class _NoClassFolder(FileNotFoundError):
    """An image folder's train/ or val/ holds no class folder (:func:`_visible_classes`)."""


def _visible_classes(folder: str | os.PathLike, extensions: tuple[str, ...] = (),
                     loose: list[str] | None = None) -> tuple[list[str], dict[str, int]]:
    """torchvision's ``find_classes`` without hidden folders: the class folders of ``folder`` are its sub-folders
    whose names do not start with '.' (``.ipynb_checkpoints`` and the like are not classes). A symbolic link
    there that leads to nothing is a :class:`DataError` naming it (it would be neither a class nor a file).
    ``loose``: a list that gets the names of the files ending in one of ``extensions`` that lie in ``folder``
    itself (:func:`_check_no_loose_images`), from the same listing."""
    with os.scandir(folder) as it:
        entries = [e for e in it if not e.name.startswith(".")]
    if loose is not None:
        loose += sorted(e.name for e in entries if e.name.lower().endswith(extensions) and e.is_file())
    broken = sorted(e.path for e in entries if e.is_symlink() and _leads_nowhere(e.path))
    if broken:
        raise _broken_links(Path(folder), broken)
    classes = sorted(e.name for e in entries if e.is_dir())
    if not classes:
        raise _NoClassFolder("it holds no class folder (folders whose names start with '.' are hidden and "
                             "not classes)")
    return classes, {c: i for i, c in enumerate(classes)}


def _leads_nowhere(link: str) -> bool:
    """Whether the symbolic link ``link`` leads to nothing that exists (a missing target, or a loop of links)."""
    try:
        os.stat(link)
    except OSError as e:
        return e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)
    return False


def _broken_links(folder: Path, links: list[str]) -> DataError:
    """The error for symbolic links in ``folder`` (train/ or val/ of an image folder) that lead to nothing."""
    if len(links) == 1:
        return DataError(f"the symbolic link {links[0]} (to {os.readlink(links[0])}) leads to nothing that exists, "
                         f"so it is no class folder; make it lead to the folder of its class (ln -sfn "
                         f"/path/to/<class> {links[0]}) or remove it")
    shown = _listed([f"{link} (to {os.readlink(link)})" for link in links], 5)
    return DataError(f"{len(links)} symbolic links in {folder} lead to nothing that exists, so they are no class "
                     f"folders: {shown}; make each lead to the folder of its class (ln -sfn /path/to/<class> LINK) "
                     f"or remove them")


def _no_class_folder(folder: Path, extensions: tuple[str, ...]) -> str:
    """Why ``folder`` (train/ or val/ of an image folder) has no class folder and what to do, from the files
    it holds itself: images not sorted into class folders yet (ImageNet's validation set comes so), or
    archives not extracted (ImageNet's training set comes as one .tar per class)."""
    files = sorted(e.name for e in os.scandir(folder) if not e.name.startswith(".") and not e.is_dir())
    images = [n for n in files if n.lower().endswith(extensions)]
    archives = [n for n in files if n.lower().endswith(_ARCHIVES)]

    if images:
        return (f"it holds {len(images)} image file{'s' * (len(images) > 1)} ({_listed(images, 3)}) but no class "
                f"folder: move each image into the folder of its class, {folder}/<class>/ (ImageNet's validation "
                f"images come in one flat folder and are sorted into class folders with the labels of its devkit)")
    if archives:
        return (f"it holds {len(archives)} archive{'s' * (len(archives) > 1)} ({_listed(archives, 3)}) but no class "
                f"folder: extract each into a folder of its own (ImageNet's train/n01440764.tar: mkdir n01440764 "
                f"&& tar -xf n01440764.tar -C n01440764) and remove the archives")
    return "it holds no class folder (folders whose names start with '.' are hidden and not classes)"


def _is_visible_image(folder: str, extensions: tuple[str, ...], path: str) -> bool:
    """Whether ``path`` (a file under ``folder``) is an image file: its name ends in one of ``extensions``, and
    neither it nor a folder between ``folder`` and it is hidden (macOS's ``._x.jpg`` files are not images)."""
    below = path[len(folder):] if path.startswith(folder) else os.path.relpath(path, folder)
    return path.lower().endswith(extensions) and os.sep + "." not in os.sep + below


# Image formats that photo collections hold (and PIL, or a converter, reads) which torchvision's ImageFolder leaves
# out: it reads only the files ending in one of its IMG_EXTENSIONS
_UNREAD_IMAGES = (".gif", ".jfif", ".jpe", ".jp2", ".j2k", ".avif", ".heic", ".heif", ".apng", ".pnm", ".pbm", ".dib",
                  ".tga", ".ico", ".svg")


class _ImageFiles:
    """An image folder's ``is_valid_file``: :func:`_is_visible_image`, keeping in ``unread`` the visible files
    it turns down that are images of a format in :data:`_UNREAD_IMAGES` (torchvision would leave them out), and
    counting in ``skipped`` the other visible files it turns down (``example``: the first of them)."""

    def __init__(self, folder: str, extensions: tuple[str, ...]):
        self.folder, self.extensions, self.unread = folder, extensions, []
        self.skipped, self.example = 0, None

    def __call__(self, path: str) -> bool:
        if _is_visible_image(self.folder, self.extensions, path):
            return True
        if _is_visible_image(self.folder, _UNREAD_IMAGES, path):
            self.unread.append(path)
        elif _is_visible_image(self.folder, ("",), path):  # any name that is not hidden
            self.skipped += 1
            self.example = self.example or path
        return False


def _skipped_files_warning(root: Path, skipped: list[tuple[int, str]]) -> str | None:
    """The warning for the visible files of the class folders of ``root``'s train/ and val/ that are skipped for
    their names (``skipped``: a count and an example of each split that has some), or None without any."""
    n = sum(count for count, _ in skipped)
    if not n:
        return None
    return (f"warning: skipping {n} file{'s' * (n > 1)} in the class folders of {root / 'train'} and {root / 'val'} "
            f"whose name{'s' * (n > 1)} {'do' if n > 1 else 'does'} not end in an image extension "
            f"({'e.g. ' if n > 1 else ''}{skipped[0][1]}): only files whose names end in {_IMAGE_ENDINGS}, are read "
            f"as images")


def _check_no_unread_images(folder: Path, unread: list[str], extensions: tuple[str, ...]) -> None:
    """Refuse images in the class folders of ``folder`` that torchvision would leave out for their format: a
    class would train or evaluate on part of its images, or on none, without a word."""
    if not unread:
        return
    n, kinds = len(unread), sorted({os.path.splitext(p)[1].lower() for p in unread})
    they, them = ("they", "them") if n > 1 else ("it", "it")
    raise DataError(f"{folder} holds {n} image file{'s' * (n > 1)} of a format that is not read "
                    f"({', '.join(kinds)}: {_listed(sorted(unread), 3)}), so {they} would be left out of "
                    f"{'their classes' if n > 1 else 'its class'}; convert {them} to .png or .jpg (ImageMagick: "
                    f"mogrify -format png FILE) and remove the original{'s' * (n > 1)}, or remove {them} (the formats "
                    f"read: {', '.join(extensions)})")


def _image_folder(folder: Path, transform, layout: str, skipped: list[tuple[int, str]] | None = None):
    """torchvision's ImageFolder of ``folder``, without hidden folders and files (names starting with '.');
    a class folder without an image file is a :class:`DataError` naming it (torchvision's own error names
    neither the folder nor the split), and so is one this user may not list (torchvision's walk skips it).
    ``skipped``: a list that gets the count of the other files of its class folders, skipped, and the first of
    them, where there are any (:func:`_skipped_files_warning`)."""
    from torchvision import datasets

    extensions = _IMAGE_EXTENSIONS
    # torchvision's find_classes hook, set on the instance: a subclass at module level would import torchvision
    dataset = datasets.ImageFolder.__new__(datasets.ImageFolder)
    loose: list[str] = []  # images beside the class folders, from the one listing of folder
    dataset.find_classes = functools.partial(_visible_classes, extensions=extensions, loose=loose)
    files = _ImageFiles(str(folder), extensions)
    try:
        dataset.__init__(str(folder), transform=transform, loader=_read_image, allow_empty=True, is_valid_file=files)
    except _NoClassFolder:
        raise DataError(f"cannot read the image folder {folder}: {_no_class_folder(folder, extensions)}; "
                        f"{layout}") from None
    except PermissionError as e:
        denied = e.filename or folder
        raise DataError(f"cannot read {denied}: {_DENIED_FOLDER}; {_make_readable(denied)}") from None
    except (FileNotFoundError, OSError) as e:
        raise DataError(f"cannot read the image folder {folder}: {str(e).rstrip('.')}; {layout}") from None
    _check_no_loose_images(folder, loose)
    _check_no_unread_images(folder, files.unread, extensions)
    counts = np.bincount(np.asarray(dataset.targets, dtype=np.int64), minlength=len(dataset.classes))
    empty = [str(folder / c) for c, n in zip(dataset.classes, counts) if n == 0]
    for path in empty:  # torchvision's os.walk skips a folder it may not list, as if it held no image
        try:
            os.scandir(path).close()
        except PermissionError:
            raise DataError(f"cannot read the class folder {path}: {_DENIED_FOLDER}; "
                            f"{_make_readable(path)}") from None
        except OSError:
            pass
    if empty:
        names = _listed(empty, 5)
        raise DataError(f"class folder{'s' * (len(empty) > 1)} {names} hold{'s' * (len(empty) == 1)} no image "
                        f"(files ending {', '.join(extensions)} whose names do not start with '.'); put images in "
                        f"{'them' if len(empty) > 1 else 'it'}, or remove the class from train/ and val/")
    _check_folders_read_once(folder, dataset.samples)
    if skipped is not None and files.skipped:
        skipped.append((files.skipped, files.example))
    return dataset


def _check_no_loose_images(folder: Path, loose: list[str]) -> None:
    """Refuse images that lie in ``folder`` (train/ or val/) itself, beside its class folders (``loose``, their
    names, :func:`_visible_classes`): torchvision reads only the class folders, so a half-sorted split would train
    or evaluate on part of its images."""
    if loose:
        n = len(loose)
        raise DataError(f"{folder} holds {n} image file{'s' * (n > 1)} beside its class folders "
                        f"({_listed(loose, 3)}), which no class folder holds and so would not be read: move each "
                        f"into the folder of its class, {folder}/<class>/, or remove {'them' if n > 1 else 'it'}")


def _check_folders_read_once(folder: Path, samples: list[tuple[str, int]]) -> None:
    """Refuse an image folder in which a symbolic link leads to a folder whose images it already holds (a link
    to a folder above it, or two links to one folder): torchvision follows links, so those images would be read
    again, as many times as the link can be followed, and under another class where the link is in one."""
    seen: dict[str, str] = {}
    for d in sorted({path.rpartition(os.sep)[0] for path, _ in samples}):
        real = os.path.realpath(d)
        if real not in seen:
            seen[real] = d
            continue
        first = seen[real]
        link = _first_link(folder, d) or _first_link(folder, first)
        classes = [repr(Path(p).relative_to(folder).parts[0]) for p in (first, d)]
        how = f"as class {classes[0]} and as class {classes[1]}" if classes[0] != classes[1] else \
            f"both times as class {classes[0]}"
        through, fix = (f" (through the symbolic link {link})", f"remove the link {link}, or replace it by a copy "
                        f"of the images it should add") if link else ("", "remove one of the two")
        raise DataError(f"the image folder {folder} holds the folder {real} twice, as {first} and as {d}{through}: "
                        f"its images would be read twice, {how}; {fix}")


def _first_link(folder: Path, path: str) -> str | None:
    """The first symbolic link on the way from ``folder`` down to ``path``; None when none is one."""
    p = folder
    for part in Path(path).relative_to(folder).parts:
        p = p / part
        if os.path.islink(p):
            return str(p)
    return None


def _one_class(folder: Path, name: str, layout: str) -> DataError:
    """The error for train/ of an image folder with a single class folder ``name``: every label would be 0, and the
    network would learn nothing but to answer it (a search would rank architectures on nothing)."""
    inner = folder / name
    with os.scandir(inner) as it:
        subs = sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
    hint = (f"; {inner} holds the folders {_listed(subs, 5)}: if they are the classes, move them up into {folder}/ "
            f"(and do the same in val/)") if subs else ""
    return DataError(f"{folder} holds a single class folder, {name!r}: a classifier needs at least 2 classes, one "
                     f"folder of images for each, {folder}/<class>/{hint}; {layout}")


def _sample_folders(samples: list[tuple[str, int]]) -> dict[str, str]:
    """The real path (links followed) of each folder that holds images of ``samples``, mapped to the first of its
    paths in the image folder."""
    folders: dict[str, str] = {}
    for d in sorted({path.rpartition(os.sep)[0] for path, _ in samples}):
        folders.setdefault(os.path.realpath(d), d)
    return folders


def _check_val_apart(root: Path, train: list[tuple[str, int]], val: list[tuple[str, int]]) -> None:
    """Refuse a val/ that reads a folder of images that train/ reads too (val/, or a class folder in it, a symbolic
    link to train/ or to one of its class folders): those test images would be training images, and the test
    accuracy would say how well the network remembers them, not how it does on images it has not seen."""
    in_train = _sample_folders(train)
    for real, d in _sample_folders(val).items():
        first = in_train.get(real)
        if first is None:
            continue
        link = _first_link(root, d) or _first_link(root, first)
        through = f" (through the symbolic link {link})" if link else ""
        raise DataError(f"{d} is {first}{through}: the test images of {root / 'val'} would be training images, and "
                        f"the test accuracy would measure how well the network remembers them; give val/ images "
                        f"of its own, not in train/ (e.g. move a tenth of each class's images from train/<class>/ "
                        f"to val/<class>/){f', in place of the link {link}' if link else ''}")


def _check_no_linked_train_images(root: Path, train: list[tuple[str, int]], val: list[tuple[str, int]]) -> None:
    """Refuse images of val/ that are symbolic links to images in train/'s class folders (a val/ made by linking a
    share of each class's training images, not moving them): the test images would be training images. Only the
    links are followed (one listing per folder of val/); a hard link or a copy is not found."""
    in_train, images = _sample_folders(train), {path for path, _ in val}
    linked = []
    for d in _sample_folders(val).values():
        with os.scandir(d) as it:
            links = sorted(e.path for e in it if e.path in images and e.is_symlink())
        linked += [(link, real) for link in links
                   if os.path.dirname(real := os.path.realpath(link)) in in_train]
    if linked:
        n = len(linked)
        are, what = ("are symbolic links", "images") if n > 1 else ("is a symbolic link", "an image")
        shown = _listed([f"{link} (to {real})" for link, real in linked], 3)
        raise DataError(f"{n} image{'s' * (n > 1)} of {root / 'val'} {are} to {what} of {root / 'train'}: {shown}; "
                        f"the test images would be training images, and the test accuracy would measure how well the "
                        f"network remembers them; move the images into val/<class>/ (mv, not ln -s), so that train/ "
                        f"no longer holds them")


def _different_classes(root: Path, train: list[str], val: list[str], layout: str) -> DataError:
    """The error for train/ and val/ of an image folder whose class folders differ: the names in one only (quoted,
    so a space at an end shows), and the pairs that differ only in case, in spaces at their ends or in how
    Unicode encodes their letters (macOS writes an accented name decomposed, other systems composed)."""
    only_train, only_val = sorted(set(train) - set(val)), sorted(set(val) - set(train))
    only = [f"only in {d}: {_listed([repr(n) for n in names], 10)}"
            for d, names in ((root / "train", only_train), (root / "val", only_val)) if names]

    def key(name):
        return unicodedata.normalize("NFC", name).strip().casefold()

    val_by_key = {key(n): n for n in only_val}
    alike = []
    for a in only_train:
        b = val_by_key.get(key(a))
        if b is None:
            continue
        if unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b):
            alike.append(f"{ascii(a)} in train/ and {ascii(b)} in val/ are one name with its letters encoded two "
                         f"ways in Unicode (composed and decomposed)")
            continue
        how = "in spaces at their ends" if a.strip() == b.strip() else "in upper and lower case" \
            if a.casefold() == b.casefold() else "in case, spaces at their ends and Unicode encoding"
        alike.append(f"{a!r} in train/ and {b!r} in val/ differ only {how}")
    if alike:
        only.append("; ".join(alike[:5]) + (f" and {len(alike) - 5} more pairs" if len(alike) > 5 else ""))
    rename = " (rename one folder of each pair above so that both are spelled alike)" if alike else ""
    return DataError(f"{root / 'train'} and {root / 'val'} have different class folders ({'; '.join(only)}); "
                     f"give both the same class folders{rename}; {layout}")


# Names an image folder's train/ and val/ come under in other layouts (Kaggle's, Hugging Face's, a hand-made one),
# compared in lower case: the folder found is named, to rename or link
_SPLIT_NAMES = {"train": ("train", "training"),
                "val": ("val", "valid", "validation", "validate", "eval", "evaluation", "test", "testing", "dev")}


def _check_split_folders(root: Path, layout: str) -> None:
    """Refuse an image folder ``root`` without the folders ``train`` and ``val``, naming what it holds instead:
    a split folder of another name (``validation/``, ``Train/``), to rename or link, or the image folder one or
    more levels down (a dataset extracted into a folder of its own), to set as data.root."""
    for p in (root, root / "train", root / "val"):
        if _exists(p) and not _is_dir(p):
            what = f"data.root {p}" if p == root else str(p)
            raise DataError(f"{what} is a file, not a folder; {layout}", _ROOT if p == root else None)
    if not _is_dir(root):
        raise DataError(f"image folder not found: {_does_not_exist(root)}; {layout}", _ROOT)
    missing = [name for name in ("train", "val") if not _is_dir(root / name)]
    if not missing:
        return
    folders = _visible_folders(root)
    renames = []
    for name in missing:
        found = [f for f in folders if f.casefold() in _SPLIT_NAMES[name] and f != name]
        if found:
            shown = " and ".join(f"{f}/" for f in found[:3])
            kind = "training" if name == "train" else "held-out"
            which = "it" if len(found) == 1 else f"the one that holds the {kind} images"
            renames.append(f"{root} holds {shown} but no {name}/: rename {which} to {name}/ (mv {root / found[0]} "
                           f"{root / name}) or link it as {name}/ (ln -s {found[0]} {root / name})")
    if renames:
        raise DataError(f"image folder not found: {'; '.join(renames)}; {layout}", _ROOT)
    p = root / missing[0]
    deeper = _image_folder_below(root)
    cifar = not deeper and missing[0] == "train" and _is_dir(root / CIFAR_DIR)
    hint = f"; {deeper} holds train/ and val/: set data.root={deeper}" if deeper else \
        f"; {root} holds {CIFAR_DIR}/, CIFAR-10: for it, set data.dataset=cifar10" if cifar else \
        _split_hint(root, missing, folders)
    raise DataError(f"image folder not found: {_does_not_exist(p)}{hint}; {layout}", _DATASET if cifar else _ROOT)


def _visible_folders(folder: Path) -> list[str]:
    """The names of ``folder``'s sub-folders that are not hidden (names starting with '.'), sorted; [] where it
    cannot be listed."""
    try:
        with os.scandir(folder) as it:
            return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
    except OSError:
        return []


def _holds_images(folder: Path, budget: int = 256) -> bool:
    """Whether ``folder`` holds an image file itself (:data:`_IMAGE_EXTENSIONS`, not hidden), looking at no more than
    ``budget`` of its entries (a folder of another kind may be large)."""
    try:
        with os.scandir(folder) as it:
            for e in islice(it, budget):
                if _is_visible_image(str(folder), _IMAGE_EXTENSIONS, e.path) and e.is_file():
                    return True
    except OSError:
        pass
    return False


def _split_hint(root: Path, missing: list[str], folders: list[str], budget: int = 64) -> str:
    """What ``root`` holds instead of the split folders in ``missing`` (its visible sub-folders: ``folders``): class
    folders of images (at most ``budget`` looked into), to move into train/ and val/; or, beside a train/ or val/,
    the classes the missing one must hold too. "" where it holds neither."""
    classes = [f for f in folders[:budget] if f not in ("train", "val") and _holds_images(root / f)]
    if len(classes) >= 2 and "train" in missing:
        no = " and ".join(f"{name}/" for name in missing)
        quoted = " ".join(shlex.quote(c) for c in classes)
        how = f" (cd {shlex.quote(str(root))} && mkdir train && mv {quoted} train/)" if len(classes) <= 5 else ""
        val = (f" and put held-out images of each class, not in train/, in {root}/val/<class>/ (e.g. a tenth of each "
               f"class's images)") if "val" in missing else ""
        return (f"; data.root {root} holds class folders ({_listed(classes, 5)}) but no {no}: move them into "
                f"{root}/train/{how}{val}")
    if len(missing) != 1:
        return ""
    there, absent = ("val", "train") if missing == ["train"] else ("train", "val")
    named = _visible_folders(root / there)
    if not named:
        return ""
    what = "held-out images (not in train/)" if absent == "val" else "the training images"
    move = ": e.g. move a tenth of each class's images from train/<class>/ to val/<class>/" if absent == "val" else ""
    return (f"; {absent}/ must hold {what} of the classes of {root / there} ({_listed(named, 5)}), one folder for "
            f"each, {root}/{absent}/<class>/{move}")


def _image_folder_below(root: Path, depth: int = 3, budget: int = 64,
                        holds: Callable[[Path], bool] | None = None) -> Path | None:
    """The first folder at most ``depth`` levels below ``root`` that holds both ``train/`` and ``val/`` (an image
    folder extracted into a folder of its own, such as Kaggle's ILSVRC/Data/CLS-LOC), looking into at most
    ``budget`` folders (``root`` may be a large folder of images); None when none is found. ``holds``: what the
    folder must pass instead of holding train/ and val/."""
    level = [root]
    for _ in range(depth):
        below = []
        for folder in level:
            try:
                with os.scandir(folder) as it:
                    below += sorted(Path(e.path) for e in it if not e.name.startswith(".") and e.is_dir())
            except OSError:
                continue
            if len(below) > budget:
                return None
        for folder in below:
            if holds(folder) if holds is not None else (_is_dir(folder / "train") and _is_dir(folder / "val")):
                return folder
        level = below
    return None


def _build_imagefolder(cfg: DataConfig, root: Path | None, size: int, device: torch.device, common) -> Data:
    """ImageNet-style ``root/train/<class>/*.jpg`` and ``root/val/<class>/*.jpg``."""
    from torchvision import datasets, transforms

    layout = "expected <root>/train/<class>/*.jpg and <root>/val/<class>/*.jpg (one folder per class)"
    if root is None:
        raise DataError(f"dataset imagefolder needs data.root: set data.root=/path/to/data; {layout}", _ROOT)
    if root.name in ("train", "val") and not _exists(root / "train") and _is_dir(root.parent / "train") \
            and _is_dir(root.parent / "val"):
        raise DataError(f"data.root {root} is the image folder's {root.name}/ folder; set data.root={root.parent}, "
                        f"the folder that holds train/ and val/; {layout}", _ROOT)
    _check_split_folders(root, layout)
    normalize, crop = normalization("imagefolder"), eval_crop("imagefolder")
    norm = transforms.Normalize(normalize["mean"], normalize["std"])
    train_tf = transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), norm])
    resize = transforms.Resize(int(size / crop["crop_pct"]), transforms.InterpolationMode(crop["interpolation"]))
    test_tf = transforms.Compose([resize, transforms.CenterCrop(size), transforms.ToTensor(), norm])
    skipped: list[tuple[int, str]] = []
    train_set = _image_folder(root / "train", _SkipBad(train_tf), layout, skipped)
    if len(train_set.classes) < 2 and len(train_set) >= 2:  # a single image: too small to split, said below
        raise _one_class(root / "train", train_set.classes[0], layout)
    test_set = _image_folder(root / "val", _SkipBad(test_tf), layout, skipped)
    if train_set.classes != test_set.classes:
        raise _different_classes(root, train_set.classes, test_set.classes, layout)
    _check_val_apart(root, train_set.samples, test_set.samples)
    _check_no_linked_train_images(root, train_set.samples, test_set.samples)
    limited = cfg.limit_train is not None and cfg.limit_train < len(train_set)
    if limited and cfg.limit_train < len(train_set.classes):
        k, n = len(train_set.classes), cfg.limit_train
        raise DataError(f"data.limit_train={n} keeps {n} of the images of {root / 'train'}, fewer than its {k} "
                        f"classes: {k - n} class{'es' * (k - n > 1)} would have no image to train on, yet be tested on "
                        f"{root / 'val'}; raise data.limit_train to at least {k} (one image of each class), or null",
                        _LIMIT_TRAIN)
    kept = _spread_over_classes(train_set.targets, cfg.limit_train, split_seed(cfg, common["seed"])) if limited \
        else torch.arange(len(train_set))
    labels = torch.as_tensor(train_set.targets, dtype=torch.long)[kept]
    n_theta = _theta_count(len(labels), cfg.theta_split, str(root / "train"), limited)
    order = _stratified_order(labels, n_theta, split_seed(cfg, common["seed"]))
    pos_w, pos_theta = order[n_theta:].sort().values, order[:n_theta].sort().values  # as _stratified_split
    _check_shares(len(pos_w), len(pos_theta), cfg.theta_split, common["world_size"], str(root / "train"),
                  limited=limited)
    split_off = _classes_split_off(labels[order], n_theta, cfg.theta_split, str(root / "train"), train_set.classes)
    if split_off and common["rank"] == 0:
        _logger.warning(split_off)
    idx_w, idx_theta = kept[pos_w], kept[pos_theta]
    _check_images(root / "val", test_set.samples)
    _check_images(root / "train", [train_set.samples[i] for i in kept.tolist()])  # those data.limit_train keeps

    for warning in (_skipped_files_warning(root, skipped), _workers_warning(cfg.workers, usable_cores(),
                                                                          local_processes(common["world_size"]))):
        if warning and common["rank"] == 0:
            _logger.warning(warning)

    def loader(name, ds, idx, bs, shuffle):
        return FolderLoader(name, ds, idx, bs, shuffle=shuffle, device=device, workers=cfg.workers, **common)

    return Data(
        input_shape=(3, size, size), num_classes=len(train_set.classes), dataset="imagefolder", normalize=normalize,
        fingerprint={"dataset": "imagefolder", "train": _folder_fingerprint(root / "train", train_set)},
        w=loader("w", train_set, idx_w, cfg.batch_size, True),
        theta=loader("theta", train_set, idx_theta, cfg.theta_batch_size or cfg.batch_size, True),
        full=loader("full", train_set, kept, cfg.batch_size, True),
        test=loader("test", test_set, torch.arange(len(test_set)), cfg.test_batch_size, False),
    )
