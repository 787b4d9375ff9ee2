"""What every part of the front door shares: the WorldService's app key, and an error as
`{"detail": "<one sentence>"}` JSON."""

from __future__ import annotations

from aiohttp import web

from world.service import WorldService

SERVICE_KEY = web.AppKey("service", WorldService)


def service_of(request: web.Request) -> WorldService:
    return request.app[SERVICE_KEY]


def error(status: int, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"detail": detail}, status=status, headers=headers)
