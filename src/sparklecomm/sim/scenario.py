"""Simulation scenarios: the YAML a planner writes, checked into frozen objects.

A scenario says how long to simulate, which queues and agents exist (skills, shifts,
shrinkage) and how contacts arrive (Poisson rate or a forecast file, handle-time and
patience distributions, callbacks, transfers). Every mistake raises
:class:`~sparklecomm.sim.errors.ScenarioError` naming the key, e.g.
``arrivals[0].handle_time.mean must be greater than 0 (got -3)``. The format is documented
in docs/wfm.md ("Simulating a day").
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import yaml

from sparklecomm.acd import Channel, Strategy
from sparklecomm.core.errors import InvalidInput
from sparklecomm.core.hours import hours_from_spec, spec_of
from sparklecomm.sim.distributions import Constant, Distribution, parse_distribution
from sparklecomm.sim.errors import ScenarioError, check_int, check_number

DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, midnight UTC
DAY = 86400.0
SL_BASES = ("offered", "answered", "offered_less_short_abandons", "short_abandons_met")


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A queue. ``wrapup`` None: no after-call work; a constant runs on the engine's timer."""

    name: str
    strategy: Strategy = Strategy.LONGEST_IDLE
    wrapup: Distribution | None = None
    service_level_threshold: float | None = None  # None: the scenario's
    max_wait: float | None = None
    overflow_to: str | None = None
    best_skill: str | None = None
    hours: Mapping[str, Any] | None = None  # business hours (timezone, weekly, exceptions)
    closed_to: str | None = None  # while closed, new contacts overflow there (None: diverted)


@dataclass(frozen=True, slots=True)
class QueueMembership:
    queue: str
    penalty: int = 0


@dataclass(frozen=True, slots=True)
class Shift:
    """Working hours every simulated day, seconds after midnight (``end < start``: overnight)."""

    start: float
    end: float


@dataclass(frozen=True, slots=True)
class WorkPeriod:
    """One rostered stretch of work, seconds from the scenario start: log in at ``login``,
    out at ``logout``, off the phones during each ``(start, end)`` of ``breaks``."""

    login: float
    logout: float
    breaks: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class AgentGroup:
    """``count`` identical agents; ids are ``{name}-{n}`` (n from 1).

    ``answer_time`` is how long an offer rings before the agent accepts it (None: at
    once); an offer is declined with probability ``reject`` and left ringing until the
    engine's offer timeout with probability ``no_answer``. ``work`` (from a roster) replaces
    ``shift``: the group works that one period, with its breaks.
    """

    name: str
    count: int
    queues: tuple[QueueMembership, ...]
    skills: Mapping[str, int] = field(default_factory=dict)
    shift: Shift | None = None
    shrinkage: float = 0.0  # share of on-shift time on random breaks
    break_length: float = 900.0
    answer_time: Distribution | None = None
    reject: float = 0.0
    no_answer: float = 0.0
    work: WorkPeriod | None = None

    @property
    def rings(self) -> bool:
        """Whether offers to these agents take time or may go unanswered."""
        return self.answer_time is not None or self.reject > 0 or self.no_answer > 0

    def agent_ids(self) -> list[str]:
        return [f"{self.name}-{n}" for n in range(1, self.count + 1)]


@dataclass(frozen=True, slots=True)
class RateSegment:
    """Poisson arrivals at ``rate`` per second over ``[start, end)`` (seconds from the start)."""

    start: float
    end: float
    rate: float


@dataclass(frozen=True, slots=True)
class CallbackSpec:
    """Callers still waiting after ``after`` seconds ask, with probability ``fraction``, for a
    callback ``delay`` seconds later (0: as soon as an agent is free, keeping their place)."""

    fraction: float
    after: float
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class TransferSpec:
    """A ``fraction`` of answered contacts are transferred to queue ``to`` after their talk."""

    fraction: float
    to: str


