"""Pieces shared by the provider fakes: the loopback server, request log, key behaviour, chat.

* `FakeServer` runs an `aiohttp.web` app on `127.0.0.1:<ephemeral>` as an async context
  manager, logs every request (`requests`, `keys_seen()`), and turns an exception inside a
  handler (a bug in the fake, or a fake response that fails its own schema check) into an
  `AssertionError` when the `async with` block exits, so it can never pass for a provider 500.
* `BaseKeyBehaviour` holds the per-key fault script both fakes understand (create errors,
  slow creates, poll errors, job outcome, slow downloads, scripted chat replies).
* `json_from_schema` builds a JSON value satisfying a JSON Schema (structured output), and
  `strict_schema_problem` applies OpenAI's strict-mode rules to a request's schema.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Self

from aiohttp import MultipartReader, StreamReader, web
from aiohttp.base_protocol import BaseProtocol
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

__all__ = [
    "JSON_OBJECT_SCHEMA",
    "BaseKeyBehaviour",
    "FakeServer",
    "FormPart",
    "PollCounter",
    "RequestRecord",
    "bearer_token",
    "estimate_tokens",
    "json_from_schema",
    "json_schema_format_problem",
    "messages_problem",
    "new_id",
    "read_multipart",
    "stream_bytes",
    "strict_schema_problem",
    "summary_text",
]

CLIENT_MAX_SIZE = 50 * 2**20  # real providers accept 50 MiB bodies; aiohttp's default is 1 MiB
CHUNK_SIZE = 64 * 1024
RECORD_KEY = web.RequestKey("fake_request_record", object)


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# --------------------------------------------------------------------------- request log


@dataclass
class RequestRecord:
    """One request as the fake received it. `headers` has lower-cased names."""

    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    headers: dict[str, str]
    body_size: int
    at: float = field(default_factory=time.monotonic)
    status: int | None = None  # the HTTP status the fake answered with
    request_id: str | None = None

    @property
    def key(self) -> str | None:
        """The Bearer token sent, if any."""
        return bearer_token(self.authorization)

    @property
    def http_referer(self) -> str | None:
        return self.headers.get("http-referer")

    @property
    def openrouter_title(self) -> str | None:
        return self.headers.get("x-openrouter-title")


@dataclass
class FormPart:
    """One multipart/form-data part."""

    name: str
    data: bytes
    filename: str | None
    content_type: str | None

    def text(self) -> str:
        return self.data.decode("utf-8")


async def read_multipart(request: web.Request) -> list[FormPart]:
    """Parse a multipart body the logging middleware has already read into memory.

    `request.post()` cannot be used after `request.read()` (the payload stream is drained),
    so the cached bytes are fed through aiohttp's own multipart parser.
    """
    body = await request.read()
    loop = asyncio.get_running_loop()
    # The limit is above the body's size: past 2x the limit the reader would pause a protocol
    # that has no transport (bodies are already in memory here).
    stream = StreamReader(BaseProtocol(loop), limit=max(2**16, len(body)), loop=loop)
    stream.feed_data(body)
    stream.feed_eof()
    reader = MultipartReader(request.headers, stream)
    parts: list[FormPart] = []
    while (part := await reader.next()) is not None:
        if isinstance(part, MultipartReader):
            raise web.HTTPBadRequest(text="nested multipart bodies are not supported")
        if part.name is None:
            raise web.HTTPBadRequest(text="multipart part without a name")
        data = bytes(await part.read(decode=True))
        parts.append(FormPart(part.name, data, part.filename, part.headers.get("Content-Type")))
    return parts


async def stream_bytes(
    request: web.Request, data: bytes, content_type: str, *, delay: float = 0.0
) -> web.StreamResponse:
    """Send `data` in chunks, chunk i not before `i * delay` seconds after the first.

    Paced against a deadline, so late wake-ups do not add up: the download takes the
    scripted time, and a benchmark can subtract exactly that.
    """
    response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
    response.content_length = len(data)
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i, offset in enumerate(range(0, len(data), CHUNK_SIZE)):
        if i and delay:
            await asyncio.sleep(max(0.0, started + i * delay - loop.time()))
        await response.write(data[offset : offset + CHUNK_SIZE])
    await response.write_eof()
    return response


# --------------------------------------------------------------------------- server


class FakeServer:
    """Base of the fakes: an aiohttp app on an ephemeral loopback port, with a request log.

    Subclasses set `api_prefix` (e.g. "/v1") and implement `_add_routes(app)`.
    """

    api_prefix: ClassVar[str] = ""

    def __init__(self) -> None:
        self.requests: list[RequestRecord] = []
        self.internal_errors: list[BaseException] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ---- lifecycle

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        app = web.Application(client_max_size=CLIENT_MAX_SIZE, middlewares=[self._middleware])
        app.on_response_prepare.append(self._on_response_prepare)
        self._add_routes(app)
        # handler_cancellation: a client that gives up (a timed-out create) ends the handler's
        # sleep instead of holding up `close()`; whatever the handler recorded stays recorded.
        runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=1.0, handler_cancellation=True
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(runner.addresses[0][1])
        self._runner = runner

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
        if exc is None and self.internal_errors:
            raise AssertionError(
                f"{type(self).__name__} hit {len(self.internal_errors)} internal error(s); "
                f"first: {self.internal_errors[0]!r}"
            ) from self.internal_errors[0]

    # ---- addresses

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not running (use `async with`)")
        return self._port

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}{self.api_prefix}"

    def url(self, path: str) -> str:
        """Absolute URL of an API path, e.g. `fake.url("/videos/models")`."""
        return f"{self.base_url}/{path.lstrip('/')}"

    # ---- log

    def keys_seen(self) -> set[str]:
        """Every Bearer token any request carried."""
        return {r.key for r in self.requests if r.key is not None}

    def requests_to(self, method: str, path: str) -> list[RequestRecord]:
        """Logged requests with this method and path (path relative to `api_prefix`)."""
        full = f"{self.api_prefix}/{path.lstrip('/')}"
        return [r for r in self.requests if r.method == method.upper() and r.path == full]

    # ---- hooks for subclasses

    def _add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def _internal_error_response(self, message: str) -> web.Response:
        return web.json_response({"error": {"message": message}}, status=500)

    def _request_id(self) -> str | None:
        return None

    # ---- middleware

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        body = await request.read()
        record = RequestRecord(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            authorization=request.headers.get("Authorization"),
            headers={name.lower(): value for name, value in request.headers.items()},
            body_size=len(body),
            request_id=self._request_id(),
        )
        self.requests.append(record)
        request[RECORD_KEY] = record
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            record.status = exc.status
            raise
        except (asyncio.CancelledError, ConnectionError):
            raise  # the client went away (a timeout, an aborted download): not the fake's fault
        except Exception as exc:  # a bug in the fake: fail the test at `async with` exit
            self.internal_errors.append(exc)
            record.status = 500
            return self._internal_error_response(f"fake internal error: {exc!r}")
        record.status = response.status
        return response

    async def _on_response_prepare(
        self, request: web.Request, response: web.StreamResponse
    ) -> None:
        record = request.get(RECORD_KEY)
        if isinstance(record, RequestRecord) and record.request_id:
            response.headers["x-request-id"] = record.request_id


# --------------------------------------------------------------------------- key behaviour


@dataclass
class BaseKeyBehaviour:
    """The per-key fault script both fakes share. Counters are per key, jobs per job."""

    create_status: int | None = None  # answer every video create with this error status ...
    create_fail_times: int | None = None  # ... or only the first N valid creates
    create_delay: float = 0.0  # seconds to sleep before answering a create (job already made)
    retry_after: float | None = None  # `Retry-After` seconds on injected 429s
    polls_to_complete: int = 2  # the Nth successful poll of a job reports the outcome
    poll_errors: int = 0  # the first N polls of each job answer 500 (and do not advance it)
    outcome: str = "completed"
    error_text: str = "Content policy violation"
    download_delay: float = 0.0  # seconds between 64 KiB chunks of a download
    chat_contents: list[str] | None = None  # scripted message contents, used up in order
    chat_status: int | None = None  # answer chat calls with this error status ...
    chat_fail_times: int | None = None  # ... or only the first N
    chat_truncated: bool = False  # cut replies short (finish_reason "length" / incomplete)
    key_status: int | None = None  # error status for the key check (GET /key, GET /models)
    creates_seen: int = field(default=0, init=False)
    chats_seen: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.chat_contents is not None:
            self.chat_contents = list(self.chat_contents)  # consumed here, not in the caller's

    def take_create_error(self) -> int | None:
        """Count one valid create; the status to refuse it with, if scripted."""
        self.creates_seen += 1
        return _scripted(self.create_status, self.create_fail_times, self.creates_seen)

    def take_chat_error(self) -> int | None:
        self.chats_seen += 1
        return _scripted(self.chat_status, self.chat_fail_times, self.chats_seen)

    def next_chat_content(self) -> str | None:
        if self.chat_contents:
            return self.chat_contents.pop(0)
        return None


def _scripted(status: int | None, times: int | None, seen: int) -> int | None:
    if status is None or (times is not None and seen > times):
        return None
    return status


@dataclass
class PollCounter:
    """How far a job has got: polls answered, and polls that were answered with a 500."""

    polls_to_complete: int
    poll_errors: int
    polls: int = 0
    errors_answered: int = 0

    def poll(self) -> bool:
        """Register one poll; False if it must be answered with an injected 500."""
        if self.errors_answered < self.poll_errors:
            self.errors_answered += 1
            return False
        self.polls += 1
        return True

    @property
    def finished(self) -> bool:
        return self.polls >= max(1, self.polls_to_complete)

    @property
    def fraction(self) -> float:
        return min(1.0, self.polls / max(1, self.polls_to_complete))


# --------------------------------------------------------------------------- chat helpers

_SENTENCES = (
    "A lantern flickers where the old road forks.",
    "Rain drums on the tin roofs of the night market.",
    "The ferryman counts his coins without looking up.",
    "A crow lands on the broken signpost and waits.",
    "Smoke curls from a chimney on the far hill.",
    "The bridge groans as the tide pulls at its posts.",
    "Someone has chalked a map on the tavern door.",
    "Bells ring twice from the drowned chapel.",
)
_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# What a `{"type": "json_object"}` reply satisfies.
JSON_OBJECT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "required": ["summary"],
    "properties": {"summary": {"type": "string"}},
}


def summary_text() -> str:
    """The plain-text reply: three bullet lines, as a summary would be."""
    return "\n".join(f"- {sentence}" for sentence in _SENTENCES[:3])


def estimate_tokens(value: Any) -> int:
    return max(1, len(str(value)) // 4)


_REPLIES = itertools.count()


def json_from_schema(schema: Mapping[str, Any]) -> Any:
    """A value that satisfies `schema` (checked with jsonschema before it is returned).

    Objects get their required properties (all properties when `required` is absent),
    arrays `minItems` items (at least 1, at most `maxItems`), enums/consts their first value,
    strings short distinct sentences ("Title 2: A crow lands ...", under 60 words, cut to
    `maxLength`). Raises `ValueError` for a schema it cannot satisfy (e.g. a `pattern`).
    """
    start = next(_REPLIES) * 1000  # every reply's strings differ, suite-wide
    counter = iter(range(start, start + 1_000_000))
    value = _generate(schema, schema, "", counter)
    error = best_match(Draft202012Validator(dict(schema)).iter_errors(value))
    if error is not None:
        raise ValueError(f"cannot generate a value for this schema: {error.message}")
    return value


def _resolve(root: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    seen = 0
    while "$ref" in schema:
        ref = str(schema["$ref"])
        if not ref.startswith("#"):
            raise ValueError(f"only local $refs are supported, got {ref!r}")
        node: Any = root
        for token in filter(None, ref[1:].split("/")):
            node = node[token.replace("~1", "/").replace("~0", "~")]
        merged = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**node, **merged}
        seen += 1
        if seen > 50:
            raise ValueError(f"$ref loop at {ref!r}")
    return schema


def _label(name: str) -> str:
    words = re.sub(r"[_\-]+", " ", name).strip()
    return words[:1].upper() + words[1:] if words else "Text"


def _generate(root: Mapping[str, Any], schema: Any, name: str, counter: Iterator[int]) -> Any:
    if schema is True or schema == {}:
        return _string({}, name, counter)
    schema = _resolve(root, schema)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for union in ("anyOf", "oneOf"):
        if union in schema:
            options = [_resolve(root, option) for option in schema[union]]
            chosen = next((o for o in options if o.get("type") != "null"), options[0])
            rest = {k: v for k, v in schema.items() if k != union}
            return _generate(root, {**rest, **chosen}, name, counter)
    if "allOf" in schema:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = _resolve(root, part)
            merged["properties"] = {**merged.get("properties", {}), **part.get("properties", {})}
            merged["required"] = [*merged.get("required", []), *part.get("required", [])]
            merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
        return _generate(root, merged, name, counter)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        properties: Mapping[str, Any] = schema.get("properties", {})
        wanted = schema.get("required", list(properties))
        return {prop: _generate(root, properties.get(prop, {}), prop, counter) for prop in wanted}
    if kind == "array":
        low = int(schema.get("minItems", 1))
        count = min(max(low, 1), int(schema.get("maxItems", max(low, 1))))
        prefix = list(schema.get("prefixItems", []))
        items = schema.get("items", {})
        return [
            _generate(root, prefix[i] if i < len(prefix) else items, name, counter)
            for i in range(count)
        ]
    if kind == "integer":
        return int(_number(schema, 1))
    if kind == "number":
        return float(_number(schema, 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, name, counter)


def _number(schema: Mapping[str, Any], default: float) -> float:
    if "minimum" in schema:
        return float(schema["minimum"])
    if "exclusiveMinimum" in schema:
        return float(schema["exclusiveMinimum"]) + 1
    if "maximum" in schema:
        return min(default, float(schema["maximum"]))
    if "exclusiveMaximum" in schema:
        return min(default, float(schema["exclusiveMaximum"]) - 1)
    return default


def _string(schema: Mapping[str, Any], name: str, counter: Iterator[int]) -> str:
    n = next(counter)
    fmt = schema.get("format")
    if fmt in ("uri", "url"):
        text = f"https://example.com/item/{n + 1}"
    elif fmt == "date-time":
        text = f"2026-01-01T00:00:{n % 60:02d}Z"
    elif fmt == "date":
        text = f"2026-01-{n % 28 + 1:02d}"
    elif fmt == "email":
        text = f"user{n + 1}@example.com"
    else:
        text = f"{_label(name)} {n + 1}: {_SENTENCES[n % len(_SENTENCES)]}"
    limit = schema.get("maxLength")
    if limit is not None and len(text) > int(limit):
        cut = text[: int(limit)]
        text = cut.rsplit(" ", 1)[0].rstrip(":,") if " " in cut.strip() else cut
    while len(text) < int(schema.get("minLength", 0)):
        text += " More."
    return text


def strict_schema_problem(schema: Any, path: str = "") -> str | None:
    """Why OpenAI's strict structured output would refuse `schema`, or None.

    Strict mode needs every object to set `additionalProperties: false` and to list every
    property in `required`. Also checks that the schema is a valid JSON Schema at all.
    """
    if not path:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            return f"not a valid JSON Schema: {exc.message}"
    if not isinstance(schema, Mapping):
        return None
    where = path or "(root)"
    if schema.get("type") == "object" or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            return (
                f"In context={where}, 'additionalProperties' is required to be supplied "
                "and to be false."
            )
        properties = set(schema.get("properties", {}))
        missing = sorted(properties - set(schema.get("required", [])))
        if missing:
            return (
                f"In context={where}, 'required' is required to be supplied and to be an array "
                f"including every key in properties. Missing '{missing[0]}'."
            )
    for key in ("properties", "$defs", "definitions"):
        for sub, child in schema.get(key, {}).items():
            if problem := strict_schema_problem(child, f"{where}/{key}/{sub}"):
                return problem
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for index, child in enumerate(schema.get(key, [])):
            if problem := strict_schema_problem(child, f"{where}/{key}/{index}"):
                return problem
    if isinstance(schema.get("items"), Mapping):
        return strict_schema_problem(schema["items"], f"{where}/items")
    return None


def json_schema_format_problem(fmt: Any) -> str | None:
    """Shape errors in a `{"name", "strict", "schema"}` structured-output format, or None."""
    if not isinstance(fmt, Mapping):
        return "json_schema must be an object"
    name = fmt.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        return "json_schema.name must match ^[a-zA-Z0-9_-]{1,64}$"
    if not isinstance(fmt.get("schema"), Mapping):
        return "json_schema.schema must be an object"
    if "strict" in fmt and not isinstance(fmt["strict"], bool | None):
        return "json_schema.strict must be a boolean"
    if fmt.get("strict"):
        problem = strict_schema_problem(fmt["schema"])
        if problem:
            return f"Invalid schema for response_format '{name}': {problem}"
    else:
        try:
            Draft202012Validator.check_schema(fmt["schema"])
        except SchemaError as exc:
            return f"Invalid schema for response_format '{name}': {exc.message}"
    return None


def messages_problem(messages: Any) -> str | None:
    """Shape errors in a chat `messages` array, or None."""
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty array"
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            return f"messages[{index}] must be an object"
        if message.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            return f"messages[{index}].role is invalid: {message.get('role')!r}"
        content = message.get("content")
        if not isinstance(content, str | list) or not content:
            return f"messages[{index}].content must be a non-empty string or array"
    return None
