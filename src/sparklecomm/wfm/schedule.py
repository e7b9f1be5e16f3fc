"""Shift scheduling: the cheapest set of shifts, with breaks, that covers each interval's need.

Given the agents required per interval (``staff --input`` output) and the shift types a
center may use (allowed start times, length, breaks that must start inside a window, cost,
at most so many a day), :func:`build_roster` chooses how many agents start each shift at
each start time with each break placement, so that in every interval the agents on the
phones (on shift and not on break) are at least the requirement, at the least total cost.

It is the classic set-covering model of Dantzig (1954) with explicit break placements
(Bechtold & Jacobs 1990 discuss the implicit variant): one integer variable per (shift type,
day, start time, break placement), one covering row per interval, one row per shift type and
day for the daily maximum. It is solved exactly by mixed-integer programming
(:func:`scipy.optimize.milp`, i.e. HiGHS). Agents starting or ending mid-interval, or breaks
shorter than an interval, count for the share of the interval they are on the phones.

When no roster can cover every interval the model is solved again allowing shortfalls at a
high price; :class:`Infeasible` then says, interval by interval, what cannot be covered and
why (no shift is on at that time, or the daily maxima cap the agents available).

Pure: plain data in (see :func:`parse_shifts` for the YAML form), plain data out.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy import optimize, sparse

from sparklecomm.core.errors import DomainError, InvalidInput

DAY: Final = 86400
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_COLUMNS: Final = 400_000  # beyond this the model is too big to build comfortably


@dataclass(frozen=True, slots=True)
class BreakRule:
    """A break of ``length`` seconds starting between ``earliest`` and ``latest`` seconds
    after the shift starts, at multiples of ``step`` from ``earliest``."""

    length: float
    earliest: float
    latest: float
    step: float | None = None  # None: the interval length


@dataclass(frozen=True, slots=True)
class ShiftType:
    """A kind of shift. ``starts`` are seconds after midnight; ``max_count`` is per day."""

    name: str
    starts: tuple[float, ...]
    length: float
    breaks: tuple[BreakRule, ...] = ()
    cost: float | None = None  # per shift; None: paid hours (length / 3600)
    max_count: int | None = None
    days: frozenset[int] | None = None  # weekdays (0 = Monday); None: every day

    @property
    def shift_cost(self) -> float:
        return self.cost if self.cost is not None else self.length / 3600.0


@dataclass(frozen=True, slots=True)
class ShiftInstance:
    """``count`` agents working ``shift`` from ``start`` to ``end`` with these breaks."""

    shift: str
    start: datetime
    end: datetime
    breaks: tuple[tuple[datetime, datetime], ...]
    count: int
    cost: float  # for all ``count`` agents


@dataclass(frozen=True, slots=True)
class Roster:
    """The chosen shifts and the coverage they give, interval by interval."""

    shifts: tuple[ShiftInstance, ...]
    starts: tuple[datetime, ...]  # every interval of the horizon
    interval: float
    required: npt.NDArray[np.float64]
    scheduled: npt.NDArray[np.float64]  # agents on the phones (breaks taken out)
    cost: float
    optimal: bool  # False: the time limit stopped the search (``gap`` says how far it may be)
    gap: float | None
    shortfall: npt.NDArray[np.float64]  # zero unless shortfalls were allowed

    @property
    def agents(self) -> int:
        return sum(s.count for s in self.shifts)

    @property
    def paid_hours(self) -> float:
        return sum(s.count * (s.end - s.start).total_seconds() for s in self.shifts) / 3600.0


class Infeasible(DomainError):
    """No roster covers every interval; ``reasons`` says which intervals and why."""

    status = 422
    title = "Requirements cannot be covered"
    code = "infeasible"

    def __init__(self, reasons: Sequence[str], roster: Roster | None = None) -> None:
        detail = "the requirements cannot be covered:\n" + "\n".join(f"  - {r}" for r in reasons)
        super().__init__(detail, field="requirements")
        self.reasons = list(reasons)
        self.roster = roster


# --- parsing the shift types ------------------------------------------------------------------

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(value: object, where: str, *, positive: bool = True) -> float:
    """Seconds from ``90``, ``"90s"``, ``"30m"``, ``"8h"``, ``"8h30m"`` or ``"08:30"``."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        clock = re.fullmatch(r"(\d{1,3}):(\d{2})(?::(\d{2}))?", text)
        match = _DURATION.fullmatch(text)
        if clock is not None:
            seconds = int(clock[1]) * 3600 + int(clock[2]) * 60 + int(clock[3] or 0)
        elif text and match is not None and any(match.groups()):
            h, m, s = (float(g) if g else 0.0 for g in match.groups())
            seconds = h * 3600 + m * 60 + s
        else:
            try:
                seconds = float(text)
            except ValueError:
                seconds = None
    if seconds is None or not math.isfinite(seconds):
        raise InvalidInput(
            f"{where}: cannot read duration {value!r}; use seconds, '30m', '8h30m' or '08:30'",
            field=where,
        )
    if seconds < 0 or (positive and seconds == 0):
        rule = "greater than 0" if positive else "0 or more"
        raise InvalidInput(f"{where} must be {rule} (got {value!r})", field=where)
    return seconds


