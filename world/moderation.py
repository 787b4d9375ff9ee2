"""Moderation: members' reports, admins hiding and unhiding clips, and the audit trail.

It owns four tables (world/models.py, migration 0005): `reports` (one per member per clip),
`report_channels` (where a Discord server's admins want reports), `hidden_clips` (what a
hidden scene was, kept for an unhide until its retention ends) and `admin_actions` (who
did what, where and when; people only as keyed hashes, like contributors).

Hiding a ready scene is one compare-and-set on its row: status "hidden", its clip, poster,
text and plan moved into a `hidden_clips` snapshot, and the row otherwise like a pending
one, so a claim mints the branch again from scratch (a new plan, a new clip, a new asset
key). Every front door reads the scene as hidden at once in this process (a published
event drops the cached views and the branch from the known-ready set). Unhiding restores
the snapshot while the scene is still hidden (not minted again) and the old clip is still
in the store. The periodic sweep deletes hidden clips whose retention ran out
(`[moderation] hidden_asset_retention_days`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.base import AssetStore, StorageError
from world.claims import contributor_id
from world.db import Database
from world.models import AdminAction, HiddenClip, Report, ReportChannel, Scene, utcnow
from world.scenes import dialect_insert
from world.settings import Settings
from world.types import SceneEvent, Status

log = logging.getLogger(__name__)

HIDDEN_CODE = "hidden"
HIDDEN_DETAIL = "This scene was removed by the admins; it can be made again."
MAX_REASON_CHARS = 300
PURGE_BATCH = 100  # hidden clips deleted per sweep at most

# What a hidden scene was, put back on unhide: its stored files are hidden_clips' own
# columns (the sweep deletes by them), the rest is moved into the snapshot.
KEY_COLUMNS = ("asset_key", "poster_key")
SNAPSHOT_COLUMNS = (
    "title",
    "narration",
    "video_prompt",
    "choices",
    "state_summary",
    "asset_bytes",
    "provider",
    "provider_job_id",
    "progress",
)
# A hidden row reads like a pending one to the claim and the pipeline: nothing to resume.
_CLEARED: dict[str, Any] = {
    **{name: None for name in KEY_COLUMNS},
    **{name: None for name in SNAPSHOT_COLUMNS if name not in ("provider", "progress")},
    "progress": 0,
    "render_attempt": None,
    "render_request": None,
    "render_requested_at": None,
    "claim_token": None,
    "lease_until": None,
}

# Admin actions written to the audit trail.
HIDE = "hide"
UNHIDE = "unhide"
REPORT_CHANNEL = "report_channel"


class ModerationRefused(Exception):
    """A moderation request turned down; the message is one plain sentence."""


@dataclass(frozen=True)
class ReportResult:
    world_id: str
    path: str
    title: str | None
    reports: int  # members who reported this clip so far, this one included
    report_channel_id: int | None  # where the reporter's server wants reports (None: unset)


@dataclass(frozen=True)
class HideResult:
    world_id: str
    path: str
    title: str | None
    delete_after: datetime  # when the hidden clip leaves the store


@dataclass(frozen=True)
class UnhideResult:
    world_id: str
    path: str
    title: str | None


@dataclass(frozen=True)
class AuditEntry:
    action: str
    actor: str  # HMAC of the admin
    guild_id: int | None
    world_id: str | None
    path: str | None
    reason: str | None
    created_at: datetime


def clip_digest(asset_key: str) -> str:
    """A short stable name for one clip (a re-minted scene has a new asset key)."""
    return hashlib.sha256(asset_key.encode(errors="surrogatepass")).hexdigest()[:32]


def clean_reason(reason: str | None) -> str | None:
    """The reason as stored: one line, trimmed; None when empty. Raises when too long."""
    if reason is None:
        return None
    text = " ".join(reason.split())
    if len(text) > MAX_REASON_CHARS:
        raise ModerationRefused(f"Keep the reason to {MAX_REASON_CHARS} characters or fewer.")
    return text or None


async def _scene(session: AsyncSession, world_id: str, path: str) -> Scene | None:
    return await session.scalar(select(Scene).where(Scene.world_id == world_id, Scene.path == path))


class Moderation:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: Callable[[], AssetStore],
        publish: Callable[[SceneEvent], None],
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """`store()` is the service's current asset store; `publish` its event fan-out."""
        self._settings = settings
        self._db = db
        self._store = store
        self._publish = publish
        self._clock = clock

    def _who(self, person: str) -> str:
        return contributor_id(self._settings.generation.contributor_salt, person)

    # -- reports -------------------------------------------------------------------

    async def report(
        self,
        world_id: str,
        path: str,
        *,
        reporter: str,
        guild_id: int | None,
        channel_id: int | None = None,
        message_id: int | None = None,
    ) -> ReportResult:
        """Record one member's report of the scene's clip (once per member per clip)."""
        reporter_id = self._who(reporter)
        async with self._db.transaction() as session:
            scene = await _scene(session, world_id, path)
            if scene is not None and scene.status == Status.HIDDEN.value:
                raise ModerationRefused("The admins have already removed this scene.")
            if scene is None or scene.status != Status.READY.value or not scene.asset_key:
                raise ModerationRefused("Only a scene that has been made can be reported.")
            clip = clip_digest(scene.asset_key)
            inserted = await session.execute(
                dialect_insert(session)(Report)
                .values(
                    world_id=world_id,
                    scene_id=scene.id,
                    path=path,
                    clip=clip,
                    reporter=reporter_id,
                    guild_id=guild_id,
                    channel_id=channel_id,
                    message_id=message_id,
                    created_at=self._clock(),
                )
                .on_conflict_do_nothing(index_elements=["scene_id", "clip", "reporter"])
            )
            if inserted.rowcount != 1:
                raise ModerationRefused("You have already reported this scene; the admins have it.")
            count = await session.scalar(
                select(func.count())
                .select_from(Report)
                .where(Report.scene_id == scene.id, Report.clip == clip)
            )
            channel = await session.get(ReportChannel, guild_id) if guild_id is not None else None
            title = scene.title
        log.info(
            "scene reported world=%s path=%s guild=%s reports=%d channel_set=%s",
            world_id,
            path,
            guild_id,
            count or 0,
            channel is not None,
        )
        return ReportResult(
            world_id, path, title, int(count or 0), channel.channel_id if channel else None
        )

    async def set_report_channel(self, guild_id: int, channel_id: int, admin: str) -> None:
        """Where this server's reports go from now on (written to the audit trail)."""
        actor = self._who(admin)
        now = self._clock()
        async with self._db.transaction() as session:
            stmt = dialect_insert(session)(ReportChannel).values(
                guild_id=guild_id, channel_id=channel_id, set_by=actor, updated_at=now
            )
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["guild_id"],
                    set_={"channel_id": channel_id, "set_by": actor, "updated_at": now},
                )
            )
            session.add(
                AdminAction(
                    action=REPORT_CHANNEL,
                    actor=actor,
                    guild_id=guild_id,
                    reason=f"channel {channel_id}",
                    created_at=now,
                )
            )
        log.info("report channel set guild=%s channel=%s", guild_id, channel_id)

    async def report_channel(self, guild_id: int) -> int | None:
        async with self._db.session() as session:
            row = await session.get(ReportChannel, guild_id)
            return row.channel_id if row is not None else None

    # -- hiding --------------------------------------------------------------------

    async def hide(
        self,
        world_id: str,
        path: str,
        *,
        reason: str | None,
        admin: str,
        guild_id: int | None = None,
    ) -> HideResult:
        """Hide a ready scene everywhere and re-open its branch for a new mint."""
        reason = clean_reason(reason)
        actor = self._who(admin)
        now = self._clock()
        keep_days = self._settings.moderation.hidden_asset_retention_days
        delete_after = now + timedelta(days=keep_days)
        async with self._db.transaction() as session:
            scene = await _scene(session, world_id, path)
            if scene is not None and scene.status == Status.HIDDEN.value:
                raise ModerationRefused("That scene is already hidden.")
            if scene is None or scene.status != Status.READY.value:
                raise ModerationRefused(
                    "That scene has not been made, so there is nothing to hide."
                )
            snapshot = {name: getattr(scene, name) for name in SNAPSHOT_COLUMNS}
            changed = await session.execute(
                update(Scene)
                .where(
                    Scene.id == scene.id,
                    Scene.status == Status.READY.value,
                    Scene.asset_key.is_(None)
                    if scene.asset_key is None
                    else Scene.asset_key == scene.asset_key,
                )
                .values(
                    status=Status.HIDDEN.value,
                    failure_code=HIDDEN_CODE,
                    failure_detail=HIDDEN_DETAIL,
                    updated_at=now,
                    **_CLEARED,
                )
                .execution_options(synchronize_session=False)
            )
            if changed.rowcount != 1:
                raise ModerationRefused("That scene changed just now; try again.")
            session.add(
                HiddenClip(
                    world_id=world_id,
                    scene_id=scene.id,
                    path=path,
                    asset_key=scene.asset_key,
                    poster_key=scene.poster_key,
                    snapshot=snapshot,
                    reason=reason,
                    hidden_by=actor,
                    guild_id=guild_id,
                    hidden_at=now,
                    delete_after=delete_after,
                )
            )
            session.add(
                AdminAction(
                    action=HIDE,
                    actor=actor,
                    guild_id=guild_id,
                    world_id=world_id,
                    path=path,
                    reason=reason,
                    created_at=now,
                )
            )
        self._publish(
            SceneEvent(
                world_id,
                path,
                Status.HIDDEN,
                failure_code=HIDDEN_CODE,
                failure_detail=HIDDEN_DETAIL,
            )
        )
        log.info("scene hidden world=%s path=%s keep_days=%d", world_id, path, keep_days)
        return HideResult(world_id, path, snapshot["title"], delete_after)

    async def unhide(
        self, world_id: str, path: str, *, admin: str, guild_id: int | None = None
    ) -> UnhideResult:
        """Bring a hidden scene back, while it was not minted again and its clip is stored."""
        actor = self._who(admin)
        async with self._db.session() as session:
            scene = await _scene(session, world_id, path)
            hidden = (
                await session.scalar(
                    select(HiddenClip)
                    .where(HiddenClip.scene_id == scene.id, HiddenClip.restored_at.is_(None))
                    .order_by(HiddenClip.id.desc())
                    .limit(1)
                )
                if scene is not None
                else None
            )
        if scene is None or hidden is None:
            raise ModerationRefused("That scene is not hidden.")
        if scene.status != Status.HIDDEN.value:
            raise ModerationRefused(
                "That branch has been minted again since it was hidden, "
                "so the old clip cannot come back."
                if scene.status != Status.READY.value or scene.asset_key != hidden.asset_key
                else "That scene is not hidden."
            )
        gone = (
            "The hidden clip has already been deleted from the store; "
            "the branch can be minted again instead."
        )
        if hidden.deleted_at is not None or not hidden.asset_key:
            raise ModerationRefused(gone)
        try:
            stored = await self._store().exists(hidden.asset_key)
        except StorageError as exc:
            log.warning("unhide could not check asset world=%s path=%s (%s)", world_id, path, exc)
            raise ModerationRefused(
                "The store cannot be reached right now, so nothing was changed; try again soon."
            ) from None
        if not stored:
            raise ModerationRefused(gone)
        now = self._clock()
        restored = {name: hidden.snapshot.get(name) for name in SNAPSHOT_COLUMNS}
        restored.update({name: getattr(hidden, name) for name in KEY_COLUMNS})
        async with self._db.transaction() as session:
            claimed = await session.execute(
                update(HiddenClip)
                .where(
                    HiddenClip.id == hidden.id,
                    HiddenClip.restored_at.is_(None),
                    HiddenClip.deleted_at.is_(None),
                )
                .values(restored_at=now)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:
                raise ModerationRefused(gone)
            back = await session.execute(
                update(Scene)
                .where(Scene.id == scene.id, Scene.status == Status.HIDDEN.value)
                .values(
                    status=Status.READY.value,
                    failure_code=None,
                    failure_detail=None,
                    updated_at=now,
                    **restored,
                )
                .execution_options(synchronize_session=False)
            )
            if back.rowcount != 1:  # claimed for a new mint meanwhile: undo the claim above
                raise ModerationRefused(
                    "That branch is being minted again right now, so the old clip cannot come back."
                )
            session.add(
                AdminAction(
                    action=UNHIDE,
                    actor=actor,
                    guild_id=guild_id,
                    world_id=world_id,
                    path=path,
                    created_at=now,
                )
            )
        self._publish(SceneEvent(world_id, path, Status.READY, progress=100, stage="done"))
        log.info("scene unhidden world=%s path=%s", world_id, path)
        return UnhideResult(world_id, path, restored["title"])

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Delete hidden clips whose retention ran out from the store; returns how many.

        Each is claimed in the database first (any number of processes may sweep), and a
        clip the store could not delete is un-claimed so the next sweep tries again."""
        now = now if now is not None else self._clock()
        async with self._db.session() as session:
            due = list(
                await session.execute(
                    select(HiddenClip.id, HiddenClip.world_id, HiddenClip.path)
                    .where(
                        HiddenClip.delete_after <= now,
                        HiddenClip.deleted_at.is_(None),
                        HiddenClip.restored_at.is_(None),
                    )
                    .order_by(HiddenClip.delete_after)
                    .limit(PURGE_BATCH)
                )
            )
        deleted = 0
        for clip_id, world_id, path in due:
            async with self._db.transaction() as session:
                claimed = await session.execute(
                    update(HiddenClip)
                    .where(
                        HiddenClip.id == clip_id,
                        HiddenClip.deleted_at.is_(None),
                        HiddenClip.restored_at.is_(None),
                    )
                    .values(deleted_at=now)
                    .execution_options(synchronize_session=False)
                )
                if claimed.rowcount != 1:
                    continue
                row = await session.get(HiddenClip, clip_id)
                scene = await session.get(Scene, row.scene_id) if row is not None else None
                live = {scene.asset_key, scene.poster_key} if scene is not None else set()
                keys = [k for k in (row.asset_key, row.poster_key) if k and k not in live]
            try:
                for key in keys:
                    await self._store().delete(key)
            except StorageError as exc:
                log.warning(
                    "hidden clip not deleted yet world=%s path=%s (%s); the next sweep retries",
                    world_id,
                    path,
                    exc,
                )
                async with self._db.transaction() as session:
                    await session.execute(
                        update(HiddenClip)
                        .where(HiddenClip.id == clip_id)
                        .values(deleted_at=None)
                        .execution_options(synchronize_session=False)
                    )
                continue
            deleted += 1
            log.info("hidden clip deleted world=%s path=%s", world_id, path)
        return deleted

    # -- the audit trail -----------------------------------------------------------

    async def record(
        self,
        action: str,
        admin: str,
        *,
        guild_id: int | None = None,
        world_id: str | None = None,
        path: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Write one admin action (e.g. a retry or a cancel) to the audit trail."""
        async with self._db.transaction() as session:
            session.add(
                AdminAction(
                    action=action,
                    actor=self._who(admin),
                    guild_id=guild_id,
                    world_id=world_id,
                    path=path,
                    reason=reason,
                    created_at=self._clock(),
                )
            )
        log.info("admin action=%s world=%s path=%s guild=%s", action, world_id, path, guild_id)

    async def audit(
        self, *, world_id: str | None = None, guild_id: int | None = None, limit: int = 50
    ) -> list[AuditEntry]:
        """The newest admin actions first, of one world and/or one server (or all)."""
        query = select(AdminAction)
        if world_id is not None:
            query = query.where(AdminAction.world_id == world_id)
        if guild_id is not None:
            query = query.where(AdminAction.guild_id == guild_id)
        query = query.order_by(AdminAction.created_at.desc(), AdminAction.id.desc())
        async with self._db.session() as session:
            rows = await session.scalars(query.limit(max(1, min(limit, 500))))
            return [
                AuditEntry(
                    r.action, r.actor, r.guild_id, r.world_id, r.path, r.reason, r.created_at
                )
                for r in rows
            ]
