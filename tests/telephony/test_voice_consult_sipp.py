"""Warm transfer end to end: SIPp caller and SIPp agent phones (UAS), the real B2BUA, relay
and routing service, inside a loopback-only network namespace (root, sipp; skipped
otherwise).

SIPp only does the signalling here: each phone's SDP names a port where this test holds a
plain UDP socket, so the test plays the three phones' media itself and checks what the
relay forwards while consulting (owner <-> consulted agent, the caller hearing nothing) and
after the transfer (caller <-> new owner).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.telephony import test_voice_acd_sipp
from tests.telephony.test_voice_acd_sipp import (
    DID,
    OTHER,
    PASSWORDS,
    SIPP,
    Center,
    login,
    register,
    sipp,
)

from sparklecomm.telephony.calls import Call
from sparklecomm.telephony.media.rtp import build_rtp_packet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

center = test_voice_acd_sipp.center  # the fixture: SIP server, relay, routing, bridge

CALLER_RTP, OWNER_RTP, CONSULTED_RTP = 31000, 31002, 31004
PHONE_PORTS = (CALLER_RTP, OWNER_RTP, CONSULTED_RTP)


def scenarios(tmp: Path) -> tuple[Path, Path]:
    """The caller (stays on the line until the B2BUA hangs up) and the agents' phones,
    both naming ``[rtp]`` (``-key rtp PORT``) as their media port."""
    uac = (SIPP / "call_uac.xml").read_text()
    head, _, _ = uac.partition('  <pause milliseconds="500"/>')
    caller = (
        head.replace("[media_port]", "[rtp]")
        + """  <recv request="BYE"/>

  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>

  <timewait milliseconds="500"/>

  <Reference variables="1"/>
</scenario>
"""
    )
    assert "[rtp]" in caller
    phone = (SIPP / "call_uas.xml").read_text().replace("[media_port]", "[rtp]")
    (tmp / "caller.xml").write_text(caller)
    (tmp / "phone.xml").write_text(phone)
    return tmp / "caller.xml", tmp / "phone.xml"


def start(*args: str) -> asyncio.Task[tuple[int, str]]:
    return asyncio.get_running_loop().create_task(sipp(*args, limit=60))


def agent_phone(scenario: Path, port: int, media_port: int, rtp: int) -> asyncio.Task[Any]:
    return start(
        "-sf",
        str(scenario),
        "-p",
        str(port),
        "-mp",
        str(media_port),
        "-key",
        "rtp",
        str(rtp),
        "-m",
        "1",
        "-timeout",
        "50s",
    )


def call_the_queue(center: Center, scenario: Path) -> asyncio.Task[Any]:
    return start(
        center.target,
        "-sf",
        str(scenario),
        "-s",
        DID,
        "-au",
        "1001",
        "-ap",
        PASSWORDS["1001"],
        "-auth_uri",
        f"{DID}@{center.target}",
        "-key",
        "caller",
        "1001",
        "-key",
        "rtp",
        str(CALLER_RTP),
        "-p",
        "5071",
        "-mp",
        "17000",
        "-m",
        "1",
        "-timeout",
        "50s",
    )


class Phone:
    """A phone's media: a UDP socket on the port its SDP names, sending to the relay."""

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.ssrc = port
        self.seq = 0
        self.music = 0

    def send(self, relay_port: int, count: int = 5) -> None:
        for _ in range(count):
            self.seq += 1
            packet = build_rtp_packet(
                self.name.encode().ljust(160, b"\xff"),
                sequence=self.seq,
                timestamp=160 * self.seq,
                ssrc=self.ssrc,
            )
            self.sock.sendto(packet, ("127.0.0.1", relay_port))

    def received(self) -> list[str]:
        """Whose packets arrived since the last call (by the sender's name in the payload);
        the platform's music on hold (its own SSRC, no phone's) is counted in ``music``."""
        out = []
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                return out
            if int.from_bytes(data[8:12], "big") not in PHONE_PORTS:
                self.music += 1
                continue
            out.append(data[12:].rstrip(b"\xff").decode())

    def close(self) -> None:
        self.sock.close()


@contextmanager
def phones() -> Iterator[tuple[Phone, Phone, Phone]]:
    made = (
        Phone("caller", CALLER_RTP),
        Phone("owner", OWNER_RTP),
        Phone("consulted", CONSULTED_RTP),
    )
    try:
        yield made
    finally:
        for phone in made:
            phone.close()


