"""/world: the world's figures, and retrying or cancelling a branch (Manage Server)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import cards
from bot.cogs.adventure import parse_path
from bot.errors import Refusal

if TYPE_CHECKING:
    from bot.app import SharedWorldBot

log = logging.getLogger(__name__)

manage_guild = app_commands.checks.has_permissions(manage_guild=True)


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class WorldAdminCog(
    commands.GroupCog, group_name="world", group_description="Look after the shared world"
):
    def __init__(self, bot: SharedWorldBot) -> None:
        self.bot = bot
        super().__init__()

    async def _world_id(self, interaction: discord.Interaction) -> str:
        return await self.bot.director.world_of_channel(interaction.channel_id)

    @app_commands.command(description="The world's branches, renders and spend")
    @manage_guild
    async def status(self, interaction: discord.Interaction) -> None:
        world_id = await self._world_id(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        m = await self.bot.service.metrics(world_id)
        branches = ", ".join(f"{count} {status}" for status, count in m.branches.items())
        p50 = f"{m.render_ms_p50 / 1000:.1f} s" if m.render_ms_p50 is not None else "n/a"
        p95 = f"{m.render_ms_p95 / 1000:.1f} s" if m.render_ms_p95 is not None else "n/a"
        failures = (
            ", ".join(f"{code} {n}" for code, n in sorted(m.failures_by_code.items())) or "none"
        )
        lines = [
            f"**World {m.world_id}**",
            f"Branches: {branches} (backlog {m.queued_backlog})",
            f"Renders: {m.renders} made, success rate {m.success_rate:.0%}, "
            f"time p50 {p50}, p95 {p95}",
            f"Failures: {failures}",
            f"Storage: {m.storage_bytes / 1_000_000:.1f} MB · "
            f"estimated spend ${m.estimated_spend_usd:.2f}"
            f" · {m.distinct_contributors} contributors",
        ]
        await interaction.edit_original_response(content="\n".join(lines))

    @app_commands.command(description="Retry a failed branch")
    @app_commands.describe(path="The branch, e.g. 0/2/1")
    @manage_guild
    async def retry(self, interaction: discord.Interaction, path: str) -> None:
        world_id = await self._world_id(interaction)
        target = parse_path(path, self.bot.settings.generation.max_depth)
        await self.bot.minting.retry_branch(interaction, world_id, target)

    @app_commands.command(description="Stop a branch being minted (nothing paid is lost)")
    @app_commands.describe(path="The branch, e.g. 0/2/1")
    @manage_guild
    async def cancel(self, interaction: discord.Interaction, path: str) -> None:
        world_id = await self._world_id(interaction)
        target = parse_path(path, self.bot.settings.generation.max_depth)
        await interaction.response.defer(ephemeral=True, thinking=True)
        cancelled = await self.bot.service.cancel(world_id, target)
        if not cancelled:
            raise Refusal(f"{cards.breadcrumbs(target)} is not being minted.")
        log.info("admin cancel world=%s path=%s", world_id, target)
        await interaction.edit_original_response(
            content=f"Stopped minting {cards.breadcrumbs(target)}; it is unexplored again."
        )


async def setup(bot: SharedWorldBot) -> None:
    await bot.add_cog(WorldAdminCog(bot))
