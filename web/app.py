"""The HTTP front door: health, metrics, and local assets (when storage is local).

The seed-compatible world API comes in a later issue; this app shares the bot's WorldService.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from aiohttp import web

from world.service import ServiceError, WorldService
from world.settings import Settings

SERVICE_KEY = web.AppKey("service", WorldService)


async def health(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    return web.json_response({"status": "ok", "running_jobs": service.running_jobs()})


async def metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    try:
        result = await service.metrics(request.match_info["world_id"])
    except ServiceError as exc:
        return web.json_response({"detail": str(exc)}, status=404)
    return web.json_response(asdict(result))


def build_app(settings: Settings, service: WorldService) -> web.Application:
    app = web.Application()
    app[SERVICE_KEY] = service
    app.router.add_get("/health", health)
    app.router.add_get("/worlds/{world_id}/metrics", metrics)
    if settings.storage.backend == "local":
        assets = Path(settings.storage.local_dir)
        assets.mkdir(parents=True, exist_ok=True)
        app.router.add_static("/assets/", assets, follow_symlinks=False)
    return app
