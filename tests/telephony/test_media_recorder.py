"""Call recording to a stereo WAV (caller left, other parties right): timeline, codecs,
pauses, crash safety. A fake clock everywhere; packets built as a phone would send them."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from sparklecomm.core.errors import InvalidInput
from sparklecomm.telephony.media import CallRecorder, RecordingResult
from sparklecomm.telephony.media.audio import alaw_decode, decode_table, encode, ulaw_decode
from sparklecomm.telephony.media.rtp import PCMA, PCMU, build_rtp_packet

RATE = 8000
FRAME = 160  # samples in a 20 ms packet
TICK = 0.02


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def tone(freq: float, start: int, count: int, amplitude: int = 8000) -> np.ndarray:
    """A sine by timeline sample index, so that consecutive frames join seamlessly."""
    t = np.arange(start, start + count)
    return np.rint(amplitude * np.sin(2 * np.pi * freq * t / RATE)).astype(np.int16)


class Phone:
    """One party's RTP stream: frame ``k`` carries the tone's samples k*160..k*160+159."""

    def __init__(
        self, freq: float, *, ssrc: int, ts0: int = 1000, codec: str = "PCMU", amplitude: int = 8000
    ) -> None:
        self.freq, self.ssrc, self.ts0, self.codec = freq, ssrc, ts0, codec
        self.amplitude = amplitude
        self.payload_type = PCMU if codec == "PCMU" else PCMA

    def payload(self, k: int) -> bytes:
        return encode(self.codec, tone(self.freq, k * FRAME, FRAME, self.amplitude))

    def packet(self, k: int, *, ts: int | None = None) -> bytes:
        return build_rtp_packet(
            self.payload(k),
            sequence=k,
            timestamp=self.ts0 + k * FRAME if ts is None else ts,
            ssrc=self.ssrc,
            payload_type=self.payload_type,
        )

    def decoded(self, first: int, last: int) -> np.ndarray:
        """What the recording holds for frames first..last-1 (G.711 is lossy)."""
        decode = ulaw_decode if self.codec == "PCMU" else alaw_decode
        return np.concatenate([decode(self.payload(k)) for k in range(first, last)])


def read_wav(path: Path) -> np.ndarray:
    """The file's samples as (frames, 2) int16, after checking its format."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 2
        assert wav.getsampwidth() == 2
        assert wav.getframerate() == RATE
        data = wav.readframes(wav.getnframes())
    return np.frombuffer(data, dtype="<i2").reshape(-1, 2)


def peak_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.argmax(spectrum)) * RATE / samples.size


def conversation(
    recorder: CallRecorder, clock: Clock, frames: int, caller: Phone, agent: Phone
) -> None:
    """Both phones send a packet every 20 ms, arriving on time."""
    start = clock.now
    for k in range(frames):
        clock.now = start + k * TICK
        recorder.feed("a", caller.packet(k))
        recorder.feed("b", agent.packet(k))
    clock.now = start + frames * TICK


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "recordings" / "2026" / "call-1.wav"  # folders made on demand


def test_caller_left_agent_right_and_duration(clock: Clock, target: Path) -> None:
    recorder = CallRecorder(target, clock=clock)
    partial = target.parent / f".{target.name}.part"
    assert partial.exists() and not target.exists()
    caller, agent = Phone(1000.0, ssrc=0xCA11), Phone(440.0, ssrc=0xA6E7)
    conversation(recorder, clock, 150, caller, agent)  # 3 s
    assert recorder.seconds == pytest.approx(3.0, abs=0.02)
    result = recorder.close()
    assert isinstance(result, RecordingResult)
    assert result.path == target and target.exists() and not partial.exists()
    assert result.seconds == pytest.approx(3.0, abs=0.02)
    assert result.packets == 300 and result.pauses == () and result.paused_seconds == 0
    assert result.bytes == target.stat().st_size
    frames = read_wav(target)
    assert frames.shape[0] / RATE == pytest.approx(3.0, abs=0.02)
    assert peak_hz(frames[:, 0]) == pytest.approx(1000.0, abs=5)
    assert peak_hz(frames[:, 1]) == pytest.approx(440.0, abs=5)
    # Each channel holds exactly its party's decoded audio, in place from sample 0.
    assert np.array_equal(frames[:, 0], caller.decoded(0, 150))
    assert np.array_equal(frames[:, 1], agent.decoded(0, 150))


