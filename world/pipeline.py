"""One generation job: plan -> render -> store -> summarise -> publish.

Each step leaves the branch resumable: the plan is saved before anything is rendered, the
provider job id is saved the moment it exists, the clip is spooled to disk before upload and
the spool file stays until the upload succeeded. A new claim of the same branch picks up
where the last one stopped and never pays twice for a job that was already started.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from storage.base import AssetStore, StorageError
from world import paths, scenes
from world.db import Database
from world.logsafe import describe_exception
from world.media import extract_last_frame_png
from world.models import Render, Scene, utcnow
from world.prompts import validate_plan
from world.providers.base import (
    Plan,
    PlanChoice,
    PlanRequest,
    Provider,
    ProviderError,
    RenderRequest,
    StepContext,
    SummaryRequest,
)
from world.settings import GenerationSettings, WorldSettings
from world.types import UNCERTAIN, Credentials, SceneEvent, Status

log = logging.getLogger(__name__)

# Decoding a clip's last frame is CPU-bound: one at a time, whatever the number of jobs, so
# fifty renders finishing together do not starve the event loop or the downloads' file writes.
FRAME_DECODER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="frames")

INTERNAL_FAILURE = "Something went wrong while making this scene; it can be retried."
UNCERTAIN_RENDER = (
    "A render of this branch may already have been started and paid for, but it never "
    "reported back; minting it again may pay a second time, so it waits for someone to confirm."
)
# Failures after which the provider's job cannot be resumed (a retry must start a new one),
# and those caused by the plan itself (a retry must plan again, or it fails the same way).
DEAD_JOB_FAILURES = frozenset({"blocked", "bad_output", "not_found", "render_failed", "expired"})
BAD_PLAN_FAILURES = frozenset({"blocked", "bad_output"})


@dataclass(frozen=True)
class JobContext:
    """What one job needs from the service, and nothing else."""

    db: Database
    store: AssetStore
    provider: Provider
    world: WorldSettings
    generation: GenerationSettings
    publish: Callable[[SceneEvent], None]
    estimated_cost_usd: float = 0.0  # what the contributor was shown before paying
    # Paid creates in flight in this process, by (world, path): (attempt id, its future).
    inflight: dict[tuple[str, str], tuple[str, asyncio.Future[str]]] = field(default_factory=dict)
    # How long a create may take to answer (the provider's create timeout, plus a margin).
    create_window_seconds: float = 65.0


@dataclass
class Timings:
    planner_ms: int = 0
    video_ms: int = 0
    upload_ms: int = 0
    summary_ms: int = 0
    record_ms: int = 0  # create answered -> job id committed: the window a kill can hit


def asset_keys(world_id: str, path: str, job_id: str) -> tuple[str, str]:
    generation = hashlib.sha256(job_id.encode()).hexdigest()[:20]
    base = f"worlds/{world_id}/scenes/{paths.storage_slug(path)}/{generation}"
    return f"{base}.mp4", f"{base}.last.png"


def spool_file(spool_dir: str | Path, world_id: str, path: str, job_id: str) -> Path:
    """Where a provider job's clip is spooled (its poster beside it, as `.last.png`).

    world/sweep.py finds a branch's spool files by this name; keep them in step.
    """
    safe_job = hashlib.sha256(job_id.encode()).hexdigest()[:24]
    return Path(spool_dir) / world_id / paths.storage_slug(path) / f"{safe_job}.mp4"


class GenerationJob:
    def __init__(
        self,
        ctx: JobContext,
        *,
        path: str,
        token: str,
        credentials: Credentials | None,
        contributor: str | None,
        guild: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.world_id = ctx.world.id
        self.path = path
        self.token = token
        self._credentials = credentials
        self.contributor = contributor
        self.guild = guild  # the claim's server (HMAC), recorded on its render
        self.timings = Timings()
        self._last_progress_write = 0.0
        self._progress = 0
        self.render_started_here = False
        self.actual_cost_usd: float | None = None

    # -- small helpers -------------------------------------------------------------

    def _event(self, status: Status, stage: str | None = None, **kw: Any) -> None:
        self.ctx.publish(
            SceneEvent(self.world_id, self.path, status, progress=self._progress, stage=stage, **kw)
        )

    async def _write(self, **values: Any) -> None:
        async with self.ctx.db.transaction() as session:
            await scenes.job_update(session, self.world_id, self.path, self.token, **values)

    async def renew_lease(self) -> None:
        lease = self.ctx.generation.lease_seconds
        await self._write(lease_until=utcnow() + timedelta(seconds=lease))

    async def _progress_to(self, progress: int, stage: str, *, force: bool = False) -> None:
        progress = max(self._progress, min(100, progress))
        changed = progress != self._progress
        self._progress = progress
        if changed or force:
            self._event(Status.QUEUED, stage)
        now = time.monotonic()
        interval = self.ctx.generation.progress_write_interval_seconds
        if force or (changed and now - self._last_progress_write >= interval):
            self._last_progress_write = now
            await self._write(
                progress=progress,
                lease_until=utcnow() + timedelta(seconds=self.ctx.generation.lease_seconds),
            )

    def _rendering_for(self, state: str | None, elapsed: float) -> None:
        """Progress of a provider without percentages: its status and the time taken so far."""
        self.ctx.publish(
            SceneEvent(
                self.world_id,
                self.path,
                Status.QUEUED,
                progress=self._progress,
                stage="rendering",
                provider_status=state,
                elapsed_seconds=round(elapsed, 1),
                typical_seconds=float(self.ctx.world.typical_render_seconds),
            )
        )

    def _spool_path(self, job_id: str) -> Path:
        return spool_file(self.ctx.generation.spool_dir, self.world_id, self.path, job_id)

    # -- the job -------------------------------------------------------------------

    async def run(self) -> None:
        started = time.monotonic()
        async with self.ctx.db.session() as session:
            family = await scenes.load_paths(
                session, self.world_id, [self.path, *paths.ancestors(self.path)]
            )
        scene = family[self.path]
        self._progress = scene.progress or 0
        self._event(Status.QUEUED, "planning")

        plan = _plan_from_row(scene)
        if plan is None:
            t0 = time.monotonic()
            plan = validate_plan(
                await self.ctx.provider.plan(self._plan_request(family), self._credentials)
            )
            self.timings.planner_ms = _ms_since(t0)
            await self._write(
                title=plan.title,
                narration=plan.narration,
                video_prompt=plan.video_prompt,
                choices=[{"label": c.label, "short_label": c.short_label} for c in plan.choices],
            )
            log.info("planned world=%s path=%s title=%r", self.world_id, self.path, plan.title)
        await self._progress_to(max(self._progress, 5), "rendering", force=True)

        t0 = time.monotonic()
        job_id = scene.provider_job_id
        if job_id is None:
            job_id = await self._start_render(plan, family)
        else:
            log.info("resuming world=%s path=%s provider_job=%s", self.world_id, self.path, job_id)
        spool = self._spool_path(job_id)
        if not spool.exists():
            async for status in self.ctx.provider.watch_render(job_id, self._credentials):
                if status.progress is not None:
                    await self._progress_to(5 + status.progress * 85 // 100, "rendering")
                else:
                    self._rendering_for(status.state, time.monotonic() - t0)
                if status.done:
                    self.actual_cost_usd = status.cost_usd
                    break
            spool.parent.mkdir(parents=True, exist_ok=True)
            partial = spool.with_suffix(".part")
            await self.ctx.provider.download(job_id, self._credentials, partial)
            partial.replace(spool)  # only a complete download is ever resumed from
        self.timings.video_ms = _ms_since(t0)
        await self._progress_to(90, "storing", force=True)

        poster = await asyncio.get_running_loop().run_in_executor(
            FRAME_DECODER, extract_last_frame_png, spool
        )
        poster_file = spool.with_suffix(".last.png")
        await asyncio.to_thread(poster_file.write_bytes, poster)
        t0 = time.monotonic()
        video_key, poster_key = asset_keys(self.world_id, self.path, job_id)
        video_bytes = await self.ctx.store.put_file(video_key, spool, "video/mp4")
        poster_bytes = await self.ctx.store.put_file(poster_key, poster_file, "image/png")
        self.timings.upload_ms = _ms_since(t0)
        await self._write(asset_key=video_key, poster_key=poster_key, asset_bytes=video_bytes)
        await self._progress_to(95, "summarising", force=True)

        summary = await self._summarise(plan, family)
        await self._publish(scene, plan, summary, video_bytes + poster_bytes, started)
        for leftover in (spool, poster_file):
            with contextlib.suppress(OSError):
                await asyncio.to_thread(leftover.unlink)

    async def _start_render(self, plan: Plan, family: dict[str, Scene]) -> str:
        scene = family[self.path]
        if scene.render_attempt is not None:
            found = await self._resolve_intent(scene)
            if found is not None:
                return found
        reference = None
        parent_path = paths.parent(self.path)
        parent = family.get(parent_path) if parent_path is not None else None
        if parent is not None and parent.poster_key:
            try:
                reference = await self.ctx.store.open_bytes(parent.poster_key)
            except StorageError:
                log.warning(
                    "continuity frame unavailable world=%s path=%s", self.world_id, self.path
                )
        width, height = self.ctx.world.video_size.split("x")
        request = RenderRequest(
            world_id=self.world_id,
            path=self.path,
            prompt=plan.video_prompt,
            title=plan.title,
            model=self.ctx.world.video_model,
            size=f"{width}x{height}",
            seconds=self.ctx.world.video_seconds,
            reference_image=reference,
            attempt_id=uuid.uuid4().hex,
        )
        # The intent is committed before anything is paid: whatever happens next (a kill, a
        # cancel, a timeout), the next attempt knows a create may have started.
        async with self.ctx.db.transaction() as session:
            await scenes.write_intent(
                session, self.world_id, self.path, self.token, request.attempt_id, _intent(request)
            )
        # Paid work: the create call and the write of its job id run to the end even if this
        # job is cancelled meanwhile (shutdown, watchdog, an admin), so the paid job is never
        # lost; a new job of the same branch in this process waits for it instead of paying.
        key = (self.world_id, self.path)
        recorded = asyncio.ensure_future(self._create_and_record(request))
        self.ctx.inflight[key] = (request.attempt_id, recorded)
        recorded.add_done_callback(lambda _: _forget_inflight(self.ctx.inflight, key, recorded))
        try:
            return await asyncio.shield(recorded)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await recorded
            raise

    async def _create_and_record(self, request: RenderRequest) -> str:
        try:
            job_id = await self.ctx.provider.start_render(request, self._credentials)
        except ProviderError as exc:
            if not exc.outcome_unknown:  # refused: nothing was created, nothing was paid
                async with self.ctx.db.transaction() as session:
                    await scenes.clear_intent(session, self.world_id, self.path, request.attempt_id)
            raise
        created = time.monotonic()
        self.render_started_here = True
        async with self.ctx.db.transaction() as session:
            stored = await scenes.record_job_id(
                session, self.world_id, self.path, request.attempt_id, job_id
            )
        self.timings.record_ms = _ms_since(created)
        log.log(
            logging.INFO if stored else logging.WARNING,
            "render started world=%s path=%s provider_job=%s recorded=%s record_ms=%d",
            self.world_id,
            self.path,
            job_id,
            stored,
            self.timings.record_ms,
        )
        return job_id

    async def _resolve_intent(self, scene: Scene) -> str | None:
        """An earlier create of this branch has no job id: find its job, or prove there is none.

        Raises ProviderError("uncertain") when neither is possible: the branch then waits for
        someone to confirm paying again (or an admin to decide), instead of paying silently.
        """
        attempt = scene.render_attempt
        assert attempt is not None
        where = f"world={self.world_id} path={self.path} attempt={attempt}"
        running = self.ctx.inflight.get((self.world_id, self.path))
        if running is not None and running[0] == attempt:
            log.info("waiting for a create in flight in this process %s", where)
            with contextlib.suppress(Exception):
                await asyncio.shield(running[1])
        elif self.ctx.provider.can_find_renders and await self._look_up(scene, attempt):
            pass  # found at once: a killed process's create needs no waiting out
        else:
            # A create in another process may still answer: give it its whole time limit.
            requested = scene.render_requested_at or utcnow()
            deadline = requested + timedelta(seconds=self.ctx.create_window_seconds)
            while utcnow() < deadline:
                current = await self._reread()
                if current.provider_job_id or current.render_attempt != attempt:
                    break
                await asyncio.sleep(min(0.5, (deadline - utcnow()).total_seconds() + 0.01))
        current = await self._reread()
        if current.provider_job_id:
            log.info("the earlier create answered %s job=%s", where, current.provider_job_id)
            return current.provider_job_id
        if current.render_attempt != attempt:
            return None  # that create was refused: nothing to reconcile
        if self.ctx.provider.can_find_renders:
            found = await self._look_up(current, attempt)
            if found is None:  # the create's whole time limit is over: it made nothing
                async with self.ctx.db.transaction() as session:
                    await scenes.clear_intent(session, self.world_id, self.path, attempt)
            log.warning("reconciled an unrecorded create %s found=%s", where, found)
            return found
        log.warning("an earlier create may have started a paid render %s", where)
        raise ProviderError(UNCERTAIN, UNCERTAIN_RENDER, retryable=False)

    async def _look_up(self, scene: Scene, attempt: str) -> str | None:
        """Ask the provider for the job the intent's create started; record it if found."""
        found = await self.ctx.provider.find_render(
            _request_from_intent(self.world_id, self.path, attempt, scene.render_request),
            scene.render_requested_at or utcnow(),
            self._credentials,
        )
        if found is not None:
            async with self.ctx.db.transaction() as session:
                await scenes.record_job_id(session, self.world_id, self.path, attempt, found)
        return found

    async def _reread(self) -> Scene:
        async with self.ctx.db.session() as session:
            return (await scenes.load_paths(session, self.world_id, [self.path]))[self.path]

    async def _summarise(self, plan: Plan, family: dict[str, Scene]) -> str | None:
        model = self.ctx.world.summary_model
        if not model:
            return None
        parent_path = paths.parent(self.path)
        parent = family.get(parent_path) if parent_path is not None else None
        t0 = time.monotonic()
        try:
            summary = await self.ctx.provider.summarise(
                SummaryRequest(
                    world_id=self.world_id,
                    base_prompt=self.ctx.world.base_prompt[:800],
                    model=model,
                    previous_summary=parent.state_summary if parent else None,
                    narration=plan.narration,
                    choices=tuple(c.label for c in plan.choices),
                ),
                self._credentials,
            )
        except ProviderError as exc:
            log.warning(
                "summary skipped world=%s path=%s code=%s", self.world_id, self.path, exc.code
            )
            return None
        finally:
            self.timings.summary_ms = _ms_since(t0)
        return summary

    async def _publish(
        self, scene: Scene, plan: Plan, summary: str | None, stored_bytes: int, started: float
    ) -> None:
        total_ms = _ms_since(started)
        async with self.ctx.db.transaction() as session:
            await scenes.job_update(
                session,
                self.world_id,
                self.path,
                self.token,
                status=Status.READY.value,
                state_summary=summary,
                progress=100,
                claim_token=None,
                lease_until=None,
                failure_code=None,
                failure_detail=None,
            )
            session.add(
                Render(
                    world_id=self.world_id,
                    scene_id=scene.id,
                    path=self.path,
                    provider=self.ctx.provider.name,
                    planner_model=self.ctx.world.planner_model,
                    video_model=self.ctx.world.video_model,
                    summary_model=self.ctx.world.summary_model,
                    contributor=self.contributor,
                    guild=self.guild,
                    outcome="ready",
                    planner_ms=self.timings.planner_ms,
                    video_ms=self.timings.video_ms,
                    upload_ms=self.timings.upload_ms,
                    summary_ms=self.timings.summary_ms,
                    total_ms=total_ms,
                    bytes=stored_bytes,
                    estimated_cost_usd=self.ctx.estimated_cost_usd
                    if self.render_started_here
                    else 0.0,
                    actual_cost_usd=self.actual_cost_usd,
                )
            )
        self._progress = 100
        self._event(Status.READY, "done")
        log.info(
            "ready world=%s path=%s total_ms=%d bytes=%d cost_usd=%s",
            self.world_id,
            self.path,
            total_ms,
            stored_bytes,
            self.actual_cost_usd,
        )

    def _plan_request(self, family: dict[str, Scene]) -> PlanRequest:
        history: list[StepContext] = []
        chain = paths.ancestors(self.path)
        for i, ancestor_path in enumerate(chain):
            ancestor = family[ancestor_path]
            next_path = chain[i + 1] if i + 1 < len(chain) else self.path
            taken = _choice_label(ancestor, paths.last_index(next_path))
            history.append(StepContext(ancestor_path, ancestor.title or "", taken))
        parent_path = paths.parent(self.path)
        parent = family.get(parent_path) if parent_path is not None else None
        return PlanRequest(
            world_id=self.world_id,
            base_prompt=self.ctx.world.base_prompt,
            guidance=self.ctx.world.guidance,
            path=self.path,
            depth=paths.depth(self.path),
            video_seconds=self.ctx.world.video_seconds,
            model=self.ctx.world.planner_model,
            history=tuple(history),
            parent_summary=parent.state_summary if parent else None,
            parent_video_prompt=parent.video_prompt if parent else None,
            chosen_choice=_choice_label(parent, paths.last_index(self.path)) if parent else None,
        )


