"""RTP header parsing, the G.711 stream generator and RTP port allocation (pure)."""

from __future__ import annotations

import struct

import pytest

from sparklecomm.core.errors import InvalidInput
from sparklecomm.telephony.media import (
    G711Stream,
    PortAllocator,
    PortRangeExhausted,
    RtpParseError,
    build_rtp_packet,
    parse_rtp_header,
)
from sparklecomm.telephony.media.rtp import PCMA, ulaw_decode, ulaw_encode, ulaw_tone


def test_parse_fixed_header() -> None:
    packet = build_rtp_packet(
        b"\x01" * 160, sequence=65535, timestamp=0xFFFFFF00, ssrc=0xDEADBEEF, marker=True
    )
    header = parse_rtp_header(packet)
    assert header.version == 2
    assert header.marker is True
    assert header.payload_type == 0
    assert header.sequence == 65535
    assert header.timestamp == 0xFFFFFF00
    assert header.ssrc == 0xDEADBEEF
    assert header.csrcs == ()
    assert (header.payload_offset, header.payload_length) == (12, 160)


def test_parse_csrcs_extension_and_padding() -> None:
    first = 0x80 | 0x20 | 0x10 | 2  # padding, extension, two CSRCs
    fixed = struct.pack("!BBHII", first, PCMA, 7, 1234, 42)
    csrcs = struct.pack("!II", 1, 2)
    extension = struct.pack("!HH", 0xBEDE, 1) + b"\x00" * 4
    payload = b"\xd5" * 10
    padding = b"\x00\x00\x03"
    header = parse_rtp_header(fixed + csrcs + extension + payload + padding)
    assert header.padding and header.extension
    assert header.payload_type == PCMA
    assert header.csrcs == (1, 2)
    assert header.payload_offset == 12 + 8 + 8
    assert header.payload_length == 10


@pytest.mark.parametrize(
    ("packet", "problem"),
    [
        (b"\x80\x00\x00", "too short"),
        (b"\x40" + b"\x00" * 11, "version 1"),
        (b"\x83" + b"\x00" * 15, "CSRC count 3"),
        (b"\x90" + b"\x00" * 11, "extension"),
        (b"\x90" + b"\x00" * 11 + b"\x00\x00\x00\x05", "extension of 5 words"),
        (b"\xa0" + b"\x00" * 11 + b"\x00", "padding count 0"),
        (b"\xa0" + b"\x00" * 11 + b"\x00\x20", "padding count 32"),
    ],
)
def test_malformed_packets_name_the_problem(packet: bytes, problem: str) -> None:
    with pytest.raises(RtpParseError, match=problem):
        parse_rtp_header(packet)


def test_payload_type_range() -> None:
    with pytest.raises(InvalidInput, match="payload type 128"):
        build_rtp_packet(b"", sequence=0, timestamp=0, ssrc=0, payload_type=128)


def test_ulaw_round_trip_is_close() -> None:
    assert ulaw_encode(0) == 0xFF  # µ-law silence
    for sample in (-32000, -1000, -10, 0, 10, 1000, 32000):
        decoded = ulaw_decode(ulaw_encode(sample))
        assert abs(decoded - sample) <= max(8, abs(sample) // 16)


def test_ulaw_tone_is_a_sine() -> None:
    samples = [ulaw_decode(b) for b in ulaw_tone(1000.0, 8)]  # 8 samples = one period at 1 kHz
    assert samples[0] == 0
    assert samples[2] > 7000 and samples[6] < -7000


def test_g711_stream_advances_and_wraps() -> None:
    stream = G711Stream(ssrc=9, sequence=65534, timestamp=0xFFFFFF60)
    first = parse_rtp_header(stream.next_packet())
    second = parse_rtp_header(stream.next_packet())
    stream.skip(3)
    third = parse_rtp_header(stream.next_packet())
    assert (first.sequence, second.sequence, third.sequence) == (65534, 65535, 3)
    assert first.marker and not second.marker
    assert second.timestamp == 0  # wrapped
    assert third.timestamp == 4 * 160
    assert first.payload_length == 160
    assert stream.next_packet() != stream.next_packet()  # the tone moves on


def test_ports_are_even_pairs_and_wrap_around() -> None:
    ports = PortAllocator(20001, 20010)  # pairs 20002/3 … 20008/9
    assert ports.pairs == 4
    assert [ports.allocate() for _ in range(3)] == [20002, 20004, 20006]
    ports.release(20004)
    # Goes on round the range before reusing the port just released.
    assert ports.allocate() == 20008
    assert ports.allocate() == 20004
    ports.release(20002)
    assert ports.allocate() == 20002
    assert ports.in_use == 4


def test_exhausted_range_is_a_clear_error() -> None:
    ports = PortAllocator(30000, 30003)
    ports.allocate()
    ports.allocate()
    with pytest.raises(PortRangeExhausted, match="30000-30003: all 2 pairs are in use"):
        ports.allocate()
    ports.release(30002)
    assert ports.allocate() == 30002


@pytest.mark.parametrize(
    ("low", "high", "problem"),
    [(0, 100, "port_min must be"), (100, 70000, "port_max must be"), (20001, 20002, "no even")],
)
def test_bad_ranges(low: int, high: int, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        PortAllocator(low, high)
