"""The rounds loop: closes votes on time, resumes mints after a restart, lets idle keys go.

Every process runs it; the database decides which process closes a round (a conditional
UPDATE). The loop sleeps until the next countdown ends, at most `MAX_SLEEP_SECONDS` (no
vote is shorter, so a round another process opened is never closed late), and the director
wakes it early when it opens a round that ends sooner.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import discord
from discord.ext import commands, tasks

from world.settings import MIN_VOTE_SECONDS

if TYPE_CHECKING:
    from bot.app import SharedWorldBot

log = logging.getLogger(__name__)

MAX_SLEEP_SECONDS = float(MIN_VOTE_SECONDS)
MIN_SLEEP_SECONDS = 0.05


class RoundsLoopCog(commands.Cog):
    def __init__(self, bot: SharedWorldBot) -> None:
        self.bot = bot
        self._resumed = False

    async def cog_load(self) -> None:
        if self.bot.plays:
            self.bot.director.on_countdown(self.wake_at)
            self.tick.start()

    async def cog_unload(self) -> None:
        self.tick.cancel()

    @tasks.loop(seconds=MAX_SLEEP_SECONDS)
    async def tick(self) -> None:
        if not self._resumed:
            self._resumed = True
            await self.bot.director.resume()
        await self.bot.rounds.close_due_rounds()
        dropped = self.bot.vault.sweep()
        if dropped:
            log.info("idle keys forgotten count=%d", dropped)
        next_closing = await self.bot.rounds.next_closing()
        self._sleep_until(next_closing, from_iteration=True)

    def wake_at(self, closes_at: datetime) -> None:
        """Make sure the loop runs when this countdown ends."""
        upcoming = self.tick.next_iteration
        if self.tick.is_running() and upcoming is not None and closes_at < upcoming:
            self._sleep_until(closes_at, from_iteration=False)

    def _sleep_until(self, moment: datetime | None, *, from_iteration: bool) -> None:
        now = discord.utils.utcnow()
        if from_iteration or self.tick.next_iteration is None:
            base = now
        else:  # tasks.loop measures the interval from the start of the last iteration
            base = self.tick.next_iteration - timedelta(seconds=self.tick.seconds)
        seconds = MAX_SLEEP_SECONDS if moment is None else (moment - base).total_seconds()
        self.tick.change_interval(seconds=min(MAX_SLEEP_SECONDS, max(MIN_SLEEP_SECONDS, seconds)))

    @tick.before_loop
    async def before_tick(self) -> None:
        await self.bot.wait_until_ready()

    @tick.error
    async def tick_error(self, error: BaseException) -> None:
        log.error("rounds loop stopped; restarting it", exc_info=error)
        self.tick.restart()


async def setup(bot: SharedWorldBot) -> None:
    await bot.add_cog(RoundsLoopCog(bot))
