"""The run's state: one dataclass that is the checkpoint.

Everything a resumed run needs is here; :meth:`RunState.to_checkpoint` is what
:class:`automl.train.checkpoint.CheckpointStore` writes and :meth:`RunState.from_checkpoint` reads it back.
``stage`` / ``epoch`` / ``step`` say where the run is: ``stage`` stages done, then ``epoch`` epochs and
``step`` steps of the next. ``inner`` holds the current stage's objects (model, optimizer, searcher state,
update count, the epoch's running sums) while it is inside a stage, and is empty at a stage boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from automl.errors import UserError
from automl.train.data import data_changes

__all__ = ["RunState", "CKPT_FORMAT", "capture_rng", "restore_rng", "asdict_shallow", "check_same_data"]

CKPT_FORMAT = 2


@dataclass
class RunState:
    recipe_sha256: str
    stage: int = 0
    epoch: int = 0
    step: int = 0
    archs: list[list[int] | None] | None = None            # the derived architectures (choice indices)
    results: dict[str, dict] = field(default_factory=dict)  # per architecture "i" and ranking "ranking/j"
    phase_seconds: dict[str, float] = field(default_factory=dict)
    supernet: dict[str, torch.Tensor] | None = None          # trained supernet weights (CPU), once trained
    member_supernets: dict[str, dict] | None = None          # Method 1, retrain.epochs 0: member i's W (its first)
    supernet_origin: dict[str, Any] | None = None            # {from, fingerprint, forced, differs[, trained_by]}
    weights_fingerprint: dict[str, Any] | None = None        # what the supernet's weights depend on
    final_epsilons: list[float | None] | None = None         # with budgets: the adapted ε per member
    bad_steps: int = 0                                       # weight steps skipped (search.nan_policy skip)
    rng: dict[str, Any] | None = None                        # global torch RNG and the path sampler's
    metrics_bytes: int = 0                                   # metrics.jsonl's length at the checkpoint
    world_size: int | None = None                            # the processes it started with (None: not recorded)
    world_sizes: list[int] | None = None                     # each part's processes, where a resume changed them
    threads: int | None = None                               # the intra-op threads it started with (None: same)
    device: str | None = None                                # what it computed on: device_record's (None: not recorded)
    data_fingerprint: dict[str, Any] | None = None           # its training data at its start (None: not recorded)
    weights_data: dict[str, Any] | None = None               # a reused supernet's data (None: its own; {}: unknown)
    inner: dict[str, Any] = field(default_factory=dict)

    @property
    def mid_stage(self) -> bool:
        return self.epoch > 0 or self.step > 0

    def set_arch(self, i: int, arch: list[int], n: int) -> None:
        self.archs = self.archs or [None] * n
        self.archs[i] = arch

    def add_seconds(self, phase: str, seconds: float) -> None:
        self.phase_seconds[phase] = self.phase_seconds.get(phase, 0.0) + seconds

    def note_world_size(self, here: int) -> None:
        """A resumed part of the run computing with ``here`` processes: ``world_sizes`` lists each part's count in
        order (the count it started with first, a count listed again only where it changed), and stays None while
        every part used the count it started with, or where that count is not recorded (an older automl's
        checkpoint: the counts before are unknown)."""
        if self.world_size is None:
            return
        parts = self.world_sizes or [self.world_size]
        if parts[-1] != here:
            self.world_sizes = [*parts, here]

    def to_checkpoint(self) -> dict[str, Any]:
        return {"format": CKPT_FORMAT, **asdict_shallow(self)}

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any], where: str) -> "RunState":
        if ckpt.get("format") != CKPT_FORMAT:
            raise UserError(f"{where}: the checkpoint has format {ckpt.get('format')!r}, this automl writes "
                            f"{CKPT_FORMAT}; finish that run with the automl that started it, or start a new run")
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in ckpt.items() if k in names})


def asdict_shallow(state: RunState) -> dict[str, Any]:
    """The fields as a dict without copying tensors (``dataclasses.asdict`` deep-copies)."""
    return {k: getattr(state, k) for k in state.__dataclass_fields__}


def capture_rng(sampler: torch.Generator, device: torch.device) -> dict[str, Any]:
    st = {"torch": torch.get_rng_state(), "sampler": sampler.get_state()}
    if torch.cuda.is_available() and device.type == "cuda":
        st["cuda"] = torch.cuda.get_rng_state(device)
    return st


def restore_rng(st: dict[str, Any], sampler: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(st["torch"])
    sampler.set_state(st["sampler"])
    if "cuda" in st and device.type == "cuda":
        torch.cuda.set_rng_state(st["cuda"], device)


def check_same_data(state: RunState, data, recipe, out, command: str = "--resume") -> None:
    """Refuse to go on with training data other than the run in ``out`` recorded at its start
    (``state.data_fingerprint``; a run checkpointed by an automl that did not record it goes on unchecked), saying
    what differs (:func:`~automl.train.data.data_changes`). ``command``: what the message names as refused."""
    if state.data_fingerprint is None or data.fingerprint is None:
        return
    what = data_changes(state.data_fingerprint, data.fingerprint)
    if what is None:
        return
    d = recipe.data
    where = f"data.root {d.root}" if d.root is not None else f"data.dataset {d.dataset}"
    raise UserError(f"{command}: the training data of {where} is not what the run in {out} started on: {what}. "
                    f"The D_W / D_theta split and data.limit_train are drawn from the numbered list of training "
                    f"samples, so the run would go on with another split, whose D_theta holds images its weights "
                    f"have trained on; restore the data as it was when the run started, or start a new run with "
                    f"another --out")
