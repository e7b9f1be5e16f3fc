"""customer satisfaction survey answers (CSAT)

One row per answered interaction (unique per organisation and interaction), whatever the
channel of the answer: the phone after the call, a survey link, or the API.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sparklecomm.store.models

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "survey_responses",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("interaction_id", sa.String(length=64), nullable=False),
        sa.Column("queue_id", sa.String(length=64), nullable=True),
        sa.Column("agent_id", sa.String(length=32), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("max_score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.String(length=1000), nullable=True),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column(
            "answered_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "interaction_id", name="uq_survey_responses_interaction"),
    )
    op.create_index(
        "ix_survey_responses_answered", "survey_responses", ["tenant_id", "answered_at"]
    )
    op.create_index(
        "ix_survey_responses_agent", "survey_responses", ["tenant_id", "agent_id", "answered_at"]
    )
    op.create_index(
        "ix_survey_responses_queue", "survey_responses", ["tenant_id", "queue_id", "answered_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_survey_responses_queue", table_name="survey_responses")
    op.drop_index("ix_survey_responses_agent", table_name="survey_responses")
    op.drop_index("ix_survey_responses_answered", table_name="survey_responses")
    op.drop_table("survey_responses")
