"""The training and evaluation steps of every phase.

* :func:`weight_step` — eq. 3: the λ sampled paths see the same mini-batch; their gradients are averaged.
* :func:`path_losses` — the θ phase's black-box evaluation: forward only, no autograd.
* :func:`evaluate` — loss and accuracy of one network on a loader (summed over ranks).

None of these calls ``.item()``: the step loop never waits for the device; the caller syncs every
``log_every`` steps.
"""

from __future__ import annotations

import contextlib
from typing import Callable, NamedTuple

import timm.optim
import timm.scheduler
import torch
import torch.nn.functional as F
from torch import nn

from automl.errors import UserError
from automl.nn.depthwise import use_fast_depthwise_grad
from automl.nn.ensemble import SupernetEnsemble, path_outputs
from automl.nn.supernet import Supernet
from automl.train.distributed import (DistInfo, all_reduce_grads, all_reduce_sum, average_over_ranks,
                                      batchnorm_stats, said_by_this_rank)
from automl.train.progress import plural
from automl.train.threads import gib

__all__ = ["autocast_for", "for_training", "Copies", "training_copies", "check_fits_on_gpu", "weight_step",
           "train_step", "path_losses", "evaluate", "create_optimizer", "create_scheduler", "FlooredStepLR", "recalibrate_bn", "nonfinite_tensors",
           "finite_outputs"]


# the compute capability from which cuDNN runs bf16 convolutions (torch's own check before it dispatches one there)
BF16_CAPABILITY = (8, 0)


def autocast_for(device: torch.device):
    """bf16 autocast on a CUDA GPU of compute capability 8.0 or more (Ampere on); full precision on older GPUs,
    where torch accepts bf16 autocast but cuDNN has no bf16 convolution (every conv would run in torch's slow
    native kernels), and on the CPU (bf16 there is slower and changes results)."""
    if device.type == "cuda" and torch.cuda.get_device_capability(device) >= BF16_CAPABILITY:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def for_training(model: nn.Module, device: torch.device, *, copies: Copies | int | None = None) -> nn.Module:
    """``model`` on ``device``, ready for the steps below: channels_last, and on the CPU the faster depthwise
    weight gradient for small maps (:mod:`automl.nn.depthwise`). On a CUDA device :func:`check_fits_on_gpu`
    (with ``copies``) first refuses a network that training could not hold in the GPU's free memory.

    channels_last is what cuDNN and oneDNN run fastest. Measured on the CPU (2-core x86, one thread), a
    supernet training step on one path is 2.0–2.8x faster on the ENAS cell space at 32x32 and ProxylessNAS
    at 64x64, and 1.5–3x on digits (``benchmarks/supernet_overhead.py`` against its ``--plain``).
    """
    if device.type == "cuda":
        check_fits_on_gpu(model, device, copies)
    model = model.to(device).to(memory_format=torch.channels_last)
    if device.type == "cpu":
        use_fast_depthwise_grad(model)
    return model


class Copies(NamedTuple):
    """How many tensors the size of a network's weights training keeps on the GPU, and what they are, in words."""

    count: int
    words: str


