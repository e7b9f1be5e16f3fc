"""Offers, accept/reject/no-answer, agent states, hold, wrap-up, transfers, conference."""

from __future__ import annotations

from datetime import timedelta

import pytest
from acd_helpers import build, of, offers, one_offer, states, types

from sparklecomm.acd import AgentConfig, Channel, Member, QueueConfig
from sparklecomm.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied


def two_queue_engine(**kw: object):  # type: ignore[no-untyped-def]
    queues = [
        QueueConfig(
            "sales", members=(Member("a"), Member("b"), Member("c")), wrapup_seconds=30, **kw
        ),  # type: ignore[arg-type]
        QueueConfig("support", members=(Member("c"),)),
    ]
    return build(queues, ["a", "b", "c"])


def test_full_lifecycle_events_and_times() -> None:
    engine, clock = two_queue_engine()
    events = engine.create_interaction(
        "i", "sales", "voice", customer_id="cust-9", attributes={"dnis": "123"}
    )
    assert types(events) == [
        "interaction.created",
        "interaction.queued",
        "interaction.offered",
        "agent.state_changed",
    ]
    created = of(events, "interaction.created")[0]
    assert created["customer_id"] == "cust-9" and created["attributes"] == {"dnis": "123"}
    clock.advance(4)
    events = engine.accept("i", "a")
    accepted = of(events, "interaction.accepted")[0]
    assert accepted["wait_seconds"] == 4.0 and accepted["ring_seconds"] == 4.0
    assert accepted["within_service_level"] is True
    clock.advance(100)
    engine.hold("i", "a")
    clock.advance(20)
    assert of(engine.resume("i", "a"), "interaction.resumed")[0]["hold_seconds"] == 20.0
    clock.advance(10)
    events = engine.complete("i", "a", disposition="sold")
    done = of(events, "interaction.completed")[0]
    assert (done["talk_seconds"], done["hold_seconds"], done["disposition"]) == (
        110.0,
        20.0,
        "sold",
    )
    assert states(events, "a") == ["wrap_up"]
    assert engine.next_deadline() == clock.now() + timedelta(seconds=30)
    clock.advance(30)
    events = engine.tick()
    wrap = of(events, "interaction.wrapup_ended")[0]
    assert (wrap["wrapup_seconds"], wrap["handle_seconds"], wrap["reason"]) == (
        30.0,
        160.0,
        "timer",
    )
    change = of(events, "agent.state_changed")[0]
    assert change["state"] == "available" and change["previous_state"] == "wrap_up"
    assert change["previous_reason"] == "completed" and change["previous_seconds"] == 30.0


def test_every_interaction_event_carries_the_ids() -> None:
    engine, clock = two_queue_engine()
    events = engine.create_interaction("i", "sales", "chat")
    events += engine.accept("i", "a")
    events += engine.transfer("i", "a", to_queue_id="support")
    iid, aid = offers(events)[-1]
    events += engine.accept(iid, aid)
    events += engine.complete(iid, aid)
    for event in events:
        if event.type.startswith("interaction."):
            assert {"interaction_id", "queue_id", "agent_id", "channel"} <= set(event.payload)
            assert event.payload["interaction_id"] == "i" and event.payload["channel"] == "chat"
        assert event.time == clock.now()


def test_end_wrapup_early() -> None:
    engine, clock = two_queue_engine()
    engine.accept(*one_offer(engine.create_interaction("i", "sales", "voice")))
    engine.complete("i", "a")
    clock.advance(5)
    events = engine.end_wrapup("i", "a")
    assert of(events, "interaction.wrapup_ended")[0]["reason"] == "agent"
    assert engine.agent_snapshot("a").state == "available"
    assert engine.next_deadline() is None  # the wrap-up timer is gone
    with pytest.raises(Conflict):
        engine.end_wrapup("i", "a")


def test_reject_goes_to_the_next_agent_and_excludes_for_a_while() -> None:
    engine, clock = two_queue_engine(strategy="linear", reoffer_delay_seconds=10)
    engine.create_interaction("i", "sales", "voice")
    events = engine.reject("i", "a", reason="busy-with-email")
    assert of(events, "interaction.rejected")[0]["reason"] == "busy-with-email"
    assert offers(events) == [("i", "b")]
    engine.reject("i", "b")
    engine.reject("i", "c")
    assert engine.position("i") == 1  # nobody may take it for now
    clock.advance(10)
    events = engine.tick()  # exclusions over: a (first in list) gets it again
    assert offers(events) == [("i", "a")]


