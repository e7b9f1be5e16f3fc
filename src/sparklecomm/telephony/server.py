"""The SIP server: transports, transactions, digest auth and the registrar, assembled.

Build one :class:`SipServer` in the composition root, ``await start()`` it with the web
server and ``await stop()`` it on shutdown. What it answers today (RFC 3261 UAS rules,
§8.2):

* REGISTER: the registrar (:mod:`sparklecomm.telephony.sip.registrar`);
* INVITE, and BYE/re-INVITE/REFER/NOTIFY/INFO/OPTIONS within a call: the B2BUA
  (:class:`~sparklecomm.telephony.calls.CallManager`); an ACK of a 2xx goes to its dialog;
* OPTIONS: 200 with Allow, Accept and Supported (also with Max-Forwards 0, §11);
* CANCEL: 200 and 487 for a pending INVITE (and the B2BUA cancels the legs it rings),
  else 481;
* Max-Forwards 0 on anything else: 483; a Request-URI that is not sip/sips: 416, and a
  ``sips:`` one that did not come over TLS also 416 (RFC 5630: never downgraded);
  a Require we do not support: 420; an unknown method: 501; a known method we do not
  serve (MESSAGE, SUBSCRIBE ...): 405 with Allow; an in-dialog request of no call: 481.

Transports: UDP and TCP on ``port``, TLS (RFC 3261 §26) on ``tls_port`` when "TLS" is in
``transports``; that needs ``tls_certificate`` and ``tls_private_key`` (PEM files), and
:meth:`SipServer.start` raises :class:`~sparklecomm.telephony.sip.transport.TlsConfigError`
(an ``OSError`` naming the file) before it binds anything when they cannot be used.
:func:`tls_options` turns the platform's settings into these fields.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from sparklecomm.core.clock import Clock
from sparklecomm.telephony.calls import (
    CallManager,
    Emit,
    Guard,
    MediaRelay,
    QueueHandler,
    TenantOf,
    TrunkLookup,
    TrustedSource,
)
from sparklecomm.telephony.pbx.routes import Router
from sparklecomm.telephony.sip.digest import CredentialStore, DigestAuthenticator
from sparklecomm.telephony.sip.location import Binding, LocationStore
from sparklecomm.telephony.sip.message import (
    KNOWN_METHODS,
    SipMessage,
    SipRequest,
    SipResponse,
    build_response,
)
from sparklecomm.telephony.sip.parser import DEFAULT_LIMITS, ParseLimits
from sparklecomm.telephony.sip.registrar import Registrar, RegistrarPolicy, canonical_aor
from sparklecomm.telephony.sip.timers import LoopScheduler, Scheduler, TimerConfig
from sparklecomm.telephony.sip.transaction import ServerTransaction, State, TransactionLayer
from sparklecomm.telephony.sip.transport import (
    MultiTransport,
    Peer,
    TcpTransport,
    TlsConfigError,
    TlsTransport,
    UdpTransport,
    client_tls_context,
    server_tls_context,
)
from sparklecomm.telephony.sip.uri import SipUri

log = structlog.get_logger("sparklecomm.sip.server")

ALLOWED_METHODS = (
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "NOTIFY",
    "OPTIONS",
    "REFER",
    "REGISTER",
)
"""What this server answers (sent in Allow)."""
SUPPORTED_EXTENSIONS: tuple[str, ...] = ()
"""Option tags we support (sent in Supported; a Require outside them gets 420)."""


@dataclass(frozen=True, slots=True)
class SipServerConfig:
    """Settings of the SIP server (the composition root fills them from ``Settings``)."""

    host: str = "0.0.0.0"  # noqa: S104 - a SIP server listens for phones on the LAN
    port: int = 5060
    transports: tuple[str, ...] = ("UDP", "TCP")
    realm: str = "sparklecomm"
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    nonce_ttl: float = 300.0
    registrar: RegistrarPolicy = field(default_factory=RegistrarPolicy)
    timers: TimerConfig = field(default_factory=TimerConfig)
    limits: ParseLimits = DEFAULT_LIMITS
    max_tcp_connections: int = 1024
    tcp_idle_timeout: float = 600.0
    server_name: str = "SparkleComm"
    allowed_target: Callable[[str], bool] | None = None
    """Restricts where packets may be sent (tests use ``transport.loopback_only``)."""
    advertised_host: str | None = None
    """The address written in our Via and Contact (default: ``host``, or when that is a
    wildcard, the local address the system would use towards the peer)."""
    tls_port: int = 5061
    """The TLS listener's port (0 picks a free one; see ``tls.port``)."""
    tls_certificate: str | Path | None = None
    """Our certificate chain (PEM: the server's certificate first, then intermediates)."""
    tls_private_key: str | Path | None = None
    """The certificate's private key (PEM, not encrypted)."""
    tls_min_version: str = "TLSv1.2"
    """The oldest TLS version accepted: ``TLSv1.2`` or ``TLSv1.3``."""
    tls_ca_file: str | Path | None = None
    """CAs that sign the certificates of peers we connect to (default: the system's)."""
    tls_verify_peer: bool = True
    """Check the certificate of a peer we connect to (a trunk; a phone whose own
    connection is gone). Connections phones open are never asked for a certificate."""
    tls_handshake_timeout: float = 10.0


