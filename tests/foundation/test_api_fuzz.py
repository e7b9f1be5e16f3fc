"""API robustness: schemathesis generates requests from our own OpenAPI schema.

Every operation is called with valid and invalid data, signed in as an admin through a
bearer token (so that the calls get past authentication into the handlers). No request may
produce a 5xx, and every error is a problem document.

The app is built at import time because schemathesis loads the schema at collection
(its fixture-based loader does not work with pytest 9 yet).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from sparklecomm.app import build_app
from sparklecomm.audit.store import Actor
from sparklecomm.store.db import make_engine
from sparklecomm.store.migrate import upgrade
from tests.conftest import PASSWORD, make_world

pytestmark = pytest.mark.slow

_dir = Path(tempfile.mkdtemp(prefix="sc-fuzz-"))
atexit.register(shutil.rmtree, _dir, True)
_url = f"sqlite:///{_dir / 'fuzz.db'}"
upgrade(make_engine(_url))
_world = make_world(_url, _dir)
# A second admin owns the token, so generated requests that deactivate or demote users
# cannot lock the fuzzer out (the last-admin rule keeps one admin anyway).
_world.services.auth.do_create_user(
    _world.tenant_id, Actor.cli(), username="fuzz-admin", password=PASSWORD, role="admin"
)
APP = build_app(_world.services)
with TestClient(APP) as _client:
    _r = _client.post("/api/v1/auth/login", json={"username": "fuzz-admin", "password": PASSWORD})
    TOKEN = _client.post(
        "/api/v1/tokens", json={"name": "fuzz"}, headers={"X-CSRF-Token": _r.json()["csrf_token"]}
    ).json()["token"]

schema = schemathesis.openapi.from_asgi("/api/openapi.json", APP)


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_errors(case: Any) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if case.path == "/api/v1/tokens/{token_id}" and case.method == "DELETE":
        headers = {}  # don't let the fuzzer revoke its own token
    response = case.call(headers=headers)
    if response.status_code == 503 and case.path in (
        "/api/v1/telephony/calls",
        "/api/v1/telephony/calls/{call_id}",
    ):
        # This world runs no SIP server, so placing a call is announced as unavailable (the
        # operator's setting, not the client's mistake, and not a crash): still a problem
        # document that says so.
        assert response.json()["type"] == "/problems/unavailable", response.text
        assert "the SIP server is not running" in response.json()["detail"], response.text
        return
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}"
    )
    if response.status_code >= 400:
        content_type = response.headers["content-type"]
        if isinstance(content_type, list):  # schemathesis keeps multi-valued headers
            content_type = content_type[0]
        assert content_type.startswith("application/problem+json"), response.text
