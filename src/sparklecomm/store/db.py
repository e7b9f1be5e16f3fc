"""Database engine, transactions and the after-commit publication of events.

The one rule: a change and the events that describe it are written in the same
transaction, and the events are published to live subscribers only after that transaction
committed (Zulip's rule), so a subscriber never sees a fact that was rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Engine, Table, bindparam, create_engine, event, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from sparklecomm.core.clock import Clock
from sparklecomm.core.errors import NotFound
from sparklecomm.core.events import Event, NewEvent
from sparklecomm.store.models import EventRecord, Tenant

Publisher = Callable[[Sequence[Event]], None]


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite's own transaction handling is switched off so that we can issue
            # BEGIN IMMEDIATE for writers (no SQLITE_BUSY on lock upgrade in WAL mode).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Tx:
    """One unit of work: a SQLAlchemy session plus the events it appends."""

    def __init__(self, session: Session, clock: Clock) -> None:
        self.session = session
        self.clock = clock
        self.events: list[Event] = []

    def emit(self, tenant_id: str, new: NewEvent | Sequence[NewEvent]) -> list[Event]:
        """Append events to ``tenant_id``'s stream inside this transaction."""
        batch = [new] if isinstance(new, NewEvent) else list(new)
        if not batch:
            return []
        appended = append_events_txn(self.session, tenant_id, batch, self.clock)
        self.events.extend(appended)
        return appended


_TENANTS = cast(Table, Tenant.__table__)
_BUMP_LAST_EVENT_ID = (
    update(_TENANTS)
    .where(_TENANTS.c.tenant_id == bindparam("t"))
    .values(last_event_id=_TENANTS.c.last_event_id + bindparam("n"))
    .returning(_TENANTS.c.last_event_id)
)
_INSERT_EVENTS = insert(cast(Table, EventRecord.__table__))


def append_events_txn(
    session: Session, tenant_id: str, batch: Sequence[NewEvent], clock: Clock
) -> list[Event]:
    """Give ``batch`` the next ids of the tenant's stream and insert them.

    The UPDATE takes the tenant row's lock until commit, so ids are handed out in commit
    order and without gaps: a reader that saw id N never later finds a committed N-1.
    """
    conn = session.connection()
    last = conn.execute(_BUMP_LAST_EVENT_ID, {"t": tenant_id, "n": len(batch)}).scalar_one_or_none()
    if last is None:
        raise NotFound(f"no tenant with id {tenant_id!r}", field="tenant_id")
    first = last - len(batch) + 1
    now = clock.now()
    out = [
        Event(
            id=first + offset,
            tenant_id=tenant_id,
            type=new.type,
            time=new.time or now,
            payload=new.payload,
        )
        for offset, new in enumerate(batch)
    ]
    # Core statements built once, on the connection (not the ORM's bulk path): events are
    # the hottest write path and never need the unit of work. About 3x cheaper per write.
    conn.execute(
        _INSERT_EVENTS,
        [
            {
                "tenant_id": tenant_id,
                "id": e.id,
                "type": e.type,
                "time": e.time,
                "payload": e.payload,
            }
            for e in out
        ],
    )
    return out


class Database:
    """Owns the engine; hands out read and write transactions."""

    def __init__(self, url: str, clock: Clock, publisher: Publisher | None = None) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.clock = clock
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.publisher = publisher

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """A read-write transaction; its events are published after it commits."""
        with self._sessions() as session:
            tx = Tx(session, self.clock)
            with session.begin():
                yield tx
        if tx.events and self.publisher is not None:
            self.publisher(tx.events)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (deferred on SQLite, so it takes no write lock)."""
        with self._sessions() as session:
            # Closing the session (not rolling it back) ends the transaction and keeps the
            # loaded objects usable after the block.
            session.connection(execution_options={"sqlite_begin": "DEFERRED"})
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def read_events(session: Session, tenant_id: str, after: int, limit: int) -> list[Event]:
    """Events of a tenant with id > ``after``, oldest first."""
    rows = session.scalars(
        select(EventRecord)
        .where(EventRecord.tenant_id == tenant_id, EventRecord.id > after)
        .order_by(EventRecord.id)
        .limit(limit)
    )
    return [
        Event(id=r.id, tenant_id=r.tenant_id, type=r.type, time=r.time, payload=r.payload)
        for r in rows
    ]


def last_event_id(session: Session, tenant_id: str) -> int:
    value = session.scalar(select(Tenant.last_event_id).where(Tenant.tenant_id == tenant_id))
    if value is None:
        raise NotFound(f"no tenant with id {tenant_id!r}", field="tenant_id")
    return value