def _choice_label(scene: Scene, index: int | None) -> str | None:
    if index is None or not scene.choices or index >= len(scene.choices):
        return None
    return scene.choices[index].get("label")


def _plan_from_row(scene: Scene) -> Plan | None:
    if not (scene.title and scene.narration and scene.video_prompt and scene.choices):
        return None
    return Plan(
        title=scene.title,
        narration=scene.narration,
        video_prompt=scene.video_prompt,
        choices=tuple(PlanChoice(c["label"], c["short_label"]) for c in scene.choices),
    )


def _intent(request: RenderRequest) -> dict[str, Any]:
    """The exact create request as stored beside its intent (the frame as a digest)."""
    frame = request.reference_image
    return {
        "model": request.model,
        "prompt": request.prompt,
        "title": request.title,
        "size": request.size,
        "seconds": request.seconds,
        "reference_sha256": hashlib.sha256(frame).hexdigest() if frame else None,
    }


def _request_from_intent(
    world_id: str, path: str, attempt: str, stored: dict[str, Any] | None
) -> RenderRequest:
    stored = stored or {}
    return RenderRequest(
        world_id=world_id,
        path=path,
        prompt=str(stored.get("prompt", "")),
        title=str(stored.get("title", "")),
        model=str(stored.get("model", "")),
        size=str(stored.get("size", "")),
        seconds=int(stored.get("seconds", 0)),
        attempt_id=attempt,
    )


