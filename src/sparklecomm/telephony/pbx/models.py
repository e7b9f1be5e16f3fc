"""Tables of the PBX: DIDs, ring groups, voice menus, trunks, call settings, blocked numbers,
dial rules, business hours, voicemail messages.

Every row belongs to one tenant. A DID's number is unique across the platform (a carrier
delivers it to exactly one organisation); names of ring groups, voice menus and trunks are
unique within a tenant. A trunk's password is stored encrypted
(:mod:`sparklecomm.telephony.pbx.secrets`) and is never returned by the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from sparklecomm.store.models import Base, UTCDateTime


class Did(Base):
    """An inbound number and where calls to it go."""

    __tablename__ = "pbx_dids"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    destination_kind: Mapped[str] = mapped_column(
        String(20)
    )  # extension|ring_group|queue|ivr|reject
    destination: Mapped[str] = mapped_column(String(100), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Business hours (by name) and where calls go while they are closed (kind None: the
    # PBX answers 480 "closed").
    hours: Mapped[str | None] = mapped_column(String(50), nullable=True)
    closed_destination_kind: Mapped[str | None] = mapped_column(String(20), nullable=True)
    closed_destination: Mapped[str] = mapped_column(String(100), default="")


class BusinessHoursRow(Base):
    """A named weekly timetable with dated exceptions, in a time zone (see ``hours.py``)."""

    __tablename__ = "pbx_business_hours"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    timezone: Mapped[str] = mapped_column(String(64))
    weekly: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    exceptions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_pbx_business_hours_name"),)


class RingGroup(Base):
    __tablename__ = "pbx_ring_groups"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    members: Mapped[list[str]] = mapped_column(JSON, default=list)
    mode: Mapped[str] = mapped_column(String(20))  # simultaneous | sequential
    ring_seconds: Mapped[float] = mapped_column(Float)
    fallback_kind: Mapped[str] = mapped_column(String(20))  # extension | ring_group | reject
    fallback: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_pbx_ring_groups_name"),)


class IvrMenuRow(Base):
    """A voice menu (IVR): a spoken prompt and where each key leads (``options``: key →
    destination text such as ``queue:sales``); ``default_destination`` takes a caller who
    pressed no valid key after the last attempt."""

    __tablename__ = "pbx_ivr_menus"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    prompt: Mapped[str] = mapped_column(Text)
    options: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    timeout_seconds: Mapped[float] = mapped_column(Float, default=5.0)
    attempts: Mapped[int] = mapped_column(Integer, default=3)
    invalid_prompt: Mapped[str] = mapped_column(Text)
    default_destination: Mapped[str] = mapped_column(String(120), default="reject")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_pbx_ivr_menus_name"),)


class VoicemailRow(Base):
    """A message left in an extension's voicemail box (``box``: the extension's number). The
    recording is the WAV file ``file`` under ``<data_dir>/voicemail/<tenant_id>/``;
    ``heard_at`` is set when someone marks it heard."""

    __tablename__ = "pbx_voicemails"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"))
    box: Mapped[str] = mapped_column(String(15))
    caller: Mapped[str] = mapped_column(String(100))
    caller_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    call_id: Mapped[str] = mapped_column(String(300))
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heard_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    file: Mapped[str] = mapped_column(String(100))

    __table_args__ = (Index("ix_pbx_voicemails_box", "tenant_id", "box", "created_at"),)


class Trunk(Base):
    """A carrier's SIP trunk: where outbound calls go and who may send inbound ones."""

    __tablename__ = "pbx_trunks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    transport: Mapped[str] = mapped_column(String(10))  # UDP | TCP | TLS
    username: Mapped[str | None] = mapped_column(String(100), nullable=True)
    password_encrypted: Mapped[str | None] = mapped_column(String(500), nullable=True)
    register: Mapped[bool] = mapped_column(Boolean, default=False)
    allowed_sources: Mapped[list[str]] = mapped_column(JSON, default=list)
    caller_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    max_channels: Mapped[int] = mapped_column(Integer, default=0)  # 0: no limit
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_pbx_trunks_name"),)


class CallSettingsRow(Base):
    """One extension's DND, forwarding and follow-me (absent row: defaults)."""

    __tablename__ = "pbx_call_settings"
    extension: Mapped[str] = mapped_column(String(15), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    dnd: Mapped[bool] = mapped_column(Boolean, default=False)
    forward_always: Mapped[str | None] = mapped_column(String(32), nullable=True)
    forward_busy: Mapped[str | None] = mapped_column(String(32), nullable=True)
    forward_no_answer: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ring_seconds: Mapped[float] = mapped_column(Float, default=20.0)
    follow_me: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    auto_answer: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BlockedNumber(Base):
    __tablename__ = "pbx_blocked_numbers"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    pattern: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("tenant_id", "pattern", name="uq_pbx_blocked_numbers_pattern"),
    )


class DialRuleRow(Base):
    __tablename__ = "pbx_dial_rules"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    prefix: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(10))  # allow | deny
    trunk_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    strip: Mapped[int] = mapped_column(Integer, default=0)
    prepend: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_pbx_dial_rules_name"),)


class SipBindingRow(Base):
    """One registered contact of an address-of-record (the location service in SQL, shared
    by every node). ``tenant_id`` is the registering extension's organisation when known."""

    __tablename__ = "sip_bindings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str | None] = mapped_column(
        ForeignKey("tenants.tenant_id"), nullable=True, index=True
    )
    aor: Mapped[str] = mapped_column(String(300), index=True)
    contact: Mapped[str] = mapped_column(String(1000))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    call_id: Mapped[str] = mapped_column(String(300))
    cseq: Mapped[int] = mapped_column(Integer)
    q: Mapped[float | None] = mapped_column(Float, nullable=True)
    source: Mapped[str | None] = mapped_column(String(300), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)
