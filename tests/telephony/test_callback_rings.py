"""Who rings for a queued callback: the voice bridge's decisions, with fakes.

Several nodes hear every offer; exactly one rings (the claim). A ring-all offer rings every
offered agent's phones; the first to answer gets the call, the others stop at once. The
routing service and the B2BUA are recorders here; the real paths are in
test_callback_calls.py (ring-all, SIP phones) and test_callback_nodes.py (two nodes, Redis).
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from sparklecomm.core.errors import Conflict
from sparklecomm.core.events import Event
from sparklecomm.telephony.voice_queue import VoiceQueue

pytestmark = pytest.mark.timeout(20)
TENANT = "t1"
NUMBER = "+4930555"


class Routing:
    """The routing service's part the bridge uses; records the commands."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self.refuse: set[str] = set()

    def execute(self, tenant_id: str, name: str, **args: Any) -> list[Event]:
        self.commands.append((name, args))
        if name in self.refuse:
            raise Conflict("the offer is gone")
        return []

    def add_listener(self, listener: Any) -> None:
        pass

    def remove_listener(self, listener: Any) -> None:
        pass


class Phones:
    """The B2BUA side: records rings and stops."""

    def __init__(self, *, flow_to: set[str] | None = None) -> None:
        self.rings: list[tuple[str, str]] = []  # (ring_id, agent)
        self.stops: list[tuple[str, str]] = []  # (ring_id, reason)
        self.flow_to = flow_to or set()

    def ring_callback(
        self, ring_id: str, tenant_id: str, interaction_id: str, agent_id: str, phone: str
    ) -> None:
        assert phone == NUMBER
        self.rings.append((ring_id, agent_id))

    def stop_callback(self, ring_id: str, reason: str) -> None:
        self.stops.append((ring_id, reason))

    async def holds_phone_flow(self, tenant_id: str, agent_id: str) -> bool:
        return agent_id in self.flow_to

    # AgentPhones (unused by callbacks)
    def ring_agent(self, call_id: str, agent_id: str) -> None: ...
    def stop_ringing(self, call_id: str, agent_id: str, reason: str) -> None: ...
    def connect(self, call_id: str, agent_id: str) -> None: ...
    def drop_agent(self, call_id: str, agent_id: str, reason: str) -> None: ...
    def end_call(self, call_id: str, reason: str) -> None: ...
    def consult_agent(self, call_id: str, agent_id: str) -> None: ...
    def consult_connect(self, call_id: str, agent_id: str) -> None: ...
    def consult_transfer(self, call_id: str, agent_id: str) -> None: ...
    def drop_consult(self, call_id: str, agent_id: str, reason: str) -> None: ...
    def reconnect(self, call_id: str) -> None: ...


class Claims:
    """A shared ``SET NX``: the first claim of a key wins."""

    def __init__(self) -> None:
        self.won: dict[str, str] = {}
        self.asked: list[tuple[str, str]] = []
        self.broken = False

    def for_node(self, node: str) -> Any:
        async def claim(key: str, ttl_seconds: float) -> bool:
            assert ttl_seconds > 60
            self.asked.append((node, key))
            if self.broken:
                raise ConnectionError("redis is away")
            return self.won.setdefault(key, node) == node

        return claim


class Node:
    def __init__(self, name: str, claims: Claims | None, **phones: Any) -> None:
        self.name = name
        self.routing = Routing()
        self.phones = Phones(**phones)
        claim = claims.for_node(name) if claims is not None else None
        self.queue = VoiceQueue(self.routing, self.phones, claim=claim, claim_head_start=0.05)


_ids = itertools.count(1)


def event(kind: str, **payload: Any) -> Event:
    return Event(
        next(_ids),
        TENANT,
        kind,
        datetime(2026, 1, 1, tzinfo=UTC),
        {"interaction_id": "cb-1", **payload},
    )


