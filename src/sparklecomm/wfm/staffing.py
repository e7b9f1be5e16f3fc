"""Required agents per interval for service targets, and scheduled agents after shrinkage.

``required_agents`` returns the smallest whole number of agents on the phones that meets
*every* target given (service level, ASA, abandon rate, occupancy cap), under Erlang C
or Erlang A. All the metrics used are monotone in the number of agents, so "smallest"
is well defined; the search is vectorised over intervals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from sparklecomm.core.errors import InvalidInput
from sparklecomm.wfm._numerics import FloatArray, log_erlang_b
from sparklecomm.wfm.erlang import (
    ASA_BASES,
    SL_BASES,
    AsaBasis,
    QueueMetrics,
    ServiceLevelBasis,
    _erlang_a_metrics,
    check_range,
    erlang_c_metrics,
)

Model = Literal["c", "a"]
IntArray = npt.NDArray[np.int64]

# Comparisons allow this relative slack so that a target met exactly on paper (say an
# occupancy of 0.85 = 17/20) is not missed because of the last bit of a float.
_SLACK: Final = 1e-12
# Agents are never searched beyond traffic + this many standard deviations (sqrt(traffic))
# plus a constant; no target in (0, 1) needs nearly that many.
_MAX_SIGMAS: Final = 60.0


@dataclass(frozen=True)
class Targets:
    """What an interval's staffing must achieve. ``None`` switches a target off.

    Attributes:
        service_level: minimum share of calls answered within ``target_time`` (0-1),
            counted on ``sl_basis`` (default: of offered calls).
        target_time: the service-level time, seconds (the "20" in 80/20).
        asa: maximum average speed of answer, seconds, on ``asa_basis`` (default:
            answered calls).
        abandon_rate: maximum share of offered calls that abandon (Erlang A only; Erlang C
            has none).
        max_occupancy: maximum share of time agents spend on calls (0-1].
    """

    service_level: float | None = 0.8
    target_time: float = 20.0
    asa: float | None = None
    abandon_rate: float | None = None
    max_occupancy: float | None = None
    sl_basis: ServiceLevelBasis = "offered"
    asa_basis: AsaBasis = "answered"

    def check(self) -> None:
        """Raise :class:`InvalidInput` naming the first target that makes no sense."""
        if self.service_level is not None:
            check_range("service_level", self.service_level, low=0, high=1, high_open=True)
        check_range("target_time", self.target_time, low=0)
        if self.asa is not None:
            check_range("asa", self.asa, low=0, low_open=True)
        if self.abandon_rate is not None:
            check_range("abandon_rate", self.abandon_rate, low=0, high=1, low_open=True)
        if self.max_occupancy is not None:
            check_range("max_occupancy", self.max_occupancy, low=0, high=1, low_open=True)
        if self.sl_basis not in SL_BASES:
            raise InvalidInput(f"unknown service-level basis {self.sl_basis!r}", field="sl_basis")
        if self.asa_basis not in ASA_BASES:
            raise InvalidInput(f"unknown ASA basis {self.asa_basis!r}", field="asa_basis")

    def slack(self, m: QueueMetrics) -> FloatArray:
        """How far each interval is inside its targets (< 0: some target missed).

        The minimum over the targets of a relative margin; monotone in the number of
        agents, it guides the search (``met`` decides).
        """
        out = np.full(np.shape(m.traffic), np.inf)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.service_level is not None:
                # log of the miss rate is close to linear in the agents (exactly, apart
                # from P(wait), under Erlang C), which makes the secant search fast.
                miss = np.log1p(-np.minimum(m.service_level, 1.0))
                out = np.minimum(out, np.log1p(-self.service_level) - miss)
            if self.asa is not None:
                out = np.minimum(out, np.log(self.asa / m.asa))
            if self.abandon_rate is not None:
                out = np.minimum(out, np.log(self.abandon_rate / m.p_abandon))
            if self.max_occupancy is not None:
                out = np.minimum(out, np.log(self.max_occupancy / m.occupancy))
        finite: FloatArray = np.nan_to_num(out, nan=-1.0, posinf=1.0, neginf=-1.0)
        return finite

    def met(self, m: QueueMetrics) -> npt.NDArray[np.bool_]:
        """Which intervals of ``m`` meet every target."""
        ok = np.ones(np.shape(m.traffic), dtype=bool)
        if self.service_level is not None:
            ok &= m.service_level >= self.service_level * (1 - _SLACK)
        if self.asa is not None:
            ok &= m.asa <= self.asa * (1 + _SLACK)
        if self.abandon_rate is not None:
            ok &= m.p_abandon <= self.abandon_rate * (1 + _SLACK)
        if self.max_occupancy is not None:
            ok &= m.occupancy <= self.max_occupancy * (1 + _SLACK)
        return ok


@dataclass(frozen=True)
class Staffing:
    """Staffing requirement per interval.

    Attributes:
        agents: agents needed on the phones (productive, "raw" agents).
        scheduled: agents to schedule so that ``agents`` remain after shrinkage.
        metrics: the queue's performance with ``agents``.
    """

    agents: IntArray
    scheduled: IntArray
    metrics: QueueMetrics


def scheduled_agents(agents: npt.ArrayLike, shrinkage: float) -> IntArray:
    """Agents to schedule so that ``agents`` are on the phones: ``ceil(agents/(1-shrinkage))``.

    Shrinkage is the share of paid time not available for calls (breaks, training,
    absence), in [0, 1).
    """
    check_range("shrinkage", shrinkage, low=0, high=1, high_open=True)
    need = np.asarray(agents, dtype=np.float64) / (1.0 - shrinkage)
    # 14 / 0.7 is 20.000000000000004 in binary floating point; that is 20 agents, not 21.
    return np.ceil(need - 1e-9 * np.maximum(need, 1.0)).astype(np.int64)


def required_agents(
    traffic: npt.ArrayLike,
    aht: npt.ArrayLike,
    targets: Targets,
    *,
    model: Model = "c",
    patience: npt.ArrayLike | None = None,
    shrinkage: float = 0.0,
) -> Staffing:
    """Smallest number of agents per interval meeting every target in ``targets``.

    Args:
        traffic: offered load per interval, Erlangs (see ``erlang.offered_load``).
        aht: average handle time, seconds.
        targets: service targets; at least one must be set.
        model: ``"c"`` for Erlang C (no abandonment) or ``"a"`` for Erlang A.
        patience: mean patience in seconds (Erlang A only; required there).
        shrinkage: share of scheduled time off the phones, for ``scheduled``.

    Intervals without calls need no agents.
    """
    targets.check()
    check_range("traffic", traffic, low=0)
    check_range("aht", aht, low=0, low_open=True)
    check_range("shrinkage", shrinkage, low=0, high=1, high_open=True)
    if (
        targets.service_level is None
        and targets.asa is None
        and targets.abandon_rate is None
        and targets.max_occupancy is None
    ):
        raise InvalidInput("set at least one staffing target", field="targets")
    if model == "a":
        if patience is None:
            raise InvalidInput("Erlang A needs the callers' mean patience", field="patience")
        check_range("patience", patience, low=0, low_open=True, allow_inf=True)
        pat = np.asarray(patience, dtype=np.float64)
        a, h, p = np.broadcast_arrays(
            np.asarray(traffic, dtype=np.float64), np.asarray(aht, dtype=np.float64), pat
        )
    elif model == "c":
        a, h = np.broadcast_arrays(
            np.asarray(traffic, dtype=np.float64), np.asarray(aht, dtype=np.float64)
        )
        p = np.full(a.shape, np.inf)
    else:
        raise InvalidInput(f"unknown model {model!r}; use 'c' or 'a'", field="model")

    shape = a.shape
    a, h, p = a.ravel(), h.ravel(), p.ravel()
    agents = _erlang_c_agents(a, h, targets)
    if model == "a":
        agents, metrics = _erlang_a_agents(a, h, p, targets, guess=agents)
    else:
        metrics = _metrics(a, agents.astype(np.float64), h, p, targets, model)
    return Staffing(
        agents=agents.reshape(shape),
        scheduled=scheduled_agents(agents, shrinkage).reshape(shape),
        metrics=_reshape(metrics, shape),
    )


def _metrics(
    a: FloatArray,
    n: FloatArray,
    h: FloatArray,
    p: FloatArray,
    targets: Targets,
    model: Model,
    *,
    complete: bool = True,
) -> QueueMetrics:
    """The model's metrics; ``complete=False`` lets Erlang A skip the answered calls' ASA
    (quadrature) when no target needs it."""
    if model == "c":
        return erlang_c_metrics(a, n, h, targets.target_time, asa_basis=targets.asa_basis)
    return _erlang_a_metrics(
        a,
        n,
        h,
        p,
        targets.target_time,
        sl_basis=targets.sl_basis,
        asa_basis=targets.asa_basis,
        answered_asa=complete or (targets.asa is not None and targets.asa_basis == "answered"),
    )


def _reshape(m: QueueMetrics, shape: tuple[int, ...]) -> QueueMetrics:
    return QueueMetrics(
        traffic=m.traffic.reshape(shape),
        agents=m.agents.reshape(shape),
        p_wait=m.p_wait.reshape(shape),
        answered_within=m.answered_within.reshape(shape),
        abandoned_within=m.abandoned_within.reshape(shape),
        p_abandon=m.p_abandon.reshape(shape),
        asa_answered=m.asa_answered.reshape(shape),
        asa_offered=m.asa_offered.reshape(shape),
        occupancy=m.occupancy.reshape(shape),
        sl_basis=m.sl_basis,
        asa_basis=m.asa_basis,
    )


def _ceiling(a: FloatArray) -> FloatArray:
    """Search limit: far more agents than any target in (0, 1) can need."""
    return np.ceil(a + _MAX_SIGMAS * np.sqrt(a) + 100.0)


def _erlang_c_agents(a: FloatArray, h: FloatArray, targets: Targets) -> IntArray:
    """Erlang C requirement: walk up from a lower bound with the Erlang B recurrence.

    Starting at ``floor(traffic) + 1`` (the least stable staffing) or the occupancy floor,
    we evaluate Erlang B once in log space and then step ``B(n+1) = A B / (n + 1 + A B)``;
    each step costs a few vector operations over the intervals still short of target.
    """
    out = np.zeros(a.shape, dtype=np.int64)
    live = a > 0
    if not live.any():
        return out
    idx = np.nonzero(live)[0]
    aa, hh = a[idx], h[idx]
    n = np.floor(aa) + 1.0
    if targets.max_occupancy is not None:
        n = np.maximum(n, np.ceil(aa / targets.max_occupancy * (1 - _SLACK)))
    b = np.exp(log_erlang_b(aa, n))
    limit = _ceiling(aa)
    t = targets.target_time
    todo = np.ones(idx.shape, dtype=bool)
    while True:
        sub = np.nonzero(todo)[0]
        bs, ns, a_s, hs = b[sub], n[sub], aa[sub], hh[sub]
        c = bs / (1.0 - (a_s / ns) * (1.0 - bs))
        excess = ns - a_s
        ok = np.ones(sub.shape, dtype=bool)
        if targets.service_level is not None:
            sl = 1.0 - c * np.exp(-excess * t / hs)
            ok &= sl >= targets.service_level * (1 - _SLACK)
        if targets.asa is not None:
            ok &= c * hs / excess <= targets.asa * (1 + _SLACK)
        if targets.max_occupancy is not None:
            ok &= a_s / ns <= targets.max_occupancy * (1 + _SLACK)
        todo[sub[ok]] = False
        if not todo.any():
            break
        step = sub[~ok]
        if (n[step] >= limit[step]).any():
            raise InvalidInput(
                "targets cannot be met with any reasonable staffing", field="targets"
            )
        n[step] += 1.0
        b[step] = aa[step] * b[step] / (n[step] + aa[step] * b[step])
    out[idx] = n.astype(np.int64)
    return out


_FIELDS: Final = (
    "traffic",
    "agents",
    "p_wait",
    "answered_within",
    "abandoned_within",
    "p_abandon",
    "asa_answered",
    "asa_offered",
    "occupancy",
)


def _erlang_a_agents(
    a: FloatArray, h: FloatArray, p: FloatArray, targets: Targets, guess: IntArray
) -> tuple[IntArray, QueueMetrics]:
    """Erlang A requirement, searched from the Erlang C answer, and its metrics.

    The Erlang C requirement and the slope of Erlang C's slack there (both nearly free)
    seed a secant search on the Erlang A slack, each probe evaluated by the closed forms
    (incomplete gamma) for all intervals at once; the answer's metrics are then computed
    once, complete.
    """
    size = a.size
    kept = {name: np.zeros(size) for name in _FIELDS}
    kept["traffic"] = a.copy()
    kept["answered_within"][:] = 1.0
    out = np.zeros(size, dtype=np.int64)
    live = a > 0
    idx = np.nonzero(live)[0]
    aa, hh, pp = a[idx], h[idx], p[idx]

    def evaluate(
        sel: npt.NDArray[np.int64], n: FloatArray
    ) -> tuple[npt.NDArray[np.bool_], FloatArray]:
        m = _metrics(aa[sel], n, hh[sel], pp[sel], targets, "a", complete=False)
        return targets.met(m), targets.slack(m)

    if idx.size:
        g = np.maximum(guess[idx].astype(np.float64), 1.0)
        inf = np.full(g.shape, np.inf)
        below = np.where(g - 1.0 > aa, g - 1.0, g)
        upper = targets.slack(_metrics(aa, g + 1.0, hh, inf, targets, "c"))
        lower = targets.slack(_metrics(aa, below, hh, inf, targets, "c"))
        slope = (upper - lower) / (g + 1.0 - below)
        found = _smallest_meeting(evaluate, g, slope, _ceiling(aa))
        out[idx] = found.astype(np.int64)
        # The answer's metrics, complete (the search may have skipped the answered ASA).
        m = _metrics(aa, found, hh, pp, targets, "a")
        for name in _FIELDS:
            kept[name][idx] = getattr(m, name)
    metrics = QueueMetrics(**kept, sl_basis=targets.sl_basis, asa_basis=targets.asa_basis)
    return out, metrics


Evaluate = Callable[[npt.NDArray[np.int64], FloatArray], tuple[npt.NDArray[np.bool_], FloatArray]]


def _smallest_meeting(
    evaluate: Evaluate, guess: FloatArray, slope: FloatArray, limit: FloatArray
) -> FloatArray:
    """Smallest n >= 1 meeting the targets, per element, for a monotone criterion.

    ``evaluate(sel, n)`` returns (met, slack) for the elements ``sel`` at ``n``; the slack
    increases with n and is nearly linear near the answer. Each round is one vectorised
    evaluation. While only one side of the answer is known we step along the secant of
    the last two points (the first one virtual, from ``guess`` and ``slope``), aiming a
    little past the root to land on the unknown side; once both sides are known we use
    regula falsi, with a bisection every third round so that it always terminates.
    Typically three or four rounds.
    """
    size = guess.size
    ok, s = evaluate(np.arange(size, dtype=np.int64), guess)
    hi = np.where(ok, guess, np.inf)  # smallest n known to meet
    s_hi = np.where(ok, s, np.nan)
    lo = np.where(ok, 0.0, guess)  # largest n known to fail; n = 0 always fails
    s_lo = np.where(ok, np.nan, s)
    slope = np.where(np.isfinite(slope) & (slope > 0), slope, 0.01)
    n1, s1 = guess - 1.0, s - slope  # the last two points, for the secant
    n2, s2 = guess.copy(), s.copy()
    step = np.maximum(1.0, np.ceil(0.05 * guess))
    rounds = np.zeros(size, dtype=np.int64)
    while True:
        todo = np.nonzero(hi - lo > 1)[0]
        if todo.size == 0:
            return hi
        lt, ht, slt, sht = lo[todo], hi[todo], s_lo[todo], s_hi[todo]
        both = np.isfinite(ht) & (lt > 0)
        rounds[todo[both]] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            falsi = lt + (ht - lt) * slt / (slt - sht)
            a, b = n1[todo], n2[todo]
            secant = b - s2[todo] * (b - a) / (s2[todo] - s1[todo])
        secant = np.where(np.isfinite(secant), secant, np.where(np.isfinite(ht), lt, ht))
        bisect = np.floor((lt + ht) / 2)
        going_up = np.isinf(ht)
        one_sided = np.where(
            going_up,
            np.minimum(np.ceil(secant), lt + step[todo]),
            np.ceil(secant) - 1.0,
        )
        two_sided = np.where(np.isfinite(falsi) & (rounds[todo] % 3 != 0), np.ceil(falsi), bisect)
        probe = np.where(both, two_sided, one_sided)
        probe = np.clip(probe, np.maximum(lt + 1.0, 1.0), ht - 1.0)
        probe = np.where(going_up, np.maximum(probe, lt + 1.0), probe)
        if (probe > limit[todo]).any():
            raise InvalidInput(
                "targets cannot be met with any reasonable staffing", field="targets"
            )
        res, sp = evaluate(todo, probe)
        hi[todo] = np.where(res, probe, ht)
        s_hi[todo] = np.where(res, sp, sht)
        lo[todo] = np.where(res, lt, probe)
        s_lo[todo] = np.where(res, slt, sp)
        n1[todo], s1[todo] = n2[todo], s2[todo]
        n2[todo], s2[todo] = probe, sp
        step[todo] *= 2.0
