"""Consultation and warm transfer on voice calls: the bridge's decisions.

The real routing service (SQLite journal, fake clock) and the recorder phones of
``test_voice_queue``; the SIP and media side is tested end to end in
``test_voice_consult_sipp``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from tests.conftest import World
from tests.telephony.test_voice_queue import (
    OTHER,
    center,
    connected_call,
    interaction_events,
    login,
    payloads,
    settle,
)

from sparklecomm.acd.service import AcdService
from sparklecomm.core.errors import DomainError
from sparklecomm.store.db import read_events
from sparklecomm.telephony.voice_queue import Consult, VoiceCall


def setup(world: World) -> AcdService:
    acd = center(world, world.agent_id, OTHER)
    login(world, acd, world.agent_id, OTHER)
    return acd


async def run(acd: AcdService, world: World, name: str, **args: Any) -> None:
    await asyncio.to_thread(acd.execute, world.tenant_id, name, **args)
    await settle()


async def consult(acd: AcdService, world: World, call: VoiceCall) -> None:
    await run(
        acd,
        world,
        "consult",
        interaction_id=call.interaction_id,
        agent_id=world.agent_id,
        target_agent_id=OTHER,
    )


def participants(acd: AcdService, world: World, interaction_id: str) -> dict[str, str]:
    """The interaction's agents and their roles (none once it ended), from its snapshot."""

    def read(engine: Any) -> dict[str, str]:
        try:
            return dict(engine.interaction_snapshot(interaction_id).participants)
        except DomainError:
            return {}

    result: dict[str, str] = acd.read(world.tenant_id, read)
    return result


def owner(acd: AcdService, world: World, interaction_id: str) -> str | None:
    def read(engine: Any) -> str | None:
        try:
            return engine.interaction_snapshot(interaction_id).agent_id  # type: ignore[no-any-return]
        except DomainError:
            return None

    result: str | None = acd.read(world.tenant_id, read)
    return result


def agent_state(acd: AcdService, world: World, agent_id: str) -> str:
    state: str = acd.read(world.tenant_id, lambda e: e.agent_snapshot(agent_id).state)
    return state


def test_consult_rings_b_then_the_warm_transfer_hands_the_caller_over(
    sqlite_world: World,
) -> None:
    world = sqlite_world
    acd = setup(world)

    async def scenario() -> None:
        vq, phones, call = await connected_call(world, acd)
        await consult(acd, world, call)
        assert phones.take() == [("consult", "c1", OTHER)]
        assert call.consult is Consult.RINGING
        assert agent_state(acd, world, OTHER) == "reserved"  # ringing is not talking
        world.clock.advance(7)
        assert await vq.consult_answered("c1", OTHER) is True
        assert phones.take() == [("consult_connect", "c1", OTHER)]
        assert call.consult is Consult.TALKING
        assert agent_state(acd, world, OTHER) == "busy"
        (connected,) = payloads(world, call.interaction_id, "interaction.consult_connected")
        assert (connected["consulted_agent_id"], connected["ring_seconds"]) == (OTHER, 7.0)
        world.clock.advance(30)
        await run(
            acd,
            world,
            "transfer",
            interaction_id=call.interaction_id,
            agent_id=world.agent_id,
            to_agent_id=OTHER,
        )
        assert phones.take() == [("consult_transfer", "c1", OTHER)]
        assert (call.agent_id, call.consult_agent, call.consult) == (OTHER, None, None)
        (transferred,) = payloads(world, call.interaction_id, "interaction.transferred")
        assert transferred["kind"] == "consult"
        # The new owner hanging up completes the interaction for them.
        world.clock.advance(20)
        await vq.agent_hung_up("c1", OTHER)
        await settle()
        assert phones.take() == [("end", "c1", "agent_hung_up")]
        (completed,) = payloads(world, call.interaction_id, "interaction.completed")
        assert (completed["agent_id"], completed["talk_seconds"]) == (OTHER, 20.0)
        kinds = [
            k
            for k in interaction_events(world, call.interaction_id)
            if k.startswith(("interaction.consult", "interaction.transferred"))
        ]
        assert kinds == [
            "interaction.consult_started",
            "interaction.consult_connected",
            "interaction.transferred",
        ]

    asyncio.run(scenario())


