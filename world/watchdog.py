"""Recycles expired leases and sweeps stray temp files. Every process runs one; the database
makes that safe."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from world.service import WorldService

log = logging.getLogger(__name__)


class Watchdog:
    def __init__(self, service: WorldService, interval_seconds: float) -> None:
        self._service = service
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="lease watchdog")

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