async def hear(
    sender: Phone, relay_port: int, listeners: tuple[Phone, ...]
) -> dict[str, list[str]]:
    """``sender`` sends 5 packets to ``relay_port``; what each listener got (of anyone's)."""
    for listener in listeners:
        listener.received()  # forget what came before
    sender.send(relay_port)
    await asyncio.sleep(0.3)
    return {listener.name: listener.received() for listener in listeners}


async def until(condition: Any, what: str, limit: float = 10.0) -> None:
    for _ in range(int(limit / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def consult_events(center: Center, interaction_id: str) -> list[tuple[str, str]]:
    """The interaction's consultation, transfer and end events, in order: (type, the agent
    they concern: the consulted one, the one taking over, leaving or completing)."""
    concern = {
        "interaction.consult_started": "consulted_agent_id",
        "interaction.consult_connected": "consulted_agent_id",
        "interaction.transferred": "to_agent_id",
        "interaction.participant_left": "agent_id",
        "interaction.completed": "agent_id",
    }
    return [
        (k, p[concern[k]])
        for k, p in center.engine_events()
        if k in concern and p.get("interaction_id") == interaction_id
    ]


def the_call(center: Center) -> Call:
    (call,) = center.server.calls.calls.values()
    return call


async def test_warm_transfer_switches_the_media(center: Center, tmp_path: Path) -> None:
    world = center.world
    tenant = world.tenant_id
    caller_xml, phone_xml = scenarios(tmp_path)
    with phones() as (caller, owner, consulted):
        owner_sipp = agent_phone(phone_xml, 5080, 16000, OWNER_RTP)
        consulted_sipp = agent_phone(phone_xml, 5082, 16100, CONSULTED_RTP)
        await asyncio.sleep(0.3)
        await register(center, "2001", 5080, 5070)
        await register(center, "2002", 5082, 5072)
        login(center, world.agent_id, OTHER)
        caller_sipp = call_the_queue(center, caller_xml)
        await center.wait_for("interaction.accepted")
        await until(lambda: the_call(center).answered, "the caller's 200 OK")
        call = the_call(center)
        media = call.media
        a_port, b_port = media.a.port, media.b.port
        interaction_id = next(
            p["interaction_id"] for k, p in center.engine_events() if k == "interaction.accepted"
        )
        everyone = (caller, owner, consulted)

        # Connected: caller and owner hear each other.
        assert (await hear(caller, a_port, everyone)) == {
            "caller": [],
            "owner": ["caller"] * 5,
            "consulted": [],
        }
        assert (await hear(owner, b_port, everyone))["caller"] == ["owner"] * 5

        # Consultation: the consulted agent's phone rings and answers; the caller is on hold.
        await asyncio.to_thread(
            center.acd.execute,
            tenant,
            "consult",
            interaction_id=interaction_id,
            agent_id=world.agent_id,
            target_agent_id=OTHER,
        )
        await until(
            lambda: any(k == "call.consult_connected" for k, _ in center.call_events),
            "the consulted phone to answer",
        )
        assert media.c is not None
        c_port = media.c.port
        assert (await hear(owner, b_port, everyone)) == {
            "caller": [],
            "owner": [],
            "consulted": ["owner"] * 5,
        }
        assert (await hear(consulted, c_port, everyone)) == {
            "caller": [],
            "owner": ["consulted"] * 5,
            "consulted": [],
        }
        assert (await hear(caller, a_port, everyone)) == {
            "caller": [],
            "owner": [],
            "consulted": [],
        }
        # On hold, the caller hears the platform's music (and only the caller does).
        assert caller.music > 10 and owner.music == consulted.music == 0

        # Warm transfer from the owner's desktop: caller <-> consulted agent, owner hung up.
        await asyncio.to_thread(
            center.acd.execute,
            tenant,
            "transfer",
            interaction_id=interaction_id,
            agent_id=world.agent_id,
            to_agent_id=OTHER,
        )
        rc, out = await owner_sipp  # the old owner's phone got its BYE
        assert rc == 0, out[-3000:]
        assert (await hear(caller, a_port, everyone)) == {
            "caller": [],
            "owner": [],
            "consulted": ["caller"] * 5,
        }
        assert (await hear(consulted, c_port, everyone)) == {
            "caller": ["consulted"] * 5,
            "owner": [],
            "consulted": [],
        }
        assert (await hear(owner, b_port, everyone)) == {
            "caller": [],
            "owner": [],
            "consulted": [],
        }
        assert call.b is not None and call.b.agent_id == OTHER
        assert media.b.port == c_port  # the consulted phone's relay leg is the call's b now
        heard = caller.music
        await asyncio.sleep(0.3)
        caller.received()
        assert caller.music == heard and call.waiting is None  # the music stopped

        # The new owner completes on the desktop: both remaining legs get BYE.
        await asyncio.to_thread(
            center.acd.execute, tenant, "complete", interaction_id=interaction_id, agent_id=OTHER
        )
        for task in (caller_sipp, consulted_sipp):
            rc, out = await task
            assert rc == 0, out[-3000:]
    transferred = [p for k, p in center.engine_events() if k == "interaction.transferred"]
    assert [(p["kind"], p["to_agent_id"]) for p in transferred] == [("consult", OTHER)]
    # The routing engine heard the consulted phone answer before the transfer: its ring
    # time is reported apart, not counted as talk.
    assert consult_events(center, interaction_id) == [
        ("interaction.consult_started", OTHER),
        ("interaction.consult_connected", OTHER),
        ("interaction.transferred", OTHER),
        ("interaction.completed", OTHER),
    ]
    await until(lambda: center.server.calls.active_calls == 0, "the call to end")
    kinds = [k for k, _ in center.call_events]
    assert "call.consulting" in kinds and "call.transferred" in kinds


async def test_cancelled_consultation_reconnects_the_caller(center: Center, tmp_path: Path) -> None:
    world = center.world
    tenant = world.tenant_id
    caller_xml, phone_xml = scenarios(tmp_path)
    with phones() as (caller, owner, consulted):
        owner_sipp = agent_phone(phone_xml, 5080, 16000, OWNER_RTP)
        consulted_sipp = agent_phone(phone_xml, 5082, 16100, CONSULTED_RTP)
        await asyncio.sleep(0.3)
        await register(center, "2001", 5080, 5070)
        await register(center, "2002", 5082, 5072)
        login(center, world.agent_id, OTHER)
        caller_sipp = call_the_queue(center, caller_xml)
        await center.wait_for("interaction.accepted")
        await until(lambda: the_call(center).answered, "the caller's 200 OK")
        media = the_call(center).media
        a_port, b_port = media.a.port, media.b.port
        interaction_id = next(
            p["interaction_id"] for k, p in center.engine_events() if k == "interaction.accepted"
        )
        everyone = (caller, owner, consulted)
        await asyncio.to_thread(
            center.acd.execute,
            tenant,
            "consult",
            interaction_id=interaction_id,
            agent_id=world.agent_id,
            target_agent_id=OTHER,
        )
        await until(
            lambda: any(k == "call.consult_connected" for k, _ in center.call_events),
            "the consulted phone to answer",
        )
        assert (await hear(owner, b_port, everyone))["consulted"] == ["owner"] * 5
        # The owner ends the consultation on the desktop: the consulted phone gets BYE.
        await asyncio.to_thread(
            center.acd.execute, tenant, "leave", interaction_id=interaction_id, agent_id=OTHER
        )
        rc, out = await consulted_sipp
        assert rc == 0, out[-3000:]
        assert (await hear(caller, a_port, everyone)) == {
            "caller": [],
            "owner": ["caller"] * 5,
            "consulted": [],
        }
        assert (await hear(owner, b_port, everyone)) == {
            "caller": ["owner"] * 5,
            "owner": [],
            "consulted": [],
        }
        await asyncio.to_thread(
            center.acd.execute,
            tenant,
            "complete",
            interaction_id=interaction_id,
            agent_id=world.agent_id,
        )
        for task in (caller_sipp, owner_sipp):
            rc, out = await task
            assert rc == 0, out[-3000:]
    assert consult_events(center, interaction_id) == [
        ("interaction.consult_started", OTHER),
        ("interaction.consult_connected", OTHER),
        ("interaction.participant_left", OTHER),
        ("interaction.completed", world.agent_id),
    ]
    (left,) = [p for k, p in center.engine_events() if k == "interaction.participant_left"]
    assert (left["reason"], left["connected"]) == ("left", True)
    assert left["ring_seconds"] >= 0 and left["seconds"] >= 0
    await until(lambda: center.server.calls.active_calls == 0, "the call to end")
