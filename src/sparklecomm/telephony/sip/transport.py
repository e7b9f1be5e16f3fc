"""SIP over UDP, TCP and TLS on asyncio (RFC 3261 §18 and §26, RFC 3581, RFC 5626
keep-alives).

A transport turns octets into parsed messages for a :data:`Receiver` and writes messages
out. On receipt of a request it stamps the top Via with ``received`` (and ``rport`` when the
client asked for it, RFC 3581) so that the response finds its way back (§18.2.2):

* UDP: to the ``received`` address, at the source port when ``rport`` was asked for, else
  at the sent-by port (5060 when absent);
* TCP and TLS: over the connection the request came on while it is open, else over a new
  connection to ``received`` at the sent-by port (5060, 5061 for TLS, when absent).

TLS (:class:`TlsTransport`) is TCP with an :class:`ssl.SSLContext` on the listener and on
the connections we open; a connection a phone opened is reused in both directions (what a
phone behind NAT needs, like an RFC 5626 flow). :func:`server_tls_context` and
:func:`client_tls_context` build the contexts and raise :class:`TlsConfigError`, whose
message names the file that could not be used.

Malformed requests get the parser's 400/501/505/513 when it can build one; anything else is
logged and dropped. A handler that raises never takes the loop down. ``allowed_target``
restricts where packets may go (tests pass :func:`loopback_only`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import secrets
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import structlog

from sparklecomm.telephony.sip.errors import SipParseError
from sparklecomm.telephony.sip.fields import Via
from sparklecomm.telephony.sip.message import SipMessage, SipRequest, SipResponse
from sparklecomm.telephony.sip.parser import (
    DEFAULT_LIMITS,
    KeepAlive,
    ParseLimits,
    is_keepalive,
    parse_datagram,
    parse_stream,
)
from sparklecomm.telephony.sip.uri import normalize_host

log = structlog.get_logger("sparklecomm.sip.transport")

DEFAULT_PORT = 5060
DEFAULT_TLS_PORT = 5061
TLS_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024
MAGIC_COOKIE = "z9hG4bK"
"""Branch prefix of RFC 3261 transaction ids (§8.1.1.7)."""


def new_branch() -> str:
    """A fresh RFC 3261 branch (magic cookie plus 96 random bits)."""
    return MAGIC_COOKIE + secrets.token_hex(12)


def default_port(transport: str) -> int:
    """The port a SIP URI or Via without one means: 5061 for TLS, else 5060 (§19.1.2)."""
    return DEFAULT_TLS_PORT if transport.upper() == "TLS" else DEFAULT_PORT


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a message came from or goes to: transport name, IP address and port."""

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        """Whether the transport retransmits for us (TCP, TLS): no SIP-level resends."""
        return self.transport.upper() != "UDP"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


Receiver = Callable[[SipMessage, Peer], None]
"""What a transport hands each parsed message to, with its source."""


class Sender(Protocol):
    """Writes a message to a peer; failures are logged, never raised to the caller."""

    def send(self, message: SipMessage, peer: Peer) -> None: ...


