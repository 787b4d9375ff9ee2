"""Job runner: the generation jobs running in this process.

It owns the jobs' tasks (by claim token), which (world, path) each one runs, the paid
creates in flight (one registry shared by every job of the process, see world/pipeline.py),
the job slots that bound how many jobs work at once, the lease each job renews while it
runs, and draining the jobs when the service closes.

A job holds its contributor's key for log redaction while it runs and lets it go only
after any paid create it started has ended, which may be after the job itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from storage.base import AssetStore
from world import scenes
from world.db import Database
from world.events import Spawn, default_spawn
from world.logsafe import hold_secret, release_secret
from world.pipeline import GenerationJob, JobContext, run_guarded
from world.providers.base import Provider
from world.queue import JobSlots
from world.settings import Settings, WorldSettings
from world.types import Credentials, SceneEvent, Status

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (world id, path)
# Paid creates in flight, by (world, path): (attempt id, the future of its provider job id).
Inflight = dict[Key, tuple[str, asyncio.Future[str]]]
# A create unanswered this long past its own time limit is not coming back.
CREATE_WINDOW_MARGIN_SECONDS = 5.0


class JobRunner:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: AssetStore,
        providers: Mapping[str, Provider],
        *,
        publish: Callable[[SceneEvent], None],
        spawn: Spawn | None = None,
        on_finished: Callable[[Key], None] | None = None,
    ) -> None:
        self.inflight: Inflight = {}
        self._store = store
        self._settings = settings
        self._db = db
        self._providers = providers
        self._publish = publish
        self._spawn = spawn or default_spawn
        self._on_finished = on_finished
        self._lease_interval = max(1.0, settings.generation.lease_seconds / 3)
        # First come, first served; a job waiting for a slot shows its place (world/queue.py).
        self._slots = JobSlots(settings.generation.max_concurrent_jobs, self._queue_moved)
        self._tasks: dict[str, asyncio.Task[None]] = {}  # claim token -> job task
        self._running: dict[Key, str] = {}  # (world, path) -> claim token

    def __len__(self) -> int:
        return len(self._tasks)

    def running(self, world_id: str, path: str) -> bool:
        """Whether a job of this process is working on the branch."""
        return (world_id, path) in self._running

    def running_paths(self) -> set[Key]:
        return set(self._running)

    def queue_position(self, world_id: str, path: str) -> int | None:
        """The branch's place in line for a job slot here (1 = next), None if not waiting."""
        return self._slots.position((world_id, path))

    def _queue_moved(self, key: Key, place: int | None) -> None:
        self._publish(
            SceneEvent(key[0], key[1], Status.QUEUED, stage="queued", queue_position=place)
        )

    def start(
        self,
        world: WorldSettings,
        path: str,
        token: str,
        credentials: Credentials | None,
        contributor: str | None,
        guild: str | None = None,
        *,
        estimate: float,
    ) -> None:
        """Run the job of a claim just won (`token`) as a background task; `estimate` is
        what the claim reserved, recorded on its render."""
        ctx = JobContext(
            db=self._db,
            store=self._store,
            provider=self._providers[world.id],
            world=world,
            generation=self._settings.generation,
            publish=self._publish,
            estimated_cost_usd=estimate,
            inflight=self.inflight,
            create_window_seconds=self._settings.providers.create_timeout_seconds
            + CREATE_WINDOW_MARGIN_SECONDS,
        )
        job = GenerationJob(
            ctx,
            path=path,
            token=token,
            credentials=credentials,
            contributor=contributor,
            guild=guild,
        )
        key = (world.id, path)
        self._running[key] = token
        granted = self._slots.enter(token, key)  # its place in line is known from now
        secret = credentials.api_key if credentials is not None else None
        hold_secret(secret)  # redacted from every log line until this job lets the key go
        task = self._spawn(self._run(job, granted), f"generate {world.id}/{path}")
        task.add_done_callback(lambda _: self._release_after_create(key, secret))
        # A callback, not a `finally`: a task cancelled before its first step runs no code.
        task.add_done_callback(lambda _: self._finished(job))
        self._tasks[token] = task

    def use_store(self, store: AssetStore) -> None:
        """Jobs started from now on store their assets there (running ones keep theirs)."""
        self._store = store

    def cancel_local(self, token: str) -> bool:
        """Stop this process's job of a claim token, if it runs here."""
        task = self._tasks.get(token)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    async def drain(self, grace: float) -> None:
        """Let running jobs reach a safe point for up to `grace` seconds, then stop them."""
        tasks = list(self._tasks.values())
        if not tasks:
            return
        log.info("draining %d running jobs for up to %.0fs", len(tasks), grace)
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def _finished(self, job: GenerationJob) -> None:
        self._tasks.pop(job.token, None)
        self._slots.leave(job.token)
        key = (job.world_id, job.path)
        if self._running.get(key) == job.token:
            del self._running[key]
        if self._on_finished is not None:
            self._on_finished(key)

    def _release_after_create(self, key: Key, secret: str | None) -> None:
        """The job ended; a paid create it started may still be running with its key."""
        inflight = self.inflight.get(key)
        if inflight is not None and not inflight[1].done():
            inflight[1].add_done_callback(lambda _: release_secret(secret))
        else:
            release_secret(secret)

    async def _run(self, job: GenerationJob, granted: asyncio.Future[None]) -> None:
        # The job's own helper, in the job's task context: cancelled and awaited by the job.
        keeper = asyncio.create_task(self._keep_lease(job))

        async def done() -> None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

        try:
            await granted  # a free slot, or the head of the line
        except asyncio.CancelledError:
            await done()
            raise
        await run_guarded(job, done)

    async def _keep_lease(self, job: GenerationJob) -> None:
        """Renew the lease while the job runs; stop the job if another claim took over."""
        while True:
            await asyncio.sleep(self._lease_interval)
            try:
                await job.renew_lease()
            except scenes.ClaimLost:
                self.cancel_local(job.token)
                return
            except Exception:
                log.exception("lease renewal failed world=%s path=%s", job.world_id, job.path)
