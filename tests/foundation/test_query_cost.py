"""Cost assertions (Zulip's habit): the number of SQL statements per request stays flat."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from sqlalchemy import event

from sparklecomm.app import build_app
from sparklecomm.audit.store import Actor
from tests.conftest import PASSWORD, World


@contextmanager
def count_queries(world: World) -> Iterator[list[str]]:
    statements: list[str] = []

    def before(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if not statement.startswith(("BEGIN", "PRAGMA")):
            statements.append(statement)

    engine = world.services.db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def test_listing_users_costs_the_same_for_3_or_30_users(sqlite_world: World) -> None:
    world = sqlite_world
    with TestClient(build_app(world.services)) as client:
        token = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        assert token.status_code == 200
        with count_queries(world) as few:
            assert len(client.get("/api/v1/users").json()) == 3
        for i in range(27):
            world.services.auth.do_create_user(
                world.tenant_id,
                Actor.cli(),
                username=f"agent{i:02}",
                password=PASSWORD,
                role="agent",
            )
        with count_queries(world) as many:
            assert len(client.get("/api/v1/users").json()) == 30
        assert len(many) == len(few) <= 4  # session lookup, user, list: no N+1
        client.get("/api/v1/events/state")  # the first call loads the routing engine
        with count_queries(world) as state:
            client.get("/api/v1/events/state")
        assert len(state) <= 4  # session, user, head id, users: the routing part is in memory
