"""A caller dials a number that goes to an ACD queue; the engine offers the call to an agent
and the agent's phone rings (SIPp as both phones), inside a loopback-only namespace.

The routing service is the real one (SQLite journal); its clock is the fake one, so offer
timeouts are driven by the test (``advance`` + ``tick_due``) instead of by waiting.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.conftest import World
from tests.telephony.sip_support import loopback_namespace, run_sipp, wait_until

from sparklecomm.acd.persistence import queue_config_to_dict
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
from sparklecomm.telephony.media.audio import PromptVoice, load_wav, ulaw_decode, ulaw_encode
from sparklecomm.telephony.media.relay import MediaRelay, RelayConfig
from sparklecomm.telephony.media.rtp import build_rtp_packet, parse_rtp_header
from sparklecomm.telephony.pbx.dialplan import PbxConfig, divert
from sparklecomm.telephony.pbx.routes import (
    CallRequest,
    Hunt,
    HuntStep,
    IvrMenu,
    Reject,
    Route,
    Target,
    ToIvr,
    ToQueue,
    ToVoicemail,
)
from sparklecomm.telephony.sip.timers import TimerConfig
from sparklecomm.telephony.voice_queue import VoiceQueue
from sparklecomm.telephony.waiting import Waiting, WaitingRoom

SIPP = Path(__file__).parent / "sipp"
DID = "5550100"
MENU_DID = "5550200"
VOICEMAIL_DID = "5550300"
NO_ANSWER_DID = "5550400"
"""Rings extension 2009 (no phone registered), then its voicemail box."""
MAIN_MENU = IvrMenu(
    "main",
    "For support, press 2. For the front desk, press 3.",
    keys=("2", "3"),
    timeout_seconds=1.0,
    attempts=2,
)
PASSWORDS = {
    "1001": "pw-1001-secret",
    "2001": "pw-2001-secret",
    "2002": "pw-2002-secret",
    "2003": "pw-2003-secret",
}
OTHER = "agent-b"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@dataclass
class Center:
    world: World
    acd: AcdService
    server: SipServer
    call_events: list[tuple[str, dict[str, Any]]]
    phones: SipAgentPhones

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def engine_events(self) -> list[tuple[str, dict[str, Any]]]:
        with self.world.services.db.read() as s:
            events = read_events(s, self.world.tenant_id, after=0, limit=10_000)
        return [(e.type, e.payload) for e in events if isinstance(e.payload, dict)]

    def interaction_types(self) -> list[str]:
        return [
            kind
            for kind, p in self.engine_events()
            if str(p.get("interaction_id", "")).startswith("call-")
        ]

    async def wait_for(self, kind: str, count: int = 1, limit: float = 10.0) -> None:
        for _ in range(int(limit / 0.05)):
            if self.interaction_types().count(kind) >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{count} x {kind} not seen: {self.interaction_types()}")


class MessageBox:
    """The voicemail store of these tests: keeps what the B2BUA leaves."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def leave_message(
        self,
        route: ToVoicemail,
        *,
        caller: str,
        caller_name: str | None,
        call_id: str,
        wav: bytes,
        seconds: float,
    ) -> str:
        self.messages.append({"box": route.box, "caller": caller, "wav": wav, "seconds": seconds})
        return f"m{len(self.messages)}"


