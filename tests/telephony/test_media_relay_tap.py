"""The relay's tap (call recording's feed), with real UDP sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from sparklecomm.telephony.media import (
    CallRecorder,
    G711Stream,
    MediaRelay,
    RelayConfig,
    RelaySession,
)
from sparklecomm.telephony.sip.transport import loopback_only

HOST = "127.0.0.1"


@pytest.fixture
async def relay() -> AsyncIterator[MediaRelay]:
    relay = MediaRelay(RelayConfig(port_min=33500, port_max=33599, allowed_target=loopback_only))
    await relay.start()
    yield relay
    await relay.stop()


class Phone:
    """A UDP socket on loopback standing for one party's phone (RTP only)."""

    def __init__(self, host: str = HOST) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()

    def send(self, packet: bytes, port: int) -> None:
        self.sock.sendto(packet, (HOST, port))

    async def recv(self, within: float = 2.0) -> bytes:
        loop = asyncio.get_running_loop()
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(self.sock, 2048), within)
        return data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def phones() -> Iterator[tuple[Phone, Phone, Phone]]:
    trio = (Phone(), Phone(), Phone())
    yield trio
    for phone in trio:
        phone.close()


class Taps:
    """A listener that keeps what it is handed."""

    def __init__(self) -> None:
        self.got: list[tuple[str, bytes]] = []

    def __call__(self, leg: str, packet: bytes) -> None:
        self.got.append((leg, packet))


async def settle(session: RelaySession, leg: str, packets: int) -> None:
    """Wait until ``leg`` has received ``packets`` RTP packets (loopback is quick)."""
    for _ in range(200):
        if session.stats()[f"{leg}_packets_in"] >= packets:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"leg {leg} received {session.stats()[f'{leg}_packets_in']} packets")


async def test_tap_sees_both_legs_and_forwarding_is_unchanged(
    relay: MediaRelay, phones: tuple[Phone, Phone, Phone]
) -> None:
    a, b, _ = phones
    session = await relay.open("call-tap")
    session.set_remote("a", *a.address)
    session.set_remote("b", *b.address)
    taps = Taps()
    session.tap(taps)
    caller, agent = G711Stream(ssrc=0xA, tone=1000.0), G711Stream(ssrc=0xB)
    sent_a = [caller.next_packet() for _ in range(10)]
    sent_b = [agent.next_packet() for _ in range(10)]
    for packet_a, packet_b in zip(sent_a, sent_b, strict=True):
        a.send(packet_a, session.a.port)
        b.send(packet_b, session.b.port)
        await asyncio.sleep(0.001)
    assert [await b.recv() for _ in range(10)] == sent_a  # forwarded as before
    assert [await a.recv() for _ in range(10)] == sent_b
    assert [p for leg, p in taps.got if leg == "a"] == sent_a
    assert [p for leg, p in taps.got if leg == "b"] == sent_b
    assert len(taps.got) == 20
    stats = session.stats()
    assert stats["a_packets_out"] == stats["b_packets_out"] == 10
    assert stats["a_errors"] == stats["b_errors"] == 0


async def test_tap_skips_rtcp_and_foreign_sources(phones: tuple[Phone, Phone, Phone]) -> None:
    a, b, _ = phones
    intruder = Phone("127.0.0.2")  # not the SDP's address: no re-latching to it
    relay = MediaRelay(
        RelayConfig(port_min=33600, port_max=33619, allowed_target=loopback_only, latch_window=0.0)
    )
    await relay.start()
    try:
        session = await relay.open("call-tap-foreign")
        session.set_remote("a", *a.address)
        session.set_remote("b", *b.address)
        taps = Taps()
        session.tap(taps)
        stream = G711Stream(ssrc=1)
        a.send(stream.next_packet(), session.a.port)  # latches leg a to phone A
        await settle(session, "a", 1)
        await asyncio.sleep(0.01)  # past the (zero) latch window
        intruder.send(stream.next_packet(), session.a.port)  # dropped as foreign
        a.send(bytes([0x80, 200, 0, 6]) + bytes(24), session.a.rtcp_port)  # an RTCP report
        a.send(stream.next_packet(), session.a.port)
        for _ in range(200):
            stats = session.stats()
            if stats["a_packets_in"] == 3 and stats["a_rtcp_in"] == 1:
                break
            await asyncio.sleep(0.005)
        assert stats["a_rejected"] == 1 and stats["a_rtcp_in"] == 1
        assert [leg for leg, _ in taps.got] == ["a", "a"]  # the two from phone A, RTP only
    finally:
        intruder.close()
        await relay.stop()


