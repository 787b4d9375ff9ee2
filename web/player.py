"""The browser player: one HTML page, its static JS/CSS, and live progress by Server-Sent Events.

The page talks to the seed JSON API (web/api.py) for scenes and claims; progress of a branch
being made arrives from `WorldService.subscribe` through `GET /worlds/{worldId}/events?path=`.
No inline script or style, so a strict Content-Security-Policy works.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import json
from pathlib import Path

from aiohttp import web

from web.common import error, service_of
from world.service import InvalidBranch, ServiceError, UnknownWorld, WorldService
from world.types import SceneEvent

STATIC = Path(__file__).parent / "static"
HEARTBEAT_SECONDS = 15.0


def install(app: web.Application) -> None:
    """Add the player page at `/`, `/static/` and the SSE route.

    `GET /worlds/{worldId}` is the API's world JSON; its handler (web/api.py) answers a
    browser navigating there (`wants_html`) with this page instead.
    """
    app.router.add_get("/", _root_page)
    app.router.add_get("/worlds/{worldId}/events", _events)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)


def wants_html(request: web.Request) -> bool:
    """A browser navigating asks for text/html first; fetch() and API clients do not."""
    first = request.headers.get("Accept", "").split(",")[0]
    return first.strip().lower().startswith("text/html")


@functools.cache
def _template() -> str:
    return (STATIC / "player.html").read_text(encoding="utf-8")


def page(service: WorldService, world_id: str) -> web.Response:
    """The page, with what the API's JSON does not say: whether minting needs a key, its cost."""
    template = _template()
    needs_key = service.provider(world_id).needs_key
    values = {
        "{{WORLD_ID}}": world_id,
        "{{NEEDS_KEY}}": "true" if needs_key else "false",
        "{{COST_USD}}": f"{service.estimated_cost(world_id):.4f}",
    }
    body = template
    for marker, value in values.items():
        body = body.replace(marker, html.escape(value, quote=True))
    return web.Response(text=body, content_type="text/html", charset="utf-8")


async def _root_page(request: web.Request) -> web.Response:
    service = service_of(request)
    return page(service, service.settings.default_world.id)


def event_json(event: SceneEvent) -> dict[str, object]:
    return {
        "status": str(event.status),
        "progress": event.progress,
        "stage": event.stage,
        "failureCode": event.failure_code,
        "failureDetail": event.failure_detail,
        "providerStatus": event.provider_status,
        "elapsedSeconds": event.elapsed_seconds,
        "typicalSeconds": event.typical_seconds,
    }


async def _events(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    world_id = request.match_info["worldId"]
    path = request.query.get("path", "")
    try:
        subscription = service.subscribe(world_id, path)
    except UnknownWorld as exc:
        return error(404, str(exc))
    except InvalidBranch as exc:
        return error(422, str(exc))
    except ServiceError as exc:
        return error(400, str(exc))

    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    pending: asyncio.Task[SceneEvent] | None = None
    try:
        await response.write(b"retry: 3000\n\n")
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(subscription))
            done, _ = await asyncio.wait({pending}, timeout=HEARTBEAT_SECONDS)
            if not done:
                await response.write(b": heartbeat\n\n")
                continue
            task, pending = pending, None
            try:
                event = task.result()
            except StopAsyncIteration:
                break
            data = json.dumps(event_json(event), separators=(",", ":"))
            await response.write(f"data: {data}\n\n".encode())
    except ConnectionResetError:
        return response  # the client went away: stop listening, quietly
    finally:
        if pending is not None:
            pending.cancel()
        await subscription.aclose()
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response
