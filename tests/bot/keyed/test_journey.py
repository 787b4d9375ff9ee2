"""A full journey on a world whose provider needs each member's key, then a second server."""

from __future__ import annotations

from tests.bot.keyed_provider import GOOD_KEY, seed_opening_scene
from tests.fixtures.discord import (
    Server,
    button,
    buttons_of,
    cards,
    latest,
    mint_finished,
    now,
    text_of,
)
from world.types import Status


async def test_full_journey_then_a_second_server_plays_it_free(
    world_env, world_service, keyed_provider
):
    await seed_opening_scene(world_service)
    alpha = Server(world_env, "alpha")
    started = await alpha.admin.slash(alpha.channel, "adventure start")
    assert started.ephemeral and "votes last 60 s" in started.response.content

    card = latest(alpha.channel)
    assert "The Nexus Gate" in text_of(card)
    assert "Voting closes <t:" in text_of(card)
    choices = [b for b in buttons_of(card) if b["label"] != "Report"]  # Report: moderation
    assert [b["label"].rsplit(" · ", 1)[-1] for b in choices] == ["about $0.80"] * 3
    assert card.attachments and card.attachments[0].filename == "scene-root.mp4"

    # Vote: one vote per member, changeable; tallies show on the card.
    voters = alpha.members(3)
    second = button(card, "2.")["custom_id"]
    await voters[0].click(card, custom_id=second)
    await voters[1].click(card, custom_id=second)
    first_choice = await voters[2].click(card, custom_id=button(card, "1.")["custom_id"])
    assert first_choice.ephemeral and "You voted for **1." in first_choice.response.content
    changed = await voters[2].click(card, custom_id=second)
    assert "You voted for **2." in changed.response.content
    assert "can change your vote until voting closes <t:" in changed.response.content
    await world_env.advance_time(5)  # tallies are edited in at most every 5 s
    assert "3 votes" in text_of(now(alpha.channel, card))

    # The round closes on time; the winner is unexplored: a mint card with its price.
    await world_env.advance_time(55)
    closed = now(alpha.channel, card)
    assert "Chosen: **2." in text_of(closed)
    assert all(b.get("disabled") for b in buttons_of(closed))
    mint = latest(alpha.channel)
    assert "Mint this branch" in text_of(mint) and "about $0.80" in text_of(mint)
    assert "Start › 2" in text_of(mint)

    # The contributor clicks Mint: the key form is the first response and shows the cost.
    contributor = voters[0]
    keyed_provider.hold()  # the render pauses so the test can watch it run
    shown = await contributor.click(mint, custom_id=button(mint, "Mint this branch")["custom_id"])
    assert shown.modal is not None
    assert "about $0.80" in str(shown.modal)
    submitted = await contributor.submit_modal(shown, {"api_key": GOOD_KEY})
    assert submitted.ephemeral
    assert "Minting started" in submitted.response.content
    assert GOOD_KEY not in submitted.response.content

    # The channel watches one bot-owned progress message, then gets the new scene card.
    progress = latest(alpha.channel)
    assert "Minting “Roll a glowing marble" in text_of(progress)
    assert "Being minted" in text_of(now(alpha.channel, mint))
    assert progress_edits(world_env, progress.id) == 0  # posted moments ago: edits wait
    await world_env.advance_time(5)  # progress edits come at most every 5 s, coalesced
    assert progress_edits(world_env, progress.id) == 1
    assert "▰" in text_of(now(alpha.channel, progress)) and " %" in text_of(
        now(alpha.channel, progress)
    )
    keyed_provider.release()
    await mint_finished(world_env, world_service, "default", "1")
    assert "Done" in text_of(now(alpha.channel, progress))
    assert progress_edits(world_env, progress.id) == 2
    new_card = latest(alpha.channel)
    assert "The Neon Arcade Gambit" in text_of(new_card) and "Start › 2" in text_of(new_card)
    assert keyed_provider.paid_calls == 2  # the seed and this branch

    # A second server on the same world: the branch alpha minted is instant, nobody pays.
    beta = Server(world_env, "beta")
    await beta.admin.slash(beta.channel, "adventure start", mode="pick")
    beta_card = latest(beta.channel)
    assert button(beta_card, "2.")["label"].endswith("instant")
    assert button(beta_card, "1.")["label"].endswith("about $0.80")
    picked = await beta.member().click(beta_card, custom_id=button(beta_card, "2.")["custom_id"])
    assert "You picked **2." in picked.response.content
    played = latest(beta.channel)
    assert "The Neon Arcade Gambit" in text_of(played)
    assert keyed_provider.paid_calls == 2
    assert (await world_service.view("default", "1")).status is Status.READY
    assert not cards(beta.channel, "Mint this branch")


def progress_edits(env, message_id: int) -> int:
    return sum(
        1
        for r in env.http_requests
        if r.method == "PATCH" and r.path.endswith(f"/messages/{message_id}")
    )