def _forget_inflight(
    inflight: dict[tuple[str, str], tuple[str, asyncio.Future[str]]],
    key: tuple[str, str],
    future: asyncio.Future[str],
) -> None:
    if key in inflight and inflight[key][1] is future:
        del inflight[key]


def _ms_since(t0: float) -> int:
    return int((time.monotonic() - t0) * 1000)


async def run_guarded(job: GenerationJob, on_done: Callable[[], Awaitable[None]]) -> None:
    """Run a job; map every outcome onto the branch's status. Never raises except cancel."""
    ctx = job.ctx
    where = f"world={job.world_id} path={job.path}"
    try:
        async with asyncio.timeout(ctx.generation.scene_timeout_seconds):
            await job.run()
    except scenes.ClaimLost:
        log.warning("claim lost %s; this job stops without writing", where)
    except TimeoutError:
        log.warning("timed out %s; the branch stays resumable", where)
        await _end(job, Status.PENDING, "timeout", "Making this scene took too long; try again.")
    except asyncio.CancelledError:
        log.info("stopped %s; the branch stays resumable", where)
        with contextlib.suppress(Exception):
            await asyncio.shield(_end(job, Status.PENDING, None, None))
        raise
    except ProviderError as exc:
        log.warning("provider refused %s code=%s", where, exc.code)
        status = Status.PENDING if exc.releases_claim else Status.FAILED
        await _end(job, status, exc.code, exc.public_message)
    except StorageError:
        log.exception("storage failed %s; the clip stays spooled for a retry", where)
        await _end(job, Status.FAILED, "storage", "The clip could not be stored yet; retry soon.")
    except Exception as exc:
        # Not mapped by the provider: its text may carry the caller's key, so no raw traceback;
        # the type, a redacted message and where it was raised are enough to debug it.
        key = job._credentials.api_key if job._credentials is not None else None
        log.error("job crashed %s: %s", where, describe_exception(exc, key))
        await _end(job, Status.FAILED, "internal", INTERNAL_FAILURE)
    finally:
        await on_done()


