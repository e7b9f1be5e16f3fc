"""The call directory's own rules, on an in-memory stand-in for the Redis bus (the real one
is in test_cancel_call_nodes): who may hang a call up, records written and removed in the
right order (placed calls, and queue calls as the agent phones hand them to the ACD and see
them end), refreshed and written again, transfers to a number decided by the node holding
the call, and Redis failures that never break a call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest

from sparklecomm.bus.redis import RequestHandler
from sparklecomm.telephony.agent_phones import SipAgentPhones
from sparklecomm.telephony.call_directory import (
    TRANSFER_TO_NUMBER,
    CallDirectory,
    SharedBus,
    may_hang_up,
)
from sparklecomm.telephony.pbx.routes import ToQueue


class MemoryBus:
    """Records in a dict shared by the nodes; a request goes to the node's handler."""

    def __init__(self, node_id: str, store: dict[str, str], nodes: dict[str, MemoryBus]) -> None:
        self.node_id = node_id
        self.store = store
        self.nodes = nodes
        nodes[node_id] = self
        self.handlers: dict[str, RequestHandler] = {}
        self.broken = False
        self.slow_write: asyncio.Event | None = None
        self.asked: list[str] = []

    async def remember(self, records: Mapping[str, str], ttl_seconds: float) -> None:
        if self.broken:
            raise ConnectionError("Redis is down")
        if self.slow_write is not None:
            await self.slow_write.wait()
        self.store.update(records)

    async def recall(self, key: str) -> str | None:
        if self.broken:
            raise ConnectionError("Redis is down")
        return self.store.get(key)

    async def forget(self, key: str) -> None:
        self.store.pop(key, None)

    def on_request(self, kind: str, handler: RequestHandler) -> None:
        self.handlers[kind] = handler

    async def ask(
        self, node_id: str, kind: str, body: dict[str, Any], wait_seconds: float
    ) -> dict[str, Any] | None:
        self.asked.append(kind)
        node = self.nodes.get(node_id)
        return None if node is None else await node.handlers[kind](body)


def placed_call(call_id: str = "c1", *, agent: str = "ana", tenant: str = "t1") -> Any:
    return SimpleNamespace(
        id=call_id,
        tenant_id=tenant,
        ended=False,
        placed=SimpleNamespace(agent_id=agent),
        transferred_to=None,
    )


def queue_call(call_id: str = "c1", *, agent: str | None = "ana", tenant: str = "t1") -> Any:
    """A caller served by an ACD queue, connected to ``agent``."""
    return SimpleNamespace(
        id=call_id, tenant_id=tenant, ended=False, placed=None, transferred_to=None, agent=agent
    )


class FakePhones:
    def __init__(self, *calls: Any) -> None:
        self.manager = SimpleNamespace(calls={c.id: c for c in calls})
        self.hung_up: list[tuple[str, str]] = []
        self.transfers: list[tuple[str, str, str]] = []
        self.directory: Any = None

    def hang_up(self, call: Any, reason: str) -> None:
        call.ended = True
        self.hung_up.append((call.id, reason))

    def transfer_to_number(self, call_id: str, agent_id: str, number: str) -> bool:
        """As SipAgentPhones: False unless the agent is connected and no transfer goes on."""
        call = self.manager.calls.get(call_id)
        if call is None or getattr(call, "agent", None) != agent_id or self.transfers:
            return False
        self.transfers.append((call_id, agent_id, number))
        return True


def test_the_memory_bus_is_what_the_directory_takes() -> None:
    assert isinstance(MemoryBus("a", {}, {}), SharedBus)


def test_who_may_hang_up_a_placed_call() -> None:
    call = placed_call()
    assert may_hang_up(call, "t1", "ana", supervisor=False)  # their own
    assert not may_hang_up(call, "t1", "bo", supervisor=False)  # someone else's
    assert may_hang_up(call, "t1", "sup", supervisor=True)  # a supervisor: anyone's
    assert not may_hang_up(call, "t2", "sup", supervisor=True)  # not another organisation's
    assert not may_hang_up(None, "t1", "ana", supervisor=False)
    call.placed = None  # a call that came in, not one we placed
    assert not may_hang_up(call, "t1", "ana", supervisor=False)
    ended = placed_call()
    ended.ended = True
    assert not may_hang_up(ended, "t1", "ana", supervisor=False)
    handed_on = placed_call()
    handed_on.transferred_to = "1002"  # the agent's phone put the customer through
    assert not may_hang_up(handed_on, "t1", "ana", supervisor=False)
    assert may_hang_up(handed_on, "t1", "sup", supervisor=True)


