"""Which node holds each call, so that any node can hang it up or put it through.

A call lives in the memory of the node whose B2BUA holds it: a placed call (click-to-dial,
a queued callback rung on the agent's phones) on the node that placed it, a caller waiting
in or served by an ACD queue on the node it came in on. With several nodes behind a load
balancer, ``DELETE /api/v1/telephony/calls/{call_id}`` or ``POST
/api/v1/interactions/{id}/transfer-to-number`` may reach another one. So, with the Redis
bus:

* the node holding a call records ``call:<call_id>`` → ``{node, tenant_id, agent_id,
  kind}`` in Redis (``kind``: ``placed``, before the API answers 202; ``queue``, once the
  caller is handed to the queue; a record without ``kind``, from an older node, is a placed
  call), kept :data:`RECORD_TTL` seconds and refreshed every third of that while the call
  goes on, deleted when it ends or leaves routing (a node that dies leaves its records to
  expire);
* a node asked about a call it does not hold looks the record up and sends the request to
  the owner node over the bus (:meth:`RedisBus.ask <sparklecomm.bus.redis.RedisBus.ask>`):
  a hang-up (:data:`HANG_UP`, placed calls only) with the user's organisation, id and
  whether they are a supervisor; a transfer to a number (:data:`TRANSFER_TO_NUMBER`) with
  the organisation, the agent and the number;
* the owner decides exactly as for a local request (:func:`may_hang_up`: the call is still
  going on, of that organisation, and the user's own or the user is a supervisor;
  :meth:`SipAgentPhones.transfer_to_number
  <sparklecomm.telephony.agent_phones.SipAgentPhones.transfer_to_number>`: the agent is
  connected on it and no transfer is going on), acts and answers; no answer within
  :attr:`CallDirectory.answer_timeout` seconds (the node died, or Redis lost the request)
  is told apart from "no such call".

Without Redis there is one node, and a call it does not hold does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import structlog

from sparklecomm.core.errors import DomainError, Unavailable
from sparklecomm.telephony.calls import Call

if TYPE_CHECKING:
    from sparklecomm.bus.redis import RequestHandler
    from sparklecomm.telephony.agent_phones import SipAgentPhones

log = structlog.get_logger("sparklecomm.telephony.call_directory")

RECORD_TTL = 60.0
"""How long a call's record lives without a refresh (a dead node's records go)."""
ANSWER_TIMEOUT = 3.0
"""How long a forwarded request waits for the owner node's answer."""
HANG_UP = "call.hang_up"
TRANSFER_TO_NUMBER = "call.transfer_to_number"
RECORDING = "call.recording"

CallKind = Literal["placed", "queue"]
"""A call the platform placed for an agent, or a caller handed to an ACD queue."""
Unanswered = Literal["not_found", "no_answer", "unreachable"]
"""``not_found``: no node holds such a call for this user; ``no_answer``: the owner did
not answer in time; ``unreachable``: Redis could not be asked."""
HangUpOutcome = Literal["hung_up", "not_found", "no_answer", "unreachable"]
"""``hung_up``: the owner node hung the call up; otherwise see :data:`Unanswered`."""
TransferOutcome = Literal["accepted", "refused", "not_found", "no_answer", "unreachable"]
"""``accepted``: the owner node dials the number; ``refused``: the agent is not connected
on the call, or a transfer is already going on; otherwise see :data:`Unanswered`."""


@runtime_checkable
class SharedBus(Protocol):
    """What the directory needs of :class:`~sparklecomm.bus.redis.RedisBus`."""

    node_id: str

    async def remember(self, records: Mapping[str, str], ttl_seconds: float) -> None: ...

    async def recall(self, key: str) -> str | None: ...

    async def forget(self, key: str) -> None: ...

    def on_request(self, kind: str, handler: RequestHandler) -> None: ...

    async def ask(
        self, node_id: str, kind: str, body: dict[str, Any], wait_seconds: float
    ) -> dict[str, Any] | None: ...


def may_hang_up(call: Call | None, tenant_id: str, user_id: str, supervisor: bool) -> bool:
    """Whether the user may hang ``call`` up: a placed call still going on, of their
    organisation, and theirs unless they are a supervisor (once their phone transferred it
    to another number, it is no longer theirs)."""
    if call is None or call.placed is None or call.ended or call.tenant_id != tenant_id:
        return False
    if supervisor:
        return True
    return call.placed.agent_id == user_id and call.transferred_to is None


def check_reached(outcome: str, call_id: str) -> None:
    """Raise :class:`~sparklecomm.core.errors.Unavailable` (503) when a forwarded request
    found no one to answer it (``no_answer``: the node holding the call; ``unreachable``:
    Redis)."""
    if outcome == "no_answer":
        raise Unavailable(
            f"The node holding call {call_id!r} did not answer; try again (a node that "
            "stopped takes its calls with it)."
        )
    if outcome == "unreachable":
        raise Unavailable("Calls of other nodes cannot be reached: Redis does not answer.")


