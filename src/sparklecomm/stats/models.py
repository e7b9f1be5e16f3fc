"""Tables of the wallboard: alert thresholds per tenant and per queue."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from sparklecomm.store.models import Base, UTCDateTime

#: The ``queue_id`` of a tenant's own row: the defaults of its queues.
TENANT_DEFAULT = "*"


class AlertThreshold(Base):
    """When a queue breaks its thresholds, the wallboard raises an alert.

    One row per tenant (``queue_id`` = ``"*"``: the tenant's defaults) and one per queue that
    overrides them. A NULL field inherits: a queue's from the tenant's row, the tenant's from
    the built-in defaults (``stats.thresholds.BUILTIN``).
    """

    __tablename__ = "alert_thresholds"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), primary_key=True)
    queue_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    max_wait_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    min_service_level: Mapped[float | None] = mapped_column(Float, nullable=True)  # percent
    max_waiting: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(200))
