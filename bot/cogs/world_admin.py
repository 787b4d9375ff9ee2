"""/world: the world's figures, retrying or cancelling a branch, hiding and unhiding a scene
and the report channel (Manage Server); the map (anyone)."""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import cards, spending_text
from bot.cogs.adventure import parse_path
from bot.errors import Refusal
from world import paths
from world.service import MAP_DEFAULT_DEPTH, MAP_MAX_DEPTH, MAP_MIN_DEPTH

if TYPE_CHECKING:
    from bot.app import SharedWorldBot

log = logging.getLogger(__name__)

manage_guild = app_commands.checks.has_permissions(manage_guild=True)


# No default_permissions on the group: Discord applies them per top-level command, and
# /world map is for everyone; each admin subcommand checks Manage Server when it runs.
@app_commands.guild_only()
class WorldAdminCog(
    commands.GroupCog, group_name="world", group_description="Look after the shared world"
):
    def __init__(self, bot: SharedWorldBot) -> None:
        self.bot = bot
        super().__init__()

    async def _world_id(self, interaction: discord.Interaction) -> str:
        return await self.bot.director.world_of_channel(interaction.channel_id)

    @app_commands.command(name="map", description="A picture of the explored story around a branch")
    @app_commands.describe(
        path="The branch, e.g. 0/2/1 (default: where this channel is)",
        depth=f"Levels below it, {MAP_MIN_DEPTH} to {MAP_MAX_DEPTH} (default {MAP_DEFAULT_DEPTH})",
    )
    async def world_map(
        self, interaction: discord.Interaction, path: str | None = None, depth: int | None = None
    ) -> None:
        state = await self.bot.director.play.get_channel(interaction.channel_id or 0)
        world_id = self.bot.director.world_for(state)
        here = state.current_path if state is not None else None
        if path is None:
            target = here if here is not None else ""
        else:
            target = parse_path(path, self.bot.settings.generation.max_depth)
        await interaction.response.defer(ephemeral=True, thinking=True)
        levels = MAP_DEFAULT_DEPTH if depth is None else depth
        png = await self.bot.service.world_map(world_id, target, levels, highlight=here)
        ringed = ""
        if here is not None and _within(here, target, levels):
            ringed = " The ringed branch is where this channel is."
        await interaction.edit_original_response(
            content=f"The story around **{cards.breadcrumbs(target)}**, "
            f"{levels} level{'' if levels == 1 else 's'} down.{ringed}",
            attachments=[discord.File(io.BytesIO(png), filename="map.png")],
        )

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
        spent = await self.bot.service.world_spending(
            world_id, guild=str(interaction.guild_id) if interaction.guild_id else None
        )
        lines.append(spending_text.world_text(spent, self.bot.settings.limits))
        await interaction.edit_original_response(content=spending_text.fit("\n".join(lines)))

    @app_commands.command(description="Retry a failed branch")
    @app_commands.describe(path="The branch, e.g. 0/2/1")
    @manage_guild
    async def retry(self, interaction: discord.Interaction, path: str) -> None:
        world_id = await self._world_id(interaction)
        target = parse_path(path, self.bot.settings.generation.max_depth)
        await self.bot.minting.retry_branch(interaction, world_id, target)  # audits it

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
        await self._audit(interaction, "cancel", world_id, target)
        await interaction.edit_original_response(
            content=f"Stopped minting {cards.breadcrumbs(target)}; it is unexplored again."
        )

    # -- moderation (bot/moderation.py) ----------------------------------------------

    async def _audit(
        self, interaction: discord.Interaction, action: str, world_id: str, path: str
    ) -> None:
        await self.bot.service.record_admin_action(
            action,
            str(interaction.user.id),
            guild_id=interaction.guild_id,
            world_id=world_id,
            path=path,
        )

    @app_commands.command(name="settings", description="Where members' reports of scenes go")
    @app_commands.describe(report_channel="The channel the Report button posts to")
    @manage_guild
    async def world_settings(
        self,
        interaction: discord.Interaction,
        report_channel: discord.TextChannel,
    ) -> None:
        await self.bot.moderation.set_report_channel(interaction, report_channel)

    @app_commands.command(description="Remove a scene's clip and text everywhere")
    @app_commands.describe(
        path="The branch, e.g. 0/2/1 (start for the opening scene)",
        reason="Why (kept in the audit trail, not shown to members)",
    )
    @manage_guild
    async def hide(
        self,
        interaction: discord.Interaction,
        path: str,
        reason: app_commands.Range[str, 1, 300] | None = None,
    ) -> None:
        world_id = await self._world_id(interaction)
        target = parse_path(path, self.bot.settings.generation.max_depth)
        await self.bot.moderation.hide(interaction, world_id, target, reason)

    @app_commands.command(description="Bring back a scene the admins hid")
    @app_commands.describe(path="The branch, e.g. 0/2/1 (start for the opening scene)")
    @manage_guild
    async def unhide(self, interaction: discord.Interaction, path: str) -> None:
        world_id = await self._world_id(interaction)
        target = parse_path(path, self.bot.settings.generation.max_depth)
        await self.bot.moderation.unhide(interaction, world_id, target)


def _within(here: str, top: str, levels: int) -> bool:
    """Whether the channel's branch is drawn on a map around `top` (itself or below it)."""
    below = here == top or top == "" or here.startswith(top + "/")
    return below and paths.depth(here) - paths.depth(top) <= levels


async def setup(bot: SharedWorldBot) -> None:
    await bot.add_cog(WorldAdminCog(bot))
