"""The voice bridge against the real routing service (SQLite journal, fake clock).

The phones are a recorder here (this tests the bridge's decisions); SIPp drives the whole
path — caller, B2BUA, engine, agent phone — in the B2BUA's end-to-end tests.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from typing import Any

import pytest
from tests.conftest import World

from sparklecomm.acd.persistence import queue_config_to_dict
from sparklecomm.acd.service import AcdService
from sparklecomm.core.errors import NotFound
from sparklecomm.store.db import read_events
from sparklecomm.telephony.pbx.routes import ToQueue
from sparklecomm.telephony.voice_queue import VoiceCall, VoiceQueue

OTHER = "agent-b"


class Phones:
    """Records what the bridge asks of the B2BUA."""

    def __init__(self) -> None:
        self.actions: list[tuple[str, ...]] = []

    def ring_agent(self, call_id: str, agent_id: str) -> None:
        self.actions.append(("ring", call_id, agent_id))

    def stop_ringing(self, call_id: str, agent_id: str, reason: str) -> None:
        self.actions.append(("stop", call_id, agent_id, reason))

    def connect(self, call_id: str, agent_id: str) -> None:
        self.actions.append(("connect", call_id, agent_id))

    def drop_agent(self, call_id: str, agent_id: str, reason: str) -> None:
        self.actions.append(("drop", call_id, agent_id, reason))

    def end_call(self, call_id: str, reason: str) -> None:
        self.actions.append(("end", call_id, reason))

    def divert(self, call_id: str, target: str, reason: str) -> None:
        self.actions.append(("divert", call_id, target, reason))

    def consult_agent(self, call_id: str, agent_id: str) -> None:
        self.actions.append(("consult", call_id, agent_id))

    def consult_connect(self, call_id: str, agent_id: str) -> None:
        self.actions.append(("consult_connect", call_id, agent_id))

    def consult_transfer(self, call_id: str, agent_id: str) -> None:
        self.actions.append(("consult_transfer", call_id, agent_id))

    def drop_consult(self, call_id: str, agent_id: str, reason: str) -> None:
        self.actions.append(("drop_consult", call_id, agent_id, reason))

    def reconnect(self, call_id: str) -> None:
        self.actions.append(("reconnect", call_id))

    def take(self) -> list[tuple[str, ...]]:
        out, self.actions = self.actions, []
        return out


def center(world: World, *agents: str) -> AcdService:
    acd: AcdService = world.services.extra["acd"]
    t = world.tenant_id
    for agent in agents:
        acd.execute(t, "add_agent", config={"id": agent, "capacity": {"voice": 1}})
    acd.execute(
        t,
        "add_queue",
        config={
            "id": "support",
            "strategy": "linear",
            "offer_timeout_seconds": 15,
            "wrapup_seconds": 30,
            "channels": ["voice"],
            "members": [{"agent_id": a, "penalty": i} for i, a in enumerate(agents)],
        },
    )
    return acd


def login(world: World, acd: AcdService, *agents: str) -> None:
    for agent in agents:
        acd.execute(world.tenant_id, "login", agent_id=agent)


def route(world: World) -> ToQueue:
    return ToQueue(world.tenant_id, "support", {"dnis": "+4930123456"})


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def bridge(acd: AcdService, **options: Any) -> tuple[VoiceQueue, Phones]:
    counter = itertools.count(1)
    phones = Phones()
    return VoiceQueue(acd, phones, ids=lambda: str(next(counter)), **options), phones


async def connected_call(
    world: World, acd: AcdService, **options: Any
) -> tuple[VoiceQueue, Phones, VoiceCall]:
    """Call ``c1`` offered to and answered by the world's agent; the phones' log emptied."""
    vq, phones = bridge(acd, **options)
    call = await vq.enqueue("c1", route(world), caller="100")
    await settle()
    assert await vq.agent_answered("c1", world.agent_id) is True
    phones.take()
    return vq, phones, call


def interaction_events(world: World, interaction_id: str) -> list[str]:
    with world.services.db.read() as s:
        events = read_events(s, world.tenant_id, after=0, limit=1000)
    return [
        e.type
        for e in events
        if isinstance(e.payload, dict) and e.payload.get("interaction_id") == interaction_id
    ]


def test_call_is_offered_answered_and_completed(sqlite_world: World) -> None:
    world = sqlite_world
    acd = center(world, world.agent_id)
    login(world, acd, world.agent_id)

    async def scenario() -> None:
        vq, phones = bridge(acd)
        call = await vq.enqueue("c1", route(world), caller="+15551234", caller_name="Li Wei")
        await settle()
        assert phones.take() == [("ring", "c1", world.agent_id)]
        assert await vq.agent_answered("c1", world.agent_id) is True
        assert phones.take() == [("connect", "c1", world.agent_id)]
        await vq.agent_hung_up("c1", world.agent_id)
        await settle()
        assert phones.take() == [("end", "c1", "agent_hung_up")]
        assert vq.calls() == []
        snap = acd.read(world.tenant_id, lambda e: e.agent_snapshot(world.agent_id))
        assert snap.state == "wrap_up"
        (created,) = payloads(world, call.interaction_id, "interaction.created")
        assert created["channel"] == "voice"
        assert created["attributes"] == {
            "ani": "+15551234",
            "dnis": "+4930123456",
            "call_id": "c1",
            "caller_name": "Li Wei",
        }

    asyncio.run(scenario())


def payloads(world: World, interaction_id: str, kind: str) -> list[Any]:
    with world.services.db.read() as s:
        events = read_events(s, world.tenant_id, after=0, limit=1000)
    return [
        e.payload
        for e in events
        if e.type == kind
        and isinstance(e.payload, dict)
        and e.payload.get("interaction_id") == interaction_id
    ]


def test_no_answer_reoffers_to_the_next_agent(sqlite_world: World) -> None:
    world = sqlite_world
    acd = center(world, world.agent_id, OTHER)
    login(world, acd, world.agent_id, OTHER)

    async def scenario() -> None:
        vq, phones = bridge(acd)
        await vq.enqueue("c1", route(world), caller="+15551234")
        await settle()
        assert phones.take() == [("ring", "c1", world.agent_id)]
        world.clock.advance(16)
        acd.tick_due(world.tenant_id)
        await settle()
        assert phones.take() == [
            ("stop", "c1", world.agent_id, "offer_timed_out"),
            ("ring", "c1", OTHER),
        ]
        assert await vq.agent_answered("c1", OTHER) is True
        # The first agent's phone answering late gets its leg dropped, not the call.
        assert await vq.agent_answered("c1", world.agent_id) is False
        assert phones.take() == [
            ("connect", "c1", OTHER),
            ("drop", "c1", world.agent_id, "offer_gone"),
        ]

    asyncio.run(scenario())


def test_busy_phone_rejects_and_the_engine_moves_on(sqlite_world: World) -> None:
    world = sqlite_world
    acd = center(world, world.agent_id, OTHER)
    login(world, acd, world.agent_id, OTHER)

    async def scenario() -> None:
        vq, phones = bridge(acd)
        call = await vq.enqueue("c1", route(world), caller="100")
        await settle()
        phones.take()
        await vq.agent_failed("c1", world.agent_id, 486)
        await settle()
        assert phones.take() == [("ring", "c1", OTHER)]
        rejected = payloads(world, call.interaction_id, "interaction.rejected")
        assert [p["reason"] for p in rejected] == ["busy"]

    asyncio.run(scenario())


def test_caller_hanging_up_while_ringing_abandons(sqlite_world: World) -> None:
    world = sqlite_world
    acd = center(world, world.agent_id)
    login(world, acd, world.agent_id)

    async def scenario() -> None:
        vq, phones = bridge(acd)
        call = await vq.enqueue("c1", route(world), caller="100")
        await settle()
        phones.take()
        await vq.caller_hung_up("c1")
        await settle()
        assert phones.take() == [("stop", "c1", world.agent_id, "abandoned")]
        assert "interaction.abandoned" in interaction_events(world, call.interaction_id)
        snap = acd.read(world.tenant_id, lambda e: e.agent_snapshot(world.agent_id))
        assert snap.state == "available"

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("on_max_wait", "expected"),
    [
        ({}, ("end", "c1", "diverted_max_wait")),
        (
            {"divert_to": "extension:1002"},
            ("divert", "c1", "extension:1002", "diverted_max_wait"),
        ),
    ],
)
def test_a_caller_the_queue_sends_away_is_released_or_diverted(
    sqlite_world: World, on_max_wait: dict[str, str], expected: tuple[str, ...]
) -> None:
    """Max wait reached with nobody to take the call: the engine diverts it, and the bridge
    ends the call (before, the caller heard ringback for ever), or hands it to the B2BUA
    to route on to the queue's ``divert_to``."""
    world = sqlite_world
    acd = center(world, world.agent_id)  # nobody logged in
    acd.execute(
        world.tenant_id,
        "update_queue",
        config={
            **acd.read(world.tenant_id, lambda e: queue_config_to_dict(e.queue_config("support"))),
            "max_wait_seconds": 30,
            "on_max_wait": on_max_wait,
        },
    )

    async def scenario() -> None:
        vq, phones = bridge(acd)
        call = await vq.enqueue("c1", route(world), caller="100")
        await settle()
        assert phones.take() == []
        world.clock.advance(31)
        acd.tick_due(world.tenant_id)
        await settle()
        assert phones.take() == [expected]
        assert "interaction.diverted" in interaction_events(world, call.interaction_id)
        assert vq.calls() == []

    asyncio.run(scenario())


