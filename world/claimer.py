"""Claimer: who holds a branch (invariant 1), from its claim to its cancel or expiry.

A per-(world, path) asyncio lock (world/claims.py) in front of the database compare-and-set
with a claim token and a lease: exactly one caller in any number of processes wins, and the
winner's job is started (world/jobs.py) with that token, which fences every later write of
the job. Identical claims arriving together within a second get the first one's answer
without a database read, and branches known ready need none at all. Cancelling a queued
branch and recycling expired leases give a branch back (pending, its provider job kept).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from world import paths, scenes
from world.claims import PathLocks, contributor_id, new_claim_token
from world.db import Database
from world.jobs import JobRunner
from world.models import Scene, utcnow
from world.providers.base import Provider
from world.settings import Settings, WorldSettings
from world.spending import SpendingGuard
from world.types import UNCERTAIN, ClaimOutcome, ClaimResult, Credentials, SceneEvent, Status
from world.views import ViewCache, parent_choice_label

log = logging.getLogger(__name__)

# Failures that another attempt cannot fix; only an admin's `retry` re-opens them.
FINAL_FAILURES = frozenset({"blocked"})
RECENT_CLAIM_SECONDS = 1.0
RECENT_CLAIMS_MAX = 1024
UNCERTAIN_REFUSAL = (
    "A render of this branch may already have been started and paid for; minting it again "
    "may pay a second time, so confirm first (or ask an admin to retry it)."
)

Key = tuple[str, str]  # (world id, path)


class Claimer:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        providers: Mapping[str, Provider],
        locks: PathLocks,
        views: ViewCache,
        jobs: JobRunner,
        publish: Callable[[SceneEvent], None],
        estimated_cost: Callable[[str], float] = lambda world_id: 0.0,
    ) -> None:
        self._settings = settings
        self._estimated_cost = estimated_cost
        self._spending = SpendingGuard(settings.limits)  # caps per member and server
        self._db = db
        self._providers = providers
        self._locks = locks
        self._views = views
        self._jobs = jobs
        self._publish = publish
        self._recent: dict[Key, tuple[float, ClaimResult]] = {}

    def forget(self, world_id: str, path: str) -> None:
        """The branch changed: the next claim of it asks the database again."""
        self._recent.pop((world_id, path), None)

    async def claim(
        self,
        world: WorldSettings,
        path: str,
        credentials: Credentials | None,
        contributor: str | None,
        *,
        retry: bool,
        confirm: bool,
        guild: str | None = None,
    ) -> ClaimResult:
        """Claim a valid branch of a known world (see WorldService.claim and .retry)."""
        key = (world.id, path)
        if self._views.is_ready(world.id, path):
            return ClaimResult(ClaimOutcome.READY, world.id, path, progress=100)
        salt = self._settings.generation.contributor_salt
        member = contributor_id(salt, contributor) if contributor else None
        server = contributor_id(salt, guild) if guild else None

        async with self._locks.hold(key):
            recent = self._recent.get(key)
            if (
                recent is not None
                and time.monotonic() - recent[0] < RECENT_CLAIM_SECONDS
                and not retry
            ):
                return recent[1]
            async with self._spending.hold(member, server):  # after the path lock, always
                result = await self._claim_in_database(
                    world, path, credentials, member, server, retry=retry, confirm=confirm
                )
            if result.outcome is ClaimOutcome.QUEUED:
                self._remember_recent(key, result)
            return result

    async def _claim_in_database(
        self,
        world: WorldSettings,
        path: str,
        credentials: Credentials | None,
        hashed: str | None,
        server: str | None,
        *,
        retry: bool,
        confirm: bool,
    ) -> ClaimResult:
        world_id = world.id
        parent_path = paths.parent(path)
        token = new_claim_token()
        estimate = self._estimated_cost(world_id)
        async with self._db.transaction() as session:
            wanted = [path] if parent_path is None else [path, parent_path]
            rows = await scenes.load_paths(session, world_id, wanted)
            parent = rows.get(parent_path) if parent_path is not None else None
            scene = rows.get(path)
            if scene is not None:  # what exists answers first (below a hidden scene too)
                early = self._existing_outcome(scene, retry=retry, confirm=confirm)
                if early is not None:
                    return early
            if parent_path is not None:
                if parent is not None and parent.status == Status.HIDDEN.value:
                    return refused(
                        world_id,
                        path,
                        "parent_not_ready",
                        "The admins removed the scene before this one; it has to be made "
                        "again first.",
                    )
                if parent is None or parent.status != Status.READY.value:
                    return refused(
                        world_id,
                        path,
                        "parent_not_ready",
                        "The scene before this one does not exist yet.",
                    )
                index = paths.last_index(path)
                if index is None or not parent.choices or index >= len(parent.choices):
                    return refused(
                        world_id, path, "invalid", "That choice does not exist in this scene."
                    )
            if scene is None and retry:  # refused before anything is written: no row
                return refused(world_id, path, "not_failed", "Only a failed branch can be retried.")
            if self._providers[world_id].needs_key and credentials is None:
                # Ready and queued branches are free to everyone; only starting one needs a key.
                return refused(
                    world_id, path, "key_required", "Making this branch needs an API key."
                )
            if self._spending.active:  # before anything is written or spent
                over = await self._spending.check(session, hashed, server, estimate)
                if over is not None:
                    log.info("claim over a cap world=%s path=%s", world_id, path)
                    return refused(world_id, path, "cap", over)
            if scene is None:
                await scenes.insert_placeholder(
                    session, world_id, path, parent_choice_label(parent, path)
                )
            # A hidden scene (world/moderation.py) is re-opened: it is minted like a new one.
            allowed = [Status.FAILED] if retry else [Status.PENDING, Status.FAILED, Status.HIDDEN]
            won = await scenes.try_claim(
                session,
                world_id,
                path,
                token=token,
                contributor=hashed,
                provider=world.provider,
                lease_seconds=self._settings.generation.lease_seconds,
                from_statuses=allowed,
                guild=server,
                reserved_cost_usd=estimate,
            )
            if not won:
                current = (await scenes.load_paths(session, world_id, [path]))[path]
                early = self._existing_outcome(current, retry=retry, confirm=confirm)
                return early or ClaimResult(
                    ClaimOutcome.QUEUED, world_id, path, progress=current.progress
                )
            if scene is not None and scene.failure_code == UNCERTAIN:
                # Confirmed: the unreported create is written off and a new one may be paid.
                await scenes.job_update(
                    session,
                    world_id,
                    path,
                    token,
                    render_attempt=None,
                    render_request=None,
                    render_requested_at=None,
                )
                log.warning("uncertain render written off world=%s path=%s", world_id, path)
        log.info("claimed world=%s path=%s retry=%s", world_id, path, retry)
        self._jobs.start(world, path, token, credentials, hashed, guild=server, estimate=estimate)
        place = self._jobs.queue_position(world_id, path)  # waiting for a slot: its place
        self._publish(
            SceneEvent(
                world_id, path, Status.QUEUED, progress=0, stage="queued", queue_position=place
            )
        )
        return ClaimResult(ClaimOutcome.QUEUED, world_id, path, progress=0, claimed_by_caller=True)

    async def cancel(self, world_id: str, path: str) -> bool:
        """Give a queued branch back (see WorldService.cancel)."""
        async with self._locks.hold((world_id, path)):
            async with self._db.transaction() as session:
                token = await scenes.cancel_queued(session, world_id, path)
            if token is None:
                return False
            self._jobs.cancel_local(token)
            self.forget(world_id, path)
        self._publish(SceneEvent(world_id, path, Status.PENDING))
        log.info("cancelled world=%s path=%s", world_id, path)
        return True

    async def recycle_expired_leases(self) -> int:
        """Expired claims of any process go back to pending (their job ids kept)."""
        now = utcnow()
        async with self._db.session() as session:
            expired = await scenes.expired_claims(session, now)
        recycled = 0
        for world_id, path, token in expired:
            async with self._db.transaction() as session:
                done = await scenes.release(
                    session, world_id, path, token, lease_expired_before=now
                )
            if done:
                recycled += 1
                self._jobs.cancel_local(token)
                self.forget(world_id, path)
                self._publish(SceneEvent(world_id, path, Status.PENDING))
                log.warning("lease expired world=%s path=%s; branch is resumable", world_id, path)
        return recycled

    def _existing_outcome(
        self, scene: Scene, *, retry: bool, confirm: bool = False
    ) -> ClaimResult | None:
        world_id, path = scene.world_id, scene.path
        if scene.status == Status.READY.value:
            self._views.remember_ready(world_id, path)
            return ClaimResult(ClaimOutcome.READY, world_id, path, progress=100)
        if scene.status == Status.QUEUED.value:
            return ClaimResult(ClaimOutcome.QUEUED, world_id, path, progress=scene.progress)
        if retry and scene.status != Status.FAILED.value:
            return refused(world_id, path, "not_failed", "Only a failed branch can be retried.")
        if scene.status == Status.FAILED.value and scene.failure_code == UNCERTAIN and not confirm:
            return refused(world_id, path, UNCERTAIN, UNCERTAIN_REFUSAL)
        if (
            not retry
            and scene.status == Status.FAILED.value
            and scene.failure_code in FINAL_FAILURES
        ):
            return refused(
                world_id,
                path,
                "failed_final",
                "This branch was refused by the video provider; an admin can retry it.",
            )
        return None

    def _remember_recent(self, key: Key, result: ClaimResult) -> None:
        """Identical claims arriving together get this answer without a database read."""
        now = time.monotonic()
        if len(self._recent) >= RECENT_CLAIMS_MAX:
            for stale in [
                k for k, (at, _) in self._recent.items() if now - at >= RECENT_CLAIM_SECONDS
            ]:
                del self._recent[stale]
        shared = ClaimResult(result.outcome, result.world_id, result.path, progress=result.progress)
        self._recent[key] = (now, shared)


def refused(world_id: str, path: str, reason: str, message: str) -> ClaimResult:
    return ClaimResult(ClaimOutcome.REFUSED, world_id, path, reason=reason, message=message)