async def test_a_call_is_recorded_and_its_record_goes_when_it_ends() -> None:
    store: dict[str, str] = {}
    directory = CallDirectory(MemoryBus("a", store, {}))
    call = placed_call()
    await directory.placed(call)
    record = json.loads(store["call:c1"])
    assert record == {"node": "a", "tenant_id": "t1", "agent_id": "ana", "kind": "placed"}
    call.ended = True
    directory.ended(call)
    await directory.stop()  # waits for the removal
    assert store == {} and directory.held() == []


async def test_a_call_ending_while_its_record_is_written_leaves_no_record() -> None:
    store: dict[str, str] = {}
    bus = MemoryBus("a", store, {})
    bus.slow_write = asyncio.Event()
    directory = CallDirectory(bus)
    call = placed_call()
    recording = asyncio.create_task(directory.placed(call))
    await asyncio.sleep(0)
    call.ended = True
    directory.ended(call)  # its removal runs before the write lands
    await asyncio.sleep(0.01)
    bus.slow_write.set()
    await recording
    assert store == {}


async def test_records_are_written_again_while_the_calls_go_on() -> None:
    store: dict[str, str] = {}
    directory = CallDirectory(MemoryBus("a", store, {}), ttl=0.06)
    await directory.start()
    try:
        await directory.placed(placed_call())
        store.clear()  # expired, or Redis restarted empty
        await asyncio.sleep(0.1)
        assert list(store) == ["call:c1"]
    finally:
        await directory.stop()
    assert store == {}  # a stopping node takes its records away


async def test_redis_failing_never_breaks_the_call_and_is_told_apart_from_404() -> None:
    bus = MemoryBus("a", {}, {})
    bus.broken = True
    directory = CallDirectory(bus)
    await directory.placed(placed_call())  # logged, not raised
    outcome = await directory.hang_up("c1", tenant_id="t1", user_id="ana", supervisor=False)
    assert outcome == "unreachable"


@pytest.mark.parametrize(
    ("user", "supervisor", "tenant", "outcome"),
    [
        ("ana", False, "t1", "hung_up"),
        ("sup", True, "t1", "hung_up"),
        ("bo", False, "t1", "not_found"),
        ("sup", True, "t2", "not_found"),
    ],
)
async def test_a_hang_up_is_decided_by_the_node_holding_the_call(
    user: str, supervisor: bool, tenant: str, outcome: str
) -> None:
    store: dict[str, str] = {}
    nodes: dict[str, MemoryBus] = {}
    owner, other = (
        CallDirectory(MemoryBus("a", store, nodes)),
        CallDirectory(MemoryBus("b", store, nodes)),
    )
    call = placed_call()
    phones = FakePhones(call)
    await owner.start()
    owner.serve(phones)  # type: ignore[arg-type]
    try:
        assert phones.directory is owner
        await owner.placed(call)
        got = await other.hang_up("c1", tenant_id=tenant, user_id=user, supervisor=supervisor)
        assert got == outcome
        assert phones.hung_up == ([("c1", "cancelled")] if outcome == "hung_up" else [])
        # Asked of the owner itself (a stale record), or of a node that is gone.
        assert await owner.hang_up("c1", tenant_id="t1", user_id="ana", supervisor=False) == (
            "not_found"
        )
        store["call:c2"] = json.dumps({"node": "gone", "tenant_id": "t1", "agent_id": "ana"})
        assert await other.hang_up("c2", tenant_id="t1", user_id="ana", supervisor=False) == (
            "no_answer"
        )
    finally:
        await owner.stop()
    assert phones.directory is None