def test_caller_waiting_with_no_agent_then_hanging_up(sqlite_world: World) -> None:
    world = sqlite_world
    acd = center(world, world.agent_id)  # nobody logged in

    async def scenario() -> None:
        vq, phones = bridge(acd)
        call = await vq.enqueue("c1", route(world), caller="100")
        await settle()
        assert phones.take() == []
        pos = acd.read(world.tenant_id, lambda e: e.position(call.interaction_id))
        assert pos == 1
        await vq.caller_hung_up("c1")
        assert interaction_events(world, call.interaction_id)[-1] == "interaction.abandoned"
        assert vq.calls() == []

    asyncio.run(scenario())


def test_caller_hanging_up_when_connected_completes_for_the_agent(sqlite_world: World) -> None:
    world = sqlite_world
    acd = center(world, world.agent_id)
    login(world, acd, world.agent_id)

    async def scenario() -> None:
        vq, phones, call = await connected_call(world, acd)
        await vq.caller_hung_up("c1")
        await settle()
        assert phones.take() == [("drop", "c1", world.agent_id, "caller_hung_up")]
        assert interaction_events(world, call.interaction_id)[-1] == "interaction.completed"

    asyncio.run(scenario())


def test_completing_on_the_desktop_hangs_up_the_call(sqlite_world: World) -> None:
    world = sqlite_world
    acd = center(world, world.agent_id)
    login(world, acd, world.agent_id)

    async def scenario() -> None:
        vq, phones, call = await connected_call(world, acd)
        # What the REST API does when the agent clicks "Complete" (from another thread).
        await asyncio.to_thread(
            acd.execute,
            world.tenant_id,
            "complete",
            interaction_id=call.interaction_id,
            agent_id=world.agent_id,
        )
        await settle()
        assert phones.take() == [("end", "c1", "completed")]
        assert vq.calls() == []

    asyncio.run(scenario())


