"""The real-time contract: initial state + ordered events over WebSocket, with resume."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from sparklecomm.app import build_app
from sparklecomm.audit.store import Actor
from sparklecomm.core.events import NewEvent
from tests.conftest import PASSWORD, World


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(build_app(world.services)) as c:
        yield c


def sign_in(client: TestClient, username: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    return {"X-CSRF-Token": r.json()["csrf_token"]}


_pending: dict[int, list[dict[str, Any]]] = {}


def next_event(ws: Any) -> dict[str, Any]:
    """The next event, whether it came alone or in a batch frame."""
    queue = _pending.setdefault(id(ws), [])
    if not queue:
        msg = json.loads(ws.receive_text())
        assert msg["op"] in ("event", "events"), msg
        queue.extend([msg["event"]] if msg["op"] == "event" else msg["events"])
        assert all(b["id"] == a["id"] + 1 for a, b in itertools.pairwise(queue))
    return queue.pop(0)


def apply(state: dict[str, Any], event: dict[str, Any]) -> None:
    """A client's reducer for the users part of the state (upserts: idempotent)."""
    if event["type"] in ("user.created", "user.updated"):
        user = event["payload"]["user"]
        state["users"][user["id"]] = user


def test_events_arrive_in_order_and_resume_without_gaps_or_duplicates(
    client: TestClient, world: World
) -> None:
    h = sign_in(client, "admin")
    head = client.get("/api/v1/events/state").json()["last_event_id"]
    with client.websocket_connect(f"/api/v1/events/ws?last_event_id={head}") as ws:
        hello = json.loads(ws.receive_text())
        server_time = hello.pop("server_time")
        assert abs(server_time / 1000 - time.time()) < 5  # ms since the epoch, for clock skew
        assert hello == {"op": "hello", "last_event_id": head, "resumed_from": head}
        client.post("/api/v1/users", headers=h, json={"username": "u1", "password": PASSWORD})
        first = next_event(ws)
        assert first["id"] == head + 1 and first["type"] == "user.created"
        assert first["payload"]["user"]["username"] == "u1"
        assert first["tenant_id"] == world.tenant_id
    # while disconnected, three more things happen
    for name in ("u2", "u3", "u4"):
        client.post("/api/v1/users", headers=h, json={"username": name, "password": PASSWORD})
    with client.websocket_connect(f"/api/v1/events/ws?last_event_id={first['id']}") as ws:
        assert json.loads(ws.receive_text())["op"] == "hello"
        missed = [next_event(ws) for _ in range(3)]
        assert [e["id"] for e in missed] == [head + 2, head + 3, head + 4]
        assert [e["payload"]["user"]["username"] for e in missed] == ["u2", "u3", "u4"]
        client.post("/api/v1/users", headers=h, json={"username": "u5", "password": PASSWORD})
        live = next_event(ws)
        assert live["id"] == head + 5  # the backlog and the live flow join seamlessly


def test_events_committed_by_another_writer_fill_gaps_in_order(
    client: TestClient, world: World
) -> None:
    """An event that reaches the bus before an earlier one is delivered after it, in order."""
    sign_in(client, "sup")
    head = client.get("/api/v1/events/state").json()["last_event_id"]
    db = world.services.db
    held = []
    bus_publish = db.publisher
    db.publisher = held.extend  # first commit is not announced (as if lost on the way)
    with db.write() as tx:
        tx.emit(world.tenant_id, NewEvent("test.first"))
    db.publisher = bus_publish
    with client.websocket_connect(f"/api/v1/events/ws?last_event_id={head + 1}") as ws:
        ws.receive_text()
        with db.write() as tx:
            tx.emit(world.tenant_id, NewEvent("test.second"))
        with db.write() as tx:
            tx.emit(world.tenant_id, NewEvent("test.third"))
        assert [next_event(ws)["type"] for _ in range(2)] == ["test.second", "test.third"]
    with client.websocket_connect(f"/api/v1/events/ws?last_event_id={head}") as ws:
        ws.receive_text()
        assert [next_event(ws)["type"] for _ in range(3)] == [
            "test.first",
            "test.second",
            "test.third",
        ]


def test_state_plus_events_equals_a_fresh_state(client: TestClient, world: World) -> None:
    """Zulip's check: apply the events after last_event_id to the old state."""
    h = sign_in(client, "admin")
    old = client.get("/api/v1/events/state").json()
    client.post("/api/v1/users", headers=h, json={"username": "zoe", "password": PASSWORD})
    users = client.get("/api/v1/users").json()
    ana = next(u for u in users if u["username"] == "ana")
    client.patch(
        f"/api/v1/users/{ana['id']}",
        headers=h,
        json={"display_name": "Ana L.", "role": "supervisor"},
    )
    client.patch(f"/api/v1/users/{ana['id']}", headers=h, json={"is_active": False})
    page = client.get(f"/api/v1/events?after={old['last_event_id']}").json()
    state = old["state"]
    for event in page["events"]:
        apply(state, event)
    fresh = client.get("/api/v1/events/state").json()
    assert fresh["last_event_id"] == page["last_event_id"] == page["events"][-1]["id"]
    assert state == fresh["state"]
    assert len(page["events"]) == 3  # one event per change, no storm


def test_agents_get_no_users_state(client: TestClient) -> None:
    sign_in(client, "ana")
    state = client.get("/api/v1/events/state").json()["state"]
    assert "users" not in state and state["me"]["username"] == "ana"


def test_websocket_refuses_strangers_and_bad_resume_points(client: TestClient) -> None:
    with (
        pytest.raises(WebSocketDisconnect) as err,
        client.websocket_connect("/api/v1/events/ws") as ws,
    ):
        ws.receive_text()
    assert err.value.code == 4401
    sign_in(client, "ana")
    for bad in ("-1", "abc", "999999"):
        with (
            pytest.raises(WebSocketDisconnect) as err,
            client.websocket_connect(f"/api/v1/events/ws?last_event_id={bad}") as ws,
        ):
            ws.receive_text()
        assert err.value.code == 4400


def test_websocket_refuses_cookie_from_a_foreign_origin(client: TestClient) -> None:
    sign_in(client, "ana")
    with (
        pytest.raises(WebSocketDisconnect) as err,
        client.websocket_connect(
            "/api/v1/events/ws", headers={"origin": "https://evil.example"}
        ) as ws,
    ):
        ws.receive_text()
    assert err.value.code == 4401


def test_websocket_with_bearer_token_only_sees_its_tenant(client: TestClient, world: World) -> None:
    h = sign_in(client, "sup")
    token = client.post("/api/v1/tokens", json={"name": "ws"}, headers=h).json()["token"]
    client.cookies.clear()
    other = world.services.auth.do_create_tenant("globex", "Globex", Actor.cli())
    with client.websocket_connect(f"/api/v1/events/ws?access_token={token}") as ws:
        ws.receive_text()
        with world.services.db.write() as tx:
            tx.emit(other.tenant_id, NewEvent("not.yours"))
            tx.emit(world.tenant_id, NewEvent("yours"))
        ev = next_event(ws)
        assert ev["type"] == "yours" and ev["tenant_id"] == world.tenant_id
        ws.send_text('{"op": "ping"}')
        assert json.loads(ws.receive_text()) == {"op": "pong"}
