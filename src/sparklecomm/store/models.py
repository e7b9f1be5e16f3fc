"""SQLAlchemy models of the foundation.

Every table carries ``tenant_id``: the platform serves many organisations from one database,
and every query of a domain store filters on it. (The ``tenants`` table's own id is its
``tenant_id``.) Domain folders add their own models on the same :class:`Base`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


ROLES = ("admin", "supervisor", "agent")


class Tenant(Base):
    """An organisation using the platform."""

    __tablename__ = "tenants"
    tenant_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The last event id handed out in this tenant's stream; updated (row-locked) in the
    # transaction that appends events, so ids are gapless and follow commit order.
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)


class User(Base):
    """A person who signs in: an administrator, a supervisor or an agent of one tenant."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    # Usernames are unique across the platform (stored lower-case) so that signing in needs
    # no organisation picker; the row still belongs to exactly one tenant.
    username: Mapped[str] = mapped_column(String(150), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuthSession(Base):
    """A browser session (cookie). Only the SHA-256 of the cookie value is stored."""

    __tablename__ = "auth_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiToken(Base):
    """A bearer token for scripts. Only the SHA-256 of the token is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuditLog(Base):
    """Who changed what: one row per administrative change, written in its transaction."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor_name: Mapped[str] = mapped_column(String(150))
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str] = mapped_column(String(50))
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class EventRecord(Base):
    """The append-only, per-tenant ordered event stream (see ``sparklecomm.core.events``)."""

    __tablename__ = "events"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(100))
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ix_events_tenant_type", "tenant_id", "type"),)


class LoginThrottle(Base):
    """Failed sign-ins per source address, for back-off against password guessing."""

    __tablename__ = "login_throttle"
    tenant_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # "*" = any tenant
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CallRecording(Base):
    """A recorded call (``sparklecomm.telephony.recordings``). The audio is the WAV file
    ``file`` under ``<data_dir>/recordings/<tenant_id>/``: 8 kHz stereo, the caller on the
    left channel, the agent and the other parties on the right. ``pauses`` are the spans
    (``[start, end]`` offsets in seconds of the call) when recording was paused for privacy;
    ``seconds`` counts the audio actually in the file."""

    __tablename__ = "call_recordings"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"))
    call_id: Mapped[str] = mapped_column(String(300))
    interaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    queue_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    agent_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    caller: Mapped[str] = mapped_column(String(100))
    dialled: Mapped[str] = mapped_column(String(100))
    # "policy" (the organisation's recording policy) or the id of the user who started it.
    started_by: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    paused_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    pauses: Mapped[list[list[Any]]] = mapped_column(JSON, default=list)
    # recording | complete | interrupted | failed
    status: Mapped[str] = mapped_column(String(20))
    file: Mapped[str] = mapped_column(String(100))
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        Index("ix_call_recordings_started", "tenant_id", "started_at"),
        Index("ix_call_recordings_agent", "tenant_id", "agent_id", "started_at"),
        Index("ix_call_recordings_interaction", "tenant_id", "interaction_id"),
        Index("ix_call_recordings_status", "status"),
    )


class RecordingPolicy(Base):
    """Which calls an organisation records and how long it keeps them. No row: nothing is
    recorded automatically and recordings are kept forever."""

    __tablename__ = "recording_policies"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), primary_key=True)
    all_calls: Mapped[bool] = mapped_column(Boolean, default=False)
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)
    extensions: Mapped[list[str]] = mapped_column(JSON, default=list)
    retention_days: Mapped[int] = mapped_column(Integer, default=0)  # 0: keep forever
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SurveyResponse(Base):
    """A customer's satisfaction answer (CSAT) about one interaction
    (``sparklecomm.surveys``): ``score`` on a scale of 1 to ``max_score`` (2 to 10), given
    on the phone after the call, on the survey page of a link, or recorded through the API.
    One answer per interaction: the unique constraint, not a read-then-write, is what
    refuses a second one when two arrive at once."""

    __tablename__ = "survey_responses"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"))
    interaction_id: Mapped[str] = mapped_column(String(64))
    queue_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    agent_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    channel: Mapped[str] = mapped_column(String(20))
    score: Mapped[int] = mapped_column(Integer)
    max_score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    # phone | web | api
    source: Mapped[str] = mapped_column(String(10))
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("tenant_id", "interaction_id", name="uq_survey_responses_interaction"),
        Index("ix_survey_responses_answered", "tenant_id", "answered_at"),
        Index("ix_survey_responses_agent", "tenant_id", "agent_id", "answered_at"),
        Index("ix_survey_responses_queue", "tenant_id", "queue_id", "answered_at"),
    )


class QualityScorecard(Base):
    """One version of a quality scorecard (``sparklecomm.quality``): the criteria a
    supervisor scores a call on. A scorecard used by evaluations is never changed in place:
    editing it writes a new version in the same ``family_id`` and retires the old one
    (``active`` False), so an evaluation always means what it meant when it was scored.
    ``criteria``: ``[{id, section, label, guidance, weight, scale, critical}]``."""

    __tablename__ = "quality_scorecards"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"))
    # The first version's id; every version of one scorecard shares it.
    family_id: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, default=1)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(2000), default="")
    criteria: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The current version of a scorecard in use; False: archived or replaced by a newer one.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Archived by an administrator (not merely replaced by a newer version).
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_quality_scorecards_tenant", "tenant_id", "active"),
        Index("ix_quality_scorecards_family", "tenant_id", "family_id", "version", unique=True),
        # Names are unique among the current scorecards (two creations racing: one wins).
        Index(
            "uq_quality_scorecards_current_name",
            "tenant_id",
            "name",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
    )


class QualityEvaluation(Base):
    """A scored interaction: a supervisor's review of an agent, or an agent's evaluation of
    their own call (``kind`` "self"). ``answers``: ``{criterion_id: {value, comment}}``
    (value None: not applicable). ``score`` (0–100) and ``section_scores`` are computed by
    the service from the answers and the scorecard version, never taken from a client."""

    __tablename__ = "quality_evaluations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"))
    scorecard_id: Mapped[str] = mapped_column(ForeignKey("quality_scorecards.id"))
    agent_id: Mapped[str] = mapped_column(String(32))
    evaluator_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(10))  # review | self
    interaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    recording_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    call_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    section_scores: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    comment: Mapped[str] = mapped_column(String(4000), default="")
    status: Mapped[str] = mapped_column(String(20))  # draft | submitted | acknowledged
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    agent_comment: Mapped[str] = mapped_column(String(4000), default="")

    __table_args__ = (
        Index("ix_quality_evaluations_agent", "tenant_id", "agent_id", "submitted_at"),
        Index("ix_quality_evaluations_created", "tenant_id", "created_at"),
        Index("ix_quality_evaluations_recording", "tenant_id", "recording_id"),
    )


__all__ = [
    "ROLES",
    "ApiToken",
    "AuditLog",
    "AuthSession",
    "Base",
    "CallRecording",
    "EventRecord",
    "LoginThrottle",
    "QualityEvaluation",
    "QualityScorecard",
    "RecordingPolicy",
    "SurveyResponse",
    "Tenant",
    "User",
]
