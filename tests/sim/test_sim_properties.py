"""Random small scenarios: the simulator never fails and the KPI books always balance."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparklecomm.sim import parse_scenario, simulate

DISTS = st.sampled_from(
    [
        {"dist": "exponential", "mean": 90},
        {"dist": "lognormal", "mean": 90, "cv": 1.2},
        {"dist": "constant", "value": 60},
        {"dist": "empirical", "values": [10, 60, 200]},
    ]
)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    queues: list[dict[str, Any]] = [{"name": "a"}, {"name": "b"}]
    if draw(st.booleans()):
        queues[0]["wrapup"] = draw(st.sampled_from([0, 15, {"dist": "exponential", "mean": 10}]))
    if draw(st.booleans()):
        queues[0].update(max_wait=draw(st.sampled_from([5, 60])), overflow_to="b")
    if draw(st.booleans()):
        queues[1]["max_wait"] = 30
    groups = []
    for i in range(draw(st.integers(1, 3))):
        group: dict[str, Any] = {
            "name": f"g{i}",
            "count": draw(st.integers(0, 4)),
            "queues": draw(
                st.sampled_from([["a"], ["b"], ["a", "b"], [{"queue": "b", "penalty": 2}]])
            ),
            "skills": draw(st.sampled_from([{}, {"x": 3}])),
        }
        if draw(st.booleans()):
            group["shift"] = draw(
                st.sampled_from(
                    [
                        {"start": "00:10", "end": "00:40"},
                        {"start": "23:50", "end": "00:20"},
                        {"start": 600, "end": 3000},
                    ]
                )
            )
        if draw(st.booleans()):
            group["shrinkage"] = draw(st.sampled_from([0.2, 0.6]))
            group["break_length"] = draw(st.sampled_from([60, 300]))
        groups.append(group)
    arrivals = []
    for q in ("a", "b"):
        arrival: dict[str, Any] = {
            "queue": q,
            "rate_per_hour": draw(st.sampled_from([0, 30, 120])),
            "handle_time": draw(DISTS),
            "channel": draw(st.sampled_from(["voice", "chat"])),
        }
        if draw(st.booleans()):
            arrival["patience"] = draw(DISTS)
        if draw(st.booleans()):
            arrival["required_skills"] = "x >= 2"
        if draw(st.booleans()):
            arrival["callback"] = {
                "fraction": draw(st.sampled_from([0.5, 1.0])),
                "after": draw(st.sampled_from([0, 20])),
                "delay": draw(st.sampled_from([0, 120])),
            }
        if draw(st.booleans()):
            arrival["transfer"] = {"fraction": 0.5, "to": "b" if q == "a" else "a"}
        arrivals.append(arrival)
    return {
        "seed": draw(st.integers(0, 1000)),
        "duration": draw(st.sampled_from([1800, 3600])),
        "drain": draw(st.sampled_from([0, 1800])),
        "warmup": draw(st.sampled_from([0, 300])),
        "queues": queues,
        "agents": groups,
        "arrivals": arrivals,
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_random_scenarios_balance(data: dict[str, Any]) -> None:
    sc = parse_scenario(data)
    result = simulate(sc)
    report = result.report
    for name, k in report.queues.items():
        resolved = k.answered + k.abandoned + k.overflowed + k.diverted + k.callbacks_requested
        assert resolved + (k.waiting or 0) == k.offered, name
        assert k.callbacks_answered + k.callbacks_cancelled + k.callbacks_failed <= (
            k.callbacks_requested
        )
        for rate in (k.service_level, k.abandon_rate, k.transfer_rate):
            assert rate is None or 0.0 <= rate <= 1.0
    overall = report.overall
    assert overall.offered <= result.arrivals
    resolved = overall.answered + overall.abandoned + overall.diverted + overall.callbacks_requested
    assert resolved <= overall.offered
    if overall.logged_in_seconds:
        assert overall.occupancy is not None and 0.0 <= overall.occupancy <= 1.0 + 1e-9
    assert overall.logged_in_seconds <= sc.agent_count * (sc.duration - sc.warmup) + 1e-6
