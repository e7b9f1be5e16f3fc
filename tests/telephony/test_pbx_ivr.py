"""Voice menus (IVR): the dial plan's choices (pure), the service and API over the real
database, and the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.conftest import World
from tests.telephony.test_pbx_api import call, errors, pbx_of, route, setup
from tests.telephony.test_pbx_cli import ok, run

from sparklecomm.app import build_app
from sparklecomm.core.hours import BusinessHours, parse_exceptions, parse_weekly
from sparklecomm.store.db import read_events
from sparklecomm.store.models import AuditLog
from sparklecomm.telephony.pbx.dialplan import (
    DECLINED,
    Destination,
    DialRule,
    DidConfig,
    IvrMenuConfig,
    PbxConfig,
    RingGroupConfig,
    TrunkConfig,
    decide,
    ivr_choice,
)
from sparklecomm.telephony.pbx.routes import (
    CallRequest,
    Hunt,
    HuntStep,
    IvrMenu,
    Reject,
    Route,
    Target,
    ToIvr,
    ToQueue,
)

T = "tenant-a"
TRUNK = TrunkConfig("trunk-1", "carrier", caller_id="+4930200")
MAIN = IvrMenuConfig(
    "main",
    "For sales press 1, for billing press 2.",
    {
        "1": Destination("queue", "sales"),
        "2": Destination("ivr", "billing"),
        "3": Destination("extension", "1002"),
        "4": Destination("ring_group", "desk"),
        "5": Destination("number", "+4930555666"),
        "#": Destination("reject"),
    },
    timeout_seconds=4.0,
    attempts=2,
    invalid_prompt="Try again.",
    default=Destination("queue", "support"),
)
BILLING = IvrMenuConfig(
    "billing",
    "Invoices press 1.",
    {"1": Destination("queue", "invoices")},
    default=Destination("ivr", "main"),
)


def config(**changes: object) -> PbxConfig:
    base = PbxConfig(
        tenant_id=T,
        extensions={"1001": "Ana", "1002": "Ben", "1003": "Cleo"},
        dids={
            "+4930200": DidConfig("+4930200", Destination("ivr", "main"), {"campaign": "x"}),
        },
        ring_groups={"desk": RingGroupConfig("desk", ("1002", "1003"), "simultaneous", 15.0)},
        menus={"main": MAIN, "billing": BILLING},
        trunks={TRUNK.id: TRUNK},
        dial_rules=(DialRule("+49", "allow", TRUNK.id, name="germany"),),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def from_trunk(dialled: str = "+4930200", caller: str = "+4917612345") -> CallRequest:
    return CallRequest(
        dialled=dialled,
        caller=caller,
        caller_name=None,
        source="127.0.0.2:5060",
        trunk_id=TRUNK.id,
        tenant_id=T,
    )


def entered(cfg: PbxConfig | None = None) -> ToIvr:
    route = decide(cfg or config(), from_trunk())
    assert isinstance(route, ToIvr), route
    return route


# -- the dial plan ---------------------------------------------------------------------------
def test_a_did_to_a_menu_plays_it_with_the_call_attributes() -> None:
    route = entered()
    assert route == ToIvr(
        tenant_id=T,
        menu=IvrMenu(
            "main",
            "For sales press 1, for billing press 2.",
            keys=("#", "1", "2", "3", "4", "5"),
            timeout_seconds=4.0,
            attempts=2,
            invalid_prompt="Try again.",
        ),
        attributes={"campaign": "x", "dnis": "+4930200", "ani": "+4917612345"},
    )
    # an extension dialling the DID reaches the same menu, with itself as ani
    internal = CallRequest("+4930200", "1001", None, "127.0.0.1:5070", "1001", T)
    inside = decide(config(), internal)
    assert isinstance(inside, ToIvr) and inside.attributes["ani"] == "1001"


def test_each_kind_of_choice() -> None:
    cfg, request = config(), from_trunk()
    start = entered(cfg)
    assert ivr_choice(cfg, start, "1", request) == ToQueue(
        tenant_id=T,
        queue_id="sales",
        attributes={"campaign": "x", "dnis": "+4930200", "ani": "+4917612345", "ivr": "main:1"},
    )
    sub = ivr_choice(cfg, start, "2", request)
    assert isinstance(sub, ToIvr) and sub.menu == BILLING.menu()
    assert sub.attributes["ivr"] == "main:2" and sub.attributes["dnis"] == "+4930200"
    ext = ivr_choice(cfg, start, "3", request)
    assert isinstance(ext, Hunt) and ext.steps == (HuntStep((Target(extension="1002"),), 20.0),)
    # the same hunt as a DID straight to the extension
    direct = decide(
        replace(cfg, dids={"+4930200": DidConfig("+4930200", Destination("extension", "1002"))}),
        request,
    )
    assert isinstance(direct, Hunt) and direct.steps == ext.steps and direct.final == ext.final
    group = ivr_choice(cfg, start, "4", request)
    assert isinstance(group, Hunt)
    assert [[t.extension for t in s.targets] for s in group.steps] == [["1002", "1003"]]
    out = ivr_choice(cfg, start, "5", request)
    assert isinstance(out, Hunt)
    assert out.steps[0].targets == (
        Target(external="+4930555666", trunk_id=TRUNK.id, caller_id="+4930200"),
    )
    assert ivr_choice(cfg, start, "#", request) == DECLINED


def test_an_outside_number_obeys_the_dial_rules() -> None:
    cfg = config(dial_rules=())
    assert ivr_choice(cfg, entered(cfg), "5", from_trunk()) == Reject(
        403, "Outbound calls to this number are not allowed"
    )


def test_no_key_or_a_key_not_offered_takes_the_default() -> None:
    cfg, request = config(), from_trunk()
    start = entered(cfg)
    for key in (None, "9", "*"):
        r = ivr_choice(cfg, start, key, request)
        assert isinstance(r, ToQueue) and r.queue_id == "support", key
        assert r.attributes["ivr"] == "main:-"


def test_the_keys_pressed_accumulate_and_loops_are_the_callers_choice() -> None:
    cfg, request = config(), from_trunk()
    sub = ivr_choice(cfg, entered(cfg), "2", request)
    assert isinstance(sub, ToIvr)
    back = ivr_choice(cfg, sub, None, request)  # billing's default: back to main
    assert isinstance(back, ToIvr) and back.menu.name == "main"
    assert back.attributes["ivr"] == "main:2 billing:-"
    again = ivr_choice(cfg, back, "2", request)
    assert isinstance(again, ToIvr) and again.attributes["ivr"] == "main:2 billing:- main:2"
    final = ivr_choice(cfg, again, "1", request)
    assert isinstance(final, ToQueue) and final.queue_id == "invoices"
    assert final.attributes["ivr"] == "main:2 billing:- main:2 billing:1"
    assert final.attributes["campaign"] == "x" and final.attributes["ani"] == "+4917612345"


def test_the_menu_is_read_again_and_a_menu_gone_is_480() -> None:
    cfg, request = config(), from_trunk()
    start = entered(cfg)
    changed = replace(MAIN, options={**MAIN.options, "1": Destination("queue", "sales-new")})
    r = ivr_choice(config(menus={"main": changed, "billing": BILLING}), start, "1", request)
    assert isinstance(r, ToQueue) and r.queue_id == "sales-new"
    gone = ivr_choice(config(menus={"billing": BILLING}), start, "1", request)
    assert isinstance(gone, Reject) and gone.status == 480 and "main" in gone.reason
    # a submenu removed while the caller listened to main
    sub_gone = ivr_choice(config(menus={"main": MAIN}), start, "2", request)
    assert isinstance(sub_gone, Reject) and sub_gone.status == 480 and "billing" in sub_gone.reason
    # a DID leading to a menu that is gone
    assert isinstance(decide(config(menus={}), request), Reject)


def test_a_closed_did_leads_to_a_menu_with_hours_closed() -> None:
    zone = "Europe/Berlin"
    hours = BusinessHours("h", zone, parse_weekly({"mon": ["08:00-18:00"]}), parse_exceptions([]))
    did = DidConfig(
        "+4930200", Destination("queue", "sales"), hours=hours, closed=Destination("ivr", "main")
    )
    cfg = config(dids={"+4930200": did})
    monday = datetime(2026, 12, 7, 9, 0, tzinfo=ZoneInfo(zone))
    open_route = decide(cfg, from_trunk(), monday)
    assert isinstance(open_route, ToQueue) and open_route.queue_id == "sales"
    closed = decide(cfg, from_trunk(), monday.replace(hour=19))
    assert isinstance(closed, ToIvr) and closed.attributes["hours"] == "closed"
    r = ivr_choice(cfg, closed, "1", from_trunk(), monday.replace(hour=19))
    assert isinstance(r, ToQueue) and r.attributes["hours"] == "closed"
    assert r.attributes["ivr"] == "main:1"


# -- the service and the API over the database -----------------------------------------------
@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(build_app(world.services)) as c:
        yield c


MENU = {
    "prompt": "Welcome. For sales press 1,\n for billing press 2.",
    "options": {"1": "queue:support", "3": "extension:1002", "0": "ring_group:desk"},
    "timeout_seconds": 4,
    "attempts": 2,
    "default": "queue:q",
}


def test_menus_over_http_route_calls_and_are_audited(client: TestClient, world: World) -> None:
    admin, sup, ana = setup(client)
    pbx = pbx_of(world)
    admin.post("/telephony/ring-groups", {"name": "desk", "members": ["1001"]}, status=201)
    billing = admin.send(
        "PUT",
        "/telephony/ivr-menus/billing",
        {"prompt": "Invoices: 1", "options": {"1": "queue:q"}},
    )
    assert billing["default"] == "reject" and billing["attempts"] == 3
    assert billing["timeout_seconds"] == 5 and billing["invalid_prompt"].startswith("Sorry")
    created = admin.post(
        "/telephony/ivr-menus",
        {"name": "main", **MENU, "options": {**MENU["options"], "2": "ivr:billing"}},
        status=201,
    )
    assert created["prompt"] == "Welcome. For sales press 1, for billing press 2."
    assert created["options"] == {
        "1": "queue:support",
        "2": "ivr:billing",
        "3": "extension:1002",
        "0": "ring_group:desk",
    }
    admin.post("/telephony/ivr-menus", {"name": "main", **MENU}, status=409)
    assert sup.get("/telephony/ivr-menus/main") == created
    assert [m["name"] for m in sup.get("/telephony/ivr-menus")] == ["billing", "main"]
    ana.get("/telephony/ivr-menus", status=403)
    sup.send("PUT", "/telephony/ivr-menus/main", MENU, status=403)

    did = admin.post(
        "/telephony/dids", {"number": "+4930200", "destination": "ivr:main"}, status=201
    )
    assert did["destination"] == "ivr:main"
    admin.post(
        "/telephony/trunks",
        {"name": "carrier", "host": "127.0.0.1", "allowed_sources": ["127.0.0.2"]},
        status=201,
    )
    trunk_id = pbx.trusted_source("127.0.0.2")
    inbound = call("+4930200", ext=None, caller="+4917612345", trunk_id=trunk_id)
    entered = route(pbx, inbound)
    assert isinstance(entered, ToIvr) and entered.tenant_id == world.tenant_id
    assert entered.menu == IvrMenu(
        "main",
        "Welcome. For sales press 1, for billing press 2.",
        keys=("0", "1", "2", "3"),
        timeout_seconds=4.0,
        attempts=2,
    )
    assert entered.attributes == {"dnis": "+4930200", "ani": "+4917612345"}
    sub = pbx.ivr_choice_sync(entered, "2", inbound)
    assert isinstance(sub, ToIvr) and sub.menu.name == "billing"
    picked = pbx.ivr_choice_sync(sub, "1", inbound)
    assert picked == ToQueue(
        tenant_id=world.tenant_id,
        queue_id="q",
        attributes={"dnis": "+4930200", "ani": "+4917612345", "ivr": "main:2 billing:1"},
    )
    # a replaced menu is seen by the next choice (the cache is dropped)
    admin.send("PUT", "/telephony/ivr-menus/main", {**MENU, "default": "reject"})
    assert pbx.ivr_choice_sync(entered, None, inbound) == DECLINED

    with world.services.db.read() as s:
        actions = [a.action for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
        events = [e.type for e in read_events(s, world.tenant_id, 0, 1000)]
    for action in ("pbx.ivr_menu.created", "pbx.ivr_menu.updated"):
        assert action in actions and action in events


async def test_the_routers_ivr_choice_runs_in_the_thread_pool(
    client: TestClient, world: World
) -> None:
    admin, _, _ = setup(client)
    admin.send("PUT", "/telephony/ivr-menus/main", {"prompt": "Hi", "options": {"1": "queue:q"}})
    admin.post("/telephony/dids", {"number": "+4930200", "destination": "ivr:main"}, status=201)
    pbx = pbx_of(world)
    request = call("+4930200", ext="1001")
    entered = await pbx.route(request)
    assert isinstance(entered, ToIvr)
    chosen: Route = await pbx.ivr_choice(entered, "1", request)
    assert isinstance(chosen, ToQueue) and chosen.attributes["ivr"] == "main:1"
    # (what it logs is not checked: structlog may have cached this module's logger before
    # capture_logs could replace it, when the whole suite runs)


def test_bad_menus_are_422_naming_the_field(client: TestClient, world: World) -> None:
    admin, _, _ = setup(client)
    admin.send("PUT", "/telephony/ivr-menus/other", {"prompt": "x", "options": {"1": "reject"}})
    cases = [
        ({"options": {"1": "extension:4711"}}, "options.1"),
        ({"options": {"1": "ring_group:nope"}}, "options.1"),
        ({"options": {"1": "ivr:nope"}}, "options.1"),
        ({"options": {"1": "ivr:main"}}, "options.1"),  # itself
        ({"options": {"2": "queue:nosuch"}}, "options.2"),
        ({"options": {"1": "mars:1"}}, "options.1"),
        ({"options": {"1": "number:4711"}}, "options.1"),  # short: not an extension here
        ({"options": {"1": "number:call me"}}, "options.1"),
        ({"options": {"A": "reject"}}, "options.A"),
        ({"options": {"12": "reject"}}, "options.12"),
        ({"options": {}}, "options"),
        ({"default": "ivr:main"}, "default"),
        ({"default": "extension:4711"}, "default"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "a\x00b"}, "prompt"),
        ({"prompt": "x" * 1001}, "prompt"),
        ({"invalid_prompt": ""}, "invalid_prompt"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": 61}, "timeout_seconds"),
        ({"attempts": 0}, "attempts"),
        ({"attempts": 11}, "attempts"),
        ({"surprise": 1}, "surprise"),
    ]
    base = {"prompt": "Hello", "options": {"1": "queue:q"}}
    for change, field in cases:
        problem = admin.send("PUT", "/telephony/ivr-menus/main", {**base, **change}, status=422)
        assert field in errors(problem), (change, problem)
    problem = admin.send("PUT", "/telephony/ivr-menus/Bad%20Name", base, status=422)
    assert errors(problem) == ["name"]
    problem = admin.post("/telephony/dids", {"number": "+4930200", "destination": "ivr:x"}, 422)
    assert errors(problem) == ["destination"] and "no voice menu 'x'" in problem["detail"]
    assert [m["name"] for m in admin.get("/telephony/ivr-menus")] == ["other"]


def test_a_menu_in_use_cannot_be_deleted(client: TestClient, world: World) -> None:
    admin, sup, _ = setup(client)
    admin.post("/telephony/ring-groups", {"name": "desk", "members": ["1003"]}, status=201)
    admin.send("PUT", "/telephony/ivr-menus/billing", {"prompt": "b", "options": {"1": "queue:q"}})
    admin.send(
        "PUT",
        "/telephony/ivr-menus/main",
        {"prompt": "m", "options": {"2": "ivr:billing", "4": "ring_group:desk"},
         "default": "extension:1002"},
    )  # fmt: skip
    admin.post(
        "/telephony/business-hours",
        {"name": "h", "timezone": "UTC", "weekly": {"mon": ["08:00-18:00"]}},
        status=201,
    )
    admin.post(
        "/telephony/dids",
        {"number": "+4930200", "destination": "reject", "hours": "h",
         "closed_destination": "ivr:main"},
        status=201,
    )  # fmt: skip
    problem = admin.send("DELETE", "/telephony/ivr-menus/main", status=409)
    assert "+4930200" in problem["detail"] and errors(problem) == ["name"]
    problem = admin.send("DELETE", "/telephony/ivr-menus/billing", status=409)
    assert "'main'" in problem["detail"] and "key 2" in problem["detail"]
    problem = admin.send("DELETE", "/telephony/extensions/1002", status=409)
    assert "voice menu 'main'" in problem["detail"] and "default" in problem["detail"]
    problem = admin.send("DELETE", "/telephony/ring-groups/desk", status=409)
    assert "voice menu 'main'" in problem["detail"]
    admin.send("PATCH", "/telephony/dids/+4930200", {"hours": ""})
    admin.send("DELETE", "/telephony/ivr-menus/main", status=204)
    admin.send("DELETE", "/telephony/ivr-menus/billing", status=204)
    admin.send("DELETE", "/telephony/ivr-menus/billing", status=404)
    assert sup.get("/telephony/ivr-menus") == []
    with world.services.db.read() as s:
        actions = [a.action for a in s.scalars(select(AuditLog))]
    assert actions.count("pbx.ivr_menu.deleted") == 2


def test_openapi_documents_the_menu_routes(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert set(paths["/api/v1/telephony/ivr-menus"]) == {"get", "post"}
    assert set(paths["/api/v1/telephony/ivr-menus/{name}"]) == {"get", "put", "delete"}


# -- the command line --------------------------------------------------------------------------
@pytest.fixture
def cli_tenant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SPARKLECOMM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SPARKLECOMM_DATABASE_URL", raising=False)
    monkeypatch.setenv("SPARKLECOMM_SIP_ENABLED", "false")
    from sparklecomm.cli import _overrides, _services

    _overrides.clear()
    ok("tenant", "add", "acme", "--name", "Acme")
    ok("extension", "add", "1001", "--tenant", "acme", "--password", "phone-secret-1")
    services = _services()
    tenant_id = services.auth.tenant_by_slug("acme").tenant_id
    for queue in ("sales", "support"):
        services.extra["acd"].execute(tenant_id, "add_queue", config={"id": queue})
    services.db.dispose()
    return "acme"


def test_menus_from_the_command_line(cli_tenant: str) -> None:
    t = ("--tenant", cli_tenant)
    ok("ivr", "set", "billing", "--prompt", "Invoices press 1", "--option", "1=queue:support", *t)
    out = ok("ivr", "set", "main", "--prompt", "Sales 1, billing 2", "--option",
             "1=queue:sales", "--option", "2=ivr:billing", "--default", "queue:support",
             "--timeout", "4", "--attempts", "2", *t, "--json")  # fmt: skip
    data = json.loads(out)
    assert data["options"] == {"1": "queue:sales", "2": "ivr:billing"}
    assert data["default"] == "queue:support" and data["attempts"] == 2
    assert data["timeout_seconds"] == 4
    # set again: replaced
    ok("ivr", "set", "main", "--prompt", "Sales 1", "--option", "1=queue:sales", *t)
    listed = ok("ivr", "list", *t)
    assert "voice menu main: 1→queue:sales; no choice → reject" in listed
    assert [r["name"] for r in json.loads(ok("ivr", "list", *t, "--json"))] == ["billing", "main"]
    assert "DID +4930200 → ivr:main" in ok("did", "add", "+4930200", "--to", "ivr:main", *t)
    code, _, err = run("ivr", "remove", "main", *t)
    assert code == 1 and "DID +4930200" in err
    for args, field in (
        (("--option", "1"), "option"),
        (("--option", "x=reject"), "options.x"),
        (("--option", "1=ivr:nope"), "options.1"),
        (("--option", "1=reject", "--attempts", "0"), "attempts"),
    ):
        code, out, err = run("ivr", "set", "other", "--prompt", "p", *args, *t)
        assert code == 2 and err.startswith(f"error: {field}: "), (args, out, err)
    ok("did", "remove", "+4930200", *t)
    assert "removed voice menu main" in ok("ivr", "remove", "main", *t)
    code, _, err = run("ivr", "remove", "main", *t)
    assert code == 1 and "no voice menu 'main'" in err