def offered(agent: str, *, attempt: int = 1, ring_all: bool = False) -> Event:
    return event(
        "interaction.offered",
        agent_id=agent,
        channel="callback",
        attempt=attempt,
        ring_all=ring_all,
    )


def requested() -> Event:
    return event("interaction.callback_requested", phone=NUMBER)


async def settle(seconds: float = 0.15) -> None:
    await asyncio.sleep(seconds)


async def test_of_two_nodes_hearing_one_offer_exactly_one_rings() -> None:
    claims = Claims()
    a, b = Node("a", claims), Node("b", claims)
    setup, offer = requested(), offered("ana")
    a.queue.handle([setup, offer])  # a's engine made the offer
    await asyncio.sleep(0.01)
    b.queue.handle([setup, offer], remote=True)  # b heard it through the bus
    await settle()
    rings = a.phones.rings + b.phones.rings
    assert [agent for _, agent in rings] == ["ana"]
    assert a.phones.rings  # the node that made the offer heard it first
    assert {node for node, _ in claims.asked} == {"a", "b"}
    assert a.queue.callbacks() != [] and b.queue.callbacks() == []  # b forgot it


async def test_the_node_holding_the_phones_connection_wins_over_the_offering_node() -> None:
    claims = Claims()
    a, b = Node("a", claims), Node("b", claims, flow_to={"ana"})
    setup, offer = requested(), offered("ana")
    a.queue.handle([setup, offer])
    await asyncio.sleep(0.01)
    b.queue.handle([setup, offer], remote=True)  # later, but its phone is connected here
    await settle()
    assert a.phones.rings == [] and [agent for _, agent in b.phones.rings] == ["ana"]


async def test_without_an_answer_from_the_claim_only_the_offering_node_rings() -> None:
    claims = Claims()
    claims.broken = True
    a, b = Node("a", claims), Node("b", claims)
    setup, offer = requested(), offered("ana")
    a.queue.handle([setup, offer])
    b.queue.handle([setup, offer], remote=True)
    await settle()
    assert [agent for _, agent in a.phones.rings] == ["ana"] and b.phones.rings == []


async def test_one_node_without_a_claim_rings_alone() -> None:
    node = Node("solo", None)
    node.queue.handle([requested(), offered("ana")])
    await settle(0.02)  # no head start without a claim
    assert [agent for _, agent in node.phones.rings] == ["ana"]


async def test_when_the_ringing_node_is_gone_the_re_offer_rings_from_another() -> None:
    """Node a won the claim and died: nobody answers, the engine's offer timeout ends the
    offer and re-offers it (a new offer event: a new claim, which b wins)."""
    claims = Claims()
    a, b = Node("a", claims), Node("b", claims)
    setup, first = requested(), offered("ana")
    a.queue.handle([setup, first])
    await asyncio.sleep(0.01)
    b.queue.handle([setup, first], remote=True)
    await settle()
    assert a.phones.rings and not b.phones.rings
    a.queue.close()  # a is gone; b's engine times the offer out and offers again
    timed_out = event("interaction.offer_timed_out", agent_id="ana", reason="timeout")
    b.queue.handle([timed_out, offered("ana", attempt=2)])
    await settle()
    assert [agent for _, agent in b.phones.rings] == ["ana"]
    assert len(claims.won) == 2


async def test_a_ring_all_offer_rings_every_agent_and_the_first_answer_takes_it() -> None:
    node = Node("solo", None)
    node.queue.handle([requested(), offered("ana", ring_all=True), offered("bob", ring_all=True)])
    await settle(0.02)
    rings = dict((agent, ring) for ring, agent in node.phones.rings)
    assert sorted(rings) == ["ana", "bob"] and rings["ana"] != rings["bob"]
    # bob's phone answers first: accept for bob; the engine withdraws ana's offer.
    assert await node.queue.callback_agent_answered(rings["bob"]) is True
    assert node.routing.commands[-1] == ("accept", {"interaction_id": "cb-1", "agent_id": "bob"})
    node.queue.handle(
        [
            event("interaction.offer_withdrawn", agent_id="ana", reason="accepted_elsewhere"),
            event("interaction.accepted", agent_id="bob"),
        ]
    )
    assert node.phones.stops == [(rings["ana"], "accepted_elsewhere")]
    assert [c.agent_id for c in node.queue.callbacks()] == ["bob"]