class DidRouter:
    """The dial plan of this test: the DID goes to the support queue; a queue diverting its
    caller goes through the real dial plan's :func:`divert` (extension 2003 is a desk phone,
    no agent's)."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.config = PbxConfig(tenant_id, extensions={"2003": "Front desk"})

    async def route(self, request: CallRequest) -> Route:
        if request.dialled == DID:
            return ToQueue(self.tenant_id, "support", {"dnis": DID})
        if request.dialled == MENU_DID:
            return ToIvr(self.tenant_id, MAIN_MENU, {"dnis": MENU_DID})
        greeting = "Please leave a message after the tone."
        if request.dialled == VOICEMAIL_DID:
            return ToVoicemail(self.tenant_id, "2003", greeting, max_seconds=6.0)
        if request.dialled == NO_ANSWER_DID:
            box = ToVoicemail(self.tenant_id, "2003", greeting, max_seconds=6.0)
            step = HuntStep((Target(extension="2009"),), 5.0)
            return Hunt(self.tenant_id, (step,), final=box, description="2009")
        if request.dialled in self.config.extensions:  # e.g. a phone's own transfer
            target = Target(extension=request.dialled)
            return Hunt(self.tenant_id, (HuntStep((target,), 20.0),), description="desk")
        return Reject(404, "Not Found")

    async def ivr_choice(self, route: ToIvr, key: str | None, request: CallRequest) -> Route:
        """The menu of this test: 2 → the support queue, 3 → the front desk, else hang up."""
        attributes = {**route.attributes, "ivr": f"{route.menu.name}:{key or '-'}"}
        if key == "2":
            return ToQueue(self.tenant_id, "support", attributes)
        if key == "3":
            target = Target(extension="2003")
            return Hunt(self.tenant_id, (HuntStep((target,), 20.0),), description="desk")
        return Reject(603, "Decline")

    async def divert(self, tenant_id: str, target: str, request: CallRequest) -> Route:
        assert tenant_id == self.tenant_id
        return divert(self.config, target, request)

    async def auto_answer(self, extension: str) -> bool:
        """Extension 2001 (the world's agent's phone) is set to auto-answer."""
        return extension == "2001"


@pytest.fixture
async def center(sqlite_world: World) -> AsyncIterator[Center]:
    if shutil.which("sipp") is None:
        pytest.skip("sipp is not installed (Debian package sip-tester)")
    world = sqlite_world
    acd: AcdService = world.services.extra["acd"]
    t = world.tenant_id
    for agent in (world.agent_id, OTHER):
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
            "members": [
                {"agent_id": world.agent_id, "penalty": 0},
                {"agent_id": OTHER, "penalty": 1},
            ],
        },
    )
    phones_of = {world.agent_id: ["2001"], OTHER: ["2002"]}

    async def extensions(tenant_id: str, agent_id: str) -> list[str]:
        assert tenant_id == t
        return phones_of.get(agent_id, [])

    with loopback_namespace():
        credentials = InMemoryCredentialStore()
        for user, password in PASSWORDS.items():
            credentials.add_user(user, password, "sparklecomm")
        call_events: list[tuple[str, dict[str, Any]]] = []

        async def emit(tenant: str, kind: str, data: dict[str, Any]) -> None:
            call_events.append((kind, data))

        async def tenant_of(extension: str) -> str | None:
            return t

        relay = MediaRelay(RelayConfig(host="127.0.0.1", allowed_target=loopback_only))
        server = SipServer(
            SipServerConfig(
                host="127.0.0.1",
                port=0,
                transports=("UDP",),
                digest_algorithms=("MD5", "SHA-256"),  # SIPp 3.6 knows only MD5
                timers=TimerConfig(t1=0.2, t2=1.0, t4=1.0),
                allowed_target=loopback_only,
            ),
            clock=SystemClock(),
            credentials=credentials,
            locations=InMemoryLocationStore(),
            emit=emit,
            tenant_of=tenant_of,
            relay=relay,
            router=DidRouter(t),
        )
        phones = SipAgentPhones(server.calls, extensions)
        phones.attach(VoiceQueue(acd, phones))
        phones.waiting_room = WaitingRoom(
            server.calls, voice=PromptVoice(world.services.settings.data_dir / "prompts")
        )
        server.calls.voicemail = MessageBox()
        await server.start()
        try:
            yield Center(world, acd, server, call_events, phones)
        finally:
            await phones.close()
            await server.stop()


async def sipp(*args: str, limit: float = 30) -> tuple[int, str]:
    return await run_sipp(*args, "-i", "127.0.0.1", "-nostdin", "-timeout_error", limit=limit)


def phone(scenario: str, port: int, media_port: int) -> asyncio.Task[tuple[int, str]]:
    """An agent's phone waiting for one call."""
    return asyncio.get_running_loop().create_task(
        sipp(
            "-sf",
            str(SIPP / scenario),
            "-p",
            str(port),
            "-mp",
            str(media_port),
            "-m",
            "1",
            "-timeout",
            "25s",
        )
    )


async def register(center: Center, extension: str, contact_port: int, port: int) -> None:
    rc, out = await sipp(
        center.target,
        "-sf",
        str(SIPP / "call_register.xml"),
        "-s",
        extension,
        "-au",
        extension,
        "-ap",
        PASSWORDS[extension],
        "-key",
        "contact_port",
        str(contact_port),
        "-p",
        str(port),
        "-m",
        "1",
        "-timeout",
        "10s",
    )
    assert rc == 0, out[-2000:]


def caller(
    center: Center, scenario: str | Path, *extra: str, number: str = DID
) -> asyncio.Task[tuple[int, str]]:
    """The caller dialling the queue's DID (or ``number``): a scenario of ``sipp/`` by
    name, or a file (``extra``: more SIPp arguments)."""
    path = scenario if isinstance(scenario, Path) else SIPP / scenario
    return asyncio.get_running_loop().create_task(
        sipp(
            center.target,
            "-sf",
            str(path),
            "-s",
            number,
            "-au",
            "1001",
            "-ap",
            PASSWORDS["1001"],
            "-auth_uri",
            f"{number}@{center.target}",
            "-key",
            "caller",
            "1001",
            "-p",
            "5071",
            "-mp",
            "17000",
            "-m",
            "1",
            "-timeout",
            "25s",
            *extra,
        )
    )


