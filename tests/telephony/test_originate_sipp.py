"""Click-to-dial with real SIP peers: the agent's phone (SIPp UAS, registered as extension
1001) answers, then the customer behind a carrier trunk (SIPp UAS on 127.0.0.2) answers;
RTP sent from Python sockets crosses the relay both ways. The dial plan, extensions and
trunk come from SQL (PbxService, SQLite). A busy customer hangs up the agent's leg.
Everything runs in a loopback-only network namespace."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import World
from tests.telephony.sip_support import loopback_namespace, run_sipp

from sparklecomm.acd import AgentConfig, QueueConfig
from sparklecomm.acd.persistence import agent_config_to_dict, queue_config_to_dict
from sparklecomm.audit.store import Actor
from sparklecomm.core.clock import SystemClock
from sparklecomm.store.db import read_events
from sparklecomm.telephony import SipServer, SipServerConfig, loopback_only
from sparklecomm.telephony.agent_phones import SipAgentPhones
from sparklecomm.telephony.calls import OriginateRefused
from sparklecomm.telephony.extensions import ExtensionService
from sparklecomm.telephony.media.relay import MediaRelay, RelayConfig
from sparklecomm.telephony.media.rtp import build_rtp_packet
from sparklecomm.telephony.outbound import OutboundCalls
from sparklecomm.telephony.pbx.locations import SqlLocationStore
from sparklecomm.telephony.pbx.service import PbxService
from sparklecomm.telephony.sip.timers import TimerConfig

SIPP = Path(__file__).parent / "sipp"
PASSWORD = "pw-1001-secret"
TRUNK_HOST, TRUNK_PORT = "127.0.0.2", 5090
CALLER_ID = "+4930100"
AGENT_RTP, CUSTOMER_RTP = 31010, 31012
pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@dataclass
class Setup:
    world: World
    server: SipServer
    phones: SipAgentPhones
    events: list[tuple[str, dict[str, Any]]]
    tmp: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    async def wait_event(self, kind: str, limit: float = 10.0) -> dict[str, Any]:
        for _ in range(int(limit / 0.05)):
            for found, data in self.events:
                if found == kind:
                    return data
            await asyncio.sleep(0.05)
        raise AssertionError(f"{kind} not seen: {self.kinds()}")


@pytest.fixture
async def setup(sqlite_world: World, tmp_path: Path) -> AsyncIterator[Setup]:
    if shutil.which("sipp") is None:
        pytest.skip("sipp is not installed (Debian package sip-tester)")
    world = sqlite_world
    svc = world.services
    extensions: ExtensionService = svc.extra["extensions"]
    pbx: PbxService = svc.extra["pbx"]
    t, actor = world.tenant_id, Actor.cli()
    extensions.do_create(t, actor, number="1001", password=PASSWORD, user_id=world.agent_id)
    pbx.do_create_trunk(
        t,
        actor,
        {"name": "carrier", "host": TRUNK_HOST, "port": TRUNK_PORT, "caller_id": CALLER_ID},
    )
    pbx.do_create_dial_rule(t, actor, name="germany", prefix="+49", trunk="carrier")
    with loopback_namespace():
        events: list[tuple[str, dict[str, Any]]] = []

        async def emit(tenant: str, kind: str, data: dict[str, Any]) -> None:
            assert tenant == t
            events.append((kind, data))

        server = SipServer(
            SipServerConfig(
                host="127.0.0.1",
                port=0,
                transports=("UDP",),
                realm=svc.settings.sip_realm,
                digest_algorithms=("MD5", "SHA-256"),  # SIPp 3.6 knows only MD5
                timers=TimerConfig(t1=0.2, t2=1.0, t4=1.0),
                allowed_target=loopback_only,
            ),
            clock=SystemClock(),
            credentials=extensions,
            locations=SqlLocationStore(svc.db),
            relay=MediaRelay(
                RelayConfig(
                    host="127.0.0.1", port_min=31300, port_max=31399, allowed_target=loopback_only
                )
            ),
            emit=emit,
            **pbx.sip_options(),
        )
        phones = SipAgentPhones(server.calls, extensions.numbers_of_user)
        await server.start()
        try:
            yield Setup(world, server, phones, events, tmp_path)
        finally:
            await phones.close()
            await server.stop()


async def sipp(*args: str, ip: str = "127.0.0.1", limit: float = 40) -> tuple[int, str]:
    return await run_sipp(*args, "-i", ip, "-nostdin", "-timeout_error", limit=limit)


def uas(
    setup: Setup,
    name: str,
    scenario: str,
    *,
    ip: str,
    port: int,
    rtp: int,
    keys: tuple[str, ...] = (),
) -> Any:
    """A SIPp UAS whose SDP names ``rtp`` as its media port; what it received is logged.
    ``keys``: more ``-key NAME VALUE`` pairs for the scenario."""
    xml = (SIPP / scenario).read_text().replace("[media_port]", "[rtp]")
    path = setup.tmp / f"{name}.xml"
    path.write_text(xml)
    return asyncio.get_running_loop().create_task(
        sipp(
            "-sf", str(path),
            "-p", str(port),
            "-mp", str(rtp + 1000),
            "-key", "rtp", str(rtp),
            *keys,
            "-m", "1",
            "-timeout", "30s",
            "-trace_msg", "-message_file", str(setup.tmp / f"{name}.log"),
            ip=ip,
        )
    )  # fmt: skip


async def register(setup: Setup, port: int, contact_port: int, extension: str = "1001") -> None:
    rc, out = await sipp(
        setup.target,
        "-sf", str(SIPP / "call_register.xml"),
        "-s", extension, "-au", extension, "-ap", PASSWORD,
        "-key", "contact_port", str(contact_port),
        "-p", str(port),
        "-m", "1",
        "-timeout", "10s",
    )  # fmt: skip
    assert rc == 0, out[-2000:]


class Media:
    """A phone's RTP: a UDP socket on the port its SDP names."""

    def __init__(self, name: str, port: int, host: str = "127.0.0.1") -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.setblocking(False)
        self.seq = 0

    def send(self, relay_port: int, count: int = 5) -> None:
        for _ in range(count):
            self.seq += 1
            packet = build_rtp_packet(
                self.name.encode().ljust(160, b"\xff"),
                sequence=self.seq,
                timestamp=160 * self.seq,
                ssrc=len(self.name),
            )
            self.sock.sendto(packet, ("127.0.0.1", relay_port))

    def received(self) -> list[str]:
        out = []
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                return out
            out.append(data[12:].rstrip(b"\xff").decode())

    def close(self) -> None:
        self.sock.close()


