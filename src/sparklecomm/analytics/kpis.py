"""Contact-center KPIs computed from the routing event stream, incrementally.

:class:`KpiAccumulator` is fed the events the routing engine emits (``NewEvent`` or committed
``Event`` objects, or their JSON form through :func:`event_from_json`) one at a time and can
be read at any moment: totals and per-interval figures, per queue and overall. The same code
serves the simulator (:mod:`sparklecomm.sim`) and, later, the live wallboard and reports, so
a KPI is defined exactly once. The definitions are in docs/kpis.md; in short:

* a *contact* is counted in the interval and queue where it started waiting (its *leg*):
  ``offered`` once per queue it entered, ``answered`` / ``abandoned`` / ``overflowed`` /
  ``diverted`` / ``callbacks_requested`` by how that leg ended;
* rates leave out *short abandons* (callers who hung up within ``short_abandon_seconds``);
* handle time (talk + hold + wrap-up) is counted per agent leg when its wrap-up ends;
* agent time (occupancy, utilisation) comes from ``agent.state_changed`` and is split exactly
  across interval boundaries; a consultation's ring is ``reserved`` time (like an offer's),
  its talk ``busy`` time, so ring time is never counted as talk or occupancy;
* satisfaction (CSAT) comes from ``survey.answered``, counted in the interval of the answer
  and the queue of the interaction: the mean score rescaled to 0–100 and the share of
  satisfied (top-two-box) answers. Routing never emits it, so routing's events do not pay
  for it (one more entry in the handler table).

Pure: no I/O, no clock. "Now" is the time of the last event fed, or the ``now`` given to
:meth:`KpiAccumulator.report`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, get_args

from sparklecomm.core.errors import InvalidInput

ServiceLevelBasis = Literal[
    "offered", "answered", "offered_less_short_abandons", "short_abandons_met"
]
"""What the service level divides by; the same names as :mod:`sparklecomm.wfm.erlang`.

``answered within T`` is always the numerator; short abandons are left out of every term.

