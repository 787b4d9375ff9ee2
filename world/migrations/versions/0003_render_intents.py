"""scenes.render_attempt / render_request / render_requested_at: the intent of a paid create

Written (and committed) before a paid create is sent, so a create whose job id never got
recorded (a kill, a cancel, a timeout) is known to exist and is reconciled, not paid again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scenes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("render_attempt", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("render_request", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("render_requested_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("scenes", schema=None) as batch_op:
        batch_op.drop_column("render_requested_at")
        batch_op.drop_column("render_request")
        batch_op.drop_column("render_attempt")
