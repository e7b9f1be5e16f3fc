"""Persistence of the routing engine: a command journal and periodic snapshots.

The engine is deterministic: the same commands at the same times give the same state and
events. So the service journals every command it applies (name, arguments, time) in the
transaction that also appends the command's events, and now and then stores a full
snapshot. On start, a tenant's engine is the last snapshot plus the journal after it,
replayed. A process killed mid-command loses nothing that was acknowledged: a command
either committed with its events or never happened.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, delete, select
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


def journal_command_txn(
    session: Session, tenant_id: str, seq: int, time: datetime, name: str, args: dict[str, Any]
) -> None:
    session.add(AcdCommand(tenant_id=tenant_id, seq=seq, time=time, name=name, args=args))


def save_snapshot_txn(
    session: Session, tenant_id: str, seq: int, time: datetime, data: dict[str, Any]
) -> None:
    """Store the snapshot and drop the journal it makes redundant."""
    row = session.get(AcdSnapshot, tenant_id)
    if row is None:
        session.add(AcdSnapshot(tenant_id=tenant_id, seq=seq, time=time, data=data))
    else:
        row.seq, row.time, row.data = seq, time, data
    session.execute(
        delete(AcdCommand).where(AcdCommand.tenant_id == tenant_id, AcdCommand.seq <= seq)
    )


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
