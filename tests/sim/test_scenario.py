"""Scenario parsing and validation: every mistake names its key."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sparklecomm.acd import Channel, Strategy
from sparklecomm.sim import (
    Constant,
    Empirical,
    Exponential,
    LogNormal,
    ScenarioError,
    load_scenario,
    parse_distribution,
    parse_scenario,
)
from sparklecomm.sim.scenario import DEFAULT_START, Shift, shift_periods

BRIEF = """
seed: 1
duration: 86400            # seconds simulated
service_level_threshold: 20
queues: [{name: support, strategy: longest-idle}]
agents: [{count: 50, queues: [support], skills: {}}]
arrivals:
  - queue: support
    rate_per_hour: 540     # Poisson
    handle_time: {dist: exponential, mean: 300}   # also lognormal, constant, empirical
    patience: {dist: exponential, mean: 600}      # omitted: callers never hang up
"""


def minimal(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "duration": 3600,
        "queues": [{"name": "q"}],
        "agents": [{"count": 2, "queues": ["q"]}],
        "arrivals": [
            {"queue": "q", "rate_per_hour": 60, "handle_time": {"dist": "exponential", "mean": 60}}
        ],
    }
    data.update(changes)
    return data


def test_the_example_of_the_issue(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(BRIEF)
    sc = load_scenario(path)
    assert sc.seed == 1 and sc.duration == 86400 and sc.service_level_threshold == 20
    assert sc.queues[0].name == "support" and sc.queues[0].strategy is Strategy.LONGEST_IDLE
    assert sc.agent_count == 50 and sc.agents[0].agent_ids()[:2] == ["g1-1", "g1-2"]
    arrival = sc.arrivals[0]
    assert arrival.handle_time == Exponential(300.0)
    assert arrival.patience == Exponential(600.0)
    assert arrival.channel is Channel.VOICE
    assert sc.expected_calls == pytest.approx(540 * 24)
    assert sc.start == DEFAULT_START and sc.short_abandon_threshold == 5.0
    assert load_scenario(path, {"duration": 600, "seed": 9}).duration == 600


def test_everything_else_parses() -> None:
    sc = parse_scenario(
        minimal(
            queues=[
                {"name": "sales", "wrapup": 30, "max_wait": 120, "overflow_to": "help"},
                {
                    "name": "help",
                    "strategy": "best-skill",
                    "best_skill": "english",
                    "wrapup": {"dist": "lognormal", "mean": 20, "cv": 0.5},
                    "service_level_threshold": 30,
                },
            ],
            agents=[
                {
                    "name": "day",
                    "count": 3,
                    "queues": ["sales", {"queue": "help", "penalty": 1}],
                    "skills": {"english": 4},
                    "shift": {"start": "08:00", "end": "16:30"},
                    "shrinkage": 0.25,
                    "break_length": 600,
                },
                {
                    "name": "night",
                    "count": 1,
                    "queues": ["help"],
                    "shift": {"start": "22:00", "end": "06:00"},
                },
            ],
            arrivals=[
                {
                    "queue": "sales",
                    "rate_per_hour": 30,
                    "channel": "chat",
                    "priority": 3,
                    "required_skills": "english >= 2",
                    "handle_time": {"dist": "empirical", "values": [60, 120, 180]},
                    "patience": {"dist": "constant", "value": 90},
                    "callback": {"fraction": 0.5, "after": 60, "delay": 300},
                    "transfer": {"fraction": 0.1, "to": "help"},
                }
            ],
            start="2026-03-02T08:00:00+01:00",
            warmup=600,
            interval=900,
            sl_basis="answered",
        )
    )
    sales, help_ = sc.queues
    assert sales.wrapup == Constant(30.0) and sales.overflow_to == "help"
    assert isinstance(help_.wrapup, LogNormal) and sc.threshold(help_) == 30
    day = sc.agents[0]
    assert day.queues[1].penalty == 1 and day.shift == Shift(8 * 3600.0, 16.5 * 3600.0)
    assert sc.agents[1].shift == Shift(22 * 3600.0, 6 * 3600.0)
    a = sc.arrivals[0]
    assert a.channel is Channel.CHAT and a.priority == 3 and a.callback is not None
    assert a.transfer is not None and a.transfer.to == "help"
    assert sc.start == datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def test_forecast_arrivals(tmp_path: Path) -> None:
    (tmp_path / "fc.csv").write_text(
        "start,calls,aht\n2024-05-06T08:00:00,100,180\n2024-05-06T08:30:00,0,180\n"
        "2024-05-06T09:00:00,50,180\n"
    )
    (tmp_path / "s.yaml").write_text(
        "duration: 5400\nqueues: [{name: q}]\nagents: [{count: 1, queues: [q]}]\n"
        "arrivals: [{queue: q, forecast: fc.csv, scale: 2, handle_time: 60}]\n"
    )
    sc = load_scenario(tmp_path / "s.yaml")
    assert sc.start == datetime(2024, 5, 6, 8, 0, tzinfo=UTC)  # from the first row
    segs = sc.arrivals[0].segments
    assert [(s.start, s.end) for s in segs] == [(0, 1800), (3600, 5400)]
    assert segs[0].rate == pytest.approx(200 / 1800) and segs[1].rate == pytest.approx(100 / 1800)
    assert sc.expected_calls == pytest.approx(300)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"duration": -5}, "duration", "greater than 0"),
        ({"duration": "a day"}, "duration", "must be a number"),
        ({"warmup": 7200}, "warmup", "shorter than duration"),
        ({"interval": 7}, "interval", "divide a day"),
        ({"sl_basis": "served"}, "sl_basis", "one of"),
        ({"seeds": 3}, "seeds", "unknown key"),
        ({"queues": []}, "queues", "must not be empty"),
        ({"queues": [{"name": "q"}, {"name": "q"}]}, "queues", "used twice"),
        ({"queues": [{"name": "q", "strategy": "fastest"}]}, "queues[0].strategy", "one of"),
        ({"queues": [{"name": "q", "overflow_to": "x"}]}, "queues[0].overflow_to", "max_wait"),
        ({"agents": [{"count": 2, "queues": ["qq"]}]}, "agents[0].queues[0]", "no queue named"),
        ({"agents": [{"count": -1, "queues": ["q"]}]}, "agents[0].count", "at least 0"),
        (
            {"agents": [{"count": 1, "queues": ["q"], "shrinkage": 1}]},
            "agents[0].shrinkage",
            "below 1",
        ),
        (
            {
                "agents": [
                    {"count": 1, "queues": ["q"], "shift": {"start": "25:00", "end": "08:00"}}
                ]
            },
            "agents[0].shift.start",
            "time of day",
        ),
        (
            {"agents": [{"count": 1, "queues": ["q"], "skills": {"english": 9}}]},
            "agents[0].skills.english",
            "1 to 5",
        ),
        ({"arrivals": [{"queue": "q", "handle_time": 60}]}, "arrivals[0]", "exactly one of"),
        (
            {
                "arrivals": [
                    {
                        "queue": "q",
                        "rate_per_hour": 5,
                        "handle_time": {"dist": "exponential", "mean": -3},
                    }
                ]
            },
            "arrivals[0].handle_time.mean",
            "greater than 0",
        ),
        (
            {
                "arrivals": [
                    {
                        "queue": "q",
                        "rate_per_hour": 5,
                        "handle_time": {"dist": "weibull", "mean": 3},
                    }
                ]
            },
            "arrivals[0].handle_time.dist",
            "one of exponential",
        ),
        (
            {
                "arrivals": [
                    {
                        "queue": "q",
                        "rate_per_hour": 5,
                        "handle_time": {"dist": "exponential", "mean": 3, "sd": 1},
                    }
                ]
            },
            "arrivals[0].handle_time.sd",
            "unknown key",
        ),
        (
            {"arrivals": [{"queue": "q", "rate_per_hour": 5, "handle_tme": 30}]},
            "arrivals[0].handle_tme",
            "unknown key",
        ),
        (
            {
                "arrivals": [
                    {
                        "queue": "q",
                        "rate_per_hour": 5,
                        "handle_time": 30,
                        "callback": {"fraction": 2, "after": 1},
                    }
                ]
            },
            "arrivals[0].callback.fraction",
            "at most 1",
        ),
        (
            {
                "arrivals": [
                    {
                        "queue": "q",
                        "rate_per_hour": 5,
                        "handle_time": 30,
                        "transfer": {"fraction": 0.1, "to": "q"},
                    }
                ]
            },
            "arrivals[0].transfer.to",
            "another queue",
        ),
        (
            {"arrivals": [{"queue": "q", "forecast": "missing.csv", "handle_time": 30}]},
            "arrivals[0].forecast",
            "cannot read",
        ),
    ],
)
def test_mistakes_name_the_key(changes: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(minimal(**changes))
    assert info.value.field == field
    assert words in info.value.detail
    assert field.split("[")[0] in info.value.detail


def test_missing_keys_and_files(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="duration is missing"):
        parse_scenario({"queues": [], "agents": [], "arrivals": []})
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("duration: [1,\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(tmp_path / "bad.yaml")
    (tmp_path / "fc.csv").write_text("start,calls\n2024-05-06T08:00,ten\n")
    (tmp_path / "s.yaml").write_text(
        "duration: 60\nqueues: [{name: q}]\nagents: []\n"
        "arrivals: [{queue: q, forecast: fc.csv, handle_time: 60}]\n"
    )
    with pytest.raises(ScenarioError, match=r"fc.csv line 2: calls must be 0 or more"):
        load_scenario(tmp_path / "s.yaml")


def test_distributions_have_their_means() -> None:
    rng = random.Random(3)
    for raw, mean in [
        ({"dist": "exponential", "mean": 200}, 200),
        ({"dist": "lognormal", "mean": 200, "sd": 150}, 200),
        ({"dist": "constant", "value": 200}, 200),
        ({"dist": "empirical", "values": [100, 300]}, 200),
    ]:
        dist = parse_distribution(raw, "x")
        assert dist.mean == pytest.approx(mean)
        draws = [dist.sample(rng) for _ in range(20000)]
        assert sum(draws) / len(draws) == pytest.approx(mean, rel=0.04)
        assert min(draws) >= 0
    assert isinstance(parse_distribution({"dist": "empirical", "values": [1, 2]}, "x"), Empirical)
    with pytest.raises(ScenarioError, match="mean greater than 0"):
        parse_distribution({"dist": "constant", "value": 0}, "x")


def test_shift_periods_repeat_daily_and_wrap_midnight() -> None:
    start = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    day = shift_periods(Shift(8 * 3600, 16 * 3600), start, 2 * 86400)
    assert day == [(2 * 3600, 10 * 3600), (26 * 3600, 34 * 3600)]
    night = shift_periods(Shift(22 * 3600, 6 * 3600), start, 86400)
    assert night[0] == (16 * 3600, 24 * 3600)  # 22:00 to 06:00, starting 16 h after 06:00
