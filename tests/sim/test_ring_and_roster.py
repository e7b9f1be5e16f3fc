"""Simulated agents who take time to answer (or don't), and agents staffed from a roster."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from sparklecomm.core.events import NewEvent
from sparklecomm.sim import ScenarioError, parse_scenario, simulate
from sparklecomm.sim.scenario import apply_roster, read_roster
from sparklecomm.wfm.cli import register

START = datetime(2026, 1, 5, tzinfo=UTC)


def exp(mean: float) -> dict[str, Any]:
    return {"dist": "exponential", "mean": mean}


def scenario(agent: dict[str, Any], **changes: Any) -> Any:
    data: dict[str, Any] = {
        "seed": 5,
        "duration": 2 * 3600,
        "start": START.isoformat(),
        "short_abandon_threshold": 0,
        "queues": [{"name": "q"}],
        "agents": [{"count": 12, "queues": ["q"], **agent}],
        "arrivals": [{"queue": "q", "rate_per_hour": 120, "handle_time": exp(120)}],
    }
    data.update(changes)
    return parse_scenario(data)


def run(sc: Any) -> tuple[Any, list[NewEvent]]:
    seen: list[NewEvent] = []
    return simulate(sc, on_event=seen.append), seen


# --- ring time --------------------------------------------------------------------------------


def test_constant_answer_time_is_the_wait_when_agents_are_free() -> None:
    # 12 agents, 4 Erlang: nearly every call finds a free agent at once, whose phone then
    # rings 5 s. So every answered call waited at least 5 s, most exactly 5 s.
    result, events = run(scenario({"answer_time": {"dist": "constant", "value": 5}}))
    accepted = [e for e in events if e.type == "interaction.accepted"]
    assert len(accepted) > 150
    waits = [float(e.payload["wait_seconds"]) for e in accepted]
    assert min(waits) == pytest.approx(5.0, abs=1e-6)
    assert sum(1 for w in waits if abs(w - 5.0) < 1e-6) > 0.8 * len(waits)
    k = result.report.overall
    assert 5.0 <= k.asa < 6.0
    assert k.answered == k.offered  # nobody hangs up in this scenario
    # Without ring time the same calls are answered at once.
    instant, _ = run(scenario({}))
    assert instant.report.overall.asa < 0.5


def test_exponential_answer_time_mean_shows_in_asa() -> None:
    result, _ = run(scenario({"answer_time": exp(8.0)}, duration=6 * 3600))
    assert 6.5 < result.report.overall.asa < 9.5  # mean ring 8 s (plus rare queueing)


def test_rejected_offers_go_to_another_agent() -> None:
    result, events = run(scenario({"answer_time": {"dist": "constant", "value": 2}, "reject": 0.3}))
    offered = sum(1 for e in events if e.type == "interaction.offered")
    rejected = [e for e in events if e.type == "interaction.rejected"]
    assert 0.2 * offered < len(rejected) < 0.4 * offered
    assert all(float(e.payload["ring_seconds"]) == pytest.approx(2.0) for e in rejected)
    k = result.report.overall
    assert k.answered == k.offered and result.in_progress == 0


def test_unanswered_offers_ring_out_and_benched_agents_come_back() -> None:
    result, events = run(scenario({"no_answer": 0.25}, duration=4 * 3600))
    timed_out = [e for e in events if e.type == "interaction.offer_timed_out"]
    assert timed_out
    # The engine's offer timeout (20 s by default) ends the ring.
    assert all(float(e.payload["ring_seconds"]) == pytest.approx(20.0) for e in timed_out)
    benched = [
        e
        for e in events
        if e.type == "agent.state_changed"
        and e.payload["state"] == "break"
        and e.payload["reason"] == "missed-offers"
    ]
    assert benched, "three misses in a row must happen with p = 0.25 over hours"
    agent = benched[0].payload["agent_id"]
    at = benched[0].time
    assert at is not None
    back = [
        e
        for e in events
        if e.type == "agent.state_changed"
        and e.payload["agent_id"] == agent
        and e.time is not None
        and e.time > at
        and e.payload["state"] != "break"
    ]
    assert back and back[0].time == at + timedelta(seconds=60)
    k = result.report.overall
    assert k.answered == k.offered and result.in_progress == 0


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        ({"reject": 0.6, "no_answer": 0.5}, "agents[0]: reject + no_answer must be below 1"),
        ({"reject": 1.2}, "agents[0].reject"),
        ({"answer_time": {"dist": "constant", "value": -1}}, "agents[0].answer_time"),
        ({"answer_time": {"dist": "weibull", "mean": 3}}, "agents[0].answer_time.dist"),
    ],
)
def test_bad_ring_options_name_the_key(agent: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        scenario(agent)
    assert message in info.value.detail


# --- roster -----------------------------------------------------------------------------------

ROSTER = """shift,start,end,break_start,break_end,count
early,2026-01-05T08:00+00:00,2026-01-05T12:00+00:00,2026-01-05T10:00+00:00,2026-01-05T10:30+00:00,3
late,2026-01-05T12:00+00:00,2026-01-05T16:00+00:00,,,2
"""


def roster_scenario() -> Any:
    return parse_scenario(
        {
            "seed": 2,
            "duration": 86400,
            "start": START.isoformat(),
            "queues": [{"name": "q"}],
            "agents": [{"name": "template", "count": 40, "queues": ["q"], "skills": {"en": 3}}],
            "arrivals": [
                {"queue": "q", "rate_per_hour": 30, "handle_time": exp(120), "patience": exp(900)}
            ],
        }
    )


def hours(moment: datetime | None) -> float:
    assert moment is not None
    return (moment - START).total_seconds() / 3600.0


def test_roster_staffs_the_day(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER, encoding="utf-8")
    rows = read_roster(path)
    assert [(r.shift, r.count, len(r.breaks)) for r in rows] == [("early", 3, 1), ("late", 2, 0)]
    sc = apply_roster(roster_scenario(), rows)
    assert sc.agent_count == 5  # the roster's agents replace the scenario's 40
    assert {g.skills["en"] for g in sc.agents} == {3}  # from the template group
    result, events = run(sc)
    logins = [e for e in events if e.type == "agent.logged_in"]
    assert sorted(hours(e.time) for e in logins) == [8, 8, 8, 12, 12]
    accepted = [e for e in events if e.type == "interaction.accepted"]
    assert accepted
    by_early = [e for e in accepted if str(e.payload["agent_id"]).startswith("early")]
    by_late = [e for e in accepted if str(e.payload["agent_id"]).startswith("late")]
    assert by_early and by_late
    # Calls are answered only while someone is rostered; early agents take none on break
    # and none after their shift; late agents none before theirs.
    assert all(8 <= hours(e.time) < 16 for e in accepted)
    assert not [e for e in by_early if 10 <= hours(e.time) < 10.5 or hours(e.time) >= 12]
    assert all(hours(e.time) >= 12 for e in by_late)
    breaks = [
        e
        for e in events
        if e.type == "agent.state_changed"
        and e.payload["reason"] == "roster-break"
        and e.payload["state"] == "break"
    ]
    assert len(breaks) == 3 and all(10 <= hours(e.time) < 10.5 for e in breaks)
    logouts = [e for e in events if e.type == "agent.logged_out"]
    assert len(logouts) == 5
    # Callers arriving at night wait for the morning or hang up: both are counted.
    k = result.report.overall
    assert k.abandoned > 0 and k.answered > 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("shift,start,end,count\nx,2026-01-05T08:00,2026-01-05T09:00,1\n", "missing column"),
        (ROSTER.replace("2026-01-05T16:00+00:00,,,2", "bogus,,,2"), "line 3: end"),
        (ROSTER.replace(",3\n", ",three\n"), "line 2: count must be a whole number"),
        (ROSTER.replace("T10:30", "T13:30"), "line 2: break"),
    ],
)
def test_bad_roster_names_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "roster.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        read_roster(path)
    assert message in info.value.detail


SCENARIO_YAML = """
seed: 1
duration: 86400
start: 2026-01-05T00:00:00+00:00
queues: [{name: q}]
agents: [{name: template, count: 1, queues: [q]}]
arrivals: [{queue: q, rate_per_hour: 30, handle_time: {dist: exponential, mean: 120},
            patience: {dist: exponential, mean: 900}}]
"""


def cli(*args: str) -> tuple[int, str, str]:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stdout, result.stderr


def test_simulate_cli_with_roster(tmp_path: Path) -> None:
    (tmp_path / "scenario.yaml").write_text(SCENARIO_YAML, encoding="utf-8")
    (tmp_path / "roster.csv").write_text(ROSTER, encoding="utf-8")
    args = ("simulate", str(tmp_path / "scenario.yaml"), "--json", "--no-progress")
    code, out, err = cli(*args, "--roster", str(tmp_path / "roster.csv"))
    assert code == 0, err
    with_roster = json.loads(out)
    code, out, err = cli(*args)
    assert code == 0, err
    one_agent_all_day = json.loads(out)
    # The rostered day is staffed 8-16 only: far more callers give up than with one agent
    # on all day.
    assert with_roster["abandon_rate"] > one_agent_all_day["abandon_rate"]
    (tmp_path / "bad.csv").write_text("shift,start\n", encoding="utf-8")
    code, out, err = cli(*args, "--roster", str(tmp_path / "bad.csv"))
    assert code == 2 and "--roster" in err and "missing column 'end'" in err
    code, out, err = cli(*args, "--roster", str(tmp_path / "none.csv"))
    assert code == 2 and "cannot read roster" in err
