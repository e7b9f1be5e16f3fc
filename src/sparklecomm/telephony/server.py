"""The SIP server: transports, transactions, digest auth and the registrar, assembled.

Build one :class:`SipServer` in the composition root, ``await start()`` it with the web
server and ``await stop()`` it on shutdown. What it answers today (RFC 3261 UAS rules,
§8.2):

* REGISTER: the registrar (:mod:`sparklecomm.telephony.sip.registrar`);
* OPTIONS: 200 with Allow, Accept and Supported (also with Max-Forwards 0, §11);
* CANCEL: 200 and 487 for a pending INVITE, else 481;
* Max-Forwards 0 on anything else: 483; a Request-URI that is not sip/sips: 416;
  a Require we do not support: 420; an unknown method: 501; a known method we do not
  serve yet (INVITE, BYE, MESSAGE, SUBSCRIBE ...): 405 with Allow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field

import structlog

from sparklecomm.core.clock import Clock
from sparklecomm.telephony.sip.digest import CredentialStore, DigestAuthenticator
from sparklecomm.telephony.sip.location import LocationStore
from sparklecomm.telephony.sip.message import (
    KNOWN_METHODS,
    SipMessage,
    SipResponse,
    build_response,
)
from sparklecomm.telephony.sip.parser import DEFAULT_LIMITS, ParseLimits
from sparklecomm.telephony.sip.registrar import Registrar, RegistrarPolicy
from sparklecomm.telephony.sip.timers import LoopScheduler, Scheduler, TimerConfig
from sparklecomm.telephony.sip.transaction import ServerTransaction, State, TransactionLayer
from sparklecomm.telephony.sip.transport import MultiTransport, Peer, TcpTransport, UdpTransport
from sparklecomm.telephony.sip.uri import SipUri

log = structlog.get_logger("sparklecomm.sip.server")

ALLOWED_METHODS = ("ACK", "CANCEL", "OPTIONS", "REGISTER")
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


class SipServer:
    """A SIP registrar and OPTIONS responder over UDP and TCP."""

    def __init__(
        self,
        config: SipServerConfig,
        *,
        clock: Clock,
        credentials: CredentialStore,
        locations: LocationStore,
        secret: bytes | None = None,
        scheduler: Scheduler | None = None,
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
        self.transactions = TransactionLayer(
            self.sender, scheduler or LoopScheduler(), self._on_request, timers=config.timers
        )
        self.udp: UdpTransport | None = None
        self.tcp: TcpTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the configured transports (port 0 picks a free port; see ``udp.port``)."""
        config = self.config
        names = {name.upper() for name in config.transports}
        unknown = names - {"UDP", "TCP"}
        if unknown:
            raise ValueError(f"unsupported SIP transports: {sorted(unknown)}")
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

    async def stop(self) -> None:
        """Stop listening, end transactions and pending handlers."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.transactions.close()
        if self.udp is not None:
            await self.udp.stop()
        if self.tcp is not None:
            await self.tcp.stop()

    @property
    def port(self) -> int:
        """The bound port (UDP's, else TCP's)."""
        if self.udp is not None:
            return self.udp.port
        return self.tcp.port if self.tcp is not None else 0

    # ---- requests --------------------------------------------------------------------

    def _receive(self, message: SipMessage, source: Peer) -> None:
        self.transactions.receive(message, source)

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
        unsupported = [tag for tag in request.require if tag not in SUPPORTED_EXTENSIONS]
        if unsupported:
            response = build_response(request, 420)
            response.headers.add("Unsupported", ", ".join(unsupported))
            self._respond(transaction, response)
            return
        if method not in KNOWN_METHODS:
            self._respond(transaction, build_response(request, 501))
        elif method == "OPTIONS":
            response = build_response(request, 200)
            response.headers.add("Accept", "application/sdp")
            response.headers.add("Supported", ", ".join(SUPPORTED_EXTENSIONS))
            self._respond(transaction, response)
        elif method == "REGISTER":
            self._spawn(self._register(transaction))
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


def _is_options(transaction: ServerTransaction) -> bool:
    return transaction.request.method == "OPTIONS"
