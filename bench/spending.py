"""Benchmark: what the fair-spending caps add to a claim (world/spending.py).

A fresh database with `--scenes` scenes and as many renders spread over the last 48 hours,
by 1,000 members in 20 servers (2 % of the scenes in progress). Measures, on SQLite and
optionally PostgreSQL:

- the cap check alone (member and server: mints in progress and spend today, plus the
  advisory locks on PostgreSQL), in its own transaction, `--checks` times;
- a whole `service.claim` of a fresh branch with every cap on against the same claim with
  the caps off (`--claims` each, claims of different members one after another).

Target: the cap check p99 < 20 ms on SQLite. Run:
`.venv/bin/python bench/spending.py [--scenes 100000] [--checks 300] [--claims 100] [--postgres]`
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from _common import (
    default_postgres_url,
    fresh_postgres,
    make_settings,
    migrate,
    percentile,
    print_table,
    quiet_logging,
    verdict,
)
from sqlalchemy import insert
from view import seed as seed_tree
from view import tree_paths

from world.claims import contributor_id
from world.models import Render, Scene, utcnow
from world.service import WorldService
from world.settings import LimitsSettings, Settings
from world.spending import SpendingGuard

MEMBERS = 1000
SERVERS = 20
TREE = 1093  # a ready ternary tree of depth 6 (bench/view.py); claims go to depth 7
CAPS = LimitsSettings(
    member_concurrent_mints=1000,
    server_concurrent_mints=1000,
    member_daily_usd=1e6,
    server_daily_usd=1e6,
)


async def seed(service: WorldService, count: int) -> None:
    """`count` depth-1..n scenes (not a playable tree: only the spending columns matter)."""
    salt = service.settings.generation.contributor_salt
    members = [contributor_id(salt, f"m{i}") for i in range(MEMBERS)]
    servers = [contributor_id(salt, f"g{i}") for i in range(SERVERS)]
    now = utcnow()
    batch = 20_000
    for start in range(0, count, batch):
        rows = range(start, min(count, start + batch))
        async with service.db.transaction() as session:
            await session.execute(
                insert(Scene),
                [
                    {
                        "world_id": "default",
                        "path": f"seed/{i}",
                        "depth": 1,
                        "status": "queued" if i % 50 == 0 else "ready",
                        "progress": 0,
                        "attempts": 1,
                        "contributor": members[i % MEMBERS],
                        "guild": servers[i % SERVERS],
                        "reserved_cost_usd": 0.8,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in rows
                ],
            )
            await session.execute(
                insert(Render),
                [
                    {
                        "world_id": "default",
                        "scene_id": 1,  # the opening scene: only the spending columns matter
                        "path": f"seed/{i}",
                        "provider": "bench",
                        "planner_model": "p",
                        "video_model": "v",
                        "contributor": members[i % MEMBERS],
                        "guild": servers[i % SERVERS],
                        "outcome": "ready",
                        "estimated_cost_usd": 0.8,
                        "created_at": now - timedelta(hours=i % 48),
                    }
                    for i in rows
                ],
            )


async def run(settings: Settings, scenes: int, checks: int, claims: int) -> list[list[object]]:
    await migrate(settings.database.url)
    rows: list[list[object]] = []
    service = await WorldService.start(settings, run_watchdog=False)
    try:
        await seed_tree(service, TREE)
        await seed(service, scenes)
        guard = SpendingGuard(CAPS)
        salt = settings.generation.contributor_salt
        times = []
        for i in range(checks):
            member = contributor_id(salt, f"m{i % MEMBERS}")
            server = contributor_id(salt, f"g{i % SERVERS}")
            started = time.perf_counter()
            async with service.db.transaction() as session:
                await guard.check(session, member, server, 0.8)
            times.append((time.perf_counter() - started) * 1000)
        rows.append(_row(service.db.dialect, "cap check", times, target=20.0))
    finally:
        await service.close()
    fresh = list(tree_paths(TREE + 2 * claims))[TREE:]  # unexplored, under ready scenes
    for label, limits, targets in (
        ("claim, caps off", LimitsSettings(), fresh[:claims]),
        ("claim, caps on", CAPS, fresh[claims:]),
    ):
        rows.append(await _claims(replace(settings, limits=limits), label, targets))
    return rows


async def _claims(settings: Settings, label: str, targets: list[str]) -> list[object]:
    # The offline renders take longer than the claims: no clip is drawn meanwhile, so the
    # figures are the claims' own, not the CPU of renders running beside them.
    providers = replace(settings.providers, offline_render_seconds=600.0)
    service = await WorldService.start(replace(settings, providers=providers), run_watchdog=False)
    try:
        times = []
        for i, path in enumerate(targets):  # one claim of each fresh branch
            started = time.perf_counter()
            await service.claim("default", path, None, f"m{i % MEMBERS}", guild=f"g{i % SERVERS}")
            times.append((time.perf_counter() - started) * 1000)
        return _row(service.db.dialect, label, times)
    finally:
        await service.close()


def _row(dialect: str, what: str, times: list[float], target: float | None = None) -> list[object]:
    p99 = percentile(times, 99)
    met = "" if target is None else verdict(p99 < target)
    return [
        dialect,
        what,
        len(times),
        f"{percentile(times, 50):.2f}",
        f"{percentile(times, 95):.2f}",
        f"{p99:.2f}",
        met,
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=100_000)
    parser.add_argument("--checks", type=int, default=300)
    parser.add_argument("--claims", type=int, default=100)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--postgres-url", default=default_postgres_url())
    args = parser.parse_args()
    quiet_logging()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sw-bench-spending-") as tmp:
        settings = make_settings(Path(tmp) / "sqlite")
        rows += await run(settings, args.scenes, args.checks, args.claims)
        if args.postgres:
            async with fresh_postgres(args.postgres_url) as url:
                settings = make_settings(Path(tmp) / "postgres", url)
                rows += await run(settings, args.scenes, args.checks, args.claims)
    print(f"{args.scenes} scenes and renders, {MEMBERS} members, {SERVERS} servers")
    print_table(["database", "what", "n", "p50 ms", "p95 ms", "p99 ms", "target"], rows)


if __name__ == "__main__":
    asyncio.run(main())
