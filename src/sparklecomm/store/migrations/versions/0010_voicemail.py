"""voicemail messages — owned by the telephony PBX work

One row per message left in an extension's voicemail box; the recording itself is a WAV
file under ``<data_dir>/voicemail/<tenant_id>/<id>.wav``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sparklecomm.store.models

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pbx_voicemails",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("box", sa.String(length=15), nullable=False),
        sa.Column("caller", sa.String(length=100), nullable=False),
        sa.Column("caller_name", sa.String(length=200), nullable=True),
        sa.Column("call_id", sa.String(length=300), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column(
            "created_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("heard_at", sparklecomm.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("file", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_pbx_voicemails_box", "pbx_voicemails", ["tenant_id", "box", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_pbx_voicemails_box", table_name="pbx_voicemails")
    op.drop_table("pbx_voicemails")
