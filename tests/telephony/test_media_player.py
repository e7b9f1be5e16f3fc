"""Waiting media: the RTP player, the playlist, the DTMF receiver, and the relay's
platform-attached leg (real UDP sockets on 127.0.0.1, a real MediaRelay)."""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from sparklecomm.core.errors import InvalidInput
from sparklecomm.telephony.media import (
    DtmfReceiver,
    G711Stream,
    MediaRelay,
    Playlist,
    RelayConfig,
    RtpHeader,
    RtpPlayer,
    build_rtp_packet,
    parse_rtp_header,
)
from sparklecomm.telephony.media.player import PCMA_SILENCE
from sparklecomm.telephony.media.rtp import PCMU
from sparklecomm.telephony.sip.transport import loopback_only

HOST = "127.0.0.1"
EVENT_PT = 101
TONE = b"\x11" * 160


class Frames:
    """A program: the given frames (``None`` = a gap), then nothing."""

    def __init__(self, *frames: bytes | None) -> None:
        self.frames = list(frames)

    def next_frame(self) -> bytes | None:
        return self.frames.pop(0) if self.frames else None


class Endless:
    """A program: the same frame for ever."""

    def __init__(self, frame: bytes) -> None:
        self.frame = frame

    def next_frame(self) -> bytes | None:
        return self.frame


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    return sock


async def recv(sock: socket.socket, within: float = 5.0) -> bytes:
    loop = asyncio.get_running_loop()
    data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), within)
    return data


def pending(sock: socket.socket) -> bool:
    try:
        sock.recv(2048, socket.MSG_PEEK)
    except BlockingIOError:
        return False
    return True


def drain(sock: socket.socket) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(sock.recv(2048))
        except BlockingIOError:
            return got


def sender(sock: socket.socket, to: tuple[str, int]) -> Callable[[bytes], None]:
    def send(packet: bytes) -> None:
        sock.sendto(packet, to)

    return send


def payload(packet: bytes) -> bytes:
    return packet[parse_rtp_header(packet).payload_offset :]


def dtmf(event: int, *, timestamp: int, seq: int, end: bool = False, duration: int = 160) -> bytes:
    body = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
    return build_rtp_packet(
        body, sequence=seq, timestamp=timestamp, ssrc=0xD7, payload_type=EVENT_PT, marker=seq == 0
    )


def press(event: int, timestamp: int, seq: int) -> list[bytes]:
    """One key press as a phone sends it: 3 packets, then the end packet 3 times."""
    return [
        dtmf(event, timestamp=timestamp, seq=seq + i, duration=160 * (i + 1)) for i in range(3)
    ] + [
        dtmf(event, timestamp=timestamp, seq=seq + 3 + i, end=True, duration=640) for i in range(3)
    ]


# -- the player into a real UDP socket -------------------------------------------------------


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    out, phone = udp_socket(), udp_socket()
    yield out, phone
    out.close()
    phone.close()


async def test_player_sends_one_paced_stream(sockets: tuple[socket.socket, socket.socket]) -> None:
    out, phone = sockets
    player = RtpPlayer(sender(out, phone.getsockname()), payload_type=PCMU, max_late_frames=10_000)
    player.play(Endless(TONE))
    got = [await recv(phone) for _ in range(50)]  # a second of audio, within 5 s per packet
    player.stop()
    headers = [parse_rtp_header(p) for p in got]
    assert {h.ssrc for h in headers} == {player.ssrc}
    assert {h.payload_type for h in headers} == {PCMU}
    assert [h.marker for h in headers] == [True] + [False] * 49
    for before, after in itertools.pairwise(headers):
        assert after.sequence == (before.sequence + 1) & 0xFFFF
        assert after.timestamp == (before.timestamp + 160) & 0xFFFFFFFF
    assert {payload(p) for p in got} == {TONE}
    assert player.packets_sent >= 50 and player.frames_skipped == 0


