"""The OpenRouter provider: one member key pays for planning, the summary and the clip.

Planner and chronicler go through OpenRouter's OpenAI-compatible chat completions (the official
`openai` SDK, `provider.require_parameters` so only hosts that honour the JSON schema answer).
Video goes through OpenRouter's four video endpoints, called with aiohttp: a create is sent
exactly once (no SDK retries: no idempotency key exists), polls and downloads are retried.
Every child's create carries its parent's last frame as the first frame when the model takes
one; duration, resolution and aspect ratio are checked against the catalogue before anything
is spent, and the estimate comes from the catalogue's prices.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from world.providers import catalogue as cat
from world.providers.base import (
    KeyCheck,
    Plan,
    PlanRequest,
    ProviderError,
    RenderRequest,
    RenderStatus,
    SummaryRequest,
)
from world.providers.chat import ChatModels, require_key, root_client
from world.providers.errors import (
    code_for_status,
    looks_like_moderation,
    provider_error,
    unknown_outcome,
)
from world.providers.transfer import Backoff, retry_after_seconds, stream_to_file
from world.settings import ProviderSettings, WorldSettings
from world.types import Credentials

log = logging.getLogger(__name__)

# OpenRouter's error statuses (§6.3 of the providers reference).
STATUS_TABLE: Mapping[int, str] = {
    400: "config",
    401: "invalid_key",
    402: "quota",
    403: "blocked",
    404: "not_found",
    408: "timeout",
    413: "config",
    429: "rate_limited",
}
CREATE_RATE_LIMIT_RETRIES = 2  # a 429 on create created nothing, so it may be sent again
MAX_RETRY_AFTER_SECONDS = 30.0
POLL_FAILURES_ALLOWED = 8
DOWNLOAD_ATTEMPTS = 4
_DONE_FAILED = {"failed", "cancelled", "expired"}


def attribution_headers(settings: ProviderSettings) -> dict[str, str]:
    headers = {"X-OpenRouter-Title": settings.app_title} if settings.app_title else {}
    if settings.app_url:
        headers["HTTP-Referer"] = settings.app_url
    return headers


class OpenRouterProvider:
    """Chat planner + OpenRouter video for one world; the contributor's key rides each call."""

    name = "openrouter"
    display_name = "OpenRouter"
    needs_key = True
    reports_progress = False  # a job is pending, in progress or done: no percentage
    can_find_renders = False  # no endpoint lists a key's video jobs

    def __init__(self, world: WorldSettings, settings: ProviderSettings) -> None:
        self.world = world
        self.settings = settings
        self.base_url = settings.openrouter_base_url.rstrip("/")
        self._headers = attribution_headers(settings)
        self.chat = ChatModels(
            root_client(self.base_url, settings.request_timeout_seconds, self._headers),
            status_table=STATUS_TABLE,
            extra_body={"provider": {"require_parameters": True}},
            provider_name=self.name,
        )
        self.video_models = cat.Catalogue(
            lambda: self._catalogue("/videos/models"), settings.catalogue_ttl_seconds
        )
        self.chat_models = cat.Catalogue(
            lambda: self._catalogue("/models"), settings.catalogue_ttl_seconds
        )
        self._http: aiohttp.ClientSession | None = None
        self._estimate: float | None = None

    # -- HTTP ------------------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100), raise_for_status=False
            )
        return self._http

    def _auth(self, key: str | None) -> dict[str, str]:
        headers = dict(self._headers)
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    async def _call(
        self,
        method: str,
        route: str,
        *,
        key: str | None,
        time_limit: float,
        body: Mapping[str, Any] | None = None,
    ) -> tuple[int, Mapping[str, str], Any]:
        """One request; connection problems and timeouts become ProviderErrors."""
        try:
            async with self._session().request(
                method,
                self.base_url + route,
                json=body,
                headers=self._auth(key),
                timeout=aiohttp.ClientTimeout(total=time_limit),
            ) as response:
                try:
                    data = await response.json(content_type=None)
                except ValueError:
                    data = None
                return response.status, response.headers, data
        except TimeoutError:
            raise provider_error("timeout") from None
        except aiohttp.ClientError:
            raise provider_error("unavailable") from None

    async def _catalogue(self, route: str) -> list[dict[str, Any]]:
        status, _, data = await self._call(
            "GET", route, key=None, time_limit=self.settings.request_timeout_seconds
        )
        rows = data.get("data") if isinstance(data, dict) else None
        if status != 200 or not isinstance(rows, list):
            raise cat.catalogue_unreachable()
        return rows

    def _error(self, status: int, data: Any) -> ProviderError:
        return provider_error(code_for_status(status, STATUS_TABLE))

    # -- key and estimate ------------------------------------------------------------------

    async def validate_key(self, credentials: Credentials | None) -> KeyCheck:
        key = require_key(credentials)
        status, _, data = await self._call(
            "GET", "/key", key=key, time_limit=self.settings.request_timeout_seconds
        )
        if status != 200 or not isinstance(data, dict) or not isinstance(data.get("data"), dict):
            raise self._error(status, data) if status != 200 else provider_error("provider_error")
        info = data["data"]
        if info.get("is_free_tier"):
            raise provider_error("no_video_access")
        await self._require_fit()
        remaining = _number(info.get("limit_remaining"))
        estimate = await self.estimate_cost_usd() or self.world.estimated_cost_usd
        if remaining is not None and remaining < estimate:
            raise provider_error(
                "quota",
                f"That key has ${remaining:.2f} of credit left, but this branch costs about "
                f"${estimate:.2f}.",
            )
        return KeyCheck(remaining_usd=remaining)

    async def _require_fit(self) -> dict[str, Any] | None:
        """The video model's catalogue entry; ProviderError(config) if the clip does not fit.

        When the catalogue is out of reach the create itself is the check (OpenRouter answers
        400 without charging), so this returns None instead of failing.
        """
        try:
            entry = await self.video_models.get(self.world.video_model)
        except ProviderError:
            log.warning("video catalogue unreachable world=%s", self.world.id)
            return None
        if entry is None:
            raise provider_error(
                "config",
                f"The video model {self.world.video_model!r} is not in the provider's catalogue; "
                "an admin should run `shared-world check`.",
            )
        problems = cat.fit_problems(
            entry,
            seconds=self.world.video_seconds,
            resolution=self.world.resolution,
            aspect_ratio=self.world.aspect_ratio,
        )
        if problems:
            log.warning(
                "video settings do not fit world=%s: %s", self.world.id, "; ".join(problems)
            )
            raise provider_error("config")
        return entry

    async def estimate_cost_usd(self) -> float | None:
        try:
            entry = await self.video_models.get(self.world.video_model)
        except ProviderError:
            return self._estimate
        entry = entry or {}
        per_second = cat.price_per_second_usd(
            entry.get("pricing_skus"),
            audio=self.world.generate_audio and bool(entry.get("generate_audio")),
            resolution=self.world.resolution,
            tokens_per_second=_number(entry.get("video_tokens_per_second")),
        )
        if per_second is not None:
            self._estimate = round(per_second * self.world.video_seconds, 4)
        return self._estimate

    def cached_estimate_usd(self) -> float | None:
        return self._estimate

    # -- planning --------------------------------------------------------------------------

    async def plan(self, request: PlanRequest, credentials: Credentials | None) -> Plan:
        return await self.chat.plan(request, credentials)

    async def summarise(self, request: SummaryRequest, credentials: Credentials | None) -> str:
        return await self.chat.summarise(request, credentials)

    # -- video -----------------------------------------------------------------------------

    async def create_body(self, request: RenderRequest) -> dict[str, Any]:
        """The create request; ProviderError(config) if the catalogue says it cannot work."""
        entry = await self._require_fit()
        body: dict[str, Any] = {
            "model": request.model,
            "prompt": request.prompt,
            "duration": request.seconds,
            "resolution": self.world.resolution,
            "aspect_ratio": self.world.aspect_ratio,
        }
        if entry is not None and entry.get("generate_audio") is not None:
            body["generate_audio"] = self.world.generate_audio
        if request.reference_image is not None and cat.takes_first_frame(entry):
            encoded = base64.b64encode(request.reference_image).decode("ascii")
            body["frame_images"] = [
                {
                    "type": "image_url",
                    "image_url": {"url": f"data:image/png;base64,{encoded}"},
                    "frame_type": "first_frame",
                }
            ]
        return body

    async def start_render(self, request: RenderRequest, credentials: Credentials | None) -> str:
        key = require_key(credentials)
        body = await self.create_body(request)
        where = f"world={request.world_id} path={request.path!r}"
        for attempt in range(CREATE_RATE_LIMIT_RETRIES + 1):
            try:
                status, headers, data = await self._call(
                    "POST",
                    "/videos",
                    key=key,
                    body=body,
                    time_limit=self.settings.create_timeout_seconds,
                )
            except ProviderError as exc:
                log.warning("video create unanswered %s code=%s; not re-sent", where, exc.code)
                raise unknown_outcome(exc.code) from None
            job_id = data.get("id") if isinstance(data, dict) else None
            if status in (200, 201, 202) and isinstance(job_id, str) and job_id:
                log.info("video created %s job=%s", where, job_id)
                return job_id
            if status == 429 and attempt < CREATE_RATE_LIMIT_RETRIES:
                delay = retry_after_seconds(headers, default=2.0, cap=MAX_RETRY_AFTER_SECONDS)
                log.info("video create rate limited %s; again in %.1fs", where, delay)
                await asyncio.sleep(delay)
                continue
            log.warning("video create refused %s status=%d", where, status)
            if 200 <= status < 300:
                raise unknown_outcome("provider_error")
            error = self._error(status, data)
            if error.code in {"unavailable", "timeout"}:
                raise unknown_outcome(error.code)
            raise error
        raise provider_error("rate_limited")

    async def watch_render(
        self, job_id: str, credentials: Credentials | None
    ) -> AsyncIterator[RenderStatus]:
        key = require_key(credentials)
        route = f"/videos/{quote(job_id, safe='')}"
        backoff = Backoff(
            self.settings.poll_interval_seconds, self.settings.poll_max_interval_seconds
        )
        failures = 0
        while True:
            try:
                status, headers, data = await self._call(
                    "GET", route, key=key, time_limit=self.settings.request_timeout_seconds
                )
            except ProviderError as exc:
                status, headers, data = 0, {}, exc.code
            if status == 200 and isinstance(data, dict):
                failures = 0
                state = str(data.get("status") or "in_progress")
                if state == "completed":
                    cost = _number((data.get("usage") or {}).get("cost"))
                    yield RenderStatus(None, done=True, state=state, cost_usd=cost)
                    return
                if state in _DONE_FAILED:
                    raise _failed_job(state, data.get("error"))
                yield RenderStatus(None, state=str(data.get("status_detail") or state))
                await asyncio.sleep(backoff.next())
                continue
            if status in (0, 408, 429) or status >= 500:
                failures += 1
                if failures > POLL_FAILURES_ALLOWED:
                    raise provider_error("unavailable")
                log.info("render poll failed job=%s status=%d; retrying", job_id, status)
                await asyncio.sleep(
                    retry_after_seconds(
                        headers, default=backoff.next(), cap=MAX_RETRY_AFTER_SECONDS
                    )
                )
                continue
            raise self._error(status, data)

    async def download(
        self, job_id: str, credentials: Credentials | None, destination: Path
    ) -> int:
        key = require_key(credentials)
        url = f"{self.base_url}/videos/{quote(job_id, safe='')}/content?index=0"
        return await stream_to_file(
            self._session(),
            url,
            headers=self._auth(key),
            destination=destination,
            attempts=DOWNLOAD_ATTEMPTS,
            time_limit=self.settings.request_timeout_seconds,
            status_table=STATUS_TABLE,
        )

    async def find_render(
        self, request: RenderRequest, since: datetime, credentials: Credentials | None
    ) -> str | None:
        raise NotImplementedError("OpenRouter cannot look a video job up without its id.")

    # -- host checks -----------------------------------------------------------------------

    async def check(self) -> list[tuple[str, str]]:
        """(level, sentence) pairs for `shared-world check`: ok, warn or fail."""
        try:
            videos = await self.video_models.entries()
            chats = await self.chat_models.entries()
        except ProviderError:
            return [
                (
                    "warn",
                    f"{self.world.id}: the OpenRouter catalogue at {self.base_url} cannot be "
                    "reached; models and prices were not checked",
                )
            ]
        return check_lines(self.world, videos, chats, await self.estimate_cost_usd())

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        await self.chat.client.close()


