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


def test_history_and_timing_use_the_event_indexes(client: TestClient, world: World) -> None:
    """A customer's history is an index lookup (plan), with a flat number of statements
    however many interactions the customer had (no N+1); the context carries the server
    timestamps the desk's timers run on."""
    from sqlalchemy import event, text

    from sparklecomm.customers import store

    _, sup, ana = center(client, world)
    ana.post("/customers", {"id": "c-9", "name": "Ines Bauer"}, status=201)
    ana.post(f"/agents/{world.agent_id}/login")

    def one_call() -> str:
        iid: str = sup.post(
            "/interactions", {"queue_id": "support", "customer_id": "c-9"}, status=201
        )["interaction"]["interaction_id"]
        ana.post(f"/interactions/{iid}/accept")
        ana.post(f"/interactions/{iid}/complete", {"disposition": "resolved"})
        ana.post(f"/interactions/{iid}/wrapup-end")
        return iid

    def statements(path: str) -> list[str]:
        seen: list[str] = []

        def before(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
            if not statement.startswith(("BEGIN", "PRAGMA", "SAVEPOINT", "RELEASE")):
                seen.append(statement)

        engine = world.services.db.engine
        event.listen(engine, "before_cursor_execute", before)
        try:
            ana.get(path)
        finally:
            event.remove(engine, "before_cursor_execute", before)
        return seen

    one_call()
    few = statements("/customers/c-9")
    for _ in range(4):
        one_call()
    many = statements("/customers/c-9")
    assert len(ana.get("/customers/c-9")["history"]) == 5
    assert len(many) == len(few)

    # the plan: the partial expression indexes of migration 0006, not a scan of the stream
    db = world.services.db
    with db.read() as s:
        for key, index in (
            ("customer_id", "ix_events_customer"),
            ("interaction_id", "ix_events_interaction"),
        ):
            stmt = (
                store.select(store.EventRecord.id)
                .where(
                    store.EventRecord.tenant_id == world.tenant_id,
                    store.payload_key(s, key) == "x",
                    store.EventRecord.type == "interaction.created",
                )
                .compile(s.get_bind(), compile_kwargs={"literal_binds": True})
            )
            if db.is_sqlite:
                plan = " ".join(str(r[-1]) for r in s.execute(text(f"EXPLAIN QUERY PLAN {stmt}")))
            else:
                s.execute(text("SET LOCAL enable_seqscan = off"))
                plan = " ".join(r[0] for r in s.execute(text(f"EXPLAIN {stmt}")))
            assert index in plan, plan

    # timers: offer expiry, accepted at, wrap-up start, from the server's events
    iid = sup.post("/interactions", {"queue_id": "support", "customer_id": "c-9"}, status=201)[
        "interaction"
    ]["interaction_id"]
    offered = ana.get(f"/interactions/{iid}/context")["timing"]["offers"][world.agent_id]
    assert offered["expires_at"] > offered["offered_at"] and offered["timeout_seconds"] > 0
    world.clock.advance(3)
    ana.post(f"/interactions/{iid}/accept")
    world.clock.advance(40)
    ana.post(f"/interactions/{iid}/complete", {})
    timing = ana.get(f"/interactions/{iid}/context")["timing"]
    accepted = timing["accepted_at"][world.agent_id]
    wrap = timing["wrapups"][world.agent_id]
    assert accepted > offered["offered_at"] and wrap["started_at"] > accepted
    assert wrap["planned_seconds"] == 30
