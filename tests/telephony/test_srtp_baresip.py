"""SRTP pass-through (SDES, RFC 4568) between two real softphones: two baresip (Debian 1.0,
module ``srtp.so``) register over TLS as extensions 1001 and 1002 with
``mediaenc=srtp-mand``; 1001 calls 1002 through the real ``sparklecomm serve``. The B2BUA
passes ``RTP/SAVP`` and ``a=crypto`` from one leg to the other (re-anchored at the relay),
the relay forwards the encrypted packets unchanged, and each phone decrypts what the other
sent. Then the same ``RTP/SAVP``-only offer goes to a 1002 without SRTP (refused: the
caller gets 480). Everything runs inside a loopback-only network namespace (the ``serve``
fixture of test_sip_tls_baresip.py). Short checks of the SDP rules come last."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.telephony.sip_support import free_port
from tests.telephony.test_baresip import (
    BARESIP,
    PASSWORDS,
    TEMPLATES,
    Baresip,
    _tail,
    registered,
    run_baresip,
    wait_until,
)
from tests.telephony.test_sip_tls_baresip import TlsServe
from tests.telephony.test_sip_tls_baresip import serve as serve  # the module's fixture

from sparklecomm.telephony import sdp as sdplib

SRTP_MODULE = Path("/usr/lib/baresip/modules/srtp.so")

# The real-phone tests; the SDP checks at the end run everywhere.
needs_baresip = pytest.mark.skipif(
    BARESIP is None or not SRTP_MODULE.exists() or shutil.which("openssl") is None,
    reason="needs baresip (Debian package) with its srtp module, and openssl",
)


@contextlib.contextmanager
def srtp_phone(
    serve: TlsServe, tmp: Path, user: str, answermode: str, *, mediaenc: str | None = "srtp-mand"
) -> Iterator[Baresip]:
    """baresip registered as ``user`` over TLS, with SDES-SRTP (module ``srtp.so``;
    ``mediaenc=srtp-mand``: SRTP or no call) or, with ``mediaenc=None``, plain RTP only
    (no SRTP module loaded)."""
    assert BARESIP is not None
    sip_port, ctrl_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    rtp = free_port(socket.SOCK_DGRAM) & ~1
    config_dir = tmp / f"baresip-{user}"
    config_dir.mkdir()
    values = {
        "SIP_LISTEN": f"127.0.0.1:{sip_port}",
        "CTRL_LISTEN": f"127.0.0.1:{ctrl_port}",
        "RTP_PORTS": f"{rtp}-{rtp + 20}",
    }
    config = (TEMPLATES / "config").read_text()
    for name, value in values.items():
        config = config.replace("{" + name + "}", value)
    config = config.replace("sip_transports\t\tudp", "sip_transports\t\tudp,tcp,tls")
    # rtp_stats: the packet counts at the end of each call, printed to the output.
    config += f"sip_cafile\t\t{serve.certificate}\nrtp_stats\t\tyes\n"
    config += "" if mediaenc is None else "module\t\t\tsrtp.so\n"
    (config_dir / "config").write_text(config)
    encryption = "" if mediaenc is None else f"mediaenc={mediaenc};"
    (config_dir / "accounts").write_text(
        f"<sip:{user}@127.0.0.1:{serve.tls_port};transport=tls>;auth_user={user};"
        f"auth_pass={PASSWORDS[user]};answermode={answermode};{encryption}regint=60;"
        "audio_codecs=PCMU,PCMA\n"
    )
    (config_dir / "contacts").write_text("")
    output = tmp / f"baresip-{user}.log"
    with run_baresip(config_dir, output, sip_port, ctrl_port, f"baresip {user}") as phone:
        yield phone


def _messages(trace: str, tls_port: int, *, received: bool) -> list[str]:
    """The SIP messages in a ``baresip -s`` trace (read as text: lines end in ``\\n``) that
    the phone received from serve's TLS port (``received``) or sent to it."""
    found = []
    for block in trace.split("\x1b[36;1m#\n")[1:]:
        flow, _, rest = block.partition("\n")
        ours = f"127.0.0.1:{tls_port}"
        if flow.startswith(f"TLS {ours} ->") if received else flow.endswith(f"-> {ours}"):
            found.append(rest.split("\x1b[;m", 1)[0])
    return found


