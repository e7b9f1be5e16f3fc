"""SIP transactions (RFC 3261 §17, with the Accepted states of RFC 6026).

Four state machines: client INVITE (Timers A, B, D; Accepted with Timer M), client
non-INVITE (E, F, K), server INVITE (G, H, I; Accepted with Timer L; an automatic 100 Trying)
and server non-INVITE (J). Timers run on an injected
:class:`~sparklecomm.telephony.sip.timers.Scheduler`, so tests drive them on fake time.
Retransmissions happen only over unreliable transports (UDP).

:class:`TransactionLayer` sits between the transports and the transaction user (TU): it
matches each incoming message to its transaction (§17.1.3, §17.2.3: branch with the magic
cookie, sent-by and method; the RFC 2543 fallback on Request-URI, tags, Call-ID, CSeq and
top Via), absorbs request retransmissions by repeating the last response, and hands new
requests to the TU as :class:`ServerTransaction` objects to answer.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from sparklecomm.telephony.sip.errors import SipParseError
from sparklecomm.telephony.sip.headers import Headers
from sparklecomm.telephony.sip.message import SipMessage, SipRequest, SipResponse, build_response
from sparklecomm.telephony.sip.timers import Scheduler, TimerConfig, TimerHandle
from sparklecomm.telephony.sip.transport import MAGIC_COOKIE, Peer, Sender, reply_peer

log = structlog.get_logger("sparklecomm.sip.transaction")


class State(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


ServerKey = tuple[str, ...]
ClientKey = tuple[str, str]


def server_key(request: SipRequest, *, method: str | None = None) -> ServerKey:
    """The key that matches a request to its server transaction (§17.2.3).

    An ACK matches the INVITE transaction it acknowledges (pass ``method="INVITE"``); a
    CANCEL has a transaction of its own.
    """
    via = request.top_via
    wanted = method or ("INVITE" if request.method == "ACK" else request.method)
    branch = via.branch
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return ("3261", branch, via.sent_by.lower(), wanted)
    # RFC 2543 peers: no usable branch. The To tag is left out so that an ACK (which
    # carries the tag of our response) matches the INVITE (which had none).
    return (
        "2543",
        str(request.uri),
        request.from_.tag or "",
        request.call_id,
        str(request.cseq.number),
        str(via),
        wanted,
    )


def client_key(message: SipMessage, *, method: str | None = None) -> ClientKey:
    """The key that matches a response to its client transaction (§17.1.3)."""
    return (message.top_via.branch or "", method or message.cseq.method)


class ServerTransaction:
    """A request received, and the responses the TU sends to it."""

    # Slots: thousands live for 64*T1 under load, and each __dict__ is one more object
    # for the garbage collector to walk.
    __slots__ = (
        "_g_interval",
        "_timers",
        "is_invite",
        "key",
        "last_response",
        "layer",
        "on_ack",
        "on_terminated",
        "reply_to",
        "request",
        "source",
        "state",
    )

    def __init__(
        self,
        layer: TransactionLayer,
        request: SipRequest,
        source: Peer,
        reply_to: Peer,
        key: ServerKey,
    ) -> None:
        self.layer = layer
        self.request = request
        self.source = source
        self.reply_to = reply_to
        self.key = key
        self.is_invite = request.method == "INVITE"
        self.state = State.PROCEEDING if self.is_invite else State.TRYING
        self.last_response: SipResponse | None = None
        self.on_ack: Callable[[SipRequest], None] | None = None
        """For an INVITE: called with the ACK of a 2xx (RFC 6026 Accepted state)."""
        self.on_terminated: Callable[[ServerTransaction], None] | None = None
        self._timers: dict[str, TimerHandle] = {}
        self._g_interval = layer.timers.t1

    def _arm_trying(self) -> None:
        """For an INVITE the TU has not answered yet: 100 Trying after ``trying_delay``
        (armed after the TU has seen the request: most answer at once, and a timer armed
        and cancelled for every call costs the loop for nothing)."""
        if self.is_invite and self.state is State.PROCEEDING and self.last_response is None:
            self._arm("trying", self.layer.timers.trying_delay, self._send_trying)

    @property
    def reliable(self) -> bool:
        return self.source.reliable

    def _arm(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        self._cancel(name)
        self._timers[name] = self.layer.scheduler.call_later(delay, callback)

    def _cancel(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def _send(self, response: SipResponse) -> None:
        self.layer.sender.send(response, self.reply_to)

    def _send_trying(self) -> None:
        self._timers.pop("trying", None)
        if self.state is State.PROCEEDING and self.last_response is None:
            self.respond(build_response(self.request, 100))

    def respond(self, response: SipResponse) -> None:
        """Send a response from the TU; the state machine decides about retransmissions."""
        if self.state in (State.COMPLETED, State.CONFIRMED, State.TERMINATED):
            log.warning("sip.late_response", status=response.status, state=self.state.value)
            return
        if self.state is State.ACCEPTED:
            if 200 <= response.status < 300:
                self._send(response)  # the TU retransmits its 2xx itself (RFC 6026)
            return
        self._cancel("trying")
        self.last_response = response
        self._send(response)
        timers = self.layer.timers
        if response.is_provisional:
            self.state = State.PROCEEDING
        elif self.is_invite and response.status < 300:
            self.state = State.ACCEPTED
            self._arm("L", timers.timeout, self.terminate)
        elif self.is_invite:
            self.state = State.COMPLETED
            if not self.reliable:
                self._arm("G", self._g_interval, self._timer_g)
            self._arm("H", timers.timeout, self._timer_h)
        else:
            self.state = State.COMPLETED
            self._arm("J", 0.0 if self.reliable else timers.timeout, self.terminate)

    def _timer_g(self) -> None:
        if self.state is not State.COMPLETED or self.last_response is None:
            return
        self._send(self.last_response)
        self._g_interval = min(2 * self._g_interval, self.layer.timers.t2)
        self._arm("G", self._g_interval, self._timer_g)

    def _timer_h(self) -> None:
        log.info("sip.ack_timeout", call_id=self.request.call_id)
        self.terminate()

    def receive_retransmission(self) -> None:
        """The same request again: repeat the last response (nothing in Trying)."""
        if self.state in (State.PROCEEDING, State.COMPLETED) and self.last_response is not None:
            self._send(self.last_response)

    def receive_ack(self, ack: SipRequest) -> None:
        if self.state is State.COMPLETED:
            self.state = State.CONFIRMED
            self._cancel("G")
            self._cancel("H")
            self._arm("I", 0.0 if self.reliable else self.layer.timers.t4, self.terminate)
        elif self.state is State.ACCEPTED and self.on_ack is not None:
            self.on_ack(ack)

    def terminate(self) -> None:
        if self.state is State.TERMINATED:
            return
        self.state = State.TERMINATED
        for name in list(self._timers):
            self._cancel(name)
        self.layer._forget_server(self)
        if self.on_terminated is not None:
            self.on_terminated(self)


ResponseHandler = Callable[[SipResponse], None]


class ClientTransaction:
    """A request we send, with retransmissions and timeouts; responses go to ``on_response``.

    A timeout or transport failure reaches the TU as a locally made 408 (§8.1.3.1).
    """

    __slots__ = (
        "_interval",
        "_timers",
        "ack",
        "is_invite",
        "key",
        "layer",
        "on_response",
        "peer",
        "request",
        "state",
    )

    def __init__(
        self,
        layer: TransactionLayer,
        request: SipRequest,
        peer: Peer,
        on_response: ResponseHandler,
    ) -> None:
        branch = request.top_via.branch
        if branch is None or not branch.startswith(MAGIC_COOKIE):
            raise ValueError("a client request needs a top Via with an RFC 3261 branch")
        self.layer = layer
        self.request = request
        self.peer = peer
        self.on_response = on_response
        self.is_invite = request.method == "INVITE"
        self.key = client_key(request)
        self.state = State.CALLING if self.is_invite else State.TRYING
        self.ack: SipRequest | None = None
        self._timers: dict[str, TimerHandle] = {}
        self._interval = layer.timers.t1

    def start(self) -> None:
        timers = self.layer.timers
        self._send(self.request)
        if not self.peer.reliable:
            self._arm("retransmit", self._interval, self._retransmit)
        self._arm("timeout", timers.timeout, self._timeout)

    def _arm(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        self._cancel(name)
        self._timers[name] = self.layer.scheduler.call_later(delay, callback)

    def _cancel(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def _send(self, message: SipRequest) -> None:
        self.layer.sender.send(message, self.peer)

    def _retransmit(self) -> None:
        """Timer A (INVITE: doubling without cap) or E (non-INVITE: capped at T2)."""
        if self.state not in (State.CALLING, State.TRYING, State.PROCEEDING):
            return
        if self.is_invite and self.state is State.PROCEEDING:
            return
        self._send(self.request)
        t2 = self.layer.timers.t2
        if self.state is State.PROCEEDING:
            self._interval = t2
        elif self.is_invite:
            self._interval = 2 * self._interval
        else:
            self._interval = min(2 * self._interval, t2)
        self._arm("retransmit", self._interval, self._retransmit)

    def _timeout(self) -> None:
        """Timer B or F: no final response in 64*T1."""
        if self.state in (State.CALLING, State.TRYING, State.PROCEEDING):
            log.info("sip.transaction_timeout", method=self.request.method, peer=str(self.peer))
            self.terminate()
            self.on_response(build_response(self.request, 408))

    def receive_response(self, response: SipResponse) -> None:
        timers = self.layer.timers
        if self.state in (State.CALLING, State.TRYING, State.PROCEEDING):
            if response.is_provisional:
                self.state = State.PROCEEDING
                if self.is_invite:
                    # Timer B only runs in Calling (§17.1.1.2): a ringing phone may take
                    # its time; the TU decides how long to let it ring.
                    self._cancel("retransmit")
                    self._cancel("timeout")
                self.on_response(response)
                return
            self._cancel("retransmit")
            self._cancel("timeout")
            if self.is_invite and response.status < 300:
                self.state = State.ACCEPTED
                self._arm("M", timers.timeout, self.terminate)
            elif self.is_invite:
                self.state = State.COMPLETED
                self.ack = build_ack(self.request, response)
                self._send(self.ack)
                self._arm("D", 0.0 if self.peer.reliable else timers.timer_d, self.terminate)
            else:
                self.state = State.COMPLETED
                self._arm("K", 0.0 if self.peer.reliable else timers.t4, self.terminate)
            self.on_response(response)
        elif self.state is State.ACCEPTED and 200 <= response.status < 300:
            self.on_response(response)  # 2xx retransmissions belong to the TU
        elif self.state is State.COMPLETED and self.is_invite and self.ack is not None:
            self._send(self.ack)  # our ACK was lost: repeat it

    def terminate(self) -> None:
        if self.state is State.TERMINATED:
            return
        self.state = State.TERMINATED
        for name in list(self._timers):
            self._cancel(name)
        self.layer._forget_client(self)


def _same_transaction_request(invite: SipRequest, method: str, to: str) -> SipRequest:
    """A request that shares the INVITE's top Via (branch), Route set, From, Call-ID and
    CSeq number: an ACK for a non-2xx or a CANCEL."""
    headers = Headers()
    headers.add("Via", invite.headers.get_all("Via")[0])
    for value in invite.headers.get_all("Route"):
        headers.add("Route", value)
    headers.add("Max-Forwards", "70")
    headers.add("From", invite.headers.get("From") or "")
    headers.add("To", to)
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", f"{invite.cseq.number} {method}")
    return SipRequest(method, invite.uri, headers)


def build_ack(invite: SipRequest, response: SipResponse) -> SipRequest:
    """The ACK for a non-2xx final response to ``invite`` (§17.1.1.3): To of the response."""
    return _same_transaction_request(invite, "ACK", response.headers.get("To") or "")


def build_cancel(invite: SipRequest) -> SipRequest:
    """The CANCEL of a client INVITE (§9.1): same Request-URI, top Via (branch), Route,
    From, To, Call-ID and CSeq number as the INVITE; sent as its own transaction."""
    return _same_transaction_request(invite, "CANCEL", invite.headers.get("To") or "")


@dataclass(slots=True)
class TransactionStats:
    """Counters the tests and an operator can read."""

    requests: int = 0
    retransmissions_absorbed: int = 0
    stray_acks: int = 0
    stray_responses: int = 0


class TransactionLayer:
    """Matches messages to transactions and hands new requests to the TU.

    ``on_request`` receives each new :class:`ServerTransaction` (never a retransmission,
    never an ACK that belongs to a transaction). ``on_stray_ack`` receives ACKs for 2xx
    responses whose transaction has ended (those belong to a dialog, §13.2.2.4).
    """

    def __init__(
        self,
        sender: Sender,
        scheduler: Scheduler,
        on_request: Callable[[ServerTransaction], None],
        *,
        timers: TimerConfig | None = None,
        on_stray_ack: Callable[[SipRequest, Peer], None] | None = None,
    ) -> None:
        self.sender = sender
        self.scheduler = scheduler
        self.timers = timers or TimerConfig()
        self.on_request = on_request
        self.on_stray_ack = on_stray_ack
        self.stats = TransactionStats()
        self._servers: dict[ServerKey, ServerTransaction] = {}
        self._clients: dict[ClientKey, ClientTransaction] = {}

    @property
    def server_count(self) -> int:
        return len(self._servers)

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def receive(self, message: SipMessage, source: Peer) -> None:
        """Entry point for the transports."""
        try:
            if isinstance(message, SipRequest):
                self._receive_request(message, source)
            else:
                self._receive_response(message)
        except SipParseError as error:
            log.info("sip.unmatchable", reason=error.reason, source=str(source))

    def _receive_request(self, request: SipRequest, source: Peer) -> None:
        key = server_key(request)
        existing = self._servers.get(key)
        if request.method == "ACK":
            if existing is not None and existing.is_invite:
                existing.receive_ack(request)
            else:
                self.stats.stray_acks += 1
                if self.on_stray_ack is not None:
                    self.on_stray_ack(request, source)
            return
        if existing is not None:
            self.stats.retransmissions_absorbed += 1
            existing.receive_retransmission()
            return
        reply_to = source if source.reliable else reply_peer(request.top_via, source)
        transaction = ServerTransaction(self, request, source, reply_to, key)
        self._servers[key] = transaction
        self.stats.requests += 1
        self.on_request(transaction)
        transaction._arm_trying()

    def find_invite(self, cancel: SipRequest) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL targets (§9.2)."""
        transaction = self._servers.get(server_key(cancel, method="INVITE"))
        return transaction if transaction is not None and transaction.is_invite else None

    def _receive_response(self, response: SipResponse) -> None:
        transaction = self._clients.get(client_key(response))
        if transaction is None:
            self.stats.stray_responses += 1
            log.debug("sip.stray_response", status=response.status, call_id=response.call_id)
            return
        transaction.receive_response(response)

    def send_request(
        self, request: SipRequest, peer: Peer, on_response: ResponseHandler
    ) -> ClientTransaction:
        """Start a client transaction (the request's top Via must carry a new branch)."""
        transaction = ClientTransaction(self, request, peer, on_response)
        if transaction.key in self._clients:
            raise ValueError("a transaction with that branch and method already exists")
        self._clients[transaction.key] = transaction
        transaction.start()
        return transaction

    def _forget_server(self, transaction: ServerTransaction) -> None:
        if self._servers.get(transaction.key) is transaction:
            del self._servers[transaction.key]

    def _forget_client(self, transaction: ClientTransaction) -> None:
        if self._clients.get(transaction.key) is transaction:
            del self._clients[transaction.key]

    def close(self) -> None:
        """Terminate every transaction (server shutdown)."""
        for server in list(self._servers.values()):
            server.terminate()
        for client in list(self._clients.values()):
            client.terminate()