def _key(call_id: str) -> str:
    return f"call:{call_id}"


class CallDirectory:
    """The records of this node's calls, and requests about them to and from other nodes."""

    def __init__(
        self, bus: SharedBus, *, ttl: float = RECORD_TTL, answer_timeout: float = ANSWER_TIMEOUT
    ) -> None:
        self.bus = bus
        self.ttl = ttl
        self.answer_timeout = answer_timeout
        self.phones: SipAgentPhones | None = None
        self._held: dict[str, str] = {}
        """Call id → its record (JSON), for the calls of this node."""
        self._refresher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self.bus.on_request(HANG_UP, self._hang_up_here)
        self.bus.on_request(TRANSFER_TO_NUMBER, self._transfer_here)
        self.bus.on_request(RECORDING, self._recording_here)
        self._refresher = asyncio.get_running_loop().create_task(
            self._refresh(), name="call-directory-refresh"
        )

    def serve(self, phones: SipAgentPhones | None) -> None:
        """Record the calls ``phones`` holds and act on them for other nodes (None: this
        node holds no calls)."""
        if self.phones is not None:
            self.phones.directory = None
        self.phones = phones
        if phones is not None:
            phones.directory = self

    async def stop(self) -> None:
        self.serve(None)
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await asyncio.gather(*self._tasks, return_exceptions=True)
        held, self._held = list(self._held), {}
        for call_id in held:  # the calls die with this node: no one may look for them here
            with contextlib.suppress(Exception):
                await self.bus.forget(_key(call_id))

    def held(self) -> list[str]:
        """The ids of the calls recorded for this node."""
        return list(self._held)

    # ---- this node's calls -----------------------------------------------------------------

    async def placed(self, call: Call) -> None:
        """Record ``call`` (just placed here); a Redis failure (or no answer within
        :attr:`answer_timeout`) is logged, not raised: the call goes on, only other nodes
        cannot reach it."""
        if call.ended or call.placed is None:
            return
        await self._record(call, "placed", call.placed.agent_id)

    async def queued(self, call: Call) -> None:
        """Record ``call`` (a caller just handed to an ACD queue here), as :meth:`placed`;
        which agent it is connected to, routing knows (its interaction)."""
        if call.ended:
            return
        await self._record(call, "queue", None)

    async def _record(self, call: Call, kind: CallKind, agent_id: str | None) -> None:
        node = self.bus.node_id
        record = json.dumps(
            {"node": node, "tenant_id": call.tenant_id, "agent_id": agent_id, "kind": kind}
        )
        self._held[call.id] = record
        try:
            async with asyncio.timeout(self.answer_timeout):  # a stuck Redis never holds a call
                await self.bus.remember({_key(call.id): record}, self.ttl)
        except Exception as error:
            log.warning("call_directory.not_recorded", call=call.id, error=str(error))
            return
        if call.id not in self._held:  # it ended while the record was written
            await self._forget(call.id)

    def ended(self, call: Call) -> None:
        """``call`` ended here, or left routing (a queue call put through to a number or
        diverted by its queue): its record goes (a forwarded request would find nothing)."""
        if self._held.pop(call.id, None) is not None:
            task = asyncio.get_running_loop().create_task(self._forget(call.id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _forget(self, call_id: str) -> None:
        try:
            await self.bus.forget(_key(call_id))
        except Exception as error:  # it expires by itself
            log.warning("call_directory.not_forgotten", call=call_id, error=str(error))

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            held = dict(self._held)
            try:
                # Written again rather than only extended: a Redis restarted meanwhile
                # learns them again.
                await self.bus.remember({_key(c): r for c, r in held.items()}, self.ttl)
            except Exception as error:
                log.warning("call_directory.not_refreshed", calls=len(held), error=str(error))
                continue
            for call_id in held:
                if call_id not in self._held:  # ended while being refreshed
                    await self._forget(call_id)

    async def _hang_up_here(self, body: dict[str, Any]) -> dict[str, Any]:
        """Another node forwards a user's hang-up: decided as for a request made here."""
        call_id = str(body.get("call_id", ""))
        tenant_id = str(body.get("tenant_id", ""))
        user_id = str(body.get("user_id", ""))
        supervisor = body.get("supervisor") is True
        phones = self.phones
        call = phones.manager.calls.get(call_id) if phones is not None else None
        if phones is None or call is None or not may_hang_up(call, tenant_id, user_id, supervisor):
            return {"status": "not_found"}
        log.info("call_directory.hang_up", call=call_id, user_id=user_id, forwarded=True)
        phones.hang_up(call, "cancelled")
        return {"status": "hung_up"}

    async def _transfer_here(self, body: dict[str, Any]) -> dict[str, Any]:
        """Another node forwards an agent desk's transfer to a number: done as for a request
        made here (the organisation checked, since the call id came from the other node)."""
        call_id = str(body.get("call_id", ""))
        tenant_id = str(body.get("tenant_id", ""))
        agent_id = str(body.get("agent_id", ""))
        number = body.get("number")
        phones = self.phones
        call = phones.manager.calls.get(call_id) if phones is not None else None
        if phones is None or call is None or call.tenant_id != tenant_id:
            return {"status": "not_found"}
        if not isinstance(number, str) or not number:
            return {"status": "refused"}
        if not phones.transfer_to_number(call_id, agent_id, number):
            return {"status": "refused"}
        log.info("call_directory.transfer", call=call_id, agent_id=agent_id, forwarded=True)
        return {"status": "accepted"}

    async def _recording_here(self, body: dict[str, Any]) -> dict[str, Any]:
        """Another node forwards a user's recording request (start, pause, resume, stop or
        ``state``): decided as for a request made here."""
        call_id = str(body.get("call_id", ""))
        phones = self.phones
        call = phones.manager.calls.get(call_id) if phones is not None else None
        recordings = getattr(phones.manager, "recordings", None) if phones is not None else None
        if call is None:
            return {"status": "not_found"}
        if recordings is None:
            return {"status": "unavailable"}
        try:
            state = await recordings.control(
                call,
                tenant_id=str(body.get("tenant_id", "")),
                user_id=str(body.get("user_id", "")),
                supervisor=body.get("supervisor") is True,
                action=str(body.get("action", "")),
            )
        except DomainError as error:
            return {"status": "refused", "detail": str(error), "code": error.status}
        if state is None:
            return {"status": "not_found"}
        return {"status": "ok", "state": state}

    # ---- other nodes' calls ----------------------------------------------------------------

    async def recording(
        self, call_id: str, *, tenant_id: str, user_id: str, supervisor: bool, action: str
    ) -> dict[str, Any] | Unanswered:
        """Ask the node holding ``call_id`` to act on its recording for this user: its
        answer (``status``: ``ok`` with ``state``, ``refused`` with ``detail``,
        ``not_found`` or ``unavailable``), or why no answer came."""
        body = {
            "call_id": call_id,
            "tenant_id": tenant_id,
            "user_id": user_id,
            "supervisor": supervisor,
            "action": action,
        }
        return await self._ask_owner(call_id, tenant_id, RECORDING, body)

    async def hang_up(
        self, call_id: str, *, tenant_id: str, user_id: str, supervisor: bool
    ) -> HangUpOutcome:
        """Hang up a call another node holds, for this user (see the module docstring)."""
        body = {
            "call_id": call_id,
            "tenant_id": tenant_id,
            "user_id": user_id,
            "supervisor": supervisor,
        }
        answer = await self._ask_owner(call_id, tenant_id, HANG_UP, body, placed_only=True)
        if isinstance(answer, str):
            return answer
        return "hung_up" if answer.get("status") == "hung_up" else "not_found"

    async def transfer_to_number(
        self, call_id: str, *, tenant_id: str, agent_id: str, number: str
    ) -> TransferOutcome:
        """Put a call another node holds through to ``number``, for the agent connected on
        it (see the module docstring)."""
        body = {"call_id": call_id, "tenant_id": tenant_id, "agent_id": agent_id, "number": number}
        answer = await self._ask_owner(call_id, tenant_id, TRANSFER_TO_NUMBER, body)
        if isinstance(answer, str):
            return answer
        status = answer.get("status")
        if status == "accepted":
            return "accepted"
        return "refused" if status == "refused" else "not_found"

    async def _ask_owner(
        self,
        call_id: str,
        tenant_id: str,
        kind: str,
        body: dict[str, Any],
        *,
        placed_only: bool = False,
    ) -> dict[str, Any] | Unanswered:
        """The answer of the node the record of ``call_id`` names, when it is another node,
        the call is of this organisation (and a placed one, with ``placed_only``)."""
        try:
            raw = await self.bus.recall(_key(call_id))
        except Exception as error:
            log.warning("call_directory.unreachable", call=call_id, error=str(error))
            return "unreachable"
        try:
            record = json.loads(raw) if raw is not None else None
        except ValueError:
            record = None
        if not isinstance(record, dict):
            return "not_found"
        node = record.get("node")
        if not isinstance(node, str) or node == self.bus.node_id:
            return "not_found"  # ours, yet not in memory: it is over
        if record.get("tenant_id") != tenant_id:
            return "not_found"
        if placed_only and record.get("kind", "placed") != "placed":
            return "not_found"
        try:
            answer = await self.bus.ask(node, kind, body, self.answer_timeout)
        except Exception as error:
            log.warning("call_directory.unreachable", call=call_id, error=str(error))
            return "unreachable"
        if answer is None:
            log.warning("call_directory.no_answer", call=call_id, node=node)
            return "no_answer"
        return answer
