"""Erlang B, C and A: the queueing formulas behind contact-center staffing.

Conventions (the same everywhere in :mod:`sparklecomm.wfm`):

* times are in **seconds** (AHT, patience, service-level target time, ASA);
* ``traffic`` is the offered load in Erlangs, ``calls * aht / interval``
  (see :func:`offered_load`);
* every function is vectorised: arguments broadcast against each other like numpy
  arrays (one element per interval) and results are float64 arrays of the broadcast
  shape (0-d for scalar input; ``float(x)`` turns them into Python floats).

Models:

* **Erlang B** (M/M/N/N): calls that find every line busy are lost.
* **Erlang C** (M/M/N): calls wait as long as it takes; needs ``agents > traffic``.
* **Erlang A** (M/M/N+M, Palm 1943; Garnett, Mandelbaum & Reiman 2002; Mandelbaum & Zeltyn
  2007): callers hang up after an exponential patience with the given mean; always stable.

Metric variants and their defaults are documented on :class:`QueueMetrics` and in
``docs/wfm.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt
from scipy import special

from sparklecomm.core.errors import InvalidInput
from sparklecomm.wfm._numerics import (
    FloatArray,
    OfferedWait,
    answered_wait_moment,
    log_erlang_b,
    merge_wait,
    offered_wait,
    offered_wait_closed,
)

ServiceLevelBasis = Literal[
    "offered", "answered", "offered_less_short_abandons", "short_abandons_met"
]
"""How a service level counts calls; ``answered within t`` is always the numerator.

* ``offered`` (default): answered within t / offered. Abandons count as failures.
* ``answered``: answered within t / answered. Ignores abandons entirely (flattering).
* ``offered_less_short_abandons``: answered within t / (offered - abandoned within t).
  Callers who hung up before t are left out of the count (common ACD report).
* ``short_abandons_met``: (answered within t + abandoned within t) / offered. Callers who
  hung up before t count as met.

