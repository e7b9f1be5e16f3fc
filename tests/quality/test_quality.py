"""Quality assurance over HTTP and the real database (SQLite and PostgreSQL): scorecards
with their versions, reviews of recorded calls from draft to acknowledgement, agents'
self-evaluations, who sees what, immutability, audit and events, and the monthly trends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from sparklecomm.app import build_app
from sparklecomm.audit.store import Actor
from sparklecomm.auth.service import Principal
from sparklecomm.core.errors import Conflict
from sparklecomm.quality.service import QualityService, month_starts
from sparklecomm.store.db import read_events
from sparklecomm.store.models import AuditLog
from tests.conftest import PASSWORD, World
from tests.routing.test_routing_service import Api

CARD = {
    "name": "Phone call",
    "description": "Every inbound call",
    "criteria": [
        {"id": "greet", "section": "Etiquette", "label": "Greeting", "weight": 2, "scale": "1-5"},
        {"id": "kb", "section": "Knowledge", "label": "Right answer", "weight": 3, "scale": "0-10"},
        {
            "id": "verify",
            "section": "Procedure",
            "label": "Verified identity",
            "weight": 1,
            "scale": "yes_no",
            "critical": True,
        },
    ],
}
FULL = {"greet": {"value": 5}, "kb": {"value": 8, "comment": "good"}, "verify": {"value": 1}}


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(build_app(world.services)) as c:
        yield c


@pytest.fixture
def bo(world: World) -> str:
    """A second agent."""
    user = world.services.auth.do_create_user(
        world.tenant_id, Actor.cli(), username="bo", password=PASSWORD, role="agent"
    )
    return user.id


def record(world: World, agent_id: str | None, caller: str = "+4917612345") -> str:
    """A finished recording of an agent's call, as the B2BUA leaves it."""
    recordings = world.services.extra["recordings"]
    recording_id, path = recordings.begin_recording_sync(
        world.tenant_id,
        call_id=f"call-{caller}",
        caller=caller,
        dialled="+4930200",
        interaction_id=f"i-{caller}",
        queue_id="support",
        agent_id=agent_id,
        started_by="policy",
    )
    path.write_bytes(b"RIFF")
    recordings.finish_recording_sync(
        world.tenant_id,
        recording_id,
        seconds=1.0,
        paused_seconds=0.0,
        pauses=[],
        size=4,
        ok=True,
    )
    return str(recording_id)


def events(world: World, prefix: str = "quality.") -> list[tuple[str, dict[str, Any]]]:
    with world.services.db.read() as s:
        return [
            (e.type, e.payload)
            for e in read_events(s, world.tenant_id, 0, 1000)
            if e.type.startswith(prefix)
        ]


def audit_actions(world: World) -> list[str]:
    with world.services.db.read() as s:
        return [a.action for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]