def tls_options(settings: Any) -> dict[str, Any]:
    """``SipServerConfig`` fields from the platform's ``Settings``: ``transports`` (TLS
    added when a certificate and key are set) and the ``tls_*`` fields."""
    transports = [name.upper() for name in settings.sip_transports]
    certificate = settings.sip_tls_certificate
    private_key = settings.sip_tls_private_key
    if certificate is not None and private_key is not None and "TLS" not in transports:
        transports.append("TLS")
    return {
        "transports": tuple(transports),
        "tls_port": settings.sip_tls_port,
        "tls_certificate": certificate,
        "tls_private_key": private_key,
        "tls_min_version": settings.sip_tls_min_version,
        "tls_ca_file": settings.sip_tls_ca_file,
        "tls_verify_peer": settings.sip_tls_verify_peer,
    }


def tls_contexts(config: SipServerConfig) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """The TLS listener's and outgoing connections' contexts of ``config``, or
    :class:`TlsConfigError` saying which setting or file is wrong."""
    certificate, private_key = config.tls_certificate, config.tls_private_key
    if not certificate or not private_key:
        missing = "sip_tls_private_key" if certificate else "sip_tls_certificate"
        raise TlsConfigError(
            f"SIP over TLS needs sip_tls_certificate and sip_tls_private_key: {missing} is not set"
        )
    server = server_tls_context(certificate, private_key, min_version=config.tls_min_version)
    client = client_tls_context(
        ca_file=config.tls_ca_file,
        verify=config.tls_verify_peer,
        certificate=certificate,
        private_key=private_key,
        min_version=config.tls_min_version,
    )
    return server, client


