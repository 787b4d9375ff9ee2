"""The OpenRouter provider through the real WorldService, openai SDK and aiohttp, against a fake.

The fake (tests/fakes/openrouter_server.py) validates every body it receives against its
catalogue and records every request, so each test can count the paid creates it saw.
"""

from __future__ import annotations

import logging

import pytest

from tests.fakes.openrouter_server import FakeOpenRouter
from tests.fixtures.providers import (
    GOOD_OR_KEY,
    assert_key_only_in_authorization,
    mint_with,
    paid_service,
    paid_settings,
)
from tests.world.helpers import render_rows, row
from world.logsafe import install_redaction
from world.providers.base import ProviderError
from world.providers.errors import SENTENCES, UNKNOWN_OUTCOME
from world.types import Credentials, Status


@pytest.fixture
def settings_for(tmp_path, openrouter: FakeOpenRouter):
    def make(**world):
        return paid_settings(tmp_path, "openrouter", openrouter.base_url, **world)

    return make


async def test_a_full_mint_plans_renders_downloads_summarises_and_records_the_cost(
    settings_for, openrouter: FakeOpenRouter
):
    openrouter.add_key(GOOD_OR_KEY, cost=0.93)
    service = await paid_service(settings_for())
    try:
        assert service.estimated_cost("default") == pytest.approx(0.96)  # 8 s x $0.12 (audio)
        final = await mint_with(service, "", GOOD_OR_KEY)
        assert final.status is Status.READY
        scene = await row(service, "")
        renders = await render_rows(service)
        view = await service.view("default", "")
    finally:
        await service.close()

    assert [c.body["model"] for c in openrouter.accepted_creates] == ["google/veo-3.1-fast"]
    body = openrouter.accepted_creates[0].body
    assert (body["duration"], body["resolution"], body["aspect_ratio"]) == (8, "720p", "16:9")
    assert "frame_images" not in body  # the opening scene has no parent frame
    assert body["prompt"] == scene.video_prompt
    plan_call, summary_call = openrouter.chats
    assert plan_call.provider == {"require_parameters": True}
    assert plan_call.body["response_format"]["type"] == "json_schema"
    assert (
        plan_call.body["response_format"]["json_schema"]["schema"]["properties"]["choices"][
            "minItems"
        ]
        == 3
    )
    assert summary_call.body["model"] == "openai/gpt-5-mini"
    assert scene.title and len(scene.choices) == 3 and scene.state_summary.startswith("- ")
    assert scene.provider_job_id == openrouter.accepted_creates[0].job_id
    assert view.video_bytes and view.video_bytes > 1000
    assert [(r.outcome, r.actual_cost_usd) for r in renders] == [("ready", pytest.approx(0.93))]
    assert renders[0].estimated_cost_usd == pytest.approx(0.96)
    assert {r.openrouter_title for r in openrouter.requests if r.key} == {"Shared World"}


async def test_a_child_render_starts_from_its_parents_last_frame(
    settings_for, openrouter: FakeOpenRouter
):
    openrouter.add_key(GOOD_OR_KEY)
    service = await paid_service(settings_for())
    try:
        assert (await mint_with(service, "", GOOD_OR_KEY)).status is Status.READY
        assert (await mint_with(service, "2", GOOD_OR_KEY)).status is Status.READY
        parent = await row(service, "")
        stored_frame = await service.store.open_bytes(parent.poster_key)
    finally:
        await service.close()
    root_create, child_create = openrouter.accepted_creates
    assert root_create.first_frame is None
    frame = child_create.body["frame_images"][0]
    assert frame["frame_type"] == "first_frame"
    assert frame["image_url"]["url"].startswith("data:image/png;base64,")
    assert child_create.first_frame == stored_frame


async def test_a_model_without_frame_support_gets_no_frame(tmp_path, clip_bytes):
    async with FakeOpenRouter(clip=clip_bytes) as fake:
        fake.add_key(GOOD_OR_KEY)
        settings = paid_settings(
            tmp_path, "openrouter", fake.base_url, video_seconds=5, video_model="test/text-only"
        )
        service = await paid_service(settings)
        try:
            assert service.estimated_cost("default") == pytest.approx(0.25)  # 5 cents x 5 s
            await mint_with(service, "", GOOD_OR_KEY)
            assert (await mint_with(service, "0", GOOD_OR_KEY)).status is Status.READY
        finally:
            await service.close()
        assert [("frame_images" in c.body) for c in fake.accepted_creates] == [False, False]


# --------------------------------------------------------------------------- failures

RAW_TEXTS = ("User not found", "Insufficient credits", "Content policy", "flagged", "Upstream")


