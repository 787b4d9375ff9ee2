"""The OpenAI-compatible provider: any endpoint that speaks OpenAI's wire format.

Planning and the summary use chat completions (shared with OpenRouter, see chat.py). Video uses
the Videos API shape (`videos.create` / `retrieve` / streaming `download_content`), which OpenAI
itself no longer serves since 2026-09-24 but compatible gateways do at their own base URL.
Creates are never retried (the SDK's retries are off); the parent's last frame goes along as
`input_reference`, resized to the video size the endpoint insists on.
"""

from __future__ import annotations

import asyncio
import io
import logging
import warnings
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import openai
from PIL import Image

from world.providers.base import (
    KeyCheck,
    Plan,
    PlanRequest,
    ProviderError,
    RenderRequest,
    RenderStatus,
    SummaryRequest,
)
from world.providers.chat import ChatModels, map_sdk_error, require_key, root_client
from world.providers.errors import provider_error, unknown_outcome
from world.providers.transfer import Backoff, retry_after_seconds, write_chunks
from world.settings import ProviderSettings, WorldSettings
from world.types import Credentials

log = logging.getLogger(__name__)

# The SDK marks every videos.* call deprecated (OpenAI's own Videos API is gone); gateways
# still serve it, so the warning says nothing to our hosts.
warnings.filterwarnings("ignore", message="The Sora API is scheduled", category=DeprecationWarning)

# OpenAI's statuses (§1.3 of the providers reference); codes refine 400 and 429 (see chat.py).
STATUS_TABLE: Mapping[int, str] = {
    400: "config",
    401: "invalid_key",
    403: "permission",
    404: "not_found",
    408: "timeout",
    429: "rate_limited",
}
CREATE_RATE_LIMIT_RETRIES = 2
MAX_RETRY_AFTER_SECONDS = 30.0
POLL_FAILURES_ALLOWED = 8
DOWNLOAD_ATTEMPTS = 4
VIDEO_SECONDS = (4, 8, 12)
# How far the provider's clock may run behind ours when matching a job to an intent.
LOOKUP_CLOCK_SKEW_SECONDS = 120


