"""Shift scheduling with breaks: optimal, covering, and clear about what cannot be covered."""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

from sparklecomm.core.errors import InvalidInput
from sparklecomm.wfm.schedule import (
    BreakRule,
    Infeasible,
    ShiftType,
    build_roster,
    parse_duration,
    parse_shifts,
)

MONDAY = datetime(2024, 5, 6, 0, 0)
HOUR = 3600.0


def hours(first: int, count: int, day: datetime = MONDAY) -> list[datetime]:
    return [day + timedelta(hours=first + k) for k in range(count)]


def test_parse_shifts_forms() -> None:
    shifts = parse_shifts(
        {
            "shifts": [
                {
                    "name": "early",
                    "start": {"from": "07:00", "to": "09:00", "every": "30m"},
                    "length": "8h30m",
                    "breaks": [{"length": "30m", "window": ["3h", "5h"]}],
                    "cost": 8.5,
                    "max_count": 20,
                    "days": ["mon", "tue", "Wednesday"],
                },
                {"name": "part", "start": ["12:00", "09:00", "12:00"], "length": 14400},
                {
                    "name": "one",
                    "start": "10:00",
                    "length": "06:00",
                    "break": {"length": 900, "window": [7200, 10800], "step": "15m"},
                },
            ]
        }
    )
    early, part, one = shifts
    assert early.starts == (7 * HOUR, 7.5 * HOUR, 8 * HOUR, 8.5 * HOUR, 9 * HOUR)
    assert early.length == 8.5 * HOUR and early.shift_cost == 8.5 and early.max_count == 20
    assert early.breaks == (BreakRule(1800, 3 * HOUR, 5 * HOUR),)
    assert early.days == frozenset({0, 1, 2})
    assert part.starts == (9 * HOUR, 12 * HOUR) and part.shift_cost == 4.0  # paid hours
    assert one.breaks[0].step == 900 and one.length == 6 * HOUR


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "shifts"),
        ({"shifts": []}, "shifts"),
        ({"shifts": [{"start": "07:00", "length": "8h"}]}, "shifts[0].name"),
        ({"shifts": [{"name": "a", "start": "27:00", "length": "8h"}]}, "shifts[0].start"),
        ({"shifts": [{"name": "a", "start": "07:00", "length": "-8h"}]}, "shifts[0].length"),
        (
            {"shifts": [{"name": "a", "start": "07:00", "length": "8h", "colour": 1}]},
            "shifts[0].colour",
        ),
        (
            {"shifts": [{"name": "a", "start": "07:00", "length": "8h", "max_count": -1}]},
            "shifts[0].max_count",
        ),
        (
            {"shifts": [{"name": "a", "start": "07:00", "length": "8h", "days": ["funday"]}]},
            "shifts[0].days",
        ),
        (
            {
                "shifts": [
                    {
                        "name": "a",
                        "start": "07:00",
                        "length": "4h",
                        "breaks": [{"length": "1h", "window": ["2h", "3h30m"]}],
                    }
                ]
            },
            "shifts[0].breaks[0].window",
        ),
        (
            {
                "shifts": [
                    {"name": "a", "start": "07:00", "length": "4h", "breaks": [{"length": "1h"}]}
                ]
            },
            "shifts[0].breaks[0].window",
        ),
        (
            {
                "shifts": [
                    {"name": "a", "start": "07:00", "length": "8h"},
                    {"name": "a", "start": "07:00", "length": "8h"},
                ]
            },
            "shifts[1].name",
        ),
    ],
)
def test_bad_shifts_name_the_key(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_shifts(data)
    assert info.value.field == field


def test_durations() -> None:
    assert parse_duration("8h30m", "x") == 30600
    assert parse_duration("08:30", "x") == 30600
    assert parse_duration("90s", "x") == 90
    assert parse_duration(45, "x") == 45
    with pytest.raises(InvalidInput):
        parse_duration("soon", "x")
    with pytest.raises(InvalidInput):
        parse_duration(0, "x")


def test_textbook_example() -> None:
    """Two-hour shifts starting every hour; needs 1, 2, 2, 1: three shifts is optimal."""
    shifts = [ShiftType("s", tuple(h * HOUR for h in range(24)), 2 * HOUR)]
    roster = build_roster(hours(8, 4), [1, 2, 2, 1], shifts)
    assert roster.optimal and roster.cost == 3.0 * 2 and roster.agents == 3
    assert [(s.start.hour, s.count) for s in roster.shifts] == [(8, 1), (9, 1), (10, 1)]
    assert list(roster.scheduled) == [1, 2, 2, 1]


def brute_force(req: list[int], starts: list[int], length: int, costs: list[float]) -> float:
    """Cheapest covering by trying every count of every shift (tiny cases only)."""
    n = len(req)
    best = np.inf
    columns = [(s, c) for s in starts for c in costs]
    for counts in itertools.product(range(max(req) + 1), repeat=len(columns)):
        cover = [0] * n
        for (s, _), x in zip(columns, counts, strict=True):
            for k in range(s, min(n, s + length)):
                cover[k] += x
        if all(c >= r for c, r in zip(cover, req, strict=True)):
            best = min(best, sum(x * c for (_, c), x in zip(columns, counts, strict=True)))
    return float(best)


def test_matches_brute_force_on_small_cases() -> None:
    rng = random.Random(5)
    for _ in range(12):
        n = rng.randint(3, 5)
        req = [rng.randint(0, 3) for _ in range(n)]
        length = rng.randint(1, 3)
        starts = sorted(rng.sample(range(n), rng.randint(1, min(3, n))))
        if any(r > 0 and not any(s <= k < s + length for s in starts) for k, r in enumerate(req)):
            continue  # not coverable; covered by the infeasibility tests
        cost = float(rng.randint(1, 5))
        shifts = [ShiftType("s", tuple((8 + s) * HOUR for s in starts), length * HOUR, cost=cost)]
        roster = build_roster(hours(8, n), req, shifts)
        assert roster.cost == pytest.approx(brute_force(req, starts, length, [cost])), (req, starts)


def test_breaks_are_placed_in_their_window_and_staggered() -> None:
    shifts = parse_shifts(
        {
            "shifts": [
                {
                    "name": "day",
                    "start": "08:00",
                    "length": "6h",
                    "breaks": [{"length": "1h", "window": ["2h", "3h"]}],
                }
            ]
        }
    )
    roster = build_roster(hours(8, 6), [2] * 6, shifts)
    assert roster.agents == 4  # 2 on the phones at all times, breaks at 10:00 and 11:00
    assert np.all(roster.scheduled >= roster.required)
    for s in roster.shifts:
        ((b0, b1),) = s.breaks
        assert timedelta(hours=2) <= b0 - s.start <= timedelta(hours=3)
        assert b1 - b0 == timedelta(hours=1)
    assert sorted(s.breaks[0][0].hour for s in roster.shifts for _ in range(s.count)) == [
        10,
        10,
        11,
        11,
    ]


def test_short_breaks_count_for_part_of_an_interval() -> None:
    shifts = [ShiftType("s", (8 * HOUR,), 2 * HOUR, (BreakRule(900, 3600, 3600),))]
    roster = build_roster(hours(8, 2), [1, 0.75], shifts)
    assert roster.agents == 1
    assert list(roster.scheduled) == [1.0, 0.75]


def test_gaps_in_the_requirements_need_nobody_and_days_are_respected() -> None:
    starts = hours(9, 2) + hours(9, 2, MONDAY + timedelta(days=5))  # Monday and Saturday
    shifts = parse_shifts(
        {
            "shifts": [
                {
                    "name": "week",
                    "start": "09:00",
                    "length": "2h",
                    "cost": 1,
                    "days": ["mon", "tue", "wed", "thu", "fri"],
                },
                {
                    "name": "weekend",
                    "start": "09:00",
                    "length": "2h",
                    "cost": 3,
                    "days": ["sat", "sun"],
                },
            ]
        }
    )
    roster = build_roster(starts, [2, 2, 1, 1], shifts)
    assert [(s.shift, s.start.weekday(), s.count) for s in roster.shifts] == [
        ("week", 0, 2),
        ("weekend", 5, 1),
    ]
    assert len(roster.starts) == 5 * 24 + 2  # the whole grid from Monday 09:00
    assert roster.cost == 2 * 1 + 1 * 3


def test_uncoverable_interval_is_explained() -> None:
    shifts = parse_shifts({"shifts": [{"name": "day", "start": "08:00", "length": "8h"}]})
    with pytest.raises(Infeasible) as info:
        build_roster(hours(8, 10), [1] * 9 + [3], shifts)
    text = info.value.detail
    assert "Mon 2024-05-06 16:00–18:00 (2 intervals) needs up to 3 agents" in text
    assert "no shift type is on the phones then" in text
    assert "day starts 08:00, lasts 8 h" in text


def test_daily_maximum_is_explained() -> None:
    shifts = parse_shifts(
        {"shifts": [{"name": "day", "start": "08:00", "length": "4h", "max_count": 10}]}
    )
    with pytest.raises(Infeasible) as info:
        build_roster(hours(8, 4), [5, 12, 3, 3], shifts)
    assert "09:00 needs 12 agents but at most 10 can be on the phones" in info.value.detail
    assert "day (at most 10 a day)" in info.value.detail
    roster = build_roster(hours(8, 4), [5, 12, 3, 3], shifts, allow_shortfall=True)
    assert roster.agents == 10 and list(roster.shortfall) == [0, 2, 0, 0]


def test_maxima_that_bind_only_together_are_explained() -> None:
    shifts = parse_shifts(
        {"shifts": [{"name": "flex", "start": ["08:00", "10:00"], "length": "2h", "max_count": 3}]}
    )
    # Each hour alone can have 3 agents, but the day cannot have 3 + 3 flex shifts.
    with pytest.raises(Infeasible) as info:
        build_roster(hours(8, 4), [3, 3, 3, 3], shifts)
    text = info.value.detail
    assert "short of up to 3 agents" in text
    assert "not all of them together" in text and "flex: 3 a day" in text
    assert info.value.roster is not None and info.value.roster.agents == 3


def test_bad_requirements() -> None:
    shifts = [ShiftType("s", (8 * HOUR,), HOUR)]
    with pytest.raises(InvalidInput):
        build_roster(hours(8, 2), [1], shifts)
    with pytest.raises(InvalidInput):
        build_roster(hours(8, 2), [1, -1], shifts)
    with pytest.raises(InvalidInput, match="not on the"):
        build_roster(
            [MONDAY, MONDAY + timedelta(minutes=45), MONDAY + timedelta(hours=1)],
            [1, 1, 1],
            shifts,
            interval=1800,
        )
