"""Outbound contacts the agent starts (click-to-dial, an e-mail of their own): start_outbound."""

from __future__ import annotations

import pytest
from acd_helpers import build, of, one_offer, states, types

from sparklecomm.acd import AcdEngine, AgentConfig, Channel, Member, QueueConfig
from sparklecomm.core.errors import Conflict, InvalidInput, NotFound


def centre():  # type: ignore[no-untyped-def]
    queues = [
        QueueConfig("chat", channels=(Channel.CHAT,), members=(Member("a"),)),
        QueueConfig("sales", members=(Member("a"), Member("b")), wrapup_seconds=10),
        QueueConfig("outbound", wrapup_seconds=5),
    ]
    agents = [
        AgentConfig("a", capacity={Channel.VOICE: 1, Channel.CHAT: 2}),
        AgentConfig("b", capacity={Channel.VOICE: 1}),
    ]
    return build(queues, agents)


def test_an_outbound_call_makes_the_agent_busy_at_once_and_ends_like_any_other() -> None:
    engine, clock = centre()
    events = engine.start_outbound(
        "o1", "a", "outbound", "voice", customer_id="c-7", attributes={"to": "+4930123"}
    )
    assert types(events) == [
        "interaction.created",
        "interaction.accepted",
        "agent.state_changed",
    ]
    created = of(events, "interaction.created")[0]
    assert created["direction"] == "outbound"
    assert (created["agent_id"], created["queue_id"], created["customer_id"]) == (
        "a",
        "outbound",
        "c-7",
    )
    assert created["attributes"] == {"to": "+4930123"}
    accepted = of(events, "interaction.accepted")[0]
    assert (accepted["kind"], accepted["wait_seconds"]) == ("outbound", 0.0)
    assert states(events, "a") == ["busy"]
    snap = engine.interaction_snapshot("o1")
    assert (snap.state, snap.agent_id, snap.direction) == ("active", "a", "outbound")

    # A customer calling in now goes to b, not to the agent on the outbound call.
    assert one_offer(engine.create_interaction("in1", "sales", "voice")) == ("in1", "b")
    engine.accept("in1", "b")

    clock.advance(42)
    events = engine.complete("o1", "a", disposition="reached")
    done = of(events, "interaction.completed")[0]
    assert (done["talk_seconds"], done["disposition"]) == (42.0, "reached")
    assert states(events, "a") == ["wrap_up"]  # the outbound queue's wrap-up: 5 s
    clock.advance(5)
    events = engine.tick()
    assert of(events, "interaction.wrapup_ended")[0]["handle_seconds"] == 47.0
    assert states(events, "a") == ["available"]


def test_outbound_handle_times_do_not_feed_the_estimated_wait() -> None:
    engine, clock = centre()
    engine.start_outbound("o1", "a", "sales")
    clock.advance(600)
    engine.complete("o1", "a")
    clock.advance(10)
    engine.tick()
    assert engine.queue_snapshot("sales") is not None
    assert engine._queues["sales"].handle_times.get(Channel.VOICE, []) == []
    # An inbound call's handle time still does.
    _, agent = one_offer(engine.create_interaction("i1", "sales", "voice"))
    engine.accept("i1", agent)
    clock.advance(60)
    engine.complete("i1", agent)
    clock.advance(10)
    engine.tick()
    assert engine._queues["sales"].handle_times[Channel.VOICE] == [70.0]


def test_the_default_outbound_queue_is_the_agents_first_queue_for_the_channel() -> None:
    engine, _ = centre()
    created = of(engine.start_outbound("o1", "a", channel="chat"), "interaction.created")[0]
    assert created["queue_id"] == "chat"
    created = of(engine.start_outbound("o2", "a"), "interaction.created")[0]
    assert created["queue_id"] == "sales"  # "chat" comes first but takes no voice


def test_refusals_name_what_is_wrong_and_change_nothing() -> None:
    engine, _ = centre()
    engine.add_agent(AgentConfig("loner"))
    engine.login("loner")
    with pytest.raises(InvalidInput) as err:
        engine.start_outbound("o1", "loner")
    assert err.value.field == "queue_id" and "no queue that takes voice" in str(err.value)
    with pytest.raises(NotFound):
        engine.start_outbound("o1", "nobody", "sales")
    with pytest.raises(NotFound):
        engine.outbound_refusal("nobody")
    assert engine.outbound_refusal("a") is None
    with pytest.raises(NotFound):
        engine.start_outbound("o1", "a", "nowhere")
    with pytest.raises(InvalidInput) as err:
        engine.start_outbound("o1", "a", "chat", "voice")
    assert err.value.field == "channel"
    with pytest.raises(InvalidInput):
        engine.start_outbound("", "a", "sales")

    engine.logout("b")
    with pytest.raises(Conflict) as err:
        engine.start_outbound("o1", "b", "sales")
    assert "not logged in" in str(err.value)

    engine.create_interaction("in1", "sales", "voice")  # rings a
    assert "offer ringing" in (engine.outbound_refusal("a") or "")
    assert engine.outbound_refusal("a", "chat") == engine.outbound_refusal("a")
    with pytest.raises(Conflict) as err:
        engine.start_outbound("o1", "a", "sales")
    assert "offer ringing" in str(err.value)
    engine.accept("in1", "a")
    with pytest.raises(Conflict) as err:
        engine.start_outbound("o1", "a", "sales")
    assert "is busy" in str(err.value)
    # A chat cannot start either while a call is in progress (voice blocks other channels).
    with pytest.raises(Conflict):
        engine.start_outbound("o1", "a", "chat", "chat")
    engine.complete("in1", "a")
    with pytest.raises(Conflict) as err:
        engine.start_outbound("o1", "a", "sales")
    assert "end the wrap-up first" in str(err.value)
    with pytest.raises(Conflict):
        engine.start_outbound("in1", "a", "sales")  # the id is taken (in wrap-up still)
    assert "o1" not in engine.interaction_ids()


def test_an_agent_on_a_break_may_place_a_call_and_returns_to_the_break() -> None:
    engine, clock = centre()
    engine.set_break("b", "lunch")
    events = engine.start_outbound("o1", "b", "sales")
    assert states(events, "b") == ["busy"]
    clock.advance(30)
    events = engine.complete("o1", "b")
    clock.advance(10)
    events += engine.tick()
    assert states(events, "b") == ["wrap_up", "break"]
    assert engine.agent_snapshot("b").reason == "lunch"


def test_chats_of_ones_own_respect_capacity() -> None:
    engine, _ = centre()
    engine.start_outbound("c1", "a", "chat", "chat")
    engine.start_outbound("c2", "a", "chat", "chat")
    with pytest.raises(Conflict):
        engine.start_outbound("c3", "a", "chat", "chat")
    # With two chats of its own, a's chat capacity is full: a chat from the queue waits.
    assert of(engine.create_interaction("in", "chat", "chat"), "interaction.offered") == []


def test_outbound_contacts_survive_a_snapshot() -> None:
    engine, clock = centre()
    engine.start_outbound("o1", "a", "outbound")
    clock.advance(20)
    engine.complete("o1", "a")
    engine.start_outbound("o2", "b", "outbound")
    copy = AcdEngine.from_snapshot(engine.to_snapshot(), clock)
    assert copy.interaction_snapshot("o2").direction == "outbound"
    assert copy.to_snapshot() == engine.to_snapshot()
    clock.advance(5)
    assert [e.payload for e in copy.tick()] == [e.payload for e in engine.tick()]
    assert copy._queues["outbound"].handle_times == {}