def _listed(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def training_copies(optimizer: str = "sgd", momentum: float = 0.9, *, supernet: bool,
                    ema: float | None = None) -> Copies:
    """The copies of its weights that training a network with ``optimizer`` keeps on the GPU once every weight
    has been stepped: the weights; for any network but a supernet a gradient for each (a supernet's weight step
    holds gradients only for its λ sampled paths' weights, set to None between steps); the optimiser's state,
    per weight: SGD's momentum buffer (none with ``momentum`` 0), AdamW's two moment estimates, RMSprop's square
    average (and its momentum buffer with ``momentum`` > 0; timm's ``rmsproptf`` alike); and with ``ema``
    (retrain.ema's decay; None or 0: none) timm's averaged copy of the weights, on the same device."""
    parts = ["its weights"] + ([] if supernet else ["their gradients"]) + (["their moving average"] if ema else [])
    if optimizer == "adamw":
        parts += ["AdamW's two moment estimates"] * 2
    elif optimizer in ("rmsprop", "rmsproptf"):
        parts += ["RMSprop's square average"] + (["momentum"] if momentum else [])
    elif momentum:
        parts += ["SGD momentum"]
    return Copies(len(parts), _listed(list(dict.fromkeys(parts))))


def check_fits_on_gpu(model: nn.Module, device: torch.device, copies: Copies | int | None = None) -> None:
    """Refuse (:class:`UserError`) to move ``model`` to the CUDA ``device`` when ``copies`` times its parameter
    bytes are more than the GPU's free memory (``torch.cuda.mem_get_info``, plus what this process's caching
    allocator holds unused: a stage's supernet freed before the next is built), before anything is moved: the
    move or the first steps would end in CUDA's out-of-memory error. Under torchrun each rank checks its own
    GPU (``device`` is its LOCAL_RANK's); a rank other than 0 prints its refusal itself.

    ``copies`` (:func:`training_copies`) by default: training with the recipe's default optimiser, SGD with
    momentum (2 for a supernet or an ensemble of them, 3 for any other network); an int: that many, 1 where
    nothing trains. Activations, the bf16 copies autocast makes and CUDA's own workspace are not estimated (they
    depend on the batch and the path): the count is a lower bound, and a network that passes may still run out
    of memory."""
    params = list(model.parameters())
    n = sum(p.numel() for p in params)
    size = sum(p.numel() * p.element_size() for p in params)
    supernets = _supernets(model)
    if copies is None:
        copies = training_copies(supernet=bool(supernets))
    elif isinstance(copies, int):
        copies = Copies(copies, "its weights" if copies == 1 else
                        f"its weights and {copies - 1} more copies of them (gradients, optimiser state)")
    copies, held = copies
    free, total = torch.cuda.mem_get_info(device)
    free += max(torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device), 0)
    if copies * size <= free:
        return
    name = f"{device.type}:{device.index if device.index is not None else torch.cuda.current_device()}"
    if supernets:
        space = getattr(model.members[0] if supernets > 1 else model, "_space_name", None)
        what = (f"the {supernets} supernets of space {space} (search.supernets: {supernets})" if supernets > 1
                else f"the supernet of space {space}")
        fix = ("use a smaller space (narrower widths, fewer layers, cells or choices: the recipe's space_args or "
               "--set)" + (", fewer search.supernets" if supernets > 1 else "") + ", or device=cpu")
    else:
        what, fix = "the network", "retrain a smaller network (the recipe's retrain.space_args), or use device=cpu"
    gpu = f"{name} ({torch.cuda.get_device_name(device)})"
    on_top = "the sampled paths' gradients and the activations" if supernets else "the activations"
    raise said_by_this_rank(UserError(
        f"{what} {'hold' if supernets > 1 else 'holds'} {n:,} parameters, {gib(size)} GiB; training it on {gpu} "
        f"needs at least {gib(copies * size)} GiB for {held} ({plural(copies, 'copy', 'copies')}; {on_top} come on "
        f"top), more than the {gib(free)} GiB free of the GPU's {gib(total)} GiB (torch.cuda.mem_get_info); {fix}"))


def _supernets(model: nn.Module) -> int:
    """How many supernets ``model`` is: 1 for a supernet, M for an ensemble of M, 0 for any other network."""
    if isinstance(model, SupernetEnsemble):
        return len(model.members)
    return 1 if isinstance(model, Supernet) else 0


# torch's words when BatchNorm in train mode gets a batch of one item on 1 x 1 maps (one value per channel)
_ONE_VALUE = "Expected more than 1 value per channel when training"


@contextlib.contextmanager
def _batch_of_one_refused(x: torch.Tensor):
    """Inside the block, BatchNorm refusing ``x``, a batch of one item, in train mode (it reaches 1 x 1 maps)
    is a :class:`UserError` saying which settings give batches of one; any other error passes through."""
    try:
        yield
    except ValueError as e:
        if x.shape[0] != 1 or _ONE_VALUE not in str(e):
            raise
        raise UserError("a training batch of 1 item reached a BatchNorm layer on 1 x 1 feature maps, which cannot "
                        "normalise one value per channel; make every training batch at least 2 items: "
                        "data.batch_size, data.theta_batch_size and retrain.batch_size of 2 or more, and at least "
                        "2 items per rank in D_W and in D_theta (data.theta_split, data.limit_train)") from None


