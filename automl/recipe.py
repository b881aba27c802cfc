"""Recipes: one typed YAML file that holds every setting of a run.

A recipe names the search space, the data, and the settings of the three phases of the paper (§3-§4):
training the supernet weights W on D_W while the distribution parameters theta learn on D_theta, deriving
one architecture per regularisation coefficient epsilon, and retraining each on D = D_W ∪ D_theta.

>>> recipe = load_recipe("recipes/quickstart.yaml", ["search.lam=4", "retrain.epochs=0"])
>>> recipe.search.lam, recipe.space_path.is_absolute()
(4, True)

Paths (``space``, ``data.root``, ``supernet``, ``search.cost_table``) written in the YAML file are relative
to the recipe's folder; paths given as command-line overrides (``data.root=./data``) are relative to the current
working directory, which is what a user typing them means. After loading, these paths are absolute (and so
in ``recipe.resolved.yaml``). ``export.dir`` is where the run *writes*, so a relative one is inside the run's
output folder (``--out DIR`` -> ``DIR/<export.dir>``) and may not leave it with ``..``, nor be that folder
itself (``''`` or ``.``) or one of the run's own files and folders (:data:`RUN_FILES`: ``checkpoints``,
``results.json``, ...); only an absolute path (given explicitly) exports elsewhere.

Every mistake is a :class:`~automl.errors.RecipeError` naming the file, the dotted key and its line::

    recipes/x.yaml:12: search.lam: must be >= 2 (got 1)
"""

from __future__ import annotations

import copy
import datetime
import decimal
import difflib
import functools
import hashlib
import logging
import math
import os
import re
import sys
import types
import typing
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, NamedTuple, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from pydantic import TypeAdapter, ValidationInfo, model_validator

from automl._io import UnreadableText, atomic_write_text, read_utf8_text
from automl.dsl import space_digest
from automl.errors import RecipeError, shortened
from automl.limits import MAX_BATCH, MAX_EPOCHS, MAX_IMAGE_SIZE, MAX_LAM, MAX_WHOLE_EXPONENT, MAX_WORKERS
from automl.train.threads import check_setting as _check_threads

_logger = logging.getLogger(__name__)

# Keys that recipes once had and that mean nothing now: dropped with a warning, so a run folder written by
# an older version (its recipe.resolved.yaml) still loads for `automl rank`, `--supernet` and `--resume`.
REMOVED_KEYS = {
    ("search", "random_budget"): "nothing read it; random search samples within search.budgets or "
                                 "search.random_budgets",
}

__all__ = [
    "Recipe",
    "DataConfig",
    "SyntheticConfig",
    "SearchConfig",
    "OptimConfig",
    "RetrainConfig",
    "ExportConfig",
    "load_recipe",
    "export_folder",
    "parse_recipe",
    "PATH_KEYS",
    "file_line",
    "file_value",
    "override_of",
    "overridden",
]

# |seed| at most: torch seeds lie in [-2^63, 2^64 - 1] and automl/pipeline seeds stages with seed * 7919 + i,
# seed * 1009 + idx + 1_000_003 * m and (seed + s) * 7919 + 100_003 + j, which stay inside it with room to spare.
SEED_LIMIT = 10**15


def _seed_in_range(v: int | None) -> int | None:
    if v is not None and not -SEED_LIMIT <= v <= SEED_LIMIT:
        raise ValueError("must be an integer from -10^15 to 10^15 (torch's seeds are 64-bit, and the run "
                         "derives more seeds from this one); choose a seed in that range")
    return v

# Keys holding filesystem paths: resolved to absolute paths when the recipe is loaded.
COST_TABLE = ("search", "cost_table")
PATH_KEYS: tuple[tuple[str, ...], ...] = (("space",), ("data", "root"), ("supernet",), COST_TABLE)

# characters of a run's name: its folder runs/<name>-YYYYmmdd-HHMMSS[-n] must fit a file name (255 bytes)
MAX_NAME = 200
# and its characters: no '/', no space; no leading '.' (runs/.-<time> is a hidden folder, `.` and `..` are no names)
# nor '-' (runs/-x-<time> reads as an option in a shell command)
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"


def _check_scalar(v: Any) -> Any:
    """Space parameters are scalars; say so once instead of one error per union member."""
    if v is None or isinstance(v, (dict, list, tuple, set)):
        raise ValueError("must be a number, a string or a boolean")
    if isinstance(v, float) and not math.isfinite(v):  # .inf, .nan: no space parameter takes one
        raise ValueError("must be a finite number, a string or a boolean")
    if isinstance(v, datetime.date):
        raise ValueError(f"must be a number, a string or a boolean, and YAML reads {v} as a date: put it in quotes "
                         f"to keep it as written")
    return v


Scalar = Annotated[Union[bool, int, float, str], BeforeValidator(_check_scalar)]