def transferring_phone(number: str) -> asyncio.Task[tuple[int, str]]:
    """The agent's phone 2001 (port 5080): answers, then transfers the caller to ``number``
    with its own transfer key (REFER)."""
    return asyncio.get_running_loop().create_task(
        sipp("-sf", str(SIPP / "call_uas_refer.xml"), "-p", "5080", "-mp", "16000",
             "-key", "refer_to", number, "-m", "1", "-timeout", "25s")
    )  # fmt: skip


def talking_caller(tmp: Path, milliseconds: int) -> Path:
    """``call_uac.xml`` staying on the line ``milliseconds`` after the answer (not 500)."""
    uac = (SIPP / "call_uac.xml").read_text()
    assert '<pause milliseconds="500"/>' in uac
    path = tmp / "caller.xml"
    path.write_text(
        uac.replace('<pause milliseconds="500"/>', f'<pause milliseconds="{milliseconds}"/>')
    )
    return path


def login(center: Center, *agents: str) -> None:
    for agent in agents:
        center.acd.execute(center.world.tenant_id, "login", agent_id=agent)


async def test_a_call_to_the_queue_is_answered_by_the_agents_phone(center: Center) -> None:
    world = center.world
    agent_phone = phone("call_uas.xml", 5080, 16000)
    await asyncio.sleep(0.3)
    await register(center, "2001", 5080, 5070)
    login(center, world.agent_id)
    rc, out = await caller(center, "call_uac.xml")
    assert rc == 0, out[-3000:]
    rc_phone, out_phone = await agent_phone
    assert rc_phone == 0, out_phone[-3000:]
    await center.wait_for("interaction.completed")
    types = center.interaction_types()
    assert types[:4] == [
        "interaction.created",
        "interaction.queued",
        "interaction.offered",
        "interaction.accepted",
    ] or types[:3] == ["interaction.created", "interaction.offered", "interaction.accepted"]
    created = next(p for k, p in center.engine_events() if k == "interaction.created")
    assert created["channel"] == "voice"
    assert created["attributes"]["dnis"] == DID and created["attributes"]["ani"] == "1001"
    snap = center.acd.read(world.tenant_id, lambda e: e.agent_snapshot(world.agent_id))
    assert snap.state == "wrap_up"
    kinds = [k for k, _ in center.call_events]
    assert kinds[0] == "call.started" and "call.answered" in kinds and kinds[-1] == "call.ended"
    answered = next(d for k, d in center.call_events if k == "call.answered")
    assert answered["agent_id"] == world.agent_id
    assert center.server.calls.active_calls == 0


async def test_a_phone_set_to_auto_answer_is_asked_to_and_others_are_not(
    center: Center,
) -> None:
    """The INVITE to an agent's phone set to auto-answer carries ``Call-Info: ...;
    answer-after=0`` and ``Answer-Mode: Auto`` (checked by the SIPp phone); a phone not set
    to it gets neither. The first agent (2001, auto-answer) is offered the first call, the
    second (2002) the second call while the first is in wrap-up."""
    world = center.world
    auto_phone = phone("call_uas_autoanswer.xml", 5080, 16000)
    manual_phone = phone("call_uas_manual.xml", 5082, 16100)
    await asyncio.sleep(0.3)
    await register(center, "2001", 5080, 5070)
    await register(center, "2002", 5082, 5072)
    login(center, world.agent_id, OTHER)
    rc, out = await caller(center, "call_uac.xml")
    assert rc == 0, out[-3000:]
    rc_phone, out_phone = await auto_phone
    assert rc_phone == 0, out_phone[-3000:]
    # the first agent is in wrap-up now: the second call goes to the other one
    rc, out = await caller(center, "call_uac.xml")
    assert rc == 0, out[-3000:]
    rc_phone, out_phone = await manual_phone
    assert rc_phone == 0, out_phone[-3000:]
    accepted = [p["agent_id"] for k, p in center.engine_events() if k == "interaction.accepted"]
    assert accepted == [world.agent_id, OTHER]


async def test_no_answer_is_reoffered_to_the_next_agent(center: Center) -> None:
    world = center.world
    slow_phone = phone("call_uas_cancel.xml", 5080, 16000)  # rings, never answers
    good_phone = phone("call_uas.xml", 5082, 16100)
    await asyncio.sleep(0.3)
    await register(center, "2001", 5080, 5070)
    await register(center, "2002", 5082, 5072)
    login(center, world.agent_id, OTHER)
    call = caller(center, "call_uac.xml")
    await center.wait_for("interaction.offered")
    await asyncio.sleep(0.5)  # the first phone is ringing
    world.clock.advance(16)  # past the queue's 15 s offer timeout
    await asyncio.to_thread(center.acd.tick_due, world.tenant_id)
    rc, out = await call
    assert rc == 0, out[-3000:]
    for task in (slow_phone, good_phone):
        rc_phone, out_phone = await task
        assert rc_phone == 0, out_phone[-3000:]
    await center.wait_for("interaction.completed")
    events = center.engine_events()
    offered = [p["agent_id"] for k, p in events if k == "interaction.offered"]
    assert offered == [world.agent_id, OTHER]
    assert "interaction.offer_timed_out" in center.interaction_types()
    accepted = [p["agent_id"] for k, p in events if k == "interaction.accepted"]
    assert accepted == [OTHER]


