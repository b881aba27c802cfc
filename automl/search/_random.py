"""Random search: the paper's simplest baseline (uniform architectures, optionally under a cost budget)."""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import torch

from ._base import Searcher
from ._checks import (MOST_NUMBERS, check_device, check_fits, check_lam, check_num_choices, check_seed,
                      check_state, checked_generator, integer, real_number, shown)
from ._context import ContextCosts, arch_totals, check_cost_model, chosen_costs, cost_extremes, cost_state
from ._inputs import TellInputs
from ._knapsack import BUDGET_RTOL

__all__ = ["RandomSearch", "member_seed", "MEMBER_STRIDE"]

_STATE_VERSION = 1

#: The step between the seeds of a random baseline's members (:func:`member_seed`): 2**24 + 1.
MEMBER_STRIDE = 2 ** 24 + 1


def member_seed(seed: int, member: int) -> int:
    """The seed of member ``member`` of a random-baseline run of seed ``seed``: ``seed + member * (2**24 + 1)``
    (:data:`MEMBER_STRIDE`; member 0 draws from the run's seed itself), modulo ``2**64`` where that passes the
    generator's largest seed (``2**64 - 1``).

    ``torch.Generator`` reads only the low 32 bits of a seed (seeds ``s`` and ``s + 2**32`` draw alike); the
    stride is odd, so within a run no two members share those bits (any number of members), and for two runs whose
    seeds are less than ``2**24 - 256`` apart (seeds 0 to 16,776,959, say) and members 0 to 255, no two (run seed,
    member) pairs draw from the same stream (with ``seed + member``, run seed 0's member 1 would draw run seed 1's
    member 0's networks: random baselines averaged over seeds 0, 1, 2 would share members)."""
    seed, index = check_seed(seed), integer(member)
    if index is None or index < 0:
        raise ValueError(f"member must be an integer >= 0 (the member's index in the run), got {shown(member)}")
    value = seed + index * MEMBER_STRIDE
    return value % 2 ** 64 if value > 2 ** 64 - 1 else value  # the same low 32 bits, so the same draws


def _floor(low: float) -> float:
    """``low`` less the rounding slack (an infinite ``low`` as it is)."""
    return low - BUDGET_RTOL * max(abs(low), 1.0) if math.isfinite(low) else low


def _ceiling(budget: float, fixed: float) -> float:
    """The largest table cost ``R(M)`` within ``budget``: the engine's rounding slack (:data:`BUDGET_RTOL`) of the
    whole network's budget ``fixed + budget``, as its knapsack's ``slack_of`` (an infinite budget as it is)."""
    return budget + BUDGET_RTOL * max(abs(fixed + budget), 1.0) if math.isfinite(budget) else budget


