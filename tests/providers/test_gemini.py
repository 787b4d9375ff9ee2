"""The Gemini provider through the real WorldService and google-genai SDK, against a fake.

The fake (tests/fakes/gemini_server.py) validates every body the SDK sends, answers in the
shapes the SDK parses, and records every request: each test counts the paid creates it saw,
and the `gemini` fixture checks at teardown that no branch was paid for twice.
"""

from __future__ import annotations

import base64
import io
import logging

import httpx2
import pytest
from google.genai import _interactions as interactions_errors
from google.genai import errors as genai_errors
from PIL import Image

from tests.fakes.gemini_server import FakeGemini
from tests.fixtures.providers import (
    GOOD_GEMINI_KEY,
    assert_key_only_in_header,
    clear_google_env,
    mint_with,
    paid_service,
    paid_settings,
)
from tests.world.helpers import render_rows, row
from world.logsafe import install_redaction
from world.media import extract_last_frame_png
from world.providers import build_provider
from world.providers.base import ProviderError
from world.providers.errors import SENTENCES, UNKNOWN_OUTCOME
from world.providers.gemini import (
    GeminiProvider,
    estimate_usd,
    file_name,
    fit_problems,
)
from world.providers.gemini_errors import (
    BUDGET_EXCEEDED,
    NO_BILLING,
    RETIRED_MODEL,
    failed_interaction,
    from_exception,
)
from world.settings import ProviderSettings, SettingsError, WorldSettings, load_settings
from world.types import UNCERTAIN, Credentials, Status

VIDEO_MODEL = "gemini-omni-1.2-flash"


@pytest.fixture
def settings_for(tmp_path, gemini: FakeGemini):
    def make(providers=None, **world):
        return paid_settings(tmp_path, "gemini", gemini.base_url, providers, **world)

    return make


# --------------------------------------------------------------------------- no fake needed


def _world(**values) -> WorldSettings:
    return WorldSettings(id="w", provider="gemini", video_model=VIDEO_MODEL, **values)


@pytest.mark.parametrize(
    ("size", "seconds", "cost"),
    [
        ("1280x720", 8, 0.80),  # $0.10/s at 720p (§2.5)
        ("720x1280", 8, 0.80),
        ("640x360", 8, 0.32),  # 360p: 0.4x
        ("1920x1080", 5, 1.00),  # 1080p: 2x
        ("3840x2160", 10, 4.00),  # 4k: 4x
    ],
)
async def test_the_estimate_is_the_720p_price_per_second_scaled_by_resolution(size, seconds, cost):
    world = _world(video_size=size, video_seconds=seconds, cost_per_second_usd=0.10)
    provider = GeminiProvider(world, ProviderSettings())
    assert estimate_usd(world) == pytest.approx(cost)
    assert await provider.estimate_cost_usd() == pytest.approx(cost)
    assert provider.cached_estimate_usd() == pytest.approx(cost)
    assert fit_problems(world) == []


def test_settings_omni_cannot_make_are_named():
    assert fit_problems(_world(video_seconds=12)) == [
        "12 s is not a duration it makes (it makes 3 to 10 s)"
    ]
    assert fit_problems(_world(video_seconds=2, video_size="1024x1024")) == [
        "2 s is not a duration it makes (it makes 3 to 10 s)",
        "1024x1024 (1024p) is not offered (only 360p, 720p, 1080p, 4k)",
        "aspect ratio 1:1 is not offered (only 16:9, 9:16)",
    ]
    assert fit_problems(_world(video_size="1600x900")) == [
        "1600x900 (900p) is not offered (only 360p, 720p, 1080p, 4k)"
    ]


def test_build_provider_makes_the_gemini_provider(tmp_path):
    provider = build_provider(_world(), ProviderSettings(), tmp_path)
    assert isinstance(provider, GeminiProvider)
    assert (provider.name, provider.display_name) == ("gemini", "Gemini")
    assert provider.needs_key and not provider.reports_progress and not provider.can_find_renders
    assert provider.base_url == "https://generativelanguage.googleapis.com"
    assert provider.api_version == "v1beta"


