"""Argument validation shared by the searchers (every failure is a ``ValueError`` that names the argument)."""

from __future__ import annotations

import math
import numbers
import operator
import sys
from collections.abc import Mapping

import torch

from automl.errors import shortened

__all__ = ["check_num_choices", "check_epsilons", "check_budgets", "check_costs", "check_lam",
           "check_positive", "start_theta", "check_state", "theta_min_table", "cheapest_cost",
           "dearest_cost", "check_seed", "check_count", "check_device", "is_complex", "real_table",
           "checked_generator", "check_mask", "check_number", "check_fits", "MOST_NUMBERS", "cost_table",
           "is_bool_table", "shown", "integer", "check_theta_values"]

#: The seeds ``torch.Generator.manual_seed`` takes.
_SEED_RANGE = (-2 ** 63, 2 ** 64 - 1)


def check_seed(seed) -> int:
    """``seed`` as an int in the generator's range: an :func:`integer` or a float with an integral value."""
    if isinstance(seed, float) and seed.is_integer():
        seed = int(seed)
    given, seed = seed, integer(seed)
    if seed is None:
        raise ValueError(f"seed must be an integer, got {shown(given)}")
    if not _SEED_RANGE[0] <= seed <= _SEED_RANGE[1]:
        raise ValueError(f"seed must be an integer in [-2**63, 2**64 - 1] (torch.Generator's range), got {shown(seed)}")
    return seed


def shown(value, show=repr) -> str:
    """``value`` as a message echoes it: ``show(value)``, shortened when long (:func:`automl.errors.shortened`: a
    number of 400 digits is no value the reader can check); an integer too long for ``str()`` (Python refuses more
    than ``sys.get_int_max_str_digits()`` digits) by its number of digits."""
    try:
        return shortened(show(value))
    except ValueError:  # an integer, or a list holding one, beyond the digits str() converts
        if isinstance(value, numbers.Integral):
            digits = int(abs(int(value)).bit_length() * math.log10(2)) + 1
            return f"{'a negative' if value < 0 else 'an'} integer of about {digits:,} digits"
        return f"a {type(value).__name__} holding an integer of more than {sys.get_int_max_str_digits():,} digits"


def integer(value) -> int | None:
    """``value`` as an int if it is one integer, else None. The rule for every count and index the searchers take,
    as torch takes a size: Python's, NumPy's, and 0-d integer tensors and arrays (``torch.tensor(8)``). Not one:
    bools (a flag; ``operator.index`` reads a bool tensor as 0 or 1), a float (8.0 is read only where a seed is), a
    tensor of one element that is not 0-d (``torch.tensor([8])``: a list, which ``operator.index`` would read)."""
    dtype = getattr(value, "dtype", None)
    if isinstance(value, bool) or dtype == torch.bool or getattr(dtype, "kind", None) == "b" \
            or getattr(value, "ndim", 0) != 0:
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_count(name: str, n) -> int:
    """``n`` as an int >= 0 (an :func:`integer`)."""
    count = integer(n)
    if count is None or count < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {shown(n)}")
    return count


def check_device(device) -> torch.device:
    """``device`` as a ``torch.device``; a name torch does not know, or CUDA where there is none, named."""
    try:
        dev = torch.device(device)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"device must be a torch.device or a name such as 'cpu' or 'cuda:0', got "
                         f"{shown(device)}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {dev}: CUDA is not available on this machine; use device='cpu'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {dev}: MPS is not available on this machine; use device='cpu'")
    if dev.type == "meta":  # shapes without data: the first read of a number fails inside torch
        raise ValueError("device meta holds no numbers (shapes only), so a search cannot run on it; use device='cpu' "
                         "or an accelerator such as 'cuda:0'")
    return dev


def is_complex(value) -> bool:
    """Whether ``value`` is a complex tensor or NumPy array (torch would cast it to its real part)."""
    if isinstance(value, torch.Tensor):
        return value.is_complex()
    return getattr(getattr(value, "dtype", None), "kind", None) == "c"


def real_table(value, name: str) -> torch.Tensor:
    """``value`` (a tensor, an array, nested lists of numbers) as a float64 CPU tensor; complex numbers and what
    torch cannot read are a ``ValueError`` naming ``name``."""
    if is_complex(value):
        raise ValueError(f"{name} must be real numbers, got complex ones")
    try:
        # a list of floats straight to float64 (as_tensor alone rounds it through float32 first)
        value = value if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:  # OverflowError: an int beyond float64
        raise ValueError(f"{name} must be a table of numbers (a tensor or nested lists), got "
                         f"{type(value).__name__}: {e}") from None
    return value.detach().to("cpu", torch.float64)