def test_no_answer_reoffers_and_three_misses_put_the_agent_on_break() -> None:
    cfg = QueueConfig(
        "q", members=(Member("a"),), offer_timeout_seconds=15, reoffer_delay_seconds=0
    )
    engine, clock = build([cfg], ["a"])
    engine.create_interaction("i", "q", "voice")
    for miss in (1, 2):
        clock.advance(15)
        events = engine.tick()
        assert of(events, "interaction.offer_timed_out")[0]["consecutive_misses"] == miss
        assert offers(events) == [("i", "a")]  # re-offered (no exclusion configured)
    clock.advance(15)
    events = engine.tick()
    change = of(events, "agent.state_changed")[-1]
    assert (change["state"], change["reason"]) == ("break", "missed-offers")
    assert offers(events) == []
    assert engine.agent_snapshot("a").state == "break"
    events = engine.set_available("a")
    assert offers(events) == [("i", "a")]


def test_accept_resets_the_miss_count() -> None:
    cfg = QueueConfig(
        "q", members=(Member("a"),), offer_timeout_seconds=15, reoffer_delay_seconds=0
    )
    engine, clock = build([cfg], ["a"])
    engine.create_interaction("i", "q", "voice")
    clock.advance(15)
    engine.tick()
    assert engine.agent_snapshot("a").consecutive_misses == 1
    engine.accept("i", "a")
    assert engine.agent_snapshot("a").consecutive_misses == 0


def test_invalid_offer_commands() -> None:
    engine, _ = two_queue_engine()
    engine.create_interaction("i", "sales", "voice")
    with pytest.raises(PermissionDenied):
        engine.accept("i", "b")
    with pytest.raises(NotFound):
        engine.accept("nope", "a")
    with pytest.raises(NotFound):
        engine.accept("i", "ghost")
    engine.accept("i", "a")
    with pytest.raises(Conflict):
        engine.accept("i", "a")
    with pytest.raises(Conflict):
        engine.reject("i", "a")
    with pytest.raises(PermissionDenied):
        engine.complete("i", "b")
    with pytest.raises(Conflict):
        engine.create_interaction("i", "sales", "voice")
    with pytest.raises(InvalidInput):
        engine.create_interaction("j", "support", "fax")
    with pytest.raises(InvalidInput):
        engine.create_interaction("j", "support", "voice", priority=101)
    with pytest.raises(NotFound):
        engine.create_interaction("j", "nowhere", "voice")


def test_abandon_while_queued_and_while_offered() -> None:
    engine, clock = build([QueueConfig("q", members=(Member("a"),))], ["a"])
    engine.accept(*one_offer(engine.create_interaction("busy", "q", "voice")))
    engine.create_interaction("w", "q", "voice")
    clock.advance(12)
    events = engine.abandon("w")
    ab = of(events, "interaction.abandoned")[0]
    assert (ab["state"], ab["position"], ab["wait_seconds"]) == ("queued", 1, 12.0)
    engine.complete("busy", "a")
    engine.create_interaction("o", "q", "voice")
    events = engine.abandon("o")
    assert types(events) == [
        "interaction.offer_withdrawn",
        "agent.state_changed",
        "interaction.abandoned",
    ]
    assert of(events, "interaction.offer_withdrawn")[0]["reason"] == "abandoned"
    assert engine.agent_snapshot("a").state == "available"
    engine.accept(*one_offer(engine.create_interaction("c", "q", "voice")))
    with pytest.raises(Conflict):
        engine.abandon("c")