@dataclass(frozen=True, slots=True)
class ArrivalSpec:
    queue: str
    segments: tuple[RateSegment, ...]
    handle_time: Distribution
    patience: Distribution | None = None  # None: callers never hang up
    channel: Channel = Channel.VOICE
    priority: int = 0
    required_skills: str = ""
    callback: CallbackSpec | None = None
    transfer: TransferSpec | None = None
    source: str = ""

    @property
    def expected_calls(self) -> float:
        return math.fsum(s.rate * (s.end - s.start) for s in self.segments)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A checked scenario; build it with :func:`load_scenario` or :func:`parse_scenario`."""

    duration: float
    queues: tuple[QueueSpec, ...]
    agents: tuple[AgentGroup, ...]
    arrivals: tuple[ArrivalSpec, ...]
    seed: int = 1
    start: datetime = DEFAULT_START
    warmup: float = 0.0
    drain: float = 7200.0
    interval: int = 1800
    service_level_threshold: float = 20.0
    short_abandon_threshold: float = 5.0
    sl_basis: str = "offered"

    @property
    def expected_calls(self) -> float:
        return math.fsum(a.expected_calls for a in self.arrivals)

    @property
    def agent_count(self) -> int:
        return sum(g.count for g in self.agents)

    def threshold(self, queue: QueueSpec) -> float:
        if queue.service_level_threshold is not None:
            return queue.service_level_threshold
        return self.service_level_threshold


# --- parsing ----------------------------------------------------------------------------------

_TOP_KEYS = {
    "seed",
    "duration",
    "start",
    "warmup",
    "drain",
    "interval",
    "service_level_threshold",
    "short_abandon_threshold",
    "sl_basis",
    "queues",
    "agents",
    "arrivals",
}
_QUEUE_KEYS = {
    "name",
    "strategy",
    "wrapup",
    "service_level_threshold",
    "max_wait",
    "overflow_to",
    "best_skill",
    "hours",
    "closed_to",
}
_AGENT_KEYS = {
    "name",
    "count",
    "queues",
    "skills",
    "shift",
    "shrinkage",
    "break_length",
    "answer_time",
    "reject",
    "no_answer",
}
_ARRIVAL_KEYS = {
    "queue",
    "rate_per_hour",
    "forecast",
    "forecast_interval",
    "scale",
    "channel",
    "priority",
    "required_skills",
    "handle_time",
    "patience",
    "callback",
    "transfer",
}


def _mapping(raw: object, where: str, keys: set[str]) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where} must be a mapping (got {type(raw).__name__})", where)
    unknown = sorted(str(k) for k in raw if k not in keys)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ScenarioError(
            f"{prefix}{unknown[0]}: unknown key (expected one of {', '.join(sorted(keys))})",
            f"{prefix}{unknown[0]}",
        )
    return raw


def _list(raw: object, where: str, *, allow_empty: bool = False) -> Sequence[Any]:
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise ScenarioError(f"{where} must be a list", where)
    if not raw and not allow_empty:
        raise ScenarioError(f"{where} must not be empty", where)
    return raw


def _name(raw: object, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 100:
        raise ScenarioError(f"{where} must be a non-empty name (got {raw!r})", where)
    return raw.strip()


def _moment(raw: object, where: str) -> datetime:
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, date):
        moment = datetime.combine(raw, time())
    elif isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise ScenarioError(
                f"{where} must be an ISO 8601 date-time (got {raw!r})", where
            ) from None
    else:
        raise ScenarioError(f"{where} must be an ISO 8601 date-time (got {raw!r})", where)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # wall-clock times are taken as UTC
    return moment.astimezone(UTC)


def _time_of_day(raw: object, where: str) -> float:
    """``"08:30"``, ``"08:30:15"`` or seconds after midnight."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return check_number(raw, where, minimum=0.0, maximum=DAY)
    if isinstance(raw, str):
        parts = raw.strip().split(":")
        if 2 <= len(parts) <= 3 and all(p.isdigit() for p in parts):
            h, m = int(parts[0]), int(parts[1])
            s = int(parts[2]) if len(parts) == 3 else 0
            if (h < 24 and m < 60 and s < 60) or (h == 24 and m == 0 and s == 0):
                return float(h * 3600 + m * 60 + s)
    raise ScenarioError(f"{where} must be a time of day like '08:30' (got {raw!r})", where)


