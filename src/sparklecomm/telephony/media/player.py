"""Waiting media: the platform plays RTP to a caller and hears the caller's DTMF.

While a caller waits in a queue (early media), the platform itself is the party of the
caller's relay leg (:meth:`~sparklecomm.telephony.media.relay.RelaySession.attach`):

- :class:`RtpPlayer` sends a :class:`Program` (music, announcements: G.711 payload already
  encoded, 160 bytes per 20 ms) as an RTP stream of its own, paced on the event loop's
  clock (no thread, one timer per packet, no drift);
- :class:`DtmfReceiver` reads RFC 4733 telephone-events from the caller's packets and
  reports each key press once, at its first packet.
"""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from sparklecomm.core.errors import InvalidInput
from sparklecomm.telephony.media.rtp import G711_FRAME, build_rtp_packet

log = structlog.get_logger("sparklecomm.media.player")

PCMU_SILENCE = 0xFF
"""The G.711 µ-law byte of silence."""
PCMA_SILENCE = 0xD5
"""The G.711 A-law byte of silence."""

MAX_LATE_FRAMES = 3
"""How many frames late the loop may be before the player skips ahead instead of catching up."""


class Program(Protocol):
    """What a player plays, one frame at a time (built by whoever starts the player)."""

    def next_frame(self) -> bytes | None:
        """The payload of the next 20 ms (160 bytes of G.711), or ``None``: nothing this
        time (no packet is sent; the stream's timestamp still advances)."""
        ...


class Playlist:
    """Clips played once in order, then ``loop`` over and over (nothing after the clips
    when there is no loop).

    Clips are G.711 bytes (of the codec the player sends), any length: the last frame of each
    clip is padded with ``silence`` (:data:`PCMU_SILENCE` or :data:`PCMA_SILENCE`).
    """

    def __init__(
        self,
        clips: Sequence[bytes] = (),
        loop: bytes | None = None,
        *,
        silence: int = PCMU_SILENCE,
        frame: int = G711_FRAME,
    ) -> None:
        if isinstance(silence, bool) or not isinstance(silence, int) or not 0 <= silence <= 255:
            raise InvalidInput(
                f"silence must be a byte value 0-255, not {silence!r}", field="silence"
            )
        if isinstance(frame, bool) or not isinstance(frame, int) or frame < 1:
            raise InvalidInput(
                f"frame must be a positive number of bytes, not {frame!r}", field="frame"
            )
        if isinstance(clips, (bytes, bytearray)):
            raise InvalidInput("clips must be a list of clips, not one clip", field="clips")
        if loop is not None and not loop:
            raise InvalidInput("loop must not be empty (pass None for no loop)", field="loop")
        self._silence = silence
        self._frame = frame
        self._frames: list[bytes] = []
        for index, clip in enumerate(clips):
            if not isinstance(clip, (bytes, bytearray)):
                raise InvalidInput(
                    f"clip {index} must be G.711 bytes, not {type(clip).__name__}", field="clips"
                )
            self._frames += self._split(clip)
        self._loop = self._split(loop) if loop is not None else []
        self._next = 0
        self._looping = False

    def _split(self, clip: bytes) -> list[bytes]:
        frame = self._frame
        frames = [bytes(clip[i : i + frame]) for i in range(0, len(clip), frame)]
        if frames and len(frames[-1]) < frame:
            frames[-1] += bytes((self._silence,)) * (frame - len(frames[-1]))
        return frames

    def next_frame(self) -> bytes | None:
        if not self._looping:
            if self._next < len(self._frames):
                self._next += 1
                return self._frames[self._next - 1]
            if not self._loop:
                return None
            self._looping = True
            self._next = 0
        frame = self._loop[self._next]
        self._next = (self._next + 1) % len(self._loop)
        return frame


