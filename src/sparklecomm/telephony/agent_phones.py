"""Agents' phones for the ACD: the B2BUA side of :mod:`sparklecomm.telephony.voice_queue`.

:class:`SipAgentPhones` is three things at once:

* the B2BUA's queue handler: a call the dial plan sends to a queue gets ringback (180) and
  becomes an ACD interaction (:meth:`handle_queue_call`);
* the :class:`~sparklecomm.telephony.voice_queue.AgentPhones` the bridge drives: ring an
  agent's phones (every registered contact of the extensions whose ``user_id`` is the
  agent), stop ringing, connect, drop the agent's leg, end the call;
* the B2BUA's :class:`~sparklecomm.telephony.calls.AgentLegListener`: an agent's phone
  answered or failed, a queue call ended (caller or agent hung up);
* the same for consultations (warm transfer): ring the consulted agent's phones, switch
  the relay between caller, owner and consulted agent, complete the transfer; and back,
  the consulted phone answered, failed or hung up, or the owner hung up while consulting;
* calls placed for an agent (:meth:`place_call`, click-to-dial) and the bridge's
  :class:`~sparklecomm.telephony.voice_queue.CallbackPhones`: a queued callback rings the
  agent's phones, and once the engine accepts, the customer is dialled
  (:meth:`CallManager.originate`).

A queue call needs an SDP offer in the caller's INVITE (every desk phone and softphone sends
one); a late-offer INVITE to a queue gets 488.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from sparklecomm.core.errors import DomainError
from sparklecomm.telephony.call_recording import CallFacts
from sparklecomm.telephony.calls import Call, CallManager, OriginateRefused
from sparklecomm.telephony.pbx.routes import IvrMenu, ToQueue
from sparklecomm.telephony.voice_queue import VoiceQueue

if TYPE_CHECKING:
    from sparklecomm.telephony.waiting import WaitingRoom

log = structlog.get_logger("sparklecomm.telephony.agent_phones")


class SurveyAnswers(Protocol):
    """Where post-call survey answers go (:class:`~sparklecomm.surveys.SurveyService`)."""

    async def survey_answered(
        self,
        tenant_id: str,
        *,
        interaction_id: str,
        queue_id: str | None,
        agent_id: str | None,
        channel: str,
        score: int,
        max_score: int,
        source: str,
        comment: str | None = None,
    ) -> dict[str, Any]: ...


AgentExtensions = Callable[[str, str], Awaitable[Sequence[str]]]
"""``(tenant_id, agent_id)`` → the agent's extension numbers."""


class CallRecords(Protocol):
    """Told of every call placed here or handed to a queue here, and of its end, so that
    other nodes find it (:class:`~sparklecomm.telephony.call_directory.CallDirectory`)."""

    async def placed(self, call: Call) -> None: ...

    async def queued(self, call: Call) -> None: ...

    def ended(self, call: Call) -> None: ...