def _gated_extremes_in(tables: torch.Tensor, held: torch.Tensor, by_gate: dict[int, list[tuple[int, list[bool]]]],
                       gated: set[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A,)`` minima and maxima of the gated totals of ``A`` tables ``(A, D, Kmax)``, each over the choices its
    ``held`` ``(A, D, Kmax)`` allows: a gated decision counts only where its depth decision's choice has its
    layer (each depth decision's choice taken with its layers' cheapest, or dearest, choices)."""
    inf = torch.tensor(math.inf, dtype=torch.float64)
    lo, hi = torch.where(held, tables, inf).min(-1).values, torch.where(held, tables, -inf).max(-1).values  # (A, D)
    free = [d for d in range(tables.shape[1]) if d not in gated and d not in by_gate]
    low, high = lo[:, free].sum(-1), hi[:, free].sum(-1)
    for g, ds in by_gate.items():
        there = torch.zeros(len(ds), tables.shape[2], dtype=torch.float64)                 # (G_g, Kmax)
        for i, (_, flags) in enumerate(ds):
            there[i, :len(flags)] = torch.tensor(flags, dtype=torch.float64)
        rows = [d for d, _ in ds]
        with_lo = tables[:, g] + lo[:, rows] @ there                                       # (A, Kmax)
        with_hi = tables[:, g] + hi[:, rows] @ there
        low = low + torch.where(held[:, g], with_lo, inf).min(-1).values
        high = high + torch.where(held[:, g], with_hi, -inf).max(-1).values
    return low, high


def _gated_extremes(costs, mask: torch.Tensor, gates: dict) -> tuple[float, float]:
    """``(min_M R(M), max_M R(M))`` with elastic depth's ``gates``, exact (over every combination of a
    :class:`ContextCosts`); :func:`cost_extremes` (every layer there) where a depth decision is gated itself."""
    by_gate: dict[int, list[tuple[int, list[bool]]]] = {}
    for d, (g, there) in gates.items():
        by_gate.setdefault(int(g), []).append((int(d), [bool(v) for v in there]))
    gated = {int(d) for d in gates}
    if not gates or gated & set(by_gate):
        return cost_extremes(costs, mask)
    if not isinstance(costs, ContextCosts):
        low, high = _gated_extremes_in(costs.cpu().to(torch.float64).unsqueeze(0), mask.unsqueeze(0), by_gate, gated)
        return float(low[0]), float(high[0])
    ctx, choice_of = list(costs.context_decisions), costs.choice_of_cpu()                  # (C, A)
    held = mask.cpu().expand(costs.num_combinations, *mask.shape).clone()                  # (A, D, Kmax)
    held[:, ctx] = torch.arange(mask.shape[1]) == choice_of.t().unsqueeze(-1)             # the combination's own
    low, high = _gated_extremes_in(costs.tables.cpu().to(torch.float64), held, by_gate, gated)
    fixed = costs.fixed.cpu().to(torch.float64)
    return float((low + fixed).min()), float((high + fixed).max())


def _check_budgets(budget) -> tuple[list[float], list]:
    """One budget or a non-empty list of them, each a number that is not NaN: ``(the budgets as floats, as a message
    shows them)``, the second with an integer as given (``-10**400`` is no ``-inf``), other numbers as floats."""
    one = real_number(budget)
    many = hasattr(budget, "__iter__") and not isinstance(budget, (str, bytes, dict))
    raw = [budget] if one is not None else (list(budget) if many else [])
    out = [real_number(b) for b in raw]
    if not out or any(b is None or math.isnan(b) for b in out):
        hint = ("; a group without a budget is budget=math.inf here (None is the engine's unconstrained member)"
                if any(b is None for b in raw) else "")
        raise ValueError(f"budget must be a number or a non-empty list of numbers, got {shown(budget)}{hint}")
    return out, [int(g) if isinstance(g, numbers.Integral) else b for g, b in zip(raw, out)]


_GATES_FORM = "gates must be a dict {decision: (depth decision, [bool per choice of it])} (CostTable.gates)"


def _gate_index(value, gates) -> int:
    """A decision of ``gates`` (a key, or a depth decision) as an int: an :func:`~._checks.integer` (NumPy's and 0-d
    integer tensors too); 0.5, True or "1" is a ``ValueError`` naming ``gates`` and the value (``int()`` would read
    0.5 as 0)."""
    index = integer(value)
    if index is None:
        raise ValueError(f"{_GATES_FORM}: decision {shown(value)} is not a decision index (an integer), in "
                         f"{shown(gates)}")
    return index


def _gate_flag(value, gates) -> bool:
    """A flag of ``gates``: a bool, or 0 / 1 (NumPy's too); ``bool()`` would read 0.5, 2 or "no" as True."""
    number = value.item() if getattr(value, "ndim", None) == 0 and hasattr(value, "item") else value
    if isinstance(number, (bool, numbers.Integral)) and number in (0, 1):
        return bool(number)
    raise ValueError(f"{_GATES_FORM}: flag {shown(value)} is not True/False (whether the layer is there at each "
                     f"choice of the depth decision), in {shown(gates)}")


def _gate_entries(gates) -> dict[int, tuple[int, list[bool]]]:
    """``gates`` (``{d: (g, flags)}``, as :attr:`automl.compile.CostTable.gates`) with int decisions and bool
    flags; any other shape is a ``ValueError`` naming ``gates`` (and the key or flag that is not one)."""
    try:
        items = list(gates.items())
    except (AttributeError, TypeError):
        items = None
    out = {}
    for d, entry in items or ():
        try:
            g, there = entry
            if isinstance(there, (str, bytes)):
                raise TypeError
            there = list(there)
        except (TypeError, ValueError):
            items = None
            break
        out[_gate_index(d, gates)] = (_gate_index(g, gates), [_gate_flag(v, gates) for v in there])
    if items is None:
        raise ValueError(f"{_GATES_FORM}, got {shown(gates)}")
    return out


def _index_table(value, shape: tuple[int, int], num_choices: list[int], key: str) -> torch.Tensor:
    """``state[key]``: an integer tensor of ``shape`` whose column d holds choices 0..K_d-1."""
    if not isinstance(value, torch.Tensor) or value.is_floating_point() or value.is_complex() \
            or value.dtype == torch.bool or tuple(value.shape) != shape \
            or bool(((value < 0) | (value >= torch.tensor(num_choices))).any()):
        got = f"shape {tuple(value.shape)}, {value.dtype}" if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"state['{key}'] must be a {shape} tensor of choice indices 0..K_d-1 (K = {num_choices}), "
                         f"got {got}; the state is corrupt")
    return value.detach().cpu().long().clone()


