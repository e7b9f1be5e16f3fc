"""A voicemail message through the real ``sparklecomm serve``: an administrator points a DID
at the voicemail box of Ana's extension over the REST API; a caller (SIPp) dials it, is
answered by the platform, hears the greeting and the tone (RTP from the platform), speaks
(RTP from the caller's media port) and presses ``#``; the platform hangs up and the
message is listed, downloadable as WAV and stored under the data directory. Inside a
loopback-only network namespace."""

from __future__ import annotations

import io
import socket
import time
import wave
from pathlib import Path

import pytest
from tests.telephony.test_serve_menu_call import _press, listening_caller
from tests.telephony.test_serve_queue_call import (
    _events,
    _finish,
    serve_center,
)

from sparklecomm.telephony.media.rtp import build_rtp_packet

VOICEMAIL_DID = "5550300"
CALLER_MEDIA = 17200
#: How long the caller keeps sending audio before pressing #: the greeting and the tone
#: come first (a few seconds of speech), what follows is the message.
TALK_SECONDS = 12.0
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _talk(sock: socket.socket, relay: tuple[str, int], seconds: float) -> None:
    """PCMU audio as a phone sends it: a packet of 20 ms every 20 ms."""
    payload = bytes((0x10 + n * 7) % 0x7F for n in range(160))  # some non-silent samples
    start = time.monotonic()
    for n in range(int(seconds / 0.02)):
        packet = build_rtp_packet(
            payload, sequence=100 + n, timestamp=16000 + 160 * n, ssrc=9, payload_type=0
        )
        sock.sendto(packet, relay)
        delay = start + (n + 1) * 0.02 - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def test_a_caller_leaves_a_message_in_anas_box(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with serve_center(tmp_path) as (admin, _ana_id, _http_port, sip_port):
        admin.call(
            "POST", "/telephony/dids", {"number": VOICEMAIL_DID, "destination": "voicemail:2001"}
        )
        target = f"127.0.0.1:{sip_port}"
        scenario = "menu_uac_hung_up.xml"
        with listening_caller(target, scenario, VOICEMAIL_DID, CALLER_MEDIA, sip_port=5072) as (
            caller,
            media,
        ):
            _, relay = media.recvfrom(2048)  # the greeting: the platform's RTP arrives
            _talk(media, relay, TALK_SECONDS)
            _press(media, 11, relay)  # '#' ends the message; the platform hangs up
            _finish(caller, "the caller", log)

        deadline = time.monotonic() + 15
        while True:
            messages = admin.call("GET", "/telephony/voicemail?box=2001")
            assert isinstance(messages, list)
            if messages or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(messages) == 1, messages
        left = messages[0]
        assert left["box"] == "2001" and left["caller"] == "1001" and left["heard"] is False
        assert 1.0 <= left["seconds"] <= TALK_SECONDS

        with admin._opener.open(  # http://127.0.0.1 only
            f"{admin.base}/telephony/voicemail/{left['id']}/audio", timeout=15
        ) as response:
            assert response.headers["Content-Type"] == "audio/wav"
            audio = response.read()
        with wave.open(io.BytesIO(audio)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
            assert w.getnframes() == round(left["seconds"] * 8000)
        stored = list((tmp_path / "voicemail").glob(f"*/{left['id']}.wav"))
        assert [p.read_bytes() for p in stored] == [audio]

        events = _events(admin)
        kinds = [e["type"] for e in events]
        assert "voicemail.left" in kinds and "call.voicemail_left" in kinds, kinds
        started = [e["payload"] for e in events if e["type"] == "call.started"]
        assert started and started[-1]["route"] == "voicemail 2001"