def _sdp(messages: list[str], start: str) -> sdplib.SessionDescription:
    """The SDP of the (last) INVITE-transaction message whose start line begins with
    ``start`` (``INVITE `` or ``SIP/2.0 200``)."""
    bodies = [
        m.split("\n\n", 1)[1]
        for m in messages
        if m.startswith(start) and re.search(r"^CSeq: \d+ INVITE$", m, re.M) and "\n\nv=0" in m
    ]
    assert bodies, f"no {start!r} with SDP in {messages}"
    return sdplib.parse(bodies[-1])


def _stats(trace: str) -> tuple[int, int, str]:
    """baresip's own counts at the end of the call: packets sent, received; the errors line."""
    found = re.search(r"packets:\s+(\d+)\s+(\d+)\s*\n.*\n(errors:.*)", trace)
    assert found, trace[-3000:]
    return int(found.group(1)), int(found.group(2)), found.group(3)


def _register(
    serve: TlsServe, phones: dict[str, Baresip], checks: dict[str, Callable[[], bool]]
) -> None:
    for user, phone in phones.items():

        def detail(phone: Baresip = phone) -> str:
            return _tail(phone.output) + _tail(serve.log)

        wait_until(f"{user}'s registration over TLS", checks[user], 20, detail)


@pytest.mark.slow
@pytest.mark.timeout(150)
@needs_baresip
def test_srtp_passes_through_between_two_baresip_phones(serve: TlsServe, tmp_path: Path) -> None:
    before = len(serve.events("call.ended"))
    checks = {user: registered(serve, user) for user in ("1001", "1002")}
    with (
        srtp_phone(serve, tmp_path, "1002", "auto") as callee,
        srtp_phone(serve, tmp_path, "1001", "manual") as caller,
    ):
        _register(serve, {"1001": caller, "1002": callee}, checks)
        reply = caller.control.command("dial", "1002")
        assert reply.get("ok") is True, reply
        caller.control.event("CALL_ESTABLISHED")
        callee.control.event("CALL_ESTABLISHED")
        time.sleep(2.0)  # about 100 packets each way (20 ms each)
        reply = caller.control.command("hangup")
        assert reply.get("ok") is True, reply
        caller.control.event("CALL_CLOSED")
        callee.control.event("CALL_CLOSED")
    # Read once both have exited: baresip's output to a file is flushed at exit.
    caller_log = caller.output.read_text(errors="replace")
    callee_log = callee.output.read_text(errors="replace")
    wait_until("call.ended", lambda: len(serve.events("call.ended")) > before, 10, serve.log_text)
    detail = caller_log[-4000:] + callee_log[-4000:]
    port = serve.tls_port

    # The SDES offer and answer went through the B2BUA: RTP/SAVP and the very same a=crypto
    # (the keys are the phones' own), re-anchored at the relay (another port).
    offer_sent = _sdp(_messages(caller_log, port, received=False), "INVITE ")
    offer_got = _sdp(_messages(callee_log, port, received=True), "INVITE ")
    answer_sent = _sdp(_messages(callee_log, port, received=False), "SIP/2.0 200")
    answer_got = _sdp(_messages(caller_log, port, received=True), "SIP/2.0 200")
    for sent, got in ((offer_sent, offer_got), (answer_sent, answer_got)):
        sent_audio, got_audio = sent.audio(), got.audio()
        assert sent_audio is not None and got_audio is not None, detail
        assert sent_audio.proto == got_audio.proto == "RTP/SAVP", got.to_bytes()
        crypto = got_audio.attributes("crypto")
        assert crypto and crypto == sent_audio.attributes("crypto"), got.to_bytes()
        assert crypto[0].split()[1] == "AES_CM_128_HMAC_SHA1_80", crypto
        assert got_audio.port != sent_audio.port, "not anchored at the relay"

    # Each phone switched SRTP on and decrypted what the other sent: baresip's own counts,
    # and not one RTP packet it failed to authenticate or decrypt. (baresip 1.0 logs one
    # "failed to decrypt RTCP packet with 16 bytes" at the start of an SRTP call, in a direct
    # call between two baresip without SparkleComm too: RTCP is not counted here.)
    for name, trace in (("caller", caller_log), ("callee", callee_log)):
        assert "srtp: audio: SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)" in trace, (
            name + ": " + trace[-3000:]
        )
        assert "failed to decrypt RTP packet" not in trace, name + ": " + trace[-3000:]
        sent_count, received_count, errors = _stats(trace)
        assert sent_count >= 50 and received_count >= 50, (name, sent_count, received_count)
        assert errors.split()[1:] == ["0", "0"], (name, errors)

    # The relay forwarded them both ways, unchanged: G.711 at 20 ms is 12 + 160 bytes of RTP,
    # and every packet carries the 10-byte SRTP authentication tag besides.
    ended = [e for e in serve.events("call.ended") if e["dialled"] == "1002"][-1]
    assert ended["caller"] == "1001" and ended["reason"] == "caller_hangup", ended
    media = ended["media"]
    for leg in ("a", "b"):
        assert media[f"{leg}_packets_in"] >= 50 and media[f"{leg}_packets_out"] >= 50, media
        assert media[f"{leg}_bytes_in"] == media[f"{leg}_packets_in"] * (12 + 160 + 10), media
        assert media[f"{leg}_dropped"] == 0, media


