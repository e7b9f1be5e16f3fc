"""Click-to-dial through the ACD: a call an agent places is an outbound interaction.

Without this, an agent on a call they placed looked free to the routing engine, which could
ring them for a customer in the middle of it. :class:`OutboundCalls` keeps the two in step:

===================================  ===============================================
what happens                         what it does
===================================  ===============================================
the agent asks for a call            the engine is asked first (``outbound_refusal``):
(``POST /telephony/calls``)          an offer ringing or no room for a call → 409,
                                     nothing rings
the agent's phones ring              ``start_outbound``: the agent is busy at once
                                     (attributes ``to`` and ``call_id``); refused
                                     meanwhile (an offer came first) → the call is
                                     hung up, 409
the call ends (either side hangs     ``complete`` (then the queue's wrap-up)
up, no answer, busy, failed)
the agent's phone transfers the      ``transfer`` with ``to_number``: completed, the
customer to a number (REFER)         agent wraps up; the call goes on without them
``interaction.completed`` from the   hang the call up
desk while it is still going on
===================================  ===============================================

Users who are not routing agents, and agents not logged in, place calls as before: the
call is not an interaction. The interaction is reported under the agent's outbound queue
(``queue_id``, default: the agent's first voice queue) and counts as outbound work in the
KPIs (docs/kpis.md), never as an offered or answered contact.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from starlette.concurrency import run_in_threadpool

from sparklecomm.core.errors import Conflict, DomainError, NotFound
from sparklecomm.core.events import Event
from sparklecomm.core.ids import new_id
from sparklecomm.telephony.calls import Call

log = structlog.get_logger("sparklecomm.telephony.outbound")


class Routing(Protocol):
    """What this needs of :class:`~sparklecomm.acd.service.AcdService`."""

    def execute(self, tenant_id: str, name: str, **args: Any) -> list[Event]: ...

    def read(self, tenant_id: str, query: Any) -> Any: ...

    def add_listener(self, listener: Any) -> None: ...

    def remove_listener(self, listener: Any) -> None: ...


class Phones(Protocol):
    """What this needs of :class:`~sparklecomm.telephony.agent_phones.SipAgentPhones`."""

    async def place_call(
        self, tenant_id: str, agent_id: str, target: str, *, on_event: Any = None
    ) -> Call: ...

    def hang_up(self, call: Call, reason: str) -> None: ...


@dataclass
class OutboundCall:
    tenant_id: str
    interaction_id: str
    agent_id: str
    call: Call
    completed: bool = False


class OutboundCalls:
    """Places agents' calls and keeps their outbound interactions in step (module doc)."""

    def __init__(self, routing: Routing, phones: Phones) -> None:
        self.routing = routing
        self.phones = phones
        self._by_interaction: dict[str, OutboundCall] = {}
        self._by_call: dict[str, OutboundCall] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        routing.add_listener(self._listener)

    def close(self) -> None:
        self.routing.remove_listener(self._listener)

    def calls(self) -> list[OutboundCall]:
        return list(self._by_interaction.values())

    async def place(
        self,
        tenant_id: str,
        agent_id: str,
        number: str,
        *,
        queue_id: str | None = None,
        customer_id: str | None = None,
    ) -> tuple[Call, str | None]:
        """Ring the agent's phones for ``number``; returns the call and the id of its
        outbound interaction (None when the user is no logged-in agent). Raises the
        engine's :class:`~sparklecomm.core.errors.Conflict` before anything rings, and the
        phones' :class:`~sparklecomm.telephony.calls.OriginateRefused`."""
        self._loop = asyncio.get_running_loop()
        tracked = await self._check(tenant_id, agent_id)
        call = await self.phones.place_call(tenant_id, agent_id, number, on_event=self._on_call)
        if not tracked or call.ended:
            return call, None
        interaction_id = new_id()
        record = OutboundCall(tenant_id, interaction_id, agent_id, call)
        self._by_interaction[interaction_id] = record
        self._by_call[call.id] = record
        try:
            await run_in_threadpool(
                self.routing.execute,
                tenant_id,
                "start_outbound",
                interaction_id=interaction_id,
                agent_id=agent_id,
                queue_id=queue_id,
                channel="voice",
                customer_id=customer_id,
                attributes={"to": number, "call_id": call.id},
            )
        except DomainError:
            # An offer reached the agent (or the queue is wrong) between the check and now.
            self._forget(record)
            self.phones.hang_up(call, "outbound_refused")
            raise
        log.info("outbound.started", interaction_id=interaction_id, call=call.id, agent=agent_id)
        if call.ended:  # it ended while the engine was asked: complete it now
            self._spawn(self._complete(record, "ended_early"))
        return call, interaction_id

    async def _check(self, tenant_id: str, agent_id: str) -> bool:
        """Whether the call becomes an interaction; raises Conflict when the engine would
        refuse it (nothing has rung yet)."""

        def refusal(engine: Any) -> tuple[bool, str | None]:
            try:
                snapshot = engine.agent_snapshot(agent_id)
            except NotFound:
                return False, None  # not a routing agent: a plain PBX user
            if snapshot.state == "logged_out":
                return False, None
            return True, engine.outbound_refusal(agent_id, "voice")

        tracked, why = await run_in_threadpool(self.routing.read, tenant_id, refusal)
        if why is not None:
            raise Conflict(why, field="to")
        return bool(tracked)

    # ---- the call's side -------------------------------------------------------------------

    def _on_call(self, call: Call, what: str) -> None:
        record = self._by_call.get(call.id)
        if record is None or record.completed:
            return
        if what == "ended":
            self._spawn(self._complete(record, "call_ended"))
        elif what == "transferred" and call.transferred_to is not None:
            self._spawn(self._transferred_out(record, call.transferred_to))

    async def _transferred_out(self, record: OutboundCall, number: str) -> None:
        """The agent's phone put the customer through to ``number`` (REFER) and left: the
        interaction is transferred out (it completes, the agent wraps up); the call goes
        on without the agent and is no longer ours to hang up."""
        await self._end(record, "transfer", f"transferred to {number}", to_number=number)

    async def _complete(self, record: OutboundCall, why: str) -> None:
        await self._end(record, "complete", why)

    async def _end(self, record: OutboundCall, command: str, why: str, **args: Any) -> None:
        """The interaction ends by ``command`` (``complete``, or ``transfer`` out)."""
        record.completed = True
        self._forget(record)
        try:
            await run_in_threadpool(
                self.routing.execute,
                record.tenant_id,
                command,
                interaction_id=record.interaction_id,
                agent_id=record.agent_id,
                **args,
            )
        except DomainError as exc:  # completed on the desk meanwhile, or the agent removed
            log.info(
                "outbound.command_ignored",
                interaction_id=record.interaction_id,
                command=command,
                error=str(exc),
            )
            return
        log.info("outbound.completed", interaction_id=record.interaction_id, why=why)

    # ---- the engine's side -----------------------------------------------------------------

    def _listener(self, tenant_id: str, events: list[Event]) -> None:
        """Any thread: an outbound interaction of ours ended on the desk → hang up."""
        ended = [
            e.payload.get("interaction_id")
            for e in events
            if e.type == "interaction.completed"
            and isinstance(e.payload, dict)
            and e.payload.get("interaction_id") in self._by_interaction
        ]
        loop = self._loop
        if not ended or loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._ended_by_engine, [str(i) for i in ended])

    def _ended_by_engine(self, interaction_ids: Sequence[str]) -> None:
        for interaction_id in interaction_ids:
            record = self._by_interaction.get(interaction_id)
            if record is None or record.completed:
                continue
            record.completed = True
            self._forget(record)
            log.info("outbound.hang_up", interaction_id=interaction_id, call=record.call.id)
            self.phones.hang_up(record.call, "completed")

    # ---- helpers ---------------------------------------------------------------------------

    def _forget(self, record: OutboundCall) -> None:
        self._by_interaction.pop(record.interaction_id, None)
        self._by_call.pop(record.call.id, None)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        self.close()
