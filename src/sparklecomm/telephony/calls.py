"""Call control: SparkleComm as a back-to-back user agent (B2BUA).

Every call is two dialogs the platform controls: leg ``a`` towards the caller (we are its
UAS) and leg ``b`` towards whoever answers (we are its UAC). Nothing passes through
untouched: each leg has its own Call-ID, tags, CSeq and Contact (ours), and SDP is
filtered to PCMU/PCMA/telephone-event and, when a media relay is configured, rewritten so
that RTP flows through the relay (leg ``a`` of the relay session faces the caller side,
``b`` the callee side).

Flow of a new INVITE (:meth:`CallManager.incoming`): 100 Trying; the guard may refuse the
source; digest authentication with a 407 challenge unless the source is a trusted trunk;
the dial plan (:class:`~sparklecomm.telephony.pbx.routes.Router`) decides; a
:class:`~sparklecomm.telephony.pbx.routes.Hunt` rings each step's contacts in parallel
(first 2xx wins, the others get CANCEL, ``ring_seconds`` per step) and ends with the plan's
``final`` rejection; a ``ToQueue`` goes to the pluggable queue handler (480 without one); a
``Reject`` is sent as is. Then: 180/183 (with early-media SDP) relayed, 2xx retransmitted
to the caller until its ACK (§13.3.1.4), CANCEL, BYE from either side, re-INVITE (hold)
passed to the other leg with 491 on glare, OPTIONS/INFO in a dialog answered 200, REFER
blind transfer (RFC 3515) with NOTIFY sipfrag. Call events go to an injected ``emit``.

Calls the platform places (:meth:`CallManager.originate`: click-to-dial, queued callbacks)
have no caller INVITE: both legs are ours (UAC). Leg ``a`` rings the agent's phones with our
own G.711 offer at the relay; once one answers, the target is dialled as the agent's
extension would dial it (the same dial plan, toll-fraud rules included) as leg ``b``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import structlog

from sparklecomm.core.clock import Clock
from sparklecomm.telephony import sdp as sdplib
from sparklecomm.telephony.media.audio import SAMPLE_RATE, to_wav_bytes
from sparklecomm.telephony.pbx.routes import (
    CallRequest,
    Hunt,
    HuntStep,
    IvrMenu,
    Reject,
    Route,
    Router,
    Target,
    ToIvr,
    ToQueue,
    ToVoicemail,
    VoicemailStore,
)
from sparklecomm.telephony.sip.dialog import Dialog, DialogState
from sparklecomm.telephony.sip.digest import DigestAuthenticator, answer_challenge
from sparklecomm.telephony.sip.errors import SipParseError
from sparklecomm.telephony.sip.fields import Address
from sparklecomm.telephony.sip.headers import Headers
from sparklecomm.telephony.sip.location import Binding
from sparklecomm.telephony.sip.message import SipRequest, SipResponse, build_response
from sparklecomm.telephony.sip.timers import TimerHandle
from sparklecomm.telephony.sip.transaction import (
    ClientTransaction,
    ServerTransaction,
    State,
    TransactionLayer,
    build_cancel,
)
from sparklecomm.telephony.sip.transport import DEFAULT_PORT, Peer, default_port, new_branch
from sparklecomm.telephony.sip.uri import SipUri, Uri, format_host, parse_uri

log = structlog.get_logger("sparklecomm.sip.calls")

MIN_MESSAGE_SECONDS = 1.0
"""A recording shorter than this (a caller who hung up at the tone) is no message."""
VOICEMAIL_GOODBYE = "Thank you. Your message has been recorded. Goodbye."

BUSY_STATUSES = frozenset({486, 600})
"""A hunt step whose phones all answered one of these ended busy (forward on busy)."""

Side = Literal["a", "b"]


# ---- what the B2BUA is given ---------------------------------------------------------


class RelayEndpoint(Protocol):
    host: str
    port: int
    rtcp_port: int


class MediaSession(Protocol):
    """One call's relay session (``telephony.media.relay.RelaySession``)."""

    @property
    def a(self) -> RelayEndpoint: ...

    @property
    def b(self) -> RelayEndpoint: ...

    def set_remote(
        self, leg: Literal["a", "b"], host: str, port: int, *, rtcp_port: int | None = None
    ) -> None: ...

    def stats(self) -> dict[str, int]: ...

    async def close(self) -> None: ...


class MediaRelay(Protocol):
    async def open(self, call_id: str) -> Any: ...