# -- scorecards ----------------------------------------------------------------------------------
def test_scorecards_are_written_by_admins_and_versioned_once_used(
    client: TestClient, world: World
) -> None:
    admin, sup, ana = Api(client, "admin"), Api(client, "sup"), Api(client, "ana")
    sup.post("/quality/scorecards", CARD, status=403)
    card = admin.post("/quality/scorecards", CARD, status=201)
    assert (card["version"], card["family_id"], card["active"]) == (1, card["id"], True)
    assert [c["id"] for c in card["criteria"]] == ["greet", "kb", "verify"]
    assert card["criteria"][2]["critical"] is True
    assert sup.get("/quality/scorecards") == [card]
    problem = admin.post("/quality/scorecards", CARD, status=409)
    assert problem["errors"][0]["field"] == "name"

    # mistakes are named
    bad = {**CARD, "name": "Other", "criteria": [{**CARD["criteria"][0], "weight": 11}]}
    problem = admin.post("/quality/scorecards", bad, status=422)
    assert problem["errors"][0]["field"] == "criteria[0].weight" and "1 to 10" in problem["detail"]
    dup = {**CARD, "name": "Other", "criteria": [CARD["criteria"][0], CARD["criteria"][0]]}
    problem = admin.post("/quality/scorecards", dup, status=422)
    assert problem["errors"][0]["field"] == "criteria[1].id"
    problem = admin.post("/quality/scorecards", {**CARD, "name": "Other", "criteria": []}, 422)
    assert problem["errors"][0]["field"] == "criteria"
    scale = {**CARD, "name": "Other", "criteria": [{"label": "x", "scale": "5-1"}]}
    assert admin.post("/quality/scorecards", scale, 422)["errors"][0]["field"] == (
        "criteria[0].scale"
    )

    # unused: changed in place
    renamed = admin.send("PATCH", f"/quality/scorecards/{card['id']}", {"name": "Inbound call"})
    assert (renamed["id"], renamed["version"], renamed["name"]) == (card["id"], 1, "Inbound call")
    sup.send("PATCH", f"/quality/scorecards/{card['id']}", {"name": "x"}, status=403)

    # used by an evaluation: a new version; the evaluation keeps the old one
    recording = record(world, world.agent_id)
    evaluation = sup.post(
        "/quality/evaluations",
        {"scorecard_id": card["id"], "recording_id": recording, "answers": FULL},
        status=201,
    )
    fewer = {"criteria": CARD["criteria"][:2]}
    v2 = admin.send("PATCH", f"/quality/scorecards/{card['id']}", fewer)
    assert v2["id"] != card["id"] and (v2["version"], v2["family_id"]) == (2, card["id"])
    assert v2["name"] == "Inbound call" and len(v2["criteria"]) == 2
    old = sup.get(f"/quality/scorecards/{card['id']}")
    assert (old["active"], old["archived"], len(old["criteria"])) == (False, False, 3)
    kept = sup.get(f"/quality/evaluations/{evaluation['id']}")
    assert kept["scorecard"] == {"id": card["id"], "name": "Inbound call", "version": 1}
    assert kept["score"] == pytest.approx(round(100 * (2 * 1 + 3 * 0.8 + 1) / 6, 1))
    # the retired version is not edited, nor evaluated on
    problem = admin.send("PATCH", f"/quality/scorecards/{card['id']}", {"name": "y"}, status=409)
    assert f"current version 2 ({v2['id']})" in problem["detail"]
    problem = sup.post(
        "/quality/evaluations",
        {"scorecard_id": card["id"], "agent_id": world.agent_id},
        status=409,
    )
    assert problem["errors"][0]["field"] == "scorecard_id"
    # the draft on the old version can still be finished, with its three criteria
    assert sup.post(f"/quality/evaluations/{evaluation['id']}/submit")["status"] == "submitted"

    assert [c["id"] for c in sup.get("/quality/scorecards")] == [v2["id"]]
    assert [c["version"] for c in sup.get("/quality/scorecards?include_retired=true")] == [2, 1]
    # agents: the current scorecards and those of their evaluations
    assert [c["id"] for c in ana.get("/quality/scorecards?include_retired=true")] == [
        v2["id"],
        card["id"],
    ]

    # archived: no new evaluations; nothing deleted
    archived = admin.post(f"/quality/scorecards/{v2['id']}/archive")
    assert (archived["active"], archived["archived"]) == (False, True)
    admin.post(f"/quality/scorecards/{v2['id']}/archive", status=409)
    assert sup.get("/quality/scorecards") == []
    sup.post(
        "/quality/evaluations", {"scorecard_id": v2["id"], "agent_id": world.agent_id}, status=409
    )
    # an archived name may be used again
    assert admin.post("/quality/scorecards", CARD, status=201)["name"] == "Phone call"
    admin.get("/quality/scorecards/nosuch", status=404)
    ana.get(f"/quality/scorecards/{v2['id']}", status=403)  # retired, not on her evaluations

    changes = [(p["change"], p["scorecard"]["version"]) for _, p in events(world, "quality.score")]
    assert changes == [
        ("created", 1),
        ("updated", 1),
        ("versioned", 2),
        ("archived", 2),
        ("created", 1),
    ]
    actions = audit_actions(world)
    for action in ("created", "updated", "versioned", "archived"):
        assert f"quality.scorecard_{action}" in actions


