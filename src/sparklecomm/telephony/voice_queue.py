"""Voice calls through the ACD: the bridge between the B2BUA and the routing engine.

When the dial plan sends a call to a queue (:class:`~sparklecomm.telephony.pbx.routes.ToQueue`)
the B2BUA hands it to :meth:`VoiceQueue.enqueue`; from then on the routing engine decides and
this bridge turns its decisions into phone actions, and phone outcomes into engine commands:

=================================  ===============================================
engine event / phone outcome        what happens
=================================  ===============================================
call reaches the queue              ``create_interaction`` (channel ``voice``,
                                    attributes ``dnis``, ``ani``, ``call_id`` ...)
``interaction.offered`` (agent A)   ring A's phones (:meth:`AgentPhones.ring_agent`)
A's phone answers                   ``accept``; if the engine agrees, connect caller
                                    and A; if the offer is gone, hang A's leg up
A's phone busy / declines / absent  ``reject`` with reason ``busy``, ``declined``
                                    or ``unreachable``: the engine re-offers
``offer_timed_out`` / ``withdrawn`` stop ringing A (the engine re-offers; after N
                                    misses it puts A on break ``missed-offers``)
caller hangs up while waiting       ``abandon`` (``hangup``)
``interaction.diverted`` (queue     on to the queue's ``divert_to`` (an extension,
full, max wait, EWT, ratio, empty)  ring group, number or voicemail box, as the dial
                                    plan routes it); none: the call ends (480)
caller hangs up while connected     ``complete`` for the agent (then wrap-up)
agent hangs up                      ``complete`` (then wrap-up), caller released
agent's phone transfers the caller  ``transfer`` with ``to_number`` once the number
to a number (REFER)                 answers: the interaction completes, the agent
                                    wraps up, the call goes on outside routing
``interaction.completed`` from the  release both legs
desktop
``interaction.transferred``         blind transfer: drop the agent's leg; the next
(kind ``blind``)                    ``offered`` rings the new agent and reconnects
``interaction.consult_started``     caller on hold, ring the consulted agent B's
                                    phones (:meth:`AgentPhones.consult_agent`)
B's phone answers                   ``consult_connected`` (B's talk starts: the
                                    engine held B ``reserved`` while it rang), then
                                    owner and B talk, the caller still on hold
B's phones fail / no answer in the  ``leave`` for B; caller and owner talk again
offer timeout (default 20 s)
``interaction.participant_left``    B's leg ends (CANCEL or BYE); caller and owner
(B: cancelled on the desktop)       talk again
B hangs up                          ``leave`` for B; caller and owner talk again
``interaction.transferred``         warm transfer: caller and B talk, the old
(kind ``consult``, to B)            owner's leg gets BYE (if B still rings: as soon
                                    as B answers)
owner hangs up while consulting     ``leave`` for the owner: the engine makes B the
                                    owner (``transferred``, kind ``consult``)
``interaction.conference_joined``   not done on voice (the relay does not mix):
                                    logged, ``leave`` for the joined agent, the
                                    caller stays with the owner
=================================  ===============================================

Queued callbacks (channel ``callback``, docs/routing.md "Queued callbacks") are placed by
the platform when the B2BUA side implements :class:`CallbackPhones`:

=================================  ===============================================
engine event / phone outcome        what happens
=================================  ===============================================
``interaction.offered`` (channel    ring A's phones (:meth:`CallbackPhones.ring_callback`,
``callback``, agent A)              a call placed by the platform) if this node wins
                                    the offer's claim; A without phones, or a number
                                    the dial plan refuses: the offer stays on the desk
                                    only (as without this bridge)
the same, ring-all (A, B, ...)      every offered agent's phones ring, each its own
                                    call placed by the platform
A's phone answers                   ``accept``; if the engine agrees, the customer's
                                    number is dialled as A's extension would dial it
                                    (else A's leg is hung up, nothing dialled); with
                                    ring-all the engine withdraws B's offer
A's phones busy / decline / absent  ``reject`` (``busy``, ``declined``,
                                    ``unreachable``): the engine re-offers
``offer_timed_out`` / ``withdrawn`` stop ringing A
accepted (on the desk, or by B's    stop ringing A (the desk, or B, handles it)
phone) meanwhile
customer answers                    connected (the interaction is already active)
customer busy / no answer / fails,  ``callback_failed`` with ``busy``, ``no_answer``,
or A hangs up before that           ``failed`` or ``agent_hangup``: the engine's
                                    retry policy runs
either hangs up once connected      ``complete`` (then wrap-up)
``interaction.completed``,          hang the call up
``callback.attempt_failed`` ...
from the desktop
=================================  ===============================================

The customer's number is the ``phone`` of ``interaction.callback_requested`` (or the
interaction's ``phone`` attribute).

Every node hears every offer (its own engine's, and the other nodes' through the shared
bus), so exactly one must place the call: each ring (one offered agent, one offer event)
is *claimed* through the ``claim`` given to the bridge (with the Redis bus,
:meth:`~sparklecomm.bus.redis.RedisBus.claim`: ``SET NX`` with an expiry, keyed by the
organisation, interaction, agent and the offer event's id) and only the winner rings. A
node that holds an open connection (TCP/TLS flow) of one of the agent's phones claims at
once, the others after ``claim_head_start``; the node whose engine made the offer hears it
first, so among the others it usually wins. When the claim cannot be asked (Redis away),
only the node whose engine made the offer rings (:func:`~sparklecomm.bus.base.delivering_remote`
tells the two apart). Without a claim (one node, no Redis) this node always rings. If the
ringing node dies, nobody answers the offer: the engine's offer timeout ends it and the
re-offer (a new event, a new claim) rings from a live node.

One consultation at a time per call: a second ``consult_started`` while one is going on
gets ``leave`` for its agent (logged ``voice.second_consult_refused``).

Agents are users; an agent's phones are the registered contacts of the extensions whose
``user_id`` is the agent's (the B2BUA side resolves that). The caller hears ringback (a 180
without media) while waiting; music on hold comes with the media issue.

The engine delivers its events through :meth:`AcdService.add_listener` in whatever thread
committed them; this bridge hops onto its own event loop before acting, and it ignores
interactions it does not own (chat, e-mail, other nodes' calls). With several nodes the
offer for a call held here may be made by another node (an agent went available there):
the routing service hears it through the shared bus; since those events can arrive after
later ones committed here, an event older than the newest one already handled for the call
is dropped (it is superseded).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from starlette.concurrency import run_in_threadpool

from sparklecomm.bus.base import delivering_remote
from sparklecomm.core.errors import Conflict, DomainError
from sparklecomm.core.events import Event
from sparklecomm.core.ids import new_id
from sparklecomm.telephony.pbx.routes import ToQueue

log = structlog.get_logger("sparklecomm.telephony.voice_queue")


class AgentPhones(Protocol):
    """What the bridge asks of the B2BUA (all non-blocking; outcomes come back as calls to
    :meth:`VoiceQueue.agent_answered`, :meth:`VoiceQueue.agent_failed` ...)."""

    def ring_agent(self, call_id: str, agent_id: str) -> None:
        """Ring every registered phone of the agent for this call (no timeout of its own:
        the engine's offer timeout decides, through :meth:`stop_ringing`)."""

    def stop_ringing(self, call_id: str, agent_id: str, reason: str) -> None:
        """CANCEL the agent's ringing leg(s)."""

    def connect(self, call_id: str, agent_id: str) -> None:
        """Bridge the caller with the agent's answered leg (answering the caller if needed)."""

    def drop_agent(self, call_id: str, agent_id: str, reason: str) -> None:
        """Hang up the agent's leg; the caller stays (transfer, or an accept refused)."""

    def end_call(self, call_id: str, reason: str) -> None:
        """Hang up the whole call (both legs)."""

    def divert(self, call_id: str, target: str, reason: str) -> None:
        """The queue sent the waiting caller away to ``target`` (the queue's ``divert_to``):
        route the call on there (optional: without it the call ends as :meth:`end_call`)."""

    def consult_agent(self, call_id: str, agent_id: str) -> None:
        """Put the caller on hold and ring every registered phone of the consulted agent
        (outcomes: :meth:`VoiceQueue.consult_answered`, :meth:`VoiceQueue.consult_failed`)."""

    def consult_connect(self, call_id: str, agent_id: str) -> None:
        """The owner and the consulted agent's answered leg talk (the caller on hold)."""

    def consult_transfer(self, call_id: str, agent_id: str) -> None:
        """The caller and the consulted agent talk; the old owner's leg is hung up."""

    def drop_consult(self, call_id: str, agent_id: str, reason: str) -> None:
        """Stop ringing the consulted agent's phones, or hang up its answered leg."""

    def reconnect(self, call_id: str) -> None:
        """The caller and the owner talk again (after a consultation)."""


class CallbackPhones(Protocol):
    """What the bridge asks of the B2BUA for queued callbacks (outcomes come back as calls
    to :meth:`VoiceQueue.callback_agent_answered`, :meth:`VoiceQueue.callback_ended` ...,
    naming the ring by its ``ring_id``: one agent's phones for one offer)."""

    def ring_callback(
        self, ring_id: str, tenant_id: str, interaction_id: str, agent_id: str, phone: str
    ) -> None:
        """Ring the agent's phones for a callback; once one answers (and
        :meth:`VoiceQueue.callback_agent_answered` agrees), dial ``phone``."""

    def stop_callback(self, ring_id: str, reason: str) -> None:
        """Stop ringing, or hang up that ring's call (both legs)."""

    async def holds_phone_flow(self, tenant_id: str, agent_id: str) -> bool:
        """Whether one of the agent's phones is connected to this node (an open TCP/TLS
        connection it registered over): this node then claims the ring first."""


class Routing(Protocol):
    """The part of :class:`~sparklecomm.acd.service.AcdService` the bridge uses."""

    def execute(self, tenant_id: str, name: str, **args: Any) -> list[Event]: ...

    def add_listener(self, listener: Callable[[str, list[Event]], None]) -> None: ...

    def remove_listener(self, listener: Callable[[str, list[Event]], None]) -> None: ...


class Phase(enum.Enum):
    QUEUED = "queued"  # waiting or being offered
    CONNECTED = "connected"
    ENDED = "ended"


class Consult(enum.Enum):
    RINGING = "ringing"  # the consulted agent's phones ring, the caller is on hold
    TALKING = "talking"  # owner and consulted agent talk, the caller is on hold


@dataclass(slots=True)
class VoiceCall:
    call_id: str
    tenant_id: str
    interaction_id: str
    phase: Phase = Phase.QUEUED
    agent_id: str | None = None
    ringing: set[str] = field(default_factory=set)
    last_event_id: int = 0  # events of this call come from several nodes: drop older ones
    queue_id: str | None = None
    consult_agent: str | None = None
    consult: Consult | None = None
    transfer_pending: bool = False
    """The consulted agent became the owner while its phones still ring: connect the
    caller to it as soon as it answers."""
    consult_timer: asyncio.TimerHandle | None = None
    survey: Any = None
    """The queue's :class:`~sparklecomm.acd.model.PostCallSurvey` when it asks callers to
    rate the call (read when an agent is connected); ``None``: no survey."""


@dataclass(slots=True)
class CallbackCall:
    """A queued callback being placed through one offered agent's phones (with ring-all,
    one per offered agent)."""

    ring_id: str
    """``interaction/agent/offer event id``: this ring, on every node the same."""
    interaction_id: str
    tenant_id: str
    agent_id: str
    attempt: Any = None
    """The offer's ``attempt`` (the agents of one ring-all offer share it)."""
    phone: str = ""
    call_id: str | None = None
    accepted: bool = False
    connected: bool = False


Claim = Callable[[str, float], Awaitable[bool]]
"""``(key, ttl_seconds)`` → True for exactly one caller across the nodes (e.g.
:meth:`sparklecomm.bus.redis.RedisBus.claim`)."""


CALLBACK_FAILURES = {"busy": "busy", "no_answer": "no_answer", "agent_hangup": "agent_hangup"}
"""How a placed call's end (before the customer answered) maps to the engine's
``callback_failed`` reason (else ``failed``)."""
MAX_REMEMBERED_PHONES = 10_000
"""Callback interactions whose number (and newest event) the bridge remembers."""
CALLBACK_CLAIM_TTL = 900.0
"""Seconds a ring's claim is kept: far longer than any node takes to hear the offer (each
offer has its own key, so the expiry only cleans up)."""
DEFAULT_CLAIM_HEAD_START = 0.3
"""Seconds a node without a connection to the agent's phones waits before it claims."""

DEFAULT_CONSULT_TIMEOUT = 20.0
"""Seconds a consulted agent's phones ring when the queue's offer timeout is unknown."""

FAILURE_REASONS = {486: "busy", 600: "busy", 603: "declined", 403: "declined"}
"""How an agent phone's final response maps to the engine's reject reason (else
``unreachable``)."""


class VoiceQueue:
    """Calls waiting in or served through the ACD, on this node. See the module docstring."""

    def __init__(
        self,
        routing: Routing,
        phones: AgentPhones,
        *,
        ids: Callable[[], str] = new_id,
        consult_timeout: float | None = None,
        claim: Claim | None = None,
        claim_head_start: float = DEFAULT_CLAIM_HEAD_START,
    ) -> None:
        self.routing = routing
        self.phones = phones
        self._ids = ids
        self.consult_timeout = consult_timeout
        """Seconds a consulted agent's phones ring (``None``: the queue's offer timeout)."""
        self.claim = claim
        """Decides which node rings for a callback offer (``None``: this one, alone)."""
        self.claim_head_start = claim_head_start
        self._tasks: set[asyncio.Task[Any]] = set()
        self._by_call: dict[str, VoiceCall] = {}
        self._by_interaction: dict[str, VoiceCall] = {}
        self._callbacks: dict[str, dict[str, CallbackCall]] = {}
        """Interaction → offered agent → its ring (several with ring-all)."""
        self._rings: dict[str, CallbackCall] = {}
        """The same rings by ``ring_id``."""
        self._callback_phones: dict[str, str] = {}
        """Interaction → the number of its ``callback_requested`` event."""
        self._callback_seen: dict[str, int] = {}
        """Interaction → the newest callback event handled (older ones are stale)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        with contextlib.suppress(RuntimeError):  # callbacks are heard before any call
            self._loop = asyncio.get_running_loop()
        routing.add_listener(self._listener)

    # ---- inputs from the B2BUA --------------------------------------------------------------

    async def enqueue(
        self, call_id: str, route: ToQueue, *, caller: str, caller_name: str | None = None
    ) -> VoiceCall:
        """The call enters ``route.queue_id``; raises the engine's domain error if refused
        (unknown queue, queue full...): the B2BUA then rejects the call."""
        self._loop = asyncio.get_running_loop()
        attributes: dict[str, Any] = {"ani": caller, **route.attributes, "call_id": call_id}
        if caller_name:
            attributes.setdefault("caller_name", caller_name)
        call = VoiceCall(call_id, route.tenant_id, f"call-{self._ids()}")
        call.queue_id = route.queue_id
        # Known before the command runs: its events come back through the listener.
        self._by_call[call_id] = call
        self._by_interaction[call.interaction_id] = call
        try:
            await self._execute(
                call,
                "create_interaction",
                interaction_id=call.interaction_id,
                queue_id=route.queue_id,
                channel="voice",
                priority=route.priority,
                attributes=attributes,
            )
        except BaseException:
            self._forget(call)
            raise
        log.info(
            "voice.queued",
            call_id=call_id,
            tenant_id=call.tenant_id,
            interaction_id=call.interaction_id,
            queue_id=route.queue_id,
        )
        return call

    # ---- the waiting caller (music on hold, announcements, the callback key) -------------

    def routed(self, call_id: str) -> VoiceCall | None:
        """This node's record of a call in or served by a queue (``None``: not one)."""
        return self._by_call.get(call_id)

    async def _read(self, tenant_id: str, fn: Callable[[Any], Any]) -> Any:
        """``fn(engine)`` under the tenant's lock (``None`` when routing cannot be read, or
        ``fn`` raises: the interaction or queue is gone)."""
        read = getattr(self.routing, "read", None)
        if read is None:
            return None
        try:
            return await run_in_threadpool(read, tenant_id, fn)
        except Exception as exc:
            log.info("voice.read_failed", tenant_id=tenant_id, error=str(exc))
            return None

    async def waiting_media(self, tenant_id: str, queue_id: str) -> Any:
        """The queue's :class:`~sparklecomm.acd.model.WaitingMedia` (``None``: unknown)."""
        return await self._read(tenant_id, lambda engine: engine.queue_config(queue_id).waiting)

    async def place_in_line(self, call_id: str) -> tuple[int | None, float | None]:
        """The waiting caller's place in line (1: next) and expected wait in seconds, as
        routing sees them now; ``(None, None)`` once offered, connected or unknown."""
        call = self._by_call.get(call_id)
        if call is None or call.phase is not Phase.QUEUED or call.ringing:
            return None, None
        iid = call.interaction_id
        found = await self._read(
            call.tenant_id, lambda engine: (engine.position(iid), engine.estimated_wait(iid))
        )
        if not found or not found[0]:  # 0: being offered
            return None, None
        position, wait = found
        return position, wait

    async def request_callback(self, call_id: str, phone: str) -> bool:
        """The waiting caller pressed the callback key: the interaction becomes a queued
        callback to ``phone``, keeping its place in line, and the call is no longer this
        bridge's (hanging it up abandons nothing). False when routing refuses (an agent is
        being offered the call, the queue does not offer callbacks...)."""
        call = self._by_call.get(call_id)
        if call is None or call.phase is not Phase.QUEUED or call.ringing:
            return False
        try:
            await self._execute(
                call, "request_callback", interaction_id=call.interaction_id, phone=phone
            )
        except DomainError as exc:
            log.info("voice.callback_refused", call_id=call_id, error=str(exc))
            return False
        log.info("voice.callback_requested", call_id=call_id, interaction_id=call.interaction_id)
        call.phase = Phase.ENDED
        self._forget(call)
        return True

    async def agent_answered(self, call_id: str, agent_id: str) -> bool:
        """An agent's phone answered; True when the call is now theirs (and connected)."""
        call = self._by_call.get(call_id)
        if call is None or call.phase is Phase.ENDED:
            self.phones.drop_agent(call_id, agent_id, "call_gone")
            return False
        call.ringing.discard(agent_id)
        try:
            await self._execute(
                call, "accept", interaction_id=call.interaction_id, agent_id=agent_id
            )
        except DomainError as exc:
            # The offer expired or went to someone else while the phone was answering.
            log.info("voice.accept_refused", call_id=call_id, agent_id=agent_id, error=str(exc))
            self.phones.drop_agent(call_id, agent_id, "offer_gone")
            return False
        call.phase = Phase.CONNECTED
        call.agent_id = agent_id
        self.phones.connect(call_id, agent_id)
        call.survey = await self._survey_of(call)
        return True

    async def _survey_of(self, call: VoiceCall) -> Any:
        """The post-call survey of the call's queue when it is on (``None`` otherwise, or
        when routing cannot say: the call simply ends without one)."""
        queue_id = call.queue_id
        if queue_id is None:
            return None
        try:
            survey = await self._read(
                call.tenant_id, lambda engine: engine.queue_config(queue_id).survey
            )
        except Exception:
            log.info("voice.survey_unknown", call_id=call.call_id, queue_id=queue_id)
            return None
        return survey if getattr(survey, "enabled", False) else None

    async def agent_failed(self, call_id: str, agent_id: str, status: int) -> None:
        """An agent's phone could not take the call (busy, declined, not registered...)."""
        call = self._by_call.get(call_id)
        if call is None or agent_id not in call.ringing:
            return
        call.ringing.discard(agent_id)
        reason = FAILURE_REASONS.get(status, "unreachable")
        try:
            await self._execute(
                call, "reject", interaction_id=call.interaction_id, agent_id=agent_id, reason=reason
            )
        except DomainError as exc:  # the offer ended meanwhile (timeout): nothing to undo
            log.info("voice.reject_ignored", call_id=call_id, agent_id=agent_id, error=str(exc))

    async def caller_hung_up(self, call_id: str) -> None:
        """The caller left (CANCEL while waiting, BYE when connected)."""
        call = self._by_call.get(call_id)
        if call is None or call.phase is Phase.ENDED:
            return
        phase, agent_id = call.phase, call.agent_id
        call.phase = Phase.ENDED
        if phase is Phase.CONNECTED and agent_id is not None:
            await self._finish(call, agent_id)
            self.phones.drop_agent(call_id, agent_id, "caller_hung_up")
        else:
            for ringing in sorted(call.ringing):
                self.phones.stop_ringing(call_id, ringing, "abandoned")
            call.ringing.clear()
            await self._quietly(call, "abandon", interaction_id=call.interaction_id)
        self._forget(call)

    async def agent_hung_up(
        self, call_id: str, agent_id: str, *, caller_stays: bool = False
    ) -> None:
        """The connected agent hung up: the interaction completes, the caller is released
        (unless ``caller_stays``: the platform keeps them for the post-call survey).
        During a consultation the owner *leaves* instead: the engine hands the call to the
        consulted agent (``transferred``, kind ``consult``) and the caller stays."""
        call = self._by_call.get(call_id)
        if call is None or call.phase is not Phase.CONNECTED or call.agent_id != agent_id:
            return
        if call.consult_agent is not None:
            try:
                await self._execute(
                    call,
                    "leave",
                    interaction_id=call.interaction_id,
                    agent_id=agent_id,
                    reason="hung_up",
                )
            except DomainError as exc:
                log.info("voice.owner_leave_refused", call_id=call_id, error=str(exc))
            else:
                log.info("voice.owner_left_consultation", call_id=call_id, agent_id=agent_id)
                return
        call.phase = Phase.ENDED
        await self._finish(call, agent_id)
        if not caller_stays:
            self.phones.end_call(call_id, "agent_hung_up")
        self._forget(call)

    async def transfer_to_queue(self, call_id: str, agent_id: str, queue_id: str) -> bool:
        """The connected agent put the caller through (phone's transfer key, or the desk's
        put-through) to a number that leads to ``queue_id``: a blind transfer to that queue
        in routing, as from the desk (the agent's leg is dropped when the engine says so,
        the caller waits there). False when routing refuses it (the call stays)."""
        call = self._by_call.get(call_id)
        if call is None or call.phase is not Phase.CONNECTED or call.agent_id != agent_id:
            return False
        try:
            await self._execute(
                call,
                "transfer",
                interaction_id=call.interaction_id,
                agent_id=agent_id,
                to_queue_id=queue_id,
            )
        except DomainError as exc:
            log.info("voice.transfer_to_queue_refused", call_id=call_id, error=str(exc))
            return False
        return True

    async def agent_transferred(self, call_id: str, agent_id: str, number: str) -> None:
        """The connected agent put the caller through to ``number`` with its phone's own
        transfer key (REFER) and its leg was released: the call goes on outside routing, so
        the engine hears a transfer out (``transfer`` with ``to_number``: the interaction
        completes, the agent wraps up) and the bridge lets the call go (the B2BUA keeps
        caller and number connected). Without this the agent stayed busy until the
        transferred conversation ended."""
        call = self._by_call.get(call_id)
        if call is None or call.phase is not Phase.CONNECTED or call.agent_id != agent_id:
            return
        consulted = call.consult_agent
        call.phase = Phase.ENDED
        self._forget(call)  # before the commands: their events must not act on the call
        if consulted is not None:  # a consultation was going on: it ends with the call
            self._clear_consult(call)
            self.phones.drop_consult(call_id, consulted, "transferred_out")
            await self._quietly(
                call,
                "end_consult",
                interaction_id=call.interaction_id,
                agent_id=agent_id,
                target_agent_id=consulted,
            )
        try:
            await self._execute(
                call,
                "transfer",
                interaction_id=call.interaction_id,
                agent_id=agent_id,
                to_number=number,
            )
        except DomainError as exc:  # e.g. a consultation going on: the agent's part ends
            log.info("voice.transfer_out_refused", call_id=call_id, error=str(exc))
            await self._finish(call, agent_id)
        log.info("voice.transferred_out", call_id=call_id, agent_id=agent_id, to=number)

    async def consult_answered(self, call_id: str, agent_id: str) -> bool:
        """The consulted agent's phone answered; True when it is now connected (to the
        owner, or to the caller when the call was handed over meanwhile).

        ``consult_connected`` tells the engine first, so that the consulted agent's talk
        (and, after a hand-over while it rang, the new owner's leg) starts now, not when
        its phone started to ring."""
        call = self._by_call.get(call_id)
        if not self._consult_rings(call, agent_id):
            self.phones.drop_consult(call_id, agent_id, "consult_gone")
            return False
        assert call is not None
        self._stop_consult_timer(call)
        try:
            await self._execute(
                call, "consult_connected", interaction_id=call.interaction_id, agent_id=agent_id
            )
        except Conflict:
            pass  # connected in the engine's books already (a consultation told not to ring)
        except DomainError as exc:
            # The consultation ended meanwhile (ended on the desk, the call completed): the
            # answered leg has nobody to talk to.
            log.info(
                "voice.consult_answer_refused", call_id=call_id, agent_id=agent_id, error=str(exc)
            )
            if self._consult_rings(call, agent_id):
                await self._end_consult(call, agent_id, "consult_gone")
            else:
                self.phones.drop_consult(call_id, agent_id, "consult_gone")
            return False
        if not self._consult_rings(call, agent_id):  # the call changed while we asked
            self.phones.drop_consult(call_id, agent_id, "consult_gone")
            return False
        if call.transfer_pending:
            self._clear_consult(call)
            log.info("voice.consult_transferred", call_id=call_id, agent_id=agent_id)
            self.phones.consult_transfer(call_id, agent_id)
            return True
        call.consult = Consult.TALKING
        log.info("voice.consult_connected", call_id=call_id, agent_id=agent_id)
        self.phones.consult_connect(call_id, agent_id)
        return True

    @staticmethod
    def _consult_rings(call: VoiceCall | None, agent_id: str) -> bool:
        """Whether ``agent_id``'s phones ring for a consultation on this connected call."""
        return (
            call is not None
            and call.phase is Phase.CONNECTED
            and call.consult_agent == agent_id
            and call.consult is Consult.RINGING
        )

    async def consult_failed(self, call_id: str, agent_id: str, status: int) -> None:
        """The consulted agent's phones could not take the call (busy, declined, absent;
        408: not answered in time): ``leave`` for that agent, caller and owner again."""
        call = self._by_call.get(call_id)
        if call is None or not self._consult_rings(call, agent_id):
            return
        reason = "no_answer" if status == 408 else FAILURE_REASONS.get(status, "unreachable")
        log.info("voice.consult_failed", call_id=call_id, agent_id=agent_id, reason=reason)
        await self._end_consult(call, agent_id, reason)

    async def consult_hung_up(self, call_id: str, agent_id: str) -> None:
        """The consulted agent hung up during the consultation: ``leave``; caller and owner
        talk again."""
        call = self._by_call.get(call_id)
        if call is None or call.phase is not Phase.CONNECTED or call.consult_agent != agent_id:
            return
        log.info("voice.consult_hung_up", call_id=call_id, agent_id=agent_id)
        await self._end_consult(call, agent_id, "hung_up")

    async def _end_consult(self, call: VoiceCall, agent_id: str, reason: str) -> None:
        pending = call.transfer_pending
        self._clear_consult(call)
        self.phones.drop_consult(call.call_id, agent_id, reason)
        if pending:
            # The owner left and the call was handed to an agent who cannot take it.
            call.phase = Phase.ENDED
            await self._finish(call, agent_id)
            self.phones.end_call(call.call_id, f"consult_{reason}")
            self._forget(call)
            return
        self.phones.reconnect(call.call_id)
        await self._quietly(
            call, "leave", interaction_id=call.interaction_id, agent_id=agent_id, reason=reason
        )

    def calls(self) -> list[VoiceCall]:
        return list(self._by_call.values())

    def close(self) -> None:
        """Stop following the engine (the B2BUA is shutting down)."""
        self.routing.remove_listener(self._listener)

    # ---- engine events ---------------------------------------------------------------------

    def _listener(self, tenant_id: str, events: list[Event]) -> None:
        """Any thread: keep the events of our calls and act on them on our loop."""
        mine = [
            e
            for e in events
            if isinstance(e.payload, dict)
            and (
                e.payload.get("interaction_id") in self._by_interaction
                or self._callback_event(e.type, e.payload)
            )
        ]
        loop = self._loop
        if not mine or loop is None or loop.is_closed():
            return
        remote = delivering_remote()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.handle(mine, remote=remote)
        else:
            loop.call_soon_threadsafe(functools.partial(self.handle, mine, remote=remote))

    def handle(self, events: Sequence[Event], *, remote: bool = False) -> None:
        """Turn the engine's decisions about our calls into phone actions (``remote``: the
        events were committed by another node and only heard here)."""
        for event in events:
            payload = event.payload
            assert isinstance(payload, dict)
            if self._callback_event(event.type, payload):
                self._handle_callback(event, payload, remote)
                continue
            call = self._by_interaction.get(str(payload.get("interaction_id")))
            if call is None or call.phase is Phase.ENDED:
                continue
            if event.id <= call.last_event_id:
                log.info("voice.stale_event", call_id=call.call_id, type=event.type, id=event.id)
                continue
            call.last_event_id = event.id
            agent_id = payload.get("agent_id")
            kind = event.type
            if kind == "interaction.offered" and isinstance(agent_id, str):
                call.ringing.add(agent_id)
                self.phones.ring_agent(call.call_id, agent_id)
            elif kind in ("interaction.offer_timed_out", "interaction.offer_withdrawn"):
                if isinstance(agent_id, str) and agent_id in call.ringing:
                    call.ringing.discard(agent_id)
                    reason = str(payload.get("reason") or "offer_timed_out")
                    self.phones.stop_ringing(call.call_id, agent_id, reason)
            elif kind == "interaction.consult_started" and call.phase is Phase.CONNECTED:
                self._consult_started(call, payload)
            elif (
                kind == "interaction.transferred"
                and call.phase is Phase.CONNECTED
                and payload.get("kind") == "consult"
                and call.consult_agent is not None
                and payload.get("to_agent_id") == call.consult_agent
            ):
                self._consult_transferred(call, payload)
            elif kind == "interaction.participant_left" and call.phase is Phase.CONNECTED:
                if isinstance(agent_id, str) and agent_id == call.consult_agent:
                    reason = str(payload.get("reason") or "left")
                    log.info("voice.consult_ended", call_id=call.call_id, agent_id=agent_id)
                    self._clear_consult(call)
                    self.phones.drop_consult(call.call_id, agent_id, reason)
                    self.phones.reconnect(call.call_id)
            elif kind == "interaction.conference_joined" and call.phase is Phase.CONNECTED:
                self._conference_joined(call, payload)
            elif kind == "interaction.transferred" and call.phase is Phase.CONNECTED:
                old = call.agent_id
                call.phase, call.agent_id = Phase.QUEUED, None
                if old is not None:
                    self.phones.drop_agent(call.call_id, old, "transferred")
                to_agent = payload.get("to_agent_id")
                if payload.get("kind") != "blind" and isinstance(to_agent, str):
                    # Consult/conference legs are not bridged by the B2BUA yet: the new
                    # owner gets the caller as if blind-transferred.
                    log.warning(
                        "voice.transfer_as_blind", call_id=call.call_id, kind=payload.get("kind")
                    )
                    call.phase, call.agent_id = Phase.CONNECTED, to_agent
                    self.phones.connect(call.call_id, to_agent)
            elif kind == "interaction.completed":
                call.phase = Phase.ENDED
                self._clear_consult(call)
                self.phones.end_call(call.call_id, "completed")
                self._forget(call)
            elif kind == "interaction.abandoned":
                self._release(call, "abandoned", "abandoned")
            elif kind == "interaction.diverted":
                # The queue sent the caller away (full, closed to new callers, waited too
                # long, estimated wait too high...): on to the queue's ``divert_to`` (an
                # extension, a ring group, a number) when it names one, else the call ends
                # (480 to the unanswered caller).
                reason = f"diverted_{payload.get('reason') or 'queue'}"
                target = payload.get("divert_to")
                log.info("voice.diverted", call_id=call.call_id, reason=reason, divert_to=target)
                divert = getattr(self.phones, "divert", None)
                if isinstance(target, str) and target and divert is not None:
                    self._release(call, "diverted", reason, divert_to=target)
                else:
                    self._release(call, "diverted", reason)

    def _release(
        self, call: VoiceCall, ringing_reason: str, reason: str, *, divert_to: str | None = None
    ) -> None:
        """The waiting caller leaves the queue: phones still ringing for it stop, then the
        call ends, or goes on to ``divert_to`` (:meth:`AgentPhones.divert`)."""
        call.phase = Phase.ENDED
        for ringing in sorted(call.ringing):
            self.phones.stop_ringing(call.call_id, ringing, ringing_reason)
        if divert_to is None:
            self.phones.end_call(call.call_id, reason)
        else:
            self.phones.divert(call.call_id, divert_to, reason)
        self._forget(call)

    # ---- queued callbacks ------------------------------------------------------------------

    def _callback_phones_impl(self) -> CallbackPhones | None:
        phones = self.phones
        if all(
            callable(getattr(phones, name, None))
            for name in ("ring_callback", "stop_callback", "holds_phone_flow")
        ):
            return phones  # type: ignore[return-value]
        return None

    def _callback_event(self, kind: str, payload: dict[str, Any]) -> bool:
        """Whether an event concerns the callbacks this bridge places (or may place)."""
        if self._callback_phones_impl() is None:
            return False
        interaction = payload.get("interaction_id")
        if interaction in self._by_interaction:
            return False
        if interaction in self._callbacks or interaction in self._callback_seen:
            return True
        if interaction in self._callback_phones:  # a callback: keep its newest event id
            return kind.startswith(("interaction.", "callback."))
        if kind == "interaction.callback_requested":
            return True
        return kind == "interaction.offered" and payload.get("channel") == "callback"

    def _handle_callback(self, event: Event, payload: dict[str, Any], remote: bool) -> None:
        interaction_id = str(payload.get("interaction_id"))
        kind = event.type
        if kind == "interaction.callback_requested":
            phone = payload.get("phone")
            if isinstance(phone, str) and phone:
                _remember(self._callback_phones, interaction_id, phone)
            return
        if event.id <= self._callback_seen.get(interaction_id, 0):
            if kind == "interaction.offered":  # heard from another node after a newer event
                log.info("callback.stale_offer", interaction_id=interaction_id, id=event.id)
            return
        _remember(self._callback_seen, interaction_id, event.id)
        agent_id = payload.get("agent_id")
        rings = list(self._callbacks.get(interaction_id, {}).values())
        if kind == "interaction.offered":
            if isinstance(agent_id, str):
                self._callback_offered(event, payload, agent_id, rings, remote)
        elif kind in ("interaction.offer_timed_out", "interaction.offer_withdrawn"):
            for record in rings:
                if record.agent_id == agent_id and not record.accepted:
                    self._stop_callback(record, str(payload.get("reason") or kind))
        elif kind == "interaction.accepted":
            for record in rings:
                if not record.accepted:  # taken on the desk, or by another agent's phone
                    why = "on_desk" if record.agent_id == agent_id else "elsewhere"
                    self._stop_callback(record, f"accepted_{why}")
        elif kind in (
            "interaction.completed",
            "interaction.abandoned",
            "interaction.transferred",
            "callback.attempt_failed",
            "callback.exhausted",
        ):
            for record in rings:
                self._stop_callback(record, kind.split(".", 1)[1])

    def _callback_offered(
        self,
        event: Event,
        payload: dict[str, Any],
        agent_id: str,
        rings: list[CallbackCall],
        remote: bool,
    ) -> None:
        """Ring the offered agent's phones (once the claim is won); with ring-all, next to
        the other agents of the same offer, whose phones keep ringing."""
        attempt = payload.get("attempt")
        ring_all = bool(payload.get("ring_all"))
        for record in rings:
            if not (ring_all and record.attempt == attempt and record.agent_id != agent_id):
                self._stop_callback(record, "reoffered")  # a new offer: that ring is over
        interaction_id = str(payload.get("interaction_id"))
        record = CallbackCall(
            f"{interaction_id}/{agent_id}/{event.id}",
            interaction_id,
            event.tenant_id,
            agent_id,
            attempt=attempt,
        )
        self._callbacks.setdefault(interaction_id, {})[agent_id] = record
        self._rings[record.ring_id] = record
        self._spawn(self._ring_callback(record, remote))

    def _stop_callback(self, record: CallbackCall, reason: str) -> None:
        phones = self._callback_phones_impl()
        assert phones is not None
        log.info(
            "callback.stop",
            interaction_id=record.interaction_id,
            agent_id=record.agent_id,
            reason=reason,
        )
        self._forget_callback(record)
        phones.stop_callback(record.ring_id, reason)

    async def _ring_callback(self, record: CallbackCall, remote: bool) -> None:
        if not await self._claimed(record, remote):
            self._forget_callback(record)
            return
        phone = self._callback_phones.get(record.interaction_id) or await self._callback_number(
            record
        )
        if self._rings.get(record.ring_id) is not record:
            return
        if not phone:
            log.warning(
                "callback.no_phone_number",
                interaction_id=record.interaction_id,
                agent_id=record.agent_id,
            )
            self._forget_callback(record)
            return
        record.phone = phone
        phones = self._callback_phones_impl()
        assert phones is not None
        log.info(
            "callback.ringing_agent",
            interaction_id=record.interaction_id,
            agent_id=record.agent_id,
        )
        phones.ring_callback(
            record.ring_id, record.tenant_id, record.interaction_id, record.agent_id, phone
        )

    async def _claimed(self, record: CallbackCall, remote: bool) -> bool:
        """Whether this node rings for this offer: every node hears every offer, exactly
        one wins the claim (``SET NX``). A node that holds an open connection of one of the
        agent's phones claims at once, the others after :attr:`claim_head_start`. Without
        a claim (one node) always; when the claim cannot be asked, only the node whose
        engine made the offer rings."""
        claim = self.claim
        if claim is None:
            return True
        phones = self._callback_phones_impl()
        assert phones is not None
        try:
            direct = await phones.holds_phone_flow(record.tenant_id, record.agent_id)
        except Exception:
            log.exception("callback.flow_unknown", interaction_id=record.interaction_id)
            direct = False
        if not direct and self.claim_head_start > 0:
            await asyncio.sleep(self.claim_head_start)
        if self._rings.get(record.ring_id) is not record:
            return False  # called off meanwhile
        key = f"callback-ring:{record.tenant_id}:{record.ring_id}"
        try:
            won = await claim(key, CALLBACK_CLAIM_TTL)
        except Exception as exc:
            log.warning(
                "callback.claim_failed",
                interaction_id=record.interaction_id,
                agent_id=record.agent_id,
                error=repr(exc),
                rings=not remote,
            )
            return not remote
        if not won:
            log.info(
                "callback.rung_elsewhere",
                interaction_id=record.interaction_id,
                agent_id=record.agent_id,
            )
        return bool(won)

    async def _callback_number(self, record: CallbackCall) -> str | None:
        """The customer's number, read from the engine (``phone`` attribute, or the number
        given with the callback request)."""
        interaction_id = record.interaction_id

        def number(engine: Any) -> str | None:
            snapshot = engine.interaction_snapshot(interaction_id)
            value = snapshot.callback_phone or snapshot.attributes.get("phone")
            return value if isinstance(value, str) and value else None

        result = await self._read(record.tenant_id, number)  # None: the interaction is gone
        return result if isinstance(result, str) else None

    def callback_desk_only(self, ring_id: str, why: str) -> None:
        """The agent cannot be rung (no phone) or the number cannot be dialled from the
        agent's extension: the offer stays on the desk, as without this bridge."""
        record = self._rings.get(ring_id)
        if record is not None:
            log.info("callback.desk_only", interaction_id=record.interaction_id, why=why)
            self._forget_callback(record)

    def callback_placed(self, ring_id: str, call_id: str) -> bool:
        """The agent's phones ring for the callback (False: it was called off meanwhile)."""
        record = self._rings.get(ring_id)
        if record is None:
            return False
        record.call_id = call_id
        return True

    async def callback_agent_answered(self, ring_id: str) -> bool:
        """The agent's phone answered: ``accept``; True when the customer may be dialled
        (with ring-all the engine withdraws the other agents' offers: their phones stop)."""
        record = self._rings.get(ring_id)
        if record is None:
            return False
        record.accepted = True
        interaction_id = record.interaction_id
        try:
            await run_in_threadpool(
                self.routing.execute,
                record.tenant_id,
                "accept",
                interaction_id=interaction_id,
                agent_id=record.agent_id,
            )
        except DomainError as exc:
            log.info("callback.accept_refused", interaction_id=interaction_id, error=str(exc))
            self._forget_callback(record)
            return False
        if self._rings.get(ring_id) is not record:
            return False  # called off while accepting
        log.info("callback.dialling", interaction_id=interaction_id, agent_id=record.agent_id)
        return True

    def callback_connected(self, ring_id: str) -> None:
        record = self._rings.get(ring_id)
        if record is not None:
            record.connected = True
            log.info("callback.connected", interaction_id=record.interaction_id)

    async def callback_ended(self, ring_id: str, reason: str, status: int | None = None) -> None:
        """The callback's call ended (``reason`` as in ``call.ended``): ``reject`` when the
        agent's phones refused it, ``callback_failed`` when the customer was not reached,
        ``complete`` after a conversation."""
        record = self._rings.get(ring_id)
        if record is None:
            return
        self._forget_callback(record)
        interaction_id = record.interaction_id
        args = {"interaction_id": interaction_id, "agent_id": record.agent_id}
        if record.connected:
            name, extra = "complete", {}
        elif record.accepted:
            failure = CALLBACK_FAILURES.get(reason, "failed")
            name, extra = "callback_failed", {"reason": failure}
        elif reason in ("agent_unavailable", "agent_no_answer"):
            refusal = "no_answer" if reason == "agent_no_answer" else None
            refusal = refusal or FAILURE_REASONS.get(status or 0, "unreachable")
            name, extra = "reject", {"reason": refusal}
        else:
            return
        log.info("callback.outcome", interaction_id=interaction_id, command=name, reason=reason)
        try:
            await run_in_threadpool(self.routing.execute, record.tenant_id, name, **args, **extra)
        except DomainError as exc:
            log.info("callback.command_ignored", interaction_id=interaction_id, error=str(exc))

    async def callback_transferred(self, ring_id: str, number: str) -> None:
        """The agent's phone put the customer of a connected callback through to ``number``
        (REFER) and was released: a transfer out, as for a queue call (the interaction
        completes, the agent wraps up); the call goes on and is no longer ours to end."""
        record = self._rings.get(ring_id)
        if record is None or not record.connected:
            return
        self._forget_callback(record)  # first: the engine's events must not hang it up
        try:
            await run_in_threadpool(
                self.routing.execute,
                record.tenant_id,
                "transfer",
                interaction_id=record.interaction_id,
                agent_id=record.agent_id,
                to_number=number,
            )
        except DomainError as exc:
            log.info(
                "callback.transfer_ignored", interaction_id=record.interaction_id, error=str(exc)
            )
            return
        log.info("callback.transferred_out", interaction_id=record.interaction_id, to=number)

    def callbacks(self) -> list[CallbackCall]:
        return list(self._rings.values())

    def _forget_callback(self, record: CallbackCall) -> None:
        if self._rings.get(record.ring_id) is record:
            del self._rings[record.ring_id]
        rings = self._callbacks.get(record.interaction_id)
        if rings is not None and rings.get(record.agent_id) is record:
            del rings[record.agent_id]
            if not rings:
                del self._callbacks[record.interaction_id]

    def _consult_started(self, call: VoiceCall, payload: dict[str, Any]) -> None:
        agent_id = payload.get("consulted_agent_id")
        if not isinstance(agent_id, str):
            return
        if call.consult_agent is not None:
            log.warning(
                "voice.second_consult_refused",
                call_id=call.call_id,
                agent_id=agent_id,
                consulting=call.consult_agent,
            )
            self._spawn(
                self._quietly(
                    call,
                    "leave",
                    interaction_id=call.interaction_id,
                    agent_id=agent_id,
                    reason="second_consult_refused",
                )
            )
            return
        call.consult_agent, call.consult = agent_id, Consult.RINGING
        call.transfer_pending = False
        log.info("voice.consult_started", call_id=call.call_id, agent_id=agent_id)
        self.phones.consult_agent(call.call_id, agent_id)
        self._spawn(self._arm_consult_timer(call, agent_id))

    async def _arm_consult_timer(self, call: VoiceCall, agent_id: str) -> None:
        timeout = self.consult_timeout
        if timeout is None:
            timeout = await self._offer_timeout(call)
        if call.consult_agent != agent_id or call.consult is not Consult.RINGING:
            return
        self._stop_consult_timer(call)

        def expired() -> None:
            call.consult_timer = None
            self._spawn(self.consult_failed(call.call_id, agent_id, 408))

        call.consult_timer = asyncio.get_running_loop().call_later(timeout, expired)

    async def _offer_timeout(self, call: VoiceCall) -> float:
        """The ring time of the call's queue (20 s when it cannot be read)."""
        read = getattr(self.routing, "read", None)
        queue_id = call.queue_id
        if read is None or queue_id is None:
            return DEFAULT_CONSULT_TIMEOUT
        try:
            value = await run_in_threadpool(
                read, call.tenant_id, lambda e: e.queue_config(queue_id).offer_timeout_seconds
            )
        except Exception:  # the queue is gone, or a test double
            return DEFAULT_CONSULT_TIMEOUT
        if isinstance(value, int | float) and value > 0:
            return float(value)
        return DEFAULT_CONSULT_TIMEOUT

    def _consult_transferred(self, call: VoiceCall, payload: dict[str, Any]) -> None:
        to_agent = str(payload.get("to_agent_id"))
        old = call.agent_id
        call.agent_id = to_agent
        log.info(
            "voice.warm_transfer",
            call_id=call.call_id,
            from_agent=old,
            to_agent=to_agent,
            answered=call.consult is Consult.TALKING,
        )
        if call.consult is Consult.TALKING:
            self._clear_consult(call)
            self.phones.consult_transfer(call.call_id, to_agent)  # BYEs the old owner's leg
            return
        # Still ringing: the caller waits on hold; connected when the phone answers.
        call.transfer_pending = True
        if old is not None:
            self.phones.drop_agent(call.call_id, old, "transferred")

    def _conference_joined(self, call: VoiceCall, payload: dict[str, Any]) -> None:
        joined = payload.get("joined_agent_id")
        if not isinstance(joined, str):
            return
        # The relay does not mix audio yet: no conference on voice. The joined agent
        # leaves again (the engine's bookkeeping must not claim a conference); the caller
        # stays with the owner.
        log.warning("voice.conference_not_supported", call_id=call.call_id, agent_id=joined)
        if joined == call.consult_agent:
            self._clear_consult(call)
            self.phones.drop_consult(call.call_id, joined, "conference_not_supported")
            self.phones.reconnect(call.call_id)
        self._spawn(
            self._quietly(
                call,
                "leave",
                interaction_id=call.interaction_id,
                agent_id=joined,
                reason="conference_not_supported",
            )
        )

    def _clear_consult(self, call: VoiceCall) -> None:
        self._stop_consult_timer(call)
        call.consult_agent = call.consult = None
        call.transfer_pending = False

    @staticmethod
    def _stop_consult_timer(call: VoiceCall) -> None:
        if call.consult_timer is not None:
            call.consult_timer.cancel()
            call.consult_timer = None

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("voice.task_failed", error=repr(task.exception()))

    # ---- helpers ---------------------------------------------------------------------------

    async def _execute(self, call: VoiceCall, name: str, **args: Any) -> list[Event]:
        return await run_in_threadpool(self.routing.execute, call.tenant_id, name, **args)

    async def _quietly(self, call: VoiceCall, name: str, **args: Any) -> None:
        try:
            await self._execute(call, name, **args)
        except DomainError as exc:
            log.info("voice.command_ignored", call_id=call.call_id, command=name, error=str(exc))

    async def _finish(self, call: VoiceCall, agent_id: str) -> None:
        await self._quietly(call, "complete", interaction_id=call.interaction_id, agent_id=agent_id)

    def _forget(self, call: VoiceCall) -> None:
        self._stop_consult_timer(call)
        self._by_call.pop(call.call_id, None)
        self._by_interaction.pop(call.interaction_id, None)


def _remember(memory: dict[str, Any], key: str, value: Any) -> None:
    """``memory[key] = value``, forgetting the oldest entry past
    :data:`MAX_REMEMBERED_PHONES`."""
    if key not in memory and len(memory) >= MAX_REMEMBERED_PHONES:
        memory.pop(next(iter(memory)))
    memory[key] = value
