"""A loopback fake of the OpenAI API (`/v1`), checked against OpenAI's own OpenAPI spec.

The real `openai` SDK talks to it unchanged (`AsyncOpenAI(base_url=fake.base_url, ...)`):

    GET    /v1/models                       model list (Bearer; the key check)
    POST   /v1/chat/completions             JSON satisfying `response_format` json_schema
    POST   /v1/responses                    JSON satisfying `text.format` json_schema
    POST   /v1/videos                       multipart (as the SDK sends it) or JSON -> queued Video
    GET    /v1/videos                       newest-first page of the key's videos
    GET    /v1/videos/{id}                  queued -> in_progress (+progress) -> completed|failed
    DELETE /v1/videos/{id}
    GET    /v1/videos/{id}/content          ?variant=video (mp4, streamed)|thumbnail|spritesheet

The spec (`openai-openapi.json`) is the oracle in both directions: request bodies for chat,
responses and video creates are validated against the operation's request schema (a
spec-invalid request is a 400 `invalid_request_error` carrying the validation message), and
every JSON body the fake answers with is asserted against the operation's response schema (or
`ErrorResponse`), so a fake that drifts from the real wire shape fails the test loudly. The spec
folder is `$SHARED_WORLD_SPECS` (relative to the repository root), else `../shared/specs` next
to the repository; a missing spec file raises, it never skips validation.

Beyond the spec, like the real service: `seconds`/`size` must be allowed values, an
`input_reference` image must be PNG/JPEG/WEBP with exactly the `size` dimensions, unknown form
fields are refused, and structured-output schemas with `strict: true` must follow strict-mode
rules. Keys are registered with `add_key(key, **behaviour)` (see `OpenAIKeyBehaviour`); any
other key gets 401 `invalid_api_key`. Videos belong to the key that created them. Request
validation happens before injected faults. Every response carries `x-request-id`; none carries
`x-should-retry`, so any retry seen is the client's own decision.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from PIL import Image, UnidentifiedImageError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.fakes._common import (
    JSON_OBJECT_SCHEMA,
    BaseKeyBehaviour,
    FakeServer,
    FormPart,
    PollCounter,
    bearer_token,
    estimate_tokens,
    json_from_schema,
    json_schema_format_problem,
    messages_problem,
    new_id,
    read_multipart,
    stream_bytes,
    summary_text,
)

__all__ = [
    "ChatRecord",
    "CreateRecord",
    "FakeOpenAI",
    "OpenAIKeyBehaviour",
    "OpenAISpec",
    "VideoJob",
    "openai_spec",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_FILE = "openai-openapi.json"
SPEC_URI = "urn:openai-openapi"
MULTIPART = "multipart/form-data"
JSON = "application/json"

IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
UPLOAD_CONTENT_TYPES = {*IMAGE_FORMATS.values(), "application/octet-stream"}
BINARY_PLACEHOLDER = "<binary>"  # what a file part becomes for the multipart schema check
VIDEO_FIELDS = frozenset({"prompt", "model", "seconds", "size", "input_reference"})
VARIANTS = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}
ASSET_TTL_SECONDS = 3600
MODEL_CREATED = 1754425777

# status -> (message, type, code) of injected errors; 401 and 429 are built per key.
ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: (
        "Your request was blocked by our moderation system.",
        "invalid_request_error",
        "moderation_blocked",
    ),
    403: (
        "Your organization must be verified to use this model. Please go to "
        "https://platform.openai.com/settings/organization/general and click on Verify "
        "Organization.",
        "invalid_request_error",
        None,
    ),
    404: (
        "The model does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    408: ("Request timed out.", "timeout", None),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    502: ("Bad gateway.", "server_error", None),
    503: ("The server is overloaded or not ready yet.", "server_error", None),
}
ERRORS_429: dict[str, tuple[str, str]] = {
    "rate_limit_exceeded": (
        "Rate limit reached for requests per min (RPM): Limit 2, Used 2, Requested 1. "
        "Please try again in 30s.",
        "requests",
    ),
    "insufficient_quota": (
        "You exceeded your current quota, please check your plan and billing details. For "
        "more information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "insufficient_quota",
    ),
}


# --------------------------------------------------------------------------- the spec


def spec_path() -> Path:
    """Where `openai-openapi.json` is; raises FileNotFoundError if it is not there."""
    configured = os.environ.get("SHARED_WORLD_SPECS")
    folder = (
        Path(configured) if configured else Path(__file__).resolve().parents[3] / "shared" / "specs"
    )
    if not folder.is_absolute():
        folder = REPO_ROOT / folder
    path = folder / SPEC_FILE
    if not path.is_file():
        origin = f"SHARED_WORLD_SPECS={configured!r}" if configured else "the default location"
        raise FileNotFoundError(
            f"OpenAI OpenAPI spec not found at {path} ({origin}); FakeOpenAI validates "
            "requests and its own responses against it and will not run without it"
        )
    return path


class OpenAISpec:
    """OpenAI's OpenAPI 3.1 document with JSON Schema 2020-12 validators for its operations."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.document: dict[str, Any] = json.loads(path.read_bytes())
        version = str(self.document.get("openapi", ""))
        if not version.startswith("3.1"):
            raise AssertionError(f"{path}: expected OpenAPI 3.1, got {version!r}")
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self._validators: dict[str, Draft202012Validator] = {}

    def validator(self, *pointer: str) -> Draft202012Validator:
        """A validator for the schema at this JSON pointer (unescaped tokens) into the spec."""
        node: Any = self.document
        for token in pointer:
            node = node[token]  # KeyError: the spec lacks what the fake relies on
        escaped = "/".join(t.replace("~", "~0").replace("/", "~1") for t in pointer)
        if escaped not in self._validators:
            self._validators[escaped] = Draft202012Validator(
                {"$ref": f"{SPEC_URI}#/{escaped}"}, registry=self.registry
            )
        return self._validators[escaped]

    def request_validator(self, path: str, method: str, content_type: str) -> Draft202012Validator:
        return self.validator(
            "paths", path, method, "requestBody", "content", content_type, "schema"
        )

    def schema_validator(self, name: str) -> Draft202012Validator:
        return self.validator("components", "schemas", name)