async def test_caller_hanging_up_in_the_queue_is_abandoned(center: Center) -> None:
    # Nobody logged in: the caller waits (hearing ringback), then gives up.
    rc, out = await caller(center, "queue_uac_abandon.xml")
    assert rc == 0, out[-3000:]
    await center.wait_for("interaction.abandoned")
    assert "interaction.offered" not in center.interaction_types()
    ended = [d for k, d in center.call_events if k == "call.ended"]
    assert ended and ended[-1]["reason"] == "cancelled"
    assert center.server.calls.active_calls == 0


async def test_a_caller_the_queue_diverts_is_put_through_to_its_divert_target(
    center: Center,
) -> None:
    """Nobody logged in and the queue's max wait reached: the engine diverts the caller to
    extension 2003 (``on_max_wait.divert_to``); the B2BUA routes the waiting call on there,
    the desk phone answers and the caller, who heard ringback throughout, talks to it."""
    world, acd = center.world, center.acd
    config = acd.read(world.tenant_id, lambda e: queue_config_to_dict(e.queue_config("support")))
    acd.execute(
        world.tenant_id,
        "update_queue",
        config={**config, "max_wait_seconds": 30, "on_max_wait": {"divert_to": "extension:2003"}},
    )
    desk_phone = phone("call_uas.xml", 5084, 16200)
    await asyncio.sleep(0.3)
    await register(center, "2003", 5084, 5074)
    call = caller(center, "queue_uac_waiting.xml")
    await center.wait_for("interaction.queued")
    await asyncio.sleep(0.3)  # the caller hears the queue's ringback
    world.clock.advance(31)
    await asyncio.to_thread(acd.tick_due, world.tenant_id)
    rc, out = await call
    assert rc == 0, out[-3000:]
    rc_phone, out_phone = await desk_phone
    assert rc_phone == 0, out_phone[-3000:]
    types = center.interaction_types()
    assert types[-1] == "interaction.diverted" and "interaction.offered" not in types
    diverted = next(p for k, p in center.engine_events() if k == "interaction.diverted")
    assert diverted["divert_to"] == "extension:2003" and diverted["reason"] == "max_wait"
    kinds = [k for k, _ in center.call_events]
    assert kinds.index("call.diverted") < kinds.index("call.answered")
    moved = next(d for k, d in center.call_events if k == "call.diverted")
    assert moved == {**moved, "to": "extension:2003", "reason": "diverted_max_wait"}
    answered = next(d for k, d in center.call_events if k == "call.answered")
    assert answered["leg"].startswith("2003 at") and "agent_id" not in answered
    assert kinds[-1] == "call.ended"
    assert center.server.calls.active_calls == 0


async def test_an_agent_transferring_with_the_phones_own_key_is_free_at_once(
    center: Center, tmp_path: Path
) -> None:
    """The agent puts the caller through to the front desk (2003) with the phone's transfer
    key (REFER). Once the desk answers, the agent's leg is released and the routing engine
    hears a transfer out: the interaction completes and the agent wraps up, while caller
    and desk talk on (before, the agent stayed busy until that conversation ended)."""
    world, acd = center.world, center.acd
    agent_phone = transferring_phone("2003")
    desk_phone = phone("call_uas.xml", 5084, 16200)
    await asyncio.sleep(0.3)
    await register(center, "2001", 5080, 5070)
    await register(center, "2003", 5084, 5074)
    login(center, world.agent_id)
    call = caller(center, talking_caller(tmp_path, 6000))
    await center.wait_for("interaction.completed")
    # the caller and the desk still talk: the agent is already wrapping up
    assert not call.done()
    snap = acd.read(world.tenant_id, lambda e: e.agent_snapshot(world.agent_id))
    assert snap.state == "wrap_up"
    for task in (agent_phone, call, desk_phone):
        rc, out = await task
        assert rc == 0, out[-3000:]
    events = center.engine_events()
    transferred = next(p for k, p in events if k == "interaction.transferred")
    assert (transferred["kind"], transferred["to_number"]) == ("external", "2003")
    completed = [p for k, p in events if k == "interaction.completed"]
    assert len(completed) == 1 and completed[0]["transferred_to"] == "2003"
    assert "interaction.abandoned" not in center.interaction_types()
    kinds = [k for k, _ in center.call_events]
    assert kinds.index("call.transferring") < kinds.index("call.transferred")
    assert kinds.count("call.ended") == 1 and kinds[-1] == "call.ended"
    assert center.server.calls.active_calls == 0


