"""quality assurance: scorecards (versioned) and evaluations

A scorecard used by evaluations is never changed in place: editing writes a new version in
the same family, so an old evaluation keeps its meaning. Evaluations are supervisors'
reviews and agents' self-evaluations, with the score the service computed.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-10 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sparklecomm.store.models

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quality_scorecards",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("family_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_quality_scorecards_tenant", "quality_scorecards", ["tenant_id", "active"])
    op.create_index(
        "ix_quality_scorecards_family",
        "quality_scorecards",
        ["tenant_id", "family_id", "version"],
        unique=True,
    )
    op.create_index(
        "uq_quality_scorecards_current_name",
        "quality_scorecards",
        ["tenant_id", "name"],
        unique=True,
        sqlite_where=sa.text("active"),
        postgresql_where=sa.text("active"),
    )
    op.create_table(
        "quality_evaluations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("scorecard_id", sa.String(length=32), nullable=False),
        sa.Column("agent_id", sa.String(length=32), nullable=False),
        sa.Column("evaluator_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("interaction_id", sa.String(length=64), nullable=True),
        sa.Column("recording_id", sa.String(length=32), nullable=True),
        sa.Column("call_id", sa.String(length=300), nullable=True),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("section_scores", sa.JSON(), nullable=False),
        sa.Column("comment", sa.String(length=4000), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "created_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "submitted_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "acknowledged_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("agent_comment", sa.String(length=4000), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"]),
        sa.ForeignKeyConstraint(["scorecard_id"], ["quality_scorecards.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_quality_evaluations_agent",
        "quality_evaluations",
        ["tenant_id", "agent_id", "submitted_at"],
    )
    op.create_index(
        "ix_quality_evaluations_created", "quality_evaluations", ["tenant_id", "created_at"]
    )
    op.create_index(
        "ix_quality_evaluations_recording", "quality_evaluations", ["tenant_id", "recording_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_quality_evaluations_recording", table_name="quality_evaluations")
    op.drop_index("ix_quality_evaluations_created", table_name="quality_evaluations")
    op.drop_index("ix_quality_evaluations_agent", table_name="quality_evaluations")
    op.drop_table("quality_evaluations")
    op.drop_index("uq_quality_scorecards_current_name", table_name="quality_scorecards")
    op.drop_index("ix_quality_scorecards_family", table_name="quality_scorecards")
    op.drop_index("ix_quality_scorecards_tenant", table_name="quality_scorecards")
    op.drop_table("quality_scorecards")
