"""per-member and per-server spending: the claim's server and its reserved estimate

scenes.guild (the claim's server, an HMAC like scenes.contributor) and
scenes.reserved_cost_usd (the estimate a mint in progress holds against its caps);
renders.guild; indexes for a member's and a server's running mints and spend per day.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scenes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("guild", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("reserved_cost_usd", sa.Float(), nullable=True))
        batch_op.create_index("ix_scenes_contributor_status", ["contributor", "status"])
        batch_op.create_index("ix_scenes_guild_status", ["guild", "status"])
    with op.batch_alter_table("renders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("guild", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_renders_contributor_created", ["contributor", "created_at"])
        batch_op.create_index("ix_renders_guild_created", ["guild", "created_at"])
        batch_op.create_index("ix_renders_world_created", ["world_id", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("renders", schema=None) as batch_op:
        batch_op.drop_index("ix_renders_world_created")
        batch_op.drop_index("ix_renders_guild_created")
        batch_op.drop_index("ix_renders_contributor_created")
        batch_op.drop_column("guild")
    with op.batch_alter_table("scenes", schema=None) as batch_op:
        batch_op.drop_index("ix_scenes_guild_status")
        batch_op.drop_index("ix_scenes_contributor_status")
        batch_op.drop_column("reserved_cost_usd")
        batch_op.drop_column("guild")
