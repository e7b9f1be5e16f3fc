"""Benchmark: one simulated day of M/M/N+M, our full simulator vs plain reference simulators.

The system: N = 500 agents, 480 Erlangs offered (1.6 calls per second, 138,240 calls a day
expected), exponential handle time with mean 300 s, exponential patience with mean 600 s,
service level = answered within 20 s / (answered + abandoned), abandon rate = abandoned /
(answered + abandoned). Both sides start empty, stop arrivals after ``--duration`` seconds
and finish the calls in progress, and count every abandon (short-abandon threshold 0), so
their definitions agree exactly.

* **ours**: :func:`sparklecomm.sim.simulate`, i.e. the real routing engine
  (:class:`~sparklecomm.acd.AcdEngine`, longest-idle strategy) driven through its public
  commands on a fake clock, every event built and fed to the KPI accumulator.
* **reference**: a plain heapq M/M/N+M event loop written below (FIFO queue, no routing
  engine, no events) — the least a discrete-event simulation of this model can do in Python.
* **simpy** (only if importable): the same model written with SimPy processes and resources.
  SimPy is not a dependency of SparkleComm; install it outside the repository with
  ``uv pip install --target /tmp/simpy_site simpy`` and pass ``--simpy-site /tmp/simpy_site``
  (or put it on ``PYTHONPATH``).

Erlang A (:func:`sparklecomm.wfm.erlang_a_metrics`) gives the steady-state values for
comparison. The three simulators use different random streams, so their figures differ by
sampling noise (and by the empty start).

Run:  .venv/bin/python benchmarks/sim_bench.py [--duration 86400] [--seed 1]
                                               [--simpy-site /tmp/simpy_site] [--split]
                                               [--repeat N]
Prints each side's service level and abandon rate, then one JSON line: ours_s,
reference_s, simpy_s (null without SimPy), ours_cpu_s and simpy_cpu_s (process CPU time,
steadier than wall time on a shared machine), calls, ours_/reference_/simpy_service_level
and abandon_rate, erlang_a_service_level and erlang_a_abandon_rate. ``--split`` instead
profiles ours and prints the share of its time spent in the routing engine, the simulator,
the KPI code and the rest. ``--repeat N`` runs SimPy and ours N times each, alternated (the
load of a shared machine drifts), and adds each run's CPU seconds (``ours_cpu_runs``,
``simpy_cpu_runs``) and their medians (``ours_cpu_median_s``, ``simpy_cpu_median_s``,
``cpu_ratio`` = ours / SimPy).
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import platform
import random
import statistics
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sparklecomm.sim import parse_scenario, simulate
from sparklecomm.wfm import erlang_a_metrics

AGENTS = 500
TRAFFIC = 480.0
AHT = 300.0
PATIENCE = 600.0
TARGET = 20.0


def ours(duration: float, seed: int, split: bool = False) -> dict[str, Any]:
    scenario = parse_scenario(
        {
            "seed": seed,
            "duration": duration,
            "drain": 86400,
            "service_level_threshold": TARGET,
            "short_abandon_threshold": 0,
            "queues": [{"name": "q", "strategy": "longest-idle"}],
            "agents": [{"count": AGENTS, "queues": ["q"]}],
            "arrivals": [
                {
                    "queue": "q",
                    "rate_per_hour": TRAFFIC / AHT * 3600,
                    "handle_time": {"dist": "exponential", "mean": AHT},
                    "patience": {"dist": "exponential", "mean": PATIENCE},
                }
            ],
        }
    )
    if split:
        return _split(scenario)
    start = time.perf_counter()
    cpu = time.process_time()
    result = simulate(scenario)
    cpu = time.process_time() - cpu
    elapsed = time.perf_counter() - start
    k = result.report.overall
    return {
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "calls": k.offered,
        "service_level": k.service_level,
        "abandon_rate": k.abandon_rate,
        "events": result.events,
    }


_LAYERS = (
    ("/sparklecomm/acd/", "engine (sparklecomm/acd)"),
    ("/sparklecomm/sim/", "simulator (sparklecomm/sim)"),
    ("/sparklecomm/analytics/", "KPIs (sparklecomm/analytics)"),
    ("/sparklecomm/core/", "clock and events (sparklecomm/core)"),
)


def _split(scenario: Any) -> dict[str, Any]:
    """Run ours under cProfile and share its own time (tottime) out by layer.

    Built-in calls (dict look-ups, heap operations, datetime methods, numpy) count for
    the layer of the function that made them, so the split is by who does the work.
    """
    import cProfile
    import pstats

    profile = cProfile.Profile()
    profile.enable()
    result = simulate(scenario)
    profile.disable()
    stats: Any = pstats.Stats(profile)
    own: dict[str, float] = {}
    for (path, _, _), (_, _, tottime, _, callers) in stats.stats.items():
        layer = next((name for key, name in _LAYERS if key in path), None)
        if layer is None and path == "~" and callers:
            # A built-in: charge its time to its callers' layers, in proportion.
            total = sum(c[2] for c in callers.values()) or 1.0
            for (cpath, _, _), c in callers.items():
                clayer = next((name for key, name in _LAYERS if key in cpath), "other")
                own[clayer] = own.get(clayer, 0.0) + tottime * c[2] / total
            continue
        layer = layer or ("random" if path.endswith("random.py") else "other")
        own[layer] = own.get(layer, 0.0) + tottime
    whole = sum(own.values())
    k = result.report.overall
    return {
        "seconds": whole,
        "calls": k.offered,
        "service_level": k.service_level,
        "abandon_rate": k.abandon_rate,
        "events": result.events,
        "split": {
            name: round(t / whole, 3) for name, t in sorted(own.items(), key=lambda i: -i[1])
        },
    }


def reference(duration: float, seed: int) -> dict[str, Any]:
    """Plain M/M/N+M: a heap of (time, kind, call) events and a FIFO deque of waiting calls."""
    rng = random.Random(seed)
    lam, mu, theta = TRAFFIC / AHT, 1.0 / AHT, 1.0 / PATIENCE
    heap: list[tuple[float, int, int]] = []
    arrive, depart, give_up = 0, 1, 2
    line: deque[tuple[int, float]] = deque()  # FIFO of (call, arrival time)
    waiting: set[int] = set()  # calls still in line (hung-up ones leave the deque lazily)
    free = AGENTS
    answered = within = abandoned = calls = 0
    start = time.perf_counter()
    heapq.heappush(heap, (rng.expovariate(lam), arrive, 0))
    while heap:
        now, kind, call = heapq.heappop(heap)
        if kind == arrive:
            calls += 1
            nxt = now + rng.expovariate(lam)
            if nxt < duration:
                heapq.heappush(heap, (nxt, arrive, call + 1))
            if free:
                free -= 1
                answered += 1
                within += 1
                heapq.heappush(heap, (now + rng.expovariate(mu), depart, call))
            else:
                line.append((call, now))
                waiting.add(call)
                heapq.heappush(heap, (now + rng.expovariate(theta), give_up, call))
        elif kind == depart:
            while line and line[0][0] not in waiting:
                line.popleft()
            if line:
                nxt_call, since = line.popleft()
                waiting.discard(nxt_call)
                answered += 1
                within += now - since <= TARGET
                heapq.heappush(heap, (now + rng.expovariate(mu), depart, nxt_call))
            else:
                free += 1
        elif call in waiting:  # patience ran out before an agent came
            waiting.discard(call)
            abandoned += 1
    elapsed = time.perf_counter() - start
    resolved = answered + abandoned
    return {
        "seconds": elapsed,
        "calls": calls,
        "service_level": within / resolved,
        "abandon_rate": abandoned / resolved,
    }


def with_simpy(duration: float, seed: int) -> dict[str, Any] | None:
    try:
        import simpy
    except ImportError:
        return None
    rng = random.Random(seed)
    lam, mu, theta = TRAFFIC / AHT, 1.0 / AHT, 1.0 / PATIENCE
    env = simpy.Environment()
    agents = simpy.Resource(env, capacity=AGENTS)
    tally = {"answered": 0, "within": 0, "abandoned": 0, "calls": 0}

    def caller(env: Any) -> Any:
        arrived = env.now
        patience = rng.expovariate(theta)
        with agents.request() as request:
            outcome = yield request | env.timeout(patience)
            if request in outcome:
                tally["answered"] += 1
                tally["within"] += env.now - arrived <= TARGET
                yield env.timeout(rng.expovariate(mu))
            else:
                tally["abandoned"] += 1

    def source(env: Any) -> Any:
        while True:
            yield env.timeout(rng.expovariate(lam))
            if env.now >= duration:
                return
            tally["calls"] += 1
            env.process(caller(env))

    start = time.perf_counter()
    cpu = time.process_time()
    env.process(source(env))
    env.run()
    cpu = time.process_time() - cpu
    elapsed = time.perf_counter() - start
    resolved = tally["answered"] + tally["abandoned"]
    return {
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "calls": tally["calls"],
        "service_level": tally["within"] / resolved,
        "abandon_rate": tally["abandoned"] / resolved,
        "version": getattr(simpy, "__version__", "?"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=86400.0, help="simulated seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--simpy-site", type=Path, default=None, help="folder holding simpy")
    parser.add_argument(
        "--split",
        action="store_true",
        help="profile ours and print where its time goes (engine, simulator, KPIs); "
        "use with a shorter --duration, e.g. 3600",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run SimPy and ours this many times, alternated"
    )
    args = parser.parse_args()
    if args.simpy_site is not None:
        sys.path.append(str(args.simpy_site))

    theory = erlang_a_metrics(TRAFFIC, AGENTS, AHT, PATIENCE, TARGET)
    ref = reference(args.duration, args.seed)
    print(
        f"reference (heapq M/M/N+M): {ref['seconds']:.2f} s, {ref['calls']} calls, "
        f"service level {ref['service_level']:.4f}, abandon rate {ref['abandon_rate']:.4f}"
    )
    spy = with_simpy(args.duration, args.seed)
    if spy is None:
        print("simpy: not importable (see --simpy-site): skipped")
    else:
        print(
            f"simpy {spy['version']}: {spy['seconds']:.2f} s, {spy['calls']} calls, "
            f"service level {spy['service_level']:.4f}, abandon rate {spy['abandon_rate']:.4f}"
        )
    mine = ours(args.duration, args.seed, args.split)
    if args.split:
        print(f"ours under cProfile: {mine['seconds']:.2f} s of own time, shared out:")
        for name, share in mine["split"].items():
            print(f"  {name:38s} {100 * share:5.1f} %")
        print(json.dumps({"duration": args.duration, "split": mine["split"]}))
        return
    print(
        f"ours (routing engine + KPIs): {mine['seconds']:.2f} s, {mine['calls']} calls, "
        f"{mine['events']} events, service level {mine['service_level']:.4f}, "
        f"abandon rate {mine['abandon_rate']:.4f}"
    )
    print(
        f"Erlang A (steady state): service level {float(theory.service_level):.4f}, "
        f"abandon rate {float(theory.p_abandon):.4f}"
    )
    result = {
        "duration": args.duration,
        "calls": mine["calls"],
        "ours_s": round(mine["seconds"], 3),
        "reference_s": round(ref["seconds"], 3),
        "reference": "heapq M/M/N+M in benchmarks/sim_bench.py",
        "simpy_s": round(spy["seconds"], 3) if spy else None,
        "ours_cpu_s": round(mine["cpu_seconds"], 3),
        "simpy_cpu_s": round(spy["cpu_seconds"], 3) if spy else None,
        "ours_service_level": mine["service_level"],
        "ours_abandon_rate": mine["abandon_rate"],
        "reference_service_level": ref["service_level"],
        "reference_abandon_rate": ref["abandon_rate"],
        "simpy_service_level": spy["service_level"] if spy else None,
        "simpy_abandon_rate": spy["abandon_rate"] if spy else None,
        "erlang_a_service_level": float(theory.service_level),
        "erlang_a_abandon_rate": float(theory.p_abandon),
        "python": platform.python_version(),
    }
    if args.repeat > 1:
        ours_runs, simpy_runs = [mine["cpu_seconds"]], [spy["cpu_seconds"]] if spy else []
        for _ in range(args.repeat - 1):
            again = with_simpy(args.duration, args.seed)
            if again is not None:
                simpy_runs.append(again["cpu_seconds"])
            ours_runs.append(ours(args.duration, args.seed)["cpu_seconds"])
        result["ours_cpu_runs"] = [round(v, 3) for v in ours_runs]
        result["simpy_cpu_runs"] = [round(v, 3) for v in simpy_runs]
        result["ours_cpu_median_s"] = round(statistics.median(ours_runs), 3)
        if simpy_runs:
            result["simpy_cpu_median_s"] = round(statistics.median(simpy_runs), 3)
            result["cpu_ratio"] = round(
                statistics.median(ours_runs) / statistics.median(simpy_runs), 3
            )
    assert all(math.isfinite(v) for v in (mine["service_level"], ref["service_level"]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
