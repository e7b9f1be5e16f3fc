"""Several ``serve`` processes share live events through a real Redis server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sparklecomm.app import build_app
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