class SipServer:
    """A SIP registrar and B2BUA over UDP, TCP and TLS.

    The call-control options are handed to the :class:`CallManager` (``self.calls``):
    ``router`` (the dial plan; default: every number is an extension), ``relay`` (the media
    relay; without one SDP is passed through), ``emit`` (call events), ``guard`` (toll
    fraud), ``trusted_source`` (trunks whose INVITEs need no authentication), ``trunks``
    (trunk id → :class:`~sparklecomm.telephony.calls.Trunk`), ``queue_handler`` and
    ``tenant_of`` (extension → tenant id).
    """

    def __init__(
        self,
        config: SipServerConfig,
        *,
        clock: Clock,
        credentials: CredentialStore,
        locations: LocationStore,
        secret: bytes | None = None,
        scheduler: Scheduler | None = None,
        router: Router | None = None,
        relay: MediaRelay | None = None,
        emit: Emit | None = None,
        guard: Guard | None = None,
        trusted_source: TrustedSource | None = None,
        trunks: TrunkLookup | None = None,
        queue_handler: QueueHandler | None = None,
        tenant_of: TenantOf | None = None,
    ) -> None:
        """``secret`` signs digest nonces: give every node of a cluster the same one."""
        self.config = config
        self.clock = clock
        self.authenticator = DigestAuthenticator(
            config.realm,
            credentials,
            clock,
            secret=secret,
            algorithms=config.digest_algorithms,
            nonce_ttl=config.nonce_ttl,
        )
        self.registrar = Registrar(locations, self.authenticator, clock, policy=config.registrar)
        self.sender = MultiTransport()
        self.locations = locations
        self.transactions = TransactionLayer(
            self.sender,
            scheduler or LoopScheduler(),
            self._on_request,
            timers=config.timers,
            on_stray_ack=self._on_stray_ack,
        )
        self.calls = CallManager(
            self,
            clock=clock,
            router=router,
            relay=relay,
            emit=emit,
            guard=guard,
            trusted_source=trusted_source,
            trunks=trunks,
            queue_handler=queue_handler,
            tenant_of=tenant_of,
            user_agent=config.server_name,
        )
        self.relay = relay
        self._local_hosts: dict[str, str] = {}
        self.udp: UdpTransport | None = None
        self.tcp: TcpTransport | None = None
        self.tls: TlsTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the configured transports (port 0 picks a free port; see ``udp.port``).

        A TLS setting that cannot be used raises :class:`TlsConfigError` (an ``OSError``
        whose message names the file) before anything is bound."""
        config = self.config
        names = {name.upper() for name in config.transports}
        unknown = names - {"UDP", "TCP", "TLS"}
        if unknown:
            raise ValueError(f"unsupported SIP transports: {sorted(unknown)}")
        contexts = tls_contexts(config) if "TLS" in names else None
        start_relay = getattr(self.relay, "start", None)
        if start_relay is not None:
            await start_relay()  # the media relay given to us starts and stops with us
        port = config.port
        if "UDP" in names:
            self.udp = UdpTransport(
                self._receive, limits=config.limits, allowed_target=config.allowed_target
            )
            await self.udp.start(config.host, port)
            port = port or self.udp.port  # TCP on the same port as UDP when it was picked
            self.sender.add(self.udp)
        if "TCP" in names:
            self.tcp = TcpTransport(
                self._receive,
                limits=config.limits,
                allowed_target=config.allowed_target,
                max_connections=config.max_tcp_connections,
                idle_timeout=config.tcp_idle_timeout,
            )
            await self.tcp.start(config.host, port)
            self.sender.add(self.tcp)
        if contexts is not None:
            self.tls = TlsTransport(
                self._receive,
                contexts[0],
                client_context=contexts[1],
                handshake_timeout=config.tls_handshake_timeout,
                limits=config.limits,
                allowed_target=config.allowed_target,
                max_connections=config.max_tcp_connections,
                idle_timeout=config.tcp_idle_timeout,
            )
            await self.tls.start(config.host, config.tls_port)
            self.sender.add(self.tls)

    async def stop(self) -> None:
        """Stop listening, end transactions and pending handlers."""
        await self.calls.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.transactions.close()
        if self.udp is not None:
            await self.udp.stop()
        if self.tcp is not None:
            await self.tcp.stop()
        if self.tls is not None:
            await self.tls.stop()
        stop_relay = getattr(self.relay, "stop", None)
        if stop_relay is not None:
            await stop_relay()

    @property
    def port(self) -> int:
        """The bound port (UDP's, else TCP's, else TLS's)."""
        if self.udp is not None:
            return self.udp.port
        if self.tcp is not None:
            return self.tcp.port
        return self.tls.port if self.tls is not None else 0

    def port_for(self, transport: str) -> int:
        """The port we listen on for ``transport`` (the TLS port for TLS)."""
        if transport.upper() == "TLS":
            return self.tls.port if self.tls is not None else self.config.tls_port
        return self.port

    def connected(self, peer: Peer) -> bool:
        """Whether a TCP/TLS connection to or from ``peer`` is open (a phone's flow)."""
        return self.sender.connected(peer)

    # ---- requests --------------------------------------------------------------------

    def _receive(self, message: SipMessage, source: Peer) -> None:
        self.transactions.receive(message, source)

    def local_address(self, peer: Peer) -> tuple[str, int]:
        """Our address and port as ``peer`` should see them (for Via and Contact)."""
        host = self.config.advertised_host or self.config.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104
            host = self._local_hosts.get(peer.host) or _route_source(peer.host)
            self._local_hosts[peer.host] = host
        return host, self.port_for(peer.transport)

    async def locate(self, user: str, domain_hint: str | None) -> list[Binding]:
        """The live bindings of extension ``user``: its address-of-record at the hinted
        domain, a configured domain or our own address; else any domain."""
        domains = [domain_hint, *sorted(self.config.registrar.domains), self.config.host]
        seen: set[str] = set()
        for domain in domains:
            if not domain:
                continue
            aor = canonical_aor(SipUri.build(domain, user=user))
            if aor is None or aor in seen:
                continue
            seen.add(aor)
            found = await self.registrar.lookup(aor)
            if found:
                return found
        everything = getattr(self.locations, "all_bindings", None)
        if everything is None:
            return []
        now = self.clock.now()
        prefix = f"sip:{user}@"
        matches = [b for b in everything() if b.aor.startswith(prefix) and b.expires_at > now]
        return sorted(matches, key=lambda b: -(b.q if b.q is not None else 1.0))

    def respond(self, transaction: ServerTransaction, response: SipResponse) -> None:
        """Send a response (with Server, and Allow where it belongs)."""
        self._respond(transaction, response)

    def _on_stray_ack(self, ack: SipRequest, source: Peer) -> None:
        try:
            if not self.calls.ack(ack):
                log.debug("sip.stray_ack", call_id=ack.call_id, source=str(source))
        except Exception:
            log.exception("sip.ack_failed", call_id=ack.call_id)

    def _respond(self, transaction: ServerTransaction, response: SipResponse) -> None:
        response.headers.add("Server", self.config.server_name)
        if response.status in (405, 501) or (response.status == 200 and _is_options(transaction)):
            response.headers.add("Allow", ", ".join(ALLOWED_METHODS))
        transaction.respond(response)

    def _on_request(self, transaction: ServerTransaction) -> None:
        request = transaction.request
        method = request.method
        if method == "CANCEL":
            self._cancel(transaction)
            return
        if request.max_forwards == 0 and method != "OPTIONS":
            self._respond(transaction, build_response(request, 483))
            return
        if not isinstance(request.uri, SipUri):
            self._respond(transaction, build_response(request, 416))
            return
        if request.uri.secure and transaction.source.transport.upper() != "TLS":
            # RFC 5630: a SIPS request travels over TLS on every hop; never downgraded.
            log.info("sip.sips_not_over_tls", source=str(transaction.source), method=method)
            response = build_response(request, 416, "Unsupported URI Scheme - SIPS Needs TLS")
            self._respond(transaction, response)
            return
        unsupported = [tag for tag in request.require if tag not in SUPPORTED_EXTENSIONS]
        if unsupported:
            response = build_response(request, 420)
            response.headers.add("Unsupported", ", ".join(unsupported))
            self._respond(transaction, response)
            return
        if method not in KNOWN_METHODS:
            self._respond(transaction, build_response(request, 501))
        elif method == "OPTIONS" and not self.calls.knows(request):
            response = build_response(request, 200)
            response.headers.add("Accept", "application/sdp")
            response.headers.add("Supported", ", ".join(SUPPORTED_EXTENSIONS))
            self._respond(transaction, response)
        elif method == "REGISTER":
            self._spawn(self._register(transaction))
        elif request.to.tag is not None and method in _DIALOG_METHODS:
            self.calls.in_dialog(transaction)
        elif method == "INVITE":
            transaction.on_ack = self._on_accepted_ack
            self.calls.incoming(transaction)
        elif method in _DIALOG_METHODS:
            self._respond(transaction, build_response(request, 481))
        else:
            self._respond(transaction, build_response(request, 405))

    def _cancel(self, transaction: ServerTransaction) -> None:
        request = transaction.request
        invite = self.transactions.find_invite(request)
        if invite is None or invite.state is not State.PROCEEDING:
            self._respond(transaction, build_response(request, 481))
            return
        self._respond(transaction, build_response(request, 200))
        self._respond(invite, build_response(invite.request, 487))
        try:
            self.calls.cancelled(invite)
        except Exception:
            log.exception("sip.cancel_failed", call_id=request.call_id)

    def _on_accepted_ack(self, ack: SipRequest) -> None:
        """An ACK of our 2xx that matched the INVITE transaction (an RFC 2543 peer)."""
        self._on_stray_ack(ack, Peer("UDP", "", 0))

    async def _register(self, transaction: ServerTransaction) -> None:
        try:
            response = await self.registrar.handle(transaction.request, str(transaction.source))
        except Exception:
            log.exception("sip.register_failed", call_id=transaction.request.call_id)
            response = build_response(transaction.request, 500)
        self._respond(transaction, response)

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


_DIALOG_METHODS = frozenset({"BYE", "INFO", "INVITE", "NOTIFY", "OPTIONS", "REFER"})


def primary_address() -> str:
    """The address this host uses towards the outside (to advertise when listening on a
    wildcard address); 127.0.0.1 when there is no route."""
    return _route_source("192.0.2.1")  # TEST-NET-1: only a routing lookup, nothing is sent


def _route_source(destination: str) -> str:
    """The local address the system routes towards ``destination`` (a UDP ``connect``
    sends nothing)."""
    family = socket.AF_INET6 if ":" in destination else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((destination, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1" if family == socket.AF_INET else "::1"


def _is_options(transaction: ServerTransaction) -> bool:
    return transaction.request.method == "OPTIONS"
