"""A queued callback with real SIP peers: the routing engine offers the callback to the
agent, the agent's phone (SIPp UAS, extension 1001) rings and answers, the engine accepts,
and the customer behind the carrier trunk (SIPp UAS on 127.0.0.2) is dialled and answers;
completing on the desk hangs both up. A busy customer is a failed attempt the engine
retries. A ring-all queue rings both agents' phones (SIPp UAS 1001 and 1002); the one who
answers gets the customer, the other phone is cancelled at once. Dial plan, extensions and
trunk from SQL; a loopback-only network namespace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from tests.telephony import test_originate_sipp
from tests.telephony.test_originate_sipp import (
    AGENT_RTP,
    CUSTOMER_RTP,
    TRUNK_HOST,
    TRUNK_PORT,
    Setup,
    register,
    sipp,
    uas,
)

from sparklecomm.acd.service import AcdService
from sparklecomm.audit.store import Actor
from sparklecomm.store.db import read_events
from sparklecomm.telephony.extensions import ExtensionService
from sparklecomm.telephony.voice_queue import VoiceQueue

setup = test_originate_sipp.setup  # the fixture: SIP server, PBX in SQL, relay, phones
pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
CUSTOMER = "+4930555"
SECOND_PASSWORD = "pw-1002-secret"


@pytest.fixture
async def center(setup: Setup) -> AsyncIterator[Setup]:
    world = setup.world
    acd: AcdService = world.services.extra["acd"]
    t = world.tenant_id
    acd.execute(t, "add_agent", config={"id": world.agent_id, "capacity": {"callback": 1}})
    acd.execute(
        t,
        "add_queue",
        config={
            "id": "support",
            "offer_timeout_seconds": 20,
            "channels": ["voice", "callback"],
            "callback": {"enabled": True, "max_attempts": 3, "retry_delay_seconds": 60},
            "members": [{"agent_id": world.agent_id, "penalty": 0}],
        },
    )
    setup.phones.attach(VoiceQueue(acd, setup.phones))
    yield setup


def engine_events(setup: Setup) -> list[tuple[str, dict[str, Any]]]:
    with setup.world.services.db.read() as s:
        events = read_events(s, setup.world.tenant_id, after=0, limit=10_000)
    return [(e.type, e.payload) for e in events if isinstance(e.payload, dict)]


async def wait_for(setup: Setup, kind: str, limit: float = 15.0) -> dict[str, Any]:
    for _ in range(int(limit / 0.05)):
        for found, payload in engine_events(setup):
            if found == kind and payload.get("interaction_id") == "cb-1":
                return payload
        await asyncio.sleep(0.05)
    raise AssertionError(f"{kind} not seen: {[k for k, _ in engine_events(setup)]}")


def request_callback(setup: Setup) -> None:
    acd: AcdService = setup.world.services.extra["acd"]
    t = setup.world.tenant_id
    acd.execute(t, "create_interaction", interaction_id="cb-1", queue_id="support", channel="voice")
    acd.execute(t, "request_callback", interaction_id="cb-1", phone=CUSTOMER)
    acd.execute(t, "login", agent_id=setup.world.agent_id)


async def test_a_callback_rings_the_agent_then_reaches_the_customer(center: Setup) -> None:
    agent = uas(center, "agent", "call_uas.xml", ip="127.0.0.1", port=5080, rtp=AGENT_RTP)
    customer = uas(
        center, "customer", "call_uas.xml", ip=TRUNK_HOST, port=TRUNK_PORT, rtp=CUSTOMER_RTP
    )
    await asyncio.sleep(0.3)
    await register(center, 5070, 5080)
    request_callback(center)
    offered = await wait_for(center, "interaction.offered")
    assert offered["channel"] == "callback"
    await wait_for(center, "interaction.accepted")
    await center.wait_event("call.answered")
    (call,) = center.server.calls.calls.values()
    assert call.media is not None and call.media.b.remote == (TRUNK_HOST, CUSTOMER_RTP)
    # The agent completes on the desk: both phones are hung up.
    acd: AcdService = center.world.services.extra["acd"]
    acd.execute(
        center.world.tenant_id,
        "complete",
        interaction_id="cb-1",
        agent_id=center.world.agent_id,
    )
    rc, out = await agent
    assert rc == 0, out[-3000:]
    rc, out = await customer
    assert rc == 0, out[-3000:]
    assert (
        f"INVITE sip:{CUSTOMER}@{TRUNK_HOST}:{TRUNK_PORT}"
        in (center.tmp / "customer.log").read_text()
    )
    ended = await center.wait_event("call.ended")
    assert ended["originated"] is True
    kinds = [k for k, p in engine_events(center) if p.get("interaction_id") == "cb-1"]
    assert "callback.attempt_failed" not in kinds and "interaction.completed" in kinds


async def test_an_agent_transferring_a_callback_with_the_phone_is_free_at_once(
    center: Setup,
) -> None:
    """Connected to the customer, the agent puts them through to a colleague's desk (1002)
    with the phone's transfer key: the callback is transferred out (completed, the agent
    free) and customer and desk talk on."""
    extensions: ExtensionService = center.world.services.extra["extensions"]
    t, agent_id = center.world.tenant_id, center.world.agent_id
    extensions.do_create(t, Actor.cli(), number="1002", password=SECOND_PASSWORD)
    agent = uas(
        center, "agent", "call_uas_refer.xml", ip="127.0.0.1", port=5080, rtp=AGENT_RTP,
        keys=("-key", "refer_to", "1002"),
    )  # fmt: skip
    customer = uas(
        center, "customer", "call_uas.xml", ip=TRUNK_HOST, port=TRUNK_PORT, rtp=CUSTOMER_RTP
    )
    desk = uas(center, "desk", "call_uas.xml", ip="127.0.0.1", port=5082, rtp=31016)
    await asyncio.sleep(0.3)
    await register(center, 5070, 5080)
    await register_as(center, "1002", SECOND_PASSWORD, 5071, 5082)
    request_callback(center)
    transferred = await wait_for(center, "interaction.transferred")
    assert (transferred["kind"], transferred["to_number"]) == ("external", "1002")
    await wait_for(center, "interaction.completed")
    acd: AcdService = center.world.services.extra["acd"]
    # free at once (this queue has no wrap-up), while customer and desk talk on
    assert acd.read(t, lambda e: e.agent_snapshot(agent_id).state) == "available"
    rc, out = await agent
    assert rc == 0, out[-3000:]
    (call,) = center.server.calls.calls.values()  # customer and desk still talk
    center.server.calls.end_call(call, "test_over")
    for task in (customer, desk):
        rc, out = await task
        assert rc == 0, out[-3000:]
    kinds = [k for k, p in engine_events(center) if p.get("interaction_id") == "cb-1"]
    assert "callback.attempt_failed" not in kinds and kinds.count("interaction.completed") == 1


async def test_a_busy_customer_is_a_failed_attempt(center: Setup) -> None:
    agent = uas(center, "agent", "call_uas.xml", ip="127.0.0.1", port=5080, rtp=AGENT_RTP)
    customer = uas(
        center, "customer", "originate_uas_busy.xml", ip=TRUNK_HOST, port=TRUNK_PORT, rtp=31014
    )
    await asyncio.sleep(0.3)
    await register(center, 5070, 5080)
    request_callback(center)
    failed = await wait_for(center, "callback.attempt_failed")
    assert failed["reason"] == "busy" and failed["retry_at"] is not None
    rc, out = await customer
    assert rc == 0, out[-3000:]
    rc, out = await agent
    assert rc == 0, out[-3000:]


async def test_ring_all_rings_both_agents_and_the_one_who_answers_gets_the_customer(
    center: Setup,
) -> None:
    world = center.world
    acd: AcdService = world.services.extra["acd"]
    extensions: ExtensionService = world.services.extra["extensions"]
    t, second_agent = world.tenant_id, world.supervisor_id
    extensions.do_create(
        t, Actor.cli(), number="1002", password=SECOND_PASSWORD, user_id=second_agent
    )
    acd.execute(t, "add_agent", config={"id": second_agent, "capacity": {"callback": 1}})
    acd.execute(
        t,
        "add_queue",
        config={
            "id": "sales",
            "strategy": "ring-all",
            "offer_timeout_seconds": 20,
            "channels": ["voice", "callback"],
            "callback": {"enabled": True, "max_attempts": 3, "retry_delay_seconds": 60},
            "members": [
                {"agent_id": world.agent_id, "penalty": 0},
                {"agent_id": second_agent, "penalty": 0},
            ],
        },
    )
    # The first agent's phone rings until it is cancelled; the second one answers.
    first = uas(center, "first", "call_uas_cancel.xml", ip="127.0.0.1", port=5080, rtp=AGENT_RTP)
    second = uas(center, "second", "call_uas.xml", ip="127.0.0.1", port=5082, rtp=31016)
    customer = uas(
        center, "customer", "call_uas.xml", ip=TRUNK_HOST, port=TRUNK_PORT, rtp=CUSTOMER_RTP
    )
    await asyncio.sleep(0.3)
    await register(center, 5070, 5080)
    await register_as(center, "1002", SECOND_PASSWORD, 5071, 5082)
    # A callback due in 30 s, when both agents are available: offered to both at once.
    acd.execute(t, "create_interaction", interaction_id="cb-1", queue_id="sales", channel="voice")
    at = (world.clock.now() + timedelta(seconds=30)).isoformat()
    acd.execute(t, "request_callback", interaction_id="cb-1", phone=CUSTOMER, at=at)
    acd.execute(t, "login", agent_id=world.agent_id)
    acd.execute(t, "login", agent_id=second_agent)
    world.clock.advance(31)
    await asyncio.to_thread(acd.tick_due, t)
    accepted = await wait_for(center, "interaction.accepted")
    assert accepted["agent_id"] == second_agent
    withdrawn = await wait_for(center, "interaction.offer_withdrawn")
    assert withdrawn["agent_id"] == world.agent_id and withdrawn["reason"] == "accepted_elsewhere"
    rc, out = await first  # it rang, then got CANCEL at once
    assert rc == 0, out[-3000:]
    await center.wait_event("call.answered")
    offered = [p for k, p in engine_events(center) if k == "interaction.offered"]
    assert sorted(p["agent_id"] for p in offered) == sorted([world.agent_id, second_agent])
    acd.execute(t, "complete", interaction_id="cb-1", agent_id=second_agent)
    rc, out = await second
    assert rc == 0, out[-3000:]
    rc, out = await customer
    assert rc == 0, out[-3000:]
    log = (center.tmp / "customer.log").read_text()
    assert log.count(f"INVITE sip:{CUSTOMER}@{TRUNK_HOST}:{TRUNK_PORT}") == 1


async def register_as(setup: Setup, user: str, password: str, port: int, contact_port: int) -> None:
    rc, out = await sipp(
        setup.target,
        "-sf", str(test_originate_sipp.SIPP / "call_register.xml"),
        "-s", user, "-au", user, "-ap", password,
        "-key", "contact_port", str(contact_port),
        "-p", str(port),
        "-m", "1",
        "-timeout", "10s",
    )  # fmt: skip
    assert rc == 0, out[-2000:]