async def test_ring_all_the_others_stop_on_the_accept_alone() -> None:
    """The withdrawal may come later (another node's bus): the accept stops them too."""
    node = Node("solo", None)
    node.queue.handle(
        [
            requested(),
            offered("ana", ring_all=True),
            offered("bob", ring_all=True),
            offered("cem", ring_all=True),
        ]
    )
    await settle(0.02)
    rings = dict((agent, ring) for ring, agent in node.phones.rings)
    assert await node.queue.callback_agent_answered(rings["ana"])
    node.queue.handle([event("interaction.accepted", agent_id="ana")])
    assert sorted(node.phones.stops) == sorted(
        [(rings["bob"], "accepted_elsewhere"), (rings["cem"], "accepted_elsewhere")]
    )


async def test_ring_all_a_second_answer_is_refused_and_hung_up() -> None:
    node = Node("solo", None)
    node.queue.handle([requested(), offered("ana", ring_all=True), offered("bob", ring_all=True)])
    await settle(0.02)
    rings = dict((agent, ring) for ring, agent in node.phones.rings)
    assert await node.queue.callback_agent_answered(rings["ana"])
    node.routing.refuse.add("accept")  # bob answered at the same instant: too late
    assert await node.queue.callback_agent_answered(rings["bob"]) is False
    assert [c.agent_id for c in node.queue.callbacks()] == ["ana"]


async def test_ring_all_one_agent_refusing_leaves_the_others_ringing() -> None:
    node = Node("solo", None)
    node.queue.handle([requested(), offered("ana", ring_all=True), offered("bob", ring_all=True)])
    await settle(0.02)
    rings = dict((agent, ring) for ring, agent in node.phones.rings)
    await node.queue.callback_ended(rings["ana"], "agent_unavailable", 486)
    assert node.routing.commands == [
        ("reject", {"interaction_id": "cb-1", "agent_id": "ana", "reason": "busy"})
    ]
    node.queue.handle([event("interaction.rejected", agent_id="ana", reason="busy")])
    assert node.phones.stops == []
    assert [c.agent_id for c in node.queue.callbacks()] == ["bob"]


async def test_a_new_offer_ends_the_rings_of_the_previous_one() -> None:
    node = Node("solo", None)
    node.queue.handle([requested(), offered("ana", ring_all=True), offered("bob", ring_all=True)])
    await settle(0.02)
    old = dict((agent, ring) for ring, agent in node.phones.rings)
    # Both offers ended without a word reaching us; the engine offers again (attempt 2).
    node.queue.handle([offered("ana", attempt=2)])
    await settle(0.02)
    assert sorted(node.phones.stops) == sorted(
        [(old["ana"], "reoffered"), (old["bob"], "reoffered")]
    )
    assert [agent for _, agent in node.phones.rings] == ["ana", "bob", "ana"]
    # The old ring's call ending now changes nothing (no reject for the new offer).
    await node.queue.callback_ended(old["ana"], "agent_no_answer", 408)
    assert node.routing.commands == []
    assert len(node.queue.callbacks()) == 1


async def test_an_offer_older_than_what_was_handled_does_not_ring() -> None:
    node = Node("solo", None)
    setup, stale = requested(), offered("ana")
    newer = event("interaction.offer_timed_out", agent_id="ana", reason="timeout")
    node.queue.handle([setup, newer])
    node.queue.handle([stale], remote=True)  # another node's offer, heard after its end
    await settle(0.02)
    assert node.phones.rings == []
