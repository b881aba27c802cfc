"""The stages after the search: retrain each derived architecture (then evaluate and export it), measure
the supernet's ranking, write the report."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from timm.utils import ModelEmaV3
from torch import nn

from automl._io import writable_dir
from automl._lock import RunLock, lock_holder
from automl.errors import UserError
from automl.export import export_architecture, inherit_from_state, load_model
from automl.export.manifest import class_names, json_cost, whole_metric
from automl.export.quantize import int8_summary, measure_export
from automl.pipeline.context import RunContext, on_main, written_on_main
from automl.pipeline.loop import EpochTask, run_epochs, schedule_at, updates_done
from automl.pipeline.members import Members
from automl.pipeline.results import COMPUTED_ON, computed_on, read_results, reusable_retrainings
from automl.pipeline.search_stages import supernet_from_state
from automl.pipeline.setup import check_member_folder
from automl.pipeline.state import RunState
from automl.ranking import exact_costs
from automl.report import format_accuracy
from automl.train import loops
from automl.train.progress import plural
from automl.nn.depthwise import plain_convs
from automl.nn.ensemble import path_outputs
from automl.nn.measure import count_params

_logger = logging.getLogger(__name__)

__all__ = ["RetrainTask", "retrain", "evaluate", "Exporter", "RetrainStage", "RankingStage", "RecordedRankings"]


class RetrainTask(EpochTask):
    """Ordinary training of one stand-alone network on all of D (retrain.* settings). Its test evaluation (and a
    member's export and measurements) follow its last epoch, which is checkpointed too (:attr:`work_after`): a
    kill during them resumes with the trained weights, and redoes only them."""

    work_after = True

    def __init__(self, ctx: RunContext, phase: str, model: nn.Module, rt, data_seed: int | None = None,
                 size: int | None = None):
        self.ctx, self.phase, self.model, self.epochs = ctx, phase, model, rt.epochs
        # size: the architecture's elastic resolution (its batches resized), None: the data's size
        self.loader = ctx.data.full.with_batch_size(rt.batch_size).with_seed(data_seed).with_resolution(size)
        self.grad_clip = rt.grad_clip
        self.opt = loops.create_optimizer(model, rt.optimizer, rt.lr, rt.weight_decay, rt.momentum,
                                          eps=rt.rmsprop_eps, alpha=rt.rmsprop_alpha)
        self.sched = loops.create_scheduler(self.opt, rt.schedule, rt.epochs, len(self.loader), min_lr=rt.min_lr,
                                            warmup_epochs=rt.warmup_epochs, warmup_lr=rt.warmup_lr,
                                            decay_rate=rt.decay_rate, decay_epochs=rt.decay_epochs)
        self.ema = ModelEmaV3(model, decay=rt.ema) if rt.ema else None
        self.criterion = nn.CrossEntropyLoss(label_smoothing=rt.label_smoothing)
        self.num_updates = 0
        self.lr = self.opt.param_groups[0]["lr"]  # the rate the last step used (logged), not the next one's
        self.loss_sum = self.correct = None
        self.seen = 0
        # the epoch's steps done, resumed ones too: what its loss is a mean over (more than len(loader) when resumed
        # with more processes inside an epoch whose steps done already end it), as the epoch's metrics line
        self.steps_done = 0

    def restorable(self) -> dict:
        objs = {"model": self.model, "optimizer": self.opt}
        if self.ema is not None:
            objs["ema"] = self.ema
        return objs

    def begin_epoch(self, epoch, done, sums):
        self.model.train()
        dev = self.ctx.device
        if sums is None:
            self.loss_sum, self.correct, self.seen = torch.zeros((), device=dev), torch.zeros((), device=dev), 0
        else:
            self.loss_sum, self.correct, self.seen = sums["loss"].to(dev), sums["correct"].to(dev), sums["seen"]
        self.steps_done = done

    def step(self, epoch, step, batch):
        x, y = batch
        loss, corr = loops.train_step(self.model, x, y, self.opt, self.criterion, self.ctx.info, self.grad_clip,
                                      self.ctx.device)
        self.num_updates += 1
        self.lr = self.opt.param_groups[0]["lr"]
        self.sched.step_update(self.num_updates)
        if self.ema is not None:
            self.ema.update(self.model, step=self.num_updates)
        self.loss_sum += loss
        self.correct += corr
        self.seen += y.numel()
        self.steps_done = step + 1

    def progress(self, epoch, steps):
        mean = self.loss_sum.item() / steps
        if not math.isfinite(mean):
            raise UserError(f"{self.phase}: the training loss became {mean} at epoch {epoch + 1}, by step {steps}; "
                            f"{RETRAIN_FIX} (now {self.grad_clip})")
        return {"loss": mean, "accuracy": self.correct.item() / max(self.seen, 1), "lr": self.lr}

    def end_epoch(self, epoch):
        bad = loops.nonfinite_tensors(self.model)  # a last update that overflowed: no loss has seen it
        if bad:
            raise UserError(f"{self.phase}: the network's weights became NaN or inf by the end of epoch {epoch + 1} "
                            f"({plural(len(bad), 'tensor')}, e.g. {bad[0]}), though the training loss was finite: "
                            f"a weight update overflowed; {RETRAIN_FIX} (now {self.grad_clip})")
        self.ctx.reporter.info(f"{self.phase} epoch {epoch + 1}/{self.epochs}: loss "
                               f"{self.loss_sum.item() / max(self.steps_done, 1):.4f} "
                               f"acc {self.correct.item() / max(self.seen, 1):.3f}")

    def objects(self):
        return {**self.restorable(), "num_updates": self.num_updates}

    def sums(self):
        return {"loss": self.loss_sum, "correct": self.correct, "seen": self.seen}


def retrain(ctx: RunContext, state: RunState, idx: int, model: nn.Module, phase: str, rt,
            data_seed: int | None = None, size: int | None = None) -> nn.Module:
    """Train ``model`` by ``rt`` (from the checkpoint when resumed inside this stage: one written after its last
    epoch, ``state.epoch`` = ``rt.epochs``, leaves no epoch to run); returns the network to evaluate (with
    retrain.ema: the averaged weights, which ``model`` then holds too). ``data_seed``: the batch order's seed
    (None: the run's); ``size``: the architecture's resolution (None: the data's)."""
    task = RetrainTask(ctx, phase, model, rt, data_seed, size)
    start = (0, 0, None)
    if state.mid_stage:
        rest = ctx.restore(state, task.restorable())
        # the schedule where this run's epochs are (another process count changes an epoch's steps)
        task.num_updates = updates_done(state.epoch, state.step, len(task.loader))
        start = (state.epoch, state.step, rest.get("sums"))
    task.lr = schedule_at(task.sched, task.opt, task.num_updates)  # the last update's rate, until a step
    run_epochs(ctx, idx, task, *start)
    if task.ema is None:
        return model
    model.load_state_dict(task.ema.module.state_dict())
    return task.ema.module


RETRAIN_FIX = "lower retrain.lr or set retrain.grad_clip"


def evaluate(ctx: RunContext, model: nn.Module, phase: str, epochs: int, size: int | None = None,
             fix: str = RETRAIN_FIX) -> tuple[float, float]:
    """The test loss and accuracy of a retrained network (logged as the phase's ``split: test`` line), on
    test images at ``size`` (the architecture's resolution; None: the data's). A loss that is not finite (the
    network's training diverged: its weights are so large that it overflows) stops the run, ``fix`` saying how."""
    model.eval()
    test_loss, accuracy = loops.evaluate(model, ctx.data.test.with_resolution(size), ctx.device, ctx.info)
    if not math.isfinite(test_loss):
        raise UserError(f"{phase}: the network's test loss is {test_loss}: its weights make it overflow (its "
                        f"training diverged, though the training loss was finite when it was last logged); {fix}")
    ctx.reporter.info(f"{phase}: test accuracy {format_accuracy(accuracy)} (loss {test_loss:.4f})")
    ctx.reporter.log(phase=phase, epoch=epochs, step=0, loss=test_loss, accuracy=accuracy, split="test")
    return test_loss, accuracy


class Exporter:
    """Export one architecture (timm network, ONNX, manifest) and measure it (latency, int8)."""

    def __init__(self, recipe, out: Path):
        self.export, self.cost, self.se = recipe.export, recipe.search.cost, recipe.retrain.se
        self.root, self.out = recipe.export_root(out), out
        self.shared = recipe.export_dir is not None  # an absolute export.dir, which other runs may share

    def __call__(self, ctx: RunContext, folder_name: str, model: nn.Module, arch: torch.Tensor, eps,
                 provenance: dict, budget: float | None = None) -> dict:
        """{"onnx": path relative to the run folder or None, "latency_ms", "int8"}, and "onnx_error" (why) when
        the ONNX export failed: the member keeps its PyTorch export, its manifest records the failure, a warning
        says so and the run goes on; ``provenance``: the manifest's record of where the weights came from
        (``{"source": "retrained"}``, ...)."""
        folder = self.root / folder_name
        with _member_locked(folder, ctx):  # an `automl export --out` into it meanwhile is refused
            if self.shared:
                check_member_folder(folder, self.out, ctx.keeper.resume_command)
            return self._export(ctx, folder, model, arch, eps, provenance, budget)

    def _export(self, ctx: RunContext, folder: Path, model: nn.Module, arch: torch.Tensor, eps, provenance: dict,
                budget: float | None) -> dict:
        """The export into ``folder`` (locked by :func:`_member_locked`) and its measurements: :meth:`__call__`'s
        answer."""
        sp = ctx.spaces
        # the manifest's cost is the exported (retrained) network's; the network searched, when retrain.space_args
        # made another one, is recorded beside it
        table = sp.search.cost_table
        search_cost = None if sp.search is sp.retrain else {m: table.total(arch, m) for m in table.metrics}
        # export_architecture exports a CPU copy in eval mode; the trained model stays where it is
        m = export_architecture(sp.retrain, arch, folder, model=model, se=self.se, opset=self.export.opset,
                                onnx=self.export.onnx, epsilon=eps, budget=budget, cost_metric=self.cost,
                                space_path=sp.path, space_args=sp.retrain_args, normalize=ctx.data.normalize,
                                dataset=ctx.data.dataset, provenance=provenance, classes=class_names(ctx.data),
                                search_cost=search_cost, run=self.out, onnx_failure="record")
        # on standard output with the run's other lines (as `automl export` says it), not on the log's stream
        ctx.reporter.info(f"exported {sp.retrain.name} ({m['params']:,} params) to {folder}")
        if not self.export.onnx:
            return {"onnx": None}
        if m["onnx"].get("error"):
            why = m["onnx"]["error"]
            _logger.warning("warning: %s: the ONNX export failed, keeping the PyTorch export only (weights, "
                            "manifest.json): %s", folder, why)
            int8 = {"error": "not quantised: the ONNX export failed"} if self.export.quantize else None
            return {"onnx": None, "latency_ms": None, "int8": int8, "onnx_error": why}
        # onnxruntime latency on this machine (and int8: calibrated on the run's own training data)
        size = sp.retrain.resolution(arch)
        # under torchrun the export runs on rank 0 alone: its ONNX and int8 accuracies need the whole test set
        test = ctx.data.test.unsharded().with_resolution(size)
        # the ONNX test accuracies only for int8 (the fp32 network's is the run's own test accuracy; a pass of
        # onnxruntime over an ImageNet-size test set per member is not free)
        m = measure_export(folder, quantize=self.export.quantize,
                           calibration=ctx.data.full.without_cutout().with_resolution(size).epoch(0),
                           test=(lambda: test.epoch(0)) if self.export.quantize else None, **sp.latency)
        if (m.get("int8") or {}).get("error"):
            _logger.warning("warning: %s: int8 quantisation failed, keeping the fp32 model only: %s", folder,
                            m["int8"]["error"])
        onnx_path = folder / "model.onnx"
        try:
            rel = str(onnx_path.relative_to(self.out))
        except ValueError:
            rel = str(onnx_path)
        return {"onnx": rel, "latency_ms": m["latency"]["fp32_ms"], "int8": int8_summary(m)}


@contextmanager
def _member_locked(folder: Path, ctx: RunContext) -> Iterator[None]:
    """``folder`` (a member's export folder, made here: ``writable_dir``) locked while the run exports the member
    into it and measures it, as ``automl export`` locks its ``--out`` (:class:`~automl._lock.RunLock`'s lock file
    ``folder/.lock``, taken to look, without the run-folder guard): an ``automl export --out`` into it meanwhile is
    refused by the lock, naming this run, and this run's export is refused while such an export holds it
    (:func:`_check_not_in_use`'s message). Released when the export is done, ends in an error, or a signal stops
    it (a kill -9 drops it with the process, the file staying); the lock file is removed then, also one found there
    (a killed command's), so the folder holds the export's files alone, as after an uninterrupted run."""
    try:
        writable_dir(folder, "export folder")
    except UserError as e:  # a full or read-only disk, mid-run: the checkpoints hold the member
        raise UserError(f"{e} (this run's checkpoints are intact: once it can write there, continue it with: "
                        f"{ctx.keeper.resume_command})") from None
    lock = RunLock(folder)
    try:
        lock.acquire(then="then continue this run", look=True, guard=False)
    except UserError as e:  # held, or a lock file that cannot be used: said with the resume command
        _check_not_in_use(folder, ctx)  # still held: the holder named, and what to do, as before
        raise UserError(f"{e} (this run's checkpoints are intact: continue it with: "
                        f"{ctx.keeper.resume_command})") from None
    try:
        yield
    finally:
        lock.release(remove=True)  # one a killed export left there too: the folder holds the export's files alone


def _check_not_in_use(folder: Path, ctx: RunContext) -> None:
    """Where a member's export could not lock ``folder`` (:func:`_member_locked`): refuse it while another command
    holds its lock (an ``automl export --out`` into it, started while this run was not running: resumed since, the
    run would replace the files it writes, and it the run's), naming the holder. The run stops before writing
    there; its checkpoints are intact (the one after the member's retraining holds its weights: the resumed run
    exports it, ``ctx``'s resume command)."""
    found = lock_holder(folder)
    if found is not None:
        raise UserError(f"{folder} is in use: another automl command is writing there ({found[0]}); this run stops "
                        f"before writing its export there. Its checkpoints are intact: wait for that command to end "
                        f"(or stop it), then continue with: {ctx.keeper.resume_command}")


def _network_of(space):
    """Architecture (choice indices) -> what makes it one network in ``space``: its choices, less those of layers
    elastic depth leaves out (:attr:`automl.ranking.ExactCosts.canonical`), whose choice builds nothing."""
    exact = exact_costs(space.cost_table, "params")
    if exact is None or not space.cost_table.gates:
        return lambda arch: list(arch)
    return lambda arch: exact.canonical(torch.tensor([list(arch)]))[0].tolist()


class RetrainStage:
    """Retrain architecture ``i`` from scratch on all of D, evaluate it on the test set, export it.

    One checkpointed stage of three steps (:func:`retrain`, :func:`evaluate`, :class:`Exporter`): the
    trained weights need no place in the checkpoints after it, which would otherwise carry N networks (the one
    after its last epoch holds them, so that a kill during the evaluation or export does not retrain it)."""

    def __init__(self, i: int, members: Members, rt, seed: int, exporter: Exporter):
        self.i, self.members, self.rt, self.seed, self.exporter = i, members, rt, seed, exporter
        self.key = f"retrain/{i}"

    def run(self, ctx: RunContext, state: RunState, idx: int) -> None:
        i, rt, sp = self.i, self.rt, ctx.spaces
        arch = torch.tensor(state.archs[i], dtype=torch.long)
        torch.manual_seed(self.seed * 7919 + i)
        # retrain.epochs 0 trains nothing: the GPU holds the weights once (loops.check_fits_on_gpu)
        model = loops.for_training(sp.retrain.build_standalone(arch, se=rt.se), ctx.device, copies=1 if rt.epochs == 0
                                   else loops.training_copies(rt.optimizer, rt.momentum, supernet=False, ema=rt.ema))
        phase, size = f"retrain {self.members.tag(i, state)}", sp.retrain.resolution(arch)
        same = self._same_network(ctx, state, model)
        ctx.keeper.start("retrain")
        if same is not None:  # an earlier member's network: its retraining, not a second one
            provenance, accuracy = {"source": "retrained"}, state.results[str(same)]["test_accuracy"]
            ctx.reporter.info(f"{phase}: the same network as {self.members.member(same, state)}, which was "
                              f"retrained before: not retrained again; its weights and test accuracy "
                              f"{format_accuracy(accuracy)} are this member's too")
        elif rt.epochs > 0:
            provenance = {"source": "retrained"}
            trained = retrain(ctx, state, idx, model, phase, rt, size=size)
            _, accuracy = evaluate(ctx, trained, phase, rt.epochs, size)
        else:
            provenance, accuracy = self._not_retrained(ctx, state, model, arch, size)
        weights = provenance["source"]
        ctx.keeper.stop()
        t0 = time.perf_counter()
        # the manifest's budget: the bound the member was searched or drawn under (search.random_budgets' too)
        eps, budget = self.members.epsilon(i, state), self.members.bound(i)
        folder = self.members.folder(i, state)
        edge = written_on_main(ctx.info, f"the export in {self.exporter.root / folder}",
                               lambda: self.exporter(ctx, folder, model, arch, eps, provenance, budget),
                               lambda fix: f"the run's last checkpoint is intact: {fix} and continue with: "
                                           f"{ctx.keeper.resume_command}")
        state.add_seconds("export", time.perf_counter() - t0)
        state.results[str(i)] = {"test_accuracy": accuracy, "params": count_params(model), "weights": weights,
                                 **({"same_network_as": same} if same is not None else {}), **edge}
        ctx.keeper.save(idx + 1, 0)

    def _same_network(self, ctx: RunContext, state: RunState, model: nn.Module) -> int | None:
        """The first earlier member that derived this member's architecture and was retrained (retrain.epochs >
        0: the same network, trained from scratch), whose exported weights ``model`` then takes (on rank 0, which
        exports); None when there is none, or its export cannot be read back (moved or damaged since: this member
        is then retrained, and a warning says why). Retraining it again would cost as long and report one
        network at two test accuracies (another initialisation seed)."""
        if self.rt.epochs == 0:  # inherited weights: evaluated again, cheaply (Method 1's differ per member)
            return None
        network = _network_of(ctx.spaces.retrain)
        same = next((k for k in range(self.i)
                     if network(state.archs[k]) == network(state.archs[self.i]) and str(k) in state.results), None)
        if same is None:
            return None
        folder = self.exporter.root / self.members.folder(same, state)

        def take() -> bool:
            try:  # rank 0 alone: building the network draws its initialisation from an RNG of its own
                with torch.random.fork_rng(devices=[]):
                    model.load_state_dict(load_model(folder).state_dict())
            except (UserError, OSError, RuntimeError, ValueError) as e:
                ctx.reporter.info(f"warning: retrain {self.members.tag(self.i, state)} is the same network as "
                                  f"{self.members.member(same, state)}, but that one's export in {folder} cannot "
                                  f"be read back ({e}): retraining it again")
                return False
            return True

        return same if on_main(ctx.info, take) else None

    def _not_retrained(self, ctx: RunContext, state: RunState, model: nn.Module, arch: torch.Tensor,
                       size: int | None) -> tuple[dict, float | None]:
        """retrain.epochs 0: ``model`` takes the supernet's weights on its path, BatchNorm recalibrated on
        retrain.bn_batches D_W batches, and is evaluated: ({"source": "supernet", "bn_recalibrated_batches": n},
        test accuracy); or, with no weights to take, stays untrained, and says so: ({"source": "untrained"},
        None)."""
        tag, sp = self.members.tag(self.i, state), ctx.spaces
        source = inherited_source(state, self.i)
        if source is None:  # the random baseline: every member alike, said once (not once per member)
            if self.i == 0:
                ctx.reporter.info("warning: every member is exported with untrained weights: search.method random "
                                  "trains no supernet and retrain.epochs is 0; set retrain.epochs > 0 to train them")
            return {"source": "untrained"}, None
        if not searched_shapes(sp, arch, model, self.rt.se):
            ctx.reporter.info(f"warning: {self.members.member(self.i, state)} is exported with untrained weights: "
                              f"retrain.space_args gives the retrained networks another shape than the supernet's "
                              f"and retrain.epochs is 0; set retrain.epochs > 0 to train it")
            return {"source": "untrained"}, None
        inherit(ctx, source, model, arch)
        batches = ctx.data.bn_batches(self.rt.bn_batches, size)
        loops.recalibrate_bn(model, lambda x: model(x.contiguous(memory_format=torch.channels_last)), batches,
                             ctx.info)
        fix = "lower optim.lr or set optim.grad_clip (the supernet's weights diverged), or set retrain.epochs > 0"
        bad = loops.nonfinite_tensors(model)
        if bad:  # the supernet computed finite outputs after its weight phase: the recalibration overflowed
            raise UserError(f"{tag}: the supernet's weights on its path give NaN or inf BatchNorm statistics "
                            f"({plural(len(bad), 'tensor')}, e.g. {bad[0]}): its activations overflow; {fix}")
        accuracy = evaluate(ctx, model, f"{tag}, the supernet's weights", 0, size, fix)[1]
        # under torchrun: recalibrated on every rank's batches (averaged over the ranks)
        return {"source": "supernet", "bn_recalibrated_batches": len(batches) * ctx.info.world_size}, accuracy


def searched_shapes(spaces, arch: torch.Tensor, model: nn.Module, se: float) -> bool:
    """Whether ``model`` (``arch`` built in the retraining space) has the tensors, by name and shape, of the
    network searched (``arch`` in the search space), so that it can take the supernet's weights: always without
    retrain.space_args, and with retrain.space_args that compile the same networks (a parameter given its
    searched value again)."""
    if spaces.retrain is spaces.search:
        return True
    with torch.device("meta"):
        searched = spaces.search.build_standalone(arch, se=se)
    return ({k: v.shape for k, v in searched.state_dict().items()} ==
            {k: v.shape for k, v in model.state_dict().items()})


def inherited_source(state: RunState, i: int) -> dict | None:
    """The supernet weights architecture ``i`` inherits with retrain.epochs 0: the run's supernet, or (Method
    1) member ``i``'s own; None when there are none (the random baseline)."""
    if state.supernet is not None:
        return state.supernet
    return (state.member_supernets or {}).get(str(i))


def inherit(ctx: RunContext, weights: dict, model: nn.Module, arch: torch.Tensor) -> None:
    """retrain.epochs 0: ``model`` takes the supernet's weights on the chosen path
    (:func:`automl.export.inherit_from_state`). BatchNorm statistics are recalibrated afterwards (the
    supernet's statistics average over random paths and fit no single one)."""
    # not trained further: only evaluated and exported, as a plain timm network
    inherit_from_state(ctx.spaces.search, weights, arch, plain_convs(model.cpu().eval()))
    model.to(ctx.device)


class RecordedRankings:
    """The retrainings of a run's ranking that its results.json records as computed as this run computes (an
    ``automl rank`` of the same ranking, stopped part-way or finished:
    :func:`~automl.pipeline.results.reusable_retrainings`): ``{(j, seed): retraining}``. Read once, when the
    first ranking stage of the run asks (nothing writes the file again before the report), and shared by the
    plan's ranking stages. Rank 0 reads the file; every rank gets its answer, so all skip the same retrainings."""

    def __init__(self, archs, epochs: int):
        self.archs, self.epochs = archs, epochs
        self.found: dict[tuple[int, int], dict] | None = None

    def of(self, ctx: RunContext) -> dict[tuple[int, int], dict]:
        if self.found is None:
            path = ctx.keeper.store.folder.parent / "results.json"  # the run folder's (checkpoints/ is in it)
            choices = [ctx.spaces.search.decode(a) for a in self.archs()]
            here = computed_on(ctx)
            self.found = on_main(ctx.info, lambda: reusable_retrainings(read_results(path), self.epochs, choices,
                                                                        here))
        return self.found


class RankingStage:
    """Retraining ``s`` of architecture ``j`` of the ranking (stage ``ranking/j``, or ``ranking/j/s`` for
    s > 0). Retraining 0 also scores the architecture on the supernet; retraining s is initialised and shuffled
    from seed ``seed + s`` (s = 0: the run's seed, as with one retraining)."""

    def __init__(self, j: int, archs, ranking, rt, cost: str, seed: int, s: int, earlier: RecordedRankings):
        # rt: the retrain section's settings at the ranking's length (results.ranking_epochs)
        self.j, self.s, self.archs, self.rk, self.rt, self.cost, self.seed = j, s, archs, ranking, rt, cost, seed
        self.key = f"ranking/{j}" if s == 0 else f"ranking/{j}/{s}"
        # this retraining as an earlier ranking recorded it: chosen by automl rank (automl/pipeline/rank.py); in a
        # run, looked up in its results.json by ``earlier``, one for every ranking stage of the plan
        self.recorded: dict | None = None
        self.earlier = earlier

    def _recorded(self, ctx: RunContext) -> dict | None:
        """This retraining as results.json records it, computed as this run computes (:class:`RecordedRankings`),
        or None."""
        if self.recorded is not None or not ctx.keeper.enabled or self.rt.epochs == 0:  # automl rank: chosen
            return self.recorded
        return self.earlier.of(ctx).get((self.j, self.seed + self.s))

    def run(self, ctx: RunContext, state: RunState, idx: int) -> None:
        j, s, arch = self.j, self.s, self.archs()[self.j]
        recorded = self._recorded(ctx)
        ctx.keeper.start("ranking")
        if s == 0:
            net, paths, entry = self._score(ctx, state, idx, arch)
        else:
            net, paths, entry = None, None, state.results[f"ranking/{j}"]
        note = ""
        if recorded is not None:
            seed, note = self.seed + s, " (recorded earlier)"
            test_loss, test_acc = recorded["test_loss"], recorded["test_accuracy"]
            entry["params"] = recorded["params"]
        elif self.rt.epochs > 0:
            net = paths = None  # the supernet scored above, freed before the stand-alone network takes its memory
            seed = self.seed + s
            torch.manual_seed(seed * 7919 + 100_003 + j)
            model = loops.for_training(ctx.spaces.retrain.build_standalone(arch, se=self.rt.se), ctx.device,
                                       copies=loops.training_copies(self.rt.optimizer, self.rt.momentum,
                                                                    supernet=False, ema=self.rt.ema))
            phase = f"ranking {j + 1}/{self.rk.archs}" + (f" seed {seed}" if self.rk.seeds > 1 else "")
            size = ctx.spaces.retrain.resolution(arch)
            trained = retrain(ctx, state, idx, model, phase, self.rt, data_seed=seed, size=size)
            test_loss, test_acc = evaluate(ctx, trained, phase, self.rt.epochs, size)
            entry["params"] = count_params(model)
        else:  # the supernet's own weights on the path, BatchNorm as recalibrated in _score
            seed = self.seed
            test_loss, test_acc = loops.evaluate(paths, ctx.data.test, ctx.device, ctx.info)
            entry["params"] = net.path_params(arch)
        ctx.keeper.stop()
        entry["retrainings"] = [*entry.get("retrainings", []),
                                {"seed": seed, "test_loss": test_loss, "test_accuracy": test_acc}]
        # how it was computed (a recorded one: as now, or it was not reused), each retraining its own: a run
        # resumed with another device or process count computes the rest otherwise (automl/pipeline/rank.py)
        entry[COMPUTED_ON] = {**entry.get(COMPUTED_ON, {}), seed: computed_on(ctx)}
        state.results[f"ranking/{j}"] = entry
        ctx.reporter.info(self._line(entry, seed, test_loss, test_acc, note))
        ctx.keeper.save(idx + 1, 0)

    def _line(self, entry: dict, seed: int, test_loss: float, test_acc: float, note: str) -> str:
        """The retraining's line: the architecture's size and supernet scores with its first retraining (the
        others, with ``ranking.seeds`` > 1, name their seed and do not repeat them), its test loss and accuracy,
        and after the last seed the mean the ranking's truth is."""
        seeds, name = self.rk.seeds, f"ranking {self.j + 1}/{self.rk.archs}"
        line = f"{name} seed {seed}: " if seeds > 1 else f"{name}: "
        if self.s == 0:
            line += (f"{entry['params']:,} params, supernet loss {entry['supernet_loss']:.4f} (batch statistics "
                     f"{entry['supernet_loss_batch_stats']:.4f}), ")
        line += (f"{'stand-alone' if self.rt.epochs > 0 else 'its own weights:'} test loss {test_loss:.4f}, "
                 f"accuracy {format_accuracy(test_acc)}{note}")
        done = entry["retrainings"]
        numbers = all(isinstance(r.get(k), (int, float)) for r in done for k in ("test_loss", "test_accuracy"))
        if seeds > 1 and self.s + 1 == seeds and len(done) == seeds and numbers:
            loss, acc = (sum(r[k] for r in done) / seeds for k in ("test_loss", "test_accuracy"))
            line += f"; mean of the {seeds} seeds: test loss {loss:.4f}, accuracy {format_accuracy(acc)}"
        return line

    def _score(self, ctx: RunContext, state: RunState, idx: int, arch: torch.Tensor):
        """The supernet with BatchNorm recalibrated for ``arch``, its forward on the path (an ensemble: each
        member's, averaged in the scores), and the entry with its scores on D_θ."""
        net = supernet_from_state(ctx.spaces.search, ctx.device, state.supernet, self.seed, idx)
        paths = lambda x: path_outputs(net, x, arch)  # noqa: E731  (an ensemble: each member's, averaged)
        with torch.no_grad():
            # what the θ phase sees by default: train mode, each batch's own statistics (evaluate runs in fp32,
            # where the θ phase on a CUDA GPU of compute capability 8.0 or more runs under bf16 autocast)
            loss_batch, acc_batch = loops.evaluate(paths, ctx.data.theta, ctx.device, ctx.info)
            loops.recalibrate_bn(net, lambda x: paths(x.contiguous(memory_format=torch.channels_last)),
                                 ctx.data.bn_batches(self.rk.bn_batches), ctx.info)
            loss, acc = loops.evaluate(paths, ctx.data.theta, ctx.device, ctx.info)
        space, table = ctx.spaces.search, ctx.spaces.search.cost_table
        # a count (params, MACs, a space file's metric of whole numbers) as an int, as results.json writes it
        entry = {"choices": space.decode(arch), "cost": json_cost(table.total(arch, self.cost),
                                                                  whole_metric(table, self.cost)),
                 "supernet_loss": loss, "supernet_accuracy": acc, "supernet_loss_batch_stats": loss_batch,
                 "supernet_accuracy_batch_stats": acc_batch}
        return net, paths, entry
