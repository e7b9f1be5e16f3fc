"""Consultations whose phone rings first (voice, callback): ring time is not talk time.

The consulted agent is ``reserved`` while its phone rings (nothing else is offered to it),
``busy`` once it answers (``consult_connected``); ``participant_left`` reports the talk as
``seconds`` and the ring as ``ring_seconds``. Fake clock throughout.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from acd_helpers import build, of, offers, one_offer, states, types

from sparklecomm.acd import AcdEngine, AgentConfig, Member, QueueConfig
from sparklecomm.acd.persistence import agent_config_to_dict, queue_config_to_dict
from sparklecomm.acd.service import EngineClock, _replay
from sparklecomm.acd.store import AcdCommand
from sparklecomm.core.clock import FakeClock
from sparklecomm.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied


def engine_with_call(channel: str = "voice") -> tuple[AcdEngine, FakeClock]:
    """Agents a, b, c in queue ``sales`` (wrap-up 30 s); ``i`` is connected to a."""
    engine, clock = build(
        [
            QueueConfig(
                "sales",
                channels=("voice", "chat", "callback"),
                members=(Member("a"), Member("b"), Member("c")),
                wrapup_seconds=30,
            )
        ],
        ["a", "b", "c"],
    )
    engine.accept(*one_offer(engine.create_interaction("i", "sales", channel)))
    return engine, clock


def left_of(events: list, agent_id: str) -> dict:  # type: ignore[type-arg]
    (left,) = [p for p in of(events, "interaction.participant_left") if p["agent_id"] == agent_id]
    return left


def test_ring_time_is_not_talk_time() -> None:
    engine, clock = engine_with_call()
    clock.advance(10)
    events = engine.consult("i", "a", "b")
    assert types(events) == ["interaction.consult_started", "agent.state_changed"]
    started = of(events, "interaction.consult_started")[0]
    assert (started["agent_id"], started["consulted_agent_id"], started["ringing"]) == (
        "a",
        "b",
        True,
    )
    assert states(events, "b") == ["reserved"]
    snap = engine.interaction_snapshot("i")
    assert snap.participants == {"a": "owner", "b": "consult"} and snap.ringing == ("b",)
    assert engine.agent_snapshot("b").routable_channels == ()  # held for this call

    clock.advance(7)
    events = engine.consult_connected("i", "b")
    assert types(events) == ["interaction.consult_connected", "agent.state_changed"]
    connected = of(events, "interaction.consult_connected")[0]
    assert connected == {
        "interaction_id": "i",
        "queue_id": "sales",
        "agent_id": "a",
        "channel": "voice",
        "consulted_agent_id": "b",
        "role": "consult",
        "ring_seconds": 7.0,
    }
    (changed,) = of(events, "agent.state_changed")
    assert (changed["state"], changed["reason"]) == ("busy", "consult_connected")
    assert (changed["previous_state"], changed["previous_seconds"]) == ("reserved", 7.0)
    assert engine.interaction_snapshot("i").ringing == ()

    clock.advance(30)
    events = engine.end_consult("i", "a", "b")
    left = left_of(events, "b")
    assert (left["reason"], left["seconds"], left["ring_seconds"], left["connected"]) == (
        "consult_ended",
        30.0,
        7.0,
        True,
    )
    assert states(events, "b") == ["available"]
    # The owner's leg is untouched by the consultation: 47 s of talk.
    done = of(engine.complete("i", "a"), "interaction.completed")[0]
    assert done["talk_seconds"] == 47.0


def test_a_ringing_consulted_agent_is_offered_nothing_else() -> None:
    engine, clock = engine_with_call()
    engine.consult("i", "a", "b")
    events = engine.create_interaction("j", "sales", "voice")
    assert offers(events) == [("j", "c")]
    events = engine.create_interaction("k", "sales", "voice")
    assert offers(events) == []  # b still rings for i: k waits
    clock.advance(3)
    events = engine.leave("i", "b", reason="no_answer")
    assert offers(events) == [("k", "b")]  # free again: k goes to b at once
    assert states(events, "b") == ["available", "reserved"]


@pytest.mark.parametrize("reason", ["busy", "no_answer"])
def test_a_refused_consultation_counts_ring_time_only(reason: str) -> None:
    engine, clock = engine_with_call()
    engine.consult("i", "a", "b")
    clock.advance(12)
    events = engine.leave("i", "b", reason=reason)
    left = left_of(events, "b")
    assert (left["role"], left["reason"], left["seconds"], left["ring_seconds"]) == (
        "consult",
        reason,
        0.0,
        12.0,
    )
    assert left["connected"] is False
    (changed,) = of(events, "agent.state_changed")
    assert (changed["previous_state"], changed["state"]) == ("reserved", "available")
    snap = engine.interaction_snapshot("i")
    assert snap.participants == {"a": "owner"} and snap.ringing == ()
    with pytest.raises(PermissionDenied) as err:
        engine.consult_connected("i", "b")  # a late answer: no longer on it
    assert err.value.field == "agent_id"


def test_the_owner_ends_or_completes_while_it_rings() -> None:
    engine, clock = engine_with_call()
    engine.consult("i", "a", "b")
    clock.advance(4)
    left = left_of(engine.end_consult("i", "a", "b"), "b")
    assert (left["reason"], left["seconds"], left["ring_seconds"]) == ("consult_ended", 0.0, 4.0)
    engine.consult("i", "a", "c")
    clock.advance(6)
    events = engine.complete("i", "a")
    left = left_of(events, "c")
    assert (left["reason"], left["seconds"], left["ring_seconds"]) == ("completed", 0.0, 6.0)
    assert states(events, "c") == ["available"]
    assert engine.agent_snapshot("c").interactions == ()


def test_transfer_to_a_ringing_consultation_starts_talk_on_answer() -> None:
    engine, clock = engine_with_call()
    clock.advance(20)
    engine.consult("i", "a", "b")
    clock.advance(3)
    events = engine.transfer("i", "a", to_agent_id="b")
    transferred = of(events, "interaction.transferred")[0]
    assert (transferred["kind"], transferred["to_agent_id"], transferred["talk_seconds"]) == (
        "consult",
        "b",
        23.0,
    )
    snap = engine.interaction_snapshot("i")
    assert (snap.agent_id, snap.participants, snap.ringing) == ("b", {"b": "owner"}, ("b",))
    assert engine.agent_snapshot("b").state == "reserved"
    # Not answered yet: the new owner cannot act on the call.
    with pytest.raises(Conflict) as err:
        engine.hold("i", "b")
    assert err.value.field == "agent_id"
    with pytest.raises(Conflict):
        engine.consult("i", "b", "c")
    clock.advance(4)
    events = engine.consult_connected("i", "b")
    connected = of(events, "interaction.consult_connected")[0]
    assert (connected["agent_id"], connected["role"], connected["ring_seconds"]) == (
        "b",
        "owner",
        7.0,
    )
    assert states(events, "b") == ["busy"]
    clock.advance(30)
    engine.hold("i", "b")
    clock.advance(5)
    done = of(engine.complete("i", "b"), "interaction.completed")[0]
    assert (done["talk_seconds"], done["hold_seconds"]) == (30.0, 5.0)  # ring 7 s left out


def test_the_owner_leaving_hands_over_and_an_unanswered_owner_completes_without_talk() -> None:
    engine, clock = engine_with_call()
    engine.consult("i", "a", "b")
    clock.advance(5)
    events = engine.leave("i", "a", reason="hung_up")  # the owner hangs up while b rings
    assert of(events, "interaction.transferred")[0]["to_agent_id"] == "b"
    assert engine.agent_snapshot("b").state == "reserved"
    clock.advance(10)
    events = engine.complete("i", "b")  # b's phone failed: the call ends
    assert of(events, "interaction.completed")[0]["talk_seconds"] == 0.0
    assert states(events, "b") == ["wrap_up"]
    assert engine.agent_snapshot("b").interactions == ()
    events = engine.end_wrapup("i", "b")
    assert of(events, "interaction.wrapup_ended")[0]["talk_seconds"] == 0.0


def test_the_owner_leaving_prefers_an_agent_who_talks() -> None:
    engine, _ = engine_with_call()
    engine.consult("i", "a", "b")  # rings
    engine.conference("i", "a", "c")  # joins at once
    events = engine.leave("i", "a")
    assert of(events, "interaction.transferred")[0]["to_agent_id"] == "c"
    assert engine.interaction_snapshot("i").participants == {"b": "consult", "c": "owner"}


def test_conference_from_a_ringing_consultation_keeps_ringing() -> None:
    engine, clock = engine_with_call()
    engine.consult("i", "a", "b")
    clock.advance(2)
    events = engine.conference("i", "a", "b")
    joined = of(events, "interaction.conference_joined")[0]
    assert (joined["from_consult"], joined["ringing"]) == (True, True)
    assert engine.agent_snapshot("b").state == "reserved"
    clock.advance(3)
    connected = of(engine.consult_connected("i", "b"), "interaction.consult_connected")[0]
    assert (connected["role"], connected["ring_seconds"]) == ("conference", 5.0)
    clock.advance(9)
    left = left_of(engine.leave("i", "b"), "b")
    assert (left["role"], left["seconds"], left["ring_seconds"]) == ("conference", 9.0, 5.0)


@pytest.mark.parametrize("channel", ["chat", "email"])
def test_chat_and_email_consultations_connect_at_once(channel: str) -> None:
    engine, clock = build(
        [QueueConfig("q", channels=(channel,), members=(Member("a"), Member("b")))], ["a", "b"]
    )
    engine.accept(*one_offer(engine.create_interaction("i", "q", channel)))
    events = engine.consult("i", "a", "b")
    assert of(events, "interaction.consult_started")[0]["ringing"] is False
    assert types(events) == ["interaction.consult_started", "agent.state_changed"]
    assert states(events, "b") == ["busy"]
    with pytest.raises(Conflict) as err:
        engine.consult_connected("i", "b")
    assert err.value.field == "agent_id"
    clock.advance(8)
    left = left_of(engine.leave("i", "b"), "b")
    assert (left["seconds"], left["ring_seconds"], left["connected"]) == (8.0, 0.0, True)


def test_callback_consultations_ring_and_the_caller_may_say_otherwise() -> None:
    engine, _ = engine_with_call("callback")
    events = engine.consult("i", "a", "b")
    assert of(events, "interaction.consult_started")[0]["ringing"] is True
    engine.end_consult("i", "a", "b")
    events = engine.consult("i", "a", "b", ringing=False)  # e.g. nothing rings it
    assert of(events, "interaction.consult_started")[0]["ringing"] is False
    assert states(events, "b") == ["busy"]


def test_bad_input_names_the_field_and_changes_nothing() -> None:
    engine, _ = engine_with_call()
    before = engine.to_snapshot()
    with pytest.raises(InvalidInput) as bad:
        engine.consult("i", "a", "b", ringing="yes")  # type: ignore[arg-type]
    assert bad.value.field == "ringing"
    with pytest.raises(NotFound) as missing:
        engine.consult_connected("nope", "b")
    assert missing.value.field == "interaction_id"
    with pytest.raises(NotFound) as missing:
        engine.consult_connected("i", "zed")
    assert missing.value.field == "agent_id"
    with pytest.raises(PermissionDenied) as denied:
        engine.consult_connected("i", "b")  # not consulted
    assert denied.value.field == "agent_id"
    with pytest.raises(Conflict) as conflict:
        engine.consult_connected("i", "a")  # the owner talks already
    assert conflict.value.field == "agent_id"
    assert engine.to_snapshot() == before


def test_a_ringing_consultation_survives_a_snapshot() -> None:
    engine, clock = engine_with_call()
    engine.consult("i", "a", "b")
    clock.advance(6)
    restored = AcdEngine.from_snapshot(engine.to_snapshot(), FakeClock(clock.now()))
    assert restored.to_snapshot() == engine.to_snapshot()
    assert restored.agent_snapshot("b").state == "reserved"
    assert restored.interaction_snapshot("i").ringing == ("b",)
    events = restored.consult_connected("i", "b")
    assert of(events, "interaction.consult_connected")[0]["ring_seconds"] == 6.0
    assert restored.agent_snapshot("b").state == "busy"


def test_a_snapshot_from_before_ringing_consultations_loads_them_connected() -> None:
    engine, clock = engine_with_call()
    engine.consult("i", "a", "b", ringing=False)
    data = engine.to_snapshot()
    for it in data["interactions"]:
        for part in it["participants"]:
            del part["connected_at"]
    for agent in data["agents"]:
        del agent["rings"]
    restored = AcdEngine.from_snapshot(data, FakeClock(clock.now()))
    assert restored.to_snapshot() == engine.to_snapshot()


def test_a_consultation_journaled_before_ringing_existed_replays_connected() -> None:
    """Journals written before consultations could ring have ``consult`` without
    ``ringing``: a rebuild replays them as they ran then, connected at once (the service
    fills ``ringing=False``), where a new call would ring."""
    start = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    clock = EngineClock(start)
    engine = AcdEngine(clock)
    queue = QueueConfig("sales", members=(Member("a"), Member("b")))
    steps: list[tuple[str, dict[str, object]]] = [
        ("add_queue", {"config": queue_config_to_dict(queue)}),
        *[("add_agent", {"config": agent_config_to_dict(AgentConfig(a))}) for a in ("a", "b")],
        ("login", {"agent_id": "a"}),
        ("login", {"agent_id": "b"}),
        ("create_interaction", {"interaction_id": "i", "queue_id": "sales", "channel": "voice"}),
        ("accept", {"interaction_id": "i", "agent_id": "a"}),
        ("consult", {"interaction_id": "i", "agent_id": "a", "target_agent_id": "b"}),
    ]
    _replay(
        engine,
        clock,
        [
            AcdCommand(tenant_id="t", seq=n, time=start, name=name, args=args)
            for n, (name, args) in enumerate(steps, 1)
        ],
    )
    assert engine.agent_snapshot("b").state == "busy"  # connected, not ringing
    assert engine.interaction_snapshot("i").participants == {"a": "owner", "b": "consult"}
