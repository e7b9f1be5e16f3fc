"""Satisfaction surveys: answers stored with their event, one per interaction; signed survey
links that customers answer without signing in; who may ask for a link and read answers."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sparklecomm.app import build_app
from sparklecomm.core.errors import Conflict, InvalidInput, NotFound
from sparklecomm.store.db import read_events
from sparklecomm.surveys import LinkSigner, SurveyLink, SurveyLinkExpired, SurveyService
from tests.conftest import World
from tests.routing.test_routing_service import Api

NOW = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)


def surveys_of(world: World) -> SurveyService:
    service: SurveyService = world.services.extra["surveys"]
    return service


def answer(world: World, interaction_id: str = "i-1", **overrides: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "interaction_id": interaction_id,
        "queue_id": "support",
        "agent_id": world.agent_id,
        "channel": "voice",
        "score": 4,
        "max_score": 5,
        "source": "phone",
    }
    facts.update(overrides)
    return asyncio.run(surveys_of(world).survey_answered(world.tenant_id, **facts))


# -- the service (SQLite and PostgreSQL) -------------------------------------------------------
def test_an_answer_is_one_row_and_its_event_and_a_second_one_is_refused(world: World) -> None:
    stored = answer(world, comment="  Quick and kind\x07  ")
    assert stored["comment"] == "Quick and kind"  # control characters and spaces dropped
    assert (stored["score"], stored["max_score"], stored["source"]) == (4, 5, "phone")
    with world.services.db.read() as s:
        events = [
            e for e in read_events(s, world.tenant_id, 0, 1000) if e.type == "survey.answered"
        ]
    assert len(events) == 1
    payload = events[0].payload
    # The stream (heard by every user of the organisation) says a comment was left, not what.
    assert payload == {**{k: v for k, v in stored.items() if k != "comment"}, "has_comment": True}
    for key in ("interaction_id", "queue_id", "agent_id", "channel", "answered_at"):
        assert key in payload
    assert payload["answered_at"] == world.clock.now().isoformat()
    with pytest.raises(Conflict) as refused:
        answer(world, score=1, source="web")
    assert refused.value.field == "interaction_id"
    assert surveys_of(world).answer(world.tenant_id, "i-1") == stored  # the first one stands
    with world.services.db.read() as s:
        kinds = [e.type for e in read_events(s, world.tenant_id, 0, 1000)]
    assert kinds.count("survey.answered") == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"score": 0}, "score"),
        ({"score": 6}, "score"),
        ({"score": 11, "max_score": 10}, "score"),
        ({"score": True}, "score"),
        ({"score": 1, "max_score": 1}, "max_score"),
        ({"score": 3, "max_score": 11}, "max_score"),
        ({"channel": "fax"}, "channel"),
        ({"source": "email"}, "source"),
        ({"comment": "x" * 1001}, "comment"),
        ({"interaction_id": ""}, "interaction_id"),
    ],
)
def test_invalid_answers_name_the_field_and_store_nothing(
    sqlite_world: World, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as error:
        answer(sqlite_world, **overrides)
    assert error.value.field == field
    assert surveys_of(sqlite_world).answers(sqlite_world.tenant_id) == []


def test_ten_point_and_two_point_scales_are_accepted_at_their_ends(sqlite_world: World) -> None:
    assert answer(sqlite_world, "a", score=10, max_score=10)["score"] == 10
    assert answer(sqlite_world, "b", score=1, max_score=2, comment="")["comment"] is None


def test_answers_are_listed_newest_first_with_filters_and_agents_see_their_own(
    world: World,
) -> None:
    service = surveys_of(world)
    answer(world, "i-1", score=5)
    world.clock.advance(60)
    answer(world, "i-2", score=2, queue_id="sales")
    world.clock.advance(60)
    answer(world, "i-3", score=3, agent_id=world.supervisor_id)
    every = service.answers(world.tenant_id)
    assert [a["interaction_id"] for a in every] == ["i-3", "i-2", "i-1"]
    assert [a["interaction_id"] for a in service.answers(world.tenant_id, queue_id="sales")] == [
        "i-2"
    ]
    mine = service.answers(world.tenant_id, owner=world.agent_id)
    assert [a["interaction_id"] for a in mine] == ["i-2", "i-1"]
    start = world.clock.now() - timedelta(seconds=90)
    assert [a["interaction_id"] for a in service.answers(world.tenant_id, since=start)] == [
        "i-3",
        "i-2",
    ]
    assert [
        a["interaction_id"]
        for a in service.answers(world.tenant_id, until=start, limit=5, offset=0)
    ] == ["i-1"]
    assert [a["interaction_id"] for a in service.answers(world.tenant_id, limit=1, offset=1)] == [
        "i-2"
    ]
    with pytest.raises(InvalidInput) as error:
        service.answers(world.tenant_id, since=datetime(2026, 1, 1))
    assert error.value.field == "since"


# -- the links -----------------------------------------------------------------------------------
def link(**overrides: Any) -> SurveyLink:
    facts: dict[str, Any] = {
        "tenant_id": "t1",
        "interaction_id": "i-1",
        "queue_id": "support",
        "agent_id": "a1",
        "channel": "chat",
        "max_score": 5,
        "expires_at": NOW + timedelta(days=7),
    }
    facts.update(overrides)
    return SurveyLink(**facts)


def test_a_link_says_what_it_was_signed_with_until_it_expires() -> None:
    signer = LinkSigner(lambda: "platform secret")
    token = signer.sign(link(queue_id=None))
    assert signer.verify(token, NOW) == link(queue_id=None)
    assert signer.verify(token, NOW + timedelta(days=7) - timedelta(seconds=1)).interaction_id
    with pytest.raises(SurveyLinkExpired) as expired:
        signer.verify(token, NOW + timedelta(days=7))
    assert expired.value.status == 410


def _forgeries(token: str) -> list[str]:
    body, signature = token.split(".")
    facts = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    facts["m"] = 10  # a customer widening the scale, or rating another agent
    facts["a"] = "someone-else"
    altered = base64.urlsafe_b64encode(json.dumps(facts).encode()).rstrip(b"=").decode()
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    return [
        f"{altered}.{signature}",
        f"{body}.{flipped}",
        f"{body}.",
        body,
        token[:-5],
        f"{token}.x",
        "",
        "not-a-token",
        "é.é",
        "a" * 2000,
        f"{body}.!!!!",
        f"{body}.{signature[:5]}~{signature[5:]}",  # a stray character a decoder would skip
    ]


def test_forged_altered_or_truncated_links_are_not_found() -> None:
    signer = LinkSigner("platform secret")
    token = signer.sign(link())
    for forged in _forgeries(token):
        with pytest.raises(NotFound) as refused:
            signer.verify(forged, NOW)
        assert refused.value.field == "token"
    # another installation's secret signs links worthless here
    with pytest.raises(NotFound):
        signer.verify(LinkSigner("another secret").sign(link()), NOW)


# -- over HTTP -----------------------------------------------------------------------------------
@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(build_app(world.services)) as c:
        yield c


def connected_chat(world: World, client: TestClient) -> tuple[Api, Api, Api, str]:
    """Ana took a chat in queue support: the interaction's id."""
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
    ana.post(f"/agents/{world.agent_id}/login")
    ana.post(f"/agents/{world.agent_id}/state", {"state": "available"})
    created = sup.post("/interactions", {"queue_id": "support", "channel": "chat"}, status=201)
    iid = created["interaction"]["interaction_id"]
    ana.post(f"/interactions/{iid}/accept")
    return admin, sup, ana, iid


