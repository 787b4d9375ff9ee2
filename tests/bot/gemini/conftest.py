"""Tests in this folder play a `gemini` world through the REAL Gemini provider.

WorldService builds the provider from settings (no `providers=` override, nothing stubbed);
its base URL points at the loopback fake (tests/fakes/gemini_server.py), so every key check,
plan, render, poll and download is a real call of the google-genai SDK that the fake records.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.gemini_server import FakeGemini
from tests.fixtures.discord import with_bot_timings
from tests.fixtures.providers import paid_settings
from tests.fixtures.real_provider import (  # noqa: F401  (fixtures are found by name)
    world_providers,
    world_service,
)
from world.settings import Settings


@pytest.fixture
def discord_settings(tmp_path: Path, gemini: FakeGemini) -> Settings:
    """The default world on gemini at the fake (fast polls), with the bot's test timings."""
    return with_bot_timings(paid_settings(tmp_path, "gemini", gemini.base_url))
