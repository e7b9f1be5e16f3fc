"""Probability distributions of handle times, patience and wrap-up, as scenarios name them.

Each is a small frozen object with a ``mean``, a ``sample(rng)`` drawing one value from a
seeded ``random.Random`` and a ``batch(gen, n)`` drawing ``n`` at once from a numpy
``Generator`` (what the simulator uses, through :class:`Draws`);
:func:`parse_distribution` builds one from its scenario form (``{dist: exponential,
mean: 300}``) and reports mistakes naming the key.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, Protocol

import numpy as np

from sparklecomm.sim.errors import ScenarioError, check_number

DISTRIBUTIONS = ("exponential", "lognormal", "constant", "empirical")


class Distribution(Protocol):
    """A non-negative random duration in seconds."""

    @property
    def mean(self) -> float: ...

    def sample(self, rng: random.Random) -> float: ...

    def batch(self, gen: np.random.Generator, n: int) -> list[float]: ...


@dataclass(frozen=True, slots=True)
class Exponential:
    mean: float

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mean)

    def batch(self, gen: np.random.Generator, n: int) -> list[float]:
        out: list[float] = gen.exponential(self.mean, n).tolist()
        return out


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Log-normal with the given mean and standard deviation (of the duration itself)."""

    mean: float
    sd: float

    @property
    def mu(self) -> float:
        return math.log(self.mean) - self.sigma**2 / 2.0

    @property
    def sigma(self) -> float:
        return math.sqrt(math.log1p((self.sd / self.mean) ** 2))

    def sample(self, rng: random.Random) -> float:
        return rng.lognormvariate(self.mu, self.sigma)

    def batch(self, gen: np.random.Generator, n: int) -> list[float]:
        out: list[float] = gen.lognormal(self.mu, self.sigma, n).tolist()
        return out


@dataclass(frozen=True, slots=True)
class Constant:
    value: float

    @property
    def mean(self) -> float:
        return self.value

    def sample(self, rng: random.Random) -> float:
        return self.value

    def batch(self, gen: np.random.Generator, n: int) -> list[float]:
        return [self.value] * n


@dataclass(frozen=True, slots=True)
class Empirical:
    """Draws uniformly from observed values (a bootstrap of real handle times)."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / len(self.values)

    def sample(self, rng: random.Random) -> float:
        return self.values[int(rng.random() * len(self.values))]

    def batch(self, gen: np.random.Generator, n: int) -> list[float]:
        values = self.values
        return [values[i] for i in gen.integers(0, len(values), n).tolist()]


def generator(seed: str) -> np.random.Generator:
    """A numpy generator seeded from a text seed (stable across runs and platforms)."""
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


class Draws:
    """Values of one distribution drawn ahead in numpy batches, handed out one per call.

    A simulated day needs a few hundred thousand handle times and patiences; drawing them
    4,096 at a time costs a fraction of drawing them one by one. ``next`` hands out the
    next value without a Python call of its own (a batch is drawn when the last one is
    used up, as calling the object does).
    """

    __slots__ = ("next",)

    def __init__(self, dist: Distribution, gen: np.random.Generator, batch: int = 4096) -> None:
        batches: Iterator[list[float]] = iter(lambda: dist.batch(gen, batch), None)
        self.next: Callable[[], float] = chain.from_iterable(batches).__next__

    def __call__(self) -> float:
        return self.next()


def _values(raw: object, where: str) -> tuple[float, ...]:
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence) or not raw:
        raise ScenarioError(f"{where} must be a non-empty list of seconds", where)
    return tuple(check_number(v, f"{where}[{i}]", minimum=0.0) for i, v in enumerate(raw))


def parse_distribution(raw: object, where: str, *, positive_mean: bool = True) -> Distribution:
    """A distribution from its scenario form; ``where`` names the key in error messages.

    Forms: ``{dist: exponential, mean: M}``, ``{dist: lognormal, mean: M, sd: S}`` (or
    ``cv: C`` instead of ``sd``), ``{dist: constant, value: V}`` (or ``mean``),
    ``{dist: empirical, values: [...]}``. A bare number is a constant.
    """
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return Constant(check_number(raw, where, minimum=0.0))
    if not isinstance(raw, Mapping):
        raise ScenarioError(
            f"{where} must be a number or a mapping like {{dist: exponential, mean: 300}}", where
        )
    data: Mapping[str, Any] = raw
    kind = data.get("dist")
    if kind not in DISTRIBUTIONS:
        raise ScenarioError(
            f"{where}.dist must be one of {', '.join(DISTRIBUTIONS)} (got {kind!r})",
            f"{where}.dist",
        )
    allowed = {
        "exponential": {"dist", "mean"},
        "lognormal": {"dist", "mean", "sd", "cv"},
        "constant": {"dist", "value", "mean"},
        "empirical": {"dist", "values"},
    }[kind]
    unknown = sorted(set(map(str, data)) - allowed)
    if unknown:
        raise ScenarioError(
            f"{where}: unknown key {unknown[0]!r} for a {kind} distribution "
            f"(allowed: {', '.join(sorted(allowed))})",
            f"{where}.{unknown[0]}",
        )
    dist: Distribution
    if kind == "exponential":
        dist = Exponential(_mean(data, where))
    elif kind == "lognormal":
        mean = _mean(data, where)
        if ("sd" in data) == ("cv" in data):
            raise ScenarioError(f"{where}: give exactly one of sd or cv", f"{where}.sd")
        if "sd" in data:
            sd = check_number(data["sd"], f"{where}.sd", minimum=0.0)
        else:
            sd = mean * check_number(data["cv"], f"{where}.cv", minimum=0.0)
        dist = LogNormal(mean, sd)
    elif kind == "constant":
        key = "value" if "value" in data else "mean"
        if key not in data:
            raise ScenarioError(f"{where}: a constant needs value", f"{where}.value")
        dist = Constant(check_number(data[key], f"{where}.{key}", minimum=0.0))
    else:
        if "values" not in data:
            raise ScenarioError(f"{where}: an empirical distribution needs values", where)
        dist = Empirical(_values(data["values"], f"{where}.values"))
    if positive_mean and not dist.mean > 0:
        raise ScenarioError(f"{where} must have a mean greater than 0", where)
    return dist


def _mean(data: Mapping[str, Any], where: str) -> float:
    if "mean" not in data:
        raise ScenarioError(f"{where}: missing mean (seconds)", f"{where}.mean")
    return check_number(data["mean"], f"{where}.mean", minimum=0.0, strict=True)
