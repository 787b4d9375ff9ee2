"""SimCord journeys on a `gemini` world: the real bot, the real WorldService and the real
GeminiProvider, talking to the loopback fake of the Gemini API through google-genai.

The price on every card is the world's 720p price per second x 8 s ($0.80), the key check is
the fake's `GET /v1beta/models/<planner>`, and every paid call is counted by the fake. At
teardown `world_env` checks that every interaction was answered and that every request the bot
sent validates against Discord's OpenAPI spec; the `gemini` fixture checks that no branch was
paid for twice.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable

from tests.fakes.gemini_server import FakeGemini
from tests.fixtures.discord import (
    Server,
    button,
    buttons_of,
    latest,
    mint_finished,
    now,
    text_of,
)
from world.providers.gemini import GeminiProvider
from world.types import Status

MINT = "Mint this branch"
GOOD_KEY = "AIzaSyJourney-gemini-journeykey-7c41d9e2"
STARTED = (
    "Minting started (about $0.80). "
    "Watch the channel; if your key runs into trouble I will tell you here."
)
WAITING = re.compile(
    r"⏳ rendering \(in progress\) · 0:0\d so far; this model usually takes about 1:30"
)
NEVER = 10**9  # polls: the fake keeps the interaction in progress until the test lets it end


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


def assert_never_sent(env, key: str) -> None:
    """`key` is in no request the bot made to Discord, ephemeral or not."""
    sent = [
        json.dumps([r.method, r.path, r.params, r.json], default=str) for r in env.http_requests
    ]
    assert sent, "the bot sent something"
    assert [request for request in sent if key in request] == [], "the key was sent to Discord"


async def test_a_member_mints_the_opening_scene_with_their_gemini_key(
    world_env, world_service, gemini: FakeGemini
):
    assert isinstance(world_service.provider("default"), GeminiProvider)
    gemini.add_key(GOOD_KEY, polls_to_complete=NEVER)
    server = await open_mint_card(world_env)

    # The mint card and the key form show the estimate and who charges it.
    mint = latest(server.channel)
    assert "pays about $0.80 with their own Gemini key" in text_of(mint)
    assert button(mint, MINT)["label"] == "Mint this branch · about $0.80"
    member = server.member()
    form = await member.click(mint, custom_id=button(mint, MINT)["custom_id"])
    assert form.modal is not None, "the key form is the first response to the click"
    assert "Estimated cost: **about $0.80**, charged by Gemini to your key" in str(form.modal)

    # The key checks out (a spend-free models.get); Gemini tells no remaining credit.
    submitted = await member.submit_modal(form, {"api_key": GOOD_KEY})
    assert submitted.ephemeral
    assert submitted.response.content == STARTED
    assert "Being minted" in text_of(now(server.channel, mint))
    progress = latest(server.channel)
    assert "Minting “The opening scene”" in text_of(progress)

    # Omni reports no percentage: once the interaction has been polled a few times, the next
    # coalesced edit shows its status and the time taken instead.
    await until(
        lambda: (
            len(gemini.accepted_creates) == 1
            and gemini.interactions[gemini.accepted_creates[0].interaction_id].progress.polls >= 3
        ),
        "the interaction to be created and polled",
    )
    await world_env.advance_time(5)  # progress edits come at most every 5 s
    rendering = text_of(now(server.channel, progress))
    assert WAITING.search(rendering), rendering
    assert "%" not in rendering and "▰" not in rendering, "no invented percentage"

    # The fake finishes at its next poll; the clip comes through the files API and is posted.
    interaction = gemini.interactions[gemini.accepted_creates[0].interaction_id]
    interaction.progress.polls_to_complete = 1
    await mint_finished(world_env, world_service, "default", "")
    scene = await world_service.view("default", "")
    assert scene.status is Status.READY
    assert "Done: the new scene is below." in text_of(now(server.channel, progress))
    card = latest(server.channel)
    assert scene.title and scene.title in text_of(card)
    assert card.attachments and card.attachments[0].filename == "scene-root.mp4"
    labels = [b["label"] for b in buttons_of(card) if b["label"] != "Report"]  # moderation
    assert len(labels) == 3 and all(label.endswith("unexplored · about $0.80") for label in labels)
    assert submitted.followups == [], "nothing went wrong, so nothing more was said privately"

    # One paid create, made with the member's key; the key never went back to Discord.
    [create] = gemini.creates
    assert create.interaction_id is not None and create.key == GOOD_KEY
    assert create.body["model"] == "gemini-omni-1.2-flash"
    assert create.image is None  # the opening scene has no parent frame
    assert gemini.requests[0].path == "/v1beta/models/gemini-3-flash", "the key check first"
    assert any(r.path.endswith(":download") for r in gemini.requests)
    assert gemini.keys_seen() == {GOOD_KEY}
    assert_never_sent(world_env, GOOD_KEY)
    assert not [m.id for m in server.channel.history() if GOOD_KEY in text_of(m)]


async def test_a_key_without_billing_claims_nothing_and_is_told_why(
    world_env, world_service, gemini: FakeGemini, simcord_bot
):
    key = "AIzaSyJourney-gemini-nobilling-0b3f"
    gemini.add_key(key, key_error="billing")
    server = await open_mint_card(world_env)
    mint = latest(server.channel)
    member = server.member()
    form = await member.click(mint, custom_id=button(mint, MINT)["custom_id"])
    answered = await member.submit_modal(form, {"api_key": key})

    assert answered.ephemeral
    assert answered.response.content == (
        "Nothing was claimed or charged: that Gemini key has no billing enabled, and Gemini "
        "Omni has no free tier; turn billing on for the key's Google project or use another key."
    )
    assert (await world_service.view("default", "")).status is Status.PENDING
    assert gemini.creates == [] and gemini.generates == []
    assert len(simcord_bot.vault) == 0, "a refused key is not kept"
    assert latest(server.channel).id == mint.id, "no progress message; the mint card stays"
    assert_never_sent(world_env, key)
