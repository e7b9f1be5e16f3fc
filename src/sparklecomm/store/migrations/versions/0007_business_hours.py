"""business hours for DIDs — owned by the telephony PBX work

A named weekly timetable with dated exceptions per organisation, and on each DID the
business hours it follows and where its calls go while closed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sparklecomm.store.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pbx_business_hours",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("weekly", sa.JSON(), nullable=False),
        sa.Column("exceptions", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_pbx_business_hours_name"),
    )
    op.create_index(op.f("ix_pbx_business_hours_tenant_id"), "pbx_business_hours", ["tenant_id"])
    op.add_column("pbx_dids", sa.Column("hours", sa.String(length=50), nullable=True))
    op.add_column(
        "pbx_dids", sa.Column("closed_destination_kind", sa.String(length=20), nullable=True)
    )
    op.add_column(
        "pbx_dids",
        sa.Column("closed_destination", sa.String(length=100), nullable=False, server_default=""),
    )


def downgrade() -> None:
    with op.batch_alter_table("pbx_dids") as batch:
        batch.drop_column("closed_destination")
        batch.drop_column("closed_destination_kind")
        batch.drop_column("hours")
    op.drop_index(op.f("ix_pbx_business_hours_tenant_id"), table_name="pbx_business_hours")
    op.drop_table("pbx_business_hours")
