"""SQLAlchemy 2.0 typed models. The database is the source of truth; memory is only a cache."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend; SQLite stores naive UTC and gets it back aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class World(Base):
    __tablename__ = "worlds"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    base_prompt: Mapped[str] = mapped_column(Text)
    guidance: Mapped[str] = mapped_column(Text, default="")
    provider: Mapped[str] = mapped_column(String(32))
    planner_model: Mapped[str] = mapped_column(String(128))
    video_model: Mapped[str] = mapped_column(String(128))
    summary_model: Mapped[str | None] = mapped_column(String(128))
    video_size: Mapped[str] = mapped_column(String(16))
    video_seconds: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Scene(Base):
    __tablename__ = "scenes"
    __table_args__ = (
        UniqueConstraint("world_id", "path", name="uq_scenes_world_path"),
        Index("ix_scenes_world_status_lease", "world_id", "status", "lease_until"),
        Index("ix_scenes_contributor_status", "contributor", "status"),
        Index("ix_scenes_guild_status", "guild", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    world_id: Mapped[str] = mapped_column(String(64), ForeignKey("worlds.id"))
    path: Mapped[str] = mapped_column(String(1024))
    parent_path: Mapped[str | None] = mapped_column(String(1024))
    depth: Mapped[int] = mapped_column(Integer)
    choice_index: Mapped[int | None] = mapped_column(Integer)
    choice_label: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    title: Mapped[str | None] = mapped_column(Text)
    narration: Mapped[str | None] = mapped_column(Text)
    video_prompt: Mapped[str | None] = mapped_column(Text)
    # [{"label": ..., "short_label": ...}] x 3 once planned
    choices: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    state_summary: Mapped[str | None] = mapped_column(Text)
    asset_key: Mapped[str | None] = mapped_column(String(1024))
    poster_key: Mapped[str | None] = mapped_column(String(1024))
    asset_bytes: Mapped[int | None] = mapped_column(BigInteger)
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_job_id: Mapped[str | None] = mapped_column(String(256))
    # The intent of the latest paid create, committed before it is sent: with no job id
    # recorded beside it, a create may have started and must be reconciled, not repeated.
    render_attempt: Mapped[str | None] = mapped_column(String(64))
    render_request: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    render_requested_at: Mapped[datetime | None] = mapped_column()
    progress: Mapped[int] = mapped_column(Integer, default=0)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_detail: Mapped[str | None] = mapped_column(Text)
    claim_token: Mapped[str | None] = mapped_column(String(64))
    contributor: Mapped[str | None] = mapped_column(String(64))
    # The claim's server (HMAC, like contributor) and the estimate it reserved while it runs.
    guild: Mapped[str | None] = mapped_column(String(64))
    reserved_cost_usd: Mapped[float | None] = mapped_column(Float)
    claimed_at: Mapped[datetime | None] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Render(Base):
    __tablename__ = "renders"
    __table_args__ = (
        Index("ix_renders_world_outcome", "world_id", "outcome"),
        Index("ix_renders_contributor_created", "contributor", "created_at"),
        Index("ix_renders_guild_created", "guild", "created_at"),
        Index("ix_renders_world_created", "world_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    world_id: Mapped[str] = mapped_column(String(64), ForeignKey("worlds.id"))
    scene_id: Mapped[int] = mapped_column(ForeignKey("scenes.id"))
    path: Mapped[str] = mapped_column(String(1024))
    provider: Mapped[str] = mapped_column(String(32))
    planner_model: Mapped[str] = mapped_column(String(128))
    video_model: Mapped[str] = mapped_column(String(128))
    summary_model: Mapped[str | None] = mapped_column(String(128))
    contributor: Mapped[str | None] = mapped_column(String(64))
    guild: Mapped[str | None] = mapped_column(String(64))  # the claim's server (HMAC)
    outcome: Mapped[str] = mapped_column(String(16), default="ready")  # ready | failed
    failure_code: Mapped[str | None] = mapped_column(String(64))
    planner_ms: Mapped[int] = mapped_column(Integer, default=0)
    video_ms: Mapped[int] = mapped_column(Integer, default=0)
    upload_ms: Mapped[int] = mapped_column(Integer, default=0)
    summary_ms: Mapped[int] = mapped_column(Integer, default=0)
    total_ms: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    estimated_cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    # What the provider reported the render cost (OpenRouter's usage.cost); None if unknown.
    actual_cost_usd: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Channel(Base):
    """A Discord channel bound to a world: where it is in the story and how it chooses."""

    __tablename__ = "channels"

    channel_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    guild_id: Mapped[int] = mapped_column(BigInteger, index=True)
    world_id: Mapped[str] = mapped_column(String(64), ForeignKey("worlds.id"))
    current_path: Mapped[str] = mapped_column(String(1024), default="")
    mode: Mapped[str] = mapped_column(String(8), default="vote")  # vote | pick
    vote_seconds: Mapped[int] = mapped_column(Integer, default=60)
    active: Mapped[bool] = mapped_column(default=True)
    card_message_id: Mapped[int | None] = mapped_column(BigInteger)
    progress_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Round(Base):
    """One decision in a channel; at most one open round per channel."""

    __tablename__ = "rounds"
    __table_args__ = (
        Index(
            "uq_rounds_one_open_per_channel",
            "channel_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_rounds_status_closes", "status", "closes_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.channel_id", ondelete="CASCADE"))
    world_id: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(1024))
    mode: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8), default="open")  # open | closed
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closes_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    winner_index: Mapped[int | None] = mapped_column(Integer)


class Vote(Base):
    __tablename__ = "votes"
    __table_args__ = (UniqueConstraint("round_id", "user_id", name="uq_votes_round_user"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger)
    choice_index: Mapped[int] = mapped_column(Integer)
    voted_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# -- moderation (world/moderation.py) ---------------------------------------------------------


class Report(Base):
    """A member's report of one clip: one per member per clip (a re-minted scene is new)."""

    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("scene_id", "clip", "reporter", name="uq_reports_scene_clip_reporter"),
        Index("ix_reports_world_path", "world_id", "path"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    world_id: Mapped[str] = mapped_column(String(64), ForeignKey("worlds.id"))
    scene_id: Mapped[int] = mapped_column(ForeignKey("scenes.id"))
    path: Mapped[str] = mapped_column(String(1024))
    clip: Mapped[str] = mapped_column(String(32))  # a digest of the reported clip's asset key
    reporter: Mapped[str] = mapped_column(String(64))  # HMAC, like a contributor
    guild_id: Mapped[int | None] = mapped_column(BigInteger)
    channel_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReportChannel(Base):
    """Where a Discord server's admins want reports posted."""

    __tablename__ = "report_channels"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    channel_id: Mapped[int] = mapped_column(BigInteger)
    set_by: Mapped[str] = mapped_column(String(64))  # HMAC
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class HiddenClip(Base):
    """A clip the admins hid: what the scene was, kept until `delete_after` for an unhide."""

    __tablename__ = "hidden_clips"
    __table_args__ = (
        Index("ix_hidden_clips_scene", "scene_id"),
        Index("ix_hidden_clips_delete_after", "delete_after"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    world_id: Mapped[str] = mapped_column(String(64), ForeignKey("worlds.id"))
    scene_id: Mapped[int] = mapped_column(ForeignKey("scenes.id"))
    path: Mapped[str] = mapped_column(String(1024))
    asset_key: Mapped[str | None] = mapped_column(String(1024))
    poster_key: Mapped[str | None] = mapped_column(String(1024))
    # The scene's own columns as they were (title, narration, choices, job id ...), for unhide.
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    hidden_by: Mapped[str] = mapped_column(String(64))  # HMAC
    guild_id: Mapped[int | None] = mapped_column(BigInteger)
    hidden_at: Mapped[datetime] = mapped_column(default=utcnow)
    delete_after: Mapped[datetime] = mapped_column()
    restored_at: Mapped[datetime | None] = mapped_column()
    deleted_at: Mapped[datetime | None] = mapped_column()


class AdminAction(Base):
    """The audit trail: every admin action, who (HMAC), what, where and when."""

    __tablename__ = "admin_actions"
    __table_args__ = (
        Index("ix_admin_actions_world_created", "world_id", "created_at"),
        Index("ix_admin_actions_guild_created", "guild_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    action: Mapped[str] = mapped_column(String(32))  # hide | unhide | report_channel | ...
    actor: Mapped[str] = mapped_column(String(64))  # HMAC
    guild_id: Mapped[int | None] = mapped_column(BigInteger)
    world_id: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str | None] = mapped_column(String(1024))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
