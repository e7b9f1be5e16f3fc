"""Persistence: a restored engine is the same engine; decisions do not depend on hashing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from acd_harness import json_roundtrip
from acd_helpers import build, of, offers, one_offer

from sparklecomm.acd import AcdEngine, Member, QueueConfig, RelaxationStep, Strategy
from sparklecomm.core.clock import FakeClock
from sparklecomm.core.errors import InvalidInput


def scenario() -> tuple[AcdEngine, FakeClock]:
    queues = [
        QueueConfig(
            "q",
            strategy=Strategy.RANDOM,
            members=(Member("a"), Member("b"), Member("c", penalty=2)),
            wrapup_seconds=20,
            initial_max_penalty=1,
            relaxation=(RelaxationStep(40, max_penalty=2),),
        )
    ]
    engine, clock = build(queues, ["a", "b", "c"], seed=5)
    engine.accept(*one_offer(engine.create_interaction("i1", "q", "voice")))
    engine.create_interaction("i2", "q", "voice")  # offered, pending
    engine.create_interaction("i3", "q", "voice")  # waiting for a tier-2 agent
    engine.create_interaction("i4", "q", "voice")
    engine.request_callback("i4", at=clock.now() + timedelta(seconds=90))
    clock.advance(10)
    engine.complete("i1", engine.interaction_snapshot("i1").agent_id or "")  # wrap-up running
    engine.set_break("c", "training")
    return engine, clock


def test_snapshot_is_json_and_restores_exactly() -> None:
    engine, clock = scenario()
    data = engine.to_snapshot()
    text = json.dumps(data)
    restored = AcdEngine.from_snapshot(json.loads(text), FakeClock(clock.now()))
    assert restored.to_snapshot() == data
    assert restored.next_deadline() == engine.next_deadline()
    for aid in ("a", "b", "c"):
        assert restored.agent_snapshot(aid) == engine.agent_snapshot(aid)
    assert restored.queue_snapshot("q") == engine.queue_snapshot("q")


def test_restored_engine_emits_the_same_events() -> None:
    engine, clock = scenario()
    clock2 = FakeClock(clock.now())
    restored = AcdEngine.from_snapshot(json_roundtrip(engine.to_snapshot()), clock2)

    def script(e: AcdEngine, c: FakeClock) -> list:  # type: ignore[type-arg]
        events = []
        for step in range(12):
            c.advance(15)
            events += e.tick()
            for iid, aid in offers(events[-10:]):
                if iid in e.interaction_ids() and e.interaction_snapshot(iid).state == "offered":
                    if step % 3:
                        events += e.accept(iid, aid)
                    else:
                        events += e.reject(iid, aid)
            events += e.create_interaction(f"n{step}", "q", "voice", priority=step % 3)
            for aid in ("a", "b", "c"):
                for iid in e.agent_snapshot(aid).interactions:
                    events += e.complete(iid, aid)
            if step == 6:
                events += e.set_available("c")
        return events

    expected = script(engine, clock)
    assert any(ev.type == "callback.due" for ev in expected)
    assert len(offers(expected)) > 5
    assert script(restored, clock2) == expected
    assert restored.to_snapshot() == engine.to_snapshot()


def test_bad_snapshots_are_refused() -> None:
    with pytest.raises(InvalidInput):
        AcdEngine.from_snapshot({"format": "something-else"}, FakeClock())
    engine, _ = scenario()
    data = engine.to_snapshot()
    del data["agents"][0]["load"]
    with pytest.raises(InvalidInput, match="Corrupt"):
        AcdEngine.from_snapshot(data, FakeClock())


def test_a_restart_keeps_queue_membership_agent_state_and_callbacks() -> None:
    engine, clock = scenario()
    restored = AcdEngine.from_snapshot(json_roundtrip(engine.to_snapshot()), clock)
    assert restored.agent_snapshot("c").state == "break"
    assert restored.agent_snapshot("a").queues == ("q",)
    assert restored.interaction_snapshot("i4").state == "scheduled"
    clock.advance(80)
    events = restored.tick()
    assert of(events, "callback.due")[0]["interaction_id"] == "i4"


_SCRIPT = r"""
import json, sys
sys.path.insert(0, {helpers!r})
from acd_harness import Driver, make_engine
import random
engine, clock = make_engine(3)
driver = Driver(engine, clock)
rng = random.Random(11)
for _ in range(300):
    driver.step(tuple(rng.randrange(n) for n in (20, 10, 10, 10)), check_unchanged=False)
print(json.dumps([[e.type, e.payload] for e in driver.events], sort_keys=True))
"""


def test_decisions_do_not_depend_on_hash_randomisation() -> None:
    """Same commands under different PYTHONHASHSEED values give the same events."""
    script = _SCRIPT.format(helpers=str(Path(__file__).resolve().parent))
    outputs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    assert len(json.loads(outputs[0])) > 100
