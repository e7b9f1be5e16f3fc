"""A queued callback with real SIP peers: the routing engine offers the callback to the
agent, the agent's phone (SIPp UAS, extension 1001) rings and answers, the engine accepts,
and the customer behind the carrier trunk (SIPp UAS on 127.0.0.2) is dialled and answers;
completing on the desk hangs both up. A busy customer is a failed attempt the engine
retries. Dial plan, extensions and trunk from SQL; a loopback-only network namespace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
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
    uas,
)

from sparklecomm.acd.service import AcdService
from sparklecomm.store.db import read_events
from sparklecomm.telephony.voice_queue import VoiceQueue

setup = test_originate_sipp.setup  # the fixture: SIP server, PBX in SQL, relay, phones
pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
CUSTOMER = "+4930555"


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
