"""Invariant 1: exactly one paid generation per branch, however many people click at once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.world import make_settings, renders_started, start_service
from world.types import ClaimOutcome, Status

PROJECT = Path(__file__).resolve().parents[2]


async def _mint_opening_scene_by_many(service, callers: int) -> list[tuple[str, str]]:
    async def one(i: int) -> tuple[str, str]:
        result = await service.claim("default", "", None, f"member-{i}")
        final = None
        async for event in service.subscribe("default", ""):
            final = event.status
        return result.outcome.value, final.value

    return await asyncio.gather(*(one(i) for i in range(callers)))


async def test_200_concurrent_claims_on_sqlite_start_one_render(settings, service):
    outcomes = await _mint_opening_scene_by_many(service, 200)

    assert renders_started(settings) == 1
    assert {claimed for claimed, _ in outcomes} == {"queued"}
    assert {final for _, final in outcomes} == {"ready"}
    assert len(service.locks) == 0, "per-path locks must be released"
    assert service.events.channel_count() == 0, "progress channels must be cleaned up"
    assert service.events.subscriber_count() == 0, "subscribers must be cleaned up"


async def test_200_concurrent_claims_on_postgres_start_one_render(tmp_path, postgres_database):
    settings = make_settings(tmp_path, postgres_database)
    service = await start_service(settings)
    try:
        outcomes = await _mint_opening_scene_by_many(service, 200)
    finally:
        await service.close()
    assert renders_started(settings) == 1
    assert {claimed for claimed, _ in outcomes} == {"queued"}
    assert {final for _, final in outcomes} == {"ready"}


async def test_a_ready_branch_is_replayed_without_a_new_render(settings, service):
    await _mint_opening_scene_by_many(service, 1)
    again = await service.claim("default", "", None, "latecomer")
    assert again.outcome is ClaimOutcome.READY
    assert renders_started(settings) == 1


def _run_workers(
    tmp_path: Path,
    database_url: str,
    processes: int,
    per_process: int,
    targets: list[str] | None = None,
) -> list[dict]:
    config = tmp_path / "claim.json"
    config.write_text(
        json.dumps(
            {
                "root": str(tmp_path),
                "database_url": database_url,
                "path": "",
                "paths": targets or [""],
            }
        )
    )
    start_at = time.time() + 4.0  # every process is up and waiting by then
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.world.claim_worker",
                str(config),
                str(start_at),
                str(per_process),
            ],
            cwd=PROJECT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-2000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


@pytest.mark.postgres
async def test_4_processes_x_50_claims_on_postgres_start_one_render(tmp_path, postgres_database):
    settings = make_settings(tmp_path, postgres_database)
    await (await start_service(settings)).close()  # migrate and seed once

    reports = await asyncio.to_thread(_run_workers, tmp_path, postgres_database, 4, 50)

    assert all(report["errors"] == [] for report in reports)
    results = [r for report in reports for r in report["results"]]
    assert len(results) == 200
    assert renders_started(settings) == 1
    assert sum(r["won"] for r in results) == 1
    assert {r["outcome"] for r in results} == {"queued"}
    assert {r["final"] for r in results} == {Status.READY.value}


async def test_claims_of_different_branches_do_not_wait_for_each_other(settings, service):
    await _mint_opening_scene_by_many(service, 1)
    results = await asyncio.gather(*(service.claim("default", str(i), None, "m") for i in range(3)))
    assert all(r.claimed_by_caller for r in results)
    for i in range(3):
        async for _ in service.subscribe("default", str(i)):
            pass
    assert renders_started(settings) == 4


async def test_an_abandoned_subscriber_does_not_keep_a_poller_running(tmp_path):
    import gc

    settings = make_settings(tmp_path, providers={"offline_render_seconds": 3.0})
    service = await start_service(settings)
    try:
        await service.claim("default", "", None, "alice")
        events = service.subscribe("default", "")
        first = await anext(events)  # attached, never closed
        assert first.status is Status.QUEUED
        assert service.events.channel_count() == 1
        del events
        gc.collect()
        async with asyncio.timeout(10):
            while service.events.channel_count():
                await asyncio.sleep(0.1)
    finally:
        await service.close()


@pytest.mark.postgres
async def test_8_processes_x_250_claims_over_20_branches_on_postgres(tmp_path, postgres_database):
    """8 processes at the default pool size stay inside max_connections (100), and a claim that
    meets a saturated server waits instead of failing: 0 errors, 20 renders."""
    settings = make_settings(tmp_path, postgres_database)
    service = await start_service(settings)
    try:
        for level in ([""], ["0", "1", "2"], [f"{a}/{b}" for a in range(3) for b in range(3)]):
            await asyncio.gather(*(service.claim("default", p, None, "seed") for p in level))
            for path in level:
                async for _ in service.subscribe("default", path):
                    pass
        budget = await service.db.connection_budget()
    finally:
        await service.close()
    seeded = renders_started(settings)
    leaves = [f"{a}/{b}/{c}" for a in range(3) for b in range(3) for c in range(3)][:20]

    reports = await asyncio.to_thread(_run_workers, tmp_path, postgres_database, 8, 250, leaves)

    errors = [e for report in reports for e in report["errors"]]
    assert errors == []
    results = [r for report in reports for r in report["results"]]
    assert len(results) == 2000
    assert renders_started(settings) - seeded == 20
    assert sum(r["won"] for r in results) == 20
    assert {r["final"] for r in results} == {Status.READY.value}
    assert budget is not None and budget[0] - budget[1] >= 8 * 10, "the documented sizing fits"
