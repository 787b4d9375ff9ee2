"""Fixtures for the bot's SimCord tests (see tests/fixtures/discord.py)."""

from tests.fixtures.discord import (  # noqa: F401  (fixtures are found by name)
    discord_settings,
    simcord_bot,
    simcord_waits,
    world_env,
    world_providers,
    world_service,
)
