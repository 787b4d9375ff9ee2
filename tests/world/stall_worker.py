"""A bot process that claims a branch, reports once its paid render started, then runs on.

Run as `python -m tests.world.stall_worker <root> <database_url>`. The test stops it
(SIGSTOP: a stalled process), resumes it (SIGCONT) or kills it (SIGKILL: a crash).
Progress writes are spaced out so that a stop never lands inside a write transaction.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from tests.fixtures.world import make_settings
from world.service import WorldService


async def main(root: str, database_url: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    settings = make_settings(
        Path(root),
        database_url,
        providers={"offline_render_seconds": 4.0},
        generation={"progress_write_interval_seconds": 1000.0, "lease_seconds": 60},
    )
    service = await WorldService.start(settings, run_watchdog=False)
    try:
        await service.claim("default", "", None, "stalled-member")
        async for event in service.subscribe("default", ""):
            if event.stage == "rendering":
                break
        await asyncio.sleep(0.5)  # the job id is stored; the job now only polls its render
        print("rendering", flush=True)
        while service.running_jobs():
            await asyncio.sleep(0.1)
        print("job ended", flush=True)
    finally:
        await service.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
