"""A bot process that dies by SIGKILL the instant its paid create returns (before the job id is
recorded): the worst moment for invariant 2.

Run as `python -m tests.world.kill_worker <root> <database_url> <lookup>`; `lookup` is "yes"
for a provider that can look a create up by its attempt (the offline provider), "no" for one
that cannot (as OpenRouter). The job spec the offline provider writes is the paid render.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.fixtures.world import make_settings, offline_jobs_dir
from world.providers.base import RenderRequest
from world.providers.offline import OfflineProvider
from world.service import WorldService
from world.types import Credentials


class DiesAfterCreate(OfflineProvider):
    async def start_render(self, request: RenderRequest, credentials: Credentials | None) -> str:
        job_id = await super().start_render(request, credentials)
        os.kill(os.getpid(), signal.SIGKILL)  # the create answered; nothing recorded it
        return job_id


async def main(root: str, database_url: str, lookup: str) -> None:
    settings = make_settings(Path(root), database_url)
    provider = DiesAfterCreate(settings.providers, offline_jobs_dir(settings))
    provider.can_find_renders = lookup == "yes"
    service = await WorldService.start(
        settings, providers={"default": provider}, run_watchdog=False
    )
    await service.claim("default", "", None, "doomed-member")
    await asyncio.sleep(60)  # killed long before this


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
