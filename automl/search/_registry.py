"""The searchers a run can use, by name: the one seam between ``automl run`` and a search method.

The pipeline drives every method only through :class:`~automl.search.Searcher` (``ask`` / ``tell`` /
``best``), as Optuna's ``Study`` drives every sampler only through ``BaseSampler``. A method is registered
under a name with a *factory* (``SearchProblem -> Searcher``) and a *mode*, which says how the run uses it:

==============  ==========================================================================================
mode            the run's search stages
==============  ==========================================================================================
``joint``       train W (uniform paths, eq. 3), then one searcher for all N members, told the supernet's
                D_θ losses of the paths it asks (importance_sampling: eq. 9–10)
``per_member``  train W, then one searcher per member in turn (separate: eq. 7)
``interleaved`` per member: a fresh W, and each W step is followed by an ask / tell (simultaneous, Alg. 2)
``sample``      no supernet: per member, a searcher's :meth:`best` without any loss (the random baseline)
==============  ==========================================================================================

Adding a searcher is writing one class (a :class:`Searcher`) and registering it::

    @register_searcher("mine", mode="joint")
    def _create(problem: SearchProblem) -> Searcher:
        return MySearcher(problem.num_choices, n=len(problem.members), seed=problem.seed)

and ``Run(recipe, out, searcher="mine")`` runs the pipeline with it. Optional hooks add a searcher's own
figures to the logs (``log_fields``, ``epoch_note``, ``nonfinite``) and say which ε each member ended with
(``epsilons``: budgets adapt ε).
"""

from __future__ import annotations

import difflib
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch

from automl.errors import UserError

from ._base import Searcher
from ._checks import real_number
from ._context import ContextCosts
from ._multi_epsilon import MultiEpsilonSearch
from ._random import RandomSearch, member_seed

__all__ = ["SearchProblem", "SearchMethod", "register_searcher", "get_searcher", "searcher_names", "supernet_methods"]

Mode = Literal["joint", "per_member", "interleaved", "sample"]
MODES = ("joint", "per_member", "interleaved", "sample")


@dataclass(frozen=True)
class SearchProblem:
    """What a searcher is built from: the space's decisions, a cost table and the members' targets.

    ``costs`` (``(D, Kmax)``, or with elastic width the exact :class:`~automl.search.ContextCosts`) and
    ``budgets`` are in one unit: the engine's (normalised so the largest
    per-choice cost is 1) for a searcher that learns from losses, the recipe's (less the fixed part of the
    network) for ``sample`` mode, whose budgets are for the deployed network. ``members`` are the indices
    of the run's members this searcher serves (all N in ``joint`` mode, one otherwise); ``epsilons`` and
    ``budgets`` are theirs, in that order (one of the two is None).
    """

    num_choices: list[int]
    costs: torch.Tensor | ContextCosts | None
    members: list[int]
    epsilons: list[float] | None
    budgets: list[float | None] | None
    lam: int
    seed: int
    device: torch.device = torch.device("cpu")
    # method settings: theta_lr, theta_min, utility (ENGINE_OPTIONS); random: those (the run gives them to every
    # searcher) and random_band, cost_fixed, cost_gates, band_context, budget_key (RANDOM_OPTIONS). A built-in
    # factory refuses a key it does not read (a misspelt one would be ignored)
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        """A searcher serves at least one member, and has one epsilon or budget per member where it has them."""
        if isinstance(self.members, (str, bytes)) or not hasattr(self.members, "__len__") or not self.members:
            raise ValueError(f"SearchProblem: members must be a non-empty list of the run's member indices, got "
                             f"{self.members!r}")
        for key in ("epsilons", "budgets"):
            values = getattr(self, key)
            if values is not None and (not hasattr(values, "__len__") or len(values) != len(self.members)):
                raise ValueError(f"SearchProblem: {key} must be None or one per member ({len(self.members)}: "
                                 f"{list(self.members)!r}), got {values!r}")
        if not isinstance(self.options, dict):
            raise ValueError(f"SearchProblem: options must be a dict, got {type(self.options).__name__}")