async def test_a_hang_up_goes_only_to_placed_calls_and_old_records_are_placed_ones() -> None:
    """A queue call cannot be hung up through DELETE (not even asked of its node); a record
    without ``kind`` (written by an older node) is a placed call's."""
    store: dict[str, str] = {}
    nodes: dict[str, MemoryBus] = {}
    owner_bus, other_bus = MemoryBus("a", store, nodes), MemoryBus("b", store, nodes)
    owner, other = CallDirectory(owner_bus), CallDirectory(other_bus)
    caller, placed = queue_call("q1"), placed_call("p1")
    phones = FakePhones(caller, placed)
    await owner.start()
    owner.serve(phones)  # type: ignore[arg-type]
    try:
        await owner.queued(caller)
        record = json.loads(store["call:q1"])
        assert record == {"node": "a", "tenant_id": "t1", "agent_id": None, "kind": "queue"}
        assert owner.held() == ["q1"]
        got = await other.hang_up("q1", tenant_id="t1", user_id="sup", supervisor=True)
        assert got == "not_found" and other_bus.asked == [] and phones.hung_up == []
        store["call:p1"] = json.dumps({"node": "a", "tenant_id": "t1", "agent_id": "ana"})
        got = await other.hang_up("p1", tenant_id="t1", user_id="ana", supervisor=False)
        assert got == "hung_up" and phones.hung_up == [("p1", "cancelled")]
    finally:
        await owner.stop()
    assert "call:q1" not in store  # a stopping node takes its records away


@pytest.mark.parametrize("kind", ["placed", "queue", "old"])
@pytest.mark.parametrize(
    ("agent", "tenant", "busy", "outcome"),
    [
        ("ana", "t1", False, "accepted"),
        ("bo", "t1", False, "refused"),  # not connected on that call
        ("ana", "t1", True, "refused"),  # a transfer already going on
        ("ana", "t2", False, "not_found"),  # another organisation's call: not even asked
    ],
)
async def test_a_transfer_to_a_number_is_done_by_the_node_holding_the_call(
    kind: str, agent: str, tenant: str, busy: bool, outcome: str
) -> None:
    store: dict[str, str] = {}
    nodes: dict[str, MemoryBus] = {}
    other_bus = MemoryBus("b", store, nodes)
    owner, other = CallDirectory(MemoryBus("a", store, nodes)), CallDirectory(other_bus)
    call = queue_call() if kind == "queue" else placed_call()
    call.agent = "ana"  # connected on it (for a placed call: the agent's phone, leg a)
    phones = FakePhones(call)
    if busy:
        phones.transfers.append(("c1", "ana", "1009"))
    await owner.start()
    owner.serve(phones)  # type: ignore[arg-type]
    try:
        if kind == "queue":
            await owner.queued(call)
        elif kind == "placed":
            await owner.placed(call)
        else:
            store["call:c1"] = json.dumps({"node": "a", "tenant_id": "t1", "agent_id": "ana"})
        got = await other.transfer_to_number("c1", tenant_id=tenant, agent_id=agent, number="1003")
        assert got == outcome
        assert other_bus.asked == ([] if outcome == "not_found" else [TRANSFER_TO_NUMBER])
        done = [("c1", "ana", "1003")] if outcome == "accepted" else []
        assert phones.transfers == ([("c1", "ana", "1009")] if busy else done)
    finally:
        await owner.stop()


async def test_a_forwarded_transfer_is_checked_again_by_the_owner() -> None:
    """The owner answers for what it holds: a call it no longer holds, or one of another
    organisation than the request's (a record not to be trusted), is not found there; and
    a node that does not answer, or Redis down, is told apart."""
    store: dict[str, str] = {}
    nodes: dict[str, MemoryBus] = {}
    other_bus = MemoryBus("b", store, nodes)
    owner, other = CallDirectory(MemoryBus("a", store, nodes)), CallDirectory(other_bus)
    phones = FakePhones(queue_call("c1", tenant="t2"))
    await owner.start()
    owner.serve(phones)  # type: ignore[arg-type]
    try:
        for call_id in ("c1", "gone"):
            store[f"call:{call_id}"] = json.dumps({"node": "a", "tenant_id": "t1", "kind": "queue"})
            got = await other.transfer_to_number(
                call_id, tenant_id="t1", agent_id="ana", number="1003"
            )
            assert got == "not_found"
        assert other_bus.asked == [TRANSFER_TO_NUMBER, TRANSFER_TO_NUMBER]
        store["call:c2"] = json.dumps({"node": "dead", "tenant_id": "t1", "kind": "queue"})
        got = await other.transfer_to_number("c2", tenant_id="t1", agent_id="ana", number="1003")
        assert got == "no_answer"
        other_bus.broken = True
        got = await other.transfer_to_number("c2", tenant_id="t1", agent_id="ana", number="1003")
        assert got == "unreachable"
        assert phones.transfers == []
    finally:
        await owner.stop()


