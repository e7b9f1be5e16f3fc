"""The call directory's own rules, on an in-memory stand-in for the Redis bus (the real one
is in test_cancel_call_nodes): who may hang a call up, records written and removed in the
right order, refreshed and written again, and Redis failures that never break a call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest

from sparklecomm.bus.redis import RequestHandler
from sparklecomm.telephony.call_directory import CallDirectory, SharedBus, may_hang_up


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


class FakePhones:
    def __init__(self, *calls: Any) -> None:
        self.manager = SimpleNamespace(calls={c.id: c for c in calls})
        self.hung_up: list[tuple[str, str]] = []
        self.directory: Any = None

    def hang_up(self, call: Any, reason: str) -> None:
        call.ended = True
        self.hung_up.append((call.id, reason))


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
    assert json.loads(store["call:c1"]) == {"node": "a", "tenant_id": "t1", "agent_id": "ana"}
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
