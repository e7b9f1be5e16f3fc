"""The HTTP API in-process: auth, CSRF, users, tokens, audit, and problem documents."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from sparklecomm.app import build_app
from tests.conftest import PASSWORD, World


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(build_app(world.services)) as c:
        yield c


def sign_in(client: TestClient, username: str) -> str:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


def assert_problem(r, status: int, field: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in r.text
    if field is not None:
        assert field in {e["field"] for e in body["errors"]}, body
    return body  # type: ignore[no-any-return]


def test_health_and_openapi_need_no_sign_in(client: TestClient) -> None:
    r = client.get("/api/v1/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.headers["x-request-id"]
    spec = client.get("/api/openapi.json").json()
    assert "/api/v1/users" in spec["paths"]
    assert "/login" not in spec["paths"]  # pages are not API
    assert client.get("/api/docs").status_code == 200


def test_api_requires_sign_in(client: TestClient) -> None:
    body = assert_problem(client.get("/api/v1/me"), 401)
    assert body["code"] == "unauthenticated"
    assert_problem(client.get("/api/v1/me", headers={"Authorization": "Basic abc"}), 401)
    assert_problem(client.get("/api/v1/me", headers={"Authorization": "Bearer nope"}), 401)


def test_session_cookie_and_csrf(client: TestClient, world: World) -> None:
    csrf = sign_in(client, "admin")
    me = client.get("/api/v1/me").json()
    assert me["user"]["username"] == "admin" and me["tenant_name"] == "Acme Support"
    new = {"username": "bo", "password": PASSWORD, "role": "agent"}
    body = assert_problem(client.post("/api/v1/users", json=new), 403)
    assert "X-CSRF-Token" in body["detail"]
    r = client.post("/api/v1/users", json=new, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201 and r.json()["username"] == "bo"
    client.post("/api/v1/auth/logout")
    assert_problem(client.get("/api/v1/me"), 401)


def test_bearer_token_for_scripts(client: TestClient) -> None:
    csrf = sign_in(client, "sup")
    r = client.post("/api/v1/tokens", json={"name": "tv"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201
    token = r.json()["token"]
    client.cookies.clear()
    auth = {"Authorization": f"Bearer {token}"}
    me = client.get("/api/v1/me", headers=auth).json()
    assert me["user"]["username"] == "sup" and me["auth"] == "token"
    # no CSRF header needed with a bearer token; a supervisor may not create users
    assert_problem(
        client.post(
            "/api/v1/users",
            headers=auth,
            json={"username": "zed", "password": PASSWORD, "role": "agent"},
        ),
        403,
    )
    tokens = client.get("/api/v1/tokens", headers=auth).json()
    assert [t["name"] for t in tokens] == ["tv"] and "token" not in tokens[0]
    assert client.delete(f"/api/v1/tokens/{tokens[0]['id']}", headers=auth).status_code == 204
    assert_problem(client.get("/api/v1/me", headers=auth), 401)


def test_bad_input_is_a_4xx_naming_the_field(client: TestClient) -> None:
    csrf = sign_in(client, "admin")
    h = {"X-CSRF-Token": csrf}
    assert_problem(
        client.post("/api/v1/users", json={"username": "bo"}, headers=h), 422, "password"
    )
    assert_problem(
        client.post(
            "/api/v1/users",
            headers=h,
            json={"username": "bo", "password": PASSWORD, "role": "king"},
        ),
        422,
        "role",
    )
    assert_problem(
        client.post(
            "/api/v1/users", headers=h, json={"username": "no spaces", "password": PASSWORD}
        ),
        422,
        "username",
    )
    assert_problem(
        client.post("/api/v1/users", headers=h, json={"username": "ana", "password": PASSWORD}),
        409,
        "username",
    )
    assert_problem(client.post("/api/v1/users", headers=h, content=b"{not json"), 422)
    assert_problem(client.get("/api/v1/users/nope"), 404, "user_id")
    assert_problem(client.get("/api/v1/nowhere"), 404)
    assert_problem(client.put("/api/v1/health"), 405)
    assert_problem(client.get("/api/v1/audit?limit=0"), 422, "limit")


def test_login_errors(client: TestClient, world: World) -> None:
    r = client.post("/api/v1/auth/login", json={"username": "ana", "password": "nope"})
    assert assert_problem(r, 401)["detail"] == "wrong username or password"
    for _ in range(world.services.auth.max_failures):
        client.post("/api/v1/auth/login", json={"username": "sup", "password": "nope"})
    r = client.post("/api/v1/auth/login", json={"username": "sup", "password": PASSWORD})
    assert_problem(r, 429)
    assert int(r.headers["retry-after"]) > 0


def test_user_admin_round_trip_with_audit(client: TestClient, world: World) -> None:
    csrf = sign_in(client, "admin")
    h = {"X-CSRF-Token": csrf}
    users = client.get("/api/v1/users").json()
    ana = next(u for u in users if u["username"] == "ana")
    r = client.patch(f"/api/v1/users/{ana['id']}", json={"role": "supervisor"}, headers=h)
    assert r.status_code == 200 and r.json()["role"] == "supervisor"
    r = client.put(
        f"/api/v1/users/{ana['id']}/password", headers=h, json={"new_password": "brand new pass"}
    )
    assert r.status_code == 204
    audit = client.get("/api/v1/audit").json()
    actions = [e["action"] for e in audit["entries"]]
    assert actions[:2] == ["user.password_set", "user.updated"]
    assert audit["entries"][1]["details"] == {"role": ["agent", "supervisor"]}
    assert audit["entries"][1]["actor_name"] == "admin"
    r = client.patch("/api/v1/tenant", json={"name": "Acme Care"}, headers=h)
    assert r.json()["name"] == "Acme Care"


def test_agent_cannot_read_audit_or_users(client: TestClient) -> None:
    sign_in(client, "ana")
    assert_problem(client.get("/api/v1/audit"), 403)
    assert_problem(client.get("/api/v1/users"), 403)
    assert (
        client.get("/api/v1/users/" + client.get("/api/v1/me").json()["user"]["id"]).status_code
        == 200
    )


def test_unexpected_errors_are_a_500_problem_without_trace(world: World) -> None:
    app = build_app(world.services)

    @app.get("/api/v1/_boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/api/v1/_boom")
    body = assert_problem(r, 500)
    assert "secret internals" not in r.text and body["request_id"]
