"""call recordings and the organisations' recording policies

One row per recorded call; the audio is a WAV file under
``<data_dir>/recordings/<tenant_id>/<id>.wav``. One policy row per organisation (none:
nothing recorded automatically, recordings kept forever).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-09 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sparklecomm.store.models

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_recordings",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("call_id", sa.String(length=300), nullable=False),
        sa.Column("interaction_id", sa.String(length=64), nullable=True),
        sa.Column("queue_id", sa.String(length=64), nullable=True),
        sa.Column("agent_id", sa.String(length=32), nullable=True),
        sa.Column("caller", sa.String(length=100), nullable=False),
        sa.Column("dialled", sa.String(length=100), nullable=False),
        sa.Column("started_by", sa.String(length=32), nullable=False),
        sa.Column(
            "started_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("ended_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("paused_seconds", sa.Float(), nullable=False),
        sa.Column("pauses", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("file", sa.String(length=100), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_call_recordings_started", "call_recordings", ["tenant_id", "started_at"])
    op.create_index(
        "ix_call_recordings_agent", "call_recordings", ["tenant_id", "agent_id", "started_at"]
    )
    op.create_index(
        "ix_call_recordings_interaction", "call_recordings", ["tenant_id", "interaction_id"]
    )
    op.create_index("ix_call_recordings_status", "call_recordings", ["status"])
    op.create_table(
        "recording_policies",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("all_calls", sa.Boolean(), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("extensions", sa.JSON(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"]),
        sa.PrimaryKeyConstraint("tenant_id"),
    )


def downgrade() -> None:
    op.drop_table("recording_policies")
    op.drop_index("ix_call_recordings_status", table_name="call_recordings")
    op.drop_index("ix_call_recordings_interaction", table_name="call_recordings")
    op.drop_index("ix_call_recordings_agent", table_name="call_recordings")
    op.drop_index("ix_call_recordings_started", table_name="call_recordings")
    op.drop_table("call_recordings")
