"""The relay's per-packet logic without sockets: fake transports and a fake clock."""

from __future__ import annotations

from typing import Any, cast

import pytest

from sparklecomm.core.errors import InvalidInput
from sparklecomm.telephony.media import G711Stream, RelayConfig, RelaySession
from sparklecomm.telephony.media.relay import _Endpoint
from sparklecomm.telephony.media.rtp import build_rtp_packet
from sparklecomm.telephony.sip.transport import loopback_only

PHONE_A = ("127.0.0.1", 40000)
PHONE_B = ("127.0.0.1", 42000)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []
        self.closed = False

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))

    def close(self) -> None:
        self.closed = True


def make_session(clock: Clock, **options: Any) -> tuple[RelaySession, dict[str, FakeTransport]]:
    config = RelayConfig(allowed_target=loopback_only, clock=clock, **options)
    session = RelaySession("call-1", config, 20000, 20002)
    transports = {}
    for name, endpoint in zip(("a", "a_rtcp", "b", "b_rtcp"), session._endpoints(), strict=True):
        transports[name] = FakeTransport()
        endpoint.connection_made(cast(Any, transports[name]))
    return session, transports


def feed(endpoint: _Endpoint, packet: bytes, source: tuple[str, int]) -> None:
    endpoint.datagram_received(packet, source)


async def test_forwards_both_ways_from_the_other_legs_socket() -> None:
    clock = Clock()
    session, sent = make_session(clock)
    session.set_remote("a", *PHONE_A)
    session.set_remote("b", *PHONE_B)
    from_a, from_b = G711Stream(ssrc=1).next_packet(), G711Stream(ssrc=2).next_packet()
    feed(session.a.rtp, from_a, PHONE_A)
    feed(session.b.rtp, from_b, PHONE_B)
    assert sent["b"].sent == [(from_a, PHONE_B)]  # a's packet leaves from b's socket to B
    assert sent["a"].sent == [(from_b, PHONE_A)]
    stats = session.stats()
    assert stats["a_packets_in"] == stats["a_packets_out"] == 1
    assert stats["b_bytes_out"] == len(from_a) == 172
    assert stats["a_latched"] == stats["b_latched"] == 1


async def test_sequence_gaps_count_as_lost_across_wrap_and_reordering() -> None:
    clock = Clock()
    session, _ = make_session(clock)
    session.set_remote("b", *PHONE_B)
    stream = G711Stream(ssrc=1, sequence=65530)
    held = b""
    for i in range(20):  # 65530 … 13 with the wrap in between
        clock.now += 0.02
        packet = stream.next_packet()
        if i in (3, 4, 10):
            continue  # lost
        if i == 14:
            held = packet  # reordered: arrives after the next one
            continue
        feed(session.a.rtp, packet, PHONE_A)
        if i == 15:
            feed(session.a.rtp, held, PHONE_A)
    stats = session.stats()
    assert stats["a_packets_in"] == 17
    assert stats["a_lost"] == 3
    assert stats["a_packets_in"] == stats["b_packets_out"]


async def test_a_restarted_stream_keeps_the_old_runs_losses() -> None:
    clock = Clock()
    session, _ = make_session(clock)
    first = G711Stream(ssrc=1, sequence=100)
    for i in range(10):
        packet = first.next_packet()
        if i != 5:
            feed(session.a.rtp, packet, PHONE_A)
    second = G711Stream(ssrc=2, sequence=30000)  # a new source after a re-INVITE, say
    for _ in range(5):
        feed(session.a.rtp, second.next_packet(), PHONE_A)
    second.skip(2)
    feed(session.a.rtp, second.next_packet(), PHONE_A)
    assert session.stats()["a_lost"] == 1 + 2


async def test_late_packets_are_those_delayed_beyond_the_threshold() -> None:
    clock = Clock()
    session, _ = make_session(clock, late_threshold=0.03)
    stream = G711Stream(ssrc=1)
    for i in range(50):
        packet = stream.next_packet()
        # 20 ms cadence with ±5 ms jitter, then a 100 ms stall that delays packets 30-34.
        jitter = 0.005 if i % 2 else -0.005
        delay = max(0.0, 0.1 - (i - 30) * 0.02) if 30 <= i < 35 else 0.0
        clock.now = 1000.0 + i * 0.02 + jitter + delay
        feed(session.a.rtp, packet, PHONE_A)
    stats = session.stats()
    assert stats["a_late"] == 4  # delayed 100, 80, 60, 40 ms; the one delayed 20 ms is not
    assert stats["a_lost"] == 0


