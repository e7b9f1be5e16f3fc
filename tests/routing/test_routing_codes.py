"""The administrator's desk codes in routing, and the queue configuration round trip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import FAST_PASSWORDS, World
from tests.routing.test_routing_service import Api, setup_center

from sparklecomm.acd.service import AcdService
from sparklecomm.acd.store import load_journal
from sparklecomm.app import build_app, build_services
from sparklecomm.customers.models import DeskCode
from sparklecomm.settings import Settings


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(build_app(world.services)) as c:
        yield c


def problem(api: Api, method: str, path: str, body: Any, status: int = 422) -> dict[str, Any]:
    r = api.client.request(method, f"/api/v1{path}", json=body, headers=api.headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    doc: dict[str, Any] = r.json()
    return doc


def fields(doc: dict[str, Any]) -> list[str]:
    return [e["field"] for e in doc.get("errors") or []]


def journal_names(world: World) -> list[str]:
    with world.services.db.read() as s:
        return [c.name for c in load_journal(s, world.tenant_id, 0)]


def break_reasons(world: World) -> list[str] | None:
    acd: AcdService = world.services.extra["acd"]
    reasons = acd.read(world.tenant_id, lambda e: e.config.break_reasons)
    return None if reasons is None else sorted(reasons)


def test_without_codes_any_break_reason_is_accepted(client: TestClient, world: World) -> None:
    _, _, ana = setup_center(client, world)
    ana.post(f"/agents/{world.agent_id}/login")
    ana.post(f"/agents/{world.agent_id}/state", {"state": "break", "reason": "dentist"})
    assert ana.get(f"/agents/{world.agent_id}")["reason"] == "dentist"
    assert break_reasons(world) is None
    assert "set_break_reasons" not in journal_names(world)


def test_break_reasons_follow_the_admin_codes(client: TestClient, world: World) -> None:
    admin, _, ana = setup_center(client, world)
    reasons = admin.get("/codes?kind=reason")  # a first read seeds the default codes
    assert {c["code"] for c in reasons} >= {"lunch", "training"}
    assert break_reasons(world) == sorted({c["code"] for c in reasons} | {"missed-offers"})
    ana.post(f"/agents/{world.agent_id}/login")
    doc = problem(
        ana, "POST", f"/agents/{world.agent_id}/state", {"state": "break", "reason": "dentist"}
    )
    assert "dentist" in doc["detail"] and "lunch" in doc["detail"]
    assert fields(doc) == ["reason"]
    assert ana.get(f"/agents/{world.agent_id}")["state"] == "available"  # nothing changed
    ana.post(f"/agents/{world.agent_id}/state", {"state": "break", "reason": "lunch"})
    ana.post(f"/agents/{world.agent_id}/state", {"state": "available"})
    # the admin adds a code: allowed at once
    admin.send("PUT", "/codes/reason/dentist", {"label": "Dentist"})
    ana.post(f"/agents/{world.agent_id}/state", {"state": "break", "reason": "dentist"})
    ana.post(f"/agents/{world.agent_id}/state", {"state": "available"})
    # ... and deactivates one: refused from then on
    admin.send("PUT", "/codes/reason/lunch", {"label": "Lunch", "active": False})
    problem(ana, "POST", f"/agents/{world.agent_id}/state", {"state": "break", "reason": "lunch"})
    assert "lunch" not in (break_reasons(world) or [])
    # every change is a journaled command of its own
    assert journal_names(world).count("set_break_reasons") == 3


def test_codes_changed_behind_the_service_are_caught_up_before_a_break(world: World) -> None:
    acd: AcdService = world.services.extra["acd"]
    acd.execute(
        world.tenant_id,
        "add_agent",
        config={"id": world.agent_id, "skills": {}},
    )
    acd.execute(world.tenant_id, "login", agent_id=world.agent_id)
    with world.services.db.write() as tx:  # another process, a script...
        tx.session.add(
            DeskCode(tenant_id=world.tenant_id, kind="reason", code="lunch", label="Lunch")
        )
    with pytest.raises(Exception, match="allowed: lunch, missed-offers") as info:
        acd.execute(world.tenant_id, "set_break", agent_id=world.agent_id, reason="nap")
    assert getattr(info.value, "field", None) == "reason"
    acd.execute(world.tenant_id, "set_break", agent_id=world.agent_id, reason="lunch")
    names = journal_names(world)
    assert names[-2:] == ["set_break_reasons", "set_break"]


@pytest.mark.parametrize("snapshot_every", [1000, 2])
def test_break_reasons_survive_a_restart_and_replay_keeps_history(
    database_url: str, tmp_path: Path, world: World, snapshot_every: int
) -> None:
    acd: AcdService = world.services.extra["acd"]
    acd.snapshot_every = snapshot_every
    with TestClient(build_app(world.services)) as client:
        admin, _, ana = setup_center(client, world)
        ana.post(f"/agents/{world.agent_id}/login")
        # free text before any code exists, then codes arrive: replay must accept the old one
        ana.post(f"/agents/{world.agent_id}/state", {"state": "break", "reason": "dentist"})
        ana.post(f"/agents/{world.agent_id}/state", {"state": "available"})
        admin.get("/codes")
        ana.post(f"/agents/{world.agent_id}/state", {"state": "break", "reason": "training"})
        before = acd.read(world.tenant_id, lambda e: e.to_snapshot())
        commands = len(journal_names(world))
    restarted = build_services(
        Settings(data_dir=tmp_path, database_url=database_url),
        clock=world.clock,
        passwords=FAST_PASSWORDS,
    )
    try:
        acd2: AcdService = restarted.extra["acd"]
        assert acd2.load_all() == 1
        assert acd2.read(world.tenant_id, lambda e: e.to_snapshot()) == before
        assert before["config"]["break_reasons"] is not None
        assert "training" in before["config"]["break_reasons"]
        with restarted.db.read() as s:  # nothing changed: no command on start
            assert len(load_journal(s, world.tenant_id, 0)) <= commands
    finally:
        restarted.db.dispose()


def test_dispositions_follow_the_admin_codes(client: TestClient, world: World) -> None:
    admin, sup, ana = setup_center(client, world)
    ana.post(f"/agents/{world.agent_id}/login")

    def connected() -> str:
        iid: str = sup.post("/interactions", {"queue_id": "support"}, status=201)["interaction"][
            "interaction_id"
        ]
        ana.post(f"/interactions/{iid}/accept")
        return iid

    # no codes: any disposition, as before
    iid = connected()
    ana.post(f"/interactions/{iid}/complete", {"disposition": "whatever"})
    ana.post(f"/interactions/{iid}/wrapup-end")
    admin.get("/codes?kind=disposition")  # seeds the defaults
    iid = connected()
    doc = problem(ana, "POST", f"/interactions/{iid}/complete", {"disposition": "whatever"})
    assert fields(doc) == ["disposition"] and "resolved" in doc["detail"]
    assert ana.get(f"/agents/{world.agent_id}")["state"] == "busy"  # still connected
    ana.post(f"/interactions/{iid}/complete", {"disposition": "resolved"})
    ana.post(f"/interactions/{iid}/wrapup-end")
    iid = connected()
    ana.post(f"/interactions/{iid}/complete")  # none given is still fine


def test_queue_config_round_trips_through_put(client: TestClient, world: World) -> None:
    admin, _, _ = setup_center(client, world)
    admin.post("/queues", {"id": "overflow", "name": "Overflow"}, status=201)
    # a voice queue's divert_to must be reachable: the voicemail box of an extension
    admin.post(
        "/telephony/extensions", {"number": "1002", "password": "phone-secret-123"}, status=201
    )
    config = admin.get("/queues/support/config")
    for name in (
        "id",
        "member_expression_weight",
        "reoffer_delay_seconds",
        "max_waiting_per_agent",
        "on_ratio",
        "on_empty",
        "default_handle_seconds",
    ):
        assert name in config
    # unchanged: GET then PUT gives the same configuration back
    assert admin.send("PUT", "/queues/support", config) == config
    changed = dict(
        config,
        reoffer_delay_seconds=5,
        member_expression_weight=3,
        max_waiting_per_agent=2.5,
        on_ratio={"queue_id": "overflow", "divert_to": None},
        on_empty={"queue_id": None, "divert_to": "voicemail:1002"},
        default_handle_seconds=240,
    )
    after = admin.send("PUT", "/queues/support", changed)
    assert after == changed
    assert admin.get("/queues/support/config") == changed
    # other fields were kept (a GET-change-PUT does not reset them)
    assert after["offer_timeout_seconds"] == 15 and after["wrapup_seconds"] == 30


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "other"}, "id"),
        ({"reoffer_delay_seconds": -1}, "reoffer_delay_seconds"),
        ({"member_expression_weight": 0}, "member_expression_weight"),
        ({"max_waiting_per_agent": "many"}, "max_waiting_per_agent"),
        ({"on_empty": {"queue_id": "support"}}, "on_empty"),
        ({"on_ratio": {"bogus": 1}}, "on_ratio"),
        ({"default_handle_seconds": 1e9}, "default_handle_seconds"),
    ],
)
def test_bad_queue_fields_are_a_clear_422(
    client: TestClient, world: World, change: dict[str, Any], field: str
) -> None:
    admin, _, _ = setup_center(client, world)
    config = admin.get("/queues/support/config")
    doc = problem(admin, "PUT", "/queues/support", dict(config, **change))
    assert any(f == field or f.startswith(field + ".") for f in fields(doc)), doc
    assert admin.get("/queues/support/config") == config  # unchanged
