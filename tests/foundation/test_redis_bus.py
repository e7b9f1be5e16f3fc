"""Several ``serve`` processes share live events through a real Redis server."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sparklecomm.app import build_app
from sparklecomm.bus.base import delivering_remote
from sparklecomm.bus.redis import RedisBus
from tests.conftest import PASSWORD, REDIS_URL, redis_nodes

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(
        not REDIS_URL, reason="SPARKLECOMM_TEST_REDIS_URL is not set: Redis tests not run"
    ),
]


def test_an_event_committed_on_one_node_reaches_a_websocket_on_another(
    database_url: str, tmp_path: Path
) -> None:
    world, node_b = redis_nodes(database_url, tmp_path)  # node A owns the world's services
    with TestClient(build_app(world.services)) as a, TestClient(build_app(node_b)) as b:
        csrf = a.post(
            "/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
        ).json()["csrf_token"]
        b.post("/api/v1/auth/login", json={"username": "sup", "password": PASSWORD})
        head = b.get("/api/v1/events/state").json()["last_event_id"]
        with b.websocket_connect(f"/api/v1/events/ws?last_event_id={head}") as ws:
            assert json.loads(ws.receive_text())["op"] == "hello"
            for name in ("n1", "n2"):
                r = a.post(
                    "/api/v1/users",
                    json={"username": name, "password": PASSWORD},
                    headers={"X-CSRF-Token": csrf},
                )
                assert r.status_code == 201
            got: list[dict] = []
            while len(got) < 2:
                msg = json.loads(ws.receive_text())
                got.extend([msg["event"]] if msg["op"] == "event" else msg["events"])
    assert [e["id"] for e in got] == [head + 1, head + 2]
    assert [e["payload"]["user"]["username"] for e in got] == ["n1", "n2"]
    world.services.db.dispose()
    node_b.db.dispose()


async def test_of_several_nodes_claiming_one_key_exactly_one_wins() -> None:
    """What a queued callback's offer is claimed with (one node rings the agent)."""
    assert REDIS_URL is not None
    prefix = f"sparklecomm-test-{uuid.uuid4().hex}:"
    buses = [RedisBus(REDIS_URL, prefix=prefix) for _ in range(3)]
    for bus in buses:
        await bus.start()
    try:
        won = await asyncio.gather(*(bus.claim("ring:cb-1/ana/7", 60) for bus in buses))
        assert sorted(won) == [False, False, True]
        assert await buses[0].claim("ring:cb-1/ana/9", 60) is True  # another offer
        # The key lives only as long as asked (each offer has its own key: it only cleans up).
        assert await buses[1].claim("ring:short", 0.05) is True
        await asyncio.sleep(0.2)
        assert await buses[2].claim("ring:short", 60) is True
    finally:
        for bus in buses:
            await bus.stop()


async def test_records_are_shared_and_expire() -> None:
    """What a placed call's record is kept with (which node holds the call)."""
    assert REDIS_URL is not None
    prefix = f"sparklecomm-test-{uuid.uuid4().hex}:"
    a, b = RedisBus(REDIS_URL, prefix=prefix), RedisBus(REDIS_URL, prefix=prefix)
    for bus in (a, b):
        await bus.start()
    try:
        await a.remember({"call:1": "on a", "call:2": "also a"}, 60)
        await a.remember({"call:short": "brief"}, 0.1)
        assert [await b.recall(k) for k in ("call:1", "call:2")] == ["on a", "also a"]
        await b.forget("call:2")
        assert await a.recall("call:2") is None
        await asyncio.sleep(0.3)
        assert await b.recall("call:short") is None  # expired
        await a.remember({"call:short": "again"}, 60)  # written again: back
        assert await b.recall("call:short") == "again"
    finally:
        for bus in (a, b):
            await bus.stop()


async def test_a_request_reaches_only_the_node_asked_and_its_answer_comes_back() -> None:
    assert REDIS_URL is not None
    prefix = f"sparklecomm-test-{uuid.uuid4().hex}:"
    buses = [RedisBus(REDIS_URL, prefix=prefix) for _ in range(3)]
    asked: dict[int, list[dict]] = {0: [], 1: [], 2: []}
    for number, bus in enumerate(buses):
        await bus.start()

        async def answer(body: dict, number: int = number) -> dict:
            asked[number].append(body)
            if body.get("fail"):
                raise RuntimeError("handler broke")
            return {"by": number, "echo": body["x"]}

        bus.on_request("echo", answer)
    seen: list[object] = []
    try:
        with buses[2].subscribe("t1") as sub:
            answer = await buses[0].ask(buses[1].node_id, "echo", {"x": 7}, 2.0)
            assert answer == {"by": 1, "echo": 7}
            assert asked == {0: [], 1: [{"x": 7}], 2: []}
            # A request nobody knows, a failing handler, a node that is gone.
            assert await buses[0].ask(buses[2].node_id, "nope", {}, 2.0) == {
                "error": "unknown_request"
            }
            assert await buses[0].ask(buses[2].node_id, "echo", {"fail": 1}, 2.0) == {
                "error": "failed"
            }
            started = asyncio.get_running_loop().time()
            assert await buses[0].ask("no-such-node", "echo", {"x": 1}, 0.3) is None
            assert 0.25 < asyncio.get_running_loop().time() - started < 2.0
            seen.extend(sub.drain())
        assert seen == []  # no request was taken for an event
    finally:
        for bus in buses:
            await bus.stop()


async def test_an_unstarted_bus_cannot_claim() -> None:
    assert REDIS_URL is not None
    with pytest.raises(RuntimeError):
        await RedisBus(REDIS_URL).claim("ring:x", 60)


def test_remote_listeners_are_told_the_events_came_from_another_node() -> None:
    bus = RedisBus("redis://unused")
    seen: list[bool] = []
    bus.add_remote_listener(lambda events: seen.append(delivering_remote()))
    bus._deliver_remote([])  # what the reader does with another node's message
    assert seen == [True] and delivering_remote() is False


async def test_what_a_remote_listener_starts_is_not_remote_itself() -> None:
    """A task or thread started while another node's events are delivered commits this
    node's own events (e.g. the voice bridge's reject): those are not remote."""
    bus = RedisBus("redis://unused")
    later: list[asyncio.Future[bool]] = []

    async def in_a_task() -> bool:
        return delivering_remote()

    def listener(events: object) -> None:
        assert delivering_remote()
        later.append(asyncio.get_running_loop().create_task(in_a_task()))
        later.append(asyncio.ensure_future(asyncio.to_thread(delivering_remote)))

    bus.add_remote_listener(listener)
    bus._deliver_remote([])
    assert await asyncio.gather(*later) == [False, False]
