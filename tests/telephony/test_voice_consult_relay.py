"""The relay's third leg and switching (consultation, warm transfer): fake transports and
clock for the forwarding decisions, real sockets for binding and releasing the third pair."""

from __future__ import annotations

from typing import Any, cast

import pytest

from sparklecomm.core.errors import InvalidInput
from sparklecomm.telephony.media import G711Stream, MediaRelay, RelayConfig, RelaySession
from sparklecomm.telephony.media.relay import RelayLeg
from sparklecomm.telephony.sip.transport import loopback_only

PHONE_A = ("127.0.0.1", 40000)
PHONE_B = ("127.0.0.1", 42000)
PHONE_C = ("127.0.0.1", 44000)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))

    def close(self) -> None:
        pass

    def take(self) -> list[Any]:
        out, self.sent = self.sent, []
        return [addr for _, addr in out]


def three_legs() -> tuple[RelaySession, dict[str, FakeTransport]]:
    config = RelayConfig(allowed_target=loopback_only, clock=Clock())
    transports: dict[str, FakeTransport] = {}

    async def add_pair(session: RelaySession, leg: RelayLeg) -> None:
        leg.port, leg.rtcp_port = 20004, 20005
        for name, endpoint in (("c", leg.rtp), ("c_rtcp", leg.rtcp)):
            transports[name] = FakeTransport()
            endpoint.connection_made(cast(Any, transports[name]))

    session = RelaySession("call-1", config, 20000, 20002, add_pair=add_pair)
    for name, endpoint in zip(("a", "a_rtcp", "b", "b_rtcp"), session._endpoints(), strict=True):
        transports[name] = FakeTransport()
        endpoint.connection_made(cast(Any, transports[name]))
    return session, transports


async def test_connect_switches_who_hears_whom() -> None:
    session, sent = three_legs()
    leg_c = await session.add_leg()
    assert await session.add_leg() is leg_c  # only one third leg
    for name, phone in (("a", PHONE_A), ("b", PHONE_B), ("c", PHONE_C)):
        session.set_remote(name, *phone)  # type: ignore[arg-type]
    streams = {name: G711Stream(ssrc=i) for i, name in enumerate("abc")}

    def feed(name: str) -> None:
        leg = session._leg(name)
        leg.rtp.datagram_received(
            streams[name].next_packet(), {"a": PHONE_A, "b": PHONE_B, "c": PHONE_C}[name]
        )

    # A new leg c is isolated; a and b still talk.
    feed("a")
    feed("c")
    assert sent["b"].take() == [PHONE_B] and sent["a"].take() == [] and sent["c"].take() == []
    assert session.connected("c") is None and session.connected("a") == "b"

    session.connect("b", "c")  # consulting: the caller is on hold
    feed("a")
    feed("b")
    feed("c")
    assert sent["a"].take() == []  # nothing reaches the caller
    assert sent["c"].take() == [PHONE_C]  # the owner's packet, out of c to phone C
    assert sent["b"].take() == [PHONE_B]  # phone C's packet, out of b to the owner
    assert session.connected("a") is None

    session.connect(None)  # everyone isolated
    feed("a")
    feed("b")
    assert all(not t.take() for t in sent.values())

    session.connect("a", "c")  # warm transfer
    feed("a")
    feed("c")
    feed("b")
    assert sent["c"].take() == [PHONE_C] and sent["a"].take() == [PHONE_A]
    assert sent["b"].take() == []

    stats = session.stats()
    assert (
        stats["a_packets_in"] == 4 and stats["a_packets_out"] == 1
    )  # c -> a once, after the transfer
    assert stats["c_packets_in"] == 3


async def test_packets_out_are_counted_across_switches() -> None:
    session, _ = three_legs()
    await session.add_leg()
    for name, phone in (("a", PHONE_A), ("b", PHONE_B), ("c", PHONE_C)):
        session.set_remote(name, *phone)  # type: ignore[arg-type]
    stream = G711Stream(ssrc=9)
    session.b.rtp.datagram_received(stream.next_packet(), PHONE_B)  # b -> a
    session.connect("b", "c")
    session.b.rtp.datagram_received(stream.next_packet(), PHONE_B)  # b -> c
    session.connect("a", "b")
    session.b.rtp.datagram_received(stream.next_packet(), PHONE_B)  # b -> a
    assert session.c is not None
    stats = session.stats()
    assert (stats["a_packets_out"], stats["c_packets_out"], stats["b_packets_in"]) == (2, 1, 3)
    assert stats["a_bytes_out"] == 2 * 172


async def test_swap_renames_legs_and_keeps_their_ports() -> None:
    session, _ = three_legs()
    leg_c = await session.add_leg()
    old_b = session.b
    session.connect("a", "c")
    session.swap("b", "c")
    assert session.b is leg_c and session.c is old_b
    assert (session.b.name, session.c.name) == ("b", "c")
    assert session.b.port == 20004 and session.connected("a") == "b"
    with pytest.raises(InvalidInput):
        session.connect("a", "a")


async def test_add_leg_binds_a_third_pair_and_close_releases_it() -> None:
    relay = MediaRelay(
        RelayConfig(port_min=41000, port_max=41011, allowed_target=loopback_only, spare_pairs=0)
    )
    await relay.start()
    try:
        session = await relay.open("call-x")
        assert relay.pairs_in_use == 2
        leg = await session.add_leg()
        assert relay.pairs_in_use == 3
        assert leg.port not in (session.a.port, session.b.port) and leg.port % 2 == 0
        assert "c_packets_in" in session.stats()
        await session.close()
        assert relay.pairs_in_use == 0
        with pytest.raises(RuntimeError):
            await session.add_leg()
    finally:
        await relay.stop()