@pytest.mark.parametrize(
    ("behaviour", "status", "code", "posts", "accepted"),
    [
        ({"create_status": 401}, Status.PENDING, "invalid_key", 1, 0),
        ({"create_status": 402}, Status.PENDING, "quota", 1, 0),
        ({"create_status": 403}, Status.FAILED, "blocked", 1, 0),
        ({"create_status": 400}, Status.FAILED, "config", 1, 0),
        ({"create_status": 503}, Status.FAILED, "unavailable", 1, 0),
        ({"create_status": 429, "retry_after": 0}, Status.PENDING, "rate_limited", 3, 0),
        ({"outcome": "failed"}, Status.FAILED, "blocked", 1, 1),
        (
            {"outcome": "failed", "error_text": "Upstream crashed"},
            Status.FAILED,
            "render_failed",
            1,
            1,
        ),
        ({"outcome": "expired"}, Status.FAILED, "expired", 1, 1),
        ({"outcome": "cancelled"}, Status.FAILED, "render_failed", 1, 1),
    ],
)
async def test_each_failure_ends_in_its_state_with_a_plain_sentence(
    settings_for, openrouter: FakeOpenRouter, behaviour, status, code, posts, accepted
):
    openrouter.add_key(GOOD_OR_KEY, **behaviour)
    service = await paid_service(settings_for())
    try:
        await mint_with(service, "", GOOD_OR_KEY)
        scene = await row(service, "")
    finally:
        await service.close()
    assert scene.status == status.value
    assert len(openrouter.creates) == posts, "a create is never re-sent (429 excepted)"
    assert len(openrouter.accepted_creates) == accepted
    if status is Status.FAILED:
        assert scene.failure_code == code
        assert scene.failure_detail in {SENTENCES[code], UNKNOWN_OUTCOME}
        assert not any(raw in scene.failure_detail for raw in RAW_TEXTS)
    else:
        assert scene.failure_code is None and scene.claim_token is None
    if code in {"blocked", "render_failed", "expired"}:
        assert scene.provider_job_id is None, "a dead job is forgotten so a retry can start anew"


@pytest.mark.parametrize(
    "behaviour",
    [
        {"create_status": 429, "create_fail_times": 1, "retry_after": 0},
        {"poll_errors": 2},
        {"download_delay": 0.01},
        {"status_detail": "generating", "polls_to_complete": 4},
    ],
    ids=["429-then-created", "500-then-poll-ok", "slow-download", "status-detail"],
)
async def test_transient_trouble_still_ends_ready_with_one_paid_create(
    settings_for, openrouter: FakeOpenRouter, behaviour
):
    openrouter.add_key(GOOD_OR_KEY, **behaviour)
    service = await paid_service(settings_for())
    events = []
    try:
        await service.claim("default", "", Credentials(GOOD_OR_KEY), "member")
        async for event in service.subscribe("default", ""):
            events.append(event)
    finally:
        await service.close()
    assert events[-1].status is Status.READY
    assert len(openrouter.accepted_creates) == 1
    waits = [e for e in events if e.elapsed_seconds is not None]
    assert waits, "rendering shows its status and elapsed time"
    assert all(e.typical_seconds == 90 for e in waits)
    if "status_detail" in behaviour:
        assert "generating" in {e.provider_status for e in waits}


async def test_a_create_that_times_out_is_not_sent_again(tmp_path, openrouter):
    openrouter.add_key(GOOD_OR_KEY, create_delay=1.5)
    settings = paid_settings(
        tmp_path, "openrouter", openrouter.base_url, providers={"create_timeout_seconds": 0.3}
    )
    service = await paid_service(settings)
    try:
        await mint_with(service, "", GOOD_OR_KEY)
        scene = await row(service, "")
    finally:
        await service.close()
    assert len(openrouter.creates) == 1
    assert (scene.status, scene.failure_code) == ("failed", "timeout")
    assert scene.failure_detail == UNKNOWN_OUTCOME


async def test_invalid_planner_output_is_asked_for_once_more_then_fails_without_rendering(
    settings_for, openrouter
):
    openrouter.add_key(GOOD_OR_KEY, chat_contents=["not json at all"])
    service = await paid_service(settings_for())
    try:
        assert (await mint_with(service, "", GOOD_OR_KEY)).status is Status.READY
        openrouter.add_key(
            GOOD_OR_KEY,
            chat_contents=[
                '{"title": "x"}',
                '{"title":"T","narration":"n","video_prompt":"v",'
                '"choices":[{"label":"a","short_label":"a"}]}',
            ],
        )
        assert (await mint_with(service, "0", GOOD_OR_KEY)).status is Status.FAILED
        child = await row(service, "0")
    finally:
        await service.close()
    assert (child.failure_code, child.failure_detail) == ("bad_output", SENTENCES["bad_output"])
    assert len(openrouter.accepted_creates) == 1, "no render for a plan that never came"
    assert len([c for c in openrouter.chats if "response_format" in c.body]) == 4