def _prepare(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Images in channels_last, the layout cuDNN and oneDNN (the CPU) are fastest in (see for_training)."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def weight_step(supernet: nn.Module, x, y, archs: torch.Tensor, optimizer, criterion, info: DistInfo,
                grad_clip: float | None, device: torch.device, skip_nonfinite: bool = False,
                distill: bool = False):
    """One update of the supernet weights W by eq. 3 and return (mean loss, correct count of the first path).

    With ``skip_nonfinite`` (the recipe's ``search.nan_policy: skip``) a step whose loss or gradient is not
    finite on any rank is not applied (the optimiser does not step, its state is untouched, and the
    BatchNorm running statistics the forward pass changed are put back) and the returned loss is
    non-finite: that is how the caller counts skipped steps. This check syncs with the device once
    per step; the default (stop) policy does not.

    Under torchrun the gradients and the supernet's BatchNorm running statistics are averaged over the ranks
    (one all-reduce), so every rank holds the same supernet after the step.

    Each path's loss is divided by λ and back-propagated on its own, so memory holds one path's graph at a
    time; the accumulated gradient is exactly the average of the λ gradients. Parameters not on any
    sampled path keep ``grad=None`` and so are untouched by the optimiser (no weight decay, no momentum).

    With ``distill`` (BigNAS's in-place distillation; the sandwich rule puts the largest path first) path 0
    learns the labels and every other path the detached soft predictions of path 0 on the same batch.
    """
    optimizer.zero_grad(set_to_none=True)
    x = _prepare(x, device)
    lam = archs.shape[0]
    restore_buffers = _buffers_now(supernet) if skip_nonfinite else None
    total = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    teacher = None
    for i in range(lam):
        with autocast_for(device), _batch_of_one_refused(x):
            out = supernet(x, archs[i])
            if teacher is None:
                loss = criterion(out, y) / lam
            else:  # soft-target cross-entropy against the largest path
                loss = -(teacher * F.log_softmax(out.float(), 1)).sum(1).mean() / lam
        if distill and i == 0:
            teacher = F.softmax(out.detach().float(), 1)
        loss.backward()
        total += loss.detach().float()
        if i == 0:
            correct = (out.detach().argmax(1) == y).sum()
    params = [p for p in supernet.parameters() if p.grad is not None]
    all_reduce_grads(params, info, stats_of=supernet)  # and the BatchNorm statistics: the same on every rank
    if skip_nonfinite:
        grad_sum = sum((p.grad.double().sum() for p in params), total.new_zeros((), dtype=torch.float64))
        bad = (~torch.isfinite(total) | ~torch.isfinite(grad_sum)).float()
        if all_reduce_sum(bad, info).item() > 0:  # every rank takes the same decision
            optimizer.zero_grad(set_to_none=True)
            restore_buffers()
            return total.new_tensor(float("nan")) if torch.isfinite(total) else total, correct
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return total, correct


def train_step(model: nn.Module, x, y, optimizer, criterion, info: DistInfo, grad_clip: float | None,
               device: torch.device):
    """One ordinary training step of a standalone network (retraining). Under torchrun the gradients and the
    BatchNorm running statistics are averaged over the ranks: every rank holds the same network after it."""
    optimizer.zero_grad(set_to_none=True)
    x = _prepare(x, device)
    with autocast_for(device), _batch_of_one_refused(x):
        out = model(x)
        loss = criterion(out, y)
    loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    all_reduce_grads(params, info, stats_of=model)  # and the BatchNorm statistics: the same on every rank
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return loss.detach().float(), (out.detach().argmax(1) == y).sum()


def _buffers_now(module: nn.Module) -> Callable[[], None]:
    """A function that puts ``module``'s buffers (BatchNorm running statistics) back as they are now: for a
    forward pass whose statistics must not count (a skipped step, a check)."""
    buffers = list(module.buffers())
    saved = [b.detach().clone() for b in buffers]

    @torch.no_grad()
    def restore() -> None:
        for b, v in zip(buffers, saved):
            b.copy_(v)

    return restore