def test_only_the_file_id_of_a_result_uri_is_used():
    assert file_name("https://generativelanguage.googleapis.com/v1beta/files/abc123") == (
        "files/abc123"
    )
    assert file_name("http://127.0.0.1:5/v1/files/9f0e:download?alt=media") == "files/9f0e"
    assert file_name("files/xyz") == "files/xyz"
    assert file_name("https://example.com/video.mp4") is None
    assert file_name(None) is None


def _google(code: int, status: str, message: str, reason: str | None = None):
    error = {"code": code, "status": status, "message": message}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    cls = genai_errors.ServerError if code >= 500 else genai_errors.ClientError
    return cls(code, {"error": error})


def _interactions(status: int, code: str, message: str = "nope"):
    response = httpx2.Response(status, request=httpx2.Request("POST", "http://x/v1beta/i"))
    cls = {
        400: interactions_errors.BadRequestError,
        401: interactions_errors.AuthenticationError,
        403: interactions_errors.PermissionDeniedError,
        404: interactions_errors.NotFoundError,
        429: interactions_errors.RateLimitError,
    }.get(status, interactions_errors.InternalServerError)
    return cls(message, response=response, body={"error": {"code": code, "message": message}})


BAD_KEY = "API key not valid. Please pass a valid API key."


@pytest.mark.parametrize(
    ("exc", "step", "code", "sentence", "unknown"),
    [
        (
            _google(400, "INVALID_ARGUMENT", BAD_KEY, "API_KEY_INVALID"),
            "key",
            "invalid_key",
            None,
            0,
        ),
        (
            _google(400, "FAILED_PRECONDITION", "Billing off"),
            "key",
            "no_video_access",
            NO_BILLING,
            0,
        ),
        (_google(403, "PERMISSION_DENIED", "denied"), "key", "permission", None, 0),
        (
            _google(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota"),
            "key",
            "quota",
            None,
            0,
        ),
        (
            _google(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted"),
            "plan",
            "rate_limited",
            None,
            0,
        ),
        (_google(404, "NOT_FOUND", "models/x is not found"), "key", "config", RETIRED_MODEL, 0),
        (_google(400, "INVALID_ARGUMENT", "bad schema"), "plan", "config", None, 0),
        (_google(500, "INTERNAL", "oops"), "plan", "unavailable", None, 0),
        (_google(503, "UNAVAILABLE", "overloaded"), "download", "unavailable", None, 0),
        (_google(400, "FAILED_PRECONDITION", "not ACTIVE"), "download", "unavailable", None, 0),
        (_interactions(401, "authentication"), "create", "invalid_key", None, 0),
        (_interactions(400, "failed_precondition"), "create", "no_video_access", NO_BILLING, 0),
        (_interactions(403, "permission_denied"), "create", "permission", None, 0),
        (_interactions(429, "quota_exceeded"), "create", "quota", None, 0),
        (_interactions(429, "rate_limit_exceeded"), "create", "rate_limited", None, 0),
        (_interactions(429, "quota_exceeded"), "poll", "rate_limited", None, 0),
        (_interactions(400, "safety", "The prompt was blocked"), "create", "blocked", None, 0),
        (
            _interactions(400, "invalid_request", "Your prompt may violate"),
            "create",
            "blocked",
            None,
            0,
        ),
        (_interactions(404, "not_found"), "poll", "not_found", None, 0),
        (_interactions(404, "model_not_found"), "create", "config", RETIRED_MODEL, 0),
        (_interactions(500, "api_error"), "create", "unavailable", UNKNOWN_OUTCOME, 1),
        (_interactions(503, "service_unavailable"), "poll", "unavailable", None, 0),
        (
            interactions_errors.APITimeoutError(httpx2.Request("POST", "http://x")),
            "create",
            "timeout",
            UNKNOWN_OUTCOME,
            1,
        ),
        (
            interactions_errors.APIConnectionError(request=httpx2.Request("POST", "http://x")),
            "create",
            "unavailable",
            UNKNOWN_OUTCOME,
            1,
        ),
        (TimeoutError(), "plan", "timeout", None, 0),
    ],
)
def test_both_error_families_map_to_one_code_and_sentence(exc, step, code, sentence, unknown):
    error = from_exception(exc, step)
    assert error.code == code
    assert error.public_message == (sentence or SENTENCES[code])
    assert error.outcome_unknown is bool(unknown)
    assert "nope" not in error.public_message and "Billing off" not in error.public_message


def test_an_interaction_that_ends_without_a_clip_is_named():
    assert failed_interaction("failed", [{"code": "safety", "message": "x"}]).code == "blocked"
    assert failed_interaction("failed", [{"code": "internal", "message": "x"}]).code == (
        "render_failed"
    )
    assert failed_interaction("cancelled", None).code == "render_failed"
    budget = failed_interaction("budget_exceeded", None)
    assert (budget.code, budget.public_message) == ("render_failed", BUDGET_EXCEEDED)


# --------------------------------------------------------------------------- a full mint


async def test_a_full_mint_then_a_child_that_starts_from_the_parents_last_frame(
    tmp_path, settings_for, gemini: FakeGemini
):
    gemini.add_key(GOOD_GEMINI_KEY)
    service = await paid_service(settings_for())
    try:
        assert service.estimated_cost("default") == pytest.approx(0.80)  # 8 s x $0.10 (720p)
        assert (await mint_with(service, "", GOOD_GEMINI_KEY)).status is Status.READY
        assert (await mint_with(service, "1", GOOD_GEMINI_KEY)).status is Status.READY
        root, child = await row(service, ""), await row(service, "1")
        stored_frame = await service.store.open_bytes(root.poster_key)
        parent_clip = tmp_path / "parent.mp4"
        parent_clip.write_bytes(await service.store.open_bytes(root.asset_key))
        view = await service.view("default", "1")
        renders = await render_rows(service)
    finally:
        await service.close()

    root_create, child_create = gemini.accepted_creates
    assert root_create.image is None
    assert root_create.body["generation_config"] == {"video_config": {"task": "text_to_video"}}
    assert root_create.prompt == root.video_prompt
    assert child_create.image == stored_frame, "the child starts from the parent's last frame"
    assert child_create.image == extract_last_frame_png(parent_clip)  # decoded again, here
    with Image.open(io.BytesIO(child_create.image)) as frame:
        assert frame.size == (320, 180)  # the fake's clip, as it came back
    assert child_create.body["generation_config"] == {"video_config": {"task": "image_to_video"}}
    assert child_create.prompt == child.video_prompt
    assert child_create.body["response_format"] == {
        "type": "video",
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "duration": "8s",
        "delivery": "uri",
    }
    assert child_create.body["background"] is True and child_create.body["store"] is True
    assert root.provider_job_id == root_create.interaction_id
    assert child.provider_job_id == child_create.interaction_id
    assert view.video_bytes == len(gemini.clip)
    assert [r.outcome for r in renders] == ["ready", "ready"]
    assert all(r.estimated_cost_usd == pytest.approx(0.80) for r in renders)

    plan_call, summary_call = gemini.generates[:2]
    assert plan_call.model == "gemini-3-flash"
    assert plan_call.schema["properties"]["choices"]["minItems"] == 3
    assert plan_call.body["generationConfig"]["responseMimeType"] == "application/json"
    assert "planner" in plan_call.system_instruction
    assert summary_call.schema is None and "bullet" in summary_call.system_instruction
    assert root.state_summary.startswith("- ") and len(root.choices) == 3
    assert gemini.keys_seen() == {GOOD_GEMINI_KEY}
    assert {r.path.split("/")[1] for r in gemini.requests} == {"v1beta"}


@pytest.mark.parametrize("delivery", ["uri", "inline"])
async def test_both_deliveries_end_ready_with_the_clip_stored(
    settings_for, gemini: FakeGemini, delivery
):
    gemini.add_key(GOOD_GEMINI_KEY, delivery=delivery, file_polls_to_active=2)
    service = await paid_service(settings_for())
    try:
        assert (await mint_with(service, "", GOOD_GEMINI_KEY)).status is Status.READY
        scene = await row(service, "")
        stored = await service.store.open_bytes(scene.asset_key)
    finally:
        await service.close()
    assert stored == gemini.clip
    downloads = [r for r in gemini.requests if r.path.endswith(":download")]
    assert len(downloads) == (1 if delivery == "uri" else 0)
    file_gets = [r for r in gemini.requests if "/files/" in r.path and "download" not in r.path]
    assert len(file_gets) == (3 if delivery == "uri" else 0), "looked up until ACTIVE"


async def test_a_blank_summary_model_skips_the_chronicler(settings_for, gemini: FakeGemini):
    gemini.add_key(GOOD_GEMINI_KEY)
    service = await paid_service(settings_for(summary_model=None))
    try:
        assert (await mint_with(service, "", GOOD_GEMINI_KEY)).status is Status.READY
        scene = await row(service, "")
    finally:
        await service.close()
    assert len(gemini.generates) == 1, "the planner only"
    assert scene.state_summary is None


async def test_a_world_without_sound_asks_for_silence_in_the_prompt(
    settings_for, gemini: FakeGemini
):
    gemini.add_key(GOOD_GEMINI_KEY)
    service = await paid_service(settings_for(generate_audio=False, video_size="720x1280"))
    try:
        assert (await mint_with(service, "", GOOD_GEMINI_KEY)).status is Status.READY
        scene = await row(service, "")
    finally:
        await service.close()
    [create] = gemini.accepted_creates
    assert create.prompt.startswith(scene.video_prompt) and create.prompt.endswith("silent.")
    assert create.body["response_format"]["aspect_ratio"] == "9:16"


# --------------------------------------------------------------------------- failures

RAW_TEXTS = ("Billing is not enabled", "does not have permission", "exceeded your current")


@pytest.mark.parametrize(
    ("behaviour", "status", "code", "detail"),
    [
        ({"create_error": "billing"}, Status.PENDING, "no_video_access", NO_BILLING),
        ({"create_error": "bad_key"}, Status.PENDING, "invalid_key", None),
        ({"create_error": "permission"}, Status.PENDING, "permission", None),
        ({"create_error": "quota"}, Status.PENDING, "quota", None),
        ({"create_error": "rate_limit", "retry_after": 0}, Status.PENDING, "rate_limited", None),
        ({"create_error": "safety"}, Status.FAILED, "blocked", None),
        ({"outcome": "failed"}, Status.FAILED, "blocked", None),
        (
            {"outcome": "failed", "failure_code": "internal", "error_text": "Upstream crashed"},
            Status.FAILED,
            "render_failed",
            None,
        ),
        ({"outcome": "no_video"}, Status.FAILED, "blocked", None),
        ({"outcome": "cancelled"}, Status.FAILED, "render_failed", None),
        ({"outcome": "incomplete"}, Status.FAILED, "render_failed", None),
        ({"outcome": "budget_exceeded"}, Status.FAILED, "render_failed", BUDGET_EXCEEDED),
    ],
)
async def test_each_failure_ends_in_its_state_with_a_plain_sentence(
    settings_for, gemini: FakeGemini, behaviour, status, code, detail
):
    gemini.add_key(GOOD_GEMINI_KEY, **behaviour)
    service = await paid_service(settings_for())
    try:
        final = await mint_with(service, "", GOOD_GEMINI_KEY)
        scene = await row(service, "")
    finally:
        await service.close()
    assert final.status is status
    assert (final.failure_code, final.failure_detail) == (code, detail or SENTENCES[code])
    assert not any(raw in final.failure_detail for raw in RAW_TEXTS)
    assert len(gemini.creates) == 1, "a create is never re-sent"
    refused = "create_error" in behaviour
    assert len(gemini.accepted_creates) == (0 if refused else 1)
    assert scene.status == status.value
    if status is Status.FAILED:
        assert (scene.failure_code, scene.failure_detail) == (code, final.failure_detail)
        assert scene.provider_job_id is None, "a dead interaction is forgotten for a retry"
    else:
        assert scene.claim_token is None and scene.render_attempt is None


async def test_interaction_errors_in_googles_envelope_map_the_same(
    tmp_path, clip_bytes, monkeypatch
):
    """Google may answer the Interactions API in its usual envelope (int code + status)."""
    clear_google_env(monkeypatch)
    expected = {
        "billing": ("no_video_access", Status.PENDING),
        "bad_key": ("invalid_key", Status.PENDING),
        "quota": ("quota", Status.PENDING),
        "safety": ("blocked", Status.FAILED),
    }
    async with FakeGemini(clip_bytes, interaction_errors="google") as fake:
        service = await paid_service(paid_settings(tmp_path, "gemini", fake.base_url))
        seen = {}
        try:
            fake.add_key(GOOD_GEMINI_KEY)
            assert (await mint_with(service, "", GOOD_GEMINI_KEY)).status is Status.READY
            for name in expected:  # the same child, refused for another reason each time
                key = f"sk-test-gemini-{name}-c0ffee"
                fake.add_key(key, create_error=name)
                final = await mint_with(service, "0", key)
                seen[name] = (final.failure_code, final.status)
        finally:
            await service.close()
    assert seen == expected
    assert len(fake.accepted_creates) == 1


@pytest.mark.parametrize(
    "behaviour",
    [
        {"poll_errors": 3},
        {"download_errors": 2},
        {"file_polls_to_active": 3, "polls_to_complete": 4},
    ],
    ids=["poll-500s", "download-500s", "slow-file"],
)
async def test_transient_trouble_is_retried_and_ends_ready_with_one_paid_create(
    settings_for, gemini: FakeGemini, behaviour
):
    gemini.add_key(GOOD_GEMINI_KEY, **behaviour)
    service = await paid_service(settings_for())
    events = []
    try:
        await service.claim("default", "", Credentials(GOOD_GEMINI_KEY), "member")
        async for event in service.subscribe("default", ""):
            events.append(event)
        stored = await service.store.open_bytes((await row(service, "")).asset_key)
    finally:
        await service.close()
    assert events[-1].status is Status.READY
    assert stored == gemini.clip
    assert len(gemini.creates) == len(gemini.accepted_creates) == 1
    waits = [e for e in events if e.elapsed_seconds is not None]
    assert waits, "rendering shows Gemini's status and the time taken, not a percentage"
    assert {e.provider_status for e in waits} <= {"in_progress", "queued", "completed"}
    assert "in_progress" in {e.provider_status for e in waits}
    assert all(e.typical_seconds == 90 for e in waits)
    downloads = [r for r in gemini.requests if r.path.endswith(":download")]
    assert len(downloads) == 1 + behaviour.get("download_errors", 0)


@pytest.mark.parametrize("error", ["server", "server_after_create"])
async def test_a_create_answered_500_is_never_sent_again_on_its_own(
    settings_for, gemini: FakeGemini, error
):
    """Whether or not Gemini made the interaction, a lost answer is an unknown outcome: the
    branch fails, the next claim waits out the create window and asks for confirmation."""
    gemini.add_key(GOOD_GEMINI_KEY, create_error=error, create_fail_times=1)
    service = await paid_service(settings_for({"create_timeout_seconds": 0.2}))
    try:
        first = await mint_with(service, "", GOOD_GEMINI_KEY)
        assert (first.status, first.failure_code) == (Status.FAILED, "unavailable")
        assert first.failure_detail == UNKNOWN_OUTCOME
        second = await mint_with(service, "", GOOD_GEMINI_KEY)
        scene = await row(service, "")
        assert (second.status, scene.failure_code) == (Status.FAILED, UNCERTAIN)
        assert len(gemini.creates) == 1, "the next claim did not pay again on its own"
        if error == "server":  # nothing was made: a confirmed claim pays once, in all
            await service.claim(
                "default", "", Credentials(GOOD_GEMINI_KEY), "m", confirm_uncertain=True
            )
            async for _ in service.subscribe("default", ""):
                pass
            scene = await row(service, "")
    finally:
        await service.close()
    assert len(gemini.accepted_creates) == 1
    if error == "server":
        assert scene.status == "ready" and len(gemini.creates) == 2


async def test_a_create_that_times_out_is_an_unknown_outcome_not_sent_again(
    settings_for, gemini: FakeGemini
):
    gemini.add_key(GOOD_GEMINI_KEY, create_delay=1.0)
    service = await paid_service(settings_for({"create_timeout_seconds": 0.3}))
    try:
        final = await mint_with(service, "", GOOD_GEMINI_KEY)
        scene = await row(service, "")
    finally:
        await service.close()
    assert (final.status, final.failure_code) == (Status.FAILED, "timeout")
    assert final.failure_detail == UNKNOWN_OUTCOME
    assert len(gemini.creates) == len(gemini.accepted_creates) == 1, "made, answer lost"
    assert scene.render_attempt is not None, "the intent stays for the next claim to reconcile"


async def test_invalid_planner_output_is_asked_for_once_more_then_fails_without_rendering(
    settings_for, gemini: FakeGemini
):
    gemini.add_key(GOOD_GEMINI_KEY, chat_contents=["not json at all"])
    service = await paid_service(settings_for(summary_model=None))
    try:
        assert (await mint_with(service, "", GOOD_GEMINI_KEY)).status is Status.READY
        gemini.add_key(
            GOOD_GEMINI_KEY,
            chat_contents=[
                '{"title": "x"}',
                '{"title":"T","narration":"n","video_prompt":"v",'
                '"choices":[{"label":"a","short_label":"a"}]}',
            ],
        )
        assert (await mint_with(service, "0", GOOD_GEMINI_KEY)).status is Status.FAILED
        child = await row(service, "0")
    finally:
        await service.close()
    assert (child.failure_code, child.failure_detail) == ("bad_output", SENTENCES["bad_output"])
    assert len(gemini.accepted_creates) == 1, "no render for a plan that never came"
    assert len(gemini.generates) == 4


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [
        ({"chat_truncated": True}, "bad_output"),
        ({"chat_blocked": "response"}, "blocked"),
        ({"chat_blocked": "prompt"}, "blocked"),
        ({"chat_error": "server"}, "unavailable"),
    ],
)
async def test_a_planner_that_cannot_answer_fails_the_branch_before_anything_is_paid(
    settings_for, gemini: FakeGemini, behaviour, code
):
    gemini.add_key(GOOD_GEMINI_KEY, **behaviour)
    service = await paid_service(settings_for())
    try:
        final = await mint_with(service, "", GOOD_GEMINI_KEY)
    finally:
        await service.close()
    assert (final.status, final.failure_code) == (Status.FAILED, code)
    assert gemini.creates == []
    assert len(gemini.generates) == (1 if code == "blocked" else 2)


async def test_a_planner_hiccup_is_asked_once_more(settings_for, gemini: FakeGemini):
    gemini.add_key(GOOD_GEMINI_KEY, chat_error="unavailable", chat_fail_times=1)
    service = await paid_service(settings_for(summary_model=None))
    try:
        assert (await mint_with(service, "", GOOD_GEMINI_KEY)).status is Status.READY
    finally:
        await service.close()
    assert [g.status for g in gemini.generates] == [503, 200]


# --------------------------------------------------------------------------- the key check


async def test_the_key_check_refuses_keys_that_cannot_pay_and_claims_nothing(
    settings_for, gemini: FakeGemini
):
    gemini.add_key(GOOD_GEMINI_KEY)
    behaviours = {
        "billing": "no_video_access",
        "permission": "permission",
        "quota": "quota",
        "server": "unavailable",
    }
    for name in behaviours:
        gemini.add_key(f"sk-test-gemini-{name}", key_error=name)
    service = await paid_service(settings_for())
    try:
        assert (await service.validate_key("default", Credentials(GOOD_GEMINI_KEY))) is not None
        refusals = {}
        for key in ["sk-test-gemini-unknown"] + [f"sk-test-gemini-{n}" for n in behaviours]:
            with pytest.raises(ProviderError) as caught:
                await service.validate_key("default", Credentials(key))
            refusals[key.rsplit("-", 1)[1]] = caught.value
        scene = await row(service, "")
    finally:
        await service.close()
    assert refusals["unknown"].code == "invalid_key"
    for name, code in behaviours.items():
        assert refusals[name].code == code
    assert refusals["billing"].public_message == NO_BILLING
    assert len({e.public_message for e in refusals.values()}) == len(refusals)
    assert scene is None and gemini.creates == [] and gemini.generates == []
    checks = [r for r in gemini.requests if "/models/" in r.path]
    assert {r.path for r in checks} == {"/v1beta/models/gemini-3-flash"}, "the planner model"


async def test_settings_omni_cannot_make_are_refused_before_anything_is_spent(
    settings_for, gemini: FakeGemini
):
    gemini.add_key(GOOD_GEMINI_KEY)
    service = await paid_service(settings_for(video_seconds=12))
    try:
        with pytest.raises(ProviderError) as caught:
            await service.validate_key("default", Credentials(GOOD_GEMINI_KEY))
        assert caught.value.code == "config"
        final = await mint_with(service, "", GOOD_GEMINI_KEY)
    finally:
        await service.close()
    assert (final.status, final.failure_code) == (Status.FAILED, "config")
    assert gemini.creates == []


async def test_the_key_is_only_ever_in_the_api_key_header(
    tmp_path, settings_for, gemini: FakeGemini, caplog
):
    install_redaction()
    key = "AIzaSyTest-gemini-RECOGNISABLE-4d5e6f7a8b9c"
    gemini.add_key(key, polls_to_complete=3)
    with caplog.at_level(logging.DEBUG):
        service = await paid_service(settings_for())
        try:
            await service.validate_key("default", Credentials(key))
            assert (await mint_with(service, "", key)).status is Status.READY
            assert (await mint_with(service, "2", key)).status is Status.READY
        finally:
            await service.close()
    assert len(caplog.records) > 10
    assert_key_only_in_header(tmp_path, caplog.text, gemini.requests, key)
    bodies = [base64.b64encode(key.encode()).decode(), key]
    assert not [c for c in gemini.creates if any(b in str(c.body) for b in bodies)]


# --------------------------------------------------------------------------- shared-world check


async def test_check_says_what_it_could_not_verify_without_a_host_key(gemini: FakeGemini):
    provider = GeminiProvider(
        _world(planner_model="gemini-3-flash", summary_model=None),
        ProviderSettings(gemini_base_url=gemini.base_url),
    )
    try:
        lines = await provider.check()
    finally:
        await provider.close()
    assert lines[0][0] == "ok" and "about $0.80 each" in lines[0][1]
    assert lines[1][0] == "warn" and "GEMINI_API_KEY_FOR_CHECK" in lines[1][1]
    assert gemini.requests == []


async def test_check_looks_the_models_up_with_a_host_key(gemini: FakeGemini):
    host_key = "sk-test-gemini-host-1f2e"
    gemini.add_key(host_key)
    settings = ProviderSettings(gemini_base_url=gemini.base_url, gemini_check_api_key=host_key)
    good = GeminiProvider(_world(planner_model="gemini-3-flash", summary_model=None), settings)
    retired = GeminiProvider(
        _world(planner_model="gemini-3-flash", summary_model="gemini-2-old", video_seconds=12),
        settings,
    )
    try:
        await _check_lines(gemini, host_key, good, retired)
    finally:
        await good.close()
        await retired.close()


async def _check_lines(gemini, host_key, good, retired):
    assert await good.check() == [
        (
            "ok",
            "w: gemini-omni-1.2-flash makes 8 s 720p 16:9 clips with sound from the parent's "
            "last frame, about $0.80 each ($0.10/s at 720p x 1 for 720p)",
        ),
        ("ok", "w: Gemini model gemini-3-flash answers"),
        ("ok", "w: Gemini model gemini-omni-1.2-flash answers"),
    ]
    levels = await retired.check()
    assert [level for level, _ in levels] == ["fail", "ok", "fail", "ok"]
    assert "12 s is not a duration it makes" in levels[0][1]
    assert levels[2][1] == "w: Gemini does not know the model 'gemini-2-old'"
    gemini.revoke_key(host_key)
    refused = await good.check()
    assert refused[-1] == (
        "warn",
        "w: GEMINI_API_KEY_FOR_CHECK was refused (invalid_key); models were not checked",
    )


def test_gemini_settings_come_from_the_file_and_the_environment(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[providers]\ngemini_api_version = "v1"\n')
    env = {
        "WORLD_PROVIDER": "gemini",
        "GEMINI_BASE_URL": "http://127.0.0.1:9",
        "GEMINI_API_KEY_FOR_CHECK": "sk-test-gemini-hostcheck-99",
    }
    settings = load_settings(config, env=env)
    assert settings.providers.gemini_api_version == "v1"
    assert settings.providers.gemini_check_api_key == "sk-test-gemini-hostcheck-99"
    assert "hostcheck" not in repr(settings)
    assert (
        load_settings(
            config, env=env | {"GEMINI_API_VERSION": "v1beta"}
        ).providers.gemini_api_version
        == "v1beta"
    )
    config.write_text('[providers]\ngemini_check_api_key = "sk-x"\n')
    with pytest.raises(SettingsError, match="set GEMINI_API_KEY_FOR_CHECK"):
        load_settings(config, env={})
    with pytest.raises(SettingsError, match="GEMINI_BASE_URL"):
        load_settings(
            None, env={"GEMINI_BASE_URL": "generativelanguage.googleapis.com"}, read_file=False
        )