class Guard(Protocol):
    """Toll-fraud guard (``telephony.pbx.fraud``): may block a source address."""

    def allow(self, source: str) -> bool: ...

    def failed(self, source: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Trunk:
    """Where and how to send a call out through a carrier trunk."""

    host: str
    port: int = DEFAULT_PORT
    transport: str = "UDP"
    username: str | None = None
    password: str | None = None
    domain: str | None = None
    """Host part of the Request-URI and To (defaults to ``host``)."""
    id: str | None = None
    """The trunk's id in the PBX (calls are counted per id for ``max_channels``)."""
    max_channels: int = 0
    """Concurrent calls allowed through the trunk, in and out together (0: no limit)."""


Emit = Callable[[str, str, dict[str, Any]], Awaitable[None]]
"""``emit(tenant_id, event_type, data)``: puts a call event on the tenant's stream."""
QueueHandler = Callable[["Call", ToQueue], Awaitable[None]]
"""Takes a call the dial plan sent to a queue (the ACD voice integration)."""
TrunkLookup = Callable[[str], Trunk | None]
TrustedSource = Callable[[str], str | None]
"""``host`` → the trunk id of a carrier allowed to send unauthenticated INVITEs."""
TenantOf = Callable[[str], Awaitable[str | None]]
"""Extension number → its tenant id."""


class AgentLegListener(Protocol):
    """Told what happens to the legs that ring agents for the ACD, and when a queue call
    ends (implemented by :class:`~sparklecomm.telephony.agent_phones.SipAgentPhones`)."""

    def agent_answered(self, call: Call, agent_id: str) -> None: ...

    def agent_failed(self, call: Call, agent_id: str, status: int) -> None: ...

    def call_ended(self, call: Call, reason: str) -> None: ...

    def consult_answered(self, call: Call, agent_id: str) -> None: ...

    def consult_failed(self, call: Call, agent_id: str, status: int) -> None: ...

    def consult_ended(self, call: Call, agent_id: str) -> None:
        """The consulted agent's answered phone hung up."""

    def owner_left(self, call: Call, agent_id: str) -> None:
        """The connected agent hung up during a consultation (the caller stays)."""

    def agent_transferred(self, call: Call, agent_id: str, number: str) -> None:
        """The connected agent put the caller through to ``number`` with its phone's own
        transfer (REFER) and its leg was released: the call goes on without the agent."""


class SipHost(Protocol):
    """What the B2BUA needs of the SIP server (:class:`~sparklecomm.telephony.SipServer`)."""

    transactions: TransactionLayer
    authenticator: DigestAuthenticator

    def respond(self, transaction: ServerTransaction, response: SipResponse) -> None: ...

    def local_address(self, peer: Peer) -> tuple[str, int]: ...

    async def locate(self, user: str, domain_hint: str | None) -> list[Binding]: ...


class ExtensionRouter:
    """The smallest dial plan: a dialled number that is a known extension rings it, any
    other number gets 404. The default when no PBX router is configured, and for tests."""

    def __init__(
        self, extensions: Iterable[str] | Callable[[str], bool], tenant_id: str = "default"
    ) -> None:
        if callable(extensions):
            self._known: Callable[[str], bool] = extensions
        else:
            numbers = frozenset(extensions)
            self._known = numbers.__contains__
        self.tenant_id = tenant_id

    async def route(self, request: CallRequest) -> Route:
        if self._known(request.dialled):
            return Hunt(
                tenant_id=request.tenant_id or self.tenant_id,
                steps=(HuntStep((Target(extension=request.dialled),)),),
                description=f"extension {request.dialled}",
            )
        return Reject(404, "Not Found")


class AnyExtensionRouter(ExtensionRouter):
    """Every dialled number is tried as an extension (404 when nobody is registered)."""

    def __init__(self, tenant_id: str = "default") -> None:
        super().__init__(lambda number: number.isdigit(), tenant_id)

    async def route(self, request: CallRequest) -> Route:
        route = await super().route(request)
        if isinstance(route, Hunt):
            return Hunt(route.tenant_id, route.steps, Reject(404, "Not Found"), route.description)
        return route


# ---- state ---------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class Leg:
    """One of the two dialogs of a call."""

    call: Call
    side: Side
    peer: Peer
    role: Literal["uas", "uac"]
    invite: SipRequest
    local_tag: str
    dialog: Dialog | None = None
    server_tx: ServerTransaction | None = None
    client_tx: ClientTransaction | None = None
    label: str = ""
    state: Literal["calling", "early", "up", "failed", "cancelled", "ended"] = "calling"
    remote_sdp: sdplib.SessionDescription | None = None
    """The latest description this leg's party sent (codec-filtered)."""
    cancel_wanted: bool = False
    got_provisional: bool = False
    auth_tried: bool = False
    trunk: Trunk | None = None
    # 2xx we sent as UAS, retransmitted until the ACK (§13.3.1.4)
    unacked: SipResponse | None = None
    unacked_peer: Peer | None = None
    unacked_cseq: int = 0
    retransmit: TimerHandle | None = None
    retransmit_interval: float = 0.0
    retransmit_elapsed: float = 0.0
    # ACKs we sent as UAC, by CSeq, to repeat on a retransmitted 2xx
    acks: dict[int, SipRequest] = field(default_factory=dict)
    ack_pending: bool = False
    """A late offer: the 2xx carried an offer, the ACK waits for the other side's answer."""
    reinvite_out: bool = False
    """A re-INVITE we sent on this leg is pending."""
    sdp_session: str = field(default_factory=lambda: str(secrets.randbelow(10**9)))
    sdp_version: int = 0
    step: int = -1
    refer: Leg | None = None
    """For a leg dialled by a blind transfer: the leg that sent the REFER."""
    refer_to: str | None = None
    """For a leg whose party is being transferred (its REFER, or the agent desk): the
    number."""
    refer_notify: bool = False
    """The transfer came by REFER: the leg is told how it goes (NOTIFY, RFC 3515)."""
    cancel_sent: bool = False
    agent_id: str | None = None
    """For a leg ringing an agent's phone for the ACD: the agent."""
    extension: str | None = None
    """For a leg ringing an extension's phone: the extension's number."""
    consult: bool = False
    """A leg to an agent consulted by the call's owner (ACD warm transfer): its media is
    the relay's leg ``c`` until a transfer makes it the call's leg ``b``."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.invite.call_id, self.local_tag)

    @property
    def via(self) -> str:
        host, port = self.call.manager.host.local_address(self.peer)
        return f"SIP/2.0/{self.peer.transport.upper()} {format_host(host)}:{port}"


@dataclass(eq=False, slots=True)
class Call:
    """A call: the caller's leg, the legs being rung, and the answered one."""

    manager: CallManager
    id: str
    caller: str
    dialled: str
    source: str
    tenant_id: str | None = None
    legs: dict[str, Leg] = field(default_factory=dict)
    """The connected legs by side (``a`` the caller's, ``b`` the answered one)."""
    ringing: list[Leg] = field(default_factory=list)
    media: Any = None
    step_done: asyncio.Future[str] | None = None
    step: int = 0
    started: float = 0.0
    answered_at: float | None = None
    ended: bool = False
    cancelled: bool = False
    early_leg: Leg | None = None
    description: str = ""
    final_status: int | None = None
    request: CallRequest | None = None
    dialling: bool = False
    """The hunt is still sending a step's INVITEs."""
    rang: bool = False
    transfer_legs: list[Leg] = field(default_factory=list)
    queue: bool = False
    """Served by the ACD (see :mod:`sparklecomm.telephony.agent_phones`)."""
    pending_agents: dict[str, Leg] = field(default_factory=dict)
    """Agents' legs that answered and wait for the engine's accept before connecting."""
    ringback_sent: bool = False
    ringback_timer: TimerHandle | None = None
    """Re-sends the 180 (or the 183 of early media) to a caller waiting in a queue (RFC
    3261 §13.3.1.1)."""
    early_answer: bytes | None = None
    """The SDP answer of the 183 the platform sent (:meth:`CallManager.early_media`): the
    caller's 200 OK repeats it."""
    platform_answered: bool = False
    """The platform itself answered the caller (a voice menu): the caller has its 200 OK
    and hears the platform, though no party answered yet (``answered`` stays false until
    one does)."""
    waiting: Any = None
    """What the platform plays to the waiting caller (``stop()`` ends it and reconnects the
    relay's legs ``a`` and ``b``): :mod:`sparklecomm.telephony.waiting`."""
    step_statuses: list[int] = field(default_factory=list)
    """Why the current hunt step's targets failed: their final statuses, 486 for an
    extension already in a call through us, 503 for a trunk at its ``max_channels``."""
    trunk_full: bool = False
    """A target was not dialled because its trunk had no free channel."""
    no_tls_path: bool = False
    """A target of this ``sips:`` call was skipped: it can only be reached without TLS."""
    consult_agent: str | None = None
    """The agent being consulted (phones ringing or answered): :meth:`CallManager.consult_agent`."""
    consult_leg: Leg | None = None
    """The consulted agent's answered leg."""
    placed: Placement | None = None
    """A call the platform places (:meth:`CallManager.originate`): leg ``a`` is the agent's
    phone, leg ``b`` the dialled party; both are legs we called (UAC)."""
    transferred_to: str | None = None
    """The number a party's own transfer (REFER) last put the call through to."""

    @property
    def a(self) -> Leg:
        return self.legs["a"]

    @property
    def b(self) -> Leg | None:
        return self.legs.get("b")

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    def other(self, leg: Leg) -> Leg | None:
        other = self.legs.get("b" if leg.side == "a" else "a")
        return other if other is not leg else None


PlacedPhase = Literal["agent", "target", "connected"]


@dataclass(eq=False, slots=True)
class Placement:
    """What is special about a call the platform places (third-party call control): first
    the agent's phones ring (phase ``agent``), then the target is dialled (``target``),
    then both talk through the relay (``connected``)."""

    extension: str
    """The agent's extension the target is dialled as (the dial plan's caller)."""
    target: str
    hunt: Hunt
    agent_id: str | None = None
    ring_seconds: float = 30.0
    """How long the agent's phones ring before they get CANCEL (nothing is dialled)."""
    answer_timeout: float = 60.0
    """How long the target may take to answer (every hunt step together)."""
    confirm: Callable[[Call], Awaitable[bool]] | None = None
    """Asked once the agent answered, before dialling: False hangs the agent's leg up
    (reason ``refused``) and nothing is dialled (the ACD's accept of a callback)."""
    on_event: Callable[[Call, str], None] | None = None
    """Told ``connected`` (the target answered) and ``ended`` (see :attr:`outcome`)."""
    phase: PlacedPhase = "agent"
    agent_done: asyncio.Future[str] | None = None
    outcome: str = ""
    """Why the call ended (the ``reason`` of ``call.ended``)."""
    status: int | None = None
    """The SIP status that ended it, when a failure did."""


class OriginateRefused(Exception):
    """The platform will not place a call: ``kind`` is ``dial_plan`` (the dial plan
    refused the target: ``status`` and ``reason`` are its answer), ``no_phone`` (the agent
    has no registered phone) or ``no_media`` (no media relay to anchor the call)."""

    def __init__(self, kind: str, status: int, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.status = status
        self.reason = reason


PLACED_OFFER = (
    "v=0\r\n"
    "o=SparkleComm 0 0 IN {family} {host}\r\n"
    "s=SparkleComm\r\n"
    "c=IN {family} {host}\r\n"
    "t=0 0\r\n"
    "m=audio {port} RTP/AVP 0 8 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n"
)
"""Our own offer for the agent's phone of a placed call: G.711 and RFC 4733 events."""


def placed_offer(host: str, port: int) -> sdplib.SessionDescription:
    """:data:`PLACED_OFFER` at ``host:port`` (the relay's leg)."""
    family = "IP6" if ":" in host else "IP4"
    return sdplib.parse(PLACED_OFFER.format(family=family, host=host, port=port))


class CallManager:
    """The B2BUA. The SIP server hands it INVITEs, in-dialog requests, CANCELs and ACKs."""

    def __init__(
        self,
        host: SipHost,
        *,
        clock: Clock,
        router: Router | None = None,
        relay: MediaRelay | None = None,
        emit: Emit | None = None,
        guard: Guard | None = None,
        trusted_source: TrustedSource | None = None,
        trunks: TrunkLookup | None = None,
        queue_handler: QueueHandler | None = None,
        tenant_of: TenantOf | None = None,
        user_agent: str = "SparkleComm",
        ringback_interval: float = 60.0,
    ) -> None:
        self.host = host
        self.clock = clock
        self.router: Router = router or AnyExtensionRouter()
        self.relay = relay
        self.emit = emit
        self.guard = guard
        self.trusted_source = trusted_source
        self.trunks = trunks
        self.queue_handler = queue_handler
        self.tenant_of = tenant_of
        self.user_agent = user_agent
        self.ringback_interval = ringback_interval
        """Seconds between the 180s re-sent to a caller waiting in a queue."""
        self.agent_listener: AgentLegListener | None = None
        self.waiting_room: Any = None
        """What the platform plays to callers itself (voice menus, music on hold):
        :class:`~sparklecomm.telephony.waiting.WaitingRoom`; ``None``: nothing (menus are
        refused with 480, queues give ringback)."""
        self.voicemail: VoicemailStore | None = None
        """Where recorded messages go (``None``: voicemail routes get 480)."""
        self.max_menus = 20
        self.recordings: Any = None
        """Records answered calls (:class:`~sparklecomm.telephony.call_recording.
        CallRecordings`); ``None``: no recording on this node."""
        """Menus one call may go through (a caller choosing in circles is hung up)."""
        self._pending_events: deque[tuple[str, str, dict[str, Any]]] = deque()
        self._emitting = False
        self.calls: dict[str, Call] = {}
        self._legs: dict[tuple[str, str], Leg] = {}
        self._by_invite: dict[tuple[str, ...], Call] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = {"calls": 0, "answered": 0, "failed": 0}

    def use_pbx(self, pbx: Any) -> None:
        """Route with the PBX service (``telephony.pbx.service.PbxService``): its dial plan,
        fraud guard, trusted trunk sources and trunks."""
        self.router = pbx
        self.guard = getattr(pbx, "guard", None) or self.guard
        self.trusted_source = pbx.trusted_source
        self.trunks = _pbx_trunk_lookup(pbx)

    @property
    def layer(self) -> TransactionLayer:
        return self.host.transactions

    @property
    def active_calls(self) -> int:
        return len(self.calls)

    async def close(self) -> None:
        for call in list(self.calls.values()):
            self._hangup_all(call, "shutdown")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sip.call_task_failed", error=repr(task.exception()))

    def _respond(self, tx: ServerTransaction, response: SipResponse) -> None:
        self.host.respond(tx, response)

    # ---- new calls -------------------------------------------------------------------

    def incoming(self, tx: ServerTransaction) -> None:
        """A new INVITE (no To tag)."""
        self._respond(tx, build_response(tx.request, 100))
        self._spawn(self._setup(tx))

    async def _setup(self, tx: ServerTransaction) -> None:
        request = tx.request
        source = tx.source.host
        try:
            call = await self._admit(tx)
        except Exception:
            log.exception("sip.invite_failed", call_id=request.call_id)
            self._respond(tx, build_response(request, 500))
            return
        if call is None:
            return
        try:
            await self._route_and_run(call)
        except Exception:
            log.exception("sip.call_failed", call_id=request.call_id, source=source)
            if not call.answered and not call.ended:
                self._reject(call, 500, "Server Internal Error", "failed")
            elif not call.ended:
                self._hangup_all(call, "failed")

    async def _admit(self, tx: ServerTransaction) -> Call | None:
        """Guard, authentication, SDP checks; the call, or ``None`` when refused."""
        request = tx.request
        source = tx.source.host
        if self.guard is not None and not self.guard.allow(source):
            log.warning("sip.invite_blocked", source=str(tx.source), call_id=request.call_id)
            self._respond(tx, build_response(request, 403, "Forbidden"))
            return None
        trunk_id = self.trusted_source(source) if self.trusted_source is not None else None
        extension: str | None = None
        if trunk_id is None:
            result = await self.host.authenticator.check(request, proxy=True)
            if result.forbidden:
                log.warning("sip.invite_forbidden", source=str(tx.source), reason=result.reason)
                if self.guard is not None:
                    self.guard.failed(source)
                self._respond(tx, build_response(request, 403))
                return None
            if not result.ok:
                if result.reason != "no credentials":
                    log.warning(
                        "sip.invite_auth_failed", source=str(tx.source), reason=result.reason
                    )
                    if self.guard is not None:
                        self.guard.failed(source)
                response = build_response(request, 407)
                for challenge in result.challenges:
                    response.headers.add("Proxy-Authenticate", str(challenge))
                self._respond(tx, response)
                return None
            extension = result.username
        elif self.trunks is not None:
            trunk = self.trunks(trunk_id)
            if trunk is not None and not self.trunk_has_channel(trunk):
                log.warning(
                    "sip.trunk_full",
                    trunk_id=trunk_id,
                    max_channels=trunk.max_channels,
                    direction="in",
                    source=str(tx.source),
                )
                self._respond(
                    tx, build_response(request, 503, "Service Unavailable - Trunk Channels Full")
                )
                return None
        if tx.state is not State.PROCEEDING:
            return None  # cancelled while we authenticated
        offer: sdplib.SessionDescription | None = None
        if request.body:
            content_type = request.content_type
            if content_type is not None and content_type.mime_type != "application/sdp":
                self._respond(tx, build_response(request, 415, "Unsupported Media Type - SDP only"))
                return None
            try:
                offer = sdplib.filter_codecs(sdplib.parse(request.body))
            except sdplib.SdpError as error:
                log.info("sip.invite_bad_sdp", source=str(tx.source), reason=str(error))
                self._respond(tx, _reason_response(request, 488, str(error)))
                return None
        tenant = None
        if extension is not None and self.tenant_of is not None:
            tenant = await self.tenant_of(extension)
        uri = request.uri
        dialled = uri.user if isinstance(uri, SipUri) and uri.user else ""
        caller_uri = request.from_.uri
        caller = caller_uri.user if isinstance(caller_uri, SipUri) and caller_uri.user else ""
        call = Call(
            manager=self,
            id=secrets.token_hex(10),
            caller=extension or caller,
            dialled=dialled,
            source=str(tx.source),
            tenant_id=tenant,
            started=self.clock.monotonic(),
        )
        leg = Leg(
            call=call,
            side="a",
            peer=tx.source,
            role="uas",
            invite=request,
            local_tag=secrets.token_hex(8),
            server_tx=tx,
            label=f"caller {call.caller}",
            remote_sdp=offer,
        )
        host, port = self.host.local_address(tx.source)
        # §8.1.1.8: a sips: Request-URI gets a sips: Contact.
        secure = isinstance(uri, SipUri) and uri.secure
        leg.dialog = Dialog.as_uas(
            request,
            local_tag=leg.local_tag,
            local_contact=_contact(host, port, tx.source, secure=secure),
        )
        call.legs["a"] = leg
        self.calls[call.id] = call
        self._legs[(request.call_id, leg.local_tag)] = leg
        self._by_invite[tx.key] = call
        self.stats["calls"] += 1
        call.request = CallRequest(
            dialled=dialled,
            caller=caller,
            caller_name=request.from_.display_name,
            source=str(tx.source),
            extension=extension,
            tenant_id=tenant,
            trunk_id=trunk_id,
            call_id=request.call_id,
        )
        return call

    async def _route_and_run(self, call: Call) -> None:
        request = call.request
        assert request is not None
        route = await self.router.route(request)
        if self._caller_gone(call):
            return
        if isinstance(route, Reject):
            log.info(
                "sip.call_rejected",
                source=call.source,
                dialled=call.dialled,
                status=route.status,
                reason=route.reason,
            )
            self._reject(call, route.status, route.reason, "rejected")
            return
        call.tenant_id = call.tenant_id or route.tenant_id
        call.description = _describe(route)
        self._event(call, "call.started", {"route": call.description or type(route).__name__})
        if self.relay is not None and call.media is None:
            try:
                media = await self.relay.open(call.id)
            except Exception as error:
                log.error("sip.relay_open_failed", call=call.id, error=str(error))
                self._reject(call, 503, "Service Unavailable - No Media Ports", "no_media")
                return
            if call.ended:  # the caller gave up while the ports were being bound
                await media.close()
                return
            call.media = media
            offer = call.a.remote_sdp
            if offer is not None:
                self._set_remote(call, "a", offer)
        if self._caller_gone(call):
            return
        await self._proceed(call, route)

    async def _proceed(self, call: Call, route: Hunt | ToQueue | ToIvr | ToVoicemail) -> None:
        """Hand the call on to where the dial plan sent it (refusals are the caller's)."""
        if isinstance(route, ToQueue):
            if self.queue_handler is None:
                log.warning("sip.no_queue_handler", queue_id=route.queue_id, call=call.id)
                self._reject(call, 480, "Temporarily Unavailable", "no_queue_handler")
                return
            await self.queue_handler(call, route)
        elif isinstance(route, ToIvr):
            await self._menu(call, route)
        elif isinstance(route, ToVoicemail):
            await self._voicemail(call, route)
        else:
            await self._hunt(call, route)

    async def _menu(self, call: Call, route: ToIvr) -> None:
        """A voice menu: the platform answers the caller with its own media and plays the
        menu; the key pressed (``None``: no valid key after the last attempt) gives the
        next route (``router.ivr_choice``): another menu, a queue, something to ring, or a
        refusal (the caller is hung up). The caller hears music while what comes next rings."""
        room = self.waiting_room
        chooser = getattr(self.router, "ivr_choice", None)
        if room is None or chooser is None or call.media is None:
            log.warning("sip.menu_unavailable", call=call.id, menu=route.menu.name)
            self._reject(call, 480, "Temporarily Unavailable (no voice menus here)", "no_menu")
            return
        session = self._take_over(call, f"menu {route.menu.name}", "no_menu_media")
        if session is None:
            return
        request = call.request
        next_route: Route = route
        for _ in range(self.max_menus):
            if not isinstance(next_route, ToIvr):
                break
            menu = next_route.menu
            key = await session.menu(menu)
            if call.ended:
                return
            self._event(call, "call.menu_choice", {"menu": menu.name, "key": key})
            try:
                next_route = await chooser(next_route, key, request)
            except Exception as error:  # the PBX's store failed: end the call cleanly
                log.error("sip.menu_choice_failed", call=call.id, menu=menu.name, error=str(error))
                next_route = Reject(480, "Temporarily Unavailable")
            if call.ended:
                return
        else:
            next_route = Reject(480, "Temporarily Unavailable (too many menus)")
        if isinstance(next_route, Reject):
            self._reject(call, next_route.status, next_route.reason, "menu_rejected")
            return
        call.description = f"{call.description} → {_describe(next_route) or 'ring'}"
        if isinstance(next_route, Hunt):
            session.hold()  # music while it rings
        await self._proceed(call, next_route)

    def _take_over(self, call: Call, label: str, why: str) -> Any:
        """The platform answers the caller itself (unless a menu already did: ``label`` names
        it in ``call.answered``) and takes over its media: the session
        (:class:`~sparklecomm.telephony.waiting.Waiting`), or ``None`` when it cannot (the
        caller gone, or refused with 488: no codec the platform can answer with)."""
        if call.platform_answered and call.waiting is not None:
            return call.waiting
        answer = self.answer_by_platform(call)
        session = None
        if answer is not None:
            self._event(call, "call.answered", {"leg": label})
            session = (
                call.waiting if call.waiting is not None else self.waiting_room.attach(call, answer)
            )
        if session is None and not self._caller_gone(call):
            self._reject(call, 488, "Not Acceptable Here", why)
        return session

    async def _voicemail(self, call: Call, route: ToVoicemail) -> None:
        """Take a message: the platform answers (if no menu did), speaks the greeting,
        plays a tone and records until the caller hangs up, presses ``#`` or the box's
        ``max_seconds``; a message of at least a second goes to :attr:`voicemail`
        (``call.voicemail_left``); a caller still there hears "thank you" and is hung up."""
        room, store = self.waiting_room, self.voicemail
        if room is None or store is None or call.media is None:
            log.warning("sip.voicemail_unavailable", call=call.id, box=route.box)
            self._reject(call, 480, "Temporarily Unavailable (no voicemail here)", "no_voicemail")
            return
        session = self._take_over(call, f"voicemail {route.box}", "no_voicemail_media")
        if session is None:
            return
        pcm = await session.record_message(route.greeting, route.max_seconds)
        seconds = round(len(pcm) / SAMPLE_RATE, 2)
        if seconds >= MIN_MESSAGE_SECONDS:
            request = call.request
            try:
                message_id = await store.leave_message(
                    route,
                    caller=call.caller,
                    caller_name=request.caller_name if request is not None else None,
                    call_id=call.id,
                    wav=to_wav_bytes(pcm),
                    seconds=seconds,
                )
            except Exception as error:  # the store failed: the caller is told nothing more
                log.error("sip.voicemail_not_saved", call=call.id, box=route.box, error=str(error))
            else:
                self._event(
                    call,
                    "call.voicemail_left",
                    {"box": route.box, "message_id": message_id, "seconds": seconds},
                )
        if not call.ended:
            await session.say(VOICEMAIL_GOODBYE)
            self.end_call(call, "voicemail")

    async def _hunt(self, call: Call, hunt: Hunt) -> None:
        # ``basis``: how the last unconditional step ended ("busy" or "no_answer"); a step
        # with ``when`` busy / no_answer runs only when it matches, so the forward-on-busy
        # and forward-on-no-answer steps that follow an extension are alternatives.
        basis: str | None = None
        outcome = ""
        for number, step in enumerate(hunt.steps):
            if self._caller_gone(call) or call.answered:
                return
            when = getattr(step, "when", "always")
            if when in ("busy", "no_answer") and basis is not None and when != basis:
                log.info("sip.hunt_step_skipped", call=call.id, step=number, when=when, basis=basis)
                continue
            outcome = await self._hunt_step(call, number, step)
            if outcome in ("answered", "cancelled") or call.ended:
                return
            if when not in ("busy", "no_answer"):
                basis = outcome
        if not (call.cancelled or call.ended or call.answered):
            if isinstance(hunt.final, ToVoicemail):
                if call.placed is None:  # nobody answered: the box takes a message
                    await self._voicemail(call, hunt.final)
                    return
                final = Reject(480, "Temporarily Unavailable")  # (an agent's own call)
            else:
                final = hunt.final
            if call.trunk_full:
                final = Reject(503, "Service Unavailable - Trunk Channels Full")
            elif outcome == "busy" and final.status == 480:
                final = Reject(486, "Busy Here")
            elif call.no_tls_path and final.status in (404, 480):
                final = Reject(480, "Temporarily Unavailable - No TLS Path (SIPS)")
            elif (
                final.status == 480
                and call.step_statuses
                and all(status == 488 for status in call.step_statuses)
            ):
                # Every phone refused the offer itself (e.g. SRTP required, or no common
                # codec): say so rather than "unavailable".
                final = Reject(488, "Not Acceptable Here")
            reason = "no_answer" if call.final_status is None else "unavailable"
            if outcome == "busy":
                reason = "busy"
            self._reject(call, final.status, final.reason, reason)

    async def _hunt_step(self, call: Call, number: int, step: HuntStep) -> str:
        """Ring one step; ``answered``, ``cancelled``, ``busy`` (every phone busy or the
        extensions already in a call) or ``no_answer`` (rang out, nobody registered, or
        refused otherwise)."""
        call.step = number
        call.step_statuses = []
        call.trunk_full = False
        # Created before dialling: a phone may answer or refuse while we look up the
        # next target's contacts.
        call.step_done = asyncio.get_running_loop().create_future()
        call.dialling = True
        legs: list[Leg] = []
        try:
            for target in step.targets:
                legs += await self._dial(call, target, call.a.remote_sdp, side="b", step=number)
        finally:
            call.dialling = False
        if not legs:
            return self._step_failure(call)
        if call.step_done.done():
            outcome = call.step_done.result()
        elif not any(leg.step == number for leg in call.ringing):
            outcome = "failed"  # every phone of the step refused already
        else:
            try:
                # (asyncio.timeout rather than wait_for: one loop timer and no extra
                # waiter future per call; shield keeps step_done itself uncancelled.)
                async with asyncio.timeout(step.ring_seconds):
                    outcome = await asyncio.shield(call.step_done)
            except TimeoutError:
                outcome = "timeout"
        if outcome in ("answered", "cancelled") or call.ended:
            return outcome
        log.info(
            "sip.hunt_step_over",
            call=call.id,
            step=number,
            outcome=outcome,
            legs=[f"{leg.label}: {leg.state}" for leg in legs],
        )
        for leg in legs:
            self._cancel_leg(leg)
        return "no_answer" if outcome == "timeout" else self._step_failure(call)

    @staticmethod
    def _step_failure(call: Call) -> str:
        statuses = call.step_statuses
        if statuses and all(status in BUSY_STATUSES for status in statuses):
            return "busy"
        return "no_answer"

    def extension_busy(self, number: str) -> bool:
        """Whether extension ``number`` is already in a call through us (a connected leg
        to or from one of its phones): for forward-on-busy with phones that have call
        waiting."""
        for leg in self._legs.values():
            if leg.state != "up" or leg.call.ended:
                continue
            if leg.extension == number:
                return True
            request = leg.call.request
            if leg.side == "a" and request is not None and request.extension == number:
                return True
        return False

    def trunk_calls(self, trunk_id: str) -> int:
        """Calls in progress through trunk ``trunk_id``: inbound ones from it and legs out
        through it (ringing or connected)."""
        count = 0
        for leg in self._legs.values():
            if leg.state not in ("calling", "early", "up") or leg.call.ended:
                continue
            if leg.trunk is not None and leg.trunk.id == trunk_id:
                count += 1
            elif leg.side == "a" and leg.role == "uas":
                request = leg.call.request
                if request is not None and request.trunk_id == trunk_id:
                    count += 1
        return count

    def trunk_has_channel(self, trunk: Trunk) -> bool:
        if trunk.max_channels <= 0 or trunk.id is None:
            return True
        return self.trunk_calls(trunk.id) < trunk.max_channels

    async def _dial(
        self,
        call: Call,
        target: Target,
        offer: sdplib.SessionDescription | None,
        *,
        side: Side,
        step: int,
        agent_id: str | None = None,
        consult: bool = False,
        own_phone: bool = False,
    ) -> list[Leg]:
        """INVITE every contact of a target; the legs started. ``own_phone``: the phones
        of the agent placing a call (rung even when the extension is in a call)."""
        request = call.request
        assert request is not None
        # The caller's INVITE (none for a call the platform places: both legs are ours).
        first = call.legs.get("a")
        caller_uri = first.invite.uri if first is not None and first.role == "uas" else None
        destinations: list[tuple[Uri, Peer, str, Trunk | None]] = []
        if target.extension is not None:
            if agent_id is None and not own_phone and self.extension_busy(target.extension):
                log.info("sip.extension_busy", call=call.id, extension=target.extension)
                call.step_statuses.append(486)
                return []
            hint = caller_uri.host if isinstance(caller_uri, SipUri) else None
            connected = getattr(self.host, "connected", None)
            for binding in await self.host.locate(target.extension, hint):
                try:
                    contact = parse_uri(binding.contact)
                except SipParseError:
                    continue
                peer = _binding_peer(binding, contact, connected)
                if peer is not None:
                    destinations.append((contact, peer, target.extension, None))
        elif target.external is not None and target.trunk_id is not None:
            trunk = self.trunks(target.trunk_id) if self.trunks is not None else None
            if trunk is None:
                log.warning("sip.unknown_trunk", trunk_id=target.trunk_id, call=call.id)
            elif not self.trunk_has_channel(trunk):
                log.warning(
                    "sip.trunk_full",
                    trunk_id=target.trunk_id,
                    max_channels=trunk.max_channels,
                    direction="out",
                    call=call.id,
                )
                call.step_statuses.append(503)
                call.trunk_full = True
            else:
                domain = trunk.domain or trunk.host
                trunk_uri = SipUri.build(domain, user=target.external, port=trunk.port)
                peer = Peer(trunk.transport.upper(), trunk.host, trunk.port)
                destinations.append((trunk_uri, peer, target.external, trunk))
        if isinstance(caller_uri, SipUri) and caller_uri.secure:
            # RFC 5630: a sips: call is never downgraded: only TLS legs (else 480).
            secure = [d for d in destinations if d[1].transport.upper() == "TLS"]
            if len(secure) < len(destinations):
                log.info(
                    "sip.sips_no_tls_path",
                    call=call.id,
                    skipped=[str(d[1]) for d in destinations if d not in secure],
                )
                if not secure:
                    call.step_statuses.append(480)
                    call.no_tls_path = True
            destinations = secure
        auto_answer = False
        if destinations and target.extension is not None and (agent_id or own_phone):
            auto_answer = await self._auto_answer(target.extension)
        legs = []
        for uri, peer, user, trunk in destinations:
            leg = self._new_uac_leg(
                call,
                side,
                uri,
                peer,
                user,
                offer,
                caller_id=target.caller_id or request.caller,
                caller_name=target.caller_name or request.caller_name,
                trunk=trunk,
                consult=consult,
            )
            leg.step = step
            leg.agent_id = agent_id
            leg.extension = target.extension
            if auto_answer:
                # The phone answers by itself: the de-facto Call-Info answer-after (Yealink,
                # Polycom, Snom, Grandstream, Cisco, Linphone, baresip) and RFC 5373.
                host, _port = self.host.local_address(peer)
                leg.invite.headers.add("Call-Info", f"<sip:{format_host(host)}>;answer-after=0")
                leg.invite.headers.add("Answer-Mode", "Auto")
            call.ringing.append(leg)
            legs.append(leg)
            self._send_invite(leg)
        return legs

    async def _auto_answer(self, extension: str) -> bool:
        """Whether the extension's phones answer by themselves when rung for their agent
        (the PBX's call settings, through ``router.auto_answer``; no PBX: never)."""
        lookup = getattr(self.router, "auto_answer", None)
        if lookup is None:
            return False
        try:
            return bool(await lookup(extension))
        except Exception as error:  # the store failed: ring as usual
            log.warning("sip.auto_answer_lookup_failed", extension=extension, error=str(error))
            return False

    def _new_uac_leg(
        self,
        call: Call,
        side: Side,
        uri: Uri,
        peer: Peer,
        user: str,
        offer: sdplib.SessionDescription | None,
        *,
        caller_id: str,
        caller_name: str | None,
        trunk: Trunk | None = None,
        consult: bool = False,
    ) -> Leg:
        host, port = self.host.local_address(peer)
        local_tag = secrets.token_hex(8)
        call_id = f"{secrets.token_hex(12)}@{format_host(host)}"
        from_uri = SipUri.build(host, user=caller_id or "anonymous")
        domain = uri.host if isinstance(uri, SipUri) else host
        to_uri = SipUri.build(domain, user=user)
        headers = Headers()
        headers.add("Via", f"SIP/2.0/{peer.transport} {format_host(host)}:{port}")
        headers.add("Max-Forwards", "70")
        headers.add("From", str(Address(from_uri, caller_name).with_tag(local_tag)))
        headers.add("To", str(Address(to_uri)))
        headers.add("Call-ID", call_id)
        headers.add("CSeq", "1 INVITE")
        secure = isinstance(uri, SipUri) and uri.secure and peer.transport.upper() == "TLS"
        headers.add("Contact", _contact(host, port, peer, secure=secure))
        headers.add("User-Agent", self.user_agent)
        headers.add("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, INFO")
        leg = Leg(
            call=call,
            side=side,
            peer=peer,
            role="uac",
            invite=SipRequest("INVITE", uri, headers),
            local_tag=local_tag,
            label=f"{user} at {peer}",
            trunk=trunk,
            consult=consult,
        )
        if offer is not None:
            leg.invite.body = self._sdp_for(leg, offer)
            leg.invite.headers.add("Content-Type", "application/sdp")
        self._legs[leg.key] = leg
        return leg

    def _send_invite(self, leg: Leg) -> None:
        invite = leg.invite
        via = invite.headers.get_all("Via")[0].split(";", 1)[0]
        invite.headers.remove_first("Via")
        invite.headers.prepend("Via", f"{via};branch={new_branch()};rport")
        leg.client_tx = self.layer.send_request(
            invite, leg.peer, lambda response: self._on_invite_response(leg, response)
        )

    # ---- responses from the legs we called -------------------------------------------

    def _on_invite_response(self, leg: Leg, response: SipResponse) -> None:
        try:
            self._invite_response(leg, response)
        except Exception:
            log.exception("sip.response_handling_failed", call=leg.call.id, leg=leg.label)

    def _invite_response(self, leg: Leg, response: SipResponse) -> None:
        call = leg.call
        status = response.status
        if response.cseq.number != leg.invite.cseq.number:
            return
        if call.placed is not None and leg.refer is None and (status < 300 or leg.side == "a"):
            self._placed_response(leg, response)
            return
        if status < 200:
            if status == 100:
                leg.got_provisional = True
            else:
                leg.got_provisional = True
                if response.to.tag and leg.dialog is None:
                    leg.dialog = Dialog.as_uac(leg.invite, response)
            if leg.cancel_wanted:
                self._send_cancel(leg)
                return
            if status > 100 and leg.state == "calling":
                leg.state = "early"
            if (
                status > 100
                and leg in call.ringing
                and not call.answered
                and leg.agent_id is None  # agents' phones: the caller hears our ringback
            ):
                self._early(call, leg, response)
            return
        if 200 <= status < 300:
            self._leg_answered(leg, response)
            return
        # a final failure
        if status in (401, 407) and self._retry_with_credentials(leg, response):
            return
        leg.state = "cancelled" if leg.cancel_wanted else "failed"
        self._forget_leg(leg)
        if leg in call.ringing:
            call.ringing.remove(leg)
            if not leg.cancel_wanted:
                call.final_status = status
                if leg.step == call.step and leg.agent_id is None:
                    call.step_statuses.append(status)
                log.info("sip.leg_failed", call=call.id, leg=leg.label, status=status)
                agent = leg.agent_id
                listener = self.agent_listener
                if (
                    agent is not None
                    and listener is not None
                    and not any(o.agent_id == agent for o in call.ringing)
                ):
                    if leg.consult:
                        listener.consult_failed(call, agent, status)
                    else:
                        listener.agent_failed(call, agent, status)
            same_step = [other for other in call.ringing if other.step == leg.step]
            if (
                not same_step
                and not call.dialling
                and call.step_done is not None
                and not call.step_done.done()
            ):
                call.step_done.set_result("failed")
        elif leg.refer is not None:
            self._transfer_failed(leg, response)

    def _retry_with_credentials(self, leg: Leg, response: SipResponse) -> bool:
        trunk = leg.trunk
        if trunk is None or trunk.username is None or trunk.password is None or leg.auth_tried:
            return False
        proxy = response.status == 407
        challenges = response.proxy_authenticate if proxy else response.www_authenticate
        if not challenges:
            return False
        leg.auth_tried = True
        invite = leg.invite
        credentials = answer_challenge(
            challenges[0],
            method="INVITE",
            uri=str(invite.uri),
            username=trunk.username,
            password=trunk.password,
        )
        headers = invite.headers.copy()
        headers.remove("CSeq")
        headers.add("CSeq", f"{invite.cseq.number + 1} INVITE")
        headers.add("Proxy-Authorization" if proxy else "Authorization", str(credentials))
        leg.invite = SipRequest("INVITE", invite.uri, headers, invite.body)
        self._send_invite(leg)
        return True

    def _early(self, call: Call, leg: Leg, response: SipResponse) -> None:
        a = call.a
        tx = a.server_tx
        if tx is None or call.cancelled or call.platform_answered:
            return  # (answered by the platform: the caller hears it until a party answers)
        forward = build_response(a.invite, response.status, to_tag=a.local_tag)
        forward.headers.add("Contact", a.dialog.local_contact if a.dialog else "")
        if response.body and (call.early_leg is None or call.early_leg is leg):
            try:
                early = sdplib.filter_codecs(sdplib.parse(response.body))
            except sdplib.SdpError as error:
                log.info("sip.early_sdp_refused", leg=leg.label, reason=str(error))
            else:
                call.early_leg = leg
                leg.remote_sdp = early
                self._end_waiting(call)  # the target's own early media from now on
                self._set_remote(call, leg.side, early)
                forward.body = self._sdp_for(a, early)
                forward.headers.add("Content-Type", "application/sdp")
        if response.status == 180 and not call.rang:
            call.rang = True
            self._event(call, "call.ringing", {"leg": leg.label})
        self._respond(tx, forward)

    def _confirm_2xx(self, leg: Leg, response: SipResponse) -> bool:
        """Confirm the leg's dialog with a 2xx to our INVITE; True when it repeats one we
        already acknowledged (the ACK is sent again and there is nothing more to do)."""
        if leg.dialog is None or leg.dialog.remote_tag != (response.to.tag or ""):
            leg.dialog = Dialog.as_uac(leg.invite, response)
        leg.dialog.confirm(response)
        ack = leg.acks.get(response.cseq.number)
        if ack is not None:
            self.layer.sender.send(ack, leg.peer)  # a retransmitted 2xx
            return True
        return False

    def _leg_answered(self, leg: Leg, response: SipResponse) -> None:
        call = leg.call
        cseq = response.cseq.number
        if self._confirm_2xx(leg, response):
            return
        if leg.ack_pending:
            return  # waiting for the caller's answer to the late offer
        if leg.refer is not None and leg.state in ("calling", "early"):
            self._transfer_answered(leg, response)
            return
        if leg.agent_id is not None:
            self._agent_leg_answered(leg, response, cseq)
            return
        won = (
            leg in call.ringing
            and not call.answered
            and not self._caller_gone(call)
            and not leg.cancel_wanted
        )
        if not won:
            # Too late (another phone answered, or the caller gave up): ACK and hang up.
            self._ack(leg, cseq)
            self._bye(leg)
            return
        leg.state = "up"
        call.ringing.remove(leg)
        call.legs[leg.side] = leg
        answer: sdplib.SessionDescription | None = None
        if response.body:
            try:
                answer = sdplib.parse(response.body)
            except sdplib.SdpError as error:
                log.info("sip.answer_sdp_refused", leg=leg.label, reason=str(error))
        if answer is not None:
            leg.remote_sdp = answer
            self._set_remote(call, leg.side, answer)
        a = call.a
        late_offer = a.remote_sdp is None and answer is not None
        if late_offer:
            leg.ack_pending = True
            leg.unacked_cseq = cseq
        else:
            self._ack(leg, cseq)
        for other in list(call.ringing):
            self._cancel_leg(other)
        self._answer_caller(call, answer)
        self._event(call, "call.answered", {"leg": leg.label})
        self._person_answered(call)
        if call.step_done is not None and not call.step_done.done():
            call.step_done.set_result("answered")

    def _answer_caller(
        self,
        call: Call,
        answer: sdplib.SessionDescription | None,
        *,
        keep_waiting: bool = False,
    ) -> None:
        """200 OK to the caller (repeated until its ACK), with ``answer`` anchored for it
        (or the answer of the platform's early media, which a 200 must repeat)."""
        self._stop_ringback(call)
        if not keep_waiting:
            self._end_waiting(call)
        a = call.a
        call.answered_at = self.clock.monotonic()
        self.stats["answered"] += 1
        if a.server_tx is None or call.platform_answered:
            return
        self._send_ok(call, answer)

    def _send_ok(self, call: Call, answer: sdplib.SessionDescription | None) -> None:
        a = call.a
        assert a.server_tx is not None
        ok = build_response(a.invite, 200, to_tag=a.local_tag)
        ok.headers.add("Contact", a.dialog.local_contact if a.dialog else "")
        ok.headers.add("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, INFO")
        if call.early_answer is not None:
            ok.body = call.early_answer
            ok.headers.add("Content-Type", "application/sdp")
        elif answer is not None:
            ok.body = self._sdp_for(a, answer)
            ok.headers.add("Content-Type", "application/sdp")
        a.state = "up"
        if a.dialog is not None:
            a.dialog.state = DialogState.CONFIRMED
        self._send_2xx(a, a.server_tx, ok)

    # ---- legs that ring agents for the ACD -------------------------------------------

    def ringback(self, call: Call) -> None:
        """180 Ringing to a waiting caller (their phone plays ringback; no early media),
        repeated every ``ringback_interval`` seconds while the call waits unanswered: a
        UAS should send a provisional response every minute (RFC 3261 §13.3.1.1) so that
        proxies on the way (Timer C, 3 minutes) do not cancel a long wait in a queue."""
        if call.ringback_sent:
            return
        call.ringback_sent = True
        self._send_ringback(call)

    def early_media(self, call: Call) -> sdplib.SessionDescription | None:
        """Answer the waiting caller's offer with the platform's own media in a 183 Session
        Progress (early media: music on hold and announcements, RFC 3960), repeated like
        ringback; the caller is not answered (not charged) until an agent answers.

        The codec is the first of PCMU/PCMA the caller offered (plus telephone-event for
        the keypad); the caller's offer is narrowed to that codec for everyone rung
        afterwards, so the 200 OK can repeat the 183's answer. ``None`` (nothing sent) when
        the call has no relay, no offer, an encrypted (SRTP) offer, or is answered or gone:
        the caller then gets ringback as before."""
        offer = self._answerable_offer(call)
        if offer is None or call.ringback_sent:
            return None
        answer = self._own_answer(call, offer)
        if answer is not None:
            call.ringback_sent = True
            self._send_ringback(call)
        return answer

    def _answerable_offer(self, call: Call) -> sdplib.SessionDescription | None:
        """The caller's offer, when the platform may answer it with its own media: a relay,
        an offer, nobody (the platform included) answered yet, the caller still there."""
        a = call.a
        offer = a.remote_sdp
        if (
            call.media is None
            or offer is None
            or call.answered
            or call.platform_answered
            or call.ended
            or a.server_tx is None
            or self._caller_gone(call)
        ):
            return None
        return offer

    def _own_answer(
        self, call: Call, offer: sdplib.SessionDescription
    ) -> sdplib.SessionDescription | None:
        """The platform's answer to the caller's offer, at the relay's leg ``a``; the offer
        is narrowed to its codec for everyone rung afterwards (``None``: no codec to
        answer with)."""
        a = call.a
        endpoint = call.media.a
        try:
            answer = sdplib.answer(offer, endpoint.host, endpoint.port)
        except sdplib.SdpError as error:
            log.info("sip.no_platform_media", call=call.id, reason=str(error))
            return None
        a.remote_sdp = sdplib.narrow(offer, answer)
        call.early_answer = self._sdp_for(a, answer)
        return answer

    def answer_by_platform(self, call: Call) -> sdplib.SessionDescription | None:
        """Answer the caller (200 OK) with the platform's own media, for a voice menu: the
        caller hears the platform until a party answers (then the relay connects them, with
        no second 200). ``None`` when it cannot (no relay or offer, SRTP only, gone)."""
        offer = self._answerable_offer(call)
        if offer is None:
            return None
        answer = self._own_answer(call, offer)
        if answer is None:
            return None
        self._stop_ringback(call)
        call.ringback_sent = True  # no 180/183 after the 200
        self._send_ok(call, answer)
        call.platform_answered = True
        return answer

    def _send_ringback(self, call: Call) -> None:
        call.ringback_timer = None
        a = call.a
        tx = a.server_tx
        if call.answered or call.platform_answered or tx is None or call.ended:
            return
        if self._caller_gone(call):
            return
        if call.early_answer is not None:
            ringing = build_response(a.invite, 183, to_tag=a.local_tag)
            ringing.body = call.early_answer
            ringing.headers.add("Content-Type", "application/sdp")
        else:
            ringing = build_response(a.invite, 180, to_tag=a.local_tag)
        ringing.headers.add("Contact", a.dialog.local_contact if a.dialog else "")
        self._respond(tx, ringing)
        if self.ringback_interval > 0:
            call.ringback_timer = self.layer.scheduler.call_later(
                self.ringback_interval, lambda: self._send_ringback(call)
            )

    @staticmethod
    def _stop_ringback(call: Call) -> None:
        if call.ringback_timer is not None:
            call.ringback_timer.cancel()
            call.ringback_timer = None

    @staticmethod
    def _end_waiting(call: Call) -> None:
        """Stop what the platform plays to the caller (the relay's legs talk again)."""
        waiting = call.waiting
        if waiting is not None:
            call.waiting = None
            try:
                waiting.stop()
            except Exception:  # the media is best effort; the call goes on
                log.exception("sip.waiting_stop_failed", call=call.id)

    def answer_waiting(self, call: Call) -> bool:
        """Answer a caller who hears the platform's early media, keeping it playing (a
        caller who asked for a callback hears the confirmation, then is hung up)."""
        if call.ended or call.answered or call.early_answer is None:
            return False
        self._answer_caller(call, None, keep_waiting=True)
        return True

    async def ring_agent(self, call: Call, agent_id: str, extensions: Iterable[str]) -> int:
        """INVITE every registered phone of the agent's extensions; how many were rung."""
        rung = 0
        for number in extensions:
            if call.ended:
                break
            legs = await self._dial(
                call,
                Target(extension=number),
                call.a.remote_sdp,
                side="b",
                step=-1,
                agent_id=agent_id,
            )
            rung += len(legs)
        return rung

    async def holds_flow(self, extensions: Iterable[str]) -> bool:
        """Whether one of these extensions' phones registered over a TCP/TLS connection that
        is open on this node (its flow): this node reaches that phone for sure, even behind
        NAT, where another node would have to open a connection of its own."""
        connected = getattr(self.host, "connected", None)
        if connected is None:
            return False
        for number in extensions:
            for binding in await self.host.locate(number, None):
                source = parse_peer(binding.source) if binding.source else None
                if source is not None and source.reliable and connected(source):
                    return True
        return False

    def stop_ringing_agent(self, call: Call, agent_id: str) -> None:
        for leg in [leg for leg in call.ringing if leg.agent_id == agent_id]:
            self._cancel_leg(leg)

    def _agent_leg_answered(self, leg: Leg, response: SipResponse, cseq: int) -> None:
        """An agent's phone answered: ACK it, keep the caller waiting, and ask the ACD."""
        call = leg.call
        self._ack(leg, cseq)
        agent_id = leg.agent_id
        assert agent_id is not None
        if leg not in call.ringing or leg.cancel_wanted or self._caller_gone(call):
            self._bye(leg)
            return
        call.ringing.remove(leg)
        leg.state = "up"
        if response.body:
            try:
                leg.remote_sdp = sdplib.parse(response.body)
            except sdplib.SdpError as error:
                log.info("sip.answer_sdp_refused", leg=leg.label, reason=str(error))
        self.stop_ringing_agent(call, agent_id)  # the agent's other phones
        if leg.consult:
            self._consult_leg_answered(leg, agent_id)
            return
        call.pending_agents[agent_id] = leg
        if self.agent_listener is None:
            self.drop_agent(call, agent_id)
        else:
            self.agent_listener.agent_answered(call, agent_id)

    def connect_agent(self, call: Call, agent_id: str) -> bool:
        """Bridge the caller with the agent whose phone answered (after the ACD accepted).

        The first time, the caller gets its 200 OK; after a transfer the relay simply
        points the caller's media at the new agent (no re-INVITE needed)."""
        leg = call.pending_agents.pop(agent_id, None)
        if leg is None or leg.state != "up" or call.ended:
            return False
        old = call.legs.get("b")
        if old is not None and old is not leg and old.state == "up":
            self._bye(old)
        call.legs["b"] = leg
        if leg.remote_sdp is not None:
            self._set_remote(call, "b", leg.remote_sdp)
        if not call.answered:
            self._answer_caller(call, leg.remote_sdp)
            self._event(call, "call.answered", {"leg": leg.label, "agent_id": agent_id})
        else:
            self._end_waiting(call)
            if call.media is None:
                log.warning("sip.reconnect_without_relay", call=call.id)
            self._event(call, "call.connected", {"leg": leg.label, "agent_id": agent_id})
        self._person_answered(call)
        return True

    def drop_agent(self, call: Call, agent_id: str) -> None:
        """Hang up the agent's leg (answered or connected); the caller stays."""
        leg = call.pending_agents.pop(agent_id, None)
        b = call.legs.get("b")
        if leg is None and b is not None and b.agent_id == agent_id:
            leg = b
            del call.legs["b"]
        if leg is not None:
            self._bye(leg)
        self.stop_ringing_agent(call, agent_id)

    def end_call(self, call: Call, reason: str) -> None:
        """Release the caller and every agent leg (480 when the caller was never answered)."""
        if call.ended:
            return
        for agent_id in list(call.pending_agents):
            self.drop_agent(call, agent_id)
        if call.answered or call.platform_answered:
            self._hangup_all(call, reason)
        else:
            for leg in list(call.ringing):
                self._cancel_leg(leg)
            self._reject(call, 480, "Temporarily Unavailable", reason)

    async def divert(self, call: Call, target: str, reason: str) -> None:
        """A queue sent its waiting (unanswered) caller away to ``target`` (its
        ``divert_to``): the agents' phones stop and the call is routed on as the dial plan
        says (``router.divert``: an extension, a ring group, a number, another queue); the
        caller keeps hearing ringback meanwhile. When the target cannot be reached, or the
        router cannot divert, the caller gets the dial plan's failure (480 by default)."""
        if call.ended or call.answered:
            return
        for agent_id in list(call.pending_agents):
            self.drop_agent(call, agent_id)
        for leg in [leg for leg in call.ringing if leg.agent_id is not None]:
            self._cancel_leg(leg)
        call.queue = False
        router = getattr(self.router, "divert", None)
        request = call.request
        route: Route
        if router is None or request is None or call.tenant_id is None:
            route = Reject(480, "Temporarily Unavailable")
        else:
            try:
                route = await router(call.tenant_id, target, request)
            except Exception as error:  # the PBX's store failed: end the call cleanly
                log.error("sip.divert_failed", call=call.id, target=target, error=str(error))
                route = Reject(480, "Temporarily Unavailable")
        if self._caller_gone(call) or call.answered:
            return
        if isinstance(route, Reject):
            log.info(
                "sip.divert_refused",
                call=call.id,
                target=target,
                status=route.status,
                reason=route.reason,
            )
            self._reject(call, route.status, route.reason, reason)
            return
        previous = call.description
        call.description = f"{previous} → {target}" if previous else target
        self._event(call, "call.diverted", {"to": target, "reason": reason})
        await self._proceed(call, route)

    # ---- consultation and warm transfer (ACD) -----------------------------------------
    #
    # The relay anchors every call's media, so the phones keep their SDP throughout: the
    # consulted agent's legs get the relay's leg ``c``, and what the relay forwards is
    # switched (caller on hold, owner <-> consulted agent, caller <-> owner or consulted
    # agent) instead of re-INVITEing anyone.

    async def consult_agent(self, call: Call, agent_id: str, extensions: Iterable[str]) -> int:
        """Put the caller on hold and INVITE every registered phone of the consulted
        agent's extensions, offering the codec already in use with the owner; how many
        phones were rung (0: none, or no relay to switch the media, or no owner)."""
        owner = call.legs.get("b")
        media = call.media
        if (
            call.ended
            or media is None
            or not hasattr(media, "add_leg")
            or owner is None
            or owner.state != "up"
            or owner.remote_sdp is None
        ):
            log.info("sip.consult_impossible", call=call.id, agent_id=agent_id)
            return 0
        try:
            # The one codec in use with the owner (the relay does not transcode), plus
            # telephone-event; host and port are replaced by the relay's leg c below.
            offer = sdplib.answer(owner.remote_sdp, media.b.host, media.b.port)
            await media.add_leg()
        except Exception as error:  # no codec left, or no free port pair
            log.warning("sip.consult_failed", call=call.id, agent_id=agent_id, error=str(error))
            return 0
        if call.ended:
            return 0
        call.consult_agent = agent_id
        media.connect(None)  # the caller on hold, the owner hears nothing while it rings
        self._hold_music(call, owner.remote_sdp)
        rung = 0
        for number in extensions:
            if call.ended or call.consult_agent != agent_id:
                break
            legs = await self._dial(
                call,
                Target(extension=number),
                offer,
                side="b",
                step=-1,
                agent_id=agent_id,
                consult=True,
            )
            rung += len(legs)
        if rung:
            self._event(call, "call.consulting", {"agent_id": agent_id})
        elif call.consult_agent == agent_id:  # no phone registered: caller and owner again
            call.consult_agent = None
            self.consult_reconnect(call)
        return rung

    def _consult_leg_answered(self, leg: Leg, agent_id: str) -> None:
        call = leg.call
        if call.consult_agent != agent_id or call.consult_leg is not None:
            self._bye(leg)
            return
        call.consult_leg = leg
        if leg.remote_sdp is not None and call.media is not None:
            target = sdplib.media_target(leg.remote_sdp)
            if target is not None:
                call.media.set_remote("c", target[0], target[1])
        if self.agent_listener is None:
            self.drop_consult(call, agent_id)
        else:
            self.agent_listener.consult_answered(call, agent_id)

    def consult_connect(self, call: Call, agent_id: str) -> bool:
        """The owner and the consulted agent talk; the caller stays on hold."""
        leg = call.consult_leg
        owner = call.legs.get("b")
        if call.ended or leg is None or leg.agent_id != agent_id or leg.state != "up":
            return False
        if owner is not None and owner.state == "up":
            call.media.connect("b", "c")
        self._event(call, "call.consult_connected", {"leg": leg.label, "agent_id": agent_id})
        return True

    def _hold_music(self, call: Call, description: sdplib.SessionDescription) -> None:
        """Music on hold for the caller while an agent consults (``description``: the SDP
        of the caller's stream, for its codec); it ends when the caller talks again."""
        room = self.waiting_room
        if room is None or call.waiting is not None:
            return
        session = room.attach(call, description)
        if session is not None:
            session.hold()

    def consult_reconnect(self, call: Call) -> None:
        """The consultation is over: caller and owner talk again."""
        owner = call.legs.get("b")
        if call.ended or call.media is None or owner is None or owner.state != "up":
            return
        self._end_waiting(call)
        if getattr(call.media, "c", None) is not None:
            call.media.connect("a", "b")

    def drop_consult(self, call: Call, agent_id: str) -> None:
        """Stop ringing the consulted agent's phones, or hang up its answered leg."""
        if call.consult_agent == agent_id:
            call.consult_agent = None
        for ringing in [leg for leg in call.ringing if leg.consult and leg.agent_id == agent_id]:
            self._cancel_leg(ringing)
        leg = call.consult_leg
        if leg is not None and leg.agent_id == agent_id:
            call.consult_leg = None
            call.transfer_legs.append(leg)  # forgotten with the call
            self._bye(leg)

    def consult_transfer(self, call: Call, agent_id: str) -> bool:
        """Warm transfer: the caller talks to the consulted agent, whose leg becomes the
        call's leg ``b`` (the relay's leg ``c`` is renamed ``b``); the old owner's leg gets
        BYE if it is still up."""
        leg = call.consult_leg
        if call.ended or leg is None or leg.agent_id != agent_id or leg.state != "up":
            return False
        media = call.media
        self._end_waiting(call)
        media.connect("a", "c")
        media.swap("b", "c")
        call.consult_leg = None
        call.consult_agent = None
        leg.consult = False
        old = call.legs.get("b")
        call.legs["b"] = leg
        if old is not None:
            call.transfer_legs.append(old)  # forgotten with the call
            if old.state != "ended":
                self._bye(old)
        self._event(call, "call.transferred", {"to": leg.label, "agent_id": agent_id})
        return True

    def _answer_reinvite_here(self, leg: Leg, tx: ServerTransaction) -> None:
        """A re-INVITE from a consulted agent's phone (hold, a new address): answered
        here, from the relay's leg ``c``; nobody else's media description changes."""
        call = leg.call
        request = tx.request
        if leg.reinvite_out or leg.unacked is not None or call.media is None:
            self._respond(tx, build_response(request, 491))
            return
        offer = leg.remote_sdp
        if request.body:
            try:
                offer = sdplib.filter_codecs(sdplib.parse(request.body))
                endpoint = call.media.c
                leg.sdp_version += 1
                answer = sdplib.answer(
                    offer,
                    endpoint.host,
                    endpoint.port,
                    session_id=leg.sdp_session,
                    version=leg.sdp_version,
                )
            except sdplib.SdpError as error:
                self._respond(tx, _reason_response(request, 488, str(error)))
                return
            leg.remote_sdp = offer
            target = sdplib.media_target(offer)
            if target is not None:
                call.media.set_remote("c", target[0], target[1])
            body = answer.to_bytes()
        elif offer is not None:
            body = self._sdp_for(leg, offer)  # an offer of ours; the ACK's answer is ignored
        else:
            body = b""
        ok = build_response(request, 200, to_tag=leg.local_tag)
        ok.headers.add("Contact", leg.dialog.local_contact if leg.dialog else "")
        if body:
            ok.body = body
            ok.headers.add("Content-Type", "application/sdp")
        self._send_2xx(leg, tx, ok)

    # ---- calls the platform places (click-to-dial, callbacks) -------------------------
    #
    # Third-party call control with the B2BUA as media anchor: the relay's leg ``a`` is
    # offered to the agent's phones (our own G.711 offer), the first 2xx wins and the other
    # phones get CANCEL; then the target is dialled as the agent's extension would dial it
    # (the dial plan decides: an extension's hunt, or a dial rule's trunk with its caller
    # ID), offering the codec the agent's phone chose, anchored at the relay's leg ``b``.
    # The relay joins the two from the start, so early media from the target (a carrier's
    # ringback or announcement) reaches the agent.

    async def originate(
        self,
        tenant_id: str,
        agent_extensions: Sequence[str],
        target: str,
        *,
        agent_id: str | None = None,
        ring_seconds: float = 30.0,
        answer_timeout: float = 60.0,
        source: str = "platform",
        confirm: Callable[[Call], Awaitable[bool]] | None = None,
        on_event: Callable[[Call, str], None] | None = None,
    ) -> Call:
        """Place a call from the agent's phones to ``target`` (an extension of the tenant
        or an external number); returns once the agent's phones were rung.

        Raises :class:`OriginateRefused` before anything rings: ``dial_plan`` when the dial
        plan refuses the target as dialled from the agent's first extension (no dial rule:
        403), ``no_phone`` when none of the extensions has a registered phone, ``no_media``
        without a media relay. What happens next is told by the call's events
        (``call.started`` … ``call.ended``, each with ``originated: true``) and
        ``on_event``."""
        numbers = [number for number in agent_extensions if number]
        if not numbers:
            raise OriginateRefused("no_phone", 480, "The agent has no extension")
        extension = numbers[0]
        request = CallRequest(
            dialled=target,
            caller=extension,
            caller_name=None,
            source=source,
            extension=extension,
            tenant_id=tenant_id,
            call_id=f"originate-{secrets.token_hex(6)}",
        )
        route = await self.router.route(request)
        if isinstance(route, Reject):
            log.info(
                "sip.originate_refused", target=target, status=route.status, reason=route.reason
            )
            raise OriginateRefused("dial_plan", route.status, route.reason)
        if isinstance(route, ToQueue | ToIvr | ToVoicemail):
            raise OriginateRefused(
                "dial_plan",
                480,
                "Temporarily Unavailable (a queue or voice menu cannot be dialled this way)",
            )
        if self.relay is None:
            raise OriginateRefused("no_media", 503, "Service Unavailable - No Media Relay")
        call = Call(
            manager=self,
            id=secrets.token_hex(10),
            caller=extension,
            dialled=target,
            source=source,
            tenant_id=route.tenant_id or tenant_id,
            started=self.clock.monotonic(),
            description=route.description,
        )
        placed = Placement(
            extension=extension,
            target=target,
            hunt=route,
            agent_id=agent_id,
            ring_seconds=ring_seconds,
            answer_timeout=answer_timeout,
            confirm=confirm,
            on_event=on_event,
        )
        placed.agent_done = asyncio.get_running_loop().create_future()
        call.placed = placed
        # Towards the agent's phones the call shows the number being dialled.
        call.request = CallRequest(
            dialled=extension,
            caller=target,
            caller_name=None,
            source=source,
            tenant_id=call.tenant_id,
            call_id=request.call_id,
        )
        try:
            media = await self.relay.open(call.id)
        except Exception as error:
            log.error("sip.relay_open_failed", call=call.id, error=str(error))
            raise OriginateRefused(
                "no_media", 503, "Service Unavailable - No Media Ports"
            ) from error
        call.media = media
        self.calls[call.id] = call
        offer = placed_offer(media.a.host, media.a.port)
        rung = 0
        try:
            for number in numbers:
                legs = await self._dial(
                    call, Target(extension=number), offer, side="a", step=-2, own_phone=True
                )
                rung += len(legs)
        except BaseException:
            await self._abandon_placed(call)
            raise
        if rung == 0:
            await self._abandon_placed(call)
            raise OriginateRefused("no_phone", 480, "The agent has no registered phone")
        self.stats["calls"] += 1
        log.info("sip.originate", call=call.id, agent_id=agent_id, target=target, phones=rung)
        self._event(
            call,
            "call.started",
            {
                "route": route.description or f"to {target}",
                "agent_id": agent_id,
                "extension": extension,
            },
        )
        self._spawn(self._run_placed(call))
        return call

    async def _abandon_placed(self, call: Call) -> None:
        """Undo a placed call that rang nothing (no events: it never started)."""
        call.ended = True
        self.calls.pop(call.id, None)
        for leg in list(call.ringing):
            self._cancel_leg(leg)
            self._forget_leg(leg)
        media, call.media = call.media, None
        if media is not None:
            await media.close()

    async def _run_placed(self, call: Call) -> None:
        placed = call.placed
        assert placed is not None and placed.agent_done is not None
        try:
            async with asyncio.timeout(placed.ring_seconds):
                outcome = await asyncio.shield(placed.agent_done)
        except TimeoutError:
            outcome = "timeout"
        if call.ended:
            return
        if outcome != "answered":
            for leg in list(call.ringing):
                self._cancel_leg(leg)
            self.stats["failed"] += 1
            if outcome == "timeout":
                self._finish(call, "agent_no_answer", status=408)
            else:
                self._finish(call, "agent_unavailable", status=call.final_status or 480)
            return
        if placed.confirm is not None:
            try:
                allowed = await placed.confirm(call)
            except Exception:
                log.exception("sip.originate_confirm_failed", call=call.id)
                allowed = False
            if call.ended:
                return
            if not allowed:
                self._reject(call, 403, "Forbidden (refused)", "refused")
                return
        placed.phase = "target"
        agent = call.a
        call.request = CallRequest(
            dialled=placed.target,
            caller=placed.extension,
            caller_name=None,
            source=call.source,
            extension=placed.extension,
            tenant_id=call.tenant_id,
            call_id=agent.invite.call_id,
        )
        call.final_status = None
        try:
            async with asyncio.timeout(placed.answer_timeout):
                await self._hunt(call, placed.hunt)
        except TimeoutError:
            if not call.ended and not call.answered:
                for leg in list(call.ringing):
                    self._cancel_leg(leg)
                self._reject(call, 408, "Request Timeout", "no_answer")
        except Exception:
            log.exception("sip.originate_failed", call=call.id)
            if not call.ended:
                self._hangup_all(call, "failed")

    def _placed_response(self, leg: Leg, response: SipResponse) -> None:
        """A response to an INVITE of a placed call: any from the agent's phones (leg
        ``a``), provisional and 2xx from the target's (failures take the hunt's path)."""
        call = leg.call
        placed = call.placed
        assert placed is not None
        status = response.status
        if status < 200:
            leg.got_provisional = True
            if status > 100 and response.to.tag and leg.dialog is None:
                leg.dialog = Dialog.as_uac(leg.invite, response)
            if leg.cancel_wanted:
                self._send_cancel(leg)
                return
            if status == 100 or leg not in call.ringing:
                return
            if leg.state == "calling":
                leg.state = "early"
            if leg.side == "b":
                if status == 180 and not call.rang:
                    call.rang = True
                    self._event(call, "call.ringing", {"leg": leg.label})
                if response.body and call.early_leg in (None, leg):
                    try:
                        early = sdplib.filter_codecs(sdplib.parse(response.body))
                    except sdplib.SdpError as error:
                        log.info("sip.early_sdp_refused", leg=leg.label, reason=str(error))
                    else:
                        call.early_leg = leg
                        self._set_remote(call, "b", early)  # the agent hears it
            return
        if status >= 300:  # one of the agent's phones refused
            leg.state = "cancelled" if leg.cancel_wanted else "failed"
            self._forget_leg(leg)
            if leg in call.ringing:
                call.ringing.remove(leg)
                if not leg.cancel_wanted:
                    call.final_status = status
                    log.info("sip.leg_failed", call=call.id, leg=leg.label, status=status)
            done = placed.agent_done
            if (
                not any(other.side == "a" for other in call.ringing)
                and done is not None
                and not done.done()
            ):
                done.set_result("failed")
            return
        cseq = response.cseq.number
        if self._confirm_2xx(leg, response):
            return
        self._ack(leg, cseq)
        wanted = "agent" if leg.side == "a" else "target"
        if (
            leg not in call.ringing
            or leg.cancel_wanted
            or call.ended
            or placed.phase != wanted
            or leg.side in call.legs
        ):
            self._bye(leg)  # too late: another phone answered, or the call is over
            return
        leg.state = "up"
        call.ringing.remove(leg)
        call.legs[leg.side] = leg
        answer: sdplib.SessionDescription | None = None
        if response.body:
            try:
                answer = sdplib.filter_codecs(sdplib.parse(response.body))
            except sdplib.SdpError as error:
                log.info("sip.answer_sdp_refused", leg=leg.label, reason=str(error))
        for other in [other for other in call.ringing if other.side == leg.side]:
            self._cancel_leg(other)
        if leg.side == "a":
            media = call.media
            if answer is None and media is not None:
                answer = placed_offer(media.a.host, media.a.port)  # no SDP: offer G.711
            elif answer is not None:
                self._set_remote(call, "a", answer)
            leg.remote_sdp = answer
            self._event(
                call, "call.agent_answered", {"leg": leg.label, "agent_id": placed.agent_id}
            )
            if placed.agent_done is not None and not placed.agent_done.done():
                placed.agent_done.set_result("answered")
            return
        if answer is not None:
            leg.remote_sdp = answer
            self._set_remote(call, "b", answer)
        placed.phase = "connected"
        call.answered_at = self.clock.monotonic()
        self.stats["answered"] += 1
        self._event(call, "call.answered", {"leg": leg.label, "agent_id": placed.agent_id})
        self._person_answered(call)
        if call.step_done is not None and not call.step_done.done():
            call.step_done.set_result("answered")
        if placed.on_event is not None:
            try:
                placed.on_event(call, "connected")
            except Exception:
                log.exception("sip.originate_listener_failed", call=call.id)

    def _placed_finished(self, call: Call, reason: str, status: int | None) -> None:
        placed = call.placed
        assert placed is not None
        placed.outcome = reason
        placed.status = status
        for future in (placed.agent_done, call.step_done):
            if future is not None and not future.done():
                future.set_result("cancelled")
        if placed.on_event is not None:
            try:
                placed.on_event(call, "ended")
            except Exception:
                log.exception("sip.originate_listener_failed", call=call.id)

    # ---- requests we send on legs ----------------------------------------------------

    def _ack(self, leg: Leg, cseq: int, body: bytes = b"") -> None:
        assert leg.dialog is not None
        ack = leg.dialog.request("ACK", leg.via, cseq=cseq, body=body)
        leg.acks[cseq] = ack
        self.layer.sender.send(ack, leg.peer)

    def _bye(self, leg: Leg, *, reason: str | None = None) -> None:
        """BYE on ``leg``; ``reason``: a Reason header value (RFC 3326)."""
        if leg.dialog is None or leg.state == "ended":
            return
        leg.state = "ended"
        self._stop_retransmit(leg)
        headers = None
        if reason is not None:
            headers = Headers()
            headers.add("Reason", reason)
        bye = leg.dialog.request("BYE", leg.via, headers=headers)
        leg.dialog.state = DialogState.TERMINATED
        self.layer.send_request(bye, leg.peer, lambda _response: None)

    def _cancel_leg(self, leg: Leg) -> None:
        call = leg.call
        if leg in call.ringing:
            call.ringing.remove(leg)
        if leg.state not in ("calling", "early") or leg.cancel_wanted:
            return
        leg.cancel_wanted = True
        if leg.got_provisional:
            self._send_cancel(leg)

    def _send_cancel(self, leg: Leg) -> None:
        if leg.cancel_sent:
            return
        leg.cancel_sent = True
        self.layer.send_request(build_cancel(leg.invite), leg.peer, lambda _response: None)

    def _send_2xx(self, leg: Leg, tx: ServerTransaction, response: SipResponse) -> None:
        """Send a 2xx as UAS and repeat it until the ACK (§13.3.1.4): T1 doubling to T2,
        giving up after 64*T1 (then the dialog ends with BYE)."""
        self._respond(tx, response)
        leg.unacked = response
        leg.unacked_peer = tx.reply_to
        leg.unacked_cseq = tx.request.cseq.number
        leg.retransmit_interval = self.layer.timers.t1
        leg.retransmit_elapsed = 0.0
        self._arm_retransmit(leg)

    def _arm_retransmit(self, leg: Leg) -> None:
        delay = self.layer.timers.timeout if leg.peer.reliable else leg.retransmit_interval
        leg.retransmit = self.layer.scheduler.call_later(delay, lambda: self._retransmit(leg))

    def _retransmit(self, leg: Leg) -> None:
        leg.retransmit = None
        if leg.unacked is None or leg.unacked_peer is None:
            return
        timers = self.layer.timers
        leg.retransmit_elapsed += timers.timeout if leg.peer.reliable else leg.retransmit_interval
        if leg.retransmit_elapsed >= timers.timeout:
            log.warning("sip.no_ack", call=leg.call.id, leg=leg.label)
            leg.unacked = None
            self._hangup_all(leg.call, "no_ack")
            return
        self.layer.sender.send(leg.unacked, leg.unacked_peer)
        leg.retransmit_interval = min(2 * leg.retransmit_interval, timers.t2)
        self._arm_retransmit(leg)

    def _stop_retransmit(self, leg: Leg) -> None:
        leg.unacked = None
        if leg.retransmit is not None:
            leg.retransmit.cancel()
            leg.retransmit = None

    # ---- requests from the parties ---------------------------------------------------

    def cancelled(self, invite_tx: ServerTransaction) -> None:
        """The caller sent CANCEL for its INVITE (the server answered 200 and 487)."""
        call = self._by_invite.pop(invite_tx.key, None)
        if call is None or call.answered or call.ended:
            return
        call.cancelled = True
        for leg in list(call.ringing):
            self._cancel_leg(leg)
        if call.step_done is not None and not call.step_done.done():
            call.step_done.set_result("cancelled")
        self._finish(call, "cancelled", status=487)

    def ack(self, ack: SipRequest) -> bool:
        """An ACK for a 2xx (a new branch, so no transaction): True when it was ours."""
        tag = ack.to.tag
        leg = self._legs.get((ack.call_id, tag or ""))
        if leg is None:
            return False
        if ack.cseq.number != leg.unacked_cseq and leg.unacked is not None:
            return True
        self._stop_retransmit(leg)
        call = leg.call
        other = call.other(leg)
        if other is not None and other.ack_pending and other.dialog is not None:
            other.ack_pending = False
            body = b""
            if ack.body:
                try:
                    answer = sdplib.parse(ack.body)
                except sdplib.SdpError as error:
                    log.info("sip.ack_sdp_refused", leg=leg.label, reason=str(error))
                else:
                    leg.remote_sdp = answer
                    self._set_remote(call, leg.side, answer)
                    body = self._sdp_for(other, answer)
            self._ack(other, other.unacked_cseq, body)
        return True

    def knows(self, request: SipRequest) -> bool:
        """Whether a request belongs to one of our dialogs (by Call-ID and To tag)."""
        tag = request.to.tag
        return tag is not None and (request.call_id, tag) in self._legs

    def in_dialog(self, tx: ServerTransaction) -> None:
        """A request with a To tag: find its dialog, or 481."""
        request = tx.request
        leg = self._legs.get((request.call_id, request.to.tag or ""))
        if leg is not None and leg.state == "ended" and request.method == "BYE":
            self._respond(tx, build_response(request, 200))  # crossed with ours
            return
        if leg is None or leg.dialog is None or leg.state == "ended":
            self._respond(tx, build_response(request, 481))
            return
        if not leg.dialog.accept(request):
            self._respond(tx, build_response(request, 500, "Server Internal Error - CSeq"))
            return
        method = request.method
        try:
            if method == "BYE":
                self._on_bye(leg, tx)
            elif method == "INVITE":
                self._on_reinvite(leg, tx)
            elif method == "REFER":
                self._on_refer(leg, tx)
            elif method in ("OPTIONS", "INFO", "NOTIFY"):
                self._respond(tx, build_response(request, 200))
            else:
                self._respond(tx, build_response(request, 405))
        except Exception:
            log.exception("sip.in_dialog_failed", method=method, call=leg.call.id)
            self._respond(tx, build_response(request, 500))

    def _on_bye(self, leg: Leg, tx: ServerTransaction) -> None:
        call = leg.call
        self._respond(tx, build_response(tx.request, 200))
        leg.state = "ended"
        self._stop_retransmit(leg)
        self._forget_leg(leg)
        if call.ended:
            return
        if leg.consult:
            if call.consult_leg is leg:
                call.consult_leg = None
                self._event(call, "call.consult_ended", {"leg": leg.label})
                if self.agent_listener is not None and leg.agent_id is not None:
                    self.agent_listener.consult_ended(call, leg.agent_id)
            return
        owner = call.legs.get("b")
        if (
            leg is owner
            and call.consult_agent is not None
            and leg.agent_id is not None
            and self.agent_listener is not None
        ):
            # The owner hung up during a consultation: the caller stays (the ACD hands
            # the call to the consulted agent).
            del call.legs["b"]
            self.agent_listener.owner_left(call, leg.agent_id)
            return
        if leg.agent_id is not None and call.legs.get("b") is not leg:
            # An agent's phone hung up before being connected (or after being dropped).
            if call.pending_agents.get(leg.agent_id) is leg:
                del call.pending_agents[leg.agent_id]
            return
        other = call.other(leg)
        if call.answered and other is None:
            # The agent's leg was dropped (a transfer in progress): the caller leaves.
            self._finish(call, "caller_hangup" if leg.side == "a" else "callee_hangup")
            return
        if not call.answered or other is None:
            # A BYE in an early dialog: the caller gave up.
            for ringing in list(call.ringing):
                self._cancel_leg(ringing)
            answered_here = call.platform_answered  # (a voice menu: the caller had a 200)
            if call.a.server_tx is not None and leg.side == "a" and not answered_here:
                self._respond(call.a.server_tx, build_response(call.a.invite, 487))
            call.cancelled = True
            if call.step_done is not None and not call.step_done.done():
                call.step_done.set_result("cancelled")
            if call.placed is not None:
                reason = "agent_hangup"
            else:
                reason = "caller_hangup" if answered_here else "cancelled"
            self._finish(call, reason)
            return
        if leg.side == "b" and self._stays_for_survey(call, leg):
            del call.legs["b"]
            self.agent_listener.agent_left_for_survey(  # type: ignore[union-attr]
                call, leg.agent_id, _caller_stream(call, leg.remote_sdp)
            )
            return
        self._bye(other)
        if call.placed is not None and leg.side == "a":
            self._finish(call, "agent_hangup")
            return
        self._finish(call, "caller_hangup" if leg.side == "a" else "callee_hangup")

    # ---- the post-call survey ---------------------------------------------------------------

    def _stays_for_survey(self, call: Call, leg: Leg) -> bool:
        """Whether the caller stays on the line for their queue's post-call survey, now that
        the agent's leg ``leg`` hung up (the platform can play to them: a relay, a waiting
        room, the codec known)."""
        listener = self.agent_listener
        wanted = getattr(listener, "survey_after", None)
        return (
            call.queue
            and leg.agent_id is not None
            and wanted is not None
            and self.waiting_room is not None
            and call.media is not None
            and leg.remote_sdp is not None
            and call.legs.get("a") is not None
            and call.a.state == "up"
            and bool(wanted(call, leg.agent_id))
        )

    async def survey(
        self,
        call: Call,
        description: sdplib.SessionDescription,
        menu: IvrMenu,
        thanks: str,
    ) -> str | None:
        """Put ``menu`` (the survey question) to the caller whose agent hung up, thank them
        when they answer and hang up (``call.ended`` reason ``survey``). ``description``: the
        SDP of the caller's stream (the codec the agent and the caller used). The key the
        caller pressed, or ``None`` (no answer, hung up, or the platform could not play)."""
        key: str | None = None
        room = self.waiting_room
        session = room.attach(call, description) if room is not None and not call.ended else None
        if session is not None:
            self._event(call, "call.survey", {"menu": menu.name})
            key = await session.menu(menu)
            if key is not None and not call.ended:
                self._event(call, "call.survey_answered", {"key": key})
                await session.say(thanks)
        if not call.ended:
            self._bye(call.a)
            self._finish(call, "survey" if session is not None else "callee_hangup")
        return key

    def _on_reinvite(self, leg: Leg, tx: ServerTransaction) -> None:
        call = leg.call
        if leg.consult:
            self._answer_reinvite_here(leg, tx)
            return
        other = call.other(leg)
        request = tx.request
        if other is None or other.dialog is None or not call.answered:
            self._respond(tx, build_response(request, 491))
            return
        if leg.reinvite_out or other.reinvite_out or leg.unacked is not None:
            self._respond(tx, build_response(request, 491))
            return
        offer: sdplib.SessionDescription | None = None
        if request.body:
            try:
                offer = sdplib.filter_codecs(sdplib.parse(request.body))
            except sdplib.SdpError as error:
                self._respond(tx, _reason_response(request, 488, str(error)))
                return
            leg.remote_sdp = offer
            self._set_remote(call, leg.side, offer)
            log.info("sip.reinvite", call=call.id, leg=leg.label, hold=sdplib.is_hold(offer))
        body = self._sdp_for(other, offer) if offer is not None else b""
        reinvite = other.dialog.request("INVITE", other.via, body=body)
        other.reinvite_out = True

        def on_response(response: SipResponse) -> None:
            try:
                self._reinvite_response(leg, other, tx, reinvite, response)
            except Exception:
                log.exception("sip.reinvite_failed", call=call.id)

        self.layer.send_request(reinvite, other.peer, on_response)

    def _reinvite_response(
        self,
        leg: Leg,
        other: Leg,
        tx: ServerTransaction,
        reinvite: SipRequest,
        response: SipResponse,
    ) -> None:
        call = leg.call
        status = response.status
        if status < 200:
            return
        cseq = reinvite.cseq.number
        if status >= 300:
            other.reinvite_out = False
            self._respond(tx, build_response(tx.request, status, response.reason))
            return
        assert other.dialog is not None
        if cseq in other.acks:
            self.layer.sender.send(other.acks[cseq], other.peer)
            return
        other.reinvite_out = False
        other.dialog.refresh_target(response)
        self._ack(other, cseq)
        ok = build_response(tx.request, 200, to_tag=leg.local_tag)
        ok.headers.add("Contact", leg.dialog.local_contact if leg.dialog else "")
        if response.body:
            try:
                answer = sdplib.parse(response.body)
            except sdplib.SdpError as error:
                log.info("sip.reinvite_answer_refused", reason=str(error))
            else:
                other.remote_sdp = answer
                self._set_remote(call, other.side, answer)
                ok.body = self._sdp_for(leg, answer)
                ok.headers.add("Content-Type", "application/sdp")
        self._send_2xx(leg, tx, ok)

    # ---- blind transfer (RFC 3515) ---------------------------------------------------

    def _on_refer(self, leg: Leg, tx: ServerTransaction) -> None:
        call = leg.call
        request = tx.request
        refer_to = request.headers.get("Refer-To")
        other = call.other(leg)
        if refer_to is None:
            self._respond(tx, build_response(request, 400, "Bad Request - Missing Refer-To"))
            return
        try:
            target = Address.parse(refer_to, "Refer-To").uri
        except SipParseError as error:
            self._respond(tx, build_response(request, 400, f"Bad Request - {error.reason}"))
            return
        if not isinstance(target, SipUri) or not target.user or other is None:
            self._respond(tx, build_response(request, 400, "Bad Request - Refer-To Needs a User"))
            return
        if not call.answered or leg.refer_to is not None:  # (a transfer already going on)
            self._respond(tx, build_response(request, 491))
            return
        self._respond(tx, build_response(request, 202, to_tag=leg.local_tag))
        leg.refer_notify = True
        self._notify(leg, "SIP/2.0 100 Trying", active=True)
        self._spawn(self._transfer(leg, other, target.user))

    def transfer_to_number(self, call: Call, agent_id: str, number: str) -> bool:
        """The agent desk puts the party the agent talks to through to ``number`` (a blind
        transfer, as by the agent phone's own REFER, without the NOTIFYs): the number is
        dialled with the agent's extension's rights and, once it answers, the agent's leg
        is released (then ``call.transferred``, and the ACD hears a transfer out). Until
        then the agent stays connected; if the number fails or does not answer,
        ``call.transfer_failed``. False when the agent is not connected on this call or a
        transfer is already going on."""
        if call.ended or not call.answered:
            return False
        agent_leg = next(
            (
                leg
                for leg in call.legs.values()
                if leg.state == "up"
                and (
                    leg.agent_id == agent_id
                    or (
                        call.placed is not None
                        and leg.side == "a"
                        and call.placed.agent_id == agent_id
                    )
                )
            ),
            None,
        )
        other = call.other(agent_leg) if agent_leg is not None else None
        if agent_leg is None or other is None or agent_leg.refer_to is not None:
            return False
        if any(leg.state in ("calling", "early") for leg in call.transfer_legs):
            return False
        agent_leg.refer_to = number
        self._spawn(self._transfer(agent_leg, other, number))
        return True

    async def _transfer(self, transferor: Leg, stays: Leg, number: str) -> None:
        call = transferor.call
        base = call.request
        assert base is not None
        transferor.refer_to = number
        # Dialled with the transferring phone's rights (its extension), not the caller's:
        # a caller from a carrier trunk may only reach DIDs, the agent may reach colleagues.
        own = transferor.extension
        request = CallRequest(
            dialled=number,
            caller=base.caller if stays.side == "a" else call.dialled,
            caller_name=base.caller_name if stays.side == "a" else None,
            source=call.source,
            extension=own or base.extension,
            tenant_id=call.tenant_id,
            trunk_id=None if own else base.trunk_id,
            call_id=base.call_id,
        )
        route = await self.router.route(request)
        if isinstance(route, ToQueue) and await self._transfer_to_queue(call, transferor, route):
            return
        if not isinstance(route, Hunt) or not route.steps:
            status = route.status if isinstance(route, Reject) else 480
            self._transfer_over(call, transferor, status, "Transfer Failed")
            return
        side = transferor.side
        legs: list[Leg] = []
        for target in route.steps[0].targets:
            for leg in await self._dial_transfer(call, target, stays, side):
                leg.refer = transferor
                legs.append(leg)
        if not legs:
            self._transfer_over(call, transferor, 480, "Temporarily Unavailable")
            return
        call.transfer_legs = legs
        self._event(call, "call.transferring", {"to": number, "by": transferor.label})
        await asyncio.sleep(route.steps[0].ring_seconds)
        ringing = [leg for leg in legs if leg.state in ("calling", "early")]
        if ringing and not call.ended and transferor.refer_to == number:
            for leg in ringing:
                self._cancel_leg(leg)
            self._transfer_over(call, transferor, 480, "No Answer")

    async def _transfer_to_queue(self, call: Call, transferor: Leg, route: ToQueue) -> bool:
        """The number leads to a queue and the call is the ACD's: the agent's transfer is a
        transfer to that queue in routing (the bridge then drops the agent's leg and the
        caller waits there); True when routing took it."""
        into = getattr(self.agent_listener, "agent_transferred_to_queue", None)
        agent_id = transferor.agent_id
        if not call.queue or agent_id is None or into is None:
            return False
        if not await into(call, agent_id, route.queue_id):
            return False
        self._notify(transferor, "SIP/2.0 200 OK", active=False)
        self._event(call, "call.transferred", {"to": f"queue {route.queue_id}"})
        transferor.refer_to = None
        return True

    def _transfer_over(self, call: Call, transferor: Leg, status: int, reason: str) -> None:
        """A transfer failed: the transferor keeps its party (told by NOTIFY if it sent a
        REFER), ``call.transfer_failed``."""
        to = transferor.refer_to
        transferor.refer_to = None
        self._notify(transferor, f"SIP/2.0 {status} {reason}", active=False)
        self._event(
            call, "call.transfer_failed", {"to": to, "by": transferor.label, "status": status}
        )

    async def _dial_transfer(self, call: Call, target: Target, stays: Leg, side: Side) -> list[Leg]:
        saved = list(call.ringing)
        legs = await self._dial(call, target, stays.remote_sdp, side=side, step=-1)
        call.ringing = saved  # transfer legs do not belong to the hunt
        return legs

    def _transfer_answered(self, leg: Leg, response: SipResponse) -> None:
        call = leg.call
        transferor = leg.refer
        assert transferor is not None
        cseq = response.cseq.number
        self._ack(leg, cseq)
        for other in call.transfer_legs:
            if other is not leg:
                self._cancel_leg(other)
        leg.state = "up"
        leg.refer = None
        self._notify(transferor, "SIP/2.0 200 OK", active=False)
        old = call.legs.get(leg.side)
        call.legs[leg.side] = leg
        if old is not None:
            call.transfer_legs.append(old)  # forgotten with the call
            if old.state != "ended":
                self._bye(old)
        if response.body:
            try:
                answer = sdplib.parse(response.body)
            except sdplib.SdpError:
                answer = None
            if answer is not None:
                leg.remote_sdp = answer
                self._set_remote(call, leg.side, answer)
                stays = call.other(leg)
                if call.media is None and stays is not None and stays.dialog is not None:
                    # Without the relay the remaining party must learn the new address.
                    reinvite = stays.dialog.request(
                        "INVITE", stays.via, body=self._sdp_for(stays, answer)
                    )
                    stays.reinvite_out = True

                    def done(response: SipResponse, stays: Leg = stays) -> None:
                        if response.status >= 200:
                            stays.reinvite_out = False
                            if response.status < 300 and stays.dialog is not None:
                                self._ack(stays, response.cseq.number)

                    self.layer.send_request(reinvite, stays.peer, done)
        self._event(call, "call.transferred", {"to": leg.label})
        if transferor.refer_to is not None:
            self._transferred_away(call, transferor, transferor.refer_to)

    def _transferred_away(self, call: Call, transferor: Leg, number: str) -> None:
        """The transferor's party put the call through to ``number`` and left: whoever
        tracks an agent's work on the call hears it (the ACD bridge for a queue call, the
        placement's ``on_event`` with ``transferred`` for a call the platform placed)."""
        call.transferred_to = number
        placed = call.placed
        if placed is not None:
            if transferor.side == "a" and placed.on_event is not None:
                placed.on_event(call, "transferred")
            return
        agent_id = transferor.agent_id
        listener = self.agent_listener
        if call.queue and agent_id is not None and listener is not None:
            transferred = getattr(listener, "agent_transferred", None)
            if transferred is not None:
                transferred(call, agent_id, number)

    def _transfer_failed(self, leg: Leg, response: SipResponse) -> None:
        transferor = leg.refer
        call = leg.call
        pending = [other for other in call.transfer_legs if other.state in ("calling", "early")]
        if transferor is not None and not pending and transferor.refer_to is not None:
            self._transfer_over(call, transferor, response.status, response.reason)

    def _notify(self, leg: Leg, sipfrag: str, *, active: bool) -> None:
        if not leg.refer_notify or leg.dialog is None or leg.state == "ended":
            return
        headers = Headers()
        headers.add("Event", "refer")
        state = "active;expires=60" if active else "terminated;reason=noresource"
        headers.add("Subscription-State", state)
        notify = leg.dialog.request(
            "NOTIFY",
            leg.via,
            body=(sipfrag + "\r\n").encode(),
            content_type="message/sipfrag;version=2.0",
            headers=headers,
        )
        self.layer.send_request(notify, leg.peer, lambda _response: None)

    # ---- the end of a call -----------------------------------------------------------

    def _caller_gone(self, call: Call) -> bool:
        """Whether the call is over for the caller: ended, or its INVITE was cancelled
        (perhaps before we knew of the call, while we authenticated or routed)."""
        if call.cancelled or call.ended:
            return True
        first = call.legs.get("a")
        tx = first.server_tx if first is not None else None
        if (
            tx is not None
            and not call.answered
            and not call.platform_answered
            and tx.state is not State.PROCEEDING
        ):
            call.cancelled = True
            for leg in list(call.ringing):
                self._cancel_leg(leg)
            self._finish(call, "cancelled", status=487)
            return True
        return False

    def reject(self, call: Call, status: int, reason: str, why: str) -> None:
        """Answer the (unanswered) caller with a final failure and end the call."""
        self._reject(call, status, reason, why)

    def _reject(self, call: Call, status: int, reason: str, why: str) -> None:
        if call.platform_answered and not call.ended:
            # The caller has its 200 already (a voice menu): hang up instead, saying why.
            self.stats["failed"] += 1
            for leg in list(call.ringing):
                self._cancel_leg(leg)
            self._bye(call.a, reason=_reason_value(status, reason))
            self._finish(call, why, status=status)
            return
        first = call.legs.get("a")
        tx = first.server_tx if first is not None else None
        if first is not None and tx is not None and not call.cancelled:
            self._respond(tx, build_response(first.invite, status, reason, to_tag=first.local_tag))
        if call.placed is not None:
            # A call we placed: the agent's answered phone hangs up, told why (RFC 3326).
            for leg in list(call.ringing):
                self._cancel_leg(leg)
            for leg in list(call.legs.values()):
                if leg.state == "up":
                    self._bye(leg, reason=_reason_value(status, reason))
        self.stats["failed"] += 1
        self._finish(call, why, status=status)

    def _hangup_all(self, call: Call, why: str) -> None:
        for leg in list(call.ringing):
            self._cancel_leg(leg)
        for leg in list(call.legs.values()):
            if leg.state == "up":
                self._bye(leg)
        first = call.legs.get("a")
        if (
            not call.answered
            and not call.platform_answered
            and first is not None
            and first.server_tx is not None
        ):
            self._respond(first.server_tx, build_response(first.invite, 500))
        self._finish(call, why)

    def _finish(self, call: Call, reason: str, *, status: int | None = None) -> None:
        if call.ended:
            return
        call.ended = True
        self._stop_ringback(call)
        self._end_waiting(call)
        self.calls.pop(call.id, None)
        for leg in [leg for leg in call.ringing if leg.consult]:
            self._cancel_leg(leg)
        if call.consult_leg is not None:
            self._bye(call.consult_leg)
            call.transfer_legs.append(call.consult_leg)  # forgotten below
            call.consult_leg = None
        for leg in [*call.legs.values(), *call.ringing, *call.transfer_legs]:
            self._stop_retransmit(leg)
            self._forget_leg(leg)
        first = call.legs.get("a")
        tx = first.server_tx if first is not None else None
        if tx is not None:
            self._by_invite.pop(tx.key, None)
        duration = 0.0
        if call.answered_at is not None:
            duration = round(self.clock.monotonic() - call.answered_at, 3)
        data: dict[str, Any] = {"reason": reason, "duration": duration}
        if status is not None:
            data["status"] = status
        if call.media is not None:
            media = call.media
            call.media = None
            try:
                data["media"] = dict(media.stats())
            except Exception:  # the relay's statistics are optional
                log.debug("sip.relay_stats_failed", call=call.id)
            self._spawn(media.close())
        if self.recordings is not None:
            self.recordings.call_ended(call)
        log.info("sip.call_ended", call=call.id, reason=reason, duration=duration)
        self._event(call, "call.ended", data)
        if call.queue and self.agent_listener is not None:
            self.agent_listener.call_ended(call, reason)
        if call.placed is not None:
            self._placed_finished(call, reason, status)

    def _person_answered(self, call: Call) -> None:
        """A person (not the platform) answered: the company's recording rules apply."""
        if self.recordings is not None:
            try:
                self.recordings.call_answered(call)
            except Exception:  # never let recording break a call
                log.exception("sip.recording_hook_failed", call=call.id)

    def _forget_leg(self, leg: Leg) -> None:
        if self._legs.get(leg.key) is leg:
            del self._legs[leg.key]

    # ---- media and events ------------------------------------------------------------

    def _set_remote(self, call: Call, side: Side, description: sdplib.SessionDescription) -> None:
        if call.media is None:
            return
        target = sdplib.media_target(description)
        if target is not None:
            call.media.set_remote(
                side, target[0], target[1], rtcp_port=sdplib.rtcp_target(description)
            )

    def _sdp_for(self, leg: Leg, description: sdplib.SessionDescription) -> bytes:
        """A description to send to ``leg``'s party: anchored at the relay when there is
        one, with the leg's own o= line (its version grows with each change)."""
        call = leg.call
        leg.sdp_version += 1
        origin = (leg.sdp_session, leg.sdp_version)
        if call.media is not None:
            if leg.consult:
                endpoint = call.media.c
            else:
                endpoint = call.media.a if leg.side == "a" else call.media.b
            out = sdplib.anchor(
                description,
                endpoint.host,
                endpoint.port,
                origin=origin,
                rtcp_port=endpoint.rtcp_port,
            )
        else:
            audio = description.audio()
            host = description.connection(audio)
            if audio is None or host is None:
                return description.to_bytes()
            out = sdplib.anchor(description, host, audio.port, origin=origin)
        return out.to_bytes()

    def _event(self, call: Call, kind: str, data: dict[str, Any]) -> None:
        """Queue a call event; one task writes them in the order they happened (one write
        per event would let a later event commit first and take a lower id)."""
        if self.emit is None or call.tenant_id is None:
            return
        payload = {
            "call_id": call.id,
            "caller": call.caller,
            "dialled": call.dialled,
            **data,
        }
        if call.placed is not None:
            payload["originated"] = True
        self._pending_events.append((call.tenant_id, kind, payload))
        if not self._emitting:
            self._emitting = True
            self._spawn(self._emit_pending())

    async def _emit_pending(self) -> None:
        emit = self.emit
        assert emit is not None
        try:
            while self._pending_events:
                tenant, kind, payload = self._pending_events.popleft()
                try:
                    await emit(tenant, kind, payload)
                except Exception:
                    log.exception("sip.call_event_failed", type=kind, call=payload["call_id"])
        finally:
            self._emitting = False


# ---- helpers -------------------------------------------------------------------------


def _caller_stream(
    call: Call, agent: sdplib.SessionDescription | None
) -> sdplib.SessionDescription | None:
    """The caller's stream as the platform plays to it and hears it once the agent left:
    the platform's own early-media answer when it gave one, else the codec the agent used
    with the RFC 4733 payload types of either side (the caller's offer or the agent's)."""
    if call.early_answer is not None:
        try:
            return sdplib.parse(call.early_answer)
        except sdplib.SdpError:
            log.debug("sip.early_answer_unreadable", call=call.id)
    caller = call.legs["a"].remote_sdp if "a" in call.legs else None
    chosen = agent.audio() if agent is not None else None
    offered = caller.audio() if caller is not None else None
    if caller is None or chosen is None or offered is None or not chosen.formats:
        return agent
    codec = chosen.formats[0]
    events = [f for f in (*chosen.formats[1:], *offered.formats) if f not in ("0", "8")]
    description = caller.copy()
    audio = description.audio()
    assert audio is not None
    audio.formats = [codec, *dict.fromkeys(events)]
    return description


def _contact(host: str, port: int, peer: Peer, *, secure: bool = False) -> str:
    """Our Contact towards ``peer``: ``sips:`` when the dialog is secure (§8.1.1.8, TLS
    implied), else ``sip:`` with the transport named unless it is UDP."""
    if secure:
        return f"<sips:{format_host(host)}:{port}>"
    transport = "" if peer.transport.upper() == "UDP" else f";transport={peer.transport.lower()}"
    return f"<sip:{format_host(host)}:{port}{transport}>"


def _describe(route: Hunt | ToQueue | ToIvr | ToVoicemail) -> str:
    """Where a call goes, in words, for its events (``queue support``, ``menu main``)."""
    if isinstance(route, ToQueue):
        return f"queue {route.queue_id}"
    if isinstance(route, ToIvr):
        return f"menu {route.menu.name}"
    if isinstance(route, ToVoicemail):
        return f"voicemail {route.box}"
    return route.description


def _reason_value(status: int, reason: str) -> str:
    """A Reason header (RFC 3326) for a BYE that says why: ``SIP ;cause=480 ;text="..."``."""
    text = "".join(ch for ch in reason if ch.isprintable() and ch not in '"\\')[:100]
    return f'SIP ;cause={status} ;text="{text}"'


def _reason_response(request: SipRequest, status: int, detail: str) -> SipResponse:
    """A response whose reason phrase names what was wrong (kept to one safe line)."""
    safe = "".join(ch if 32 <= ord(ch) < 127 else " " for ch in detail)[:100]
    response = build_response(request, status)
    response.reason = f"{response.reason} - {safe}"
    return response


def parse_peer(text: str) -> Peer | None:
    """``UDP:192.0.2.4:5060`` (as :class:`Peer` writes itself) back into a Peer."""
    try:
        transport, rest = text.split(":", 1)
        host, port = rest.rsplit(":", 1)
        return Peer(transport.upper(), host.strip("[]"), int(port))
    except ValueError:
        return None


def _binding_peer(
    binding: Binding, contact: Uri, connected: Callable[[Peer], bool] | None = None
) -> Peer | None:
    """Where to reach a registered phone: its Contact; but when the REGISTER came from
    another host than the Contact names (the phone is behind NAT) or over a stream, the
    address the REGISTER came from (a TCP/TLS phone's own connection: its flow).

    ``connected`` tells whether that connection is still open; when it is gone the
    Contact's address is used over the flow's transport (TLS stays TLS). A ``sips:``
    Contact, or one with ``;transport=tls``, is only ever reached over TLS."""
    source = parse_peer(binding.source) if binding.source else None
    if not isinstance(contact, SipUri):
        return source
    wanted = "TLS" if contact.secure else (contact.transport or "udp").upper()
    host = contact.host.strip("[]")
    if source is not None and source.reliable:
        flow = source.transport.upper()
        if flow == "TLS" or wanted != "TLS":  # the flow is as safe as the Contact asks
            if connected is None or connected(source):
                return source
            port = contact.port if wanted == flow else None
            return Peer(flow, host, port or default_port(flow))
    elif source is not None and source.host != host:
        if wanted != "TLS":
            return source
        host = source.host  # behind NAT, with a TLS Contact: TLS to its public address
    return Peer(wanted, host, contact.port or default_port(wanted))


def _pbx_trunk_lookup(pbx: Any) -> TrunkLookup:
    """Trunk id → :class:`Trunk`, read from the PBX's SQL store (a primary-key read)."""
    from sparklecomm.telephony.pbx.models import Trunk as TrunkRow

    def lookup(trunk_id: str) -> Trunk | None:
        with pbx.db.read() as session:
            row = session.get(TrunkRow, trunk_id)
            if row is None:
                return None
            host, port, transport, username = row.host, row.port, row.transport, row.username
            max_channels = row.max_channels or 0
        return Trunk(
            host=host,
            port=port,
            transport=transport.upper(),
            username=username,
            password=pbx.trunk_password(trunk_id) if username else None,
            id=trunk_id,
            max_channels=max_channels,
        )

    return lookup
