"""Open-ended wrap-up (``wrapup_seconds=None``) and configurable break reason codes."""

from __future__ import annotations

import json
import random

import pytest
from acd_helpers import build, of, one_offer, states

from sparklecomm.acd import AcdEngine, AgentConfig, Channel, EngineConfig, Member, QueueConfig
from sparklecomm.core.clock import FakeClock
from sparklecomm.core.errors import Conflict, InvalidInput, NotFound


def manual_wrapup_queue() -> QueueConfig:
    return QueueConfig("q", members=(Member("a"), Member("b")), wrapup_seconds=None)


def test_wrapup_without_a_timer_lasts_until_the_agent_ends_it() -> None:
    engine, clock = build([manual_wrapup_queue()], ["a"])
    iid, aid = one_offer(engine.create_interaction("i1", "q", "voice"))
    engine.accept(iid, aid)
    clock.advance(30)
    done = engine.complete(iid, aid)
    assert of(done, "interaction.completed")[0]["wrapup_planned_seconds"] is None
    assert states(done, "a") == ["wrap_up"]
    assert engine.next_deadline() is None  # no wrap-up timer
    clock.advance(3600)
    assert engine.tick() == []
    # Meanwhile new work waits: the agent is not available.
    assert of(engine.create_interaction("i2", "q", "voice"), "interaction.offered") == []
    assert engine.agent_snapshot("a").state == "wrap_up"
    ended = engine.end_wrapup("i1", "a")
    wrapup = of(ended, "interaction.wrapup_ended")[0]
    assert wrapup["reason"] == "agent"
    assert wrapup["wrapup_seconds"] == 3600.0
    # Free again: the waiting interaction is offered at once.
    assert of(ended, "interaction.offered")[0]["interaction_id"] == "i2"


def test_open_ended_wrapup_survives_a_snapshot() -> None:
    engine, clock = build([manual_wrapup_queue()], ["a"])
    iid, aid = one_offer(engine.create_interaction("i1", "q", "voice"))
    engine.accept(iid, aid)
    engine.complete(iid, aid)
    data = json.loads(json.dumps(engine.to_snapshot()))
    restored = AcdEngine.from_snapshot(data, FakeClock(clock.now()))
    assert restored.queue_config("q").wrapup_seconds is None
    assert restored.agent_snapshot("a").wrapups == ("i1",)
    clock.advance(600)
    assert restored.tick() == []
    assert of(restored.end_wrapup("i1", "a"), "interaction.wrapup_ended")


def test_negative_wrapup_is_refused_with_the_field() -> None:
    engine, _ = build([], [])
    with pytest.raises(InvalidInput) as err:
        engine.add_queue(QueueConfig("q", wrapup_seconds=-1))
    assert err.value.field == "wrapup_seconds"


def test_break_reasons_default_to_any_non_empty_code() -> None:
    engine, _ = build([QueueConfig("q", members=(Member("a"),))], ["a"])
    events = engine.set_break("a", "anything-goes")
    assert of(events, "agent.state_changed")[0]["reason"] == "anything-goes"
    with pytest.raises(InvalidInput):
        engine.set_break("a", "")


def test_break_reasons_are_checked_against_the_configured_set() -> None:
    engine, _ = build(
        [QueueConfig("q", members=(Member("a"),))],
        ["a"],
        break_reasons={"lunch", "training"},
    )
    with pytest.raises(InvalidInput) as err:
        engine.set_break("a", "nap")
    assert err.value.field == "reason"
    assert "lunch, training" in str(err.value)
    assert engine.agent_snapshot("a").state == "available"  # refused: nothing changed
    events = engine.set_break("a", "lunch")
    assert of(events, "agent.state_changed")[0]["reason"] == "lunch"


def test_missed_offers_break_works_with_a_restricted_set() -> None:
    engine, clock = build(
        [QueueConfig("q", members=(Member("a"),), offer_timeout_seconds=5)],
        [AgentConfig("a", capacity={Channel.VOICE: 1})],
        break_reasons={"lunch"},
        max_consecutive_misses=1,
    )
    one_offer(engine.create_interaction("i1", "q", "voice"))
    clock.advance(5)
    events = engine.tick()
    assert of(events, "agent.state_changed")[-1]["reason"] == "missed-offers"


