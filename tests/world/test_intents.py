"""Invariants 1 and 2 where a paid create and its job id can come apart.

A create is announced (its intent committed) before it is sent. A cancel, a kill or a timeout
between "the create returned" and "its job id is stored" then leaves a branch the next attempt
reconciles: it waits for a create still in flight, looks the job up where the provider can,
and otherwise asks the next payer to confirm instead of paying again.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.openrouter_server import FakeOpenRouter
from tests.fixtures.providers import GOOD_OR_KEY, mint_with, paid_service, paid_settings
from tests.fixtures.world import make_settings, offline_provider, renders_started, start_service
from tests.world.helpers import expire_lease, row
from world.db import Database
from world.types import ClaimOutcome, Credentials, Status

PROJECT = Path(__file__).resolve().parents[2]


async def test_cancel_during_a_slow_create_then_reclaim_pays_once(tmp_path, openrouter):
    openrouter.add_key(GOOD_OR_KEY, create_delay=0.6)
    service = await paid_service(paid_settings(tmp_path, "openrouter", openrouter.base_url))
    try:
        await service.claim("default", "", Credentials(GOOD_OR_KEY), "alice")
        async with asyncio.timeout(10):
            while not openrouter.creates:  # the create is on the wire, not answered yet
                await asyncio.sleep(0.01)
        assert await service.cancel("default", "")
        again = await service.claim("default", "", Credentials(GOOD_OR_KEY), "bob")
        assert again.claimed_by_caller
        async for _ in service.subscribe("default", ""):
            pass
        scene = await row(service, "")
    finally:
        await service.close()
    assert scene.status == "ready"
    assert len(openrouter.creates) == 1, "the second claim waited for the first create"
    assert scene.provider_job_id == openrouter.creates[0].job_id


async def test_a_cancel_in_another_process_during_a_create_is_waited_for(tmp_path, openrouter):
    """The re-claim cannot see the other process's create; it waits out the create window."""
    openrouter.add_key(GOOD_OR_KEY, create_delay=0.8)
    settings = paid_settings(
        tmp_path, "openrouter", openrouter.base_url, providers={"create_timeout_seconds": 2.0}
    )
    first = await paid_service(settings)
    second = await paid_service(settings)
    try:
        await first.claim("default", "", Credentials(GOOD_OR_KEY), "alice")
        async with asyncio.timeout(10):
            while not openrouter.creates:
                await asyncio.sleep(0.01)
        assert await second.cancel("default", "")  # an admin in the other process
        again = await second.claim("default", "", Credentials(GOOD_OR_KEY), "bob")
        assert again.claimed_by_caller
        async for _ in second.subscribe("default", ""):
            pass
        scene = await row(second, "")
    finally:
        await first.close()
        await second.close()
    assert scene.status == "ready"
    assert len(openrouter.creates) == 1
    assert scene.provider_job_id == openrouter.creates[0].job_id


def _run_kill_worker(root: Path, database_url: str, lookup: str) -> int:
    process = subprocess.run(
        [sys.executable, "-m", "tests.world.kill_worker", str(root), database_url, lookup],
        cwd=PROJECT,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return process.returncode


async def _killed_right_after_create(tmp_path: Path, lookup: str):
    settings = make_settings(tmp_path, providers={"create_timeout_seconds": 0.5})
    db = Database(settings.database.url)
    await db.upgrade()
    await db.close()
    code = await asyncio.to_thread(_run_kill_worker, tmp_path, settings.database.url, lookup)
    assert code == -9, "the worker died by SIGKILL"
    assert renders_started(settings) == 1, "the render was paid before the kill"
    provider = offline_provider(settings)
    provider.can_find_renders = lookup == "yes"
    service = await start_service(settings, providers={"default": provider}, run_watchdog=False)
    killed = await row(service, "")
    assert killed.provider_job_id is None and killed.render_attempt is not None
    await expire_lease(service, "")
    assert await service.watchdog.run_once() == 1
    return settings, service


async def test_a_kill_after_create_resumes_the_paid_job_where_the_provider_can_look_it_up(
    tmp_path,
):
    settings, service = await _killed_right_after_create(tmp_path, "yes")
    try:
        result = await service.claim("default", "", None, "bob")
        assert result.claimed_by_caller
        async for _ in service.subscribe("default", ""):
            pass
        scene = await row(service, "")
    finally:
        await service.close()
    assert scene.status == "ready"
    assert renders_started(settings) == 1, "no second render"


async def test_a_kill_after_create_asks_the_next_payer_where_the_provider_cannot_look(tmp_path):
    settings, service = await _killed_right_after_create(tmp_path, "no")
    try:
        await service.claim("default", "", None, "bob")
        async for _ in service.subscribe("default", ""):
            pass
        scene = await row(service, "")
        assert (scene.status, scene.failure_code) == ("failed", "uncertain")
        assert "may already have been started" in scene.failure_detail
        assert renders_started(settings) == 1, "nothing was paid silently"

        refused = await service.claim("default", "", None, "carol")
        assert refused.outcome is ClaimOutcome.REFUSED and refused.reason == "uncertain"
        assert "confirm" in refused.message
        view = await service.view("default", "")
        assert view.failure_code == "uncertain"

        confirmed = await service.claim("default", "", None, "carol", confirm_uncertain=True)
        assert confirmed.claimed_by_caller
        async for _ in service.subscribe("default", ""):
            pass
        scene = await row(service, "")
    finally:
        await service.close()
    assert scene.status == "ready"
    assert renders_started(settings) == 2, "the confirmed payer paid once more, knowingly"


@pytest.mark.parametrize("status", [503, "timeout"])
async def test_a_create_with_an_unknown_outcome_is_not_paid_again_without_confirmation(
    tmp_path, clip_bytes, status
):
    async with FakeOpenRouter(clip=clip_bytes) as fake:
        behaviour = {"create_status": 503} if status == 503 else {"create_delay": 1.0}
        fake.add_key(GOOD_OR_KEY, **behaviour)
        settings = paid_settings(
            tmp_path, "openrouter", fake.base_url, providers={"create_timeout_seconds": 0.3}
        )
        service = await paid_service(settings)
        try:
            first = await mint_with(service, "", GOOD_OR_KEY)
            assert first.status is Status.FAILED
            fake.add_key(GOOD_OR_KEY)  # the provider is healthy again
            second = await mint_with(service, "", GOOD_OR_KEY)
            scene = await row(service, "")
            assert (second.status, scene.failure_code) == (Status.FAILED, "uncertain")
            assert len(fake.creates) == 1, "the retry did not pay again on its own"
            await service.claim(
                "default", "", Credentials(GOOD_OR_KEY), "m", confirm_uncertain=True
            )
            async for _ in service.subscribe("default", ""):
                pass
            scene = await row(service, "")
        finally:
            await service.close()
        assert scene.status == "ready"
        assert len(fake.accepted_creates) == (2 if status == "timeout" else 1)
        fake.creates.clear()  # a knowingly confirmed second payment is not a defect