Under Erlang C nobody abandons and all four coincide.
"""

AsaBasis = Literal["answered", "offered"]
"""Average speed of answer over ``answered`` calls (default, what ACD reports call ASA) or
the average wait of all ``offered`` calls, abandoned ones included (time to abandon)."""

SL_BASES: Final[tuple[str, ...]] = get_args(ServiceLevelBasis)
ASA_BASES: Final[tuple[str, ...]] = get_args(AsaBasis)

ArrayLike = npt.ArrayLike


@dataclass(frozen=True)
class QueueMetrics:
    """Steady-state performance of a queue, one array element per interval.

    Attributes:
        traffic: offered load in Erlangs.
        agents: agents on the phones.
        p_wait: probability that a call finds every agent busy and queues (for Erlang A
            this includes callers who later hang up).
        answered_within: P(answered within the target time), as a share of offered calls.
        abandoned_within: P(abandoned within the target time), share of offered calls.
        p_abandon: probability that a call abandons (0 under Erlang C).
        asa_answered: mean wait of answered calls, in seconds.
        asa_offered: mean wait of all offered calls (abandoned calls count their time
            to abandon), in seconds.
        occupancy: share of agents' time spent handling calls (carried load / agents).
        service_level: the service level on ``sl_basis`` (default ``offered``).
        asa: the ASA on ``asa_basis`` (default ``answered``).
    """

    traffic: FloatArray
    agents: FloatArray
    p_wait: FloatArray
    answered_within: FloatArray
    abandoned_within: FloatArray
    p_abandon: FloatArray
    asa_answered: FloatArray
    asa_offered: FloatArray
    occupancy: FloatArray
    sl_basis: ServiceLevelBasis = "offered"
    asa_basis: AsaBasis = "answered"

    @property
    def service_level(self) -> FloatArray:
        return service_level(
            self.answered_within, self.abandoned_within, self.p_abandon, self.sl_basis
        )

    @property
    def asa(self) -> FloatArray:
        return self.asa_answered if self.asa_basis == "answered" else self.asa_offered

    def row(self, i: int | tuple[int, ...] = ()) -> dict[str, float]:
        """The metrics of one interval as plain floats (``()`` for 0-d results)."""
        return {
            "traffic": float(self.traffic[i]),
            "agents": float(self.agents[i]),
            "p_wait": float(self.p_wait[i]),
            "service_level": float(self.service_level[i]),
            "asa": float(self.asa[i]),
            "p_abandon": float(self.p_abandon[i]),
            "occupancy": float(self.occupancy[i]),
        }


def _arr(value: ArrayLike) -> FloatArray:
    return np.asarray(value, dtype=np.float64)


def check_range(
    name: str,
    value: ArrayLike,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> None:
    """Raise :class:`InvalidInput` naming ``name`` (and the index) when a value is out of range."""
    a = _arr(value)
    bad = np.isnan(a) | (~np.isfinite(a) & (not allow_inf))
    if low is not None:
        bad |= (a <= low) if low_open else (a < low)
    if high is not None:
        bad |= (a >= high) if high_open else (a > high)
    if bad.any():
        where = np.argwhere(bad)[0]
        index = "" if a.ndim == 0 else f"[{', '.join(str(int(i)) for i in where)}]"
        got = a[tuple(where)] if a.ndim else a
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        rule = " and ".join(s for s in (lo, hi) if s) or "finite"
        raise InvalidInput(f"{name}{index} must be {rule} (got {float(got):g})", field=name)


def _check_agents(agents: ArrayLike, name: str = "agents") -> None:
    check_range(name, agents, low=0.0)
    a = _arr(agents)
    if (a != np.floor(a)).any():
        raise InvalidInput(f"{name} must be whole numbers", field=name)


def offered_load(calls: ArrayLike, interval: ArrayLike, aht: ArrayLike) -> FloatArray:
    """Offered load in Erlangs: ``calls * aht / interval`` (seconds for both times)."""
    check_range("calls", calls, low=0.0)
    check_range("interval", interval, low=0.0, low_open=True)
    check_range("aht", aht, low=0.0, low_open=True)
    return _arr(calls) * _arr(aht) / _arr(interval)


def service_level(
    answered_within: ArrayLike,
    abandoned_within: ArrayLike,
    p_abandon: ArrayLike,
    basis: ServiceLevelBasis = "offered",
) -> FloatArray:
    """Service level on the given basis from its three ingredients (shares of offered)."""
    aw = _arr(answered_within)
    with np.errstate(invalid="ignore", divide="ignore"):
        if basis == "offered":
            out = aw
        elif basis == "answered":
            out = np.where(aw > 0, aw / (1.0 - _arr(p_abandon)), 0.0)
        elif basis == "offered_less_short_abandons":
            out = np.where(aw > 0, aw / (1.0 - _arr(abandoned_within)), 0.0)
        elif basis == "short_abandons_met":
            out = aw + _arr(abandoned_within)
        else:
            raise InvalidInput(f"unknown service-level basis {basis!r}", field="sl_basis")
    return np.clip(out, 0.0, 1.0)


def erlang_b(traffic: ArrayLike, lines: ArrayLike) -> FloatArray:
    """Erlang B: probability that a call is blocked, ``traffic`` Erlangs on ``lines`` lines.

    Exact (log-space Poisson ratio), stable for any number of lines.
    """
    check_range("traffic", traffic, low=0.0)
    _check_agents(lines, "lines")
    a, n = np.broadcast_arrays(_arr(traffic), _arr(lines))
    out = np.ones(a.shape)
    pos = a > 0
    out[~pos] = np.where(n[~pos] == 0, 1.0, 0.0)
    if pos.any():
        out[pos] = np.exp(log_erlang_b(a[pos], n[pos]))
    return out


def erlang_c(traffic: ArrayLike, agents: ArrayLike) -> FloatArray:
    """Erlang C: probability that a call waits; 1 when ``agents <= traffic`` (no steady state)."""
    check_range("traffic", traffic, low=0.0)
    _check_agents(agents)
    a, n = np.broadcast_arrays(_arr(traffic), _arr(agents))
    b = erlang_b(a, n)
    out = np.ones(a.shape)
    stable = n > a
    rho = np.where(stable, a / np.where(n > 0, n, 1.0), 0.0)
    out[stable] = (b / (1.0 - rho * (1.0 - b)))[stable]
    out[a == 0] = 0.0  # no calls, nobody waits
    return np.clip(out, 0.0, 1.0)


def erlang_c_metrics(
    traffic: ArrayLike,
    agents: ArrayLike,
    aht: ArrayLike,
    target: ArrayLike = 20.0,
    *,
    asa_basis: AsaBasis = "answered",
) -> QueueMetrics:
    """Erlang C performance: P(wait), service level ``P(W <= target)``, ASA, occupancy.

    ``SL = 1 - C * exp(-(N - A) * target / aht)``, ``ASA = C * aht / (N - A)``. With
    ``agents <= traffic`` the queue grows without bound: p_wait 1, service level 0,
    ASA infinite, occupancy 1.
    """
    check_range("aht", aht, low=0.0, low_open=True)
    check_range("target", target, low=0.0)
    a, n, h, t = np.broadcast_arrays(_arr(traffic), _arr(agents), _arr(aht), _arr(target))
    c = erlang_c(a, n)
    stable = (n > a) | (a == 0)
    excess = np.where(stable & (n > a), n - a, 1.0)
    sl = np.where(stable, 1.0 - c * np.exp(-excess * t / h), 0.0)
    asa = np.where(stable, c * h / excess, np.inf)
    occ = np.where(stable, a / np.where(n > 0, n, 1.0), np.where(a > 0, 1.0, 0.0))
    zero = np.zeros(a.shape)
    return QueueMetrics(
        traffic=a.astype(np.float64),
        agents=n.astype(np.float64),
        p_wait=c,
        answered_within=np.clip(sl, 0.0, 1.0),
        abandoned_within=zero,
        p_abandon=zero,
        asa_answered=asa,
        asa_offered=asa,
        occupancy=occ,
        asa_basis=asa_basis,
    )


def erlang_a_metrics(
    traffic: ArrayLike,
    agents: ArrayLike,
    aht: ArrayLike,
    patience: ArrayLike,
    target: ArrayLike = 20.0,
    *,
    sl_basis: ServiceLevelBasis = "offered",
    asa_basis: AsaBasis = "answered",
) -> QueueMetrics:
    """Erlang A (M/M/N+M) performance with exponential patience of mean ``patience`` seconds.

    Exact formulas (Garnett-Mandelbaum-Reiman's A(x, y), Mandelbaum-Zeltyn's waiting-time
    law): incomplete-gamma closed forms where they are accurate, log-space quadrature
    elsewhere (very large x = N*patience/AHT, tiny abandon shares) and for the answered
    calls' mean wait, so any number of agents and any patience/AHT ratio work.
    ``patience = inf`` gives Erlang C. Default service level: answered within ``target`` /
    offered; default ASA: over answered calls.
    """
    return _erlang_a_metrics(
        traffic, agents, aht, patience, target, sl_basis=sl_basis, asa_basis=asa_basis
    )


def _offered_wait(
    gap: FloatArray, x: FloatArray, y: FloatArray, split: FloatArray, answered_asa: bool
) -> OfferedWait:
    """Closed forms where trustworthy, quadrature for the rest (see ``_numerics``)."""
    ow, ok = offered_wait_closed(gap, x, y, split)
    bad = ~ok
    if bad.any():
        ow = merge_wait(ow, bad, offered_wait(gap[bad], x[bad], y[bad], split[bad]))
    if answered_asa and ok.any():
        e_vu = ow.e_vu.copy()
        e_vu[ok] = ow.e_u[ok] * answered_wait_moment(gap[ok], x[ok], y[ok])
        ow = replace(ow, e_vu=e_vu)
    return ow


def _erlang_a_metrics(
    traffic: ArrayLike,
    agents: ArrayLike,
    aht: ArrayLike,
    patience: ArrayLike,
    target: ArrayLike = 20.0,
    *,
    sl_basis: ServiceLevelBasis = "offered",
    asa_basis: AsaBasis = "answered",
    answered_asa: bool = True,
) -> QueueMetrics:
    """:func:`erlang_a_metrics`; ``answered_asa=False`` skips ``asa_answered`` (NaN), the
    one measure that needs quadrature everywhere (the staffing search uses that)."""
    check_range("traffic", traffic, low=0.0)
    _check_agents(agents)
    check_range("aht", aht, low=0.0, low_open=True)
    check_range("patience", patience, low=0.0, low_open=True, allow_inf=True)
    check_range("target", target, low=0.0)
    if sl_basis not in SL_BASES:
        raise InvalidInput(f"unknown service-level basis {sl_basis!r}", field="sl_basis")
    a, n, h, p, t = np.broadcast_arrays(
        _arr(traffic), _arr(agents), _arr(aht), _arr(patience), _arr(target)
    )
    shape = a.shape
    a, n, h, p, t = (v.ravel().astype(np.float64) for v in (a, n, h, p, t))
    size = a.size
    p_wait = np.zeros(size)
    answered_within = np.ones(size)
    abandoned_within = np.zeros(size)
    p_abandon = np.zeros(size)
    asa_answered = np.zeros(size)
    asa_offered = np.zeros(size)
    occupancy = np.zeros(size)

    # Infinite patience: Erlang C.
    inf = ~np.isfinite(p) & (a > 0)
    if inf.any():
        mc = erlang_c_metrics(a[inf], n[inf], h[inf], t[inf])
        p_wait[inf] = mc.p_wait
        answered_within[inf] = mc.answered_within
        asa_answered[inf] = mc.asa_answered
        asa_offered[inf] = mc.asa_offered
        occupancy[inf] = mc.occupancy
    # Nobody to answer: every caller waits until they hang up.
    none = (n == 0) & (a > 0) & ~inf
    p_wait[none] = 1.0
    p_abandon[none] = 1.0
    answered_within[none] = 0.0
    abandoned_within[none] = -np.expm1(-t[none] / p[none])
    asa_answered[none] = np.nan
    asa_offered[none] = p[none]
    occupancy[none] = 0.0

    reg = (n > 0) & (a > 0) & ~inf
    if reg.any():
        aa, nn, hh, pp, tt = a[reg], n[reg], h[reg], p[reg], t[reg]
        ratio = pp / hh
        ow = _offered_wait((nn - aa) * ratio, nn * ratio, aa * ratio, tt / pp, answered_asa)
        log_b = log_erlang_b(aa, nn)
        # P(wait) = A B / (1 + (A - 1) B) = 1 / (1 + (1 - B) / (A B)), in logs.
        z = np.log1p(-np.exp(log_b)) - ow.log_a - log_b
        pw = special.expit(-z)
        pab = pw * ow.p_ab
        p_wait[reg] = pw
        p_abandon[reg] = pab
        answered_within[reg] = (1.0 - pw) + pw * ow.e_u_le
        abandoned_within[reg] = pw * ow.p_ab_le
        served = 1.0 - pab
        asa_answered[reg] = np.where(served > 0, pw * ow.e_vu * pp / served, np.nan)
        asa_offered[reg] = pab * pp
        occupancy[reg] = np.minimum(aa * served / nn, 1.0)

    def shaped(v: FloatArray) -> FloatArray:
        return np.clip(v, 0.0, None).reshape(shape)

    return QueueMetrics(
        traffic=a.reshape(shape),
        agents=n.reshape(shape),
        p_wait=np.clip(p_wait, 0.0, 1.0).reshape(shape),
        answered_within=np.clip(answered_within, 0.0, 1.0).reshape(shape),
        abandoned_within=np.clip(abandoned_within, 0.0, 1.0).reshape(shape),
        p_abandon=np.clip(p_abandon, 0.0, 1.0).reshape(shape),
        asa_answered=shaped(asa_answered),
        asa_offered=shaped(asa_offered),
        occupancy=shaped(occupancy),
        sl_basis=sl_basis,
        asa_basis=asa_basis,
    )