def _time_of_day(value: object, where: str) -> float:
    seconds = parse_duration(value, where, positive=False)
    if seconds >= DAY:
        raise InvalidInput(
            f"{where} must be a time of day before 24:00 (got {value!r})", field=where
        )
    return seconds


def _check_keys(data: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise InvalidInput(
            f"{where}.{unknown[0]}: unknown key (expected one of {', '.join(sorted(allowed))})",
            field=f"{where}.{unknown[0]}",
        )


def _starts(raw: object, where: str) -> tuple[float, ...]:
    if isinstance(raw, Mapping):
        _check_keys(raw, where, {"from", "to", "every"})
        for key in ("from", "to", "every"):
            if key not in raw:
                raise InvalidInput(f"{where}.{key} is missing", field=f"{where}.{key}")
        first = _time_of_day(raw["from"], f"{where}.from")
        last = _time_of_day(raw["to"], f"{where}.to")
        every = parse_duration(raw["every"], f"{where}.every")
        if last < first:
            raise InvalidInput(f"{where}.to must not be before {where}.from", field=where)
        count = math.floor((last - first) / every + 1e-9) + 1
        return tuple(first + i * every for i in range(count))
    if isinstance(raw, str | int | float) and not isinstance(raw, bool):
        return (_time_of_day(raw, where),)
    if not isinstance(raw, Sequence) or not raw:
        raise InvalidInput(
            f"{where} must be a time, a list of times or {{from, to, every}}", field=where
        )
    times = [_time_of_day(v, f"{where}[{i}]") for i, v in enumerate(raw)]
    return tuple(sorted(set(times)))


def _break(raw: object, where: str, length: float) -> BreakRule:
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"{where} must be a mapping with length and window", field=where)
    _check_keys(raw, where, {"length", "window", "step"})
    if "length" not in raw:
        raise InvalidInput(f"{where}.length is missing", field=f"{where}.length")
    if "window" not in raw:
        raise InvalidInput(
            f"{where}.window is missing: [earliest, latest] start, after the shift start",
            field=f"{where}.window",
        )
    blen = parse_duration(raw["length"], f"{where}.length")
    window = raw["window"]
    if isinstance(window, str) or not isinstance(window, Sequence) or len(window) != 2:
        raise InvalidInput(
            f"{where}.window must be [earliest, latest], e.g. ['2h', '4h']",
            field=f"{where}.window",
        )
    earliest = parse_duration(window[0], f"{where}.window[0]", positive=False)
    latest = parse_duration(window[1], f"{where}.window[1]", positive=False)
    if latest < earliest:
        raise InvalidInput(f"{where}.window: latest is before earliest", field=f"{where}.window")
    if latest + blen > length:
        raise InvalidInput(
            f"{where}: a break starting at {latest / 3600:g} h for {blen / 60:g} min ends "
            f"after the shift ({length / 3600:g} h)",
            field=f"{where}.window",
        )
    step = None
    if raw.get("step") is not None:
        step = parse_duration(raw["step"], f"{where}.step")
    return BreakRule(blen, earliest, latest, step)