def _fraction(raw: object, where: str, *, below_one: bool = False) -> float:
    value = check_number(raw, where, minimum=0.0, maximum=1.0)
    if below_one and value >= 1.0:
        raise ScenarioError(f"{where} must be below 1 (got {raw!r})", where)
    return value


def _queue(raw: object, where: str) -> QueueSpec:
    data = _mapping(raw, where, _QUEUE_KEYS)
    if "name" not in data:
        raise ScenarioError(f"{where}.name is missing", f"{where}.name")
    name = _name(data["name"], f"{where}.name")
    strategy = Strategy.LONGEST_IDLE
    if "strategy" in data:
        try:
            strategy = Strategy(str(data["strategy"]))
        except ValueError:
            names = ", ".join(s.value for s in Strategy)
            raise ScenarioError(
                f"{where}.strategy must be one of {names} (got {data['strategy']!r})",
                f"{where}.strategy",
            ) from None
    wrapup = None
    if data.get("wrapup") is not None:
        wrapup = parse_distribution(data["wrapup"], f"{where}.wrapup", positive_mean=False)
    threshold = None
    if data.get("service_level_threshold") is not None:
        threshold = check_number(
            data["service_level_threshold"], f"{where}.service_level_threshold", minimum=0.0
        )
    max_wait = None
    if data.get("max_wait") is not None:
        max_wait = check_number(data["max_wait"], f"{where}.max_wait", minimum=0.0)
    overflow = None
    if data.get("overflow_to") is not None:
        overflow = _name(data["overflow_to"], f"{where}.overflow_to")
        if max_wait is None:
            raise ScenarioError(
                f"{where}.overflow_to needs {where}.max_wait (when to overflow)",
                f"{where}.overflow_to",
            )
    best_skill = None
    if data.get("best_skill") is not None:
        best_skill = _name(data["best_skill"], f"{where}.best_skill")
    if strategy is Strategy.BEST_SKILL and best_skill is None:
        raise ScenarioError(
            f"{where}.best_skill is needed with the best-skill strategy", f"{where}.best_skill"
        )
    hours = None
    if data.get("hours") is not None:
        try:  # the same timetables as business hours (docs/pbx.md), checked the same way
            hours = spec_of(hours_from_spec(name, data["hours"], f"{where}.hours"))
        except InvalidInput as error:
            raise ScenarioError(str(error), error.field or f"{where}.hours") from None
    closed_to = None
    if data.get("closed_to") is not None:
        closed_to = _name(data["closed_to"], f"{where}.closed_to")
        if hours is None:
            raise ScenarioError(
                f"{where}.closed_to needs {where}.hours (when it is closed)", f"{where}.closed_to"
            )
    return QueueSpec(
        name, strategy, wrapup, threshold, max_wait, overflow, best_skill, hours, closed_to
    )


def _memberships(raw: object, where: str, queues: set[str]) -> tuple[QueueMembership, ...]:
    out: list[QueueMembership] = []
    seen: set[str] = set()
    for i, item in enumerate(_list(raw, where)):
        at = f"{where}[{i}]"
        if isinstance(item, str):
            member = QueueMembership(_name(item, at))
        else:
            data = _mapping(item, at, {"queue", "penalty"})
            if "queue" not in data:
                raise ScenarioError(f"{at}.queue is missing", f"{at}.queue")
            penalty = check_int(data.get("penalty", 0), f"{at}.penalty")
            if penalty > 1000:
                raise ScenarioError(f"{at}.penalty must be at most 1000", f"{at}.penalty")
            member = QueueMembership(_name(data["queue"], f"{at}.queue"), penalty)
        if member.queue not in queues:
            raise ScenarioError(f"{at}: no queue named {member.queue!r} in queues", at)
        if member.queue in seen:
            raise ScenarioError(f"{at}: queue {member.queue!r} listed twice", at)
        seen.add(member.queue)
        out.append(member)
    return tuple(out)