def token_of(url: str) -> str:
    assert "/survey/" in url
    return url.rsplit("/survey/", 1)[1]


def test_the_agent_sends_a_link_and_the_customer_answers_it_once(
    client: TestClient, world: World
) -> None:
    _, sup, ana, iid = connected_chat(world, client)
    given = ana.get(f"/interactions/{iid}/survey-link")
    assert given["url"].startswith("http://testserver/survey/")
    assert given["max_score"] == 5
    assert datetime.fromisoformat(given["expires_at"]) == (
        world.clock.now() + timedelta(days=7)
    ).replace(microsecond=0)
    token = token_of(given["url"])
    # Customers are not users: no session, no token, no CSRF header.
    r = client.post(f"/api/v1/surveys/{token}", json={"score": 4, "comment": "Thanks!"})
    assert r.status_code == 201, r.text
    assert r.json()["score"] == 4 and "agent_id" not in r.json()
    stored = sup.get("/surveys")
    assert len(stored) == 1
    assert stored[0] | {"id": None, "answered_at": None} == {
        "id": None,
        "interaction_id": iid,
        "queue_id": "support",
        "agent_id": world.agent_id,
        "channel": "chat",
        "score": 4,
        "max_score": 5,
        "comment": "Thanks!",
        "source": "web",
        "answered_at": None,
    }
    again = client.post(f"/api/v1/surveys/{token}", json={"score": 1})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    # a rated interaction gets no new link
    ana.get(f"/interactions/{iid}/survey-link", status=409)
    # agents read the answers about their own interactions
    assert [a["interaction_id"] for a in ana.get("/surveys")] == [iid]
    ana.get(f"/surveys?agent_id={world.supervisor_id}", status=403)


