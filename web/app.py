"""The HTTP front door: the original web app's world API, health, OpenAPI and local assets.

`build_app(settings, service)` composes it on the bot's event loop and WorldService:
middlewares and headers (web/limits.py), the seed endpoints (web/api.py), the world map
(web/maps.py), /openapi.json (web/openapi.py), the Prometheus scrape (web/metrics.py), the
browser player (web/player.py), and local assets under /assets/ when the store is local.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from web import api, common, limits, maps, metrics, openapi, player
from world.service import WorldService
from world.settings import Settings

SERVICE_KEY = common.SERVICE_KEY


def build_app(
    settings: Settings,
    service: WorldService,
    *,
    interactions: Callable[[], int] | None = None,
) -> web.Application:
    """The app, unstarted. `interactions` counts the Discord interactions the bot in this
    process handled (for /metrics), when a bot runs beside it."""
    http = settings.http
    # client_max_size: a body without Content-Length is cut off at the limit as well (413).
    app = web.Application(middlewares=limits.middlewares(http), client_max_size=http.max_body_bytes)
    app.on_response_prepare.append(limits.security_headers)
    app[common.SERVICE_KEY] = service
    api.install(app)
    maps.install(app)
    openapi.install(app)
    metrics.install(app, service, interactions=interactions)
    player.install(app)
    if settings.storage.backend == "local":
        assets = Path(settings.storage.local_dir)
        assets.mkdir(parents=True, exist_ok=True)
        app.router.add_static("/assets/", assets, follow_symlinks=False)
    return app
