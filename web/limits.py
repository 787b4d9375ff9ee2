"""What every HTTP request passes through: body limit, claim rate limit, CORS, headers.

- Request bodies over `[http] max_body_bytes` are refused with 413 before a handler runs.
- Claims (POST .../scenes and .../retry) are limited per client address to
  `[http] claims_per_minute_per_ip` in any 60-second window: 429 with Retry-After.
- CORS answers only the origins in `[http] cors_origins` (none by default; "*" means any).
- Every response (errors and static files included) carries the security headers; a handler
  that sets its own Content-Security-Policy (a page of the browser player) keeps it.
- Errors aiohttp raises itself (unknown route, wrong method) are `{"detail": sentence}` JSON.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

from aiohttp import web

from web.common import error
from world.settings import HttpSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: https:; media-src 'self' https:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
}
WINDOW_SECONDS = 60.0
MAX_TRACKED_CLIENTS = 10_000


def is_claim(request: web.Request) -> bool:
    if request.method != "POST" or not request.path.startswith("/worlds/"):
        return False
    return request.path.endswith("/scenes") or request.path.endswith("/retry")


class ClaimRateLimit:
    """A sliding one-minute window of claim times per client address; at most
    MAX_TRACKED_CLIENTS addresses are remembered, the least recently seen forgotten first."""

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_TRACKED_CLIENTS,
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._max_clients = max_clients
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()  # least recent first

    def check(self, client: str) -> float | None:
        """None when this claim may go ahead (and counts it), else seconds to wait."""
        now = self._clock()
        times = self._seen.get(client)
        if times is None:
            while len(self._seen) >= self._max_clients:  # idle ones first: they come first
                self._seen.popitem(last=False)
            times = self._seen[client] = deque()
        else:
            self._seen.move_to_end(client)
        while times and now - times[0] >= WINDOW_SECONDS:
            times.popleft()
        if len(times) >= self.per_minute:
            return WINDOW_SECONDS - (now - times[0])
        times.append(now)
        return None


def middlewares(http: HttpSettings) -> list[Callable[..., Awaitable[web.StreamResponse]]]:
    limit = ClaimRateLimit(http.claims_per_minute_per_ip)
    origins = http.cors_origin_list

    def allowed_origin(request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        if not origin or not origins:
            return None
        if "*" in origins:
            return "*"
        return origin if origin.rstrip("/") in origins else None

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = allowed_origin(request)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if origin is None:
                return error(403, "This origin may not call the API.")
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                    "Access-Control-Allow-Headers": "Content-Type",
                    "Access-Control-Max-Age": "600",
                    "Vary": "Origin",
                },
            )
        response = await handler(request)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers.add("Vary", "Origin")
        return response

    @web.middleware
    async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return error(413, f"The request body is larger than {http.max_body_bytes} bytes.")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if exc.status == 404:
                return error(404, "Not Found")
            if exc.status == 405:
                return error(405, "Method Not Allowed", headers={"Allow": exc.headers["Allow"]})
            return error(exc.status, exc.reason)

    @web.middleware
    async def limits(request: web.Request, handler: Handler) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > http.max_body_bytes:
            return error(413, f"The request body is larger than {http.max_body_bytes} bytes.")
        if is_claim(request):
            wait = limit.check(request.remote or "unknown")
            if wait is not None:
                seconds = max(1, math.ceil(wait))
                return error(
                    429,
                    f"Too many claims from this address; try again in {seconds} seconds.",
                    headers={"Retry-After": str(seconds)},
                )
        return await handler(request)

    return [cors, json_errors, limits]


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, static files and errors included."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
