"""Waiting-media audio: G.711 codecs, WAV import, hold music, announcement text, espeak-ng."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from sparklecomm.core.errors import InvalidInput
from sparklecomm.telephony.media import rtp
from sparklecomm.telephony.media.audio import (
    SAMPLE_RATE,
    PromptVoice,
    alaw_decode,
    alaw_encode,
    announcement_text,
    decode,
    default_music,
    encode,
    load_wav,
    to_wav_bytes,
    ulaw_decode,
    ulaw_encode,
)

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)

# --- G.711 ------------------------------------------------------------------------------------


def test_ulaw_agrees_with_the_scalar_rtp_codec_on_every_sample() -> None:
    codes = np.frombuffer(ulaw_encode(ALL_INT16), dtype=np.uint8)
    expected = np.array([rtp.ulaw_encode(int(s)) for s in ALL_INT16], dtype=np.uint8)
    assert np.array_equal(codes, expected)
    decoded = ulaw_decode(bytes(range(256)))
    assert decoded.tolist() == [rtp.ulaw_decode(code) for code in range(256)]


def test_g711_reference_values() -> None:
    # ITU-T G.711 (11/88), Tables 1a/2a: µ-law code words are transmitted inverted, so zero is
    # 0xFF and the largest positive/negative magnitudes are 0x80/0x00 (decision value 8031 in
    # 14-bit units, decoded as the segment-8 midpoint 8031 * 4 = 32124). A-law (Tables 1b/2b)
    # inverts the even bits (XOR 0x55): zero is 0xD5 (positive) / 0x55 (negative), full scale is
    # 0xAA / 0x2A and decodes to 4032 in 13-bit units = 32256 in 16-bit.
    assert ulaw_encode(np.array([0, 32767, -32768], dtype=np.int16)) == bytes([0xFF, 0x80, 0x00])
    assert ulaw_decode(bytes([0xFF, 0x80, 0x00, 0x7F])).tolist() == [0, 32124, -32124, 0]
    assert alaw_encode(np.array([0, -1, 32767, -32768], dtype=np.int16)) == bytes(
        [0xD5, 0x55, 0xAA, 0x2A]
    )
    assert alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A])).tolist() == [8, -8, 32256, -32256]
    # Segment boundaries: the first code of µ-law segment 1 (biased magnitude 256 -> 124 + 132)
    # and of A-law segment 2 (13-bit magnitude 64 -> 16-bit 512).
    assert ulaw_encode(np.array([124], dtype=np.int16)) == bytes([~0x10 & 0xFF])
    assert alaw_encode(np.array([512], dtype=np.int16)) == bytes([(0x80 | 0x20) ^ 0x55])


@pytest.mark.parametrize("codec", ["PCMU", "PCMA", "pcmu", "Pcma"])
def test_round_trip_error_is_within_half_a_quantisation_step(codec: str) -> None:
    decoded = decode(codec, encode(codec, ALL_INT16)).astype(np.int64)
    source = ALL_INT16.astype(np.int64)
    error = np.abs(decoded - source)
    # Logarithmic companding: the step doubles every segment, the error is at most half a step,
    # i.e. about 1/32 of the level (plus the fixed small-signal step); clipping aside.
    unclipped = np.abs(source) <= 32000
    bound = np.maximum(8, (np.abs(source) + 132) / 32 + 1)
    assert np.all(error[unclipped] <= bound[unclipped])
    assert error.max() <= 700  # clipped full-scale samples
    assert decoded.dtype == np.int64 and len(decoded) == 65536


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_decode_of_encode_is_monotonic(codec: str) -> None:
    decoded = decode(codec, encode(codec, ALL_INT16)).astype(np.int32)
    assert np.all(np.diff(decoded) >= 0)
    assert len(np.unique(decoded)) >= 250  # nearly all 256 code words are used


def test_a_sine_sweep_survives_g711() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    sweep = (12000 * np.sin(2 * np.pi * (200 + 1600 * t) * t)).astype(np.int16)
    for codec in ("PCMU", "PCMA"):
        back = decode(codec, encode(codec, sweep)).astype(float)
        noise = back - sweep
        snr = 10 * math.log10(np.mean(sweep.astype(float) ** 2) / np.mean(noise**2))
        assert snr > 30, codec


def test_codec_errors() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        encode("G722", np.zeros(4, dtype=np.int16))
    assert excinfo.value.field == "codec" and "G722" in excinfo.value.detail
    with pytest.raises(InvalidInput):
        decode("opus", b"\x00")
    with pytest.raises(InvalidInput, match="1-D"):
        ulaw_encode(np.zeros((2, 2), dtype=np.int16))
    with pytest.raises(InvalidInput, match=r"-32768\.\.32767"):
        alaw_encode(np.array([40000]))
    with pytest.raises(InvalidInput, match="16-bit integers"):
        ulaw_encode(np.array([0.5]))
    assert ulaw_encode(np.array([], dtype=np.int16)) == b""
    assert encode("PCMU", [0, 1]) == ulaw_encode(np.array([0, 1], dtype=np.int16))


# --- WAV --------------------------------------------------------------------------------------


def _write_wav(path: Path, frames: bytes, *, channels: int, width: int, rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(frames)


def _peak_hz(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(float) * np.hanning(len(pcm))))
    return float(np.argmax(spectrum) * SAMPLE_RATE / len(pcm))


def test_load_wav_resamples_44k1_stereo_to_8k_mono(tmp_path: Path) -> None:
    rate = 44100
    t = np.arange(rate) / rate
    left = 10000 * np.sin(2 * np.pi * 440 * t)
    right = 6000 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, right], axis=1).round().astype("<i2")
    path = tmp_path / "stereo.wav"
    _write_wav(path, stereo.tobytes(), channels=2, width=2, rate=rate)

    pcm = load_wav(path)

    assert pcm.dtype == np.int16 and pcm.ndim == 1
    assert len(pcm) == SAMPLE_RATE  # one second stays one second
    assert abs(_peak_hz(pcm) - 440) <= 2
    middle = pcm[1000:7000]
    assert 7700 < np.abs(middle).max() < 8300  # channels averaged: (10000 + 6000) / 2


def test_load_wav_8_bit_and_24_bit(tmp_path: Path) -> None:
    rate = 16000
    t = np.arange(rate // 2) / rate
    tone = np.sin(2 * np.pi * 1000 * t)

    eight = tmp_path / "eight.wav"
    _write_wav(
        eight, (128 + 100 * tone).round().astype(np.uint8).tobytes(), channels=1, width=1, rate=rate
    )
    pcm8 = load_wav(eight)
    assert len(pcm8) == SAMPLE_RATE // 2
    assert abs(_peak_hz(pcm8) - 1000) <= 4
    assert 24000 < np.abs(pcm8).max() < 27000  # 100/128 of full scale

    values = (tone * 0x400000).round().astype(np.int32)  # half of 24-bit full scale
    packed = b"".join(struct.pack("<i", v)[:3] for v in values)
    twenty_four = tmp_path / "deep.wav"
    _write_wav(twenty_four, packed, channels=1, width=3, rate=rate)
    pcm24 = load_wav(twenty_four)
    assert len(pcm24) == SAMPLE_RATE // 2
    assert abs(_peak_hz(pcm24) - 1000) <= 4
    assert 15500 < np.abs(pcm24).max() < 17000  # half of 16-bit full scale
    assert np.abs(pcm24[:200]).max() < 16500 and pcm24.min() < -15500  # negative samples kept


def test_load_wav_8k_mono_is_unchanged_and_round_trips_through_to_wav_bytes(tmp_path: Path) -> None:
    samples = np.array([0, 1, -1, 32767, -32768, 1234], dtype=np.int16)
    path = tmp_path / "same.wav"
    path.write_bytes(to_wav_bytes(samples))
    assert load_wav(path).tolist() == samples.tolist()
    with wave.open(str(path)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (1, 2, 8000)


def test_load_wav_errors_name_the_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("this is not audio")
    with pytest.raises(InvalidInput, match="not a WAV") as excinfo:
        load_wav(text)
    assert "notes.txt" in excinfo.value.detail

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(InvalidInput, match=r"empty\.wav: the file is empty"):
        load_wav(empty)

    no_frames = tmp_path / "silent.wav"
    _write_wav(no_frames, b"", channels=1, width=2, rate=8000)
    with pytest.raises(InvalidInput, match="no audio"):
        load_wav(no_frames)

    compressed = tmp_path / "alaw.wav"
    fmt = struct.pack("<HHIIHH", 6, 1, 8000, 8000, 1, 8)
    compressed.write_bytes(
        b"RIFF" + struct.pack("<I", 36 + 4) + b"WAVE"
        + b"fmt " + struct.pack("<I", 16) + fmt
        + b"data" + struct.pack("<I", 4) + b"\xd5\xd5\xd5\xd5"
    )  # fmt: skip
    with pytest.raises(InvalidInput, match="compressed") as excinfo:
        load_wav(compressed)
    assert "alaw.wav" in excinfo.value.detail and "A-law" in excinfo.value.detail

    with pytest.raises(InvalidInput, match="cannot read"):
        load_wav(tmp_path / "missing.wav")


# --- Hold music -------------------------------------------------------------------------------


def test_default_music_is_deterministic_loopable_and_not_too_loud() -> None:
    music = default_music()
    assert music.dtype == np.int16 and music.ndim == 1
    assert len(music) == 32 * SAMPLE_RATE
    assert default_music() is music  # cached
    assert not music.flags.writeable
    default_music.cache_clear()
    again = default_music()
    assert again is not music and np.array_equal(again, music)  # same samples every time

    samples = music.astype(np.int32)
    peak = np.abs(samples).max()
    full_scale = 32767
    assert 0.2 * full_scale < peak <= 0.3 * full_scale  # about -12 dBFS
    rms = math.sqrt(float(np.mean(samples.astype(float) ** 2)))
    assert rms > 1000  # not silent
    assert abs(samples[0]) < 300  # starts at a zero crossing
    # The loop point is no bigger a jump than the music's own sample-to-sample steps.
    steps = np.abs(np.diff(samples))
    assert abs(samples[-1] - samples[0]) <= np.percentile(steps, 99)
    looped = np.concatenate([samples[-400:], samples[:400]])
    curvature = np.abs(np.diff(looped, 2))
    assert curvature.max() <= np.abs(np.diff(samples, 2)).max()


def test_default_music_other_lengths() -> None:
    assert len(default_music(10.0)) == 10 * SAMPLE_RATE
    with pytest.raises(InvalidInput):
        default_music(0.0)


def test_default_music_is_tonal_in_the_telephone_band() -> None:
    spectrum = np.abs(np.fft.rfft(default_music().astype(float))) ** 2  # power
    freqs = np.fft.rfftfreq(len(default_music()), 1 / SAMPLE_RATE)
    total = spectrum.sum()
    assert spectrum[(freqs >= 150) & (freqs <= 3400)].sum() / total > 0.99
    assert spectrum[(freqs >= 300) & (freqs <= 3400)].sum() / total > 0.6  # narrowband calls


# --- Announcements ----------------------------------------------------------------------------


def test_announcement_text_variants() -> None:
    assert announcement_text(position=3, wait_seconds=200, callback_key="1") == (
        "You are number 3 in line. Your expected wait is about 4 minutes. "
        "To be called back without losing your place, press 1."
    )
    assert announcement_text(position=1, wait_seconds=None, callback_key=None) == (
        "You are next in line."
    )
    assert announcement_text(position=None, wait_seconds=59.9, callback_key=None) == (
        "Your expected wait is less than a minute."
    )
    assert announcement_text(position=None, wait_seconds=60, callback_key=None) == (
        "Your expected wait is about 1 minute."
    )
    assert announcement_text(position=None, wait_seconds=61, callback_key=None) == (
        "Your expected wait is about 2 minutes."
    )
    assert announcement_text(position=12, wait_seconds=None, callback_key="#") == (
        "You are number 12 in line. To be called back without losing your place, press pound."
    )
    assert announcement_text(position=None, wait_seconds=None, callback_key=None) == ""


def test_announcement_text_rejects_nonsense() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        announcement_text(position=0, wait_seconds=None, callback_key=None)
    assert excinfo.value.field == "position"
    with pytest.raises(InvalidInput) as excinfo:
        announcement_text(position=None, wait_seconds=-5, callback_key=None)
    assert excinfo.value.field == "wait_seconds"
    with pytest.raises(InvalidInput) as excinfo:
        announcement_text(position=None, wait_seconds=None, callback_key="12")
    assert excinfo.value.field == "callback_key"


# --- PromptVoice (real espeak-ng) -------------------------------------------------------------

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None and not os.environ.get("SPARKLECOMM_REQUIRE_ESPEAK"),
    reason="espeak-ng is not installed (Debian package espeak-ng)",
)


@needs_espeak
async def test_prompt_voice_speaks_and_caches(tmp_path: Path) -> None:
    voice = PromptVoice(tmp_path / "prompts")
    assert voice.available
    text = announcement_text(position=2, wait_seconds=90, callback_key="1")

    clips = await asyncio.gather(voice.speak(text), voice.speak(text))

    clip = clips[0]
    assert clip is not None and clips[1] is clip  # one synthesis shared by both requests
    assert clip.dtype == np.int16 and clip.ndim == 1
    assert 0.5 <= len(clip) / SAMPLE_RATE <= 10
    assert np.abs(clip.astype(np.int32)).max() > 3000  # speech, not silence
    cache_file = voice.cache_path(text)
    assert cache_file is not None and cache_file.is_file()
    assert list((tmp_path / "prompts").iterdir()) == [cache_file]
    assert np.array_equal(load_wav(cache_file), clip)
    assert await voice.speak(text) is clip  # memory cache

    # A fresh voice without the program still has the prompt from the disk cache.
    offline = PromptVoice(tmp_path / "prompts", program="sparklecomm-no-such-espeak")
    assert not offline.available
    cached = await offline.speak(text)
    assert cached is not None and np.array_equal(cached, clip)
    assert await offline.speak("Something never spoken before.") is None


@needs_espeak
async def test_prompt_voice_passes_text_as_an_argument_not_options(tmp_path: Path) -> None:
    voice = PromptVoice(None)
    clip = await voice.speak("--help me")
    assert clip is not None and len(clip) > SAMPLE_RATE // 4


async def test_prompt_voice_missing_program_returns_none(tmp_path: Path) -> None:
    voice = PromptVoice(tmp_path, program="sparklecomm-no-such-espeak")
    assert not voice.available
    with capture_logs() as logs:
        assert await voice.speak("You are next in line.") is None
        assert await voice.speak("You are next in line.") is None
    assert [entry["log_level"] for entry in logs] == ["warning"]  # said once, not per prompt
    assert "espeak-ng" in logs[0]["event"]
    assert not any(tmp_path.iterdir())  # nothing cached  # noqa: ASYNC240


async def test_prompt_voice_failing_program_returns_none(tmp_path: Path) -> None:
    voice = PromptVoice(tmp_path, program="false")  # exits 1
    assert voice.available
    assert await voice.speak("You are next in line.") is None


async def test_prompt_voice_rejects_bad_text(tmp_path: Path) -> None:
    voice = PromptVoice(tmp_path)
    with pytest.raises(InvalidInput, match="limit is 500") as excinfo:
        await voice.speak("a" * 501)
    assert excinfo.value.field == "text"
    with pytest.raises(InvalidInput, match="empty"):
        await voice.speak("   ")
    with pytest.raises(InvalidInput, match="control"):
        await voice.speak("hello\x00there")


def test_the_operators_music_on_hold_file_is_played_else_the_built_in_music(
    tmp_path: Path,
) -> None:
    """``SPARKLECOMM_MUSIC_ON_HOLD``: a WAV file is read at start-up; a file that is not a
    WAV leaves the built-in music (``None``) rather than stopping the server."""
    from sparklecomm.app import _music_on_hold

    tone = (np.sin(2 * np.pi * 440 * np.arange(16000) / 16000) * 8000).astype(np.int16)
    good = tmp_path / "hold.wav"
    with wave.open(str(good), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(tone.tobytes())
    music = _music_on_hold(good)
    assert music is not None and music.dtype == np.int16 and len(music) == 8000
    bad = tmp_path / "hold.mp3"
    bad.write_bytes(b"ID3 not a wave file")
    assert _music_on_hold(bad) is None
    assert _music_on_hold(None) is None