class FakeManager:
    """What SipAgentPhones asks of the B2BUA when it hands a caller to a queue."""

    def __init__(self, call: Any) -> None:
        self.calls = {call.id: call}
        self.queue_handler: Any = None
        self.agent_listener: Any = None

    def ringback(self, call: Any) -> None:
        pass

    async def divert(self, call: Any, target: str, reason: str) -> None:
        call.queue = False  # routed on by the dial plan


class FakeQueue:
    def __init__(self) -> None:
        self.told: list[str] = []

    async def enqueue(self, call_id: str, route: ToQueue, **_: Any) -> None:
        self.told.append("enqueue")

    async def caller_hung_up(self, call_id: str) -> None:
        self.told.append("caller_hung_up")

    async def agent_transferred(self, call_id: str, agent_id: str, number: str) -> None:
        self.told.append("agent_transferred")

    def close(self) -> None:
        pass


def caller_in_queue() -> Any:
    return SimpleNamespace(
        id="c1",
        tenant_id="t1",
        ended=False,
        placed=None,
        queue=False,
        legs={},
        a=SimpleNamespace(remote_sdp=object()),
        request=SimpleNamespace(caller_name=None),
        caller="1002",
    )


@pytest.mark.parametrize("leaves", ["caller_hangs_up", "put_through", "diverted"])
async def test_the_agent_phones_record_a_queue_call_until_it_leaves_routing(leaves: str) -> None:
    """Recorded once handed to the queue; gone when the B2BUA says it ended, when the agent
    put it through to a number (it goes on outside routing, its end is not told), or when
    its queue diverted it."""
    store: dict[str, str] = {}
    directory = CallDirectory(MemoryBus("a", store, {}))
    call = caller_in_queue()
    phones = SipAgentPhones(FakeManager(call), extensions=None)  # type: ignore[arg-type]
    queue = FakeQueue()
    phones.queue = queue  # type: ignore[assignment]
    directory.serve(phones)
    await phones.handle_queue_call(call, ToQueue("t1", "support"))
    assert call.queue and directory.held() == ["c1"]
    assert json.loads(store["call:c1"])["kind"] == "queue"
    if leaves == "caller_hangs_up":
        call.ended = True
        phones.call_ended(call, "caller_hangup")
    elif leaves == "put_through":
        phones.agent_transferred(call, "ana", "1003")
    else:
        phones.divert("c1", "2003", "overflow")
    await asyncio.sleep(0.01)
    assert directory.held() == [] and store == {}
    await directory.stop()
    await phones.close()


async def test_a_caller_gone_before_the_queue_took_the_call_is_not_recorded() -> None:
    store: dict[str, str] = {}
    directory = CallDirectory(MemoryBus("a", store, {}))
    call = caller_in_queue()
    phones = SipAgentPhones(FakeManager(call), extensions=None)  # type: ignore[arg-type]
    queue = FakeQueue()

    async def enqueue(call_id: str, route: ToQueue, **_: Any) -> None:
        call.ended = True  # the caller hung up meanwhile (the B2BUA told nobody yet)

    queue.enqueue = enqueue  # type: ignore[method-assign]
    phones.queue = queue  # type: ignore[assignment]
    directory.serve(phones)
    await phones.handle_queue_call(call, ToQueue("t1", "support"))
    assert queue.told == ["caller_hung_up"] and directory.held() == [] and store == {}
    await directory.stop()