# -- reviews -------------------------------------------------------------------------------------
def test_a_review_from_draft_to_acknowledgement(client: TestClient, world: World, bo: str) -> None:
    admin, sup, ana = Api(client, "admin"), Api(client, "sup"), Api(client, "ana")
    bob = Api(client, "bo")
    card = admin.post("/quality/scorecards", CARD, status=201)
    recording = record(world, world.agent_id, caller="+4930777")

    # from a recording: its agent, interaction and call
    draft = sup.post(
        "/quality/evaluations",
        {"scorecard_id": card["id"], "recording_id": recording, "answers": {"kb": {"value": 5}}},
        status=201,
    )
    assert (draft["agent_id"], draft["evaluator_id"], draft["kind"]) == (
        world.agent_id,
        world.supervisor_id,
        "review",
    )
    assert (draft["interaction_id"], draft["call_id"]) == ("i-+4930777", "call-+4930777")
    assert (draft["status"], draft["score"]) == ("draft", 50.0)  # the answered part so far
    assert draft["section_scores"] == {"Etiquette": None, "Knowledge": 50.0, "Procedure": None}
    # the recording's agent stands; unknown recordings and agents are refused
    problem = sup.post(
        "/quality/evaluations",
        {"scorecard_id": card["id"], "recording_id": recording, "agent_id": bo},
        status=422,
    )
    assert problem["errors"][0]["field"] == "agent_id"
    sup.post("/quality/evaluations", {"scorecard_id": card["id"], "recording_id": "nosuch"}, 404)
    problem = sup.post("/quality/evaluations", {"scorecard_id": card["id"], "agent_id": "x"}, 422)
    assert problem["errors"][0]["field"] == "agent_id"
    problem = sup.post("/quality/evaluations", {"scorecard_id": card["id"]}, status=422)
    assert problem["errors"][0]["field"] == "agent_id"
    # answers checked against the scorecard; a score is never taken from a client
    problem = sup.post(
        "/quality/evaluations",
        {"scorecard_id": card["id"], "agent_id": bo, "answers": {"greet": {"value": 9}}},
        status=422,
    )
    assert problem["errors"][0]["field"] == "answers.greet"
    sup.post(
        "/quality/evaluations",
        {"scorecard_id": card["id"], "agent_id": bo, "score": 100},
        status=422,
    )
    ana.post("/quality/evaluations", {"scorecard_id": card["id"], "agent_id": bo}, status=403)

    # the agent does not see a draft about her
    assert ana.get("/quality/evaluations") == []
    ana.get(f"/quality/evaluations/{draft['id']}", status=404)
    # only its evaluator changes it
    admin.send("PATCH", f"/quality/evaluations/{draft['id']}", {"comment": "x"}, status=403)
    path = f"/quality/evaluations/{draft['id']}"
    changed = sup.send("PATCH", path, {"answers": {"greet": {"value": 4}}, "comment": "Warm."})
    assert changed["answers"] == {"greet": {"value": 4, "comment": ""}}  # replaced, not merged
    assert (changed["comment"], changed["score"]) == ("Warm.", 75.0)
    # submitting needs every criterion answered (or not applicable)
    problem = sup.post(f"{path}/submit", status=422)
    assert problem["errors"][0]["field"] == "answers.kb"
    answers = {**FULL, "kb": {"value": None, "comment": "no question asked"}}
    sup.send("PATCH", path, {"answers": answers})
    submitted = sup.post(f"{path}/submit")
    # greet 5/5 (×2), kb not applicable, verify yes (×1)
    assert (submitted["status"], submitted["score"]) == ("submitted", 100.0)
    assert submitted["submitted_at"] == world.clock.now().isoformat()
    # immutable
    assert "submitted" in sup.send("PATCH", path, {"comment": "later"}, status=409)["detail"]
    sup.post(f"{path}/submit", status=409)
    sup.send("DELETE", path, status=409)

    # the agent sees it, her colleague does not
    mine = ana.get("/quality/evaluations")
    assert [e["id"] for e in mine] == [draft["id"]] and mine[0]["comment"] == "Warm."
    bob.get(path, status=403)
    assert bob.get("/quality/evaluations") == []
    bob.get(f"/quality/evaluations?agent_id={world.agent_id}", status=403)
    # acknowledged by her only, once, with her answer
    bob.post(f"{path}/acknowledge", status=403)
    sup.post(f"{path}/acknowledge", status=403)
    done = ana.post(f"{path}/acknowledge", {"comment": "Thanks, noted."})
    assert (done["status"], done["agent_comment"]) == ("acknowledged", "Thanks, noted.")
    assert done["acknowledged_at"] is not None
    ana.post(f"{path}/acknowledge", status=409)
    assert sup.get(path)["agent_comment"] == "Thanks, noted."

    # the events say who and what, never the score or the comments
    seen = events(world, "quality.evaluation")
    assert [k for k, _ in seen] == [
        "quality.evaluation_submitted",
        "quality.evaluation_acknowledged",
    ]
    assert seen[1][1]["evaluation"] == {
        "id": draft["id"],
        "agent_id": world.agent_id,
        "evaluator_id": world.supervisor_id,
        "kind": "review",
        "status": "acknowledged",
        "scorecard_id": card["id"],
        "recording_id": recording,
    }
    actions = [a for a in audit_actions(world) if a.startswith("quality.evaluation")]
    assert actions == [
        "quality.evaluation_created",
        "quality.evaluation_changed",
        "quality.evaluation_changed",
        "quality.evaluation_submitted",
        "quality.evaluation_acknowledged",
    ]


