"""Business hours: when an organisation's numbers and queues are open, in its time zone.

A :class:`BusinessHours` is a weekly timetable (opening ranges per weekday) plus dated
exceptions (public holidays closed all day, or special hours such as a short Christmas
Eve). A DID that names one goes to its normal destination while open and to its *closed*
destination otherwise (see :mod:`sparklecomm.telephony.pbx.dialplan`); a queue that names
one takes no new contacts while closed (the routing engine's ``on_closed`` rule).

Pure: times in, answers out. Ranges are local wall-clock times ``HH:MM``; the end is
exclusive and may be ``24:00``. A range whose end is not after its start runs past
midnight (``22:00-06:00`` on Friday covers Friday 22:00 to Saturday 06:00), so a night
shift needs no second entry. A dated exception replaces that day's weekly ranges (the
overnight tail of the previous day still applies). Daylight-saving changes follow the
zone's rules: 08:00 is 08:00 local time on both sides of a change; a range starting in the
hour that a spring change skips starts when the clock jumps.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sparklecomm.core.errors import InvalidInput

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
MAX_RANGES_PER_DAY = 6
MAX_EXCEPTIONS = 366
TIME_RE = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])$")
RANGE_RE = re.compile(r"^\s*(\S+)\s*-\s*(\S+)\s*$")

Range = tuple[int, int]
"""Minutes after local midnight: ``(start, end)``; ``end <= start`` runs past midnight."""


@dataclass(frozen=True, slots=True)
class HoursException:
    """A dated exception: ``ranges`` empty means closed all day."""

    day: date
    ranges: tuple[Range, ...] = ()
    name: str = ""


@dataclass(frozen=True, slots=True)
class BusinessHours:
    name: str
    timezone: str
    weekly: tuple[tuple[Range, ...], ...]
    """Seven entries, Monday first."""
    exceptions: Mapping[date, HoursException] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def ranges_on(self, day: date) -> tuple[Range, ...]:
        """The ranges that start on ``day`` (its exception's, else its weekday's)."""
        exception = self.exceptions.get(day)
        if exception is not None:
            return exception.ranges
        return self.weekly[day.weekday()]

    def is_open(self, at: datetime) -> bool:
        """Open at the instant ``at`` (an aware datetime)?"""
        local = at.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        today = local.date()
        for start, end in self.ranges_on(today):
            if start <= minute < (end if end > start else MINUTES_PER_DAY):
                return True
        for start, end in self.ranges_on(today - timedelta(days=1)):
            if end <= start and minute < end:  # yesterday's range running past midnight
                return True
        return False

    def next_change(self, at: datetime, horizon_days: int = 400) -> datetime | None:
        """The first instant after ``at`` when :meth:`is_open` changes (UTC), or None when
        it does not change within ``horizon_days`` (always open, or always closed)."""
        zone = self.zone
        now_open = self.is_open(at)
        first = at.astimezone(zone).date() - timedelta(days=1)
        for offset in range(horizon_days + 2):
            day = first + timedelta(days=offset)
            for when in sorted(self._boundaries(day, zone)):
                if when > at and self.is_open(when) != now_open:
                    return when
        return None

    def _boundaries(self, day: date, zone: ZoneInfo) -> Iterable[datetime]:
        """Instants where a range of ``day`` starts or ends (UTC)."""
        for start, end in self.ranges_on(day):
            yield _instant(day, start, zone)
            end_day = day if end > start else day + timedelta(days=1)
            yield _instant(end_day, end, zone)


def _instant(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """Local ``day`` + ``minute`` (24:00 = next midnight) as a UTC instant. A wall time that
    a spring change skips gives the instant of the jump (from then on the local time is past
    it, which is what :meth:`BusinessHours.is_open` sees)."""
    if minute >= MINUTES_PER_DAY:
        day, minute = day + timedelta(days=1), minute - MINUTES_PER_DAY
    wall = datetime.combine(day, time(minute // 60, minute % 60))
    late = wall.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the offset before a change
    if late.astimezone(zone).replace(tzinfo=None) == wall:
        return late
    early = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)  # in a gap: the jump lies
    probe = early  # between the two readings; find the first minute past the wall time
    while probe < late and probe.astimezone(zone).replace(tzinfo=None) < wall:
        probe += timedelta(minutes=1)
    return probe


# -- parsing and checks (API, CLI and SQL rows alike) ---------------------------------------


def check_timezone(value: Any, field: str = "timezone") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must be an IANA time zone such as Europe/Berlin", field=field)
    name = value.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"{field} {name!r} is not a known time zone (IANA names such as Europe/Berlin, "
            "America/New_York, UTC)",
            field=field,
        ) from None
    return name


def parse_time(value: Any, field: str) -> int:
    """``HH:MM`` (00:00-24:00) → minutes after midnight."""
    match = TIME_RE.match(value.strip()) if isinstance(value, str) else None
    minute = int(match.group(1)) * 60 + int(match.group(2)) if match else -1
    if match is None or minute > MINUTES_PER_DAY:
        raise InvalidInput(f"{field}: {value!r} is not a time HH:MM (00:00-24:00)", field=field)
    return minute


def parse_range(value: Any, field: str) -> Range:
    """``"08:00-18:00"`` or ``["08:00", "18:00"]``."""
    if isinstance(value, str):
        match = RANGE_RE.match(value)
        if match is None:
            raise InvalidInput(f"{field}: {value!r} is not a range HH:MM-HH:MM", field=field)
        parts: Any = [match.group(1), match.group(2)]
    elif isinstance(value, list | tuple) and len(value) == 2:
        parts = value
    else:
        raise InvalidInput(f'{field} must be a range such as "08:00-18:00"', field=field)
    start, end = parse_time(parts[0], field), parse_time(parts[1], field)
    if start == MINUTES_PER_DAY:
        raise InvalidInput(f"{field}: a range cannot start at 24:00", field=field)
    if start == end:
        raise InvalidInput(
            f"{field}: start and end are the same ({format_minute(start)}); for a whole day "
            "use 00:00-24:00",
            field=field,
        )
    return (start, end)


def parse_ranges(value: Any, field: str) -> tuple[Range, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple):
        raise InvalidInput(f'{field} must be a list of ranges such as "08:00-18:00"', field=field)
    if len(value) > MAX_RANGES_PER_DAY:
        raise InvalidInput(f"{field}: at most {MAX_RANGES_PER_DAY} ranges a day", field=field)
    ranges = tuple(parse_range(v, f"{field}[{i}]") for i, v in enumerate(value))
    _check_no_overlap(ranges, field)
    return tuple(sorted(ranges))


def _check_no_overlap(ranges: tuple[Range, ...], field: str) -> None:
    spans = sorted((start, end if end > start else MINUTES_PER_DAY + end) for start, end in ranges)
    for (s1, e1), (s2, _e2) in itertools.pairwise(spans):
        if s2 < e1:
            raise InvalidInput(
                f"{field}: ranges starting at {format_minute(s1)} and {format_minute(s2)} overlap",
                field=field,
            )


def parse_weekly(value: Any, field: str = "weekly") -> tuple[tuple[Range, ...], ...]:
    """``{"mon": ["08:00-18:00"], ...}``; a day left out is closed."""
    if not isinstance(value, Mapping):
        raise InvalidInput(
            f'{field} must map days (mon … sun) to ranges, e.g. {{"mon": ["08:00-18:00"]}}',
            field=field,
        )
    unknown = [k for k in value if k not in DAYS]
    if unknown:
        raise InvalidInput(
            f"{field}: unknown day {unknown[0]!r}; days are {', '.join(DAYS)}",
            field=f"{field}.{unknown[0]}",
        )
    return tuple(parse_ranges(value.get(day), f"{field}.{day}") for day in DAYS)


def parse_exceptions(value: Any, field: str = "exceptions") -> dict[date, HoursException]:
    """``[{"date": "2026-12-25", "name": "Christmas Day"}, {"date": "2026-12-24",
    "hours": ["09:00-12:00"]}]``; no ``hours``: closed all day."""
    if value is None:
        return {}
    if not isinstance(value, list | tuple):
        raise InvalidInput(
            f'{field} must be a list such as [{{"date": "2026-12-25", "name": "Christmas"}}]',
            field=field,
        )
    if len(value) > MAX_EXCEPTIONS:
        raise InvalidInput(f"{field}: at most {MAX_EXCEPTIONS} dates", field=field)
    out: dict[date, HoursException] = {}
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidInput(f"{where} must be an object with a date", field=where)
        extra = set(item) - {"date", "name", "hours"}
        if extra:
            raise InvalidInput(f"{where}: unknown key {sorted(extra)[0]!r}", field=where)
        try:
            day = date.fromisoformat(str(item.get("date")))
        except ValueError:
            raise InvalidInput(
                f"{where}.date: {item.get('date')!r} is not a date YYYY-MM-DD",
                field=f"{where}.date",
            ) from None
        if day in out:
            raise InvalidInput(f"{where}.date: {day} is given twice", field=f"{where}.date")
        name = item.get("name") or ""
        if not isinstance(name, str) or len(name) > 100:
            raise InvalidInput(f"{where}.name: at most 100 characters", field=f"{where}.name")
        out[day] = HoursException(day, parse_ranges(item.get("hours"), f"{where}.hours"), name)
    return out


def hours_from_spec(name: str, spec: Any, field: str = "hours") -> BusinessHours:
    """A timetable from its JSON form ``{"timezone", "weekly", "exceptions"}`` (checked)."""
    if not isinstance(spec, Mapping):
        raise InvalidInput(
            f"{field} must be an object with timezone, weekly and exceptions", field=field
        )
    return BusinessHours(
        name,
        check_timezone(spec.get("timezone"), f"{field}.timezone"),
        parse_weekly(spec.get("weekly") or {}, f"{field}.weekly"),
        parse_exceptions(spec.get("exceptions") or [], f"{field}.exceptions"),
    )


def spec_of(hours: BusinessHours) -> dict[str, Any]:
    """The JSON form of a timetable (what :func:`hours_from_spec` reads)."""
    return {
        "timezone": hours.timezone,
        "weekly": weekly_payload(hours.weekly),
        "exceptions": exceptions_payload(hours.exceptions),
    }


def format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def format_ranges(ranges: Iterable[Range]) -> list[str]:
    return [f"{format_minute(s)}-{format_minute(e)}" for s, e in ranges]


def weekly_payload(weekly: tuple[tuple[Range, ...], ...]) -> dict[str, list[str]]:
    return {day: format_ranges(ranges) for day, ranges in zip(DAYS, weekly, strict=True) if ranges}


def exceptions_payload(exceptions: Mapping[date, HoursException]) -> list[dict[str, Any]]:
    return [
        {"date": e.day.isoformat(), "name": e.name, "hours": format_ranges(e.ranges)}
        for e in sorted(exceptions.values(), key=lambda e: e.day)
    ]


def parse_week_spec(specs: Iterable[str], field: str = "--open") -> dict[str, list[str]]:
    """The command line's form: ``"mon-fri 08:00-18:00"``, ``"sat 09:00-13:00,14:00-16:00"``,
    ``"sun closed"``. Later entries for a day replace earlier ones."""
    weekly: dict[str, list[str]] = {}
    for spec in specs:
        days_text, _, ranges_text = spec.strip().partition(" ")
        days = _day_span(days_text.lower(), field, spec)
        ranges = [] if ranges_text.strip().lower() == "closed" else ranges_text.split(",")
        if not ranges_text.strip():
            raise InvalidInput(
                f'{field} {spec!r}: give days then ranges, e.g. "mon-fri 08:00-18:00"',
                field=field,
            )
        for day in days:
            weekly[day] = [r.strip() for r in ranges if r.strip()]
    return {day: ranges for day, ranges in weekly.items() if ranges}


def _day_span(text: str, field: str, spec: str) -> list[str]:
    days: list[str] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise InvalidInput(
                f"{field} {spec!r}: days are {', '.join(DAYS)} (a span like mon-fri)", field=field
            )
        i, j = DAYS.index(first), DAYS.index(last or first)
        days.extend(DAYS[k % 7] for k in range(i, i + (j - i) % 7 + 1))
    return days