def test_blind_transfer_drops_the_agent_and_rings_the_next(sqlite_world: World) -> None:
    world = sqlite_world
    acd = center(world, world.agent_id, OTHER)
    login(world, acd, world.agent_id, OTHER)

    async def scenario() -> None:
        vq, phones, call = await connected_call(world, acd)
        await asyncio.to_thread(
            acd.execute,
            world.tenant_id,
            "transfer",
            interaction_id=call.interaction_id,
            agent_id=world.agent_id,
            to_agent_id=OTHER,
        )
        await settle()
        assert phones.take() == [
            ("drop", "c1", world.agent_id, "transferred"),
            ("ring", "c1", OTHER),
        ]
        assert await vq.agent_answered("c1", OTHER) is True
        assert phones.take() == [("connect", "c1", OTHER)]

    asyncio.run(scenario())


def test_unknown_queue_refuses_the_call_and_leaves_nothing(sqlite_world: World) -> None:
    world = sqlite_world
    acd = center(world, world.agent_id)

    async def scenario() -> None:
        vq, _ = bridge(acd)
        with pytest.raises(NotFound):
            await vq.enqueue("c1", ToQueue(world.tenant_id, "nope"), caller="100")
        assert vq.calls() == []

    asyncio.run(scenario())


def test_other_interactions_are_ignored(sqlite_world: World) -> None:
    world = sqlite_world
    acd = center(world, world.agent_id)
    acd.execute(
        world.tenant_id,
        "update_queue",
        config={
            "id": "support",
            "channels": ["voice", "chat"],
            "members": [{"agent_id": world.agent_id}],
        },
    )
    login(world, acd, world.agent_id)

    async def scenario() -> None:
        vq, phones = bridge(acd)
        await vq.enqueue("c0", route(world), caller="100")  # sets the loop
        phones.take()
        await asyncio.to_thread(
            acd.execute,
            world.tenant_id,
            "create_interaction",
            interaction_id="chat-1",
            queue_id="support",
            channel="chat",
        )
        await settle()
        assert phones.take() == []

    asyncio.run(scenario())