def test_a_critical_failure_scores_zero_and_drafts_can_be_discarded(
    client: TestClient, world: World
) -> None:
    admin, sup = Api(client, "admin"), Api(client, "sup")
    card = admin.post("/quality/scorecards", CARD, status=201)
    body = {"scorecard_id": card["id"], "agent_id": world.agent_id}
    failed = sup.post(
        "/quality/evaluations", {**body, "answers": {**FULL, "verify": {"value": 0}}}, status=201
    )
    result = sup.post(f"/quality/evaluations/{failed['id']}/submit")
    assert result["score"] == 0.0 and result["failed_critical"] == ["verify"]
    assert result["section_scores"] == {"Etiquette": 100.0, "Knowledge": 80.0, "Procedure": 0.0}
    discarded = sup.post("/quality/evaluations", body, status=201)
    Api(client, "admin").send("DELETE", f"/quality/evaluations/{discarded['id']}", status=403)
    sup.send("DELETE", f"/quality/evaluations/{discarded['id']}", status=204)
    sup.get(f"/quality/evaluations/{discarded['id']}", status=404)
    assert "quality.evaluation_discarded" in audit_actions(world)


# -- self-evaluations ----------------------------------------------------------------------------
def test_agents_evaluate_their_own_calls(client: TestClient, world: World, bo: str) -> None:
    admin, sup, ana = Api(client, "admin"), Api(client, "sup"), Api(client, "ana")
    card = admin.post("/quality/scorecards", CARD, status=201)
    hers = record(world, world.agent_id, caller="+4930111")
    his = record(world, bo, caller="+4930222")
    body = {"scorecard_id": card["id"], "kind": "self"}
    # of her own call only, named by its recording or interaction
    ana.post("/quality/evaluations", {**body, "recording_id": his}, status=403)
    problem = ana.post("/quality/evaluations", body, status=422)
    assert problem["errors"][0]["field"] == "recording_id"
    ana.post("/quality/evaluations", {**body, "agent_id": bo, "interaction_id": "i"}, status=403)
    own = ana.post(
        "/quality/evaluations", {**body, "recording_id": hers, "answers": FULL}, status=201
    )
    assert (own["kind"], own["agent_id"], own["evaluator_id"]) == (
        "self",
        world.agent_id,
        world.agent_id,
    )
    assert own["interaction_id"] == "i-+4930111"
    # her draft is hers: the supervisor sees it once submitted
    assert sup.get("/quality/evaluations?kind=self") == []
    sup.get(f"/quality/evaluations/{own['id']}", status=404)
    assert [e["id"] for e in ana.get("/quality/evaluations?status=draft")] == [own["id"]]
    done = ana.post(f"/quality/evaluations/{own['id']}/submit")
    assert done["score"] == pytest.approx(round(100 * (2 + 3 * 0.8 + 1) / 6, 1))
    assert [e["id"] for e in sup.get(f"/quality/evaluations?agent_id={world.agent_id}")] == [
        own["id"]
    ]
    # nothing to acknowledge on a self-evaluation
    ana.post(f"/quality/evaluations/{own['id']}/acknowledge", status=409)
    # filters (newest first)
    world.clock.advance(60)
    review = sup.post(
        "/quality/evaluations", {"scorecard_id": card["id"], "recording_id": hers}, status=201
    )
    assert [e["id"] for e in sup.get(f"/quality/evaluations?recording_id={hers}")] == [
        review["id"],
        own["id"],
    ]
    assert [e["id"] for e in sup.get(f"/quality/evaluations?evaluator_id={world.agent_id}")] == [
        own["id"]
    ]
    assert [e["id"] for e in sup.get("/quality/evaluations?status=draft")] == [review["id"]]
    sup.get("/quality/evaluations?kind=peer", status=422)
    problem = sup.get("/quality/evaluations?since=2026-01-01T00:00:00", status=422)
    assert problem["errors"][0]["field"] == "since"
    future = "2030-01-01T00:00:00Z"
    assert sup.get(f"/quality/evaluations?since={future}") == []


