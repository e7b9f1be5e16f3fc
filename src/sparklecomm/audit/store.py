"""The audit log: one row per administrative change, in the change's own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sparklecomm.core.clock import Clock
from sparklecomm.store.models import AuditLog


@dataclass(frozen=True)
class Actor:
    """Who is making a change: a signed-in user, or the command line / the system."""

    id: str | None
    name: str

    @staticmethod
    def cli() -> Actor:
        return Actor(id=None, name="cli")


def write_audit_txn(
    session: Session,
    clock: Clock,
    *,
    tenant_id: str,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditLog(
            tenant_id=tenant_id,
            time=clock.now(),
            actor_id=actor.id,
            actor_name=actor.name,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=details or {},
        )
    )


def list_audit(
    session: Session, tenant_id: str, *, limit: int, before_id: int | None
) -> tuple[list[AuditLog], int]:
    query = select(AuditLog).where(AuditLog.tenant_id == tenant_id)
    if before_id is not None:
        query = query.where(AuditLog.id < before_id)
    rows = list(session.scalars(query.order_by(AuditLog.id.desc()).limit(limit)))
    total = session.scalar(
        select(func.count()).select_from(AuditLog).where(AuditLog.tenant_id == tenant_id)
    )
    return rows, int(total or 0)
