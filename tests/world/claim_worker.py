"""One process of the multi-process claim tests: N concurrent claims of one or more branches.

Run as `python -m tests.world.claim_worker <settings.json> <start_at_epoch> <n>`; claim i goes
to `paths[i % len(paths)]` (or the one `path`). Prints one JSON line with every caller's
outcomes (what it saw at claim time and at the end) and every error.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from tests.fixtures.world import make_settings
from world.service import WorldService
from world.types import ClaimOutcome


async def main(config_path: str, start_at: float, n: int) -> None:
    config = json.loads(Path(config_path).read_text())
    settings = make_settings(Path(config["root"]), config["database_url"])
    service = await WorldService.start(settings, run_watchdog=False)
    try:
        await asyncio.sleep(max(0.0, start_at - time.time()))

        targets = config.get("paths") or [config["path"]]

        async def one(i: int) -> dict[str, object]:
            path = targets[i % len(targets)]
            t0 = time.perf_counter()
            result = await service.claim("default", path, None, f"member-{i}")
            latency_ms = (time.perf_counter() - t0) * 1000
            final = None
            if result.outcome is not ClaimOutcome.REFUSED:
                async for event in service.subscribe("default", path):
                    final = event.status.value
            return {
                "outcome": result.outcome.value,
                "final": final,
                "won": result.claimed_by_caller,
                "ms": latency_ms,
            }

        results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        ok = [r for r in results if not isinstance(r, BaseException)]
        print(json.dumps({"results": ok, "errors": errors}), flush=True)
    finally:
        await service.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