async def test_click_to_dial_through_the_trunk_with_rtp_across_the_relay(setup: Setup) -> None:
    agent_media, customer_media = (
        Media("agent", AGENT_RTP),
        Media("customer", CUSTOMER_RTP, TRUNK_HOST),
    )
    try:
        agent = uas(setup, "agent", "call_uas.xml", ip="127.0.0.1", port=5080, rtp=AGENT_RTP)
        customer = uas(
            setup, "customer", "call_uas.xml", ip=TRUNK_HOST, port=TRUNK_PORT, rtp=CUSTOMER_RTP
        )
        await asyncio.sleep(0.3)
        await register(setup, 5070, 5080)
        call = await setup.phones.place_call(
            setup.world.tenant_id, setup.world.agent_id, "+4930555"
        )
        await setup.wait_event("call.answered")
        session = call.media
        assert session is not None
        assert session.a.remote == ("127.0.0.1", AGENT_RTP)
        assert session.b.remote == (TRUNK_HOST, CUSTOMER_RTP)
        # RTP crosses the relay both ways.
        for _ in range(3):
            agent_media.send(session.a.port)
            customer_media.send(session.b.port)
            await asyncio.sleep(0.2)
        assert "agent" in customer_media.received()
        assert "customer" in agent_media.received()
        setup.server.calls.end_call(call, "test_over")
        rc, out = await agent
        assert rc == 0, out[-3000:]
        rc, out = await customer
        assert rc == 0, out[-3000:]
    finally:
        agent_media.close()
        customer_media.close()
    # What each SIPp received: our offers at the relay's two legs, the trunk's caller ID.
    agent_log = (setup.tmp / "agent.log").read_text()
    customer_log = (setup.tmp / "customer.log").read_text()
    assert f"m=audio {session.a.port} RTP/AVP 0 8 101" in agent_log
    assert "sip:+4930555@" in agent_log  # the agent's phone shows whom it calls
    assert f"m=audio {session.b.port} RTP/AVP 0" in customer_log
    assert f"INVITE sip:+4930555@{TRUNK_HOST}:{TRUNK_PORT}" in customer_log
    assert f"<sip:{CALLER_ID}@" in customer_log
    started = await setup.wait_event("call.started")
    assert started["route"] == "outbound +4930555 via trunk carrier"
    assert started["originated"] is True and started["agent_id"] == setup.world.agent_id
    ended = await setup.wait_event("call.ended")
    assert ended["reason"] == "test_over" and ended["originated"] is True
    assert setup.kinds().index("call.agent_answered") < setup.kinds().index("call.answered")