def test_an_agents_phones_are_the_extensions_of_that_user(sqlite_world: World) -> None:
    from sparklecomm.audit.store import Actor
    from sparklecomm.telephony.extensions import ExtensionService

    world = sqlite_world
    extensions: ExtensionService = world.services.extra["extensions"]
    for number, user in (("2002", world.agent_id), ("2001", world.agent_id), ("2003", None)):
        extensions.do_create(
            world.tenant_id, Actor.cli(), number=number, password="phone-secret-1", user_id=user
        )

    async def lookup() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        return (
            await extensions.numbers_of_user(world.tenant_id, world.agent_id),
            await extensions.numbers_of_user(world.tenant_id, world.admin_id),
            await extensions.numbers_of_user("other-tenant", world.agent_id),
        )

    assert asyncio.run(lookup()) == (("2001", "2002"), (), ())


def test_a_closed_bridge_stops_following_the_engine(sqlite_world: World) -> None:
    world = sqlite_world
    acd = center(world, world.agent_id)
    login(world, acd, world.agent_id)

    async def scenario() -> None:
        vq, phones = bridge(acd)
        await vq.enqueue("c1", route(world), caller="100")
        await settle()
        assert phones.take() == [("ring", "c1", world.agent_id)]
        vq.close()
        await asyncio.to_thread(acd.execute, world.tenant_id, "abandon", interaction_id="call-1")
        await settle()
        assert phones.take() == []

    asyncio.run(scenario())


def test_an_event_older_than_one_already_handled_is_dropped(sqlite_world: World) -> None:
    """With several nodes, another node's events reach the bridge through the bus and may
    arrive after newer ones committed here: an offer that was already answered must not
    ring the phone again, while newer events still act."""
    world = sqlite_world
    acd = center(world, world.agent_id)
    login(world, acd, world.agent_id)

    async def scenario() -> None:
        vq, phones, call = await connected_call(world, acd)
        with world.services.db.read() as s:
            events = read_events(s, world.tenant_id, after=0, limit=1000)
        mine = [
            e
            for e in events
            if isinstance(e.payload, dict) and e.payload.get("interaction_id") == "call-1"
        ]
        offered = next(e for e in mine if e.type == "interaction.offered")
        assert call.last_event_id > offered.id
        vq.handle([offered])  # a late copy of the offer the agent already answered
        assert phones.take() == []
        completed = replace(
            offered,
            id=call.last_event_id + 1,
            type="interaction.completed",
            payload=mine[-1].payload,
        )
        vq.handle([completed])
        assert phones.take() == [("end", "c1", "completed")]

    asyncio.run(scenario())
