"""SQL of customer records, notes and codes; and reading an interaction's story from the
event stream (``interaction.*`` events are routing's, we only read them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, literal_column, or_, select
from sqlalchemy.orm import Session

from sparklecomm.customers.models import Customer, DeskCode, InteractionNote
from sparklecomm.store.models import EventRecord

#: Events that tell how an interaction went, for a customer's history.
OUTCOME_TYPES = (
    "interaction.accepted",
    "interaction.completed",
    "interaction.abandoned",
    "interaction.diverted",
    "interaction.transferred",
    "interaction.wrapup_ended",
)


def payload_key(session: Session, key: str) -> ColumnElement[Any]:
    """``events.payload ->> key`` written exactly as the expression indexes of migration 0006
    (``ix_events_customer``, ``ix_events_interaction``) are, so that the planner uses them:
    the JSON path must be a literal, not a bound parameter."""
    if session.get_bind().dialect.name == "postgresql":
        return EventRecord.payload.op("->>")(literal_column(f"'{key}'"))
    return func.json_extract(EventRecord.payload, literal_column(f"'$.{key}'"))


def get_customer(session: Session, tenant_id: str, customer_id: str) -> Customer | None:
    return session.get(Customer, (tenant_id, customer_id))


def customer_by_phone(session: Session, tenant_id: str, phone: str) -> Customer | None:
    return session.scalars(
        select(Customer).where(Customer.tenant_id == tenant_id, Customer.phone == phone).limit(1)
    ).first()


def search_customers(
    session: Session, tenant_id: str, query: str | None, limit: int
) -> list[Customer]:
    stmt = select(Customer).where(Customer.tenant_id == tenant_id)
    if query:
        like = f"%{query.lower()}%"
        stmt = stmt.where(
            or_(
                Customer.name.ilike(like),
                Customer.phone.ilike(like),
                Customer.email.ilike(like),
                Customer.id == query,
            )
        )
    return list(session.scalars(stmt.order_by(Customer.name).limit(limit)))


def notes_of_interaction(
    session: Session, tenant_id: str, interaction_id: str
) -> list[InteractionNote]:
    return list(
        session.scalars(
            select(InteractionNote)
            .where(
                InteractionNote.tenant_id == tenant_id,
                InteractionNote.interaction_id == interaction_id,
            )
            .order_by(InteractionNote.id)
        )
    )


def notes_of_interactions(
    session: Session, tenant_id: str, interaction_ids: Sequence[str]
) -> list[InteractionNote]:
    if not interaction_ids:
        return []
    return list(
        session.scalars(
            select(InteractionNote)
            .where(
                InteractionNote.tenant_id == tenant_id,
                InteractionNote.interaction_id.in_(list(interaction_ids)),
            )
            .order_by(InteractionNote.id)
        )
    )


def created_event(session: Session, tenant_id: str, interaction_id: str) -> dict[str, Any] | None:
    """The ``interaction.created`` event of one interaction (its customer and attributes)."""
    row = session.scalars(
        select(EventRecord)
        .where(
            EventRecord.tenant_id == tenant_id,
            payload_key(session, "interaction_id") == interaction_id,
            EventRecord.type == "interaction.created",
        )
        .order_by(EventRecord.id)
        .limit(1)
    ).first()
    return None if row is None else {**row.payload, "time": row.time.isoformat()}


def customer_interactions(
    session: Session, tenant_id: str, customer_id: str, limit: int
) -> list[EventRecord]:
    """The customer's most recent ``interaction.created`` events, newest first."""
    return list(
        session.scalars(
            select(EventRecord)
            .where(
                EventRecord.tenant_id == tenant_id,
                payload_key(session, "customer_id") == customer_id,
                EventRecord.type == "interaction.created",
            )
            .order_by(EventRecord.id.desc())
            .limit(limit)
        )
    )


def outcome_events(
    session: Session, tenant_id: str, interaction_ids: Sequence[str]
) -> list[EventRecord]:
    if not interaction_ids:
        return []
    return list(
        session.scalars(
            select(EventRecord)
            .where(
                EventRecord.tenant_id == tenant_id,
                payload_key(session, "interaction_id").in_(list(interaction_ids)),
                EventRecord.type.in_(OUTCOME_TYPES),
            )
            .order_by(EventRecord.id)
        )
    )


#: Events that set the agent desktop's timers (offer countdown, talk time, wrap-up).
TIMING_TYPES = ("interaction.offered", "interaction.accepted", "interaction.completed")


def timing_events(session: Session, tenant_id: str, interaction_id: str) -> list[EventRecord]:
    """The interaction's offers, acceptances and completion, oldest first (indexed)."""
    return list(
        session.scalars(
            select(EventRecord)
            .where(
                EventRecord.tenant_id == tenant_id,
                payload_key(session, "interaction_id") == interaction_id,
                EventRecord.type.in_(TIMING_TYPES),
            )
            .order_by(EventRecord.id)
        )
    )


def list_codes(session: Session, tenant_id: str, kind: str | None) -> list[DeskCode]:
    stmt = select(DeskCode).where(DeskCode.tenant_id == tenant_id)
    if kind is not None:
        stmt = stmt.where(DeskCode.kind == kind)
    return list(session.scalars(stmt.order_by(DeskCode.kind, DeskCode.code)))


def get_code(session: Session, tenant_id: str, kind: str, code: str) -> DeskCode | None:
    return session.get(DeskCode, (tenant_id, kind, code))