def parse_shifts(data: object) -> list[ShiftType]:
    """Shift types from their YAML form (``{shifts: [...]}``); errors name the key.

    Each shift: ``name``; ``start`` (a time, a list of times, or ``{from, to, every}``);
    ``length``; optional ``breaks`` (or one ``break``): ``{length, window: [earliest,
    latest], step}`` measured from the shift start; ``cost`` (default: paid hours);
    ``max_count`` (per day); ``days`` (e.g. ``[mon, tue, wed, thu, fri]``).
    """
    if not isinstance(data, Mapping) or "shifts" not in data:
        raise InvalidInput("the shifts file needs a top-level 'shifts:' list", field="shifts")
    _check_keys(data, "", {"shifts"})
    raw_list = data["shifts"]
    if isinstance(raw_list, str) or not isinstance(raw_list, Sequence) or not raw_list:
        raise InvalidInput("shifts must be a non-empty list", field="shifts")
    out: list[ShiftType] = []
    seen: set[str] = set()
    allowed = {"name", "start", "length", "breaks", "break", "cost", "max_count", "days"}
    for i, raw in enumerate(raw_list):
        where = f"shifts[{i}]"
        if not isinstance(raw, Mapping):
            raise InvalidInput(f"{where} must be a mapping", field=where)
        _check_keys(raw, where, allowed)
        for key in ("name", "start", "length"):
            if key not in raw:
                raise InvalidInput(f"{where}.{key} is missing", field=f"{where}.{key}")
        name = raw["name"]
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput(f"{where}.name must be a non-empty name", field=f"{where}.name")
        if name in seen:
            raise InvalidInput(f"{where}.name: {name!r} is used twice", field=f"{where}.name")
        seen.add(name)
        length = parse_duration(raw["length"], f"{where}.length")
        if length > DAY:
            raise InvalidInput(f"{where}.length must be at most 24h", field=f"{where}.length")
        starts = _starts(raw["start"], f"{where}.start")
        if "breaks" in raw and "break" in raw:
            raise InvalidInput(f"{where}: give breaks or break, not both", field=f"{where}.break")
        breaks_raw: Any = raw.get("breaks", [raw["break"]] if "break" in raw else [])
        if isinstance(breaks_raw, Mapping):
            breaks_raw = [breaks_raw]
        if isinstance(breaks_raw, str) or not isinstance(breaks_raw, Sequence):
            raise InvalidInput(f"{where}.breaks must be a list", field=f"{where}.breaks")
        breaks = tuple(_break(b, f"{where}.breaks[{j}]", length) for j, b in enumerate(breaks_raw))
        cost = None
        if raw.get("cost") is not None:
            value = raw["cost"]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise InvalidInput(
                    f"{where}.cost must be a number, 0 or more (got {value!r})",
                    field=f"{where}.cost",
                )
            cost = float(value)
        max_count = None
        if raw.get("max_count") is not None:
            value = raw["max_count"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(
                    f"{where}.max_count must be a whole number, 0 or more (got {value!r})",
                    field=f"{where}.max_count",
                )
            max_count = value
        days = None
        if raw.get("days") is not None:
            rd = raw["days"]
            if isinstance(rd, str) or not isinstance(rd, Sequence) or not rd:
                raise InvalidInput(
                    f"{where}.days must be a list like [mon, tue]", field=f"{where}.days"
                )
            found: set[int] = set()
            for d in rd:
                key = str(d).strip().lower()[:3]
                if key not in WEEKDAYS:
                    raise InvalidInput(
                        f"{where}.days: unknown day {d!r} (use mon, tue, ... sun)",
                        field=f"{where}.days",
                    )
                found.add(WEEKDAYS.index(key))
            days = frozenset(found)
        out.append(ShiftType(name, starts, length, breaks, cost, max_count, days))
    return out


# --- the model --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Column:
    shift: int  # index in the shift types
    day: int  # day index from the first day of the horizon
    start: float  # seconds from the horizon start
    breaks: tuple[tuple[float, float], ...]  # (start, end), seconds from the horizon start


def _break_patterns(shift: ShiftType, step: float) -> list[tuple[float, ...]]:
    """Every combination of break offsets (in order, not overlapping)."""
    options: list[list[float]] = []
    for rule in shift.breaks:
        every = rule.step or step
        count = math.floor((rule.latest - rule.earliest) / every + 1e-9) + 1
        options.append([rule.earliest + i * every for i in range(count)])
    patterns: list[tuple[float, ...]] = []
    for combo in itertools.product(*options):
        ok = all(combo[j] + shift.breaks[j].length <= combo[j + 1] for j in range(len(combo) - 1))
        if ok:
            patterns.append(tuple(combo))
    return patterns


def _coverage(
    segments: Sequence[tuple[float, float]], interval: float, n: int
) -> tuple[list[int], list[float]]:
    """Rows and shares of each interval covered by ``segments`` (seconds from the start)."""
    rows: dict[int, float] = {}
    for lo, hi in segments:
        lo, hi = max(lo, 0.0), min(hi, n * interval)
        k = int(lo // interval)
        while lo < hi and k < n:
            stop = min(hi, (k + 1) * interval)
            rows[k] = rows.get(k, 0.0) + (stop - lo) / interval
            lo = stop
            k += 1
    keys = sorted(rows)
    return keys, [rows[k] for k in keys]


def _on_phone(col: _Column, length: float) -> list[tuple[float, float]]:
    segments = []
    at = col.start
    for b0, b1 in col.breaks:
        segments.append((at, b0))
        at = b1
    segments.append((at, col.start + length))
    return [(a, b) for a, b in segments if b > a]


def _fmt_time(moment: datetime) -> str:
    return moment.strftime("%a %Y-%m-%d %H:%M")


def build_roster(
    starts: Sequence[datetime],
    required: npt.ArrayLike,
    shifts: Sequence[ShiftType],
    *,
    interval: float | None = None,
    allow_shortfall: bool = False,
    time_limit: float = 60.0,
) -> Roster:
    """The least-cost roster covering ``required`` agents in the intervals starting at
    ``starts`` (wall-clock times; missing intervals need nobody).

    ``interval`` defaults to the smallest gap between consecutive starts. Raises
    :class:`Infeasible` (with the reasons, and the best roster with shortfalls) when the
    shift types cannot cover the requirement, unless ``allow_shortfall`` is set, in which
    case the returned roster covers as much as it can (``shortfall`` per interval).
    """
    req_in = np.asarray(required, dtype=np.float64)
    if req_in.ndim != 1 or req_in.size != len(starts) or req_in.size == 0:
        raise InvalidInput("give one requirement per interval start", field="requirements")
    if not np.all(np.isfinite(req_in)) or np.any(req_in < 0):
        raise InvalidInput("requirements must be finite and not negative", field="requirements")
    if not shifts:
        raise InvalidInput("give at least one shift type", field="shifts")
    order = sorted(range(len(starts)), key=lambda i: starts[i])
    times = [starts[i].replace(tzinfo=None) for i in order]
    values = req_in[order]
    if any(b <= a for a, b in itertools.pairwise(times)):
        raise InvalidInput("interval start times must be distinct", field="start")
    if interval is None:
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        interval = min(gaps) if gaps else 1800.0
    if not interval > 0:
        raise InvalidInput("interval must be greater than 0", field="interval")
    t0 = times[0]
    offsets = [(t - t0).total_seconds() for t in times]
    n = round(offsets[-1] / interval) + 1
    req = np.zeros(n)
    for off, value, moment in zip(offsets, values, times, strict=True):
        k = off / interval
        if abs(k - round(k)) > 1e-6:
            raise InvalidInput(
                f"interval {moment.isoformat()} is not on the {interval:g}-second grid "
                f"starting {t0.isoformat()}",
                field="start",
            )
        req[round(k)] = value
    grid = tuple(t0 + timedelta(seconds=k * interval) for k in range(n))

    # Columns: every shift type x day x start x break placement.
    midnight = t0.replace(hour=0, minute=0, second=0, microsecond=0)
    base = (t0 - midnight).total_seconds()  # the horizon starts this long after midnight
    horizon = n * interval
    days = math.ceil((base + horizon) / DAY)
    columns: list[_Column] = []
    col_rows: list[list[int]] = []
    col_vals: list[list[float]] = []
    for si, shift in enumerate(shifts):
        patterns = _break_patterns(shift, interval)
        if not patterns:
            raise InvalidInput(
                f"shift {shift.name!r}: its breaks cannot be placed without overlapping",
                field="shifts",
            )
        for day in range(days):
            weekday = (midnight + timedelta(days=day)).weekday()
            if shift.days is not None and weekday not in shift.days:
                continue
            for s in shift.starts:
                start = day * DAY + s - base
                if start < 0 or start >= horizon:
                    continue  # shifts start inside the horizon
                for pattern in patterns:
                    breaks = tuple(
                        (start + off, start + off + rule.length)
                        for off, rule in zip(pattern, shift.breaks, strict=True)
                    )
                    col = _Column(si, day, start, breaks)
                    rows, vals = _coverage(_on_phone(col, shift.length), interval, n)
                    if rows:
                        columns.append(col)
                        col_rows.append(rows)
                        col_vals.append(vals)
                if len(columns) > MAX_COLUMNS:
                    raise InvalidInput(
                        f"too many shift and break combinations (over {MAX_COLUMNS}); use "
                        "fewer start times, wider break steps or a shorter horizon",
                        field="shifts",
                    )
    m = len(columns)
    cover = sparse.csr_array(
        (
            np.fromiter((v for vals in col_vals for v in vals), dtype=np.float64),
            (
                np.fromiter((r for rows in col_rows for r in rows), dtype=np.int64),
                np.fromiter((j for j, rows in enumerate(col_rows) for _ in rows), dtype=np.int64),
            ),
        ),
        shape=(n, m),
    )
    reasons = _structural_reasons(req, cover, columns, shifts, grid, interval)
    if reasons and not allow_shortfall:
        raise Infeasible(reasons)
    costs = np.array([shifts[c.shift].shift_cost for c in columns])
    # Shortfall variables (one per interval) price a missing agent-interval far above any
    # roster, so they are used only where nothing else can cover.
    penalty = (float(costs.max()) if m else 1.0) * 1000.0 + 1000.0
    c = np.concatenate([costs, np.full(n, penalty)])
    a_cover = sparse.hstack([cover, sparse.identity(n, format="csr")], format="csr")
    constraints = [optimize.LinearConstraint(a_cover, lb=req, ub=np.inf)]
    limit_rows: list[tuple[int, int, list[int]]] = []
    by_key: dict[tuple[int, int], list[int]] = {}
    for j, col in enumerate(columns):
        if shifts[col.shift].max_count is not None:
            by_key.setdefault((col.shift, col.day), []).append(j)
    for (si, day), cols in sorted(by_key.items()):
        limit_rows.append((si, day, cols))
    if limit_rows:
        rr = [i for i, (_, _, cols) in enumerate(limit_rows) for _ in cols]
        cc = [j for _, _, cols in limit_rows for j in cols]
        a_limit = sparse.csr_array(
            (np.ones(len(cc)), (np.array(rr), np.array(cc))), shape=(len(limit_rows), m + n)
        )
        caps = np.array([float(shifts[si].max_count or 0) for si, _, _ in limit_rows])
        constraints.append(optimize.LinearConstraint(a_limit, lb=-np.inf, ub=caps))
    integrality = np.concatenate([np.ones(m), np.zeros(n)])
    result = optimize.milp(
        c,
        integrality=integrality,
        bounds=optimize.Bounds(0, np.inf),
        constraints=constraints,
        options={"time_limit": float(time_limit), "disp": False},
    )
    if result.x is None:
        raise DomainError(
            f"the solver found no roster within {time_limit:g} s ({result.message}); "
            "allow more time with --time-limit",
            field="time_limit",
        )
    x = np.round(result.x[:m]).astype(np.int64)
    scheduled = cover @ x.astype(np.float64)
    shortfall = np.maximum(req - scheduled, 0.0)
    shortfall[shortfall < 1e-7] = 0.0
    instances: list[ShiftInstance] = []
    for jj in np.flatnonzero(x):
        col = columns[int(jj)]
        shift = shifts[col.shift]
        count = int(x[jj])
        instances.append(
            ShiftInstance(
                shift=shift.name,
                start=t0 + timedelta(seconds=col.start),
                end=t0 + timedelta(seconds=col.start + shift.length),
                breaks=tuple(
                    (t0 + timedelta(seconds=b0), t0 + timedelta(seconds=b1))
                    for b0, b1 in col.breaks
                ),
                count=count,
                cost=count * shift.shift_cost,
            )
        )
    instances.sort(key=lambda s: (s.start, s.shift, s.breaks))
    gap = getattr(result, "mip_gap", None)
    roster = Roster(
        shifts=tuple(instances),
        starts=grid,
        interval=float(interval),
        required=req,
        scheduled=scheduled,
        cost=float(sum(s.cost for s in instances)),
        optimal=result.status == 0,
        gap=float(gap) if gap is not None else None,
        shortfall=shortfall,
    )
    if shortfall.any() and not allow_shortfall:
        binding = sorted(
            {
                f"{shifts[si].name}: {shifts[si].max_count} a day"
                for si, _, cols in limit_rows
                if int(x[cols].sum()) >= (shifts[si].max_count or 0)
            }
        )
        raise Infeasible(_shortfall_reasons(roster, binding), roster)
    return roster


def _structural_reasons(
    req: npt.NDArray[np.float64],
    cover: sparse.csr_array,
    columns: Sequence[_Column],
    shifts: Sequence[ShiftType],
    grid: Sequence[datetime],
    interval: float,
) -> list[str]:
    """Intervals that no roster can cover, whatever the others need."""
    reasons: list[str] = []
    n = req.size
    csc = cover.tocsc()
    best: dict[tuple[int, int], npt.NDArray[np.float64]] = {}  # (shift, day) -> best share
    for j, col in enumerate(columns):
        lo, hi = csc.indptr[j], csc.indptr[j + 1]
        rows, vals = csc.indices[lo:hi], csc.data[lo:hi]
        arr = best.get((col.shift, col.day))
        if arr is None:
            arr = best[(col.shift, col.day)] = np.zeros(n)
        np.maximum.at(arr, rows, vals)
    reach = np.zeros(n)
    unlimited = np.zeros(n, dtype=bool)
    for (si, _), arr in best.items():
        cap = shifts[si].max_count
        if cap is None:
            unlimited |= arr > 0
        else:
            reach += cap * arr
    uncovered = [k for k in range(n) if req[k] > 0 and not unlimited[k] and reach[k] == 0]
    for run in _runs(uncovered):
        first, last = run[0], run[-1]
        span = _span(grid, first, last, interval)
        need = max(req[k] for k in run)
        reasons.append(
            f"{span} needs up to {need:g} agents but no shift type is on the phones then "
            f"({_shift_hours(shifts)})"
        )
    short = [
        k for k in range(n) if req[k] > 0 and not unlimited[k] and 0 < reach[k] < req[k] - 1e-9
    ]
    for k in short:
        names = sorted(
            {
                f"{shifts[si].name} (at most {shifts[si].max_count} a day)"
                for (si, _), arr in best.items()
                if arr[k] > 0
            }
        )
        reasons.append(
            f"{_fmt_time(grid[k])} needs {req[k]:g} agents but at most {reach[k]:g} can be on "
            f"the phones then; the shifts covering it are {', '.join(names)}"
        )
    return reasons


def _shortfall_reasons(roster: Roster, binding: Sequence[str]) -> list[str]:
    """Every interval can be covered alone, but not all together under the daily maxima."""
    short = [k for k in range(roster.required.size) if roster.shortfall[k] > 0]
    reasons = []
    for run in _runs(short):
        k = max(run, key=lambda i: roster.shortfall[i])
        reasons.append(
            f"{_span(roster.starts, run[0], run[-1], roster.interval)}: short of up to "
            f"{roster.shortfall[k]:g} agents (needs {roster.required[k]:g}, the best roster "
            f"gives {roster.scheduled[k]:g})"
        )
    why = ", ".join(binding) if binding else "the shift types' daily maxima"
    reasons.append(
        "each of these intervals could be covered on its own, but not all of them together: "
        f"the daily maxima are used up ({why})"
    )
    return reasons


def _runs(indices: Sequence[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for k in indices:
        if runs and runs[-1][-1] == k - 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return runs


def _span(grid: Sequence[datetime], first: int, last: int, interval: float) -> str:
    end = grid[last] + timedelta(seconds=interval)
    if first == last:
        return f"{_fmt_time(grid[first])}–{end:%H:%M}"
    return f"{_fmt_time(grid[first])}–{end:%H:%M} ({last - first + 1} intervals)"


def _hm(seconds: float) -> str:
    seconds = seconds % DAY
    return f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}"


def _shift_hours(shifts: Sequence[ShiftType]) -> str:
    parts = []
    for s in shifts:
        first, last = min(s.starts), max(s.starts)
        starts = _hm(first) if first == last else f"{_hm(first)}–{_hm(last)}"
        parts.append(f"{s.name} starts {starts}, lasts {s.length / 3600:g} h")
    return "; ".join(parts)
