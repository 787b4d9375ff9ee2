"""Tests in this folder play a `gemini` world through the REAL Gemini provider.

WorldService builds the provider from settings (no `providers=` override, nothing stubbed);
its base URL points at the loopback fake (tests/fakes/gemini_server.py), so every key check,
plan, render, poll and download is a real call of the google-genai SDK that the fake records.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.fakes.gemini_server import FakeGemini
from tests.fixtures.providers import paid_settings
from world.service import WorldService
from world.settings import Settings


@pytest.fixture
def discord_settings(tmp_path: Path, gemini: FakeGemini) -> Settings:
    """The default world on gemini at the fake (fast polls), with the bot's test timings
    (progress edits at most every 5 s, 60 s votes) as in tests/fixtures/discord.py."""
    settings = paid_settings(tmp_path, "gemini", gemini.base_url)
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
    """The bot fixtures' service, with the estimate read before the test."""
    await world_service.refresh_estimates()
    return world_service