async def test_program_change_stop_and_restart(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    out, phone = sockets
    player = RtpPlayer(sender(out, phone.getsockname()), payload_type=PCMU, max_late_frames=10_000)
    player.play(Endless(b"\x01" * 160))
    first = [await recv(phone) for _ in range(3)]
    player.play(Endless(b"\x02" * 160))  # from the next frame on
    assert player.playing
    later = [payload(await recv(phone)) for _ in range(5)]
    assert {payload(p) for p in first} == {b"\x01" * 160}
    assert later[-1] == b"\x02" * 160 and set(later) <= {b"\x01" * 160, b"\x02" * 160}
    player.stop()
    player.stop()  # idempotent
    assert not player.playing
    sent = player.packets_sent
    await asyncio.sleep(0.1)
    drain(phone)
    await asyncio.sleep(0.1)
    assert not pending(phone) and player.packets_sent == sent
    before = parse_rtp_header(first[0])
    player.play(Endless(b"\x03" * 160))  # the same stream again, after a pause
    resumed = parse_rtp_header(await recv(phone))
    player.stop()
    assert resumed.ssrc == before.ssrc and resumed.marker
    assert resumed.sequence == (before.sequence + sent) & 0xFFFF
    # the timestamp tells the pause too (at least the 0.2 s slept: 10 frames)
    frames = ((resumed.timestamp - before.timestamp) & 0xFFFFFFFF) // 160
    assert frames >= sent + 10


async def test_gaps_advance_the_timestamp_and_mark_the_next_packet(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    out, phone = sockets
    player = RtpPlayer(sender(out, phone.getsockname()), payload_type=8, max_late_frames=10_000)
    player.play(Frames(TONE, TONE, None, None, TONE, TONE))
    got = [parse_rtp_header(await recv(phone)) for _ in range(4)]
    await asyncio.sleep(0.1)
    assert not pending(phone)  # after the frames: nothing is sent (not even silence)
    player.stop()
    assert [h.marker for h in got] == [True, False, True, False]
    assert [(h.sequence - got[0].sequence) & 0xFFFF for h in got] == [0, 1, 2, 3]
    assert [(h.timestamp - got[0].timestamp) & 0xFFFFFFFF for h in got] == [0, 160, 640, 800]
    assert {h.payload_type for h in got} == {8}
    assert player.packets_sent == 4


async def test_player_checks_its_settings() -> None:
    with pytest.raises(InvalidInput) as bad_type:
        RtpPlayer(lambda p: None, payload_type=128)
    assert bad_type.value.field == "payload_type"
    with pytest.raises(InvalidInput) as bad_ptime:
        RtpPlayer(lambda p: None, payload_type=0, ptime=0)
    assert bad_ptime.value.field == "ptime"


# -- pacing on a virtual clock (no real time) -------------------------------------------------


class Timer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when, self.callback, self.is_cancelled = when, callback, False

    def cancel(self) -> None:
        self.is_cancelled = True


class VirtualLoop:
    """Just what the player uses of a loop: time() and call_at(), run by the test."""

    def __init__(self) -> None:
        self.now = 500.0
        self.timers: list[Timer] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(when, callback)
        self.timers.append(timer)
        return timer

    def run_until(self, until: float) -> list[float]:
        """Fire due timers in order; the times they were scheduled for."""
        fired = []
        while self.timers:
            self.timers.sort(key=lambda t: t.when)
            timer = self.timers[0]
            if timer.when > until:
                break
            self.timers.pop(0)
            if timer.is_cancelled:
                continue
            self.now = max(self.now, timer.when)
            fired.append(timer.when)
            timer.callback()
        self.now = max(self.now, until)
        return fired


def test_pacing_is_an_absolute_schedule_and_skips_ahead_when_late() -> None:
    loop = VirtualLoop()
    sent: list[RtpHeader] = []
    player = RtpPlayer(
        lambda p: sent.append(parse_rtp_header(p)),
        payload_type=PCMU,
        loop=loop,  # type: ignore[arg-type]
    )
    player.play(Endless(TONE))
    fired = loop.run_until(500.0 + 9 * 0.02 + 0.001)
    assert fired == [500.0 + n * 0.02 for n in range(10)]  # no drift: start + n * ptime
    assert len(sent) == 10 and player.frames_skipped == 0
    # the loop stalls (frame 10 was due at 500.2, it is 500.39): the frames it missed are
    # skipped, not sent in a burst; the frame due now (19) goes out, marked
    loop.now = 500.0 + 19.5 * 0.02
    loop.run_until(loop.now)
    assert len(sent) == 11 and player.frames_skipped == 9
    assert sent[10].marker and sent[10].sequence == (sent[9].sequence + 1) & 0xFFFF
    assert (sent[10].timestamp - sent[9].timestamp) & 0xFFFFFFFF == 160 * 10
    loop.run_until(loop.now + 0.1)
    assert not sent[11].marker and len(sent) == 16
    # a small delay (within the allowance) is caught up instead: no frame skipped
    loop.now += 0.051
    loop.run_until(loop.now)
    assert player.frames_skipped == 9 and len(sent) == 19
    player.stop()
    assert all(timer.is_cancelled for timer in loop.timers)


def test_stopping_from_inside_send_stops() -> None:
    loop = VirtualLoop()
    holder: list[RtpPlayer] = []

    def send(packet: bytes) -> None:
        holder[0].stop()

    player = RtpPlayer(send, payload_type=PCMU, loop=loop)  # type: ignore[arg-type]
    holder.append(player)
    player.play(Endless(TONE))
    loop.run_until(501.0)
    assert player.packets_sent == 1 and not player.playing


# -- the playlist ------------------------------------------------------------------------------


def test_playlist_plays_the_clips_then_the_loop_padding_with_silence() -> None:
    playlist = Playlist([b"\x01" * 200, b"\x02" * 160], loop=b"\x03" * 170, silence=PCMA_SILENCE)
    frames = [playlist.next_frame() for _ in range(9)]
    pad = bytes([PCMA_SILENCE])
    assert frames == [
        b"\x01" * 160,
        b"\x01" * 40 + pad * 120,
        b"\x02" * 160,
        b"\x03" * 160,
        b"\x03" * 10 + pad * 150,
        b"\x03" * 160,
        b"\x03" * 10 + pad * 150,
        b"\x03" * 160,
        b"\x03" * 10 + pad * 150,
    ]


def test_playlist_without_a_loop_ends_in_nothing() -> None:
    playlist = Playlist([b"\x05" * 10, b""])
    assert playlist.next_frame() == b"\x05" * 10 + b"\xff" * 150  # µ-law silence by default
    assert [playlist.next_frame() for _ in range(3)] == [None, None, None]
    assert Playlist().next_frame() is None


def test_playlist_checks_its_input() -> None:
    with pytest.raises(InvalidInput) as bad_silence:
        Playlist([b"\x00"], silence=256)
    assert bad_silence.value.field == "silence"
    with pytest.raises(InvalidInput) as empty_loop:
        Playlist(loop=b"")
    assert empty_loop.value.field == "loop"
    with pytest.raises(InvalidInput) as one_clip:
        Playlist(b"\x00" * 160)  # type: ignore[arg-type]
    assert one_clip.value.field == "clips"


# -- DTMF --------------------------------------------------------------------------------------


def test_a_press_is_reported_once_at_its_first_packet() -> None:
    digits: list[str] = []
    receiver = DtmfReceiver(EVENT_PT, digits.append)
    packets = press(1, timestamp=8000, seq=0)
    receiver.feed(packets[0])
    assert digits == ["1"]  # not waiting for the end of the press
    for packet in packets[1:]:
        receiver.feed(packet)
    assert digits == ["1"]


def test_two_presses_of_one_key_are_two_digits_and_events_map_to_keys() -> None:
    digits: list[str] = []
    receiver = DtmfReceiver(EVENT_PT, digits.append)
    seq = 0
    for timestamp, event in enumerate((1, 1, 0, 9, 10, 11, 12, 15, 16, 200)):
        for packet in press(event, 1000 + 1600 * timestamp, seq):
            receiver.feed(packet)
        seq += 6
    assert digits == ["1", "1", "0", "9", "*", "#", "A", "D"]


def test_other_payloads_and_garbage_are_ignored() -> None:
    digits: list[str] = []
    receiver = DtmfReceiver(EVENT_PT, digits.append)
    audio = G711Stream(ssrc=0xD7)
    for junk in (
        audio.next_packet(),  # PCMU
        b"",
        b"\x80",
        b"\x80\x65" + b"\x00" * 10,  # right type, no payload
        b"\x80\x65" + b"\x00" * 10 + b"\x05\x00\x00",  # payload too short
        b"\x40\x65" + b"\x00" * 14,  # RTP version 1
        b"\x8f\x65" + b"\x00" * 14,  # 15 CSRCs announced, none there
        b"\x90\x65"
        + b"\x00" * 10
        + b"\x00\x00\xff\xff"
        + b"\x05\x00\x00\xa0",  # extension overruns
        b"\xa0\x65" + b"\x00" * 10 + b"\x05\x00\x00\xff",  # padding larger than the packet
        build_rtp_packet(b"\x05\x00\x00\xa0", sequence=1, timestamp=1, ssrc=1, payload_type=100),
    ):
        receiver.feed(junk)
    assert digits == []
    receiver.feed(dtmf(5, timestamp=99, seq=7))  # and still works
    assert digits == ["5"]


# -- the relay: the platform as leg a's party -------------------------------------------------


@pytest.fixture
async def relay() -> AsyncIterator[MediaRelay]:
    relay = MediaRelay(RelayConfig(port_min=32600, port_max=32699, allowed_target=loopback_only))
    await relay.start()
    yield relay
    await relay.stop()


@pytest.fixture
def phones() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = udp_socket(), udp_socket()
    yield a, b
    a.close()
    b.close()


async def test_attached_leg_plays_to_the_phone_and_hears_its_dtmf(
    relay: MediaRelay, phones: tuple[socket.socket, socket.socket]
) -> None:
    phone_a, phone_b = phones
    session = await relay.open("call-waiting")
    session.set_remote("a", *phone_a.getsockname())
    session.set_remote("b", *phone_b.getsockname())
    digits: list[str] = []
    receiver = DtmfReceiver(EVENT_PT, digits.append)
    heard: list[bytes] = []

    def on_packet(packet: bytes) -> None:
        heard.append(packet)
        receiver.feed(packet)

    send = session.attach("a", on_packet)
    assert session.attached("a") and session.connected("a") is None
    assert session.connected("b") is None  # b is isolated too
    player = RtpPlayer(send, payload_type=PCMU, max_late_frames=10_000)
    player.play(Playlist([TONE * 3], loop=b"\x22" * 160))
    got = [await recv(phone_a) for _ in range(5)]
    assert [payload(p) for p in got] == [TONE] * 3 + [b"\x22" * 160] * 2
    assert {parse_rtp_header(p).ssrc for p in got} == {player.ssrc}

    a_port = (HOST, session.a.port)
    for packet in press(1, timestamp=4000, seq=0):
        phone_a.sendto(packet, a_port)
    phone_b.sendto(G711Stream(ssrc=0xB).next_packet(), (HOST, session.b.port))
    for _ in range(200):
        if len(heard) == 6:
            break
        await asyncio.sleep(0.01)
    assert digits == ["1"] and len(heard) == 6
    player.stop()
    await asyncio.sleep(0.1)
    assert not pending(phone_b)  # neither the DTMF nor the music went to b
    assert {parse_rtp_header(p).ssrc for p in drain(phone_a)} <= {player.ssrc}  # nor b's audio

    stats = session.stats()
    assert stats["a_packets_in"] == 6 and stats["a_dropped"] == 0
    assert stats["a_packets_out"] == player.packets_sent
    assert stats["a_bytes_out"] == 172 * player.packets_sent
    assert stats["b_packets_out"] == 0 and stats["b_dropped"] == 1

    # the agent answers: the platform lets go, a and b talk again
    session.detach("a")
    send(build_rtp_packet(TONE, sequence=1, timestamp=1, ssrc=1))  # too late: nothing
    assert session.connected("a") is None and not session.attached("a")
    session.connect("a", "b")
    to_b, to_a = G711Stream(ssrc=0xA), G711Stream(ssrc=0xB2)
    ab, ba = to_b.next_packet(), to_a.next_packet()
    phone_a.sendto(ab, a_port)
    phone_b.sendto(ba, (HOST, session.b.port))
    assert await recv(phone_b) == ab
    assert await recv(phone_a) == ba
    assert len(heard) == 6
    stats = session.stats()
    assert stats["a_packets_out"] == player.packets_sent + 1
    assert stats["b_packets_out"] == 1


async def test_connect_naming_an_attached_leg_detaches_it(
    relay: MediaRelay, phones: tuple[socket.socket, socket.socket]
) -> None:
    phone_a, phone_b = phones
    session = await relay.open("call-answered")
    session.set_remote("a", *phone_a.getsockname())
    session.set_remote("b", *phone_b.getsockname())
    heard: list[bytes] = []
    send = session.attach("a", heard.append)
    session.connect(None)  # a leg connect() does not name stays with the platform
    assert session.attached("a")
    session.connect("a", "b")
    assert session.connected("a") == "b" and not session.attached("a")
    send(b"\x80" + b"\x00" * 171)  # the earlier send no longer works
    packet = G711Stream(ssrc=0xA).next_packet()
    phone_a.sendto(packet, (HOST, session.a.port))
    assert await recv(phone_b) == packet
    await asyncio.sleep(0.05)
    assert heard == [] and not pending(phone_a)


async def test_nothing_is_sent_to_a_refused_target_or_after_close(
    phones: tuple[socket.socket, socket.socket],
) -> None:
    phone_a, _ = phones
    relay = MediaRelay(
        RelayConfig(port_min=32700, port_max=32709, allowed_target=lambda host: False)
    )
    await relay.start()
    try:
        session = await relay.open("call-refused")
        session.set_remote("a", *phone_a.getsockname())
        send = session.attach("a", lambda packet: None)
        for sequence in range(5):
            send(build_rtp_packet(TONE, sequence=sequence, timestamp=0, ssrc=1))
        await asyncio.sleep(0.1)
        assert not pending(phone_a)
        assert session.stats()["a_packets_out"] == 0
        await session.close()
        send(build_rtp_packet(TONE, sequence=9, timestamp=0, ssrc=1))  # no error, nothing
        assert session.stats()["a_packets_out"] == 0
    finally:
        await relay.stop()
