"""The Gemini provider: one member's Gemini API key pays for the plan, the summary and the clip.

Everything goes through the official google-genai SDK (3.6.1; providers reference §2, §2.5):
planner and chronicler through `models.generate_content` with structured output against the
plan schema every provider shares; the clip through Gemini Omni Flash on the Interactions API
(`interactions.create(..., background=True, store=True)`), polled with `interactions.get` and
fetched inline (base64) or through the files API (`files/<id>`), streamed to the spool file.

- A paid create is sent at most once: the SDK retries interaction creates by default, so every
  client here is built with `HttpRetryOptions(attempts=1)`; this module retries only polls,
  file look-ups and downloads, with backoff. A create whose answer is lost (timeout, 5xx, a
  broken connection) is an unknown outcome: the interaction may exist and be billed.
- Continuity: every child's create starts from its parent's last frame (`image_to_video`),
  which works with any contributor's key (`previous_interaction_id` would not cross projects).
- Omni reports no percentage, only a status: progress is that status and the elapsed time.
- Keys: one `genai.Client` per call, built for the member's key and closed right after; the key
  travels only in the `x-goog-api-key` header the SDK sets. Every client shares one TLS context
  (loading the CA bundle per client costs ~120 ms of blocked event loop) and one keyless
  aiohttp pool for the `models` / `files` calls.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import aiohttp
import certifi
from google import genai
from google.genai import types
from google.genai.client import AsyncClient

from world import prompts
from world.providers.base import (
    KeyCheck,
    Plan,
    PlanRequest,
    ProviderError,
    RenderRequest,
    RenderStatus,
    SummaryRequest,
)
from world.providers.chat import require_key
from world.providers.errors import provider_error, unknown_outcome
from world.providers.gemini_errors import SDK_ERRORS, Step, failed_interaction, from_exception
from world.providers.transfer import CHUNK_BYTES, Backoff
from world.settings import ProviderSettings, WorldSettings
from world.types import Credentials

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
CHECK_KEY_ENV = "GEMINI_API_KEY_FOR_CHECK"

# What Omni Flash makes (§2.5): 3-10 s, 16:9 or 9:16, 360p to 4K; the sound is always on.
MIN_SECONDS, MAX_SECONDS = 3, 10
ASPECT_RATIOS = ("16:9", "9:16")
RESOLUTIONS = ("360p", "720p", "1080p", "4k")
# Price per second relative to 720p. §2.5: Omni is billed as output tokens, about $0.10/s at
# 720p (about 5,792 tokens/s x $17.50 per 1M, medium-high confidence); resellers quote 360p
# at about 0.4x, 1080p about 2x and 4K about 4x (low confidence). The world's
# `cost_per_second_usd` is the 720p price.
RESOLUTION_PRICE_FACTOR = {"360p": 0.4, "720p": 1.0, "1080p": 2.0, "4k": 4.0}
SILENCE = " No music, speech or sound effects: the clip is silent."

ATTEMPTS = 2  # a plan that is invalid, truncated or lost is asked for once more
_PLAN_RETRIED = frozenset({"timeout", "unavailable", "bad_output", "provider_error"})
_RETRIED = frozenset({"timeout", "unavailable", "rate_limited", "provider_error"})
POLL_FAILURES_ALLOWED = 8
DOWNLOAD_ATTEMPTS = 4
_FAILED = frozenset({"failed", "cancelled", "incomplete", "budget_exceeded"})
_BLOCKED_FINISH = frozenset(
    {
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
    }
)
_FILE_NAME = re.compile(r"(?:^|/)files/([A-Za-z0-9_-]+)")

_tls: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    """The CA bundle the SDK would load per client (SSL_CERT_FILE / SSL_CERT_DIR honoured)."""
    return ssl.create_default_context(
        cafile=os.environ.get("SSL_CERT_FILE", certifi.where()),
        capath=os.environ.get("SSL_CERT_DIR"),
    )


async def shared_tls_context() -> ssl.SSLContext:
    """One TLS context for every client, loaded once in a thread (it reads the CA bundle)."""
    global _tls
    if _tls is None:
        context = await asyncio.to_thread(_tls_context)
        if _tls is None:
            _tls = context
    return _tls


def fit_problems(world: WorldSettings) -> list[str]:
    """What the world asks that Gemini Omni Flash does not make (empty: it fits)."""
    problems = []
    if not MIN_SECONDS <= world.video_seconds <= MAX_SECONDS:
        problems.append(
            f"{world.video_seconds} s is not a duration it makes (it makes {MIN_SECONDS} to "
            f"{MAX_SECONDS} s)"
        )
    if world.resolution not in RESOLUTIONS:
        offered = ", ".join(RESOLUTIONS)
        problems.append(f"{world.video_size} ({world.resolution}) is not offered (only {offered})")
    if world.aspect_ratio not in ASPECT_RATIOS:
        problems.append(
            f"aspect ratio {world.aspect_ratio} is not offered (only {', '.join(ASPECT_RATIOS)})"
        )
    return problems


def estimate_usd(world: WorldSettings) -> float:
    """One clip's estimated price: the 720p price per second x seconds x the size's factor."""
    factor = RESOLUTION_PRICE_FACTOR.get(world.resolution, 1.0)
    return round(world.cost_per_second_usd * factor * world.video_seconds, 4)


def file_name(uri: str | None) -> str | None:
    """`files/<id>` of a generated video's URI (`https://…/files/<id>…` or `files/<id>`)."""
    match = _FILE_NAME.search(uri or "")
    return f"files/{match.group(1)}" if match else None


