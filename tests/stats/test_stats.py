"""Wallboard and agent figures from the event stream (sparklecomm.analytics), over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from sparklecomm.acd.service import AcdService
from sparklecomm.app import build_app
from tests.conftest import PASSWORD, World
from tests.routing.test_routing_service import Api


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(build_app(world.services)) as c:
        yield c


def test_today_per_queue_and_per_agent(client: TestClient, world: World) -> None:
    admin, sup, ana = Api(client, "admin"), Api(client, "sup"), Api(client, "ana")
    admin.post(
        "/queues",
        {
            "id": "support",
            "name": "Support",
            "wrapup_seconds": 10,
            "service_level_seconds": 20,
            "members": [{"agent_id": world.agent_id}],
        },
        status=201,
    )
    ana.post(f"/agents/{world.agent_id}/login")
    ana.post(f"/agents/{world.agent_id}/state", {"state": "break", "reason": "coffee"})
    first = sup.post("/interactions", {"queue_id": "support"}, status=201)
    second = sup.post("/interactions", {"queue_id": "support"}, status=201)
    world.clock.advance(30)
    sup.post(f"/interactions/{second['interaction']['interaction_id']}/abandon")
    ana.post(f"/agents/{world.agent_id}/state", {"state": "available"})
    iid = first["interaction"]["interaction_id"]
    ana.post(f"/interactions/{iid}/accept")
    world.clock.advance(60)
    ana.post(f"/interactions/{iid}/complete", {"disposition": "resolved"})
    world.clock.advance(5)
    ana.post(f"/interactions/{iid}/wrapup-end")
    world.clock.advance(10)

    stats = sup.get("/stats/queues")
    q = stats["queues"]["support"]
    assert (q["offered"], q["answered"], q["abandoned"]) == (2, 1, 1)
    assert q["answered_within_sl"] == 0  # waited 30 s against a 20 s threshold
    assert q["service_level"] == 0.0
    assert q["asa_seconds"] == pytest.approx(30)
    assert q["aht_seconds"] == pytest.approx(65)
    assert sum(iv["offered"] for iv in stats["intervals"]) == 2
    today = ana.get(f"/stats/agents/{world.agent_id}/today")
    assert today["handled"] == 1
    assert today["aht_seconds"] == pytest.approx(65)
    assert today["state_seconds"]["busy"] == pytest.approx(60)
    assert today["state_seconds"]["break"] == pytest.approx(30)
    assert today["state_seconds"]["available"] == pytest.approx(10)
    # the figures follow new events without a restart (incremental)
    sup.post("/interactions", {"queue_id": "support"}, status=201)
    assert sup.get("/stats/queues")["queues"]["support"]["offered"] == 3
    # agents see their own figures only; the wallboard's are for supervisors
    ana.get(f"/stats/agents/{world.supervisor_id}/today", status=403)
    ana.get("/stats/queues", status=403)
    names = {p["agent_id"]: p["state"] for p in ana.get("/stats/presence")}
    assert names[world.agent_id] == "reserved"


def test_an_agents_own_outbound_contacts_are_counted_apart(
    client: TestClient, world: World
) -> None:
    admin, sup, ana = Api(client, "admin"), Api(client, "sup"), Api(client, "ana")
    admin.post(
        "/queues",
        {"id": "support", "name": "Support", "members": [{"agent_id": world.agent_id}]},
        status=201,
    )
    ana.post(f"/agents/{world.agent_id}/login")
    iid = ana.post("/interactions/outbound", {}, status=201)["interaction"]["interaction_id"]
    world.clock.advance(40)
    ana.post(f"/interactions/{iid}/complete", {})
    world.clock.advance(5)
    q = sup.get("/stats/queues")["queues"]["support"]
    assert (q["offered"], q["answered"], q["handled"], q["outbound"]) == (0, 0, 0, 1)
    assert q["outbound_aht_seconds"] == pytest.approx(40)
    today = ana.get(f"/stats/agents/{world.agent_id}/today")
    assert (today["handled"], today["outbound"]) == (0, 1)
    assert today["outbound_aht_seconds"] == pytest.approx(40)
    assert today["state_seconds"]["busy"] == pytest.approx(40)


def test_a_consulted_agents_ring_time_is_reserved_not_busy(
    client: TestClient, world: World
) -> None:
    """A call the PBX holds: the consulted agent's phone rings 7 s (reserved), it talks
    30 s (busy), takes the call over and talks 20 s more: its handle time is those 20 s."""
    admin, sup, ana = Api(client, "admin"), Api(client, "sup"), Api(client, "ana")
    bo = admin.post("/users", {"username": "bo", "password": PASSWORD}, status=201)["id"]
    admin.post(
        "/queues",
        {
            "id": "support",
            "name": "Support",
            "members": [{"agent_id": world.agent_id}, {"agent_id": bo}],
        },
        status=201,
    )
    acd: AcdService = world.services.extra["acd"]
    ana.post(f"/agents/{world.agent_id}/login")
    ana.post(f"/agents/{world.agent_id}/state", {"state": "available"})
    call = sup.post(
        "/interactions", {"queue_id": "support", "attributes": {"call_id": "c-1"}}, status=201
    )["interaction"]["interaction_id"]
    acd.execute(world.tenant_id, "accept", interaction_id=call, agent_id=world.agent_id)
    sup.post(f"/agents/{bo}/login")
    sup.post(f"/agents/{bo}/state", {"state": "available"})
    world.clock.advance(10)
    ana.post(f"/interactions/{call}/consult", {"target_agent_id": bo})
    world.clock.advance(7)
    acd.execute(world.tenant_id, "consult_connected", interaction_id=call, agent_id=bo)
    world.clock.advance(30)
    ana.post(f"/interactions/{call}/transfer", {"to_agent_id": bo})
    world.clock.advance(20)
    sup.post(f"/interactions/{call}/complete", {"agent_id": bo})  # no wrap-up in this queue
    today = sup.get(f"/stats/agents/{bo}/today")
    assert today["handled"] == 1
    assert today["aht_seconds"] == pytest.approx(20)
    assert today["state_seconds"]["reserved"] == pytest.approx(7)
    assert today["state_seconds"]["busy"] == pytest.approx(50)
    assert today["state_seconds"]["available"] == pytest.approx(10)


def test_alert_thresholds_are_per_tenant_and_queue_validated_audited_and_live(
    client: TestClient, world: World
) -> None:
    import json

    from sqlalchemy import select

    from sparklecomm.store.models import AuditLog

    admin, sup, ana = Api(client, "admin"), Api(client, "sup"), Api(client, "ana")
    for qid in ("support", "sales"):
        admin.post("/queues", {"id": qid, "name": qid.title()}, status=201)
    th = sup.get("/stats/thresholds")
    builtin = {"max_wait_seconds": 60, "min_service_level": 80, "max_waiting": 10}
    assert th["default"] == builtin  # nothing set: the built-in defaults
    assert th["queues"]["support"]["effective"] == builtin
    ana.get("/stats/thresholds", status=403)
    ana.send("PUT", "/stats/thresholds", {"max_wait_seconds": 5}, status=403)

    head = sup.get("/events?after=0&limit=1")["last_event_id"]
    with client.websocket_connect(
        f"/api/v1/events/ws?last_event_id={head}", headers=sup.headers
    ) as ws:
        assert json.loads(ws.receive_text())["op"] == "hello"
        th = sup.send("PUT", "/stats/thresholds", {"max_wait_seconds": 45})
        assert th["default"] == {**builtin, "max_wait_seconds": 45}
        th = sup.send(
            "PUT", "/stats/thresholds/queues/sales", {"min_service_level": 90.5, "max_waiting": 3}
        )
        msg = json.loads(ws.receive_text())
        events = [msg["event"]] if msg["op"] == "event" else msg["events"]
        if len(events) < 2:
            more = json.loads(ws.receive_text())
            events += [more["event"]] if more["op"] == "event" else more["events"]
    assert [e["type"] for e in events] == ["thresholds.updated", "thresholds.updated"]
    assert events[1]["payload"] == {
        "queue_id": "sales",
        "thresholds": {"max_wait_seconds": None, "min_service_level": 90.5, "max_waiting": 3},
    }
    # sales overrides two fields and inherits the tenant's longest wait; support inherits all
    assert th["queues"]["sales"]["effective"] == {
        "max_wait_seconds": 45,
        "min_service_level": 90.5,
        "max_waiting": 3,
    }
    assert th["queues"]["support"]["effective"] == {**builtin, "max_wait_seconds": 45}

    # validation names the field; nothing is stored
    for body, field in [
        ({"max_wait_seconds": 0}, "max_wait_seconds"),
        ({"min_service_level": 101}, "min_service_level"),
        ({"max_waiting": "many"}, "max_waiting"),
        ({"colour": "red"}, "colour"),
    ]:
        r = sup.send("PUT", "/stats/thresholds/queues/sales", body, status=422)
        assert r["errors"][0]["field"] == field, r
    sup.send("PUT", "/stats/thresholds/queues/nope", {"max_waiting": 3}, status=404)

    # a queue back on the defaults
    th = sup.send("DELETE", "/stats/thresholds/queues/sales")
    assert th["queues"]["sales"]["effective"] == {**builtin, "max_wait_seconds": 45}
    sup.send("DELETE", "/stats/thresholds/queues/sales", status=404)
    th = sup.send("PUT", "/stats/thresholds", {"max_wait_seconds": None})
    assert th["default"] == builtin
    with world.services.db.read() as s:
        audit = s.scalars(select(AuditLog.action).where(AuditLog.action.like("thresholds.%"))).all()
    assert audit == [
        "thresholds.updated",
        "thresholds.updated",
        "thresholds.cleared",
        "thresholds.updated",
    ]


def test_csat_on_the_wallboard_and_in_the_agents_day(client: TestClient, world: World) -> None:
    """Two contacts answered in queue support; the customers rate them 5 of 5 (by link)
    and 2 of 5 (on the phone): CSAT (100 + 25) / 2 = 62.5, one satisfied of two, one
    answer per answered contact."""
    admin, sup, ana = Api(client, "admin"), Api(client, "sup"), Api(client, "ana")
    admin.post(
        "/queues",
        {"id": "support", "name": "Support", "members": [{"agent_id": world.agent_id}]},
        status=201,
    )
    ana.post(f"/agents/{world.agent_id}/login")
    ana.post(f"/agents/{world.agent_id}/state", {"state": "available"})
    before = sup.get("/stats/queues")
    assert before["queues"]["support"]["csat"] is None
    assert before["queues"]["support"]["surveys"] == 0
    ids = []
    for _ in range(2):
        iid = sup.post("/interactions", {"queue_id": "support"}, status=201)["interaction"][
            "interaction_id"
        ]
        ana.post(f"/interactions/{iid}/accept")
        world.clock.advance(30)
        ana.post(f"/interactions/{iid}/complete", {})
        ids.append(iid)
    url = ana.get(f"/interactions/{ids[0]}/survey-link")["url"]
    r = client.post(f"/api/v1/surveys/{url.rsplit('/', 1)[1]}", json={"score": 5})
    assert r.status_code == 201, r.text
    asyncio.run(
        world.services.extra["surveys"].survey_answered(
            world.tenant_id,
            interaction_id=ids[1],
            queue_id="support",
            agent_id=world.agent_id,
            channel="voice",
            score=2,
            max_score=5,
            source="phone",
        )
    )
    q = sup.get("/stats/queues")["queues"]["support"]
    assert (q["answered"], q["surveys"]) == (2, 2)
    assert q["csat"] == pytest.approx(62.5)
    assert q["csat_satisfied"] == pytest.approx(0.5)
    assert q["survey_response_rate"] == pytest.approx(1.0)
    today = ana.get(f"/stats/agents/{world.agent_id}/today")
    assert (today["surveys"], today["handled"]) == (2, 2)
    assert today["csat"] == pytest.approx(62.5)
    assert today["survey_response_rate"] == pytest.approx(1.0)
    assert sup.get(f"/stats/agents/{world.supervisor_id}/today")["csat"] is None