async def test_timestamp_jump_is_not_counted_late() -> None:
    clock = Clock()
    session, _ = make_session(clock)
    stream = G711Stream(ssrc=1)
    for i in range(10):
        clock.now = 1000.0 + i * 0.02
        if i == 5:
            stream.timestamp += 8000 * 600  # sender jumps its clock ten minutes ahead ...
        feed(session.a.rtp, stream.next_packet(), PHONE_A)
    stream.timestamp -= 8000 * 1200  # ... then back
    clock.now += 0.02
    feed(session.a.rtp, stream.next_packet(), PHONE_A)
    assert session.stats()["a_late"] == 0


async def test_no_remote_yet_drops_and_counts() -> None:
    clock = Clock()
    session, sent = make_session(clock)
    feed(session.a.rtp, G711Stream(ssrc=1).next_packet(), PHONE_A)
    assert sent["b"].sent == []
    stats = session.stats()
    assert stats["a_dropped"] == 1
    assert stats["a_refused"] == 0


async def test_latching_overrides_a_wrong_sdp_address() -> None:
    clock = Clock()
    session, sent = make_session(clock)
    session.set_remote("a", "127.0.0.9", 5004)  # private address behind a NAT, say
    session.set_remote("b", *PHONE_B)
    feed(session.b.rtp, b"before", PHONE_B)
    assert sent["a"].sent == [(b"before", ("127.0.0.9", 5004))]  # SDP address until latched
    feed(session.a.rtp, G711Stream(ssrc=1).next_packet(), PHONE_A)
    feed(session.b.rtp, b"after", PHONE_B)
    assert sent["a"].sent[-1] == (b"after", PHONE_A)
    assert session.a.remote == PHONE_A
    assert session.a.latched


async def test_relatching_is_limited_to_the_window_or_the_sdp_ip() -> None:
    clock = Clock()
    session, sent = make_session(clock, latch_window=2.0)
    session.set_remote("a", "127.0.0.5", 5004)
    session.set_remote("b", *PHONE_B)
    packet = G711Stream(ssrc=1).next_packet()
    feed(session.a.rtp, packet, PHONE_A)  # first packet latches
    clock.now += 1.0
    feed(session.a.rtp, packet, ("127.0.0.2", 3000))  # within the window: re-latches
    assert session.a.remote == ("127.0.0.2", 3000)
    clock.now += 5.0
    feed(session.a.rtp, packet, ("127.0.0.3", 3000))  # after it: rejected
    assert session.a.remote == ("127.0.0.2", 3000)
    feed(session.a.rtp, packet, ("127.0.0.5", 6000))  # the SDP's IP, new port: accepted
    assert session.a.remote == ("127.0.0.5", 6000)
    stats = session.stats()
    assert stats["a_relatched"] == 2
    assert stats["a_rejected"] == 1
    assert stats["a_dropped"] == 1
    assert len(sent["b"].sent) == 3
    # A new SDP (re-INVITE) unlatches: the next source latches whatever it is.
    session.set_remote("a", "127.0.0.5", 5004)
    assert not session.a.latched
    feed(session.a.rtp, packet, ("127.0.0.3", 3000))
    assert session.a.remote == ("127.0.0.3", 3000)


async def test_refused_targets_are_dropped_and_counted() -> None:
    clock = Clock()
    session, sent = make_session(clock)
    session.set_remote("b", "192.0.2.10", 4000)  # not loopback: refused by allowed_target
    feed(session.a.rtp, G711Stream(ssrc=1).next_packet(), PHONE_A)
    assert sent["b"].sent == []
    # A latched source that the filter refuses is refused too.
    feed(session.b.rtp, G711Stream(ssrc=2).next_packet(), ("198.51.100.7", 4000))
    feed(session.a.rtp, G711Stream(ssrc=1).next_packet(), PHONE_A)
    assert sent["b"].sent == []
    stats = session.stats()
    assert stats["a_dropped"] == stats["a_refused"] == 2
    assert stats["b_packets_out"] == 0


