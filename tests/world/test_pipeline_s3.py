"""The pipeline against a real S3 server (moto's standalone server driven by boto3)."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.fixtures.world import make_settings, renders_started, start_service
from tests.world.helpers import row, wait_for
from world.types import Status


async def test_s3_outage_during_upload_the_clip_lands_and_nothing_is_rerendered(
    tmp_path, s3_server, s3_settings
):
    settings = make_settings(tmp_path, providers={"offline_render_seconds": 2.0})
    service = await start_service(settings, store_settings=s3_settings)
    try:
        await service.claim("default", "", None, "alice")
        await wait_for(service, "", lambda e: e.stage == "rendering")
        await asyncio.to_thread(s3_server.stop)  # the upload will meet a dead server

        await wait_for(service, "", lambda e: e.stage == "storing")
        await asyncio.sleep(1.0)  # a few failed upload attempts
        scene = await row(service, "")
        assert scene.status == "queued" and scene.asset_key is None
        await asyncio.to_thread(s3_server.start)

        await wait_for(service, "", lambda e: e.status is Status.READY)
        view = await service.view("default", "")
        assert view.status is Status.READY
        assert renders_started(settings) == 1

        stored = await asyncio.to_thread(
            s3_server.client().get_object, Bucket=s3_settings.bucket, Key=view.video_key
        )
        body = stored["Body"].read()
        assert body[4:8] == b"ftyp" and len(body) == view.video_bytes
        async with aiohttp.ClientSession() as http, http.get(view.video_url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "video/mp4"
            assert await response.read() == body
    finally:
        s3_server.start()
        await service.close()


async def test_a_failed_upload_keeps_the_spooled_clip_and_a_retry_uploads_it(
    tmp_path, s3_server, s3_settings
):
    from dataclasses import replace

    settings = make_settings(tmp_path, providers={"offline_render_seconds": 2.0})
    store_settings = replace(s3_settings, upload_attempts=1)
    service = await start_service(settings, store_settings=store_settings)
    try:
        await service.claim("default", "", None, "alice")
        await wait_for(service, "", lambda e: e.stage == "rendering")
        await asyncio.to_thread(s3_server.stop)
        failed = await wait_for(service, "", lambda e: e.status is Status.FAILED)
        assert failed.failure_code == "storage"
        spooled = list((tmp_path / "data" / "spool").rglob("*.mp4"))
        assert len(spooled) == 1, "the paid clip waits on disk"

        await asyncio.to_thread(s3_server.start)
        retried = await service.retry("default", "", None, "bob")
        assert retried.claimed_by_caller
        await wait_for(service, "", lambda e: e.status is Status.READY)
        async with asyncio.timeout(30):  # the job removes its spool file after publishing
            while service.running_jobs():
                await asyncio.sleep(0.05)
        assert renders_started(settings) == 1
        assert list((tmp_path / "data" / "spool").rglob("*.mp4")) == []
        assert (await row(service, "")).asset_key
    finally:
        s3_server.start()
        await service.close()