def reference_png(image: bytes, size: str) -> bytes:
    """The continuity frame as a PNG of exactly `size` (the endpoint refuses any other)."""
    width, height = (int(side) for side in size.split("x"))
    with Image.open(io.BytesIO(image)) as frame:
        fitted = frame.convert("RGB")
        if fitted.size != (width, height):
            fitted = fitted.resize((width, height), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        fitted.save(out, "PNG")
        return out.getvalue()


class OpenAIProvider:
    """Chat planner + Videos API for one world at a configurable OpenAI-compatible base URL."""

    name = "openai"
    display_name = "OpenAI-compatible"
    needs_key = True
    reports_progress = True
    can_find_renders = True  # videos.list pages through the key's jobs, newest first

    def __init__(self, world: WorldSettings, settings: ProviderSettings) -> None:
        self.world = world
        self.settings = settings
        self.client = root_client(settings.openai_base_url, settings.request_timeout_seconds)
        self.chat = ChatModels(self.client, status_table=STATUS_TABLE, provider_name=self.name)

    def _for(self, credentials: Credentials | None) -> openai.AsyncOpenAI:
        return self.client.with_options(api_key=require_key(credentials))

    async def validate_key(self, credentials: Credentials | None) -> KeyCheck:
        client = self._for(credentials)
        try:
            await client.models.list()
        except openai.OpenAIError as exc:
            raise map_sdk_error(exc, STATUS_TABLE) from None
        return KeyCheck()

    async def estimate_cost_usd(self) -> float | None:
        return None  # no price list on this wire: the world's cost_per_second_usd applies

    def cached_estimate_usd(self) -> float | None:
        return None

    async def plan(self, request: PlanRequest, credentials: Credentials | None) -> Plan:
        return await self.chat.plan(request, credentials)

    async def summarise(self, request: SummaryRequest, credentials: Credentials | None) -> str:
        return await self.chat.summarise(request, credentials)

    async def start_render(self, request: RenderRequest, credentials: Credentials | None) -> str:
        client = self._for(credentials)
        if request.seconds not in VIDEO_SECONDS:
            raise provider_error("config")
        fields: dict[str, Any] = {
            "prompt": request.prompt,
            "model": request.model,
            "seconds": str(request.seconds),
            "size": request.size,
        }
        if request.reference_image is not None:
            png = await asyncio.to_thread(reference_png, request.reference_image, request.size)
            fields["input_reference"] = ("last.png", png, "image/png")
        where = f"world={request.world_id} path={request.path!r}"
        for attempt in range(CREATE_RATE_LIMIT_RETRIES + 1):
            try:
                video = await client.videos.create(
                    **fields, timeout=self.settings.create_timeout_seconds
                )
            except openai.RateLimitError as exc:
                error = map_sdk_error(exc, STATUS_TABLE)
                if error.code == "rate_limited" and attempt < CREATE_RATE_LIMIT_RETRIES:
                    delay = retry_after_seconds(
                        exc.response.headers, default=2.0, cap=MAX_RETRY_AFTER_SECONDS
                    )
                    log.info("video create rate limited %s; again in %.1fs", where, delay)
                    await asyncio.sleep(delay)
                    continue
                raise error from None
            except openai.OpenAIError as exc:
                error = map_sdk_error(exc, STATUS_TABLE)
                log.warning("video create failed %s code=%s", where, error.code)
                if error.code in {"unavailable", "timeout"}:
                    raise unknown_outcome(error.code) from None
                raise error from None
            log.info("video created %s job=%s", where, video.id)
            return video.id
        raise provider_error("rate_limited")

    async def watch_render(
        self, job_id: str, credentials: Credentials | None
    ) -> AsyncIterator[RenderStatus]:
        client = self._for(credentials)
        backoff = Backoff(
            self.settings.poll_interval_seconds, self.settings.poll_max_interval_seconds
        )
        failures = 0
        while True:
            try:
                video = await client.videos.retrieve(job_id)
            except openai.OpenAIError as exc:
                error = map_sdk_error(exc, STATUS_TABLE)
                if error.code not in {"unavailable", "timeout", "rate_limited"}:
                    raise error from None
                failures += 1
                if failures > POLL_FAILURES_ALLOWED:
                    raise error from None
                log.info("render poll failed job=%s code=%s; retrying", job_id, error.code)
                await asyncio.sleep(backoff.next())
                continue
            failures = 0
            if video.status == "completed":
                yield RenderStatus(100, done=True, state="completed")
                return
            if video.status == "failed":
                code = getattr(video.error, "code", None) if video.error else None
                raise provider_error(
                    "blocked"
                    if code in {"moderation_blocked", "sentinel_block", "content_policy_violation"}
                    else "render_failed"
                )
            yield RenderStatus(int(video.progress or 0), state=video.status)
            await asyncio.sleep(backoff.next())

    async def download(
        self, job_id: str, credentials: Credentials | None, destination: Path
    ) -> int:
        client = self._for(credentials)
        last: ProviderError = provider_error("unavailable")
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                async with client.videos.with_streaming_response.download_content(
                    job_id, variant="video"
                ) as response:
                    return await write_chunks(response.iter_bytes(), destination)
            except openai.OpenAIError as exc:
                last = map_sdk_error(exc, STATUS_TABLE)
                if last.code not in {"unavailable", "timeout", "rate_limited"}:
                    raise last from None
            log.info("clip download attempt %d failed job=%s code=%s", attempt, job_id, last.code)
            if attempt < DOWNLOAD_ATTEMPTS:
                await asyncio.sleep(attempt)
        raise last

    async def find_render(
        self, request: RenderRequest, since: datetime, credentials: Credentials | None
    ) -> str | None:
        """A job this key created since `since` with exactly this request's prompt and model."""
        client = self._for(credentials)
        floor = since.timestamp() - LOOKUP_CLOCK_SKEW_SECONDS
        try:
            async for video in client.videos.list(order="desc", limit=100):
                if video.created_at < floor:
                    break
                if (
                    video.prompt == request.prompt
                    and video.model == request.model
                    and str(video.seconds) == str(request.seconds)
                    and video.size == request.size
                ):
                    return video.id
        except openai.OpenAIError as exc:
            raise map_sdk_error(exc, STATUS_TABLE) from None
        return None

    async def check(self) -> list[tuple[str, str]]:
        return [
            (
                "ok",
                f"{self.world.id}: OpenAI-compatible endpoint {self.settings.openai_base_url}, "
                f"video model {self.world.video_model}; members' keys are checked when they mint",
            )
        ]

    async def close(self) -> None:
        await self.client.close()
