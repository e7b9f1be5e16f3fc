"""voice menus (IVR) — owned by the telephony PBX work

A spoken prompt per menu and where each key of the phone's keypad leads (a queue, an
extension, a ring group, another menu ...); DIDs may lead to a menu (``ivr:NAME``, in the
existing destination columns).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sparklecomm.store.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pbx_ivr_menus",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("timeout_seconds", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("invalid_prompt", sa.Text(), nullable=False),
        sa.Column("default_destination", sa.String(length=120), nullable=False),
        sa.Column(
            "created_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_pbx_ivr_menus_name"),
    )
    op.create_index(op.f("ix_pbx_ivr_menus_tenant_id"), "pbx_ivr_menus", ["tenant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pbx_ivr_menus_tenant_id"), table_name="pbx_ivr_menus")
    op.drop_table("pbx_ivr_menus")
