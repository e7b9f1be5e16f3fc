"""The routing service and API: journal, restart safety, timers, roles, over real SQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.conftest import FAST_PASSWORDS, PASSWORD, World

from sparklecomm.acd.service import AcdService
from sparklecomm.app import build_app, build_services
from sparklecomm.settings import Settings
from sparklecomm.store.db import read_events
from sparklecomm.store.models import AuditLog


class Api:
    """A signed-in HTTP client for one user."""

    def __init__(self, client: TestClient, username: str) -> None:
        self.client = client
        r = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
        assert r.status_code == 200, r.text
        token = client.post(
            "/api/v1/tokens",
            json={"name": "t"},
            headers={"X-CSRF-Token": r.json()["csrf_token"]},
        ).json()["token"]
        client.cookies.clear()
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, status: int = 200) -> Any:
        r = self.client.get(f"/api/v1{path}", headers=self.headers)
        assert r.status_code == status, r.text
        return r.json()

    def send(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        r = self.client.request(method, f"/api/v1{path}", json=body, headers=self.headers)
        assert r.status_code == status, r.text
        return r.json() if r.content else None

    def post(self, path: str, body: Any = None, status: int = 200) -> Any:
        return self.send("POST", path, body if body is not None else {}, status)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(build_app(world.services)) as c:
        yield c


def types(result: dict[str, Any]) -> list[str]:
    return [e["type"] for e in result["events"]]


def setup_center(client: TestClient, world: World) -> tuple[Api, Api, Api]:
    admin, sup, ana = Api(client, "admin"), Api(client, "sup"), Api(client, "ana")
    admin.send(
        "PUT",
        f"/agents/{world.agent_id}",
        {"skills": {"billing": 3}, "capacity": {"voice": 1, "chat": 2}},
    )
    admin.post(
        "/queues",
        {
            "id": "support",
            "name": "Support",
            "strategy": "longest-idle",
            "offer_timeout_seconds": 15,
            "wrapup_seconds": 30,
            "members": [{"agent_id": world.agent_id}],
        },
        status=201,
    )
    return admin, sup, ana


def test_full_lifecycle_through_the_api(client: TestClient, world: World) -> None:
    admin, sup, ana = setup_center(client, world)
    assert types(ana.post(f"/agents/{world.agent_id}/login"))[0] == "agent.logged_in"
    ana.post(f"/agents/{world.agent_id}/state", {"state": "available"})
    created = sup.post(
        "/interactions",
        {
            "queue_id": "support",
            "channel": "voice",
            "customer_id": "c-42",
            "attributes": {"dnis": "+15550100"},
        },
        status=201,
    )
    iid = created["interaction"]["interaction_id"]
    assert "interaction.offered" in [e["type"] for e in created["events"]]
    assert ana.get(f"/agents/{world.agent_id}")["offer"] == iid
    view = ana.get(f"/interactions/{iid}")
    assert view["customer_id"] == "c-42" and view["attributes"] == {"dnis": "+15550100"}
    accepted = ana.post(f"/interactions/{iid}/accept")
    assert "interaction.accepted" in types(accepted)
    done = ana.post(f"/interactions/{iid}/complete", {"disposition": "resolved"})
    assert "interaction.completed" in types(done)
    assert ana.get(f"/agents/{world.agent_id}")["state"] == "wrap_up"
    ana.post(f"/interactions/{iid}/wrapup-end")
    assert ana.get(f"/agents/{world.agent_id}")["state"] == "available"
    # the stream holds the interaction's whole history, in order
    with world.services.db.read() as s:
        stream = [
            e
            for e in read_events(s, world.tenant_id, 0, 1000)
            if e.payload.get("interaction_id") == iid
        ]
    kinds = [e.type for e in stream]
    assert (
        kinds.index("interaction.created")
        < kinds.index("interaction.offered")
        < kinds.index("interaction.accepted")
        < kinds.index("interaction.completed")
    )
    queues = admin.get("/queues")
    assert [q["queue_id"] for q in queues] == ["support"]


def test_offer_timeout_reoffers_after_the_clock_moves(client: TestClient, world: World) -> None:
    admin, sup, _ana = setup_center(client, world)
    bo = admin.post("/users", {"username": "bo", "password": PASSWORD}, status=201)
    admin.send("PUT", "/queues/support/members/" + bo["id"], {"agent_id": bo["id"], "penalty": 0})
    for agent in (world.agent_id, bo["id"]):
        sup.post(f"/agents/{agent}/login")
        sup.post(f"/agents/{agent}/state", {"state": "available"})
    iid = sup.post("/interactions", {"queue_id": "support"}, status=201)["interaction"][
        "interaction_id"
    ]
    first = sup.get(f"/interactions/{iid}")
    acd: AcdService = world.services.extra["acd"]
    world.clock.advance(16)
    events = acd.tick_due(world.tenant_id)
    kinds = [e.type for e in events]
    assert "interaction.offer_timed_out" in kinds and "interaction.offered" in kinds
    second = sup.get(f"/interactions/{iid}")
    assert second["state"] == "offered"
    assert first != second


def test_agents_act_only_for_themselves_supervisors_are_audited(
    client: TestClient, world: World
) -> None:
    _, sup, ana = setup_center(client, world)
    ana.post(f"/agents/{world.agent_id}/login")
    r = ana.post(f"/agents/{world.supervisor_id}/login", status=403)
    assert "only for themselves" in r["detail"]
    sup.post(f"/agents/{world.agent_id}/state", {"state": "break", "reason": "coaching"})
    assert ana.get(f"/agents/{world.agent_id}")["state"] == "break"
    with world.services.db.read() as s:
        rows = s.scalars(
            select(AuditLog).where(AuditLog.action == "agent.state_set_by_supervisor")
        ).all()
    assert [(r.target_id, r.details["reason"]) for r in rows] == [(world.agent_id, "coaching")]
    ana.get("/agents", status=403)


def test_bad_routing_input_is_a_clear_4xx(client: TestClient, world: World) -> None:
    admin, sup, ana = setup_center(client, world)
    r = admin.post("/queues", {"name": "X", "strategy": "fastest"}, status=422)
    assert r["errors"][0]["field"] == "strategy"
    r = sup.post("/interactions", {"queue_id": "nope"}, status=404)
    assert "nope" in r["detail"]
    r = admin.post("/queues", {"id": "support", "name": "Again"}, status=409)
    r = sup.post(f"/agents/{world.agent_id}/state", {"state": "break"}, status=422)
    assert r["errors"][0]["field"] == "reason"
    r = ana.post("/interactions/none/accept", status=404)


def test_agents_join_and_leave_a_queue_themselves(client: TestClient, world: World) -> None:
    admin, sup, ana = setup_center(client, world)
    admin.post("/queues", {"id": "sales", "name": "Sales"}, status=201)
    joined = ana.send("PUT", f"/agents/{world.agent_id}/queues/sales", {"penalty": 2})
    assert "agent.queue_joined" in types(joined)
    members = admin.get("/queues/sales/config")["members"]
    assert [(m["agent_id"], m["penalty"]) for m in members] == [(world.agent_id, 2)]
    r = ana.send("PUT", f"/agents/{world.agent_id}/queues/sales", {}, status=409)
    assert "sales" in r["detail"]
    ana.send("PUT", f"/agents/{world.supervisor_id}/queues/sales", {}, status=403)
    left = ana.send("DELETE", f"/agents/{world.agent_id}/queues/sales")
    assert "agent.queue_left" in types(left)
    assert admin.get("/queues/sales/config")["members"] == []
    # a supervisor moving an agent is audited
    sup.send("PUT", f"/agents/{world.agent_id}/queues/sales", {"penalty": 0})
    with world.services.db.read() as s:
        actions = s.scalars(
            select(AuditLog.action).where(AuditLog.target_id == world.agent_id)
        ).all()
    assert "agent.queue_joined_by_supervisor" in actions
    r = ana.send("PUT", f"/agents/{world.agent_id}/queues/sales", {"penalty": -1}, status=422)
    assert r["errors"][0]["field"] == "penalty"


def test_wrap_up_until_the_agent_ends_it(client: TestClient, world: World) -> None:
    admin, sup, ana = setup_center(client, world)
    admin.send(
        "PUT",
        "/queues/support",
        {
            "name": "Support",
            "offer_timeout_seconds": 15,
            "wrapup_seconds": None,
            "members": [{"agent_id": world.agent_id}],
        },
    )
    assert admin.get("/queues/support/config")["wrapup_seconds"] is None
    ana.post(f"/agents/{world.agent_id}/login")
    ana.post(f"/agents/{world.agent_id}/state", {"state": "available"})
    iid = sup.post("/interactions", {"queue_id": "support"}, status=201)["interaction"][
        "interaction_id"
    ]
    ana.post(f"/interactions/{iid}/accept")
    ana.post(f"/interactions/{iid}/complete")
    world.clock.advance(3600)
    world.services.extra["acd"].tick_due(world.tenant_id)
    assert ana.get(f"/agents/{world.agent_id}")["state"] == "wrap_up"
    ana.post(f"/interactions/{iid}/wrapup-end")
    assert ana.get(f"/agents/{world.agent_id}")["state"] == "available"


@pytest.mark.parametrize("snapshot_every", [1000, 2])
def test_routing_state_survives_a_restart(
    database_url: str, tmp_path: Path, world: World, snapshot_every: int
) -> None:
    acd: AcdService = world.services.extra["acd"]
    acd.snapshot_every = snapshot_every
    with TestClient(build_app(world.services)) as client:
        _, sup, _ = setup_center(client, world)
        sup.post(f"/agents/{world.agent_id}/login")
        sup.post(f"/agents/{world.agent_id}/state", {"state": "break", "reason": "lunch"})
        waiting = [
            sup.post("/interactions", {"queue_id": "support", "priority": p}, status=201)[
                "interaction"
            ]["interaction_id"]
            for p in (0, 1)
        ]
        sup.post(f"/interactions/{waiting[0]}/callback", {"phone": "+15550111"})
        before = acd.read(world.tenant_id, lambda e: e.to_snapshot())
    # a new process on the same database (no clean shutdown snapshot taken)
    restarted = build_services(
        Settings(data_dir=tmp_path, database_url=database_url),
        clock=world.clock,
        passwords=FAST_PASSWORDS,
    )
    acd2: AcdService = restarted.extra["acd"]
    assert acd2.load_all() == 1
    after = acd2.read(world.tenant_id, lambda e: e.to_snapshot())
    assert after == before
    agent = acd2.read(world.tenant_id, lambda e: e.agent_snapshot(world.agent_id))
    assert (agent.state, agent.reason) == ("break", "lunch")
    view = acd2.read(world.tenant_id, lambda e: e.interaction_snapshot(waiting[0]))
    assert view.state in ("queued", "scheduled") and view.channel == "callback"
    restarted.db.dispose()


def test_a_failed_write_leaves_memory_equal_to_the_database(world: World) -> None:
    acd: AcdService = world.services.extra["acd"]
    acd.execute(world.tenant_id, "add_queue", config={"id": "q1", "name": "Q1"})
    before = acd.read(world.tenant_id, lambda e: e.to_snapshot())
    original = acd._store

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    acd._store = broken  # type: ignore[method-assign]
    with pytest.raises(OSError):
        acd.execute(world.tenant_id, "add_queue", config={"id": "q2", "name": "Q2"})
    acd._store = original  # type: ignore[method-assign]
    assert acd.read(world.tenant_id, lambda e: e.to_snapshot()) == before
    assert acd.read(world.tenant_id, lambda e: e.queue_ids()) == ["q1"]


def test_patch_changes_only_what_is_given(client: TestClient, world: World) -> None:
    admin, _, ana = setup_center(client, world)
    admin.send("PATCH", f"/agents/{world.agent_id}", {"capacity": {"voice": 1, "chat": 3}})
    config = ana.get(f"/agents/{world.agent_id}/config")
    assert config["skills"] == {"billing": 3}  # kept
    assert config["capacity"]["chat"] == 3
    admin.send("PUT", f"/agents/{world.agent_id}", {"skills": {"sales": 2}})
    assert ana.get(f"/agents/{world.agent_id}/config")["skills"] == {"sales": 2}
    ana.get(f"/agents/{world.admin_id}/config", status=403)


def test_what_waiting_callers_hear_is_part_of_the_queue(client: TestClient, world: World) -> None:
    """Music on hold, announcements and the callback key: set, read back (null kept:
    announce once), and refused with the field named when the queue has no callbacks."""
    admin, _sup, _ana = setup_center(client, world)
    assert admin.get("/queues/support/config")["waiting"] == {
        "music_on_hold": False,
        "announce_every_seconds": 60.0,
        "announce_position": True,
        "announce_wait": True,
        "callback_key": None,
    }
    body = {
        "name": "Support",
        "channels": ["voice", "callback"],
        "waiting": {"music_on_hold": True, "announce_every_seconds": None, "callback_key": "1"},
    }
    admin.send("PUT", "/queues/support", body)
    waiting = admin.get("/queues/support/config")["waiting"]
    assert waiting["music_on_hold"] is True and waiting["callback_key"] == "1"
    assert waiting["announce_every_seconds"] is None
    refused = admin.send("PUT", "/queues/support", {**body, "channels": ["voice"]}, status=422)
    assert "waiting.callback_key" in str(refused)
    admin.send("PUT", "/queues/support", {**body, "waiting": {"callback_key": "x"}}, status=422)
    assert admin.get("/queues/support/config")["waiting"]["callback_key"] == "1"


def test_an_agent_starts_an_outbound_contact_and_it_survives_a_restart(
    database_url: str, tmp_path: Path, world: World
) -> None:
    with TestClient(build_app(world.services)) as client:
        admin, sup, ana = setup_center(client, world)
        ana.post(f"/agents/{world.agent_id}/login")
        ana.post(f"/agents/{world.agent_id}/state", {"state": "available"})
        started = ana.post(
            "/interactions/outbound",
            {"customer_id": "c-42", "attributes": {"to": "+15550100"}},
            status=201,
        )
        view = started["interaction"]
        assert (view["direction"], view["state"], view["queue_id"]) == (
            "outbound",
            "active",
            "support",  # the agent's first voice queue
        )
        assert types(started) == [
            "interaction.created",
            "interaction.accepted",
            "agent.state_changed",
        ]
        assert ana.get(f"/agents/{world.agent_id}")["state"] == "busy"
        # Busy on their own call: a customer calling in waits instead of ringing them.
        waiting = sup.post("/interactions", {"queue_id": "support"}, status=201)
        assert "interaction.offered" not in types(waiting)
        # A second call while on this one: 409 naming the agent; a bad queue: 404.
        r = ana.post("/interactions/outbound", {}, status=409)
        assert r["errors"][0]["field"] == "agent_id" and "busy" in r["detail"]
        ana.post("/interactions/outbound", {"queue_id": "nowhere"}, status=404)
        # Agents start contacts for themselves only; a supervisor may for their agent.
        bo = admin.post("/users", {"username": "bo", "password": PASSWORD}, status=201)
        ana.post("/interactions/outbound", {"agent_id": bo["id"]}, status=403)
        # The journal has it: a new process on the same database sees the same call.
        before = world.services.extra["acd"].read(world.tenant_id, lambda e: e.to_snapshot())
    restarted = build_services(
        Settings(data_dir=tmp_path, database_url=database_url),
        clock=world.clock,
        passwords=FAST_PASSWORDS,
    )
    acd2: AcdService = restarted.extra["acd"]
    acd2.load_all()
    assert acd2.read(world.tenant_id, lambda e: e.to_snapshot()) == before
    iid = view["interaction_id"]
    snap = acd2.read(world.tenant_id, lambda e: e.interaction_snapshot(iid))
    assert (snap.direction, snap.agent_id) == ("outbound", world.agent_id)


def test_a_consultation_rings_on_a_call_the_pbx_holds_and_survives_a_restart(
    database_url: str, tmp_path: Path, world: World
) -> None:
    acd: AcdService = world.services.extra["acd"]
    with TestClient(build_app(world.services)) as client:
        admin, sup, ana = setup_center(client, world)
        bo = admin.post("/users", {"username": "bo", "password": PASSWORD}, status=201)["id"]
        admin.send("PUT", f"/queues/support/members/{bo}", {"agent_id": bo, "penalty": 0})
        ana.post(f"/agents/{world.agent_id}/login")
        ana.post(f"/agents/{world.agent_id}/state", {"state": "available"})

        def started(result: dict[str, Any]) -> dict[str, Any]:
            (event,) = [e for e in result["events"] if e["type"] == "interaction.consult_started"]
            return event["payload"]  # type: ignore[no-any-return]

        # A voice interaction nobody's phone rings for (no call_id): connected at once.
        plain = sup.post("/interactions", {"queue_id": "support"}, status=201)["interaction"]
        ana.post(f"/interactions/{plain['interaction_id']}/accept")
        sup.post(f"/agents/{bo}/login")
        sup.post(f"/agents/{bo}/state", {"state": "available"})
        consult = ana.post(
            f"/interactions/{plain['interaction_id']}/consult", {"target_agent_id": bo}
        )
        assert started(consult)["ringing"] is False
        assert sup.get(f"/agents/{bo}")["state"] == "busy"
        ana.post(f"/interactions/{plain['interaction_id']}/end-consult", {"target_agent_id": bo})
        ana.post(f"/interactions/{plain['interaction_id']}/complete")
        ana.post(f"/interactions/{plain['interaction_id']}/wrapup-end")

        # A call the PBX holds (it has a call_id): the consulted agent's phones ring first.
        call = sup.post(
            "/interactions", {"queue_id": "support", "attributes": {"call_id": "c-1"}}, status=201
        )["interaction"]["interaction_id"]
        assert sup.get(f"/interactions/{call}")["offered_to"] == [world.agent_id]
        acd.execute(world.tenant_id, "accept", interaction_id=call, agent_id=world.agent_id)
        consult = ana.post(f"/interactions/{call}/consult", {"target_agent_id": bo})
        assert started(consult)["ringing"] is True
        assert sup.get(f"/agents/{bo}")["state"] == "reserved"
        assert ana.get(f"/interactions/{call}")["ringing"] == [bo]
        world.clock.advance(6)
        # The voice bridge reports the answer: a journaled command like any other.
        events = acd.execute(world.tenant_id, "consult_connected", interaction_id=call, agent_id=bo)
        (connected,) = [e for e in events if e.type == "interaction.consult_connected"]
        assert connected.payload["ring_seconds"] == 6.0
        assert sup.get(f"/agents/{bo}")["state"] == "busy"
        before = acd.read(world.tenant_id, lambda e: e.to_snapshot())
    restarted = build_services(
        Settings(data_dir=tmp_path, database_url=database_url),
        clock=world.clock,
        passwords=FAST_PASSWORDS,
    )
    acd2: AcdService = restarted.extra["acd"]
    acd2.load_all()
    assert acd2.read(world.tenant_id, lambda e: e.to_snapshot()) == before
    snap = acd2.read(world.tenant_id, lambda e: e.interaction_snapshot(call))
    assert (snap.participants, snap.ringing) == ({world.agent_id: "owner", bo: "consult"}, ())
    restarted.db.dispose()
