"""Benchmark: the window a kill can hit, from "a paid create answered" to "its job id is stored".

Invariant 2's last gap: no provider offers an idempotency key, so a process killed after the
create returned and before the job id is committed leaves a paid job only its intent points
to (resolved by lookup, or by asking the next payer). This measures how long that window is:
the pipeline times it on every create (`Timings.record_ms`, logged on "render started") and
this script mints N branches with the offline provider on SQLite and PostgreSQL, concurrency
C, and prints the window's percentiles.

    .venv/bin/python bench/intent_window.py [--n 60] [--concurrency 1,20]
        [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

from _common import (
    default_postgres_url,
    fresh_postgres,
    make_settings,
    migrate,
    percentile,
    print_table,
    quiet_logging,
)

from world.service import WorldService

_RECORD = re.compile(r"record_ms=(\d+)")


class WindowLog(logging.Handler):
    """Collects record_ms from the pipeline's "render started" lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.windows: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = _RECORD.search(record.getMessage())
        if match:
            self.windows.append(float(match.group(1)))


async def run(backend: str, n: int, concurrency: int) -> list[object]:
    async with AsyncExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = (
            await stack.enter_async_context(fresh_postgres(default_postgres_url()))
            if backend == "postgres"
            else f"sqlite:///{root / 'window.db'}"
        )
        await migrate(url)
        settings = make_settings(root, url, providers={"offline_render_seconds": 0.0})
        service = await WorldService.start(settings, run_watchdog=False)
        handler = WindowLog()
        logging.getLogger("world.pipeline").addHandler(handler)
        logging.getLogger("world.pipeline").setLevel(logging.INFO)
        try:
            await mint(service, [""])
            level, started = ["0", "1", "2"], time.perf_counter()
            handler.windows.clear()
            minted = 0
            while minted < n:
                batch = level[: min(concurrency, n - minted)]
                await mint(service, batch)
                minted += len(batch)
                level = level[len(batch) :] + [f"{p}/{i}" for p in batch for i in range(3)]
            wall = time.perf_counter() - started
        finally:
            logging.getLogger("world.pipeline").removeHandler(handler)
            await service.close()
    w = sorted(handler.windows)
    return [backend, concurrency, len(w), percentile(w, 50), percentile(w, 99), max(w), wall]


async def mint(service: WorldService, batch: list[str]) -> None:
    await asyncio.gather(*(service.claim("default", p, None, "bench") for p in batch))
    for path in batch:
        async for _ in service.subscribe("default", path):
            pass


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--concurrency", default="1,20")
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    quiet_logging()
    rows = [
        await run(backend, args.n, int(c))
        for backend in args.backends.split(",")
        for c in args.concurrency.split(",")
    ]
    print("create answered -> job id committed (ms): the window a kill can land in")
    print_table(
        ["database", "concurrency", "creates", "p50 ms", "p99 ms", "max ms", "wall s"], rows
    )


if __name__ == "__main__":
    asyncio.run(main())
