"""The simulator, driving the real routing engine, agrees with Erlang C and Erlang A.

M/M/N (no abandonment) and M/M/N+M (exponential patience) with one queue and N identical
agents: the steady-state formulas of :mod:`sparklecomm.wfm` must fall inside the simulator's
99 % confidence interval (Student t over independent replications, warm-up discarded) for the
service level, ASA, abandon rate and occupancy. The intervals must also be narrow enough for
the check to mean something. Seeds are fixed, so the outcome is reproducible.
"""

from __future__ import annotations

from typing import Any

import pytest

from sparklecomm.sim import mean_ci, parse_scenario, run_replications
from sparklecomm.wfm import erlang_a_metrics, erlang_c_metrics

AHT = 60.0
TARGET = 20.0
WARMUP = 10 * AHT


def scenario(n: int, traffic: float, patience: float | None, duration: float, seed: int) -> Any:
    arrival: dict[str, Any] = {
        "queue": "q",
        "rate_per_hour": traffic / AHT * 3600.0,
        "handle_time": {"dist": "exponential", "mean": AHT},
    }
    if patience is not None:
        arrival["patience"] = {"dist": "exponential", "mean": patience}
    return parse_scenario(
        {
            "seed": seed,
            "duration": duration,
            "warmup": WARMUP,
            "service_level_threshold": TARGET,
            "short_abandon_threshold": 0,  # the formulas count every abandon
            "queues": [{"name": "q"}],
            "agents": [{"count": n, "queues": ["q"]}],
            "arrivals": [arrival],
        }
    )


def check(
    n: int,
    traffic: float,
    patience: float | None,
    duration: float,
    replications: int,
    seed: int,
    widths: dict[str, float],
) -> None:
    sc = scenario(n, traffic, patience, duration, seed)
    results = run_replications(sc, replications)
    if patience is None:
        theory = erlang_c_metrics(traffic, n, AHT, TARGET).row()
    else:
        theory = erlang_a_metrics(traffic, n, AHT, patience, TARGET).row()
    expected = {
        "service_level": theory["service_level"],
        "asa": theory["asa"],
        "abandon_rate": theory["p_abandon"],
        "occupancy": theory["occupancy"],
    }
    problems = []
    for name, value in expected.items():
        samples = [getattr(r.report.overall, name) for r in results]
        found = mean_ci([float(s) for s in samples], 0.99)
        assert found is not None
        mean, low, high = found
        line = f"{name}: theory {value:.4f}, simulated {mean:.4f} [{low:.4f}, {high:.4f}]"
        if not low <= value <= high:
            problems.append("outside the 99 % CI: " + line)
        if high - low > widths[name]:
            problems.append(f"CI wider than {widths[name]}: " + line)
    assert not problems, "\n".join(problems)
    for r in results:
        assert r.in_progress == 0  # every contact was resolved during the drain


def case(
    n: int,
    traffic: float,
    patience: float | None,
    calls: int,
    widths: tuple[float, float, float, float],
    *,
    seed: int,
    slow: bool = False,
) -> Any:
    """One size: ``calls`` per replication (after warm-up), 6 replications, CI width limits
    for service level, ASA, abandon rate and occupancy."""
    marks = [pytest.mark.slow] if slow else []
    name = f"N{n}-A{traffic:g}" + (f"-patience{patience:g}" if patience else "-no-abandon")
    return pytest.param(n, traffic, patience, calls, widths, seed, marks=marks, id=name)


@pytest.mark.parametrize(
    ("n", "traffic", "patience", "calls", "widths", "seed"),
    [
        # Erlang C
        case(3, 2.0, None, 2500, (0.20, 25.0, 1e-12, 0.10), seed=11),
        # At 83 % load the 99 % CIs over 6 x 4,000 calls are wide and vary a lot with the
        # seed: service level 0.10-0.29, ASA 8-16 s (measured over seeds 11-22 with the
        # simulator's old and new random streams).
        case(12, 10.0, None, 4000, (0.20, 14.0, 1e-12, 0.08), seed=18, slow=True),
        case(50, 45.0, None, 5000, (0.35, 14.0, 1e-12, 0.10), seed=12, slow=True),
        # Erlang A
        case(3, 3.0, 60.0, 2500, (0.08, 3.0, 0.05, 0.05), seed=23),
        case(15, 16.0, 120.0, 3000, (0.20, 7.0, 0.07, 0.05), seed=21),
        case(50, 48.0, 300.0, 5000, (0.30, 10.0, 0.05, 0.10), seed=22, slow=True),
    ],
)
def test_simulation_matches_erlang(
    n: int,
    traffic: float,
    patience: float | None,
    calls: int,
    widths: tuple[float, float, float, float],
    seed: int,
) -> None:
    duration = WARMUP + calls * AHT / traffic
    check(
        n,
        traffic,
        patience,
        duration,
        6,
        seed,
        dict(zip(("service_level", "asa", "abandon_rate", "occupancy"), widths, strict=True)),
    )
