"""Pure rules read from a provider catalogue: prices, whether a clip fits, first frames."""

from __future__ import annotations

import asyncio

import pytest

from world.providers import catalogue as cat
from world.providers.base import ProviderError

VEO_SKUS = {"duration_seconds_with_audio": "0.12", "duration_seconds": "0.10"}


def test_price_per_second_follows_audio_choice():
    assert cat.price_per_second_usd(VEO_SKUS, audio=True) == pytest.approx(0.12)
    assert cat.price_per_second_usd(VEO_SKUS, audio=False) == pytest.approx(0.10)


def test_cents_are_converted_and_resolution_is_preferred():
    skus = {"cents_per_video_second_720p": "5", "cents_per_video_second_1080p": "15"}
    assert cat.price_per_second_usd(skus, audio=False, resolution="720p") == pytest.approx(0.05)
    assert cat.price_per_second_usd(skus, audio=False, resolution="1080p") == pytest.approx(0.15)


def test_token_prices_count_when_tokens_per_second_are_known():
    skus = {"video_tokens": "0.0000025"}
    assert cat.price_per_second_usd(skus, audio=False, tokens_per_second=5000) == pytest.approx(
        0.0125
    )


@pytest.mark.parametrize(
    "skus", [None, {}, {"video_tokens": "0.0000025"}, {"duration_seconds": "n/a"}]
)
def test_no_usable_per_second_price_gives_none(skus):
    assert cat.price_per_second_usd(skus, audio=True) is None


def test_fit_problems_name_each_mismatch():
    entry = {
        "supported_durations": [4, 6, 8],
        "supported_resolutions": ["720p", "1080p"],
        "supported_aspect_ratios": ["16:9"],
    }
    assert cat.fit_problems(entry, seconds=8, resolution="720p", aspect_ratio="16:9") == []
    problems = cat.fit_problems(entry, seconds=10, resolution="4k", aspect_ratio="9:16")
    assert len(problems) == 3
    assert "10 s" in problems[0] and "4k" in problems[1] and "9:16" in problems[2]


def test_first_frame_support_is_read_from_the_entry():
    assert cat.takes_first_frame({"supported_frame_images": ["first_frame", "last_frame"]})
    assert not cat.takes_first_frame({"supported_frame_images": None})
    assert not cat.takes_first_frame(None)


async def test_catalogue_fetches_once_per_ttl_and_keeps_a_stale_copy_on_failure():
    now = [0.0]
    calls = []
    fail = [False]

    async def fetch():
        calls.append(now[0])
        await asyncio.sleep(0)
        if fail[0]:
            raise ProviderError("unavailable", "down")
        return [{"id": "m", "n": len(calls)}]

    catalogue = cat.Catalogue(fetch, ttl_seconds=60, clock=lambda: now[0])
    first = await asyncio.gather(*(catalogue.get("m") for _ in range(20)))
    assert len(calls) == 1 and all(entry == {"id": "m", "n": 1} for entry in first)
    now[0] = 61
    fail[0] = True
    assert await catalogue.get("m") == {"id": "m", "n": 1}  # stale, not an error
    fresh = cat.Catalogue(fetch, ttl_seconds=60, clock=lambda: now[0])
    with pytest.raises(ProviderError):
        await fresh.get("m")
