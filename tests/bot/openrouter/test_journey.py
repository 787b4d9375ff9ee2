"""SimCord journeys on an `openrouter` world: the real bot, the real WorldService and the real
OpenRouterProvider, talking HTTP to the loopback fake of OpenRouter.

The price on every card is the fake catalogue's ($0.12 a second with audio x 8 s = $0.96; the
settings' fallback would be $0.80), the key check is the fake's `GET /key`, and every paid call
is counted by the fake. At teardown `world_env` checks that every interaction was answered and
that every request the bot sent validates against Discord's OpenAPI spec.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable

import pytest

from tests.fakes.openrouter_server import FakeOpenRouter
from tests.fixtures.discord import (
    Server,
    button,
    buttons_of,
    latest,
    mint_finished,
    now,
    text_of,
)
from world.providers.openrouter import OpenRouterProvider
from world.types import Status

MINT = "Mint this branch"
GOOD_KEY = "sk-test-or-journey-7c41d9e2"
STARTED = (
    "Minting started (about $0.96; your key has $4.20 of credit left). "
    "Watch the channel; if your key runs into trouble I will tell you here."
)
WAITING = re.compile(
    r"⏳ rendering \(in progress\) · 0:0\d so far; this model usually takes about 1:30"
)
NEVER = 10**9  # polls: the fake keeps the job in progress until the test lets it finish


async def until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Wait (on the real clock, where the render runs) until `condition()` holds."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


async def open_mint_card(env) -> Server:
    """A channel whose opening scene is not made yet: it shows a mint card."""
    server = Server(env, "alpha")
    started = await server.admin.slash(server.channel, "adventure start")
    assert started.ephemeral
    assert MINT in text_of(latest(server.channel))
    return server


async def submit_key(server: Server, key: str):
    """A member clicks Mint on the channel's mint card and submits `key` in the form."""
    mint = latest(server.channel)
    member = server.member()
    form = await member.click(mint, custom_id=button(mint, MINT)["custom_id"])
    assert form.modal is not None, "the key form is the first response to the click"
    return mint, form, await member.submit_modal(form, {"api_key": key})


def assert_never_sent(env, key: str) -> None:
    """`key` is in no request the bot made to Discord: channel posts, edits, interaction
    answers and follow-ups, ephemeral or not."""
    sent = [
        json.dumps([r.method, r.path, r.params, r.json], default=str) for r in env.http_requests
    ]
    assert sent, "the bot sent something"
    leaked = [request for request in sent if key in request]
    assert leaked == [], "the key was sent to Discord"