def _agents(raw: object, where: str, index: int, queues: set[str]) -> AgentGroup:
    data = _mapping(raw, where, _AGENT_KEYS)
    if "count" not in data:
        raise ScenarioError(f"{where}.count is missing", f"{where}.count")
    count = check_int(data["count"], f"{where}.count")
    if count > 100_000:
        raise ScenarioError(f"{where}.count must be at most 100000", f"{where}.count")
    name = _name(data.get("name", f"g{index + 1}"), f"{where}.name")
    if "queues" not in data:
        raise ScenarioError(f"{where}.queues is missing (the queues they answer)", where)
    members = _memberships(data["queues"], f"{where}.queues", queues)
    skills: dict[str, int] = {}
    raw_skills = data.get("skills") or {}
    if not isinstance(raw_skills, Mapping):
        raise ScenarioError(f"{where}.skills must be a mapping skill: level", f"{where}.skills")
    for skill, level in raw_skills.items():
        at = f"{where}.skills.{skill}"
        value = check_int(level, at, minimum=1)
        if value > 5:
            raise ScenarioError(f"{at} must be a proficiency from 1 to 5 (got {level!r})", at)
        skills[_name(skill, at)] = value
    shift = None
    if data.get("shift") is not None:
        sd = _mapping(data["shift"], f"{where}.shift", {"start", "end"})
        for key in ("start", "end"):
            if key not in sd:
                raise ScenarioError(f"{where}.shift.{key} is missing", f"{where}.shift.{key}")
        start = _time_of_day(sd["start"], f"{where}.shift.start")
        end = _time_of_day(sd["end"], f"{where}.shift.end")
        if start % DAY == end % DAY:
            raise ScenarioError(
                f"{where}.shift: start and end are the same time; omit shift for agents "
                "who work around the clock",
                f"{where}.shift",
            )
        shift = Shift(start % DAY, end if end != DAY else DAY)
    shrinkage = _fraction(data.get("shrinkage", 0.0), f"{where}.shrinkage", below_one=True)
    break_length = check_number(
        data.get("break_length", 900.0), f"{where}.break_length", minimum=0.0, strict=True
    )
    answer_time = None
    if data.get("answer_time") is not None:
        answer_time = parse_distribution(
            data["answer_time"], f"{where}.answer_time", positive_mean=False
        )
        if isinstance(answer_time, Constant) and answer_time.value == 0:
            answer_time = None  # the default: offers are accepted at once
    reject = _fraction(data.get("reject", 0.0), f"{where}.reject", below_one=True)
    no_answer = _fraction(data.get("no_answer", 0.0), f"{where}.no_answer", below_one=True)
    if reject + no_answer >= 1.0:
        raise ScenarioError(
            f"{where}: reject + no_answer must be below 1 (got {reject:g} + {no_answer:g}); "
            "some offers must be answered",
            f"{where}.no_answer",
        )
    return AgentGroup(
        name,
        count,
        members,
        skills,
        shift,
        shrinkage,
        break_length,
        answer_time=answer_time,
        reject=reject,
        no_answer=no_answer,
    )


