"""Leases: fenced writes, the watchdog on SQLite and PostgreSQL, stop and restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.world import make_settings, renders_started, start_service
from tests.world.helpers import expire_lease, mint, render_rows, row, wait_for
from world import scenes
from world.types import ClaimOutcome, Status

SLOW = {"providers": {"offline_render_seconds": 3.0}}
PROJECT = Path(__file__).resolve().parents[2]


class StallWorker:
    """Another bot process on the same database, which the test can stall or kill."""

    def __init__(self, root: Path, database_url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.world.stall_worker", str(root), database_url],
            cwd=PROJECT,
            env={**os.environ, "PYTHONPATH": str(PROJECT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    async def wait_line(self, expected: str) -> None:
        line = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), 60)
        assert line.strip() == expected, line or self.process.stderr.read()

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def finish(self) -> str:
        _, err = self.process.communicate(timeout=60)
        return err

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=30)


async def test_a_job_that_lost_its_lease_cannot_overwrite_the_new_claim(tmp_path):
    settings = make_settings(tmp_path)
    service = await start_service(settings, run_watchdog=False)
    stalled = StallWorker(tmp_path, settings.database.url)
    try:
        await stalled.wait_line("rendering")
        stalled.signal(signal.SIGSTOP)  # the other process stalls mid-render
        old_token = (await row(service, "")).claim_token

        await expire_lease(service, "")
        assert await service.watchdog.run_once() == 1
        result = await service.claim("default", "", None, "bob")
        assert result.claimed_by_caller
        await wait_for(service, "", lambda e: e.status is Status.READY)
        ready = await row(service, "")
        assert ready.claim_token is None and ready.claim_token != old_token

        # A write with the old token is refused outright ...
        with pytest.raises(scenes.ClaimLost):
            async with service.db.transaction() as session:
                await scenes.job_update(session, "default", "", old_token, progress=1, title="x")
        # ... and the stalled process, once it wakes, stops without writing.
        stalled.signal(signal.SIGCONT)
        await stalled.wait_line("job ended")
        log = stalled.finish()
        assert "claim lost" in log
        after = await row(service, "")
        assert (after.status, after.title, after.asset_key, after.progress) == (
            "ready",
            ready.title,
            ready.asset_key,
            100,
        )
        assert len([r for r in await render_rows(service) if r.outcome == "ready"]) == 1
        assert renders_started(settings) == 1, "the new claim resumed the paid job"
    finally:
        stalled.kill()
        await service.close()


async def _watchdog_recycles_a_dead_process_claim(settings) -> None:
    service = await start_service(settings, run_watchdog=False)
    crashed = StallWorker(Path(settings.generation.spool_dir).parents[1], settings.database.url)
    try:
        await crashed.wait_line("rendering")
        crashed.kill()  # SIGKILL: no clean-up at all
        scene = await row(service, "")
        assert scene.status == "queued"
        await expire_lease(service, "")

        assert await service.watchdog.run_once() == 1

        scene = await row(service, "")
        assert scene.status == "pending"
        assert scene.claim_token is None
        assert scene.provider_job_id is not None, "the paid job stays findable"
        await service.claim("default", "", None, "bob")
        await wait_for(service, "", lambda e: e.status is Status.READY)
        assert renders_started(settings) == 1, "the crashed process's paid job was resumed"
    finally:
        crashed.kill()
        await service.close()


async def test_watchdog_recycles_a_dead_process_claim_on_sqlite(tmp_path):
    await _watchdog_recycles_a_dead_process_claim(make_settings(tmp_path))


async def test_watchdog_recycles_a_dead_process_claim_on_postgres(tmp_path, postgres_database):
    await _watchdog_recycles_a_dead_process_claim(make_settings(tmp_path, postgres_database))


async def test_the_watchdog_loop_recycles_by_itself(tmp_path):
    settings = make_settings(
        tmp_path, generation={"watchdog_interval_seconds": 1, "lease_seconds": 3}
    )
    await (await start_service(settings, run_watchdog=False)).close()  # migrate
    crashed = StallWorker(tmp_path, settings.database.url)
    await crashed.wait_line("rendering")
    crashed.kill()
    service = await start_service(settings)  # its watchdog runs every second
    try:
        await expire_lease(service, "")
        event = await wait_for(service, "", lambda e: e.status is Status.PENDING)
        assert event.status is Status.PENDING
    finally:
        await service.close()


async def test_stopping_mid_render_leaves_the_branch_resumable_and_resume_renders_nothing_new(
    tmp_path,
):
    settings = make_settings(tmp_path, **SLOW)
    service = await start_service(settings)
    await service.claim("default", "", None, "alice")
    await wait_for(service, "", lambda e: e.stage == "rendering" and e.progress > 10)
    await service.close()  # grace 0: the job is stopped at once

    scene = await row_of(settings, "")
    assert scene.status == "pending"
    assert scene.provider_job_id is not None
    assert scene.title, "the plan is kept too"
    assert renders_started(settings) == 1

    restarted = await start_service(settings)
    try:
        result = await restarted.claim("default", "", None, "bob")
        assert result.outcome is ClaimOutcome.QUEUED
        await wait_for(restarted, "", lambda e: e.status is Status.READY)
        assert (await row(restarted, "")).status == "ready"
    finally:
        await restarted.close()
    assert renders_started(settings) == 1, "resuming fetched the stored job instead of paying again"


async def row_of(settings, path):
    service = await start_service(settings, run_watchdog=False)
    try:
        return await row(service, path)
    finally:
        await service.close()


async def test_close_waits_for_running_jobs_within_the_grace_period(tmp_path):
    settings = make_settings(tmp_path, generation={"shutdown_grace_seconds": 30.0})
    service = await start_service(settings)
    await service.claim("default", "", None, "alice")
    await service.close()
    scene = await row_of(settings, "")
    assert scene.status == "ready"


async def test_a_closing_service_refuses_new_claims(settings, service):
    await service.close()
    result = await service.claim("default", "", None, "alice")
    assert result.outcome is ClaimOutcome.REFUSED
    assert result.reason == "shutting_down"


async def test_cancel_puts_a_queued_branch_back_and_keeps_the_paid_job(tmp_path):
    settings = make_settings(tmp_path, **SLOW)
    service = await start_service(settings)
    try:
        await service.claim("default", "", None, "alice")
        await wait_for(service, "", lambda e: e.stage == "rendering" and e.progress > 10)
        assert await service.cancel("default", "") is True
        scene = await row(service, "")
        assert scene.status == "pending" and scene.provider_job_id
        assert await service.cancel("default", "") is False
        await service.claim("default", "", None, "bob")
        await wait_for(service, "", lambda e: e.status is Status.READY)
        await mint(service, "0")
    finally:
        await service.close()
    assert renders_started(settings) == 2  # the root once (resumed after cancel) and "0"
