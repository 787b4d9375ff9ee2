"""WorldService: the one facade every front door (Discord, HTTP) uses.

It validates requests, holds the life cycle, and hands the work to its parts:

- claims (world/claimer.py): invariant 1, the per-path lock + CAS claim with token and lease;
- jobs (world/jobs.py): generation jobs of this process, their leases and in-flight creates;
- views (world/views.py): scene views and their cache, and the branches known ready;
- events (world/events.py): progress fan-out; metrics (world/metrics.py); the watchdog;
- moderation (world/moderation.py): reports, hiding and unhiding scenes, the audit trail.

Every local event goes through `_publish`, which drops the stale cached views, forgets the
branch's recent claim once it left the queue, fans the event out and tells the observer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from storage.base import AssetStore
from storage.factory import build_store
from world import paths, scenes, spending, sweep, worldmap
from world.claimer import FINAL_FAILURES as FINAL_FAILURES  # re-exported for front doors
from world.claimer import Claimer, refused
from world.claims import PathLocks, contributor_id
from world.counters import RenderTimes, ServiceCounters
from world.db import Database
from world.events import EventBus, Spawn, Subscription, default_spawn
from world.film import Film, Filmmaker, FilmRefused
from world.film import Progress as FilmProgressCallback
from world.jobs import JobRunner
from world.logsafe import describe_exception, holding
from world.metrics import render_times, world_metrics
from world.moderation import AuditEntry as AuditEntry  # re-exported for front doors
from world.moderation import HideResult as HideResult
from world.moderation import Moderation, ModerationRefused
from world.moderation import ReportResult as ReportResult
from world.moderation import UnhideResult as UnhideResult
from world.play import PlayStore
from world.providers import build_provider
from world.providers.base import KeyCheck, Provider, ProviderError
from world.providers.errors import provider_error
from world.quoting import quote
from world.settings import Settings, WorldSettings
from world.types import ClaimResult, Credentials, Metrics, SceneEvent, SceneView, Status
from world.views import UnreachableBranch, ViewCache
from world.watchdog import Watchdog

# The map's depth limits, for the front doors' option hints.
MAP_DEFAULT_DEPTH = worldmap.DEFAULT_DEPTH
MAP_MIN_DEPTH = worldmap.MIN_DEPTH
MAP_MAX_DEPTH = worldmap.MAX_DEPTH

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """A request the service refuses; the message is one plain sentence."""


class UnknownWorld(ServiceError):
    pass


class InvalidBranch(ServiceError):
    pass


class WorldService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: AssetStore,
        providers: Mapping[str, Provider],
        *,
        spawn: Spawn | None = None,
        on_event: Callable[[SceneEvent], None] | None = None,
    ) -> None:
        """`spawn(coroutine, name)` starts every background task of the service (jobs,
        progress pollers, the watchdog); `on_event` sees each event published here."""
        self.settings = settings
        self.db = db
        self._store = store
        self.providers = dict(providers)
        self._spawn = spawn or default_spawn
        self._on_event = on_event
        self.counters = ServiceCounters()  # claims answered and views served, for metrics
        generation = settings.generation
        self.locks = PathLocks()
        self.play = PlayStore(db)  # channels, rounds and votes of the front doors that play
        self.films = Filmmaker(settings, db, lambda: self._store)  # /adventure film
        self.views = ViewCache(db, store, self.providers, settings.storage, self.estimated_cost)
        self.jobs = JobRunner(
            settings,
            db,
            store,
            self.providers,
            publish=self._publish,
            spawn=self._spawn,
            on_finished=lambda key: self._claims.forget(*key),
        )
        self._claims = Claimer(
            settings,
            db,
            self.providers,
            self.locks,
            self.views,
            self.jobs,
            self._publish,
            estimated_cost=self.estimated_cost,
        )
        self.events = EventBus(
            self._stored_event,
            interval=max(0.5, generation.progress_write_interval_seconds),
            is_local=lambda key: self.jobs.running(*key),
            spawn=self._spawn,
        )
        self._closing = False
        self._estimates: asyncio.Task[None] | None = None
        self.watchdog = Watchdog(self, generation.watchdog_interval_seconds, spawn=self._spawn)
        # reports, hide / unhide, the audit trail (world/moderation.py)
        self.moderation = Moderation(settings, db, lambda: self._store, self._publish)

    # -- life cycle ----------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        store: AssetStore | None = None,
        providers: Mapping[str, Provider] | None = None,
        run_watchdog: bool = True,
        spawn: Spawn | None = None,
        on_event: Callable[[SceneEvent], None] | None = None,
    ) -> WorldService:
        """Open the database (at the current schema), seed worlds, sweep, start the watchdog.

        `spawn` and `on_event` are as for the constructor (default: `asyncio.create_task`,
        no observer)."""
        db = Database.from_settings(settings.database)
        try:
            await db.require_current_schema()
        except Exception:
            await db.close()
            raise
        store = store if store is not None else build_store(settings.storage)
        if providers is None:
            data_dir = Path(settings.generation.spool_dir).parent
            providers = {
                w.id: build_provider(w, settings.providers, data_dir) for w in settings.worlds
            }
        service = cls(settings, db, store, providers, spawn=spawn, on_event=on_event)
        await service._seed_worlds()
        try:  # what killed processes left behind (see world/sweep.py)
            await service.sweep_stray_files()
        except Exception:
            log.exception("start-up sweep of stray files failed; the watchdog tries again")
        service._estimates = service._spawn(service.refresh_estimates(), "prices")
        if run_watchdog:
            service.watchdog.start()
        log.info(
            "world service started worlds=%s database=%s",
            ",".join(w.id for w in settings.worlds),
            db.dialect,
        )
        return service

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def closing(self) -> bool:
        """True once `close` has begun: no new claims are taken."""
        return self._closing

    async def close(self) -> None:
        """Stop taking claims, let jobs reach a safe point, leave the rest resumable."""
        if self._closing:
            return
        self._closing = True
        if self._estimates is not None:
            self._estimates.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._estimates
        await self.watchdog.stop()
        await self.jobs.drain(self.settings.generation.shutdown_grace_seconds)
        await self.films.close()
        await self.events.close()
        for provider in {id(p): p for p in self.providers.values()}.values():
            with contextlib.suppress(Exception):
                await provider.close()
        with contextlib.suppress(Exception):
            await self._store.close()
        await self.db.close()
        log.info("world service closed")

    async def _seed_worlds(self) -> None:
        async with self.db.transaction() as session:
            for world in self.settings.worlds:
                await scenes.upsert_world(
                    session,
                    {
                        "id": world.id,
                        "base_prompt": world.base_prompt,
                        "guidance": world.guidance,
                        "provider": world.provider,
                        "planner_model": world.planner_model,
                        "video_model": world.video_model,
                        "summary_model": world.summary_model,
                        "video_size": world.video_size,
                        "video_seconds": world.video_seconds,
                    },
                )

    @property
    def store(self) -> AssetStore:
        return self._store

    def use_store(self, store: AssetStore) -> None:
        """Serve and store assets with another store from now on (cached views are dropped).

        Jobs already running keep the store they started with; the old store stays open."""
        self._store = store
        self.jobs.use_store(store)
        self.views.use_store(store)

    # -- lookups -------------------------------------------------------------------

    def world(self, world_id: str) -> WorldSettings:
        world = self.settings.world(world_id)
        if world is None:
            raise UnknownWorld(f"There is no world called {quote(world_id)}.")
        return world

    def provider(self, world_id: str) -> Provider:
        self.world(world_id)
        return self.providers[world_id]

    def _check_path(self, path: str) -> None:
        try:
            paths.parse(path, self.settings.generation.max_depth)
        except paths.InvalidPath as exc:
            raise InvalidBranch(str(exc)) from exc

    async def view(self, world_id: str, path: str) -> SceneView:
        """The scene at `path` with each choice's state, in one indexed query (or none)."""
        world = self.world(world_id)
        self._check_path(path)
        try:
            scene = await self.views.view(world, path)
        except UnreachableBranch as exc:
            raise InvalidBranch(str(exc)) from None
        self.counters.views += 1
        return scene

    async def trail(self, world_id: str, path: str) -> list[tuple[str, str | None]]:
        """The path and each ancestor, root first, as (step path, its title or None)."""
        self.world(world_id)
        self._check_path(path)
        steps = [*paths.ancestors(path), path]
        async with self.db.session() as session:
            rows = await scenes.load_paths(session, world_id, steps)
        return [(step, rows[step].title if step in rows else None) for step in steps]

    async def clip_bytes(self, view: SceneView) -> bytes:
        """The stored clip of a ready view; a store that cannot read it raises its error."""
        if view.video_key is None:
            raise ServiceError("That clip is not available.")
        return await self._store.open_bytes(view.video_key)

    async def explored_paths(
        self, world_id: str, prefix: str = "", limit: int = 25
    ) -> list[tuple[str, str | None]]:
        """Ready branches under a prefix (for autocomplete), shallowest first."""
        self.world(world_id)
        async with self.db.session() as session:
            return await scenes.explored(session, world_id, prefix, limit)

    async def world_map(
        self, world_id: str, path: str, depth: int, *, highlight: str | None = None
    ) -> bytes:
        """A PNG of the explored tree around `path`, `depth` levels down (world/worldmap.py);
        `highlight` (the channel's position) is outlined. Bounded reads; drawn in a thread."""
        self.world(world_id)
        self._check_path(path)
        try:
            async with self.db.session() as session:
                tree = await worldmap.read_tree(session, world_id, path, depth, highlight=highlight)
        except worldmap.MapRefused as exc:
            raise InvalidBranch(str(exc)) from None
        png = await asyncio.to_thread(worldmap.draw_map, tree)
        log.info(
            "world map world=%s path=%s depth=%d nodes=%d", world_id, path, depth, len(tree.nodes)
        )
        return png

    async def validate_key(self, world_id: str, credentials: Credentials | None) -> KeyCheck:
        """Cheap provider check that spends nothing; raises ProviderError."""
        provider = self.provider(world_id)
        if provider.needs_key and credentials is None:
            raise ProviderError("invalid_key", "This world needs an API key to make new scenes.")
        with holding(_secret_of(credentials)):
            try:
                return await provider.validate_key(credentials)
            except ProviderError:
                raise
            except Exception as exc:
                # Not mapped by the provider: its text may carry the key, and whoever catches
                # it next holds the key no longer. Logged safely here, mapped to a sentence.
                log.warning(
                    "key check crashed world=%s: %s",
                    world_id,
                    describe_exception(exc, _secret_of(credentials)),
                )
                code = "timeout" if isinstance(exc, TimeoutError) else "provider_error"
                raise provider_error(code) from None

    def estimated_cost(self, world_id: str) -> float:
        """What minting one branch is expected to cost: the provider's price list, else settings."""
        world = self.world(world_id)
        if not self.providers[world_id].needs_key:
            return 0.0
        cached = self.providers[world_id].cached_estimate_usd()
        return world.estimated_cost_usd if cached is None else cached

    async def refresh_estimates(self) -> None:
        """Read every world's price from its provider (their catalogues cache it)."""
        for world_id, provider in self.providers.items():
            try:
                async with asyncio.timeout(self.settings.providers.request_timeout_seconds):
                    await provider.estimate_cost_usd()
            except Exception as exc:  # a price list out of reach leaves the setting in use
                log.warning("price list unavailable world=%s (%s)", world_id, type(exc).__name__)

    # -- claims --------------------------------------------------------------------

    async def claim(
        self,
        world_id: str,
        path: str,
        credentials: Credentials | None,
        contributor: str | None,
        *,
        confirm_uncertain: bool = False,
        guild: str | None = None,
    ) -> ClaimResult:
        """Ready: play it. Queued: someone is making it. Otherwise this caller starts it.

        A branch whose last create may have started a render without reporting back is
        claimed only with `confirm_uncertain` (the payer saw the warning and accepts it).
        `guild` is the server the claim comes from (hashed like the contributor); a claim
        over a member's or a server's cap (`[limits]`) is refused before anything is spent.
        """
        with holding(_secret_of(credentials)):  # a job started here takes its own hold
            result = await self._claim(
                world_id,
                path,
                credentials,
                contributor,
                retry=False,
                confirm=confirm_uncertain,
                guild=guild,
            )
        self.counters.claimed(result.outcome.value)
        return result

    async def retry(
        self,
        world_id: str,
        path: str,
        credentials: Credentials | None,
        contributor: str | None,
        *,
        guild: str | None = None,
    ) -> ClaimResult:
        """Claim a failed branch again, including failures a plain claim will not retry.

        This is the admin's decision, so it also re-opens an uncertain render. The caps
        apply as for `claim`.
        """
        with holding(_secret_of(credentials)):
            result = await self._claim(
                world_id, path, credentials, contributor, retry=True, confirm=True, guild=guild
            )
        self.counters.claimed(result.outcome.value)
        return result

    async def _claim(
        self,
        world_id: str,
        path: str,
        credentials: Credentials | None,
        contributor: str | None,
        *,
        retry: bool,
        confirm: bool,
        guild: str | None = None,
    ) -> ClaimResult:
        try:
            world = self.world(world_id)
            self._check_path(path)
        except ServiceError as exc:
            return refused(world_id, path, "invalid", str(exc))
        if self._closing:
            return refused(
                world_id, path, "shutting_down", "The bot is restarting; try again in a minute."
            )
        return await self._claims.claim(
            world, path, credentials, contributor, retry=retry, confirm=confirm, guild=guild
        )

    def _publish(self, event: SceneEvent) -> None:
        self.views.saw(event)
        if event.status is not Status.QUEUED:
            self._claims.forget(event.world_id, event.path)
        self.events.publish(event)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("event observer failed world=%s", event.world_id)

    def cancel_local(self, token: str) -> bool:
        """Stop this process's job of a claim token, if it runs here."""
        return self.jobs.cancel_local(token)

    def is_running_here(self, world_id: str, path: str) -> bool:
        """Whether a job of this process is working on the branch."""
        return self.jobs.running(world_id, path)

    async def cancel(self, world_id: str, path: str) -> bool:
        """Stop a queued branch; its provider job id is kept so nothing paid is lost."""
        self.world(world_id)
        self._check_path(path)
        return await self._claims.cancel(world_id, path)

    async def recycle_expired_leases(self) -> int:
        """Any process may do this: expired claims go back to pending (job ids kept)."""
        return await self._claims.recycle_expired_leases()

    async def sweep_stray_files(self) -> sweep.SweepReport:
        """Delete temp files no live job owns; never a spool clip of an unfinished branch."""
        return await self.watchdog.sweep_stray_files()

    async def sweep_if_due(self) -> sweep.SweepReport | None:
        """The watchdog's sweep: at most every sweep.SWEEP_INTERVAL_SECONDS."""
        return await self.watchdog.sweep_if_due()

    # -- moderation (world/moderation.py) --------------------------------------------

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
        """A member reports the scene's clip: once per member per clip (raises ServiceError)."""
        self.world(world_id)
        self._check_path(path)
        try:
            return await self.moderation.report(
                world_id,
                path,
                reporter=reporter,
                guild_id=guild_id,
                channel_id=channel_id,
                message_id=message_id,
            )
        except ModerationRefused as exc:
            raise ServiceError(str(exc)) from None

    async def set_report_channel(self, guild_id: int, channel_id: int, admin: str) -> None:
        """Where a server's reports are posted (audited)."""
        await self.moderation.set_report_channel(guild_id, channel_id, admin)

    async def report_channel(self, guild_id: int) -> int | None:
        return await self.moderation.report_channel(guild_id)

    async def hide(
        self,
        world_id: str,
        path: str,
        reason: str | None,
        admin: str,
        *,
        guild_id: int | None = None,
    ) -> HideResult:
        """Hide a ready scene's clip and text everywhere and re-open the branch (audited);
        the old clip is kept `[moderation] hidden_asset_retention_days`."""
        self.world(world_id)
        self._check_path(path)
        try:
            return await self.moderation.hide(
                world_id, path, reason=reason, admin=admin, guild_id=guild_id
            )
        except ModerationRefused as exc:
            raise ServiceError(str(exc)) from None

    async def unhide(
        self, world_id: str, path: str, admin: str, *, guild_id: int | None = None
    ) -> UnhideResult:
        """Restore a hidden scene while it was not minted again and its clip is kept."""
        self.world(world_id)
        self._check_path(path)
        try:
            return await self.moderation.unhide(world_id, path, admin=admin, guild_id=guild_id)
        except ModerationRefused as exc:
            raise ServiceError(str(exc)) from None

    async def record_admin_action(
        self,
        action: str,
        admin: str,
        *,
        guild_id: int | None = None,
        world_id: str | None = None,
        path: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Write an admin action (retry, cancel, ...) to the audit trail."""
        await self.moderation.record(
            action, admin, guild_id=guild_id, world_id=world_id, path=path, reason=reason
        )

    async def audit_log(
        self, *, world_id: str | None = None, guild_id: int | None = None, limit: int = 50
    ) -> list[AuditEntry]:
        """The newest admin actions first."""
        return await self.moderation.audit(world_id=world_id, guild_id=guild_id, limit=limit)

    async def purge_hidden_clips(self, now: datetime | None = None) -> int:
        """Delete hidden clips whose retention ran out (the sweep calls this)."""
        return await self.moderation.purge_expired(now)

    # -- progress and metrics ------------------------------------------------------

    def subscribe(self, world_id: str, path: str) -> Subscription:
        """Async iterator of progress and status events; ends at ready, failed or pending."""
        self.world(world_id)
        self._check_path(path)
        return self.events.subscribe(world_id, path)

    def running_jobs(self) -> int:
        return len(self.jobs)

    async def _stored_event(self, world_id: str, path: str) -> SceneEvent:
        """A branch's stored state for a new subscriber, with its place in line here."""
        event = await self.views.stored_event(world_id, path)
        place = self.jobs.queue_position(world_id, path)
        if place is None or event.status is not Status.QUEUED:
            return event
        return dataclasses.replace(event, queue_position=place)

    def queue_position(self, world_id: str, path: str) -> int | None:
        """The branch's place in line for a generation slot of this process (1 = next to
        start), None when it is not waiting; changes are published as `queue_position`."""
        return self.jobs.queue_position(world_id, path)

    # -- spending ------------------------------------------------------------------

    async def member_spending(self, contributor: str, limit: int = 10) -> spending.MemberSpending:
        """What a member (as passed to `claim`) minted, newest first, and what it cost."""
        hashed = contributor_id(self.settings.generation.contributor_salt, contributor)
        return await spending.member_spending(self.db, self.settings.limits, hashed, limit)

    async def world_spending(
        self, world_id: str, *, days: int = 7, guild: str | None = None
    ) -> spending.WorldSpending:
        """A world's spend per UTC day and its top contributors (hashed ids only); with
        `guild`, also that server's day so far."""
        self.world(world_id)
        server = contributor_id(self.settings.generation.contributor_salt, guild) if guild else None
        return await spending.world_spending(self.db, world_id, days=days, server=server)

    async def render_cost(self, world_id: str, path: str) -> tuple[float, float | None] | None:
        """The estimate and the provider-reported cost (None if unreported) of the branch's
        latest finished render; None when it has none."""
        self.world(world_id)
        return await spending.branch_render_cost(self.db, world_id, path)

    async def metrics(self, world_id: str) -> Metrics:
        self.world(world_id)
        return await world_metrics(self.db, world_id)

    async def render_times(self, world_id: str, bounds: tuple[float, ...]) -> RenderTimes:
        """Every ready render's total time, cumulative per upper bound in seconds."""
        self.world(world_id)
        return await render_times(self.db, world_id, bounds)

    # -- films -------------------------------------------------------------------------

    async def film(
        self, world_id: str, path: str, *, on_progress: FilmProgressCallback | None = None
    ) -> Film:
        """The path's clips from the opening scene, joined into one stored mp4 (world/film.py):
        cached per path and clips, made once for concurrent callers, joined in a thread."""
        self.world(world_id)
        self._check_path(path)
        try:
            return await self.films.film(world_id, path, on_progress=on_progress)
        except FilmRefused as exc:
            raise ServiceError(str(exc)) from None

    async def film_bytes(self, film: Film) -> bytes:
        """A stored film's bytes, for an attachment (only films within an upload limit)."""
        return await self._store.open_bytes(film.key)

    async def film_clips(self, world_id: str, path: str) -> int:
        """How many scenes from the opening scene to `path` have a clip (one indexed read)."""
        self.world(world_id)
        self._check_path(path)
        return len(await self.films.clips_of(world_id, path))


def _secret_of(credentials: Credentials | None) -> str | None:
    return credentials.api_key if credentials is not None else None
