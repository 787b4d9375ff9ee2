"""Benchmark: `WorldService.world_map` (the /world map PNG) in a 100,000-scene world.

Seeds the ternary tree of ready scenes of bench/view.py (`seed`: breadth first, levels 0-10
full, level 11 partly) into a fresh SQLite file (and, with `--postgres`, a
fresh PostgreSQL database), then draws maps of depth `--depth` (4) around a few branches:
the root, a branch at depth 2, a deep branch at depth 7 (its lowest level runs past the
seeded scenes: unexplored choices), and the worst case, depth 6 around the root (1,092
possible nodes, cut at the node cap). Each map is drawn `--runs` times (after 2 warm-ups);
a call is timed from the call to the PNG bytes (the bounded read, the layout and the Pillow
drawing in a thread); the read and the drawing are also timed apart (p50, a few runs
each, the drawing here on the event loop's thread). Memory per map: the tracemalloc peak of
one call (Python objects: rows, nodes, layout) and the peak RSS growth of the process over
all its runs (sampled every 10 ms; includes Pillow's image buffer, which tracemalloc does
not see).

Targets: p95 < 300 ms and RSS growth < 50 MB for depth 4 around a branch on SQLite.

    .venv/bin/python bench/map.py [--scenes 100000] [--runs 20] [--depth 4] [--postgres]
                                  [--out DIR]  (DIR: where to save one PNG of each map)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import sys
import tempfile
import time
import tracemalloc
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from _common import (
    RssSampler,
    default_postgres_url,
    fresh_postgres,
    make_settings,
    migrate,
    percentile,
    print_table,
    quiet_logging,
    verdict,
)
from PIL import Image
from view import WORLD, _NoProvider, seed

from storage.local import LocalStore
from world import worldmap
from world.service import WorldService
from world.settings import Settings

P95_TARGET_MS = 300.0
RSS_TARGET_MB = 50.0
WARMUPS = 2


def cases(depth: int) -> list[tuple[str, str, int]]:
    return [
        ("root", "", depth),
        ("branch at depth 2", "1/2", depth),
        ("deep branch (depth 7)", "0/1/2/0/1/2/0", depth),
        ("worst case: root, depth 6", "", 6),
    ]


async def measure(
    service: WorldService, path: str, depth: int, runs: int, out: Path | None, name: str
) -> dict[str, Any]:
    for _ in range(WARMUPS):
        png = await service.world_map(WORLD, path, depth, highlight=path)
    gc.collect()
    timings: list[float] = []
    with RssSampler(interval=0.01) as rss:
        for _ in range(runs):
            started = time.perf_counter()
            png = await service.world_map(WORLD, path, depth, highlight=path)
            timings.append((time.perf_counter() - started) * 1000)
    reads: list[float] = []
    draws: list[float] = []
    for _ in range(max(3, runs // 4)):  # the two halves apart: the query, then the drawing
        started = time.perf_counter()
        async with service.db.session() as session:
            tree = await worldmap.read_tree(session, WORLD, path, depth, highlight=path)
        reads.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        worldmap.draw_map(tree)
        draws.append((time.perf_counter() - started) * 1000)
    tracemalloc.start()
    tracemalloc.reset_peak()
    await service.world_map(WORLD, path, depth, highlight=path)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    image = Image.open(io.BytesIO(png))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name.split(':')[0].replace(' ', '-')}-{depth}.png").write_bytes(png)
    return {
        "p50": percentile(timings, 50),
        "p95": percentile(timings, 95),
        "max": max(timings),
        "read": percentile(reads, 50),
        "draw": percentile(draws, 50),
        "nodes": len(tree.nodes),
        "traced_mb": traced_peak / (1024 * 1024),
        "rss_mb": rss.growth_mb,
        "size": f"{image.width}x{image.height}",
        "kb": len(png) / 1024,
    }


async def bench_database(
    label: str, settings: Settings, args: argparse.Namespace
) -> list[list[Any]]:
    await migrate(settings.database.url)
    local = LocalStore(Path(settings.storage.local_dir), "https://bench.invalid/assets")
    service = await WorldService.start(
        settings, store=local, providers={WORLD: _NoProvider()}, run_watchdog=False
    )
    rows: list[list[Any]] = []
    try:
        pool, seconds = await seed(service, args.scenes)
        print(f"{label}: seeded {len(pool):,} ready scenes in {seconds:.1f} s")
        for name, path, depth in cases(args.depth):
            result = await measure(service, path, depth, args.runs, args.out, name)
            target = "-"
            if label == "sqlite" and path and depth == args.depth:
                met = result["p95"] < P95_TARGET_MS and result["rss_mb"] < RSS_TARGET_MB
                target = verdict(met)
            rows.append(
                [
                    label,
                    name,
                    depth,
                    result["nodes"],
                    args.runs,
                    result["p50"],
                    result["p95"],
                    result["max"],
                    result["read"],
                    result["draw"],
                    result["traced_mb"],
                    result["rss_mb"],
                    result["size"],
                    result["kb"],
                    target,
                ]
            )
    finally:
        await service.close()
    return rows


async def main(args: argparse.Namespace) -> int:
    print(
        f"map: {args.scenes:,} ready scenes (ternary tree); service.world_map, {args.runs} runs "
        "per map after 2 warm-ups; time = call to PNG bytes"
    )
    rows: list[list[Any]] = []
    async with AsyncExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sw-bench-map-")))
        sqlite_root = root / "sqlite"
        settings = make_settings(sqlite_root, f"sqlite:///{sqlite_root / 'world.db'}")
        rows += await bench_database("sqlite", settings, args)
        if args.postgres:
            database_url = await stack.enter_async_context(fresh_postgres(args.postgres_url))
            rows += await bench_database("postgres", make_settings(root / "pg", database_url), args)
    print()
    print_table(
        [
            "db",
            "map around",
            "depth",
            "nodes",
            "runs",
            "p50 ms",
            "p95 ms",
            "max ms",
            "read p50",
            "draw p50",
            "tracemalloc peak MB",
            "RSS growth MB",
            "PNG px",
            "PNG KiB",
            f"p95 < {P95_TARGET_MS:.0f} ms, RSS < {RSS_TARGET_MB:.0f} MB (sqlite, a branch)",
        ],
        rows,
    )
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--postgres", action="store_true", help="also bench PostgreSQL")
    parser.add_argument("--postgres-url", default=default_postgres_url())
    parser.add_argument("--out", type=Path, help="save one PNG of each map here")
    return parser.parse_args(argv)


if __name__ == "__main__":
    quiet_logging()
    sys.exit(asyncio.run(main(parse_args(sys.argv[1:]))))