* ``offered`` (default): / (answered + abandoned).
* ``answered``: / answered.
* ``offered_less_short_abandons``: / (answered + abandoned − abandoned within T).
* ``short_abandons_met``: (answered within T + abandoned within T) / (answered + abandoned).
"""

SL_BASES: Final[tuple[str, ...]] = get_args(ServiceLevelBasis)
DEFAULT_SERVICE_LEVEL_SECONDS: Final = 20.0
DEFAULT_SHORT_ABANDON_SECONDS: Final = 5.0

#: Key of the overall figures in the per-key tables (queue ids are non-empty strings).
OVERALL: Final = ""


class StreamEvent(Protocol):
    """What the accumulator needs of an event: ``NewEvent`` and ``Event`` both fit."""

    @property
    def type(self) -> str: ...

    @property
    def payload(self) -> Mapping[str, Any]: ...

    @property
    def time(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class JsonEvent:
    """An event read back from its JSON form (``{"type", "time", "payload"}``)."""

    type: str
    time: datetime | None
    payload: Mapping[str, Any]


def event_from_json(data: Mapping[str, Any]) -> JsonEvent:
    """An event from a JSON object with ``type``, ``time`` (ISO 8601) and ``payload``."""
    try:
        kind = data["type"]
        payload = data.get("payload") or {}
        when = data.get("time")
    except (KeyError, AttributeError):
        raise InvalidInput("An event needs a type, a time and a payload.", field="type") from None
    if not isinstance(kind, str) or not isinstance(payload, Mapping):
        raise InvalidInput("An event needs a string type and an object payload.", field="type")
    moment: datetime | None = None
    if when is not None:
        try:
            moment = datetime.fromisoformat(str(when))
        except ValueError:
            raise InvalidInput(f"Event time {when!r} is not ISO 8601.", field="time") from None
        if moment.tzinfo is None:
            raise InvalidInput("Event times must carry a time zone.", field="time")
    return JsonEvent(kind, moment, payload)


@dataclass(frozen=True, slots=True)
class KpiConfig:
    """How the KPIs are computed.

    Attributes:
        interval_seconds: length of the report intervals (buckets), aligned to UTC midnight;
            must divide a day (900 and 1800 are usual).
        service_level_seconds: the service-level answer time T. ``None`` (default): each
            queue's own ``service_level_seconds`` from its configuration event, or 20 s for a
            queue whose configuration was not seen.
        short_abandon_seconds: callers who hang up after waiting less than this are *short
            abandons*: counted, but left out of every rate (5 s by default; 0 keeps them in).
        sl_basis: what the service level divides by (see :data:`ServiceLevelBasis`).
        since / until: count only contacts that start waiting in ``[since, until)`` and agent
            time inside that window (``None``: unbounded). The simulator uses them to leave
            out its warm-up.
    """

    interval_seconds: int = 1800
    service_level_seconds: float | None = None
    short_abandon_seconds: float = DEFAULT_SHORT_ABANDON_SECONDS
    sl_basis: ServiceLevelBasis = "offered"
    since: datetime | None = None
    until: datetime | None = None

    def checked(self) -> KpiConfig:
        """``self``, or :class:`InvalidInput` naming the field at fault."""
        iv = self.interval_seconds
        if isinstance(iv, bool) or not isinstance(iv, int) or iv <= 0 or 86400 % iv:
            raise InvalidInput(
                f"interval_seconds must be a whole number of seconds dividing a day (got {iv!r}).",
                field="interval_seconds",
            )
        for name in ("service_level_seconds", "short_abandon_seconds"):
            value = getattr(self, name)
            if value is None and name == "service_level_seconds":
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise InvalidInput(f"{name} must be 0 or more seconds (got {value!r}).", field=name)
        if self.sl_basis not in SL_BASES:
            raise InvalidInput(
                f"Unknown service-level basis {self.sl_basis!r}; expected one of "
                f"{', '.join(SL_BASES)}.",
                field="sl_basis",
            )
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise InvalidInput(f"{name} must be a timezone-aware datetime.", field=name)
        if self.since is not None and self.until is not None and self.until < self.since:
            raise InvalidInput("until must not be before since.", field="until")
        return self


# --- the figures ------------------------------------------------------------------------------


class Tally:
    """Raw counts and sums for one (interval, queue) cell; :class:`Kpis` derives the rates."""

    __slots__ = (
        "abandoned",
        "abandoned_within",
        "answered",
        "answered_within",
        "available_seconds",
        "break_seconds",
        "busy_seconds",
        "callbacks_answered",
        "callbacks_cancelled",
        "callbacks_failed",
        "callbacks_requested",
        "csat_points",
        "diverted",
        "handled",
        "hold_seconds",
        "longest_wait",
        "offered",
        "outbound",
        "outbound_handle_seconds",
        "outbound_handled",
        "overflowed",
        "reserved_seconds",
        "short_abandoned",
        "surveys",
        "surveys_satisfied",
        "talk_seconds",
        "transferred",
        "wait_abandoned_seconds",
        "wait_answered_seconds",
        "wrap_up_seconds",
        "wrapup_seconds",
    )

    def __init__(self) -> None:
        self.offered = 0
        self.answered = 0
        self.answered_within = 0
        self.abandoned = 0  # every hang-up while waiting, short ones included
        self.short_abandoned = 0
        self.abandoned_within = 0  # not short, and waited at most T
        self.overflowed = 0
        self.diverted = 0
        self.callbacks_requested = 0
        self.callbacks_answered = 0
        self.callbacks_failed = 0
        self.callbacks_cancelled = 0
        self.transferred = 0
        self.handled = 0
        self.talk_seconds = 0.0
        self.hold_seconds = 0.0
        self.wrapup_seconds = 0.0
        self.wait_answered_seconds = 0.0
        self.wait_abandoned_seconds = 0.0  # not short
        self.longest_wait = 0.0
        # Agent time by state (overall cells only: agent state is not per queue).
        self.available_seconds = 0.0
        self.reserved_seconds = 0.0
        self.busy_seconds = 0.0
        self.wrap_up_seconds = 0.0
        self.break_seconds = 0.0
        # Contacts agents started themselves (start_outbound), apart from the above.
        self.outbound = 0
        self.outbound_handled = 0
        self.outbound_handle_seconds = 0.0
        # Satisfaction survey answers (``survey.answered``), by the time of the answer.
        self.surveys = 0
        self.csat_points = 0.0  # the answers' scores, each rescaled to 0-100
        self.surveys_satisfied = 0  # top-two-box answers

    def add(self, other: Tally) -> None:
        for name in Tally.__slots__:
            if name == "longest_wait":
                self.longest_wait = max(self.longest_wait, other.longest_wait)
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))

    def copy(self) -> Tally:
        out = Tally()
        out.add(self)
        return out


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


@dataclass(frozen=True, slots=True)
class Kpis:
    """The KPIs of one queue (or overall) over one interval (or all of them).

    Counts are contacts (legs, per queue); times are seconds. Rates are ``None`` where
    their denominator is zero. See docs/kpis.md for every definition.
    """

    offered: int
    answered: int
    abandoned: int
    short_abandoned: int
    answered_within: int
    abandoned_within: int
    overflowed: int
    diverted: int
    callbacks_requested: int
    callbacks_answered: int
    callbacks_failed: int
    callbacks_cancelled: int
    transferred: int
    handled: int
    talk_seconds: float
    hold_seconds: float
    wrapup_seconds: float
    wait_answered_seconds: float
    wait_abandoned_seconds: float
    longest_wait: float
    available_seconds: float
    reserved_seconds: float
    busy_seconds: float
    wrap_up_seconds: float
    break_seconds: float
    outbound: int
    outbound_handled: int
    outbound_handle_seconds: float
    surveys: int
    csat_points: float
    surveys_satisfied: int
    service_level_seconds: float | None
    sl_basis: ServiceLevelBasis = "offered"
    waiting: int | None = None  # still waiting at the report's "now" (totals only)
    oldest_waiting: float | None = None  # seconds, the longest current wait (totals only)

    @classmethod
    def from_tally(
        cls,
        tally: Tally,
        service_level_seconds: float | None,
        sl_basis: ServiceLevelBasis,
        *,
        waiting: int | None = None,
        oldest_waiting: float | None = None,
    ) -> Kpis:
        return cls(
            **{name: getattr(tally, name) for name in Tally.__slots__},
            service_level_seconds=service_level_seconds,
            sl_basis=sl_basis,
            waiting=waiting,
            oldest_waiting=oldest_waiting,
        )

    # Rates exclude short abandons: ``resolved`` is answered + abandoned − short abandons.
    @property
    def resolved(self) -> int:
        return self.answered + self.abandoned - self.short_abandoned

    @property
    def service_level(self) -> float | None:
        aw, abw = self.answered_within, self.abandoned_within
        basis = self.sl_basis
        if basis == "offered":
            return _ratio(aw, self.resolved)
        if basis == "answered":
            return _ratio(aw, self.answered)
        if basis == "offered_less_short_abandons":
            return _ratio(aw, self.resolved - abw)
        return _ratio(aw + abw, self.resolved)

    @property
    def abandon_rate(self) -> float | None:
        return _ratio(self.abandoned - self.short_abandoned, self.resolved)

    @property
    def asa(self) -> float | None:
        """Average speed of answer: mean wait of answered contacts."""
        return _ratio(self.wait_answered_seconds, self.answered)

    @property
    def average_abandon_wait(self) -> float | None:
        """Mean wait of callers who hung up (short abandons left out)."""
        return _ratio(self.wait_abandoned_seconds, self.abandoned - self.short_abandoned)

    @property
    def aht(self) -> float | None:
        """Average handle time: (talk + hold + wrap-up) / handled agent legs."""
        return _ratio(self.talk_seconds + self.hold_seconds + self.wrapup_seconds, self.handled)

    @property
    def outbound_aht(self) -> float | None:
        """Average handle time of outbound contacts (talk + hold + wrap-up)."""
        return _ratio(self.outbound_handle_seconds, self.outbound_handled)

    @property
    def average_talk(self) -> float | None:
        return _ratio(self.talk_seconds, self.handled)

    @property
    def average_hold(self) -> float | None:
        return _ratio(self.hold_seconds, self.handled)

    @property
    def average_wrapup(self) -> float | None:
        return _ratio(self.wrapup_seconds, self.handled)

    @property
    def transfer_rate(self) -> float | None:
        """Transfers per handled agent leg."""
        return _ratio(self.transferred, self.handled)

    @property
    def csat(self) -> float | None:
        """Customer satisfaction: the mean score rescaled to 0–100, ``(score − 1) /
        (max_score − 1) × 100`` per answer, so answers on different scales average."""
        return _ratio(self.csat_points, self.surveys)

    @property
    def csat_satisfied(self) -> float | None:
        """Share of satisfied answers: the top two values of a scale of 4 points or more
        (4–5 of 5, 9–10 of 10), the top value of a 2- or 3-point scale."""
        return _ratio(self.surveys_satisfied, self.surveys)

    @property
    def survey_response_rate(self) -> float | None:
        """Survey answers per answered contact."""
        return _ratio(self.surveys, self.answered)

    @property
    def staffed_seconds(self) -> float:
        """Agent time logged in and not on break."""
        return (
            self.available_seconds
            + self.reserved_seconds
            + self.busy_seconds
            + self.wrap_up_seconds
        )

    @property
    def logged_in_seconds(self) -> float:
        return self.staffed_seconds + self.break_seconds

    @property
    def occupancy(self) -> float | None:
        """(busy + wrap-up) / (logged in − break)."""
        return _ratio(self.busy_seconds + self.wrap_up_seconds, self.staffed_seconds)

    @property
    def utilisation(self) -> float | None:
        """(busy + wrap-up) / logged in (breaks included)."""
        return _ratio(self.busy_seconds + self.wrap_up_seconds, self.logged_in_seconds)

    def to_dict(self) -> dict[str, Any]:
        """Counts, sums and rates as JSON-ready data (``None`` where undefined)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in RATES:
            out[name] = getattr(self, name)
        out["staffed_seconds"] = self.staffed_seconds
        out["logged_in_seconds"] = self.logged_in_seconds
        return out