async def wait_call_event(center: Center, kind: str, limit: float = 10.0) -> dict[str, Any]:
    for _ in range(int(limit / 0.05)):
        for found, data in center.call_events:
            if found == kind:
                return data
        await asyncio.sleep(0.05)
    raise AssertionError(f"{kind} not seen: {[k for k, _ in center.call_events]}")


async def test_the_desk_puts_a_caller_through_to_a_number(center: Center, tmp_path: Path) -> None:
    """``transfer_to_number`` (the desk's *Transfer to a number*): a number nobody has fails
    and the caller stays with the agent; the front desk (2003) answers, the agent's phone is
    released and routing hears a transfer out while caller and desk talk on."""
    world, acd, calls = center.world, center.acd, center.server.calls
    agent_phone = phone("call_uas.xml", 5080, 16000)
    desk_phone = phone("call_uas.xml", 5084, 16200)
    await asyncio.sleep(0.3)
    await register(center, "2001", 5080, 5070)
    await register(center, "2003", 5084, 5074)
    login(center, world.agent_id)
    caller_task = caller(center, talking_caller(tmp_path, 6000))
    await center.wait_for("interaction.accepted")
    await wait_call_event(center, "call.answered")
    (call,) = calls.calls.values()
    assert not calls.transfer_to_number(call, OTHER, "2003")  # not that agent's call
    assert calls.transfer_to_number(call, world.agent_id, "2009")  # no such number
    failed = await wait_call_event(center, "call.transfer_failed")
    assert (failed["to"], failed["status"]) == ("2009", 404)
    assert "interaction.transferred" not in center.interaction_types()
    assert calls.transfer_to_number(call, world.agent_id, "2003")
    assert not calls.transfer_to_number(call, world.agent_id, "2003")  # one at a time
    await center.wait_for("interaction.completed")
    assert not caller_task.done()  # caller and desk talk on
    snap = acd.read(world.tenant_id, lambda e: e.agent_snapshot(world.agent_id))
    assert snap.state == "wrap_up"
    for task in (agent_phone, caller_task, desk_phone):
        rc, out = await task
        assert rc == 0, out[-3000:]
    transferred = next(p for k, p in center.engine_events() if k == "interaction.transferred")
    assert (transferred["kind"], transferred["to_number"]) == ("external", "2003")
    assert center.server.calls.active_calls == 0


async def test_a_phone_transfer_to_a_queues_number_is_a_transfer_to_that_queue(
    center: Center, tmp_path: Path
) -> None:
    """The agent's phone transfers the caller to a number that leads to a queue (here the
    support DID itself): routing takes it as a blind transfer to that queue: the agent's
    phone is released and the next agent's phone rings and takes the caller."""
    world = center.world
    first = transferring_phone(DID)
    second = phone("call_uas.xml", 5082, 16100)
    await asyncio.sleep(0.3)
    await register(center, "2001", 5080, 5070)
    await register(center, "2002", 5082, 5072)
    login(center, world.agent_id)
    call = caller(center, talking_caller(tmp_path, 6000))
    await center.wait_for("interaction.transferred")
    login(center, OTHER)  # the next agent comes in: the waiting caller is offered to them
    for task in (first, call, second):
        rc, out = await task
        assert rc == 0, out[-3000:]
    events = center.engine_events()
    transferred = next(p for k, p in events if k == "interaction.transferred")
    assert (transferred["kind"], transferred["to_queue_id"]) == ("blind", "support")
    accepted = [p["agent_id"] for k, p in events if k == "interaction.accepted"]
    assert accepted == [world.agent_id, OTHER]
    assert center.server.calls.active_calls == 0


# ---- music on hold, announcements and the callback key ------------------------------------


def with_music(center: Center, **waiting: Any) -> None:
    """The support queue plays music and announcements to waiting callers."""
    acd, t = center.acd, center.world.tenant_id
    config = queue_config_to_dict(acd.read(t, lambda engine: engine.queue_config("support")))
    config["channels"] = ["voice", "callback"]
    config["waiting"] = {"music_on_hold": True, "announce_every_seconds": None, **waiting}
    acd.execute(t, "update_queue", config=config)


class CallerMedia(asyncio.DatagramProtocol):
    """The caller's media port: what the platform plays arrives here."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.packets.append(data)

    def press(self, key: int, relay_port: int) -> None:
        """One key press as a phone sends it (RFC 4733): three packets while the key is
        down, then three end packets, all with the event's timestamp."""
        assert self.transport is not None
        for n in range(6):
            end = n >= 3
            duration = 800 if end else 160 * (n + 1)
            payload = bytes([key, (0x80 if end else 0) | 10]) + duration.to_bytes(2, "big")
            packet = build_rtp_packet(
                payload, sequence=100 + n, timestamp=4000, ssrc=0x1234, payload_type=101
            )
            self.transport.sendto(packet, ("127.0.0.1", relay_port))