def test_multichannel_capacity_and_voice_blocking() -> None:
    agent = AgentConfig("a", capacity={Channel.VOICE: 1, Channel.CHAT: 3})
    engine, _ = build([QueueConfig("q", members=(Member("a"),))], [agent])
    for n in range(3):
        engine.accept(*one_offer(engine.create_interaction(f"c{n}", "q", "chat")))
    assert engine.agent_snapshot("a").load == {"chat": 3}
    assert offers(engine.create_interaction("c3", "q", "chat")) == []  # capacity reached
    events = engine.create_interaction("v", "q", "voice")  # chats do not block voice
    assert one_offer(events) == ("v", "a")
    engine.accept("v", "a")
    engine.complete("c0", "a")  # a chat slot frees up, but voice blocks other channels
    assert engine.position("c3") == 1
    events = engine.complete("v", "a")
    assert offers(events) == [("c3", "a")]


def test_break_requested_while_busy_starts_after_the_work() -> None:
    engine, _ = two_queue_engine()
    engine.accept(*one_offer(engine.create_interaction("i", "sales", "voice")))
    events = engine.set_break("a", "lunch")
    assert types(events) == ["agent.break_scheduled"]
    assert engine.agent_snapshot("a").pending_break == "lunch"
    engine.complete("i", "a")
    events = engine.end_wrapup("i", "a")
    assert states(events, "a") == ["break"]
    assert of(events, "agent.state_changed")[0]["reason"] == "lunch"
    # a new interaction does not go to a
    assert one_offer(engine.create_interaction("j", "sales", "voice"))[1] != "a"
    events = engine.set_break("a", "training")  # break -> break keeps both reasons
    change = of(events, "agent.state_changed")[0]
    assert (change["previous_reason"], change["reason"]) == ("lunch", "training")
    with pytest.raises(Conflict):
        engine.set_break("a", "training")


def test_break_while_offered_withdraws_the_offer() -> None:
    engine, _ = two_queue_engine(strategy="linear")
    engine.create_interaction("i", "sales", "voice")
    events = engine.set_break("a", "coaching")
    assert of(events, "interaction.offer_withdrawn")[0]["reason"] == "agent_break"
    assert offers(events) == [("i", "b")]
    assert states(events, "a") == ["break"]  # reserved -> break, no "available" in between


def test_login_logout_rules() -> None:
    engine, clock = two_queue_engine()
    with pytest.raises(Conflict):
        engine.login("a")
    engine.accept(*one_offer(engine.create_interaction("i", "sales", "voice")))
    with pytest.raises(Conflict):
        engine.logout("a")
    engine.complete("i", "a")
    with pytest.raises(Conflict):
        engine.logout("a")  # still in wrap-up
    engine.end_wrapup("i", "a")
    clock.advance(60)
    events = engine.logout("a", reason="end-of-shift")
    out = of(events, "agent.logged_out")[0]
    assert (out["reason"], out["session_seconds"], out["handled"]) == ("end-of-shift", 60.0, 1)
    assert states(events, "a") == ["logged_out"]
    with pytest.raises(Conflict):
        engine.remove_agent("b")
    assert types(engine.remove_agent("a")) == ["agent.removed"]


def test_blind_transfer_to_a_queue() -> None:
    engine, clock = two_queue_engine()
    engine.accept(*one_offer(engine.create_interaction("i", "sales", "voice")))
    clock.advance(50)
    events = engine.transfer("i", "a", to_queue_id="support", priority=5)
    t = of(events, "interaction.transferred")[0]
    assert (t["kind"], t["to_queue_id"], t["talk_seconds"]) == ("blind", "support", 50.0)
    assert of(events, "interaction.queued")[0]["reason"] == "transfer"
    assert offers(events) == [("i", "c")]
    assert states(events, "a") == ["wrap_up"]  # the sales wrap-up (30 s)
    clock.advance(3)
    accepted = of(engine.accept("i", "c"), "interaction.accepted")[0]
    assert accepted["queue_id"] == "support" and accepted["wait_seconds"] == 3.0


def test_blind_transfer_to_an_agent_and_its_return_on_no_answer() -> None:
    engine, clock = two_queue_engine(offer_timeout_seconds=10)
    engine.accept(*one_offer(engine.create_interaction("i", "sales", "voice")))
    events = engine.transfer("i", "a", to_agent_id="b")
    assert offers(events) == [("i", "b")]
    assert of(events, "interaction.offered")[0]["kind"] == "transfer"
    clock.advance(10)
    events = engine.tick()
    assert of(events, "interaction.queued")[0]["reason"] == "transfer_returned"
    assert offers(events) == [("i", "c")]  # a in wrap-up, b just missed it
    with pytest.raises(Conflict):
        engine.transfer("i", "c", to_agent_id="b")  # not connected yet
    engine.accept("i", "c")
    with pytest.raises(Conflict):
        engine.transfer("i", "c", to_agent_id="a")  # a is in wrap-up
    with pytest.raises(InvalidInput):
        engine.transfer("i", "c", to_agent_id="b", to_queue_id="sales")