def test_reordered_and_duplicated_packets_land_in_place(clock: Clock, target: Path) -> None:
    recorder = CallRecorder(target, clock=clock)
    caller = Phone(1000.0, ssrc=1)
    order = [0, 2, 1, 3, 3, 5, 4, 6, 7, 7, 7, 9, 8, *range(10, 60)]
    for step, k in enumerate(order):
        clock.now = 5000.0 + step * TICK / 2 + 0.001 * (k % 3)  # jitter, never on a boundary
        recorder.feed("a", caller.packet(k))
    clock.now = 5000.0 + 0.8
    recorder.feed("a", caller.packet(2))  # a very late duplicate, still within a second
    clock.now = 5000.0 + 60 * TICK
    result = recorder.close()
    frames = read_wav(target)
    assert np.array_equal(frames[: 60 * FRAME, 0], caller.decoded(0, 60))  # not doubled
    assert not frames[:, 1].any()
    assert result.packets == len(order) + 1


def test_right_channel_adds_legs_b_and_c_with_saturation(clock: Clock, target: Path) -> None:
    recorder = CallRecorder(target, clock=clock)
    loud_b = Phone(440.0, ssrc=2, amplitude=30000)
    loud_c = Phone(440.0, ssrc=3, amplitude=30000)  # in phase: the sum overflows int16
    quiet_c = Phone(1000.0, ssrc=4, amplitude=2000)
    for k in range(25):
        clock.now = 5000.0 + k * TICK
        recorder.feed("b", loud_b.packet(k))
        recorder.feed("b", loud_b.packet(k))  # a duplicate of b replaces b's own samples
        recorder.feed("c", loud_c.packet(k) if k < 10 else quiet_c.packet(k))
    clock.now = 5000.0 + 25 * TICK
    recorder.close()
    right = read_wav(target)[:, 1].astype(np.int32)
    b, c = loud_b.decoded(0, 25).astype(np.int32), loud_c.decoded(0, 10).astype(np.int32)
    expected = np.concatenate([b[: 10 * FRAME] + c, b[10 * FRAME :] + quiet_c.decoded(10, 25)])
    assert np.array_equal(right, np.clip(expected, -32768, 32767))
    assert right.max() == 32767 and right.min() == -32768  # saturated, not wrapped


def test_timestamp_jump_and_new_ssrc_follow_the_arrival(clock: Clock, target: Path) -> None:
    recorder = CallRecorder(target, clock=clock)
    caller = Phone(1000.0, ssrc=10)
    restarted = Phone(1000.0, ssrc=11, ts0=3_000_000_000)
    for k in range(100):
        clock.now = 5000.0 + k * TICK
        if k < 30:
            packet = caller.packet(k)
        elif k < 60:  # the sender's timestamps jump 50 s ahead (a transfer, a glitch)
            packet = caller.packet(k, ts=caller.ts0 + k * FRAME + 400_000)
        else:  # a new source (SSRC) with timestamps of its own
            packet = restarted.packet(k)
        recorder.feed("a", packet)
    clock.now = 5000.0 + 100 * TICK
    result = recorder.close()
    assert result.seconds == pytest.approx(2.0, abs=0.02)
    left = read_wav(target)[:, 0]
    assert np.array_equal(left, caller.decoded(0, 100))  # no hole, no overlap, no shift