async def test_a_waiting_caller_hears_music_and_asks_for_a_callback_with_a_key(
    center: Center,
) -> None:
    """With nobody logged in the caller waits: the platform answers the offer in a 183 (early
    media, PCMU chosen from the caller's PCMU/PCMA), plays music and says the place in line;
    the caller presses 1 (RFC 4733 from its media port), routing turns the call into a
    queued callback to the caller's number, and the call is answered, confirmed and hung up
    by the platform. Routing heard no abandon."""
    with_music(center, callback_key="1")
    loop = asyncio.get_running_loop()
    transport, media = await loop.create_datagram_endpoint(
        CallerMedia, local_addr=("127.0.0.1", 17100)
    )
    try:
        call = caller(center, "queue_uac_callback_key.xml", "-key", "media_listen", "17100")
        await center.wait_for("interaction.queued")
        room = center.phones.waiting_room
        assert room is not None
        await wait_until(lambda: bool(room.waiting))
        waiting = next(iter(room.waiting.values()))
        await wait_until(lambda: waiting.announcements >= 1 and len(media.packets) > 100, 15)
        headers = [parse_rtp_header(p) for p in media.packets]
        assert {h.payload_type for h in headers} == {0}
        assert len({h.ssrc for h in headers}) == 1
        sequences = [h.sequence for h in headers[:100]]
        assert sequences == [(sequences[0] + n) & 0xFFFF for n in range(100)]
        pcm = ulaw_decode(b"".join(p[12:] for p in media.packets))
        assert int(abs(pcm.astype(int)).max()) > 1000  # music and speech, not silence
        media.press(1, waiting.call.media.a.port)
        rc, out = await call
        assert rc == 0, out[-3000:]
    finally:
        transport.close()
    assert waiting.digits == ["1"]
    kinds = center.interaction_types()
    assert "interaction.callback_requested" in kinds and "interaction.abandoned" not in kinds
    requested = next(p for k, p in center.engine_events() if k == "interaction.callback_requested")
    assert requested["phone"] == "1001" and requested["position"] == 1
    ended = [d for k, d in center.call_events if k == "call.ended"]
    assert ended and ended[-1]["reason"] == "callback_requested"
    assert center.server.calls.active_calls == 0 and not room.waiting


async def test_music_stops_when_an_agent_answers_and_caller_and_agent_talk(
    center: Center,
) -> None:
    """The caller hears the platform until the agent's phone answers; then the 200 OK
    repeats the 183's answer and the relay connects caller and agent as for any call."""
    world = center.world
    with_music(center)
    agent_phone = phone("call_uas.xml", 5080, 16000)
    await asyncio.sleep(0.3)
    await register(center, "2001", 5080, 5070)
    call = caller(center, "queue_uac_waiting.xml")
    await center.wait_for("interaction.queued")
    room = center.phones.waiting_room
    assert room is not None
    await wait_until(lambda: bool(room.waiting))
    waiting = next(iter(room.waiting.values()))
    sip_call = waiting.call
    await wait_until(lambda: waiting.player is not None and waiting.player.packets_sent > 10)
    login(center, world.agent_id)
    await wait_until(lambda: sip_call.answered, 10)
    assert waiting.stopped and sip_call.waiting is None
    assert sip_call.media is None or sip_call.media.connected("a") == "b"
    rc, out = await call
    assert rc == 0, out[-3000:]
    rc_phone, out_phone = await agent_phone
    assert rc_phone == 0, out_phone[-3000:]
    kinds = [k for k, _ in center.call_events]
    assert "call.answered" in kinds and kinds[-1] == "call.ended"
    assert center.interaction_types().count("interaction.accepted") == 1


# ---- voice menus (IVR) ----------------------------------------------------------------------


@asynccontextmanager
async def menu_call(
    center: Center,
    scenario: str = "menu_uac.xml",
    *,
    number: str = MENU_DID,
    ready: Callable[[Waiting], object] = lambda session: session.menus,
) -> AsyncIterator[tuple[asyncio.Task[tuple[int, str]], Waiting, CallerMedia]]:
    """A caller dialling ``number`` (the menu's DID), once the platform talks to it (by
    default: plays the menu): the SIPp task, the platform's media session and the
    caller's media port (to press keys and speak)."""
    loop = asyncio.get_running_loop()
    transport, media = await loop.create_datagram_endpoint(
        CallerMedia, local_addr=("127.0.0.1", 17100)
    )
    room = center.phones.waiting_room
    assert room is not None
    try:
        call = caller(center, scenario, "-key", "media_listen", "17100", number=number)
        await wait_until(lambda: any(ready(w) for w in room.waiting.values()), 15)
        yield call, next(iter(room.waiting.values())), media
    finally:
        transport.close()