def test_busy_consulted_phone_leaves_and_reconnects_the_caller(sqlite_world: World) -> None:
    world = sqlite_world
    acd = setup(world)

    async def scenario() -> None:
        vq, phones, call = await connected_call(world, acd)
        await consult(acd, world, call)
        phones.take()
        world.clock.advance(3)
        await vq.consult_failed("c1", OTHER, 486)
        await settle()
        assert phones.take() == [("drop_consult", "c1", OTHER, "busy"), ("reconnect", "c1")]
        (left,) = payloads(world, call.interaction_id, "interaction.participant_left")
        assert (left["agent_id"], left["reason"]) == (OTHER, "busy")  # reports say why
        assert (left["seconds"], left["ring_seconds"], left["connected"]) == (0.0, 3.0, False)
        assert payloads(world, call.interaction_id, "interaction.consult_connected") == []
        assert agent_state(acd, world, OTHER) == "available"
        assert participants(acd, world, call.interaction_id) == {world.agent_id: "owner"}
        assert call.consult_agent is None and call.agent_id == world.agent_id
        # The participant_left event that our leave caused does nothing more.
        assert phones.take() == []

    asyncio.run(scenario())


def test_unanswered_consultation_times_out(sqlite_world: World) -> None:
    world = sqlite_world
    acd = setup(world)

    async def scenario() -> None:
        vq, phones, call = await connected_call(world, acd, consult_timeout=0.05)
        await consult(acd, world, call)
        assert phones.take() == [("consult", "c1", OTHER)]
        await asyncio.sleep(0.2)
        await settle()
        assert phones.take() == [
            ("drop_consult", "c1", OTHER, "no_answer"),
            ("reconnect", "c1"),
        ]
        assert participants(acd, world, call.interaction_id) == {world.agent_id: "owner"}
        # A late answer of the consulted phone is hung up.
        assert await vq.consult_answered("c1", OTHER) is False
        assert phones.take() == [("drop_consult", "c1", OTHER, "consult_gone")]

    asyncio.run(scenario())


def test_consult_timeout_defaults_to_the_queues_offer_timeout(sqlite_world: World) -> None:
    world = sqlite_world
    acd = setup(world)

    async def scenario() -> None:
        _vq, _phones, call = await connected_call(world, acd)
        loop = asyncio.get_running_loop()
        await consult(acd, world, call)
        for _ in range(20):  # the timer is armed after a read in a worker thread
            if call.consult_timer is not None:
                break
            await asyncio.sleep(0.01)
        assert call.consult_timer is not None
        assert 14 < call.consult_timer.when() - loop.time() <= 15  # the queue says 15 s

    asyncio.run(scenario())


def test_owner_cancelling_on_the_desktop_ends_the_consultation(sqlite_world: World) -> None:
    world = sqlite_world
    acd = setup(world)

    async def scenario() -> None:
        vq, phones, call = await connected_call(world, acd)
        await consult(acd, world, call)
        assert await vq.consult_answered("c1", OTHER) is True
        phones.take()
        await run(acd, world, "leave", interaction_id=call.interaction_id, agent_id=OTHER)
        assert phones.take() == [("drop_consult", "c1", OTHER, "left"), ("reconnect", "c1")]
        assert call.consult is None and call.agent_id == world.agent_id

    asyncio.run(scenario())


def test_consulted_agent_hanging_up_leaves(sqlite_world: World) -> None:
    world = sqlite_world
    acd = setup(world)

    async def scenario() -> None:
        vq, phones, call = await connected_call(world, acd)
        await consult(acd, world, call)
        assert await vq.consult_answered("c1", OTHER) is True
        phones.take()
        await vq.consult_hung_up("c1", OTHER)
        await settle()
        assert phones.take() == [("drop_consult", "c1", OTHER, "hung_up"), ("reconnect", "c1")]
        assert participants(acd, world, call.interaction_id) == {world.agent_id: "owner"}

    asyncio.run(scenario())


def test_owner_hanging_up_while_consulting_hands_the_call_to_b(sqlite_world: World) -> None:
    world = sqlite_world
    acd = setup(world)

    async def scenario() -> None:
        vq, phones, call = await connected_call(world, acd)
        await consult(acd, world, call)
        assert await vq.consult_answered("c1", OTHER) is True
        phones.take()
        await vq.agent_hung_up("c1", world.agent_id)
        await settle()
        assert phones.take() == [("consult_transfer", "c1", OTHER)]
        assert owner(acd, world, call.interaction_id) == OTHER
        assert call.agent_id == OTHER and call.consult is None
        assert payloads(world, call.interaction_id, "interaction.completed") == []

    asyncio.run(scenario())


