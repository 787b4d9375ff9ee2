"""The hot path of a click: a short-lived cache of round rows and group-committed votes.

Two hundred members clicking the same card at once must each get an answer in well under
the 3 seconds Discord allows. Reading the same round row two hundred times and committing
two hundred one-row transactions (SQLite has one writer at a time) would queue them behind
each other; instead concurrent readers share one read, and votes that arrive together are
written in one transaction. The database stays the source of truth: every vote is written
only while its round is open, whatever the cache said.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

from world.play import Ballot, PlayStore, RoundState, VoteReceipt

OPEN_ROUND_TTL_SECONDS = 1.0
MAX_CACHED_ROUNDS = 4096


def _monotonic() -> float:
    return time.monotonic()


class RoundCache:
    """Round rows by id: open rounds for a second (another process may close them), closed
    rounds for good (they never reopen). Concurrent misses share one database read."""

    def __init__(
        self,
        play: PlayStore,
        ttl: float = OPEN_ROUND_TTL_SECONDS,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._play = play
        self.ttl = ttl
        self._clock = clock or _monotonic
        self._rows: dict[int, tuple[RoundState | None, float]] = {}
        self._loading: dict[int, asyncio.Future[RoundState | None]] = {}

    async def get(self, round_id: int) -> RoundState | None:
        cached = self._rows.get(round_id)
        if cached is not None:
            row, at = cached
            if row is not None and (not row.is_open or self._clock() - at < self.ttl):
                return row
        loading = self._loading.get(round_id)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[RoundState | None] = asyncio.get_running_loop().create_future()
        self._loading[round_id] = future
        try:
            row = await self._play.get_round(round_id)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved here; waiters re-raise it
            raise
        finally:
            del self._loading[round_id]
        future.set_result(row)
        self._remember(round_id, row)
        return row

    def forget(self, round_id: int) -> None:
        self._rows.pop(round_id, None)

    def _remember(self, round_id: int, row: RoundState | None) -> None:
        if row is None:
            return
        if len(self._rows) >= MAX_CACHED_ROUNDS:
            for key in list(self._rows)[: MAX_CACHED_ROUNDS // 4]:
                del self._rows[key]
        self._rows[round_id] = (row, self._clock())


class VoteBatcher:
    """Votes that arrive while a write is under way are written together in the next one."""

    def __init__(self, play: PlayStore, now: Callable[[], datetime]) -> None:
        self._play = play
        self._now = now
        self._pending: list[tuple[Ballot, asyncio.Future[VoteReceipt]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0

    async def cast(self, ballot: Ballot) -> VoteReceipt:
        future: asyncio.Future[VoteReceipt] = asyncio.get_running_loop().create_future()
        self._pending.append((ballot, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="vote writer")
        return await future

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                receipts = await self._play.cast_votes([b for b, _ in batch], self._now())
            except Exception as error:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.batches += 1
            for (_, future), receipt in zip(batch, receipts, strict=True):
                if not future.done():
                    future.set_result(receipt)

    async def close(self) -> None:
        if self._writer is not None and not self._writer.done():
            await asyncio.gather(self._writer, return_exceptions=True)
