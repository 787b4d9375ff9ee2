"""The OpenAI-compatible provider through the real openai SDK, against a fake checked by the spec.

The fake validates every create against OpenAI's own OpenAPI document (multipart fields,
allowed `seconds`/`size`, an `input_reference` of exactly the video size).
"""

from __future__ import annotations

import logging

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.fixtures.providers import (
    GOOD_OPENAI_KEY,
    assert_key_only_in_authorization,
    mint_with,
    paid_service,
    paid_settings,
)
from tests.world.helpers import render_rows, row
from world.logsafe import install_redaction
from world.providers.base import ProviderError
from world.providers.errors import SENTENCES, UNKNOWN_OUTCOME
from world.providers.openai import reference_png
from world.types import Credentials, Status


@pytest.fixture
def settings_for(tmp_path, openai_fake: FakeOpenAI):
    def make(**world):
        return paid_settings(tmp_path, "openai", openai_fake.base_url, **world)

    return make


async def test_a_full_mint_and_a_child_that_starts_from_the_resized_parent_frame(
    settings_for, openai_fake: FakeOpenAI
):
    openai_fake.add_key(GOOD_OPENAI_KEY)
    service = await paid_service(settings_for())
    try:
        assert service.estimated_cost("default") == pytest.approx(0.8)  # settings: no price list
        assert (await mint_with(service, "", GOOD_OPENAI_KEY)).status is Status.READY
        assert (await mint_with(service, "1", GOOD_OPENAI_KEY)).status is Status.READY
        parent = await row(service, "")
        child = await row(service, "1")
        stored_frame = await service.store.open_bytes(parent.poster_key)
        renders = await render_rows(service)
    finally:
        await service.close()
    root_create, child_create = openai_fake.accepted_creates
    assert root_create.fields == {
        "prompt": parent.video_prompt,
        "model": "sora-2",
        "seconds": "8",
        "size": "1280x720",
    }
    assert root_create.input_reference is None
    assert child_create.input_reference == reference_png(stored_frame, "1280x720")
    assert child.provider_job_id == child_create.video_id
    assert child.title and child.state_summary
    assert [r.outcome for r in renders] == ["ready", "ready"]
    assert len(openai_fake.creates) == 2


@pytest.mark.parametrize(
    ("behaviour", "status", "code", "posts"),
    [
        ({"create_status": 401}, Status.PENDING, "invalid_key", 1),
        ({"create_status": 429, "error_code": "insufficient_quota"}, Status.PENDING, "quota", 1),
        ({"create_status": 403}, Status.PENDING, "permission", 1),
        ({"create_status": 400, "error_code": "moderation_blocked"}, Status.FAILED, "blocked", 1),
        ({"create_status": 503}, Status.FAILED, "unavailable", 1),
        ({"create_status": 500}, Status.FAILED, "unavailable", 1),
        ({"outcome": "failed"}, Status.FAILED, "blocked", 1),
        (
            {"outcome": "failed", "failure_code": "internal_error"},
            Status.FAILED,
            "render_failed",
            1,
        ),
    ],
)
async def test_each_failure_ends_in_its_state_with_a_plain_sentence(
    settings_for, openai_fake: FakeOpenAI, behaviour, status, code, posts
):
    openai_fake.add_key(GOOD_OPENAI_KEY, **behaviour)
    service = await paid_service(settings_for())
    try:
        await mint_with(service, "", GOOD_OPENAI_KEY)
        scene = await row(service, "")
    finally:
        await service.close()
    assert scene.status == status.value
    assert len(openai_fake.creates) == posts, "a create is never re-sent"
    if status is Status.FAILED:
        assert scene.failure_code == code
        assert scene.failure_detail in {SENTENCES[code], UNKNOWN_OUTCOME}
        assert "moderation system" not in scene.failure_detail
    else:
        assert scene.failure_code is None and scene.claim_token is None


@pytest.mark.parametrize(
    "behaviour",
    [
        {"create_status": 429, "create_fail_times": 1, "retry_after": 0},
        {"poll_errors": 2},
        {"download_delay": 0.01},
    ],
    ids=["rate-limited-once", "poll-500s", "slow-download"],
)
async def test_transient_trouble_still_ends_ready_with_one_paid_create(
    settings_for, openai_fake: FakeOpenAI, behaviour
):
    openai_fake.add_key(GOOD_OPENAI_KEY, **behaviour)
    service = await paid_service(settings_for())
    try:
        assert (await mint_with(service, "", GOOD_OPENAI_KEY)).status is Status.READY
    finally:
        await service.close()
    assert len(openai_fake.accepted_creates) == 1


async def test_the_key_check_lists_models_and_spends_nothing(settings_for, openai_fake):
    openai_fake.add_key(GOOD_OPENAI_KEY)
    service = await paid_service(settings_for())
    try:
        check = await service.validate_key("default", Credentials(GOOD_OPENAI_KEY))
        with pytest.raises(ProviderError) as caught:
            await service.validate_key("default", Credentials("sk-test-openai-unknown"))
    finally:
        await service.close()
    assert check.remaining_usd is None
    assert (caught.value.code, caught.value.public_message) == (
        "invalid_key",
        SENTENCES["invalid_key"],
    )
    assert openai_fake.creates == []


async def test_the_key_is_only_ever_in_authorization_headers(
    tmp_path, settings_for, openai_fake, caplog
):
    install_redaction()
    key = "sk-test-openai-RECOGNISABLE-7a8b"
    openai_fake.add_key(key)
    with caplog.at_level(logging.DEBUG):
        service = await paid_service(settings_for())
        try:
            await service.validate_key("default", Credentials(key))
            assert (await mint_with(service, "", key)).status is Status.READY
            assert (await mint_with(service, "0", key)).status is Status.READY
        finally:
            await service.close()
    assert len(caplog.records) > 10
    assert_key_only_in_authorization(tmp_path, caplog.text, openai_fake.requests, key)


async def test_a_create_that_timed_out_is_found_by_listing_videos_not_paid_again(
    tmp_path, openai_fake
):
    openai_fake.add_key(GOOD_OPENAI_KEY, create_delay=1.0)  # the job exists; the answer is late
    settings = paid_settings(
        tmp_path, "openai", openai_fake.base_url, providers={"create_timeout_seconds": 0.3}
    )
    service = await paid_service(settings)
    try:
        first = await mint_with(service, "", GOOD_OPENAI_KEY)
        assert (first.status, first.failure_code) == (Status.FAILED, "timeout")
        openai_fake.add_key(GOOD_OPENAI_KEY)
        assert (await mint_with(service, "", GOOD_OPENAI_KEY)).status is Status.READY
        scene = await row(service, "")
    finally:
        await service.close()
    assert len(openai_fake.creates) == 1, "the retry looked the job up instead of paying"
    assert scene.provider_job_id == openai_fake.creates[0].video_id
    assert any(r.method == "GET" and r.path == "/v1/videos" for r in openai_fake.requests)
