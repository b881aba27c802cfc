"""``automl run``: from data to N retrained, exported architectures, driven by a recipe.

The run is a plan of stage objects (:mod:`automl.pipeline.plan`) over one typed state that is the
checkpoint (:mod:`automl.pipeline.state`); every training stage runs the one epoch loop
(:mod:`automl.pipeline.loop`), and every search method runs through :class:`automl.search.Searcher`
(:func:`automl.search.register_searcher`). A checkpoint is written atomically at the end of every epoch of
every stage, inside an epoch every ``checkpoint.every_minutes`` / ``every_steps``, and when SIGTERM,
SIGINT, SIGHUP, SIGUSR1 or SIGUSR2 asks the run to stop (:mod:`automl.train.preempt`); ``--resume`` restarts
at the last one, and on
the CPU the resumed run's architectures equal an uninterrupted run's, because everything random is a
function of the seed and of state in the checkpoint (model init is seeded per stage, the data order is a
function of (seed, epoch, rank) and a resumed epoch skips the batches already done, the searchers and
samplers carry their RNG, the global RNG state and the epoch's running sums are saved and restored). One
process writes a run folder at a time: rank 0 holds an exclusive lock on ``DIR/.lock`` for the whole run
(:mod:`automl._lock`). A run may start from another run's trained supernet (:mod:`automl.pipeline.reuse`).
"""

from automl.pipeline.plan import Plan, build_plan
from automl.pipeline.run import Run
from automl.pipeline.setup import resolve_device
from automl.pipeline.state import RunState
from automl.pipeline.workspace import Workspace, open_workspace

__all__ = ["Run", "Plan", "RunState", "Workspace", "build_plan", "open_workspace", "resolve_device"]
