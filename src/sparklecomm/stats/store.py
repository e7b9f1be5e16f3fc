"""SQL of the stats: where today starts in a tenant's event stream."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sparklecomm.stats.models import AlertThreshold
from sparklecomm.store.models import EventRecord


def first_event_id_since(session: Session, tenant_id: str, since: datetime) -> int | None:
    """The id of the tenant's first event at or after ``since`` (None: there is none)."""
    value = session.scalar(
        select(func.min(EventRecord.id)).where(
            EventRecord.tenant_id == tenant_id, EventRecord.time >= since
        )
    )
    return int(value) if value is not None else None


def thresholds(session: Session, tenant_id: str) -> list[AlertThreshold]:
    """The tenant's threshold rows (its defaults and the queues' overrides)."""
    return list(
        session.scalars(select(AlertThreshold).where(AlertThreshold.tenant_id == tenant_id))
    )


def threshold(session: Session, tenant_id: str, queue_id: str) -> AlertThreshold | None:
    return session.get(AlertThreshold, (tenant_id, queue_id))