def is_bool_table(value, depth: int = 0) -> bool:
    """Whether ``value`` is a mask given where numbers are wanted: a bool tensor or NumPy array, or (nested) lists or
    tuples holding a bool anywhere (Python's, NumPy's, a bool tensor or array: torch would read them as 1 and 0).
    Lists nested deeper than a tensor's 64 dimensions (or holding themselves) are left to the table's own check,
    which refuses them."""
    if isinstance(value, torch.Tensor):
        return value.dtype == torch.bool
    if isinstance(value, (list, tuple)):
        return depth < 64 and any(isinstance(v, bool) or is_bool_table(v, depth + 1) for v in value)
    return getattr(getattr(value, "dtype", None), "kind", None) == "b"


def cost_table(value, name: str) -> torch.Tensor:
    """:func:`real_table` of costs: a bool tensor or array too is a ``ValueError`` naming ``name`` (it is a mask,
    read as costs of 0 and 1: the mask given in the costs' place)."""
    if is_bool_table(value):
        raise ValueError(f"{name} must be numbers (costs per choice), got a table of True/False (a mask?); pass the "
                         f"costs, e.g. CostTable.costs(metric), and the mask as mask=")
    return real_table(value, name)


def value_table(value, name: str = "values") -> torch.Tensor:
    """:func:`real_table` of values per choice (log theta, or -loss) for a knapsack: a True/False table is a
    ``ValueError`` naming ``name`` (a mask in their place, read as 0 and 1), as ``tell`` refuses bool losses."""
    if is_bool_table(value):
        raise ValueError(f"{name} must be numbers (log theta, or -loss, per choice), got a table of True/False (a "
                         f"mask?); pass the {name}, and the mask as mask=")
    return real_table(value, name)