@torch.no_grad()
def nonfinite_tensors(model: nn.Module) -> list[str]:
    """The names of ``model``'s floating-point parameters and buffers (BatchNorm statistics) that hold NaN or
    inf, in ``state_dict`` order; reads the device once. A weight step whose loss was finite can still
    leave such weights (the update overflowed): the next forward pass, if any, is the first to see them."""
    named = [(k, v) for k, v in model.state_dict(keep_vars=True).items() if v.is_floating_point()]
    if not named:
        return []
    bad = torch.stack([~torch.isfinite(v.detach()).all() for _, v in named]).cpu().tolist()
    return [k for (k, _), b in zip(named, bad) if b]


@torch.no_grad()
def finite_outputs(supernet: nn.Module, x, archs: torch.Tensor, device: torch.device,
                   info: DistInfo | None = None) -> bool:
    """Whether every path of ``archs`` computes finite logits on the inputs ``x`` (an ensemble: every member's),
    in the supernet's current mode (train: each batch's BatchNorm statistics, as the θ phase sees it); the
    running statistics the forward passes change are put back, so training goes on as if it had not run.
    Under torchrun every rank gets the same answer (one all-reduce). Weights can be finite and still so large
    that the next forward overflows: no loss of a phase sees that when its last update made them so."""
    restore_buffers = _buffers_now(supernet)
    x = _prepare(x, device)
    bad = torch.zeros((), device=x.device)
    for i in range(archs.shape[0]):
        with autocast_for(device), _batch_of_one_refused(x):
            outs = path_outputs(supernet, x, archs[i])
        for logits in outs:
            bad += (~torch.isfinite(logits.float())).any().float()
    restore_buffers()
    return all_reduce_sum(bad, info or DistInfo()).item() == 0