def _no_fields(searcher: Searcher) -> dict:
    return {}


def _no_note(searcher: Searcher) -> str:
    return ""


def _no_count(searcher: Searcher) -> int:
    return 0


def _no_epsilons(searcher: Searcher) -> list[float] | None:
    return None


@dataclass(frozen=True)
class SearchMethod:
    """A registered searcher: its factory, how the run uses it, and its optional reporting hooks."""

    name: str
    create: Callable[[SearchProblem], Searcher]
    mode: Mode = "joint"
    log_fields: Callable[[Searcher], dict] = _no_fields      # extra metrics.jsonl fields per logged step
    epoch_note: Callable[[Searcher], str] = _no_note         # extra text on the epoch's summary line
    nonfinite: Callable[[Searcher], int] = _no_count         # losses told so far that were NaN or inf
    epsilons: Callable[[Searcher], list[float] | None] = _no_epsilons  # the members' final ε (budgets)

    @property
    def needs_supernet(self) -> bool:
        """Trains a weight-sharing supernet first (the runs whose supernet can be reused or ranked)."""
        return self.mode in ("joint", "per_member")


_REGISTRY: dict[str, SearchMethod] = {}
HOOKS = ("log_fields", "epoch_note", "nonfinite", "epsilons")


def _same_factory(a, b) -> bool:
    """The same function, or the same definition read again (its module imported twice) that captured the same
    values: a helper's inner function made for another class (``make(A)``, ``make(B)``) is another factory."""
    def where(f):
        return (getattr(f, "__module__", None), getattr(f, "__qualname__", None),
                getattr(getattr(f, "__code__", None), "co_firstlineno", None))

    def same(x, y) -> bool:  # the same object, a definition read again, or (captured) an equal plain value
        if x is y or callable(x) or callable(y):
            return x is y or (where(x) == where(y) and where(x)[1] is not None)
        try:
            return type(x) is type(y) and bool(x == y)
        except Exception:  # an == that is not one truth value (an array's)
            return False
    try:  # what each captured: its closure's values and its defaults (a cell still empty: ValueError)
        held = [[c.cell_contents for c in getattr(f, "__closure__", None) or ()]
                + list(getattr(f, "__defaults__", None) or ()) for f in (a, b)]
    except ValueError:
        return a is b
    return same(a, b) and len(held[0]) == len(held[1]) and all(map(same, *held))


