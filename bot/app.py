"""The Discord bot: `build_bot(settings, service)` makes it without touching the network.

The bot holds one part per feature, each built once here with what it needs: the director
(what each channel shows, admin steering), rounds (choice clicks, votes, closing rounds) and
minting (mint buttons, the key form, claims). Buttons and forms call the part that owns them.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.components import DYNAMIC_ITEMS, KeyForms
from bot.director import Director
from bot.errors import reply_error
from bot.keyvault import KeyVault
from bot.minting import Contributors, Minting
from bot.moderation import Moderation
from bot.rounds import Rounds
from bot.waits import Waits, plain_wait
from world.service import WorldService
from world.settings import Settings

log = logging.getLogger(__name__)

EXTENSIONS = (
    "bot.cogs.adventure",
    "bot.cogs.keys",
    "bot.cogs.world_admin",
    "bot.cogs.rounds_loop",
)


class SharedWorldTree(app_commands.CommandTree):
    """One error handler for every slash command: one ephemeral sentence, never silence."""

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await reply_error(interaction, error)


class SharedWorldBot(commands.Bot):
    def __init__(
        self, settings: Settings, service: WorldService | None, *, waits: Waits = plain_wait
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            tree_cls=SharedWorldTree,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.settings = settings
        self.vault = KeyVault(settings.discord.key_idle_minutes * 60)
        self.key_forms = KeyForms()
        self._service = service
        self.interactions_handled = 0  # every interaction Discord sent us (read by metrics)
        if service is None:
            return
        contributors = Contributors()
        now = discord.utils.utcnow
        self.director = Director(
            self, service, service.play, waits=waits, contributors=contributors, now=now
        )
        self.rounds = Rounds(service, service.play, self.director, now=now)
        self.minting = Minting(
            service,
            service.play,
            self.director,
            vault=self.vault,
            key_forms=self.key_forms,
            contributors=contributors,
        )
        self.moderation = Moderation(self, service, service.play, self.director)

    @property
    def service(self) -> WorldService:
        if self._service is None:
            raise RuntimeError("this bot was built only to publish its commands")
        return self._service

    @property
    def plays(self) -> bool:
        """False for a bot built only to sync its commands (no service, no rounds loop)."""
        return self._service is not None

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        self.interactions_handled += 1

    async def setup_hook(self) -> None:
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        log.info("bot ready to connect extensions=%d", len(EXTENSIONS))

    async def close(self) -> None:
        if self.plays:
            await self.rounds.close()
            await self.director.close()
        self.vault.clear()
        await super().close()


def build_bot(
    settings: Settings, service: WorldService | None, *, waits: Waits = plain_wait
) -> SharedWorldBot:
    """The bot, unstarted; `service=None` builds one that can only sync its commands.

    `waits` performs the bot's waits on the world engine (see bot/waits.py).
    """
    return SharedWorldBot(settings, service, waits=waits)
