"""The relay with real UDP sockets on 127.0.0.1 (every target loopback, ``loopback_only``)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from sparklecomm.telephony.media import (
    G711Stream,
    MediaRelay,
    PortRangeExhausted,
    RelayConfig,
    RelaySession,
    parse_rtp_header,
)
from sparklecomm.telephony.sip.transport import loopback_only

HOST = "127.0.0.1"


@pytest.fixture
async def relay() -> AsyncIterator[MediaRelay]:
    relay = MediaRelay(RelayConfig(port_min=31000, port_max=31199, allowed_target=loopback_only))
    await relay.start()
    yield relay
    await relay.stop()


class Phone:
    """A UDP endpoint on loopback: an RTP socket and an RTCP socket one port above."""

    def __init__(self) -> None:
        self.rtp, self.rtcp = _pair()
        self.address = self.rtp.getsockname()

    async def recv(self, sock: socket.socket | None = None, within: float = 2.0) -> bytes:
        loop = asyncio.get_running_loop()
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock or self.rtp, 2048), within)
        return data

    def pending(self) -> bool:
        try:
            self.rtp.recv(2048, socket.MSG_PEEK)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()


def _pair() -> tuple[socket.socket, socket.socket]:
    for _ in range(50):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind((HOST, 0))
        port = rtp.getsockname()[1]
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtcp.bind((HOST, port + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            continue
        rtp.setblocking(False)
        rtcp.setblocking(False)
        return rtp, rtcp
    raise RuntimeError("no free pair of loopback ports")


@pytest.fixture
def phones() -> Iterator[tuple[Phone, Phone]]:
    a, b = Phone(), Phone()
    yield a, b
    a.close()
    b.close()


async def test_g711_both_ways(relay: MediaRelay, phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    session = await relay.open("call-both-ways")
    assert session.a.host == HOST and session.a.port % 2 == 0
    assert session.b.port != session.a.port
    session.set_remote("a", *a.address)
    session.set_remote("b", *b.address)
    to_b, to_a = G711Stream(ssrc=0xA), G711Stream(ssrc=0xB, tone=1000.0)
    sent_ab: list[bytes] = []
    sent_ba: list[bytes] = []
    for _ in range(50):
        sent_ab.append(to_b.next_packet())
        sent_ba.append(to_a.next_packet())
        a.rtp.sendto(sent_ab[-1], (HOST, session.a.port))
        b.rtp.sendto(sent_ba[-1], (HOST, session.b.port))
        await asyncio.sleep(0.002)
    got_b = [await b.recv() for _ in range(50)]
    got_a = [await a.recv() for _ in range(50)]
    assert got_b == sent_ab
    assert got_a == sent_ba
    assert parse_rtp_header(got_b[0]).ssrc == 0xA
    stats = session.stats()
    for leg in "ab":
        assert stats[f"{leg}_packets_in"] == stats[f"{leg}_packets_out"] == 50
        assert stats[f"{leg}_bytes_in"] == 50 * 172
        assert stats[f"{leg}_lost"] == stats[f"{leg}_dropped"] == 0


async def test_latching_when_the_sdp_address_is_wrong(
    relay: MediaRelay, phones: tuple[Phone, Phone]
) -> None:
    a, b = phones
    nowhere = Phone()  # what A's SDP says (its private address, as it were)
    try:
        session = await relay.open("call-nat")
        session.set_remote("a", *nowhere.address)
        session.set_remote("b", *b.address)
        stream_b = G711Stream(ssrc=2)
        b.rtp.sendto(stream_b.next_packet(), (HOST, session.b.port))
        assert parse_rtp_header(await nowhere.recv()).ssrc == 2  # before latching: SDP
        a.rtp.sendto(G711Stream(ssrc=1).next_packet(), (HOST, session.a.port))
        assert parse_rtp_header(await b.recv()).ssrc == 1
        packet = stream_b.next_packet()
        b.rtp.sendto(packet, (HOST, session.b.port))
        assert await a.recv() == packet  # latched: to where A really sends from
        assert not nowhere.pending()
        assert session.a.remote == a.address
        assert session.stats()["a_latched"] == 1
    finally:
        nowhere.close()


async def test_rtcp_is_relayed(relay: MediaRelay, phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    session = await relay.open("call-rtcp")
    session.set_remote("a", *a.address)
    session.set_remote("b", *b.address)
    assert session.a.rtcp_port == session.a.port + 1
    report = b"\x80\xc8\x00\x06" + bytes(range(24))
    a.rtcp.sendto(report, (HOST, session.a.rtcp_port))
    assert await b.recv(b.rtcp) == report
    b.rtcp.sendto(report[::-1], (HOST, session.b.rtcp_port))
    assert await a.recv(a.rtcp) == report[::-1]
    stats = session.stats()
    assert stats["a_rtcp_in"] == stats["b_rtcp_out"] == 1
    assert stats["a_packets_in"] == 0


async def test_refused_target_is_never_sent_to(
    relay: MediaRelay, phones: tuple[Phone, Phone]
) -> None:
    a, _ = phones
    session = await relay.open("call-refused")
    session.set_remote("b", "192.0.2.1", 4000)  # TEST-NET-1: refused by loopback_only
    for _ in range(3):
        a.rtp.sendto(G711Stream(ssrc=1).next_packet(), (HOST, session.a.port))
    await _until(lambda: session.stats()["a_packets_in"] == 3)
    stats = session.stats()
    assert stats["a_refused"] == stats["a_dropped"] == 3
    assert stats["b_packets_out"] == 0


async def test_close_frees_the_ports() -> None:
    relay = MediaRelay(
        RelayConfig(port_min=31200, port_max=31299, allowed_target=loopback_only, spare_pairs=0)
    )
    await relay.start()
    try:
        session = await relay.open("call-close")
        ports = [session.a.port, session.a.rtcp_port, session.b.port, session.b.rtcp_port]
        assert relay.pairs_in_use == 2
        await session.close()
        await session.close()  # idempotent
        assert relay.pairs_in_use == 0 and relay.spares == 0
        assert relay.get("call-close") is None
        for port in ports:  # really unbound: a plain socket can take each one
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind((HOST, port))
            probe.close()
        again = await relay.open("call-close")
        assert again.a.port not in ports  # round the range, not straight back
    finally:
        await relay.stop()


async def test_closed_pairs_are_parked_and_reused_once_quiet(
    phones: tuple[Phone, Phone],
) -> None:
    now = [100.0]
    relay = MediaRelay(
        RelayConfig(
            port_min=31300,
            port_max=31399,
            allowed_target=loopback_only,
            spare_pairs=2,
            reuse_quiet=0.5,
            clock=lambda: now[0],
        )
    )
    await relay.start()
    a, b = phones
    try:
        first = await relay.open("call-1")
        ports = {first.a.port, first.b.port}
        first.set_remote("a", *a.address)
        first.set_remote("b", *b.address)
        await first.close()
        assert relay.pairs_in_use == 0 and relay.spares == 2
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with pytest.raises(OSError):  # still bound, parked
            probe.bind((HOST, first.a.port))
        probe.close()
        # A late packet of the old call is dropped, and keeps the pair from reuse a while.
        now[0] += 0.4
        a.rtp.sendto(G711Stream(ssrc=1).next_packet(), (HOST, first.a.port))
        await asyncio.sleep(0.05)
        assert not b.pending()
        now[0] += 0.3  # 0.7 s after closing, 0.3 s after the late packet: not quiet yet
        second = await relay.open("call-2")
        assert not {second.a.port, second.b.port} & ports
        await second.close()  # the spare list is full: its pairs are closed
        assert relay.spares == 2
        now[0] += 1.0
        third = await relay.open("call-3")
        assert {third.a.port, third.b.port} == ports  # the parked pairs, in service again
        assert relay.spares == 0 and relay.pairs_in_use == 2
        third.set_remote("a", *a.address)
        third.set_remote("b", *b.address)
        packet = G711Stream(ssrc=7).next_packet()
        a.rtp.sendto(packet, (HOST, third.a.port))
        assert await b.recv() == packet
        assert third.stats()["a_packets_in"] == 1  # fresh counters, not the old call's
    finally:
        await relay.stop()
    assert relay.pairs_in_use == 0 and relay.spares == 0


async def test_duplicate_call_is_a_conflict(relay: MediaRelay) -> None:
    from sparklecomm.core.errors import Conflict

    await relay.open("call-dup")
    with pytest.raises(Conflict, match="already has a media relay session"):
        await relay.open("call-dup")


async def test_exhausted_range_and_ports_held_by_others() -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind((HOST, 31901))  # another program holds the RTCP port of the first pair
    relay = MediaRelay(RelayConfig(port_min=31900, port_max=31905, allowed_target=loopback_only))
    await relay.start()
    try:
        session = await relay.open("one")
        assert {session.a.port, session.b.port} == {31902, 31904}
        with pytest.raises(PortRangeExhausted, match="31900-31905"):
            await relay.open("two")
        assert relay.pairs_in_use == 2
        holder.close()
        await session.close()
        three = await relay.open("three")
        assert {three.a.port, three.b.port} <= {31900, 31902, 31904}
    finally:
        holder.close()
        await relay.stop()
    assert relay.pairs_in_use == 0


async def test_idle_sessions_are_reported() -> None:
    idle: list[RelaySession] = []
    relay = MediaRelay(
        RelayConfig(port_min=31800, port_max=31849, allowed_target=loopback_only, idle_timeout=0.2),
        on_idle=idle.append,
    )
    await relay.start()
    try:
        session = await relay.open("call-idle")
        await _until(lambda: bool(idle), within=3.0)
        assert idle == [session]
        assert relay.idle_sessions() == [session]
    finally:
        await relay.stop()


async def _until(condition: Callable[[], bool], within: float = 2.0) -> None:
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {within} s")


async def test_ipv6_loopback() -> None:
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    relay = MediaRelay(RelayConfig(host="[::1]", port_min=31700, port_max=31749,
                                   allowed_target=loopback_only))  # fmt: skip
    await relay.start()
    other = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    other.bind(("::1", 0))
    try:
        session = await relay.open("call-v6")
        assert session.a.host == "::1"
        session.set_remote("b", "::1", other.getsockname()[1])
        packet = G711Stream(ssrc=6).next_packet()
        probe.sendto(packet, ("::1", session.a.port))
        loop = asyncio.get_running_loop()
        other.setblocking(False)
        probe.setblocking(False)
        assert await asyncio.wait_for(loop.sock_recv(other, 2048), 2) == packet
        session.set_remote("a", "[::1]", probe.getsockname()[1])  # brackets as in a URI
        other.sendto(packet, ("::1", session.b.port))
        assert await asyncio.wait_for(loop.sock_recv(probe, 2048), 2) == packet
    finally:
        probe.close()
        other.close()
        await relay.stop()


def test_spare_settings_are_checked() -> None:
    from sparklecomm.core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="spare_pairs"):
        RelayConfig(spare_pairs=-1)
    with pytest.raises(InvalidInput, match="reuse_quiet"):
        RelayConfig(reuse_quiet=-0.1)
