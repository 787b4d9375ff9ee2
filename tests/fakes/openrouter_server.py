"""A loopback fake of OpenRouter's API (`/api/v1`) for provider and end-to-end tests.

It serves what the project's OpenRouter provider calls, with OpenRouter's documented JSON
shapes and error envelope (`{"error": {"code": int, "message": str, "metadata": ...}}`,
HTTP status = `error.code`):

    GET  /api/v1/videos/models             video catalogue (no key)
    GET  /api/v1/models                    chat catalogue (no key)
    GET  /api/v1/key                       the key's label, limit, remaining credit
    POST /api/v1/chat/completions          OpenAI-compatible; JSON satisfying `response_format`
    POST /api/v1/videos                    202 {"id", "polling_url", "status": "pending"}
    GET  /api/v1/videos/{id}               pending -> in_progress -> completed|failed|...
    GET  /api/v1/videos/{id}/content       the mp4 clip (Bearer required), streamed

Keys are registered with `add_key(key, **behaviour)` and script faults (see `KeyBehaviour`);
any other key gets 401 "User not found." Every request is logged in `requests`, every
`POST /videos` in `creates` (refused ones too, with the status answered), every chat call in
`chats`. Jobs belong to the key that created them: polling or downloading another key's job
answers 404, as an unknown id does.

Request validation happens before injected faults, so a malformed body is a 400 even for a
key scripted to answer 429.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes._common import (
    JSON_OBJECT_SCHEMA,
    BaseKeyBehaviour,
    FakeServer,
    PollCounter,
    bearer_token,
    estimate_tokens,
    json_from_schema,
    json_schema_format_problem,
    messages_problem,
    new_id,
    stream_bytes,
    summary_text,
)

__all__ = [
    "DEFAULT_CHAT_MODELS",
    "DEFAULT_VIDEO_MODELS",
    "ChatRecord",
    "CreateRecord",
    "FakeOpenRouter",
    "KeyBehaviour",
    "VideoJob",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_DATA_URL_PREFIX = "data:image/png;base64,"
CHAT_COST = 0.0012
TERMINAL = ("completed", "failed", "cancelled", "expired")
OUTCOMES = TERMINAL

DEFAULT_VIDEO_MODELS: list[dict[str, Any]] = [
    {
        "id": "google/veo-3.1-fast",
        "name": "Google: Veo 3.1 Fast",
        "supported_durations": [4, 6, 8],
        "supported_resolutions": ["720p", "1080p"],
        "supported_aspect_ratios": ["16:9", "9:16"],
        "supported_sizes": ["1280x720", "720x1280", "1920x1080", "1080x1920"],
        "supported_frame_images": ["first_frame", "last_frame"],
        "generate_audio": True,
        "seed": True,
        "allowed_passthrough_parameters": ["negative_prompt", "person_generation"],
        "pricing_skus": {"duration_seconds_with_audio": "0.12", "duration_seconds": "0.10"},
    },
    {
        "id": "test/text-only",
        "name": "Test: Text Only",
        "supported_durations": [5, 10],
        "supported_resolutions": ["720p"],
        "supported_aspect_ratios": ["16:9"],
        "supported_sizes": ["1280x720"],
        "supported_frame_images": None,
        "generate_audio": False,
        "seed": False,
        "allowed_passthrough_parameters": [],
        "pricing_skus": {"cents_per_video_second": "5"},
    },
    {
        "id": "test/token-priced",
        "name": "Test: Token Priced",
        "supported_durations": [8],
        "supported_resolutions": ["720p"],
        "supported_aspect_ratios": ["16:9"],
        "supported_sizes": ["1280x720"],
        "supported_frame_images": ["first_frame"],
        "generate_audio": False,
        "seed": True,
        "allowed_passthrough_parameters": [],
        "pricing_skus": {"video_tokens": "0.0000025"},
        "video_tokens_per_second": 5000,
    },
]

DEFAULT_CHAT_MODELS: list[dict[str, Any]] = [
    {
        "id": "openai/gpt-5-mini",
        "name": "OpenAI: GPT-5 Mini",
        "context_length": 400000,
        "supported_parameters": [
            "response_format",
            "structured_outputs",
            "max_tokens",
            "temperature",
        ],
        "pricing": {"prompt": "0.00000025", "completion": "0.000002"},
    },
    {
        "id": "test/no-structured",
        "name": "Test: No Structured Output",
        "context_length": 8192,
        "supported_parameters": ["max_tokens"],
        "pricing": {"prompt": "0.0000001", "completion": "0.0000002"},
    },
]

# Fields `POST /videos` accepts; anything else is a 400 (catches a misspelt field).
CREATE_FIELDS = frozenset(
    {
        "model",
        "prompt",
        "duration",
        "resolution",
        "aspect_ratio",
        "size",
        "generate_audio",
        "seed",
        "frame_images",
        "input_references",
        "callback_url",
        "previous_job_id",
        "provider",
    }
)

ERROR_MESSAGES = {
    400: "Bad request",
    401: "User not found.",
    402: "Insufficient credits",
    403: "Input was flagged by moderation",
    404: "Not found",
    408: "Request timed out",
    429: "Rate limit exceeded",
    500: "No provider available",
    502: "No provider available",
    503: "No provider available",
}


@dataclass
class KeyBehaviour(BaseKeyBehaviour):
    """What one OpenRouter key does. Pass any field to `FakeOpenRouter.add_key`.

    Shared fields (see `BaseKeyBehaviour`): create_status (401/402/403/408/429/5xx),
    create_fail_times, create_delay, polls_to_complete, poll_errors, outcome
    ("completed"|"failed"|"expired"|"cancelled"), error_text, download_delay,
    chat_contents, chat_status, chat_fail_times, chat_truncated, key_status (for GET /key).
    """

    retry_after: float | None = 1  # `Retry-After` on injected 429s
    label: str | None = None  # default: a masked form of the key
    limit: float | None = None  # None = unlimited
    limit_remaining: float | None = 10.0
    usage: float = 0.5  # grows by each completed job's cost and each chat's cost
    is_free_tier: bool = False
    cost: float = 0.96  # usage.cost of a completed job
    status_detail: str | None = None  # e.g. "generating": sent on in-progress polls


@dataclass
class CreateRecord:
    """One `POST /videos` as received. `job_id` is None when it was refused."""

    key: str | None
    body: dict[str, Any] | None
    status: int
    job_id: str | None = None
    first_frame: bytes | None = None  # decoded PNG of the `first_frame` frame image
    last_frame: bytes | None = None
    at: float = field(default_factory=time.monotonic)


@dataclass
class ChatRecord:
    """One `POST /chat/completions`: the request body, the key, and what was answered."""

    key: str | None
    body: dict[str, Any] | None
    status: int
    content: str | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def provider(self) -> Any:
        """The `provider` routing object (sent through the SDK's `extra_body`)."""
        return (self.body or {}).get("provider")


@dataclass
class VideoJob:
    id: str
    key: str
    model: str
    prompt: str
    behaviour: KeyBehaviour
    progress: PollCounter
    status: str = "pending"
    generation_id: str = field(default_factory=lambda: new_id("gen-"))
    created_at: float = field(default_factory=time.time)


class _Refused(Exception):
    """Raised by validators; becomes an OpenRouter error response."""

    def __init__(self, status: int, message: str, metadata: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.metadata = metadata


def error_response(
    status: int,
    message: str | None = None,
    *,
    metadata: Any = None,
    with_metadata: bool = True,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    error: dict[str, Any] = {
        "code": status,
        "message": message or ERROR_MESSAGES.get(status, "Error"),
    }
    if with_metadata:
        error["metadata"] = metadata
    return web.json_response({"error": error}, status=status, headers=headers)


def _unauthorized() -> web.Response:
    return error_response(401, "User not found.", with_metadata=False)


class FakeOpenRouter(FakeServer):
    """OpenRouter on loopback. `base_url` is `http://127.0.0.1:<port>/api/v1`.

    Constructor: `clip` (mp4 bytes served as every completed job's content),
    `video_models` / `chat_models` (catalogues; defaults `DEFAULT_VIDEO_MODELS`,
    `DEFAULT_CHAT_MODELS`), `absolute_polling_url` (the 202 carries an absolute
    `polling_url` instead of `/api/v1/videos/<id>`).
    """

    api_prefix = "/api/v1"

    def __init__(
        self,
        *,
        clip: bytes | None = None,
        video_models: list[dict[str, Any]] | None = None,
        chat_models: list[dict[str, Any]] | None = None,
        absolute_polling_url: bool = False,
    ) -> None:
        super().__init__()
        self.clip = clip
        self.video_models = copy.deepcopy(
            DEFAULT_VIDEO_MODELS if video_models is None else video_models
        )
        self.chat_models = copy.deepcopy(
            DEFAULT_CHAT_MODELS if chat_models is None else chat_models
        )
        self.absolute_polling_url = absolute_polling_url
        self.keys: dict[str, KeyBehaviour] = {}
        self.jobs: dict[str, VideoJob] = {}
        self.creates: list[CreateRecord] = []
        self.chats: list[ChatRecord] = []

    def add_key(self, key: str, **behaviour: Any) -> KeyBehaviour:
        """Accept `key` from now on; `behaviour` sets `KeyBehaviour` fields. Returns it."""
        outcome = behaviour.get("outcome", "completed")
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        self.keys[key] = KeyBehaviour(**behaviour)
        return self.keys[key]

    def revoke_key(self, key: str) -> None:
        """Forget `key`: every later request with it gets 401."""
        self.keys.pop(key, None)

    @property
    def accepted_creates(self) -> list[CreateRecord]:
        return [c for c in self.creates if c.job_id is not None]

    # ---- routes

    def _add_routes(self, app: web.Application) -> None:
        p = self.api_prefix
        app.router.add_get(f"{p}/videos/models", self._video_models)
        app.router.add_get(f"{p}/models", self._chat_models)
        app.router.add_get(f"{p}/key", self._key)
        app.router.add_post(f"{p}/chat/completions", self._chat)
        app.router.add_post(f"{p}/videos", self._create_video)
        app.router.add_get(f"{p}/videos/{{job_id}}", self._poll_video)
        app.router.add_get(f"{p}/videos/{{job_id}}/content", self._download)
        app.router.add_route("*", "/{tail:.*}", self._no_route)

    async def _no_route(self, request: web.Request) -> web.Response:
        return error_response(404, f"Not found: {request.method} {request.path}")

    def _internal_error_response(self, message: str) -> web.Response:
        return error_response(500, message)

    def _behaviour(self, request: web.Request) -> tuple[str, KeyBehaviour] | None:
        key = bearer_token(request.headers.get("Authorization"))
        if key is None or key not in self.keys:
            return None
        return key, self.keys[key]

    def _model(self, catalogue: list[dict[str, Any]], model_id: Any) -> dict[str, Any] | None:
        return next((m for m in catalogue if m.get("id") == model_id), None)

    async def _video_models(self, request: web.Request) -> web.Response:
        return web.json_response({"data": self.video_models})

    async def _chat_models(self, request: web.Request) -> web.Response:
        return web.json_response({"data": self.chat_models})

    async def _key(self, request: web.Request) -> web.Response:
        found = self._behaviour(request)
        if found is None:
            return _unauthorized()
        key, behaviour = found
        if behaviour.key_status is not None:
            return self._injected_error(behaviour.key_status, behaviour)
        return web.json_response(
            {
                "data": {
                    "label": behaviour.label or f"{key[:9]}...{key[-3:]}",
                    "limit": behaviour.limit,
                    "limit_remaining": behaviour.limit_remaining,
                    "usage": round(behaviour.usage, 6),
                    "is_free_tier": behaviour.is_free_tier,
                    "rate_limit": {"requests": -1, "interval": "10s"},
                }
            }
        )

    def _injected_error(
        self, status: int, behaviour: KeyBehaviour, *, prompt: str | None = None
    ) -> web.Response:
        headers: dict[str, str] = {}
        if status == 429 and behaviour.retry_after is not None:
            headers["Retry-After"] = f"{behaviour.retry_after:g}"
        if status == 401:
            return error_response(401, "User not found.", with_metadata=False)
        metadata: Any = None
        if status == 403:
            metadata = {"reasons": ["violence"], "flagged_input": prompt or ""}
        return error_response(status, metadata=metadata, headers=headers)

    def _spend(self, behaviour: KeyBehaviour, cost: float) -> None:
        behaviour.usage += cost
        if behaviour.limit_remaining is not None:
            behaviour.limit_remaining = max(0.0, behaviour.limit_remaining - cost)

    # ---- chat

    async def _chat(self, request: web.Request) -> web.Response:
        found = self._behaviour(request)
        key = bearer_token(request.headers.get("Authorization"))
        body: dict[str, Any] | None = None
        try:
            if found is None:
                raise _Refused(401, "User not found.")
            behaviour = found[1]
            body = await _json_object(request)
            model, schema = self._chat_request(body)
        except _Refused as refused:
            self.chats.append(ChatRecord(key, body, refused.status))
            if refused.status == 401:
                return _unauthorized()
            return error_response(refused.status, refused.message, metadata=refused.metadata)
        status = behaviour.take_chat_error()
        if status is not None:
            self.chats.append(ChatRecord(key, body, status))
            return self._injected_error(status, behaviour)
        content = behaviour.next_chat_content()
        if content is None:
            content = summary_text() if schema is None else json.dumps(json_from_schema(schema))
        if behaviour.chat_truncated:
            content = content[: max(1, len(content) // 2)]
        self.chats.append(ChatRecord(key, body, 200, content))
        self._spend(behaviour, CHAT_COST)
        prompt_tokens = estimate_tokens(body["messages"])
        completion_tokens = estimate_tokens(content)
        finish_reason = "length" if behaviour.chat_truncated else "stop"
        return web.json_response(
            {
                "id": new_id("gen-"),
                "provider": "OpenAI",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "logprobs": None,
                        "finish_reason": finish_reason,
                        "native_finish_reason": finish_reason,
                        "message": {
                            "role": "assistant",
                            "content": content,
                            "refusal": None,
                            "reasoning": None,
                        },
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                    "cost": CHAT_COST,
                },
            }
        )

    def _chat_request(self, body: dict[str, Any]) -> tuple[str, Mapping[str, Any] | None]:
        """Validate a chat body; the model id and the JSON Schema the reply must satisfy."""
        model = self._model(self.chat_models, body.get("model"))
        if model is None:
            raise _Refused(400, f"{body.get('model')!r} is not a valid model ID")
        if problem := messages_problem(body.get("messages")):
            raise _Refused(400, problem)
        response_format = body.get("response_format")
        if response_format is None:
            return str(model["id"]), None
        if not isinstance(response_format, Mapping):
            raise _Refused(400, "response_format must be an object")
        kind = response_format.get("type")
        schema: Mapping[str, Any] | None = None
        if kind == "json_schema":
            fmt = response_format.get("json_schema")
            if problem := json_schema_format_problem(fmt):
                raise _Refused(400, problem)
            schema = fmt["schema"]
            try:
                json_from_schema(schema)
            except ValueError as exc:
                raise _Refused(400, str(exc)) from exc
        elif kind == "json_object":
            schema = JSON_OBJECT_SCHEMA
        elif kind != "text":
            raise _Refused(400, f"response_format.type {kind!r} is not supported")
        if "response_format" not in model.get("supported_parameters", []):
            provider = body.get("provider")
            if isinstance(provider, Mapping) and provider.get("require_parameters"):
                raise _Refused(404, "No endpoints found that can handle the requested parameters.")
            schema = None  # the model ignores what it does not support
        return str(model["id"]), schema

    # ---- video create

    async def _create_video(self, request: web.Request) -> web.Response:
        found = self._behaviour(request)
        key = bearer_token(request.headers.get("Authorization"))
        body: dict[str, Any] | None = None
        try:
            if found is None:
                raise _Refused(401, "User not found.")
            behaviour = found[1]
            body = await _json_object(request)
            model, frames = self._validate_create(body)
        except _Refused as refused:
            self.creates.append(CreateRecord(key, body, refused.status))
            if refused.status == 401:
                return _unauthorized()
            return error_response(refused.status, refused.message, metadata=refused.metadata)
        record = CreateRecord(
            key,
            body,
            202,
            first_frame=frames.get("first_frame"),
            last_frame=frames.get("last_frame"),
        )
        self.creates.append(record)
        status = behaviour.take_create_error()
        if status is not None:
            record.status = status
            return self._injected_error(status, behaviour, prompt=body["prompt"])
        job = VideoJob(
            id=new_id("gen-vid-"),
            key=found[0],
            model=str(model["id"]),
            prompt=body["prompt"],
            behaviour=behaviour,
            progress=PollCounter(behaviour.polls_to_complete, behaviour.poll_errors),
        )
        self.jobs[job.id] = job
        record.job_id = job.id
        if behaviour.create_delay:
            await asyncio.sleep(behaviour.create_delay)
        polling_path = f"{self.api_prefix}/videos/{job.id}"
        polling_url = f"{self.origin}{polling_path}" if self.absolute_polling_url else polling_path
        return web.json_response(
            {"id": job.id, "polling_url": polling_url, "status": "pending"}, status=202
        )

    def _validate_create(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bytes]]:
        unknown = sorted(set(body) - CREATE_FIELDS)
        if unknown:
            raise _Refused(400, f"Unrecognized field(s): {', '.join(unknown)}")
        model = self._model(self.video_models, body.get("model"))
        if model is None:
            raise _Refused(
                400, f"Model {body.get('model')!r} does not exist or is not a video model"
            )
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise _Refused(400, "prompt must be a non-empty string")
        duration = body.get("duration")
        if not isinstance(duration, int) or isinstance(duration, bool):
            raise _Refused(400, "duration is required and must be an integer number of seconds")
        if duration not in model["supported_durations"]:
            raise _Refused(
                400,
                f"duration {duration} is not supported by {model['id']}; "
                f"supported: {model['supported_durations']}",
            )
        for name, allowed in (
            ("resolution", "supported_resolutions"),
            ("aspect_ratio", "supported_aspect_ratios"),
            ("size", "supported_sizes"),
        ):
            if name in body and body[name] not in (model.get(allowed) or []):
                raise _Refused(
                    400,
                    f"{name} {body[name]!r} is not supported by {model['id']}; "
                    f"supported: {model.get(allowed)}",
                )
        if "generate_audio" in body and not isinstance(body["generate_audio"], bool):
            raise _Refused(400, "generate_audio must be a boolean")
        if "seed" in body and (not isinstance(body["seed"], int) or isinstance(body["seed"], bool)):
            raise _Refused(400, "seed must be an integer")
        frames = _frame_images(body.get("frame_images"), model) if "frame_images" in body else {}
        return model, frames

    # ---- poll and download

    def _own_job(self, request: web.Request) -> tuple[VideoJob | None, web.Response | None]:
        found = self._behaviour(request)
        if found is None:
            return None, _unauthorized()
        job = self.jobs.get(request.match_info["job_id"])
        if job is None or job.key != found[0]:
            return None, error_response(404, "Not found", with_metadata=False)
        return job, None

    async def _poll_video(self, request: web.Request) -> web.Response:
        job, refusal = self._own_job(request)
        if job is None:
            assert refusal is not None
            return refusal
        behaviour = job.behaviour
        if job.status not in TERMINAL:
            if not job.progress.poll():
                return error_response(500, "Internal Server Error")
            if job.progress.finished:
                job.status = behaviour.outcome
                if job.status == "completed":
                    self._spend(behaviour, behaviour.cost)
            else:
                job.status = "in_progress"
        payload: dict[str, Any] = {"id": job.id, "status": job.status}
        if job.status == "completed":
            payload |= {
                "generation_id": job.generation_id,
                "unsigned_urls": [f"{self.base_url}/videos/{job.id}/content?index=0"],
                "usage": {"cost": behaviour.cost, "is_byok": False},
            }
        elif job.status == "failed":
            payload["error"] = behaviour.error_text
        elif job.status == "expired":
            payload["error"] = "Job exceeded maximum time to live"
        elif job.status == "cancelled":
            payload["error"] = "Job was cancelled"
        elif behaviour.status_detail is not None:
            payload["status_detail"] = behaviour.status_detail
        return web.json_response(payload)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        job, refusal = self._own_job(request)
        if job is None:
            assert refusal is not None
            return refusal
        index = request.query.get("index", "0")
        if not index.isdigit():
            return error_response(400, "index must be a non-negative integer")
        if job.status != "completed" or int(index) != 0:
            return error_response(404, "Not found", with_metadata=False)
        if self.clip is None:
            raise RuntimeError("FakeOpenRouter(clip=...) was not given any mp4 bytes to serve")
        return await stream_bytes(
            request, self.clip, "video/mp4", delay=job.behaviour.download_delay
        )


async def _json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise _Refused(400, f"Content-Type must be application/json, got {request.content_type!r}")
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Refused(400, f"Invalid JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise _Refused(400, "The request body must be a JSON object")
    return body


def _frame_images(frames: Any, model: Mapping[str, Any]) -> dict[str, bytes]:
    """Validate `frame_images`; return the decoded PNG bytes by frame type."""
    supported = model.get("supported_frame_images")
    if supported is None:
        raise _Refused(400, f"{model['id']} does not accept frame_images")
    if not isinstance(frames, list) or not frames:
        raise _Refused(400, "frame_images must be a non-empty array")
    decoded: dict[str, bytes] = {}
    for index, frame in enumerate(frames):
        where = f"frame_images[{index}]"
        if not isinstance(frame, Mapping) or frame.get("type") != "image_url":
            raise _Refused(400, f'{where} must be {{"type": "image_url", ...}}')
        frame_type = frame.get("frame_type")
        if frame_type not in supported:
            raise _Refused(
                400, f"{where}.frame_type {frame_type!r} is not supported; supported: {supported}"
            )
        if frame_type in decoded:
            raise _Refused(400, f"{where}: more than one {frame_type}")
        image_url = frame.get("image_url")
        url = image_url.get("url") if isinstance(image_url, Mapping) else None
        if not isinstance(url, str) or not url.startswith(PNG_DATA_URL_PREFIX):
            raise _Refused(400, f"{where}.image_url.url must be a data:image/png;base64 URL")
        try:
            data = base64.b64decode(url[len(PNG_DATA_URL_PREFIX) :], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _Refused(400, f"{where}: invalid base64 ({exc})") from exc
        if not data.startswith(PNG_SIGNATURE):
            raise _Refused(400, f"{where}: the data URL is not a PNG image")
        decoded[str(frame_type)] = data
    return decoded