def test_packet_ahead_of_the_window_makes_room_and_late_ones_are_dropped(
    clock: Clock, target: Path
) -> None:
    recorder = CallRecorder(target, clock=clock)
    caller = Phone(1000.0, ssrc=60)
    recorder.feed("a", caller.packet(0))  # anchors at 0
    # 2.5 s of audio in one packet, timed a second ahead: the window (3 s) must move on.
    long_payload = encode("PCMU", tone(1000.0, 8000, 20000))
    recorder.feed(
        "a",
        build_rtp_packet(long_payload, sequence=1, timestamp=caller.ts0 + 8000, ssrc=60),
    )
    recorder.feed("b", Phone(440.0, ssrc=61).packet(0))  # its place (0) is written already
    assert recorder.late_packets == 1
    too_long = build_rtp_packet(bytes(24001), sequence=2, timestamp=caller.ts0, ssrc=60)
    recorder.feed("a", too_long)  # more than the window: not a voice packet
    assert recorder.ignored_packets == 1
    clock.now += 3.5
    result = recorder.close()
    assert result.packets == 2 and result.seconds == pytest.approx(3.5)
    left = read_wav(target)[:, 0]
    assert np.array_equal(left[:FRAME], caller.decoded(0, 1))
    assert not left[FRAME:8000].any()
    assert np.array_equal(left[8000:], ulaw_decode(long_payload)[: 28000 - 8000])
    assert not read_wav(target)[:, 1].any()


def test_silence_suppression_gap_is_silence(clock: Clock, target: Path) -> None:
    recorder = CallRecorder(target, clock=clock)
    caller, agent = Phone(1000.0, ssrc=20), Phone(440.0, ssrc=21)
    sent_a = [k for k in range(300) if not 50 <= k < 150]  # 2 s without packets from a
    sent_b = [k for k in range(300) if not 100 <= k < 260]  # 3.2 s from the agent
    for k in range(300):
        clock.now = 5000.0 + k * TICK
        if k in sent_a:
            recorder.feed("a", caller.packet(k))
        if k in sent_b:
            recorder.feed("b", agent.packet(k))
    clock.now = 5000.0 + 300 * TICK
    recorder.close()
    frames = read_wav(target)
    assert frames.shape[0] == 300 * FRAME
    assert not frames[50 * FRAME : 150 * FRAME, 0].any()
    assert not frames[100 * FRAME : 260 * FRAME, 1].any()
    assert np.array_equal(frames[150 * FRAME :, 0], caller.decoded(150, 300))
    assert np.array_equal(frames[260 * FRAME :, 1], agent.decoded(260, 300))


def test_pause_leaves_exact_silence_and_records_the_offsets(clock: Clock, target: Path) -> None:
    recorder = CallRecorder(target, clock=clock)
    caller, agent = Phone(1000.0, ssrc=30), Phone(440.0, ssrc=31)
    fed_while_paused = 0
    for k in range(150):
        clock.now = 5000.0 + k * TICK
        if k == 50:
            # Timestamps 100 ms ahead of the clock: the packet belongs inside the pause.
            recorder.feed("a", caller.packet(55))
            recorder.pause()
            recorder.pause()  # no-op
            assert recorder.paused
        if k == 100:
            recorder.resume()
            recorder.resume()  # no-op
            assert not recorder.paused
        if recorder.paused:
            fed_while_paused += 2
        recorder.feed("a", caller.packet(k))
        recorder.feed("b", agent.packet(k))
    clock.now = 5000.0 + 150 * TICK
    result = recorder.close()
    assert result.pauses == (pytest.approx((1.0, 2.0)),)
    assert result.paused_seconds == pytest.approx(1.0)
    assert result.seconds == pytest.approx(3.0, abs=0.02)
    assert result.packets == 300 + 1 - fed_while_paused
    frames = read_wav(target)
    assert not frames[50 * FRAME : 100 * FRAME].any()  # both channels, exactly silent
    assert np.array_equal(frames[: 50 * FRAME, 0], caller.decoded(0, 50))
    assert np.array_equal(frames[100 * FRAME :, 0], caller.decoded(100, 150))
    assert np.array_equal(frames[100 * FRAME :, 1], agent.decoded(100, 150))