def test_transfer_out_to_a_number_ends_the_interaction_for_routing() -> None:
    """The agent put the call through to a number (the phone's transfer key): the call goes
    on without the engine, so the interaction completes and the agent wraps up."""
    engine, clock = two_queue_engine()
    engine.accept(*one_offer(engine.create_interaction("i", "sales", "voice")))
    clock.advance(40)
    engine.hold("i", "a")
    clock.advance(5)
    events = engine.transfer("i", "a", to_number=" 2003 ")
    assert types(events)[:2] == ["interaction.transferred", "interaction.completed"]
    t = of(events, "interaction.transferred")[0]
    assert (t["kind"], t["to_number"], t["to_agent_id"], t["to_queue_id"]) == (
        "external",
        "2003",
        None,
        None,
    )
    assert (t["talk_seconds"], t["hold_seconds"]) == (40.0, 5.0)
    done = of(events, "interaction.completed")[0]
    assert (done["transferred_to"], done["talk_seconds"], done["agent_id"]) == ("2003", 40.0, "a")
    assert states(events, "a") == ["wrap_up"]
    assert "i" not in engine.interaction_ids()  # out of routing
    clock.advance(30)
    ended = of(engine.tick(), "interaction.wrapup_ended")[0]
    assert (ended["talk_seconds"], ended["hold_seconds"], ended["handle_seconds"]) == (
        40.0,
        5.0,
        75.0,
    )


def test_transfer_out_is_refused_when_it_cannot_be_done() -> None:
    engine, _ = two_queue_engine()
    engine.accept(*one_offer(engine.create_interaction("i", "sales", "voice")))
    for bad in ("", "   ", "x" * 65, "20\n03", 2003):
        with pytest.raises(InvalidInput) as error:
            engine.transfer("i", "a", to_number=bad)  # type: ignore[arg-type]
        assert error.value.field == "to_number"
    with pytest.raises(InvalidInput) as error:
        engine.transfer("i", "a", to_number="2003", to_queue_id="support")
    assert error.value.field == "to"
    with pytest.raises(PermissionDenied):
        engine.transfer("i", "b", to_number="2003")  # not b's
    engine.consult("i", "a", "b", ringing=False)
    with pytest.raises(Conflict) as conflict:
        engine.transfer("i", "a", to_number="2003")
    assert conflict.value.field == "to_number"


def test_consult_then_transfer() -> None:
    engine, clock = two_queue_engine()
    engine.accept(*one_offer(engine.create_interaction("i", "sales", "voice")))
    clock.advance(30)
    engine.hold("i", "a")
    events = engine.consult("i", "a", "b")
    started = of(events, "interaction.consult_started")[0]
    assert (started["consulted_agent_id"], started["ringing"]) == ("b", True)  # a call rings
    assert states(events, "b") == ["reserved"]
    clock.advance(5)
    events = engine.consult_connected("i", "b")
    assert of(events, "interaction.consult_connected")[0]["ring_seconds"] == 5.0
    assert states(events, "b") == ["busy"]
    clock.advance(15)
    events = engine.transfer("i", "a", to_agent_id="b")
    t = of(events, "interaction.transferred")[0]
    assert (t["kind"], t["to_agent_id"], t["talk_seconds"], t["hold_seconds"]) == (
        "consult",
        "b",
        30.0,
        20.0,
    )
    snap = engine.interaction_snapshot("i")
    assert snap.agent_id == "b" and snap.participants == {"b": "owner"} and not snap.on_hold
    clock.advance(40)
    done = of(engine.complete("i", "b"), "interaction.completed")[0]
    assert done["talk_seconds"] == 40.0