async def test_a_caller_chooses_in_the_voice_menu_waits_with_music_and_reaches_an_agent(
    center: Center,
) -> None:
    """The platform answers the call (200 with its own PCMU answer) and speaks the menu;
    the caller presses 2: the call goes to the support queue with the choice among its
    attributes, the caller hears music (answered callers hear no ringback), and when the
    agent's phone answers, caller and agent talk through the relay with no second 200."""
    world = center.world
    agent_phone = phone("call_uas.xml", 5080, 16000)
    await asyncio.sleep(0.3)
    await register(center, "2001", 5080, 5070)
    async with menu_call(center) as (call, session, media):
        sip_call = session.call
        assert sip_call.platform_answered and not sip_call.answered
        await wait_until(lambda: len(media.packets) > 20)
        media.press(2, sip_call.media.a.port)
        await center.wait_for("interaction.queued")
        created = next(p for k, p in center.engine_events() if k == "interaction.created")
        assert created["attributes"]["ivr"] == "main:2"
        assert created["attributes"]["dnis"] == MENU_DID
        heard = len(media.packets)
        await wait_until(lambda: len(media.packets) > heard + 25)  # music in the queue
        login(center, world.agent_id)
        await wait_until(lambda: sip_call.answered, 10)
        assert session.stopped and sip_call.media.connected("a") == "b"
        rc, out = await call
        assert rc == 0, out[-3000:]
    rc_phone, out_phone = await agent_phone
    assert rc_phone == 0, out_phone[-3000:]
    choices = [d for k, d in center.call_events if k == "call.menu_choice"]
    assert choices == [{**choices[0], "menu": "main", "key": "2"}]
    kinds = [k for k, _ in center.call_events]
    assert kinds.count("call.answered") == 2 and kinds[-1] == "call.ended"
    assert center.interaction_types().count("interaction.accepted") == 1


async def test_a_caller_who_chooses_nothing_hears_the_menu_again_then_is_hung_up(
    center: Center,
) -> None:
    """No key: the invalid prompt and the menu again (two attempts), then the menu's
    default (here a refusal): the caller, already answered, gets a BYE saying why."""
    async with menu_call(center, "menu_uac_hung_up.xml") as (call, session, media):
        rc, out = await asyncio.wait_for(call, 40)
        assert rc == 0, out[-3000:]
    room = center.phones.waiting_room
    assert session.menus == 2 and session.stopped
    assert len(media.packets) > 100  # the menu, spoken twice, reached the caller's port
    choices = [d for k, d in center.call_events if k == "call.menu_choice"]
    assert [c["key"] for c in choices] == [None]
    ended = [d for k, d in center.call_events if k == "call.ended"]
    assert ended[-1]["reason"] == "menu_rejected" and ended[-1]["status"] == 603
    assert center.server.calls.active_calls == 0 and not room.waiting


async def test_a_menu_choice_that_rings_a_phone_plays_music_until_it_answers(
    center: Center,
) -> None:
    """Key 3 rings the front desk (2003): the caller, answered by the platform, hears music
    while the desk rings; the desk's answer connects them (no second 200 to the caller)."""
    desk_phone = phone("call_uas.xml", 5084, 16200)
    await asyncio.sleep(0.3)
    await register(center, "2003", 5084, 5074)
    async with menu_call(center) as (call, session, media):
        sip_call = session.call
        media.press(3, sip_call.media.a.port)
        await wait_until(lambda: sip_call.answered, 10)
        assert session.stopped and sip_call.media.connected("a") == "b"
        rc, out = await call
        assert rc == 0, out[-3000:]
    rc_desk, out_desk = await desk_phone
    assert rc_desk == 0, out_desk[-3000:]
    answered = [d for k, d in center.call_events if k == "call.answered"]
    assert answered[0]["leg"] == "menu main" and answered[1]["leg"].startswith("2003 at")
    assert center.interaction_types() == []  # no queue on this path


async def test_a_caller_who_chose_a_queue_and_hangs_up_while_waiting_is_abandoned(
    center: Center,
) -> None:
    """Nobody is logged in: after choosing the support queue the caller waits with music
    and hangs up (BYE, having been answered by the platform): routing counts an abandon."""
    async with menu_call(center) as (call, session, media):
        media.press(2, session.call.media.a.port)
        await center.wait_for("interaction.queued")
        rc, out = await call
        assert rc == 0, out[-3000:]
    room = center.phones.waiting_room
    await center.wait_for("interaction.abandoned")
    ended = [d for k, d in center.call_events if k == "call.ended"]
    assert ended[-1]["reason"] == "caller_hangup"
    assert center.server.calls.active_calls == 0 and not room.waiting


# ---- voicemail ------------------------------------------------------------------------------


