"""Replications of a scenario and their summary: means with 95 % confidence intervals.

Each replication uses its own independent random streams (see
:func:`~sparklecomm.sim.simulator.replication_seed`), so the replication means are
independent and identically distributed and a Student-t interval on them is valid whatever
the correlation inside a run.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import IO, Any, Final

from sparklecomm.analytics import Kpis
from sparklecomm.core.events import NewEvent
from sparklecomm.sim.scenario import Scenario
from sparklecomm.sim.simulator import EventSink, SimResult, simulate

#: Figures reported for the whole center and (without agent time) for each queue.
HEADLINE: Final[tuple[str, ...]] = (
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "service_level",
    "asa",
    "abandon_rate",
    "occupancy",
    "utilisation",
    "aht",
    "transfer_rate",
    "callbacks_requested",
    "overflowed",
    "diverted",
    "longest_wait",
)
_AGENT_TIME: Final = frozenset({"occupancy", "utilisation"})


def headline(kpis: Kpis, *, agent_time: bool = True) -> dict[str, float | int | None]:
    """The headline figures of one KPI set (``None`` where undefined)."""
    out: dict[str, float | int | None] = {}
    for name in HEADLINE:
        if name in _AGENT_TIME and not agent_time:
            continue
        out[name] = getattr(kpis, name)
    return out


def t_quantile(level: float, dof: int) -> float:
    """Two-sided Student-t quantile, e.g. 2.262 for 95 % and 9 degrees of freedom."""
    from scipy import special  # lighter to import than scipy.stats

    return float(special.stdtrit(dof, 0.5 + level / 2.0))


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float] | None:
    """(mean, low, high) of a Student-t interval; the interval is the mean itself for one value.

    ``None`` for no values.
    """
    n = len(values)
    if n == 0:
        return None
    mean = math.fsum(values) / n
    if n == 1:
        return mean, mean, mean
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    half = t_quantile(level, n - 1) * math.sqrt(var / n)
    return mean, mean - half, mean + half


def _combine(rows: Sequence[dict[str, float | int | None]], level: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ci: dict[str, list[float]] = {}
    if not rows:
        return out
    for name in rows[0]:
        values = [float(v) for r in rows if (v := r.get(name)) is not None]
        found = mean_ci(values, level)
        if found is None:
            out[name] = None
            continue
        mean, low, high = found
        if len(rows) == 1:
            out[name] = rows[0][name]
            continue
        out[name] = mean
        ci[name] = [low, high]
    if len(rows) > 1:
        out["ci95"] = ci
    return out


def summarize(scenario: Scenario, results: Sequence[SimResult]) -> dict[str, Any]:
    """The JSON summary the ``simulate`` command prints (means and CIs over replications)."""
    overall = _combine([headline(r.report.overall) for r in results], 0.95)
    queues: dict[str, Any] = {}
    for q in scenario.queues:
        rows = [
            headline(r.report.queues[q.name], agent_time=False)
            for r in results
            if q.name in r.report.queues
        ]
        queues[q.name] = _combine(rows, 0.95) if rows else {}
    out: dict[str, Any] = {
        "replications": len(results),
        "seed": scenario.seed,
        "duration": scenario.duration,
        "warmup": scenario.warmup,
        "agents": scenario.agent_count,
        "expected_calls": scenario.expected_calls,
    }
    ci = overall.pop("ci95", None)
    out.update(overall)
    out["in_progress"] = sum(r.in_progress for r in results) / max(1, len(results))
    out["queues"] = queues
    if ci is not None:
        out["ci95"] = ci
    out["wall_seconds"] = sum(r.wall_seconds for r in results)
    out["events"] = sum(r.events for r in results)
    return out


def event_line_writer(out: IO[str], replication: int) -> EventSink:
    """An event sink writing one JSON object per line (``simulate --events``): the
    replication's number (1-based), the event's type, time and payload."""
    write = out.write
    number = replication + 1

    def sink(event: NewEvent) -> None:
        write(
            json.dumps(
                {
                    "replication": number,
                    "type": event.type,
                    "time": event.time.isoformat() if event.time else None,
                    "payload": event.payload,
                }
            )
            + "\n"
        )

    return sink


def default_jobs(replications: int) -> int:
    """Worker processes used when not told: one per CPU this process may use, at most one
    per replication."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(replications, cpus))


def _replicate(scenario: Scenario, replication: int, events: str | None) -> SimResult:
    """One replication in a worker process; its events go to the file ``events``."""
    if events is None:
        return simulate(scenario, replication)
    with open(events, "w", encoding="utf-8") as out:
        return simulate(scenario, replication, on_event=event_line_writer(out, replication))


def run_replications(
    scenario: Scenario,
    replications: int = 1,
    *,
    on_event: Callable[[int], EventSink | None] | None = None,
    progress: Callable[[float], None] | None = None,
    jobs: int = 1,
    events_to: IO[str] | None = None,
) -> list[SimResult]:
    """Run ``replications`` independent replications; returns them in replication order.

    ``jobs`` > 1 runs them in that many worker processes at once (each replication has its
    own random streams, so the results are identical to a run with ``jobs=1``). Events:
    ``on_event(r)`` may return an event sink for replication ``r`` (0-based; one process
    only), or ``events_to`` receives every event as a JSON line (:func:`event_line_writer`,
    replication after replication, whatever ``jobs``). ``progress`` is called with the share
    of the whole job done (per replication finished when ``jobs`` > 1).
    """
    if replications < 1:
        raise ValueError("replications must be at least 1")
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    if on_event is not None and events_to is not None:
        raise ValueError("give on_event or events_to, not both")
    jobs = min(jobs, replications)
    if jobs > 1:
        if on_event is not None:
            raise ValueError("on_event needs jobs=1 (its sinks live in this process)")
        return _run_parallel(scenario, replications, jobs, progress, events_to)
    if events_to is not None:
        writer = events_to

        def on_event(r: int) -> EventSink | None:
            return event_line_writer(writer, r)

    results: list[SimResult] = []
    for r in range(replications):
        tick = None
        if progress is not None:
            done = r

            def tick(share: float, done: int = done) -> None:
                progress((done + share) / replications)

        sink = on_event(r) if on_event is not None else None
        results.append(simulate(scenario, r, on_event=sink, progress=tick))
    return results


def _run_parallel(
    scenario: Scenario,
    replications: int,
    jobs: int,
    progress: Callable[[float], None] | None,
    events_to: IO[str] | None,
) -> list[SimResult]:
    # "spawn": fresh interpreters, safe whatever threads this process runs (a progress bar).
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="sparklecomm-sim-") as tmp:
        paths = [
            str(Path(tmp) / f"events-{r}.jsonl") if events_to is not None else None
            for r in range(replications)
        ]
        results: list[SimResult | None] = [None] * replications
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {
                pool.submit(_replicate, scenario, r, paths[r]): r for r in range(replications)
            }
            for finished, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                if progress is not None:
                    progress(finished / replications)
        if events_to is not None:
            for path in paths:
                assert path is not None
                with open(path, encoding="utf-8") as part:
                    shutil.copyfileobj(part, events_to)
    return [r for r in results if r is not None]