def test_break_reasons_survive_a_snapshot_and_bad_sets_are_refused() -> None:
    engine, clock = build(
        [QueueConfig("q", members=(Member("a"),))], ["a"], break_reasons=["lunch"]
    )
    assert engine.config.break_reasons == frozenset({"lunch"})
    data = json.loads(json.dumps(engine.to_snapshot()))
    restored = AcdEngine.from_snapshot(data, FakeClock(clock.now()))
    assert restored.config.break_reasons == frozenset({"lunch"})
    with pytest.raises(InvalidInput):
        restored.set_break("a", "coffee")
    for bad in ("lunch", {""}, {3}):
        with pytest.raises(InvalidInput) as err:
            AcdEngine(FakeClock(), EngineConfig(rng=random.Random(0), break_reasons=bad))  # type: ignore[arg-type]
        assert err.value.field == "break_reasons"


def test_join_queue_makes_the_agent_a_member_and_publishes_the_config() -> None:
    engine, _ = build([QueueConfig("q", members=(Member("a"),)), QueueConfig("r")], ["a", "b"])
    assert engine.agent_snapshot("b").queues == ()
    events = engine.join_queue("b", "q", penalty=1, weight=3)
    assert [e.type for e in events][:3] == [
        "agent.queue_joined",
        "queue.updated",
        "agent.queues_changed",
    ]
    assert of(events, "agent.queue_joined")[0] == {
        "agent_id": "b",
        "queue_id": "q",
        "penalty": 1,
        "weight": 3,
    }
    members = of(events, "queue.updated")[0]["config"]["members"]
    assert [m["agent_id"] for m in members] == ["a", "b"]
    assert engine.agent_snapshot("b").queues == ("q",)
    # a (penalty 0) first; once a is busy, b (penalty 1) gets the next one.
    engine.accept(*one_offer(engine.create_interaction("i1", "q", "voice")))
    assert one_offer(engine.create_interaction("i2", "q", "voice")) == ("i2", "b")


def test_join_queue_is_validated_and_changes_nothing_when_refused() -> None:
    engine, _ = build([QueueConfig("q", members=(Member("a"),))], ["a", "b"])
    before = engine.to_snapshot()
    with pytest.raises(Conflict):
        engine.join_queue("a", "q")
    with pytest.raises(InvalidInput) as err:
        engine.join_queue("b", "q", penalty=-1)
    assert err.value.field == "members"
    with pytest.raises(NotFound):
        engine.join_queue("b", "nope")
    with pytest.raises(NotFound):
        engine.join_queue("zz", "q")
    assert engine.to_snapshot() == before


def test_leave_queue_stops_offers_and_keeps_the_others_in_order() -> None:
    engine, clock = build(
        [QueueConfig("q", strategy="linear", members=(Member("a"), Member("b"), Member("c")))],  # type: ignore[arg-type]
        ["a", "b", "c"],
    )
    events = engine.leave_queue("a", "q")
    assert of(events, "agent.queue_left") == [{"agent_id": "a", "queue_id": "q"}]
    assert engine.agent_snapshot("a").queues == ()
    # Linear order is now b, c.
    assert one_offer(engine.create_interaction("i1", "q", "voice")) == ("i1", "b")
    with pytest.raises(Conflict):
        engine.leave_queue("a", "q")
    # Survives a snapshot: membership comes from the configuration.
    data = json.loads(json.dumps(engine.to_snapshot()))
    restored = AcdEngine.from_snapshot(data, FakeClock(clock.now()))
    assert restored.agent_snapshot("a").queues == ()
    assert [m.agent_id for m in restored.queue_config("q").members] == ["b", "c"]


def test_leave_queue_refused_for_a_member_by_expression() -> None:
    engine, _ = build(
        [QueueConfig("q", members=(Member("a"),), member_expression="billing")],
        [AgentConfig("a", skills={"billing": 3})],
    )
    with pytest.raises(Conflict) as err:
        engine.leave_queue("a", "q")
    assert "member expression" in str(err.value)


def test_join_and_leave_are_journaled_service_commands() -> None:
    from sparklecomm.acd.service import COMMANDS

    assert {"join_queue", "leave_queue"} <= COMMANDS