# -- trends --------------------------------------------------------------------------------------
def test_trends_month_over_month(client: TestClient, world: World, bo: str) -> None:
    admin, sup, ana = Api(client, "admin"), Api(client, "sup"), Api(client, "ana")
    card = admin.post(
        "/quality/scorecards",
        {
            "name": "Simple",
            "criteria": [
                {"id": "a", "section": "Etiquette", "label": "A", "scale": "0-10"},
                {"id": "b", "section": "Knowledge", "label": "B", "scale": "0-10"},
            ],
        },
        status=201,
    )
    bob = Api(client, "bo")

    def at(moment: datetime) -> None:
        world.clock.advance((moment - world.clock.now()).total_seconds())

    def review(agent: str, a: int, b: int) -> None:
        answers = {"a": {"value": a}, "b": {"value": b}}
        e = sup.post(
            "/quality/evaluations",
            {"scorecard_id": card["id"], "agent_id": agent, "answers": answers},
            status=201,
        )
        sup.post(f"/quality/evaluations/{e['id']}/submit")

    def self_review(api: Api, a: int, b: int) -> None:
        answers = {"a": {"value": a}, "b": {"value": b}}
        e = api.post(
            "/quality/evaluations",
            {"scorecard_id": card["id"], "kind": "self", "interaction_id": "i", "answers": answers},
            status=201,
        )
        api.post(f"/quality/evaluations/{e['id']}/submit")

    at(datetime(2026, 1, 10, 12, tzinfo=UTC))
    review(world.agent_id, 6, 6)  # 60
    self_review(ana, 8, 8)  # 80
    review(bo, 10, 10)  # Bo: 100, the team's only
    at(datetime(2026, 2, 10, 12, tzinfo=UTC))
    review(world.agent_id, 6, 8)  # 70: Etiquette 60, Knowledge 80
    review(world.agent_id, 10, 8)  # 90: Etiquette 100, Knowledge 80
    # a draft and an all-not-applicable one do not count
    sup.post("/quality/evaluations", {"scorecard_id": card["id"], "agent_id": world.agent_id}, 201)
    na = sup.post(
        "/quality/evaluations",
        {
            "scorecard_id": card["id"],
            "agent_id": world.agent_id,
            "answers": {"a": {"value": None}, "b": {"value": None}},
        },
        status=201,
    )
    assert sup.post(f"/quality/evaluations/{na['id']}/submit")["score"] is None
    at(datetime(2026, 3, 31, 23, 30, tzinfo=UTC))  # 1 April 01:30 in Berlin
    review(world.agent_id, 10, 10)  # 100

    mine = ana.get("/quality/trends?months=3")
    assert mine["agent_id"] == world.agent_id and mine["timezone"] == "UTC"
    assert [m["month"] for m in mine["months"]] == ["2026-01", "2026-02", "2026-03"]
    jan, feb, mar = mine["months"]
    assert jan["review"] == {
        "average": 60.0,
        "count": 1,
        "sections": {"Etiquette": 60.0, "Knowledge": 60.0},
        "change": None,
    }
    assert (jan["self"]["average"], jan["self"]["count"], jan["self_gap"]) == (80.0, 1, 20.0)
    assert feb["review"] == {
        "average": 80.0,
        "count": 2,
        "sections": {"Etiquette": 80.0, "Knowledge": 80.0},
        "change": 20.0,
    }
    assert feb["self"] == {"average": None, "count": 0, "sections": {}, "change": None}
    assert feb["self_gap"] is None
    assert (mar["review"]["average"], mar["review"]["change"]) == (100.0, 20.0)
    # agents see their own only; supervisors any agent's or the team's
    ana.get(f"/quality/trends?agent_id={bo}", status=403)
    assert bob.get("/quality/trends?months=3")["months"][0]["review"]["average"] == 100.0
    team = sup.get("/quality/trends?months=3")
    assert team["agent_id"] is None
    assert team["months"][0]["review"] == {
        "average": 80.0,  # Ana 60 and Bo 100
        "count": 2,
        "sections": {"Etiquette": 80.0, "Knowledge": 80.0},
        "change": None,
    }
    assert sup.get(f"/quality/trends?agent_id={world.agent_id}&months=3") == mine
    # months in the organisation's zone: the last review is April's in Berlin
    berlin = sup.get(f"/quality/trends?agent_id={world.agent_id}&months=3&timezone=Europe/Berlin")
    assert [m["month"] for m in berlin["months"]] == ["2026-02", "2026-03", "2026-04"]
    feb_b, mar_b, apr_b = berlin["months"]
    assert (feb_b["review"]["average"], mar_b["review"]["count"]) == (80.0, 0)
    assert (apr_b["review"]["average"], apr_b["review"]["change"]) == (100.0, 20.0)
    # six months by default; bad arguments are named
    assert len(ana.get("/quality/trends")["months"]) == 6
    problem = sup.get("/quality/trends?timezone=Mars/Olympus", status=422)
    assert problem["errors"][0]["field"] == "timezone"
    sup.get("/quality/trends?months=0", status=422)
    sup.get("/quality/trends?months=25", status=422)


