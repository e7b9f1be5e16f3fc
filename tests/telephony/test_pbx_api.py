"""PBX configuration over HTTP, and the router reading it from SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.conftest import PASSWORD, World
from tests.routing.test_routing_service import Api

from sparklecomm.app import build_app
from sparklecomm.audit.store import Actor
from sparklecomm.store.db import read_events
from sparklecomm.store.models import AuditLog
from sparklecomm.telephony.pbx.models import Trunk
from sparklecomm.telephony.pbx.routes import (
    CallRequest,
    Hunt,
    Reject,
    Route,
    Target,
    ToQueue,
    ToVoicemail,
)
from sparklecomm.telephony.pbx.service import PbxService

SIP_PASSWORD = "phone-secret-123"


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(build_app(world.services)) as c:
        yield c


def pbx_of(world: World) -> PbxService:
    service: PbxService = world.services.extra["pbx"]
    return service


def route(pbx: PbxService, request: CallRequest) -> Route:
    # The router's async face runs the SQL in the thread pool; the sync face is the same
    # code without it.
    return pbx.route_sync(request)


def call(dialled: str, ext: str | None = "1001", **kw: object) -> CallRequest:
    return CallRequest(
        dialled=dialled,
        caller=str(kw.pop("caller", ext or "anonymous")),
        caller_name=None,
        source=str(kw.pop("source", "127.0.0.1:5070")),
        extension=ext,
        **kw,  # type: ignore[arg-type]
    )


def setup(client: TestClient) -> tuple[Api, Api, Api]:
    """Extensions 1001-1003 and the routing queues ``support`` and ``q`` (DIDs may only name
    queues that exist)."""
    admin, sup, ana = Api(client, "admin"), Api(client, "sup"), Api(client, "ana")
    for number in ("1001", "1002", "1003"):
        admin.post(
            "/telephony/extensions",
            {"number": number, "password": SIP_PASSWORD, "display_name": f"Ext {number}"},
            status=201,
        )
    for queue in ("support", "q"):
        admin.post("/queues", {"id": queue, "name": queue.title()}, status=201)
    return admin, sup, ana


def errors(problem: dict[str, object]) -> list[object]:
    return [e["field"] for e in problem["errors"]]  # type: ignore[attr-defined]


def test_roles_agents_get_403_supervisors_read_admins_change(
    client: TestClient, world: World
) -> None:
    admin, sup, ana = setup(client)
    paths = (
        "/telephony/extensions",
        "/telephony/dids",
        "/telephony/ring-groups",
        "/telephony/ivr-menus",
        "/telephony/trunks",
        "/telephony/blocked-numbers",
        "/telephony/dial-rules",
        "/telephony/extensions/1001/call-settings",
    )
    for path in paths:
        assert ana.get(path, status=403)["status"] == 403
        sup.get(path)
    assert [e["number"] for e in sup.get("/telephony/extensions")] == ["1001", "1002", "1003"]
    r = sup.post("/telephony/dids", {"number": "+4930100", "destination": "reject"}, status=403)
    assert "admin" in r["detail"]
    ana.send("PUT", "/telephony/extensions/1001/call-settings", {"dnd": True}, status=403)
    admin.post("/telephony/dids", {"number": "+4930100", "destination": "reject"}, status=201)


def test_validation_errors_name_the_field(client: TestClient, world: World) -> None:
    admin, _, _ = setup(client)
    cases = [
        ("/telephony/dids", {"number": "abc", "destination": "reject"}, "number"),
        ("/telephony/dids", {"number": "+4930100", "destination": "mars:1"}, "destination"),
        ("/telephony/dids", {"number": "+4930100", "destination": "extension:4711"}, "destination"),
        ("/telephony/dids", {"number": "+4930100", "destination": "queue:nosuch"}, "destination"),
        (
            "/telephony/dids",
            {"number": "+4930100", "destination": "queue:q", "attributes": {"dnis": "x"}},
            "attributes.dnis",
        ),
        ("/telephony/dids", {"number": "+4930100"}, "destination"),
        ("/telephony/trunks", {"name": "c", "host": "sip.example.net", "port": 70000}, "port"),
        ("/telephony/trunks", {"name": "c", "host": "bad host!"}, "host"),
        (
            "/telephony/trunks",
            {"name": "c", "host": "sip.example.net", "allowed_sources": ["nope"]},
            "allowed_sources",
        ),
        ("/telephony/trunks", {"name": "c", "host": "h", "register": True}, "register"),
        ("/telephony/trunks", {"name": "Bad Name", "host": "h"}, "name"),
        ("/telephony/ring-groups", {"name": "g", "members": ["4711"]}, "members"),
        ("/telephony/ring-groups", {"name": "g", "members": ["1001"], "mode": "x"}, "mode"),
        (
            "/telephony/ring-groups",
            {"name": "g", "members": ["1001"], "ring_seconds": 1},
            "ring_seconds",
        ),
        ("/telephony/blocked-numbers", {"pattern": "call me"}, "pattern"),
        ("/telephony/blocked-numbers", {"pattern": "+1900*", "note": "a\x00b"}, "note"),
        (
            "/telephony/dids",
            {"number": "+4930100", "destination": "reject", "description": "a\x00b"},
            "description",
        ),
        (
            "/telephony/dids",
            {"number": "+4930100", "destination": "queue:q", "attributes": {"c": "\x00"}},
            "attributes.c",
        ),
        ("/telephony/dial-rules", {"name": "r", "prefix": "+49"}, "trunk"),
        ("/telephony/dial-rules", {"name": "r", "prefix": "x", "trunk": "t"}, "prefix"),
        ("/telephony/dial-rules", {"name": "r", "prefix": "+", "trunk": "nope"}, "trunk"),
        ("/telephony/extensions", {"number": "1", "password": SIP_PASSWORD}, "number"),
        ("/telephony/extensions", {"number": "1009", "password": "short"}, "password"),
    ]
    for path, body, field in cases:
        problem = admin.post(path, body, status=422)
        assert field in errors(problem), (path, body, problem)
        assert problem["type"] == "/problems/invalid_input"
    bad = [
        ({"forward_always": "not a number"}, "forward_always"),
        ({"forward_busy": "4711"}, "forward_busy"),
        ({"forward_always": "1001"}, "forward_always"),
        ({"ring_seconds": 1000}, "ring_seconds"),
        ({"follow_me": [{"targets": [], "ring_seconds": 10}]}, "follow_me.0.targets"),
        ({"follow_me": [{"targets": ["1002"], "ring_seconds": 1}]}, "follow_me.0.ring_seconds"),
        ({"dnd": True, "surprise": 1}, "surprise"),
    ]
    for body, field in bad:
        problem = admin.send("PUT", "/telephony/extensions/1001/call-settings", body, status=422)
        assert field in errors(problem), (body, problem)
    problem = admin.get("/telephony/extensions/4711/call-settings", status=404)
    assert errors(problem) == ["number"]


def test_did_to_queue_routes_with_attributes_and_is_audited(
    client: TestClient, world: World
) -> None:
    admin, sup, _ = setup(client)
    pbx = pbx_of(world)
    created = admin.post(
        "/telephony/dids",
        {
            "number": "+49 30 100",
            "destination": "queue:support",
            "attributes": {"campaign": "spring"},
        },
        status=201,
    )
    assert created["number"] == "+4930100" and created["destination"] == "queue:support"
    admin.post(
        "/telephony/trunks",
        {"name": "carrier", "host": "127.0.0.1", "allowed_sources": ["127.0.0.2"]},
        status=201,
    )
    trunk_id = pbx.trusted_source("127.0.0.2:5060")
    assert trunk_id is not None and pbx.trusted_source("127.0.0.3:5060") is None
    inbound = call("4930100", ext=None, caller="+4917612345", trunk_id=trunk_id)
    assert route(pbx, inbound) == ToQueue(
        tenant_id=world.tenant_id,
        queue_id="support",
        attributes={"campaign": "spring", "dnis": "+4930100", "ani": "+4917612345"},
    )
    # a change is seen at once by the router (the cache is dropped)
    admin.send("PATCH", "/telephony/dids/+4930100", {"destination": "extension:1002"})
    r = route(pbx, inbound)
    assert isinstance(r, Hunt) and r.steps[0].targets == (Target(extension="1002"),)
    assert [d["destination"] for d in sup.get("/telephony/dids")] == ["extension:1002"]
    admin.send("DELETE", "/telephony/dids/+4930100", status=204)
    assert route(pbx, inbound) == Reject(404, "Not Found")
    admin.send("DELETE", "/telephony/dids/+4930100", status=404)
    with world.services.db.read() as s:
        actions = [a.action for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
        events = [e.type for e in read_events(s, world.tenant_id, 0, 1000)]
    for action in ("pbx.did.created", "pbx.did.updated", "pbx.did.deleted", "pbx.trunk.created"):
        assert action in actions and action in events


def test_trunk_password_is_write_only_and_stored_encrypted(
    client: TestClient, world: World
) -> None:
    admin, sup, _ = setup(client)
    body = {
        "name": "carrier",
        "host": "sip.example.net",
        "transport": "TCP",
        "username": "acme",
        "password": "very-secret-trunk-pass",
        "register": True,
        "caller_id": "+4930100",
        "max_channels": 30,
    }
    created = admin.post("/telephony/trunks", body, status=201)
    assert "password" not in created and created["password_set"] is True
    listed = sup.get("/telephony/trunks")
    assert "very-secret" not in str(listed) and listed[0]["register"] is True
    with world.services.db.read() as s:
        row = s.scalar(select(Trunk))
        assert row is not None and "very-secret" not in (row.password_encrypted or "")
        audit = [str(a.details) for a in s.scalars(select(AuditLog))]
    assert not any("very-secret" in a for a in audit)
    assert pbx_of(world).trunk_password(row.id) == "very-secret-trunk-pass"
    changed = admin.send(
        "PATCH", "/telephony/trunks/carrier", {"port": 5080, "password": None, "register": False}
    )
    assert changed["port"] == 5080 and changed["password_set"] is False
    problem = admin.send("PATCH", "/telephony/trunks/carrier", {"register": True}, status=422)
    assert errors(problem) == ["register"]
    admin.post("/telephony/trunks", {"name": "carrier", "host": "h"}, status=409)


def test_outbound_needs_a_trunk_and_a_rule(client: TestClient, world: World) -> None:
    admin, sup, _ = setup(client)
    pbx = pbx_of(world)
    assert route(pbx, call("+4930555666")) == Reject(
        403, "Outbound calls to this number are not allowed"
    )
    admin.post("/telephony/dids", {"number": "+4930100", "destination": "reject"}, status=201)
    admin.post("/telephony/trunks", {"name": "carrier", "host": "127.0.0.1"}, status=201)
    admin.post(
        "/telephony/dial-rules", {"name": "de", "prefix": "+49", "trunk": "carrier"}, status=201
    )
    admin.post(
        "/telephony/dial-rules",
        {"name": "premium", "prefix": "+49900", "action": "deny"},
        status=201,
    )
    rules = sup.get("/telephony/dial-rules")
    assert [(r["name"], r["trunk"]) for r in rules] == [("de", "carrier"), ("premium", None)]
    r = route(pbx, call("+4930555666"))
    assert isinstance(r, Hunt)
    target = r.steps[0].targets[0]
    assert target.external == "+4930555666" and target.caller_id == "+4930100"
    assert target.caller_name == "Ext 1001"
    assert isinstance(route(pbx, call("+4990012")), Reject)
    admin.send("DELETE", "/telephony/trunks/carrier", status=409)  # the rule uses it
    admin.send("DELETE", "/telephony/dial-rules/de", status=204)
    assert isinstance(route(pbx, call("+4930555666")), Reject)
    admin.send("DELETE", "/telephony/trunks/carrier", status=204)


def test_call_settings_ring_groups_and_blocked_numbers(client: TestClient, world: World) -> None:
    admin, sup, _ = setup(client)
    pbx = pbx_of(world)
    settings = admin.send(
        "PUT",
        "/telephony/extensions/1002/call-settings",
        {
            "forward_no_answer": "1003",
            "ring_seconds": 15,
            "follow_me": [{"targets": ["1001"], "ring_seconds": 10}],
        },
    )
    assert settings["forward_no_answer"] == "1003" and settings["dnd"] is False
    assert sup.get("/telephony/extensions/1002/call-settings") == settings
    r = route(pbx, call("1002", ext="1003"))
    # 1003 is the caller: follow-me 1001 stays, the forward back to the caller is cut
    assert isinstance(r, Hunt)
    assert [[t.extension for t in s.targets] for s in r.steps] == [["1002"], ["1001"]]
    admin.send("PUT", "/telephony/extensions/1002/call-settings", {"dnd": True})
    r = route(pbx, call("1002"))
    assert isinstance(r, Reject) and r.status == 486
    # PUT changes only what it names
    assert sup.get("/telephony/extensions/1002/call-settings")["ring_seconds"] == 15

    group = admin.post(
        "/telephony/ring-groups",
        {"name": "sales", "members": ["1001", "1002", "1003"], "mode": "sequential"},
        status=201,
    )
    assert group["fallback"] == "reject"
    admin.post(
        "/telephony/dids", {"number": "+4930102", "destination": "ring_group:sales"}, status=201
    )
    r = route(pbx, call("+4930102", ext="1003"))
    assert isinstance(r, Hunt)
    assert [[t.extension for t in s.targets] for s in r.steps] == [
        ["1001"]
    ]  # 1002 DND, 1003 caller
    admin.send(
        "PUT",
        "/telephony/ring-groups/sales",
        {"members": ["1001", "1003"], "mode": "simultaneous", "fallback": "extension:1002"},
    )
    admin.send("DELETE", "/telephony/ring-groups/sales", status=409)  # the DID uses it
    admin.send("DELETE", "/telephony/extensions/1003", status=409)  # the group rings it

    admin.post(
        "/telephony/trunks",
        {"name": "carrier", "host": "127.0.0.1", "allowed_sources": ["127.0.0.2"]},
        status=201,
    )
    trunk_id = pbx.trusted_source("127.0.0.2")
    admin.post("/telephony/blocked-numbers", {"pattern": "+1900*", "note": "premium"}, status=201)
    admin.post("/telephony/blocked-numbers", {"pattern": "+1900*"}, status=409)
    assert [b["pattern"] for b in sup.get("/telephony/blocked-numbers")] == ["+1900*"]
    r = route(pbx, call("+4930102", ext=None, caller="+19005550000", trunk_id=trunk_id))
    assert r == Reject(403, "Forbidden (caller blocked)")
    admin.send("DELETE", "/telephony/blocked-numbers/+1900*", status=204)
    assert isinstance(
        route(pbx, call("+4930102", ext=None, caller="+1900555", trunk_id=trunk_id)), Hunt
    )


def test_a_voice_queues_divert_target_is_checked_by_the_dial_plan(
    client: TestClient, world: World
) -> None:
    admin, _, _ = setup(client)
    config = admin.get("/queues/support/config")

    def put(rule: dict[str, object], status: int, **changes: object) -> Any:
        body = {**config, "max_wait_seconds": 120, "on_max_wait": rule, **changes}
        return admin.send("PUT", "/queues/support", body, status=status)

    missing = put({"divert_to": "extension:1099"}, 422)
    assert errors(missing) == ["on_max_wait.divert_to"] and "1099" in missing["detail"]
    typo = put({"divert_to": "extention:1002"}, 422)
    assert "unknown target 'extention'" in typo["detail"]
    # an outside number needs a dial rule, as any outbound call
    assert "not allowed" in put({"divert_to": "number:+4930555666"}, 422)["detail"]
    group = put({"divert_to": "1002"}, 422, on_closed={"divert_to": "ring_group:x"})
    assert errors(group) == ["on_closed.divert_to"] and "no ring group x" in group["detail"]
    nobox = put({"divert_to": "voicemail:support"}, 422)
    assert errors(nobox) == ["on_max_wait.divert_to"] and "no voicemail box" in nobox["detail"]
    for good in ("extension:1002", "1003", "voicemail:1002"):
        assert put({"divert_to": good}, 200)["on_max_wait"]["divert_to"] == good
    # a queue without voice keeps its own labels for its own channels
    chat = {**config, "channels": ["chat"], "on_max_wait": {"divert_to": "email:support"}}
    assert admin.send("PUT", "/queues/support", chat)["on_max_wait"]["divert_to"] == (
        "email:support"
    )


async def test_auto_answer_is_a_call_setting_the_b2bua_reads(
    client: TestClient, world: World
) -> None:
    admin, sup, _ = setup(client)
    pbx = pbx_of(world)
    assert sup.get("/telephony/extensions/1002/call-settings")["auto_answer"] is False
    assert await pbx.auto_answer("1002") is False
    changed = admin.send("PUT", "/telephony/extensions/1002/call-settings", {"auto_answer": True})
    assert changed["auto_answer"] is True and changed["dnd"] is False
    assert await pbx.auto_answer("1002") is True
    assert await pbx.auto_answer("1001") is False and await pbx.auto_answer("4711") is False
    # other changes keep it; a wrong type names the field
    admin.send("PUT", "/telephony/extensions/1002/call-settings", {"dnd": True})
    assert sup.get("/telephony/extensions/1002/call-settings")["auto_answer"] is True
    error = admin.send(
        "PUT", "/telephony/extensions/1002/call-settings", {"auto_answer": "sometimes"}, status=422
    )
    assert "auto_answer" in str(error)


async def test_a_queue_diverting_its_caller_is_routed_by_the_organisations_dial_plan(
    client: TestClient, world: World
) -> None:
    """``PbxService.divert`` (the B2BUA's ``router.divert``) reads the same SQL configuration:
    extension settings, ring groups, DIDs; the queue forwards with the organisation's rights."""
    admin, _, _ = setup(client)
    pbx = pbx_of(world)
    admin.send("PUT", "/telephony/extensions/1002/call-settings", {"forward_always": "1003"})
    admin.post("/telephony/ring-groups", {"name": "desk", "members": ["1001"]}, status=201)
    admin.post(
        "/telephony/trunks",
        {"name": "carrier", "host": "127.0.0.1", "allowed_sources": ["127.0.0.2"]},
        status=201,
    )
    trunk_id = pbx.trusted_source("127.0.0.2")
    inbound = call("4930100", ext=None, caller="+4917612345", trunk_id=trunk_id)
    t = world.tenant_id
    r = await pbx.divert(t, "extension:1002", inbound)
    assert isinstance(r, Hunt) and r.steps[0].targets == (Target(extension="1003"),)
    r = await pbx.divert(t, "ring_group:desk", inbound)
    assert isinstance(r, Hunt) and r.steps[0].targets == (Target(extension="1001"),)
    # an outside number needs a dial rule, as any outbound call
    r = await pbx.divert(t, "number:+4930555666", inbound)
    assert isinstance(r, Reject) and r.status == 403
    r = await pbx.divert(t, "voicemail:1002", inbound)
    assert isinstance(r, ToVoicemail) and r.box == "1002" and r.tenant_id == t
    assert r.greeting.startswith("Ext 1002 is not available")
    assert (await pbx.divert(t, "voicemail:support", inbound)).status == 404  # type: ignore[union-attr]


def test_extensions_update_password_and_delete(client: TestClient, world: World) -> None:
    admin, sup, _ = setup(client)
    r = admin.send("PATCH", "/telephony/extensions/1001", {"display_name": "Reception"})
    assert r["display_name"] == "Reception"
    admin.send(
        "PUT", "/telephony/extensions/1001/password", {"password": "another-long-pass"}, status=204
    )
    problem = admin.send(
        "PUT", "/telephony/extensions/1001/password", {"password": "short"}, status=422
    )
    assert errors(problem) == ["password"]
    admin.send("PUT", "/telephony/extensions/1003/call-settings", {"dnd": True})
    admin.send("DELETE", "/telephony/extensions/1003", status=204)
    assert [e["number"] for e in sup.get("/telephony/extensions")] == ["1001", "1002"]
    admin.send("DELETE", "/telephony/extensions/1003", status=404)
    r = route(pbx_of(world), call("1002", ext="1003"))
    assert isinstance(r, Reject) and r.status == 403


def test_tenants_are_isolated(client: TestClient, world: World) -> None:
    admin, _, _ = setup(client)
    auth = world.services.auth
    other = auth.do_create_tenant("other", "Other Inc", Actor.cli())
    auth.do_create_user(
        other.tenant_id, Actor.cli(), username="olga", password=PASSWORD, role="admin"
    )
    olga = Api(client, "olga")
    admin.post(
        "/telephony/dids", {"number": "+4930100", "destination": "extension:1001"}, status=201
    )
    admin.post(
        "/telephony/trunks",
        {"name": "carrier", "host": "127.0.0.1", "allowed_sources": ["127.0.0.2"]},
        status=201,
    )
    assert olga.get("/telephony/dids") == [] and olga.get("/telephony/extensions") == []
    # DIDs are unique platform-wide; extensions of others are invisible
    olga.post("/telephony/dids", {"number": "+4930100", "destination": "reject"}, status=409)
    olga.post(
        "/telephony/dids", {"number": "+4930200", "destination": "extension:1001"}, status=422
    )
    olga.send("PUT", "/telephony/extensions/1001/call-settings", {"dnd": True}, status=404)
    olga.send("DELETE", "/telephony/extensions/1001", status=404)
    olga.send("PUT", "/telephony/extensions/1001/password", {"password": "x" * 12}, status=404)
    problem = olga.post(
        "/telephony/trunks",
        {"name": "mine", "host": "127.0.0.1", "allowed_sources": ["127.0.0.2"]},
        status=409,
    )
    assert errors(problem) == ["allowed_sources"]
    olga.post("/telephony/extensions", {"number": "2001", "password": SIP_PASSWORD}, status=201)
    pbx = pbx_of(world)
    # Olga's extension dialling Acme's extension or Acme's DID goes nowhere
    for dialled in ("1001", "+4930100"):
        r = route(pbx, call(dialled, ext="2001"))
        assert isinstance(r, Reject) and r.status == 403, dialled
    # a request claiming the wrong tenant is refused
    r = route(pbx, call("1002", ext="1001", tenant_id=other.tenant_id))
    assert r == Reject(403, "Forbidden (wrong organisation)")


async def test_router_async_face_and_unauthenticated_refusal_is_logged(
    client: TestClient, world: World
) -> None:
    import structlog

    setup(client)
    pbx = pbx_of(world)
    with structlog.testing.capture_logs() as logs:
        r = await pbx.route(call("+4930555666", ext=None, source="192.0.2.1:5060"))
    assert r == Reject(403, "Forbidden (authentication required)")
    refused = [e for e in logs if e["event"] == "sip_request_refused"]
    assert refused and refused[0]["source"] == "192.0.2.1:5060"
    r = await pbx.route(call("1002"))
    assert isinstance(r, Hunt)


def test_openapi_documents_the_pbx_routes(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    for path in (
        "/api/v1/telephony/dids",
        "/api/v1/telephony/ring-groups/{name}",
        "/api/v1/telephony/ivr-menus/{name}",
        "/api/v1/telephony/trunks/{name}",
        "/api/v1/telephony/extensions/{number}/call-settings",
        "/api/v1/telephony/blocked-numbers",
        "/api/v1/telephony/dial-rules",
    ):
        assert path in paths


def test_changes_from_another_node_are_seen_after_the_cache_ttl(
    client: TestClient, world: World
) -> None:
    setup(client)
    here = pbx_of(world)
    other_node = PbxService(
        world.services.db, world.clock, world.services.extra["extensions"], secret="s" * 40
    )
    request = call("+4930100")
    assert route(here, request) == Reject(403, "Outbound calls to this number are not allowed")
    other_node.do_create_did(
        world.tenant_id, Actor.cli(), number="+4930100", destination="queue:support"
    )
    assert isinstance(route(other_node, request), ToQueue)  # its own change: at once
    assert isinstance(route(here, request), Reject)  # cached here ...
    world.clock.advance(here.cache_ttl + 1)
    assert isinstance(route(here, request), ToQueue)  # ... until the TTL runs out
