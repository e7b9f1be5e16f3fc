"""The simulator drives the real engine: shifts, shrinkage, skills, callbacks, transfers..."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sparklecomm.analytics import KpiAccumulator, KpiConfig, event_from_json
from sparklecomm.core.events import NewEvent
from sparklecomm.sim import (
    ScenarioError,
    Simulation,
    load_scenario,
    parse_scenario,
    run_replications,
    simulate,
    summarize,
)


def exp(mean: float) -> dict[str, Any]:
    return {"dist": "exponential", "mean": mean}


def one_queue(**changes: Any) -> Any:
    data: dict[str, Any] = {
        "seed": 3,
        "duration": 4 * 3600,
        "queues": [{"name": "q"}],
        "agents": [{"count": 10, "queues": ["q"]}],
        "arrivals": [
            {"queue": "q", "rate_per_hour": 240, "handle_time": exp(120), "patience": exp(300)}
        ],
    }
    data.update(changes)
    return parse_scenario(data)


def test_same_seed_same_result_and_replications_differ() -> None:
    sc = one_queue()
    a, b = simulate(sc), simulate(sc)
    assert a.report.to_dict() == b.report.to_dict()
    assert a.arrivals == b.arrivals and a.events == b.events
    other = simulate(sc, replication=1)
    assert other.arrivals != a.arrivals
    with pytest.raises(RuntimeError):
        sim = Simulation(sc)
        sim.run()
        sim.run()


def test_the_event_stream_is_the_engines_and_gives_the_same_kpis(tmp_path: Path) -> None:
    sc = one_queue(duration=3600)
    seen: list[NewEvent] = []
    result = simulate(sc, on_event=seen.append)
    assert len(seen) == result.events
    kinds = {e.type for e in seen}
    assert {
        "queue.created",
        "agent.created",
        "agent.logged_in",
        "agent.state_changed",
        "interaction.created",
        "interaction.queued",
        "interaction.offered",
        "interaction.accepted",
        "interaction.completed",
        "interaction.wrapup_ended",
    } <= kinds
    times = [e.time for e in seen]
    assert all(t is not None for t in times)
    assert times == sorted(times)
    # Replaying the JSON form through a fresh accumulator gives the same figures.
    lines = [
        json.dumps({"type": e.type, "time": e.time.isoformat(), "payload": e.payload}) for e in seen
    ]
    acc = KpiAccumulator(
        KpiConfig(
            short_abandon_seconds=sc.short_abandon_threshold,
            since=sc.start,
            until=sc.start + timedelta(seconds=sc.duration),
        )
    )
    acc.feed_all(event_from_json(json.loads(line)) for line in lines)
    assert acc.report(result.report.now).to_dict() == result.report.to_dict()


def test_totals_are_the_sum_of_the_intervals() -> None:
    report = simulate(one_queue()).report
    assert len(report.intervals) == 8  # 4 h of 30 min; the drain adds no interval
    offered = sum(iv.queues["q"].offered for iv in report.intervals if "q" in iv.queues)
    assert offered == report.queues["q"].offered == report.overall.offered
    busy = sum(iv.overall.busy_seconds for iv in report.intervals)
    assert busy == pytest.approx(report.overall.busy_seconds)
    # Agent time stops at the end of the simulated period (not the drain).
    assert report.overall.logged_in_seconds == pytest.approx(10 * 4 * 3600)


def test_shifts_log_agents_in_and_out() -> None:
    sc = one_queue(
        duration=3 * 3600,
        agents=[{"count": 4, "queues": ["q"], "shift": {"start": "01:00", "end": "02:00"}}],
        arrivals=[{"queue": "q", "rate_per_hour": 60, "handle_time": exp(60)}],
    )
    seen: list[NewEvent] = []
    result = simulate(sc, on_event=seen.append)
    begin, end = sc.start + timedelta(hours=1), sc.start + timedelta(hours=2)
    accepted = [e.time for e in seen if e.type == "interaction.accepted"]
    assert accepted and all(begin <= t <= end for t in accepted)
    outs = [e for e in seen if e.type == "agent.logged_out"]
    assert len(outs) == 4 and all(e.payload["reason"] == "shift-end" for e in outs)
    assert all(e.time >= end for e in outs)
    overall = result.report.overall
    assert overall.logged_in_seconds == pytest.approx(4 * 3600, rel=0.02)
    # Callers who came after 02:00 never hung up and nobody answered them.
    assert result.in_progress > 0


def test_shrinkage_keeps_that_share_of_time_on_break() -> None:
    sc = one_queue(
        duration=8 * 3600,
        agents=[{"count": 30, "queues": ["q"], "shrinkage": 0.3, "break_length": 600}],
        arrivals=[{"queue": "q", "rate_per_hour": 120, "handle_time": exp(60)}],
    )
    k = simulate(sc).report.overall
    assert k.break_seconds / k.logged_in_seconds == pytest.approx(0.3, abs=0.04)
    assert k.utilisation < k.occupancy  # breaks count in utilisation only


def test_skills_route_only_to_qualified_agents() -> None:
    sc = one_queue(
        agents=[
            {"name": "es", "count": 3, "queues": ["q"], "skills": {"spanish": 4}},
            {"name": "en", "count": 5, "queues": ["q"]},
        ],
        arrivals=[
            {
                "queue": "q",
                "rate_per_hour": 40,
                "handle_time": exp(120),
                "required_skills": "spanish >= 3",
            },
            {"queue": "q", "rate_per_hour": 80, "handle_time": exp(120)},
        ],
    )
    seen: list[NewEvent] = []
    simulate(sc, on_event=seen.append)
    spanish = {
        e.payload["interaction_id"]
        for e in seen
        if e.type == "interaction.created" and e.payload["required_skills"]
    }
    takers = {
        e.payload["agent_id"]
        for e in seen
        if e.type == "interaction.accepted" and e.payload["interaction_id"] in spanish
    }
    assert spanish and takers and all(a.startswith("es-") for a in takers)


def test_callbacks() -> None:
    sc = one_queue(
        agents=[{"count": 3, "queues": ["q"]}],
        arrivals=[
            {
                "queue": "q",
                "rate_per_hour": 100,
                "handle_time": exp(120),
                "callback": {"fraction": 1.0, "after": 30},
            }
        ],
    )
    result = simulate(sc)
    k = result.report.queues["q"]
    assert k.callbacks_requested > 20
    assert k.callbacks_answered == k.callbacks_requested  # all called back during the drain
    assert k.answered + k.callbacks_requested == k.offered
    assert k.longest_wait <= 30.0 + 1e-6  # nobody waits in line beyond 30 s
    assert k.handled == k.offered


def test_transfers_to_another_queue() -> None:
    sc = one_queue(
        queues=[{"name": "front"}, {"name": "back"}],
        agents=[{"count": 12, "queues": ["front", "back"]}],
        arrivals=[
            {
                "queue": "front",
                "rate_per_hour": 200,
                "handle_time": exp(60),
                "transfer": {"fraction": 0.4, "to": "back"},
            }
        ],
    )
    seen: list[NewEvent] = []
    report = simulate(sc, on_event=seen.append).report
    front, back = report.queues["front"], report.queues["back"]
    assert front.transfer_rate == pytest.approx(0.4, abs=0.06)
    # A contact that arrived before the end but is transferred after it counts as
    # transferred (in its arrival interval) but is not offered to "back" within the window.
    end = sc.start + timedelta(seconds=sc.duration)
    late = sum(
        1
        for e in seen
        if e.type == "interaction.transferred" and e.time is not None and e.time >= end
    )
    assert back.offered == front.transferred - late
    assert report.overall.offered == front.offered  # a transfer is not a new contact


def test_wrapup_constant_and_random() -> None:
    for wrapup in (20, {"dist": "exponential", "mean": 20}):
        sc = one_queue(
            queues=[{"name": "q", "wrapup": wrapup}],
            arrivals=[
                {
                    "queue": "q",
                    "rate_per_hour": 120,
                    "handle_time": {"dist": "constant", "value": 100},
                }
            ],
        )
        k = simulate(sc).report.overall
        assert k.average_talk == pytest.approx(100.0)
        assert k.average_wrapup == pytest.approx(
            20.0, rel=0.15 if isinstance(wrapup, dict) else 1e-9
        )
        assert k.aht == pytest.approx(k.average_talk + k.average_wrapup)


def test_max_wait_overflows_then_diverts() -> None:
    sc = one_queue(
        queues=[
            {"name": "first", "max_wait": 10, "overflow_to": "second"},
            {"name": "second", "max_wait": 10},
        ],
        agents=[{"count": 1, "queues": ["first"]}],
        arrivals=[{"queue": "first", "rate_per_hour": 120, "handle_time": exp(120)}],
    )
    report = simulate(sc).report
    first, second = report.queues["first"], report.queues["second"]
    assert first.overflowed > 0 and second.offered == first.overflowed
    assert second.diverted == second.offered  # nobody staffs the second queue
    assert report.overall.diverted == second.diverted


def test_forecast_drives_the_arrival_rate(tmp_path: Path) -> None:
    rows = ["start,calls"] + [
        f"2024-05-06T{h:02d}:{m:02d}:00,{400 if h == 9 else 0}"
        for h in range(8, 11)
        for m in (0, 30)
    ]
    (tmp_path / "fc.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "s.yaml").write_text(
        "duration: 10800\nqueues: [{name: q}]\nagents: [{count: 60, queues: [q]}]\n"
        "arrivals: [{queue: q, forecast: fc.csv, handle_time: {dist: exponential, mean: 60}}]\n"
    )
    sc = load_scenario(tmp_path / "s.yaml")
    report = simulate(sc).report
    by_start = {iv.start.replace(tzinfo=None): iv.overall.offered for iv in report.intervals}
    assert by_start.get(datetime(2024, 5, 6, 8, 0), 0) == 0
    assert by_start[datetime(2024, 5, 6, 9, 0)] == pytest.approx(400, abs=70)
    assert by_start[datetime(2024, 5, 6, 9, 30)] == pytest.approx(400, abs=70)
    assert by_start.get(datetime(2024, 5, 6, 10, 0), 0) == 0


def test_replications_summary_has_confidence_intervals() -> None:
    sc = one_queue(duration=1800)
    shares: list[float] = []
    results = run_replications(sc, 3, progress=shares.append)
    assert shares[-1] == pytest.approx(1.0) and shares == sorted(shares)
    summary = summarize(sc, results)
    assert summary["replications"] == 3
    for key in ("offered", "service_level", "asa", "abandon_rate", "occupancy", "aht"):
        low, high = summary["ci95"][key]
        assert low <= summary[key] <= high
    assert set(summary["queues"]["q"]["ci95"]) >= {"service_level", "asa", "abandon_rate"}
    assert "occupancy" not in summary["queues"]["q"]
    single = summarize(sc, results[:1])
    assert "ci95" not in single and single["offered"] == results[0].report.overall.offered


def test_replications_in_parallel_processes_give_the_same_results_and_events() -> None:
    import io

    sc = one_queue(duration=1800)
    serial_events, parallel_events = io.StringIO(), io.StringIO()
    serial = run_replications(sc, 3, events_to=serial_events)
    shares: list[float] = []
    parallel = run_replications(sc, 3, jobs=3, events_to=parallel_events, progress=shares.append)
    assert [r.replication for r in parallel] == [0, 1, 2]
    assert [r.report.to_dict() for r in parallel] == [r.report.to_dict() for r in serial]
    assert [r.events for r in parallel] == [r.events for r in serial]
    assert parallel_events.getvalue() == serial_events.getvalue()
    lines = parallel_events.getvalue().splitlines()
    assert len(lines) == sum(r.events for r in serial)
    assert [json.loads(lines[0])["replication"], json.loads(lines[-1])["replication"]] == [1, 3]
    assert shares == pytest.approx([1 / 3, 2 / 3, 1.0])
    with pytest.raises(ValueError, match="jobs"):
        run_replications(sc, 2, jobs=0)
    with pytest.raises(ValueError, match="on_event needs jobs=1"):
        run_replications(sc, 2, jobs=2, on_event=lambda r: None)


OFFICE = {"timezone": "UTC", "weekly": {"mon": ["09:00-17:00"]}}  # the default start: Monday


def test_a_queue_keeping_business_hours_turns_new_contacts_away_while_closed() -> None:
    sc = one_queue(duration=86400, queues=[{"name": "q", "hours": OFFICE}])
    seen: list[NewEvent] = []
    report = simulate(sc, on_event=seen.append).report
    q = report.queues["q"]
    assert q.diverted > 0 and q.answered > 0
    arrived: dict[str, int] = {}
    for event in seen:
        hour = event.time.hour
        if event.type == "interaction.created":
            arrived[event.payload["interaction_id"]] = hour
        elif event.type == "interaction.diverted":
            assert event.payload["reason"] == "closed" and not 9 <= hour < 17
        elif event.type == "interaction.accepted":  # only callers who came while open
            assert 9 <= arrived[event.payload["interaction_id"]] < 17
    # About 16 of 24 hours are closed: roughly two thirds of the calls are turned away.
    assert 0.55 < q.diverted / q.offered < 0.78


def test_while_closed_new_contacts_can_go_to_another_queue() -> None:
    sc = one_queue(
        duration=86400,
        queues=[{"name": "q", "hours": OFFICE, "closed_to": "night"}, {"name": "night"}],
        agents=[{"count": 10, "queues": ["q", "night"]}],
    )
    report = simulate(sc).report
    assert report.queues["q"].diverted == 0 and report.queues["q"].overflowed > 0
    assert report.queues["night"].offered == report.queues["q"].overflowed
    assert report.queues["night"].answered > 0


@pytest.mark.parametrize(
    ("queue", "field"),
    [
        ({"name": "q", "hours": {**OFFICE, "timezone": "Mars"}}, "queues[0].hours.timezone"),
        (
            {"name": "q", "hours": {"timezone": "UTC", "weekly": {"mon": "9-5"}}},
            "queues[0].hours.weekly.mon",
        ),
        ({"name": "q", "closed_to": "q"}, "queues[0].closed_to"),
        ({"name": "q", "hours": OFFICE, "closed_to": "nowhere"}, "queues[0].closed_to"),
    ],
)
def test_bad_business_hours_in_a_scenario_name_the_field(queue: dict[str, Any], field: str) -> None:
    with pytest.raises(ScenarioError) as err:
        one_queue(queues=[queue])
    assert err.value.field.startswith(field), (err.value.field, str(err.value))