async def test_tap_follows_swap_and_leg_c_and_stops(
    relay: MediaRelay, phones: tuple[Phone, Phone, Phone]
) -> None:
    a, b, c = phones
    session = await relay.open("call-tap-consult")
    session.set_remote("a", *a.address)
    session.set_remote("b", *b.address)
    taps = Taps()
    session.tap(taps)
    leg_c = await session.add_leg()  # added after tap(): tapped too
    session.set_remote("c", *c.address)
    session.connect("b", "c")  # consultation: the caller (a) is isolated, on hold
    from_a, from_b, from_c = G711Stream(ssrc=1), G711Stream(ssrc=2), G711Stream(ssrc=3)
    a.send(from_a.next_packet(), session.a.port)
    b.send(from_b.next_packet(), session.b.port)
    c.send(from_c.next_packet(), leg_c.port)
    assert (await c.recv())[8:12] == (2).to_bytes(4, "big")  # b and c talk
    await settle(session, "a", 1)
    await settle(session, "c", 1)
    assert sorted(leg for leg, _ in taps.got) == ["a", "b", "c"]  # a tapped though isolated
    assert session.stats()["a_dropped"] == 1

    session.swap("b", "c")  # warm transfer: the consulted party's leg becomes b
    session.connect("a", "b")
    taps.got.clear()
    c.send(from_c.next_packet(), leg_c.port)  # the same socket, now leg b
    assert (await a.recv())[8:12] == (3).to_bytes(4, "big")
    assert [(leg, p[8:12]) for leg, p in taps.got] == [("b", (3).to_bytes(4, "big"))]

    session.tap(None)
    taps.got.clear()
    a.send(from_a.next_packet(), session.a.port)
    assert (await c.recv())[8:12] == (1).to_bytes(4, "big")  # still forwarded
    assert taps.got == []


async def test_a_failing_listener_does_not_break_forwarding(
    relay: MediaRelay, phones: tuple[Phone, Phone, Phone]
) -> None:
    a, b, _ = phones
    session = await relay.open("call-tap-raises")
    session.set_remote("a", *a.address)
    session.set_remote("b", *b.address)
    calls: list[str] = []

    def broken(leg: str, packet: bytes) -> None:
        calls.append(leg)
        raise OSError("disk full")

    session.tap(broken)
    stream = G711Stream(ssrc=7)
    sent = [stream.next_packet() for _ in range(5)]
    for packet in sent:
        a.send(packet, session.a.port)
    assert [await b.recv() for _ in range(5)] == sent
    assert calls == ["a"] * 5
    stats = session.stats()
    assert stats["a_errors"] == 5 and stats["a_packets_out"] == 0
    assert stats["b_packets_out"] == 5 and stats["a_dropped"] == 0


async def test_closing_the_session_removes_the_tap(relay: MediaRelay) -> None:
    session = await relay.open("call-tap-close")
    session.tap(Taps())
    await session.close()
    assert all(leg.rtp.tap is None for leg in session.legs)


async def test_tap_feeds_a_call_recorder(
    relay: MediaRelay, phones: tuple[Phone, Phone, Phone], tmp_path: Path
) -> None:
    a, b, _ = phones
    session = await relay.open("call-tap-record")
    session.set_remote("a", *a.address)
    session.set_remote("b", *b.address)
    now = [100.0]
    recorder = CallRecorder(tmp_path / "call.wav", clock=lambda: now[0])
    session.tap(recorder.feed)
    caller, agent = G711Stream(ssrc=1, tone=1000.0), G711Stream(ssrc=2, tone=440.0)
    for k in range(50):
        a.send(caller.next_packet(), session.a.port)
        b.send(agent.next_packet(), session.b.port)
        await settle(session, "a", k + 1)
        await settle(session, "b", k + 1)
        now[0] += 0.02
    session.tap(None)
    result = recorder.close()
    assert result.packets == 100 and result.seconds == pytest.approx(1.0, abs=0.02)
    with wave.open(str(result.path), "rb") as wav:
        frames = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").reshape(-1, 2)
    for channel, hz in ((0, 1000.0), (1, 440.0)):
        spectrum = np.abs(np.fft.rfft(frames[:, channel].astype(np.float64)))
        assert np.argmax(spectrum) * 8000 / frames.shape[0] == pytest.approx(hz, abs=5)
