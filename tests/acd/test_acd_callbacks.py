"""Queued callbacks: keep the place, honour the chosen time, retry per policy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from acd_helpers import build, of, offers, one_offer, types

from sparklecomm.acd import CallbackPolicy, Channel, Member, QueueConfig
from sparklecomm.core.errors import Conflict, InvalidInput


def busy_queue(**kw: object):  # type: ignore[no-untyped-def]
    cfg = QueueConfig("q", members=(Member("a"),), **kw)  # type: ignore[arg-type]
    engine, clock = build([cfg], ["a"])
    engine.accept(*one_offer(engine.create_interaction("busy", "q", "voice")))
    return engine, clock


def test_callback_keeps_its_place_in_line() -> None:
    engine, clock = busy_queue()
    engine.create_interaction("first", "q", "voice")
    clock.advance(5)
    engine.create_interaction("second", "q", "voice")
    clock.advance(30)
    events = engine.request_callback("first", phone="+32470000000")
    req = of(events, "interaction.callback_requested")[0]
    assert req["channel"] == "callback" and req["original_channel"] == "voice"
    assert (req["wait_seconds"], req["position"], req["phone"]) == (35.0, 1, "+32470000000")
    assert engine.position("first") == 1 and engine.position("second") == 2
    events = engine.complete("busy", "a")
    offered = of(events, "interaction.offered")[0]
    assert (offered["interaction_id"], offered["channel"]) == ("first", "callback")
    engine.accept("first", "a")
    done = of(engine.complete("first", "a"), "interaction.completed")[0]
    assert done["original_channel"] == "voice"


def test_callback_at_a_chosen_time_is_not_offered_before() -> None:
    engine, clock = busy_queue()
    at = clock.now() + timedelta(hours=1)
    events = engine.request_callback(
        engine.create_interaction("i", "q", "voice")[0].payload["interaction_id"], at=at
    )
    assert of(events, "interaction.callback_requested")[0]["due_at"] == at.isoformat()
    engine.complete("busy", "a")  # a is free, but the callback is not due
    assert engine.agent_snapshot("a").state == "available"
    snap = engine.interaction_snapshot("i")
    assert snap.state == "scheduled" and snap.callback_due_at == at
    assert engine.estimated_wait("i") == 3600.0
    assert engine.queue_snapshot("q").scheduled_callbacks == 1
    assert engine.next_deadline() == at
    clock.advance(3600)
    events = engine.tick()
    assert types(events)[:1] == ["callback.due"]
    assert of(events, "callback.due")[0]["attempt"] == 1
    assert offers(events) == [("i", "a")]


def test_failed_attempts_are_retried_then_exhausted() -> None:
    engine, clock = busy_queue(callback=CallbackPolicy(max_attempts=2, retry_delay_seconds=600))
    engine.create_interaction("i", "q", "voice")
    engine.request_callback("i")
    engine.complete("busy", "a")
    engine.accept("i", "a")
    events = engine.callback_failed("i", "a", reason="busy")
    failed = of(events, "callback.attempt_failed")[0]
    assert (failed["attempt"], failed["reason"]) == (1, "busy")
    assert failed["retry_at"] == (clock.now() + timedelta(seconds=600)).isoformat()
    assert engine.agent_snapshot("a").state == "available"
    assert engine.interaction_snapshot("i").state == "scheduled"
    clock.advance(600)
    events = engine.tick()
    assert of(events, "callback.due")[0]["attempt"] == 2
    engine.accept("i", "a")
    events = engine.callback_failed("i", "a")
    assert of(events, "callback.attempt_failed")[0]["retry_at"] is None
    assert of(events, "callback.exhausted")[0]["attempts"] == 2
    assert "i" not in engine.interaction_ids()


def test_cancelling_a_scheduled_callback() -> None:
    engine, clock = busy_queue()
    engine.create_interaction("i", "q", "voice")
    engine.request_callback("i", at=clock.now() + timedelta(minutes=10))
    events = engine.abandon("i", reason="cancelled")
    ab = of(events, "interaction.abandoned")[0]
    assert (ab["state"], ab["reason"], ab["channel"]) == ("scheduled", "cancelled", "callback")
    assert engine.next_deadline() is None


def test_callback_rules() -> None:
    engine, clock = busy_queue(callback=CallbackPolicy(max_delay_seconds=3600))
    engine.create_interaction("i", "q", "voice")
    with pytest.raises(InvalidInput):
        engine.request_callback("i", at=clock.now() + timedelta(hours=2))
    with pytest.raises(InvalidInput):
        engine.request_callback("i", at=clock.now().replace(tzinfo=None))
    engine.request_callback("i")
    with pytest.raises(Conflict):
        engine.request_callback("i")
    with pytest.raises(Conflict):
        engine.request_callback("busy")  # connected
    closed, _ = build(
        [QueueConfig("q", members=(Member("a"),), channels=(Channel.VOICE,))], ["a"], login=False
    )
    closed.create_interaction("i", "q", "voice")
    with pytest.raises(Conflict):
        closed.request_callback("i")
