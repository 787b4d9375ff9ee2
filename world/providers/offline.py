"""The offline provider: a local planner and animated clips made with PyAV. Costs nothing.

It stands in for a paid provider when trying the bot and in tests, with the same shapes:
plans obey the planner contract (narration <= 120 words, exactly three clearly different
choices; written by offline_story.py from the words in offline_story.toml), renders are
jobs with ids that survive a restart (one JSON spec per job in `jobs_dir`), progress is
simulated over `offline_render_seconds` measured from the job's creation, and the download
is a real H.264 mp4: a procedurally drawn scene keyed by the world and the branch path
(world.media.render_scene_clip), with the scene's title and its three choices.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from world.media import render_scene_clip
from world.providers.base import (
    KeyCheck,
    Plan,
    PlanRequest,
    ProviderError,
    RenderRequest,
    RenderStatus,
    SummaryRequest,
)
from world.providers.offline_story import clip_look, clip_words, plan_scene, summarise
from world.settings import ProviderSettings
from world.types import Credentials

log = logging.getLogger(__name__)

JOB_PREFIX = "offline-"
_JOB_ID = re.compile(r"^offline-[0-9a-f]{32}$")
_SPEC_TEMP = re.compile(r"^\.offline-[0-9a-f]{32}\.json\.[0-9a-f]{32}\.tmp$")
_WATCH_STEPS = 10
_NOT_FOUND_MESSAGE = "That render job does not exist or has expired."
CLIP_FPS = 24


def _not_found() -> ProviderError:
    return ProviderError("not_found", _NOT_FOUND_MESSAGE, retryable=False)


# --------------------------------------------------------------------------- the provider


class OfflineProvider:
    """Local planner, simulated renders and drawn clips; needs no key, costs nothing."""

    name = "offline"
    display_name = "offline"
    needs_key = False
    reports_progress = True
    can_find_renders = True  # its job specs name the attempt that created them

    def __init__(self, settings: ProviderSettings, jobs_dir: Path) -> None:
        self.settings = settings
        self.jobs_dir = Path(jobs_dir)
        self.render_starts = 0  # renders started by this instance (what a paid provider bills)

    async def validate_key(self, credentials: Credentials | None) -> KeyCheck:
        """Any key, or none, is fine offline."""
        return KeyCheck()

    async def estimate_cost_usd(self) -> float:
        return 0.0

    def cached_estimate_usd(self) -> float | None:
        return 0.0

    async def plan(self, request: PlanRequest, credentials: Credentials | None) -> Plan:
        plan = plan_scene(request)
        log.info(
            "offline plan world=%s path=%r depth=%d title=%r",
            request.world_id,
            request.path,
            request.depth,
            plan.title,
        )
        return plan

    async def start_render(self, request: RenderRequest, credentials: Credentials | None) -> str:
        job_id = JOB_PREFIX + uuid.uuid4().hex
        spec = {
            "job_id": job_id,
            "world_id": request.world_id,
            "path": request.path,
            "prompt": request.prompt,
            "title": request.title,
            "model": request.model,
            "size": request.size,
            "seconds": request.seconds,
            "has_reference_image": request.reference_image is not None,
            "attempt_id": request.attempt_id,
            "created": time.time(),
        }
        await asyncio.to_thread(self._write_spec, job_id, spec)
        self.render_starts += 1
        log.info(
            "offline render started world=%s path=%r job=%s", request.world_id, request.path, job_id
        )
        return job_id

    async def watch_render(
        self, job_id: str, credentials: Credentials | None
    ) -> AsyncIterator[RenderStatus]:
        spec = await self._load(job_id)
        total = max(0.0, float(self.settings.offline_render_seconds))
        step = total / _WATCH_STEPS
        where = f"world={spec.get('world_id')} path={spec.get('path')!r} job={job_id}"
        last = 0
        while True:
            elapsed = max(0.0, time.time() - float(spec["created"]))
            progress = 100 if total <= 0 else min(100, int(elapsed * 100 / total))
            last = max(last, progress)
            if elapsed >= total:
                log.info("offline render done %s", where)
                yield RenderStatus(100, done=True)
                return
            yield RenderStatus(min(last, 99))
            await asyncio.sleep(max(0.001, min(step, total - elapsed)))

    async def download(
        self, job_id: str, credentials: Credentials | None, destination: Path
    ) -> int:
        spec = await self._load(job_id)
        where = f"world={spec.get('world_id')} path={spec.get('path')!r} job={job_id}"
        prompt = str(spec.get("prompt", ""))
        remaining = float(spec["created"]) + self.settings.offline_render_seconds - time.time()
        if remaining > 0:
            log.warning("offline download before render finished %s", where)
            raise ProviderError("provider_error", "The clip has not finished rendering yet.")
        width = self.settings.offline_width - self.settings.offline_width % 2
        height = self.settings.offline_height - self.settings.offline_height % 2
        world_id, path = str(spec.get("world_id", "")), str(spec.get("path", ""))
        look = clip_look(world_id, path)  # the scene the offline planner planned here
        size = await asyncio.to_thread(
            render_scene_clip,
            Path(destination),
            title=str(spec.get("title") or "Untitled scene"),
            subtitle=clip_words(prompt.splitlines()[0] if prompt else "", 14),
            choices=look.choices,
            seed=path,
            palette_seed=world_id,
            portals=look.portals,
            seconds=max(1, self.settings.offline_clip_seconds),
            width=max(16, width),
            height=max(16, height),
            fps=CLIP_FPS,
        )
        log.info("offline download %s bytes=%d", where, size)
        return size

    async def job_spec(self, job_id: str) -> dict[str, Any]:
        """What `start_render` stored for the job (world_id, path, prompt, title, model, size,
        seconds, attempt_id, created...), from any instance on this `jobs_dir`; `not_found`
        when there is no such job."""
        return await self._load(job_id)

    async def find_render(
        self, request: RenderRequest, since: datetime, credentials: Credentials | None
    ) -> str | None:
        if not request.attempt_id:
            return None
        return await asyncio.to_thread(self._job_of_attempt, request.attempt_id)

    def _job_of_attempt(self, attempt_id: str) -> str | None:
        if not self.jobs_dir.exists():
            return None
        for spec_file in self.jobs_dir.glob(f"{JOB_PREFIX}*.json"):
            spec = self._read_spec(spec_file.stem)
            if spec is not None and spec.get("attempt_id") == attempt_id:
                return str(spec["job_id"])
        return None

    async def summarise(self, request: SummaryRequest, credentials: Credentials | None) -> str:
        summary = summarise(request)
        log.info("offline summary world=%s bullets=%d", request.world_id, summary.count("\n") + 1)
        return summary

    async def check(self) -> list[tuple[str, str]]:
        return []

    async def close(self) -> None:
        """Nothing to release."""
        return None

    async def sweep_partial(self, older_than_seconds: float) -> int:
        """Remove job-spec temp files a killed process left (a create that never finished)."""
        return await asyncio.to_thread(self._sweep_partial, older_than_seconds)

    def _sweep_partial(self, older_than_seconds: float) -> int:
        if not self.jobs_dir.exists():
            return 0
        cutoff = time.time() - older_than_seconds
        removed = 0
        for leftover in self.jobs_dir.glob(".offline-*.json.*.tmp"):
            if not _SPEC_TEMP.match(leftover.name):
                continue
            try:
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    # -- job specs -------------------------------------------------------------------------

    def _spec_path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.json"

    def _write_spec(self, job_id: str, spec: dict[str, Any]) -> None:
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        final = self._spec_path(job_id)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        try:
            with tmp.open("w", encoding="utf-8") as handle:
                json.dump(spec, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _read_spec(self, job_id: str) -> dict[str, Any] | None:
        if not _JOB_ID.match(job_id):
            return None
        try:
            data = json.loads(self._spec_path(job_id).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict) or "created" not in data:
            return None
        return data

    async def _load(self, job_id: str) -> dict[str, Any]:
        spec = await asyncio.to_thread(self._read_spec, job_id)
        if spec is None:
            log.info("offline job not found job=%s", job_id)
            raise _not_found()
        return spec