async def test_rtcp_is_relayed_on_the_odd_ports() -> None:
    clock = Clock()
    session, sent = make_session(clock)
    session.set_remote("a", *PHONE_A)
    session.set_remote("b", "127.0.0.1", 42000, rtcp_port=42009)
    assert (session.a.rtcp_port, session.b.rtcp_port) == (20001, 20003)
    report = b"\x81\xc8\x00\x06" + b"\x00" * 24  # a sender report
    feed(session.a.rtcp, report, ("127.0.0.1", 40001))
    assert sent["b_rtcp"].sent == [(report, ("127.0.0.1", 42009))]
    feed(session.b.rtcp, report, ("127.0.0.1", 42009))
    assert sent["a_rtcp"].sent == [(report, ("127.0.0.1", 40001))]
    stats = session.stats()
    assert stats["a_rtcp_in"] == stats["b_rtcp_out"] == 1
    assert stats["a_packets_in"] == 0  # RTCP is not counted as RTP
    assert stats["a_lost"] == 0


async def test_idle_after_the_timeout_since_the_last_packet() -> None:
    clock = Clock()
    session, _ = make_session(clock, idle_timeout=30.0)
    clock.now += 20
    assert not session.is_idle()
    feed(session.a.rtcp, b"\x81\xc9\x00\x01" + b"\x00" * 4, PHONE_A)
    clock.now += 29
    assert not session.is_idle()
    clock.now += 1
    assert session.is_idle()


async def test_set_remote_rejects_bad_input() -> None:
    session, _ = make_session(Clock())
    with pytest.raises(InvalidInput, match="leg must be 'a' or 'b'"):
        session.set_remote(cast(Any, "c"), "127.0.0.1", 4000)
    with pytest.raises(InvalidInput, match="host must be an IP address"):
        session.set_remote("a", "phone.example.com", 4000)
    with pytest.raises(InvalidInput, match="port must be 0-65535"):
        session.set_remote("a", "127.0.0.1", 70000)
    session.set_remote("a", "127.0.0.1", 0)  # a disabled stream: nowhere to send
    assert session.a.remote is None
    session.set_remote("a", "0.0.0.0", 4000)  # old-style hold: nowhere either
    assert session.a.remote is None


def test_config_is_validated() -> None:
    with pytest.raises(InvalidInput, match="host must be an IP address"):
        RelayConfig(host="localhost")
    with pytest.raises(InvalidInput, match="idle_timeout must be positive"):
        RelayConfig(idle_timeout=0)
    with pytest.raises(InvalidInput, match="no even"):
        RelayConfig(port_min=20001, port_max=20001)
    assert RelayConfig(host="[::1]").host == "::1"


async def test_non_rtp_datagrams_are_forwarded_without_stats() -> None:
    clock = Clock()
    session, sent = make_session(clock)
    session.set_remote("b", *PHONE_B)
    feed(session.a.rtp, b"\x00\x01hello", PHONE_A)  # e.g. a STUN binding request
    feed(session.a.rtp, build_rtp_packet(b"", sequence=1, timestamp=0, ssrc=1), PHONE_A)
    assert len(sent["b"].sent) == 2
    assert session.stats()["a_lost"] == 0


async def test_rtcp_muxed_on_the_rtp_port_is_relayed_but_not_counted_as_rtp() -> None:
    clock = Clock()
    session, sent = make_session(clock)
    session.set_remote("b", *PHONE_B)
    stream = G711Stream(ssrc=1)
    feed(session.a.rtp, stream.next_packet(), PHONE_A)
    receiver_report = b"\x81\xc9\x00\x07" + b"\x00" * 28  # PT 201 (RFC 5761 demultiplexing)
    feed(session.a.rtp, receiver_report, PHONE_A)
    feed(session.a.rtp, stream.next_packet(), PHONE_A)
    assert [data for data, _ in sent["b"].sent][1] == receiver_report
    stats = session.stats()
    assert stats["a_lost"] == 0
    assert stats["a_packets_in"] == 3