def _state_values(state: dict, num_choices: list[int], N: int, lam: int) -> tuple:
    """``(generator, best_arch, best_loss, told, last, seed)`` of a RandomSearch state, each checked, so that a
    partial or corrupt state is refused (naming its key) before anything is loaded."""
    missing = [k for k in ("generator", "best_arch", "best_loss", "told", "last") if k not in state]
    if missing:
        raise ValueError(f"the RandomSearch state lacks {', '.join(missing)}: it is not a whole state_dict()")
    generator = checked_generator(state)
    best_arch = _index_table(state["best_arch"], (N, len(num_choices)), num_choices, "best_arch")
    best_loss, told = state["best_loss"], state["told"]
    if not isinstance(best_loss, torch.Tensor) or not best_loss.is_floating_point() or tuple(best_loss.shape) != (N,) \
            or bool((best_loss.isnan() | (best_loss == -math.inf)).any()):  # tell() keeps neither: no loss beats it
        raise ValueError(f"state['best_loss'] must be a float tensor of shape ({N},) of losses or +inf (tell() "
                         f"keeps NaN and -inf as +inf), got {shown(best_loss)}; the state is corrupt")
    if not isinstance(told, torch.Tensor) or told.dtype != torch.bool or tuple(told.shape) != (N,):
        raise ValueError(f"state['told'] must be a bool tensor of shape ({N},), got {shown(told)}")
    last = state["last"]
    if last is not None:
        last = _index_table(last, (N * lam, len(num_choices)), num_choices, "last")
    seed = check_seed(state.get("seed", 0))
    return (generator.clone(), best_arch, best_loss.detach().cpu().to(torch.float64).clone(), told.cpu().clone(),
            last, seed)