@functools.lru_cache(maxsize=1024)
def loopback_only(host: str) -> bool:
    """An ``allowed_target`` that only lets packets go to loopback addresses."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=1024)
def _same_host(via_host: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(via_host) == ipaddress.ip_address(address)
    except ValueError:
        return normalize_host(via_host) == normalize_host(address)


def stamp_via(request: SipMessage, source: Peer) -> None:
    """Add ``received``/``rport`` to the top Via as §18.2.1 and RFC 3581 say (also used on
    an error response built from a request that could not be parsed whole)."""
    via = request.top_via
    stamped = via
    if via.has_rport:
        stamped = stamped.with_rport(source.port).with_received(source.host)
    elif not _same_host(via.host, source.host):
        stamped = stamped.with_received(source.host)
    if stamped is not via:
        request.headers.remove_first("Via")
        request.headers.prepend("Via", str(stamped))


def response_target(response: SipResponse, source: Peer) -> Peer:
    """Where a UDP response goes, or where to reconnect for a stream (§18.2.2, RFC 3581).

    ``source`` is where the request came from; the response's top Via is the request's
    (stamped on receipt).
    """
    try:
        via = response.top_via
    except SipParseError:
        return source
    return reply_peer(via, source)


def reply_peer(via: Via, source: Peer) -> Peer:
    """§18.2.2 for a request's (stamped) top Via: ``received`` at the ``rport`` (UDP) or at
    the sent-by port. ``maddr`` (multicast) is not honoured: we answer unicast."""
    host = via.received or source.host
    if via.rport is not None and not source.reliable:
        return Peer(source.transport, host, via.rport)
    if via.received is None and not _is_ip(via.host):
        host = source.host  # an unresolved name that matched the source: use the source
    return Peer(source.transport, host, via.port or default_port(source.transport))


@functools.lru_cache(maxsize=1024)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _safe_deliver(receiver: Receiver, message: SipMessage, source: Peer) -> None:
    try:
        receiver(message, source)
    except Exception:
        log.exception("sip.handler_failed", source=str(source))


class UdpTransport(asyncio.DatagramProtocol):
    """SIP over UDP: one socket, one datagram per message."""

    name = "UDP"

    def __init__(
        self,
        receiver: Receiver,
        *,
        limits: ParseLimits = DEFAULT_LIMITS,
        allowed_target: Callable[[str], bool] | None = None,
    ) -> None:
        self._receiver = receiver
        self._limits = limits
        self._allowed = allowed_target
        self._transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Bursts (a busy loop, many calls at once) overflow the default ~200 KiB buffer
            # and the kernel drops requests; the OS caps this at net.core.rmem_max.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        self.port = transport.get_extra_info("sockname")[1]
        log.info("sip.listening", transport="UDP", host=host, port=self.port)

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the transaction's timers deal with it.
        log.debug("sip.udp_error", error=str(exc))

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        source = Peer("UDP", str(addr[0]), int(addr[1]))
        if is_keepalive(data):
            return
        try:
            message = parse_datagram(data, limits=self._limits)
        except SipParseError as error:
            self._reject(error, source)
            return
        if isinstance(message, SipRequest):
            stamp_via(message, source)
        _safe_deliver(self._receiver, message, source)

    def _reject(self, error: SipParseError, source: Peer) -> None:
        log.info("sip.malformed", source=str(source), reason=error.reason, detail=error.detail)
        response = error.build_response() if error.is_request else None
        if response is not None:
            try:
                stamp_via(response, source)
            except SipParseError:
                return
            self.send(response, response_target(response, source))

    def send(self, message: SipMessage, peer: Peer) -> None:
        if self._transport is None:
            log.warning("sip.send_on_closed_transport", peer=str(peer))
            return
        if self._allowed is not None and not self._allowed(peer.host):
            log.warning("sip.target_refused", peer=str(peer))
            return
        try:
            data = message.to_bytes()
        except ValueError:
            log.exception("sip.unwritable_message", peer=str(peer))
            return
        self._transport.sendto(data, (peer.host, peer.port))


class _Connection:
    """One TCP connection: a reader task framing messages off the stream."""

    def __init__(
        self,
        owner: TcpTransport,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Peer,
    ) -> None:
        self.owner = owner
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.task: asyncio.Task[None] | None = None

    def write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    async def run(self) -> None:
        buffer = bytearray()
        limits = self.owner.limits
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(
                        self.reader.read(65536), timeout=self.owner.idle_timeout
                    )
                except TimeoutError:
                    log.debug("sip.tcp_idle_close", peer=str(self.peer))
                    return
                if not chunk:
                    return
                buffer += chunk
                if not self._drain(buffer, limits):
                    return
        except (ConnectionError, OSError) as error:
            log.debug("sip.tcp_error", peer=str(self.peer), error=str(error))
        finally:
            self.owner._forget(self)
            self.writer.close()

    def _drain(self, buffer: bytearray, limits: ParseLimits) -> bool:
        """Consume every whole message in ``buffer``; False when the stream is unusable."""
        while buffer:
            try:
                framed = parse_stream(buffer, limits=limits)
            except SipParseError as error:
                log.info(
                    "sip.malformed", source=str(self.peer), reason=error.reason, detail=error.detail
                )
                response = error.build_response() if error.is_request else None
                if response is not None:
                    self.write(response.to_bytes())
                if error.consumed is None:
                    return False
                del buffer[: error.consumed]
                continue
            if framed is None:
                return True
            item, consumed = framed
            del buffer[:consumed]
            if isinstance(item, KeepAlive):
                if item.ping:
                    self.write(b"\r\n")  # RFC 5626 §4.4.1 pong
                continue
            if isinstance(item, SipRequest):
                try:
                    stamp_via(item, self.peer)
                except SipParseError:
                    continue
            _safe_deliver(self.owner.receiver, item, self.peer)
        return True


class TcpTransport:
    """SIP over TCP: a listening socket, and connections reused in both directions."""

    name = "TCP"

    def __init__(
        self,
        receiver: Receiver,
        *,
        limits: ParseLimits = DEFAULT_LIMITS,
        allowed_target: Callable[[str], bool] | None = None,
        max_connections: int = 1024,
        idle_timeout: float = 600.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.receiver = receiver
        self.limits = limits
        self.idle_timeout = idle_timeout
        self._allowed = allowed_target
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._server: asyncio.Server | None = None
        self._connections: dict[tuple[str, int], _Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        self._server = await self._listen(host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("sip.listening", transport=self.name, host=host, port=self.port)

    async def _listen(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(self._accepted, host, port)

    async def _open(self, target: Peer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A new connection to ``target`` (TLS wraps it)."""
        return await asyncio.open_connection(target.host, target.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections.values()):
            connection.writer.close()
        tasks = [c.task for c in self._connections.values() if c.task] + list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._connections.clear()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def connected(self, peer: Peer) -> bool:
        """Whether a connection to or from ``peer`` (host and port) is open."""
        connection = self._connections.get((peer.host, peer.port))
        return connection is not None and not connection.writer.is_closing()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = writer.get_extra_info("peername")
        peer = Peer(self.name, str(address[0]), int(address[1]))
        if len(self._connections) >= self._max_connections:
            log.warning("sip.tcp_connection_limit", peer=str(peer))
            writer.close()
            return
        connection = _Connection(self, reader, writer, peer)
        self._connections[(peer.host, peer.port)] = connection
        connection.task = asyncio.current_task()
        await connection.run()

    def _forget(self, connection: _Connection) -> None:
        key = (connection.peer.host, connection.peer.port)
        if self._connections.get(key) is connection:
            del self._connections[key]

    def send(self, message: SipMessage, peer: Peer) -> None:
        try:
            data = message.to_bytes()
        except ValueError:
            log.exception("sip.unwritable_message", peer=str(peer))
            return
        connection = self._connections.get((peer.host, peer.port))
        if connection is not None and not connection.writer.is_closing():
            connection.write(data)
            return
        # §18.2.2: the connection is gone; a response goes to received:sent-by-port.
        target = response_target(message, peer) if isinstance(message, SipResponse) else peer
        if self._allowed is not None and not self._allowed(target.host):
            log.warning("sip.target_refused", peer=str(target))
            return
        task = asyncio.get_running_loop().create_task(self._connect_and_send(target, data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_and_send(self, target: Peer, data: bytes) -> None:
        connection = self._connections.get((target.host, target.port))
        if connection is None:
            if len(self._connections) >= self._max_connections:
                log.warning("sip.tcp_connection_limit", peer=str(target))
                return
            try:
                reader, writer = await asyncio.wait_for(
                    self._open(target), timeout=self._connect_timeout
                )
            except (OSError, TimeoutError) as error:  # ssl.SSLError is an OSError
                log.info("sip.tcp_connect_failed", peer=str(target), error=str(error))
                return
            connection = _Connection(self, reader, writer, target)
            self._connections[(target.host, target.port)] = connection
            connection.task = asyncio.get_running_loop().create_task(connection.run())
        connection.write(data)


class TlsConfigError(OSError):
    """A TLS certificate, key or CA file that cannot be used; the message names it."""


def _read_pem(path: Path, what: str, marker: str) -> None:
    try:
        text = path.read_bytes()
    except OSError as error:
        raise TlsConfigError(f"cannot read the {what} {path}: {error.strerror or error}") from None
    if b"-----BEGIN " not in text or marker.encode() not in text:
        raise TlsConfigError(f"the {what} {path} holds no PEM {marker.strip('- ').lower()}")


def _refuse_password() -> bytes:
    raise TlsConfigError("encrypted")


def _load_chain(context: ssl.SSLContext, certificate: Path, private_key: Path) -> None:
    _read_pem(certificate, "SIP TLS certificate", "CERTIFICATE-----")
    _read_pem(private_key, "SIP TLS private key", "PRIVATE KEY-----")
    try:
        # A callable password: an encrypted key fails here instead of prompting on a tty.
        context.load_cert_chain(certificate, private_key, password=_refuse_password)
    except TlsConfigError:
        raise TlsConfigError(
            f"the SIP TLS private key {private_key} is encrypted: give an unencrypted key "
            "(readable only by the service)"
        ) from None
    except ssl.SSLError as error:
        reason = error.reason or str(error)
        if "KEY_VALUES_MISMATCH" in reason.upper() or "mismatch" in str(error).lower():
            raise TlsConfigError(
                f"the SIP TLS private key {private_key} does not belong to the certificate "
                f"{certificate}"
            ) from None
        raise TlsConfigError(
            f"cannot load the SIP TLS certificate {certificate} with the private key "
            f"{private_key}: {reason}"
        ) from None


def _min_version(name: str) -> ssl.TLSVersion:
    try:
        return TLS_VERSIONS[name]
    except KeyError:
        raise TlsConfigError(
            f"unsupported minimum TLS version {name!r} (one of {', '.join(TLS_VERSIONS)})"
        ) from None


def server_tls_context(
    certificate: str | Path, private_key: str | Path, *, min_version: str = "TLSv1.2"
) -> ssl.SSLContext:
    """The context of the TLS listener: our certificate chain and key (PEM files); phones
    are not asked for certificates (they authenticate with digest)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _min_version(min_version)
    _load_chain(context, Path(certificate), Path(private_key))
    return context


def client_tls_context(
    *,
    ca_file: str | Path | None = None,
    verify: bool = True,
    certificate: str | Path | None = None,
    private_key: str | Path | None = None,
    min_version: str = "TLSv1.2",
) -> ssl.SSLContext:
    """The context of connections we open (to a trunk, or a phone whose connection is
    gone): the peer's certificate is checked against ``ca_file`` (default: the system's
    CAs) and its name or IP address, unless ``verify`` is off; ours is presented when
    given (mutual TLS with a carrier)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = _min_version(min_version)
    if ca_file is not None:
        path = Path(ca_file)
        _read_pem(path, "SIP TLS CA file", "CERTIFICATE-----")
        try:
            context.load_verify_locations(cafile=path)
        except ssl.SSLError as error:
            raise TlsConfigError(
                f"cannot load the SIP TLS CA file {path}: {error.reason or error}"
            ) from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if certificate is not None and private_key is not None:
        _load_chain(context, Path(certificate), Path(private_key))
    return context


class TlsTransport(TcpTransport):
    """SIP over TLS (RFC 3261 §26.2): TCP's framing and connection reuse, encrypted.

    Connections phones open are kept and reused for requests to them (their registration's
    flow); one we must open ourselves is verified by ``client_context``. Without a client
    context we open none (a message to a peer with no connection is dropped and logged).
    """

    name = "TLS"

    def __init__(
        self,
        receiver: Receiver,
        server_context: ssl.SSLContext,
        *,
        client_context: ssl.SSLContext | None = None,
        handshake_timeout: float = 10.0,
        limits: ParseLimits = DEFAULT_LIMITS,
        allowed_target: Callable[[str], bool] | None = None,
        max_connections: int = 1024,
        idle_timeout: float = 600.0,
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__(
            receiver,
            limits=limits,
            allowed_target=allowed_target,
            max_connections=max_connections,
            idle_timeout=idle_timeout,
            connect_timeout=connect_timeout,
        )
        self.server_context = server_context
        self.client_context = client_context
        self._handshake_timeout = handshake_timeout

    async def _listen(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(
            self._accepted,
            host,
            port,
            ssl=self.server_context,
            ssl_handshake_timeout=self._handshake_timeout,
        )

    async def _open(self, target: Peer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = self.client_context
        if context is None:
            raise ConnectionRefusedError("no TLS client context: connections are not opened")
        return await asyncio.open_connection(
            target.host,
            target.port,
            ssl=context,  # the certificate is checked against target.host (name or IP)
            ssl_handshake_timeout=self._handshake_timeout,
        )


class NamedSender(Sender, Protocol):
    """A transport as :class:`MultiTransport` holds it: a sender with a name."""

    name: str


class MultiTransport:
    """Sends each message through the transport its peer names (UDP, TCP or TLS)."""

    def __init__(self) -> None:
        self._by_name: dict[str, NamedSender] = {}

    def add(self, transport: NamedSender) -> None:
        self._by_name[transport.name] = transport

    def send(self, message: SipMessage, peer: Peer) -> None:
        transport = self._by_name.get(peer.transport.upper())
        if transport is None:
            log.warning("sip.no_transport", peer=str(peer))
            return
        transport.send(message, peer)

    def has(self, transport: str) -> bool:
        """Whether a transport of that name (``UDP``, ``TCP``, ``TLS``) is running."""
        return transport.upper() in self._by_name

    def connected(self, peer: Peer) -> bool:
        """Whether a stream connection to or from ``peer`` is open (False for UDP)."""
        transport = self._by_name.get(peer.transport.upper())
        check = getattr(transport, "connected", None)
        return bool(check(peer)) if check is not None else False
