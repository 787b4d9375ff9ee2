"""A provider's model catalogue, cached with a TTL, and the pure price and fit rules read from it.

OpenRouter publishes its video models (durations, resolutions, aspect ratios, frame support and
prices) and its chat models (supported parameters) without a key. Prices arrive as strings,
the unit named by the key: `duration_seconds*` is USD per second, `cents_per_*` is cents.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from world.providers.base import ProviderError
from world.providers.errors import provider_error

Fetch = Callable[[], Awaitable[list[dict[str, Any]]]]
_RESOLUTION = re.compile(r"(\d{3,4}p|4k)")


class Catalogue:
    """Entries by id, fetched at most once per TTL (concurrent callers share one fetch)."""

    def __init__(
        self, fetch: Fetch, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ):
        self._fetch = fetch
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[str, dict[str, Any]] | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def entries(self) -> Mapping[str, dict[str, Any]]:
        """The catalogue; a stale copy when a refresh fails; ProviderError when there is none."""
        if self._entries is not None and self._clock() - self._fetched_at < self._ttl:
            return self._entries
        async with self._lock:
            if self._entries is not None and self._clock() - self._fetched_at < self._ttl:
                return self._entries
            try:
                rows = await self._fetch()
            except ProviderError:
                if self._entries is not None:
                    return self._entries
                raise
            self._entries = {
                str(row["id"]): row for row in rows if isinstance(row, dict) and "id" in row
            }
            self._fetched_at = self._clock()
            return self._entries

    async def get(self, model_id: str) -> dict[str, Any] | None:
        return (await self.entries()).get(model_id)


def price_per_second_usd(
    skus: Mapping[str, Any] | None,
    *,
    audio: bool,
    resolution: str | None = None,
    tokens_per_second: float | None = None,
) -> float | None:
    """USD per second of video from `pricing_skus`, or None when no per-second price is listed.

    Prefers the SKU that matches audio on/off and the resolution. Token-priced SKUs (USD per
    video token) count only when the entry says how many tokens a second takes; otherwise the
    caller falls back to its setting.
    """
    candidates: list[tuple[int, float]] = []
    for key, raw in (skus or {}).items():
        name = str(key).lower()
        per_token = "token" in name
        if "second" not in name and not (per_token and tokens_per_second):
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            continue
        if value < 0:
            continue
        usd = value / 100 if "cents" in name else value
        if per_token:
            usd *= tokens_per_second or 0.0
        with_audio = "audio" in name and "without_audio" not in name and "no_audio" not in name
        score = 2 if with_audio == audio else 0
        match = _RESOLUTION.search(name)
        if match and resolution:
            score += 1 if match.group(1) == resolution.lower() else -3
        candidates.append((score, usd))
    if not candidates:
        return None
    return max(candidates, key=lambda c: c[0])[1]


def fit_problems(
    entry: Mapping[str, Any], *, seconds: int, resolution: str, aspect_ratio: str
) -> list[str]:
    """What the configured clip asks that the model does not offer (empty: it fits)."""
    problems = []
    durations = entry.get("supported_durations")
    if durations and seconds not in durations:
        problems.append(
            f"{seconds} s is not a duration it makes (it makes {', '.join(map(str, durations))} s)"
        )
    resolutions = entry.get("supported_resolutions")
    if resolutions and resolution not in resolutions:
        problems.append(f"{resolution} is not offered (only {', '.join(resolutions)})")
    ratios = entry.get("supported_aspect_ratios")
    if ratios and aspect_ratio not in ratios:
        problems.append(f"aspect ratio {aspect_ratio} is not offered (only {', '.join(ratios)})")
    return problems


def takes_first_frame(entry: Mapping[str, Any] | None) -> bool:
    frames = (entry or {}).get("supported_frame_images") or []
    return "first_frame" in frames


def catalogue_unreachable() -> ProviderError:
    return provider_error("unavailable", "The provider's model catalogue cannot be reached.")