def test_owner_hanging_up_while_b_rings_connects_b_on_answer(sqlite_world: World) -> None:
    world = sqlite_world
    acd = setup(world)

    async def scenario() -> None:
        vq, phones, call = await connected_call(world, acd)
        await consult(acd, world, call)
        phones.take()
        world.clock.advance(2)
        await vq.agent_hung_up("c1", world.agent_id)
        await settle()
        assert phones.take() == [("drop", "c1", world.agent_id, "transferred")]
        assert owner(acd, world, call.interaction_id) == OTHER
        assert agent_state(acd, world, OTHER) == "reserved"  # owns the call, still ringing
        world.clock.advance(5)
        assert await vq.consult_answered("c1", OTHER) is True
        assert phones.take() == [("consult_transfer", "c1", OTHER)]
        (connected,) = payloads(world, call.interaction_id, "interaction.consult_connected")
        assert (connected["role"], connected["ring_seconds"]) == ("owner", 7.0)
        # The new owner's talk starts when its phone answered, not at the hand-over.
        world.clock.advance(40)
        await vq.agent_hung_up("c1", OTHER)
        await settle()
        (completed,) = payloads(world, call.interaction_id, "interaction.completed")
        assert (completed["agent_id"], completed["talk_seconds"]) == (OTHER, 40.0)

    asyncio.run(scenario())


def test_owner_gone_and_b_unreachable_ends_the_call(sqlite_world: World) -> None:
    world = sqlite_world
    acd = setup(world)

    async def scenario() -> None:
        vq, phones, call = await connected_call(world, acd)
        await consult(acd, world, call)
        await vq.agent_hung_up("c1", world.agent_id)
        await settle()
        phones.take()
        await vq.consult_failed("c1", OTHER, 480)
        await settle()
        assert phones.take() == [
            ("drop_consult", "c1", OTHER, "unreachable"),
            ("end", "c1", "consult_unreachable"),
        ]
        (completed,) = payloads(world, call.interaction_id, "interaction.completed")
        assert completed["agent_id"] == OTHER
        assert vq.calls() == []

    asyncio.run(scenario())


def test_caller_hanging_up_during_consultation_completes(sqlite_world: World) -> None:
    world = sqlite_world
    acd = setup(world)

    async def scenario() -> None:
        vq, phones, call = await connected_call(world, acd)
        await consult(acd, world, call)
        assert await vq.consult_answered("c1", OTHER) is True
        phones.take()
        await vq.caller_hung_up("c1")
        await settle()
        assert phones.take() == [("drop", "c1", world.agent_id, "caller_hung_up")]
        (left,) = payloads(world, call.interaction_id, "interaction.participant_left")
        assert (left["agent_id"], left["reason"]) == (OTHER, "completed")
        assert call.consult_timer is None
        assert vq.calls() == []

    asyncio.run(scenario())


def test_conference_is_not_done_on_voice(sqlite_world: World) -> None:
    world = sqlite_world
    acd = setup(world)

    async def scenario() -> None:
        vq, phones, call = await connected_call(world, acd)
        await consult(acd, world, call)
        assert await vq.consult_answered("c1", OTHER) is True
        phones.take()
        await run(
            acd,
            world,
            "conference",
            interaction_id=call.interaction_id,
            agent_id=world.agent_id,
            target_agent_id=OTHER,
        )
        await settle()
        assert phones.take() == [
            ("drop_consult", "c1", OTHER, "conference_not_supported"),
            ("reconnect", "c1"),
        ]
        # The engine's bookkeeping says what the phones do: OTHER left, the owner stays.
        for _ in range(50):  # the leave runs in a worker thread
            if participants(acd, world, call.interaction_id) == {world.agent_id: "owner"}:
                break
            await asyncio.sleep(0.01)
        assert participants(acd, world, call.interaction_id) == {world.agent_id: "owner"}
        assert call.agent_id == world.agent_id

    asyncio.run(scenario())