#: The derived figures :meth:`Kpis.to_dict` adds to the counts.
RATES: Final[tuple[str, ...]] = (
    "service_level",
    "abandon_rate",
    "asa",
    "average_abandon_wait",
    "aht",
    "outbound_aht",
    "average_talk",
    "average_hold",
    "average_wrapup",
    "transfer_rate",
    "occupancy",
    "utilisation",
    "csat",
    "csat_satisfied",
    "survey_response_rate",
)


@dataclass(frozen=True, slots=True)
class IntervalKpis:
    """One report interval: its start, the overall figures and each queue's."""

    start: datetime
    overall: Kpis
    queues: dict[str, Kpis]


@dataclass(frozen=True, slots=True)
class KpiReport:
    """Everything the accumulator knows at ``now``: totals and per-interval figures."""

    now: datetime | None
    interval_seconds: int
    overall: Kpis
    queues: dict[str, Kpis]
    intervals: list[IntervalKpis] = field(default_factory=list)

    def to_dict(self, *, intervals: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "now": self.now.isoformat() if self.now else None,
            "interval_seconds": self.interval_seconds,
            "overall": self.overall.to_dict(),
            "queues": {q: k.to_dict() for q, k in self.queues.items()},
        }
        if intervals:
            out["intervals"] = [
                {
                    "start": iv.start.isoformat(),
                    "overall": iv.overall.to_dict(),
                    "queues": {q: k.to_dict() for q, k in iv.queues.items()},
                }
                for iv in self.intervals
            ]
        return out