def read_forecast(path: Path, where: str) -> list[tuple[datetime, float]]:
    """``start,calls`` rows of a forecast CSV (the ``forecast`` command's output)."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ScenarioError(f"{where}: cannot read {path}: {exc.strerror}", where) from None
    rows: list[tuple[datetime, float]] = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise ScenarioError(f"{where}: {path} is empty", where) from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ScenarioError(f"{where}: {path} line 1 is not CSV ({exc})", where) from None
        missing = [c for c in ("start", "calls") if c not in header]
        if missing:
            raise ScenarioError(
                f"{where}: {path} line 1: missing column(s) {', '.join(missing)}", where
            )
        si, ci = header.index("start"), header.index("calls")
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) <= max(si, ci):
                    raise ScenarioError(f"{where}: {path} line {line}: too few fields", where)
                try:
                    moment = _moment(row[si], "start")
                except ScenarioError:
                    raise ScenarioError(
                        f"{where}: {path} line {line}: start {row[si]!r} is not ISO 8601", where
                    ) from None
                try:
                    calls = float(row[ci])
                except ValueError:
                    calls = math.nan
                if not math.isfinite(calls) or calls < 0:
                    raise ScenarioError(
                        f"{where}: {path} line {line}: calls must be 0 or more (got {row[ci]!r})",
                        where,
                    )
                if rows and moment <= rows[-1][0]:
                    raise ScenarioError(
                        f"{where}: {path} line {line}: start times must increase", where
                    )
                rows.append((moment, calls))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ScenarioError(
                f"{where}: {path} line {reader.line_num}: malformed CSV ({exc})", where
            ) from None
    if not rows:
        raise ScenarioError(f"{where}: {path} has no rows", where)
    return rows


def _segments_from_forecast(
    rows: list[tuple[datetime, float]],
    start: datetime,
    duration: float,
    interval: float | None,
    scale: float,
    where: str,
) -> tuple[RateSegment, ...]:
    if interval is None:
        gaps = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(rows)]
        interval = min(gaps) if gaps else 1800.0
    segments: list[RateSegment] = []
    for moment, calls in rows:
        lo = (moment - start).total_seconds()
        hi = lo + interval
        lo, hi = max(lo, 0.0), min(hi, duration)
        if hi > lo and calls > 0:
            segments.append(RateSegment(lo, hi, calls * scale / interval))
    if not segments:
        raise ScenarioError(
            f"{where}: no forecast interval falls inside the simulated time "
            f"({start.isoformat()} + {duration:g} s)",
            where,
        )
    return tuple(segments)


def _arrival_rows(
    raw: object, where: str, queues: set[str], base: Path
) -> tuple[list[tuple[datetime, float]] | None, Mapping[str, Any]]:
    """First pass over an arrival stream: its queue and forecast rows (``start`` may come
    from the first forecast, so the rest waits for :func:`_finish_arrival`)."""
    data = _mapping(raw, where, _ARRIVAL_KEYS)
    if "queue" not in data:
        raise ScenarioError(f"{where}.queue is missing", f"{where}.queue")
    queue = _name(data["queue"], f"{where}.queue")
    if queue not in queues:
        raise ScenarioError(f"{where}.queue: no queue named {queue!r} in queues", f"{where}.queue")
    if ("rate_per_hour" in data) == ("forecast" in data):
        raise ScenarioError(
            f"{where}: give exactly one of rate_per_hour (Poisson) or forecast (a CSV file)",
            where,
        )
    rows = None
    if "forecast" in data:
        name = data["forecast"]
        if not isinstance(name, str) or not name:
            raise ScenarioError(f"{where}.forecast must be a file name", f"{where}.forecast")
        path = Path(name)
        rows = read_forecast(path if path.is_absolute() else base / path, f"{where}.forecast")
    return rows, data


def _finish_arrival(
    data: Mapping[str, Any],
    where: str,
    queues: set[str],
    rows: list[tuple[datetime, float]] | None,
    start: datetime,
    duration: float,
) -> ArrivalSpec:
    queue = _name(data["queue"], f"{where}.queue")
    scale = check_number(data.get("scale", 1.0), f"{where}.scale", minimum=0.0)
    if rows is not None:
        interval = None
        if data.get("forecast_interval") is not None:
            interval = check_number(
                data["forecast_interval"], f"{where}.forecast_interval", minimum=0.0, strict=True
            )
        segments = _segments_from_forecast(
            rows, start, duration, interval, scale, f"{where}.forecast"
        )
        source = f"forecast {data['forecast']}"
    else:
        rate = check_number(data["rate_per_hour"], f"{where}.rate_per_hour", minimum=0.0)
        segments = (RateSegment(0.0, duration, rate * scale / 3600.0),) if rate > 0 else ()
        source = f"{rate:g}/h Poisson"
    try:
        channel = Channel(str(data.get("channel", "voice")))
    except ValueError:
        raise ScenarioError(
            f"{where}.channel must be one of voice, chat, email, task (got {data['channel']!r})",
            f"{where}.channel",
        ) from None
    if channel is Channel.CALLBACK:
        raise ScenarioError(
            f"{where}.channel: callbacks come from the callback key, not as arrivals",
            f"{where}.channel",
        )
    priority = check_int(data.get("priority", 0), f"{where}.priority")
    if priority > 100:
        raise ScenarioError(f"{where}.priority must be at most 100", f"{where}.priority")
    skills = data.get("required_skills", "") or ""
    if not isinstance(skills, str):
        raise ScenarioError(
            f"{where}.required_skills must be a skill expression like 'spanish >= 3'",
            f"{where}.required_skills",
        )
    if "handle_time" not in data:
        raise ScenarioError(f"{where}.handle_time is missing", f"{where}.handle_time")
    handle = parse_distribution(data["handle_time"], f"{where}.handle_time")
    patience = None
    if data.get("patience") is not None:
        patience = parse_distribution(data["patience"], f"{where}.patience")
    callback = None
    if data.get("callback") is not None:
        cb = _mapping(data["callback"], f"{where}.callback", {"fraction", "after", "delay"})
        if "fraction" not in cb or "after" not in cb:
            raise ScenarioError(
                f"{where}.callback needs fraction and after (seconds of waiting)",
                f"{where}.callback",
            )
        callback = CallbackSpec(
            _fraction(cb["fraction"], f"{where}.callback.fraction"),
            check_number(cb["after"], f"{where}.callback.after", minimum=0.0),
            check_number(cb.get("delay", 0.0), f"{where}.callback.delay", minimum=0.0),
        )
    transfer = None
    if data.get("transfer") is not None:
        tr = _mapping(data["transfer"], f"{where}.transfer", {"fraction", "to"})
        if "fraction" not in tr or "to" not in tr:
            raise ScenarioError(f"{where}.transfer needs fraction and to", f"{where}.transfer")
        to = _name(tr["to"], f"{where}.transfer.to")
        if to not in queues:
            raise ScenarioError(
                f"{where}.transfer.to: no queue named {to!r} in queues", f"{where}.transfer.to"
            )
        if to == queue:
            raise ScenarioError(
                f"{where}.transfer.to must be another queue", f"{where}.transfer.to"
            )
        transfer = TransferSpec(_fraction(tr["fraction"], f"{where}.transfer.fraction"), to)
    return ArrivalSpec(
        queue=queue,
        segments=segments,
        handle_time=handle,
        patience=patience,
        channel=channel,
        priority=priority,
        required_skills=skills,
        callback=callback,
        transfer=transfer,
        source=source,
    )


def parse_scenario(data: object, base_dir: Path | None = None) -> Scenario:
    """Check a scenario given as plain data (parsed YAML); forecast files are read from
    ``base_dir`` (default: the working directory)."""
    base = base_dir or Path()
    top = _mapping(data, "", _TOP_KEYS)
    for key in ("duration", "queues", "agents", "arrivals"):
        if key not in top:
            raise ScenarioError(f"{key} is missing", key)
    seed = check_int(top.get("seed", 1), "seed")
    duration = check_number(top["duration"], "duration", minimum=0.0, strict=True)
    if duration > 400 * DAY:
        raise ScenarioError("duration must be at most 400 days (34560000 s)", "duration")
    warmup = check_number(top.get("warmup", 0.0), "warmup", minimum=0.0)
    if warmup >= duration:
        raise ScenarioError(
            f"warmup ({warmup:g} s) must be shorter than duration ({duration:g} s)", "warmup"
        )
    drain = check_number(top.get("drain", 7200.0), "drain", minimum=0.0)
    interval = check_int(top.get("interval", 1800), "interval", minimum=1)
    if 86400 % interval:
        raise ScenarioError(
            f"interval must divide a day, e.g. 900 or 1800 (got {interval})", "interval"
        )
    sl = check_number(
        top.get("service_level_threshold", 20.0), "service_level_threshold", minimum=0.0
    )
    short = check_number(
        top.get("short_abandon_threshold", 5.0), "short_abandon_threshold", minimum=0.0
    )
    basis = top.get("sl_basis", "offered")
    if basis not in SL_BASES:
        raise ScenarioError(
            f"sl_basis must be one of {', '.join(SL_BASES)} (got {basis!r})", "sl_basis"
        )
    queues = tuple(_queue(q, f"queues[{i}]") for i, q in enumerate(_list(top["queues"], "queues")))
    names = [q.name for q in queues]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ScenarioError(f"queues: the name {dupes[0]!r} is used twice", "queues")
    known = set(names)
    for i, q in enumerate(queues):
        if q.overflow_to is not None:
            if q.overflow_to not in known:
                raise ScenarioError(
                    f"queues[{i}].overflow_to: no queue named {q.overflow_to!r}",
                    f"queues[{i}].overflow_to",
                )
            if q.overflow_to == q.name:
                raise ScenarioError(
                    f"queues[{i}].overflow_to must be another queue", f"queues[{i}].overflow_to"
                )
        if q.closed_to is not None and (q.closed_to not in known or q.closed_to == q.name):
            raise ScenarioError(
                f"queues[{i}].closed_to: no other queue named {q.closed_to!r}",
                f"queues[{i}].closed_to",
            )
    agents = tuple(
        _agents(a, f"agents[{i}]", i, known)
        for i, a in enumerate(_list(top["agents"], "agents", allow_empty=True))
    )
    group_names = [g.name for g in agents]
    dupes = sorted({n for n in group_names if group_names.count(n) > 1})
    if dupes:
        raise ScenarioError(
            f"agents: two groups are named {dupes[0]!r}; give each group its own name", "agents"
        )
    if sum(g.count for g in agents) > 100_000:
        raise ScenarioError("agents: at most 100000 agents in all", "agents")
    start: datetime | None = _moment(top["start"], "start") if "start" in top else None
    pending = [
        _arrival_rows(a, f"arrivals[{i}]", known, base)
        for i, a in enumerate(_list(top["arrivals"], "arrivals"))
    ]
    if start is None:
        firsts = [rows[0][0] for rows, _ in pending if rows]
        start = min(firsts) if firsts else DEFAULT_START
    arrivals = tuple(
        _finish_arrival(raw, f"arrivals[{i}]", known, rows, start, duration)
        for i, (rows, raw) in enumerate(pending)
    )
    return Scenario(
        duration=duration,
        queues=queues,
        agents=agents,
        arrivals=arrivals,
        seed=seed,
        start=start,
        warmup=warmup,
        drain=drain,
        interval=interval,
        service_level_threshold=sl,
        short_abandon_threshold=short,
        sl_basis=str(basis),
    )


def load_scenario(path: Path, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Read and check a scenario YAML file (forecast files relative to it).

    ``overrides`` replace top-level keys (the command line's ``--seed``, ``--duration``).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror}", "scenario") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path} is not UTF-8 text", "scenario") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{path} is not valid YAML{where}: {problem}", "scenario") from None
    if data is None:
        raise ScenarioError(f"{path} is empty", "scenario")
    if overrides and isinstance(data, Mapping):
        data = {**data, **overrides}
    return parse_scenario(data, path.parent)


def shift_periods(shift: Shift, start: datetime, until: float) -> list[tuple[float, float]]:
    """(login, logout) times in seconds from ``start`` for every day touching ``[0, until)``."""
    midnight = datetime.combine(start.date(), time(), tzinfo=start.tzinfo)
    offset = (midnight - start).total_seconds()  # <= 0
    length = (shift.end - shift.start) % DAY or DAY
    periods: list[tuple[float, float]] = []
    day = -1
    while True:
        begin = offset + day * DAY + shift.start
        if begin >= until:
            break
        end = begin + length
        if end > 0:
            periods.append((max(begin, 0.0), end))
        day += 1
    return periods


def as_datetime(start: datetime, seconds: float) -> datetime:
    return start + timedelta(seconds=seconds)


# --- rosters ----------------------------------------------------------------------------------

ROSTER_COLUMNS = ("shift", "start", "end", "break_start", "break_end", "count")


@dataclass(frozen=True, slots=True)
class RosterRow:
    """One row of the roster CSV that ``sparklecomm schedule`` writes."""

    shift: str
    start: datetime
    end: datetime
    breaks: tuple[tuple[datetime, datetime], ...]
    count: int


def _roster_time(raw: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ScenarioError(f"{where} must be an ISO 8601 date-time (got {raw!r})", where) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def read_roster(path: Path) -> list[RosterRow]:
    """Read a roster CSV (columns ``shift,start,end,break_start,break_end,count``; several
    breaks separated by ``;``). Mistakes raise :class:`ScenarioError` naming the line."""
    name = path.name
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in ROSTER_COLUMNS if c not in header]
            if missing:
                raise ScenarioError(
                    f"{name}: missing column {missing[0]!r} (a roster has columns "
                    f"{','.join(ROSTER_COLUMNS)}, as written by sparklecomm schedule)",
                    "roster",
                )
            rows: list[RosterRow] = []
            for line, raw in enumerate(reader, start=2):
                at = f"{name} line {line}"
                row = {str(k).strip(): (v or "").strip() for k, v in raw.items() if k is not None}
                start = _roster_time(row["start"], f"{at}: start")
                end = _roster_time(row["end"], f"{at}: end")
                if end <= start:
                    raise ScenarioError(f"{at}: end must be after start", "roster")
                b_starts = [b for b in row["break_start"].split(";") if b.strip()]
                b_ends = [b for b in row["break_end"].split(";") if b.strip()]
                if len(b_starts) != len(b_ends):
                    raise ScenarioError(
                        f"{at}: {len(b_starts)} break_start value(s) but {len(b_ends)} "
                        "break_end value(s)",
                        "roster",
                    )
                breaks = []
                for bs_raw, be_raw in zip(b_starts, b_ends, strict=True):
                    bs = _roster_time(bs_raw, f"{at}: break_start")
                    be = _roster_time(be_raw, f"{at}: break_end")
                    if not start <= bs < be <= end:
                        raise ScenarioError(
                            f"{at}: break {bs_raw}-{be_raw} must lie within the shift", "roster"
                        )
                    breaks.append((bs, be))
                try:
                    count = int(row["count"])
                except ValueError:
                    raise ScenarioError(
                        f"{at}: count must be a whole number (got {row['count']!r})", "roster"
                    ) from None
                if count < 0:
                    raise ScenarioError(f"{at}: count must not be negative", "roster")
                if count:
                    rows.append(
                        RosterRow(row["shift"] or "shift", start, end, tuple(breaks), count)
                    )
    except OSError as exc:
        raise ScenarioError(f"cannot read roster {path}: {exc.strerror}", "roster") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"roster {path} is not UTF-8 text", "roster") from None
    except csv.Error as exc:
        raise ScenarioError(f"roster {name} is not valid CSV: {exc}", "roster") from None
    return rows


def apply_roster(scenario: Scenario, rows: Sequence[RosterRow]) -> Scenario:
    """The scenario with its agents replaced by the roster's.

    Each roster row becomes a group of ``count`` agents who log in at ``start``, out at
    ``end`` and take the row's breaks. They answer the queues, and have the skills, answer
    times and shrinkage, of the scenario's agent group named like the row's shift, or else
    of its first agent group (the template; the scenario needs at least one).
    """
    if not scenario.agents:
        raise ScenarioError(
            "a roster needs one agent group in the scenario as a template (its queues and skills)",
            "agents",
        )
    if not rows:
        raise ScenarioError("the roster has no agents", "roster")
    templates = {g.name: g for g in scenario.agents}
    start = scenario.start
    groups: list[AgentGroup] = []
    total = 0
    for i, row in enumerate(rows):
        template = templates.get(row.shift, scenario.agents[0])

        def rel(moment: datetime) -> float:
            return (moment - start).total_seconds()

        work = WorkPeriod(
            rel(row.start), rel(row.end), tuple((rel(a), rel(b)) for a, b in row.breaks)
        )
        total += row.count
        groups.append(
            replace(
                template,
                name=f"{row.shift}-r{i + 1}",
                count=row.count,
                shift=None,
                work=work,
            )
        )
    if total > 100_000:
        raise ScenarioError("roster: at most 100000 agents in all", "roster")
    return replace(scenario, agents=tuple(groups))
