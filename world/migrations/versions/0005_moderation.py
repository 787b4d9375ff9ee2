"""moderation: reports, report channels, hidden clips and the admin audit trail

A hidden scene keeps status "hidden" in `scenes.status` (a String(16); no schema change
there); what it was is kept in `hidden_clips` until its retention ends.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", _ID, nullable=False),
        sa.Column("world_id", sa.String(length=64), nullable=False),
        sa.Column("scene_id", _ID, nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("clip", sa.String(length=32), nullable=False),
        sa.Column("reporter", sa.String(length=64), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=True),
        sa.Column("channel_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["world_id"], ["worlds.id"]),
        sa.ForeignKeyConstraint(["scene_id"], ["scenes.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scene_id", "clip", "reporter", name="uq_reports_scene_clip_reporter"),
    )
    op.create_index("ix_reports_world_path", "reports", ["world_id", "path"])

    op.create_table(
        "report_channels",
        sa.Column("guild_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("set_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("guild_id"),
    )

    op.create_table(
        "hidden_clips",
        sa.Column("id", _ID, nullable=False),
        sa.Column("world_id", sa.String(length=64), nullable=False),
        sa.Column("scene_id", _ID, nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("asset_key", sa.String(length=1024), nullable=True),
        sa.Column("poster_key", sa.String(length=1024), nullable=True),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("hidden_by", sa.String(length=64), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=True),
        sa.Column("hidden_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delete_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["world_id"], ["worlds.id"]),
        sa.ForeignKeyConstraint(["scene_id"], ["scenes.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_hidden_clips_scene", "hidden_clips", ["scene_id"])
    op.create_index("ix_hidden_clips_delete_after", "hidden_clips", ["delete_after"])

    op.create_table(
        "admin_actions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=True),
        sa.Column("world_id", sa.String(length=64), nullable=True),
        sa.Column("path", sa.String(length=1024), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_admin_actions_world_created", "admin_actions", ["world_id", "created_at"])
    op.create_index("ix_admin_actions_guild_created", "admin_actions", ["guild_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_admin_actions_guild_created", table_name="admin_actions")
    op.drop_index("ix_admin_actions_world_created", table_name="admin_actions")
    op.drop_table("admin_actions")
    op.drop_index("ix_hidden_clips_delete_after", table_name="hidden_clips")
    op.drop_index("ix_hidden_clips_scene", table_name="hidden_clips")
    op.drop_table("hidden_clips")
    op.drop_table("report_channels")
    op.drop_index("ix_reports_world_path", table_name="reports")
    op.drop_table("reports")