@cache
def openai_spec() -> OpenAISpec:
    return OpenAISpec(spec_path())


def first_error(validator: Draft202012Validator, instance: Any) -> ValidationError | None:
    return best_match(validator.iter_errors(instance))


# --------------------------------------------------------------------------- state


@dataclass
class OpenAIKeyBehaviour(BaseKeyBehaviour):
    """What one OpenAI key does. Pass any field to `FakeOpenAI.add_key`.

    Shared fields (see `BaseKeyBehaviour`): create_status (400 moderation_blocked,
    401 invalid_api_key, 403, 429, 500, 503), create_fail_times, create_delay, retry_after
    (sent as `retry-after` on injected 429s when set), polls_to_complete, poll_errors,
    outcome ("completed"|"failed"), error_text (a failed job's `error.message`),
    download_delay, chat_contents, chat_status, chat_fail_times, chat_truncated,
    key_status (for GET /models).
    """

    error_text: str = "The generated video was blocked by our moderation system."
    error_code: str | None = None  # `code` of injected errors; 429: "rate_limit_exceeded" default
    failure_code: str = "moderation_blocked"  # a failed job's `error.code`


@dataclass
class CreateRecord:
    """One `POST /videos` as received. `video_id` is None when it was refused."""

    key: str | None
    fields: dict[str, str]  # text fields as sent (a JSON body's values as JSON-ish strings)
    status: int
    content_type: str | None = None  # the request's media type (multipart/form-data or JSON)
    video_id: str | None = None
    input_reference: bytes | None = None
    input_reference_filename: str | None = None
    input_reference_content_type: str | None = None
    at: float = field(default_factory=time.monotonic)


@dataclass
class ChatRecord:
    """One chat call: `path` is "/chat/completions" or "/responses"."""

    key: str | None
    path: str
    body: dict[str, Any] | None
    status: int
    content: str | None = None
    at: float = field(default_factory=time.monotonic)


