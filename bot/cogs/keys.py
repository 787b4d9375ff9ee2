"""/key: what the vault holds for you, and forgetting it. Keys are never shown back."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import spending_text
from bot.components import KEY_FORM_PREFIX

if TYPE_CHECKING:
    from bot.app import SharedWorldBot

log = logging.getLogger(__name__)

FORM_LOST = (
    "That form was opened before the bot restarted, so your key was not used; "
    "click the button again."
)


class KeyCog(commands.GroupCog, group_name="key", group_description="Your API key for minting"):
    def __init__(self, bot: SharedWorldBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(description="Is a key of yours held, and what you minted and spent")
    async def status(self, interaction: discord.Interaction) -> None:
        held = self.bot.vault.status(interaction.user.id)
        if not held:
            text = "No key of yours is held. When you mint a branch you will be asked for one."
        else:
            parts = [
                f"a {s.provider} key, forgotten after "
                f"{max(1, round(s.expires_in_seconds / 60))} more idle minutes"
                for s in held
            ]
            text = "Held in memory only: " + "; ".join(parts) + ". /key forget drops it now."
        await interaction.response.defer(ephemeral=True, thinking=True)  # then a few reads
        report = await self.bot.service.member_spending(str(interaction.user.id))
        text = spending_text.fit(text + "\n\n" + spending_text.member_text(report))
        await interaction.edit_original_response(content=text)

    @app_commands.command(description="Forget your key now")
    async def forget(self, interaction: discord.Interaction) -> None:
        dropped = self.bot.vault.forget(interaction.user.id)
        text = "Your key is forgotten." if dropped else "No key of yours was held."
        if dropped:
            log.info("member forgot their key keys=%d", dropped)
        await interaction.response.send_message(text, ephemeral=True)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Answer a key form discord.py can no longer route (opened before a restart)."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        custom_id = str((interaction.data or {}).get("custom_id", ""))
        if custom_id.startswith(KEY_FORM_PREFIX) and custom_id not in self.bot.key_forms:
            log.info("key form from before a restart answered")
            await interaction.response.send_message(FORM_LOST, ephemeral=True)


async def setup(bot: SharedWorldBot) -> None:
    await bot.add_cog(KeyCog(bot))