# --- the accumulator --------------------------------------------------------------------------

_INBOUND = 0  # a caller waiting to be answered (new, overflowed or transferred in)
_CALLBACK = 1  # a callback the centre owes the customer


class _Leg:
    """A contact waiting in one queue: where and when it started, for attribution."""

    __slots__ = ("bucket", "counted", "entered", "kind", "queue_id")

    def __init__(
        self, queue_id: str, bucket: int, entered: float, kind: int, counted: bool
    ) -> None:
        self.queue_id = queue_id
        self.bucket = bucket
        self.entered = entered
        self.kind = kind
        self.counted = counted


class _Cells(dict[tuple[int, str], Tally]):
    """The (interval, key) cells; ``cells[key]`` makes a missing one (in first-use order)."""

    __slots__ = ()

    def __missing__(self, key: tuple[int, str]) -> Tally:
        cell = self[key] = Tally()
        return cell


_NO_MOMENT: Final = object()

_AGENT_STATE_SLOT: Final[dict[str, str]] = {
    "available": "available_seconds",
    "reserved": "reserved_seconds",
    "busy": "busy_seconds",
    "wrap_up": "wrap_up_seconds",
    "break": "break_seconds",
}


def _compiled_core(cfg: KpiConfig, since: float, until: float, compiled: bool | None) -> Any:
    """A compiled feed for ``cfg`` (``KpiCore``), or None for the Python one."""
    if compiled is False:
        return None
    from sparklecomm.acd.compiled import routing_core

    if routing_core("compiled" if compiled else None) != "compiled":
        return None
    from sparklecomm.acd import _acd_core

    return _acd_core.KpiCore(
        float(cfg.interval_seconds),
        float(cfg.short_abandon_seconds),
        None if cfg.service_level_seconds is None else float(cfg.service_level_seconds),
        since,
        until,
    )