class SipAgentPhones:
    """Connects a :class:`CallManager` and a :class:`VoiceQueue` (see the module docstring)."""

    def __init__(self, manager: CallManager, extensions: AgentExtensions) -> None:
        self.manager = manager
        self.extensions = extensions
        self.queue: VoiceQueue | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._callback_calls: dict[str, str] = {}
        """Ring (one offered agent of a callback) → the id of the call placed for it."""
        self.callback_ring_seconds = 300.0
        """A callback's ringing on the agent's phones ends with the engine's offer (its
        timeout); this is only a backstop."""
        self.callback_answer_timeout = 60.0
        """How long the customer's phone may ring."""
        self.directory: CallRecords | None = None
        self.surveys: SurveyAnswers | None = None
        """Where the answers of post-call surveys go (``None``: callers are not asked)."""
        """Set with several nodes: where the calls placed or queued here are recorded."""

    @property
    def waiting_room(self) -> WaitingRoom | None:
        """Music on hold and announcements for waiting callers (``None``: ringback only):
        the manager's, which also plays voice menus."""
        room: WaitingRoom | None = getattr(self.manager, "waiting_room", None)
        return room

    @waiting_room.setter
    def waiting_room(self, room: WaitingRoom | None) -> None:
        self.manager.waiting_room = room

    def attach(self, queue: VoiceQueue) -> None:
        """Use ``queue`` and become the manager's queue handler and agent-leg listener."""
        self.queue = queue
        self.manager.queue_handler = self.handle_queue_call
        self.manager.agent_listener = self

    def call_facts(self, call: Call) -> CallFacts:
        """What routing knows of ``call`` (its interaction, queue and connected agent), for
        its recording; nothing for a call that is not a queue's."""
        record = self.queue.routed(call.id) if self.queue is not None else None
        if record is None:
            return CallFacts()
        return CallFacts(record.interaction_id, record.queue_id, record.agent_id)

    # ---- the B2BUA's queue handler ---------------------------------------------------------

    async def handle_queue_call(self, call: Call, route: ToQueue) -> None:
        manager = self.manager
        queue = self.queue
        if queue is None:
            manager.end_call(call, "no_queue")
            return
        if call.a.remote_sdp is None:
            manager.reject(call, 488, "Not Acceptable Here - SDP offer required", "no_offer")
            return
        self._waiting_media(call, await self._waiting_config(queue, route))
        request = call.request
        try:
            await queue.enqueue(
                call.id,
                route,
                caller=call.caller,
                caller_name=request.caller_name if request is not None else None,
            )
        except DomainError as error:
            log.warning(
                "voice.queue_refused", call=call.id, queue_id=route.queue_id, error=str(error)
            )
            manager.reject(call, 480, "Temporarily Unavailable", "queue_refused")
            return
        call.queue = True
        if call.ended:  # the caller hung up while the interaction was being created
            await queue.caller_hung_up(call.id)
        elif self.directory is not None:  # from now on, call_ended tells its end
            await self.directory.queued(call)

    async def _waiting_config(self, queue: VoiceQueue, route: ToQueue) -> Any:
        if self.waiting_room is None:
            return None
        return await queue.waiting_media(route.tenant_id, route.queue_id)

    def _waiting_media(self, call: Call, config: Any) -> None:
        """Early media with music and announcements when the queue wants them (and the call
        allows them), else ringback. A call diverted from a queue with music keeps it."""
        manager = self.manager
        room = self.waiting_room
        if room is not None and call.waiting is not None:
            # Answered for a voice menu, or diverted from a queue with music: the caller
            # keeps hearing the platform, now with this queue's settings.
            if config is not None and self.queue is not None:
                call.waiting.enter_queue(config, self.queue)
            else:
                call.waiting.hold()  # the queue's settings unknown: music only
            return
        if (
            room is not None
            and config is not None
            and config.music_on_hold
            and self.queue is not None
        ):
            if call.ended or call.cancelled:
                return
            answer = manager.early_media(call)
            if answer is not None:
                room.start(call, answer, config, self.queue)
                return
        manager.ringback(call)  # nothing new for a call that has early media already

    # ---- calls placed for an agent (click-to-dial) --------------------------------------

    async def place_call(
        self,
        tenant_id: str,
        agent_id: str,
        target: str,
        *,
        ring_seconds: float = 30.0,
        answer_timeout: float = 60.0,
        on_event: Callable[[Call, str], None] | None = None,
    ) -> Call:
        """Ring the agent's phones, then dial ``target`` as the agent's (first) extension
        would (:meth:`CallManager.originate`; ``on_event`` hears ``connected`` and
        ``ended``); raises :class:`~sparklecomm.telephony.calls.OriginateRefused` before
        anything rings."""
        numbers = await self.extensions(tenant_id, agent_id)
        call = await self.manager.originate(
            tenant_id,
            list(numbers),
            target,
            agent_id=agent_id,
            ring_seconds=ring_seconds,
            answer_timeout=answer_timeout,
            source=f"click-to-dial:{agent_id}",
            on_event=self._recorded(on_event),
        )
        if self.directory is not None:
            await self.directory.placed(call)
        return call

    def hang_up(self, call: Call, reason: str) -> None:
        """End a call placed for an agent (both legs)."""
        self.manager.end_call(call, reason)

    def _recorded(
        self, on_event: Callable[[Call, str], None] | None
    ) -> Callable[[Call, str], None] | None:
        """``on_event``, and the directory told when the call ends (with several nodes)."""
        directory = self.directory
        if directory is None:
            return on_event

        def told(call: Call, what: str) -> None:
            if what == "ended":
                directory.ended(call)
            if on_event is not None:
                on_event(call, what)

        return told

    # ---- CallbackPhones: queued callbacks placed through the agent's phones --------------

    def ring_callback(
        self, ring_id: str, tenant_id: str, interaction_id: str, agent_id: str, phone: str
    ) -> None:
        self._spawn(self._ring_callback(ring_id, tenant_id, interaction_id, agent_id, phone))

    async def holds_phone_flow(self, tenant_id: str, agent_id: str) -> bool:
        numbers = await self.extensions(tenant_id, agent_id)
        return bool(numbers) and await self.manager.holds_flow(numbers)

    async def _ring_callback(
        self, ring_id: str, tenant_id: str, interaction_id: str, agent_id: str, phone: str
    ) -> None:
        queue = self.queue
        if queue is None:
            return
        numbers = await self.extensions(tenant_id, agent_id)
        if not numbers:
            queue.callback_desk_only(ring_id, "no_extension")
            return

        async def confirm(call: Call) -> bool:
            return await queue.callback_agent_answered(ring_id)

        def on_event(call: Call, what: str) -> None:
            placed = call.placed
            if what == "connected":
                queue.callback_connected(ring_id)
            elif what == "transferred" and call.transferred_to is not None:
                if self._callback_calls.get(ring_id) == call.id:
                    del self._callback_calls[ring_id]
                self._spawn(queue.callback_transferred(ring_id, call.transferred_to))
            elif what == "ended" and placed is not None:
                if self._callback_calls.get(ring_id) == call.id:
                    del self._callback_calls[ring_id]
                self._spawn(queue.callback_ended(ring_id, placed.outcome, placed.status))

        try:
            call = await self.manager.originate(
                tenant_id,
                list(numbers),
                phone,
                agent_id=agent_id,
                ring_seconds=self.callback_ring_seconds,
                answer_timeout=self.callback_answer_timeout,
                source=f"callback:{interaction_id}",
                confirm=confirm,
                on_event=self._recorded(on_event),
            )
        except OriginateRefused as refused:
            if refused.kind == "dial_plan":
                log.warning(
                    "callback.number_refused",
                    interaction_id=interaction_id,
                    status=refused.status,
                    reason=refused.reason,
                )
            queue.callback_desk_only(ring_id, refused.kind)
            return
        if self.directory is not None:
            await self.directory.placed(call)
        if call.ended:
            return
        self._callback_calls[ring_id] = call.id
        if not queue.callback_placed(ring_id, call.id):  # called off meanwhile
            self.stop_callback(ring_id, "called_off")

    def stop_callback(self, ring_id: str, reason: str) -> None:
        call_id = self._callback_calls.pop(ring_id, None)
        call = self.manager.calls.get(call_id) if call_id is not None else None
        if call is not None:
            log.info("callback.hang_up", call=call.id, ring=ring_id, reason=reason)
            self.manager.end_call(call, reason)

    # ---- AgentPhones (driven by the bridge) ------------------------------------------------

    def ring_agent(self, call_id: str, agent_id: str) -> None:
        call = self.manager.calls.get(call_id)
        if call is None or call.ended:
            return
        self._spawn(self._ring(call, agent_id))

    async def _ring(self, call: Call, agent_id: str) -> None:
        tenant = call.tenant_id
        numbers = await self.extensions(tenant, agent_id) if tenant is not None else ()
        rung = await self.manager.ring_agent(call, agent_id, numbers) if numbers else 0
        if rung == 0 and self.queue is not None and not call.ended:
            log.info("voice.agent_unreachable", call=call.id, agent_id=agent_id, phones=numbers)
            await self.queue.agent_failed(call.id, agent_id, 480)

    def stop_ringing(self, call_id: str, agent_id: str, reason: str) -> None:
        call = self.manager.calls.get(call_id)
        if call is not None:
            log.info("voice.stop_ringing", call=call_id, agent_id=agent_id, reason=reason)
            self.manager.stop_ringing_agent(call, agent_id)

    def connect(self, call_id: str, agent_id: str) -> None:
        call = self.manager.calls.get(call_id)
        if call is not None and self.manager.connect_agent(call, agent_id):
            return
        # The agent's phone hung up between answering and the engine's accept.
        log.info("voice.connect_failed", call=call_id, agent_id=agent_id)
        if self.queue is not None:
            self._spawn(self.queue.agent_hung_up(call_id, agent_id))

    def drop_agent(self, call_id: str, agent_id: str, reason: str) -> None:
        call = self.manager.calls.get(call_id)
        if call is not None:
            log.info("voice.drop_agent", call=call_id, agent_id=agent_id, reason=reason)
            self.manager.drop_agent(call, agent_id)

    def end_call(self, call_id: str, reason: str) -> None:
        call = self.manager.calls.get(call_id)
        if call is not None:
            self.manager.end_call(call, reason)

    def divert(self, call_id: str, target: str, reason: str) -> None:
        call = self.manager.calls.get(call_id)
        if call is not None:
            self._spawn(self._divert(call, target, reason))

    async def _divert(self, call: Call, target: str, reason: str) -> None:
        await self.manager.divert(call, target, reason)
        if not call.queue and self.directory is not None:  # routed on outside the queues
            self.directory.ended(call)

    def consult_agent(self, call_id: str, agent_id: str) -> None:
        call = self.manager.calls.get(call_id)
        if call is None or call.ended:
            return
        self._spawn(self._consult(call, agent_id))

    async def _consult(self, call: Call, agent_id: str) -> None:
        tenant = call.tenant_id
        numbers = await self.extensions(tenant, agent_id) if tenant is not None else ()
        rung = await self.manager.consult_agent(call, agent_id, numbers) if numbers else 0
        if rung == 0 and self.queue is not None and not call.ended:
            log.info("voice.consult_unreachable", call=call.id, agent_id=agent_id, phones=numbers)
            await self.queue.consult_failed(call.id, agent_id, 480)

    def consult_connect(self, call_id: str, agent_id: str) -> None:
        call = self.manager.calls.get(call_id)
        if call is not None and self.manager.consult_connect(call, agent_id):
            return
        log.info("voice.consult_connect_failed", call=call_id, agent_id=agent_id)
        if self.queue is not None:
            self._spawn(self.queue.consult_hung_up(call_id, agent_id))

    def consult_transfer(self, call_id: str, agent_id: str) -> None:
        call = self.manager.calls.get(call_id)
        if call is not None and self.manager.consult_transfer(call, agent_id):
            return
        # The consulted phone hung up just before: the call has nobody left to talk to.
        log.info("voice.consult_transfer_failed", call=call_id, agent_id=agent_id)
        if self.queue is not None:
            self._spawn(self.queue.agent_hung_up(call_id, agent_id))

    def drop_consult(self, call_id: str, agent_id: str, reason: str) -> None:
        call = self.manager.calls.get(call_id)
        if call is not None:
            log.info("voice.drop_consult", call=call_id, agent_id=agent_id, reason=reason)
            self.manager.drop_consult(call, agent_id)

    def reconnect(self, call_id: str) -> None:
        call = self.manager.calls.get(call_id)
        if call is not None:
            self.manager.consult_reconnect(call)

    # ---- AgentLegListener (told by the B2BUA) ----------------------------------------------

    def agent_answered(self, call: Call, agent_id: str) -> None:
        if self.queue is not None:
            self._spawn(self.queue.agent_answered(call.id, agent_id))

    def agent_failed(self, call: Call, agent_id: str, status: int) -> None:
        if self.queue is not None:
            self._spawn(self.queue.agent_failed(call.id, agent_id, status))

    def survey_after(self, call: Call, agent_id: str) -> bool:
        """Whether the caller stays for the queue's post-call survey now that ``agent_id``
        (connected to them) hung up."""
        record = self.queue.routed(call.id) if self.queue is not None else None
        return (
            self.surveys is not None
            and record is not None
            and record.survey is not None
            and record.agent_id == agent_id
            and record.consult_agent is None
        )

    def agent_left_for_survey(self, call: Call, agent_id: str, description: Any) -> None:
        """The agent hung up and the caller stays for the survey (:meth:`survey_after`):
        the interaction completes, the caller is asked, the answer is stored."""
        self._spawn(self._survey(call, agent_id, description))

    async def _survey(self, call: Call, agent_id: str, description: Any) -> None:
        queue = self.queue
        record = queue.routed(call.id) if queue is not None else None
        if queue is None or record is None or record.survey is None:
            self.manager.end_call(call, "callee_hangup")
            return
        survey, interaction_id, queue_id = record.survey, record.interaction_id, record.queue_id
        await queue.agent_hung_up(call.id, agent_id, caller_stays=True)
        menu = IvrMenu("survey", survey.prompt, survey.keys, timeout_seconds=8.0, attempts=2)
        key = await self.manager.survey(call, description, menu, survey.thanks)
        if key is None or self.surveys is None or call.tenant_id is None:
            return
        try:
            await self.surveys.survey_answered(
                call.tenant_id,
                interaction_id=interaction_id,
                queue_id=queue_id,
                agent_id=agent_id,
                channel="voice",
                score=survey.score_of(key),
                max_score=survey.max_score,
                source="phone",
            )
        except Exception:  # the caller was thanked; the log says why it is not counted
            log.exception("voice.survey_not_stored", call_id=call.id)

    def call_ended(self, call: Call, reason: str) -> None:
        if self.directory is not None:
            self.directory.ended(call)
        queue = self.queue
        if queue is None:
            return
        b = call.legs.get("b")
        if reason == "callee_hangup" and b is not None and b.agent_id is not None:
            self._spawn(queue.agent_hung_up(call.id, b.agent_id))
        else:
            self._spawn(queue.caller_hung_up(call.id))

    def consult_answered(self, call: Call, agent_id: str) -> None:
        if self.queue is not None:
            self._spawn(self.queue.consult_answered(call.id, agent_id))

    def consult_failed(self, call: Call, agent_id: str, status: int) -> None:
        if self.queue is not None:
            self._spawn(self.queue.consult_failed(call.id, agent_id, status))

    def consult_ended(self, call: Call, agent_id: str) -> None:
        if self.queue is not None:
            self._spawn(self.queue.consult_hung_up(call.id, agent_id))

    def owner_left(self, call: Call, agent_id: str) -> None:
        if self.queue is not None:
            self._spawn(self.queue.agent_hung_up(call.id, agent_id))

    def transfer_to_number(self, call_id: str, agent_id: str, number: str) -> bool:
        """The agent desk puts the caller (or the dialled customer) through to ``number``
        (:meth:`CallManager.transfer_to_number`); False when the call is not held here, the
        agent is not connected on it, or a transfer is already going on."""
        call = self.manager.calls.get(call_id)
        if call is None:
            return False
        return self.manager.transfer_to_number(call, agent_id, number)

    async def agent_transferred_to_queue(self, call: Call, agent_id: str, queue_id: str) -> bool:
        """The agent put the caller through to a number that leads to a queue: a transfer
        to that queue in routing (:meth:`VoiceQueue.transfer_to_queue`)."""
        if self.queue is None:
            return False
        return await self.queue.transfer_to_queue(call.id, agent_id, queue_id)

    def agent_transferred(self, call: Call, agent_id: str, number: str) -> None:
        call.queue = False  # the call goes on outside routing
        if self.directory is not None:  # its end is no longer told here
            self.directory.ended(call)
        if self.queue is not None:
            self._spawn(self.queue.agent_transferred(call.id, agent_id, number))

    # ---- helpers ---------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("voice.task_failed", error=repr(task.exception()))

    async def close(self) -> None:
        if self.queue is not None:
            self.queue.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
