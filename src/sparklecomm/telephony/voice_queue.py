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
caller hangs up while connected     ``complete`` for the agent (then wrap-up)
agent hangs up                      ``complete`` (then wrap-up), caller released
``interaction.completed`` from the  release both legs
desktop
``interaction.transferred``         blind transfer: drop the agent's leg; the next
                                    ``offered`` rings the new agent and reconnects
=================================  ===============================================

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
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from starlette.concurrency import run_in_threadpool

from sparklecomm.core.errors import DomainError
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


class Routing(Protocol):
    """The part of :class:`~sparklecomm.acd.service.AcdService` the bridge uses."""

    def execute(self, tenant_id: str, name: str, **args: Any) -> list[Event]: ...

    def add_listener(self, listener: Callable[[str, list[Event]], None]) -> None: ...

    def remove_listener(self, listener: Callable[[str, list[Event]], None]) -> None: ...


class Phase(enum.Enum):
    QUEUED = "queued"  # waiting or being offered
    CONNECTED = "connected"
    ENDED = "ended"


@dataclass(slots=True)
class VoiceCall:
    call_id: str
    tenant_id: str
    interaction_id: str
    phase: Phase = Phase.QUEUED
    agent_id: str | None = None
    ringing: set[str] = field(default_factory=set)
    last_event_id: int = 0  # events of this call come from several nodes: drop older ones


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
    ) -> None:
        self.routing = routing
        self.phones = phones
        self._ids = ids
        self._by_call: dict[str, VoiceCall] = {}
        self._by_interaction: dict[str, VoiceCall] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
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
        return True

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

    async def agent_hung_up(self, call_id: str, agent_id: str) -> None:
        """The connected agent hung up: the interaction completes, the caller is released."""
        call = self._by_call.get(call_id)
        if call is None or call.phase is not Phase.CONNECTED or call.agent_id != agent_id:
            return
        call.phase = Phase.ENDED
        await self._finish(call, agent_id)
        self.phones.end_call(call_id, "agent_hung_up")
        self._forget(call)

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
            and e.payload.get("interaction_id") in self._by_interaction
        ]
        loop = self._loop
        if not mine or loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.handle(mine)
        else:
            loop.call_soon_threadsafe(self.handle, mine)

    def handle(self, events: Sequence[Event]) -> None:
        """Turn the engine's decisions about our calls into phone actions."""
        for event in events:
            payload = event.payload
            assert isinstance(payload, dict)
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
            elif kind == "interaction.transferred" and call.phase is Phase.CONNECTED:
                old = call.agent_id
                call.phase, call.agent_id = Phase.QUEUED, None
                if old is not None:
                    self.phones.drop_agent(call.call_id, old, "transferred")
                to_agent = payload.get("to_agent_id")
                if payload.get("kind") != "blind" and isinstance(to_agent, str):
                    # Consult/conference legs are not bridged by the B2BUA yet: the new
                    # owner gets the caller as if blind-transferred.
                    log.warning("voice.consult_transfer_as_blind", call_id=call.call_id)
                    call.phase, call.agent_id = Phase.CONNECTED, to_agent
                    self.phones.connect(call.call_id, to_agent)
            elif kind == "interaction.completed":
                call.phase = Phase.ENDED
                self.phones.end_call(call.call_id, "completed")
                self._forget(call)
            elif kind == "interaction.abandoned":
                call.phase = Phase.ENDED
                for ringing in sorted(call.ringing):
                    self.phones.stop_ringing(call.call_id, ringing, "abandoned")
                self.phones.end_call(call.call_id, "abandoned")
                self._forget(call)

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
        self._by_call.pop(call.call_id, None)
        self._by_interaction.pop(call.interaction_id, None)
