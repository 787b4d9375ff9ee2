"""A test double for a provider that needs each member's own key.

The real paid providers (OpenAI, Gemini) come in a later issue; until then the bot's key
flows (the key form, an invalid key, a key that runs out of quota mid-mint) are exercised
with this: the offline provider's real planner and mp4 title cards, behind `needs_key=True`.

- Keys starting with `sk-test-good` are accepted; any other key (or none) makes
  `validate_key` raise `ProviderError("invalid_key", ...)`, and so does every paid call.
- `fail_with_quota = True` makes the next `watch_render` raise `ProviderError("quota", ...)`
  part-way through, the way a key that runs dry mid-render fails.
- `fail_render_with = ProviderError(...)` makes the next `watch_render` raise that error
  part-way through (a provider outage, say).
- `fail_create_with = ProviderError(...)` makes the next `start_render` start its (paid) job
  and then raise that error instead of answering, the way a create that timed out does.
- `hold()` makes renders pause after their first progress report until `release()`, so a
  test can look at a mint while it runs; the double never keeps a key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from tests.fixtures.world import wait_until_settled
from world.providers.base import (
    KeyCheck,
    Plan,
    PlanRequest,
    ProviderError,
    RenderRequest,
    RenderStatus,
    SummaryRequest,
)
from world.providers.offline import OfflineProvider
from world.service import WorldService
from world.settings import ProviderSettings
from world.types import Credentials

GOOD_PREFIX = "sk-test-good"
GOOD_KEY = "sk-test-good-journey-7f3a9c"
SEED_KEY = "sk-test-good-seed-000000"


class KeyedTestProvider(OfflineProvider):
    name = "keyed-test"
    display_name = "keyed-test"
    needs_key = True

    def __init__(self, settings: ProviderSettings, jobs_dir: Path) -> None:
        super().__init__(settings, jobs_dir)
        self.fail_with_quota = False
        self.fail_render_with: ProviderError | None = None
        self.fail_create_with: ProviderError | None = None
        self.validations = 0
        self.paid_calls = 0
        self._gate: asyncio.Event | None = None

    def hold(self) -> None:
        self._gate = asyncio.Event()

    def release(self) -> None:
        if self._gate is not None:
            self._gate.set()

    @staticmethod
    def _require(credentials: Credentials | None) -> None:
        if credentials is None or not credentials.api_key.startswith(GOOD_PREFIX):
            raise ProviderError(
                "invalid_key", "The provider did not accept that key.", retryable=False
            )

    async def validate_key(self, credentials: Credentials | None) -> KeyCheck:
        self.validations += 1
        self._require(credentials)
        return KeyCheck()

    async def estimate_cost_usd(self) -> None:
        return None  # no price list: the world's cost_per_second_usd is the estimate

    def cached_estimate_usd(self) -> None:
        return None

    async def plan(self, request: PlanRequest, credentials: Credentials | None) -> Plan:
        self._require(credentials)
        return await super().plan(request, credentials)

    async def start_render(self, request: RenderRequest, credentials: Credentials | None) -> str:
        self._require(credentials)
        self.paid_calls += 1
        job_id = await super().start_render(request, credentials)
        if self.fail_create_with is not None:
            error, self.fail_create_with = self.fail_create_with, None
            raise error
        return job_id

    async def watch_render(
        self, job_id: str, credentials: Credentials | None
    ) -> AsyncIterator[RenderStatus]:
        self._require(credentials)
        first = True
        async for status in super().watch_render(job_id, credentials):
            if self.fail_with_quota and status.progress >= 20:
                self.fail_with_quota = False
                raise ProviderError("quota", "The key's quota is used up.", retryable=False)
            if self.fail_render_with is not None and status.progress >= 20:
                error, self.fail_render_with = self.fail_render_with, None
                raise error
            yield status
            if first and self._gate is not None:
                first = False
                await self._gate.wait()

    async def summarise(self, request: SummaryRequest, credentials: Credentials | None) -> str:
        self._require(credentials)
        return await super().summarise(request, credentials)


async def seed_opening_scene(service: WorldService) -> None:
    """Mint the opening scene directly through the service (someone paid for it earlier)."""
    await service.claim("default", "", Credentials(SEED_KEY), "seeder")
    await wait_until_settled(service, "default", "")
