"""`GET /metrics`: Prometheus text read from a real WorldService (offline provider)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from tests.fixtures.faulty_offline import FAIL_MARKER, FaultyOfflineProvider
from tests.fixtures.world import offline_jobs_dir, start_service, wait_until_settled
from tests.world.helpers import row
from web.metrics import install
from world.models import Scene
from world.service import WorldService
from world.settings import Settings


@pytest.fixture
async def client(service: WorldService) -> AsyncIterator[TestClient]:
    app = web.Application()
    install(app, service, interactions=lambda: 7)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def mark_first_choice(service: WorldService, marker: str) -> None:
    """Put the faulty provider's marker in the root's first choice (see faulty_offline)."""
    scene = await row(service, "")
    choices = [dict(c) for c in scene.choices]
    choices[0]["label"] = f"{marker} {choices[0]['label']}"
    async with service.db.transaction() as session:
        await session.execute(update(Scene).where(Scene.id == scene.id).values(choices=choices))


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_metrics_count_a_minted_branch_claims_and_views(
    client: TestClient, service: WorldService
):
    before = await scrape(client)
    assert value(before, "shared_world_branches", world="default", status="ready") == 0
    assert value(before, "shared_world_views_total") == 0
    assert value(before, "shared_world_discord_interactions_total") == 7

    first = await service.claim("default", "", None, "m1")
    assert first.outcome.value == "queued"
    await wait_until_settled(service, "default", "")
    await service.view("default", "")

    after = await scrape(client)
    assert value(after, "shared_world_branches", world="default", status="ready") == 1
    assert value(after, "shared_world_backlog", world="default") == 0
    assert value(after, "shared_world_renders_total", world="default") == 1
    assert value(after, "shared_world_claims_total", outcome="queued") == 1
    assert value(after, "shared_world_views_total") == 1
    assert value(after, "shared_world_storage_bytes", world="default") > 0
    assert value(after, "shared_world_world_metrics_up", world="default") == 1
    assert value(after, "shared_world_render_seconds_count", world="default") == 1
    assert value(after, "shared_world_render_seconds_bucket", world="default", le="+Inf") == 1
    assert value(after, "shared_world_render_seconds_sum", world="default") > 0
    assert ("shared_world_event_loop_lag_seconds_count", ()) in after

    await service.view("default", "")
    assert value(await scrape(client), "shared_world_views_total") == 2


async def test_the_lag_sampler_runs_while_the_app_does(client: TestClient):
    await asyncio.sleep(0.6)
    samples = await scrape(client)
    assert value(samples, "shared_world_event_loop_lag_seconds_count") >= 1


async def test_interactions_are_left_out_when_no_bot_runs_here(service: WorldService):
    app = web.Application()
    install(app, service)
    async with TestClient(TestServer(app)) as test_client:
        samples = await scrape(test_client)
    assert not any(name.startswith("shared_world_discord") for name, _ in samples)


async def test_failed_renders_are_counted_by_code(settings: Settings):
    provider = FaultyOfflineProvider(settings.providers, offline_jobs_dir(settings))
    service = await start_service(settings, providers={"default": provider})
    try:
        await service.claim("default", "", None, "m1")
        await wait_until_settled(service, "default", "")
        await mark_first_choice(service, FAIL_MARKER)
        await service.claim("default", "0", None, "m2")
        await wait_until_settled(service, "default", "0")
        await service.claim("default", "0", None, "m3")  # refused: it failed for good

        app = web.Application()
        install(app, service)
        async with TestClient(TestServer(app)) as test_client:
            samples = await scrape(test_client)
    finally:
        await service.close()
    assert (
        value(samples, "shared_world_render_failures_total", world="default", code="blocked") == 1
    )
    assert value(samples, "shared_world_branches", world="default", status="failed") == 1
    assert value(samples, "shared_world_renders_total", world="default") == 1
    assert value(samples, "shared_world_render_seconds_count", world="default") == 1
    assert value(samples, "shared_world_claims_total", outcome="queued") == 2
    assert value(samples, "shared_world_claims_total", outcome="refused") == 1


async def test_a_world_whose_read_fails_is_reported_down(
    client: TestClient, service: WorldService, monkeypatch: pytest.MonkeyPatch
):
    async def broken(world_id: str):
        raise RuntimeError("database unreachable")

    monkeypatch.setattr(service, "metrics", broken)
    samples = await scrape(client)
    assert value(samples, "shared_world_world_metrics_up", world="default") == 0
    assert ("shared_world_branches", (("status", "ready"), ("world", "default"))) not in samples
    assert value(samples, "shared_world_views_total") == 0
