"""GET /worlds/{id}/map.png?path=&depth=: the world map (world/worldmap.py) over HTTP.

A read: it writes nothing. An unknown world is 404, a malformed path or depth or a branch
with no map around it is 422, each as `{"detail": "<one sentence>"}` like the world API.
"""

from __future__ import annotations

import logging

from aiohttp import web

from web.common import error, service_of
from world.service import (
    MAP_DEFAULT_DEPTH,
    MAP_MAX_DEPTH,
    MAP_MIN_DEPTH,
    ServiceError,
    UnknownWorld,
)

log = logging.getLogger(__name__)

DEPTH_SENTENCE = f"depth must be a whole number from {MAP_MIN_DEPTH} to {MAP_MAX_DEPTH}."


def _depth(text: str | None) -> int | None:
    if text is None or text == "":
        return MAP_DEFAULT_DEPTH
    if not text.isascii() or not text.isdigit() or len(text) > 3:
        return None
    return int(text)


async def world_map(request: web.Request) -> web.Response:
    service = service_of(request)
    world_id = request.match_info["world_id"]
    try:
        service.world(world_id)
    except UnknownWorld as exc:
        return error(404, str(exc))
    depth = _depth(request.query.get("depth"))
    if depth is None:
        return error(422, DEPTH_SENTENCE)
    path = request.query.get("path", "")
    try:
        png = await service.world_map(world_id, path, depth)
    except ServiceError as exc:  # a malformed path, a depth out of range, nothing explored
        return error(422, str(exc))
    return web.Response(
        body=png,
        content_type="image/png",
        headers={"Cache-Control": "no-cache", "Content-Disposition": 'inline; filename="map.png"'},
    )


def install(app: web.Application) -> None:
    app.router.add_get("/worlds/{world_id}/map.png", world_map)