def test_month_starts_cross_the_year() -> None:
    from zoneinfo import ZoneInfo

    starts = month_starts(datetime(2026, 2, 3, tzinfo=UTC), 4, ZoneInfo("UTC"))
    assert [(m.year, m.month) for m in starts] == [(2025, 11), (2025, 12), (2026, 1), (2026, 2)]


def test_the_service_refuses_a_retired_scorecard_directly(world: World) -> None:
    quality: QualityService = world.services.extra["quality"]
    admin = Principal(world.admin_id, world.tenant_id, "admin", "Admin", "admin", "token")
    card = quality.do_create_scorecard(world.tenant_id, admin, name="X", criteria=CARD["criteria"])
    quality.do_archive_scorecard(world.tenant_id, admin, card["id"])
    with pytest.raises(Conflict) as refused:
        quality.do_create_evaluation(
            world.tenant_id, admin, scorecard_id=card["id"], agent_id=world.agent_id
        )
    assert refused.value.field == "scorecard_id"


def test_openapi_and_the_page(client: TestClient, world: World) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert set(paths["/api/v1/quality/scorecards"]) == {"get", "post"}
    assert set(paths["/api/v1/quality/scorecards/{scorecard_id}"]) == {"get", "patch"}
    assert set(paths["/api/v1/quality/evaluations/{evaluation_id}"]) == {"get", "patch", "delete"}
    assert set(paths["/api/v1/quality/evaluations/{evaluation_id}/acknowledge"]) == {"post"}
    assert set(paths["/api/v1/quality/trends"]) == {"get"}
    # the page: signed-in users only; the scorecard editor for administrators
    r = client.get("/quality", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/quality"
    client.post("/login", data={"username": "ana", "password": PASSWORD})
    page = client.get("/quality").text
    assert 'href="/quality"' in page and 'id="ev-self"' in page
    assert 'id="sc-form"' not in page and 'id="ev-new"' not in page
    client.post("/logout")
    client.post("/login", data={"username": "admin", "password": PASSWORD})
    page = client.get("/quality").text
    assert 'id="sc-form"' in page and 'id="ev-new"' in page


def test_the_database_keeps_current_names_unique(world: World) -> None:
    """Two administrators saving the same name at once: the unique index over the current
    scorecards refuses the second; retired versions may share it."""
    from sqlalchemy.exc import IntegrityError

    from sparklecomm.store.models import QualityScorecard

    def card(active: bool) -> QualityScorecard:
        now = world.clock.now()
        return QualityScorecard(
            id=uuid_hex(),
            tenant_id=world.tenant_id,
            family_id=uuid_hex(),
            version=1,
            name="Same",
            description="",
            criteria=[],
            active=active,
            archived=not active,
            created_at=now,
            updated_at=now,
        )

    with world.services.db.write() as tx:
        tx.session.add_all([card(True), card(False), card(False)])
    with pytest.raises(IntegrityError), world.services.db.write() as tx:
        tx.session.add(card(True))
        tx.session.flush()


def uuid_hex() -> str:
    import uuid

    return uuid.uuid4().hex
