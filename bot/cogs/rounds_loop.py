"""The rounds loop: closes votes on time (in every process; the database picks one closer),
resumes mints after a restart, and lets idle keys go."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from discord.ext import commands, tasks

if TYPE_CHECKING:
    from bot.app import SharedWorldBot

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0


class RoundsLoopCog(commands.Cog):
    def __init__(self, bot: SharedWorldBot) -> None:
        self.bot = bot
        self._resumed = False

    async def cog_load(self) -> None:
        if self.bot.plays:
            self.tick.start()

    async def cog_unload(self) -> None:
        self.tick.cancel()

    @tasks.loop(seconds=TICK_SECONDS)
    async def tick(self) -> None:
        if not self._resumed:
            self._resumed = True
            await self.bot.director.resume()
        await self.bot.director.close_due_rounds()
        dropped = self.bot.vault.sweep()
        if dropped:
            log.info("idle keys forgotten count=%d", dropped)

    @tick.before_loop
    async def before_tick(self) -> None:
        await self.bot.wait_until_ready()

    @tick.error
    async def tick_error(self, error: BaseException) -> None:
        log.error("rounds loop stopped; restarting it", exc_info=error)
        self.tick.restart()


async def setup(bot: SharedWorldBot) -> None:
    await bot.add_cog(RoundsLoopCog(bot))
