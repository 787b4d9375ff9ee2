"""/adventure: binding a channel to the world and steering it (admins); where-am-I (anyone)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import cards
from bot.errors import Refusal
from bot.film import ChannelFilms
from world import paths
from world.play import PICK, VOTE
from world.settings import MAX_VOTE_SECONDS, MIN_VOTE_SECONDS

if TYPE_CHECKING:
    from bot.app import SharedWorldBot

MODE_CHOICES = [
    app_commands.Choice(name="vote: members vote, the round closes on time", value=VOTE),
    app_commands.Choice(name="pick: the first click decides", value=PICK),
]
ROOT_ALIASES = {"", "start", "root", "/"}
VOTE_RANGE = f"{MIN_VOTE_SECONDS} to {MAX_VOTE_SECONDS}"

manage_guild = app_commands.checks.has_permissions(manage_guild=True)


def parse_path(text: str, max_depth: int) -> str:
    """A branch as an admin types it ("0/2/1", or "start" for the opening scene)."""
    text = text.strip()
    if text.lower() in ROOT_ALIASES:
        return ""
    return paths.canonical(text, max_depth)


def _text_channel(interaction: discord.Interaction) -> tuple[int, int]:
    if interaction.guild_id is None or interaction.channel_id is None:
        raise app_commands.NoPrivateMessage()
    if not isinstance(interaction.channel, discord.TextChannel):
        raise Refusal("Adventures run in text channels.")
    return interaction.channel_id, interaction.guild_id


@app_commands.guild_only()
class AdventureCog(
    commands.GroupCog,
    group_name="adventure",
    group_description="Play the shared world in this channel",
):
    def __init__(self, bot: SharedWorldBot) -> None:
        self.bot = bot
        self._films: ChannelFilms | None = None  # made on first use (bot/film.py)
        super().__init__()

    @app_commands.command(description="Start (or resume) the adventure in this channel")
    @app_commands.describe(
        mode="How the channel chooses (default: vote)",
        vote_seconds=f"How long each vote lasts, in seconds ({VOTE_RANGE})",
    )
    @app_commands.choices(mode=MODE_CHOICES)
    @manage_guild
    @app_commands.checks.bot_has_permissions(
        view_channel=True, send_messages=True, embed_links=True, attach_files=True
    )
    async def start(
        self,
        interaction: discord.Interaction,
        mode: app_commands.Choice[str] | None = None,
        vote_seconds: app_commands.Range[int, MIN_VOTE_SECONDS, MAX_VOTE_SECONDS] | None = None,
    ) -> None:
        channel_id, guild_id = _text_channel(interaction)
        await interaction.response.send_message("Starting the adventure here…", ephemeral=True)
        state = await self.bot.director.start(
            channel_id, guild_id, mode=mode.value if mode else None, vote_seconds=vote_seconds
        )
        how = "first click decides" if state.mode == PICK else f"votes last {state.vote_seconds} s"
        await interaction.edit_original_response(
            content=f"The adventure runs here at **{cards.breadcrumbs(state.current_path)}** "
            f"({how})."
        )

    @app_commands.command(description="Stop the adventure in this channel")
    @manage_guild
    async def stop(self, interaction: discord.Interaction) -> None:
        channel_id, _ = _text_channel(interaction)
        if not await self.bot.director.stop(channel_id):
            raise Refusal("No adventure is running in this channel.")
        await interaction.response.send_message(
            "The adventure is stopped here; /adventure start resumes it where it was.",
            ephemeral=True,
        )

    @app_commands.command(description="Go back to the opening scene")
    @manage_guild
    async def restart(self, interaction: discord.Interaction) -> None:
        channel_id, _ = _text_channel(interaction)
        await self.bot.director.active_channel(channel_id)
        await interaction.response.send_message("Back to the opening scene.", ephemeral=True)
        await self.bot.director.goto(channel_id, "")

    @app_commands.command(description="Jump to an explored branch")
    @app_commands.describe(path="The branch, e.g. 0/2/1 (start typing to see explored ones)")
    @manage_guild
    async def goto(self, interaction: discord.Interaction, path: str) -> None:
        channel_id, _ = _text_channel(interaction)
        target = parse_path(path, self.bot.settings.generation.max_depth)
        state = await self.bot.director.active_channel(channel_id)
        view = await self.bot.service.view(state.world_id, target)  # unreachable: one sentence
        await interaction.response.send_message(
            f"Going to **{cards.breadcrumbs(view.path)}**.", ephemeral=True
        )
        await self.bot.director.goto(channel_id, target)

    @goto.autocomplete("path")
    async def goto_path(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        prefix = current.strip()
        try:
            paths.parse(prefix.rstrip("/"), self.bot.settings.generation.max_depth)
        except paths.InvalidPath:
            prefix = ""
        explored = await self.bot.director.explored(interaction.channel_id, prefix)
        choices = []
        for path, title in explored:
            if len(path) > 100:  # Discord's limit for a choice's value; type deeper paths
                continue
            name = f"{cards.breadcrumbs(path)} — {title or 'untitled'}"
            choices.append(app_commands.Choice(name=cards.clip(name, 100), value=path or "start"))
        return choices[:25]

    @app_commands.command(description="Change how this channel chooses")
    @app_commands.describe(
        mode="vote or pick", vote_seconds=f"How long each vote lasts, in seconds ({VOTE_RANGE})"
    )
    @app_commands.choices(mode=MODE_CHOICES)
    @manage_guild
    async def settings(
        self,
        interaction: discord.Interaction,
        mode: app_commands.Choice[str] | None = None,
        vote_seconds: app_commands.Range[int, MIN_VOTE_SECONDS, MAX_VOTE_SECONDS] | None = None,
    ) -> None:
        channel_id, _ = _text_channel(interaction)
        state = await self.bot.director.configure(
            channel_id, mode=mode.value if mode else None, vote_seconds=vote_seconds
        )
        await interaction.response.send_message(
            f"Mode: **{state.mode}**, votes last **{state.vote_seconds} s**. "
            "Changes apply from the next round.",
            ephemeral=True,
        )

    @app_commands.command(description="Post this channel's story so far as one video")
    @app_commands.checks.bot_has_permissions(
        view_channel=True, send_messages=True, attach_files=True
    )
    async def film(self, interaction: discord.Interaction) -> None:
        channel_id, _ = _text_channel(interaction)
        if self._films is None:
            director = self.bot.director
            self._films = ChannelFilms(self.bot.service, director.board, director.spawn)
        await self._films.request(interaction, channel_id)

    @app_commands.command(description="Where is this channel in the story?")
    async def where(self, interaction: discord.Interaction) -> None:
        channel_id, _ = _text_channel(interaction)
        text = await self.bot.director.where(channel_id)
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: SharedWorldBot) -> None:
    await bot.add_cog(AdventureCog(bot))