# --------------------------------------------------------------------------- the key check


async def test_the_key_check_reports_credit_and_refuses_keys_that_cannot_pay(
    settings_for, openrouter
):
    openrouter.add_key(GOOD_OR_KEY, limit_remaining=4.2)
    openrouter.add_key("sk-test-or-broke", limit_remaining=0.01)
    openrouter.add_key("sk-test-or-free", is_free_tier=True)
    openrouter.add_key("sk-test-or-unlimited", limit_remaining=None)
    service = await paid_service(settings_for())
    try:
        check = await service.validate_key("default", Credentials(GOOD_OR_KEY))
        assert check.remaining_usd == pytest.approx(4.2)
        unlimited = await service.validate_key("default", Credentials("sk-test-or-unlimited"))
        assert unlimited.remaining_usd is None
        refusals = {}
        for key in ("sk-test-or-unknown", "sk-test-or-broke", "sk-test-or-free"):
            with pytest.raises(ProviderError) as caught:
                await service.validate_key("default", Credentials(key))
            refusals[key] = caught.value
        scene = await row(service, "")
    finally:
        await service.close()
    assert refusals["sk-test-or-unknown"].code == "invalid_key"
    assert refusals["sk-test-or-broke"].code == "quota"
    assert "$0.01" in refusals["sk-test-or-broke"].public_message
    assert "$0.96" in refusals["sk-test-or-broke"].public_message
    assert refusals["sk-test-or-free"].code == "no_video_access"
    assert len({e.public_message for e in refusals.values()}) == 3, "one sentence each"
    assert scene is None and openrouter.creates == [], "checking a key claims and spends nothing"


async def test_settings_the_model_cannot_make_are_refused_before_anything_is_spent(
    settings_for, openrouter
):
    openrouter.add_key(GOOD_OR_KEY)
    service = await paid_service(settings_for(video_seconds=10))
    try:
        with pytest.raises(ProviderError) as caught:
            await service.validate_key("default", Credentials(GOOD_OR_KEY))
        assert caught.value.code == "config"
        await mint_with(service, "", GOOD_OR_KEY)
        scene = await row(service, "")
    finally:
        await service.close()
    assert (scene.status, scene.failure_code) == ("failed", "config")
    assert openrouter.creates == []


async def test_the_key_is_only_ever_in_authorization_headers(
    tmp_path, settings_for, openrouter, caplog
):
    install_redaction()
    key = "sk-test-or-RECOGNISABLE-4d5e6f"
    openrouter.add_key(key)
    with caplog.at_level(logging.DEBUG):
        service = await paid_service(settings_for())
        try:
            await service.validate_key("default", Credentials(key))
            assert (await mint_with(service, "", key)).status is Status.READY
            assert (await mint_with(service, "1", key)).status is Status.READY
        finally:
            await service.close()
    assert len(caplog.records) > 10
    assert_key_only_in_authorization(tmp_path, caplog.text, openrouter.requests, key)


async def test_the_one_create_per_branch_ledger_catches_a_branch_rendered_twice(
    settings_for, openrouter
):
    """The suite-wide check (one paid create per branch) is real: a retry that reuses the
    stored plan would be caught by it, so this test empties the ledger's view on purpose."""
    from tests.fixtures.providers import assert_one_paid_create_per_branch

    openrouter.add_key(GOOD_OR_KEY, outcome="expired")
    service = await paid_service(settings_for())
    try:
        await mint_with(service, "", GOOD_OR_KEY)
        openrouter.add_key(GOOD_OR_KEY)
        await service.retry("default", "", Credentials(GOOD_OR_KEY), "member-2")
        async for _ in service.subscribe("default", ""):
            pass
        scene = await row(service, "")
    finally:
        await service.close()
    assert scene.status == "ready"
    prompts = [c.body["prompt"] for c in openrouter.accepted_creates]
    assert len(prompts) == 2 and prompts[0] == prompts[1], "the retry re-rendered the same plan"
    with pytest.raises(AssertionError, match="paid for twice"):
        assert_one_paid_create_per_branch(prompts)
    openrouter.creates.clear()  # two paid renders here are the point, not a defect
