"""RTP packets (RFC 3550 §5.1): header parsing, building, and a G.711 stream generator.

Pure functions and small classes, no I/O. The relay's hot path does not call
:func:`parse_rtp_header` (it reads the three fields it needs in place); this module is for
tests, tools and the media features that need the whole header.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from sparklecomm.core.errors import InvalidInput

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
PCMU = 0
"""Static payload type of G.711 µ-law (RFC 3551)."""
PCMA = 8
"""Static payload type of G.711 A-law (RFC 3551)."""
G711_CLOCK_RATE = 8000
G711_FRAME = 160
"""Samples (and bytes) in a 20 ms G.711 packet."""

_FIXED = struct.Struct("!BBHII")


class RtpParseError(InvalidInput):
    """A datagram that is not an RTP packet; the message says which check failed."""


@dataclass(frozen=True, slots=True)
class RtpHeader:
    """The fields of an RTP header; ``payload_offset`` is where the payload starts."""

    version: int
    padding: bool
    extension: bool
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    csrcs: tuple[int, ...]
    payload_offset: int
    payload_length: int


def parse_rtp_header(data: bytes) -> RtpHeader:
    """Parse an RTP packet's header, including CSRCs, header extension and padding.

    Raises :class:`RtpParseError` naming the problem: too short, wrong version, CSRC list or
    extension running past the end, bad padding count.
    """
    size = len(data)
    if size < RTP_HEADER_SIZE:
        raise RtpParseError(f"RTP packet too short: {size} bytes, the fixed header needs 12")
    first, second, sequence, timestamp, ssrc = _FIXED.unpack_from(data)
    version = first >> 6
    if version != RTP_VERSION:
        raise RtpParseError(f"RTP version {version} is not supported (only version 2)")
    padding = bool(first & 0x20)
    extension = bool(first & 0x10)
    csrc_count = first & 0x0F
    offset = RTP_HEADER_SIZE + 4 * csrc_count
    if offset > size:
        raise RtpParseError(
            f"RTP CSRC count {csrc_count} needs {offset} bytes, the packet has {size}"
        )
    csrcs = struct.unpack_from(f"!{csrc_count}I", data, RTP_HEADER_SIZE) if csrc_count else ()
    if extension:
        if offset + 4 > size:
            raise RtpParseError("RTP header extension flag set but no extension header")
        words = int.from_bytes(data[offset + 2 : offset + 4], "big")
        offset += 4 + 4 * words
        if offset > size:
            raise RtpParseError(
                f"RTP header extension of {words} words runs past the end of the packet"
            )
    end = size
    if padding:
        pad = data[-1]
        if pad == 0 or offset + pad > size:
            raise RtpParseError(f"RTP padding count {pad} is invalid for a {size}-byte packet")
        end -= pad
    return RtpHeader(
        version=version,
        padding=padding,
        extension=extension,
        marker=bool(second & 0x80),
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        csrcs=tuple(csrcs),
        payload_offset=offset,
        payload_length=end - offset,
    )


def build_rtp_packet(
    payload: bytes,
    *,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload_type: int = PCMU,
    marker: bool = False,
) -> bytes:
    """A version-2 RTP packet without CSRCs, extension or padding."""
    if not 0 <= payload_type <= 127:
        raise InvalidInput(f"RTP payload type {payload_type} is outside 0-127")
    second = (0x80 if marker else 0) | payload_type
    header = _FIXED.pack(0x80, second, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF)
    return header + payload


def ulaw_encode(sample: int) -> int:
    """One 16-bit linear PCM sample to G.711 µ-law (ITU-T G.711, 14-bit magnitude)."""
    bias = 0x84
    clip = 32635
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not magnitude & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ulaw_decode(code: int) -> int:
    """One G.711 µ-law byte back to 16-bit linear PCM."""
    code = ~code & 0xFF
    sign = code & 0x80
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -magnitude if sign else magnitude


def ulaw_tone(frequency: float, samples: int, *, amplitude: int = 8000, start: int = 0) -> bytes:
    """µ-law samples of a sine tone, starting at sample index ``start`` (8 kHz)."""
    step = 2 * math.pi * frequency / G711_CLOCK_RATE
    return bytes(
        ulaw_encode(round(amplitude * math.sin(step * (start + i)))) for i in range(samples)
    )


class G711Stream:
    """Consecutive 20 ms G.711 µ-law packets of one source: sequence and timestamp advance.

    ``tone`` gives a sine of that frequency (Hz); ``None`` gives µ-law silence.
    """

    def __init__(
        self,
        *,
        ssrc: int,
        sequence: int = 0,
        timestamp: int = 0,
        tone: float | None = 440.0,
        payload_type: int = PCMU,
    ) -> None:
        self.ssrc = ssrc
        self.sequence = sequence & 0xFFFF
        self.timestamp = timestamp & 0xFFFFFFFF
        self.payload_type = payload_type
        self._tone = tone
        self._samples = 0
        self._first = True

    def next_packet(self) -> bytes:
        """The next packet (marker bit on the first one, as at the start of a talkspurt)."""
        if self._tone is None:
            payload = b"\xff" * G711_FRAME
        else:
            payload = ulaw_tone(self._tone, G711_FRAME, start=self._samples)
        packet = build_rtp_packet(
            payload,
            sequence=self.sequence,
            timestamp=self.timestamp,
            ssrc=self.ssrc,
            payload_type=self.payload_type,
            marker=self._first,
        )
        self._first = False
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + G711_FRAME) & 0xFFFFFFFF
        self._samples += G711_FRAME
        return packet

    def skip(self, packets: int = 1) -> None:
        """Advance as if ``packets`` packets had been sent (and lost)."""
        self.sequence = (self.sequence + packets) & 0xFFFF
        self.timestamp = (self.timestamp + packets * G711_FRAME) & 0xFFFFFFFF
        self._samples += packets * G711_FRAME
