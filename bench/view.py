"""Benchmark: `WorldService.view` of random ready scenes in a 100,000-scene world.

Seeds a ternary tree of ready scenes (breadth first: the opening scene, its 3 children, their
9, ...) with realistic titles, narration, video prompts, choices JSON, state summaries and
asset keys, by SQLAlchemy Core executemany in batches, into a fresh SQLite file (and, with
`--postgres`, a fresh `sw_bench_<random>` PostgreSQL database). Then `--calls` views of
random ready scenes run at concurrency `--concurrency` (asyncio tasks sharing one service);
each call is timed from the call to its return, queueing for a pooled connection included.

Lines printed per database: local store at concurrency 1 (reference, no queueing), local
store at `--concurrency`, and the S3 store (presigned video and poster URLs, moto server in
a child process; presigning is local HMAC work, the cache of 4096 URLs rarely hits here).
Target: p99 < 5 ms on SQLite at concurrency 64 with local storage.

    .venv/bin/python bench/view.py [--scenes 100000] [--calls 5000] [--concurrency 64]
                                   [--postgres] [--no-s3]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import (
    MotoProcess,
    default_postgres_url,
    fresh_postgres,
    make_settings,
    migrate,
    percentile,
    print_table,
    quiet_logging,
    verdict,
)

from storage.base import AssetStore
from storage.local import LocalStore
from storage.s3 import S3Store
from world import paths
from world.models import Scene, utcnow
from world.pipeline import asset_keys
from world.service import WorldService
from world.settings import Settings
from world.types import Status

WORLD = "default"
P99_TARGET_MS = 5.0
BATCH = 10_000
REFERENCE_CALLS = 1_000

_PLACES = [
    "neon arcade city",
    "clockwork jungle",
    "drowned cathedral",
    "orbital bazaar",
    "glass desert",
    "sky harbour",
    "mirror library",
    "lava foundry",
    "frozen observatory",
    "paper lantern town",
]
_VERBS = ["Sprint", "Climb", "Bargain", "Hide", "Leap", "Follow", "Decode", "Shout", "Wait"]
_TEXT = (
    "the courier races through rain of sparks while a violet rift widens overhead and "
    "distant bells answer each step as allies shout warnings from crumbling balconies and "
    "glowing shards hum in the satchel pulling toward a gate that flickers between worlds"
)
_WORDS = tuple(_TEXT.split())


def _sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _choice_pool(rng: random.Random, size: int = 300) -> list[dict[str, str]]:
    pool = []
    for i in range(size):
        verb = _VERBS[i % len(_VERBS)]
        place = _PLACES[(i // len(_VERBS)) % len(_PLACES)]
        pool.append(
            {
                "label": f"{verb} toward the {place} {_sentence(rng, 9)[:-1].lower()} ({i})",
                "short_label": f"{verb} to the {place} ({i})",
            }
        )
    return pool


def tree_paths(count: int) -> Iterator[str]:
    """The first `count` paths of the ternary tree, breadth first (parents before children)."""
    level = [""]
    produced = 0
    while True:
        next_level = []
        for path in level:
            yield path
            produced += 1
            if produced >= count:
                return
            next_level.extend(paths.children(path))
        level = next_level


def scene_rows(count: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    narrations = [" ".join(_sentence(rng, 12) for _ in range(7)) for _ in range(200)]
    prompts = [" ".join(_sentence(rng, 15) for _ in range(4)) for _ in range(200)]
    summaries = [
        "\n".join(f"- {kind}: {_sentence(rng, 14)}" for kind in ("Now", "Earlier", "Open paths"))
        for _ in range(100)
    ]
    pool = _choice_pool(rng)
    now = utcnow()
    choices_of: dict[str, list[dict[str, str]]] = {}
    for i, path in enumerate(tree_paths(count)):
        first = (i * 7) % len(pool)
        choices = [pool[(first + k * 101) % len(pool)] for k in range(3)]
        choices_of[path] = choices
        parent = paths.parent(path)
        index = paths.last_index(path)
        label = None
        if parent is not None and index is not None:
            label = choices_of[parent][index]["label"]
        job_id = f"offline-{uuid.UUID(int=rng.getrandbits(128)).hex}"
        video_key, poster_key = asset_keys(WORLD, path, job_id)
        created = now - timedelta(seconds=count - i)
        yield {
            "world_id": WORLD,
            "path": path,
            "parent_path": parent,
            "depth": paths.depth(path),
            "choice_index": index,
            "choice_label": label,
            "status": Status.READY.value,
            "title": f"{_PLACES[i % len(_PLACES)].title()}: {_sentence(rng, 4)[:-1]}",
            "narration": narrations[i % len(narrations)],
            "video_prompt": prompts[i % len(prompts)],
            "choices": choices,
            "state_summary": summaries[i % len(summaries)],
            "asset_key": video_key,
            "poster_key": poster_key,
            "asset_bytes": rng.randint(900_000, 4_000_000),
            "provider": "offline",
            "provider_job_id": job_id,
            "progress": 100,
            "failure_code": None,
            "failure_detail": None,
            "claim_token": None,
            "contributor": f"{rng.getrandbits(128):032x}",
            "claimed_at": created,
            "lease_until": None,
            "attempts": 1,
            "created_at": created,
            "updated_at": created,
        }


async def seed(service: WorldService, count: int) -> tuple[list[str], float]:
    """Bulk insert `count` ready scenes; return their paths and the seconds it took."""
    started = time.perf_counter()
    table = Scene.__table__
    seeded: list[str] = []
    batch: list[dict[str, Any]] = []
    async with service.db.engine.begin() as connection:
        for row in scene_rows(count):
            batch.append(row)
            seeded.append(row["path"])
            if len(batch) >= BATCH:
                await connection.execute(table.insert(), batch)
                batch = []
        if batch:
            await connection.execute(table.insert(), batch)
    return seeded, time.perf_counter() - started


async def measure(
    service: WorldService, pool: list[str], calls: int, concurrency: int, seed: int
) -> dict[str, float]:
    rng = random.Random(seed)
    picks = [rng.choice(pool) for _ in range(calls)]
    latencies: list[float] = []
    cursor = 0

    async def worker() -> None:
        nonlocal cursor
        while cursor < len(picks):
            path = picks[cursor]
            cursor += 1
            t0 = time.perf_counter()
            view = await service.view(WORLD, path)
            latencies.append((time.perf_counter() - t0) * 1000)
            if view.status is not Status.READY or len(view.choices) != 3:
                raise RuntimeError(f"unexpected view of {path!r}: {view.status}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies),
        "ops": len(latencies) / elapsed,
    }


async def bench_database(
    label: str, settings: Settings, args: argparse.Namespace, moto: MotoProcess | None
) -> list[list[Any]]:
    url = settings.database.url
    await migrate(url)
    local = LocalStore(Path(settings.storage.local_dir), "https://bench.invalid/assets")
    service = await WorldService.start(
        settings, store=local, providers={WORLD: _NoProvider()}, run_watchdog=False
    )
    rows = []
    try:
        pool, seconds = await seed(service, args.scenes)
        print(f"{label}: seeded {len(pool):,} ready scenes in {seconds:.1f} s")
        await measure(service, pool, 300, args.concurrency, seed=1)  # warm the pool and caches
        # Cold: every call a random scene of the whole world (the database answers each).
        # Hot: channels replaying the scenes they are on (the view cache answers most).
        hot = random.Random(3).sample(pool, min(args.hot, len(pool)))
        runs: list[tuple[str, AssetStore, int, int, list[str]]] = [
            ("local", local, 1, min(args.calls, REFERENCE_CALLS), pool),
            ("local", local, args.concurrency, args.calls, pool),
            ("local", local, args.concurrency, args.calls, hot),
        ]
        if moto is not None:
            s3 = S3Store(moto.new_bucket())
            runs.append(("s3 presigned", s3, args.concurrency, args.calls, pool))
            runs.append(("s3 presigned", s3, args.concurrency, args.calls, hot))
        for index, (store_name, store, concurrency, calls, working) in enumerate(runs):
            service.use_store(store)  # a store not in use: cached views (its URLs) dropped
            if store_name.startswith("s3"):
                sample = await service.view(WORLD, pool[-1])
                assert sample.video_url and "X-Amz-Signature=" in sample.video_url, sample
            if working is not pool:  # the scenes channels are on were shown when posted
                await asyncio.gather(*(service.view(WORLD, p) for p in working))
            result = await measure(service, working, calls, concurrency, seed=100 + index)
            if concurrency == 1:
                target = "reference"
            elif label == "sqlite":
                target = verdict(result["p99"] < P99_TARGET_MS)
            else:
                target = "-"
            rows.append(
                [
                    label,
                    store_name,
                    "all" if working is pool else f"hot {len(working)}",
                    concurrency,
                    calls,
                    result["p50"],
                    result["p99"],
                    result["max"],
                    round(result["ops"]),
                    target,
                ]
            )
            if store is not local and index == len(runs) - 1:
                await store.close()
    finally:
        service.use_store(local)
        await service.close()
    return rows


class _NoProvider:
    """The view benchmark never generates; a provider object is still required."""

    name = "none"
    needs_key = False
    reports_progress = False

    async def close(self) -> None:
        return None


async def main(args: argparse.Namespace) -> int:
    print(
        f"view: {args.scenes:,} ready scenes (ternary tree), {args.calls:,} views of random "
        f"ready scenes at concurrency {args.concurrency}; latency = service.view call to return"
    )
    rows: list[list[Any]] = []
    async with AsyncExitStack() as stack:
        moto = None
        if not args.no_s3:
            moto = stack.enter_context(MotoProcess())
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sw-bench-view-")))
        sqlite_root = root / "sqlite"
        settings = make_settings(sqlite_root, f"sqlite:///{sqlite_root / 'world.db'}")
        rows += await bench_database("sqlite", settings, args, moto)
        if args.postgres:
            database_url = await stack.enter_async_context(fresh_postgres(args.postgres_url))
            pg_settings = make_settings(root / "postgres", database_url)
            rows += await bench_database("postgres", pg_settings, args, moto)
    print()
    print_table(
        [
            "db",
            "store",
            "scenes viewed",
            "concurrency",
            "calls",
            "p50 ms",
            "p99 ms",
            "max ms",
            "ops/s",
            "p99 < 5 ms (sqlite, c>1)",
        ],
        rows,
    )
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--hot", type=int, default=300, help="working set of the hot runs")
    parser.add_argument("--postgres", action="store_true", help="also bench PostgreSQL")
    parser.add_argument("--postgres-url", default=default_postgres_url())
    parser.add_argument("--no-s3", action="store_true", help="skip the S3-store line")
    return parser.parse_args(argv)


if __name__ == "__main__":
    quiet_logging()
    sys.exit(asyncio.run(main(parse_args(sys.argv[1:]))))
