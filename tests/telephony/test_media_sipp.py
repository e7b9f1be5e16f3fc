"""Two SIPp instances' RTP through the relay: a caller streams G.711 (``rtp_stream``) to the
address its answer's SDP names (the relay's leg a), the relay sends it from leg b to the
callee, which echoes it (``-rtp_echo``) back through the relay to the caller.

Every address is 127.0.0.1 and the relay has ``allowed_target=loopback_only``; SIPp sends
RTP only to the SDP addresses written here (no namespace needed). Skips without ``sipp``.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path

import pytest

from sparklecomm.telephony.media import MediaRelay, RelayConfig
from sparklecomm.telephony.media.rtp import ulaw_tone
from sparklecomm.telephony.sip.transport import loopback_only

SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).parent / "sipp"
HOST = "127.0.0.1"
SECONDS = 2

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed")


def free_udp_port(*, pair: bool = False) -> int:
    """A free UDP port on loopback (with the port two above also free when ``pair``)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((HOST, 0))
            port = int(probe.getsockname()[1])
        if not pair:
            return port
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                other.bind((HOST, port + 2))
        except OSError:
            continue
        return port
    raise RuntimeError("no free UDP port on loopback")


async def test_sipp_rtp_flows_both_ways_through_the_relay(tmp_path: Path) -> None:
    audio = tmp_path / "tone.ulaw"  # media_uac.xml streams it for 2 s, then hangs up at 2.5 s
    audio.write_bytes(ulaw_tone(440.0, 8000 * SECONDS))  # 100 packets of 20 ms
    relay = MediaRelay(RelayConfig(port_min=31400, port_max=31499, allowed_target=loopback_only))
    await relay.start()
    uas_sip = free_udp_port()
    uas_media, uac_media = free_udp_port(pair=True), free_udp_port(pair=True)  # SIPp binds +2
    try:
        session = await relay.open("sipp-call")
        session.set_remote("a", HOST, uac_media)  # the caller's SDP
        session.set_remote("b", HOST, uas_media)  # the callee's SDP
        common = ["-i", HOST, "-mi", HOST, "-m", "1", "-nostdin", "-timeout", "20s"]
        common += ["-timeout_error"]
        uas = await asyncio.create_subprocess_exec(
            SIPP,  # type: ignore[arg-type]
            "-sf", str(SCENARIOS / "media_uas.xml"),
            "-p", str(uas_sip), "-mp", str(uas_media), "-rtp_echo",
            "-key", "relay_ip", session.a.host, "-key", "relay_port", str(session.a.port),
            *common,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
        )  # fmt: skip
        await asyncio.sleep(0.5)  # let it bind
        uac = await asyncio.create_subprocess_exec(
            SIPP,  # type: ignore[arg-type]
            f"{HOST}:{uas_sip}",
            "-sf", str(SCENARIOS / "media_uac.xml"),
            "-p", str(free_udp_port()), "-mp", str(uac_media),
            *common,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
        )  # fmt: skip
        _, uac_err = await asyncio.wait_for(uac.communicate(), 30)
        _, uas_err = await asyncio.wait_for(uas.communicate(), 30)
        assert uac.returncode == 0, uac_err.decode(errors="replace")[-2000:]
        assert uas.returncode == 0, uas_err.decode(errors="replace")[-2000:]
        stats = session.stats()
        sent = stats["a_packets_in"]  # the caller's stream, as the relay got it
        assert sent >= 90, stats
        assert stats["b_packets_out"] == sent  # all of it on to the callee
        assert stats["b_packets_in"] >= sent - 5  # echoed back (the last few may miss)
        assert stats["a_packets_out"] == stats["b_packets_in"]  # and on to the caller
        assert stats["a_lost"] == 0
        assert stats["a_latched"] == stats["b_latched"] == 1
        assert stats["a_dropped"] == stats["b_dropped"] == 0
    finally:
        await relay.stop()