def test_a_second_consultation_at_once_is_refused(sqlite_world: World) -> None:
    world = sqlite_world
    third = "agent-c"
    acd = center(world, world.agent_id, OTHER, third)
    login(world, acd, world.agent_id, OTHER, third)

    async def scenario() -> None:
        _vq, phones, call = await connected_call(world, acd)
        await consult(acd, world, call)
        await run(
            acd,
            world,
            "consult",
            interaction_id=call.interaction_id,
            agent_id=world.agent_id,
            target_agent_id=third,
        )
        await settle()
        assert phones.take() == [("consult", "c1", OTHER)]
        expected = {world.agent_id: "owner", OTHER: "consult"}
        for _ in range(50):  # the leave runs in a worker thread
            if participants(acd, world, call.interaction_id) == expected:
                break
            await asyncio.sleep(0.01)
        assert participants(acd, world, call.interaction_id) == expected
        assert call.consult_agent == OTHER

    asyncio.run(scenario())


def test_a_late_consult_event_is_dropped(sqlite_world: World) -> None:
    """An old ``consult_started`` (another node's, late) after the transfer completed does
    not ring the consulted agent again."""
    world = sqlite_world
    acd = setup(world)

    async def scenario() -> None:
        vq, phones, call = await connected_call(world, acd)
        await consult(acd, world, call)
        assert await vq.consult_answered("c1", OTHER) is True
        await run(
            acd,
            world,
            "transfer",
            interaction_id=call.interaction_id,
            agent_id=world.agent_id,
            to_agent_id=OTHER,
        )
        phones.take()
        with world.services.db.read() as s:
            events = read_events(s, world.tenant_id, after=0, limit=1000)
        started = next(e for e in events if e.type == "interaction.consult_started")
        assert call.last_event_id > started.id
        vq.handle([started])
        assert phones.take() == []
        vq.handle([replace(started, id=call.last_event_id + 1)])  # a new one still acts
        assert phones.take() == [("consult", "c1", OTHER)]

    asyncio.run(scenario())


def test_an_answer_after_the_consultation_ended_elsewhere_is_hung_up(
    sqlite_world: World,
) -> None:
    """The engine ended the consultation (e.g. on another node) before this bridge heard of
    it, and then the consulted phone answers: its leg is dropped, caller and owner talk."""
    world = sqlite_world
    acd = setup(world)

    async def scenario() -> None:
        vq, phones, call = await connected_call(world, acd)
        await consult(acd, world, call)
        phones.take()
        acd.remove_listener(vq._listener)  # the bridge does not hear the end
        await run(
            acd,
            world,
            "end_consult",
            interaction_id=call.interaction_id,
            agent_id=world.agent_id,
            target_agent_id=OTHER,
        )
        acd.add_listener(vq._listener)
        assert call.consult is Consult.RINGING
        assert await vq.consult_answered("c1", OTHER) is False
        await settle()
        assert phones.take() == [
            ("drop_consult", "c1", OTHER, "consult_gone"),
            ("reconnect", "c1"),
        ]
        assert call.consult is None and call.agent_id == world.agent_id
        assert participants(acd, world, call.interaction_id) == {world.agent_id: "owner"}
        assert payloads(world, call.interaction_id, "interaction.consult_connected") == []

    asyncio.run(scenario())


def test_owner_transferring_out_while_consulting_ends_the_consultation(
    sqlite_world: World,
) -> None:
    """The owner puts the caller through to a number (the phone's transfer key) while B is
    consulted: B's leg is dropped and B leaves, then the interaction is transferred out;
    neither agent stays busy and the call itself is left to the B2BUA (not hung up)."""
    world = sqlite_world
    acd = setup(world)

    async def scenario() -> None:
        vq, phones, call = await connected_call(world, acd)
        await consult(acd, world, call)
        assert await vq.consult_answered("c1", OTHER) is True
        phones.take()
        await vq.agent_transferred("c1", world.agent_id, "2003")
        await settle()
        assert phones.take() == [("drop_consult", "c1", OTHER, "transferred_out")]
        left = payloads(world, call.interaction_id, "interaction.participant_left")
        assert [(p["agent_id"], p["reason"]) for p in left] == [(OTHER, "consult_ended")]
        (out,) = payloads(world, call.interaction_id, "interaction.transferred")
        assert (out["kind"], out["to_number"]) == ("external", "2003")
        assert agent_state(acd, world, OTHER) == "available"
        assert agent_state(acd, world, world.agent_id) == "wrap_up"
        assert vq.calls() == []

    asyncio.run(scenario())