async def test_a_busy_customer_hangs_up_the_agents_phone(setup: Setup) -> None:
    agent = uas(setup, "agent", "call_uas.xml", ip="127.0.0.1", port=5080, rtp=AGENT_RTP)
    customer = uas(
        setup, "customer", "originate_uas_busy.xml", ip=TRUNK_HOST, port=TRUNK_PORT, rtp=31014
    )
    await asyncio.sleep(0.3)
    await register(setup, 5070, 5080)
    await setup.phones.place_call(setup.world.tenant_id, setup.world.agent_id, "+4930555")
    rc, out = await customer
    assert rc == 0, out[-3000:]
    rc, out = await agent  # it got BYE after answering
    assert rc == 0, out[-3000:]
    ended = await setup.wait_event("call.ended")
    assert ended["reason"] == "busy" and ended["status"] == 486
    assert "call.answered" not in setup.kinds()
    assert "Reason: SIP ;cause=486" in (setup.tmp / "agent.log").read_text()


async def test_no_dial_rule_nothing_rings_nothing_is_dialled(setup: Setup) -> None:
    await register(setup, 5070, 5080)  # a phone is registered (nobody listens on 5080)
    with pytest.raises(OriginateRefused) as refused:
        await setup.phones.place_call(setup.world.tenant_id, setup.world.agent_id, "+1900555")
    assert refused.value.kind == "dial_plan" and refused.value.status == 403
    assert setup.events == [] and setup.server.calls.active_calls == 0


def routing_agent(setup: Setup) -> Any:
    """The test's user as a logged-in, available agent of queue ``sales`` (5 s wrap-up)."""
    acd = setup.world.services.extra["acd"]
    t, agent_id = setup.world.tenant_id, setup.world.agent_id
    acd.execute(t, "add_queue", config=queue_config_to_dict(QueueConfig("sales", wrapup_seconds=5)))
    acd.execute(t, "add_agent", config=agent_config_to_dict(AgentConfig(agent_id)))
    acd.execute(t, "join_queue", agent_id=agent_id, queue_id="sales")
    acd.execute(t, "login", agent_id=agent_id)
    return acd


async def wait_state(acd: Any, setup: Setup, state: str) -> None:
    t, agent_id = setup.world.tenant_id, setup.world.agent_id
    for _ in range(200):
        if acd.read(t, lambda e: e.agent_snapshot(agent_id).state) == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the agent never got to {state}")


async def answering_phones(setup: Setup) -> tuple[Any, Any]:
    """The agent's phone (registered as 1001) and the customer behind the trunk, both SIPp
    UAS that answer and then wait for the BYE."""
    agent = uas(setup, "agent", "call_uas.xml", ip="127.0.0.1", port=5080, rtp=AGENT_RTP)
    customer = uas(
        setup, "customer", "call_uas.xml", ip=TRUNK_HOST, port=TRUNK_PORT, rtp=CUSTOMER_RTP
    )
    await asyncio.sleep(0.3)
    await register(setup, 5070, 5080)
    return agent, customer