class RtpPlayer:
    """Paces 20 ms RTP packets of a :class:`Program` to ``send`` (e.g. the function
    :meth:`RelaySession.attach <sparklecomm.telephony.media.relay.RelaySession.attach>`
    returns).

    One stream of its own (RFC 3550): random initial SSRC, sequence number and timestamp;
    the sequence number grows by one per packet sent, the timestamp by one frame's samples
    (160 at 20 ms) per frame time, also over gaps (a program returning ``None``) and while
    stopped; the marker bit is set on the first packet and on the first after every gap.

    Packets are sent at ``start + n * ptime`` on the loop's clock (``loop.call_at``), so
    timing errors do not add up. When the loop falls more than ``max_late_frames`` frames
    behind, the frames it missed are skipped (counted in :attr:`frames_skipped`, the
    program does not advance for them) rather than sent in a burst.
    """

    def __init__(
        self,
        send: Callable[[bytes], None],
        *,
        payload_type: int,
        loop: asyncio.AbstractEventLoop | None = None,
        ptime: float = 0.020,
        clock_rate: int = 8000,
        max_late_frames: int = MAX_LATE_FRAMES,
    ) -> None:
        if isinstance(payload_type, bool) or not isinstance(payload_type, int):
            raise InvalidInput(
                f"payload_type must be a number 0-127, not {payload_type!r}", field="payload_type"
            )
        if not 0 <= payload_type <= 127:
            raise InvalidInput(
                f"payload_type must be 0-127, not {payload_type}", field="payload_type"
            )
        if not 0.001 <= ptime <= 1.0:
            raise InvalidInput(f"ptime must be 0.001-1 s, not {ptime!r}", field="ptime")
        samples = round(ptime * clock_rate)
        if samples < 1:
            raise InvalidInput(
                f"clock_rate {clock_rate!r} gives no sample per frame", field="clock_rate"
            )
        if isinstance(max_late_frames, bool) or not (
            isinstance(max_late_frames, int) and max_late_frames >= 1
        ):
            raise InvalidInput(
                f"max_late_frames must be a whole number >= 1, not {max_late_frames!r}",
                field="max_late_frames",
            )
        self._send = send
        self._max_late = max_late_frames
        self._payload_type = payload_type
        self._loop = loop
        self._ptime = float(ptime)
        self._samples = samples
        rng = random.SystemRandom()
        self.ssrc = rng.getrandbits(32)
        self._sequence = rng.getrandbits(16)
        self._timestamp0 = rng.getrandbits(32)
        self._program: Program | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._start = 0.0  # loop time of frame 0
        self._frame = 0  # index of the next frame to send
        self._started = False
        self._marker = True
        self._packets_sent = 0
        self.frames_skipped = 0

    @property
    def packets_sent(self) -> int:
        return self._packets_sent

    @property
    def playing(self) -> bool:
        """Whether the player is pacing frames now (between :meth:`play` and :meth:`stop`)."""
        return self._handle is not None

    def play(self, program: Program) -> None:
        """Play ``program`` from the next frame on (replacing what plays now); starts the
        pacing when stopped. Needs a running event loop unless one was given."""
        self._program = program
        if self._handle is not None:
            return
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._started:
            self._started = True
            self._start = now
            self._frame = 0
        else:  # resume on the same time grid: the timestamp tells how long we were quiet
            elapsed = int((now - self._start) / self._ptime) + 1
            self._frame = max(self._frame, elapsed)
        self._marker = True
        self._handle = loop.call_at(self._start + self._frame * self._ptime, self._tick)

    def stop(self) -> None:
        """Stop sending (idempotent); :meth:`play` starts again, in the same stream."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None  # set by play()
        handle = self._handle
        ptime = self._ptime
        late = loop.time() - (self._start + self._frame * ptime)
        if late > self._max_late * ptime:
            skip = int(late / ptime)
            self._frame += skip
            self.frames_skipped += skip
            self._marker = True
        frame = self._frame
        self._frame = frame + 1
        program = self._program
        try:
            payload = program.next_frame() if program is not None else None
        except Exception:
            log.exception("rtp.player_program_failed")
            if self._handle is handle:
                self._handle = None
            return
        if payload is None:
            self._marker = True
        else:
            packet = build_rtp_packet(
                payload,
                sequence=self._sequence,
                timestamp=self._timestamp0 + frame * self._samples,
                ssrc=self.ssrc,
                payload_type=self._payload_type,
                marker=self._marker,
            )
            self._marker = False
            self._sequence = (self._sequence + 1) & 0xFFFF
            self._packets_sent += 1
            self._send(packet)
        if self._handle is handle:  # not stopped (or restarted) by send or next_frame
            self._handle = loop.call_at(self._start + self._frame * ptime, self._tick)


DTMF_EVENTS = "0123456789*#ABCD"
"""RFC 4733 telephone-event codes 0-15 as keys."""


class DtmfReceiver:
    """Reports key presses from RFC 4733 telephone-event packets of one RTP stream.

    A press is reported once, at its first packet (the caller does not wait for the key to
    be released): all packets of one press share an RTP timestamp, so the repeats and the
    end packets (sent three times) of a press already seen are ignored. Events 0-9, ``*``,
    ``#`` and A-D are reported; other events, other payload types and malformed packets are
    ignored (``feed`` never raises for a packet; an error of ``on_digit`` propagates).
    """

    __slots__ = ("_on_digit", "_payload_type", "_seen")

    def __init__(self, payload_type: int, on_digit: Callable[[str], None]) -> None:
        if isinstance(payload_type, bool) or not isinstance(payload_type, int):
            raise InvalidInput(
                f"payload_type must be a number 0-127, not {payload_type!r}", field="payload_type"
            )
        if not 0 <= payload_type <= 127:
            raise InvalidInput(
                f"payload_type must be 0-127, not {payload_type}", field="payload_type"
            )
        self._payload_type = payload_type
        self._on_digit = on_digit
        # Recent presses by (SSRC, timestamp): a few, so a late packet of the previous
        # press is not a new one.
        self._seen: collections.deque[tuple[int, int]] = collections.deque(maxlen=8)

    def feed(self, packet: bytes) -> None:
        """One RTP packet of the stream (any payload type)."""
        size = len(packet)
        if size < 16 or packet[0] & 0xC0 != 0x80 or packet[1] & 0x7F != self._payload_type:
            return
        first = packet[0]
        offset = 12 + 4 * (first & 0x0F)
        if first & 0x10:  # header extension
            if offset + 4 > size:
                return
            offset += 4 + 4 * int.from_bytes(packet[offset + 2 : offset + 4], "big")
        end = size - packet[-1] if first & 0x20 else size
        if offset + 4 > end:
            return
        key = (
            int.from_bytes(packet[8:12], "big"),
            int.from_bytes(packet[4:8], "big"),
        )
        if key in self._seen:
            return
        self._seen.append(key)
        event = packet[offset]
        if event < 16:
            self._on_digit(DTMF_EVENTS[event])
