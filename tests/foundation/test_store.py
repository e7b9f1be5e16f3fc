"""Storage: migrations, the per-tenant event stream, transactions, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, select

from sparklecomm.core.events import NewEvent
from sparklecomm.store.db import read_events
from sparklecomm.store.metadata import target_metadata
from sparklecomm.store.migrate import current_revision, head_revision
from sparklecomm.store.models import AuditLog, User
from tests.conftest import World


def test_schema_is_at_newest_migration_and_matches_models(world: World) -> None:
    engine = world.services.db.engine
    assert current_revision(engine) == head_revision(engine)
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set(target_metadata.tables)


def test_every_table_carries_tenant_id() -> None:
    for table in target_metadata.sorted_tables:
        assert "tenant_id" in table.columns, f"{table.name} has no tenant_id"


def test_sqlite_runs_in_wal_mode(sqlite_world: World) -> None:
    with sqlite_world.services.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_event_ids_are_per_tenant_gapless_and_published_after_commit(world: World) -> None:
    db = world.services.db
    published: list[int] = []
    db.publisher = lambda events: published.extend(e.id for e in events)
    other = world.services.auth.do_create_tenant("other", "Other", world_actor())
    assert published == [1]  # the new tenant's own first event
    published.clear()
    with db.write() as tx:
        tx.emit(world.tenant_id, [NewEvent("a.one"), NewEvent("a.two")])
        tx.emit(other.tenant_id, NewEvent("b.one"))
        assert published == []  # nothing is published before commit
    with db.read() as s:
        mine = read_events(s, world.tenant_id, 0, 100)
        theirs = read_events(s, other.tenant_id, 0, 100)
    ids = [e.id for e in mine]
    assert ids == list(range(1, len(ids) + 1))
    assert [e.type for e in mine[-2:]] == ["a.one", "a.two"]
    assert [e.type for e in theirs] == ["tenant.created", "b.one"]
    assert [e.id for e in theirs] == [1, 2]
    assert published == [ids[-2], ids[-1], 2]


def test_rolled_back_transaction_leaves_no_event_and_publishes_nothing(world: World) -> None:
    db = world.services.db
    published: list[int] = []
    db.publisher = lambda events: published.extend(e.id for e in events)
    with db.read() as s:
        before = read_events(s, world.tenant_id, 0, 1000)
    with pytest.raises(RuntimeError), db.write() as tx:
        tx.emit(world.tenant_id, NewEvent("doomed"))
        raise RuntimeError("boom")
    with db.read() as s:
        after = read_events(s, world.tenant_id, 0, 1000)
    assert after == before
    assert published == []
    with db.write() as tx:  # the id was not burnt: the stream stays gapless
        (ev,) = tx.emit(world.tenant_id, NewEvent("next"))
    assert ev.id == before[-1].id + 1


def test_concurrent_writers_get_distinct_consecutive_ids(world: World) -> None:
    db = world.services.db
    with db.read() as s:
        start = len(read_events(s, world.tenant_id, 0, 10_000))
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                with db.write() as tx:
                    tx.emit(world.tenant_id, [NewEvent("w", {"n": n, "i": i})] * 2)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read() as s:
        events = read_events(s, world.tenant_id, 0, 10_000)
    assert [e.id for e in events] == list(range(1, start + 80 + 1))
    # each transaction's two events are adjacent: ids follow commit order
    written = [e for e in events if e.type == "w"]
    for first, second in zip(written[::2], written[1::2], strict=True):
        assert first.payload == second.payload
        assert second.id == first.id + 1


def test_datetimes_come_back_timezone_aware_utc(world: World) -> None:
    with world.services.db.read() as s:
        user = s.scalar(select(User).where(User.username == "ana"))
    assert user is not None
    assert user.created_at == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert user.created_at.tzinfo is not None


def test_audit_row_is_written_in_the_same_transaction_as_the_change(world: World) -> None:
    auth = world.services.auth
    with world.services.db.read() as s:
        before = s.scalars(select(AuditLog)).all()
    from sparklecomm.core.errors import Conflict

    with pytest.raises(Conflict):  # a refused change leaves no audit row behind
        auth.do_create_user(
            world.tenant_id, world_actor(), username="ana", password="x" * 10, role="agent"
        )
    with world.services.db.read() as s:
        assert len(s.scalars(select(AuditLog)).all()) == len(before)
    auth.do_create_user(
        world.tenant_id, world_actor(), username="bo", password="x" * 10, role="agent"
    )
    with world.services.db.read() as s:
        rows = s.scalars(select(AuditLog).order_by(AuditLog.id)).all()
    assert len(rows) == len(before) + 1
    assert rows[-1].action == "user.created"
    assert rows[-1].details == {"username": "bo", "role": "agent"}


def world_actor():  # type: ignore[no-untyped-def]
    from sparklecomm.audit.store import Actor

    return Actor(id=None, name="test")
