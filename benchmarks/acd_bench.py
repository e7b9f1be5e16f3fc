"""Routing engine benchmark: a synthetic workload through the full interaction lifecycle.

    python benchmarks/acd_bench.py --agents 5000 --queues 500 --interactions 100000

Each agent belongs to ``--queues-per-agent`` random queues (penalty 0 or 1); queues cycle
through every strategy but ring-all (which offers to all available members by design, so its
cost *is* linear in them). Interactions arrive in random queues (80 % voice, 20 % chat,
priority 0–2, 10 % with a skill requirement) at a simulated rate that keeps the centre busy
but not overloaded; they are offered, accepted at once, completed when the number of
connected interactions exceeds 70 % of the agents (oldest first), and end their 2 s wrap-up
through ``tick()`` — so both routing paths run: interaction-side (an arrival finds an agent)
and agent-side (an agent ending wrap-up takes the best waiting interaction across its queues).
The configuration objects built at start-up are moved out of the cyclic GC's way with
``gc.freeze()``, as a long-running server would; the GC stays on (``--no-gc`` turns it off).

Printed, one JSON line:

- ``routed_per_s``: interactions taken through the whole lifecycle (create, offer, accept,
  complete, wrap-up end; every event built) per second of wall time;
- ``routed_per_cpu_s`` / ``cpu_s``: the same per second of CPU time of this process (less
  disturbed than wall time on a machine shared with other work; still not immune to it);
- ``decisions_per_s``: routing decisions per second of time spent making them (1 / mean
  decision latency);
- ``p50_us`` / ``p99_us``: latency of one routing decision, i.e. of the engine call that makes
  it (``create_interaction``, or ``tick`` divided by the wrap-ups it ended);
- ``reference``: measured in the same run on the same machine, to compare across machines:
  ``naive_scan_p50_us`` — the same decision made by scanning every agent (the obvious
  implementation the indexes replace), and ``dict_lookup_ns`` — one Python dict lookup.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sparklecomm.acd import (
    AcdEngine,
    AgentConfig,
    Channel,
    EngineConfig,
    Member,
    QueueConfig,
    Strategy,
)
from sparklecomm.core.clock import FakeClock

STRATEGIES = [s for s in Strategy if s is not Strategy.RING_ALL]
WRAPUP_SECONDS = 2.0


def build(args: argparse.Namespace) -> tuple[Any, FakeClock, list[list[str]]]:
    rng = random.Random(args.seed)
    clock = FakeClock()
    engine_class: Any = AcdEngine
    if args.engine == "compiled":
        from sparklecomm.acd.compiled import CompiledEngine

        if CompiledEngine is None:
            raise SystemExit("the compiled routing core is not built: run scripts/build_core.sh")
        engine_class = CompiledEngine
    engine = engine_class(clock, EngineConfig(rng=random.Random(args.seed)))
    members: list[list[Member]] = [[] for _ in range(args.queues)]
    memberships: list[list[str]] = [[] for _ in range(args.agents)]
    for a in range(args.agents):
        for q in rng.sample(range(args.queues), min(args.queues_per_agent, args.queues)):
            members[q].append(
                Member(f"a{a}", penalty=rng.choice((0, 0, 0, 1)), weight=rng.randint(1, 5))
            )
            memberships[a].append(f"q{q}")
    for q in range(args.queues):
        engine.add_queue(
            QueueConfig(
                f"q{q}",
                strategy=STRATEGIES[q % len(STRATEGIES)],
                channels=(Channel.VOICE, Channel.CHAT),
                members=tuple(members[q]),
                best_skill="billing",
                wrapup_seconds=WRAPUP_SECONDS,
            )
        )
    for a in range(args.agents):
        engine.add_agent(
            AgentConfig(
                f"a{a}",
                skills={"billing": rng.randint(1, 5), "spanish": rng.randint(1, 5)},
                capacity={Channel.VOICE: 1, Channel.CHAT: 2},
            )
        )
        engine.login(f"a{a}")
    return engine, clock, memberships


def naive_reference(args: argparse.Namespace, memberships: list[list[str]]) -> dict[str, float]:
    """The same decision without indexes: scan every agent, keep the longest idle member."""
    rng = random.Random(args.seed + 1)
    agents = [
        {"id": f"a{i}", "queues": set(qs), "available": rng.random() < 0.1, "idle": rng.random()}
        for i, qs in enumerate(memberships)
    ]
    samples = []
    for _ in range(args.reference_decisions):
        queue = f"q{rng.randrange(args.queues)}"
        t0 = time.perf_counter_ns()
        best = None
        for agent in agents:
            if (
                agent["available"]
                and queue in agent["queues"]
                and (best is None or agent["idle"] < best["idle"])
            ):
                best = agent
        samples.append(time.perf_counter_ns() - t0)
    table = {f"k{i}": i for i in range(1000)}
    keys = [f"k{rng.randrange(1000)}" for _ in range(100_000)]
    t0 = time.perf_counter_ns()
    for key in keys:
        table[key]
    loop = time.perf_counter_ns() - t0
    t0 = time.perf_counter_ns()
    for _key in keys:
        pass
    empty = time.perf_counter_ns() - t0
    return {
        "naive_scan_p50_us": round(statistics.median(samples) / 1000, 2),
        "dict_lookup_ns": round(max(loop - empty, 0) / len(keys), 1),
    }


class _Event:
    __slots__ = ("payload", "type")

    def __init__(self, type_: str, payload: dict[str, str]) -> None:
        self.type = type_
        self.payload = payload


class NullEngine:
    """``--harness-only``: the benchmark loop's own cost. Each command returns as many
    ready-made events as the real engine's (three on arrival, with the offer; two on
    accept; three on complete; two per wrap-up end), and decides nothing."""

    def __init__(self) -> None:
        self._ended = 0

    def create_interaction(self, iid: str, *_args: object, **_kw: object) -> list[_Event]:
        offer = _Event("interaction.offered", {"interaction_id": iid, "agent_id": "a0"})
        return [_Event("interaction.created", {}), offer, _Event("agent.state_changed", {})]

    def accept(self, _iid: str, _aid: str) -> list[_Event]:
        return [_Event("interaction.accepted", {}), _Event("agent.state_changed", {})]

    def complete(self, _iid: str, _aid: str) -> list[_Event]:
        self._ended += 1
        return [_Event("interaction.completed", {}), _Event("x", {}), _Event("y", {})]

    def tick(self) -> list[_Event]:
        ended, self._ended = self._ended, 0
        return [_Event("interaction.wrapup_ended", {}), _Event("agent.state_changed", {})] * ended

    def interaction_ids(self) -> list[str]:
        return []


def run(args: argparse.Namespace) -> dict[str, object]:
    setup_start = time.perf_counter()
    engine: Any
    engine, clock, memberships = build(args)
    if args.harness_only:
        engine = NullEngine()
    setup_s = time.perf_counter() - setup_start
    rng = random.Random(args.seed + 2)
    queue_ids = [f"q{q}" for q in range(args.queues)]
    plan = [
        (
            rng.choice(queue_ids),
            Channel.VOICE if rng.random() < 0.8 else Channel.CHAT,
            rng.choice((0, 0, 1, 2)),
            "billing >= 2" if rng.random() < 0.1 else "",
        )
        for _ in range(args.interactions)
    ]
    # Steady state below saturation: ~70 % of agents connected, ~10 % in wrap-up, the rest
    # free (unevenly spread: some queues still build a line, served agent-side).
    target = int(args.agents * 0.7)
    step = WRAPUP_SECONDS / (0.1 * args.agents)  # simulated seconds between arrivals
    active: deque[tuple[str, str]] = deque()
    latencies: list[int] = []
    events = 0
    ended = 0
    max_waiting = 0
    perf = time.perf_counter_ns
    # Like a long-running server after start-up: the configuration objects built above are
    # moved out of the collector's way; the cyclic GC stays on for everything created later.
    gc.collect()
    gc.freeze()
    if args.no_gc:
        gc.disable()
    cpu_start = time.process_time()
    start = perf()
    for n, (queue_id, channel, priority, skills) in enumerate(plan):
        clock.advance(step)
        iid = f"i{n}"
        t0 = perf()
        out = engine.create_interaction(
            iid, queue_id, channel, priority=priority, required_skills=skills
        )
        latencies.append(perf() - t0)
        events += len(out)
        for ev in out:
            if ev.type == "interaction.offered":
                p = ev.payload
                events += len(engine.accept(p["interaction_id"], p["agent_id"]))
                active.append((p["interaction_id"], p["agent_id"]))
        while len(active) > target:
            done_iid, agent_id = active.popleft()
            events += len(engine.complete(done_iid, agent_id))
        t0 = perf()
        out = engine.tick()
        spent = perf() - t0
        wrapups = 0
        for ev in out:
            if ev.type == "interaction.wrapup_ended":
                wrapups += 1
            elif ev.type == "interaction.offered":
                p = ev.payload
                events += len(engine.accept(p["interaction_id"], p["agent_id"]))
                active.append((p["interaction_id"], p["agent_id"]))
        if wrapups:
            ended += wrapups
            latencies.extend([spent // wrapups] * wrapups)
        events += len(out)
        if n % 1000 == 0:
            max_waiting = max(max_waiting, len(engine.interaction_ids()) - len(active))
    elapsed = (perf() - start) / 1e9
    cpu = time.process_time() - cpu_start
    gc.enable()
    latencies.sort()
    mean_decision_ns = sum(latencies) / len(latencies)
    reference = naive_reference(args, memberships)
    return {
        "agents": args.agents,
        "queues": args.queues,
        "interactions": args.interactions,
        "routed_per_s": round(args.interactions / elapsed),
        "routed_per_cpu_s": round(args.interactions / cpu),
        "decisions_per_s": round(1e9 / mean_decision_ns),
        "p50_us": round(latencies[len(latencies) // 2] / 1000, 2),
        "p99_us": round(latencies[int(len(latencies) * 0.99)] / 1000, 2),
        "decisions": len(latencies),
        "agent_side_decisions": ended,
        "events_per_s": round(events / elapsed),
        "max_not_connected": max_waiting,
        "elapsed_s": round(elapsed, 2),
        "cpu_s": round(cpu, 2),
        "setup_s": round(setup_s, 2),
        "gc": not args.no_gc,
        "reference": reference,
        "python": platform.python_version(),
        "engine": "harness-only" if args.harness_only else args.engine,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--queues", type=int, default=500)
    parser.add_argument("--interactions", type=int, default=100_000)
    parser.add_argument("--queues-per-agent", type=int, default=3)
    parser.add_argument("--reference-decisions", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-gc", action="store_true", help="disable the cyclic GC while timing")
    parser.add_argument(
        "--engine",
        choices=("python", "compiled"),
        default="python",
        help="the engine: the Python one (what the platform runs) or the compiled core "
        "(rust/acd_core, work in progress: docs/routing-core.md)",
    )
    parser.add_argument(
        "--harness-only",
        action="store_true",
        help="measure the benchmark loop alone, with an engine that decides nothing",
    )
    print(json.dumps(run(parser.parse_args())))


if __name__ == "__main__":
    main()