@pytest.mark.slow
@pytest.mark.timeout(150)
@needs_baresip
def test_savp_only_offer_to_a_phone_without_srtp_fails_the_call(
    serve: TlsServe, tmp_path: Path
) -> None:
    before = len(serve.events("call.ended"))
    checks = {user: registered(serve, user) for user in ("1001", "1002")}
    with (
        srtp_phone(serve, tmp_path, "1002", "auto", mediaenc=None) as callee,
        srtp_phone(serve, tmp_path, "1001", "manual") as caller,
    ):
        _register(serve, {"1001": caller, "1002": callee}, checks)
        reply = caller.control.command("dial", "1002")
        assert reply.get("ok") is True, reply
        closed = caller.control.event("CALL_CLOSED")
    caller_log = caller.output.read_text(errors="replace")
    callee_log = callee.output.read_text(errors="replace")
    wait_until("call.ended", lambda: len(serve.events("call.ended")) > before, 10, serve.log_text)
    port = serve.tls_port
    # The phone without SRTP got the RTP/SAVP offer and refused it (no usable stream) ...
    offer_got = _sdp(_messages(callee_log, port, received=True), "INVITE ")
    assert offer_got.media[0].proto == "RTP/SAVP", offer_got.to_bytes()
    refusals = [m for m in _messages(callee_log, port, received=False) if m.startswith("SIP/2.0 ")]
    assert refusals and refusals[-1].startswith("SIP/2.0 488 "), refusals
    # ... and the caller is told the same: every phone of the hunt refused the offer itself,
    # so the B2BUA answers 488 (calls.py ``_hunt``), not "unavailable".
    finals = [
        m.split("\n", 1)[0]
        for m in _messages(caller_log, port, received=True)
        if re.match(r"SIP/2\.0 [3-6]\d\d ", m)
        and re.search(r"^CSeq: \d+ INVITE$", m, re.M)
        and not m.startswith("SIP/2.0 407")
    ]
    assert finals and finals[-1] == "SIP/2.0 488 Not Acceptable Here", (finals, closed)
    ended = [e for e in serve.events("call.ended") if e["dialled"] == "1002"][-1]
    assert ended["status"] == 488 and ended["reason"] == "unavailable", ended


OFFER = (
    "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 4000 RTP/SAVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:DiULJHfPdJupq9mv6ZwnfguWmsGEC8trFK/I5LrE\r\n"
)


def test_an_sdes_offer_passes_the_filter_and_the_anchoring_unchanged() -> None:
    out = sdplib.anchor(sdplib.filter_codecs(sdplib.parse(OFFER)), "203.0.113.5", 20000)
    audio = out.audio()
    assert audio is not None and audio.proto == "RTP/SAVP" and audio.port == 20000
    assert audio.attributes("crypto") == sdplib.parse(OFFER).media[0].attributes("crypto")


def test_sparklecomm_never_answers_srtp_itself() -> None:
    # A consultation's offer and a consulted phone's re-INVITE are answered by us: no keys.
    with pytest.raises(sdplib.SdpError, match="SRTP"):
        sdplib.answer(sdplib.parse(OFFER), "203.0.113.5", 20000)
    both = OFFER + "m=audio 4002 RTP/AVP 0\r\n"
    answer = sdplib.answer(sdplib.parse(both), "203.0.113.5", 20000)
    assert [(m.proto, m.port) for m in answer.media] == [("RTP/SAVP", 0), ("RTP/AVP", 20000)]


def test_dtls_srtp_is_refused_naming_its_transport() -> None:
    body = OFFER.replace("RTP/SAVP", "UDP/TLS/RTP/SAVP")
    with pytest.raises(sdplib.SdpError, match="UDP/TLS/RTP/SAVP is not supported"):
        sdplib.filter_codecs(sdplib.parse(body))