def test_closing_while_paused_ends_the_pause_at_the_end(clock: Clock, target: Path) -> None:
    recorder = CallRecorder(target, clock=clock)
    conversation(recorder, clock, 25, Phone(1000.0, ssrc=1), Phone(440.0, ssrc=2))
    recorder.pause()
    clock.now += 1.5
    result = recorder.close()
    assert result.pauses == (pytest.approx((0.5, 2.0)),)
    assert result.seconds == pytest.approx(2.0, abs=0.02)
    assert not read_wav(target)[25 * FRAME :].any()


def test_pcma_is_decoded(clock: Clock, target: Path) -> None:
    recorder = CallRecorder(target, clock=clock)
    caller = Phone(1000.0, ssrc=40, codec="PCMA")
    agent = Phone(440.0, ssrc=41, codec="PCMA")
    conversation(recorder, clock, 50, caller, agent)
    recorder.close()
    frames = read_wav(target)
    assert np.array_equal(frames[:, 0], caller.decoded(0, 50))
    assert np.array_equal(frames[:, 1], agent.decoded(0, 50))
    assert peak_hz(frames[:, 0]) == pytest.approx(1000.0, abs=5)


def test_other_payload_types_are_ignored(clock: Clock, target: Path) -> None:
    recorder = CallRecorder(target, clock=clock)
    payload = Phone(1000.0, ssrc=1).payload(0)
    for k, payload_type in enumerate((101, 13, 96, 9, 18)):  # DTMF, CN, dynamic, G.722, G.729
        clock.now = 5000.0 + k * TICK
        recorder.feed(
            "a",
            build_rtp_packet(
                payload, sequence=k, timestamp=k * FRAME, ssrc=1, payload_type=payload_type
            ),
        )
    clock.now = 5000.0 + 1.0
    result = recorder.close()
    assert result.packets == 0 and recorder.ignored_packets == 5
    frames = read_wav(target)
    assert frames.shape[0] == RATE and not frames.any()  # the timeline ran: one silent second


def test_malformed_packets_are_ignored_and_header_fields_are_honoured(
    clock: Clock, target: Path
) -> None:
    recorder = CallRecorder(target, clock=clock)
    caller = Phone(1000.0, ssrc=50)
    good = caller.packet(0)
    header = good[:12]
    malformed = [
        b"",
        good[:11],  # shorter than the fixed header
        bytes([0x40]) + good[1:],  # RTP version 1
        bytes([0x8F]) + good[1:12] + bytes(20),  # 15 CSRCs announced, 5 present
        bytes([0x90]) + good[1:12] + b"\xbe",  # extension flag, no extension header
        bytes([0x90]) + good[1:12] + b"\xbe\xde\x00\x09" + bytes(8),  # extension too long
        bytes([0xA0]) + good[1:] + b"\x00",  # padding count 0
        bytes([0xA0]) + good[1:12] + b"\x01\x02\xff",  # padding longer than the packet
        header,  # no payload at all
    ]
    for packet in malformed:
        recorder.feed("a", packet)
    recorder.feed("x", good)  # not a leg of the call
    assert recorder.packets == 0
    # CSRCs, a header extension and padding, all well formed: only the payload is audio.
    payload = caller.payload(1)
    dressed = (
        bytes([0x80 | 0x20 | 0x10 | 2])  # padding, extension, 2 CSRCs
        + caller.packet(1)[1:12]
        + struct.pack("!II", 7, 8)
        + b"\xbe\xde\x00\x01"
        + b"\x10\xaa\x00\x00"
        + payload
        + b"\x00\x00\x03"
    )
    recorder.feed("a", good)
    clock.now += TICK
    recorder.feed("a", dressed)
    clock.now += TICK
    recorder.close()
    assert recorder.packets == 2
    assert np.array_equal(read_wav(target)[:, 0], caller.decoded(0, 2))


