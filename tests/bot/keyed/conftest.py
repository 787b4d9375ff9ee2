"""Tests in this folder play a world priced like a paid provider, through the keyed test
double (tests/bot/keyed_provider.py): minting needs each member's own key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.bot.keyed_provider import KeyedTestProvider
from tests.fixtures.discord import bot_settings
from tests.fixtures.world import offline_jobs_dir
from world.settings import Settings


@pytest.fixture
def discord_settings(tmp_path: Path) -> Settings:
    """A world priced like a paid provider (8 s at $0.10 a second)."""
    settings = bot_settings(tmp_path)
    return replace(settings, worlds=(replace(settings.worlds[0], provider="openai"),))


@pytest.fixture
def keyed_provider(discord_settings: Settings) -> KeyedTestProvider:
    return KeyedTestProvider(discord_settings.providers, offline_jobs_dir(discord_settings))


@pytest.fixture
def world_providers(keyed_provider: KeyedTestProvider) -> dict[str, KeyedTestProvider]:
    return {"default": keyed_provider}