def test_a_link_answered_with_a_session_cookie_needs_no_csrf_header(
    client: TestClient, world: World
) -> None:
    """A customer who is also signed in (a colleague testing the link) is not asked for a
    CSRF token: the public routes never look at the session."""
    _, _, ana, iid = connected_chat(world, client)
    token = token_of(ana.get(f"/interactions/{iid}/survey-link")["url"])
    login = client.post("/api/v1/auth/login", json={"username": "ana", "password": "x" * 3})
    assert login.status_code == 401  # wrong password: still anonymous, still fine
    from tests.conftest import PASSWORD

    assert (
        client.post(
            "/api/v1/auth/login", json={"username": "ana", "password": PASSWORD}
        ).status_code
        == 200
    )
    r = client.post(f"/api/v1/surveys/{token}", json={"score": 5})
    assert r.status_code == 201, r.text
    client.cookies.clear()


def test_broken_links_and_wrong_scores_are_clear_4xx_problems(
    client: TestClient, world: World
) -> None:
    _, _, ana, iid = connected_chat(world, client)
    token = token_of(ana.get(f"/interactions/{iid}/survey-link")["url"])
    wrong = client.post(f"/api/v1/surveys/{token}", json={"score": 6})
    assert wrong.status_code == 422
    assert wrong.json()["errors"] == [{"field": "score", "message": "score must be 1 to 5, not 6"}]
    assert client.post(f"/api/v1/surveys/{token}", json={"score": "five"}).status_code == 422
    assert client.post(f"/api/v1/surveys/{token}", json={}).status_code == 422
    long = client.post(f"/api/v1/surveys/{token}", json={"score": 3, "comment": "x" * 1001})
    assert long.status_code == 422 and long.json()["errors"][0]["field"] == "comment"
    for forged in _forgeries(token):
        if not forged:
            continue
        r = client.post(f"/api/v1/surveys/{forged}", json={"score": 3})
        assert r.status_code in (404, 422), (forged, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    world.clock.advance(7 * 86400 + 1)
    expired = client.post(f"/api/v1/surveys/{token}", json={"score": 3})
    assert expired.status_code == 410
    assert expired.json()["code"] == "survey_link_expired"
    assert surveys_of(world).answers(world.tenant_id) == []


def test_who_may_get_a_link_and_for_which_interactions(client: TestClient, world: World) -> None:
    admin, sup, ana, iid = connected_chat(world, client)
    bo = admin.post("/users", {"username": "bo", "password": "correct horse battery"}, status=201)
    bo_api = Api(client, "bo")
    bo_api.get(f"/interactions/{iid}/survey-link", status=403)  # another agent's
    assert token_of(sup.get(f"/interactions/{iid}/survey-link")["url"])
    ana.get("/interactions/nope/survey-link", status=404)
    waiting = sup.post("/interactions", {"queue_id": "support"}, status=201)
    sup.get(f"/interactions/{waiting['interaction']['interaction_id']}/survey-link", status=409)
    # completed and wrapping up: the completion on the event stream says who handled it
    ana.post(f"/interactions/{iid}/complete", {"disposition": "resolved"})
    token = token_of(ana.get(f"/interactions/{iid}/survey-link")["url"])
    facts = surveys_of(world).links.verify(token, world.clock.now())
    assert (facts.queue_id, facts.agent_id, facts.channel) == ("support", world.agent_id, "chat")
    ana.post(f"/interactions/{iid}/wrapup-end")
    assert ana.get(f"/interactions/{iid}/survey-link")["max_score"] == 5
    bo_api.get(f"/interactions/{iid}/survey-link", status=403)
    assert bo["id"]


def test_an_answer_given_elsewhere_is_recorded_by_a_supervisor(
    client: TestClient, world: World
) -> None:
    _, sup, ana, iid = connected_chat(world, client)
    ana.post(f"/interactions/{iid}/survey", {"score": 5}, status=403)
    stored = sup.post(
        f"/interactions/{iid}/survey",
        {"score": 9, "max_score": 10, "comment": "by e-mail", "agent_id": "ignored"},
        status=201,
    )
    assert (stored["agent_id"], stored["queue_id"], stored["channel"]) == (
        world.agent_id,
        "support",
        "chat",
    )
    assert stored["source"] == "api"
    sup.post(f"/interactions/{iid}/survey", {"score": 3}, status=409)
    bad = sup.post("/interactions/old-1/survey", {"score": 3}, status=404)
    assert bad["errors"][0]["field"] == "channel"
    old = sup.post(
        "/interactions/old-1/survey",
        {"score": 2, "max_score": 2, "channel": "email", "queue_id": "support"},
        status=201,
    )
    assert (old["channel"], old["agent_id"]) == ("email", None)
    wrong = sup.post("/interactions/old-2/survey", {"score": 3, "channel": "fax"}, status=422)
    assert wrong["errors"][0]["field"] == "channel"


def test_the_survey_page_works_without_javascript(client: TestClient, world: World) -> None:
    _, _, ana, iid = connected_chat(world, client)
    token = token_of(ana.get(f"/interactions/{iid}/survey-link")["url"])
    page = client.get(f"/survey/{token}")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.text.count('name="score"') == 5
    assert 'action="/survey/' in page.text
    nothing = client.post(f"/survey/{token}", data={"comment": "forgot"}, follow_redirects=False)
    assert nothing.status_code == 422 and "Choose a score first." in nothing.text
    assert "forgot" in nothing.text  # the comment is kept for the next try
    sent = client.post(
        f"/survey/{token}", data={"score": "2", "comment": "slow"}, follow_redirects=False
    )
    assert sent.status_code == 303
    thanks = client.get(sent.headers["location"])
    assert 'data-testid="survey-thanks"' in thanks.text and "2 out of 5" in thanks.text
    later = client.get(f"/survey/{token}")
    assert 'data-testid="survey-answered"' in later.text
    twice = client.post(f"/survey/{token}", data={"score": "5"}, follow_redirects=False)
    assert twice.status_code == 409 and "already have your answer" in twice.text
    assert surveys_of(world).answer(world.tenant_id, iid)["score"] == 2  # type: ignore[index]
    forged = client.get(f"/survey/{_forgeries(token)[0]}")
    assert forged.status_code == 404 and "does not work" in forged.text
    world.clock.advance(8 * 86400)
    expired = client.get(f"/survey/{token}")
    assert expired.status_code == 410 and "has closed" in expired.text
