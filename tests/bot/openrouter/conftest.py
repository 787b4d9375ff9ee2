"""Tests in this folder play an `openrouter` world through the REAL OpenRouter provider.

WorldService builds the provider from settings (no `providers=` override, nothing stubbed);
its base URL points at the loopback fake (tests/fakes/openrouter_server.py), so every key
check, plan, render, poll and download is a real HTTP call the fake records.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.fakes.openrouter_server import FakeOpenRouter
from tests.fixtures.providers import paid_settings
from world.service import WorldService
from world.settings import Settings


@pytest.fixture
def discord_settings(tmp_path: Path, openrouter: FakeOpenRouter) -> Settings:
    """The default world on openrouter at the fake (fast polls), with the bot's test timings
    (progress edits at most every 5 s, 60 s votes) as in tests/fixtures/discord.py."""
    settings = paid_settings(tmp_path, "openrouter", openrouter.base_url)
    return replace(
        settings,
        discord=replace(settings.discord, progress_edit_seconds=5.0, default_vote_seconds=60),
    )


@pytest.fixture
def world_providers() -> None:
    """No override: WorldService builds the real provider from the settings."""
    return None


@pytest.fixture
async def world_service(world_service: WorldService) -> WorldService:
    """The bot fixtures' service, with the fake's catalogue price read before the test
    (WorldService.start only begins reading it in the background)."""
    await world_service.refresh_estimates()
    return world_service
