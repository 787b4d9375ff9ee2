"""A loopback fake of the Gemini API as google-genai 3.6.x calls it, for provider tests.

`base_url` is `http://127.0.0.1:<port>`; pass it as `HttpOptions(base_url=...)` and the SDK
appends `/{version}/...`. Both `v1` and `v1beta` are served (any other version is a 404):

    GET  /{v}/models/{model}                   the key check (`models.get`)
    POST /{v}/models/{model}:generateContent   planner/summary; JSON satisfying the schema
    POST /{v}/interactions                     Gemini Omni Flash video, background only
    GET  /{v}/interactions/{id}                in_progress -> completed|failed|... (`?stream=false`)
    POST /{v}/interactions/{id}/cancel
    GET  /{v}/files/{id}                       PROCESSING -> ACTIVE (a generated video)
    GET  /{v}/files/{id}:download?alt=media    the mp4 clip, streamed

What the SDK sends, and so what the fake accepts and validates (google-genai 3.6.1, checked):

* The key travels only in `x-goog-api-key`. A request without it is refused (403
  PERMISSION_DENIED on the Google routes, 401 `authentication` on interactions, as Google
  does); a `?key=` query parameter or an `Authorization` header is refused with 400/401 so a
  key can never leak into a URL. A key that was not `add_key`-ed is an invalid key.
* `models`, `files` and `generateContent` are Google REST: camelCase JSON, errors in the
  Google envelope `{"error": {"code": 400, "message", "status": "INVALID_ARGUMENT",
  "details"?}}` with HTTP status = code; the SDK raises `google.genai.errors.ClientError` /
  `ServerError`. An invalid key is 400 INVALID_ARGUMENT with `details[0].reason ==
  "API_KEY_INVALID"`.
* `interactions` is the Interactions API: snake_case JSON, and (as documented on
  ai.google.dev/gemini-api/docs/api-errors, and as the SDK's own error model types it)
  errors `{"error": {"code": "invalid_request", "message"}}` with a string code: an invalid or
  missing key is 401 `authentication`, billing 400 `failed_precondition`, 403
  `permission_denied`, 429 `quota_exceeded` / `rate_limit_exceeded`, 500 `api_error`, 503
  `service_unavailable`, a blocked prompt 400 `safety`. The SDK raises
  `google.genai._interactions.BadRequestError` / `AuthenticationError` /
  `PermissionDeniedError` / `NotFoundError` / `RateLimitError` / `InternalServerError`
  (`.status_code`, `.body["error"]["message"]`). `FakeGemini(interaction_errors="google")`
  answers interactions errors in the Google envelope instead (HTTP 400 API_KEY_INVALID for a
  bad key); the SDK maps both to the same classes by HTTP status.
* `interactions.create(input=[{"type": "image", "data": b64, "mime_type": "image/png"},
  {"type": "text", "text": P}], ...)` goes on the wire as `"input": [{"type": "user_input",
  "content": [<image part>, <text part>]}]`; the fake also accepts a plain string, a bare
  content list and a single content object. Media first, text last; at most one image, which
  must be inline base64 PNG. `response_format` must be `{"type": "video", ...}` with
  `aspect_ratio` 16:9|9:16, `resolution` 360p|720p|1080p|4k, `duration` a string "3s".."10s",
  `delivery` uri|inline (all optional; without `delivery` the video comes back inline).
  `generation_config.video_config.task`, when given, must be `image_to_video` with an image
  and `text_to_video` without. `background` must be true and `store` not false; `stream`,
  `safety_settings`, `previous_interaction_id` and `response_format.gcs_uri` are refused.
* A completed interaction carries `steps: [{"type": "model_output", "content": [{"type":
  "video", "mime_type": "video/mp4", "uri": "<base_url>/<v>/files/<id>"}]}]` (or `"data":
  <base64 mp4>`), which the SDK exposes as `interaction.output_video.uri` / `.data`. The SDK's
  `files.get/download` only parse `https://...files/<id>` or `files/<id>`, so a provider must
  cut `files/<id>` out of the loopback `http://` URI itself.

Keys are registered with `add_key(key, **behaviour)` (see `KeyBehaviour`). Every request is
logged in `requests`, every `POST /interactions` in `creates` (refused ones too, with the
status answered; `accepted_creates` are the ones that made an interaction, i.e. were paid),
every generateContent in `generates`. Interactions belong to the key that made them: another
key polling one gets 404; a generated file is readable with the same key only (403).

Request validation happens before injected faults, so a malformed body is a 400 even for a key
scripted to answer 429. Every JSON answer is parsed with the SDK's own models before it is
sent, so a fake that drifts from what the SDK reads fails the test at `async with` exit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from google.genai import types as genai_types
from google.genai._gaos.types import interactions as interaction_types
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from tests.fakes._common import (
    BaseKeyBehaviour,
    FakeServer,
    PollCounter,
    estimate_tokens,
    json_from_schema,
    new_id,
    stream_bytes,
    summary_text,
)

__all__ = [
    "API_VERSIONS",
    "DEFAULT_MODELS",
    "DEFAULT_VIDEO_MODELS",
    "ERRORS",
    "CreateRecord",
    "FakeFile",
    "FakeGemini",
    "GenerateRecord",
    "Interaction",
    "KeyBehaviour",
]

API_VERSIONS = ("v1", "v1beta")
KEY_HEADER = "x-goog-api-key"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_MODELS = ["gemini-3-flash", "gemini-omni-1.2-flash", "gemini-omni-1.1-flash"]
DEFAULT_VIDEO_MODELS = ["gemini-omni-1.2-flash", "gemini-omni-1.1-flash"]
ASPECT_RATIOS = ("16:9", "9:16")
RESOLUTIONS = ("360p", "720p", "1080p", "4k")
DURATION_RE = re.compile(r"^(\d+)s$")
MIN_SECONDS, MAX_SECONDS = 3, 10
DELIVERIES = ("uri", "inline")
TASKS = ("text_to_video", "image_to_video", "reference_to_video", "edit", "extend", "upscale")
OUTCOMES = ("completed", "failed", "no_video", "cancelled", "incomplete", "budget_exceeded")
TERMINAL = ("completed", "failed", "cancelled", "incomplete", "budget_exceeded")
VIDEO_TOKENS_PER_SECOND = 5792

# Google canonical status -> the Interactions API's string code.
INTERACTION_CODES = {
    "INVALID_ARGUMENT": "invalid_request",
    "FAILED_PRECONDITION": "failed_precondition",
    "UNAUTHENTICATED": "authentication",
    "PERMISSION_DENIED": "permission_denied",
    "NOT_FOUND": "not_found",
    "RESOURCE_EXHAUSTED": "quota_exceeded",
    "INTERNAL": "api_error",
    "UNAVAILABLE": "service_unavailable",
}

BAD_KEY_MESSAGE = "API key not valid. Please pass a valid API key."
BAD_KEY_DETAILS = [
    {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    },
    {
        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
        "locale": "en-US",
        "message": BAD_KEY_MESSAGE,
    },
]


@dataclass(frozen=True)
class ErrorKind:
    """One scripted error: the Google-envelope status and the Interactions-API code."""

    http: int  # HTTP status on the Google routes (and on interactions in "google" style)
    status: str  # Google canonical status
    code: str  # Interactions API string code
    message: str
    interactions_http: int | None = None  # when the Interactions API answers another status


# The vocabulary of `key_error`, `create_error` and `chat_error`.
ERRORS: dict[str, ErrorKind] = {
    "bad_key": ErrorKind(400, "INVALID_ARGUMENT", "authentication", BAD_KEY_MESSAGE, 401),
    "billing": ErrorKind(
        400,
        "FAILED_PRECONDITION",
        "failed_precondition",
        "Billing is not enabled for this project, and this model has no free tier. "
        "Enable billing for the project in Google AI Studio.",
    ),
    "permission": ErrorKind(
        403, "PERMISSION_DENIED", "permission_denied", "The caller does not have permission"
    ),
    "quota": ErrorKind(
        429,
        "RESOURCE_EXHAUSTED",
        "quota_exceeded",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    "rate_limit": ErrorKind(
        429,
        "RESOURCE_EXHAUSTED",
        "rate_limit_exceeded",
        "Resource has been exhausted (e.g. check quota).",
    ),
    "server": ErrorKind(
        500,
        "INTERNAL",
        "api_error",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    "unavailable": ErrorKind(
        503,
        "UNAVAILABLE",
        "service_unavailable",
        "The model is overloaded. Please try again later.",
    ),
    "safety": ErrorKind(
        400,
        "INVALID_ARGUMENT",
        "safety",
        "The prompt was blocked for safety reasons: it may violate the usage policies. "
        "Rephrase the prompt and try again.",
    ),
}
CREATE_ONLY_ERRORS = ("server_after_create",)


@dataclass
class KeyBehaviour(BaseKeyBehaviour):
    """What one Gemini key does. Pass any field to `FakeGemini.add_key`.

    Errors are named (see `ERRORS`): "bad_key", "billing", "permission", "quota",
    "rate_limit", "server", "unavailable", "safety".

    * `key_error`: answer `models.get` (the key check) with this error.
    * `create_error` (+ `create_fail_times`): refuse valid `POST /interactions`, creating
      nothing; with `create_fail_times=N` only the first N valid creates. The extra value
      `"server_after_create"` makes the interaction (it is accepted, i.e. paid) and then
      answers 500: the lost-answer case. `create_delay` sleeps before answering (made).
    * `chat_error` (+ `chat_fail_times`): the same for generateContent; `chat_contents` are
      scripted reply texts used up in order; `chat_truncated` answers finishReason
      "MAX_TOKENS" with the text cut in half; `chat_blocked` True/"response" answers a
      candidate with finishReason "SAFETY" and no content (`response.text` is None),
      "prompt" answers `promptFeedback.blockReason` "SAFETY" and no candidates.
    * `outcome`: "completed" (default), "failed" (`errors: [{code: failure_code, message:
      error_text}]`), "no_video" (completed with only a text part: `output_video` is None),
      "cancelled", "incomplete", "budget_exceeded".
    * `delivery`: None honours `response_format.delivery` (default inline); "uri"/"inline"
      force one. `polls_to_complete`: the Nth successful poll reports the outcome;
      `poll_errors`: the first N polls of each interaction answer 500 and do not advance it.
    * `file_polls_to_active`: `files.get` answers PROCESSING that many times per file first
      (a download before the file is ACTIVE is 400 FAILED_PRECONDITION);
      `download_errors`: the first N downloads of each file answer 500; `download_delay`
      paces the 64 KiB chunks.
    * `retry_after`: seconds sent as `Retry-After` (and RetryInfo) on injected 429s.
    """

    key_error: str | None = None
    create_error: str | None = None
    chat_error: str | None = None
    chat_blocked: bool | str = False
    delivery: str | None = None
    file_polls_to_active: int = 0
    download_errors: int = 0
    failure_code: str = "safety"  # `errors[0].code` of a failed interaction
    video_seconds: float | None = None  # `usage`: defaults to the requested duration

    def take_create_fault(self) -> str | None:
        """Count one valid create; the error to answer it with, if scripted."""
        self.creates_seen += 1
        return _scripted(self.create_error, self.create_fail_times, self.creates_seen)

    def take_chat_fault(self) -> str | None:
        self.chats_seen += 1
        return _scripted(self.chat_error, self.chat_fail_times, self.chats_seen)


def _scripted(error: str | None, times: int | None, seen: int) -> str | None:
    if error is None or (times is not None and seen > times):
        return None
    return error


@dataclass
class CreateRecord:
    """One `POST /{v}/interactions` as received. `interaction_id` is None when refused."""

    key: str | None
    body: dict[str, Any] | None
    status: int
    interaction_id: str | None = None
    image: bytes | None = None  # the decoded starting image (PNG), if the input had one
    prompt: str | None = None  # the text part
    at: float = field(default_factory=time.monotonic)


@dataclass
class GenerateRecord:
    """One `POST /{v}/models/{m}:generateContent`: the body, the key, what was answered."""

    key: str | None
    model: str
    body: dict[str, Any] | None
    status: int
    text: str | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def schema(self) -> Any:
        """The `responseJsonSchema` or `responseSchema` sent, if any."""
        config = (self.body or {}).get("generationConfig") or {}
        return config.get("responseJsonSchema", config.get("responseSchema"))

    @property
    def system_instruction(self) -> str | None:
        parts = ((self.body or {}).get("systemInstruction") or {}).get("parts") or []
        return "".join(str(p.get("text", "")) for p in parts if isinstance(p, Mapping)) or None


@dataclass
class Interaction:
    id: str
    key: str
    model: str
    prompt: str
    behaviour: KeyBehaviour
    progress: PollCounter
    status: str = "in_progress"
    image: bytes | None = None
    delivery: str = "inline"
    seconds: int = 8
    response_format: dict[str, Any] = field(default_factory=dict)
    generation_config: dict[str, Any] | None = None
    file_id: str | None = None
    api_version: str = "v1beta"  # of the poll that saw it finish: the file URI's version
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)


@dataclass
class FakeFile:
    id: str
    key: str
    interaction_id: str
    data: bytes
    behaviour: KeyBehaviour
    gets: int = 0
    downloads: int = 0
    download_errors_answered: int = 0
    created: float = field(default_factory=time.time)

    @property
    def active(self) -> bool:
        return self.gets >= self.behaviour.file_polls_to_active


class _Refused(Exception):
    """Raised by validators and fault scripts; becomes an error response."""

    def __init__(
        self,
        kind: ErrorKind | str,
        message: str | None = None,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.kind = ERRORS[kind] if isinstance(kind, str) else kind
        self.message = message or self.kind.message
        super().__init__(self.message)
        self.details = details
        self.headers = dict(headers or {})

    @classmethod
    def invalid(cls, message: str, code: str = "invalid_request") -> _Refused:
        return cls(ErrorKind(400, "INVALID_ARGUMENT", code, message), message)

    @classmethod
    def not_found(cls, message: str, code: str = "not_found") -> _Refused:
        return cls(ErrorKind(404, "NOT_FOUND", code, message), message)

    @classmethod
    def precondition(cls, message: str) -> _Refused:
        return cls(ErrorKind(400, "FAILED_PRECONDITION", "failed_precondition", message))

    def google_response(self) -> web.Response:
        kind = self.kind
        error: dict[str, Any] = {"code": kind.http, "message": self.message, "status": kind.status}
        details = self.details
        if details is None and kind is ERRORS["bad_key"]:
            details = BAD_KEY_DETAILS
        if details:
            error["details"] = details
        return web.json_response({"error": error}, status=kind.http, headers=self.headers)

    def interactions_response(self) -> web.Response:
        kind = self.kind
        status = kind.interactions_http or kind.http
        payload = {"error": {"code": kind.code, "message": self.message}}
        return web.json_response(payload, status=status, headers=self.headers)


def _injected(name: str, behaviour: KeyBehaviour) -> _Refused:
    kind = ERRORS[name]
    headers: dict[str, str] = {}
    details: list[dict[str, Any]] | None = None
    if kind.http == 429 and behaviour.retry_after is not None:
        headers["Retry-After"] = f"{behaviour.retry_after:g}"
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{behaviour.retry_after:g}s",
            }
        ]
    return _Refused(kind, details=details, headers=headers)


def _rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _model_entry(model: str, video: bool) -> dict[str, Any]:
    label = " ".join(word.capitalize() for word in model.split("-"))
    entry: dict[str, Any] = {
        "name": f"models/{model}",
        "baseModelId": model,
        "version": "001",
        "displayName": label,
        "description": f"{label} (fake)",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
    }
    if video:
        entry["supportedGenerationMethods"] = ["createInteraction"]
    else:
        entry["supportedGenerationMethods"] = ["generateContent", "countTokens"]
        entry |= {"temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2}
        entry["thinking"] = True
    return entry


class FakeGemini(FakeServer):
    """The Gemini API on loopback. `base_url` is `http://127.0.0.1:<port>`.

    Constructor: `clip` (the mp4 bytes every completed interaction delivers), `models` (every
    model id `models.get` knows; default `DEFAULT_MODELS`), `video_models` (the ones that make
    video through interactions; default: the `models` with "omni" in the id, the others serve
    generateContent), `interaction_errors` ("interactions" = the Interactions API's documented
    string-code envelope, default; "google" = the Google envelope with int codes).
    """

    api_prefix = ""

    def __init__(
        self,
        clip: bytes,
        *,
        models: list[str] | None = None,
        video_models: list[str] | None = None,
        interaction_errors: str = "interactions",
    ) -> None:
        super().__init__()
        if interaction_errors not in ("interactions", "google"):
            raise ValueError("interaction_errors must be 'interactions' or 'google'")
        self.clip = clip
        self.models = list(DEFAULT_MODELS if models is None else models)
        if video_models is None:
            video_models = [m for m in self.models if "omni" in m]
        self.video_models = list(video_models)
        unknown = sorted(set(self.video_models) - set(self.models))
        if unknown:
            raise ValueError(f"video_models not in models: {unknown}")
        self.interaction_errors = interaction_errors
        self.keys: dict[str, KeyBehaviour] = {}
        self.creates: list[CreateRecord] = []
        self.generates: list[GenerateRecord] = []
        self.interactions: dict[str, Interaction] = {}
        self.files: dict[str, FakeFile] = {}

    def add_key(self, key: str, **behaviour: Any) -> KeyBehaviour:
        """Accept `key` from now on; `behaviour` sets `KeyBehaviour` fields. Returns it."""
        for legacy in ("create_status", "chat_status", "key_status"):
            if behaviour.get(legacy) is not None:
                raise ValueError(f"FakeGemini scripts errors by name: use {legacy[:-7]}_error=")
        for name in ("key_error", "chat_error"):
            if behaviour.get(name) not in (None, *ERRORS):
                raise ValueError(f"{name} must be one of {sorted(ERRORS)}")
        if behaviour.get("create_error") not in (None, *ERRORS, *CREATE_ONLY_ERRORS):
            raise ValueError(f"create_error must be one of {[*ERRORS, *CREATE_ONLY_ERRORS]}")
        if behaviour.get("outcome", "completed") not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        if behaviour.get("delivery") not in (None, *DELIVERIES):
            raise ValueError(f"delivery must be None or one of {DELIVERIES}")
        if behaviour.get("chat_blocked", False) not in (False, True, "response", "prompt"):
            raise ValueError("chat_blocked must be False, True, 'response' or 'prompt'")
        self.keys[key] = KeyBehaviour(**behaviour)
        return self.keys[key]

    def revoke_key(self, key: str) -> None:
        """Forget `key`: every later request with it is an invalid key."""
        self.keys.pop(key, None)

    @property
    def accepted_creates(self) -> list[CreateRecord]:
        """The creates that made an interaction (were paid), including lost answers."""
        return [c for c in self.creates if c.interaction_id is not None]

    def keys_seen(self) -> set[str]:
        """Every `x-goog-api-key` any request carried."""
        return {r.headers[KEY_HEADER] for r in self.requests if KEY_HEADER in r.headers}

    # ---- routes

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/{version}/models/{name}", self._models_get)
        app.router.add_post("/{version}/models/{name}", self._models_post)
        app.router.add_post("/{version}/interactions", self._create)
        app.router.add_get("/{version}/interactions/{iid}", self._poll)
        app.router.add_post("/{version}/interactions/{iid}/cancel", self._cancel)
        app.router.add_get("/{version}/files/{name}", self._files_get)
        app.router.add_route("*", "/{tail:.*}", self._no_route)

    async def _no_route(self, request: web.Request) -> web.Response:
        return _Refused.not_found(f"Not found: {request.method} {request.path}").google_response()

    def _internal_error_response(self, message: str) -> web.Response:
        return _Refused("server", message).google_response()

    def _refusal(self, refused: _Refused, *, interactions: bool) -> web.Response:
        if interactions and self.interaction_errors == "interactions":
            return refused.interactions_response()
        return refused.google_response()

    def _authorise(self, request: web.Request) -> tuple[str, KeyBehaviour]:
        """The key and its behaviour, or `_Refused`. Also checks the API version."""
        version = request.match_info.get("version")
        if version not in API_VERSIONS:
            raise _Refused.not_found(f"API version {version!r} is not served; use v1 or v1beta")
        if "key" in request.query:
            raise _Refused.invalid("The fake accepts the API key only in the x-goog-api-key header")
        if "Authorization" in request.headers:
            raise _Refused(
                ErrorKind(
                    401,
                    "UNAUTHENTICATED",
                    "authentication",
                    "Request had invalid authentication credentials: use x-goog-api-key.",
                )
            )
        key = request.headers.get(KEY_HEADER)
        if not key:
            raise _Refused(
                ErrorKind(
                    403,
                    "PERMISSION_DENIED",
                    "authentication",
                    "Method doesn't allow unregistered callers (callers without established "
                    "identity). Please use API Key or other form of API consumer identity to "
                    "call this API.",
                    interactions_http=401,
                ),
                details=[],
            )
        behaviour = self.keys.get(key)
        if behaviour is None:
            raise _Refused("bad_key")
        return key, behaviour

    def _respond(self, model: Any, payload: dict[str, Any], status: int = 200) -> web.Response:
        """Answer `payload`, after checking that the SDK's own model parses it."""
        model.model_validate(payload)
        return web.json_response(payload, status=status)

    # ---- models

    async def _models_get(self, request: web.Request) -> web.Response:
        try:
            _, behaviour = self._authorise(request)
            model = request.match_info["name"]
            if ":" in model:
                raise _Refused.not_found(f"Not found: GET {request.path}")
            if model not in self.models:
                raise _Refused.not_found(
                    f"models/{model} is not found for API version {request.match_info['version']}"
                )
            if behaviour.key_error is not None:
                raise _injected(behaviour.key_error, behaviour)
        except _Refused as refused:
            return refused.google_response()
        return web.json_response(_model_entry(model, model in self.video_models))

    async def _models_post(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        model, _, method = name.partition(":")
        if method != "generateContent":
            return _Refused.not_found(f"Not found: POST {request.path}").google_response()
        key = request.headers.get(KEY_HEADER)
        body: dict[str, Any] | None = None
        try:
            _, behaviour = self._authorise(request)
            body = await _json_object(request)
            schema = self._validate_generate(model, body, request.match_info["version"])
        except _Refused as refused:
            self.generates.append(GenerateRecord(key, model, body, refused.kind.http))
            return refused.google_response()
        fault = behaviour.take_chat_fault()
        if fault is not None:
            refused = _injected(fault, behaviour)
            self.generates.append(GenerateRecord(key, model, body, refused.kind.http))
            return refused.google_response()
        prompt_tokens = estimate_tokens(body["contents"])
        payload: dict[str, Any] = {
            "modelVersion": model,
            "responseId": new_id("resp"),
        }
        blocked = behaviour.chat_blocked
        text: str | None = None
        if blocked == "prompt":
            payload["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": _ratings()}
            payload["usageMetadata"] = {
                "promptTokenCount": prompt_tokens,
                "totalTokenCount": prompt_tokens,
            }
        elif blocked:
            payload["candidates"] = [
                {"finishReason": "SAFETY", "index": 0, "safetyRatings": _ratings()}
            ]
            payload["usageMetadata"] = {
                "promptTokenCount": prompt_tokens,
                "totalTokenCount": prompt_tokens,
            }
        else:
            text = behaviour.next_chat_content()
            if text is None:
                text = summary_text() if schema is None else json.dumps(json_from_schema(schema))
            finish = "STOP"
            if behaviour.chat_truncated:
                text = text[: max(1, len(text) // 2)]
                finish = "MAX_TOKENS"
            output_tokens = estimate_tokens(text)
            payload["candidates"] = [
                {
                    "content": {"role": "model", "parts": [{"text": text}]},
                    "finishReason": finish,
                    "index": 0,
                }
            ]
            payload["usageMetadata"] = {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": output_tokens,
                "totalTokenCount": prompt_tokens + output_tokens,
            }
        self.generates.append(GenerateRecord(key, model, body, 200, text))
        return self._respond(genai_types.GenerateContentResponse, payload)

    def _validate_generate(
        self, model: str, body: dict[str, Any], version: str
    ) -> Mapping[str, Any] | None:
        """Validate a generateContent body; the JSON Schema the reply must satisfy, if any."""
        if model not in self.models:
            raise _Refused.not_found(
                f"models/{model} is not found for API version {version}, or is not supported "
                "for generateContent. Call ListModels to see the list of available models."
            )
        if model in self.video_models:
            raise _Refused.invalid(f"models/{model} does not support generateContent")
        _unknown_fields(body, GENERATE_FIELDS, "")
        _contents(body.get("contents"))
        if "systemInstruction" in body:
            _content(body["systemInstruction"], "system_instruction", system=True)
        config = body.get("generationConfig", {})
        if not isinstance(config, Mapping):
            raise _Refused.invalid("generation_config must be an object")
        _unknown_fields(config, GENERATION_CONFIG_FIELDS, "generation_config")
        mime = config.get("responseMimeType", "text/plain")
        has_schema = "responseSchema" in config
        has_json_schema = "responseJsonSchema" in config
        if has_schema and has_json_schema:
            raise _Refused.invalid(
                "generation_config: set only one of response_schema and response_json_schema"
            )
        if mime == "application/json":
            if not (has_schema or has_json_schema):
                raise _Refused.invalid(
                    "The fake needs response_json_schema or response_schema with "
                    "response_mime_type application/json"
                )
            if has_json_schema:
                schema = config["responseJsonSchema"]
                try:
                    Draft202012Validator.check_schema(schema)
                except SchemaError as exc:
                    raise _Refused.invalid(
                        f"response_json_schema is invalid: {exc.message}"
                    ) from exc
            else:
                schema = _openapi_schema(config["responseSchema"], "response_schema")
            try:
                json_from_schema(schema)
            except ValueError as exc:
                raise _Refused.invalid(str(exc)) from exc
            return schema
        if mime != "text/plain":
            raise _Refused.invalid(f"response_mime_type {mime!r} is not supported by the fake")
        if has_schema or has_json_schema:
            raise _Refused.invalid(
                "response_schema and response_json_schema need response_mime_type application/json"
            )
        return None

    # ---- interactions: create

    async def _create(self, request: web.Request) -> web.Response:
        key = request.headers.get(KEY_HEADER)
        body: dict[str, Any] | None = None
        try:
            key, behaviour = self._authorise(request)
            body = await _json_object(request)
            plan = self._validate_create(body)
        except _Refused as refused:
            response = self._refusal(refused, interactions=True)
            self.creates.append(CreateRecord(key, body, response.status))
            return response
        record = CreateRecord(key, body, 200, image=plan["image"], prompt=plan["prompt"])
        self.creates.append(record)
        fault = behaviour.take_create_fault()
        if fault is not None and fault not in CREATE_ONLY_ERRORS:
            response = self._refusal(_injected(fault, behaviour), interactions=True)
            record.status = response.status
            return response
        interaction = Interaction(
            id=new_id("v1_int"),
            key=key,
            model=body["model"],
            prompt=plan["prompt"],
            behaviour=behaviour,
            progress=PollCounter(behaviour.polls_to_complete, behaviour.poll_errors),
            image=plan["image"],
            delivery=behaviour.delivery or plan["delivery"],
            seconds=plan["seconds"],
            response_format=dict(body["response_format"]),
            generation_config=body.get("generation_config"),
        )
        self.interactions[interaction.id] = interaction
        record.interaction_id = interaction.id
        if behaviour.create_delay:
            await asyncio.sleep(behaviour.create_delay)
        if fault == "server_after_create":
            response = self._refusal(_Refused("server"), interactions=True)
            record.status = response.status
            return response
        return self._respond(interaction_types.Interaction, self._interaction_json(interaction))

    def _validate_create(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(body) - CREATE_FIELDS)
        if unknown:
            raise _Refused.invalid(
                f"Unknown parameter(s): {', '.join(unknown)}", "parameter_unknown"
            )
        for refused_field, why in REFUSED_CREATE_FIELDS.items():
            if body.get(refused_field) not in (None, False):
                raise _Refused.invalid(f"{refused_field}: {why}")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _Refused.invalid("model is required")
        if model not in self.models:
            raise _Refused.not_found(f"Model {model!r} was not found", "model_not_found")
        if model not in self.video_models:
            raise _Refused.invalid(f"{model} does not support video output")
        if body.get("background") is not True:
            raise _Refused.invalid("The fake serves only background interactions: background=true")
        if body.get("store", True) is not True:
            raise _Refused.invalid("background interactions need store=true")
        image, prompt = _video_input(body.get("input"))
        fmt = body.get("response_format")
        if not isinstance(fmt, Mapping) or fmt.get("type") != "video":
            raise _Refused.invalid('response_format must be {"type": "video", ...}')
        _unknown_fields(fmt, VIDEO_FORMAT_FIELDS, "response_format")
        if "gcs_uri" in fmt:
            raise _Refused.invalid("response_format.gcs_uri is only supported on Vertex AI")
        if fmt.get("aspect_ratio", "16:9") not in ASPECT_RATIOS:
            raise _Refused.invalid(
                f"response_format.aspect_ratio must be one of {list(ASPECT_RATIOS)}, "
                f"got {fmt.get('aspect_ratio')!r}"
            )
        if fmt.get("resolution", "720p") not in RESOLUTIONS:
            raise _Refused.invalid(
                f"response_format.resolution must be one of {list(RESOLUTIONS)}, "
                f"got {fmt.get('resolution')!r}"
            )
        duration = fmt.get("duration", "8s")
        match = DURATION_RE.match(duration) if isinstance(duration, str) else None
        if match is None:
            raise _Refused.invalid(
                f'response_format.duration must be a string like "8s", got {duration!r}'
            )
        seconds = int(match.group(1))
        if not MIN_SECONDS <= seconds <= MAX_SECONDS:
            raise _Refused.invalid(
                f"response_format.duration must be {MIN_SECONDS}s to {MAX_SECONDS}s, "
                f"got {duration!r}",
            )
        delivery = fmt.get("delivery", "inline")
        if delivery not in DELIVERIES:
            raise _Refused.invalid(
                f"response_format.delivery must be uri or inline, got {delivery!r}"
            )
        config = body.get("generation_config")
        if config is not None:
            if not isinstance(config, Mapping):
                raise _Refused.invalid("generation_config must be an object")
            _unknown_fields(config, INTERACTION_CONFIG_FIELDS, "generation_config")
            video_config = config.get("video_config")
            if video_config is not None:
                if not isinstance(video_config, Mapping):
                    raise _Refused.invalid("generation_config.video_config must be an object")
                _unknown_fields(video_config, {"task"}, "generation_config.video_config")
                task = video_config.get("task")
                if task is not None:
                    if task not in TASKS:
                        raise _Refused.invalid(f"video_config.task {task!r} is not a task")
                    wanted = "image_to_video" if image is not None else "text_to_video"
                    if task != wanted:
                        raise _Refused.invalid(
                            f"video_config.task is {task!r} but the input "
                            f"{'has' if image is not None else 'has no'} image: use {wanted!r}"
                        )
        return {"image": image, "prompt": prompt, "delivery": delivery, "seconds": seconds}

    # ---- interactions: poll and cancel

    def _own_interaction(self, request: web.Request) -> Interaction:
        key, _ = self._authorise(request)
        interaction = self.interactions.get(request.match_info["iid"])
        if interaction is None or interaction.key != key:
            raise _Refused.not_found(f"Interaction {request.match_info['iid']!r} was not found")
        return interaction

    async def _poll(self, request: web.Request) -> web.Response:
        try:
            interaction = self._own_interaction(request)
            if request.query.get("stream", "false") != "false":
                raise _Refused.invalid("The fake does not stream: stream=false")
        except _Refused as refused:
            return self._refusal(refused, interactions=True)
        if interaction.status not in TERMINAL:
            if not interaction.progress.poll():
                return self._refusal(_Refused("server"), interactions=True)
            if interaction.progress.finished:
                self._finish(interaction, request.match_info["version"])
        return self._respond(interaction_types.Interaction, self._interaction_json(interaction))

    async def _cancel(self, request: web.Request) -> web.Response:
        try:
            interaction = self._own_interaction(request)
        except _Refused as refused:
            return self._refusal(refused, interactions=True)
        if interaction.status not in TERMINAL:
            interaction.status = "cancelled"
            interaction.updated = time.time()
        return self._respond(interaction_types.Interaction, self._interaction_json(interaction))

    def _finish(self, interaction: Interaction, version: str) -> None:
        outcome = interaction.behaviour.outcome
        interaction.status = "completed" if outcome == "no_video" else outcome
        interaction.updated = time.time()
        if outcome == "completed" and interaction.delivery == "uri":
            fake_file = FakeFile(
                id=new_id(""),  # lowercase hex: the SDK's `files/<id>` parser wants [a-z0-9]+
                key=interaction.key,
                interaction_id=interaction.id,
                data=self.clip,
                behaviour=interaction.behaviour,
            )
            self.files[fake_file.id] = fake_file
            interaction.file_id = fake_file.id
        interaction.api_version = version

    def _interaction_json(self, interaction: Interaction) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": interaction.id,
            "object": "interaction",
            "model": interaction.model,
            "status": interaction.status,
            "created": _rfc3339(interaction.created),
            "updated": _rfc3339(interaction.updated),
            "response_format": interaction.response_format,
        }
        if interaction.generation_config is not None:
            payload["generation_config"] = interaction.generation_config
        behaviour = interaction.behaviour
        if interaction.status == "completed":
            if behaviour.outcome == "no_video":
                content: dict[str, Any] = {
                    "type": "text",
                    "text": "I can't create that video: it may violate the usage policies.",
                }
            elif interaction.file_id is not None:
                content = {
                    "type": "video",
                    "mime_type": "video/mp4",
                    "uri": f"{self.origin}/{interaction.api_version}/files/{interaction.file_id}",
                }
            else:
                content = {
                    "type": "video",
                    "mime_type": "video/mp4",
                    "data": base64.b64encode(self.clip).decode("ascii"),
                }
            payload["steps"] = [{"type": "model_output", "content": [content]}]
            seconds = behaviour.video_seconds or interaction.seconds
            output_tokens = int(seconds * VIDEO_TOKENS_PER_SECOND)
            input_tokens = estimate_tokens(interaction.prompt) + (258 if interaction.image else 0)
            payload["usage"] = {
                "total_input_tokens": input_tokens,
                "total_output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            }
        elif interaction.status == "failed":
            payload["errors"] = [{"code": behaviour.failure_code, "message": behaviour.error_text}]
        return payload

    # ---- files

    async def _files_get(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        file_id, _, method = name.partition(":")
        try:
            key, _ = self._authorise(request)
            if method not in ("", "download"):
                raise _Refused.not_found(f"Not found: GET {request.path}")
            fake_file = self.files.get(file_id)
            if fake_file is None or fake_file.key != key:
                raise _Refused(
                    ErrorKind(
                        403,
                        "PERMISSION_DENIED",
                        "permission_denied",
                        f"You do not have permission to access the File {file_id} or it may "
                        "not exist.",
                    )
                )
            if method == "download":
                if request.query.get("alt") != "media":
                    raise _Refused.invalid("files/{id}:download needs alt=media")
                if not fake_file.active:
                    raise _Refused.precondition(
                        f"The File {file_id} is not in an ACTIVE state and usage is not allowed."
                    )
                fake_file.downloads += 1
                if fake_file.download_errors_answered < fake_file.behaviour.download_errors:
                    fake_file.download_errors_answered += 1
                    raise _Refused("server")
        except _Refused as refused:
            return refused.google_response()
        if method == "download":
            return await stream_bytes(
                request, fake_file.data, "video/mp4", delay=fake_file.behaviour.download_delay
            )
        state = "ACTIVE" if fake_file.active else "PROCESSING"
        fake_file.gets += 1
        version = request.match_info["version"]
        uri = f"{self.origin}/{version}/files/{file_id}"
        created = _rfc3339(fake_file.created)
        payload = {
            "name": f"files/{file_id}",
            "mimeType": "video/mp4",
            "sizeBytes": str(len(fake_file.data)),
            "createTime": created,
            "updateTime": created,
            "expirationTime": _rfc3339(fake_file.created + 2 * 86400),
            "sha256Hash": base64.b64encode(hashlib.sha256(fake_file.data).digest()).decode(),
            "uri": uri,
            "downloadUri": f"{uri}:download?alt=media",
            "state": state,
            "source": "GENERATED",
        }
        return self._respond(genai_types.File, payload)


# --------------------------------------------------------------------------- validation

GENERATE_FIELDS = frozenset(
    {
        "contents",
        "systemInstruction",
        "generationConfig",
        "safetySettings",
        "tools",
        "toolConfig",
        "cachedContent",
        "labels",
        "serviceTier",
    }
)
GENERATION_CONFIG_FIELDS = frozenset(
    {
        "audioTimestamp",
        "candidateCount",
        "enableAffectiveDialog",
        "enableEnhancedCivicAnswers",
        "frequencyPenalty",
        "imageConfig",
        "logprobs",
        "maxOutputTokens",
        "mediaResolution",
        "modelSelectionConfig",
        "presencePenalty",
        "responseJsonSchema",
        "responseLogprobs",
        "responseMimeType",
        "responseModalities",
        "responseSchema",
        "routingConfig",
        "seed",
        "speechConfig",
        "stopSequences",
        "temperature",
        "thinkingConfig",
        "topK",
        "topP",
    }
)
# Request fields of `interactions.create` (google-genai 3.6.1's CreateModelInteraction).
CREATE_FIELDS = frozenset(
    {
        "model",
        "background",
        "cached_content",
        "continuation_token",
        "environment",
        "generation_config",
        "input",
        "labels",
        "previous_interaction_id",
        "response_format",
        "response_mime_type",
        "response_modalities",
        "safety_settings",
        "service_tier",
        "store",
        "stream",
        "system_instruction",
        "tools",
        "webhook_config",
    }
)
REFUSED_CREATE_FIELDS = {
    "stream": "the fake does not stream; poll a background interaction instead",
    "safety_settings": "safety settings are not supported for video models",
    "previous_interaction_id": "the fake does not chain interactions; send the parent frame",
    "continuation_token": "video interactions do not continue",
}
INTERACTION_CONFIG_FIELDS = frozenset(
    {
        "image_config",
        "max_output_tokens",
        "seed",
        "speech_config",
        "stop_sequences",
        "temperature",
        "thinking_level",
        "thinking_summaries",
        "tool_choice",
        "top_p",
        "transcription_config",
        "video_config",
    }
)
VIDEO_FORMAT_FIELDS = frozenset(
    {"type", "aspect_ratio", "resolution", "duration", "delivery", "gcs_uri"}
)
PART_DATA_FIELDS = frozenset(
    {
        "text",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "executableCode",
        "codeExecutionResult",
    }
)
PART_FIELDS = PART_DATA_FIELDS | {"thought", "thoughtSignature", "videoMetadata", "mediaResolution"}
# Gemini's OpenAPI-subset `Schema` (what `response_schema` sends), by camelCase name.
OPENAPI_SCHEMA_FIELDS = frozenset(
    {
        "additionalProperties",
        "anyOf",
        "default",
        "defs",
        "description",
        "enum",
        "example",
        "format",
        "items",
        "maxItems",
        "maxLength",
        "maxProperties",
        "maximum",
        "minItems",
        "minLength",
        "minProperties",
        "minimum",
        "nullable",
        "pattern",
        "properties",
        "propertyOrdering",
        "ref",
        "required",
        "title",
        "type",
    }
)
OPENAPI_TYPES = ("STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL")


def _unknown_fields(
    value: Mapping[str, Any], allowed: frozenset[str] | set[str], where: str
) -> None:
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        at = f" at '{where}'" if where else ""
        raise _Refused.invalid(
            f'Invalid JSON payload received. Unknown name "{unknown[0]}"{at}: Cannot find field.',
            "parameter_unknown",
        )


def _contents(contents: Any) -> None:
    if not isinstance(contents, list) or not contents:
        raise _Refused.invalid("contents is not specified")
    for index, content in enumerate(contents):
        _content(content, f"contents[{index}]")


def _content(content: Any, where: str, *, system: bool = False) -> None:
    if not isinstance(content, Mapping):
        raise _Refused.invalid(f"{where} must be an object")
    _unknown_fields(content, {"parts", "role"}, where)
    role = content.get("role")
    if role is not None and role not in ("user", "model") and not (system and role == "system"):
        raise _Refused.invalid(f"{where}.role must be user or model, got {role!r}")
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise _Refused.invalid(f"{where}.parts must be a non-empty array")
    for index, part in enumerate(parts):
        at = f"{where}.parts[{index}]"
        if not isinstance(part, Mapping):
            raise _Refused.invalid(f"{at} must be an object")
        _unknown_fields(part, PART_FIELDS, at)
        data = [name for name in PART_DATA_FIELDS if name in part]
        if len(data) != 1:
            raise _Refused.invalid(f"{at} must have exactly one data field, got {data}")
        if "text" in part and not isinstance(part["text"], str):
            raise _Refused.invalid(f"{at}.text must be a string")
        if system and "text" not in part:
            raise _Refused.invalid(f"{at}: a system instruction holds text parts only")
        if "inlineData" in part:
            inline = part["inlineData"]
            if not isinstance(inline, Mapping) or not isinstance(inline.get("mimeType"), str):
                raise _Refused.invalid(f"{at}.inlineData needs mimeType and data")
            _b64(inline.get("data"), f"{at}.inlineData.data")


def _openapi_schema(node: Any, where: str) -> dict[str, Any]:
    """Gemini's OpenAPI-subset schema (camelCase or snake_case keys) as JSON Schema."""
    if not isinstance(node, Mapping):
        raise _Refused.invalid(f"{where} must be an object")
    named = {_camel(str(k)): v for k, v in node.items()}
    _unknown_fields(named, OPENAPI_SCHEMA_FIELDS, f"generation_config.{where}")
    out: dict[str, Any] = {}
    kind = named.get("type")
    if kind is not None:
        if not isinstance(kind, str) or kind.upper() not in OPENAPI_TYPES:
            raise _Refused.invalid(f"{where}.type {kind!r} is not a Gemini schema type")
        out["type"] = kind.lower()
        if named.get("nullable"):
            out["type"] = [kind.lower(), "null"]
    elif "anyOf" not in named and "ref" not in named:
        raise _Refused.invalid(f"{where}: a schema needs a type")
    for key in ("description", "title", "format", "enum", "required", "default", "pattern"):
        if key in named:
            out[key] = named[key]
    for key in ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"):
        if key in named:
            out[key] = _count(named[key], f"{where}.{key}")
    for key in ("minimum", "maximum"):
        if key in named:
            out[key] = named[key]
    if "properties" in named:
        properties = named["properties"]
        if not isinstance(properties, Mapping):
            raise _Refused.invalid(f"{where}.properties must be an object")
        out["properties"] = {
            name: _openapi_schema(child, f"{where}.properties.{name}")
            for name, child in properties.items()
        }
    if "items" in named:
        out["items"] = _openapi_schema(named["items"], f"{where}.items")
    elif out.get("type") == "array":
        raise _Refused.invalid(f"{where}: an ARRAY schema needs items")
    if "anyOf" in named:
        out["anyOf"] = [
            _openapi_schema(child, f"{where}.anyOf[{i}]") for i, child in enumerate(named["anyOf"])
        ]
    if "additionalProperties" in named:
        extra = named["additionalProperties"]
        out["additionalProperties"] = (
            extra if isinstance(extra, bool) else _openapi_schema(extra, f"{where}.additional")
        )
    if "ref" in named:
        out["$ref"] = named["ref"]
    if "defs" in named:
        out["$defs"] = {
            k: _openapi_schema(v, f"{where}.defs.{k}") for k, v in named["defs"].items()
        }
    return out


def _camel(name: str) -> str:
    head, *rest = name.lstrip("$").split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise _Refused.invalid(f"{where} must be a non-negative integer")
    return int(value)


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise _Refused.invalid(f"{where} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Refused.invalid(f"{where}: invalid base64 ({exc})") from exc


def _video_input(value: Any) -> tuple[bytes | None, str]:
    """Validate an interactions `input`; the decoded image (if any) and the prompt."""
    if isinstance(value, str):
        if not value.strip():
            raise _Refused.invalid("input must not be empty")
        return None, value
    if isinstance(value, Mapping):
        parts: Any = [value]
    elif (
        isinstance(value, list)
        and value
        and all(isinstance(item, Mapping) and item.get("type") == "user_input" for item in value)
    ):
        if len(value) != 1:
            raise _Refused.invalid("input: the fake takes exactly one user_input step")
        _unknown_fields(value[0], {"type", "content"}, "input[0]")
        parts = value[0].get("content")
    else:
        parts = value
    if not isinstance(parts, list) or not parts:
        raise _Refused.invalid("input must be a string, a content list or a user_input step")
    image: bytes | None = None
    texts: list[str] = []
    for index, part in enumerate(parts):
        where = f"input content[{index}]"
        if not isinstance(part, Mapping):
            raise _Refused.invalid(f"{where} must be an object")
        kind = part.get("type")
        if kind == "text":
            _unknown_fields(part, {"type", "text", "annotations"}, where)
            text = part.get("text")
            if not isinstance(text, str) or not text.strip():
                raise _Refused.invalid(f"{where}.text must be a non-empty string")
            texts.append(text)
        elif kind == "image":
            _unknown_fields(part, {"type", "data", "uri", "mime_type", "resolution"}, where)
            if texts:
                raise _Refused.invalid(f"{where}: put media parts before the text part")
            if image is not None:
                raise _Refused.invalid(f"{where}: image_to_video takes one starting image")
            if "uri" in part:
                raise _Refused.invalid(f"{where}: the fake takes inline image data only")
            if part.get("mime_type") != "image/png":
                raise _Refused.invalid(f"{where}.mime_type must be image/png")
            image = _b64(part.get("data"), f"{where}.data")
            if not image.startswith(PNG_SIGNATURE):
                raise _Refused.invalid(f"{where}.data is not a PNG image")
        else:
            raise _Refused.invalid(f"{where}.type {kind!r} is not supported for video input")
    if not texts:
        raise _Refused.invalid("input needs a text part (the prompt)")
    return image, "\n".join(texts)


async def _json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise _Refused.invalid(
            f"Content-Type must be application/json, got {request.content_type!r}"
        )
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Refused.invalid(f"Invalid JSON payload received. {exc}") from exc
    if not isinstance(body, dict):
        raise _Refused.invalid("Invalid JSON payload received. The body must be an object.")
    return body


def _ratings() -> list[dict[str, Any]]:
    return [
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    ]