class _SpoolWriter:
    """A `files.download(destination=...)` target: chunks reach the disk in a thread hop.

    Gathered up to CHUNK_BYTES per write, so memory stays bounded and the event loop never
    waits on the disk (the SDK awaits `write` when it returns an awaitable).
    """

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.size = 0

    async def write(self, chunk: bytes) -> int:
        if chunk:
            self._pending.append(chunk)
            self._pending_bytes += len(chunk)
            self.size += len(chunk)
        if self._pending_bytes >= CHUNK_BYTES:
            await self.flush()
        return len(chunk)

    async def flush(self) -> None:
        if self._pending:
            data, self._pending, self._pending_bytes = b"".join(self._pending), [], 0
            await asyncio.to_thread(self._handle.write, data)


def _write_inline(data: str | bytes, destination: Path) -> int:
    """Decode an inline (base64) clip straight into `destination`; its size in bytes."""
    try:
        clip = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        raise provider_error("provider_error") from None
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_bytes(clip)
    return len(clip)


class GeminiProvider:
    """Gemini planner + Gemini Omni Flash video for one world; the member's key rides each call."""

    name = "gemini"
    display_name = "Gemini"
    needs_key = True
    reports_progress = False  # an interaction is queued, in progress or done: no percentage
    can_find_renders = False  # the Interactions API lists nothing: an id is the only handle

    def __init__(self, world: WorldSettings, settings: ProviderSettings) -> None:
        self.world = world
        self.settings = settings
        self.base_url = (settings.gemini_base_url or DEFAULT_BASE_URL).rstrip("/")
        self.api_version = settings.gemini_api_version
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        """The connection pool of the `models` / `files` calls (the SDK's aiohttp transport).

        It holds no key (the SDK puts the key on each request) and keeps no cookies, so one
        member's calls leave nothing behind for the next.
        """
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=True,
            )
        return self._http

    # -- clients ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def client(self, key: str) -> AsyncIterator[AsyncClient]:
        """A client for one member's key, closed on the way out (nothing keeps the key).

        Everything is explicit, so the host's GOOGLE_API_KEY / GEMINI_API_KEY /
        GOOGLE_GENAI_* variables change nothing; `attempts=1` switches off the SDK's retries
        (on by default for interactions, where a retried create could pay twice) and the
        aiohttp transport's hidden reconnect-and-sleep.
        """
        tls = await shared_tls_context()
        client = genai.Client(
            vertexai=False,
            api_key=key,
            http_options=types.HttpOptions(
                base_url=self.base_url,
                api_version=self.api_version,
                timeout=int(self.settings.request_timeout_seconds * 1000),  # milliseconds
                retry_options=types.HttpRetryOptions(attempts=1),
                client_args={"verify": tls},
                async_client_args={"verify": tls, "ssl": tls},
                aiohttp_client=self._session(),
            ),
        )
        try:
            yield client.aio
        finally:
            with contextlib.suppress(Exception):
                await client.aio.aclose()
            with contextlib.suppress(Exception):
                client.close()

    async def _call(self, key: str, step: Step, call: Callable[[AsyncClient], Awaitable[T]]) -> T:
        """One SDK call on a fresh client; every upstream failure becomes a ProviderError."""
        async with self.client(key) as client:
            try:
                return await call(client)
            except SDK_ERRORS as exc:
                raise from_exception(exc, step) from None

    async def _retrying(
        self, what: str, call: Callable[[], Awaitable[T]], backoff: Backoff | None = None
    ) -> T:
        """`call` again after transient failures (never used for a create)."""
        backoff = backoff or Backoff(
            self.settings.poll_interval_seconds, self.settings.poll_max_interval_seconds
        )
        failures = 0
        while True:
            try:
                return await call()
            except ProviderError as exc:
                failures += 1
                if exc.code not in _RETRIED or failures > POLL_FAILURES_ALLOWED:
                    raise
                log.info("gemini %s failed code=%s; retrying", what, exc.code)
            await asyncio.sleep(backoff.next())

    # -- key and estimate ------------------------------------------------------------------

    def _require_fit(self) -> None:
        """ProviderError(config), before anything is spent, if Omni cannot make this clip."""
        problems = fit_problems(self.world)
        if problems:
            log.warning(
                "video settings do not fit world=%s: %s", self.world.id, "; ".join(problems)
            )
            raise provider_error("config")

    async def validate_key(self, credentials: Credentials | None) -> KeyCheck:
        """`models.get` of the planner: proves the key, spends nothing (not billing: §2.5)."""
        key = require_key(credentials)
        self._require_fit()
        model = self.world.planner_model
        await self._call(key, "key", lambda client: client.models.get(model=model))
        return KeyCheck()  # Gemini tells no remaining credit

    async def estimate_cost_usd(self) -> float | None:
        return estimate_usd(self.world)

    def cached_estimate_usd(self) -> float | None:
        return estimate_usd(self.world)

    # -- planning --------------------------------------------------------------------------

    async def plan(self, request: PlanRequest, credentials: Credentials | None) -> Plan:
        key = require_key(credentials)
        config = types.GenerateContentConfig(
            system_instruction=prompts.planner_instructions(request),
            response_mime_type="application/json",
            response_json_schema=prompts.PLAN_SCHEMA,
        )
        last: ProviderError | None = None
        for attempt in range(1, ATTEMPTS + 1):
            try:
                text = await self._generate(
                    key, request.model, prompts.planner_input(request), config
                )
                return prompts.validate_plan(prompts.parse_plan(text))
            except ProviderError as exc:
                last = exc
                log.warning(
                    "gemini planner attempt %d failed world=%s path=%r code=%s",
                    attempt,
                    request.world_id,
                    request.path,
                    exc.code,
                )
                if exc.code not in _PLAN_RETRIED:
                    raise
        assert last is not None
        raise last

    async def summarise(self, request: SummaryRequest, credentials: Credentials | None) -> str:
        key = require_key(credentials)
        config = types.GenerateContentConfig(system_instruction=prompts.chronicler_instructions())
        text = await self._generate(key, request.model, prompts.chronicler_input(request), config)
        return prompts.parse_summary(text)

    async def _generate(
        self, key: str, model: str, contents: str, config: types.GenerateContentConfig
    ) -> str | None:
        response = await self._call(
            key,
            "plan",
            lambda client: client.models.generate_content(
                model=model, contents=contents, config=config
            ),
        )
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            raise provider_error("blocked")
        if not response.candidates:
            raise provider_error("bad_output")
        finish = response.candidates[0].finish_reason
        finish_name = getattr(finish, "value", finish)
        if finish_name in _BLOCKED_FINISH:
            raise provider_error("blocked")
        if finish_name == "MAX_TOKENS":
            raise provider_error("bad_output")  # truncated JSON: never repaired
        parts = response.candidates[0].content.parts if response.candidates[0].content else None
        return "".join(p.text for p in parts or [] if p.text and not p.thought) or None

    # -- video -----------------------------------------------------------------------------

    def create_arguments(self, request: RenderRequest) -> dict[str, Any]:
        """The `interactions.create` arguments; ProviderError(config) if Omni cannot make it."""
        self._require_fit()
        prompt = request.prompt if self.world.generate_audio else request.prompt + SILENCE
        if request.reference_image is not None:
            encoded = base64.b64encode(request.reference_image).decode("ascii")
            # Media parts first, the text last (§2.5).
            content: Any = [
                {"type": "image", "data": encoded, "mime_type": "image/png"},
                {"type": "text", "text": prompt},
            ]
            task = "image_to_video"
        else:
            content, task = prompt, "text_to_video"
        return {
            "model": request.model,
            "input": content,
            "response_format": {
                "type": "video",
                "aspect_ratio": self.world.aspect_ratio,
                "resolution": self.world.resolution,
                "duration": f"{request.seconds}s",
                "delivery": "uri",  # inline output tops out around 4 MB
            },
            "generation_config": {"video_config": {"task": task}},
            "background": True,
            "store": True,
        }

    async def start_render(self, request: RenderRequest, credentials: Credentials | None) -> str:
        key = require_key(credentials)
        arguments = self.create_arguments(request)
        where = f"world={request.world_id} path={request.path!r}"
        timeout = self.settings.create_timeout_seconds
        # Sent exactly once: no retry here, none in the SDK (attempts=1).
        interaction = await self._call(
            key,
            "create",
            lambda client: client.interactions.create(**arguments, timeout=timeout),
        )
        job_id = getattr(interaction, "id", None)
        if not isinstance(job_id, str) or not job_id:
            log.warning("video create answered without an id %s; not re-sent", where)
            raise unknown_outcome("provider_error")
        log.info("video created %s interaction=%s", where, job_id)
        return job_id

    async def _interaction(self, key: str, job_id: str) -> Any:
        return await self._call(key, "poll", lambda client: client.interactions.get(job_id))

    async def watch_render(
        self, job_id: str, credentials: Credentials | None
    ) -> AsyncIterator[RenderStatus]:
        key = require_key(credentials)
        backoff = Backoff(
            self.settings.poll_interval_seconds, self.settings.poll_max_interval_seconds
        )
        failures = 0
        while True:
            try:
                interaction = await self._interaction(key, job_id)
            except ProviderError as exc:
                failures += 1
                if exc.code not in _RETRIED or failures > POLL_FAILURES_ALLOWED:
                    raise
                log.info("render poll failed interaction=%s code=%s; retrying", job_id, exc.code)
                await asyncio.sleep(backoff.next())
                continue
            failures = 0
            state = str(interaction.status or "in_progress")
            if state == "completed":
                if interaction.output_video is None:  # finished, but nothing to show: blocked
                    raise provider_error("blocked")
                yield RenderStatus(None, done=True, state=state)
                return
            if state in _FAILED:
                log.info("render ended interaction=%s status=%s", job_id, state)
                raise failed_interaction(state, interaction.errors)
            yield RenderStatus(None, state=state)
            await asyncio.sleep(backoff.next())

    async def download(
        self, job_id: str, credentials: Credentials | None, destination: Path
    ) -> int:
        key = require_key(credentials)
        interaction = await self._retrying("result look-up", lambda: self._interaction(key, job_id))
        video = interaction.output_video
        state = str(interaction.status or "")
        if state in _FAILED:
            raise failed_interaction(state, interaction.errors)
        if state != "completed":
            raise provider_error("provider_error")  # not finished after all: the job is kept
        if video is None:
            raise provider_error("blocked")
        if video.data:
            return await asyncio.to_thread(_write_inline, video.data, destination)
        name = file_name(video.uri)
        if name is None:
            log.warning("render result has no usable file interaction=%s", job_id)
            raise provider_error("provider_error")
        await self._wait_until_active(key, name)
        return await self._download_file(key, name, destination)

    async def _wait_until_active(self, key: str, name: str) -> None:
        """A generated file can be read once the files API says ACTIVE."""
        backoff = Backoff(
            self.settings.poll_interval_seconds, self.settings.poll_max_interval_seconds
        )
        while True:
            file = await self._retrying(
                "file look-up",
                lambda: self._call(key, "download", lambda client: client.files.get(name=name)),
            )
            state = getattr(file.state, "value", file.state)
            if state == "ACTIVE":
                return
            if state == "FAILED":
                raise provider_error("render_failed")
            await asyncio.sleep(backoff.next())

    async def _download_file(self, key: str, name: str, destination: Path) -> int:
        backoff = Backoff(
            self.settings.poll_interval_seconds, self.settings.poll_max_interval_seconds
        )
        await asyncio.to_thread(destination.parent.mkdir, parents=True, exist_ok=True)
        last: ProviderError = provider_error("unavailable")
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            handle: IO[bytes] = await asyncio.to_thread(destination.open, "wb")
            writer = _SpoolWriter(handle)
            try:
                await self._call(
                    key,
                    "download",
                    lambda client, writer=writer: client.files.download(
                        file=name, destination=writer
                    ),
                )
                await writer.flush()
                return writer.size
            except ProviderError as exc:
                last = exc
                if exc.code not in _RETRIED:
                    raise
            finally:
                await asyncio.to_thread(handle.close)
            log.info("clip download attempt %d failed file=%s code=%s", attempt, name, last.code)
            if attempt < DOWNLOAD_ATTEMPTS:
                await asyncio.sleep(backoff.next())
        raise last

    async def find_render(
        self, request: RenderRequest, since: datetime, credentials: Credentials | None
    ) -> str | None:
        raise NotImplementedError("Gemini cannot look an interaction up without its id.")

    # -- host checks -----------------------------------------------------------------------

    async def check(self) -> list[tuple[str, str]]:
        """(level, sentence) pairs for `shared-world check`: ok, warn or fail."""
        world = self.world
        lines: list[tuple[str, str]] = []
        problems = fit_problems(world)
        if problems:
            lines.append(("fail", f"{world.id}: {world.video_model}: {'; '.join(problems)}"))
        else:
            sound = "with sound" if world.generate_audio else "asked to be silent"
            lines.append(
                (
                    "ok",
                    f"{world.id}: {world.video_model} makes {world.video_seconds} s "
                    f"{world.resolution} {world.aspect_ratio} clips {sound} from the parent's "
                    f"last frame, about ${estimate_usd(world):.2f} each "
                    f"(${world.cost_per_second_usd:.2f}/s at 720p x "
                    f"{RESOLUTION_PRICE_FACTOR[world.resolution]:g} for {world.resolution})",
                )
            )
        models = [world.planner_model, world.video_model]
        if world.summary_model:
            models.insert(1, world.summary_model)
        models = list(dict.fromkeys(models))
        key = self.settings.gemini_check_api_key
        if not key:
            lines.append(
                (
                    "warn",
                    f"{world.id}: models {', '.join(models)} at {self.base_url} were not looked "
                    f"up (set {CHECK_KEY_ENV} to a Gemini key to check them); members' keys "
                    "are checked when they mint",
                )
            )
            return lines
        for model in models:
            try:
                await self._call(key, "key", lambda client, m=model: client.models.get(model=m))
            except ProviderError as exc:
                if exc.code == "config":
                    lines.append(("fail", f"{world.id}: Gemini does not know the model {model!r}"))
                    continue
                if exc.code in ("unavailable", "timeout", "provider_error"):
                    reason = f"Gemini at {self.base_url} cannot be reached ({exc.code})"
                else:
                    reason = f"{CHECK_KEY_ENV} was refused ({exc.code})"
                lines.append(("warn", f"{world.id}: {reason}; models were not checked"))
                return lines
            lines.append(("ok", f"{world.id}: Gemini model {model} answers"))
        return lines

    async def close(self) -> None:
        """Every client is closed after its call; only the keyless pool is left to close."""
        if self._http is not None:
            await self._http.close()
