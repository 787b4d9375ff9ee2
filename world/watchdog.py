"""Recycles expired leases and sweeps stray temp files (and hidden clips past their
retention). Every process runs one; the database makes that safe. The sweep itself (what to
delete) is world/sweep.py and world/moderation.py; this decides when."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from world import sweep
from world.events import Spawn, default_spawn

if TYPE_CHECKING:
    from world.service import WorldService

log = logging.getLogger(__name__)


class Watchdog:
    def __init__(
        self, service: WorldService, interval_seconds: float, spawn: Spawn | None = None
    ) -> None:
        self._service = service
        self._interval = interval_seconds
        self._spawn = spawn or default_spawn
        self._task: asyncio.Task[None] | None = None
        self._next_sweep = 0.0  # monotonic time of the next stray-file sweep

    def start(self) -> None:
        if self._task is None:
            self._task = self._spawn(self._loop(), "lease watchdog")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self) -> int:
        recycled = await self._service.recycle_expired_leases()
        try:  # after recycling, so a dead process's branch no longer owns its files
            await self._service.sweep_if_due()
        except Exception:
            log.exception("stray-file sweep failed; the next pass tries again")
        return recycled

    async def sweep_stray_files(self) -> sweep.SweepReport:
        """Delete temp files no live job owns; never a spool clip of an unfinished branch."""
        service = self._service
        self._next_sweep = time.monotonic() + sweep.SWEEP_INTERVAL_SECONDS
        report = await sweep.sweep_stray_files(
            db=service.db,
            store=service.store,
            spool_dir=service.settings.generation.spool_dir,
            max_depth=service.settings.generation.max_depth,
            running=service.jobs.running_paths(),
        )
        for provider in {id(p): p for p in service.providers.values()}.values():
            sweep_provider = getattr(provider, "sweep_partial", None)  # local job files
            if sweep_provider is not None:
                report.temp_files += await sweep_provider(sweep.TEMP_GRACE_SECONDS)
        try:  # hidden clips past their retention (world/moderation.py)
            report.hidden_clips = await service.purge_hidden_clips()
        except Exception:
            log.exception("deleting expired hidden clips failed; the next sweep tries again")
        return report

    async def sweep_if_due(self) -> sweep.SweepReport | None:
        """A sweep at most every sweep.SWEEP_INTERVAL_SECONDS."""
        if time.monotonic() < self._next_sweep:
            return None
        return await self.sweep_stray_files()

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Logged, never swallowed silently: a dead watchdog was the seed's defect.
                log.exception("watchdog pass failed; trying again in %ss", self._interval)
            await asyncio.sleep(self._interval)
