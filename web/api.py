"""The original web app's world API (seed-behaviour.md §9), served from the WorldService.

Same paths, same camelCase JSON and status values as the original; unlike it, reads never
write, a malformed path is 422 with a sentence, an unknown world is 404, and a claim's
`apiKey` is used for that claim only: it becomes the claim's Credentials and is never
stored, logged or echoed (the service holds it for redaction while in use).
Errors are `{"detail": "<one sentence>"}`.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from web import player
from web.common import error, service_of
from world import paths
from world.providers.base import ProviderError
from world.service import ServiceError, UnknownWorld, WorldService
from world.types import ChildState, ClaimOutcome, Credentials, SceneView, Status

log = logging.getLogger(__name__)

BODY_CACHE_SIZE = 4096  # as many as the service's view cache holds

KEY_REQUIRED = "API key required for generation"
MAX_KEY_CHARS = 512
CHILD_STATUS = {
    ChildState.READY: Status.READY.value,
    ChildState.MINTING: Status.QUEUED.value,
    ChildState.FAILED: Status.FAILED.value,
    ChildState.UNEXPLORED: Status.PENDING.value,
}
_EXPLAINED = frozenset({Status.FAILED, Status.HIDDEN})  # statuses that carry a sentence
# A refused claim's reason (world/claimer.py) as the HTTP status the original used for it.
REFUSAL_STATUS = {
    "key_required": 400,
    "invalid": 422,
    "parent_not_ready": 409,
    "not_failed": 409,
    "failed_final": 409,
    "uncertain": 409,
    "shutting_down": 503,
    "cap": 429,  # a [limits] cap: the sentence says when it frees up
}


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _world_id(request: web.Request) -> str:
    world_id = request.match_info["world_id"]
    try:
        service_of(request).world(world_id)
    except UnknownWorld as exc:
        raise ApiError(404, str(exc)) from None
    return world_id


def _check_path(service: WorldService, path: Any) -> str:
    if not isinstance(path, str):
        raise ApiError(422, 'path must be text like 0/2/1 (the opening scene is "").')
    try:
        paths.parse(path, service.settings.generation.max_depth)
    except paths.InvalidPath as exc:
        raise ApiError(422, str(exc)) from None
    return path


def _asset_url(service: WorldService, url: str | None, key: str | None) -> str | None:
    """The store's URL; a local store without a public base URL is served under /assets/."""
    if url is not None:
        return url
    if key is not None and service.settings.storage.backend == "local":
        return "/assets/" + key
    return None


def scene_response(service: WorldService, view: SceneView) -> dict[str, Any]:
    """The original's SceneResponse, field for field."""
    by_index = {c.index: c for c in view.choices}
    children = paths.children(view.path)
    ready = view.status is Status.READY
    queued = view.status is Status.QUEUED
    return {
        "worldId": view.world_id,
        "path": view.path,
        "depth": view.depth,
        "status": view.status.value,
        "scenarioDisplay": view.narration,
        "soraPrompt": None,  # the video prompt stays on the server
        "triggerChoice": view.choice_label,
        "choices": [c.label for c in view.choices] if ready else [],
        "choicesShort": [c.short_label for c in view.choices] if ready else [],
        "choicesStatus": [
            CHILD_STATUS[by_index[i].state] if i in by_index else Status.PENDING.value
            for i in range(len(children))
        ],
        "childrenPaths": children,
        "videoUrl": _asset_url(service, view.video_url, view.video_key) if ready else None,
        "posterUrl": _asset_url(service, view.poster_url, view.poster_key) if ready else None,
        # A hidden scene (removed by the admins) says so here, with no clip and no text.
        "failureCode": view.failure_code if view.status in _EXPLAINED else None,
        "failureDetail": view.failure_detail if view.status in _EXPLAINED else None,
        "queuedSince": _iso(view.claimed_at) if queued else None,
        "updatedAt": _iso(view.updated_at),
        "progress": 100 if ready else view.progress,
        "progressUpdatedAt": _iso(view.updated_at) if queued else None,
        "stateSummary": view.state_summary,
    }


class SceneBodies:
    """Ready scenes' JSON as sent: a view the service's cache hands back again is sent as
    the bytes made the first time (the hot read serialises nothing)."""

    def __init__(self, size: int = BODY_CACHE_SIZE) -> None:
        self._size = size
        self._bodies: dict[tuple[str, str], tuple[SceneView, bytes]] = {}

    def body(self, service: WorldService, view: SceneView) -> bytes:
        key = (view.world_id, view.path)
        known = self._bodies.get(key)
        if known is not None and known[0] is view:
            return known[1]
        body = json.dumps(scene_response(service, view)).encode()
        if view.is_ready:
            self._bodies.pop(key, None)
            self._bodies[key] = (view, body)
            if len(self._bodies) > self._size:  # the oldest made goes first
                del self._bodies[next(iter(self._bodies))]
        return body


BODIES_KEY = web.AppKey("scene_bodies", SceneBodies)


async def _view(service: WorldService, world_id: str, path: str) -> SceneView:
    try:
        return await service.view(world_id, path)
    except ServiceError as exc:  # the parent is not ready: nothing to show, nothing written
        raise ApiError(404, str(exc)) from None


async def _json_body(request: web.Request, *, empty_ok: bool = False) -> dict[str, Any]:
    if empty_ok and not request.body_exists:
        return {}
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(422, "The request body must be a JSON object.") from None
    if not isinstance(body, dict):
        raise ApiError(422, "The request body must be a JSON object.")
    return body