def speak(media: CallerMedia, relay_port: int, seconds: float) -> None:
    """The caller talks: ``seconds`` of a 440 Hz tone as 20 ms PCMU packets."""
    assert media.transport is not None
    samples = np.sin(2 * np.pi * 440 * np.arange(int(8000 * seconds)) / 8000) * 6000
    payload = ulaw_encode(samples.astype(np.int16))
    for n in range(len(payload) // 160):
        packet = build_rtp_packet(
            payload[n * 160 : (n + 1) * 160], sequence=n, timestamp=160 * n, ssrc=0x55
        )
        media.transport.sendto(packet, ("127.0.0.1", relay_port))


@pytest.mark.parametrize(
    ("number", "scenario", "ends_with"),
    [
        (VOICEMAIL_DID, "menu_uac.xml", "hang-up"),
        (VOICEMAIL_DID, "menu_uac_hung_up.xml", "#"),
        (NO_ANSWER_DID, "menu_uac_hung_up.xml", "#"),
    ],
)
async def test_a_caller_leaves_a_voicemail_message(
    center: Center, number: str, scenario: str, ends_with: str, tmp_path: Path
) -> None:
    """The platform answers, speaks the greeting and the tone, then records the caller's
    audio (here 2 s of a tone) until the caller hangs up, or presses # (then the platform
    thanks them and hangs up): the message reaches the store as a WAV of that length. The
    box is the DID's destination, or the end of a hunt nobody answered."""
    recording = lambda session: session._recording is not None  # noqa: E731
    async with menu_call(center, scenario, number=number, ready=recording) as (
        call,
        session,
        media,
    ):
        relay_port = session.call.media.a.port
        speak(media, relay_port, 2.0)
        await asyncio.sleep(0.2)
        if ends_with == "#":
            media.press(11, relay_port)  # event 11 is "#"
        rc, out = await asyncio.wait_for(call, 40)
        assert rc == 0, out[-3000:]
    box = center.server.calls.voicemail
    assert isinstance(box, MessageBox)
    await wait_until(lambda: bool(box.messages))
    message = box.messages[0]
    assert message["box"] == "2003" and message["caller"] == "1001"
    assert 1.8 <= message["seconds"] <= 2.3
    wav = tmp_path / "message.wav"
    wav.write_bytes(message["wav"])
    audio = load_wav(wav)
    spectrum = np.abs(np.fft.rfft(audio.astype(float)))
    assert abs(np.argmax(spectrum) * 8000 / len(audio) - 440) < 10  # what the caller said
    left = [d for k, d in center.call_events if k == "call.voicemail_left"]
    assert left == [{**left[0], "box": "2003", "message_id": "m1"}]
    ended = [d for k, d in center.call_events if k == "call.ended"]
    assert ended[-1]["reason"] == ("voicemail" if ends_with == "#" else "caller_hangup")


# ---- the post-call survey ---------------------------------------------------------------------


class Ballots:
    """The survey store of these tests: keeps the answers."""

    def __init__(self) -> None:
        self.answers: list[dict[str, Any]] = []

    async def survey_answered(self, tenant_id: str, **answer: Any) -> dict[str, Any]:
        self.answers.append(answer)
        return answer


async def test_after_the_agent_hangs_up_the_caller_rates_the_call_with_a_key(
    center: Center,
) -> None:
    """The support queue asks for a rating on a scale of 1 to 5. The agent's phone hangs up
    first: routing completes the interaction (the agent wraps up) while the platform keeps
    the caller, asks the question, takes the key (4), thanks them and hangs up; the answer
    goes to the store with the interaction, queue and agent."""
    world = center.world
    acd, t = center.acd, world.tenant_id
    config = queue_config_to_dict(acd.read(t, lambda engine: engine.queue_config("support")))
    config["survey"] = {"enabled": True, "max_score": 5}
    acd.execute(t, "update_queue", config=config)
    center.phones.surveys = ballots = Ballots()
    agent_phone = phone("call_uas_hangs_up.xml", 5080, 16000)
    await asyncio.sleep(0.3)
    await register(center, "2001", 5080, 5070)
    login(center, world.agent_id)
    async with menu_call(center, "menu_uac_hung_up.xml", number=DID) as (call, session, media):
        assert session.menus >= 1  # the question is being asked
        assert center.interaction_types().count("interaction.completed") == 1
        assert acd.read(t, lambda e: e.agent_snapshot(world.agent_id).state) == "wrap_up"
        media.press(4, session.call.media.a.port)
        rc, out = await asyncio.wait_for(call, 40)
        assert rc == 0, out[-3000:]
    rc_phone, out_phone = await agent_phone
    assert rc_phone == 0, out_phone[-3000:]
    completed = next(p for k, p in center.engine_events() if k == "interaction.completed")
    assert ballots.answers == [
        {
            "interaction_id": completed["interaction_id"],
            "queue_id": "support",
            "agent_id": world.agent_id,
            "channel": "voice",
            "score": 4,
            "max_score": 5,
            "source": "phone",
        }
    ]
    kinds = [k for k, _ in center.call_events]
    assert kinds.index("call.survey") < kinds.index("call.survey_answered")
    ended = [d for k, d in center.call_events if k == "call.ended"]
    assert ended[-1]["reason"] == "survey"
    assert center.server.calls.active_calls == 0
