"""Persistence of the routing engine: a command journal and periodic snapshots.

The engine is deterministic: the same commands at the same times give the same state and
events. So the service journals every command it applies (name, arguments, time) in the
transaction that also appends the command's events, and now and then stores a full
snapshot. On start, a tenant's engine is the last snapshot plus the journal after it,
replayed. A process killed mid-command loses nothing that was acknowledged: a command
either committed with its events or never happened.

Several processes may share one database: the journal's primary key ``(tenant_id, seq)`` is
the expected-version check. A writer whose engine is behind fails to store its next ``seq``
(:class:`JournalConflict`, or the database's own unique violation), catches up and retries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    ForeignKey,
    String,
    bindparam,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from sparklecomm.store.models import Base, UTCDateTime


class AcdCommand(Base):
    """One command applied to a tenant's routing engine."""

    __tablename__ = "acd_commands"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    name: Mapped[str] = mapped_column(String(50))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)


class AcdSnapshot(Base):
    """The full engine state after command ``seq``."""

    __tablename__ = "acd_snapshots"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class JournalConflict(Exception):
    """Another writer already stored command ``seq`` of the tenant (the journal moved on)."""

    def __init__(self, tenant_id: str, seq: int) -> None:
        super().__init__(f"routing command {seq} of tenant {tenant_id!r} is already stored")
        self.tenant_id = tenant_id
        self.seq = seq


# Core insert on the connection: flushed at once (the seq is claimed before the command runs)
# without the unit of work's cost.
_INSERT_COMMAND = insert(AcdCommand)
_SNAPSHOT_SEQ = select(AcdSnapshot.seq).where(AcdSnapshot.tenant_id == bindparam("t"))
_HEAD = select(
    select(func.max(AcdCommand.seq))
    .where(AcdCommand.tenant_id == bindparam("t"))
    .scalar_subquery(),
    _SNAPSHOT_SEQ.scalar_subquery(),
)


def journal_command_txn(
    session: Session, tenant_id: str, seq: int, time: datetime, name: str, args: dict[str, Any]
) -> None:
    """Store command ``seq`` now, before the command runs: claims ``seq`` for this writer.

    Raises the database's ``IntegrityError`` (unique violation) when another writer stored
    ``seq`` and it is still in the journal, and :class:`JournalConflict` when a snapshot at or
    after ``seq`` exists (another writer stored it and a snapshot already dropped it). The
    snapshot is read *after* the insert: on PostgreSQL an insert that waited for a
    concurrent snapshot's delete to commit then sees that snapshot.
    """
    session.connection().execute(
        _INSERT_COMMAND,
        {"tenant_id": tenant_id, "seq": seq, "time": time, "name": name, "args": args},
    )
    snapshot_seq = session.connection().execute(_SNAPSHOT_SEQ, {"t": tenant_id}).scalar()
    if snapshot_seq is not None and snapshot_seq >= seq:
        raise JournalConflict(tenant_id, seq)


def journal_head(conn: Session | Connection, tenant_id: str) -> int:
    """The tenant's last stored command (0: none): one statement, one index lookup per table.

    Cheap enough to run before reads (see ``AcdService.freshness_seconds``); the statement is
    built once, and a plain connection avoids the session's cost.
    """
    row = conn.execute(_HEAD, {"t": tenant_id}).one()
    return max(row[0] or 0, row[1] or 0)


def save_snapshot_txn(
    session: Session, tenant_id: str, seq: int, time: datetime, data: dict[str, Any]
) -> bool:
    """Store the snapshot and drop the journal it makes redundant.

    Snapshots only move forward: one older than the stored one (a process that was behind)
    is not written. Returns whether it was.
    """
    row = session.get(AcdSnapshot, tenant_id)
    if row is None:
        session.add(AcdSnapshot(tenant_id=tenant_id, seq=seq, time=time, data=data))
    elif row.seq >= seq:
        return False
    else:
        row.seq, row.time, row.data = seq, time, data
    session.execute(
        delete(AcdCommand).where(AcdCommand.tenant_id == tenant_id, AcdCommand.seq <= seq)
    )
    return True


def load_snapshot(session: Session, tenant_id: str) -> AcdSnapshot | None:
    return session.get(AcdSnapshot, tenant_id)


def load_journal(session: Session, tenant_id: str, after_seq: int) -> list[AcdCommand]:
    return list(
        session.scalars(
            select(AcdCommand)
            .where(AcdCommand.tenant_id == tenant_id, AcdCommand.seq > after_seq)
            .order_by(AcdCommand.seq)
        )
    )


def tenants_with_routing(session: Session) -> list[str]:
    snap = set(session.scalars(select(AcdSnapshot.tenant_id)))
    journal = set(session.scalars(select(AcdCommand.tenant_id).distinct()))
    return sorted(snap | journal)
