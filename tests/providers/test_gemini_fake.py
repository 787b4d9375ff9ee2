"""The Gemini fake's own self-test, driven by the real google-genai SDK (async client).

Everything the Gemini provider will rely on is exercised here through `client.aio`: the
structured-output planner call, the key check, a background Omni Flash interaction with a
starting image, polling, `files.get` and `files.download`, inline delivery, each scripted
fault, key isolation and the SDK's default create retry (the reason the provider must pass
`HttpRetryOptions(attempts=1)`).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from google import genai
from google.genai import _interactions, errors, types
from jsonschema import Draft202012Validator
from PIL import Image
from pydantic import BaseModel, Field

from tests.fakes.gemini_server import FakeGemini
from tests.fixtures.providers import (
    GOOD_GEMINI_KEY,
    assert_key_only_in_header,
    clear_google_env,
)
from world.prompts import PLAN_SCHEMA

OTHER_KEY = "sk-test-gemini-other-41c0"
VIDEO_MODEL = "gemini-omni-1.2-flash"
CHAT_MODEL = "gemini-3-flash"
FILE_NAME_RE = re.compile(r"files/([a-z0-9]+)")

Connect = Callable[..., genai.client.AsyncClient]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 18), (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png()
_TLS = ssl.create_default_context()


@pytest.fixture
async def connect(gemini: FakeGemini) -> AsyncIterator[Connect]:
    """A factory of async SDK clients on the fake; all closed at teardown."""
    clients: list[genai.client.AsyncClient] = []

    def make(
        key: str = GOOD_GEMINI_KEY,
        *,
        version: str = "v1beta",
        fake: FakeGemini | None = None,
        retry: bool = False,
    ) -> genai.client.AsyncClient:
        options = types.HttpOptions(
            base_url=(fake or gemini).base_url,
            api_version=version,
            timeout=10_000,
            retry_options=None if retry else types.HttpRetryOptions(attempts=1),
            # One shared TLS context: the SDK loads the CA bundle three times per client
            # (0.15 s) otherwise. Nothing here uses TLS; the transports are the defaults.
            client_args={"verify": _TLS},
            async_client_args={"verify": _TLS, "ssl": _TLS},
        )
        client = genai.Client(api_key=key, http_options=options).aio
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def _video_request(prompt: str, *, image: bytes | None = PNG, **fmt: Any) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if image is not None:
        parts.append(
            {"type": "image", "data": base64.b64encode(image).decode(), "mime_type": "image/png"}
        )
    parts.append({"type": "text", "text": prompt})
    response_format = {
        "type": "video",
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "duration": "8s",
        "delivery": "uri",
    } | fmt
    return {
        "model": VIDEO_MODEL,
        "input": parts if image is not None else prompt,
        "response_format": response_format,
        "generation_config": {
            "video_config": {"task": "image_to_video" if image is not None else "text_to_video"}
        },
        "background": True,
        "store": True,
    }


async def _poll(client: genai.client.AsyncClient, interaction_id: str) -> Any:
    for _ in range(10):
        interaction = await client.interactions.get(interaction_id)
        if interaction.status not in ("queued", "in_progress"):
            return interaction
    raise AssertionError("the interaction never finished")


async def _raw(
    fake: FakeGemini,
    method: str,
    path: str,
    *,
    key: str | None = GOOD_GEMINI_KEY,
    body: Any = None,
    params: dict[str, str] | None = None,
) -> tuple[int, Any]:
    headers = {"x-goog-api-key": key} if key is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, f"{fake.base_url}{path}", json=body, headers=headers, params=params
        ) as response,
    ):
        assert response.content_type == "application/json"
        return response.status, await response.json()


# --------------------------------------------------------------------------- generateContent


class PlanChoice(BaseModel):
    label: str
    short_label: str


class PlanModel(BaseModel):
    title: str
    narration: str
    video_prompt: str
    choices: list[PlanChoice] = Field(min_length=3, max_length=3)


@pytest.mark.parametrize("field", ["response_json_schema", "response_schema", "pydantic"])
async def test_generate_content_answers_json_that_satisfies_the_plan_schema(
    gemini: FakeGemini, connect: Connect, field: str
):
    gemini.add_key(GOOD_GEMINI_KEY)
    client = connect()
    schema: Any = PlanModel if field == "pydantic" else PLAN_SCHEMA
    config = types.GenerateContentConfig(
        system_instruction="You plan scenes.",
        response_mime_type="application/json",
        **{"response_schema" if field == "pydantic" else field: schema},
    )
    reply = await client.models.generate_content(
        model=CHAT_MODEL, contents="Plan the opening scene.", config=config
    )
    plan = json.loads(reply.text)
    assert list(Draft202012Validator(PLAN_SCHEMA).iter_errors(plan)) == []
    assert len(plan["choices"]) == 3
    if field == "pydantic":
        assert isinstance(reply.parsed, PlanModel)
    elif field == "response_json_schema":
        assert reply.parsed == plan
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    assert reply.usage_metadata.total_token_count > 0
    assert reply.model_version == CHAT_MODEL and reply.response_id
    (record,) = gemini.generates
    assert (record.key, record.model, record.status, record.text) == (
        GOOD_GEMINI_KEY,
        CHAT_MODEL,
        200,
        reply.text,
    )
    assert record.system_instruction == "You plan scenes."
    wire = "responseSchema" if field != "response_json_schema" else "responseJsonSchema"
    assert wire in record.body["generationConfig"]


async def test_generate_content_without_a_schema_answers_a_plain_summary(
    gemini: FakeGemini, connect: Connect
):
    gemini.add_key(GOOD_GEMINI_KEY)
    reply = await connect().models.generate_content(model=CHAT_MODEL, contents="Summarise.")
    assert reply.text.startswith("- ") and reply.text.count("\n") == 2


async def test_generate_content_scripts(gemini: FakeGemini, connect: Connect):
    gemini.add_key(GOOD_GEMINI_KEY, chat_contents=["not json {", '{"title": "x"}'])
    gemini.add_key("sk-test-gemini-cut-0001", chat_truncated=True)
    gemini.add_key("sk-test-gemini-block-0002", chat_blocked=True)
    gemini.add_key("sk-test-gemini-prompt-0003", chat_blocked="prompt")
    gemini.add_key("sk-test-gemini-busy-0004", chat_error="quota", chat_fail_times=1)
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_json_schema=PLAN_SCHEMA
    )

    client = connect()
    first = await client.models.generate_content(model=CHAT_MODEL, contents="a", config=config)
    second = await client.models.generate_content(model=CHAT_MODEL, contents="a", config=config)
    assert (first.text, second.text) == ("not json {", '{"title": "x"}')

    cut = await connect("sk-test-gemini-cut-0001").models.generate_content(
        model=CHAT_MODEL, contents="a", config=config
    )
    assert cut.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    with pytest.raises(ValueError):
        json.loads(cut.text)

    blocked = await connect("sk-test-gemini-block-0002").models.generate_content(
        model=CHAT_MODEL, contents="a", config=config
    )
    assert blocked.text is None
    assert blocked.candidates[0].finish_reason == types.FinishReason.SAFETY

    prompt_blocked = await connect("sk-test-gemini-prompt-0003").models.generate_content(
        model=CHAT_MODEL, contents="a"
    )
    assert prompt_blocked.text is None and not prompt_blocked.candidates
    assert prompt_blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY

    busy = connect("sk-test-gemini-busy-0004")
    with pytest.raises(errors.ClientError) as caught:
        await busy.models.generate_content(model=CHAT_MODEL, contents="a")
    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert (await busy.models.generate_content(model=CHAT_MODEL, contents="a")).text
    assert [g.status for g in gemini.generates] == [200, 200, 200, 200, 200, 429, 200]


async def test_generate_content_validates_before_injected_faults(
    gemini: FakeGemini, connect: Connect
):
    gemini.add_key(GOOD_GEMINI_KEY, chat_error="quota")
    client = connect()
    with pytest.raises(errors.ClientError) as caught:  # JSON asked, no schema given
        await client.models.generate_content(
            model=CHAT_MODEL,
            contents="a",
            config=types.GenerateContentConfig(response_mime_type="application/json"),
        )
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    status, body = await _raw(
        gemini, "POST", f"/v1beta/models/{CHAT_MODEL}:generateContent", body={"contents": []}
    )
    assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    assert body["error"]["code"] == 400
    status, body = await _raw(
        gemini,
        "POST",
        f"/v1beta/models/{CHAT_MODEL}:generateContent",
        body={"contents": [{"parts": [{"text": "a"}]}], "generation_config": {}},
    )
    assert status == 400 and "Unknown name" in body["error"]["message"]  # snake_case top level
    with pytest.raises(errors.ClientError) as caught:
        await client.models.generate_content(model="gemini-nope", contents="a")
    assert caught.value.code == 404
    assert [g.status for g in gemini.generates] == [400, 400, 400, 404]


# --------------------------------------------------------------------------- models.get


async def test_models_get_proves_a_key_and_refuses_an_unknown_one(
    gemini: FakeGemini, connect: Connect
):
    gemini.add_key(GOOD_GEMINI_KEY)
    model = await connect().models.get(model=CHAT_MODEL)
    assert model.name == f"models/{CHAT_MODEL}"
    assert "generateContent" in model.supported_actions
    assert (await connect().models.get(model=VIDEO_MODEL)).name == f"models/{VIDEO_MODEL}"

    with pytest.raises(errors.ClientError) as caught:
        await connect("sk-test-gemini-unknown-9999").models.get(model=CHAT_MODEL)
    error = caught.value
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    assert error.message == "API key not valid. Please pass a valid API key."
    assert error.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"

    with pytest.raises(errors.ClientError) as caught:
        await connect().models.get(model="gemini-retired")
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("key_error", "exception", "code", "status"),
    [
        ("bad_key", errors.ClientError, 400, "INVALID_ARGUMENT"),
        ("billing", errors.ClientError, 400, "FAILED_PRECONDITION"),
        ("permission", errors.ClientError, 403, "PERMISSION_DENIED"),
        ("quota", errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        ("server", errors.ServerError, 500, "INTERNAL"),
    ],
)
async def test_models_get_scripted_key_errors(
    gemini: FakeGemini, connect: Connect, key_error, exception, code, status
):
    gemini.add_key(GOOD_GEMINI_KEY, key_error=key_error)
    with pytest.raises(exception) as caught:
        await connect().models.get(model=CHAT_MODEL)
    assert (caught.value.code, caught.value.status) == (code, status)
    reasons = [d.get("reason") for d in caught.value.details["error"].get("details", [])]
    assert ("API_KEY_INVALID" in reasons) == (key_error == "bad_key")


# --------------------------------------------------------------------------- interactions


@pytest.mark.parametrize("version", ["v1", "v1beta"])
async def test_image_to_video_with_uri_delivery_end_to_end(
    gemini: FakeGemini, connect: Connect, clip_bytes: bytes, version: str
):
    gemini.add_key(GOOD_GEMINI_KEY, polls_to_complete=2, file_polls_to_active=1)
    client = connect(version=version)
    created = await client.interactions.create(**_video_request("A lantern-lit crossroads"))
    assert created.status == "in_progress" and created.output_video is None
    (record,) = gemini.accepted_creates
    assert record.interaction_id == created.id and record.status == 200
    assert (record.image, record.prompt) == (PNG, "A lantern-lit crossroads")
    assert record.body["input"] == [
        {
            "type": "user_input",
            "content": [
                {"type": "image", "data": base64.b64encode(PNG).decode(), "mime_type": "image/png"},
                {"type": "text", "text": "A lantern-lit crossroads"},
            ],
        }
    ]

    assert (await client.interactions.get(created.id)).status == "in_progress"
    done = await _poll(client, created.id)
    assert done.status == "completed"
    video = done.output_video
    assert (video.type, video.mime_type, video.data) == ("video", "video/mp4", None)
    assert video.uri.startswith(f"{gemini.origin}/{version}/files/")
    name = FILE_NAME_RE.search(video.uri).group(0)
    assert done.usage.total_output_tokens > 0

    with pytest.raises(errors.ClientError) as caught:  # not ACTIVE yet
        await client.files.download(file=name)
    assert caught.value.status == "FAILED_PRECONDITION"
    processing = await client.files.get(name=name)
    assert processing.state == types.FileState.PROCESSING
    active = await client.files.get(name=name)
    assert (active.state, active.mime_type, active.source) == (
        types.FileState.ACTIVE,
        "video/mp4",
        types.FileSource.GENERATED,
    )
    assert await client.files.download(file=name) == clip_bytes
    assert all(r.path.startswith(f"/{version}/") for r in gemini.requests)
    assert {r.query.get("stream") for r in gemini.requests if "/interactions/" in r.path} == {
        "false"
    }


async def test_inline_delivery_and_text_to_video(
    gemini: FakeGemini, connect: Connect, clip_bytes: bytes
):
    gemini.add_key(GOOD_GEMINI_KEY, polls_to_complete=1)
    client = connect()
    request = _video_request("A quiet harbour at dawn", image=None, delivery="inline")
    created = await client.interactions.create(**request)
    done = await _poll(client, created.id)
    assert done.output_video.uri is None
    assert base64.b64decode(done.output_video.data) == clip_bytes
    (record,) = gemini.accepted_creates
    assert (record.image, record.prompt, record.body["input"]) == (
        None,
        "A quiet harbour at dawn",
        "A quiet harbour at dawn",
    )
    assert gemini.files == {}


async def test_forced_delivery_and_poll_and_download_errors(
    gemini: FakeGemini, connect: Connect, clip_bytes: bytes
):
    gemini.add_key(
        GOOD_GEMINI_KEY, delivery="uri", polls_to_complete=1, poll_errors=1, download_errors=1
    )
    client = connect()
    created = await client.interactions.create(**_video_request("x", delivery="inline"))
    with pytest.raises(_interactions.InternalServerError):
        await client.interactions.get(created.id)
    done = await client.interactions.get(created.id)
    name = FILE_NAME_RE.search(done.output_video.uri).group(0)
    with pytest.raises(errors.ServerError):
        await client.files.download(file=name)
    assert await client.files.download(file=name) == clip_bytes


@pytest.mark.parametrize(
    ("create_error", "exception", "status", "code"),
    [
        ("bad_key", _interactions.AuthenticationError, 401, "authentication"),
        ("billing", _interactions.BadRequestError, 400, "failed_precondition"),
        ("permission", _interactions.PermissionDeniedError, 403, "permission_denied"),
        ("quota", _interactions.RateLimitError, 429, "quota_exceeded"),
        ("safety", _interactions.BadRequestError, 400, "safety"),
        ("server", _interactions.InternalServerError, 500, "api_error"),
    ],
)
async def test_scripted_create_errors_create_nothing(
    gemini: FakeGemini, connect: Connect, create_error, exception, status, code
):
    gemini.add_key(GOOD_GEMINI_KEY, create_error=create_error)
    with pytest.raises(exception) as caught:
        await connect().interactions.create(**_video_request("A blocked prompt"))
    assert caught.value.status_code == status
    assert caught.value.body["error"]["code"] == code
    assert caught.value.body["error"]["message"]
    if create_error == "safety":
        assert "safety" in caught.value.body["error"]["message"]
    assert [(c.status, c.prompt) for c in gemini.creates] == [(status, "A blocked prompt")]
    assert gemini.accepted_creates == [] and gemini.interactions == {}


async def test_google_style_interaction_errors(gemini: FakeGemini, clip_bytes: bytes, connect):
    async with FakeGemini(clip_bytes, interaction_errors="google") as fake:
        fake.add_key(GOOD_GEMINI_KEY, create_error="quota")
        with pytest.raises(_interactions.BadRequestError) as caught:
            await connect("sk-test-gemini-unknown-9999", fake=fake).interactions.create(
                **_video_request("x")
            )
        error = caught.value.body["error"]
        assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
        assert error["details"][0]["reason"] == "API_KEY_INVALID"
        with pytest.raises(_interactions.RateLimitError) as caught:
            await connect(fake=fake).interactions.create(**_video_request("x"))
        assert caught.value.body["error"]["status"] == "RESOURCE_EXHAUSTED"


async def test_a_server_error_once_then_success(gemini: FakeGemini, connect: Connect):
    gemini.add_key(GOOD_GEMINI_KEY, create_error="server", create_fail_times=1)
    client = connect()
    with pytest.raises(_interactions.InternalServerError):
        await client.interactions.create(**_video_request("Take one"))
    assert gemini.accepted_creates == []
    created = await client.interactions.create(**_video_request("Take two"))
    assert [c.status for c in gemini.creates] == [500, 200]
    assert [c.interaction_id for c in gemini.accepted_creates] == [created.id]


async def test_server_after_create_is_paid_but_the_answer_is_lost(
    gemini: FakeGemini, connect: Connect
):
    gemini.add_key(GOOD_GEMINI_KEY, create_error="server_after_create", polls_to_complete=1)
    client = connect()
    with pytest.raises(_interactions.InternalServerError):
        await client.interactions.create(**_video_request("Lost answer"))
    (record,) = gemini.accepted_creates
    assert record.status == 500 and record.interaction_id in gemini.interactions
    assert (await client.interactions.get(record.interaction_id)).status == "completed"


@pytest.mark.parametrize(
    "outcome", ["failed", "no_video", "cancelled", "incomplete", "budget_exceeded"]
)
async def test_outcomes_other_than_a_video(gemini: FakeGemini, connect: Connect, outcome: str):
    gemini.add_key(GOOD_GEMINI_KEY, outcome=outcome, polls_to_complete=1, error_text="Blocked.")
    client = connect()
    created = await client.interactions.create(**_video_request("x"))
    done = await client.interactions.get(created.id)
    assert done.output_video is None
    assert done.status == ("completed" if outcome == "no_video" else outcome)
    if outcome == "failed":
        assert [(e.code, e.message) for e in done.errors] == [("safety", "Blocked.")]
    if outcome == "no_video":
        assert done.output_text
    assert len(gemini.accepted_creates) == 1


async def test_cancel(gemini: FakeGemini, connect: Connect):
    gemini.add_key(GOOD_GEMINI_KEY, polls_to_complete=5)
    client = connect()
    created = await client.interactions.create(**_video_request("x"))
    await client.interactions.cancel(created.id)
    assert (await client.interactions.get(created.id)).status == "cancelled"
    assert gemini.interactions[created.id].status == "cancelled"


BAD_CREATES: list[tuple[str, Callable[[dict[str, Any]], None], int]] = [
    ("duration as an int", lambda b: b["response_format"].update(duration=8), 400),
    ("duration too long", lambda b: b["response_format"].update(duration="12s"), 400),
    ("aspect ratio", lambda b: b["response_format"].update(aspect_ratio="4:3"), 400),
    ("resolution", lambda b: b["response_format"].update(resolution="2k"), 400),
    ("delivery", lambda b: b["response_format"].update(delivery="email"), 400),
    ("not a video format", lambda b: b["response_format"].update(type="text"), 400),
    ("task", lambda b: b["generation_config"]["video_config"].update(task="text_to_video"), 400),
    ("foreground", lambda b: b.update(background=False), 400),
    ("store off", lambda b: b.update(store=False), 400),
    ("unknown field", lambda b: b.update(seconds=8), 400),
    ("safety settings", lambda b: b.update(safety_settings=[{"category": "x"}]), 400),
    ("unknown model", lambda b: b.update(model="gemini-omni-9-flash"), 404),
    ("chat model", lambda b: b.update(model=CHAT_MODEL), 400),
    ("not a PNG", lambda b: b["input"][0]["content"][0].update(data="aGVsbG8="), 400),
    ("bad base64", lambda b: b["input"][0]["content"][0].update(data="%%%"), 400),
    ("jpeg mime", lambda b: b["input"][0]["content"][0].update(mime_type="image/jpeg"), 400),
    ("text first", lambda b: b["input"][0]["content"].reverse(), 400),
    ("no text", lambda b: b["input"][0]["content"].pop(), 400),
]


@pytest.mark.parametrize(
    ("mutate", "status"), [c[1:] for c in BAD_CREATES], ids=[c[0] for c in BAD_CREATES]
)
async def test_malformed_creates_are_refused_before_injected_faults(
    gemini: FakeGemini, mutate, status: int
):
    gemini.add_key(GOOD_GEMINI_KEY, create_error="quota")
    body = _video_request("x")
    body["input"] = [{"type": "user_input", "content": body["input"]}]  # as the SDK sends it
    mutate(body)
    answered, reply = await _raw(gemini, "POST", "/v1beta/interactions", body=body)
    assert answered == status, reply
    assert set(reply["error"]) == {"code", "message"} and isinstance(reply["error"]["code"], str)
    assert [c.status for c in gemini.creates] == [status]
    assert gemini.accepted_creates == []


# --------------------------------------------------------------------------- keys


async def test_the_key_travels_only_in_x_goog_api_key(
    gemini: FakeGemini, connect: Connect, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)  # the SDK's and aiohttp's own lines, all of them
    gemini.add_key(GOOD_GEMINI_KEY, polls_to_complete=1)
    client = connect()
    await client.models.get(model=CHAT_MODEL)
    await client.models.generate_content(model=CHAT_MODEL, contents="a")
    created = await client.interactions.create(**_video_request("x"))
    done = await client.interactions.get(created.id)
    name = FILE_NAME_RE.search(done.output_video.uri).group(0)
    await client.files.get(name=name)
    await client.files.download(file=name)
    assert len(gemini.requests) == 6
    assert gemini.keys_seen() == {GOOD_GEMINI_KEY}
    assert_key_only_in_header(tmp_path, caplog.text, gemini.requests, GOOD_GEMINI_KEY)

    path = f"/v1beta/models/{CHAT_MODEL}"
    status, body = await _raw(gemini, "GET", path, key=None, params={"key": GOOD_GEMINI_KEY})
    assert (status, body["error"]["status"]) == (400, "INVALID_ARGUMENT")
    status, body = await _raw(gemini, "GET", path, key=None)
    assert (status, body["error"]["status"]) == (403, "PERMISSION_DENIED")
    status, body = await _raw(gemini, "POST", "/v1beta/interactions", key=None, body={})
    assert (status, body["error"]["code"]) == (401, "authentication")
    status, body = await _raw(gemini, "GET", f"/v2/models/{CHAT_MODEL}")
    assert status == 404


async def test_another_key_cannot_poll_or_download_an_interaction(
    gemini: FakeGemini, connect: Connect
):
    gemini.add_key(GOOD_GEMINI_KEY, polls_to_complete=1)
    gemini.add_key(OTHER_KEY)
    owner, other = connect(), connect(OTHER_KEY)
    created = await owner.interactions.create(**_video_request("Mine"))
    with pytest.raises(_interactions.NotFoundError):
        await other.interactions.get(created.id)
    with pytest.raises(_interactions.NotFoundError):
        await other.interactions.cancel(created.id)
    done = await owner.interactions.get(created.id)
    name = FILE_NAME_RE.search(done.output_video.uri).group(0)
    with pytest.raises(errors.ClientError) as caught:
        await other.files.get(name=name)
    assert (caught.value.code, caught.value.status) == (403, "PERMISSION_DENIED")
    with pytest.raises(errors.ClientError):
        await other.files.download(file=name)
    with pytest.raises(_interactions.NotFoundError):
        await owner.interactions.get("v1_int_does_not_exist")


async def test_the_sdk_default_retry_would_pay_for_a_create_twice(
    clip_bytes: bytes, connect: Connect, monkeypatch: pytest.MonkeyPatch
):
    """Why the provider passes `HttpRetryOptions(attempts=1)`: without retry options the
    interactions client re-sends a create after a 500 (5 attempts on 408/409/429/5xx), and a
    500 can arrive after the interaction was made, so one branch is paid for twice. (Its own
    fake: the `gemini` fixture's teardown would rightly fail on the double payment.)"""
    clear_google_env(monkeypatch)
    async with FakeGemini(clip_bytes) as fake:
        fake.add_key(GOOD_GEMINI_KEY, create_error="server_after_create", create_fail_times=1)
        created = await connect(fake=fake, retry=True).interactions.create(
            **_video_request("Paid twice")
        )
        assert [c.status for c in fake.creates] == [500, 200]
        assert [c.prompt for c in fake.accepted_creates] == ["Paid twice", "Paid twice"]
        assert created.id == fake.accepted_creates[1].interaction_id
        assert len(fake.interactions) == 2