def _no_bool(kind: str):
    """A before-validator: YAML's true/false is not a number (pydantic would read true as 1)."""
    def check(v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError(f"must be {kind}")
        return v
    return check


def _numeric_kind(ann: Any) -> str | None:
    """"an integer" or "a number" for an int or float field that takes no boolean (unwrapping Optional and
    Annotated), else None: containers, booleans and free-form scalars are left alone."""
    args = set(typing.get_args(ann)) if typing.get_origin(ann) in (Union, types.UnionType) else {ann}
    args.discard(type(None))
    if args == {int}:
        return "an integer"
    if args and args <= {int, float}:
        return "a number"
    return None


def _int_or_word(ann: Any) -> bool:
    """An integer setting that also takes words (``threads``: ``"auto"`` or a count), checked by a validator of
    its own, so pydantic's int does not read 10.0 or '10' for it."""
    args = set(typing.get_args(ann)) if typing.get_origin(ann) in (Union, types.UnionType) else {ann}
    args.discard(type(None))
    return int in args and all(a is int or typing.get_origin(a) is Literal for a in args) and len(args) > 1


_INT = TypeAdapter(int)
# How a float field reads a string ("1e-3", " 2.5E-2 "): the ``"auto" | float`` fields and theta_split parse alike.
_FLOAT = TypeAdapter(float, config=ConfigDict(allow_inf_nan=False))


def _whole_number(v: Any) -> Any:
    """10.0, ``"10"``, ``"1e1"`` -> 10, as an int setting reads them; anything else (10.5, a word, a boolean)
    unchanged, for the setting's own message."""
    if isinstance(v, bool) or not isinstance(v, (str, float)):
        return v
    try:
        return _INT.validate_python(_whole_exponent(v))
    except ValidationError:
        return v


_EXPONENT = re.compile(r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]+\s*")


def _whole_exponent(v: Any) -> Any:
    """``"1e4"`` -> 10000: YAML 1.1 reads a number with an exponent and no dot as a string, which an integer
    setting takes when it is a whole number (as a number setting takes ``"1e-3"``); anything else unchanged, for
    the setting's own message. A number beyond 10^MAX_WHOLE_EXPONENT, more than any integer setting takes, stays
    a string."""
    if not isinstance(v, str) or _EXPONENT.fullmatch(v) is None:
        return v
    x = decimal.Decimal(v.strip())
    if x.adjusted() > MAX_WHOLE_EXPONENT or x != x.to_integral_value():
        return v
    return int(x)


class _Config(BaseModel):
    """Base of every recipe section: unknown keys are errors, sections are immutable, and a number field does
    not take a boolean (YAML's true is not 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _booleans_are_not_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, (bool, str, float)) and info.field_name is not None:
            ann = cls.model_fields[info.field_name].annotation
            kind = _numeric_kind(ann)
            if kind is not None and isinstance(v, bool):
                raise ValueError(f"must be {kind}")
            if kind == "an integer" and isinstance(v, str):
                return _whole_exponent(v)
            if kind is None and _int_or_word(ann):
                return _whole_number(v)  # as an int setting: 1e1, 10.0 and '10' are 10
        return v


class SyntheticConfig(_Config):
    """Shape of the random, learnable ``synthetic`` dataset (smoke tests only)."""

    num_train: int = Field(256, gt=0, le=10**6, description="training images")
    num_test: int = Field(64, gt=0, le=10**6, description="test images")
    num_classes: int = Field(10, ge=2, le=10**5, description="classes")
    channels: int = Field(3, gt=0, le=1024, description="image channels")
    size: int = Field(8, gt=0, le=1024, description="image height and width")

    @model_validator(mode="after")
    def _fits_in_memory(self):
        n = (self.num_train + self.num_test) * self.channels * self.size ** 2
        if n > 2**31:
            raise ValueError(f"the synthetic dataset would hold {n:.3g} numbers ((num_train + num_test) x channels "
                             f"x size^2), more than 2^31 (8 GiB); make it smaller")
        return self


class DataConfig(_Config):
    """The dataset, how its training part splits into D_W and D_theta, and the batch sizes."""

    dataset: Literal["digits", "cifar10", "imagefolder", "synthetic"] = Field(
        "digits", description="which dataset")
    root: str | None = Field(None, min_length=1, description="data folder; required for cifar10 and imagefolder")
    download: bool = Field(False, description="cifar10 only: download into root if missing")
    theta_split: float | int = Field(
        0.5, description="fraction (0<x<1) or count (>=1) of the training set held out as D_theta")
    split_seed: int | None = Field(
        0, description="seed of the D_W / D_theta split; null: the run's seed. Fixed by default, as DARTS's "
        "split (which the paper follows): another seed then changes the initialisation, the paths and the "
        "data order, not the data the search ranks architectures on")
    batch_size: int = Field(64, gt=0, le=MAX_BATCH, description="mini-batch size of D_W (and of D for retraining)")
    theta_batch_size: int | None = Field(
        None, gt=0, le=MAX_BATCH, description="mini-batch size of D_theta; null: batch_size")
    test_batch_size: int = Field(256, gt=0, le=MAX_BATCH, description="mini-batch size for evaluation")
    image_size: int | None = Field(
        None, gt=0, le=MAX_IMAGE_SIZE, description="null: native size (digits 8, cifar10 32, imagefolder 224)")
    workers: int = Field(0, ge=0, le=MAX_WORKERS, description="DataLoader worker processes (imagefolder only)")
    synthetic: SyntheticConfig = Field(SyntheticConfig(), description="synthetic dataset shape")
    limit_train: int | None = Field(None, gt=0, description="keep only N training items: the first N (digits, "
                                    "cifar10, synthetic); for imagefolder N spread evenly over its classes, drawn "
                                    "by data.split_seed")
    cutout: int = Field(0, description="cifar10 only: Cutout (DeVries & Taylor 2017) on the D_W and retraining "
                        "batches: a square of this side in pixels (of data.image_size), centred on a random pixel, "
                        "clipped at the border, zeroed after normalisation; 0 or null: none")

    @field_validator("split_seed")
    @classmethod
    def _split_seed_fits_torch(cls, v: int | None) -> int | None:
        return _seed_in_range(v)

    @field_validator("cutout", mode="before")
    @classmethod
    def _cutout_null(cls, v: Any) -> Any:
        return 0 if v is None else v

    @field_validator("cutout")
    @classmethod
    def _cutout(cls, v: int) -> int:
        """Checked as an integer, so that -1.0 and '-1' are refused as -1 is."""
        if v < 0:
            raise ValueError("must be the side of the Cutout square in pixels (16 in ASNG-NAS), or 0 or null "
                             "for no Cutout")
        return v

    @field_validator("theta_split", mode="before")
    @classmethod
    def _theta_split(cls, v: Any) -> Any:
        if isinstance(v, str):  # YAML 1.1 reads 1e-1 (no dot) as a string; '0.5' as a float setting does
            try:
                v = _FLOAT.validate_python(v)
            except ValidationError:
                pass
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError("must be a fraction in (0, 1) or a count >= 1")
        if isinstance(v, float) and not 0.0 < v < 1.0:
            if v >= 1.0 and v.is_integer():
                return int(v)  # 100.0 is a count
            raise ValueError("must be a fraction in (0, 1) or a count >= 1")
        if isinstance(v, int) and v < 1:
            raise ValueError("must be a fraction in (0, 1) or a count >= 1")
        return v


def _auto_or(low: float, strict: bool):
    """A before-validator for ``"auto" | float`` fields with one clear message."""
    op = ">" if strict else ">="

    def check(v: Any) -> Any:
        if v == "auto":
            return v
        x = v
        if isinstance(v, str):  # YAML reads 1e-3 (no dot) as a string; a float field of the recipe takes it
            try:
                x = _FLOAT.validate_python(v)
            except ValidationError:
                x = None
        if isinstance(x, bool) or not isinstance(x, (int, float)) or (x <= low if strict else x < low):
            raise ValueError(f"must be 'auto' or a number {op} {low:g}")
        x = _as_float(x)
        if not math.isfinite(x):  # .inf: else pydantic's float refuses it as "auto or a finite number", garbled
            raise ValueError(f"must be 'auto' or a finite number {op} {low:g}")
        return float(x)

    return check


def _as_float(x: int | float) -> float:
    """``x`` as a float; an integer too large for one (YAML's 1 and 400 zeros) is inf, which the checks then
    refuse as not finite (``float()`` would raise OverflowError, an internal error)."""
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


_SUFFIXES = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
# Time units, for a latency metric (its tables are in milliseconds): converted to ms.
_TIME_UNITS = {"ms": 1.0, "us": 1e-3, "s": 1e3}
#: Cost metrics measured in milliseconds, whose budgets may carry a time unit (8ms).
TIME_METRICS = ("latency",)
_BUDGET_RE = re.compile(r"\s*([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*")


def parse_budget(v: Any, allow_null: bool = True) -> float | None:
    """A cost budget: ``null`` (unconstrained; only with ``allow_null``), a number, or a number with a
    ``k``/``M``/``G`` suffix (``150k`` = 150,000) in the units of ``search.cost``."""
    null = "null or " if allow_null else ""
    if v is None and allow_null:
        return None
    if v is None or isinstance(v, bool):
        raise ValueError(f"must be {null}a number (k, M, G suffixes allowed)")
    if isinstance(v, (int, float)):
        x = _as_float(v)
    elif isinstance(v, str):
        m = _BUDGET_RE.fullmatch(v)
        if m is None:
            raise ValueError(f"must be {null}a number with an optional k, M or G suffix, such as 150k")
        unit = m.group(2)
        if unit not in _SUFFIXES and unit not in _TIME_UNITS:
            raise ValueError(f"{shortened(unit, repr)} is not a unit of search.cost: a budget is a plain count in the "
                             f"units of the cost metric, with an optional k, M or G suffix (such as 150k), or "
                             f"a time (8ms) for a latency metric")
        x = float(m.group(1)) * {**_SUFFIXES, **_TIME_UNITS}[unit]
    else:
        raise ValueError(f"must be {null}a number (k, M, G suffixes allowed)")
    if not math.isfinite(x) or x < 0:
        raise ValueError("must be a finite number >= 0" + (", or null for no constraint" if allow_null else ""))
    return x


def _parse_random_budget(v: Any) -> float:
    """A budget of the random baseline: as :func:`parse_budget`, but never null."""
    return parse_budget(v, allow_null=False)


def _budgets_instead_of_epsilons(data: Any) -> Any:
    """``search.budgets`` given without ``search.epsilons``: epsilons become null (not the default list)."""
    if isinstance(data, dict) and data.get("budgets") is not None and "epsilons" not in data:
        data = dict(data, epsilons=None)
    return data


class SearchConfig(_Config):
    """Supernet training and the multi-epsilon ASNG search (paper §3, Algorithm 1)."""

    method: Literal["importance_sampling", "separate", "simultaneous", "random"] = Field(
        "importance_sampling", description="how theta for every epsilon is learned, or random search")
    epsilons: list[Annotated[float, Field(ge=0), BeforeValidator(_no_bool("a number"))]] | None = Field(
        [0.0, 0.1, 0.3, 0.5], min_length=1,
        description="regularisation coefficients epsilon_n (null when search.budgets is given)")
    cost: str = Field("params", min_length=1, description="cost metric of the space")
    cost_table: str | None = Field(
        None, min_length=1, description="a cost table (JSON) from `automl space profile`; relative: to the recipe")
    budgets: list[Annotated[float | None, BeforeValidator(parse_budget)]] | None = Field(
        None, min_length=1, description="instead of epsilons: total cost budgets in the units of cost "
        "(150k, 2.5M; null: unconstrained); each epsilon adapts to meet its budget")
    utility: Literal["paper", "weighted_quantile"] = Field(
        "weighted_quantile", description="ranking utility: paper (eq. 9) or weighted_quantile (IGO, "
        "self-normalised importance weights); both are eq. 7 with one distribution")
    lam: int = Field(2, ge=2, le=MAX_LAM, description="architectures sampled per step (lambda)")
    weight_epochs: int = Field(10, ge=0, le=MAX_EPOCHS, description="epochs updating W (T_W)")
    theta_epochs: int = Field(10, ge=0, le=MAX_EPOCHS, description="epochs updating theta (T_theta)")
    theta_lr: Annotated[Union[Literal["auto"], float], BeforeValidator(_auto_or(0.0, True))] = Field(
        "auto", description="learning rate of theta; auto: 1/sum(K_d)")
    theta_min: Annotated[Union[Literal["auto"], float], BeforeValidator(_auto_or(0.0, False))] = Field(
        "auto", description="lower bound of each theta entry; auto: the ASNG default")
    normalize_costs: bool = Field(True, description="scale costs so epsilon is comparable across spaces")
    random_budgets: list[Annotated[float, BeforeValidator(_parse_random_budget)]] | None = Field(
        None, min_length=1, description="random: explicit cost budgets of the retrained network, one architecture "
        "each (2.5M, 150k)")
    random_band: float | None = Field(
        None, gt=0, le=1, description="random: each member's network costs between random_band x its budget and "
        "the budget (search.random_budgets or search.budgets; 0.9: the paper's networks of about 2.5M ... 5M "
        "parameters); null: anything within the budget")
    log_every: int = Field(10, gt=0, description="steps between logged metrics")
    nan_policy: Literal["stop", "skip"] = Field(
        "stop", description="a weight step with a non-finite loss: stop the run, or skip the step (not applied)")
    max_bad_steps: int = Field(
        10, ge=0, description="nan_policy skip: stop when more weight steps than this were skipped")
    weight_sampling: Literal["uniform", "fair", "sandwich"] = Field(
        "uniform", description="weight phase paths: uniform (the paper), fair (each step's lam paths cover every "
        "choice of every decision as equally as possible, FairNAS), sandwich (largest + smallest + uniform, BigNAS)")
    inplace_distill: bool = Field(
        False, description="sandwich only: the other paths learn the largest path's predictions (BigNAS)")
    theta_bn: Literal["batch", "recalibrate"] = Field(
        "batch", description="BatchNorm in the theta phase: the batch's own statistics, or running statistics "
        "recalibrated for each path on theta_bn_batches D_W batches (Once-for-All)")
    theta_bn_batches: int = Field(2, gt=0, description="theta_bn recalibrate: D_W batches per path")
    supernets: int = Field(
        1, ge=1, le=16, description="supernets trained independently (own initialisation, paths and D_W order); "
        "the θ phase and the ranking score a path by the members' mean loss: M times the weight phase and the "
        "θ-phase evaluations (simultaneous: each member's W is M supernets; random trains none); on digits 4 "
        "ranked better than one (Kendall τ 0.73 against 0.68) and chose unconstrained members of lower "
        "stand-alone test loss (0.053 against 0.058), of no steadier size (docs/search-engine.md, \"Several "
        "supernets\", \"Four supernets\")")

    @model_validator(mode="before")
    @classmethod
    def _no_default_epsilons(cls, data: Any) -> Any:
        return _budgets_instead_of_epsilons(data)

    @field_validator("budgets", "random_budgets", mode="before")
    @classmethod
    def _units_fit_the_metric(cls, v: Any, info: ValidationInfo) -> Any:
        """A time (8ms) fits only a latency metric."""
        cost = info.data.get("cost", "params")
        for j, b in enumerate(v if isinstance(v, list) else ()):
            m = _BUDGET_RE.fullmatch(b) if isinstance(b, str) else None
            if m and m.group(2) in _TIME_UNITS and cost not in TIME_METRICS:
                raise ValueError(f"item {j}: {shortened(b, repr)} is a time, but search.cost is {cost}; give the "
                                 f"budget in the units of {cost} (k, M, G suffixes allowed), or search on latency")
        return v


# The most a learning rate (lr, warmup_lr) may be: the recipes use 0.025 to 0.3, the README's experiments up to 0.6
# (SGD's linear scaling rule, 0.1 x batch / 256, reaches 10 at a batch of 25,600; the quickstart still trains at 10
# without a gradient clip), so 100 leaves room for any real setting and stops a typo (1e3 for 1e-3, 1e30), which
# sent the weights to NaN or inf in the first steps and stopped the run there (retrain.*: once the search was over)
MAX_LR = 100.0
# The most a weight decay may be: SGD and AdamW take lr x weight_decay of each weight away at every step, so a
# larger one drives the weights to 0 (or, above 2 / lr, to inf); the recipes use 1e-5 to 3e-4, AdamW's are 0.01 to 0.1
MAX_WEIGHT_DECAY = 1.0


def _sensible_rate(v: float, info: ValidationInfo) -> float:
    """A learning rate (``lr``, ``warmup_lr``) at most :data:`MAX_LR`, a weight decay at most
    :data:`MAX_WEIGHT_DECAY`."""
    if info.field_name == "weight_decay" and v > MAX_WEIGHT_DECAY:
        raise ValueError(f"must be at most {MAX_WEIGHT_DECAY:g}: each step takes lr x weight_decay of every weight "
                         f"away, so a larger decay drives the weights to 0 or makes them diverge; check the value "
                         f"(the recipes use 1e-5 to 3e-4 with SGD, AdamW commonly 0.01 to 0.1)")
    if info.field_name != "weight_decay" and v > MAX_LR:
        raise ValueError(f"must be at most {MAX_LR:g}: the recipes use 0.025 to 0.3, and a learning rate far beyond "
                         f"sends the weights to NaN or inf in the first steps; check the value (1e-3 rather than 1e3?)")
    return v


class OptimConfig(_Config):
    """The optimiser of the supernet weights W during the search."""

    name: Literal["sgd", "adamw", "rmsprop", "rmsproptf"] = Field(
        "sgd", description="optimiser; rmsprop: torch's RMSprop (eps added to the root), rmsproptf: timm's "
        "TensorFlow-style RMSprop (eps inside the square root, square average starting at 1), both with timm's "
        "defaults (alpha 0.9; eps 1e-8 and 1e-10)")
    lr: float = Field(0.025, gt=0, description="initial learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="momentum")
    nesterov: bool = Field(False, description="Nesterov momentum (sgd)")
    weight_decay: float = Field(3e-4, ge=0, description="weight decay")
    schedule: Literal["cosine", "constant", "step"] = Field(
        "cosine", description="learning-rate schedule: cosine from lr to min_lr over search.weight_epochs, "
        "constant, or step (lr times decay_rate every decay_epochs epochs, not below min_lr); each after the "
        "warm-up")
    min_lr: float = Field(0.0, ge=0, description="floor of the learning rate: the end of the cosine schedule, "
                          "the lowest rate of the step schedule; at most lr")
    warmup_epochs: int = Field(0, ge=0, le=MAX_EPOCHS, description="linear warm-up epochs")
    warmup_lr: float = Field(0.0, ge=0, description="learning rate at the start of the warm-up (0: the first "
                             "update only fills the momentum buffers)")
    decay_rate: float = Field(0.1, gt=0, le=1, description="step schedule: factor every decay_epochs")
    decay_epochs: float = Field(30, gt=0, description="step schedule: epochs between decays (fewer than "
                                "search.weight_epochs)")
    grad_clip: float | None = Field(5.0, gt=0, description="gradient-norm clip; null: none")

    @field_validator("lr", "warmup_lr", "weight_decay")
    @classmethod
    def _sensible(cls, v: float, info: ValidationInfo) -> float:
        return _sensible_rate(v, info)


class RetrainConfig(_Config):
    """Retraining each derived architecture from scratch on D (paper §4)."""

    epochs: int = Field(10, ge=0, le=MAX_EPOCHS, description="epochs; 0 skips retraining: each network takes the "
                        "supernet's "
                        "weights on its path")
    bn_batches: int = Field(10, gt=0, description="epochs 0: D_W batches that recalibrate the BatchNorm statistics of "
                            "each network that takes the supernet's weights, before it is evaluated and exported")
    space_args: dict[str, Scalar] = Field(
        {}, description="space parameters for the retrained networks (more cells, channels)")
    batch_size: int | None = Field(None, gt=0, le=MAX_BATCH, description="null: data.batch_size")
    optimizer: Literal["sgd", "adamw", "rmsprop", "rmsproptf"] = Field(
        "sgd", description="optimiser; rmsprop: torch's RMSprop (eps added to the root), rmsproptf: timm's "
        "TensorFlow-style RMSprop (eps inside the square root, square average starting at 1), the one EfficientNet's "
        "and SGNAS's hyper-parameters are for")
    lr: float = Field(0.025, gt=0, description="initial learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="momentum")
    weight_decay: float = Field(3e-4, ge=0, description="weight decay")
    rmsprop_eps: float = Field(0.001, gt=0, description="rmsprop and rmsproptf: epsilon")
    rmsprop_alpha: float = Field(0.9, gt=0, lt=1, description="rmsprop and rmsproptf: smoothing constant")
    schedule: Literal["cosine", "step", "constant"] = Field(
        "cosine", description="learning-rate schedule: cosine from lr to min_lr over epochs, constant, or step "
        "(lr times decay_rate every decay_epochs epochs, not below min_lr); each after the warm-up")
    warmup_epochs: int = Field(0, ge=0, le=MAX_EPOCHS, description="linear warm-up epochs")
    warmup_lr: float = Field(0.0, ge=0, description="learning rate at the start of the warm-up (0: the first "
                             "update only fills the momentum buffers)")
    decay_rate: float = Field(0.963, gt=0, le=1, description="step schedule: factor every decay_epochs")
    decay_epochs: float = Field(3, gt=0, description="step schedule: epochs between decays (fewer than epochs)")
    min_lr: float = Field(0.0, ge=0, description="floor of the learning rate: the end of the cosine schedule, "
                          "the lowest rate of the step schedule; at most lr")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing")
    ema: float | None = Field(None, gt=0, lt=1, description="EMA decay of the evaluated weights; null: none")
    se: float = Field(0.0, ge=0, lt=1, description="squeeze-and-excitation ratio in MBConv blocks")
    grad_clip: float | None = Field(5.0, gt=0, description="gradient-norm clip; null: none")

    @field_validator("lr", "warmup_lr", "weight_decay")
    @classmethod
    def _sensible(cls, v: float, info: ValidationInfo) -> float:
        return _sensible_rate(v, info)


class RankingConfig(_Config):
    """How well the supernet ranks architectures (automl/ranking.py); absent or null: not measured."""

    archs: int = Field(20, ge=3, le=10_000, description="architectures spread over the cost range (K)")
    retrain_epochs: int | None = Field(
        None, ge=0, le=MAX_EPOCHS, description="stand-alone epochs of each (the retrain section's settings); "
        "null: retrain.epochs; "
        "0: the supernet's own weights on the test set")
    bn_batches: int = Field(10, gt=0, description="D_W batches that recalibrate BatchNorm for each architecture")
    seeds: int = Field(1, ge=1, le=1000, description="stand-alone retrainings of each architecture (seeds seed, "
                       "seed+1, "
                       "...: another initialisation and data order each); the truth is their mean")
    truth: Literal["loss", "accuracy"] = Field(
        "loss", description="what the retrainings are ranked by: mean test loss (repeats better between seeds) or "
        "mean test accuracy; the supernet's score is the same measure on D_θ")


# What a run writes at the top of its output folder: a relative export.dir may not be (or be inside) one of them.
RUN_FILES = {"checkpoints": "checkpoints", "results.json": "results", "report.md": "report",
             "metrics.jsonl": "metrics log", "pareto.png": "Pareto plot", "ranking.png": "ranking plot",
             "recipe.resolved.yaml": "resolved recipe", "threads.json": "thread choice", ".lock": "writer's lock"}


class ExportConfig(_Config):
    """Export of the retrained networks."""

    onnx: bool = Field(True, description="also write ONNX files")
    dir: str | None = Field(
        None, description="export folder; relative: inside the run's output folder DIR; null: DIR/export")
    opset: int = Field(17, ge=17, description="ONNX opset")
    quantize: Literal["int8"] | None = Field(
        None, description="int8: also write model.int8.onnx (onnxruntime static quantisation, QDQ, per-channel)")

    @model_validator(mode="after")
    def _quantize_needs_onnx(self):
        if self.quantize is not None and not self.onnx:
            raise ValueError(f"quantize: {self.quantize} quantises the ONNX model; set export.onnx: true "
                             f"or remove export.quantize")
        return self

    @field_validator("dir")
    @classmethod
    def _dir_inside(cls, v: str | None) -> str | None:
        if v is None or Path(os.path.expanduser(v)).is_absolute():
            return v  # absolute: given explicitly, allowed anywhere
        norm = os.path.normpath(v)
        if norm == ".":
            raise ValueError(f"{shortened(v, repr)} is the run's output folder itself, where its checkpoints and "
                             f"results are; name a folder inside it (export), give an absolute path, or null for "
                             f"DIR/export")
        if norm == ".." or norm.startswith(".." + os.sep):
            raise ValueError("a relative export.dir is inside the run's output folder and may not leave it "
                             "with '..'; give an absolute path to export elsewhere")
        first = Path(norm).parts[0]
        if first in RUN_FILES:
            raise ValueError(f"{first} in the run's output folder holds its {RUN_FILES[first]}, not exports; "
                             f"name a folder of its own (such as export), give an absolute path, or null for "
                             f"DIR/export")
        return v


# RESULT_NEUTRAL and RESUME_MAY_SET name top-level recipe keys, left out of the resume fingerprint. A key inside a
# section that may differ on --resume (data.workers) is not left out, so that the fingerprints runs recorded
# still match: automl/pipeline/run.py's RESUME_MAY_CHANGE accepts it by the value the run recorded.
RESULT_NEUTRAL = {"checkpoint"}  # recipe sections that change how a run is kept safe, never what it computes
# may differ on --resume although they change float rounding: a resumed run keeps the thread count it started
# with unless told otherwise (automl/train/threads.py); cuDNN's algorithm choice is the recipe's of the moment
RESUME_MAY_SET = {"threads", "cudnn_benchmark"}
# Keys added since runs were first checkpointed, with the value that behaves as before the key existed: the
# resume fingerprint leaves a key out at that value, so a run started by an older automl still resumes.
ADDED_KEYS = {("search", "random_band"): None, ("optim", "warmup_lr"): 0.0, ("optim", "decay_rate"): 0.1,
              ("optim", "decay_epochs"): 30, ("data", "cutout"): 0}


class CheckpointConfig(_Config):
    """Checkpoints inside an epoch (one is always written at the end of every epoch and on a stop signal).

    15 minutes: an ImageNet-size epoch (hours) loses at most a quarter of an hour to a crash, for a few
    seconds of writing per checkpoint; the quickstart's epochs last seconds, so it never writes one."""

    every_minutes: float | None = Field(
        15.0, gt=0, description="also checkpoint inside an epoch this often (rank 0's clock); null: never")
    every_steps: int | None = Field(
        None, gt=0, description="also checkpoint inside an epoch every this many training steps; null: never")


class Recipe(_Config):
    """A whole run. Load it with :func:`load_recipe`; every path in it is absolute."""

    name: str = Field(..., pattern=NAME_PATTERN, max_length=MAX_NAME,
                      description="run name, used in output folders")
    seed: int = Field(0, description="seed of every random choice in the run; from -10^15 to 10^15")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when available")
    threads: Annotated[Union[Literal["auto"], int], BeforeValidator(_check_threads)] = Field(
        "auto", description="intra-op CPU threads; auto: from the step's size and the free cores "
                            "(automl/train/threads.py); an explicit number, OMP_NUM_THREADS or MKL_NUM_THREADS wins")
    cudnn_benchmark: bool = Field(
        False, description="on CUDA, let cuDNN time its convolution algorithms for each new shape and keep the "
        "fastest (torch.backends.cudnn.benchmark); off: PyTorch's default; on the digits supernet, whose path "
        "changes every step, it made the weight phase 2.9x slower on an H200 (README, Performance)")
    space: str = Field(..., min_length=1, description=".space file")
    space_args: dict[str, Scalar] = Field({}, description="space parameter overrides for the search supernet")
    data: DataConfig = Field(DataConfig(), description="dataset and loaders")
    search: SearchConfig = Field(SearchConfig(), description="supernet training and search")
    optim: OptimConfig = Field(OptimConfig(), description="optimiser of the supernet weights")
    retrain: RetrainConfig = Field(RetrainConfig(), description="retraining of derived networks")
    export: ExportConfig = Field(ExportConfig(), description="export")
    checkpoint: CheckpointConfig = Field(CheckpointConfig(), description="checkpoints inside an epoch")
    ranking: RankingConfig | None = Field(None, description="measure the supernet's ranking; null: off")
    supernet: str | None = Field(
        None, min_length=1, description="a run folder whose trained supernet this run reuses (its weight phase is "
        "skipped; `automl run --supernet DIR`); relative: to the recipe")
    supernet_force: bool = Field(
        False, description="supernet: use it even when it was trained with other settings (a warning)")

    _source: Path | None = PrivateAttr(None)
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    # search.cost_table as the file or the override wrote it: what fingerprints of earlier versions hashed
    _cost_table_given: str | None = PrivateAttr(None)
    # the command-line overrides applied, in order: (keys, the override as its messages show it)
    _overrides: tuple[tuple[tuple[str, ...], str], ...] = PrivateAttr(())

    @field_validator("seed")
    @classmethod
    def _seed_fits_torch(cls, v: int) -> int:
        return _seed_in_range(v)

    @property
    def source(self) -> Path | None:
        """The recipe file this came from (None when built from a dict)."""
        return self._source

    @property
    def base_dir(self) -> Path:
        """The recipe's folder: relative paths in the file were resolved against it."""
        return self._base_dir

    @property
    def space_path(self) -> Path:
        """Absolute path of the ``.space`` file."""
        return _resolve(self.space, self._base_dir)

    @property
    def cost_table_path(self) -> Path | None:
        """Absolute path of ``search.cost_table``, or None."""
        return None if self.search.cost_table is None else _resolve(self.search.cost_table, self._base_dir)

    @property
    def data_root(self) -> Path | None:
        """Absolute data folder, or None."""
        return None if self.data.root is None else _resolve(self.data.root, self._base_dir)

    @property
    def export_dir(self) -> Path | None:
        """The explicit absolute export folder, or None when the export goes inside the run's folder."""
        if self.export.dir is None:
            return None
        q = Path(os.path.expanduser(self.export.dir))
        return q if q.is_absolute() else None

    def export_root(self, out_dir: str | os.PathLike) -> Path:
        """Where the run in ``out_dir`` exports (:func:`export_folder` of its ``export.dir``)."""
        return export_folder(out_dir, self.export.dir)

    def __eq__(self, other: object) -> bool:  # where a recipe came from does not change what it says
        return isinstance(other, Recipe) and self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]

    def to_yaml(self, exclude: set[str] | dict | None = None) -> str:
        """The resolved recipe (defaults filled, paths absolute); loading it back gives an equal Recipe."""
        return self._resolved_text(self.model_dump(mode="json", exclude=exclude))

    def _resolved_text(self, data: dict) -> str:
        """``data`` as recipe.resolved.yaml writes it: a ``# resolved from`` line, then the YAML."""
        head = f"# resolved from {self._source}\n" if self._source else ""
        return head + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)

    def added_keys_as_before(self) -> dict[str, set[str]]:
        """Per section, the keys of ``ADDED_KEYS`` this recipe sets to the value that behaves as before they
        existed: fingerprints leave them out, so what a run recorded before a key existed still matches."""
        out: dict[str, set[str]] = {}
        for (section, key), before in ADDED_KEYS.items():
            if getattr(getattr(self, section), key) == before:
                out.setdefault(section, set()).add(key)
        return out

    def _fingerprint_exclude(self) -> dict:
        return {**{k: True for k in RESULT_NEUTRAL | RESUME_MAY_SET}, **self.added_keys_as_before()}

    def fingerprint(self, space_bytes: bool = False, cost_table: str | None = None,
                    supernet_path: bool = False) -> str:
        """SHA-256 of the resolved recipe less the sections that cannot change results (``checkpoint``) and
        ``threads``: ``--resume`` requires the same fingerprint, and may change how often checkpoints are
        written and (explicitly) the thread count. It does not depend on where things are: the space file
        counts by what it says (:func:`automl.dsl.space_digest`: not its comments, not its path), and neither
        the recipe file's path nor ``data.root`` counts, so a run resumes with its recipe, space and data at
        other paths (a requeued job on another machine). ``space_bytes``: the space counted by its bytes, as
        runs checkpointed before :func:`~automl.dsl.space_digest` recorded it (such a run still resumes).
        ``search.cost_table`` counts by its bytes too (a recipe without one hashes as before it existed);
        ``cost_table``: the path to hash instead, as earlier versions did (:meth:`earlier_fingerprints`). Of
        ``supernet`` only whether one is given counts (its weights are in the checkpoint once the run is past its
        first stage, which checks them: a run folder moved with the run it reused resumes); ``supernet_path``: its
        path, as runs checkpointed before recorded it."""
        data = self.model_dump(mode="json", exclude=self._fingerprint_exclude())
        if data.get("supernet") is not None and not supernet_path:
            data["supernet"] = "given"
        if cost_table is not None:
            data["search"]["cost_table"] = cost_table
        elif self.search.cost_table is not None:
            data["search"]["cost_table"] = _digest_of(self.cost_table_path, self.search.cost_table)
        try:
            raw = self.space_path.read_bytes()
        except OSError:  # not readable here: the run's start-up says so; the path stands in
            pass
        else:
            data["space"] = "sha256:" + (hashlib.sha256(raw).hexdigest() if space_bytes else space_digest(raw))
        data["data"].pop("root", None)
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def earlier_fingerprints(self) -> tuple[str, ...]:
        """What runs checkpointed by earlier versions recorded for this recipe, which ``--resume`` accepts: the
        space counted by its bytes, and the resolved YAML with its ``# resolved from`` line and absolute paths;
        with a cost table, also each with ``search.cost_table`` as written (earlier versions kept it so)."""
        out = (self.fingerprint(space_bytes=True), self.legacy_fingerprint())
        if self.supernet is not None:  # with its path, as recorded before only whether one is given counted
            out += (self.fingerprint(supernet_path=True), self.fingerprint(space_bytes=True, supernet_path=True))
        given = self._cost_table_given
        if given is None or self.search.cost_table is None:
            return out
        return out + (self.fingerprint(cost_table=given), self.fingerprint(space_bytes=True, cost_table=given),
                      self.legacy_fingerprint(cost_table=given))

    def legacy_fingerprint(self, cost_table: str | None = None) -> str:
        """:meth:`fingerprint` as runs checkpointed before it was location-independent recorded it (the
        resolved YAML with its ``# resolved from`` line and absolute paths): such a run still resumes."""
        data = self.model_dump(mode="json", exclude=self._fingerprint_exclude())
        if cost_table is not None:
            data["search"]["cost_table"] = cost_table
        return hashlib.sha256(self._resolved_text(data).encode()).hexdigest()

    def dump_resolved(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_yaml` to ``path`` (``DIR/recipe.resolved.yaml``), atomically."""
        path = Path(path)
        atomic_write_text(path, self.to_yaml())
        return path


# ---------------------------------------------------------------------------------------------- loading


def _digest_of(path: Path | None, fallback: str) -> str:
    """``sha256:...`` of a file's bytes, or ``fallback`` when it cannot be read (the run's start-up says so)."""
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else fallback
    except OSError:
        return fallback


def _resolve(p: str | os.PathLike, base: Path) -> Path:
    """``p`` made absolute against ``base``, its links followed; with a loop of links on the way, absolute as
    written (reading the file or folder says what is wrong with it, naming its key), and so with a character no
    path holds (a NUL, a lone surrogate: the recipe's checks refuse it at its key, :func:`_unusable_path`)."""
    q = Path(os.path.expanduser(str(p)))
    if q.is_absolute():
        return q
    try:
        return (base / q).resolve()
    # a loop of links: RuntimeError before Python 3.13, OSError after; ValueError: "embedded null byte", or a
    # UnicodeEncodeError
    except (OSError, RuntimeError, ValueError):
        return Path(os.path.abspath(base / q))


def export_folder(out_dir: str | os.PathLike, export_dir: str | None) -> Path:
    """Where a run in ``out_dir`` whose ``export.dir`` is ``export_dir`` exports: ``out_dir/export`` (None),
    ``out_dir/<relative export.dir>``, or the absolute one (``~`` expanded)."""
    if export_dir is None:
        return Path(out_dir) / "export"
    absolute = Path(os.path.expanduser(export_dir))
    return absolute if absolute.is_absolute() else Path(out_dir) / os.path.normpath(export_dir)


def load_recipe(path: str | os.PathLike, overrides: list[str] | None = None, flag: str = "",
                warn: bool = True) -> Recipe:
    """Read, override and validate a recipe file. Raises :class:`RecipeError` for every mistake. ``flag``: the
    command-line flag that gave ``path`` (``--recipe``), named with it where the file cannot be read. ``warn``
    False: the recipe's warnings (this module's logger's) are left unsaid, its errors raised as ever (a rank other
    than 0 under torchrun; a first look at a recipe that a second load, with more overrides, warns of)."""
    if not warn:
        level = _logger.level
        _logger.setLevel(logging.ERROR)
        try:
            return load_recipe(path, overrides, flag)
        finally:
            _logger.setLevel(level)
    path = Path(path)
    name = f"{flag} {path}" if flag else str(path)
    try:
        text = read_utf8_text(path)
    except UnreadableText as e:
        message = {
            "missing": f"no such recipe file (looked for {path.absolute()}){_recipe_like(path)}",
            "directory": "is a directory, expected a recipe YAML file",
            "unreadable": f"cannot read the recipe: {e.detail}",
            "encoding": f"not UTF-8 text (byte {e.detail}); save the recipe as UTF-8",
        }[e.reason]
        raise RecipeError(message, name, line=e.line) from None
    if path.suffix.lower() == ".space":  # `automl run spaces/digits.space`: its first line is a YAML syntax error
        raise RecipeError("is a search space (a .space file), not a recipe: give a recipe YAML file whose space: key "
                          "names it (relative to the recipe's folder), such as a copy of recipes/quickstart.yaml", name)
    return parse_recipe(text, filename=str(path), base_dir=path.absolute().parent, overrides=overrides,
                        source=path.absolute())


def _recipe_like(path: Path) -> str:
    """``; did you mean P?`` for a recipe file ``path`` that does not exist, where its folder holds one of the
    other YAML extension (``.yml`` for ``.yaml``, and back) or of a close name; else ""."""
    try:
        names = sorted(p.name for p in path.parent.iterdir()
                       if p.suffix.lower() in (".yaml", ".yml") and p.is_file())
    except OSError:  # no such folder, or not one to list
        return ""
    swapped = path.stem + {".yml": ".yaml", ".yaml": ".yml"}.get(path.suffix.lower(), "")
    close = [swapped] if swapped in names else difflib.get_close_matches(path.name, names, n=1)
    return f"; did you mean {path.with_name(close[0])}?" if close else ""


def parse_recipe(text: str, filename: str = "<recipe>", base_dir: str | os.PathLike | None = None,
                 overrides: list[str] | None = None, source: Path | None = None) -> Recipe:
    """Validate recipe YAML ``text``; relative paths resolve against ``base_dir`` (default: cwd)."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    node = None
    try:
        _check_depth(text, filename)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        _check_binary(node, filename)
        _check_yaml11(node, filename)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        if isinstance(e, yaml.reader.ReaderError):  # a control character: no mark, a position
            line = text[: e.position].count("\n") + 1
            char = chr(e.character) if isinstance(e.character, int) else e.character
            raise RecipeError(f"the character {char!r} is not allowed in YAML; remove it", filename,
                              line=line) from None
        if isinstance(e, yaml.constructor.ConstructorError) and "unhashable key" in problem:
            path, key = _non_scalar_key(node)
            raise RecipeError(_NOT_A_NAME.format(kind=_node_kind(key)), filename, _dotted(path) or None,
                              line=key.start_mark.line + 1 if key is not None else
                              (mark.line + 1 if mark else None)) from None
        if isinstance(e, yaml.constructor.ConstructorError) and "for merging" in problem:
            path, value = _bad_merge(node)
            raise RecipeError(_MERGE_TAKES.format(kind=_node_kind(value)), filename, _dotted(path) or None,
                              line=mark.line + 1 if mark else None) from None
        if isinstance(e, yaml.constructor.ConstructorError) and _flow_or_tag_hint(problem, None):
            raise RecipeError(_flow_or_tag_hint(problem, None), filename, line=mark.line + 1 if mark else None,
                              column=mark.column + 1 if mark else None,
                              source_line=_source_line(mark) if mark else None) from None
        if isinstance(e, yaml.constructor.ConstructorError):  # !!python/object and friends: never built
            raise RecipeError(f"unsupported YAML tag ({problem}); a recipe holds plain values only, no "
                              f"Python objects", filename, line=mark.line + 1 if mark else None) from None
        raise _syntax_error(e, filename) from None
    except _UNBUILDABLE as e:  # composes, but a value cannot be built: 5,000 digits, a date with month 13
        path, bad, why = _unbuildable(node)
        if bad is None:
            raise RecipeError(f"YAML cannot build a value ({e}); check the values", filename) from None
        raise RecipeError(_cannot_build(bad.value, bad.tag, why), filename, _dotted(path) or None,
                          bad.start_mark.line + 1) from None
    empty, data = data is None, {} if data is None else data
    if not isinstance(data, dict):
        raise RecipeError(f"a recipe must be a mapping of keys to values, got a {_kind(data)}", filename,
                          line=1)
    _check_duplicates(node, filename)

    data = _drop_removed(data, filename)
    _check_key_names(node, filename)
    given = _at(data, COST_TABLE)  # as written: what fingerprints of earlier versions hashed
    # Paths in the file are relative to the recipe; overrides' paths to the current folder.
    data = _resolve_paths(data, base)
    applied: list[tuple[tuple[str, ...], str]] = []
    for given_item in overrides or []:
        keys, value = _parse_override(given_item, filename)
        item = _shown(given_item)
        _check_override_key_names(value, keys, item, filename)
        if COST_TABLE[: len(keys)] == keys:
            given = _at(value, COST_TABLE[len(keys):])
        value = _resolve_override(keys, value)
        data = _set(data, keys, value, item, filename, node, applied)
        applied.append((keys, item))

    data = _override_wins(data, applied)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        if empty and any(err["type"] == "missing" for err in e.errors()):  # nothing, comments, ---, null
            raise RecipeError(_EMPTY, filename) from None
        raise _recipe_error(e, filename, node, applied) from None
    recipe._source = source
    recipe._base_dir = base
    recipe._cost_table_given = given if isinstance(given, str) else None
    recipe._overrides = tuple(applied)
    _cross_checks(recipe, filename, node, applied)
    return recipe


_EMPTY = ("the recipe is empty: it holds no settings, and a recipe needs at least name and space; start from "
          "recipes/quickstart.yaml (copy it and edit the copy)")
_BINARY = ("YAML's !!binary makes binary data, and a recipe holds plain values (numbers, text, true or false, lists, "
           "mappings), which binary data is not: ")


def _check_binary(node, filename: str, keys: list[str] | None = None, what: str = "") -> None:
    """Refuse a ``!!binary`` value in ``node`` (a recipe file's, or ``what``, an override's of ``keys``), at its key
    and line: pydantic would read one as text or show it in base64 over two lines."""
    for path, n in _distinct_nodes(node):
        if getattr(n, "tag", None) == "tag:yaml.org,2002:binary":
            fix = "write the settings as key: value lines, such as seed: 3" if not keys and not path else \
                "remove the !!binary tag and write the value itself"
            raise RecipeError(f"{what}{_BINARY}{fix}", filename, _dotted(tuple(keys or ()) + path) or None,
                              None if keys else n.start_mark.line + 1)


_INT_TAG, _FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
# the tags YAML 1.1 gives a lone plain = and <<, which it builds no value of
_SPECIAL_TAGS = {"tag:yaml.org,2002:value": "its 'value' key", "tag:yaml.org,2002:merge": "its merge key (<<: *anchor)"}
_OCTAL = re.compile(r"[-+]?0[0-7_]*[0-7][0-7_]*")


def _yaml11_surprise(n) -> str | None:
    """What is wrong with a plain scalar that YAML 1.1 (PyYAML) reads as something other than a reader of the
    recipe would: ``1:30`` (base 60: 90), ``017`` (octal: 15, where 018 is 18), a lone ``=`` or ``<<`` (a tag with no
    value); None for any other node. YAML 1.2 reads the first two as text and as 17."""
    if not isinstance(n, yaml.ScalarNode) or n.style is not None:
        return None
    v = n.value if len(n.value) <= 40 else n.value[:37] + "..."
    quote = f"or quote it ('{v}') if it is text"
    if n.tag in _SPECIAL_TAGS:
        return f"YAML 1.1 reads a lone {v} as {_SPECIAL_TAGS[n.tag]}, not as text: quote it ('{v}') if it is text"
    digits = n.value.replace("_", "").lstrip("+-")
    if n.tag == _INT_TAG and _OCTAL.fullmatch(n.value) and len(digits.lstrip("0")) > 1:  # 07 is 7 either way
        sign = -1 if n.value.startswith("-") else 1
        numbers = (f"the octal number {sign * int(digits, 8)}: write {sign * int(digits, 10)} without the leading 0 "
                   f"(or {sign * int(digits, 8)} if octal was meant)" if len(digits) <= 30 else "an octal number: "
                   f"write it without the leading 0")
        return f"YAML 1.1 reads {v}, which starts with 0, as {numbers}, {quote}"
    if n.tag in (_INT_TAG, _FLOAT_TAG) and ":" in n.value:
        built = yaml.constructor.SafeConstructor().construct_object(n) if len(digits) <= 30 else None
        numbers = (f", {built}, not as a time: write the number meant in plain digits ({built}, or "
                   f"{built / 60 ** n.value.count(':'):g} for a time in units of its first field)" if built is not None
                   else ", not as a time: write the number meant in plain digits")
        return f"YAML 1.1 reads {v} as a base-60 (sexagesimal) number{numbers}, {quote}"
    return None


def _adjacent(a, b) -> bool:
    """Two list items written with a bare comma between them (``1,000``), each a plain scalar."""
    return all(isinstance(x, yaml.ScalarNode) and x.style is None for x in (a, b)) and \
        b.start_mark.index == a.end_mark.index + 1


def _thousands(items: list, j: int) -> str | None:
    """What is wrong with the list items ``items[j - 1]`` and ``items[j]`` when they are part of a number written
    with thousands separators, which YAML reads as several items (``[1,000]`` is [1, 0]); else None. Only an item
    that starts with 0 counts: [10,100] may be meant as two items, [1,000] is not."""
    a, b = items[j - 1], items[j]
    if not _adjacent(a, b) or not re.fullmatch(r"[-+]?[0-9]+", a.value) or \
            not re.fullmatch(r"0[0-9]{2}(\.[0-9]*)?", b.value):
        return None
    first, last = j - 1, j
    while first > 0 and _adjacent(items[first - 1], items[first]) and re.fullmatch(r"[0-9]{3}", a.value) and \
            re.fullmatch(r"[-+]?[0-9]+", items[first - 1].value):
        first, a = first - 1, items[first - 1]
    while last + 1 < len(items) and _adjacent(items[last], items[last + 1]) and \
            re.fullmatch(r"[0-9]{3}(\.[0-9]*)?", items[last + 1].value) and "." not in items[last].value:
        last += 1
    parts = [n.value for n in items[first:last + 1]]
    return (f"YAML reads {','.join(parts)} in a list as {len(parts)} items ({', '.join(parts)}): write a number "
            f"without thousands separators ({''.join(parts)}, or {'_'.join(parts)}), or put a space after each comma "
            f"if separate items are meant")


def _check_yaml11(node, filename: str, keys: list[str] | None = None, what: str = "") -> None:
    """Refuse a plain scalar YAML 1.1 reads otherwise than a reader would (:func:`_yaml11_surprise`) in ``node``
    (a recipe file's, or ``what``, an override's of ``keys``), at its key and line: 1:30 would silently be 90. A
    mapping's keys are left to :func:`_check_key_names` (``1:30:`` is a number, not a name), and ``<<`` merges."""
    nodes = list(_distinct_nodes(node))
    keys_of = {id(k) for _, n in nodes if isinstance(n, yaml.MappingNode) for k, _ in n.value}
    thousands = {id(b): (n.value, j) for _, n in nodes if isinstance(n, yaml.SequenceNode)
                 for j, b in enumerate(n.value) if j}
    for path, n in nodes:
        why = None if id(n) in keys_of and n.tag != "tag:yaml.org,2002:value" else _yaml11_surprise(n)
        why = (_thousands(*thousands[id(n)]) if id(n) in thousands else None) or why
        if why is None:
            continue
        if keys is not None and not path:  # the shell takes off quotes of its own: `key='1:30'` gives key=1:30
            why += f"; on the command line, in double quotes: \"{'.'.join(keys)}='{_shown(n.value)}'\""
        raise RecipeError(f"{what}{why}", filename, _dotted(tuple(keys or ()) + path) or None,
                          None if keys is not None else n.start_mark.line + 1)


def _syntax_error(e: yaml.YAMLError, filename: str) -> RecipeError:
    """A YAML syntax error at its line, the line shown with a caret under the problem, and how to fix it. A
    problem found at the end of the file (a quote or a bracket never closed) is shown where it began."""
    problem, context = getattr(e, "problem", None) or str(e), getattr(e, "context", None)
    mark, opened = getattr(e, "problem_mark", None), getattr(e, "context_mark", None)
    if mark is None or opened is not None and (_source_line(mark) is None or problem == _NO_COLON):
        mark = opened  # "seed:4" is found on the line after it
    hint = (_after_quote(problem, getattr(e, "problem_mark", None)) or _syntax_hint(problem, context, opened)
            or _flow_or_tag_hint(problem, context))
    if hint is None:
        hint = problem + (f" ({context} on line {opened.line + 1})" if context and opened is not None else "")
    if mark is None:
        return RecipeError(f"YAML syntax error: {hint}", filename)
    return RecipeError(f"YAML syntax error: {hint}", filename, line=mark.line + 1, column=mark.column + 1,
                       source_line=_source_line(mark))


def _source_line(mark) -> str | None:
    """The text of the line ``mark`` is on (as YAML counts lines), or None past the end of the file."""
    buf, at = getattr(mark, "buffer", None), getattr(mark, "pointer", None)
    if not isinstance(buf, str) or at is None:
        return None
    start = max(buf.rfind(c, 0, at) for c in _BREAKS) + 1
    ends = [i for i in (buf.find(c, at) for c in _BREAKS) if i >= 0]
    line = buf[start:min(ends, default=len(buf))]
    return line if line.strip() else None


_NO_COLON = "could not find expected ':'"
_BREAKS = "\0\r\n\x85\u2028\u2029"  # what ends a line to YAML (its reader ends the buffer with \0)


def _syntax_hint(problem: str, context: str | None, opened) -> str | None:
    """What a YAML syntax error means in a recipe, and how to fix it; None when it is none of the usual ones."""
    on = f" on line {opened.line + 1}" if opened is not None else ""
    if problem.startswith("found character '\\t'"):
        return ("a tab character, which YAML does not allow here: indent with spaces only, and separate a "
                "value from its key's ':' with a space")
    m = re.fullmatch(r"found character '(.)' that cannot start any token", problem)
    if m:
        return f"YAML reserves {m.group(1)} at the start of a value: quote the value ('{m.group(1)}...')"
    if problem.startswith("expected '<document start>'"):
        return ("the YAML document ended before this line: a line '...' ends it (remove that line), and a '%' "
                "directive line must be followed by a '---' line before the settings (add it, or remove the directive)")
    if problem == "but found another document":
        return ("a recipe is one YAML document, and this '---' starts a second one: remove the line "
                "(a '---' may only open the file) and keep the settings in one mapping")
    if problem == "mapping values are not allowed here":
        return ("YAML cannot read this ':' as a key's: check this line's indentation (keys of one section "
                "line up under one another), that the line above has its ': ' (with a space after the colon), and "
                "quote a value that holds ': '")
    if problem == _NO_COLON:
        return "this line has no ': ': write key: value, with a space after the colon"
    m = re.fullmatch(r"expected ',' or '([\]}])', but got .*", problem)
    if m:
        kind, opener = ("list", "[") if m.group(1) == "]" else ("mapping", "{")
        return (f"the {kind} opened with '{opener}'{on} is not closed: close it with '{m.group(1)}', and "
                f"separate its items with ', '")
    if problem.startswith("expected <block end>, but found '-'"):
        return ("a list item ('- ') where YAML expects a key: indent it under the key it belongs to, or "
                "write key: value")
    if problem.startswith("expected <block end>, but found ':'"):
        return "a line that starts with ':' has no key: write key: value"
    m = re.fullmatch(r"expected <block end>, but found '([\]}])'", problem)
    if m:
        return f"'{m.group(1)}' closes a bracket that was never opened: remove it, or open the bracket before it"
    if problem.startswith("expected <block end>"):
        return ("this line's indentation does not match the keys above it: keys of one section line up under "
                "one another; indent it as the keys beside it")
    if problem == "found unexpected end of stream" and "quoted scalar" in (context or ""):
        return "this quote is never closed: end the value with the quote character that opened it"
    m = re.fullmatch(r"found undefined alias '(.*)'", problem)
    if m:
        return (f"*{m.group(1)} names no anchor: define the anchor &{m.group(1)} above its first use "
                f"(key: &{m.group(1)} value), or write the value itself")
    if problem.startswith("found unknown escape character"):
        return ("in double quotes a backslash starts an escape (\\n, \\t): write the value in single quotes "
                "('...'), or double each backslash")
    m = re.fullmatch(r"found duplicate anchor '(.*)'; first occurrence", context or "")
    if m and problem == "second occurrence":
        return f"the anchor &{m.group(1)} is defined a second time (first{on}): give each anchor its own name"
    return None


def _after_quote(problem: str, mark) -> str | None:
    """The hint for text after a quoted value's closing quote (``seed: "x" y``), which YAML reports as a block
    that does not end (:func:`_syntax_hint` would blame the indentation); None for anything else."""
    line = _source_line(mark) if mark is not None else None
    if not problem.endswith("but found '<scalar>'") or line is None:  # <block end>, <document start> (an override)
        return None
    before = line[:mark.column].rstrip()
    if not before.endswith(("'", '"')):
        return None
    return ("text after the closing quote of a value: put the whole value inside the quotes, or remove what "
            "follows the quote")


def _flow_or_tag_hint(problem: str, context: str | None) -> str | None:
    """What the YAML syntax errors inside brackets (``[0,, 1]``, ``[1, - 2]``, ``{a: [}``), after a key (``lam: -
    4``) and after a tag (``!!str}``) mean, and how to fix them; None for anything else."""
    m = re.fullmatch(r"expected the node content, but found '(.*)'", problem)
    if m and context == "while parsing a flow node":
        found = m.group(1)
        if found == ",":
            return ("a ',' with no value before it (two commas together, or one right after '[' or '{'): remove "
                    "the comma, or write the value that is missing")
        if found == "-":
            return "a list item ('- ') inside brackets: separate the items of [ ] or { } with ', ' ([a, b]), no '- '"
        if found == "<stream end>":
            return "the file ends before a bracket is closed: close each '[' with ']' and each '{' with '}'"
        return (f"'{found}' where YAML expects a value: close each '[' with ']' and each '{{' with '}}', the last "
                f"one opened first, and quote a value that holds brackets")
    if problem == "sequence entries are not allowed here":
        return ("a list item ('- ') right after a key: put each item on a line of its own below the key, indented "
                "(key:, then   - item), or write the list in brackets ([a, b])")
    if context == "while scanning a tag":
        return ("YAML reads a value that starts with '!' as a tag, which is followed by a space and a value; a "
                "recipe's values need no tags: remove the tag, or quote the value if it is text")
    m = re.fullmatch(r"expected a (scalar|sequence|mapping) node, but found (scalar|sequence|mapping)", problem)
    if m:  # !!str on a section, !!map on a list
        kinds = {"scalar": "a single value", "sequence": "a list", "mapping": "a mapping"}
        return (f"a YAML tag (such as !!str, !!int, !!seq, !!map) that makes {kinds[m.group(1)]} is given "
                f"{kinds[m.group(2)]}; remove the tag: a recipe's values need none")
    return None


def _drop_removed(data: dict, filename: str) -> dict:
    for (section, key), why in REMOVED_KEYS.items():
        part = data.get(section)
        if isinstance(part, dict) and key in part:
            _logger.warning(f"warning: {filename}: {section}.{key} is no longer a setting ({why}); ignored")
            data = dict(data, **{section: {k: v for k, v in part.items() if k != key}})
    return data


def _override_wins(data: dict, applied) -> dict:
    """``search.epsilons`` and ``search.budgets`` are alternatives: when one is set on the command line and
    the other only in the file, the command line's replaces the file's (``search.epsilons=[0,0.5]`` on a
    recipe with budgets runs with those epsilons); so do the random baseline's ``search.budgets`` and
    ``search.random_budgets``."""
    for pair in (("epsilons", "budgets"), ("budgets", "random_budgets")):
        search = data.get("search")
        if not isinstance(search, dict) or any(search.get(k) is None for k in pair):
            continue
        given = {k for k in pair if _override_for(("search", k), applied)}
        if len(given) == 1:
            dropped = (set(pair) - given).pop()
            data = dict(data, search={k: v for k, v in search.items() if k != dropped})
    return data


def _cross_checks(recipe: Recipe, filename: str, node, applied) -> None:
    s = recipe.search
    if (s.budgets is None) == (s.epsilons is None):
        keys = ("search", "budgets") if s.budgets is not None else ("search", "epsilons")
        where = _override_for(keys, applied) or _override_for(("search", "epsilons"), applied) or ""
        line = None if where else _line_of(node, keys)
        msg = ("give either search.epsilons or search.budgets, not both (remove one; on the command line, "
               "either one replaces the other given in the file)" if s.budgets is not None else
               "search.epsilons is null but search.budgets is not given; give one of them")
        raise RecipeError(f"{where}{msg}", filename, ".".join(keys), line)
    d = recipe.data
    if d.dataset in ("cifar10", "imagefolder") and d.root is None:
        keys = ("data", "dataset")
        where = _override_for(keys, applied) or ""
        line = None if where else _line_of(node, keys)
        layout = ("<root>/cifar-10-batches-py/" if d.dataset == "cifar10"
                  else "<root>/train/<class>/*.jpg and <root>/val/<class>/*.jpg")
        msg = (f"dataset {d.dataset} needs data.root, the folder holding {layout}; set it in the recipe "
               f"(data: {{root: ...}}) or on the command line: data.root=/path/to/data")
        raise RecipeError(f"{where}{msg}", filename, "data.root", line)
    s = recipe.search
    ignored = _ignored_keys(recipe, filename, node, applied)
    # the random baseline trains no supernet: its weight_sampling, inplace_distill and lam are warned of as ignored
    # (_ignored_by_random), not refused
    if s.method != "random" and s.inplace_distill and s.weight_sampling != "sandwich":
        _refuse(("search", "inplace_distill"), "needs search.weight_sampling: sandwich (the largest path is the "
                "teacher); set it, or set search.inplace_distill: false", filename, node, applied)
    if s.method != "random" and s.weight_sampling == "sandwich" and s.lam < 3:
        _refuse_either([("search", "weight_sampling"), ("search", "lam")],
                       f"search.weight_sampling sandwich trains the largest path, the smallest path and lam - 2 "
                       f"random ones each step; with search.lam {s.lam} no random path is left, so the other "
                       f"choices are never trained; set search.lam: 3 or more, or another weight_sampling",
                       filename, node, applied)
    for key in ("random_band", "random_budgets"):
        if getattr(s, key) is not None and s.method != "random":
            _refuse(("search", key), f"applies to search.method random only (this recipe's method is {s.method}, "
                    f"which would ignore it); remove search.{key}, or set search.method: random", filename, node,
                    applied)
    if s.random_band is not None and not (s.random_budgets or any(b is not None for b in s.budgets or ())):
        _refuse(("search", "random_band"), "draws each member between random_band x its budget and the budget, "
                "but this recipe gives no budget (search.budgets or search.random_budgets), so it would be "
                "ignored; give search.budgets or search.random_budgets, or remove search.random_band", filename,
                node, applied)
    if s.budgets is not None and s.random_budgets is not None:
        _refuse_either([("search", "budgets"), ("search", "random_budgets")],
                       "search.method random takes one list of budgets: search.budgets (totals of the search "
                       "space's network, as results.json reports cost) or search.random_budgets (of the retrained "
                       "network); with both, random_budgets would be ignored; remove one (on the command line, either "
                       "one replaces the other given in the file)", filename, node, applied)
    rt = recipe.retrain
    if rt.se > 0 and rt.epochs == 0 and s.method != "random":
        _refuse_either([("retrain", "se"), ("retrain", "epochs")],
                       f"retrain.se ({rt.se:g}) adds squeeze-and-excitation layers the supernet does not have, and "
                       f"retrain.epochs 0 skips retraining: each network would take the supernet's weights with "
                       f"untrained squeeze-and-excitation layers, which scale every channel by about 0.5 and change "
                       f"what the network computes; set retrain.epochs above 0 to train them, or retrain.se: 0 to "
                       f"export the networks as the supernet trained them", filename, node, applied)
    if recipe.supernet_force and recipe.supernet is None:
        _refuse(("supernet_force",), "applies only with supernet (a run folder whose supernet this run reuses); "
                "set supernet (or pass --supernet RUN_DIR), or remove supernet_force", filename, node, applied)
    _schedule_checks(recipe, filename, node, applied)
    _distinct_members(s, filename, node, applied)
    _ignored_by_dataset(d, filename)
    for warning in ignored:
        _logger.warning(warning)
    _cutout_fits(d, filename, node, applied)
    _resized_fit(d, filename, node, applied)
    _split_fits(d, filename, node, applied)
    _names_fit(recipe, filename, node, applied)


# the longest name of a file or folder that file systems take (Linux's and macOS's NAME_MAX), in bytes
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096  # a whole path, its terminating NUL included (Linux's PATH_MAX)


def _unusable_path(value: str) -> str | None:
    """Why no file system takes the path ``value`` (a recipe's): a NUL character (the end of a path to the OS), or a
    character this system cannot write in a file name (a lone surrogate, or one outside its file name encoding);
    None when it has neither."""
    if "\0" in value:
        return "this path holds a NUL character (\\0), which no file or folder name can hold; check the path"
    try:
        os.fsencode(value)
    except UnicodeEncodeError as e:
        ch = value[e.start]
        what = ("a lone UTF-16 surrogate, no character" if 0xD800 <= ord(ch) <= 0xDFFF else
                f"which file names on this system ({sys.getfilesystemencoding()}) cannot hold")
        return f"this path holds {ch!r} (U+{ord(ch):04X}), {what}; check the path"
    return None


def _names_fit(recipe: Recipe, filename: str, node, applied) -> None:
    """Refuse a path (space, data.root, supernet, search.cost_table, export.dir) with a character no file system
    takes (:func:`_unusable_path`), a file or folder name longer than :data:`MAX_NAME_BYTES`, or longer as a whole
    than :data:`MAX_PATH_BYTES`: looking at it would stop the run with "embedded null byte" or "File name too long"
    naming no key."""
    data = recipe.model_dump()
    for keys in PATH_KEYS + (("export", "dir"),):
        value = _at(data, keys)
        unread = keys == ("data", "root") and recipe.data.dataset not in DATASETS_READING["root"]
        if not isinstance(value, str) or unread:  # a data.root that the dataset does not read: warned of, not read
            continue
        unusable = _unusable_path(value)
        if unusable is not None:
            _refuse(keys, unusable, filename, node, applied)
        long = next((part for part in Path(value).parts if len(os.fsencode(part)) > MAX_NAME_BYTES), None)
        if long is not None:
            shown = f"{long[:20]}...{long[-10:]}"
            _refuse(keys, f"the name {shown!r} in this path is {len(os.fsencode(long)):,} bytes long, more than file "
                    f"systems take ({MAX_NAME_BYTES}); check the path", filename, node, applied)
        if len(os.fsencode(value)) >= MAX_PATH_BYTES:
            _refuse(keys, f"this path is {len(os.fsencode(value)):,} bytes long, more than file systems take (Linux's "
                    f"{MAX_PATH_BYTES:,}, with its end); check the path", filename, node, applied)


# digits' images kept for testing (automl/train/data.py takes it from here), the rest being the training set
DIGITS_TEST_IMAGES = 360


def _training_items(d: DataConfig) -> tuple[int, str] | None:
    """How many training items the run splits into D_W and D_theta, and the key that sets that number, for the
    datasets whose size is known without reading them (digits, synthetic); None for the others."""
    if d.dataset == "digits":
        n, key = DIGITS_IMAGES - DIGITS_TEST_IMAGES, "data.limit_train"
    elif d.dataset == "synthetic":
        n, key = d.synthetic.num_train, "data.synthetic.num_train"
    else:
        return None
    if d.limit_train is not None and d.limit_train < n:
        return d.limit_train, "data.limit_train"
    return n, key


def _split_fits(d: DataConfig, filename: str, node, applied) -> None:
    """Refuse a split of the training set that leaves D_W or D_theta no item, where the set's size is known here
    (:func:`_training_items`): fewer than 2 items, or a data.theta_split count not below their number. The data's
    own check (automl/train/data.py) would refuse it when the run loads the data, naming no file or line."""
    known = _training_items(d)
    if known is None:
        return
    n, key = known
    if n < 2:
        keys = tuple(key.split("."))
        _refuse(keys, f"{n}: the {d.dataset} training set would have {n} item, too few to split into D_W and "
                f"D_theta (data.theta_split needs at least 2 training items); set {key} to 2 or more",
                filename, node, applied)
    if isinstance(d.theta_split, int) and d.theta_split >= n:
        keys = [("data", "theta_split")] + ([tuple(key.split("."))] if key != "data.limit_train" or
                                            d.limit_train is not None else [])
        shown = shortened(str(d.theta_split))
        _refuse_either(keys, f"data.theta_split ({shown}) holds out {shown} of the {n:,} items of the "
                       f"{d.dataset} training set, leaving none for D_W; use a fraction such as 0.5, or a count "
                       f"below {n}", filename, node, applied)


# the images of the datasets held in memory as one tensor, which data.image_size resizes whole when the run starts:
# digits' of one channel, synthetic's as data.synthetic says. The digits' count is known here without reading them;
# automl/train/data.py takes it from here and refuses bundled data of another size
DIGITS_IMAGES = 1797
# the most numbers such a resized dataset may hold: 2^31 (8 GiB of float32), as data.synthetic's own shape
MAX_RESIZED = 2**31


def _resized_fit(d: DataConfig, filename: str, node, applied) -> None:
    """Refuse a data.image_size that resizes a dataset held in memory (digits, synthetic) into more than
    :data:`MAX_RESIZED` numbers: the run would fail allocating it (or take all the machine's memory) at its start."""
    if d.image_size is None or d.dataset not in ("digits", "synthetic"):
        return
    images, channels = ((DIGITS_IMAGES, 1) if d.dataset == "digits" else
                        (d.synthetic.num_train + d.synthetic.num_test, d.synthetic.channels))
    n = images * channels * d.image_size ** 2
    if n > MAX_RESIZED:
        most = math.isqrt(MAX_RESIZED // (images * channels))
        what = (f"digits' {DIGITS_IMAGES:,} images" if d.dataset == "digits" else
                f"the synthetic dataset's {images:,} images (num_train + num_test) of {channels} channel"
                f"{'s' * (channels != 1)}")
        _refuse(("data", "image_size"), f"{d.image_size} resizes {what} to {n:.3g} numbers, more than 2^31 (8 GiB), "
                f"all held in memory; set data.image_size to at most {most}, or null for the native size",
                filename, node, applied)


def _distinct_members(s: SearchConfig, filename: str, node, applied) -> None:
    """Each member has its own epsilon or budget: two equal ones would search for the same network, and two
    epsilons equal to 6 significant digits would share an export folder (``eps-{epsilon:g}``,
    automl/pipeline/members.py). Not so for the random baseline (search.method random): each member draws its own
    network from its own seed (the run's seed + its index x (2**24 + 1)), exported as ``budget-<i>-<budget>`` or
    ``random-<i>``, so a budget may repeat there, as in search.random_budgets."""
    if s.method == "random":
        return
    for key, values, name in (("epsilons", s.epsilons, lambda v: f"{v + 0.0:g}"),  # -0.0 is 0 (eps-0)
                              ("budgets", s.budgets, lambda v: "null" if v is None else f"{v:.17g}")):
        first: dict[str, int] = {}
        for i, v in enumerate(values or []):
            j = first.setdefault(name(v), i)
            if j != i:
                why = (f"is given twice (item {j + 1}): the two members would search for the same network; remove "
                       f"one" if v == values[j] else f"equals item {j + 1} ({_shortest(values[j])}) to 6 significant "
                       f"digits, so both members would export to eps-{name(v)}; make them differ within 6 digits")
                _refuse(("search", key), f"item {i + 1} ({_shortest(v)}) {why}", filename, node, applied)


def _shortest(v: float | None) -> str:
    """An epsilon or budget in a message: the fewest significant digits (6 at least) that read back as the same
    float, so 0.1 shows as 0.1 (not 0.10000000000000001), and two values alike to 6 digits (0.1 and 0.1000001)
    show apart; null for an unconstrained budget."""
    if v is None:
        return "null"
    return next(t for n in range(6, 18) if float(t := f"{v:.{n}g}") == v or n == 17)


# data.* keys that only some datasets read: the datasets that read each
DATASETS_READING = {"root": ("cifar10", "imagefolder"), "download": ("cifar10",), "workers": ("imagefolder",),
                    "cutout": ("cifar10",), "synthetic": ("synthetic",)}


def _ignored_by_dataset(d: DataConfig, filename: str) -> None:
    """A warning for each data key set to another value than its default that the recipe's dataset does not read
    (a recipe written for cifar10 run with data.dataset=digits keeps its root; refusing it would make that override
    fail); of a section (data.synthetic), each of its keys that differs, named (a recipe.resolved.yaml, which writes
    every key, warns of the values its recipe set)."""
    for key, readers in DATASETS_READING.items():
        value, default = getattr(d, key), DataConfig.model_fields[key].get_default(call_default_factory=True)
        if value == default or d.dataset in readers:
            continue
        keys = [f"data.{key}.{k}" for k in type(value).model_fields if getattr(value, k) != getattr(default, k)] \
            if isinstance(value, BaseModel) else [f"data.{key}"]
        one = len(keys) == 1
        _logger.warning(f"warning: {filename}: {', '.join(keys)} appl{'ies' if one else 'y'} to dataset "
                        f"{' and '.join(readers)} only; dataset {d.dataset} ignores {'it' if one else 'them'}")


class _Ignored(NamedTuple):
    """A key that another setting of the recipe makes ignored: a warning, or refused where ``why`` is given."""

    ignored: Callable[[Any], bool]  # given the key's section: whether this recipe ignores the key
    setting: str  # a warning: the setting the key applies with; refused: the setting that ignores it
    why: str = ""  # refused: why that setting ignores the key
    note: str = ""  # a warning: what the recipe does instead, after the setting ("; ...")


_METHOD_1 = "Method 1 draws its paths from each member's own distribution, "


def _simultaneous(s: SearchConfig) -> bool:
    return s.method == "simultaneous"


def _method_1_epochs(s: SearchConfig) -> bool:
    """Method 1 steps θ after each W step, for search.weight_epochs epochs, and never reads search.theta_epochs
    (automl/pipeline/search_stages.py SimultaneousStage); one equal to weight_epochs says what it does (the paper's
    single T, as recipes/cifar10-method1.yaml writes it), so is no mistake to warn of."""
    return _simultaneous(s) and s.theta_epochs != s.weight_epochs


# keys a recipe may set that another of its settings makes ignored, in the order they are checked. A warning (a
# recipe written for a step schedule, run with cosine, keeps its decay); refused where the run would do otherwise
# than the key says: Method 1 (search.method simultaneous) draws every W step's paths from the member's own
# distribution (θ) and scores θ on the batch's statistics.
_IGNORED = {
    ("search", "weight_sampling"): _Ignored(_simultaneous, "search.method simultaneous",
                                            _METHOD_1 + "not by search.weight_sampling"),
    ("search", "inplace_distill"): _Ignored(_simultaneous, "search.method simultaneous",
                                            _METHOD_1 + "so no step has the largest path to distil from"),
    ("search", "theta_bn"): _Ignored(_simultaneous, "search.method simultaneous",
                                     _METHOD_1 + "and scores θ with each batch's own BatchNorm statistics"),
    ("search", "theta_bn_batches"): _Ignored(lambda s: s.theta_bn != "recalibrate", "search.theta_bn: recalibrate"),
    ("search", "theta_epochs"): _Ignored(_method_1_epochs, "search.method importance_sampling or separate",
                                         note="; Method 1 (simultaneous) steps θ after each W step, for "
                                         "search.weight_epochs epochs"),
    **{(sec, key): _Ignored(lambda c: c.schedule != "step", f"{sec}.schedule: step")
       for sec in ("optim", "retrain") for key in ("decay_rate", "decay_epochs")},
    **{(sec, "warmup_lr"): _Ignored(lambda c: c.warmup_epochs == 0, f"{sec}.warmup_epochs above 0")
       for sec in ("optim", "retrain")},
    ("optim", "nesterov"): _Ignored(lambda c: c.name != "sgd", "optim.name: sgd"),
    ("optim", "momentum"): _Ignored(lambda c: c.name == "adamw", "optim.name sgd, rmsprop or rmsproptf"),
    ("retrain", "momentum"): _Ignored(lambda c: c.optimizer == "adamw", "retrain.optimizer sgd, rmsprop or rmsproptf"),
    **{("retrain", key): _Ignored(lambda c: c.optimizer not in ("rmsprop", "rmsproptf"), "retrain.optimizer rmsprop "
                                  "or rmsproptf") for key in ("rmsprop_eps", "rmsprop_alpha")},
}


def _ignored_keys(recipe: Recipe, filename: str, node, applied) -> list[str]:
    """Each key of :data:`_IGNORED` the recipe sets to another value than its default while another of its
    settings makes it ignored: refused (its override, or its line), or a warning returned, which the caller prints
    once the recipe's other checks pass (a recipe.resolved.yaml, which writes every key, warns of the values its
    recipe set)."""
    warnings, warned = [], set()
    random = recipe.search.method == "random"
    for (section, key), (ignored, setting, why, note) in _IGNORED.items():
        config = getattr(recipe, section)
        if not _user_set(config, key) or not ignored(config):
            continue
        if random and section == "search" and key in RANDOM_IGNORES:  # never read there: _ignored_by_random says so
            continue
        if why:
            default = type(config).model_fields[key].default
            shown = str(default).lower() if isinstance(default, bool) else default
            _refuse((section, key), f"does not apply to {setting}: {why}; remove {section}.{key} (default {shown}), "
                    f"or choose another {setting.split()[0]}", filename, node, applied)
        warned.add((section, key))
        warnings.append(f"warning: {filename}: {section}.{key} is set, but applies only with {setting}{note}; this "
                        f"recipe ignores it")
    return warnings + _ignored_by_random(recipe.search, filename, warned, recipe.optim)


def _user_set(config: BaseModel, key: str) -> bool:
    """Whether the recipe sets ``key`` of ``config`` (its section) to another value than its default."""
    return key in config.model_fields_set and getattr(config, key) != type(config).model_fields[key].default


# search keys the random baseline (search.method random) never reads: it trains no supernet and no θ, and draws each
# member's network on the raw cost table (automl/pipeline/search_stages.py SampleStage; automl/pipeline/plan.py
# _sampled_problem; automl/search/_registry.py's random searcher, which takes neither search.lam nor θ's settings)
RANDOM_IGNORES = ("lam", "weight_epochs", "theta_epochs", "theta_lr", "theta_min", "utility", "normalize_costs",
                  "supernets", "weight_sampling", "inplace_distill", "theta_bn", "theta_bn_batches", "nan_policy",
                  "max_bad_steps")


def _ignored_by_random(s: SearchConfig, filename: str, warned: set, optim: BaseModel) -> list[str]:
    """The warnings of a random-baseline recipe that sets keys it never reads (:data:`RANDOM_IGNORES`, and the
    supernet's ``optim`` section: one line for them all, less those ``warned`` of already), and search.epsilons
    beside search.random_budgets, which give the members instead (without them epsilons give only the number of
    members, its length)."""
    if s.method != "random":
        return []
    out = []
    if s.random_budgets is not None and s.epsilons is not None and _user_set(s, "epsilons"):
        out.append(f"warning: {filename}: search.epsilons is set, but search.method random draws one network per "
                   f"item of search.random_budgets; this recipe ignores it")
    keys = [f"search.{k}" for k in RANDOM_IGNORES if ("search", k) not in warned and _user_set(s, k)]
    keys += [f"optim.{k}" for k in type(optim).model_fields if ("optim", k) not in warned and _user_set(optim, k)]
    if keys:
        one = len(keys) == 1
        out.append(f"warning: {filename}: {', '.join(keys)} {'is' if one else 'are'} set, but search.method random "
                   f"trains no supernet and no θ (it draws each member's network uniformly, within its budget if "
                   f"any); this recipe ignores {'it' if one else 'them'}")
    return out


def _cutout_fits(d: DataConfig, filename: str, node, applied) -> None:
    """Refuse a Cutout square larger than the images it is cut from (cifar10's, data.image_size or 32 pixels)."""
    if d.dataset != "cifar10" or not d.cutout:
        return
    side = d.image_size or 32
    if d.cutout > side:
        cut = shortened(str(d.cutout))
        _refuse_either([("data", "cutout"), ("data", "image_size")],
                       f"data.cutout ({cut}) is larger than the images ({side} x {side} pixels"
                       f"{'' if d.image_size else ', cifar10 at its native size'}) it is cut from; set data.cutout "
                       f"to at most {side}{f' or data.image_size to at least {cut}' * bool(d.image_size)} "
                       f"(ASNG-NAS cuts 16 x 16 from 32 x 32 CIFAR-10), or data.cutout: 0 for no Cutout",
                       filename, node, applied)


def _schedule_checks(recipe: Recipe, filename: str, node, applied) -> None:
    """The optim and retrain learning-rate schedules: a floor above the initial rate, and a step schedule
    whose first decay comes after the last epoch, are refused; a warm-up as long as the training is warned
    about (a short smoke run of a recipe with a warm-up is one)."""
    sections = (("optim", recipe.optim, ("search", "weight_epochs"), recipe.search.weight_epochs),
                ("retrain", recipe.retrain, ("retrain", "epochs"), recipe.retrain.epochs))
    if recipe.search.method == "random":  # it trains no supernet: optim is not read
        sections = sections[1:]
    for name, sec, epochs_key, epochs in sections:
        if sec.min_lr > sec.lr:
            _refuse_either([(name, "min_lr"), (name, "lr")],
                           f"{name}.min_lr ({sec.min_lr:g}) is above {name}.lr ({sec.lr:g}): the floor of the "
                           f"learning rate must be at most its initial value (a cosine schedule would rise "
                           f"to it); lower {name}.min_lr or raise {name}.lr", filename, node, applied)
        # the warm-up's rate where it is the larger (it is used only with warm-up epochs)
        rate = "warmup_lr" if sec.warmup_epochs > 0 and sec.warmup_lr > sec.lr else "lr"
        if getattr(sec, rate) * sec.weight_decay >= 1:
            value = getattr(sec, rate)
            _refuse_either([(name, "weight_decay"), (name, rate)],
                           f"{name}.{rate} ({value:g}) x {name}.weight_decay ({sec.weight_decay:g}) is "
                           f"{value * sec.weight_decay:g}: each step takes that share of every weight away, all of "
                           f"it or more, so the weights go to 0 or diverge; lower {name}.weight_decay or {name}.{rate} "
                           f"(the recipes' product is below 1e-4)", filename, node, applied)
        if sec.schedule == "step" and epochs > 0 and sec.decay_epochs >= epochs:
            ep = ".".join(epochs_key)
            _refuse_either([(name, "decay_epochs"), epochs_key, (name, "schedule")],
                           f"the step schedule ({name}.schedule: step) multiplies the learning rate by "
                           f"{name}.decay_rate every {name}.decay_epochs ({sec.decay_epochs:g}) epochs, but {ep} "
                           f"is {epochs}: it would never decay; set {name}.decay_epochs below {ep}, or "
                           f"{name}.schedule: constant if a constant rate is meant", filename, node, applied)
        if 0 < epochs <= sec.warmup_epochs:
            ep = ".".join(epochs_key)
            _logger.warning(f"warning: {filename}: {name}.warmup_epochs ({sec.warmup_epochs}) is not below {ep} "
                            f"({epochs}): the learning rate only rises through the warm-up and never reaches "
                            f"{name}.lr, nor decays; lower {name}.warmup_epochs below {ep} for the schedule the "
                            f"recipe describes")


def _refuse_either(candidates: list[tuple[str, ...]], msg: str, filename: str, node, applied) -> None:
    """:func:`_refuse` at the one of ``candidates`` (keys that together make a mistake) that the last override
    among them set; without one, at the first the file writes (else the first)."""
    for keys, _ in reversed(applied):
        for c in candidates:
            if c[: len(keys)] == keys:
                return _refuse(c, msg, filename, node, applied)
    written = [c for c in candidates if _line_of(node, c) not in (None, _line_of(node, c[:-1]))]
    return _refuse((written or candidates)[0], msg, filename, node, applied)


def _refuse(keys: tuple[str, ...], msg: str, filename: str, node, applied) -> None:
    """Stop on a key that a cross-check refuses: its override, or its line in the file."""
    where = _override_for(keys, applied) or ""
    raise RecipeError(f"{where}{msg}", filename, ".".join(keys), None if where else _line_of(node, keys))


def _resolve_paths(data: dict, base: Path, paths: tuple[tuple[str, ...], ...] = PATH_KEYS) -> dict:
    for keys in paths:
        cur = _at(data, keys[:-1])
        if isinstance(cur, dict) and isinstance(cur.get(keys[-1]), str) and cur[keys[-1]]:
            cur[keys[-1]] = str(_resolve(cur[keys[-1]], base))
    return data


def _at(data: Any, keys: tuple) -> Any:
    """The value at ``keys`` inside nested mappings, or None."""
    for k in keys:
        data = data.get(k) if isinstance(data, dict) else None
    return data


def _resolve_override(keys: tuple[str, ...], value: Any) -> Any:
    """An override's paths (``space=x``, ``search.cost_table=t.json``, ``search={cost_table: t.json}``) are
    relative to the current folder: what a user typing them means."""
    if keys in PATH_KEYS:
        return str(_resolve(value, Path.cwd())) if isinstance(value, str) and value else value
    below = tuple(k[len(keys):] for k in PATH_KEYS if k[: len(keys)] == keys)
    return _resolve_paths(value, Path.cwd(), below) if below and isinstance(value, dict) else value


# -------------------------------------------------------------------------------------------- overrides


def _shown(item: str) -> str:
    """An override as its messages show it: on one line, and at most 100 characters (a value of 100,000)."""
    item = item if item.isprintable() else repr(item)[1:-1]
    return item if len(item) <= 100 else item[:97] + "..."


def _parse_override(given: str, filename: str) -> tuple[tuple[str, ...], Any]:
    """``search.epsilons=[0,0.5]`` -> (("search", "epsilons"), [0, 0.5]); the key must exist, a section is set
    whole only to a mapping, and a mapping gives each key once (as in a recipe file)."""
    key, sep, text = given.partition("=")
    key, item = key.strip(), _shown(given)
    if not sep or not key:
        raise RecipeError(f"override '{item}': expected key.path=value, for example search.lam=4", filename)
    # a space or tab around the value (a shell script's "search.lam=4<TAB>") is no part of it; a value of
    # several lines (a block list) keeps its first line's indentation
    text = text.strip() if len(text.strip().splitlines()) <= 1 else text.rstrip()
    try:
        _check_depth(text, filename, f"override {item}: the value ", _shown(key))
        if text:
            composed = yaml.compose(text, Loader=yaml.SafeLoader)
            _check_binary(composed, filename, key.split("."), f"override {item}: ")
            _check_yaml11(composed, filename, key.split("."), f"override {item}: ")
        dup, value = _compose_and_load(text) if text else (None, "")
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or e
        if "unhashable key" in str(problem):  # {[a]: 1}: composes, but cannot be a mapping
            _, bad = _non_scalar_key(yaml.compose(text, Loader=yaml.SafeLoader))
            raise RecipeError(f"override {item}: {_NOT_A_NAME.format(kind=_node_kind(bad))}", filename,
                              _shown(key)) from None
        raise RecipeError(f"override {item}: cannot parse the value {_got(text)} as YAML: "
                          f"{_override_hint(e, key, text)}", filename, _shown(key)) from None
    except _UNBUILDABLE as e:  # composes, but a value cannot be built: 5,000 digits, a date with month 13
        _, bad, why = _unbuildable(yaml.compose(text, Loader=yaml.SafeLoader))
        msg = _cannot_build(bad.value, bad.tag, why) if bad is not None else f"cannot build the value ({e})"
        raise RecipeError(f"override {item}: {msg}", filename, _shown(key)) from None
    keys = tuple(key.split("."))
    if "" in keys:
        raise RecipeError(f"override {item}: the key {_shown(key)} has an empty name (a dot at its start or end, "
                          f"or two together); write names joined by single dots, such as search.lam=4", filename)
    model: Any = Recipe
    for i, k in enumerate(keys):
        fields = model.model_fields
        if k not in fields:
            bad = _shown(".".join(keys[: i + 1]))
            close = _closest(k, fields)
            hint = (f"; did you mean {'.'.join(keys[:i] + (close,))}?" if close
                    else f"; known keys here: {', '.join(fields)}")
            raise RecipeError(f"override {item}: unknown key {bad}{_invisible(k)}{hint}", filename)
        ann = fields[k].annotation
        if i == len(keys) - 1:
            _check_whole_section(keys, ann, value, item, filename)
        if typing.get_origin(_container(ann)) is dict:
            break  # a free-form mapping (space_args): any key below is fine
        model = None if _container(ann) is not None else _model_of(ann)
        if model is None and i < len(keys) - 1:
            raise RecipeError(f"override {item}: {'.'.join(keys[: i + 1])} is a value, not a section",
                              filename)
    if dup is not None:
        raise RecipeError(f"override {item}: duplicate key {dup[0][-1]} in the mapping; give each key once",
                          filename, _dotted(keys + dup[0]))
    return keys, value


def _override_hint(e: yaml.YAMLError, key: str, text: str) -> str:
    """What a YAML syntax error in an override's value means, and how to fix it (:func:`_syntax_hint`, as in a
    recipe file, with the value's own wording where a file's would mislead)."""
    problem, context = str(getattr(e, "problem", None) or e), getattr(e, "context", None)
    start, after_quote = text[:1], _after_quote(problem, getattr(e, "problem_mark", None))
    if after_quote:
        hint = after_quote
    elif problem.startswith("found character '\\t'"):
        hint = "the value holds a tab character, which YAML does not allow there: replace it with a space, or quote it"
    elif problem.startswith("expected '<document start>'") and start == "%":
        hint = "YAML reads a value that starts with % as a directive: quote the value ('%...')"
    elif problem.startswith("found undefined alias") and start == "*":
        hint = "YAML reads a value that starts with * as an alias of an anchor, and an override has none: quote it"
    elif "'<stream end>'" in problem:
        hint = ("the value ends before what it opened is closed: close each '[' with ']' and each '{' with '}', "
                "or quote the value if it is text")
    elif "'<document end>'" in problem or "'<document start>'" in problem:
        hint = "YAML reads --- and ... as the start and end of a document, not as a value: quote the value"
    elif problem == "mapping values are not allowed here":
        hint = (f"YAML reads ': ' as a key's colon: quote the value, or give a mapping in braces "
                f"({key}={{KEY: VALUE}})")
    else:
        hint = (_syntax_hint(problem, context, None) or _flow_or_tag_hint(problem, context)
                or f"{problem}; check the value, or quote it if it is text")
    if "quote" in hint and text.isprintable() and not set("'\"") & set(text):
        hint += f"; on the command line, in double quotes: \"{key}='{text}'\""
    return hint


def _compose_and_load(text: str) -> tuple[tuple[tuple, int, int] | None, Any]:
    """The first duplicate key in ``text`` (:func:`_first_duplicate`) and the value :func:`yaml.safe_load`
    builds from it, composed once. Duplicates are looked for first: building a ``<<`` merge rewrites the
    node's keys."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return _first_duplicate(node), None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def _check_whole_section(keys: tuple[str, ...], ann: Any, value: Any, item: str, filename: str) -> None:
    """An override of a whole section (``search``, ``data.synthetic``) or free-form mapping (``space_args``)
    gives a mapping, or null where the recipe takes null (``ranking=null``): anything else is refused here,
    whatever comes after it, so that ``search=1 search.lam=4`` is not read as ``search={lam: 4}`` (which drops
    the recipe's other search keys)."""
    if _model_of(ann) is None and typing.get_origin(_container(ann)) is not dict:
        return  # a value, not a section
    nullable = type(None) in typing.get_args(ann)
    if isinstance(value, dict) or (value is None and nullable):
        return
    name = ".".join(keys)
    null = f", or {name}=null to turn it off" if nullable else ""
    raise RecipeError(f"override {item}: {name} is a section, so its value must be a mapping of keys to values "
                      f"(got {_got(value)}); set one key inside it ({name}.KEY=VALUE) or give the section "
                      f"whole ({name}={{KEY: VALUE}}){null}", filename, name)


def _set(data: dict, keys: tuple[str, ...], value: Any, item: str, filename: str, node, applied) -> dict:
    """Set ``keys`` to ``value`` inside ``data``: a section that is null or absent starts empty, one that is not
    a mapping (``search: 1`` in the file) is an error, and a mapping that replaces one with keys it lacks
    (``search={lam: 4}``) is warned about. Each mapping on the way is copied, so a mapping the file shares
    between two keys with a YAML alias changes under the key the override names only."""
    cur = data
    for i, k in enumerate(keys[:-1]):
        below = cur.get(k)
        if below is not None and not isinstance(below, dict):
            path = keys[: i + 1]
            where = _override_for(path, applied)
            origin = f"{where.removesuffix(': ')} set it to {_got(below)}" if where else f"it is {_got(below)}"
            raise RecipeError(f"override {item}: {_dotted(path)} is not a mapping of keys to values ({origin}), so "
                              f"{_dotted(keys)} cannot be set inside it; make {_dotted(path)} a mapping", filename,
                              _dotted(path), None if where else _line_of(node, path))
        cur[k] = dict(below or {})
        cur = cur[k]
    before = cur.get(keys[-1])
    dropped = [str(k) for k in before if k not in value] if isinstance(before, dict) and isinstance(value, dict) else []
    if dropped:
        name = _dotted(keys)
        one = len(dropped) == 1
        _logger.warning(f"warning: {filename}: override {item} replaces all of {name}, so the {', '.join(dropped)} "
                        f"set before it {'is' if one else 'are'} dropped (defaults apply); to keep "
                        f"{'it' if one else 'them'}, set single keys instead ({name}.KEY=VALUE)")
    cur[keys[-1]] = value
    return data


def _override_for(path: tuple, applied) -> str | None:
    for keys, item in reversed(applied):
        if tuple(path[: len(keys)]) == keys:
            return f"override {item}: "
    return None


# ------------------------------------------------------------------------------------- error reporting


def _model_of(ann: Any) -> type[BaseModel] | None:
    """The recipe section class behind an annotation (unwrapping Optional), or None."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for a in typing.get_args(ann):
        m = _model_of(a)
        if m is not None:
            return m
    return None


def _container(ann: Any) -> Any:
    """``list[...]``/``dict[...]`` behind an annotation (unwrapping Optional), or None."""
    if typing.get_origin(ann) in (list, dict):
        return ann
    for a in typing.get_args(ann):
        if typing.get_origin(a) in (list, dict):
            return a
    return None


def _schema_path(loc: tuple, err_type: str) -> tuple:
    """Keep the parts of a pydantic ``loc`` that are keys or indices; drop union-member tags."""
    out: list = []
    cur: Any = Recipe
    for part in loc:
        if isinstance(cur, type) and issubclass(cur, BaseModel):
            out.append(part)
            f = cur.model_fields.get(part) if isinstance(part, str) else None
            ann = f.annotation if f is not None else None
            cur = _container(ann) or _model_of(ann) or ann
        elif _container(cur) is not None:
            container = _container(cur)
            if (typing.get_origin(container) is list) != isinstance(part, int):
                continue  # a tag, not an index or key
            out.append(part)
            cur = typing.get_args(container)[-1]
        # else: a union-member tag such as "float" or "literal['auto']"
    return tuple(out)


def _section_of(path: tuple) -> type[BaseModel] | None:
    """The recipe section holding the key at ``path``, or None (a free-form mapping such as space_args)."""
    model: type[BaseModel] | None = Recipe
    for p in path[:-1]:
        model = _model_of(model.model_fields[p].annotation) if p in model.model_fields else None
        if model is None:
            break
    return model


def _known_keys_hint(path: tuple) -> str:
    """"; did you mean search.lam?" or "; known keys here: ..." for an unknown key at ``path``."""
    model = _section_of(path)
    if model is None:
        return ""
    close = _closest(str(path[-1]), model.model_fields)
    return (f"; did you mean {'.'.join(map(str, path[:-1] + (close,)))}?" if close
            else f"; known keys here: {', '.join(model.model_fields)}")


def _closest(name: str, names) -> str | None:
    """The name of ``names`` that ``name`` was meant to be: the same but for case (``SEED``, ``Search``), else
    the closest spelling (difflib, ignoring case and invisible characters); None when none is close."""
    seen = "".join(c for c in name if not _is_invisible(c)).lower()
    lower = {n.lower(): n for n in names}
    if seen in lower:
        return lower[seen]
    close = difflib.get_close_matches(seen, list(lower), n=1)
    return lower[close[0]] if close else None


def _is_invisible(c: str) -> bool:
    """A character that does not show as itself in a message: a control or format character (U+200B, a byte-order
    mark), or a space other than " " (a no-break space, a tab)."""
    return not c.isprintable() or (c.isspace() and c != " ")


def _invisible(name: str) -> str:
    """" (it holds the invisible character U+200B ZERO WIDTH SPACE: retype it)" for a key that holds one (pasted
    with it: a no-break space, a byte-order mark), whose messages would otherwise read as the key itself."""
    odd = next((c for c in name if _is_invisible(c)), None)
    if odd is None:
        return ""
    name = unicodedata.name(odd, "")
    return f" (it holds the invisible character U+{ord(odd):04X}{' ' * bool(name)}{name}: retype it)"


_YAML_READS = {"tag:yaml.org,2002:int": "a number", "tag:yaml.org,2002:float": "a number",
               "tag:yaml.org,2002:null": "null", "tag:yaml.org,2002:timestamp": "a date"}


def _not_a_name(path: tuple, written: str, reads: str) -> str:
    """The message for a key YAML reads as a value (``1:``, ``yes:``, ``~:``), worded as an unknown key."""
    hint = _known_keys_hint(path)
    if not hint:
        hint = f"; quote it ('{written}') if it is a name"
    return f"unknown key (YAML reads {written} as {reads}, not a name){hint}"


def _check_key_names(node, filename: str, prefix: tuple = (), seen: set[int] | None = None) -> None:
    """Every key in the file is a name: ``1:``, ``yes:`` or ``~:`` is a number, a boolean or null to YAML. A node
    an alias repeats is checked once (``seen``): a file of nested aliases is small, what it stands for is not."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _check_key_names(v, filename, prefix + (i,), seen)
    if not isinstance(node, yaml.MappingNode):
        return
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.tag not in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"):
            path = prefix + (k.value,)
            reads = _YAML_READS.get(k.tag) or (str(yaml.safe_load(k.value)).lower() if k.tag.endswith(":bool")
                                               else "a value")
            raise RecipeError(_not_a_name(path, k.value, reads), filename, _dotted(path), k.start_mark.line + 1)
        _check_key_names(v, filename, prefix + (k.value,), seen)


def _check_override_key_names(value: Any, keys: tuple, item: str, filename: str) -> None:
    """As :func:`_check_key_names`, for a mapping given on the command line (``search={1: 2}``)."""
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_override_key_names(v, keys + (i,), item, filename)
    if not isinstance(value, dict):
        return
    for k, v in value.items():
        if not isinstance(k, str):
            written = _got(k)
            reads = "a number" if isinstance(k, (int, float)) and not isinstance(k, bool) else written
            raise RecipeError(f"override {item}: {_dotted(keys + (written,))}: "
                              f"{_not_a_name(keys + (written,), written, reads)}", filename)
        if v is None and ":" in k:  # {lam:4}: YAML needs a space after the colon
            name, _, rest = k.partition(":")
            raise RecipeError(f"override {item}: YAML reads {_got(k)} as one key without a value; put a space "
                              f"after the colon ({name}: {rest})", filename, _dotted(keys + (k,)))
        _check_override_key_names(v, keys + (k,), item, filename)


def _got(v: Any) -> str:
    try:
        s = repr(v) if isinstance(v, str) else yaml.safe_dump(v, default_flow_style=True).strip()
    except ValueError:  # an integer of more digits than Python writes out (0xfff... of 6,000 digits)
        return "a number too large to show"
    if s.endswith("\n..."):
        s = s[:-4]
    s = s.removesuffix("...").strip()
    return s if len(s) <= 60 else s[:57] + "..."


def _message(err: dict, path: tuple, written: str | None = None) -> str:
    """The message for one of pydantic's errors at ``path``; ``written``: the value as the file or the override wrote
    it (:func:`_written`), shown where YAML read it as something else (``no`` as false)."""
    t, ctx, inp = err["type"], err.get("ctx") or {}, err.get("input")
    got = _got_as(t, inp, written)
    if t == "extra_forbidden":
        name, colon, rest = str(path[-1]).partition(":")
        if colon and rest and not rest.startswith(" "):  # {lam:4}: YAML needs a space after the colon
            return f"unknown key (YAML reads {path[-1]} as one key: put a space after the colon, {name}: {rest})"
        return f"unknown key{_invisible(str(path[-1]))}{_known_keys_hint(path)}"
    if t == "missing":
        return "required key is missing"
    bounds = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"),
              "less_than_equal": ("<=", "le"), "less_than": ("<", "lt")}
    if t in bounds:
        op, k = bounds[t]
        bound = ctx.get(k)
        return f"must be {op} {bound:g}{got}" if isinstance(bound, float) else f"must be {op} {bound}{got}"
    if t == "literal_error":
        choices = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        quote = (f"; YAML 1.1 reads yes, no, on and off as booleans: quote a word meant as text ('{written}')"
                 if isinstance(inp, bool) and written is not None and written.lower() not in ("true", "false") else "")
        return f"must be one of {choices}{got}{quote}"
    simple = {
        "int_type": "must be an integer", "int_parsing": "must be an integer",
        "int_from_float": "must be an integer", "float_type": "must be a number",
        "float_parsing": "must be a number", "bool_type": "must be true or false",
        "bool_parsing": "must be true or false", "string_type": "must be a string",
        "list_type": "must be a list", "dict_type": "must be a mapping of keys to values",
        "model_type": "must be a mapping of keys to values", "model_attributes_type":
            "must be a mapping of keys to values", "finite_number": "must be a finite number",
    }
    if t in simple:
        return simple[t] + got + _read_otherwise(t, inp, written)
    if t == "too_short":
        return ("must not be empty" if ctx.get("min_length") == 1 else
                f"needs at least {ctx.get('min_length')} items") + got
    if t == "string_too_short":
        return "must not be empty"
    if t == "string_too_long":
        return (f"must be at most {ctx.get('max_length')} characters (it names the run's folder); "
                f"shorten it (got {len(inp)})" if isinstance(inp, str) else err["msg"] + got)
    if t == "string_pattern_mismatch":
        if isinstance(inp, str) and re.fullmatch(r"[A-Za-z0-9_.-]+", inp):
            return (f"must start with a letter, a digit or '_'{got}: it names the run's folder runs/<name>-<time>, "
                    f"which a leading '.' hides and a leading '-' turns into an option in a shell command; rename "
                    f"it, e.g. to {inp.lstrip('.-') or 'run'}")
        return f"may contain only letters, digits, '_', '.' and '-'{got}"
    if t == "value_error":
        return str(err["msg"]).removeprefix("Value error, ") + got
    return err["msg"] + got


def _got_as(t: str, inp: Any, written: str | None) -> str:
    """`` (got ...)`` for a message: the value as YAML read it, or as written (``written``) where the key takes
    text (``name: 0x1F``, which :func:`_read_otherwise` then says YAML reads as 31) or a word (``search.method: on``,
    which YAML reads as true); a number setting given ``yes`` says it got true, which is why it is no number."""
    shown = _got(inp)
    if written is None or isinstance(inp, str) or written.strip().lower() in ("", shown.lower()):
        return f" (got {shown})"
    if t == "string_type":
        return f" (got {_shown(written)})"
    if t == "literal_error" and (inp is None or isinstance(inp, (bool, list))):
        return f" (got {_shown(written)}, which YAML reads as {shown})"
    return f" (got {shown})"


def _read_otherwise(t: str, inp: Any, written: str | None = None) -> str:
    """How to write what a value YAML read as another type meant: a name of digits, an empty section, lam:4;
    ``written``: the value as written (:func:`_got_as` shows it, and this what YAML read)."""
    as_read = f" ({_got(inp)})" if written is not None and written.strip().lower() != _got(inp).lower() else ""
    if t == "string_type" and not isinstance(inp, (str, list, dict)) and inp is not None:
        kind = ("a boolean" if isinstance(inp, bool) else "a date" if isinstance(inp, datetime.date)
                else "a number")
        return f"; YAML reads it as {kind}{as_read}: put it in quotes to keep it as written"
    if t == "string_type" and isinstance(inp, list) and as_read:  # name=-: a list of one null item
        dash = " (a lone - or '- ' starts a list item)" if written.lstrip().startswith("-") else ""
        return f"; YAML reads it as a list{as_read}{dash}: put it in quotes to keep it as written"
    if t in ("dict_type", "model_type", "model_attributes_type"):
        if inp is None:
            return "; an empty section: give it a key, or remove it for the defaults"
        name, colon, rest = inp.partition(":") if isinstance(inp, str) else ("", "", "")
        if colon and rest and not rest.startswith(" ") and name.isidentifier():
            return f"; YAML needs a space after the colon ({name}: {rest})"
    return ""


def _null_hint(path: tuple, inp: Any) -> str:
    """For ``None`` where the key takes null: YAML writes null ``null`` or ``~``, and reads None as text."""
    if not isinstance(inp, str) or inp.strip().lower() != "none" or not path or not isinstance(path[-1], str):
        return ""
    model = _section_of(path)
    field = model.model_fields.get(path[-1]) if model is not None else None
    if field is None or type(None) not in typing.get_args(field.annotation):
        return ""
    return f"; YAML's null is null or ~ (it reads {inp.strip()} as text): write null"


# number keys whose 0 turns their feature off, where null does not (null is no number): what 0 means there, told with
# "must be a number (got null)" (retrain.se=null gave no hint that 0 means no squeeze-and-excitation)
ZERO_MEANS = {("retrain", "se"): "no squeeze-and-excitation", ("retrain", "label_smoothing"): "no label smoothing"}


def _zero_hint(path: tuple, inp: Any) -> str:
    """For null at a key of :data:`ZERO_MEANS`: "; write 0 for no squeeze-and-excitation"."""
    means = ZERO_MEANS.get(tuple(path)) if inp is None else None
    return f"; write 0 for {means}" if means else ""


def _recipe_error(e: ValidationError, filename: str, node, applied) -> RecipeError:
    groups: dict[tuple, list[dict]] = {}
    for err in e.errors(include_url=False):
        groups.setdefault(_schema_path(tuple(err["loc"]), err["type"]), []).append(err)
    lines: list[tuple[str, int | None, str, str]] = []
    for path, errs in groups.items():
        msgs: list[str] = []
        written = _written(node, path, applied)
        for err in errs:
            m = _message(err, path, written)
            if m not in msgs:
                msgs.append(m)
        if len(msgs) > 1:  # a union: "must be an integer (got x) or must be ..." -> one message
            got = _got_as(errs[0]["type"], errs[0].get("input"), written)
            msgs = [" or ".join(m.removesuffix(got) for m in msgs) + got]
        msgs[0] += _null_hint(path, errs[0].get("input")) + _zero_hint(path, errs[0].get("input"))
        key = _dotted(path)
        ov = _override_for(path, applied)
        if ov and msgs[0].endswith("put it in quotes to keep it as written") and written is not None and \
                any(keys == path for keys, _ in applied):  # the shell takes off quotes of its own
            msgs[0] += f"; on the command line, in double quotes: \"{key}='{written}'\""
        line = None if ov else _line_of(node, path, missing=errs[0]["type"] == "missing")
        lines.append((key, line, (ov or "") + msgs[0], ov or ""))
    lines.sort(key=lambda x: (x[1] is None, x[1] or 0))
    key, line, msg, _ = lines[0]
    err = RecipeError(msg, filename, key or None, line)
    if len(lines) > 1:
        text = "\n".join(str(RecipeError(m, filename, k or None, ln)) for k, ln, m, _ in lines)
        err.args = (f"{filename}: {len(lines)} errors in the recipe:\n{text}",)
    err.errors = [(k, ln, m) for k, ln, m, _ in lines]  # type: ignore[attr-defined]
    return err


def _written(node, path: tuple, applied) -> str | None:
    """The value at ``path`` as its override (the last that set it) or the recipe file wrote it, where that is one
    plain value (``no``, ``~``, ``0x1F``; an override's whole value: ``name=-``); None otherwise."""
    for keys, item in reversed(applied):
        if tuple(path[: len(keys)]) == keys:
            text = item.partition("=")[2].strip()
            if tuple(path) == keys:
                return text
            try:
                return _plain_at(yaml.compose(text, Loader=yaml.SafeLoader), path[len(keys):])
            except yaml.YAMLError:  # the override as shown, shortened
                return None
    return _plain_at(node, path)


def _plain_at(node, path: tuple) -> str | None:
    """The text of the plain (unquoted) scalar at ``path`` in the composed YAML ``node``, or None."""
    for part in path:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return None
    return node.value if isinstance(node, yaml.ScalarNode) and node.style is None else None


def _dotted(path: tuple) -> str:
    """("search", "epsilons", 1) -> "search.epsilons[1]"."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def file_line(recipe: Recipe, path: tuple[str, ...]) -> int | None:
    """The line of the key at ``path`` in the recipe's file when the recipe's value there is the file's; None
    when it came from a command-line override, or the recipe has no file. Reads the file again: for messages."""
    return _file_entry(recipe, path)[0]


def file_value(recipe: Recipe, path: tuple[str, ...]) -> Any:
    """The value at ``path`` as the recipe's file writes it (a path as written, relative to the recipe's folder,
    before it is made absolute) when the recipe's value there is the file's (:func:`file_line`); else None."""
    return _file_entry(recipe, path)[1]


def overridden(recipe: Recipe) -> bool:
    """Whether command-line overrides (``load_recipe``'s) set any of the recipe's values."""
    return bool(recipe._overrides)


def override_of(recipe: Recipe, path: tuple[str, ...]) -> str | None:
    """The command-line override, as typed (shortened as messages show one), that set the value at ``path``: the last
    one of that key or of a section above it (``search={...}``); None when no override set it."""
    return next((item for keys, item in reversed(recipe._overrides) if tuple(path[:len(keys)]) == keys), None)


def _file_entry(recipe: Recipe, path: tuple[str, ...]) -> tuple[int | None, Any]:
    """(:func:`file_line`, :func:`file_value`) of ``path``."""
    if recipe.source is None:
        return None, None
    try:
        text = Path(recipe.source).read_text(encoding="utf-8")
        node, data, theirs = _file_view(text, recipe.base_dir)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):  # the file changed since it was loaded
        return None, None
    ours: Any = recipe.model_dump()
    for k in path:
        data = data.get(k) if isinstance(data, dict) else None
        ours = ours.get(k) if isinstance(ours, dict) else None
        theirs = theirs.get(k) if isinstance(theirs, dict) else None
    written = data
    if tuple(path) in PATH_KEYS and isinstance(data, str) and data:  # the file's relative to it, the recipe's resolved
        data = str(_resolve(data, recipe.base_dir))
    same = data == ours or (theirs is not None and theirs == ours)
    return (_line_of(node, path), written) if data is not None and same else (None, None)


@functools.lru_cache(maxsize=4)
def _file_view(text: str, base: Path) -> tuple[Any, Any, dict | None]:
    """A recipe file's ``text`` composed, loaded, and as read (:func:`_as_read`), kept for the next lookup of
    the same text: one refusal may look up several keys. Callers only read what it returns."""
    node, data = yaml.compose(text, Loader=yaml.SafeLoader), yaml.safe_load(text)
    return node, data, _as_read(data, base)


def _as_read(data: Any, base: Path) -> dict | None:
    """The file's own settings (``data``, as YAML reads them) as a recipe holds them (budgets of 80k as 80000.0, a
    section with its defaults), or None when they are no valid recipe on their own (an override mends them)."""
    if not isinstance(data, dict):
        return None
    try:
        return Recipe.model_validate(_resolve_paths(copy.deepcopy(data), base)).model_dump()
    except Exception:  # noqa: BLE001 - the file alone may hold what an override replaced (a budget of 1e400)
        return None


def _line_of(node, path: tuple, missing: bool = False) -> int | None:
    """1-based line of the key at ``path`` in the composed YAML (its deepest existing ancestor)."""
    if node is None:
        return None
    line = None
    cur = node
    for part in path:
        nxt = None
        if isinstance(cur, yaml.MappingNode):
            for k, v in cur.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    nxt, line = v, k.start_mark.line + 1
                    break
        elif isinstance(cur, yaml.SequenceNode) and isinstance(part, int) and part < len(cur.value):
            nxt = cur.value[part]
            line = nxt.start_mark.line + 1
        if nxt is None:
            break
        cur = nxt
    if line is None and not missing:
        return None
    return line


_NOT_A_NAME = "a key must be a name, not a {kind}: write each setting as name: value, such as seed: 3"


def _nodes(node, path: tuple = (), is_key: bool = False):
    """``(path, node, is_key)`` for ``node`` and every node below it, in document order: a mapping's key (with
    the mapping's path) and what is below it, then its value (with the key's path)."""
    yield path, node, is_key
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            yield from _nodes(k, path, True)
            yield from _nodes(v, path + (getattr(k, "value", "?"),))
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            yield from _nodes(v, path + (i,))


def _distinct_nodes(node):
    """``(path, node)`` for ``node`` and every node below it, each once (at its first path): an alias is the node
    it names, so nested aliases (a few lines, billions of nodes if expanded) are walked in time of the file's size."""
    seen, stack = set(), [((), node)]
    while stack:
        path, n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        yield path, n
        if isinstance(n, yaml.MappingNode):
            stack.extend((path + (getattr(k, "value", "?"),), v) for k, v in reversed(n.value))
            stack.extend((path, k) for k, _ in reversed(n.value))
        elif isinstance(n, yaml.SequenceNode):
            stack.extend((path + (i,), v) for i, v in reversed(list(enumerate(n.value))))


def _non_scalar_key(node) -> tuple[tuple, Any]:
    """The first mapping key in ``node`` that is a list or a mapping, and the key path of its mapping;
    ((), None) when there is none."""
    return next(((p, n) for p, n, key in _nodes(node) if key and not isinstance(n, yaml.ScalarNode)), ((), None))


_TAG_KINDS = {"tag:yaml.org,2002:int": "an integer", "tag:yaml.org,2002:float": "a number",
              "tag:yaml.org,2002:timestamp": "a date", "tag:yaml.org,2002:bool": "a boolean"}
# what PyYAML raises building a scalar its tag does not fit (!!int x, !!bool maybe, !!timestamp soon)
_UNBUILDABLE = (ValueError, KeyError, AttributeError)
# what such a tag takes, for the ones whose error says nothing (a KeyError, an AttributeError)
_TAG_TAKES = {"tag:yaml.org,2002:bool": "it is none of true, false, yes, no, on, off",
              "tag:yaml.org,2002:timestamp": "it is not a date such as 2024-01-31"}


def _cannot_build(written: str, tag: str, why: Exception | str) -> str:
    """The message for a scalar YAML reads as a number or a date but cannot build (``seed: 999…`` of more digits
    than Python converts, ``seed: 2020-13-01``)."""
    digits = sum(c.isdigit() for c in written)
    if tag == "tag:yaml.org,2002:int" and digits > 1000:
        return f"a number of {digits:,} digits, more than any setting takes (YAML cannot even read it); check the value"
    shown = written if len(written) <= 40 else written[:37] + "..."
    return (f"YAML reads {shown} as {_TAG_KINDS.get(tag, 'a value')} but cannot build it ({why}); fix the value, "
            f"or quote it if it is text")


def _unbuildable(node) -> tuple[tuple, Any, Exception | None]:
    """The first scalar in ``node`` that composes but that YAML cannot build (an integer of more digits than
    Python converts, a date with month 13), its key path and the error; ((), None, None) when there is none."""
    for path, n, _ in _nodes(node):
        if isinstance(n, yaml.ScalarNode):
            try:
                yaml.constructor.SafeConstructor().construct_object(n)
            except ValueError as e:
                return path, n, e
            except _UNBUILDABLE as e:
                return path, n, _TAG_TAKES.get(n.tag, repr(e))
    return (), None, None


_MERGE_TAKES = ("'<<' merges a mapping into this one (<<: *anchor, or a list of anchored mappings: <<: [*a, *b]), "
                "but here it is given a {kind}; give it a mapping, or remove the line")


def _bad_merge(node) -> tuple[tuple, Any]:
    """The first ``<<`` in ``node`` given something else than a mapping or a list of mappings: the key path of
    its mapping and what it is given; ((), None) when there is none."""
    for path, n, _ in _nodes(node):
        if not isinstance(n, yaml.MappingNode):
            continue
        for k, v in n.value:
            if getattr(k, "tag", None) != "tag:yaml.org,2002:merge" or isinstance(v, yaml.MappingNode):
                continue
            items = v.value if isinstance(v, yaml.SequenceNode) else [v]
            bad = next((i for i in items if not isinstance(i, yaml.MappingNode)), None)
            if bad is not None:
                return path, bad
    return (), None


# the deepest a recipe's lists and mappings nest (a recipe's go a few levels: section: key: [list]); PyYAML
# composes one level by recursion, so that a few hundred levels would stop it with a RecursionError
MAX_DEPTH = 50


def _check_depth(text: str, filename: str, what: str = "", key: str | None = None) -> None:
    """Refuse lists and mappings nested more than :data:`MAX_DEPTH` deep, at the line where they do (``what``
    and ``key``: an override's). YAML syntax errors are left to the composer that follows."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line = None if what else event.start_mark.line + 1
                    raise RecipeError(f"{what or 'this value '}nests lists or mappings more than {MAX_DEPTH} deep; "
                                      f"a recipe's values are nested a few levels (section: key: [items]): check its "
                                      f"brackets and indentation", filename, key, line)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return


def _node_kind(node) -> str:
    return {yaml.SequenceNode: "list", yaml.MappingNode: "mapping"}.get(type(node), "value")


def _check_duplicates(node, filename: str) -> None:
    """No mapping in the recipe file repeats a key."""
    dup = _first_duplicate(node)
    if dup is not None:
        path, first, line = dup
        raise RecipeError(f"duplicate key (first on line {first})", filename, _dotted(path), line)


def _first_duplicate(node, prefix: tuple = (), visited: set[int] | None = None) -> tuple[tuple, int, int] | None:
    """The first mapping key in ``node`` given twice: its key path and the lines of its first and second
    occurrences; None when there is none. A node an alias repeats is checked once (``visited``)."""
    visited = set() if visited is None else visited
    if id(node) in visited:
        return None
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                if k.value in seen and k.value != "<<":
                    return prefix + (k.value,), seen[k.value], k.start_mark.line + 1
                seen[k.value] = k.start_mark.line + 1
                found = _first_duplicate(v, prefix + (k.value,), visited)
                if found is not None:
                    return found
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            found = _first_duplicate(v, prefix + (i,), visited)
            if found is not None:
                return found
    return None


def _kind(v: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(v),
                                                                                            type(v).__name__)