@dataclass
class VideoJob:
    id: str
    key: str
    model: str
    prompt: str
    seconds: str
    size: str
    behaviour: OpenAIKeyBehaviour
    counter: PollCounter
    status: str = "queued"
    progress: int = 0
    created_at: int = field(default_factory=lambda: int(time.time()))
    completed_at: int | None = None
    expires_at: int | None = None
    error: dict[str, str] | None = None
    order: int = 0

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "video",
            "model": self.model,
            "status": self.status,
            "progress": self.progress,
            "created_at": self.created_at,
            "completed_at": self.completed_at,
            "expires_at": self.expires_at,
            "prompt": self.prompt,
            "seconds": self.seconds,
            "size": self.size,
            "remixed_from_video_id": None,
            "error": self.error,
        }


class _Refused(Exception):
    """Raised by validators; becomes an OpenAI error response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        self.headers = dict(headers or {})


def mask_key(key: str) -> str:
    return f"{key[:3]}***{key[-3:]}" if len(key) > 6 else "***"


def _spec_refusal(error: ValidationError) -> _Refused:
    path = ".".join(str(p) for p in error.absolute_path)
    param = path or None
    code = "invalid_value"
    if error.validator == "required" and isinstance(error.validator_value, list):
        missing = [name for name in error.validator_value if name not in (error.instance or {})]
        param = ".".join(filter(None, [path, missing[0] if missing else ""])) or None
        code = "missing_required_parameter"
    where = f" at '{path}'" if path else ""
    return _Refused(400, f"Invalid request{where}: {error.message}", param=param, code=code)


# --------------------------------------------------------------------------- the fake


class FakeOpenAI(FakeServer):
    """The OpenAI API on loopback. `base_url` is `http://127.0.0.1:<port>/v1`.

    Constructor: `clip` (mp4 bytes served for every completed video), `chat_models` and
    `video_models` (ids accepted by chat/responses and by video creates; all are listed by
    GET /models), `poll_after_ms` (send `openai-poll-after-ms` on video responses).
    """

    api_prefix = "/v1"

    def __init__(
        self,
        *,
        clip: bytes | None = None,
        chat_models: Sequence[str] = ("gpt-5-mini", "gpt-5"),
        video_models: Sequence[str] = ("sora-2", "sora-2-pro"),
        poll_after_ms: int | None = None,
    ) -> None:
        super().__init__()
        self.spec = openai_spec()  # raises if the spec is missing
        self.clip = clip
        self.chat_models = list(chat_models)
        self.video_models = list(video_models)
        self.poll_after_ms = poll_after_ms
        self.keys: dict[str, OpenAIKeyBehaviour] = {}
        self.jobs: dict[str, VideoJob] = {}
        self.creates: list[CreateRecord] = []
        self.chats: list[ChatRecord] = []

    def add_key(self, key: str, **behaviour: Any) -> OpenAIKeyBehaviour:
        """Accept `key` from now on; `behaviour` sets `OpenAIKeyBehaviour` fields. Returns it."""
        outcome = behaviour.get("outcome", "completed")
        if outcome not in ("completed", "failed"):
            raise ValueError(f"outcome must be 'completed' or 'failed', got {outcome!r}")
        self.keys[key] = OpenAIKeyBehaviour(**behaviour)
        return self.keys[key]

    def revoke_key(self, key: str) -> None:
        """Forget `key`: every later request with it gets 401."""
        self.keys.pop(key, None)

    @property
    def accepted_creates(self) -> list[CreateRecord]:
        return [c for c in self.creates if c.video_id is not None]

    # ---- plumbing

    def _add_routes(self, app: web.Application) -> None:
        p = self.api_prefix
        app.router.add_get(f"{p}/models", self._models)
        app.router.add_post(f"{p}/chat/completions", self._chat_completions)
        app.router.add_post(f"{p}/responses", self._responses)
        app.router.add_post(f"{p}/videos", self._create_video)
        app.router.add_get(f"{p}/videos", self._list_videos)
        app.router.add_get(f"{p}/videos/{{video_id}}", self._retrieve_video)
        app.router.add_delete(f"{p}/videos/{{video_id}}", self._delete_video)
        app.router.add_get(f"{p}/videos/{{video_id}}/content", self._download)
        app.router.add_route("*", "/{tail:.*}", self._no_route)

    def _request_id(self) -> str:
        return new_id("req_")

    def _internal_error_response(self, message: str) -> web.Response:
        return web.json_response(
            {"error": {"message": message, "type": "server_error", "param": None, "code": None}},
            status=500,
        )

    def _reply(
        self,
        body: Any,
        schema: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        """Answer with `body`, after asserting it against the spec's schema `schema`."""
        error = first_error(self.spec.schema_validator(schema), body)
        if error is not None:
            path = "/".join(str(p) for p in error.absolute_path)
            raise AssertionError(
                f"FakeOpenAI's own response does not match {schema} at /{path}: {error.message}"
            )
        return web.json_response(body, status=status, headers=headers)

    def _refusal(self, refused: _Refused) -> web.Response:
        return self._reply(
            refused.body, "ErrorResponse", status=refused.status, headers=refused.headers
        )

    def _auth(self, request: web.Request) -> tuple[str, OpenAIKeyBehaviour]:
        key = bearer_token(request.headers.get("Authorization"))
        if key is None:
            raise _Refused(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if key not in self.keys:
            raise self._invalid_key(key)
        return key, self.keys[key]

    def _invalid_key(self, key: str) -> _Refused:
        return _Refused(
            401, f"Incorrect API key provided: {mask_key(key)}.", code="invalid_api_key"
        )

    def _injected(self, status: int, key: str, behaviour: OpenAIKeyBehaviour) -> _Refused:
        if status == 401:
            return self._invalid_key(key)
        if status == 429:
            code = behaviour.error_code or "rate_limit_exceeded"
            message, type_ = ERRORS_429.get(code, ERRORS_429["rate_limit_exceeded"])
            headers = {}
            if behaviour.retry_after is not None:
                headers["retry-after"] = f"{behaviour.retry_after:g}"
            return _Refused(429, message, type_=type_, code=code, headers=headers)
        message, type_, code = ERRORS.get(status, ("Injected error.", "server_error", None))
        return _Refused(status, message, type_=type_, code=behaviour.error_code or code)

    def _job(self, request: web.Request, key: str) -> VideoJob:
        job = self.jobs.get(request.match_info["video_id"])
        if job is None or job.key != key:
            raise _Refused(404, "Video not found")
        return job

    def _video_headers(self) -> dict[str, str]:
        if self.poll_after_ms is None:
            return {}
        return {"openai-poll-after-ms": str(self.poll_after_ms)}

    async def _no_route(self, request: web.Request) -> web.Response:
        return self._refusal(_Refused(404, f"Invalid URL ({request.method} {request.path})"))

    # ---- models

    async def _models(self, request: web.Request) -> web.Response:
        try:
            key, behaviour = self._auth(request)
            if behaviour.key_status is not None:
                raise self._injected(behaviour.key_status, key, behaviour)
        except _Refused as refused:
            return self._refusal(refused)
        data = [
            {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": "system"}
            for model in [*self.chat_models, *self.video_models]
        ]
        return self._reply({"object": "list", "data": data}, "ListModelsResponse")

    # ---- chat completions and responses

    async def _chat_completions(self, request: web.Request) -> web.Response:
        return await self._chat(request, "/chat/completions")

    async def _responses(self, request: web.Request) -> web.Response:
        return await self._chat(request, "/responses")

    async def _chat(self, request: web.Request, path: str) -> web.Response:
        key = bearer_token(request.headers.get("Authorization"))
        body: dict[str, Any] | None = None
        try:
            key, behaviour = self._auth(request)
            body = await self._json_body(request, path)
            schema = self._chat_schema(body, path)
            status = behaviour.take_chat_error()
            if status is not None:
                raise self._injected(status, key, behaviour)
        except _Refused as refused:
            self.chats.append(ChatRecord(key, path, body, refused.status))
            return self._refusal(refused)
        content = behaviour.next_chat_content()
        if content is None:
            content = summary_text() if schema is None else json.dumps(json_from_schema(schema))
        if behaviour.chat_truncated:
            content = content[: max(1, len(content) // 2)]
        self.chats.append(ChatRecord(key, path, body, 200, content))
        model = str(body["model"])
        usage_in, usage_out = estimate_tokens(body), estimate_tokens(content)
        if path == "/responses":
            return self._reply(
                _response_object(model, body, content, usage_in, usage_out, behaviour),
                "Response",
            )
        completion = {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "length" if behaviour.chat_truncated else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": usage_in,
                "completion_tokens": usage_out,
                "total_tokens": usage_in + usage_out,
            },
        }
        return self._reply(completion, "CreateChatCompletionResponse")

    async def _json_body(self, request: web.Request, path: str) -> dict[str, Any]:
        if request.content_type != JSON:
            raise _Refused(400, f"Unsupported content type: {request.content_type!r}")
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Refused(
                400, f"We could not parse the JSON body of your request. ({exc})"
            ) from exc
        if not isinstance(body, dict):
            raise _Refused(400, "The request body must be a JSON object.")
        error = first_error(self.spec.request_validator(path, "post", JSON), body)
        if error is not None:
            raise _spec_refusal(error)
        return body

    def _chat_schema(self, body: dict[str, Any], path: str) -> Mapping[str, Any] | None:
        """Check model and messages; the structured-output schema asked for, if any."""
        model = body.get("model")
        if model not in self.chat_models:
            raise _Refused(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        if path == "/chat/completions":
            if problem := messages_problem(body.get("messages")):
                raise _Refused(400, problem, param="messages")
            fmt = body.get("response_format") or {}
            param = "response_format"
            json_schema = fmt.get("json_schema") if fmt.get("type") == "json_schema" else None
        else:
            fmt = (body.get("text") or {}).get("format") or {}
            param = "text.format"
            json_schema = fmt if fmt.get("type") == "json_schema" else None
        if fmt.get("type") == "json_object":
            return JSON_OBJECT_SCHEMA
        if json_schema is None:
            return None
        if problem := json_schema_format_problem(json_schema):
            raise _Refused(400, problem, param=param, code="invalid_json_schema")
        try:
            json_from_schema(json_schema["schema"])
        except ValueError as exc:  # e.g. a `pattern`: the fake cannot honour it
            raise _Refused(400, str(exc), param=param, code="invalid_json_schema") from exc
        return json_schema["schema"]

    # ---- videos

    async def _create_video(self, request: web.Request) -> web.Response:
        key = bearer_token(request.headers.get("Authorization"))
        record = CreateRecord(key, {}, 400, content_type=request.content_type)
        self.creates.append(record)
        try:
            key, behaviour = self._auth(request)
            reference = await self._read_create(request, record)
            model = record.fields.get("model", "sora-2")
            seconds = record.fields.get("seconds", "4")
            size = record.fields.get("size", "720x1280")
            if model not in self.video_models:
                raise _Refused(
                    400,
                    f"Invalid value: '{model}'. Supported values are: "
                    + ", ".join(f"'{m}'" for m in self.video_models)
                    + ".",
                    param="model",
                    code="invalid_value",
                )
            if reference is not None:
                declared = record.input_reference_content_type
                if declared is not None and declared not in UPLOAD_CONTENT_TYPES:
                    raise _Refused(
                        400,
                        f"Invalid file format {declared!r}. Supported formats are: image/jpeg, "
                        "image/png, image/webp.",
                        param="input_reference",
                        code="invalid_value",
                    )
                _check_reference(reference, size)
            status = behaviour.take_create_error()
            if status is not None:
                raise self._injected(status, key, behaviour)
        except _Refused as refused:
            record.status = refused.status
            return self._refusal(refused)
        job = VideoJob(
            id=new_id("video_"),
            key=key,
            model=model,
            prompt=record.fields["prompt"],
            seconds=seconds,
            size=size,
            behaviour=behaviour,
            counter=PollCounter(behaviour.polls_to_complete, behaviour.poll_errors),
            order=len(self.jobs),
        )
        self.jobs[job.id] = job
        record.status, record.video_id = 200, job.id
        if behaviour.create_delay:
            await asyncio.sleep(behaviour.create_delay)
        return self._reply(job.resource(), "VideoResource", headers=self._video_headers())

    async def _read_create(self, request: web.Request, record: CreateRecord) -> bytes | None:
        """Validate a create body against the spec; fill `record`; return the image bytes."""
        if request.content_type == MULTIPART:
            parts = await read_multipart(request)
            instance = self._multipart_instance(parts, record)
            reference = record.input_reference
        elif request.content_type == JSON:
            try:
                instance = json.loads(await request.read())
            except (ValueError, UnicodeDecodeError) as exc:
                raise _Refused(
                    400, f"We could not parse the JSON body of your request. ({exc})"
                ) from exc
            if not isinstance(instance, dict):
                raise _Refused(400, "The request body must be a JSON object.")
            record.fields = {
                k: v if isinstance(v, str) else json.dumps(v) for k, v in instance.items()
            }
            reference = _json_reference(instance.get("input_reference"), record)
        else:
            raise _Refused(400, f"Unsupported content type: {request.content_type!r}")
        for name in instance:
            if name not in VIDEO_FIELDS:
                raise _Refused(
                    400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter"
                )
        error = first_error(
            self.spec.request_validator("/videos", "post", request.content_type), instance
        )
        if error is not None:
            raise _spec_refusal(error)
        return reference

    def _multipart_instance(self, parts: list[FormPart], record: CreateRecord) -> dict[str, Any]:
        """The form as the object the multipart schema describes; file parts as placeholders."""
        instance: dict[str, Any] = {}
        for part in parts:
            if part.name in instance:
                raise _Refused(400, f"Duplicate parameter: '{part.name}'.", param=part.name)
            if part.name == "input_reference":
                record.input_reference = part.data
                record.input_reference_filename = part.filename
                record.input_reference_content_type = part.content_type
                instance[part.name] = BINARY_PLACEHOLDER
                continue
            if part.filename is not None:
                raise _Refused(
                    400, f"'{part.name}' must be a text field, not a file.", param=part.name
                )
            try:
                instance[part.name] = record.fields[part.name] = part.text()
            except UnicodeDecodeError as exc:
                raise _Refused(400, f"'{part.name}' is not UTF-8 text.", param=part.name) from exc
        return instance

    async def _list_videos(self, request: web.Request) -> web.Response:
        try:
            key, _ = self._auth(request)
            order = request.query.get("order", "desc")
            if order not in ("asc", "desc"):
                raise _Refused(400, f"Invalid value for order: {order!r}.", param="order")
            limit_text = request.query.get("limit", "20")
            if not limit_text.isdigit() or not 0 <= int(limit_text) <= 100:
                raise _Refused(400, "limit must be an integer from 0 to 100.", param="limit")
            jobs = sorted(
                (j for j in self.jobs.values() if j.key == key),
                key=lambda j: j.order,
                reverse=order == "desc",
            )
            after = request.query.get("after")
            if after is not None:
                ids = [j.id for j in jobs]
                if after not in ids:
                    raise _Refused(404, "Video not found", param="after")
                jobs = jobs[ids.index(after) + 1 :]
        except _Refused as refused:
            return self._refusal(refused)
        page = jobs[: int(limit_text)]
        body = {
            "object": "list",
            "data": [j.resource() for j in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": len(jobs) > len(page),
        }
        return self._reply(body, "VideoListResource")

    async def _retrieve_video(self, request: web.Request) -> web.Response:
        try:
            key, _ = self._auth(request)
            job = self._job(request, key)
            if job.status in ("queued", "in_progress"):
                self._advance(job)
        except _Refused as refused:
            return self._refusal(refused)
        return self._reply(job.resource(), "VideoResource", headers=self._video_headers())

    def _advance(self, job: VideoJob) -> None:
        if not job.counter.poll():
            message, type_, code = ERRORS[500]
            raise _Refused(500, message, type_=type_, code=code)
        if not job.counter.finished:
            job.status = "in_progress"
            job.progress = int(100 * job.counter.fraction)
            return
        job.completed_at = int(time.time())
        if job.behaviour.outcome == "failed":
            job.status = "failed"
            job.progress = max(job.progress, 50)
            job.error = {"code": job.behaviour.failure_code, "message": job.behaviour.error_text}
        else:
            job.status = "completed"
            job.progress = 100
            job.expires_at = job.completed_at + ASSET_TTL_SECONDS

    async def _delete_video(self, request: web.Request) -> web.Response:
        try:
            key, _ = self._auth(request)
            job = self._job(request, key)
        except _Refused as refused:
            return self._refusal(refused)
        del self.jobs[job.id]
        return self._reply(
            {"id": job.id, "object": "video.deleted", "deleted": True}, "DeletedVideoResource"
        )

    async def _download(self, request: web.Request) -> web.StreamResponse:
        try:
            key, _ = self._auth(request)
            job = self._job(request, key)
            variant = request.query.get("variant", "video")
            if variant not in VARIANTS:
                raise _Refused(
                    400,
                    f"Invalid value: '{variant}'. Supported values are: 'video', 'thumbnail' and "
                    "'spritesheet'.",
                    param="variant",
                    code="invalid_value",
                )
            if job.status != "completed":
                raise _Refused(
                    404, f"Video {job.id} is not ready (status: {job.status}).", param="video_id"
                )
        except _Refused as refused:
            return self._refusal(refused)
        if variant == "video":
            if self.clip is None:
                raise RuntimeError("FakeOpenAI(clip=...) was not given any mp4 bytes to serve")
            data = self.clip
        else:
            data = _preview_image(job.size, "WEBP" if variant == "thumbnail" else "JPEG")
        return await stream_bytes(
            request, data, VARIANTS[variant], delay=job.behaviour.download_delay
        )


# --------------------------------------------------------------------------- helpers


def _response_object(
    model: str,
    body: Mapping[str, Any],
    content: str,
    usage_in: int,
    usage_out: int,
    behaviour: OpenAIKeyBehaviour,
) -> dict[str, Any]:
    """A Responses API `Response` carrying `content` as its one output_text."""
    now = int(time.time())
    incomplete = behaviour.chat_truncated
    text = dict(body.get("text") or {})
    text.setdefault("format", {"type": "text"})
    return {
        "id": new_id("resp_"),
        "object": "response",
        "created_at": now,
        "completed_at": None if incomplete else now,
        "status": "incomplete" if incomplete else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": [
            {
                "id": new_id("msg_"),
                "type": "message",
                "status": "incomplete" if incomplete else "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "annotations": [], "logprobs": [], "text": content}
                ],
            }
        ],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": text,
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "metadata": {},
        "usage": {
            "input_tokens": usage_in,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": usage_out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage_in + usage_out,
        },
    }


def _json_reference(reference: Any, record: CreateRecord) -> bytes | None:
    """The image of a JSON body's `input_reference` ({"image_url": "data:..."}), if any."""
    if reference is None:
        return None
    if not isinstance(reference, Mapping):
        return None  # the spec check reports the wrong type
    if "file_id" in reference:
        raise _Refused(
            400, "FakeOpenAI does not support input_reference.file_id.", param="input_reference"
        )
    url = reference.get("image_url")
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
        raise _Refused(
            400,
            "FakeOpenAI supports only base64 data URLs in input_reference.image_url.",
            param="input_reference",
        )
    header, _, payload = url.partition(";base64,")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Refused(400, f"Invalid base64 image data: {exc}", param="input_reference") from exc
    record.input_reference = data
    record.input_reference_content_type = header.removeprefix("data:")
    return data


def _check_reference(data: bytes, size: str) -> None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format, dimensions = image.format, image.size
    except (UnidentifiedImageError, OSError) as exc:
        raise _Refused(
            400,
            "Invalid file format. Supported formats are: image/jpeg, image/png, image/webp.",
            param="input_reference",
            code="invalid_value",
        ) from exc
    if image_format not in IMAGE_FORMATS:
        raise _Refused(
            400,
            f"Invalid file format {image_format}. Supported formats are: image/jpeg, image/png, "
            "image/webp.",
            param="input_reference",
            code="invalid_value",
        )
    width, height = (int(n) for n in size.split("x"))
    if dimensions != (width, height):
        raise _Refused(
            400,
            "Inpaint image must match the requested width and height",
            param="input_reference",
            code="invalid_value",
        )


@cache
def _preview_image(size: str, image_format: str) -> bytes:
    width, height = (max(16, int(n) // 8) for n in size.split("x"))
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 60, 90)).save(buffer, image_format)
    return buffer.getvalue()
