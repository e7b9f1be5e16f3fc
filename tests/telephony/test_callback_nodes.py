"""A queued callback with two nodes: both run a SIP server and a voice bridge, share the
database (routing journal, registrations in SQL) and hear each other's routing events
through the real Redis bus, so both hear the offer; exactly one rings the agent's phone and
places the call, whichever node's engine made the offer.

The phones are the small SIP phones of test_calls on loopback sockets (every server and
phone only sends to loopback addresses); not in a loopback-only namespace, because the
nodes must reach the Redis server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import REDIS_URL, World, redis_nodes
from tests.telephony.sip_support import udp_loopback_config, wait_until
from tests.telephony.test_calls import PASSWORDS, REALM, TIMERS, FakeRelay, Phone
from tests.telephony.test_originate import PlanRouter

from sparklecomm.acd.service import AcdService
from sparklecomm.app import Services
from sparklecomm.core.clock import SystemClock
from sparklecomm.store.db import read_events
from sparklecomm.telephony import (
    InMemoryCredentialStore,
    SipServer,
)
from sparklecomm.telephony.agent_phones import SipAgentPhones
from sparklecomm.telephony.calls import Trunk
from sparklecomm.telephony.pbx.locations import SqlLocationStore
from sparklecomm.telephony.sip.transport import Peer
from sparklecomm.telephony.voice_queue import VoiceQueue

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="SPARKLECOMM_TEST_REDIS_URL is not set"),
    pytest.mark.timeout(60),
]
CUSTOMER = "+4930555"


@dataclass
class Node:
    name: str
    services: Services
    server: SipServer
    phones: SipAgentPhones
    queue: VoiceQueue

    @property
    def acd(self) -> AcdService:
        acd: AcdService = self.services.extra["acd"]
        return acd


@dataclass
class Cluster:
    world: World
    nodes: dict[str, Node] = field(default_factory=dict)
    carrier_port: int = 0

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        with self.world.services.db.read() as s:
            events = read_events(s, self.world.tenant_id, after=0, limit=10_000)
        return [(e.type, e.payload) for e in events if isinstance(e.payload, dict)]

    async def wait_for(self, kind: str, limit: float = 10.0) -> dict[str, Any]:
        for _ in range(int(limit / 0.05)):
            for found, payload in self.events():
                if found == kind and payload.get("interaction_id") == "cb-1":
                    return payload
            await asyncio.sleep(0.05)
        raise AssertionError(f"{kind} not seen: {[k for k, _ in self.events()]}")

    def active_calls(self) -> dict[str, int]:
        return {name: node.server.calls.active_calls for name, node in self.nodes.items()}


async def start_node(name: str, services: Services, cluster: Cluster) -> Node:
    """The SIP side of ``app.build_app``'s lifespan, on loopback: a SIP server whose
    registrations are the shared SQL table, and the voice bridge claiming through Redis."""
    world = cluster.world
    credentials = InMemoryCredentialStore()  # the same users on every node
    for user, password in PASSWORDS.items():
        credentials.add_user(user, password, REALM)

    def trunks(trunk_id: str) -> Trunk | None:
        port = cluster.carrier_port
        return Trunk(host="127.0.0.1", port=port, id="carrier") if port else None

    async def tenant_of(extension: str) -> str | None:
        return world.tenant_id

    async def extensions(tenant_id: str, agent_id: str) -> list[str]:
        return ["1001"] if agent_id == world.agent_id else []

    server = SipServer(
        udp_loopback_config(TIMERS),
        clock=SystemClock(),
        credentials=credentials,
        locations=SqlLocationStore(services.db),
        router=PlanRouter(),
        relay=FakeRelay(),
        tenant_of=tenant_of,
        trunks=trunks,
    )
    await services.bus.start()
    acd: AcdService = services.extra["acd"]
    acd.follow(services.bus)
    phones = SipAgentPhones(server.calls, extensions)
    claim = getattr(services.bus, "claim", None)
    assert claim is not None  # the Redis bus arbitrates
    queue = VoiceQueue(acd, phones, claim=claim)
    phones.attach(queue)
    await server.start()
    node = Node(name, services, server, phones, queue)
    cluster.nodes[name] = node
    return node


async def stop_node(node: Node) -> None:
    await node.phones.close()
    await node.server.stop()
    node.acd.unfollow()
    await node.services.bus.stop()
    node.services.db.dispose()


@pytest.fixture
async def cluster(database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    world, node_b = redis_nodes(database_url, tmp_path)
    cluster = Cluster(world)
    acd: AcdService = world.services.extra["acd"]
    t = world.tenant_id
    acd.execute(t, "add_agent", config={"id": world.agent_id, "capacity": {"callback": 1}})
    acd.execute(
        t,
        "add_queue",
        config={
            "id": "support",
            "offer_timeout_seconds": 15,
            "channels": ["voice", "callback"],
            "callback": {"enabled": True, "max_attempts": 3, "retry_delay_seconds": 60},
            "members": [{"agent_id": world.agent_id, "penalty": 0}],
        },
    )
    phones: list[Phone] = []
    try:
        await start_node("a", world.services, cluster)
        await start_node("b", node_b, cluster)
        cluster.nodes["b"].acd.routing(t)  # B's engine is built (as after any request)
        yield cluster
    finally:
        for phone in phones:
            await phone.stop()
        for node in cluster.nodes.values():
            await stop_node(node)


@pytest.mark.parametrize("offering", ["a", "b"])
async def test_exactly_one_node_rings_the_agent_and_places_the_callback(
    cluster: Cluster, offering: str
) -> None:
    world, t = cluster.world, cluster.world.tenant_id
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    agent = Phone("1001", a.server.port)  # registered through node A (the SQL table)
    customer = Phone("1004", a.server.port)  # the carrier behind the trunk
    for phone in (agent, customer):
        await phone.start()
    try:
        await agent.register()
        cluster.carrier_port = customer.port
        a.acd.execute(
            t, "create_interaction", interaction_id="cb-1", queue_id="support", channel="voice"
        )
        a.acd.execute(t, "request_callback", interaction_id="cb-1", phone=CUSTOMER)
        # The agent goes available through node `offering`: its engine makes the offer,
        # the other node hears it through Redis.
        cluster.nodes[offering].acd.execute(t, "login", agent_id=world.agent_id)
        offered = await cluster.wait_for("interaction.offered")
        assert offered["channel"] == "callback" and offered["agent_id"] == world.agent_id
        accepted = await cluster.wait_for("interaction.accepted")
        assert accepted["agent_id"] == world.agent_id
        await wait_until(lambda: customer.dialog is not None)
        await asyncio.wait_for(customer.acks.get(), 5)
        await asyncio.sleep(1.0)  # time for a second node to ring, if it were to
        # One INVITE reached the agent's phone, one the customer: one node placed the call.
        assert len(agent.invites) == 1, agent.seen
        assert len(customer.invites) == 1, customer.seen
        calls = cluster.active_calls()
        assert sorted(calls.values()) == [0, 1], calls
        placing = a if calls["a"] else b
        assert [c.interaction_id for c in placing.queue.callbacks()] == ["cb-1"]
        other = b if placing is a else a
        assert other.queue.callbacks() == []
        # The customer hangs up (towards the node that placed the call): completed once,
        # the agent's phone released.
        customer.server = Peer("UDP", "127.0.0.1", placing.server.port)
        await customer.hangup()
        await agent.next_request("BYE")
        completed = await cluster.wait_for("interaction.completed")
        assert completed["agent_id"] == world.agent_id
        kinds = [k for k, p in cluster.events() if p.get("interaction_id") == "cb-1"]
        assert kinds.count("interaction.accepted") == 1
        assert "callback.attempt_failed" not in kinds and "interaction.rejected" not in kinds
        await wait_until(lambda: cluster.active_calls() == {"a": 0, "b": 0})
    finally:
        for phone in (agent, customer):
            await phone.stop()
