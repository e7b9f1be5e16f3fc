"""Customer records, notes, the offer's context and history, and desk codes, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from sparklecomm.app import build_app
from sparklecomm.store.models import AuditLog
from tests.conftest import World
from tests.routing.test_routing_service import Api


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(build_app(world.services)) as c:
        yield c


def center(client: TestClient, world: World) -> tuple[Api, Api, Api]:
    admin, sup, ana = Api(client, "admin"), Api(client, "sup"), Api(client, "ana")
    admin.post(
        "/queues",
        {
            "id": "support",
            "name": "Support",
            "wrapup_seconds": 30,
            "members": [{"agent_id": world.agent_id}],
        },
        status=201,
    )
    return admin, sup, ana


def test_customer_record_validation_is_field_by_field(client: TestClient, world: World) -> None:
    _, _, ana = center(client, world)
    r = ana.post("/customers", {"name": "Lena", "phone": "call me"}, status=422)
    assert r["errors"][0]["field"] == "phone"
    r = ana.post("/customers", {"name": "  "}, status=422)
    assert r["errors"][0]["field"] == "name"
    r = ana.post("/customers", {"name": "Lena", "vip_tier": "diamond"}, status=422)
    assert r["errors"][0]["field"] == "vip_tier"
    c = ana.post(
        "/customers",
        {
            "id": "c-42",
            "name": "Lena Ruiz",
            "phone": "+15550142",
            "vip_tier": "gold",
            "attributes": {"plan": "pro"},
        },
        status=201,
    )
    assert c["id"] == "c-42"
    ana.post("/customers", {"id": "c-42", "name": "Again"}, status=409)
    patched = ana.send("PATCH", "/customers/c-42", {"email": "lena@example.com"})
    assert patched["email"] == "lena@example.com" and patched["name"] == "Lena Ruiz"
    assert [x["id"] for x in ana.get("/customers?q=ruiz")] == ["c-42"]
    with world.services.db.read() as s:
        actions = s.scalars(select(AuditLog.action).where(AuditLog.target_id == "c-42")).all()
    assert actions == ["customer.created", "customer.updated"]


def test_offer_context_has_record_dnis_history_and_notes(client: TestClient, world: World) -> None:
    _, sup, ana = center(client, world)
    ana.post(
        "/customers",
        {"id": "c-7", "name": "Omar Haddad", "phone": "+15550107", "vip_tier": "platinum"},
        status=201,
    )
    ana.post(f"/agents/{world.agent_id}/login")
    first = sup.post(
        "/interactions",
        {"queue_id": "support", "customer_id": "c-7", "attributes": {"dnis": "+18005550100"}},
        status=201,
    )["interaction"]["interaction_id"]
    ana.post(f"/interactions/{first}/accept")
    ana.post(f"/interactions/{first}/notes", {"text": "Asked about the invoice"}, status=201)
    ana.post(f"/interactions/{first}/complete", {"disposition": "resolved"})
    r = ana.post(
        f"/interactions/{first}/notes", {"kind": "wrapup", "disposition": "nope"}, status=422
    )
    assert r["errors"][0]["field"] == "disposition"
    ana.post(
        f"/interactions/{first}/notes",
        {"kind": "wrapup", "disposition": "follow-up", "text": "Call back Monday"},
        status=201,
    )
    ana.post(f"/interactions/{first}/wrapup-end")
    # a second call, identified by the caller's number only
    second = sup.post(
        "/interactions",
        {"queue_id": "support", "attributes": {"ani": "+15550107", "dnis": "+18005550199"}},
        status=201,
    )["interaction"]["interaction_id"]
    ctx = ana.get(f"/interactions/{second}/context")
    assert ctx["interaction"]["attributes"]["dnis"] == "+18005550199"
    assert ctx["customer"]["name"] == "Omar Haddad"
    assert ctx["customer"]["vip_tier"] == "platinum"
    [past] = ctx["history"]
    assert past["interaction_id"] == first
    assert past["outcome"] == "completed"
    assert past["disposition"] == "follow-up"
    assert past["handle_seconds"] is not None
    assert [n["text"] for n in past["notes"]] == ["Asked about the invoice", "Call back Monday"]
    ana.get("/interactions/unknown/context", status=404)


def test_codes_are_seeded_and_only_admins_change_them(client: TestClient, world: World) -> None:
    admin, _, ana = center(client, world)
    reasons = [c["code"] for c in ana.get("/codes?kind=reason")]
    assert "lunch" in reasons
    ana.send("PUT", "/codes/reason/gym", {"label": "Gym"}, status=403)
    r = admin.send("PUT", "/codes/reason/Gym Time", {"label": "Gym"}, status=422)
    assert r["errors"][0]["field"] == "code"
    admin.send("PUT", "/codes/reason/gym", {"label": "Gym"})
    assert "gym" in [c["code"] for c in ana.get("/codes?kind=reason")]
    admin.send("DELETE", "/codes/reason/gym", status=204)
    assert "gym" not in [c["code"] for c in ana.get("/codes?kind=reason")]
    ana.get("/codes?kind=nope", status=422)
