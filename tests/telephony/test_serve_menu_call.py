"""A voice menu through the real ``sparklecomm serve``: an administrator sets up a queue
with music on hold, a menu whose key 2 leads to it and a DID to the menu, over the REST API;
a caller (SIPp) dials the DID, is answered by the platform, hears the menu (RTP from the
platform), presses 2 (RFC 4733 from the caller's media port), hears music in the queue and
is answered by the agent's desk phone. Inside a loopback-only network namespace."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.telephony.sip_support import ServeApi
from tests.telephony.test_serve_queue_call import (
    CALLER_PASSWORD,
    SIPP,
    _events,
    _finish,
    _sipp,
    desk_phone_ready,
    serve_center,
)

from sparklecomm.telephony.media.rtp import build_rtp_packet, parse_rtp_header

MENU_DID = "5550200"
CALLER_MEDIA = 17100
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _press(sock: socket.socket, key: int, relay: tuple[str, int]) -> None:
    """One key press as a phone sends it (RFC 4733): three packets, then three end packets."""
    for n in range(6):
        end = n >= 3
        payload = bytes([key, (0x80 if end else 0) | 10]) + (800 if end else 160).to_bytes(2, "big")
        sock.sendto(
            build_rtp_packet(payload, sequence=n, timestamp=8000, ssrc=7, payload_type=101),
            relay,
        )


@contextmanager
def listening_caller(
    target: str, scenario: str, number: str, media_port: int, *, sip_port: int = 5071
) -> Iterator[tuple[subprocess.Popen[str], socket.socket]]:
    """A caller (SIPp ``scenario``, extension 1001) dialling ``number``, whose media is this
    test's socket on ``media_port`` (to hear the platform and press keys): the SIPp process
    and the socket (closed afterwards)."""
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind(("127.0.0.1", media_port))
    media.settimeout(15)
    try:
        caller = _sipp(
            target,
            *("-sf", str(SIPP / scenario), "-s", number, "-au", "1001"),
            *("-ap", CALLER_PASSWORD, "-auth_uri", f"{number}@{target}"),
            *("-key", "caller", "1001", "-key", "media_listen", str(media_port)),
            *("-p", str(sip_port), "-mp", str(media_port + 100)),
        )
        yield caller, media
    finally:
        media.close()


def test_a_caller_chooses_a_queue_in_the_menu_and_reaches_the_agent(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with serve_center(tmp_path) as (admin, ana_id, http_port, sip_port):
        admin.call(
            "POST",
            "/queues",
            {
                "id": "support",
                "name": "Support line",
                "channels": ["voice"],
                "members": [{"agent_id": ana_id}],
                "waiting": {"music_on_hold": True, "announce_every_seconds": None},
            },
        )
        admin.call(
            "PUT",
            "/telephony/ivr-menus/main",
            {
                "prompt": "For support, press 2.",
                "options": {"2": "queue:support"},
                "timeout_seconds": 3,
                "attempts": 2,
            },
        )
        admin.call("POST", "/telephony/dids", {"number": MENU_DID, "destination": "ivr:main"})

        target = f"127.0.0.1:{sip_port}"
        desk_phone = desk_phone_ready(target, log)
        with listening_caller(target, "menu_uac.xml", MENU_DID, CALLER_MEDIA) as (caller, media):
            # The menu: the platform's RTP arrives from the relay's caller port.
            packets = []
            while len(packets) < 25:
                data, relay = media.recvfrom(2048)
                packets.append(parse_rtp_header(data))
            assert {p.payload_type for p in packets} == {0}
            _press(media, 2, relay)
            # Ana is ready only now: the caller first waits in the queue, with music.
            agent = ServeApi(http_port)
            agent.login("ana", "ana-password-1")
            agent.call("POST", f"/agents/{ana_id}/login")  # ready at once: offered the call
            _finish(caller, "the caller", log)
        _finish(desk_phone, "the agent's desk phone", log)

        deadline = time.monotonic() + 15
        while True:
            events = _events(admin)
            kinds = [e["type"] for e in events]
            if "interaction.completed" in kinds or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        created = [e["payload"] for e in events if e["type"] == "interaction.created"]
        assert len(created) == 1, kinds
        assert created[0]["queue_id"] == "support"
        assert created[0]["attributes"]["ivr"] == "main:2"
        assert created[0]["attributes"]["dnis"] == MENU_DID
        calls = [e for e in events if e["type"].startswith("call.")]
        assert [e["type"] for e in calls] == [
            "call.started",
            "call.answered",
            "call.menu_choice",
            "call.answered",
            "call.ended",
        ], calls
        assert calls[1]["payload"]["leg"] == "menu main"
        assert calls[2]["payload"]["key"] == "2"
        assert calls[3]["payload"]["agent_id"] == ana_id
        assert calls[4]["payload"]["reason"] == "caller_hangup"
