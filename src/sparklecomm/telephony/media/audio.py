"""Audio for callers waiting in a queue: G.711 codecs, WAV import, hold music, spoken prompts.

Every clip here is 8 kHz mono 16-bit PCM held as a one-dimensional ``numpy`` ``int16`` array,
ready to be encoded as µ-law (``PCMU``) or A-law (``PCMA``) and sent by the RTP player.
Nothing is downloaded and no recording ships with SparkleComm: the hold music is synthesised
and the announcements are spoken by ``espeak-ng`` on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import math
import os
import shutil
import struct
import wave
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from scipy.signal import resample_poly

from sparklecomm.core.errors import InvalidInput

log = structlog.get_logger("sparklecomm.media.audio")

SAMPLE_RATE = 8000
"""Every clip is 8 kHz mono ``int16``."""

PROMPT_MAX_CHARS = 500
"""Longest text :meth:`PromptVoice.speak` accepts."""
PROMPT_TIMEOUT_S = 10.0
"""How long ``espeak-ng`` may take to speak one prompt."""

_INT16_MIN = -32768
_INT16_MAX = 32767


def _as_pcm(pcm: Any, field: str = "pcm") -> np.ndarray:
    """Check that ``pcm`` is a 1-D run of integer samples in the int16 range; return int16."""
    array = np.asarray(pcm)
    if array.ndim != 1:
        raise InvalidInput(
            f"audio must be one channel of samples (a 1-D array), got {array.ndim} dimensions",
            field=field,
        )
    if array.size == 0:
        return np.zeros(0, dtype=np.int16)
    if array.dtype == np.int16:
        return array
    if not np.issubdtype(array.dtype, np.integer):
        raise InvalidInput(f"audio samples must be 16-bit integers, got {array.dtype}", field=field)
    low, high = int(array.min()), int(array.max())
    if low < _INT16_MIN or high > _INT16_MAX:
        raise InvalidInput(
            f"audio samples must lie in -32768..32767, got {low}..{high}", field=field
        )
    return array.astype(np.int16)


# --- G.711 (ITU-T Recommendation G.711) ------------------------------------------------------

_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """16-bit linear samples to G.711 µ-law bytes (one byte a sample)."""
    samples = _as_pcm(pcm).astype(np.int32)
    sign = np.where(samples < 0, 0x80, 0).astype(np.int32)
    magnitude = np.minimum(np.abs(samples), _ULAW_CLIP) + _ULAW_BIAS  # 132..32767
    # Segment (exponent): position of the highest set bit above bit 7.
    exponent = np.zeros_like(magnitude)
    for bit in range(8, 15):
        exponent += (magnitude >> bit) > 0
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    codes = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return bytes(codes.astype(np.uint8).tobytes())


def _ulaw_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(codes & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    # Decode to the middle of the quantisation interval, scaled from 13 to 16 bits.
    magnitude = np.where(
        segment == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(segment - 1, 0),
    )
    return np.where(codes & 0x80, magnitude, -magnitude).astype(np.int16)


_ULAW_DECODE = _ulaw_table()
_ALAW_DECODE = _alaw_table()


def ulaw_decode(data: bytes) -> np.ndarray:
    """G.711 µ-law bytes back to 16-bit linear samples."""
    return _ULAW_DECODE[np.frombuffer(bytes(data), dtype=np.uint8)]


def alaw_encode(pcm: np.ndarray) -> bytes:
    """16-bit linear samples to G.711 A-law bytes (one byte a sample)."""
    samples = _as_pcm(pcm).astype(np.int32) >> 3  # 13-bit signed
    negative = samples < 0
    magnitude = np.where(negative, -samples - 1, samples)  # 0..4095
    segment = np.zeros_like(magnitude)
    for bit in range(5, 12):
        segment += (magnitude >> bit) > 0
    mantissa = (magnitude >> np.maximum(segment, 1)) & 0x0F
    codes = (segment << 4) | mantissa | np.where(negative, 0, 0x80)
    return (codes ^ 0x55).astype(np.uint8).tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    """G.711 A-law bytes back to 16-bit linear samples."""
    return _ALAW_DECODE[np.frombuffer(bytes(data), dtype=np.uint8)]


def decode_table(codec: str) -> np.ndarray:
    """The 256-entry table that decodes ``PCMU`` or ``PCMA`` bytes (read-only int16).

    For hot paths that decode straight into a buffer of their own, without the
    intermediate arrays of :func:`decode`: ``np.take(decode_table("PCMU"), codes,
    out=buffer[i:j])`` where ``codes`` is ``np.frombuffer(packet, np.uint8, count, offset)``.
    """
    table = _ULAW_DECODE if _codec(codec) == "PCMU" else _ALAW_DECODE
    view = table.view()
    view.flags.writeable = False
    return view


def _codec(codec: str) -> str:
    name = codec.upper() if isinstance(codec, str) else ""
    if name not in ("PCMU", "PCMA"):
        raise InvalidInput(f"unknown codec {codec!r}: use PCMU or PCMA", field="codec")
    return name


def encode(codec: str, pcm: np.ndarray) -> bytes:
    """Encode samples for ``codec``: ``PCMU`` (µ-law) or ``PCMA`` (A-law), any letter case."""
    return ulaw_encode(pcm) if _codec(codec) == "PCMU" else alaw_encode(pcm)


def decode(codec: str, data: bytes) -> np.ndarray:
    """Decode ``PCMU`` or ``PCMA`` bytes to 16-bit linear samples."""
    return ulaw_decode(data) if _codec(codec) == "PCMU" else alaw_decode(data)


# --- WAV files --------------------------------------------------------------------------------

_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_FORMAT_NAMES = {
    0x0002: "Microsoft ADPCM",
    0x0003: "32-bit float",
    0x0006: "A-law",
    0x0007: "µ-law",
    0x0011: "IMA ADPCM",
    0x0055: "MP3",
}


def _parse_wav(data: bytes, name: str) -> np.ndarray:
    """RIFF/WAVE bytes to 8 kHz mono int16; ``name`` is used in error messages."""

    def bad(problem: str) -> InvalidInput:
        return InvalidInput(f"{name}: {problem}", field="file")

    if not data:
        raise bad("the file is empty")
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise bad("not a WAV file (no RIFF/WAVE header)")
    fmt: tuple[int, int, int, int] | None = None
    payload: bytes | None = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        body = data[offset + 8 : offset + 8 + size]  # clamped: streamed files lie about sizes
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise bad("the WAV format chunk is truncated")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
                (tag,) = struct.unpack_from("<H", body, 24)  # first two bytes of the sub-format
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            payload = body
            break
        offset += 8 + size + (size & 1)
    if fmt is None:
        raise bad("the WAV file has no format chunk")
    tag, channels, rate, bits = fmt
    if tag != _WAVE_FORMAT_PCM:
        kind = _FORMAT_NAMES.get(tag, f"format code {tag:#06x}")
        raise bad(f"compressed or non-integer audio ({kind}); save it as PCM WAV")
    if bits not in (8, 16, 24, 32):
        raise bad(f"{bits}-bit samples are not supported (use 8, 16, 24 or 32-bit PCM)")
    if channels < 1:
        raise bad("the WAV file declares no channels")
    if not 1000 <= rate <= 384000:
        raise bad(f"sample rate {rate} Hz is not plausible")
    if payload is None:
        raise bad("the WAV file has no data chunk")
    width = bits // 8
    frames = len(payload) // (width * channels)
    if frames == 0:
        raise bad("the WAV file contains no audio")
    raw = np.frombuffer(payload, dtype=np.uint8, count=frames * width * channels)
    if bits == 8:
        samples = (raw.astype(np.float64) - 128.0) * 256.0
    elif bits == 16:
        samples = raw.view("<i2").astype(np.float64)
    elif bits == 24:
        triples = raw.reshape(-1, 3).astype(np.int32)
        value = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        value = np.where(value & 0x800000, value - 0x1000000, value)
        samples = value.astype(np.float64) / 256.0
    else:
        samples = raw.view("<i4").astype(np.float64) / 65536.0
    mono = samples.reshape(frames, channels).mean(axis=1)
    if rate != SAMPLE_RATE:
        common = math.gcd(rate, SAMPLE_RATE)
        mono = np.asarray(resample_poly(mono, SAMPLE_RATE // common, rate // common))
    pcm: np.ndarray = np.clip(np.rint(mono), _INT16_MIN, _INT16_MAX).astype(np.int16)
    return pcm


def load_wav(path: str | Path) -> np.ndarray:
    """Read a PCM WAV file (8/16/24/32-bit, mono or stereo, any rate) as 8 kHz mono int16.

    Stereo is mixed down by averaging the channels. Raises :class:`InvalidInput` naming the file
    and what is wrong with it (missing, not a WAV, compressed, empty...).
    """
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InvalidInput(
            f"{file}: cannot read the file ({exc.strerror or exc})", field="file"
        ) from exc
    return _parse_wav(data, str(file))


def to_wav_bytes(pcm: np.ndarray) -> bytes:
    """A clip as an 8 kHz mono 16-bit WAV file, for downloads and tests."""
    samples = _as_pcm(pcm)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


# --- Hold music -------------------------------------------------------------------------------

# I - vi - IV - V in C major, as MIDI note numbers: the pad sits an octave above middle C, where
# a telephone line carries it well (narrowband calls lose most of what is below 300 Hz).
_PROGRESSION = (
    (72, 76, 79),  # C
    (69, 72, 76),  # A minor
    (65, 69, 72),  # F
    (67, 71, 74),  # G
)
_ARPEGGIO = (0, 1, 2, 3, 2, 1, 2, 1)  # indexes into the chord tones plus the octave
_CHORD_SECONDS = 2.0
_PEAK = 10 ** (-12 / 20)  # -12 dBFS


def _hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _add_circular(buffer: np.ndarray, start: int, tone: np.ndarray) -> None:
    index = (start + np.arange(tone.size)) % buffer.size
    np.add.at(buffer, index, tone)


def _pad_voice(freq: float, length: int, attack: float, release: float) -> np.ndarray:
    t = np.arange(length) / SAMPLE_RATE
    # Soft triangle-ish timbre: fundamental plus a little of the odd harmonics.
    wave_ = np.sin(2 * np.pi * freq * t)
    for harmonic, weight in ((3, -1 / 9), (5, 1 / 25)):
        if freq * harmonic < 3400:
            wave_ += weight * np.sin(2 * np.pi * freq * harmonic * t)
    envelope = np.ones(length)
    a = max(1, int(attack * SAMPLE_RATE))
    r = max(1, int(release * SAMPLE_RATE))
    envelope[:a] = 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / a)
    envelope[-r:] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(1, r + 1) / r)
    return np.asarray(wave_ * envelope)


def _pluck(freq: float, length: int) -> np.ndarray:
    t = np.arange(length) / SAMPLE_RATE
    tone = np.sin(2 * np.pi * freq * t)
    if 2 * freq < 3400:
        tone += 0.2 * np.sin(4 * np.pi * freq * t)
    envelope = np.exp(-t / 0.3)
    attack = max(1, int(0.008 * SAMPLE_RATE))
    envelope[:attack] *= np.arange(attack) / attack
    fade = min(length, int(0.05 * SAMPLE_RATE))
    envelope[length - fade :] *= np.linspace(1.0, 0.0, fade)
    return np.asarray(tone * envelope)


@lru_cache(maxsize=4)
def default_music(seconds: float = 32.0) -> np.ndarray:
    """SparkleComm's own hold music: a calm I-vi-IV-V chord loop with a soft arpeggio.

    Deterministic (the same samples every time), peaking around -12 dBFS, and loopable: it
    starts at a zero crossing and its end runs smoothly into its start. The returned array is
    shared and read-only.
    """
    if not isinstance(seconds, int | float) or not 1.0 <= seconds <= 600.0:
        raise InvalidInput(f"music length {seconds!r} s must be between 1 and 600", field="seconds")
    total = round(seconds * SAMPLE_RATE)
    chords = max(1, round(seconds / _CHORD_SECONDS))
    buffer = np.zeros(total, dtype=np.float64)
    overlap = int(0.6 * SAMPLE_RATE)
    for slot in range(chords):
        start = slot * total // chords
        length = (slot + 1) * total // chords - start
        chord = _PROGRESSION[slot % len(_PROGRESSION)]
        # Sustained pad: the three chord tones and the root an octave down, ringing into the
        # next chord (the last chord rings into the first: the buffer is circular).
        for note, level in ((chord[0] - 12, 0.20), *((n, 0.22) for n in chord)):
            voice = _pad_voice(_hz(note), length + overlap, 0.35, overlap / SAMPLE_RATE + 0.2)
            _add_circular(buffer, start, level * voice)
        tones = (*chord, chord[0] + 12)
        step = length // len(_ARPEGGIO)
        for beat, which in enumerate(_ARPEGGIO):
            note = tones[which] + 12
            _add_circular(buffer, start + beat * step, 0.18 * _pluck(_hz(note), step * 2))
    # Start the loop at the quietest zero crossing of its first second, so that a player that
    # does not loop starts from silence.
    head = buffer[: min(total, SAMPLE_RATE)]
    crossings = np.nonzero(np.signbit(head[:-1]) != np.signbit(head[1:]))[0]
    if crossings.size:
        best = crossings[np.argmin(np.abs(head[crossings]) + np.abs(head[crossings + 1]))]
        buffer = np.roll(buffer, -int(best + 1))
    peak = float(np.max(np.abs(buffer))) or 1.0
    music = np.rint(buffer * (_PEAK * _INT16_MAX / peak)).astype(np.int16)
    music.flags.writeable = False
    return music


# --- Announcements ----------------------------------------------------------------------------

_KEY_WORDS = {"*": "star", "#": "pound"}


def announcement_text(
    *, position: int | None, wait_seconds: float | None, callback_key: str | None
) -> str:
    """What to tell a waiting caller, in English sentences; empty when there is nothing to say.

    ``position`` is the caller's place in line (1 = next), ``wait_seconds`` the expected wait
    (rounded up to whole minutes), ``callback_key`` the key that asks for a callback.
    """
    sentences: list[str] = []
    if position is not None:
        if isinstance(position, bool) or not isinstance(position, int) or position < 1:
            raise InvalidInput(
                f"queue position {position!r} must be a whole number from 1", field="position"
            )
        if position == 1:
            sentences.append("You are next in line.")
        else:
            sentences.append(f"You are number {position} in line.")
    if wait_seconds is not None:
        if (
            isinstance(wait_seconds, bool)
            or not isinstance(wait_seconds, int | float)
            or not math.isfinite(wait_seconds)
            or wait_seconds < 0
        ):
            raise InvalidInput(
                f"expected wait {wait_seconds!r} must be a number of seconds, 0 or more",
                field="wait_seconds",
            )
        if wait_seconds < 60:
            sentences.append("Your expected wait is less than a minute.")
        else:
            minutes = math.ceil(wait_seconds / 60)
            unit = "minute" if minutes == 1 else "minutes"
            sentences.append(f"Your expected wait is about {minutes} {unit}.")
    if callback_key:
        if len(callback_key) != 1 or callback_key not in "0123456789*#":
            raise InvalidInput(
                f"callback key {callback_key!r} must be one of 0-9, * or #", field="callback_key"
            )
        key = _KEY_WORDS.get(callback_key, callback_key)
        sentences.append(f"To be called back without losing your place, press {key}.")
    return " ".join(sentences)


# --- Spoken prompts ---------------------------------------------------------------------------


class PromptVoice:
    """Speaks prompts with espeak-ng (Debian package ``espeak-ng``), as 8 kHz int16 clips.

    Each prompt is cached on disk as ``cache_dir/<sha256 of voice and text>.wav`` (when a cache
    folder is given) and in memory (the last few prompts), so a prompt is synthesised once.
    """

    MEMORY_ENTRIES = 32
    SPEED_WPM = 160

    def __init__(
        self, cache_dir: Path | None, *, program: str = "espeak-ng", voice: str = "en-us"
    ) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.program = program
        self.voice = voice
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._pending: dict[str, asyncio.Future[np.ndarray | None]] = {}
        self._warned_missing = False

    @property
    def available(self) -> bool:
        """Whether the speech program is installed on this machine."""
        return shutil.which(self.program) is not None

    def cache_path(self, text: str) -> Path | None:
        """Where the spoken ``text`` is (or will be) cached on disk."""
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{self._key(self._check_text(text))}.wav"

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.voice}\n{text}".encode()).hexdigest()

    @staticmethod
    def _check_text(text: str) -> str:
        if not isinstance(text, str):
            raise InvalidInput("prompt text must be a string", field="text")
        cleaned = " ".join(text.split())
        if not cleaned:
            raise InvalidInput("prompt text is empty", field="text")
        if len(cleaned) > PROMPT_MAX_CHARS:
            raise InvalidInput(
                f"prompt text is {len(cleaned)} characters, the limit is {PROMPT_MAX_CHARS}",
                field="text",
            )
        if any(not ch.isprintable() for ch in cleaned):
            raise InvalidInput("prompt text contains control characters", field="text")
        return cleaned

    async def speak(self, text: str) -> np.ndarray | None:
        """The spoken ``text`` as 8 kHz mono int16, or None when espeak-ng is missing or fails.

        Raises :class:`InvalidInput` for empty text, text over 500 characters or control
        characters. Concurrent requests for the same text share one synthesis.
        """
        cleaned = self._check_text(text)
        key = self._key(cleaned)
        cached = self._memory.get(key)
        if cached is not None:
            self._memory.move_to_end(key)
            return cached
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._produce(key, cleaned))
            self._pending[key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        return await asyncio.shield(pending)

    async def _produce(self, key: str, text: str) -> np.ndarray | None:
        path = self.cache_dir / f"{key}.wav" if self.cache_dir is not None else None
        clip = await self._read_cache(path) if path is not None else None
        if clip is None:
            clip = await self._synthesise(text)
            if clip is None:
                return None
            if path is not None:
                await self._write_cache(path, clip)
        clip.flags.writeable = False
        self._memory[key] = clip
        while len(self._memory) > self.MEMORY_ENTRIES:
            self._memory.popitem(last=False)
        return clip

    async def _read_cache(self, path: Path) -> np.ndarray | None:
        def read() -> np.ndarray | None:
            if not path.is_file():
                return None
            return load_wav(path)

        try:
            return await asyncio.to_thread(read)
        except InvalidInput as exc:
            log.warning(
                "prompt cache file unreadable, speaking again", path=str(path), error=str(exc)
            )
            return None

    async def _write_cache(self, path: Path, clip: np.ndarray) -> None:
        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            partial.write_bytes(to_wav_bytes(clip))
            os.replace(partial, path)

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            log.warning("cannot write the prompt cache", path=str(path), error=str(exc))

    async def _synthesise(self, text: str) -> np.ndarray | None:
        program = shutil.which(self.program)
        if program is None:
            if not self._warned_missing:
                self._warned_missing = True
                log.warning(
                    "speech program not found; announcements are skipped "
                    "(install the Debian package espeak-ng)",
                    program=self.program,
                )
            return None
        args = ["-v", self.voice, "-s", str(self.SPEED_WPM), "--stdout", "--", text]
        try:
            process = await asyncio.create_subprocess_exec(
                program,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            log.warning("cannot start the speech program", program=program, error=str(exc))
            return None
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), PROMPT_TIMEOUT_S)
        except BaseException as exc:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            if isinstance(exc, TimeoutError):
                log.warning("speech program timed out", program=program, timeout_s=PROMPT_TIMEOUT_S)
                return None
            raise
        if process.returncode != 0:
            log.warning(
                "speech program failed",
                program=program,
                exit_code=process.returncode,
                stderr=stderr.decode(errors="replace").strip()[:300],
            )
            return None
        try:
            return _parse_wav(stdout, f"{self.program} output")
        except InvalidInput as exc:
            log.warning("speech program gave no usable audio", program=program, error=exc.detail)
            return None
