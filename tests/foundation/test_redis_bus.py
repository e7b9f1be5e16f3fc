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
