"""auto-answer in an extension's call settings — owned by the telephony PBX work

Phones that answer by themselves when rung for their agent (headset agents): the B2BUA
asks for it in the INVITE (``Call-Info: ...;answer-after=0``, RFC 5373 ``Answer-Mode``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pbx_call_settings") as batch:
        batch.add_column(
            sa.Column("auto_answer", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("pbx_call_settings") as batch:
        batch.drop_column("auto_answer")