def test_conference_and_leave() -> None:
    engine, clock = two_queue_engine()
    engine.accept(*one_offer(engine.create_interaction("i", "sales", "voice")))
    engine.consult("i", "a", "b", ringing=False)  # connected at once, as told
    events = engine.conference("i", "a", "b")
    assert of(events, "interaction.conference_joined")[0]["from_consult"] is True
    engine.conference("i", "a", "c")
    assert engine.interaction_snapshot("i").participants == {
        "a": "owner",
        "b": "conference",
        "c": "conference",
    }
    with pytest.raises(Conflict):
        engine.conference("i", "a", "c")
    clock.advance(5)
    left = of(engine.leave("i", "c"), "interaction.participant_left")[0]
    assert (left["agent_id"], left["seconds"]) == ("c", 5.0)
    assert engine.agent_snapshot("c").state == "available"
    events = engine.leave("i", "a")  # the owner leaves: b takes over
    assert of(events, "interaction.transferred")[0]["kind"] == "conference"
    assert engine.interaction_snapshot("i").agent_id == "b"
    with pytest.raises(Conflict):
        engine.leave("i", "b")  # alone: complete instead
    engine.consult("i", "b", "c", ringing=False)
    events = engine.complete("i", "b")  # the consulted agent drops with the call
    assert of(events, "interaction.participant_left")[0]["reason"] == "completed"
    assert engine.agent_snapshot("c").state == "available"


def test_the_owner_ends_a_consultation() -> None:
    engine, clock = two_queue_engine()
    engine.accept(*one_offer(engine.create_interaction("i", "sales", "voice")))
    engine.consult("i", "a", "b", ringing=False)
    clock.advance(15)
    with pytest.raises(PermissionDenied):
        engine.end_consult("i", "b", "b")  # only the owner ends it
    events = engine.end_consult("i", "a", "b")
    left = of(events, "interaction.participant_left")[0]
    assert (left["agent_id"], left["role"], left["reason"], left["seconds"]) == (
        "b",
        "consult",
        "consult_ended",
        15.0,
    )
    assert states(events, "b") == ["available"]
    snap = engine.interaction_snapshot("i")
    assert snap.agent_id == "a" and snap.participants == {"a": "owner"}
    with pytest.raises(Conflict):
        engine.end_consult("i", "a", "b")  # no longer consulted
    engine.conference("i", "a", "c")
    with pytest.raises(Conflict):
        engine.end_consult("i", "a", "c")  # a conference member leaves, not "ends"


def test_consult_needs_a_free_agent() -> None:
    engine, _ = two_queue_engine()
    engine.accept(*one_offer(engine.create_interaction("i", "sales", "voice")))
    engine.accept(*one_offer(engine.create_interaction("j", "sales", "voice")))
    with pytest.raises(Conflict):
        engine.consult("i", "a", "b")  # b is busy on j (voice capacity 1)
    with pytest.raises(PermissionDenied):
        engine.consult("i", "b", "c")  # b does not own i


def test_an_interaction_offered_back_to_the_agent_wrapping_it_up() -> None:
    """Transferred to a queue that offers it straight back to the same agent (room for a
    second chat): the new leg's wrap-up ends the first one (reason ``replaced``) instead of
    overwriting it, so no load unit is left behind and the first timer finds nothing."""
    engine, clock = build(
        [
            QueueConfig("q", channels=(Channel.CHAT,), members=(Member("b"),), wrapup_seconds=10),
            QueueConfig("r", channels=(Channel.CHAT,), members=(Member("b"),), wrapup_seconds=2),
        ],
        [AgentConfig("b", capacity={Channel.CHAT: 2})],
    )
    engine.create_interaction("j", "q", "chat")
    engine.accept("j", "b")
    events = engine.transfer("j", "b", to_queue_id="r")
    assert offers(events) == [("j", "b")]
    engine.accept("j", "b")
    events = engine.complete("j", "b")
    assert [p["reason"] for p in of(events, "interaction.wrapup_ended")] == ["replaced"]
    clock.advance(3)
    assert [p["reason"] for p in of(engine.tick(), "interaction.wrapup_ended")] == ["timer"]
    clock.advance(10)
    assert engine.tick() == []  # q's 10 s timer went with its wrap-up
    snap = engine.agent_snapshot("b")
    assert (snap.state, snap.load, snap.wrapups) == ("available", {}, ())
