"""The RTP relay: every call's media passes through the platform (media anchoring).

A :class:`RelaySession` has two legs, ``a`` (caller side) and ``b`` (callee side); each leg
owns an RTP port (even) and an RTCP port (odd, RTP + 1) on :attr:`RelayConfig.host`, which
is the address the B2BUA advertises in the SDP it sends to that side. A packet arriving on
leg a's RTP socket leaves from leg b's RTP socket towards leg b's remote, and the other way
round; RTCP likewise on the +1 ports.

The platform as a party (waiting media): :meth:`RelaySession.attach` isolates a leg and
hands what its phone sends to the platform (DTMF for a callback offer), and returns a
``send`` function that plays the platform's own RTP to that phone (music, announcements).
The attached leg's peer is a socketless endpoint (:class:`_PlatformEndpoint`) whose
``sendto`` is the platform's callback, so the forwarding path is the same code for it too.

Latching (symmetric RTP, RFC 4961 style, as rtpproxy and rtpengine do): the source address
of the first packet received on a leg becomes that leg's remote, whatever its SDP said, so
phones behind NAT (whose SDP names a private address) work. The trade-off: whoever gets a
packet to the port first receives the other side's media. Re-latching to a new source is
limited to sources whose IP is the SDP's IP (a phone that changed port) and to the first
``latch_window`` seconds after the first latch (a NAT binding settling); other sources are
dropped and counted as ``rejected``. A new :meth:`RelaySession.set_remote` (re-INVITE)
unlatches the leg.

Switching (consultation and warm transfer): a session can get a third leg ``c``
(:meth:`RelaySession.add_leg`, bound on demand) and :meth:`RelaySession.connect` chooses
which two legs talk; every other leg is isolated (its packets are dropped, it receives
nothing: the caller on hold). This only re-points each socket's ``peer``, so the forwarding
path below is the same code, at the same cost, for two or three legs.
:meth:`RelaySession.swap` renames two legs (after a warm transfer the consulted party's leg
becomes ``b``, the callee side, for whoever drives the session by leg name).

Tapping (call recording): :meth:`RelaySession.tap` hands a copy of every RTP packet the
legs' phones send to a listener, by leg name, whatever the legs are connected to. It is a
slot on each RTP endpoint, so an untapped session pays one attribute load and a ``None``
test per packet.

Hot path (``_Endpoint.datagram_received``): no allocation beyond the packet and address
asyncio hands us and the few numbers of the accounting (no copies, no per-packet objects of
our own), targets precomputed (and already checked against ``allowed_target``),
``sendto`` straight on the peer socket's transport, sequence/jitter accounting in a few
integer and float operations.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import structlog

from sparklecomm.core.errors import Conflict, InvalidInput
from sparklecomm.telephony.media.ports import PortAllocator, PortRangeExhausted

log = structlog.get_logger("sparklecomm.media.relay")

LegName = Literal["a", "b", "c"]
Address = tuple[Any, ...]
"""A socket address as asyncio gives it: (host, port) or (host, port, flow, scope)."""

# Stream accounting (written as literals in the hot path):
# MAX_DROPOUT = 3000: a sequence jump forward of this many or more starts a new run
# (RFC 3550 A.1); MAX_MISORDER = 100: a sequence this far behind the highest seen is a late
# or duplicate packet; RESYNC = 1.0 s: a transit-time jump above this is a timestamp
# discontinuity, not delay; DRIFT_GAIN = 1/512: how fast the transit baseline follows
# upward (clock drift between the sender and us).
TOS_EF = 0xB8
"""DSCP Expedited Forwarding (46), the usual marking for voice."""

_unpack_seq_ts = struct.Struct("!HI").unpack_from


@functools.lru_cache(maxsize=1024)
def _ip(host: str, field: str) -> str:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        raise InvalidInput(f"{field} must be an IP address, not {host!r}", field=field) from None


@dataclass(frozen=True)
class RelayConfig:
    """Settings of the media relay.

    ``host`` is bound and advertised in SDP (``advertise`` overrides the advertised one,
    e.g. when binding 0.0.0.0). ``allowed_target`` refuses destinations (tests pass
    :func:`sparklecomm.telephony.sip.transport.loopback_only`). ``late_threshold`` is the
    extra transit delay (seconds, over the stream's recent minimum) beyond which a packet
    counts as late. ``clock`` is injectable for tests.

    ``spare_pairs``: how many port pairs of closed sessions stay bound (their sockets
    parked, dropping what arrives) to be handed to the next sessions: binding and
    registering four sockets is most of the cost of opening a session. A parked pair is
    reused only once nothing has arrived on it for ``reuse_quiet`` seconds (late media of
    its previous call must not latch the next one); otherwise a fresh pair is bound, and
    when the range is exhausted (or the process is out of file descriptors) the spares are
    closed first. 0 closes every pair with its session. The spares never take more than a
    quarter of the process's file-descriptor limit (``RLIMIT_NOFILE``, 4 per pair).
    """

    host: str = "127.0.0.1"
    port_min: int = 20000
    port_max: int = 29999
    allowed_target: Callable[[str], bool] | None = None
    idle_timeout: float = 120.0
    latch_window: float = 3.0
    late_threshold: float = 0.04
    advertise: str | None = None
    tos: int | None = TOS_EF
    clock: Callable[[], float] = time.monotonic
    spare_pairs: int = 1024
    reuse_quiet: float = 0.5

    def __post_init__(self) -> None:
        # Normalised ("[::1]" -> "::1") so that it binds and compares as asyncio reports it.
        object.__setattr__(self, "host", _ip(self.host, "host"))
        if self.advertise is not None:
            object.__setattr__(self, "advertise", _ip(self.advertise, "advertise"))
        PortAllocator(self.port_min, self.port_max)  # validates the range
        if isinstance(self.spare_pairs, bool) or not (
            isinstance(self.spare_pairs, int) and self.spare_pairs >= 0
        ):
            raise InvalidInput(
                f"spare_pairs must be a whole number >= 0, not {self.spare_pairs!r}",
                field="spare_pairs",
            )
        if not self.reuse_quiet >= 0:
            raise InvalidInput("reuse_quiet must not be negative", field="reuse_quiet")
        for name in ("idle_timeout", "late_threshold"):
            if not getattr(self, name) > 0:
                raise InvalidInput(f"{name} must be positive", field=name)
        if not self.latch_window >= 0:
            raise InvalidInput("latch_window must not be negative", field="latch_window")


class _Endpoint(asyncio.DatagramProtocol):
    """One socket of one leg (its RTP or its RTCP port), with that port's counters.

    ``remote`` is where this leg's phone is (SDP or latched); ``target`` is the same address
    when ``allowed_target`` accepts it, else ``None``. Packets received here go out of
    ``peer`` (the other leg's socket of the same kind) to ``peer.target``.
    """

    __slots__ = (
        "_allowed",
        "_clock",
        "_closed",
        "_inv_rate",
        "_latch_window",
        "_late_threshold",
        "_sendto",
        "base_seq",
        "base_transit",
        "bytes_in",
        "cycles",
        "dropped",
        "dropped_bytes",
        "errors",
        "last_rx",
        "latched_at",
        "late",
        "leg",
        "lost_prior",
        "max_seq",
        "out_base_bytes",
        "out_base_packets",
        "out_mark_bytes",
        "out_mark_packets",
        "packets_in",
        "peer",
        "received",
        "refused",
        "rejected",
        "relatched",
        "remote",
        "rtp",
        "sdp_host",
        "source",
        "tap",
        "target",
        "transport",
    )

    def __init__(self, leg: str, *, rtp: bool, config: RelayConfig) -> None:
        self.leg = leg
        self.rtp = rtp
        self._clock = config.clock
        self._allowed = config.allowed_target
        self._late_threshold = config.late_threshold
        self._latch_window = config.latch_window
        self._inv_rate = 1.0 / 8000
        self._closed: asyncio.Future[None] | None = None
        self._sendto: Callable[[bytes, Address], None] | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.tap: Callable[[str, bytes], None] | None = None
        self.peer: _Endpoint = self
        self.remote: Address | None = None
        self.target: Address | None = None
        self.source: Address | None = None
        self.sdp_host: str | None = None
        self.latched_at = 0.0
        self.last_rx = 0.0
        self.packets_in = self.bytes_in = self.dropped_bytes = 0
        self.dropped = self.refused = self.rejected = self.relatched = self.errors = 0
        self.received = self.base_seq = self.max_seq = self.cycles = self.lost_prior = 0
        self.late = 0
        self.base_transit = 0.0
        # packets_out across peer changes (switching): what earlier peers forwarded, and
        # the current peer's forwarded count when it became the peer
        self.out_base_packets = self.out_base_bytes = 0
        self.out_mark_packets = self.out_mark_bytes = 0

    # -- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self._sendto = self.transport.sendto
        self._closed = asyncio.get_running_loop().create_future()
        self._retarget()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._sendto = None
        self.target = None
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like, once per packet: count, never log each one.
        self.errors += 1

    def datagram_received(self, data: bytes, addr: Address) -> None:  # the hot path
        # Constants are literals here (MAX_DROPOUT, MAX_MISORDER, RESYNC, DRIFT_GAIN):
        # a global lookup per packet costs more than the arithmetic.
        self.packets_in += 1
        size = len(data)
        self.bytes_in += size
        if addr != self.source and not self._accept_source(addr):
            self.dropped += 1
            self.dropped_bytes += size
            return
        now = self._clock()
        self.last_rx = now
        # RTP version 2, and not RTCP multiplexed on the RTP port (RFC 5761: 192-223).
        if size >= 12 and data[0] & 0xC0 == 0x80 and not 191 < data[1] < 224:
            seq, timestamp = _unpack_seq_ts(data, 2)
            transit = now - timestamp * self._inv_rate
            if self.received:
                udelta = (seq - self.max_seq) & 0xFFFF
                if udelta < 3000:  # MAX_DROPOUT
                    if seq < self.max_seq:
                        self.cycles += 0x10000
                    self.max_seq = seq
                elif udelta <= 0xFF9C:  # 0x10000 - MAX_MISORDER: a restart, else late/dup
                    self._restart(seq, transit)
                excess = transit - self.base_transit
                if excess > self._late_threshold:
                    if excess > 1.0:  # RESYNC
                        self.base_transit = transit
                    else:
                        self.late += 1
                elif excess < 0.0:
                    self.base_transit = transit
                else:
                    self.base_transit += excess * 0.001953125  # DRIFT_GAIN
            else:
                self.base_seq = self.max_seq = seq
                self.base_transit = transit
            self.received += 1
            if self.tap is not None:  # untapped, the only cost: one load, one test
                try:
                    self.tap(self.leg, data)
                except Exception:
                    self._tap_failed()
        peer = self.peer
        target = peer.target
        if target is None:
            self._drop(size)
            return
        peer._sendto(data, target)  # type: ignore[misc]  # set whenever target is

    def _tap_failed(self) -> None:
        # A failing listener (a recorder whose disk is full) must not break the call's
        # media, nor log every packet: count, log the first.
        self.errors += 1
        if self.errors == 1:
            log.exception("rtp.tap_listener_failed", leg=self.leg)

    def _drop(self, size: int) -> None:
        self.dropped += 1
        self.dropped_bytes += size
        if self.peer.remote is not None:
            self.refused += 1

    @property
    def packets_out(self) -> int:
        """Packets sent out of this socket: those its peers received and did not drop
        (peers are paired both ways, so this socket's peer is who sends out of it)."""
        peer = self.peer
        return self.out_base_packets + peer.packets_in - peer.dropped - self.out_mark_packets

    @property
    def bytes_out(self) -> int:
        peer = self.peer
        return self.out_base_bytes + peer.bytes_in - peer.dropped_bytes - self.out_mark_bytes

    def set_peer(self, peer: _Endpoint) -> None:
        """Forward what arrives here out of ``peer`` from now on (keeping the counts)."""
        if peer is self.peer:
            return
        self.out_base_packets = self.packets_out
        self.out_base_bytes = self.bytes_out
        self.peer = peer
        self.out_mark_packets = peer.packets_in - peer.dropped
        self.out_mark_bytes = peer.bytes_in - peer.dropped_bytes

    # -- latching and remotes ----------------------------------------------------------------

    def _accept_source(self, addr: Address) -> bool:
        now = self._clock()
        if self.source is None:
            self.latched_at = now
            self._latch(addr)
            return True
        # Both sides are normalised text (asyncio's and ipaddress's), so == compares IPs.
        if now - self.latched_at <= self._latch_window or addr[0] == self.sdp_host:
            self.relatched += 1
            self._latch(addr)
            return True
        self.rejected += 1
        return False

    def _latch(self, addr: Address) -> None:
        self.source = addr
        self.remote = addr
        self._retarget()
        log.debug("rtp.latched", leg=self.leg, rtp=self.rtp, source=f"{addr[0]}:{addr[1]}")

    def set_remote(self, host: str, port: int) -> None:
        self.sdp_host = host
        self.remote = (host, port) if port else None
        self.source = None
        self._retarget()

    def _retarget(self) -> None:
        remote = self.remote
        if remote is None or self._sendto is None:
            self.target = None
            return
        if self._allowed is not None and not self._allowed(str(remote[0])):
            log.warning("rtp.target_refused", leg=self.leg, target=f"{remote[0]}:{remote[1]}")
            self.target = None
            return
        self.target = remote

    def _restart(self, seq: int, transit: float) -> None:
        """A new run of sequence numbers (the source restarted): close the books on the old."""
        self.lost_prior += max(0, self.cycles + self.max_seq - self.base_seq + 1 - self.received)
        self.base_seq = self.max_seq = seq
        self.cycles = 0
        self.received = 0
        self.base_transit = transit

    @property
    def lost(self) -> int:
        if not self.received:
            return self.lost_prior
        expected = self.cycles + self.max_seq - self.base_seq + 1
        return self.lost_prior + max(0, expected - self.received)

    def close(self) -> None:
        self.target = None
        if self.transport is not None:
            self.transport.close()

    def detach(self) -> asyncio.DatagramTransport | None:
        """Let go of the transport without closing it (its socket is parked for reuse)."""
        transport = self.transport
        self.transport = None
        self._sendto = None
        self.target = None
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        return transport

    async def wait_closed(self) -> None:
        if self._closed is not None:
            await self._closed


class _RtcpEndpoint(_Endpoint):
    """The RTCP socket of a leg: relayed like RTP, latched on its own, no stream stats."""

    __slots__ = ()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.packets_in += 1
        size = len(data)
        self.bytes_in += size
        if addr != self.source and not self._accept_source(addr):
            self.dropped += 1
            self.dropped_bytes += size
            return
        self.last_rx = self._clock()
        target = self.peer.target
        if target is None:
            self._drop(size)
            return
        self.peer._sendto(data, target)  # type: ignore[misc]  # set whenever target is


class _PlatformEndpoint(_Endpoint):
    """The peer of a leg the platform itself talks to (:meth:`RelaySession.attach`).

    Never bound. The leg's forwarding path hands packets to ``_sendto``, which here calls
    the platform's callback; its ``packets_in``/``bytes_in`` count what the platform sent
    out of the leg (so the leg's ``packets_out`` stays ``peer.packets_in - peer.dropped``).
    """

    __slots__ = ("on_packet",)

    def __init__(
        self, leg: RelayLeg, on_packet: Callable[[bytes], None], config: RelayConfig
    ) -> None:
        super().__init__("platform", rtp=True, config=config)
        self.on_packet = on_packet
        self._sendto = self._deliver
        self.target = ("platform", 0)  # never used as an address: _deliver ignores it
        self.peer = leg.rtp

    def _deliver(self, data: bytes, addr: Address) -> None:
        try:
            self.on_packet(data)
        except Exception:
            # A failing listener must not break the leg's socket (nor log every packet).
            self.errors += 1
            if self.errors == 1:
                log.exception("rtp.platform_listener_failed", leg=self.peer.leg)

    def send(self, packet: bytes) -> None:
        leg = self.peer
        if leg.peer is not self:  # detached, connected again, or the leg closed
            return
        target = leg.target
        if target is None:
            return
        self.packets_in += 1
        self.bytes_in += len(packet)
        leg._sendto(packet, target)  # type: ignore[misc]  # set whenever target is


def _descriptor_limit() -> int:
    """The process's soft limit on open files (a generous guess where it cannot be read)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 65536
    return 65536 if soft == resource.RLIM_INFINITY else int(soft)


def _factory(endpoint: _Endpoint) -> Callable[[], _Endpoint]:
    return lambda: endpoint


class _Parked(asyncio.DatagramProtocol):
    """The protocol of a spare pair's sockets: drops what arrives, noting when."""

    __slots__ = ("_clock", "last_rx")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.last_rx = clock()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.last_rx = self._clock()

    def error_received(self, exc: Exception) -> None:
        pass


@dataclass(slots=True)
class _Pair:
    """A bound RTP/RTCP port pair: its sockets and, once registered, their transports."""

    port: int
    socks: tuple[socket.socket, socket.socket]
    transports: tuple[asyncio.DatagramTransport, asyncio.DatagramTransport] | None = None
    parked: _Parked | None = None

    def close(self) -> None:
        if self.transports is not None:
            for transport in self.transports:
                transport.close()
        for sock in self.socks:  # now, not on the loop's next turn: the port is free again
            sock.close()


class RelayLeg:
    """One side of a session: the ports the B2BUA puts in the SDP it sends to that side."""

    def __init__(self, name: LegName, host: str, port: int, config: RelayConfig) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.rtcp_port = port + 1
        self.rtp = _Endpoint(name, rtp=True, config=config)
        self.rtcp = _RtcpEndpoint(name, rtp=False, config=config)
        self._socks: tuple[socket.socket, socket.socket] | None = None

    @property
    def remote(self) -> tuple[str, int] | None:
        """Where this side's RTP goes now (the SDP address, or the latched source)."""
        remote = self.rtp.remote
        return None if remote is None else (str(remote[0]), int(remote[1]))

    @property
    def latched(self) -> bool:
        return self.rtp.source is not None


class RelaySession:
    """The media of one call: leg ``a`` (caller side) and leg ``b`` (callee side), and a
    leg ``c`` once :meth:`add_leg` bound it (a consulted agent)."""

    def __init__(
        self,
        call_id: str,
        config: RelayConfig,
        a_port: int,
        b_port: int,
        *,
        on_close: Callable[[RelaySession], None] | None = None,
        park: Callable[[RelayLeg], bool] | None = None,
        add_pair: Callable[[RelaySession, RelayLeg], Awaitable[None]] | None = None,
    ) -> None:
        host = config.advertise or config.host
        self.call_id = call_id
        self.a = RelayLeg("a", host, a_port, config)
        self.b = RelayLeg("b", host, b_port, config)
        self.c: RelayLeg | None = None
        self.a.rtp.peer, self.b.rtp.peer = self.b.rtp, self.a.rtp
        self.a.rtcp.peer, self.b.rtcp.peer = self.b.rtcp, self.a.rtcp
        # Where an isolated leg forwards to: nowhere (never bound, never receives).
        self._hold_rtp = _Endpoint("hold", rtp=True, config=config)
        self._hold_rtcp = _Endpoint("hold", rtp=False, config=config)
        self._config = config
        self._on_close = on_close
        self._park = park
        self._add_pair = add_pair
        self.opened_at = config.clock()
        self.closed = False
        self.idle_reported = False
        self._tap: Callable[[str, bytes], None] | None = None

    def _leg(self, leg: str) -> RelayLeg:
        if leg == "a":
            return self.a
        if leg == "b":
            return self.b
        if leg == "c" and self.c is not None:
            return self.c
        raise InvalidInput(f"leg must be 'a' or 'b' (or 'c' once added), not {leg!r}", field="leg")

    @property
    def legs(self) -> tuple[RelayLeg, ...]:
        return (self.a, self.b) if self.c is None else (self.a, self.b, self.c)

    async def add_leg(self) -> RelayLeg:
        """Bind leg ``c`` (an RTP/RTCP pair from the relay's range), isolated until
        :meth:`connect` names it; the existing one if there is one.
        :class:`PortRangeExhausted` when no pair is free."""
        if self.closed or self._add_pair is None:
            raise RuntimeError("add_leg() needs an open session of a MediaRelay")
        if self.c is not None:
            return self.c
        leg = RelayLeg("c", self._config.advertise or self._config.host, 0, self._config)
        leg.rtp.peer, leg.rtcp.peer = self._hold_rtp, self._hold_rtcp
        leg.rtp.tap = self._tap
        await self._add_pair(self, leg)
        if self.closed:  # closed while binding: the relay gave the pair back
            raise RuntimeError("the session closed while its leg c was being bound")
        self.c = leg
        log.info("rtp.leg_added", call_id=self.call_id, leg="c", port=leg.port)
        return leg

    def connect(self, first: LegName | None, second: LegName | None = None) -> None:
        """Make ``first`` and ``second`` talk to each other; every other leg is isolated
        (what it sends is dropped, it receives nothing). ``connect(None)`` isolates all.
        Two-party calls never need it (``a`` and ``b`` are connected from the start).

        A leg the platform is attached to (:meth:`attach`) is detached when named here;
        one not named stays attached (the platform keeps talking to it)."""
        pair: dict[RelayLeg, RelayLeg] = {}
        if first is not None:
            if second is None or second == first:
                raise InvalidInput("connect() needs two different legs", field="leg")
            one, two = self._leg(first), self._leg(second)
            pair = {one: two, two: one}
        for leg in self.legs:
            other = pair.get(leg)
            if other is None and isinstance(leg.rtp.peer, _PlatformEndpoint):
                continue  # attached and not named: stays with the platform
            leg.rtp.set_peer(other.rtp if other is not None else self._hold_rtp)
            leg.rtcp.set_peer(other.rtcp if other is not None else self._hold_rtcp)
        log.info("rtp.legs_connected", call_id=self.call_id, legs=f"{first}-{second}")

    def connected(self, leg: LegName) -> str | None:
        """The leg that ``leg`` talks to now (``None``: isolated, or attached to the
        platform)."""
        peer = self._leg(leg).rtp.peer
        if peer is self._hold_rtp or isinstance(peer, _PlatformEndpoint):
            return None
        return peer.leg

    def attach(self, leg: LegName, on_packet: Callable[[bytes], None]) -> Callable[[bytes], None]:
        """Let the platform itself be ``leg``'s party (waiting music, announcements, DTMF).

        The leg is isolated from the other legs (as :meth:`connect` isolates: it forwards
        to no one and no one forwards to it); every RTP packet its phone sends (after the
        usual source check and latching, counted in its ``packets_in``) goes to
        ``on_packet`` instead. Returns ``send(packet)``, which sends an RTP packet out of the
        leg's RTP port to its phone (the SDP address or the latched source), counted in
        the leg's ``packets_out``. ``send`` does nothing while the leg has no allowed target,
        and for good once the leg is detached, connected again or closed. Attaching an
        attached leg replaces the listener (the earlier ``send`` stops working). RTCP of
        the leg is dropped meanwhile."""
        target = self._leg(leg)
        if self.closed:
            raise RuntimeError("attach() on a closed relay session")
        platform = _PlatformEndpoint(target, on_packet, self._config)
        for other in self.legs:  # whoever forwarded to this leg is isolated now
            if other is not target and other.rtp.peer is target.rtp:
                other.rtp.set_peer(self._hold_rtp)
                other.rtcp.set_peer(self._hold_rtcp)
        target.rtp.set_peer(platform)
        target.rtcp.set_peer(self._hold_rtcp)
        log.info("rtp.leg_attached", call_id=self.call_id, leg=leg)
        return platform.send

    def detach(self, leg: LegName) -> None:
        """Stop handing ``leg``'s packets to the platform (its ``send`` stops working too);
        the leg stays isolated until :meth:`connect` names it. Idempotent."""
        target = self._leg(leg)
        if isinstance(target.rtp.peer, _PlatformEndpoint):
            target.rtp.set_peer(self._hold_rtp)
            log.info("rtp.leg_detached", call_id=self.call_id, leg=leg)

    def attached(self, leg: LegName) -> bool:
        """Whether the platform is ``leg``'s party now (:meth:`attach`)."""
        return isinstance(self._leg(leg).rtp.peer, _PlatformEndpoint)

    def tap(self, listener: Callable[[str, bytes], None] | None) -> None:
        """Hand a copy of the call's media to ``listener`` (call recording), or stop
        (``None``); a new listener replaces the previous one.

        From now on every RTP packet a leg's phone sends to the relay (after the source
        check and latching: the packets counted in the leg's ``packets_in`` and stream
        stats, not RTCP, not dropped foreign sources) is also given to
        ``listener(leg_name, packet)``, whatever the leg is connected or attached to;
        forwarding is unchanged. ``leg_name`` is the leg's name at that moment (after
        :meth:`swap` the consulted party's packets come as ``b``); leg ``c`` is tapped
        too, also when :meth:`add_leg` binds it later. The listener runs in the event
        loop for every packet: it must be quick. One that raises does not break the
        media: the leg's ``errors`` counts it and the first failure is logged."""
        self._tap = listener
        for leg in self.legs:
            leg.rtp.tap = listener

    def swap(self, first: LegName, second: LegName) -> None:
        """Exchange the names of two legs (their ports, remotes and pairing stay): after a
        warm transfer the consulted party's leg ``c`` becomes ``b``."""
        one, two = self._leg(first), self._leg(second)
        setattr(self, first, two)
        setattr(self, second, one)
        for leg, name in ((one, second), (two, first)):
            leg.name = name
            leg.rtp.leg = leg.rtcp.leg = name

    def set_remote(
        self,
        leg: LegName,
        host: str,
        port: int,
        *,
        rtcp_port: int | None = None,
        clock_rate: int = 8000,
    ) -> None:
        """Where that side's phone receives media, from its SDP (``c=`` and ``m=`` port).

        Port 0 (a rejected or disabled stream) and the address 0.0.0.0 (old-style hold)
        mean nowhere, until a packet from that side latches. RTCP goes to ``rtcp_port``
        (an ``a=rtcp`` attribute, RFC 3605) or to the RTP port + 1. The leg is unlatched: the
        next packet from that side latches again. ``clock_rate`` is the RTP clock of the
        stream (8000 for G.711), used for the late-packet count.
        """
        target = self._leg(leg)
        address = _ip(host, "host")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidInput(f"port must be 0-65535, not {port!r}", field="port")
        if rtcp_port is not None and not 1 <= rtcp_port <= 65535:
            raise InvalidInput(f"rtcp_port must be 1-65535, not {rtcp_port!r}", field="rtcp_port")
        if not clock_rate > 0:
            raise InvalidInput(
                f"clock_rate must be positive, not {clock_rate!r}", field="clock_rate"
            )
        if ipaddress.ip_address(address).is_unspecified:
            port = 0  # c=0.0.0.0 (RFC 2543 hold): send nothing (Linux would deliver locally)
        target.rtp.set_remote(address, port)
        target.rtp._inv_rate = 1.0 / clock_rate
        if port:
            target.rtcp.set_remote(address, rtcp_port or min(port + 1, 65535))
        else:
            target.rtcp.set_remote(address, 0)

    def stats(self) -> dict[str, int]:
        """Counters per leg, keys ``a_<name>`` and ``b_<name>``.

        ``packets_in``/``bytes_in``: RTP received on that leg (from its phone);
        ``packets_out``/``bytes_out``: RTP sent out of that leg (to its phone); ``lost``:
        missing from the leg's incoming stream by RTP sequence gaps; ``late``: arrived more
        than ``late_threshold`` behind the stream's recent transit minimum; ``dropped``:
        received and not forwarded (no remote on the other side yet, a refused target, or a
        rejected source); ``refused`` and ``rejected`` are those two causes; ``relatched``;
        ``latched`` (0/1); ``rtcp_in``, ``rtcp_out``, ``rtcp_dropped``; ``errors`` (ICMP).
        """
        out: dict[str, int] = {}
        for leg in self.legs:
            rtp, rtcp = leg.rtp, leg.rtcp
            p = leg.name + "_"
            out[p + "packets_in"] = rtp.packets_in
            out[p + "bytes_in"] = rtp.bytes_in
            out[p + "packets_out"] = rtp.packets_out
            out[p + "bytes_out"] = rtp.bytes_out
            out[p + "lost"] = rtp.lost
            out[p + "late"] = rtp.late
            out[p + "dropped"] = rtp.dropped
            out[p + "refused"] = rtp.refused
            out[p + "rejected"] = rtp.rejected
            out[p + "relatched"] = rtp.relatched
            out[p + "latched"] = int(rtp.source is not None)
            out[p + "rtcp_in"] = rtcp.packets_in
            out[p + "rtcp_out"] = rtcp.packets_out
            out[p + "rtcp_dropped"] = rtcp.dropped
            out[p + "errors"] = rtp.errors + rtcp.errors
        return out

    def last_activity(self) -> float:
        """Clock time of the last packet on any port (or of the opening)."""
        return max(
            self.opened_at,
            *(leg.rtp.last_rx for leg in self.legs),
            *(leg.rtcp.last_rx for leg in self.legs),
        )

    def is_idle(self, now: float | None = None) -> bool:
        """No packet for ``idle_timeout`` seconds (the call is probably gone: close it)."""
        now = self._config.clock() if now is None else now
        return now - self.last_activity() >= self._config.idle_timeout

    def _endpoints(self) -> tuple[_Endpoint, ...]:
        return tuple(e for leg in self.legs for e in (leg.rtp, leg.rtcp))

    async def close(self) -> None:
        """Close the sockets (or park them for reuse) and give the ports back
        (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.tap(None)  # a parked socket must not feed this call's recorder
        endpoints: list[_Endpoint] = []
        for leg in self.legs:
            if self._park is not None and self._park(leg):
                continue
            endpoints += (leg.rtp, leg.rtcp)
        for endpoint in endpoints:
            endpoint.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                for endpoint in endpoints:
                    await endpoint.wait_closed()
        if self._on_close is not None:
            self._on_close(self)
        log.info("rtp.session_closed", call_id=self.call_id, **self.stats())


class MediaRelay:
    """Opens relay sessions on port pairs of the configured range; see the module doc."""

    def __init__(
        self,
        config: RelayConfig,
        *,
        on_idle: Callable[[RelaySession], None] | None = None,
    ) -> None:
        self.config = config
        self._ports = PortAllocator(config.port_min, config.port_max)
        self._sessions: dict[str, RelaySession] = {}
        self._spares: dict[int, _Pair] = {}  # parked pairs by RTP port, oldest first
        self._max_spares = min(config.spare_pairs, _descriptor_limit() // 16)
        self._on_idle = on_idle
        self._sweeper: asyncio.Task[None] | None = None
        self._started = False

    @property
    def sessions(self) -> dict[str, RelaySession]:
        """Open sessions by call id (read it, do not change it)."""
        return self._sessions

    @property
    def pairs_in_use(self) -> int:
        """Port pairs held by open sessions (spares not counted)."""
        return self._ports.in_use - len(self._spares)

    @property
    def spares(self) -> int:
        """Port pairs of closed sessions kept bound for reuse (``RelayConfig.spare_pairs``)."""
        return len(self._spares)

    def get(self, call_id: str) -> RelaySession | None:
        return self._sessions.get(call_id)

    async def start(self) -> None:
        """Start (and, when ``on_idle`` was given, the sweeper that reports idle sessions)."""
        self._started = True
        if self._on_idle is not None and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name="rtp-idle-sweeper")

    async def stop(self) -> None:
        """Close every session and stop."""
        self._started = False
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for session in list(self._sessions.values()):
            await session.close()
        self._drop_spares()

    async def open(self, call_id: str) -> RelaySession:
        """Bind RTP+RTCP port pairs for legs a and b of a new session.

        :class:`PortRangeExhausted` when no pair is free (ports taken by other programs are
        skipped), :class:`Conflict` when the call already has a session.
        """
        if not self._started:
            raise RuntimeError("MediaRelay.open() before start()")
        if call_id in self._sessions:
            raise Conflict(f"call {call_id!r} already has a media relay session")
        a = self._pair()
        try:
            b = self._pair()
        except BaseException:
            self._discard(a)
            raise
        a_port, b_port = a.port, b.port
        session = RelaySession(
            call_id,
            self.config,
            a_port,
            b_port,
            on_close=self._closed,
            park=self._park,
            add_pair=self._add_pair,
        )
        try:
            for leg, pair in ((session.a, a), (session.b, b)):
                await self._attach(leg, pair)
        except BaseException:
            self._discard(a)
            self._discard(b)
            raise
        self._sessions[call_id] = session
        log.info("rtp.session_opened", call_id=call_id, a_port=a_port, b_port=b_port)
        return session

    @staticmethod
    async def _attach(leg: RelayLeg, pair: _Pair) -> None:
        """Give a bound pair's sockets to ``leg``'s endpoints."""
        leg._socks = pair.socks
        if pair.transports is not None:  # a spare: swap in the new endpoints
            for endpoint, transport in zip((leg.rtp, leg.rtcp), pair.transports, strict=True):
                transport.set_protocol(endpoint)
                endpoint.connection_made(transport)
            return
        loop = asyncio.get_running_loop()
        for endpoint, sock in zip((leg.rtp, leg.rtcp), pair.socks, strict=True):
            await loop.create_datagram_endpoint(_factory(endpoint), sock=sock)

    async def _add_pair(self, session: RelaySession, leg: RelayLeg) -> None:
        """Bind a pair for a leg added to an open session (:meth:`RelaySession.add_leg`)."""
        pair = self._pair()
        leg.port, leg.rtcp_port = pair.port, pair.port + 1
        try:
            await self._attach(leg, pair)
        except BaseException:
            self._discard(pair)
            raise
        if session.closed:  # closed while we were binding: give the pair back
            for endpoint in (leg.rtp, leg.rtcp):
                endpoint.close()
            self._ports.release(pair.port)

    def _pair(self) -> _Pair:
        """A quiet spare pair, else a newly bound one (closing the spares when the range
        has no other pair left)."""
        if self._spares:
            port = next(iter(self._spares))
            spare = self._spares[port]
            quiet = self.config.clock() - spare.parked.last_rx if spare.parked else 0.0
            if quiet >= self.config.reuse_quiet:
                del self._spares[port]
                if spare.transports is not None and not any(
                    t.is_closing() for t in spare.transports
                ):
                    return spare
                self._discard(spare)
        try:
            return _Pair(*self._bind_pair())
        except PortRangeExhausted:
            if not self._spares:
                raise
        except OSError as error:
            if error.errno not in (errno.EMFILE, errno.ENFILE) or not self._spares:
                raise
        self._drop_spares()
        return _Pair(*self._bind_pair())

    def _discard(self, pair: _Pair) -> None:
        pair.close()
        self._ports.release(pair.port)

    def _drop_spares(self) -> None:
        spares, self._spares = list(self._spares.values()), {}
        for pair in spares:
            self._discard(pair)

    def _park(self, leg: RelayLeg) -> bool:
        """Keep a closing session's leg bound as a spare; whether it was taken."""
        if not self._started or len(self._spares) >= self._max_spares:
            return False
        rtp, rtcp = leg.rtp.transport, leg.rtcp.transport
        if leg._socks is None or rtp is None or rtcp is None:
            return False
        if rtp.is_closing() or rtcp.is_closing():
            return False
        parked = _Parked(self.config.clock)
        leg.rtp.detach()
        leg.rtcp.detach()
        rtp.set_protocol(parked)
        rtcp.set_protocol(parked)
        self._spares[leg.port] = _Pair(leg.port, leg._socks, (rtp, rtcp), parked)
        return True

    def _bind_pair(self) -> tuple[int, tuple[socket.socket, socket.socket]]:
        host = self.config.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(self._ports.pairs):
            port = self._ports.allocate()
            socks: list[socket.socket] = []
            try:
                for p in (port, port + 1):
                    sock = socket.socket(family, socket.SOCK_DGRAM)
                    socks.append(sock)
                    sock.setblocking(False)
                    if self.config.tos is not None and family == socket.AF_INET:
                        with contextlib.suppress(OSError):
                            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, self.config.tos)
                    sock.bind((host, p))
            except OSError as error:
                for sock in socks:
                    sock.close()
                self._ports.release(port)
                if error.errno != errno.EADDRINUSE:
                    raise
                continue  # another program holds it: try the next pair
            return port, (socks[0], socks[1])
        raise PortRangeExhausted(
            f"no RTP/RTCP port pair could be bound in {self.config.port_min}-"
            f"{self.config.port_max} on {host}: all are in use"
        )

    def _closed(self, session: RelaySession) -> None:
        if self._sessions.get(session.call_id) is session:
            del self._sessions[session.call_id]
        for port in (leg.port for leg in session.legs):
            if port not in self._spares:
                self._ports.release(port)

    def idle_sessions(self, now: float | None = None) -> list[RelaySession]:
        """Sessions without a packet for ``idle_timeout`` seconds."""
        now = self.config.clock() if now is None else now
        return [s for s in self._sessions.values() if s.is_idle(now)]

    async def _sweep(self) -> None:
        interval = min(max(self.config.idle_timeout / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(interval)
            for session in self.idle_sessions():
                if not session.idle_reported:
                    session.idle_reported = True
                    log.info("rtp.session_idle", call_id=session.call_id)
                    try:
                        self._on_idle(session)  # type: ignore[misc]  # set when sweeping
                    except Exception:
                        log.exception("rtp.on_idle_failed", call_id=session.call_id)