async def test_a_member_mints_the_opening_scene_with_their_openrouter_key(
    world_env, world_service, openrouter: FakeOpenRouter
):
    assert isinstance(world_service.provider("default"), OpenRouterProvider)
    openrouter.add_key(GOOD_KEY, limit_remaining=4.2, polls_to_complete=NEVER)
    server = await open_mint_card(world_env)

    # The mint card and the key form show the catalogue's price.
    mint = latest(server.channel)
    assert "pays about $0.96 with their own OpenRouter key" in text_of(mint)
    assert button(mint, MINT)["label"] == "Mint this branch · about $0.96"
    member = server.member()
    form = await member.click(mint, custom_id=button(mint, MINT)["custom_id"])
    assert form.modal is not None
    assert "Estimated cost: **about $0.96**, charged by OpenRouter to your key" in str(form.modal)

    # The key checks out: the member reads the estimate and the credit the key has left.
    submitted = await member.submit_modal(form, {"api_key": GOOD_KEY})
    assert submitted.ephemeral
    assert submitted.response.content == STARTED
    assert "Being minted" in text_of(now(server.channel, mint))
    progress = latest(server.channel)
    assert "Minting “The opening scene”" in text_of(progress)

    # The render runs at the fake, which reports no percentage: once the provider has polled
    # it a few times, the next coalesced edit shows its status and the time taken instead.
    await until(
        lambda: (
            len(openrouter.accepted_creates) == 1
            and openrouter.jobs[openrouter.accepted_creates[0].job_id].progress.polls >= 3
        ),
        "the render to be created and polled",
    )
    await world_env.advance_time(5)  # progress edits come at most every 5 s
    rendering = text_of(now(server.channel, progress))
    assert WAITING.search(rendering), rendering
    assert "%" not in rendering and "▰" not in rendering, "no invented percentage"

    # The fake finishes the job at its next poll; the scene is stored and its card posted.
    job = openrouter.jobs[openrouter.accepted_creates[0].job_id]
    job.progress.polls_to_complete = 1
    await mint_finished(world_env, world_service, "default", "")
    scene = await world_service.view("default", "")
    assert scene.status is Status.READY
    assert "Done: the new scene is below." in text_of(now(server.channel, progress))
    card = latest(server.channel)
    assert scene.title and scene.title in text_of(card)
    assert card.attachments and card.attachments[0].filename == "scene-root.mp4"
    labels = [b["label"] for b in buttons_of(card) if b["label"] != "Report"]  # moderation
    assert len(labels) == 3 and all(label.endswith("unexplored · about $0.96") for label in labels)
    assert submitted.followups == [], "nothing went wrong, so nothing more was said privately"

    # One paid create, made with the member's key; the key never went back to Discord.
    [create] = openrouter.creates
    assert create.job_id is not None and create.key == GOOD_KEY
    assert create.body["model"] == "google/veo-3.1-fast"
    assert openrouter.keys_seen() == {GOOD_KEY}
    assert_never_sent(world_env, GOOD_KEY)
    assert not [m.id for m in server.channel.history() if GOOD_KEY in text_of(m)]


async def test_a_key_without_enough_credit_claims_nothing(
    world_env, world_service, openrouter: FakeOpenRouter, simcord_bot
):
    broke = "sk-test-or-broke-0b3f"
    openrouter.add_key(broke, limit_remaining=0.01)
    server = await open_mint_card(world_env)

    mint, _, answered = await submit_key(server, broke)

    assert answered.ephemeral
    assert answered.response.content == (
        "Nothing was claimed or charged: that key has $0.01 of credit left, but this branch "
        "costs about $0.96."
    )
    assert answered.followups == []
    assert (await world_service.view("default", "")).status is Status.PENDING
    assert openrouter.creates == [] and openrouter.chats == []
    assert [r.path for r in openrouter.requests if r.key] == ["/api/v1/key"], "only the check"
    assert len(simcord_bot.vault) == 0, "a refused key is not kept"
    assert latest(server.channel).id == mint.id, "no progress message; the mint card stays"
    assert not button(now(server.channel, mint), MINT).get("disabled")
    assert_never_sent(world_env, broke)


@pytest.mark.parametrize(
    ("behaviour", "sentence"),
    [
        (
            {"is_free_tier": True},
            "Nothing was claimed or charged: that is a free-tier key, which cannot make "
            "videos; use a key with credit.",
        ),
        (None, "OpenRouter did not accept that key, so nothing was claimed or charged."),
    ],
    ids=["free-tier", "unknown"],
)
async def test_a_key_openrouter_will_not_let_pay_gets_its_own_sentence(
    world_env, world_service, openrouter: FakeOpenRouter, simcord_bot, behaviour, sentence
):
    key = "sk-test-or-refused-61aa"
    if behaviour is not None:
        openrouter.add_key(key, **behaviour)
    server = await open_mint_card(world_env)

    mint, _, answered = await submit_key(server, key)

    assert answered.ephemeral
    assert answered.response.content == sentence
    assert (await world_service.view("default", "")).status is Status.PENDING
    assert openrouter.creates == [] and openrouter.chats == []
    assert len(openrouter.requests_to("GET", "key")) == 1
    assert len(simcord_bot.vault) == 0
    assert latest(server.channel).id == mint.id
    assert_never_sent(world_env, key)