@torch.no_grad()
def recalibrate_bn(net: nn.Module, forward, batches, info: DistInfo | None = None) -> nn.Module:
    """Once-for-All's BatchNorm recalibration: reset every BatchNorm's running statistics and re-estimate
    them as the plain average over ``batches`` (``forward(x)`` in train mode); returns ``net`` in eval mode.

    With ``info`` of a data-parallel run, each rank passes as many batches of its own shard and the statistics
    are then averaged over the ranks: every rank holds the same network, recalibrated on all ranks' batches
    (the plain average over ``world_size`` × ``len(batches)`` batches)."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
    net.train()
    for k, x in enumerate(batches):
        # the cumulative average (every batch weighs the same), bit for bit what momentum None computes; set
        # here, BatchNorm does not read its batch count back from the device (a sync per layer per batch)
        for m in bns:
            m.momentum = 1.0 / (k + 1)
        with _batch_of_one_refused(x):
            forward(x)
    for m, mom in zip(bns, saved):
        m.momentum = mom
    if info is not None:
        average_over_ranks(batchnorm_stats(net), info)
    return net.eval()


@torch.inference_mode()
def path_losses(supernet: nn.Module, x, y, archs: torch.Tensor, device: torch.device,
                calibration: list | None = None, info: DistInfo | None = None) -> torch.Tensor:
    """Cross-entropy of each of the λ paths on the same D_θ mini-batch: a (λ,) float tensor.

    By default the supernet is in train mode: BatchNorm uses the batch's statistics, because the running
    statistics of a weight-sharing supernet average over random paths and fit no single one (the forward
    passes still update them: with ``info`` of a data-parallel run they are then averaged over the ranks, so
    every rank keeps the same supernet). With ``calibration`` (a list of input batches) each path's statistics
    are instead recalibrated on them (:func:`recalibrate_bn`; with ``info`` of a data-parallel run, on every
    rank's batches) and the path is evaluated in eval mode; the supernet is left in train mode.
    """
    x = _prepare(x, device)
    out = []
    for i in range(archs.shape[0]):
        with autocast_for(device), torch.no_grad():  # θ learns from the losses' values only
            if calibration is not None:
                a = archs[i]
                recalibrate_bn(supernet, lambda b: path_outputs(supernet, _prepare(b, device), a), calibration,
                               info)
            with _batch_of_one_refused(x):
                members = path_outputs(supernet, x, archs[i])
        losses = [F.cross_entropy(logits.float(), y) for logits in members]
        out.append(losses[0] if len(losses) == 1 else torch.stack(losses).mean())
    if calibration is not None:
        supernet.train()
    elif info is not None:
        average_over_ranks(batchnorm_stats(supernet), info)
    return torch.stack(out)


@torch.inference_mode()
def evaluate(forward, loader, device: torch.device, info: DistInfo) -> tuple[float, float]:
    """(mean loss, accuracy) of ``forward(x)`` over every batch of ``loader``, summed over ranks. A ``forward``
    that returns a list of logits (an ensemble's members: :func:`automl.nn.ensemble.path_outputs`) is
    scored by each one's loss and accuracy, averaged.

    In full precision on every device (no autocast: the test accuracy is the exported fp32 network's, and
    BatchNorm recalibrated in fp32 normalises fp32 activations); the test sets are small, so it costs little."""
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    for x, y in loader.epoch(0):
        outs = forward(_prepare(x, device))
        for logits in outs if isinstance(outs, (list, tuple)) else [outs]:
            logits = logits.float()
            sums[0] += F.cross_entropy(logits, y, reduction="sum").double()
            sums[1] += (logits.argmax(1) == y).sum()
            sums[2] += y.numel()
    sums = all_reduce_sum(sums, info)
    n = max(sums[2].item(), 1.0)
    return sums[0].item() / n, sums[1].item() / n


def create_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, momentum: float = 0.9,
                     nesterov: bool = False, **extra):
    """timm's optimizer factory (bias and norm parameters get no weight decay, as in timm's train.py).
    ``rmsprop`` is torch's RMSprop, ``rmsproptf`` timm's TensorFlow-style one (eps inside the square root);
    both take ``eps`` and ``alpha`` from ``extra``. Nesterov's update with ``momentum`` 0 is plain SGD (which
    torch's SGD refuses to build with ``nesterov``)."""
    opt = {"sgd": "sgd" if nesterov and momentum else "momentum", "adamw": "adamw", "rmsprop": "rmsprop",
           "rmsproptf": "rmsproptf"}[name]
    kwargs = {}
    if name in ("sgd", "rmsprop", "rmsproptf"):
        kwargs["momentum"] = momentum
    if name in ("rmsprop", "rmsproptf"):
        kwargs.update({k: v for k, v in extra.items() if k in ("eps", "alpha")})
    return timm.optim.create_optimizer_v2(model, opt=opt, lr=lr, weight_decay=weight_decay, **kwargs)


class FlooredStepLR(timm.scheduler.StepLRScheduler):
    """timm's step schedule that never goes below ``lr_min`` after the warm-up (the warm-up rises from its
    start as timm's cosine schedule's does); ``lr_min`` 0 gives timm's rates exactly."""

    def __init__(self, optimizer, *, lr_min: float = 0.0, **kwargs):
        self.lr_min = lr_min
        super().__init__(optimizer, **kwargs)

    def _get_lr(self, t: int) -> list[float]:
        lrs = super()._get_lr(t)
        return lrs if t < self.warmup_t else [max(v, self.lr_min) for v in lrs]


def create_scheduler(optimizer, schedule: str, epochs: int, steps_per_epoch: int, *, min_lr: float = 0.0,
                     warmup_epochs: float = 0, warmup_lr: float = 0.0, decay_rate: float = 0.1,
                     decay_epochs: float = 30):
    """timm's scheduler, stepped per update (``step_update(num_updates)``): the lr is a pure function of the
    number of updates, so a resumed run sets it by one call. ``min_lr`` is the cosine schedule's end and the
    step schedule's floor (:class:`FlooredStepLR`, built as timm's factory builds its step schedule)."""
    sched = {"cosine": "cosine", "step": "step", "constant": "constant"}[schedule]
    updates = max(steps_per_epoch, 1)
    if sched == "step":
        return FlooredStepLR(optimizer, lr_min=min_lr, decay_t=decay_epochs * updates, decay_rate=decay_rate,
                             warmup_t=warmup_epochs * updates, warmup_lr_init=warmup_lr, warmup_prefix=False,
                             t_in_epochs=False)
    scheduler, _ = timm.scheduler.create_scheduler_v2(
        optimizer, sched=sched, num_epochs=max(epochs, 1), decay_epochs=decay_epochs, decay_rate=decay_rate,
        min_lr=min_lr, warmup_lr=warmup_lr, warmup_epochs=warmup_epochs, step_on_epochs=False,
        updates_per_epoch=updates)
    return scheduler