def check_lines(
    world: WorldSettings,
    videos: Mapping[str, Mapping[str, Any]],
    chats: Mapping[str, Mapping[str, Any]],
    estimate: float | None,
) -> list[tuple[str, str]]:
    """What `shared-world check` says about a world's models, from the two catalogues."""
    lines: list[tuple[str, str]] = []
    entry = videos.get(world.video_model)
    if entry is None:
        lines.append(
            ("fail", f"{world.id}: video model {world.video_model!r} is not in the catalogue")
        )
    else:
        problems = cat.fit_problems(
            entry,
            seconds=world.video_seconds,
            resolution=world.resolution,
            aspect_ratio=world.aspect_ratio,
        )
        if problems:
            lines.append(("fail", f"{world.id}: {world.video_model}: {'; '.join(problems)}"))
        elif not cat.takes_first_frame(entry):
            lines.append(
                (
                    "warn",
                    f"{world.id}: {world.video_model} takes no first frame, so scenes will not "
                    "continue from the previous clip",
                )
            )
        else:
            price = (
                f"about ${estimate:.2f} per {world.video_seconds} s clip"
                if estimate is not None
                else f"no per-second price listed; estimating ${world.estimated_cost_usd:.2f}"
            )
            lines.append(
                (
                    "ok",
                    f"{world.id}: {world.video_model} makes {world.video_seconds} s "
                    f"{world.resolution} {world.aspect_ratio} clips from a first frame, {price}",
                )
            )
    models = [world.planner_model] + ([world.summary_model] if world.summary_model else [])
    for model in dict.fromkeys(models):
        chat = chats.get(model)
        if chat is None:
            lines.append(("fail", f"{world.id}: chat model {model!r} is not in the catalogue"))
            continue
        params = chat.get("supported_parameters") or []
        if model == world.planner_model and not {"response_format", "structured_outputs"} & set(
            params
        ):
            lines.append(
                ("fail", f"{world.id}: planner {model} does not support structured output")
            )
        else:
            lines.append(("ok", f"{world.id}: chat model {model} is available"))
    return lines


def _failed_job(state: str, error: Any) -> ProviderError:
    text = error if isinstance(error, str) else None
    if state == "expired":
        return provider_error("expired")
    if looks_like_moderation(text):
        return provider_error("blocked")
    return provider_error("render_failed")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