def test_partial_file_is_a_valid_wav_during_the_call(clock: Clock, target: Path) -> None:
    recorder = CallRecorder(target, clock=clock)
    partial = target.parent / f".{target.name}.part"
    with wave.open(str(partial), "rb") as wav:  # valid from the start, empty
        assert wav.getnframes() == 0
    caller, agent = Phone(1000.0, ssrc=1), Phone(440.0, ssrc=2)
    conversation(recorder, clock, 200, caller, agent)  # 4 s, not closed: a crash now
    frames = read_wav(partial)
    # What lies more than a second behind the newest packet is on disk (flushed every 0.5 s).
    assert 2.5 * RATE <= frames.shape[0] <= 3.0 * RATE
    assert partial.stat().st_size == 44 + 4 * frames.shape[0]
    assert np.array_equal(frames[:, 0], caller.decoded(0, 200)[: frames.shape[0]])
    assert np.array_equal(frames[:, 1], agent.decoded(0, 200)[: frames.shape[0]])
    recorder.close()


def test_abort_removes_the_partial_file(clock: Clock, target: Path) -> None:
    recorder = CallRecorder(target, clock=clock)
    conversation(recorder, clock, 100, Phone(1000.0, ssrc=1), Phone(440.0, ssrc=2))
    recorder.abort()
    recorder.abort()  # idempotent
    assert list(target.parent.iterdir()) == []
    recorder.feed("a", Phone(1000.0, ssrc=1).packet(100))  # a straggler: ignored
    with pytest.raises(RuntimeError, match="aborted"):
        recorder.close()


def test_close_is_idempotent_and_later_packets_are_ignored(clock: Clock, target: Path) -> None:
    recorder = CallRecorder(target, clock=clock)
    caller = Phone(1000.0, ssrc=1)
    conversation(recorder, clock, 10, caller, Phone(440.0, ssrc=2))
    first = recorder.close()
    size = target.stat().st_size
    clock.now += 5
    recorder.feed("a", caller.packet(10))
    recorder.pause()
    assert recorder.close() is first
    assert recorder.seconds == first.seconds
    recorder.abort()  # after close: the recording is complete, nothing is removed
    assert target.stat().st_size == size == first.bytes


def test_max_seconds_stops_recording(clock: Clock, target: Path) -> None:
    recorder = CallRecorder(target, clock=clock, max_seconds=1.0)
    conversation(recorder, clock, 100, Phone(1000.0, ssrc=1), Phone(440.0, ssrc=2))  # 2 s
    assert recorder.seconds == 1.0
    result = recorder.close()
    assert result.seconds == 1.0 and result.packets == 100  # 50 per leg
    assert read_wav(target).shape[0] == RATE


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "1h"])
def test_max_seconds_is_checked(tmp_path: Path, bad: object) -> None:
    with pytest.raises(InvalidInput) as error:
        CallRecorder(tmp_path / "x.wav", max_seconds=bad)  # type: ignore[arg-type]
    assert error.value.field == "max_seconds"
    assert not (tmp_path / ".x.wav.part").exists()


def test_decode_tables_match_the_decoders() -> None:
    codes = bytes(range(256))
    for codec, decode in (("PCMU", ulaw_decode), ("pcma", alaw_decode)):
        table = decode_table(codec)
        assert table.dtype == np.int16 and table.shape == (256,)
        assert np.array_equal(table[np.frombuffer(codes, np.uint8)], decode(codes))
        assert not table.flags.writeable  # shared: nobody may change how G.711 decodes
    with pytest.raises(InvalidInput) as error:
        decode_table("G729")
    assert error.value.field == "codec"
