"""PBX (DIDs, ring groups, trunks, forwarding, SIP registrations) — owned by the telephony PBX work

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sparklecomm.store.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "pbx_blocked_numbers",
    "pbx_call_settings",
    "pbx_dial_rules",
    "pbx_dids",
    "pbx_ring_groups",
    "pbx_trunks",
)


def _common() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
    ]


def _created() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "created_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=False
    )


def _tenant_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"])


def upgrade() -> None:
    op.create_table(
        "pbx_blocked_numbers",
        sa.Column("id", sa.String(length=32), nullable=False),
        *_common(),
        sa.Column("pattern", sa.String(length=40), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        _created(),
        _tenant_fk(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "pattern", name="uq_pbx_blocked_numbers_pattern"),
    )
    op.create_table(
        "pbx_call_settings",
        sa.Column("extension", sa.String(length=15), nullable=False),
        *_common(),
        sa.Column("dnd", sa.Boolean(), nullable=False),
        sa.Column("forward_always", sa.String(length=32), nullable=True),
        sa.Column("forward_busy", sa.String(length=32), nullable=True),
        sa.Column("forward_no_answer", sa.String(length=32), nullable=True),
        sa.Column("ring_seconds", sa.Float(), nullable=False),
        sa.Column("follow_me", sa.JSON(), nullable=False),
        sa.Column(
            "updated_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        _tenant_fk(),
        sa.PrimaryKeyConstraint("extension"),
    )
    op.create_table(
        "pbx_dial_rules",
        sa.Column("id", sa.String(length=32), nullable=False),
        *_common(),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("trunk_id", sa.String(length=32), nullable=True),
        sa.Column("emergency", sa.Boolean(), nullable=False),
        sa.Column("strip", sa.Integer(), nullable=False),
        sa.Column("prepend", sa.String(length=16), nullable=False),
        _created(),
        _tenant_fk(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_pbx_dial_rules_name"),
    )
    op.create_table(
        "pbx_dids",
        sa.Column("id", sa.String(length=32), nullable=False),
        *_common(),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("destination_kind", sa.String(length=20), nullable=False),
        sa.Column("destination", sa.String(length=100), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        _created(),
        _tenant_fk(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )
    op.create_table(
        "pbx_ring_groups",
        sa.Column("id", sa.String(length=32), nullable=False),
        *_common(),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("ring_seconds", sa.Float(), nullable=False),
        sa.Column("fallback_kind", sa.String(length=20), nullable=False),
        sa.Column("fallback", sa.String(length=100), nullable=False),
        _created(),
        _tenant_fk(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_pbx_ring_groups_name"),
    )
    op.create_table(
        "pbx_trunks",
        sa.Column("id", sa.String(length=32), nullable=False),
        *_common(),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(length=10), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=True),
        sa.Column("password_encrypted", sa.String(length=500), nullable=True),
        sa.Column("register", sa.Boolean(), nullable=False),
        sa.Column("allowed_sources", sa.JSON(), nullable=False),
        sa.Column("caller_id", sa.String(length=32), nullable=True),
        sa.Column("max_channels", sa.Integer(), nullable=False),
        _created(),
        _tenant_fk(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_pbx_trunks_name"),
    )
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_tenant_id"), ["tenant_id"], unique=False)
    op.create_table(
        "sip_bindings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=True),
        sa.Column("aor", sa.String(length=300), nullable=False),
        sa.Column("contact", sa.String(length=1000), nullable=False),
        sa.Column(
            "expires_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("call_id", sa.String(length=300), nullable=False),
        sa.Column("cseq", sa.Integer(), nullable=False),
        sa.Column("q", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=300), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        _tenant_fk(),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sip_bindings", schema=None) as batch_op:
        for column in ("aor", "expires_at", "tenant_id"):
            batch_op.create_index(batch_op.f(f"ix_sip_bindings_{column}"), [column], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sip_bindings", schema=None) as batch_op:
        for column in ("aor", "expires_at", "tenant_id"):
            batch_op.drop_index(batch_op.f(f"ix_sip_bindings_{column}"))
    op.drop_table("sip_bindings")
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_tenant_id"))
        op.drop_table(table)