class KpiAccumulator:
    """Feed routing events in stream order; read :meth:`report` (or :meth:`totals`) any time.

    Memory grows with the number of (interval, queue) cells and the contacts in progress,
    not with the number of events.

    The feed runs compiled (``KpiCore`` in rust/acd_core/src/kpi.rs, a line-by-line port of
    the handlers below, which stay the reference) when the compiled core is built and
    ``compiled`` is not False; ``compiled=None`` follows ``SPARKLECOMM_ROUTING_CORE``
    (:func:`sparklecomm.acd.compiled.routing_core`). Reports are the same either way: this
    class computes them from the state the core hands over.
    """

    def __init__(self, config: KpiConfig | None = None, *, compiled: bool | None = None) -> None:
        self.config = (config or KpiConfig()).checked()
        cfg = self.config
        self._iv = float(cfg.interval_seconds)
        self._short = float(cfg.short_abandon_seconds)
        self._sl_fixed = cfg.service_level_seconds
        self._since = cfg.since.timestamp() if cfg.since is not None else -math.inf
        self._until = cfg.until.timestamp() if cfg.until is not None else math.inf
        self._cells = _Cells()
        self._thresholds: dict[str, float] = {}
        self._legs: dict[str, _Leg] = {}  # open legs by interaction id
        self._contacts: dict[str, tuple[int, bool]] = {}  # unresolved contacts: (bucket, counted)
        self._work: dict[tuple[str, str], tuple[str, int, bool]] = {}  # agent legs before wrap-up
        self._outbound: set[str] = set()  # outbound contacts not yet wrapped up
        self._agents: dict[str, tuple[str, float]] = {}  # agent -> (state, since)
        self._now: float | None = None
        self._last_moment: datetime | None = None
        self._last_ts = 0.0
        self._events = 0
        self._core: Any = _compiled_core(cfg, self._since, self._until, compiled)
        self._handlers: dict[str, Callable[[Mapping[str, Any], float], None]] = {
            "interaction.created": self._on_created,
            "interaction.overflowed": self._on_overflowed,
            "interaction.queued": self._on_queued,
            "interaction.accepted": self._on_accepted,
            "interaction.abandoned": self._on_abandoned,
            "interaction.diverted": self._on_diverted,
            "interaction.callback_requested": self._on_callback_requested,
            "callback.exhausted": self._on_callback_exhausted,
            "callback.attempt_failed": self._on_callback_failed,
            "interaction.transferred": self._on_transferred,
            "interaction.wrapup_ended": self._on_wrapup_ended,
            "agent.state_changed": self._on_state_changed,
            "queue.created": self._on_queue_config,
            "queue.updated": self._on_queue_config,
            "survey.answered": self._on_survey_answered,
        }

    # -- feeding -----------------------------------------------------------------------------

    @property
    def events(self) -> int:
        """Events fed so far."""
        return self._core.events if self._core is not None else self._events

    @property
    def compiled(self) -> bool:
        """Whether the feed runs compiled (see the class documentation)."""
        return self._core is not None

    @property
    def feeder(self) -> Callable[[Iterable[StreamEvent]], None]:
        """:meth:`feed_all`, or the compiled feed itself (one call less per batch: for a
        caller feeding many small batches, such as the simulator)."""
        return self._core.feed_all if self._core is not None else self.feed_all

    def feed(self, event: StreamEvent) -> None:
        """Take one event into account (events must come in stream order)."""
        if self._core is not None:
            self._core.feed_all((event,))
            return
        moment = event.time
        if moment is None:
            if self._now is None:
                raise InvalidInput("The first event fed needs a time.", field="time")
            ts = self._now
        else:
            # The events of one engine command share one datetime: convert it once.
            if moment is self._last_moment:
                ts = self._last_ts
            else:
                ts = self._last_ts = moment.timestamp()
                self._last_moment = moment
            if self._now is None or ts > self._now:
                self._now = ts
        self._events += 1
        handler = self._handlers.get(event.type)
        if handler is not None:
            handler(event.payload, ts)

    def feed_all(self, events: Iterable[StreamEvent]) -> None:
        """Take events into account in order (as :meth:`feed` does, one after the other)."""
        if self._core is not None:
            self._core.feed_all(events)
            return
        handlers = self._handlers
        now = self._now
        # None is a time of its own below: start from a moment no event has.
        last_moment: object = self._last_moment or _NO_MOMENT
        last_ts = self._last_ts
        count = 0
        try:
            for event in events:
                moment = event.time
                if moment is last_moment:
                    # The events of one engine command share one datetime: all is done.
                    ts = last_ts
                elif moment is None:
                    if now is None:
                        raise InvalidInput("The first event fed needs a time.", field="time")
                    ts = now
                else:
                    ts = last_ts = moment.timestamp()
                    last_moment = moment
                    if now is None or ts > now:
                        now = ts
                count += 1
                handler = handlers.get(event.type)
                if handler is not None:
                    handler(event.payload, ts)
        finally:
            self._now = now
            if isinstance(last_moment, datetime):
                self._last_moment = last_moment
            self._last_ts = last_ts
            self._events += count

    # -- helpers -----------------------------------------------------------------------------

    def _bucket(self, ts: float) -> int:
        return int(ts // self._iv)

    def _counted(self, ts: float) -> bool:
        return self._since <= ts < self._until

    def _threshold(self, queue_id: str) -> float:
        if self._sl_fixed is not None:
            return self._sl_fixed
        return self._thresholds.get(queue_id, DEFAULT_SERVICE_LEVEL_SECONDS)

    def _open_leg(self, iid: str, queue_id: str, ts: float, kind: int) -> None:
        counted = self._counted(ts)
        bucket = self._bucket(ts)
        self._legs[iid] = _Leg(queue_id, bucket, ts, kind, counted)
        if counted and kind == _INBOUND:
            self._cells[bucket, queue_id].offered += 1

    # -- handlers ----------------------------------------------------------------------------

    def _on_queue_config(self, p: Mapping[str, Any], ts: float) -> None:
        config = p.get("config")
        if isinstance(config, Mapping):
            sl = config.get("service_level_seconds")
            if isinstance(sl, int | float) and not isinstance(sl, bool):
                self._thresholds[str(p["queue_id"])] = float(sl)

    def _on_created(self, p: Mapping[str, Any], ts: float) -> None:
        # _open_leg inlined: every contact starts here.
        iid = p["interaction_id"]
        queue_id = p["queue_id"]
        counted = self._since <= ts < self._until
        bucket = int(ts // self._iv)
        if p.get("direction") == "outbound":  # started by the agent: never offered
            self._outbound.add(iid)
            if counted:
                self._cells[bucket, queue_id].outbound += 1
                self._cells[bucket, OVERALL].outbound += 1
            return
        self._contacts[iid] = (bucket, counted)
        if counted:
            self._cells[bucket, OVERALL].offered += 1
        self._legs[iid] = _Leg(queue_id, bucket, ts, _INBOUND, counted)
        if counted:
            self._cells[bucket, queue_id].offered += 1

    def _on_overflowed(self, p: Mapping[str, Any], ts: float) -> None:
        iid = p["interaction_id"]
        leg = self._legs.pop(iid, None)
        kind = _INBOUND
        if leg is not None:
            kind = leg.kind
            if leg.counted:
                self._cells[leg.bucket, leg.queue_id].overflowed += 1
        self._open_leg(iid, p["queue_id"], ts, kind)

    def _on_queued(self, p: Mapping[str, Any], ts: float) -> None:
        # A blind transfer to an agent that was not taken comes back to its queue.
        if p.get("reason") == "transfer_returned":
            self._open_leg(p["interaction_id"], p["queue_id"], ts, _INBOUND)

    def _on_transferred(self, p: Mapping[str, Any], ts: float) -> None:
        iid = p["interaction_id"]
        agent = p.get("agent_id")
        work = self._work.get((iid, agent)) if isinstance(agent, str) else None
        if work is not None:
            queue_id, bucket, counted = work
        else:
            queue_id, bucket, counted = p["queue_id"], self._bucket(ts), self._counted(ts)
        if counted:
            self._cells[bucket, queue_id].transferred += 1
            self._cells[bucket, OVERALL].transferred += 1
        to_queue = p.get("to_queue_id")
        if to_queue:
            self._open_leg(iid, to_queue, ts, _INBOUND)

    def _resolve_contact(self, iid: str) -> tuple[int, bool] | None:
        return self._contacts.pop(iid, None)

    def _on_accepted(self, p: Mapping[str, Any], ts: float) -> None:
        iid = p["interaction_id"]
        queue_id = p["queue_id"]
        leg = self._legs.pop(iid, None)
        sl_fixed = self._sl_fixed
        if leg is not None:
            bucket, counted = leg.bucket, leg.counted
            if counted:
                cell = self._cells[bucket, leg.queue_id]
                if leg.kind == _CALLBACK:
                    cell.callbacks_answered += 1
                else:
                    wait = p.get("queue_wait_seconds")
                    wait = float(wait) if wait is not None else ts - leg.entered
                    cell.answered += 1
                    cell.wait_answered_seconds += wait
                    threshold = (
                        sl_fixed
                        if sl_fixed is not None
                        else self._thresholds.get(leg.queue_id, DEFAULT_SERVICE_LEVEL_SECONDS)
                    )
                    if wait <= threshold:
                        cell.answered_within += 1
                    if wait > cell.longest_wait:
                        cell.longest_wait = wait
        else:
            bucket, counted = int(ts // self._iv), self._since <= ts < self._until
        contact = self._contacts.pop(iid, None) if leg is None or leg.kind == _INBOUND else None
        if contact is not None and contact[1]:
            cell = self._cells[contact[0], OVERALL]
            wait = float(p.get("wait_seconds") or 0.0)
            cell.answered += 1
            cell.wait_answered_seconds += wait
            threshold = (
                sl_fixed
                if sl_fixed is not None
                else self._thresholds.get(queue_id, DEFAULT_SERVICE_LEVEL_SECONDS)
            )
            if wait <= threshold:
                cell.answered_within += 1
            if wait > cell.longest_wait:
                cell.longest_wait = wait
        elif leg is not None and leg.kind == _CALLBACK and leg.counted:
            self._cells[leg.bucket, OVERALL].callbacks_answered += 1
        agent = p.get("agent_id")
        if isinstance(agent, str):
            self._work[(iid, agent)] = (queue_id, bucket, counted)

    def _abandon_tally(self, cell: Tally, wait: float, threshold: float) -> None:
        cell.abandoned += 1
        if wait < self._short:
            cell.short_abandoned += 1
        else:
            cell.wait_abandoned_seconds += wait
            if wait <= threshold:
                cell.abandoned_within += 1
        if wait > cell.longest_wait:
            cell.longest_wait = wait

    def _on_abandoned(self, p: Mapping[str, Any], ts: float) -> None:
        iid = p["interaction_id"]
        leg = self._legs.pop(iid, None)
        if leg is not None and leg.kind == _CALLBACK:
            if leg.counted:
                self._cells[leg.bucket, leg.queue_id].callbacks_cancelled += 1
                self._cells[leg.bucket, OVERALL].callbacks_cancelled += 1
            return
        if leg is not None and leg.counted:
            wait = p.get("queue_wait_seconds")
            wait = float(wait) if wait is not None else ts - leg.entered
            self._abandon_tally(
                self._cells[leg.bucket, leg.queue_id], wait, self._threshold(leg.queue_id)
            )
        contact = self._resolve_contact(iid)
        if contact is not None and contact[1]:
            wait = float(p.get("wait_seconds") or 0.0)
            self._abandon_tally(
                self._cells[contact[0], OVERALL], wait, self._threshold(p["queue_id"])
            )

    def _on_diverted(self, p: Mapping[str, Any], ts: float) -> None:
        iid = p["interaction_id"]
        leg = self._legs.pop(iid, None)
        if leg is not None and leg.counted:
            self._cells[leg.bucket, leg.queue_id].diverted += 1
        contact = self._resolve_contact(iid)
        if contact is not None and contact[1]:
            self._cells[contact[0], OVERALL].diverted += 1

    def _on_callback_requested(self, p: Mapping[str, Any], ts: float) -> None:
        iid = p["interaction_id"]
        leg = self._legs.pop(iid, None)
        if leg is None:
            leg = _Leg(p["queue_id"], self._bucket(ts), ts, _INBOUND, self._counted(ts))
        if leg.counted:
            self._cells[leg.bucket, leg.queue_id].callbacks_requested += 1
        contact = self._resolve_contact(iid)
        if contact is not None and contact[1]:
            self._cells[contact[0], OVERALL].callbacks_requested += 1
        # The callback keeps the caller's arrival interval.
        self._legs[iid] = _Leg(leg.queue_id, leg.bucket, ts, _CALLBACK, leg.counted)

    def _on_callback_failed(self, p: Mapping[str, Any], ts: float) -> None:
        # The agent's dial-out leg ends without wrap-up; the callback waits again (or not).
        iid = p["interaction_id"]
        agent = p.get("agent_id")
        work = self._work.pop((iid, agent), None) if isinstance(agent, str) else None
        if p.get("retry_at") is not None and iid not in self._legs:
            bucket, counted = (work[1], work[2]) if work else (self._bucket(ts), self._counted(ts))
            self._legs[iid] = _Leg(p["queue_id"], bucket, ts, _CALLBACK, counted)

    def _on_callback_exhausted(self, p: Mapping[str, Any], ts: float) -> None:
        iid = p["interaction_id"]
        leg = self._legs.pop(iid, None)
        if leg is not None:
            bucket, counted, queue_id = leg.bucket, leg.counted, leg.queue_id
        else:
            bucket, counted, queue_id = self._bucket(ts), self._counted(ts), p["queue_id"]
        if counted:
            self._cells[bucket, queue_id].callbacks_failed += 1
            self._cells[bucket, OVERALL].callbacks_failed += 1

    def _on_wrapup_ended(self, p: Mapping[str, Any], ts: float) -> None:
        iid = p["interaction_id"]
        agent = p.get("agent_id")
        work = self._work.pop((iid, agent), None) if isinstance(agent, str) else None
        if work is not None:
            queue_id, bucket, counted = work
        else:
            queue_id, bucket, counted = p["queue_id"], self._bucket(ts), self._counted(ts)
        outbound = iid in self._outbound
        if outbound:
            self._outbound.discard(iid)
        if not counted:
            return
        talk = float(p.get("talk_seconds") or 0.0)
        hold = float(p.get("hold_seconds") or 0.0)
        wrap = float(p.get("wrapup_seconds") or 0.0)
        if outbound:  # the agent's own contact: apart from the inbound handle times
            for key in (queue_id, OVERALL):
                cell = self._cells[bucket, key]
                cell.outbound_handled += 1
                cell.outbound_handle_seconds += talk + hold + wrap
            return
        cell = self._cells[bucket, queue_id]
        cell.handled += 1
        cell.talk_seconds += talk
        cell.hold_seconds += hold
        cell.wrapup_seconds += wrap
        cell = self._cells[bucket, OVERALL]
        cell.handled += 1
        cell.talk_seconds += talk
        cell.hold_seconds += hold
        cell.wrapup_seconds += wrap

    def _on_survey_answered(self, p: Mapping[str, Any], ts: float) -> None:
        # Counted where and when the customer answered (an answer can come days after the
        # contact, by link): its queue's cell and the overall one of the answer's interval.
        if not self._since <= ts < self._until:
            return
        score, top = p.get("score"), p.get("max_score")
        if type(score) is not int or type(top) is not int or not 1 <= score <= top or top < 2:
            return  # not an answer the survey service would have stored
        points = (score - 1) * 100.0 / (top - 1)
        satisfied = score >= top - 1 if top >= 4 else score == top
        bucket = int(ts // self._iv)
        queue_id = p.get("queue_id")
        for key in (queue_id, OVERALL) if isinstance(queue_id, str) and queue_id else (OVERALL,):
            cell = self._cells[bucket, key]
            cell.surveys += 1
            cell.csat_points += points
            if satisfied:
                cell.surveys_satisfied += 1

    def _on_state_changed(self, p: Mapping[str, Any], ts: float) -> None:
        agent = p["agent_id"]
        agents = self._agents
        previous = agents.get(agent)
        if previous is None:
            since_text = p.get("previous_since")
            state = p.get("previous_state")
            if isinstance(since_text, str) and isinstance(state, str):
                try:
                    previous = (state, datetime.fromisoformat(since_text).timestamp())
                except ValueError:
                    previous = None
        if previous is not None:
            state, start = previous
            slot = _AGENT_STATE_SLOT.get(state)
            if slot is not None:
                # _add_agent_time inlined for a spell within one interval (nearly all).
                since = self._since
                if since > start:
                    start = since
                until = self._until
                end = until if until < ts else ts
                if start < end:
                    bucket = int(start // self._iv)
                    if end <= (bucket + 1) * self._iv:
                        cell = self._cells[bucket, OVERALL]
                        setattr(cell, slot, getattr(cell, slot) + (end - start))
                    else:
                        self._add_agent_time(self._cells, state, start, end)
        agents[agent] = (p["state"], ts)

    def _add_agent_time(
        self, cells: dict[tuple[int, str], Tally], state: str, start: float, end: float
    ) -> None:
        slot = _AGENT_STATE_SLOT.get(state)
        if slot is None:
            return
        # max() and min() spelled out (what they return on ties included): cheaper.
        since = self._since
        if since > start:
            start = since
        until = self._until
        if until < end:
            end = until
        iv = self._iv
        while start < end:
            bucket = int(start // iv)
            stop = (bucket + 1) * iv
            if not stop < end:
                stop = end
            key = (bucket, OVERALL)
            cell = cells.get(key)
            if cell is None:
                cell = cells[key] = Tally()
            setattr(cell, slot, getattr(cell, slot) + (stop - start))
            start = stop

    # -- reading -----------------------------------------------------------------------------

    def _pull(self) -> None:
        """Take over the compiled core's state (before reading it): the same structures the
        Python handlers keep, in the same order."""
        core = self._core
        if core is None:
            return
        names = core.tally_fields()
        cells = _Cells()
        for bucket, key, values in core.cells():
            tally = Tally()
            for name, value in zip(names, values, strict=True):
                setattr(tally, name, value)
            cells[bucket, key] = tally
        self._cells = cells
        self._legs = {
            iid: _Leg(queue_id, bucket, entered, kind, counted)
            for iid, queue_id, bucket, entered, kind, counted in core.legs()
        }
        self._agents = {agent: (state, since) for agent, state, since in core.agents()}
        self._thresholds = dict(core.thresholds())
        self._now = core.now

    @property
    def now(self) -> datetime | None:
        """The time of the latest event fed."""
        if self._core is not None:
            self._now = self._core.now
        return None if self._now is None else datetime.fromtimestamp(self._now, UTC)

    def report(self, now: datetime | None = None, *, intervals: bool = True) -> KpiReport:
        """Totals and (unless told otherwise) per-interval figures at ``now``.

        ``now`` (default: the latest event's time) closes the agent states still open and
        measures the contacts still waiting; nothing is changed, so reading is repeatable.
        """
        self._pull()
        end = now.timestamp() if now is not None else self._now
        cells: dict[tuple[int, str], Tally] = self._cells
        if end is not None and self._agents:
            cells = {k: (v.copy() if k[1] == OVERALL else v) for k, v in cells.items()}
            for state, since in self._agents.values():
                if end > since:
                    self._add_agent_time(cells, state, since, end)
        basis = self.config.sl_basis
        totals: dict[str, Tally] = {}
        by_bucket: dict[int, dict[str, Tally]] = {}
        for (bucket, key), cell in cells.items():
            total = totals.get(key)
            if total is None:
                total = totals[key] = Tally()
            total.add(cell)
            by_bucket.setdefault(bucket, {})[key] = cell
        waiting: dict[str, list[float]] = {}
        for leg in self._legs.values():
            if leg.kind == _INBOUND and leg.counted:
                waiting.setdefault(leg.queue_id, []).append(leg.entered)
                waiting.setdefault(OVERALL, []).append(leg.entered)
        if end is not None:
            for key in waiting:
                totals.setdefault(key, Tally())

        def live(key: str) -> tuple[int | None, float | None]:
            if end is None:
                return None, None
            starts = waiting.get(key)
            if not starts:
                return 0, None
            return len(starts), max(0.0, end - min(starts))

        def kpis(key: str, tally: Tally, *, total: bool) -> Kpis:
            threshold = self._sl_fixed
            if threshold is None and key != OVERALL:
                threshold = self._threshold(key)
            count, oldest = live(key) if total else (None, None)
            return Kpis.from_tally(tally, threshold, basis, waiting=count, oldest_waiting=oldest)

        queue_ids = sorted(k for k in totals if k != OVERALL)
        overall = kpis(OVERALL, totals.get(OVERALL, Tally()), total=True)
        queues = {q: kpis(q, totals[q], total=True) for q in queue_ids}
        rows: list[IntervalKpis] = []
        if intervals:
            for bucket in sorted(by_bucket):
                row = by_bucket[bucket]
                rows.append(
                    IntervalKpis(
                        start=datetime.fromtimestamp(bucket * self._iv, UTC),
                        overall=kpis(OVERALL, row.get(OVERALL, Tally()), total=False),
                        queues={
                            q: kpis(q, row[q], total=False) for q in sorted(row) if q != OVERALL
                        },
                    )
                )
        return KpiReport(
            now=None if end is None else datetime.fromtimestamp(end, UTC),
            interval_seconds=self.config.interval_seconds,
            overall=overall,
            queues=queues,
            intervals=rows,
        )

    def totals(self, now: datetime | None = None) -> KpiReport:
        """:meth:`report` without the per-interval rows (cheaper for a wallboard)."""
        return self.report(now, intervals=False)
