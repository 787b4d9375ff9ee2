"""Failures: plain reasons, no auto-retry of refused work, retry for admins."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from tests.fixtures.faulty_offline import BLOCK_MARKER, FAIL_MARKER, FaultyOfflineProvider
from tests.fixtures.world import offline_jobs_dir, renders_started, start_service
from tests.world.helpers import mint, render_rows, row, wait_for
from world.models import Scene
from world.providers.base import ProviderError
from world.providers.offline import OfflineProvider
from world.types import ClaimOutcome, Status


async def _mark_choice(service, path: str, index: int, marker: str) -> None:
    scene = await row(service, path)
    choices = [dict(c) for c in scene.choices]
    choices[index]["label"] = f"{marker} {choices[index]['label']}"
    async with service.db.transaction() as session:
        await session.execute(update(Scene).where(Scene.id == scene.id).values(choices=choices))


@pytest.fixture
async def faulty_service(settings):
    """A service whose provider refuses marked plans and renders (see faulty_offline)."""
    provider = FaultyOfflineProvider(settings.providers, offline_jobs_dir(settings))
    service = await start_service(settings, providers={"default": provider})
    try:
        yield service
    finally:
        await service.close()


async def test_a_blocked_render_fails_plainly_and_only_retry_reopens_it(settings, faulty_service):
    service = faulty_service
    await mint(service, "")
    await _mark_choice(service, "", 0, FAIL_MARKER)

    await service.claim("default", "0", None, "alice")
    failed = await wait_for(service, "0", lambda e: e.status is Status.FAILED)
    assert failed.failure_code == "blocked"
    assert failed.failure_detail.endswith(".")

    refused = await row(service, "0")
    assert refused.provider_job_id is None, "a refused job cannot be resumed"
    assert refused.video_prompt is None, "the plan that was refused is not reused"

    again = await service.claim("default", "0", None, "bob")
    assert again.outcome is ClaimOutcome.REFUSED
    assert again.reason == "failed_final"

    retried = await service.retry("default", "0", None, "admin")
    assert retried.claimed_by_caller
    await wait_for(service, "0", lambda e: e.status is Status.FAILED)
    metrics = await service.metrics("default")
    assert metrics.failures_by_code == {"blocked": 2}
    assert metrics.success_rate == 1 / 3
    assert len(await render_rows(service)) == 3
    assert renders_started(settings) == 3, "the retry planned and rendered afresh"


async def test_retry_refuses_a_branch_that_has_not_failed(settings, service):
    await mint(service, "")
    await service.claim("default", "1", None, "alice")
    await wait_for(service, "1", lambda e: e.status is Status.READY)

    unexplored = await service.retry("default", "2", None, "admin")
    ready = await service.retry("default", "1", None, "admin")

    assert unexplored.outcome is ClaimOutcome.REFUSED
    assert unexplored.reason == "not_failed"
    assert ready.outcome is ClaimOutcome.READY  # nothing to retry: it plays
    assert renders_started(settings) == 2


async def test_a_planner_refusal_fails_the_branch_without_rendering(settings, faulty_service):
    service = faulty_service
    await mint(service, "")
    await _mark_choice(service, "", 0, BLOCK_MARKER)
    await service.claim("default", "0", None, "alice")
    failed = await wait_for(service, "0", lambda e: e.status is Status.FAILED)
    assert failed.failure_code == "blocked"
    assert renders_started(settings) == 1  # only the opening scene


class _KeyedOffline(OfflineProvider):
    """The offline provider, but a world that needs a contributor's key (test double)."""

    needs_key = True


async def test_without_a_key_anyone_waits_free_on_a_branch_being_minted(tmp_path):
    from tests.fixtures.world import make_settings, offline_jobs_dir, start_service
    from world.types import Credentials

    settings = make_settings(tmp_path, providers={"offline_render_seconds": 2.0})
    provider = _KeyedOffline(settings.providers, offline_jobs_dir(settings))
    service = await start_service(settings, providers={"default": provider})
    try:
        refused = await service.claim("default", "", None, "no-key")
        assert refused.outcome is ClaimOutcome.REFUSED and refused.reason == "key_required"
        assert await row(service, "") is None

        paid = await service.claim("default", "", Credentials("sk-test-good"), "payer")
        assert paid.claimed_by_caller
        waiting = await service.claim("default", "", None, "no-key")
        assert waiting.outcome is ClaimOutcome.QUEUED and not waiting.claimed_by_caller
        await wait_for(service, "", lambda e: e.status is Status.READY)
        assert (await service.claim("default", "", None, "no-key")).outcome is ClaimOutcome.READY
    finally:
        await service.close()


class _FlakyOffline(OfflineProvider):
    """Offline, but the first progress check after the render starts fails (test double)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fail_once = True

    async def watch_render(self, job_id, credentials):
        async for status in super().watch_render(job_id, credentials):
            if self.fail_once:
                self.fail_once = False
                raise ProviderError("unavailable", "The video provider is not answering; retry.")
            yield status


async def test_a_transient_failure_keeps_the_paid_job_and_a_retry_resumes_it(tmp_path):
    from tests.fixtures.world import make_settings, offline_jobs_dir, start_service

    settings = make_settings(tmp_path)
    provider = _FlakyOffline(settings.providers, offline_jobs_dir(settings))
    service = await start_service(settings, providers={"default": provider})
    try:
        await service.claim("default", "", None, "alice")
        failed = await wait_for(service, "", lambda e: e.status is Status.FAILED)
        assert failed.failure_code == "unavailable"
        assert (await row(service, "")).provider_job_id, "the paid job is kept"

        retried = await service.claim("default", "", None, "bob")  # anyone may try again
        assert retried.claimed_by_caller
        await wait_for(service, "", lambda e: e.status is Status.READY)
        assert renders_started(settings) == 1, "the retry resumed the job it had paid for"
    finally:
        await service.close()