def register_searcher(name: str, mode: Mode = "joint", *, replace: bool = False, **hooks):
    """Decorator: register ``create(problem) -> Searcher`` under ``name``. A name that is taken (by another
    factory: registering one definition twice is fine) is a ``ValueError`` unless ``replace=True``, so a
    searcher of one's own cannot silently take the place of a built-in one (``random``, ...). ``hooks``: any of
    :data:`HOOKS`, each a function of the searcher (see :class:`SearchMethod`)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"register_searcher: name must be a non-empty string, got {name!r}")
    if mode not in MODES:
        raise ValueError(f"register_searcher({name!r}): mode must be one of {', '.join(MODES)}, got {mode!r}")
    for hook, fn in hooks.items():
        if hook not in HOOKS:
            raise ValueError(f"register_searcher({name!r}): unknown hook {hook!r}; the hooks are {', '.join(HOOKS)}")
        if not callable(fn):
            raise ValueError(f"register_searcher({name!r}): {hook} must be callable (searcher -> value), got {fn!r}")

    def wrap(create: Callable[[SearchProblem], Searcher]):
        if not callable(create):
            raise ValueError(f"register_searcher({name!r}): the factory must be callable (SearchProblem -> "
                             f"Searcher), got {create!r}")
        taken = _REGISTRY.get(name)
        if taken is not None and not replace and not _same_factory(taken.create, create):
            raise ValueError(f"a searcher {name!r} is already registered ({getattr(taken.create, '__module__', '?')}."
                             f"{getattr(taken.create, '__qualname__', taken.create)!s}); choose another name, or "
                             f"pass replace=True to replace it")
        _REGISTRY[name] = SearchMethod(name, create, mode, **hooks)
        return create
    return wrap


class UnknownSearcher(KeyError, ValueError):
    """No searcher is registered under the name: a ``KeyError`` and a ``ValueError``, its message unquoted."""
    __str__ = BaseException.__str__


def get_searcher(name: str) -> SearchMethod:
    """The searcher registered as ``name``; an unknown name is an :class:`UnknownSearcher` naming the nearest."""
    if not isinstance(name, str) or name not in _REGISTRY:
        near = difflib.get_close_matches(name, searcher_names(), n=1) if isinstance(name, str) else []
        raise UnknownSearcher(f"no searcher registered as {name!r} (registered: {', '.join(searcher_names())})"
                              + (f"; did you mean {near[0]!r}?" if near else ""))
    return _REGISTRY[name]


def searcher_names() -> list[str]:
    return sorted(_REGISTRY)


def supernet_methods() -> str:
    """The registered search methods that train a shared supernet (a plugin's too), as ``a, b or c``: what a
    message advises where a supernet is needed (a ranking, a reused supernet)."""
    names = [name for name in searcher_names() if get_searcher(name).needs_supernet]
    return " or ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)


# ---------------------------------------------------------------------------------------------- built-ins

#: The SearchProblem.options the engine's factory reads (importance_sampling, separate, simultaneous).
ENGINE_OPTIONS = ("theta_lr", "theta_min", "utility")
#: The options the random baseline's factory takes: its own, and the engine's, which automl.pipeline.plan gives
#: every searcher of a run (the random baseline reads none of them).
RANDOM_OPTIONS = ENGINE_OPTIONS + ("random_band", "cost_fixed", "cost_gates", "band_context", "budget_key")


def _known_options(options: dict, allowed: tuple[str, ...], who: str) -> None:
    """Refuse a key of ``options`` that is not one of ``allowed`` (it would be ignored silently: a misspelt
    ``utilty`` ran with the default utility), naming it, the keys ``who`` takes, and the nearest."""
    for key in options:
        if key not in allowed:
            near = difflib.get_close_matches(key, allowed, n=1) if isinstance(key, str) else []
            raise ValueError(f"options[{key!r}] is not a setting {who}; the keys allowed: {', '.join(allowed)}"
                             + (f"; did you mean {near[0]!r}?" if near else ""))


def _auto(options: dict, key: str) -> float | None:
    """``options[key]`` (``"auto"`` where absent) as the engine takes it: None for ``"auto"``, else a number (a
    string or a list is a ``ValueError`` naming the option, not float()'s message)."""
    value = options.get(key, "auto")
    if isinstance(value, str) and value == "auto":
        return None
    number = real_number(value)
    if number is None:
        raise ValueError(f"options[{key!r}] (search.{key}) must be a number or 'auto', got {value!r}")
    return number


def _engine(problem: SearchProblem) -> MultiEpsilonSearch:
    o = problem.options
    _known_options(o, ENGINE_OPTIONS, "the engine's searchers (importance_sampling, separate, simultaneous) read")
    target = ({"budgets": list(problem.budgets)} if problem.budgets is not None
              else {"epsilons": problem.epsilons})  # None (neither): the engine's own message
    lr, theta_min = (_auto(o, key) for key in ("theta_lr", "theta_min"))
    engine = MultiEpsilonSearch(
        num_choices=problem.num_choices, costs=problem.costs, lam=problem.lam, lr=lr, theta_min=theta_min,
        seed=problem.seed, device=problem.device,  # on a GPU, tell() reads nothing back (sync_free)
        utility=o.get("utility", "weighted_quantile"), **target)
    if problem.members[0] == 0:
        _EXPLAIN.add(engine)
    return engine


def _engine_fields(engine: MultiEpsilonSearch) -> dict:
    extra = {"epsilon": engine.epsilons} if engine.budgets is not None else {}
    return {"expected_cost": engine.expected_cost().tolist(), **extra}


# the engines whose next epoch note says what max θ is: the engine of the run's first member (importance sampling's
# one engine, separate's and simultaneous's first), so that a run's log explains it once, on its first θ line
# (a resumed run's, on its first if it resumes in that member's search)
_EXPLAIN = weakref.WeakSet()
MAX_THETA = "max θ: θ's highest choice probability, mean over the decisions; 1 once every decision is settled"


def _numbers(values: list[float]) -> str:
    """Each value to 3 significant digits, as report.md gives ε (``0.0578``, ``0``): one alone, several as a list
    (one per member)."""
    text = [f"{v:.3g}" for v in values]
    return text[0] if len(text) == 1 else f"[{', '.join(text)}]"


def _engine_note(engine: MultiEpsilonSearch) -> str:
    """The θ line's note: ``max θ`` of each member (and with budgets its adapted ε); see :data:`MAX_THETA`."""
    eps = f" ε {_numbers(engine.epsilons)}" if engine.budgets is not None else ""
    explain = ""
    if engine in _EXPLAIN:
        _EXPLAIN.discard(engine)
        explain = f" ({MAX_THETA})"
    return f" max θ {_numbers(engine.theta.amax(-1).mean(-1).tolist())}{eps}{explain}"


def _engine_epsilons(engine: MultiEpsilonSearch) -> list[float] | None:
    return [float(e) for e in engine.epsilons] if engine.budgets is not None else None


_ENGINE_HOOKS = dict(log_fields=_engine_fields, epoch_note=_engine_note,
                     nonfinite=lambda e: e.nonfinite_losses, epsilons=_engine_epsilons)
register_searcher("importance_sampling", "joint", **_ENGINE_HOOKS)(_engine)
register_searcher("separate", "per_member", **_ENGINE_HOOKS)(_engine)
register_searcher("simultaneous", "interleaved", **_ENGINE_HOOKS)(_engine)


@register_searcher("random", "sample")
def _random(problem: SearchProblem) -> RandomSearch:
    """Member j: uniform, or uniform within its budget, from its own seed (:func:`~automl.search._random.member_seed`:
    seed + j * (2**24 + 1), so that runs of nearby seeds share no member's draws). With the option
    ``random_band`` (search.random_band), uniform within [band x budget, budget] of the whole network
    (``cost_fixed``: its cost outside the table). A budgeted member is drawn here: a band the space cannot
    meet is a :class:`~automl.errors.UserError` that starts with the member's ``band_context`` (recipe, key,
    range), and so is a budget so close to the smallest network that the draws find nothing within it.
    ``cost_gates`` (elastic depth's gates): budgets and band hold on the exact totals."""
    _known_options(problem.options, RANDOM_OPTIONS, "the random searcher reads")
    budget = None if problem.budgets is None else problem.budgets[0]
    band = problem.options.get("random_band") if budget is not None else None
    fixed = problem.options.get("cost_fixed", 0.0)
    searcher = RandomSearch(problem.num_choices, costs=problem.costs if budget is not None else None,
                            budget=budget, seed=member_seed(problem.seed, problem.members[0]), band=band,
                            fixed=fixed, gates=problem.options.get("cost_gates"))
    if budget is None:
        return searcher
    try:
        searcher.ask()  # best() answers with this draw's first row, as it would with a draw of its own
    except ValueError:
        tried = f"{searcher.max_tries * searcher.batch:,} uniform architectures of the space"
        if band is None:
            key = problem.options.get("budget_key", f"member {problem.members[0]}'s budget")
            raise UserError(f"{key}: the random baseline's budget of {fixed + budget:,.6g} is so close to the "
                            f"smallest network that {tried} gave none within it; raise the budget") from None
        context = problem.options.get("band_context", [f"search.random_band: {band:g}"])[0]
        raise UserError(f"{context}, but {tried} gave none in that range (it has none there, or too few to "
                        f"draw); lower search.random_band or change the budget") from None
    return searcher
