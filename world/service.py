"""WorldService: the one facade every front door (Discord, HTTP) uses.

`claim` implements invariant 1: a per-(world, path) asyncio lock in front of a database
compare-and-set with a claim token and a lease; the winner's generation runs as a background
task and every later write of that job is fenced by its token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import func, select

from storage.base import AssetStore
from storage.factory import build_store
from world import paths, scenes, sweep
from world.claims import PathLocks, contributor_id, new_claim_token
from world.db import Database
from world.events import EventBus, Subscription
from world.logsafe import describe_exception, hold_secret, holding, release_secret
from world.models import Render, Scene, utcnow
from world.pipeline import GenerationJob, JobContext, run_guarded
from world.providers import build_provider
from world.providers.base import KeyCheck, Provider, ProviderError
from world.providers.errors import provider_error
from world.quoting import quote
from world.settings import Settings, WorldSettings
from world.types import (
    UNCERTAIN,
    ChildState,
    ChoiceView,
    ClaimOutcome,
    ClaimResult,
    Credentials,
    Metrics,
    SceneEvent,
    SceneView,
    Status,
)
from world.watchdog import Watchdog

log = logging.getLogger(__name__)

# Failures that another attempt cannot fix; only an admin's `retry` re-opens them.
FINAL_FAILURES = frozenset({"blocked"})
READY_CACHE_SIZE = 4096
VIEW_CACHE_SIZE = 4096
VIEW_TTL_OPEN = 1.0  # a ready scene with a child that may still change in another process
VIEW_TTL_SETTLED = 60.0  # all three children ready: nothing left to change
RECENT_CLAIM_SECONDS = 1.0
RECENT_CLAIMS_MAX = 1024
# A create unanswered this long past its own time limit is not coming back.
CREATE_WINDOW_MARGIN_SECONDS = 5.0
UNCERTAIN_REFUSAL = (
    "A render of this branch may already have been started and paid for; minting it again "
    "may pay a second time, so confirm first (or ask an admin to retry it)."
)


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
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.providers = dict(providers)
        self.events = EventBus(
            self._poll_scene,
            interval=max(0.5, settings.generation.progress_write_interval_seconds),
            is_local=lambda key: key in self._running_paths,
        )
        self.locks = PathLocks()
        self._tasks: dict[str, asyncio.Task[None]] = {}  # claim token -> job task
        self._running_paths: dict[tuple[str, str], str] = {}  # (world, path) -> token
        self._recent: dict[tuple[str, str], tuple[float, ClaimResult]] = {}
        self._ready_cache: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._views: OrderedDict[tuple[str, str], tuple[float, SceneView]] = OrderedDict()
        self._view_loads: dict[tuple[str, str], asyncio.Future[SceneView]] = {}
        self._url_ttl_budget = (
            settings.storage.signed_url_ttl / 4
            if settings.storage.backend == "s3" and settings.storage.signed_urls
            else VIEW_TTL_SETTLED
        )
        self._job_slots = asyncio.Semaphore(settings.generation.max_concurrent_jobs)
        self._closing = False
        self._estimates: asyncio.Task[None] | None = None
        # Paid creates in flight, shared by every job of this process (see pipeline).
        self._inflight: dict[tuple[str, str], tuple[str, asyncio.Future[str]]] = {}
        self._next_sweep = 0.0  # monotonic time of the next stray-file sweep
        self.watchdog = Watchdog(self, settings.generation.watchdog_interval_seconds)

    # -- life cycle ----------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        store: AssetStore | None = None,
        providers: Mapping[str, Provider] | None = None,
        run_watchdog: bool = True,
    ) -> WorldService:
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
        service = cls(settings, db, store, providers)
        await service._seed_worlds()
        try:  # what killed processes left behind (see world/sweep.py)
            await service.sweep_stray_files()
        except Exception:
            log.exception("start-up sweep of stray files failed; the watchdog tries again")
        service._estimates = asyncio.create_task(service.refresh_estimates(), name="prices")
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
        tasks = list(self._tasks.values())
        if tasks:
            grace = self.settings.generation.shutdown_grace_seconds
            log.info("draining %d running jobs for up to %.0fs", len(tasks), grace)
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        await self.events.close()
        for provider in {id(p): p for p in self.providers.values()}.values():
            with contextlib.suppress(Exception):
                await provider.close()
        with contextlib.suppress(Exception):
            await self.store.close()
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
        key = (world_id, path)
        cached = self._views.get(key)
        if cached is not None:
            if cached[0] > time.monotonic():
                self._views.move_to_end(key)
                return cached[1]
            del self._views[key]
        loading = self._view_loads.get(key)
        if loading is None:  # concurrent misses of one scene share one query
            loading = asyncio.ensure_future(self._load_view(world, path))
            self._view_loads[key] = loading
            loading.add_done_callback(lambda _: self._view_loads.pop(key, None))
        view = await asyncio.shield(loading)
        if view.status is Status.READY:
            self._cache_view(key, view)
        return view

    def _cache_view(self, key: tuple[str, str], view: SceneView) -> None:
        # Ready scenes never change; only their children's states do. Local events drop the
        # entry at once (see _publish); the TTL bounds how long another process's change
        # takes to show, and how old a presigned URL in the cache can get.
        settled = all(c.state is ChildState.READY for c in view.choices)
        ttl = min(VIEW_TTL_SETTLED if settled else VIEW_TTL_OPEN, self._url_ttl_budget)
        self._views[key] = (time.monotonic() + ttl, view)
        self._views.move_to_end(key)
        while len(self._views) > VIEW_CACHE_SIZE:
            self._views.popitem(last=False)

    async def _load_view(self, world: WorldSettings, path: str) -> SceneView:
        world_id = world.id
        parent_path = paths.parent(path)
        wanted = [path, *paths.children(path)]
        if parent_path is not None:
            wanted.append(parent_path)
        async with self.db.session() as session:
            rows = await scenes.load_view_rows(session, world_id, wanted)
        if parent_path is not None:
            parent = rows.get(parent_path)
            if parent is None or parent.status != Status.READY.value:
                raise InvalidBranch("That branch cannot be reached yet: its scene comes first.")
        scene = rows.get(path)
        if scene is None:
            label = _parent_choice_label(
                rows.get(parent_path) if parent_path is not None else None, path
            )
            return SceneView(
                world_id=world_id,
                path=path,
                depth=paths.depth(path),
                status=Status.PENDING,
                choice_label=label,
                estimated_cost_usd=self.estimated_cost(world_id),
            )
        return self._scene_view(world, scene, rows)

    def _scene_view(self, world: WorldSettings, scene: Any, rows: Mapping[str, Any]) -> SceneView:
        known = self.providers[world.id].reports_progress
        choices: list[ChoiceView] = []
        if scene.status == Status.READY.value and scene.choices:
            for index, choice in enumerate(scene.choices):
                child_path = paths.child(scene.path, index)
                child = rows.get(child_path)
                choices.append(
                    ChoiceView(
                        index=index,
                        label=choice["label"],
                        short_label=choice["short_label"],
                        path=child_path,
                        state=_child_state(child),
                        progress=child.progress if child is not None else 0,
                        failure=child.failure_detail if child is not None else None,
                        progress_known=known,
                    )
                )
        ready = scene.status == Status.READY.value
        return SceneView(
            world_id=world.id,
            path=scene.path,
            depth=scene.depth,
            status=Status(scene.status),
            title=scene.title if ready else None,
            narration=scene.narration if ready else None,
            choice_label=scene.choice_label,
            choices=tuple(choices),
            state_summary=scene.state_summary,
            video_url=self.store.url_for(scene.asset_key) if ready and scene.asset_key else None,
            poster_url=self.store.url_for(scene.poster_key) if ready and scene.poster_key else None,
            video_key=scene.asset_key if ready else None,
            video_bytes=scene.asset_bytes if ready else None,
            progress=scene.progress,
            failure_code=scene.failure_code,
            failure_detail=scene.failure_detail,
            claimed_at=scene.claimed_at,
            updated_at=scene.updated_at,
            estimated_cost_usd=self.estimated_cost(world.id),
            progress_known=known,
        )

    async def explored_paths(
        self, world_id: str, prefix: str = "", limit: int = 25
    ) -> list[tuple[str, str | None]]:
        """Ready branches under a prefix (for autocomplete), shallowest first."""
        self.world(world_id)
        async with self.db.session() as session:
            return await scenes.explored(session, world_id, prefix, limit)

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
    ) -> ClaimResult:
        """Ready: play it. Queued: someone is making it. Otherwise this caller starts it.

        A branch whose last create may have started a render without reporting back is
        claimed only with `confirm_uncertain` (the payer saw the warning and accepts it).
        """
        with holding(_secret_of(credentials)):  # a job started here takes its own hold
            return await self._claim(
                world_id, path, credentials, contributor, retry=False, confirm=confirm_uncertain
            )

    async def retry(
        self,
        world_id: str,
        path: str,
        credentials: Credentials | None,
        contributor: str | None,
    ) -> ClaimResult:
        """Claim a failed branch again, including failures a plain claim will not retry.

        This is the admin's decision, so it also re-opens an uncertain render.
        """
        with holding(_secret_of(credentials)):
            return await self._claim(
                world_id, path, credentials, contributor, retry=True, confirm=True
            )

    async def _claim(
        self,
        world_id: str,
        path: str,
        credentials: Credentials | None,
        contributor: str | None,
        *,
        retry: bool,
        confirm: bool,
    ) -> ClaimResult:
        try:
            world = self.world(world_id)
            self._check_path(path)
        except ServiceError as exc:
            return _refused(world_id, path, "invalid", str(exc))
        if self._closing:
            return _refused(
                world_id, path, "shutting_down", "The bot is restarting; try again in a minute."
            )
        key = (world_id, path)
        if key in self._ready_cache:
            return ClaimResult(ClaimOutcome.READY, world_id, path, progress=100)

        async with self.locks.hold(key):
            recent = self._recent.get(key)
            if (
                recent is not None
                and time.monotonic() - recent[0] < RECENT_CLAIM_SECONDS
                and not retry
            ):
                return recent[1]
            result = await self._claim_in_database(
                world, path, credentials, contributor, retry=retry, confirm=confirm
            )
            if result.outcome is ClaimOutcome.QUEUED:
                self._remember_recent(key, result)
            return result

    async def _claim_in_database(
        self,
        world: WorldSettings,
        path: str,
        credentials: Credentials | None,
        contributor: str | None,
        *,
        retry: bool,
        confirm: bool,
    ) -> ClaimResult:
        world_id = world.id
        parent_path = paths.parent(path)
        token = new_claim_token()
        hashed = (
            contributor_id(self.settings.generation.contributor_salt, contributor)
            if contributor
            else None
        )
        async with self.db.transaction() as session:
            wanted = [path] if parent_path is None else [path, parent_path]
            rows = await scenes.load_paths(session, world_id, wanted)
            parent = rows.get(parent_path) if parent_path is not None else None
            if parent_path is not None:
                if parent is None or parent.status != Status.READY.value:
                    return _refused(
                        world_id,
                        path,
                        "parent_not_ready",
                        "The scene before this one does not exist yet.",
                    )
                index = paths.last_index(path)
                if index is None or not parent.choices or index >= len(parent.choices):
                    return _refused(
                        world_id, path, "invalid", "That choice does not exist in this scene."
                    )
            scene = rows.get(path)
            if scene is None and retry:  # refused before anything is written: no row
                return _refused(
                    world_id, path, "not_failed", "Only a failed branch can be retried."
                )
            if scene is not None:
                early = self._existing_outcome(scene, retry=retry, confirm=confirm)
                if early is not None:
                    return early
            if self.providers[world_id].needs_key and credentials is None:
                # Ready and queued branches are free to everyone; only starting one needs a key.
                return _refused(
                    world_id, path, "key_required", "Making this branch needs an API key."
                )
            if scene is None:
                await scenes.insert_placeholder(
                    session, world_id, path, _parent_choice_label(parent, path)
                )
            allowed = [Status.FAILED] if retry else [Status.PENDING, Status.FAILED]
            won = await scenes.try_claim(
                session,
                world_id,
                path,
                token=token,
                contributor=hashed,
                provider=world.provider,
                lease_seconds=self.settings.generation.lease_seconds,
                from_statuses=allowed,
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
        self._start_job(world, path, token, credentials, hashed)
        self._publish(SceneEvent(world_id, path, Status.QUEUED, progress=0, stage="queued"))
        return ClaimResult(ClaimOutcome.QUEUED, world_id, path, progress=0, claimed_by_caller=True)

    def _existing_outcome(
        self, scene: Scene, *, retry: bool, confirm: bool = False
    ) -> ClaimResult | None:
        world_id, path = scene.world_id, scene.path
        if scene.status == Status.READY.value:
            self._remember_ready(world_id, path)
            return ClaimResult(ClaimOutcome.READY, world_id, path, progress=100)
        if scene.status == Status.QUEUED.value:
            return ClaimResult(ClaimOutcome.QUEUED, world_id, path, progress=scene.progress)
        if retry and scene.status != Status.FAILED.value:
            return _refused(world_id, path, "not_failed", "Only a failed branch can be retried.")
        if scene.status == Status.FAILED.value and scene.failure_code == UNCERTAIN and not confirm:
            return _refused(world_id, path, UNCERTAIN, UNCERTAIN_REFUSAL)
        if (
            not retry
            and scene.status == Status.FAILED.value
            and scene.failure_code in FINAL_FAILURES
        ):
            return _refused(
                world_id,
                path,
                "failed_final",
                "This branch was refused by the video provider; an admin can retry it.",
            )
        return None

    def _remember_recent(self, key: tuple[str, str], result: ClaimResult) -> None:
        """Identical claims arriving together get this answer without a database read."""
        now = time.monotonic()
        if len(self._recent) >= RECENT_CLAIMS_MAX:
            for stale in [
                k for k, (at, _) in self._recent.items() if now - at >= RECENT_CLAIM_SECONDS
            ]:
                del self._recent[stale]
        shared = ClaimResult(result.outcome, result.world_id, result.path, progress=result.progress)
        self._recent[key] = (now, shared)

    def _remember_ready(self, world_id: str, path: str) -> None:
        self._ready_cache[(world_id, path)] = None
        self._ready_cache.move_to_end((world_id, path))
        while len(self._ready_cache) > READY_CACHE_SIZE:
            self._ready_cache.popitem(last=False)

    def _start_job(
        self,
        world: WorldSettings,
        path: str,
        token: str,
        credentials: Credentials | None,
        contributor: str | None,
    ) -> None:
        ctx = JobContext(
            db=self.db,
            store=self.store,
            provider=self.providers[world.id],
            world=world,
            generation=self.settings.generation,
            publish=self._publish,
            estimated_cost_usd=self.estimated_cost(world.id),
            inflight=self._inflight,
            create_window_seconds=self.settings.providers.create_timeout_seconds
            + CREATE_WINDOW_MARGIN_SECONDS,
        )
        job = GenerationJob(
            ctx, path=path, token=token, credentials=credentials, contributor=contributor
        )
        self._running_paths[(world.id, path)] = token
        secret = _secret_of(credentials)
        hold_secret(secret)  # redacted from every log line until this job lets the key go
        task = asyncio.create_task(self._run_job(job), name=f"generate {world.id}/{path}")
        task.add_done_callback(lambda _: self._release_after_create(world.id, path, secret))
        # A callback, not a `finally`: a task cancelled before its first step runs no code.
        task.add_done_callback(lambda _: self._job_finished(job))
        self._tasks[token] = task

    def _job_finished(self, job: GenerationJob) -> None:
        self._tasks.pop(job.token, None)
        key = (job.world_id, job.path)
        if self._running_paths.get(key) == job.token:
            del self._running_paths[key]
        self._recent.pop(key, None)

    def _release_after_create(self, world_id: str, path: str, secret: str | None) -> None:
        """The job ended; a paid create it started may still be running with its key."""
        inflight = self._inflight.get((world_id, path))
        if inflight is not None and not inflight[1].done():
            inflight[1].add_done_callback(lambda _: release_secret(secret))
        else:
            release_secret(secret)

    async def _run_job(self, job: GenerationJob) -> None:
        keeper = asyncio.create_task(self._keep_lease(job))

        async def done() -> None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

        async with self._job_slots:
            await run_guarded(job, done)

    async def _keep_lease(self, job: GenerationJob) -> None:
        """Renew the lease while the job runs; stop the job if another claim took over."""
        interval = max(1.0, self.settings.generation.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await job.renew_lease()
            except scenes.ClaimLost:
                self.cancel_local(job.token)
                return
            except Exception:
                log.exception("lease renewal failed world=%s path=%s", job.world_id, job.path)

    def cancel_local(self, token: str) -> bool:
        task = self._tasks.get(token)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    def _publish(self, event: SceneEvent) -> None:
        self._views.pop((event.world_id, event.path), None)
        parent_path = paths.parent(event.path)
        if parent_path is not None:
            self._views.pop((event.world_id, parent_path), None)
        if event.status is Status.READY:
            self._remember_ready(event.world_id, event.path)
        if event.status is not Status.QUEUED:
            self._recent.pop((event.world_id, event.path), None)
        self.events.publish(event)

    async def cancel(self, world_id: str, path: str) -> bool:
        """Stop a queued branch; its provider job id is kept so nothing paid is lost."""
        self.world(world_id)
        self._check_path(path)
        async with self.locks.hold((world_id, path)):
            async with self.db.transaction() as session:
                token = await scenes.cancel_queued(session, world_id, path)
            if token is None:
                return False
            self.cancel_local(token)
            self._recent.pop((world_id, path), None)
        self._publish(SceneEvent(world_id, path, Status.PENDING))
        log.info("cancelled world=%s path=%s", world_id, path)
        return True

    async def recycle_expired_leases(self) -> int:
        """Any process may do this: expired claims go back to pending (job ids kept)."""
        now = utcnow()
        async with self.db.session() as session:
            expired = await scenes.expired_claims(session, now)
        recycled = 0
        for world_id, path, token in expired:
            async with self.db.transaction() as session:
                done = await scenes.release(
                    session, world_id, path, token, lease_expired_before=now
                )
            if done:
                recycled += 1
                self.cancel_local(token)
                self._recent.pop((world_id, path), None)
                self._publish(SceneEvent(world_id, path, Status.PENDING))
                log.warning("lease expired world=%s path=%s; branch is resumable", world_id, path)
        return recycled

    async def sweep_stray_files(self) -> sweep.SweepReport:
        """Delete temp files no live job owns; never a spool clip of an unfinished branch."""
        self._next_sweep = time.monotonic() + sweep.SWEEP_INTERVAL_SECONDS
        report = await sweep.sweep_stray_files(
            db=self.db,
            store=self.store,
            spool_dir=self.settings.generation.spool_dir,
            max_depth=self.settings.generation.max_depth,
            running=set(self._running_paths),
        )
        for provider in {id(p): p for p in self.providers.values()}.values():
            sweep_provider = getattr(provider, "sweep_partial", None)  # local job files
            if sweep_provider is not None:
                report.temp_files += await sweep_provider(sweep.TEMP_GRACE_SECONDS)
        return report

    async def sweep_if_due(self) -> sweep.SweepReport | None:
        """The watchdog's sweep: at most every sweep.SWEEP_INTERVAL_SECONDS."""
        if time.monotonic() < self._next_sweep:
            return None
        return await self.sweep_stray_files()

    # -- progress ------------------------------------------------------------------

    def subscribe(self, world_id: str, path: str) -> Subscription:
        """Async iterator of progress and status events; ends at ready, failed or pending."""
        self.world(world_id)
        self._check_path(path)
        return self.events.subscribe(world_id, path)

    async def _poll_scene(self, world_id: str, path: str) -> SceneEvent:
        """The branch's state as stored: how progress of other processes' jobs arrives."""
        async with self.db.session() as session:
            scene = (await scenes.load_paths(session, world_id, [path])).get(path)
        if scene is None:
            return SceneEvent(world_id, path, Status.PENDING)
        return SceneEvent(
            world_id,
            path,
            Status(scene.status),
            progress=scene.progress,
            failure_code=scene.failure_code,
            failure_detail=scene.failure_detail,
        )

    def running_jobs(self) -> int:
        return len(self._tasks)

    # -- metrics -------------------------------------------------------------------

    async def metrics(self, world_id: str) -> Metrics:
        self.world(world_id)
        async with self.db.session() as session:
            branches = await scenes.count_by_status(session, world_id)
            outcome_rows = await session.execute(
                select(
                    Render.outcome,
                    Render.failure_code,
                    func.count(),
                    func.coalesce(func.sum(Render.bytes), 0),
                    func.coalesce(func.sum(Render.estimated_cost_usd), 0.0),
                    func.coalesce(func.sum(Render.actual_cost_usd), 0.0),
                )
                .where(Render.world_id == world_id)
                .group_by(Render.outcome, Render.failure_code)
            )
            durations = list(
                await session.scalars(
                    select(Render.total_ms)
                    .where(Render.world_id == world_id, Render.outcome == "ready")
                    .order_by(Render.id.desc())
                    .limit(1000)
                )
            )
            contributors = await session.scalar(
                select(func.count(func.distinct(Render.contributor))).where(
                    Render.world_id == world_id, Render.outcome == "ready"
                )
            )
        ready_renders = failed_renders = storage_bytes = 0
        spend = actual = 0.0
        failures: dict[str, int] = {}
        for outcome, code, count, stored, cost, reported in outcome_rows:
            spend += float(cost)
            actual += float(reported)
            if outcome == "ready":
                ready_renders += count
                storage_bytes += int(stored)
            else:
                failed_renders += count
                failures[code or "unknown"] = failures.get(code or "unknown", 0) + count
        finished = ready_renders + failed_renders
        durations.sort()
        return Metrics(
            world_id=world_id,
            branches={s.value: branches.get(s.value, 0) for s in Status},
            queued_backlog=branches.get(Status.QUEUED.value, 0),
            failures_by_code=failures,
            storage_bytes=storage_bytes,
            success_rate=ready_renders / finished if finished else 1.0,
            render_ms_p50=_percentile(durations, 50),
            render_ms_p95=_percentile(durations, 95),
            render_ms_p99=_percentile(durations, 99),
            estimated_spend_usd=round(spend, 4),
            distinct_contributors=int(contributors or 0),
            actual_spend_usd=round(actual, 4),
            renders=ready_renders,
        )


def _percentile(ordered: list[int], pct: float) -> float | None:
    if not ordered:
        return None
    rank = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return float(ordered[rank])


def _child_state(child: Any) -> ChildState:
    if child is None:
        return ChildState.UNEXPLORED
    return {
        Status.READY.value: ChildState.READY,
        Status.QUEUED.value: ChildState.MINTING,
        Status.FAILED.value: ChildState.FAILED,
    }.get(child.status, ChildState.UNEXPLORED)


def _parent_choice_label(parent: Any, path: str) -> str | None:
    index = paths.last_index(path)
    if parent is None or index is None or not parent.choices or index >= len(parent.choices):
        return None
    return parent.choices[index].get("label")


def _secret_of(credentials: Credentials | None) -> str | None:
    return credentials.api_key if credentials is not None else None


def _refused(world_id: str, path: str, reason: str, message: str) -> ClaimResult:
    return ClaimResult(ClaimOutcome.REFUSED, world_id, path, reason=reason, message=message)
