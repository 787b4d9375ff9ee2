"""Coalesced message edits: many updates in, at most one edit per interval out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


def _monotonic() -> float:
    return time.monotonic()


class Coalescer:
    """Run `action` after `poke()`, at most once per `interval` seconds.

    Pokes that arrive while an edit is pending fold into it; the action reads the newest
    state when it runs, so nothing is lost and Discord sees one edit per interval.
    """

    def __init__(
        self,
        interval: float,
        action: Callable[[], Awaitable[None]],
        *,
        name: str = "edit",
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.interval = max(0.0, interval)
        self._action = action
        self._name = name
        self._clock = clock or _monotonic
        self._sleep = sleep or asyncio.sleep
        self._last: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._dirty = False
        self.runs = 0

    @property
    def pending(self) -> bool:
        return self._task is not None and not self._task.done()

    def mark_ran(self) -> None:
        """Count the current moment as an edit (e.g. the message was just posted)."""
        self._last = self._clock()

    def poke(self) -> None:
        self._dirty = True
        if not self.pending:
            self._task = asyncio.create_task(self._run(), name=f"coalesced {self._name}")

    async def _run(self) -> None:
        while self._dirty:
            if self._last is not None:
                wait = self._last + self.interval - self._clock()
                if wait > 0:
                    await self._sleep(wait)
            self._dirty = False
            self._last = self._clock()
            self.runs += 1
            try:
                await self._action()
            except Exception:
                log.warning("coalesced %s failed", self._name, exc_info=True)

    async def close(self) -> None:
        """Drop any pending run (the caller writes the final state itself)."""
        self._dirty = False
        task, self._task = self._task, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
