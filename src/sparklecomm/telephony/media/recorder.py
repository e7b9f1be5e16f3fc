"""Call recording: the RTP a call's phones send, as a stereo 8 kHz 16-bit PCM WAV file.

A :class:`CallRecorder` is fed by :meth:`RelaySession.tap
<sparklecomm.telephony.media.relay.RelaySession.tap>` (``recorder.feed`` has the listener's
signature). The LEFT channel is the caller (relay leg ``a``), the RIGHT channel the other
parties (legs ``b`` and ``c``, added with saturation), so a reviewer can tell who said what
and a speech-analytics job can transcribe each side on its own.

The file is written as the call goes, to ``.{name}.part`` beside the final name, and renamed
by :meth:`CallRecorder.close` once flushed and synced: a finished recording is never half
written, and the partial name is the contract with the start-up salvage of recordings whose
process died. The partial file is a valid WAV after every flush (the RIFF and data sizes in
its header are patched each time), so what a killed process leaves plays as it is.

Timeline: sample 0 is the clock at construction. Each leg's packets are placed by their RTP
timestamps, anchored to their arrival: the first packet of a source (SSRC) lands where it
arrived, the following ones where their timestamps say, so gaps (lost packets, silence
suppression) are silence, reordered packets land in place and a duplicate overwrites its
twin. A source whose timestamps stray more than a second from the arrival times (a jump, a
long silence, a restarted sender) is anchored again where it arrives. Only a short window
(:data:`WINDOW_SECONDS`) is kept in memory, in ``numpy`` arrays; what lies more than
:data:`SETTLE_SECONDS` behind the newest arrival is written out, at most every
:data:`FLUSH_EVERY` seconds of clock time. A packet that belongs before what was written is
too late and dropped (counted in :attr:`CallRecorder.late_packets`).

Privacy: :meth:`CallRecorder.pause` (a card number being read out) drops what the phones
send and writes exact silence over the paused span, whatever a packet's timestamp says; the
timeline keeps running, so the file keeps its length and the pauses are reported as offsets.

Cost: :meth:`CallRecorder.feed` runs in the event loop for every packet of every recorded
call. It reads the RTP header in place, decodes G.711 through a 256-entry lookup table and
copies the samples into the window with one slice assignment: no per-sample Python work, no
file I/O but the periodic flush (a write of half a second of audio to the page cache; the
only ``fsync`` is at :meth:`~CallRecorder.close`).
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import structlog

from sparklecomm.core.errors import InvalidInput
from sparklecomm.telephony.media.audio import SAMPLE_RATE, decode_table

log = structlog.get_logger("sparklecomm.media.recorder")

WINDOW_SECONDS = 3.0
"""Audio kept in memory per leg: from the last flush to a second past the newest arrival."""
SETTLE_SECONDS = 1.0
"""How far behind the newest arrival audio is written out (room for late packets)."""
FLUSH_EVERY = 0.5
"""Least clock time between two flushes while packets arrive."""
REANCHOR_SECONDS = 1.0
"""A packet whose timestamp places it further than this from its arrival re-anchors its leg."""

_CHANNELS = 2
_FRAME_BYTES = 2 * _CHANNELS  # 16-bit samples, left and right
_HEADER_SIZE = 44
_WINDOW = int(WINDOW_SECONDS * SAMPLE_RATE)
_SETTLE = int(SETTLE_SECONDS * SAMPLE_RATE)
_REANCHOR = int(REANCHOR_SECONDS * SAMPLE_RATE)
_SILENCE_CHUNK = SAMPLE_RATE  # frames of silence written at a time across a long gap

# Where each relay leg's samples go: row of the window (a = caller = left; b and c right,
# kept apart until written so that a duplicate overwrites its own leg only).
_ROWS = {"a": 0, "b": 1, "c": 2}
_TABLES = {0: decode_table("PCMU"), 8: decode_table("PCMA")}
"""RTP payload type -> G.711 decoding table (RFC 3551 static types: 0 PCMU, 8 PCMA)."""
_frombuffer = np.frombuffer
_uint8 = np.uint8

_unpack_seq_ts_ssrc = struct.Struct("!HII").unpack_from
_pack_size = struct.Struct("<I").pack


def _wav_header(frames: int) -> bytes:
    data = frames * _FRAME_BYTES
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        _CHANNELS,
        SAMPLE_RATE,
        SAMPLE_RATE * _FRAME_BYTES,
        _FRAME_BYTES,
        16,
        b"data",
        data,
    )


def partial_path(path: Path) -> Path:
    """Where the recording that will be ``path`` is written while the call goes on."""
    return path.parent / f".{path.name}.part"


@dataclass(frozen=True)
class RecordingResult:
    """A finished recording.

    ``seconds`` is the length of the timeline (paused spans included, as silence);
    ``pauses`` the paused spans as (start, end) offsets in seconds from the start;
    ``packets`` the RTP packets recorded (not those of unknown payload types, nor those
    dropped while paused, late or past ``max_seconds``); ``bytes`` the file's size.
    """

    path: Path
    seconds: float
    paused_seconds: float
    pauses: tuple[tuple[float, float], ...]
    bytes: int
    packets: int


class _LegClock:
    """Where a leg's RTP timestamps fall on the recording's timeline."""

    __slots__ = ("anchor_pos", "anchor_ts", "ssrc")

    def __init__(self, ssrc: int, anchor_ts: int, anchor_pos: int) -> None:
        self.ssrc = ssrc
        self.anchor_ts = anchor_ts
        self.anchor_pos = anchor_pos


class CallRecorder:
    """Records one call to a stereo WAV file (caller left, the other parties right).

    Starts at construction (the partial file is created then, its folder too). Feed it every
    RTP packet of the call with :meth:`feed` (the relay's ``tap``), end it with
    :meth:`close` (the file is renamed to ``path``) or :meth:`abort` (nothing is kept).
    ``max_seconds`` caps the length: past it nothing more is recorded, and :meth:`close`
    still finishes the file. ``OSError`` when the folder or the partial file cannot be
    created. Not thread-safe: use it from the event loop (``close`` syncs
    the file to disk, which can take a while on a busy disk: once the tap is removed it may
    run in a worker thread).
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_seconds: float = 4 * 3600,
    ) -> None:
        if (
            isinstance(max_seconds, bool)
            or not isinstance(max_seconds, int | float)
            or not math.isfinite(max_seconds)
            or max_seconds <= 0
        ):
            raise InvalidInput(
                f"max_seconds must be a positive number of seconds, not {max_seconds!r}",
                field="max_seconds",
            )
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self._clock = clock
        self._max_seconds = float(max_seconds)
        self._max_pos = int(max_seconds * SAMPLE_RATE)
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = open(self.partial, "w+b")  # noqa: SIM115  # closed by close/abort
        self._file.write(_wav_header(0))
        self._file.flush()
        self._start = clock()
        self._window = np.zeros((len(_ROWS), _WINDOW), dtype=np.int16)
        self._base = 0  # timeline position of the window's first sample = frames written
        self._newest = 0  # arrival position of the newest packet
        self._end = 0  # end of the latest samples placed
        self._last_flush = self._start
        self._legs: dict[str, _LegClock] = {}
        self._paused_at: float | None = None
        self._pauses: list[tuple[float, float]] = []
        self._pause_spans: list[tuple[int, int]] = []  # in samples; an open one ends at max
        self._error: OSError | None = None
        self._result: RecordingResult | None = None
        self._aborted = False
        self.packets = 0
        """Packets recorded (see :class:`RecordingResult`)."""
        self.late_packets = 0
        """Packets dropped because the audio where they belong was already written."""
        self.ignored_packets = 0
        """Packets not recorded: paused, malformed, unknown payload type, past the limit."""

    # -- state ---------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    @property
    def seconds(self) -> float:
        """Length of the timeline so far (paused spans included)."""
        if self._result is not None:
            return self._result.seconds
        return self._timeline_end() / SAMPLE_RATE

    def _timeline_end(self) -> int:
        """The timeline's end in samples: now, or the latest audio placed if it lies
        ahead (timestamps a little ahead of the clock), within ``max_seconds``."""
        now = round((self._clock() - self._start) * SAMPLE_RATE)
        return min(max(now, self._end, self._base), self._max_pos)

    def _offset(self) -> float:
        return min(max(self._clock() - self._start, 0.0), self._max_seconds)

    # -- privacy pauses --------------------------------------------------------------------

    def pause(self) -> None:
        """Stop recording what the phones say (the timeline runs on, as silence).
        No-op when paused already or finished."""
        if self._paused_at is not None or self._file is None:
            return
        self._paused_at = self._offset()
        self._pause_spans.append((round(self._paused_at * SAMPLE_RATE), self._max_pos))
        log.info("recording.paused", path=str(self.path), offset=round(self._paused_at, 3))

    def resume(self) -> None:
        """Record again after :meth:`pause`. No-op when not paused or finished."""
        if self._paused_at is None or self._file is None:
            return
        self._end_pause(self._offset())

    def _end_pause(self, end: float) -> None:
        start = self._paused_at
        assert start is not None
        end = max(end, start)
        self._paused_at = None
        self._pauses.append((start, end))
        self._pause_spans[-1] = (self._pause_spans[-1][0], round(end * SAMPLE_RATE))
        log.info("recording.resumed", path=str(self.path), offset=round(end, 3))

    # -- packets ---------------------------------------------------------------------------

    def feed(self, leg: str, packet: bytes) -> None:
        """Record one RTP packet that leg ``leg``'s phone sent (``RelaySession.tap``).

        PCMU and PCMA are recorded; other payload types (DTMF events, comfort noise) and
        malformed packets are ignored, as is everything while paused, once finished or
        past ``max_seconds``. Never raises for what the packet holds."""
        if self._paused_at is not None or self._file is None or self._error is not None:
            self.ignored_packets += 1
            return
        row = _ROWS.get(leg)
        size = len(packet)
        if row is None or size < 12:
            self.ignored_packets += 1
            return
        first = packet[0]
        table = _TABLES.get(packet[1] & 0x7F)
        if first & 0xC0 != 0x80 or table is None:
            self.ignored_packets += 1
            return
        offset = 12 + 4 * (first & 0x0F)
        if first & 0x10:  # header extension: 4 bytes, then its length in 32-bit words
            if offset + 4 > size:
                self.ignored_packets += 1
                return
            offset += 4 + 4 * ((packet[offset + 2] << 8) | packet[offset + 3])
        end = size
        if first & 0x20:  # padding: its length is the last byte
            pad = packet[-1]
            if pad == 0 or offset + pad > size:
                self.ignored_packets += 1
                return
            end -= pad
        count = end - offset  # G.711: a byte a sample
        if not 0 < count <= _WINDOW:  # empty, or longer than any voice packet
            self.ignored_packets += 1
            return
        _, timestamp, ssrc = _unpack_seq_ts_ssrc(packet, 2)
        now = self._clock()
        arrival = round((now - self._start) * SAMPLE_RATE)
        if arrival > self._newest:
            self._newest = arrival

        state = self._legs.get(leg)
        if state is None or state.ssrc != ssrc:
            state = self._legs[leg] = _LegClock(ssrc, timestamp, arrival)
            pos = arrival
        else:
            # signed: a packet reordered before the anchor lands just before it
            delta = ((timestamp - state.anchor_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            pos = state.anchor_pos + delta
            if not -_REANCHOR <= pos - arrival <= _REANCHOR:
                state.anchor_ts, state.anchor_pos = timestamp, arrival
                pos = arrival

        if now - self._last_flush >= FLUSH_EVERY:
            self._flush(self._newest - _SETTLE)
        if pos + count > self._max_pos:
            count = self._max_pos - pos
            if count <= 0:
                self.ignored_packets += 1
                return
        skip = self._base - pos
        if skip > 0:  # belongs (partly) to what was written already
            if skip >= count:
                self.late_packets += 1
                return
            offset += skip
            pos += skip
            count -= skip
        if pos + count > self._base + _WINDOW:  # far ahead of the window: make room
            self._flush(pos + count - _WINDOW)
            if self._error is not None:
                return
        start = pos - self._base
        window = self._window
        # Decoded straight into the window: no intermediate array.
        table.take(
            _frombuffer(packet, _uint8, count, offset), out=window[row, start : start + count]
        )
        if pos + count > self._end:
            self._end = pos + count
        self.packets += 1

    # -- writing ---------------------------------------------------------------------------

    def _flush(self, upto: int) -> None:
        """Write the timeline up to sample ``upto`` (what lies beyond the window is
        silence) and make the header say so."""
        self._last_flush = self._clock()
        upto = min(upto, self._max_pos)
        total = upto - self._base
        if total <= 0 or self._file is None:
            return
        try:
            from_window = min(total, _WINDOW)
            window = self._window
            frames = np.empty((from_window, _CHANNELS), dtype="<i2")
            frames[:, 0] = window[0, :from_window]
            mixed = window[1, :from_window].astype(np.int32)
            mixed += window[2, :from_window]
            np.clip(mixed, -32768, 32767, out=mixed)
            frames[:, 1] = mixed
            self._silence_pauses(frames, self._base)
            self._file.write(frames.tobytes())
            written = from_window
            while written < total:  # a long gap without packets: silence
                chunk = min(total - written, _SILENCE_CHUNK)
                self._file.write(bytes(chunk * _FRAME_BYTES))
                written += chunk
            # Keep the rest of the window, shifted to the new base.
            if total < _WINDOW:
                window[:, : _WINDOW - total] = window[:, total:]
                window[:, _WINDOW - total :] = 0
            else:
                window[:] = 0
            self._base = upto
            self._patch_header()
        except OSError as error:
            self._fail(error)

    def _silence_pauses(self, frames: np.ndarray, base: int) -> None:
        """Zero what falls in a paused span (a packet timed a little ahead of the pause,
        or a little behind the resume, must not leak into it)."""
        end = base + frames.shape[0]
        for start, stop in self._pause_spans:
            low, high = max(start, base), min(stop, end)
            if low < high:
                frames[low - base : high - base] = 0

    def _patch_header(self) -> None:
        file = self._file
        assert file is not None
        data = self._base * _FRAME_BYTES
        file.seek(4)
        file.write(_pack_size(36 + data))
        file.seek(40)
        file.write(_pack_size(data))
        file.seek(0, os.SEEK_END)
        file.flush()

    def _fail(self, error: OSError) -> None:
        """The disk refused a write: stop recording (the call goes on), keep the error for
        :meth:`close`."""
        self._error = error
        log.error("recording.write_failed", path=str(self.partial), error=str(error))

    # -- the end ---------------------------------------------------------------------------

    def close(self) -> RecordingResult:
        """Write everything up to the end of the timeline, sync it and rename the partial
        file to ``path``. Idempotent: a second call returns the same result.

        Raises the ``OSError`` of a failed write (the partial file stays, for salvage or
        :meth:`abort`), and ``RuntimeError`` after :meth:`abort`."""
        if self._result is not None:
            return self._result
        if self._aborted:
            raise RuntimeError(f"the recording {self.path} was aborted")
        if self._error is None:
            end = self._timeline_end()
            if self._paused_at is not None:
                self._end_pause(end / SAMPLE_RATE)
            self._flush(end)
        if self._error is not None:
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()  # the partial file stays, for the salvage
                self._file = None
            raise self._error
        file = self._file
        assert file is not None
        try:
            os.fsync(file.fileno())
            file.close()
            self._file = None
            os.replace(self.partial, self.path)
            _sync_folder(self.path.parent)
        except OSError as error:
            self._fail(error)
            raise
        seconds = self._base / SAMPLE_RATE
        pauses = tuple((min(s, seconds), min(e, seconds)) for s, e in self._pauses)
        self._result = RecordingResult(
            path=self.path,
            seconds=seconds,
            paused_seconds=sum(e - s for s, e in pauses),
            pauses=pauses,
            bytes=_HEADER_SIZE + self._base * _FRAME_BYTES,
            packets=self.packets,
        )
        log.info(
            "recording.closed",
            path=str(self.path),
            seconds=round(seconds, 3),
            packets=self.packets,
            late=self.late_packets,
            pauses=len(pauses),
        )
        return self._result

    def abort(self) -> None:
        """Stop and remove the partial file (the call is not to be kept). Idempotent; after
        :meth:`close` it does nothing (the recording is complete)."""
        if self._result is not None or self._aborted:
            return
        self._aborted = True
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self.partial.unlink()
        log.info("recording.aborted", path=str(self.path))


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform lets a folder be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)