class RandomSearch(Searcher):
    """Uniform random architectures, or uniform among those whose cost fits a budget.

    With ``budget`` (one number or a list, one per wanted architecture: the paper samples networks of
    2.5M, 3.0M, 4.0M and 5.0M parameters), :meth:`ask` returns ``lam`` architectures per budget,
    grouped by budget, each uniform among the architectures with ``R(M) = sum_d c_{d,k(d)} <= budget``
    (``costs`` a ``(D, Kmax)`` table, or a :class:`~automl.search.ContextCosts` whose exact totals are used).
    With ``band`` (in (0, 1]) each is uniform among those of ``band * (fixed + budget) <= fixed + R(M) <=
    fixed + budget`` instead: networks of about the budget's size, not anything below it (``fixed``: the
    network's cost outside ``costs``, so that the band is a fraction of the whole network's; 0 by default).
    With ``gates`` (elastic depth: decision d -> (depth decision g, per choice of g whether d's layer is
    there), as :attr:`automl.compile.CostTable.gates`) a gated decision's cost counts only when its layer is
    there, so budgets and bands hold on the exact totals (``costs`` alone counts every layer as present, an
    upper bound; the cheapest and dearest architectures are exact too). A cost over a budget by rounding only
    (1e-9 of ``fixed + budget``, the engine's knapsack's ``BUDGET_RTOL``) fits it, as in the engine;
    ``budget=inf`` fits every architecture (a band needs a finite budget). Sampling is by rejection in
    vectorised batches; a budget below the cheapest architecture, a band above the most expensive one, a band
    below 1 of a negative ``fixed + budget`` (an empty range), or one so narrow or tight that ``max_tries``
    batches of ``max(batch, lam)`` draws find too few raises ``ValueError``.
    :meth:`tell` remembers the lowest loss per group, and :meth:`best` returns it (before any ``tell``, the
    first row of the last ``ask`` per group, drawing one if ``ask`` was never called).

    Example:
        >>> from automl.search import RandomSearch
        >>> s = RandomSearch([3, 3], costs=[[0., 1., 2.], [0., 1., 2.]], budget=[1.0, 4.0], seed=0)
        >>> arch = s.ask()                       # (2, 2): one per budget
        >>> s.tell(arch, [0.5, 0.1]); s.best().shape
        torch.Size([2, 2])
        >>> RandomSearch([3, 3], costs=[[0., 1., 2.], [0., 1., 2.]], budget=3.0, band=0.9).ask()  # R = 3
        tensor([[1, 2]])
    """

    def __init__(self, num_choices: Sequence[int], costs: torch.Tensor | None = None,
                 budget: float | Sequence[float] | None = None, seed: int = 0, lam: int = 1,
                 device: str | torch.device = "cpu", max_tries: int = 100, batch: int = 1024,
                 band: float | None = None, fixed: float = 0.0,
                 gates: dict[int, tuple[int, Sequence[bool]]] | None = None):
        self.num_choices = check_num_choices(num_choices)
        D, Kmax = len(self.num_choices), max(self.num_choices)
        self.device = check_device(device)
        self._mask = torch.arange(Kmax) < torch.tensor(self.num_choices).unsqueeze(1)
        if budget is not None and costs is None:
            raise ValueError("a budget needs a cost table: pass costs=(D, Kmax) tensor")
        self.costs = check_cost_model(costs, D, Kmax, self._mask)
        given, fixed = fixed, real_number(fixed)
        if fixed is None or not math.isfinite(fixed):
            raise ValueError(f"fixed must be a finite number (the network's cost outside costs), got {shown(given)}")
        self.fixed = fixed
        self._gates = self._check_gates(gates or {}, Kmax)
        # exact with the gates: the cheapest network may leave layers out, the dearest too
        self._extremes = _gated_extremes(self.costs, self._mask, gates or {}) if budget is not None else None
        if budget is None:
            self.budgets: list[float | None] = [None]
            as_given: list = [None]
        else:
            self.budgets, as_given = _check_budgets(budget)
            cheapest = self._extremes[0]
            too_small = [g for b, g in zip(self.budgets, as_given) if _ceiling(b, fixed) < cheapest]
            if too_small:
                raise ValueError(f"budget {shown(too_small)} is below the cheapest architecture's cost "
                                 f"{cheapest:.6g}; raise the budget")
        self.band = self._check_band(band, fixed, as_given)
        # the lowest cost R(M) each budget's architectures may have (None: any below the budget), less a
        # rounding slack: a sum of the table in another order may differ in its last bits
        self.floors: list[float | None] = [None if self.band is None or b is None
                                           else _floor(self.band * (fixed + b) - fixed) for b in self.budgets]
        lam = check_lam(lam, 1)  # a plain int: a NumPy one in the state dict would fail torch.load(weights_only=True)
        tries, draws = integer(max_tries), integer(batch)  # plain ints, for the state dict too
        if tries is None or draws is None or tries < 1 or draws < 1:
            raise ValueError(f"max_tries and batch must be integers >= 1, got max_tries={shown(max_tries)}, "
                             f"batch={shown(batch)}")
        self.lam, self.max_tries, self.batch = lam, tries, draws
        N = len(self.budgets)
        check_fits("lam", lam, N * lam * D, "ask()'s (budgets x lam, D) rows", MOST_NUMBERS // (N * D))
        check_fits("batch", self.batch, self.batch * D, "a (batch, D) draw", MOST_NUMBERS // D)
        self.seed = check_seed(seed)
        self._generator = torch.Generator().manual_seed(self.seed)
        self._k = torch.tensor(self.num_choices)
        N = len(self.budgets)
        self._best_arch = torch.zeros(N, D, dtype=torch.long)
        self._best_loss = torch.full((N,), math.inf, dtype=torch.float64)
        self._told = torch.zeros(N, dtype=torch.bool)
        self._last: torch.Tensor | None = None
        # tell's arch and losses, checked on the host; NaN and inf losses warned about, as in the engine
        self._inputs = TellInputs(self.num_choices, torch.device("cpu"), torch.float64, True)

    def _check_band(self, band: float | None, fixed: float, given: list) -> float | None:
        """``band`` checked against the budgets (``given``: as :func:`_check_budgets` shows them)."""
        if band is None:
            return None
        value = real_number(band)
        if value is None or not 0 < value <= 1:
            raise ValueError(f"band must be a number in (0, 1], got {shown(band)}")
        band = value
        if self.budgets == [None]:
            raise ValueError("a band needs a budget: pass budget=... (the band is a fraction of it)")
        if not all(math.isfinite(b) for b in self.budgets):
            raise ValueError(f"a band needs a finite budget (its networks cost band x budget and more), got "
                             f"budget {shown(given)}; give a finite budget, or no band for an unconstrained one")
        # below 0, band x (fixed + budget) is above fixed + budget: no cost lies between them
        empty = [(b, g) for b, g in zip(self.budgets, given) if _floor(band * (fixed + b) - fixed) > _ceiling(b, fixed)]
        if empty:
            whole = fixed + empty[0][0]
            raise ValueError(f"band {band:g} of budget {shown([g for _, g in empty])} asks for networks costing from "
                             f"{band:g} x (fixed + budget) = {band * whole:.6g} to fixed + budget = {whole:.6g}: an "
                             f"empty range, as fixed + budget is below 0; use band 1 (the budget alone) or no band")
        dearest = self._extremes[1]
        too_big = [g for b, g in zip(self.budgets, given) if _floor(band * (fixed + b) - fixed) > dearest]
        if too_big:
            raise ValueError(f"band {band} of budget {shown(too_big)} is above the most expensive architecture's cost "
                             f"{dearest:.6g}{f' (+ fixed {fixed:.6g})' if fixed else ''}; lower the band or the "
                             f"budget")
        return float(band)

    def _check_gates(self, gates: dict, Kmax: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """``gates`` as (gated decisions (G,), their depth decisions (G,), (G, Kmax) whether each is there)."""
        if not gates:
            return None
        D = len(self.num_choices)
        gates = _gate_entries(gates)
        on = torch.zeros(len(gates), Kmax, dtype=torch.bool)
        for i, (d, (g, there)) in enumerate(sorted(gates.items())):
            if not (0 <= d < D and 0 <= g < D) or d == g or len(there) != self.num_choices[g]:
                raise ValueError(f"gates: decision {d} gated by {g} with {len(there)} flags does not fit the "
                                 f"{D} decisions with {self.num_choices} choices")
            on[i, :len(there)] = torch.tensor(there)
        keys = sorted(gates)
        return (torch.tensor(keys, dtype=torch.long), torch.tensor([gates[d][0] for d in keys]), on)

    def _totals(self, arch: torch.Tensor) -> torch.Tensor:
        """``(S,)``: R(M) of each row of ``arch``, exact: without the layers a depth decision leaves out."""
        total = arch_totals(self.costs, arch)
        if self._gates is None:
            return total
        gated, by, on = self._gates
        off = ~on[torch.arange(len(gated)), arch[:, by]]                                      # (S, G)
        return total - (chosen_costs(self.costs, arch, gated) * off).sum(-1)

    @property
    def num_distributions(self) -> int:
        """N, the number of budgets (1 without a budget)."""
        return len(self.budgets)

    def _uniform(self, n: int) -> torch.Tensor:
        u = torch.rand(n, len(self.num_choices), generator=self._generator, dtype=torch.float64)
        return (u * self._k).long().minimum(self._k - 1)

    def _within(self, budget: float | None, floor: float | None, n: int) -> torch.Tensor:
        """``n`` uniform rows within ``budget`` and above ``floor``, from at most ``max_tries`` batches of
        ``max(batch, n)`` draws each (so that the tries bound the fraction that fits, not the rows wanted)."""
        if budget is None:
            return self._uniform(n)
        found, have, size = [], 0, max(self.batch, n)
        for _ in range(self.max_tries):
            cand = self._uniform(size)
            cost = self._totals(cand)                                  # R(M) per candidate
            fits = cost <= _ceiling(budget, self.fixed)
            if floor is not None:
                fits &= cost >= floor
            ok = cand[fits]
            found.append(ok)
            have += ok.shape[0]
            if have >= n:
                return torch.cat(found)[:n]
        if floor is not None:
            raise ValueError(f"band {self.band:g} of budget {budget:.6g} (cost {floor:.6g} to {budget:.6g}) is too "
                             f"narrow: {self.max_tries} x {size} uniform architectures gave only {have} of "
                             f"the {n} needed; lower the band, change the budget or raise max_tries")
        raise ValueError(f"budget {budget:.6g} is too tight: {self.max_tries} x {size} uniform "
                         f"architectures gave only {have} of the {n} needed; raise the budget or max_tries")

    def ask(self) -> torch.Tensor:
        """``(N * lam, D)``: ``lam`` architectures per budget, grouped by budget."""
        arch = torch.cat([self._within(b, f, self.lam) for b, f in zip(self.budgets, self.floors)])
        self._last = arch
        return arch.to(self.device)

    def _misfits(self, arch: torch.Tensor, told: torch.Tensor | None = None) -> str | None:
        """What is wrong with the rows of ``arch`` (``(N * r, D)``, ``r`` rows per budget group, in the order
        of :meth:`ask`) that :meth:`ask` could not have drawn: over their group's budget, or under its band's
        floor (the same test as :meth:`ask`'s); ``told``: ``(N,)`` the groups to check (default all). None if
        every row fits."""
        if self.budgets == [None]:
            return None
        N = len(self.budgets)
        cost = self._totals(arch).view(N, -1)                                           # (N, r)
        ceiling = torch.tensor([_ceiling(b, self.fixed) for b in self.budgets], dtype=cost.dtype).unsqueeze(1)
        floor = torch.tensor([-math.inf if f is None else f for f in self.floors], dtype=cost.dtype).unsqueeze(1)
        bad = (cost > ceiling) | (cost < floor)
        if told is not None:
            bad &= told.unsqueeze(1)
        if not bool(bad.any()):
            return None
        n, j = (int(i) for i in bad.nonzero()[0])
        c, b, f = float(cost[n, j]), self.budgets[n], self.floors[n]
        why = (f"over its budget {b:.6g}" if c > float(ceiling[n, 0]) else
               f"under its band's floor {f:.6g} (band {self.band:g} of the budget {b:.6g}"
               f"{f', fixed {self.fixed:.6g}' if self.fixed else ''})")
        return (f"row {n * cost.shape[1] + j} (budget group {n}) costs R(M) = {c:.6g}, {why}"
                f"{f'; {int(bad.sum())} rows in all' if int(bad.sum()) > 1 else ''}")

    def tell(self, arch: torch.Tensor, losses: Any) -> None:
        """Remember the lowest-loss architecture of each budget group (NaN and +-inf count as worst, and a
        ``RuntimeWarning`` says how many there were, as in the engine). ``arch`` must be ``(N * lam, D)`` choice
        indices of the space, ``lam`` rows per budget group in the order of :meth:`ask`, each within its group's
        budget (and band): a row that :meth:`ask` could not have drawn is a ``ValueError`` (so :meth:`best` never
        returns a row over its budget); rows of your own that fit are taken, as Optuna's ``add_trial`` takes
        parameters within their distributions."""
        N, D = self.num_distributions, len(self.num_choices)
        arch = self._inputs.arch(arch, N * self.lam, False)
        # ask()'s own rows fit by construction: only other rows are costed
        wrong = None if self._last is not None and torch.equal(arch, self._last) else self._misfits(arch)
        if wrong:
            raise ValueError(f"tell: {wrong}; RandomSearch takes only rows that ask() could have drawn: "
                             f"lam = {self.lam} rows per budget group, each within its group's budget"
                             f"{' and band' if self.band is not None else ''} (tell the rows ask() returned)")
        losses = self._inputs.losses(losses, arch.shape[0]).view(N, self.lam)  # NaN, -inf: +inf, with a warning
        low, idx = losses.min(-1)
        better = (low < self._best_loss) | ~self._told
        chosen = arch.view(N, self.lam, D)[torch.arange(N), idx]
        self._best_arch = torch.where(better.unsqueeze(1), chosen, self._best_arch)
        self._best_loss = torch.where(better, low, self._best_loss)
        self._told |= True

    def best(self) -> torch.Tensor:
        """``(N, D)``: the lowest-loss architecture told per budget (see the class docstring)."""
        if bool(self._told.all()):
            return self._best_arch.to(self.device)
        if self._last is None:
            self.ask()
        first = self._last.view(self.num_distributions, self.lam, -1)[:, 0]
        return torch.where(self._told.unsqueeze(1), self._best_arch, first).to(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION, "kind": "RandomSearch",
            "num_choices": list(self.num_choices), "budgets": list(self.budgets), "lam": self.lam,
            "costs": cost_state(self.costs), "generator": self._generator.get_state(),
            "best_arch": self._best_arch.clone(), "best_loss": self._best_loss.clone(),
            "told": self._told.clone(), "last": None if self._last is None else self._last.clone(),
            "seed": self.seed, "floors": list(self.floors), **self._draw_settings(),
        }

    def _draw_settings(self) -> dict[str, Any]:
        """What decides which draws :meth:`ask` takes and which fit, besides the budgets and band (floors)."""
        gates = None if self._gates is None else [t.tolist() for t in self._gates]
        return {"batch": self.batch, "max_tries": self.max_tries, "gates": gates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict):
            raise ValueError(f"state must be the dict that state_dict() returns, got {type(state).__name__}")
        config = {"num_choices": list(self.num_choices), "budgets": list(self.budgets), "lam": self.lam}
        # batch, max_tries and gates: absent from a state saved before they were kept (not compared then)
        config.update({k: v for k, v in self._draw_settings().items() if k in state})
        check_state(state, "RandomSearch", (_STATE_VERSION,), config, self.costs, "searcher")
        floors = state.get("floors", [None] * len(self.budgets))  # absent: saved before bands, none
        if floors != self.floors:
            raise ValueError(f"state was saved with floors={shown(floors)} (band x budget) but this searcher has "
                             f"floors={shown(self.floors)}; build the searcher with the same band and budget")
        values = _state_values(state, self.num_choices, len(self.budgets), self.lam)
        generator, best_arch, _, told, last, seed = values
        for key, arch, groups in (("best_arch", best_arch, told), ("last", last, None)):
            wrong = None if arch is None else self._misfits(arch, groups)
            if wrong:
                raise ValueError(f"state['{key}'] {wrong}: this searcher never draws it; the state is corrupt or "
                                 f"was saved after a tell of rows outside their budget")
        generator, self._best_arch, self._best_loss, self._told, self._last, seed = values
        self._generator.set_state(generator)
        self.seed = seed if "seed" in state else self.seed