async def _end(
    job: GenerationJob,
    status: Status,
    code: str | None,
    detail: str | None,
) -> None:
    ctx = job.ctx
    async with ctx.db.transaction() as session:
        released = await scenes.release(
            session,
            job.world_id,
            job.path,
            job.token,
            status=status,
            failure_code=code if status is Status.FAILED else None,
            failure_detail=detail if status is Status.FAILED else None,
            forget_job=code in DEAD_JOB_FAILURES,
            forget_plan=code in BAD_PLAN_FAILURES,
        )
        if released and status is Status.FAILED:
            scene = (await scenes.load_paths(session, job.world_id, [job.path]))[job.path]
            session.add(
                Render(
                    world_id=job.world_id,
                    scene_id=scene.id,
                    path=job.path,
                    provider=ctx.provider.name,
                    planner_model=ctx.world.planner_model,
                    video_model=ctx.world.video_model,
                    summary_model=ctx.world.summary_model,
                    contributor=job.contributor,
                    guild=job.guild,
                    outcome="failed",
                    failure_code=code,
                    planner_ms=job.timings.planner_ms,
                    video_ms=job.timings.video_ms,
                )
            )
    if released:
        ctx.publish(
            SceneEvent(
                job.world_id,
                job.path,
                status,
                progress=0,
                failure_code=code,
                failure_detail=detail,
            )
        )
