"""Moderation in Discord: the Report button, the report channel, hiding and unhiding scenes.

A member's click on a scene card's Report button is answered within Discord's 3 seconds
after two indexed reads (the card's round, then the report itself: one transaction), and
then the report is posted to the channel this server's admins chose with `/world settings
report_channel`: the scene's path, its title and a jump link to the card. `/world hide`
and `/world unhide` (Manage Server) go through the WorldService, which writes the audit
trail; every channel this process serves that sits at the scene then gets its card again
(the removed card and a mint card after a hide, the scene card after an unhide).
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import discord

from bot import cards
from bot.errors import Refusal
from world.play import PlayStore
from world.service import WorldService

if TYPE_CHECKING:
    from bot.director import Director

log = logging.getLogger(__name__)

OLD_CARD = "That card is too old to report from; use the newest card in the channel."
NO_CHANNEL = (
    "Thanks: your report was recorded, but this server's admins have not chosen a report "
    "channel yet, so nobody has been told."
)
REPORTED = "Thanks: your report of this scene was sent to the admins."


def jump_link(guild_id: int | None, channel_id: int, message_id: int | None) -> str | None:
    if guild_id is None or message_id is None:
        return None
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def report_text(path: str, title: str | None, link: str | None, reports: int) -> str:
    """The message the admins' report channel gets (ids only; nobody is mentioned)."""
    lines = [
        f"\N{WARNING SIGN} **Scene reported** · {cards.breadcrumbs(path)}"
        f" · path `{path or 'start'}`",
        f"**{cards.clip(title or 'Untitled scene', 200)}**",
    ]
    if link:
        lines.append(f"Card: {link}")
    times = "1 member has" if reports == 1 else f"{reports} members have"
    lines.append(
        f"-# {times} reported this clip. `/world hide path:{path or 'start'}` removes it "
        "for everyone."
    )
    return "\n".join(lines)


class Moderation:
    def __init__(
        self,
        client: discord.Client,
        service: WorldService,
        play: PlayStore,
        director: Director,
    ) -> None:
        self.client = client
        self.service = service
        self.play = play
        self.director = director

    # -- members ---------------------------------------------------------------------

    async def on_report(self, interaction: discord.Interaction, round_id: int) -> None:
        """A scene card's Report button."""
        shown = await self.play.get_round(round_id)
        if shown is None:
            raise Refusal(OLD_CARD)
        message_id = shown.message_id or (interaction.message.id if interaction.message else None)
        result = await self.service.report(
            shown.world_id,
            shown.path,
            reporter=str(interaction.user.id),
            guild_id=interaction.guild_id,
            channel_id=shown.channel_id,
            message_id=message_id,
        )
        if result.report_channel_id is None:
            await interaction.response.send_message(NO_CHANNEL, ephemeral=True)
            return
        await interaction.response.send_message(REPORTED, ephemeral=True)
        link = jump_link(interaction.guild_id, shown.channel_id, message_id)
        text = report_text(shown.path, result.title, link, result.reports)
        try:
            await self.director.board.messageable(result.report_channel_id).send(content=text)
        except discord.HTTPException as exc:
            log.warning(
                "report not delivered world=%s path=%s guild=%s channel=%s status=%s",
                shown.world_id,
                shown.path,
                interaction.guild_id,
                result.report_channel_id,
                getattr(exc, "status", "?"),
            )
            with contextlib.suppress(discord.HTTPException):
                await interaction.followup.send(
                    "Your report was recorded, but I could not post it in the report channel; "
                    "please tell an admin.",
                    ephemeral=True,
                )

    # -- admins ----------------------------------------------------------------------

    async def set_report_channel(
        self, interaction: discord.Interaction, channel: discord.abc.GuildChannel
    ) -> None:
        guild = interaction.guild
        if guild is None or channel.guild.id != guild.id:
            raise Refusal("Choose a channel of this server.")
        if not isinstance(channel, discord.abc.Messageable):
            raise Refusal("Choose a text channel: reports are posted as messages.")
        me = guild.me
        if me is not None:
            allowed = channel.permissions_for(me)
            if not (allowed.view_channel and allowed.send_messages):
                raise Refusal(
                    f"I cannot post in {channel.mention}; let me view it and send messages "
                    "there first."
                )
        await self.service.set_report_channel(guild.id, channel.id, str(interaction.user.id))
        await interaction.response.send_message(
            f"Reports from this server's members now go to {channel.mention}.", ephemeral=True
        )

    async def hide(
        self, interaction: discord.Interaction, world_id: str, path: str, reason: str | None
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self.service.hide(
            world_id, path, reason, str(interaction.user.id), guild_id=interaction.guild_id
        )
        title = f" (“{cards.clip(result.title, 100)}”)" if result.title else ""
        until = discord.utils.format_dt(result.delete_after, "f")
        await interaction.edit_original_response(
            content=f"Hid **{cards.breadcrumbs(path)}**{title} everywhere: its clip and text are "
            "off every card and the web, and the branch can be minted again. The old clip is "
            f"kept until {until} for `/world unhide`, then deleted."
        )
        await self._show_channels_at(world_id, path)

    async def unhide(self, interaction: discord.Interaction, world_id: str, path: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self.service.unhide(
            world_id, path, str(interaction.user.id), guild_id=interaction.guild_id
        )
        title = f" (“{cards.clip(result.title, 100)}”)" if result.title else ""
        await interaction.edit_original_response(
            content=f"**{cards.breadcrumbs(path)}**{title} is back, with its clip, everywhere."
        )
        await self._show_channels_at(world_id, path)

    async def _show_channels_at(self, world_id: str, path: str) -> None:
        """Channels of this process at the scene get its card again (the old one is retired)."""
        for state in await self.play.channels_at(world_id, path):
            if self.client.get_guild(state.guild_id) is None:
                continue  # another process serves that server
            try:
                await self.director.goto(state.channel_id, path)
            except Exception:
                log.exception(
                    "refreshing channel after moderation failed world=%s path=%s channel=%s",
                    world_id,
                    path,
                    state.channel_id,
                )
