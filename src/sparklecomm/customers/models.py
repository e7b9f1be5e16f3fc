"""Tables of customer records, interaction notes and the desk's codes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from sparklecomm.store.models import Base, UTCDateTime


class Customer(Base):
    """A person or company the contact center talks to."""

    __tablename__ = "customers"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), primary_key=True)
    # The id routing carries as an interaction's ``customer_id`` (a CRM id such as 'c-42').
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40), nullable=True)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    vip_tier: Mapped[str | None] = mapped_column(String(20), nullable=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_customers_tenant_phone", "tenant_id", "phone"),)


class InteractionNote(Base):
    """A note an agent wrote during an interaction or in its wrap-up (with a disposition)."""

    __tablename__ = "interaction_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"))
    interaction_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    author_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    author_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # note | wrapup
    disposition: Mapped[str | None] = mapped_column(String(50), nullable=True)
    text: Mapped[str] = mapped_column(String(4000))
    time: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_interaction_notes_interaction", "tenant_id", "interaction_id"),
        Index("ix_interaction_notes_customer", "tenant_id", "customer_id"),
    )


class DeskCode(Base):
    """A reason code (why an agent is on break) or a disposition code (how it ended)."""

    __tablename__ = "desk_codes"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)  # reason | disposition
    code: Mapped[str] = mapped_column(String(50), primary_key=True)
    label: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