def check_num_choices(num_choices) -> list[int]:
    """``[K_1, ..., K_D]`` as ints, each an :func:`integer` >= 1 (a list, tuple, 1-d tensor or array); anything
    else is a ``ValueError`` naming the first element that is not one."""
    values = _listed("num_choices", num_choices, "positive integers")
    out = [integer(k) for k in values]
    for d, (k, kk) in enumerate(zip(out, values)):
        if k is None:
            raise ValueError(f"num_choices must be a list of positive integers, got {shown(values)}: num_choices[{d}] "
                             f"= {shown(kk)} is not an integer: a K_d is an int, a NumPy integer or a 0-d integer "
                             f"tensor (3, not 3.0, True or tensor([3]))")
    if not out:
        raise ValueError("num_choices is empty: the space needs at least one decision")
    if any(k < 1 for k in out):
        raise ValueError(f"every K_d in num_choices must be an integer >= 1, got {shown(out)}")
    # theta and the cost table are (D, Kmax): one beyond MOST_NUMBERS entries could not be held (and a K_d beyond
    # int64 was torch's 'Overflow when unpacking long long')
    check_fits("num_choices", max(out), len(out) * max(out), "the (D, Kmax) tables of theta and the costs",
               MOST_NUMBERS // len(out))
    return out


def real_number(value) -> float | None:
    """``value`` as a float if it is one real number (NumPy's, and 0-d tensors and arrays, too), else None: bools,
    strings and complex numbers are not (``float()`` takes ``"0.5"`` and ``True``, and drops an imaginary part)."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # a 0-d tensor or array: its number
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        return float(value)
    except OverflowError:  # an int beyond float64 (10**400): as large as a float can say
        return math.inf if value > 0 else -math.inf


def _listed(name: str, values, what: str) -> list:
    """``values`` as a list: a list, tuple, 1-d tensor or array, generator; one string, a dict (its keys) or a
    number alone are a ``ValueError`` naming ``name``."""
    if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__iter__") \
            or getattr(values, "ndim", 1) == 0:
        raise ValueError(f"{name} must be a list of {what}, got {shown(values)}")
    return list(values)


def check_number(name: str, value, hint: str = "") -> float:
    """``value`` as a float if it is one real number that is not NaN (NumPy's and 0-d tensors too; +-inf pass);
    bools, strings and complex numbers are a ``ValueError`` naming ``name``."""
    number = real_number(value)
    if number is None or math.isnan(number):
        raise ValueError(f"{name} must be a number{hint}, got {shown(value)}")
    return number


def check_mask(mask, shape: tuple[int, ...] | None = None, name: str = "mask", prefix: bool = False) -> torch.Tensor:
    """``mask`` as a ``(D, Kmax)`` bool CPU tensor (of ``shape`` where given) with at least one True per row (a
    decision without any choice has no architecture); with ``prefix``, each row True for its first ``K_d`` entries
    and False after them (what reads ``K_d`` as ``mask.sum(-1)`` needs: choices ``0..K_d-1``). Anything else is a
    ``ValueError`` naming ``name`` (and the first row that is not)."""
    try:
        mask = torch.as_tensor(mask).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be a (D, Kmax) table of True/False, True where a choice exists, got "
                         f"{type(mask).__name__}") from None
    if mask.dim() != 2 or (shape is not None and tuple(mask.shape) != tuple(shape)):
        want = f"the shape of the costs {tuple(shape)}" if shape is not None else "a (D, Kmax) table"
        raise ValueError(f"{name} must be {want}, True where a choice exists, got shape {tuple(mask.shape)}")
    if mask.dtype != torch.bool:  # 0 and 1 read as False and True; 0.5 or 2 is no flag (bool() would call it True)
        if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"{name} must be True/False (or 0/1), True where a choice exists, got values "
                             f"{sorted(set(mask.flatten().tolist()) - {0, 1})[:5]}")
        mask = mask.bool()
    if not mask.shape[0]:
        raise ValueError(f"{name} has no decisions (shape {tuple(mask.shape)}): a space needs at least one")
    if not bool(mask.any(-1).all()):
        raise ValueError(f"{name} has a decision with no choice (rows {(~mask.any(-1)).nonzero().flatten().tolist()} "
                         f"all False); every decision needs at least one")
    if prefix:
        gaps = (mask != (torch.arange(mask.shape[1]) < mask.sum(-1, keepdim=True))).any(-1)
        if bool(gaps.any()):
            d = int(gaps.nonzero()[0])
            raise ValueError(f"{name} row {d} (decision {d}) is {shown(mask[d].tolist())}: each row must be True for "
                             f"its first K_d entries and False after them (a decision's choices are 0..K_d-1), e.g. "
                             f"torch.arange(Kmax) < torch.tensor(num_choices)[:, None]")
    return mask


#: The most numbers one of tell()'s pairwise tables (or one ask of the random baseline) may hold: 2^32, 32 GiB in
#: float64, beyond any one device once tell holds several of them.
MOST_NUMBERS = 2 ** 32


def check_fits(name: str, value: int, numbers: int, what: str, most: int) -> None:
    """Refuse ``value`` of the argument ``name`` when it makes a table of ``numbers`` entries (``what`` it is), more
    than :data:`MOST_NUMBERS` (``most``: the largest ``value`` that fits): one clear message instead of an allocation
    failure inside torch."""
    if numbers > MOST_NUMBERS:
        # a count of up to 73 digits as it is; a longer one (value = 10**400) is no number the reader can check
        held = (f"{numbers:,} numbers ({numbers * 8 / 2 ** 30:,.3g} GiB in float64)" if numbers < 2 ** 240
                else "far more numbers than any memory holds")
        raise ValueError(f"{name}={shown(value, '{:,}'.format)} is too large: {what} would hold {held}, more than "
                         f"{MOST_NUMBERS:,}; use {name} <= {most:,}")


def check_epsilons(epsilons) -> list[float]:
    """A non-empty list of finite, non-negative regularisation coefficients (real numbers: not strings, bools or
    complex numbers)."""
    given = _listed("epsilons", epsilons, "numbers")
    out = [real_number(e) for e in given]
    if not out:
        raise ValueError("epsilons is empty: give at least one regularisation coefficient")
    if any(e is None for e in out):
        raise ValueError(f"epsilons must be real numbers, got {shown([e for e, v in zip(given, out) if v is None])}")
    # as given: an integer as it is (10**400 is no inf), other numbers as floats (-1.0, not np.float64(-1.0))
    bad = [g if isinstance(g, numbers.Integral) else e for g, e in zip(given, out) if not math.isfinite(e) or e < 0]
    if bad:
        raise ValueError(f"epsilons must be finite and >= 0, got {shown(bad)}")
    return out


def check_budgets(budgets) -> list[float | None]:
    """A non-empty list of budgets, each ``None`` (unconstrained) or a finite number; one below 0 too, as costs may be
    negative (:func:`~automl.search.normalize_costs` keeps their signs): whether the cheapest architecture meets a
    budget is checked where the costs are known (:class:`~._budgets.BudgetTargets`)."""
    out: list[float | None] = []
    for b in _listed("budgets", budgets, "numbers or None"):
        number = real_number(b)
        if b is None:
            out.append(None)
            continue
        if number is None or not math.isfinite(number):
            raise ValueError(f"every budget must be None (unconstrained) or a finite number, got {shown(b)}")
        out.append(number)
    if not out:
        raise ValueError("budgets is empty: give at least one budget (None for unconstrained)")
    return out


def check_lam(lam, least: int, hint: str = "") -> int:
    """``lam`` as an int >= ``least`` (an :func:`integer`); ``hint`` is added to the message."""
    count = integer(lam)
    if count is None or count < least:
        raise ValueError(f"lam must be an integer >= {least}{hint}, got {shown(lam)}")
    return count


def check_positive(name: str, value, hint: str = "") -> float:
    """A positive finite :func:`real_number` (NumPy's and 0-d tensors too; bools refused); ``hint`` is added to the
    message."""
    number = real_number(value)  # inf for an int beyond float64
    if number is None or not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a positive finite number{hint}, got {shown(value)}")
    return number


def check_costs(costs, D: int, Kmax: int, mask: torch.Tensor) -> torch.Tensor:
    """The ``(D, Kmax)`` float64 CPU cost table (all zero for ``None``), zero beyond ``K_d``."""
    if costs is None:
        return torch.zeros(D, Kmax, dtype=torch.float64)
    costs = cost_table(costs, "costs")
    if tuple(costs.shape) != (D, Kmax):
        raise ValueError(f"costs must have shape (D, Kmax) = ({D}, {Kmax}) to match num_choices, "
                         f"got {tuple(costs.shape)}")
    if not bool(torch.isfinite(costs[mask]).all()):
        raise ValueError("costs contain NaN or inf for existing choices; give finite costs")
    # Entries beyond K_d never matter (theta is 0 there); zero them so NaN padding cannot leak in.
    return torch.where(mask, costs, torch.zeros(()))


def cheapest_cost(costs: torch.Tensor, mask: torch.Tensor) -> float:
    """``min_M R(M)``: the sum over decisions of the cheapest existing choice."""
    inf = torch.tensor(math.inf, dtype=torch.float64)
    return float(torch.where(mask, costs.cpu().to(torch.float64), inf).min(-1).values.sum())


def dearest_cost(costs: torch.Tensor, mask: torch.Tensor) -> float:
    """``max_M R(M)``: the sum over decisions of the dearest existing choice."""
    inf = torch.tensor(-math.inf, dtype=torch.float64)
    return float(torch.where(mask, costs.cpu().to(torch.float64), inf).max(-1).values.sum())


def theta_min_table(num_choices: list[int], theta_min) -> list[float]:
    """The lower bound on theta per decision: 0 for a fixed decision, ASNG-NAS's
    ``1 / (D_valid (K_d - 1))`` for ``None`` (``1 / (2 K_d)`` where that is infeasible), else ``theta_min``."""
    if theta_min is not None:  # checked first: float() of a list or a string is not this message
        bound = real_number(theta_min)  # NumPy's and 0-d tensors too; inf for an int beyond float64: refused below
        bound = math.nan if bound is None else bound
        kmax = max(num_choices)
        if not (math.isfinite(bound) and 0 <= bound and (kmax == 1 or bound * kmax < 1)):
            raise ValueError(f"theta_min must be None or a number in [0, 1/Kmax) = [0, {1 / kmax:.4g}), "
                             f"got {shown(theta_min)}")
    valid_d = sum(k > 1 for k in num_choices)
    out = []
    for k in num_choices:
        if k == 1:
            out.append(0.0)                                   # a fixed decision: theta = 1
        elif theta_min is None:
            t = 1.0 / (valid_d * (k - 1))                     # ASNG-NAS
            out.append(t if k * t < 1 else 1.0 / (2 * k))
        else:
            out.append(bound)
    return out


def start_theta(init_theta, N: int, mask: torch.Tensor) -> torch.Tensor:
    """The ``(N, D, Kmax)`` float64 start: uniform over the ``K_d`` choices for ``init_theta=None``, else
    ``init_theta`` checked (a ``(D, Kmax)`` one is repeated; rows must be on the simplex)."""
    D, Kmax = mask.shape
    if init_theta is None:
        uniform = mask.to(torch.float64) / mask.sum(-1, keepdim=True)
        return uniform.expand(N, D, Kmax).clone()
    theta = real_table(init_theta, "init_theta")
    if tuple(theta.shape) == (D, Kmax):
        theta = theta.expand(N, D, Kmax)
    if tuple(theta.shape) != (N, D, Kmax):
        raise ValueError(f"init_theta must have shape (N, D, Kmax) = ({N}, {D}, {Kmax}) or (D, Kmax), "
                         f"got {tuple(theta.shape)}")
    check_theta_values(theta, mask, "init_theta")
    return theta.clone()


def check_theta_values(theta: torch.Tensor, mask: torch.Tensor, name: str) -> None:
    """Refuse an ``(N, D, Kmax)`` float ``theta`` that is not ``N`` distributions over the choices of ``mask``
    (``(D, Kmax)``, on theta's device): each row finite, >= 0, 0 beyond ``K_d``, summing to 1 (as
    ``torch.allclose(sums, 1, atol=1e-6)``); the ``ValueError`` names ``name`` and the first row that is not. One
    host sync where all is well (the four tests in one bool); the failure path finds which."""
    finite, nonneg = torch.isfinite(theta), theta >= 0
    beyond = theta.masked_fill(mask, 0) != 0                     # NaN beyond K_d too: finite's test names it
    off = (theta.sum(-1) - 1).abs() > 1e-6 + 1e-5                # allclose(sums, 1, rtol=1e-5, atol=1e-6)
    if bool((finite.all() & nonneg.all()) & ~(beyond.any() | off.any())):
        return
    if not bool(finite.all()) or not bool(nonneg.all()):
        n, d = (~finite | ~nonneg).nonzero()[0, :2].tolist()
        raise ValueError(f"{name} must be finite and non-negative, got row n={n}, d={d}: {shown(theta[n, d].tolist())}")
    if bool(beyond.any()):
        n, d = beyond.nonzero()[0, :2].tolist()
        raise ValueError(f"{name} must be 0 beyond K_d (for choices that do not exist), got row n={n}, d={d}: "
                         f"{shown(theta[n, d].tolist())} (K_d = {int(mask[d].sum())})")
    n, d = off.nonzero()[0].tolist()
    raise ValueError(f"every row of {name} must sum to 1 over the first K_d entries, got row n={n}, d={d} summing "
                     f"to {float(theta[n, d].sum()):.9g}")


def check_state(state: dict, kind: str, versions: tuple[int, ...], config: dict, costs: torch.Tensor,
                who: str) -> None:
    """Raise ``ValueError`` unless ``state`` is a ``kind`` state of one of ``versions``, saved with the
    settings ``config`` (key: this searcher's value) and the cost table ``costs`` (a ``(D, Kmax)`` tensor, or a
    ContextCosts, which compares its own saved state); ``who`` names the
    searcher in the message."""
    if state.get("kind") != kind or state.get("version") not in versions:
        raise ValueError(f"not a {kind} state (version {max(versions)}): kind={shown(state.get('kind'))}, "
                         f"version={shown(state.get('version'))}")
    missing = [key for key in (*config, "costs") if key not in state]
    if missing:
        raise ValueError(f"the {kind} state lacks {', '.join(missing)}: it is not a whole state_dict()")
    for key, mine in config.items():
        if mine != state[key]:
            raise ValueError(f"state was saved with {key}={shown(state[key])} but this {who} has {key}={shown(mine)}; "
                             f"build the {who} with the same settings")
    saved = state["costs"]
    if not isinstance(costs, torch.Tensor):  # a ContextCosts compares its own saved state
        same = costs.matches(saved)
    else:
        same = isinstance(saved, torch.Tensor) and torch.equal(saved.to(torch.float64), costs.cpu().to(torch.float64))
    if not same:
        raise ValueError(f"state was saved with a different cost table; build the {who} with the same costs")


def checked_generator(state: dict) -> torch.Tensor:
    """``state["generator"]`` on the CPU, when torch takes it for a generator's state; else a ``ValueError``."""
    generator = state["generator"]
    try:
        generator = generator.cpu()
        torch.Generator().set_state(generator)
    except (AttributeError, TypeError, RuntimeError):
        raise ValueError(f"state['generator'] is not a torch.Generator state: {type(generator).__name__}") from None
    return generator
