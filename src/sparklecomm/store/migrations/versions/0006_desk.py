"""desk and wallboard settings, customer-history index — owned by the web work

Alert thresholds per tenant and per queue (the wallboard's alerts, kept on the server), and
partial expression indexes on the events table so that a customer's history (the
``interaction.created`` events naming the customer) and an interaction's story (its events
by ``interaction_id``) are index lookups rather than scans of the whole stream. The indexed
expressions are exactly those ``customers/store.py`` queries with (``json_extract`` on
SQLite, ``->>`` on PostgreSQL).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sparklecomm.store.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEYS = {"ix_events_customer": "customer_id", "ix_events_interaction": "interaction_id"}


def _expr(dialect: str, key: str) -> str:
    if dialect == "postgresql":
        return f"(payload ->> '{key}')"
    return f"json_extract(payload, '$.{key}')"


def upgrade() -> None:
    op.create_table(
        "alert_thresholds",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("queue_id", sa.String(length=64), nullable=False),
        sa.Column("max_wait_seconds", sa.Integer(), nullable=True),
        sa.Column("min_service_level", sa.Float(), nullable=True),
        sa.Column("max_waiting", sa.Integer(), nullable=True),
        sa.Column(
            "updated_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"]),
        sa.PrimaryKeyConstraint("tenant_id", "queue_id"),
    )
    dialect = op.get_bind().dialect.name
    for name, key in _KEYS.items():
        expr = _expr(dialect, key)
        op.execute(
            f"CREATE INDEX {name} ON events (tenant_id, {expr}, id) WHERE {expr} IS NOT NULL"
        )


def downgrade() -> None:
    for name in _KEYS:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.drop_table("alert_thresholds")
