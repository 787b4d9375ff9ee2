"""GET /worlds/{id}/map.png?path=&depth=: the world map (world/worldmap.py) over HTTP.

A read: it writes nothing. An unknown world is 404, a malformed path or depth or a branch
with no map around it is 422, each as `{"detail": "<one sentence>"}` like the world API.
"""

from __future__ import annotations

import logging

from aiohttp import web

from world.service import (
    MAP_DEFAULT_DEPTH,
    MAP_MAX_DEPTH,
    MAP_MIN_DEPTH,
    ServiceError,
    UnknownWorld,
    WorldService,
)

log = logging.getLogger(__name__)

SERVICE_KEY = web.AppKey("map_service", WorldService)
DEPTH_SENTENCE = f"depth must be a whole number from {MAP_MIN_DEPTH} to {MAP_MAX_DEPTH}."


def _fail(status: int, detail: str) -> web.Response:
    return web.json_response({"detail": detail}, status=status)


def _depth(text: str | None) -> int | None:
    if text is None or text == "":
        return MAP_DEFAULT_DEPTH
    if not text.isascii() or not text.isdigit() or len(text) > 3:
        return None
    return int(text)


async def world_map(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    world_id = request.match_info["world_id"]
    try:
        service.world(world_id)
    except UnknownWorld as exc:
        return _fail(404, str(exc))
    depth = _depth(request.query.get("depth"))
    if depth is None:
        return _fail(422, DEPTH_SENTENCE)
    path = request.query.get("path", "")
    try:
        png = await service.world_map(world_id, path, depth)
    except ServiceError as exc:  # a malformed path, a depth out of range, nothing explored
        return _fail(422, str(exc))
    return web.Response(
        body=png,
        content_type="image/png",
        headers={"Cache-Control": "no-cache", "Content-Disposition": 'inline; filename="map.png"'},
    )


def install(app: web.Application, service: WorldService) -> None:
    app[SERVICE_KEY] = service
    app.router.add_get("/worlds/{world_id}/map.png", world_map)
