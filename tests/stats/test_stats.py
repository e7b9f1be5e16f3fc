"""Wallboard and agent figures from the event stream (sparklecomm.analytics), over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from sparklecomm.app import build_app
from tests.conftest import World
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
