"""Queued callbacks reach the customer: the engine offers a ``callback`` to an agent with a
phone, the agent's phone rings, answering accepts it and the platform dials the customer's
number through the dial plan. The routing service is the real one (SQLite journal, fake
clock); the phones are the small SIP phones of test_calls on real loopback sockets, in a
loopback-only namespace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.conftest import World
from tests.telephony.sip_support import (
    StreamPeer,
    loopback_namespace,
    udp_loopback_config,
    wait_until,
)
from tests.telephony.test_calls import PASSWORDS, REALM, TIMERS, FakeRelay, Phone
from tests.telephony.test_originate import PlanRouter

from sparklecomm.acd.service import AcdService
from sparklecomm.core.clock import SystemClock
from sparklecomm.store.db import read_events
from sparklecomm.telephony import (
    InMemoryCredentialStore,
    InMemoryLocationStore,
    SipServer,
    SipServerConfig,
    loopback_only,
)
from sparklecomm.telephony.agent_phones import SipAgentPhones
from sparklecomm.telephony.calls import Trunk, parse_peer
from sparklecomm.telephony.sip.location import Binding
from sparklecomm.telephony.sip.uri import SipUri
from sparklecomm.telephony.voice_queue import VoiceQueue

pytestmark = pytest.mark.timeout(60)
CUSTOMER = "+4930555"
NO_PHONE_AGENT = "agent-desk"
SECOND_AGENT = "agent-2"  # extension 1002; with the first agent in the ring-all queue


@dataclass
class Center:
    world: World
    acd: AcdService
    server: SipServer
    queue: VoiceQueue
    phones: list[Phone]
    carrier_port: int = 0

    async def phone(self, user: str, *, register: bool = True) -> Phone:
        phone = Phone(user, self.server.port)
        await phone.start()
        self.phones.append(phone)
        if register:
            await phone.register()
        return phone

    def run(self, name: str, **args: Any) -> Any:
        return self.acd.execute(self.world.tenant_id, name, **args)

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        with self.world.services.db.read() as s:
            events = read_events(s, self.world.tenant_id, after=0, limit=10_000)
        return [(e.type, e.payload) for e in events if isinstance(e.payload, dict)]

    def types(self) -> list[str]:
        return [kind for kind, p in self.events() if p.get("interaction_id") == "cb-1"]

    async def wait_for(self, kind: str, limit: float = 8.0) -> dict[str, Any]:
        for _ in range(int(limit / 0.05)):
            for found, payload in self.events():
                if found == kind and payload.get("interaction_id") == "cb-1":
                    return payload
            await asyncio.sleep(0.05)
        raise AssertionError(f"{kind} not seen: {self.types()}")

    def callback(
        self, phone: str = CUSTOMER, queue_id: str = "support", at: datetime | None = None
    ) -> None:
        """A waiting call asks to be called back (nobody is logged in yet), at once or
        ``at`` a time."""
        self.run("create_interaction", interaction_id="cb-1", queue_id=queue_id, channel="voice")
        when = at.isoformat() if at is not None else None
        self.run("request_callback", interaction_id="cb-1", phone=phone, at=when)


@pytest.fixture
async def center(sqlite_world: World) -> AsyncIterator[Center]:
    world = sqlite_world
    acd: AcdService = world.services.extra["acd"]
    t = world.tenant_id
    for agent in (world.agent_id, NO_PHONE_AGENT, SECOND_AGENT):
        acd.execute(t, "add_agent", config={"id": agent, "capacity": {"voice": 1, "callback": 1}})
    acd.execute(
        t,
        "add_queue",
        config={
            "id": "support",
            "strategy": "linear",
            "offer_timeout_seconds": 15,
            "wrapup_seconds": 30,
            "channels": ["voice", "callback"],
            "callback": {"enabled": True, "max_attempts": 3, "retry_delay_seconds": 60},
            "members": [
                {"agent_id": world.agent_id, "penalty": 0},
                {"agent_id": NO_PHONE_AGENT, "penalty": 1},
            ],
        },
    )
    acd.execute(
        t,
        "add_queue",
        config={
            "id": "sales",
            "strategy": "ring-all",
            "offer_timeout_seconds": 15,
            "channels": ["voice", "callback"],
            "callback": {"enabled": True, "max_attempts": 3, "retry_delay_seconds": 60},
            "members": [
                {"agent_id": world.agent_id, "penalty": 0},
                {"agent_id": SECOND_AGENT, "penalty": 0},
            ],
        },
    )
    phones_of = {world.agent_id: ["1001"], SECOND_AGENT: ["1002"]}

    async def extensions(tenant_id: str, agent_id: str) -> list[str]:
        return phones_of.get(agent_id, [])

    with loopback_namespace():
        credentials = InMemoryCredentialStore()
        for user, password in PASSWORDS.items():
            credentials.add_user(user, password, REALM)
        holder: dict[str, Center] = {}

        def trunks(trunk_id: str) -> Trunk | None:
            port = holder["center"].carrier_port
            return Trunk(host="127.0.0.1", port=port, id="carrier") if port else None

        async def tenant_of(extension: str) -> str | None:
            return t

        server = SipServer(
            udp_loopback_config(TIMERS),
            clock=SystemClock(),
            credentials=credentials,
            locations=InMemoryLocationStore(),
            router=PlanRouter(),
            relay=FakeRelay(),
            tenant_of=tenant_of,
            trunks=trunks,
        )
        phones = SipAgentPhones(server.calls, extensions)
        queue = VoiceQueue(acd, phones)
        phones.attach(queue)
        await server.start()
        c = Center(world, acd, server, queue, [])
        holder["center"] = c
        try:
            yield c
        finally:
            for phone in c.phones:
                await phone.stop()
            await phones.close()
            await server.stop()


async def carrier(center: Center) -> Phone:
    phone = await center.phone("1004", register=False)
    center.carrier_port = phone.port
    return phone


async def test_the_agent_answers_and_the_customer_is_dialled_then_completed(
    center: Center,
) -> None:
    world = center.world
    agent = await center.phone("1001")
    customer = await carrier(center)
    center.callback()
    center.run("login", agent_id=world.agent_id)
    offered = await center.wait_for("interaction.offered")
    assert offered["channel"] == "callback" and offered["agent_id"] == world.agent_id
    accepted = await center.wait_for("interaction.accepted")
    assert accepted["agent_id"] == world.agent_id
    await wait_until(lambda: customer.dialog is not None)
    # The agent's phone saw the customer's number; the carrier got the trunk's INVITE.
    assert agent.incoming is not None and customer.incoming is not None
    shown = agent.incoming.request.from_.uri
    assert isinstance(shown, SipUri) and shown.user == CUSTOMER
    assert str(customer.incoming.request.uri).startswith(f"sip:{CUSTOMER}@127.0.0.1")
    await asyncio.wait_for(customer.acks.get(), 5)
    assert [c.interaction_id for c in center.queue.callbacks()] == ["cb-1"]
    # The customer hangs up: the interaction completes, the agent's phone is released.
    await customer.hangup()
    await agent.next_request("BYE")
    completed = await center.wait_for("interaction.completed")
    assert completed["agent_id"] == world.agent_id
    assert "callback.attempt_failed" not in center.types()
    assert center.queue.callbacks() == [] and center.server.calls.active_calls == 0


async def test_a_busy_customer_is_a_failed_attempt_that_the_engine_retries(
    center: Center,
) -> None:
    world = center.world
    agent = await center.phone("1001")
    customer = await carrier(center)
    customer.answer = "busy"
    center.callback()
    center.run("login", agent_id=world.agent_id)
    failed = await center.wait_for("callback.attempt_failed")
    assert failed["reason"] == "busy" and failed["retry_at"] is not None
    assert failed["agent_id"] == world.agent_id
    bye = await agent.next_request("BYE")
    assert "cause=486" in (bye.request.headers.get("Reason") or "")
    assert "interaction.accepted" in center.types()
    assert "interaction.completed" not in center.types()
    await wait_until(lambda: center.server.calls.active_calls == 0)
    assert center.queue.callbacks() == []


async def test_the_agent_hanging_up_before_the_customer_answers_fails_the_attempt(
    center: Center,
) -> None:
    world = center.world
    agent = await center.phone("1001")
    customer = await carrier(center)
    customer.answer = "ring"
    center.callback()
    center.run("login", agent_id=world.agent_id)
    await wait_until(lambda: customer.incoming is not None)
    await agent.hangup()
    failed = await center.wait_for("callback.attempt_failed")
    assert failed["reason"] == "agent_hangup"
    await wait_until(lambda: "CANCEL" in customer.seen)


async def test_the_agent_not_answering_is_stopped_by_the_offer_timeout(center: Center) -> None:
    world = center.world
    agent = await center.phone("1001")
    customer = await carrier(center)
    agent.answer = "ring"
    center.callback()
    center.run("login", agent_id=world.agent_id)
    await center.wait_for("interaction.offered")
    await wait_until(lambda: agent.incoming is not None)
    await asyncio.sleep(0.2)  # the phone rings (180)
    world.clock.advance(16)
    await asyncio.to_thread(center.acd.tick_due, world.tenant_id)
    await center.wait_for("interaction.offer_timed_out")
    await wait_until(lambda: "CANCEL" in agent.seen)
    assert customer.incoming is None and customer.seen == []
    await wait_until(lambda: center.server.calls.active_calls == 0)


async def test_a_busy_agent_phone_rejects_the_offer(center: Center) -> None:
    world = center.world
    agent = await center.phone("1001")
    agent.answer = "busy"
    center.callback()
    center.run("login", agent_id=world.agent_id)
    rejected = await center.wait_for("interaction.rejected")
    assert rejected["reason"] == "busy"


async def test_an_agent_without_phone_keeps_the_offer_on_the_desk(center: Center) -> None:
    customer = await carrier(center)
    center.callback()
    center.run("login", agent_id=NO_PHONE_AGENT)
    offered = await center.wait_for("interaction.offered")
    assert offered["agent_id"] == NO_PHONE_AGENT
    await asyncio.sleep(0.3)
    assert center.server.calls.active_calls == 0 and customer.seen == []
    assert "interaction.rejected" not in center.types()
    # Accepted on the desk, as today: the agent dials by hand.
    center.run("accept", interaction_id="cb-1", agent_id=NO_PHONE_AGENT)
    await asyncio.sleep(0.1)
    assert customer.seen == []


async def test_a_number_without_dial_rule_is_never_dialled(center: Center) -> None:
    world = center.world
    agent = await center.phone("1001")
    center.callback(phone="+1900555")  # no dial rule for it
    center.run("login", agent_id=world.agent_id)
    await center.wait_for("interaction.offered")
    await asyncio.sleep(0.3)
    assert agent.seen == [] and center.server.calls.active_calls == 0  # desk only


async def test_the_agent_hanging_up_a_connected_callback_completes_it(center: Center) -> None:
    world = center.world
    agent = await center.phone("1001")
    customer = await carrier(center)
    center.callback()
    center.run("login", agent_id=world.agent_id)
    await wait_until(lambda: customer.dialog is not None)
    await asyncio.wait_for(customer.acks.get(), 5)
    await asyncio.wait_for(agent.acks.get(), 5)
    await agent.hangup()
    await customer.next_request("BYE")
    completed = await center.wait_for("interaction.completed")
    assert completed["agent_id"] == world.agent_id
    assert "callback.attempt_failed" not in center.types()


async def test_completing_on_the_desk_hangs_up_both_phones(center: Center) -> None:
    world = center.world
    agent = await center.phone("1001")
    customer = await carrier(center)
    center.callback()
    center.run("login", agent_id=world.agent_id)
    await wait_until(lambda: customer.dialog is not None)
    await asyncio.wait_for(customer.acks.get(), 5)
    center.run("complete", interaction_id="cb-1", agent_id=world.agent_id)
    await agent.next_request("BYE")
    await customer.next_request("BYE")
    await wait_until(lambda: center.server.calls.active_calls == 0)


async def test_ring_all_rings_every_offered_agent_and_the_first_answer_takes_it(
    center: Center,
) -> None:
    world = center.world
    first = await center.phone("1001")
    second = await center.phone("1002")
    customer = await carrier(center)
    first.answer = "ring"  # the first agent's phone rings on
    second.answer_delay = 0.3  # ... the second agent answers after a moment
    # Called back in 30 s, when both agents are available: the engine offers it to both.
    center.callback(queue_id="sales", at=world.clock.now() + timedelta(seconds=30))
    center.run("login", agent_id=world.agent_id)
    center.run("login", agent_id=SECOND_AGENT)
    world.clock.advance(31)
    await asyncio.to_thread(center.acd.tick_due, world.tenant_id)
    await wait_until(lambda: first.incoming is not None and second.incoming is not None)
    offered = [p for k, p in center.events() if k == "interaction.offered"]
    assert sorted(p["agent_id"] for p in offered) == sorted([world.agent_id, SECOND_AGENT])
    assert all(p["ring_all"] and p["channel"] == "callback" for p in offered)
    for phone in (first, second):  # each phone shows the customer's number
        assert phone.incoming is not None
        shown = phone.incoming.request.from_.uri
        assert isinstance(shown, SipUri) and shown.user == CUSTOMER
    accepted = await center.wait_for("interaction.accepted")
    assert accepted["agent_id"] == SECOND_AGENT
    withdrawn = await center.wait_for("interaction.offer_withdrawn")
    assert withdrawn["agent_id"] == world.agent_id and withdrawn["reason"] == "accepted_elsewhere"
    # The first agent's phone stops at once; the customer is dialled once, for the second.
    await wait_until(lambda: "CANCEL" in first.seen)
    await wait_until(lambda: customer.dialog is not None)
    await asyncio.wait_for(customer.acks.get(), 5)
    assert len(customer.invites) == 1 and first.dialog is None
    assert [c.agent_id for c in center.queue.callbacks()] == [SECOND_AGENT]
    await customer.hangup()
    await second.next_request("BYE")
    completed = await center.wait_for("interaction.completed")
    assert completed["agent_id"] == SECOND_AGENT
    await wait_until(lambda: center.server.calls.active_calls == 0)
    assert center.queue.callbacks() == []


async def test_a_node_knows_when_it_holds_a_phones_connection() -> None:
    """What makes the node that holds an agent's phone connection (TCP/TLS flow) claim a
    callback first: a binding whose REGISTER came over a connection open on this server."""
    locations = InMemoryLocationStore()
    with loopback_namespace():
        server = SipServer(
            SipServerConfig(
                host="127.0.0.1",
                port=0,
                transports=("UDP", "TCP"),
                timers=TIMERS,
                allowed_target=loopback_only,
            ),
            clock=SystemClock(),
            credentials=InMemoryCredentialStore(),
            locations=locations,
        )
        await server.start()
        phones = SipAgentPhones(server.calls, _extensions)
        stream = await StreamPeer.connect(server.port_for("TCP"))
        try:
            expires = datetime.now(UTC) + timedelta(minutes=10)

            def binding(user: str, source: str) -> Binding:
                aor = f"sip:{user}@127.0.0.1"
                return Binding(aor, f"{aor}:5062", expires, "c", 1, source=source)

            flow = f"TCP:127.0.0.1:{stream.local_port}"
            peer = parse_peer(flow)
            assert peer is not None
            await locations.replace("sip:1001@127.0.0.1", [binding("1001", flow)])
            await locations.replace("sip:1002@127.0.0.1", [binding("1002", "UDP:127.0.0.1:5062")])
            await locations.replace("sip:1003@127.0.0.1", [binding("1003", "TCP:127.0.0.1:9")])
            await wait_until(lambda: server.connected(peer))
            assert await phones.holds_phone_flow("t1", "agent-tcp") is True
            assert await phones.holds_phone_flow("t1", "agent-udp") is False
            assert await phones.holds_phone_flow("t1", "agent-elsewhere") is False
            assert await phones.holds_phone_flow("t1", "agent-without-phone") is False
            await stream.close()  # the phone's connection goes away
            await wait_until(lambda: not server.connected(peer))
            assert await phones.holds_phone_flow("t1", "agent-tcp") is False
        finally:
            await stream.close()
            await phones.close()
            await server.stop()


async def _extensions(tenant_id: str, agent_id: str) -> list[str]:
    return {"agent-tcp": ["1001"], "agent-udp": ["1002"], "agent-elsewhere": ["1003"]}.get(
        agent_id, []
    )
