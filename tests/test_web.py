"""The HTTP front door on a real socket: health, metrics and local assets."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from tests.world.helpers import mint
from web.app import build_app


async def test_health_metrics_and_assets_over_http(settings, service):
    await mint(service, "")
    view = await service.view("default", "")
    runner = web.AppRunner(build_app(settings, service))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/health") as response:
                assert (await response.json())["status"] == "ok"
            async with http.get(f"{base}/worlds/default/metrics") as response:
                body = await response.json()
                assert body["readyCount"] == 1
            async with http.get(f"{base}/worlds/nowhere/metrics") as response:
                assert response.status == 404
            async with http.get(f"{base}/assets/{view.video_key}") as response:
                assert response.status == 200
                assert (await response.read())[4:8] == b"ftyp"
            async with http.get(f"{base}/assets/../world.db") as response:
                assert response.status in (403, 404)
    finally:
        await runner.cleanup()