def _credentials(body: dict[str, Any]) -> Credentials | None:
    key = body.get("apiKey")
    if key is None:
        return None
    if not isinstance(key, str) or len(key) > MAX_KEY_CHARS:
        raise ApiError(422, "apiKey must be text (the provider key paying for this claim).")
    key = key.strip()
    return Credentials(key) if key else None


# -- handlers -------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def get_world(request: web.Request) -> web.Response:
    try:
        world_id = _world_id(request)
    except ApiError as exc:
        return error(exc.status, exc.detail)
    service = service_of(request)
    if player.wants_html(request):  # a browser navigating here: the player, on this world
        return player.page(service, world_id)
    world = service.world(world_id)
    return web.json_response(
        {
            "worldId": world.id,
            "basePrompt": world.base_prompt,
            "plannerModel": world.planner_model,
            "soraModel": world.video_model,
            "videoSize": world.video_size,
        }
    )


async def get_scene(request: web.Request) -> web.Response:
    service = service_of(request)
    try:
        world_id = _world_id(request)
        path = _check_path(service, request.query.get("path", ""))
        view = await _view(service, world_id, path)
    except ApiError as exc:
        return error(exc.status, exc.detail)
    body = request.app[BODIES_KEY].body(service, view)
    return web.Response(body=body, content_type="application/json")


async def claim_scene(request: web.Request) -> web.Response:
    service = service_of(request)
    try:
        world_id = _world_id(request)
        body = await _json_body(request)
        if "path" not in body:
            raise ApiError(422, 'path is required (the opening scene is "").')
        path = _check_path(service, body["path"])
        return await _claim(service, world_id, path, _credentials(body), _contributor(request))
    except ApiError as exc:
        return error(exc.status, exc.detail)


async def retry_scene(request: web.Request) -> web.Response:
    """The original re-ran the claim for the URL path; so do we (path checked this time).

    Failures only an admin may re-open (refused by the provider, an uncertain render) stay
    refused here: the HTTP API has no admins."""
    service = service_of(request)
    try:
        world_id = _world_id(request)
        path = _check_path(service, request.match_info["path"])
        body = await _json_body(request, empty_ok=True)
        return await _claim(service, world_id, path, _credentials(body), _contributor(request))
    except ApiError as exc:
        return error(exc.status, exc.detail)


def _contributor(request: web.Request) -> str:
    """Who claims through HTTP, for the member caps of [limits]: the client's address (the
    service stores only its keyed hash, as it does for Discord members)."""
    return f"web:{request.remote or 'unknown'}"


async def _claim(
    service: WorldService,
    world_id: str,
    path: str,
    credentials: Credentials | None,
    contributor: str,
) -> web.Response:
    try:
        view = await service.view(world_id, path)
    except ServiceError:
        raise ApiError(409, "The scene before this one does not exist yet.") from None
    if view.status in (Status.READY, Status.QUEUED):  # free to everyone; no key used
        return web.json_response(scene_response(service, view))
    provider = service.provider(world_id)
    if provider.needs_key:
        if credentials is None:
            raise ApiError(400, KEY_REQUIRED)
        try:  # a key that cannot pay is refused before anything is claimed or spent
            await service.validate_key(world_id, credentials)
        except ProviderError as exc:
            raise ApiError(400, exc.public_message) from None
    else:
        credentials = None  # a free world: whatever was sent is not even handed on
    result = await service.claim(world_id, path, credentials, contributor)
    if result.outcome is ClaimOutcome.REFUSED:
        detail = result.message or "That branch cannot be claimed."
        if result.reason == "key_required":
            detail = KEY_REQUIRED
        raise ApiError(REFUSAL_STATUS.get(result.reason or "", 409), detail)
    view = await _view(service, world_id, path)
    return web.json_response(scene_response(service, view))


async def get_trail(request: web.Request) -> web.Response:
    """Ours, not the original's: the titles the player heads a scene and its breadcrumbs with
    (the original's SceneResponse has no title). Reads only; a hidden scene has no title."""
    service = service_of(request)
    try:
        world_id = _world_id(request)
        path = _check_path(service, request.query.get("path", ""))
    except ApiError as exc:
        return error(exc.status, exc.detail)
    steps = await service.trail(world_id, path)
    return web.json_response(
        {
            "worldId": world_id,
            "path": path,
            "steps": [{"path": step, "title": title} for step, title in steps],
        }
    )


async def world_metrics(request: web.Request) -> web.Response:
    try:
        world_id = _world_id(request)
    except ApiError as exc:
        return error(exc.status, exc.detail)
    metrics = await service_of(request).metrics(world_id)
    branches = metrics.branches
    ready = branches.get(Status.READY.value, 0)
    failed = branches.get(Status.FAILED.value, 0)
    return web.json_response(
        {
            "worldId": world_id,
            "sceneCount": sum(branches.values()),
            "readyCount": ready,
            "queuedCount": branches.get(Status.QUEUED.value, 0),
            "failedCount": failed,
            "storageBytes": metrics.storage_bytes,
            "successRate": ready / max(ready + failed, 1),
        }
    )


def install(app: web.Application) -> None:
    app[BODIES_KEY] = SceneBodies()
    app.router.add_get("/health", health)
    app.router.add_get("/worlds/{world_id}", get_world)
    app.router.add_get("/worlds/{world_id}/scenes", get_scene)
    app.router.add_post("/worlds/{world_id}/scenes", claim_scene)
    app.router.add_post("/worlds/{world_id}/scenes/{path:.*}/retry", retry_scene)
    app.router.add_get("/worlds/{world_id}/metrics", world_metrics)
    app.router.add_get("/worlds/{world_id}/trail", get_trail)
