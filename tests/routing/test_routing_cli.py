"""``sparklecomm queue`` / ``agent``: HTTP clients of the routing API (run in-process here)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.conftest import PASSWORD, World
from typer.testing import CliRunner

import sparklecomm.acd.cli as routing_cli
from sparklecomm.app import build_app
from sparklecomm.audit.store import Actor
from sparklecomm.cli import app

runner = CliRunner()


@pytest.fixture
def cli(sqlite_world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    world = sqlite_world
    with TestClient(build_app(world.services)) as client:
        r = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        token = client.post(
            "/api/v1/tokens", json={"name": "cli"}, headers={"X-CSRF-Token": r.json()["csrf_token"]}
        ).json()["token"]
        client.cookies.clear()

        def in_process(url: str, tok: str) -> TestClient:
            client.headers["Authorization"] = f"Bearer {tok}"
            return _Reusable(client)

        monkeypatch.setattr(routing_cli, "http_client", in_process)
        monkeypatch.setenv("SPARKLECOMM_TOKEN", token)
        yield world


class _Reusable:
    """The test client, without closing it at the end of each command's ``with``."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def __enter__(self) -> TestClient:
        return self.client

    def __exit__(self, *exc: object) -> None:
        return None


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_provision_a_queue_and_an_agent_from_the_command_line(cli: World) -> None:
    code, out, err = run(
        "agent", "set", "ana", "--skill", "billing=4", "--capacity", "chat=3", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["skills"] == {"billing": 4}
    code, out, err = run(
        "queue",
        "add",
        "billing",
        "--name",
        "Billing",
        "--strategy",
        "round-robin",
        "--member",
        "ana=1",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["members"][0]["penalty"] == 1
    code, out, _ = run("agent", "login", "ana")
    assert code == 0 and "logged in" in out
    code, out, _ = run("agent", "list", "--json")
    (agent,) = json.loads(out)
    assert agent["state"] == "available" and agent["queues"] == ["billing"]
    code, out, _ = run("agent", "state", "ana", "break", "--reason", "lunch")
    assert code == 0
    code, out, _ = run("agent", "list")
    assert "break" in out and "lunch" in out
    code, out, _ = run("queue", "list")
    assert "billing" in out and "round-robin" in out
    code, out, _ = run("queue", "member", "remove", "billing", "ana")
    assert code == 0
    code, out, _ = run("queue", "show", "billing", "--json")
    assert json.loads(out)["queue_id"] == "billing"


def test_a_queue_that_keeps_business_hours(cli: World) -> None:
    cli.services.extra["pbx"].do_create_business_hours(
        cli.tenant_id,
        Actor.cli(),
        name="office",
        timezone="Europe/Berlin",
        weekly={"mon": ["08:00-18:00"]},
    )
    code, out, err = run("queue", "add", "late", "--json")
    assert code == 0, err
    code, out, err = run(
        "queue", "add", "day", "--hours", "office", "--closed-to", "late", "--json"
    )
    assert code == 0, err
    config = json.loads(out)
    assert (config["hours"], config["on_closed"]["queue_id"]) == ("office", "late")
    code, _, err = run("queue", "add", "other", "--hours", "nope")
    assert code == 2 and "no business hours 'nope'" in err


def test_errors_name_the_problem(cli: World) -> None:
    code, _, err = run("queue", "add", "q1", "--strategy", "fastest")
    assert code == 2 and "strategy" in err
    code, _, err = run("agent", "set", "ana", "--skill", "billing")
    assert code == 2 and "NAME=NUMBER" in err
    code, _, err = run("agent", "login", "nobody")
    assert code == 1 and "no user named 'nobody'" in err
    code, _, err = run("queue", "show", "missing")
    assert code == 1 and "missing" in err


def test_a_token_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARKLECOMM_TOKEN", raising=False)
    code, _, err = run("queue", "list")
    assert code == 2 and "API token" in err