async def test_an_agents_call_is_an_outbound_interaction_completed_when_it_ends(
    setup: Setup,
) -> None:
    acd = routing_agent(setup)
    outbound = OutboundCalls(acd, setup.phones)
    t, agent_id = setup.world.tenant_id, setup.world.agent_id
    try:
        agent, customer = await answering_phones(setup)
        call, iid = await outbound.place(t, agent_id, "+4930555")
        assert iid is not None
        view = acd.read(t, lambda e: e.interaction_snapshot(iid))
        assert (view.direction, view.agent_id, view.queue_id) == ("outbound", agent_id, "sales")
        assert view.attributes == {"to": "+4930555", "call_id": call.id}
        assert acd.read(t, lambda e: e.agent_snapshot(agent_id).state) == "busy"
        await setup.wait_event("call.answered")
        setup.server.calls.end_call(call, "test_over")  # a side hangs up
        await wait_state(acd, setup, "wrap_up")
        assert (await agent)[0] == 0 and (await customer)[0] == 0
        assert outbound.calls() == []
    finally:
        await outbound.aclose()


async def test_completing_the_outbound_interaction_hangs_up_both_phones(setup: Setup) -> None:
    acd = routing_agent(setup)
    outbound = OutboundCalls(acd, setup.phones)
    t, agent_id = setup.world.tenant_id, setup.world.agent_id
    try:
        agent, customer = await answering_phones(setup)
        call, iid = await outbound.place(t, agent_id, "+4930555")
        await setup.wait_event("call.answered")
        acd.execute(t, "complete", interaction_id=iid, agent_id=agent_id)  # the desk
        ended = await setup.wait_event("call.ended")
        assert ended["reason"] == "completed"
        rc, out = await agent  # both SIPp phones got a BYE and ended cleanly
        assert rc == 0, out[-3000:]
        rc, out = await customer
        assert rc == 0, out[-3000:]
        assert call.ended
    finally:
        await outbound.aclose()


async def test_the_agents_phone_transferring_the_customer_frees_the_agent(setup: Setup) -> None:
    """The agent puts the customer through to a colleague's desk (1002) with the phone's own
    transfer key (REFER): once the desk answers, the agent's phone is released and the
    outbound interaction is transferred out (the agent wraps up) while customer and desk
    talk on; the platform no longer hangs that call up for the agent."""
    acd = routing_agent(setup)
    outbound = OutboundCalls(acd, setup.phones)
    t, agent_id = setup.world.tenant_id, setup.world.agent_id
    extensions: ExtensionService = setup.world.services.extra["extensions"]
    extensions.do_create(t, Actor.cli(), number="1002", password=PASSWORD)
    try:
        agent = uas(
            setup, "agent", "call_uas_refer.xml", ip="127.0.0.1", port=5080, rtp=AGENT_RTP,
            keys=("-key", "refer_to", "1002"),
        )  # fmt: skip
        customer = uas(
            setup, "customer", "call_uas.xml", ip=TRUNK_HOST, port=TRUNK_PORT, rtp=CUSTOMER_RTP
        )
        desk = uas(setup, "desk", "call_uas.xml", ip="127.0.0.1", port=5082, rtp=31014)
        await asyncio.sleep(0.3)
        await register(setup, 5070, 5080)
        await register(setup, 5072, 5082, extension="1002")
        call, iid = await outbound.place(t, agent_id, "+4930555")
        assert iid is not None
        await setup.wait_event("call.transferred")
        await wait_state(acd, setup, "wrap_up")
        assert not call.ended and outbound.calls() == []
        rc, out = await agent  # NOTIFYs, then released with a BYE
        assert rc == 0, out[-3000:]
        with setup.world.services.db.read() as s:
            events = read_events(s, t, after=0, limit=1000)
        mine = [
            e
            for e in events
            if isinstance(e.payload, dict) and e.payload.get("interaction_id") == iid
        ]
        transferred = next(e.payload for e in mine if e.type == "interaction.transferred")
        assert (transferred["kind"], transferred["to_number"]) == ("external", "1002")
        assert [e.type for e in mine].count("interaction.completed") == 1
        setup.server.calls.end_call(call, "test_over")  # customer and desk part
        for task in (customer, desk):
            rc, out = await task
            assert rc == 0, out[-3000:]
    finally:
        await outbound.aclose()
