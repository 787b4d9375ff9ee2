"""/world: the world's figures, and retrying or cancelling a branch (Manage Server)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import play, render
from bot.cogs.adventure import parse_path
from bot.components import KeyModal
from bot.errors import Refusal
from world.types import ClaimOutcome

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
        state = await play.get_channel(self.bot.service.db, interaction.channel_id or 0)
        return self.bot.director.world_for(state)

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
        service = self.bot.service
        provider = service.provider(world_id)
        credentials = None
        if provider.needs_key:
            credentials = self.bot.vault.get(interaction.user.id, provider.name)
            if credentials is None:
                form = KeyModal(
                    channel_id=interaction.channel_id or 0,
                    path=target,
                    choice_label=f"Retry {render.breadcrumbs(target)}",
                    provider_name=provider.display_name,
                    cost=render.cost_text(service.estimated_cost(world_id)),
                    retry=True,
                )
                self.bot.key_forms.opened(form.custom_id)
                await interaction.response.send_modal(form)
                return
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await service.retry(world_id, target, credentials, str(interaction.user.id))
        if result.outcome is ClaimOutcome.REFUSED:
            raise Refusal(result.message or "That branch cannot be retried.")
        log.info("admin retry world=%s path=%s outcome=%s", world_id, target, result.outcome.value)
        await self.bot.director._report_claim(
            interaction, result, render.cost_text(service.estimated_cost(world_id))
        )

    @app_commands.command(description="Stop a branch being minted (nothing paid is lost)")
    @app_commands.describe(path="The branch, e.g. 0/2/1")
    @manage_guild
    async def cancel(self, interaction: discord.Interaction, path: str) -> None:
        world_id = await self._world_id(interaction)
        target = parse_path(path, self.bot.settings.generation.max_depth)
        await interaction.response.defer(ephemeral=True, thinking=True)
        cancelled = await self.bot.service.cancel(world_id, target)
        if not cancelled:
            raise Refusal(f"{render.breadcrumbs(target)} is not being minted.")
        log.info("admin cancel world=%s path=%s", world_id, target)
        await interaction.edit_original_response(
            content=f"Stopped minting {render.breadcrumbs(target)}; it is unexplored again."
        )


async def setup(bot: SharedWorldBot) -> None:
    await bot.add_cog(WorldAdminCog(bot))
