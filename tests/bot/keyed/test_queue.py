"""The visible queue on Discord: with one generation slot and two mints, the second waits
in line and its progress message says so, then plays when the slot frees up."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.bot.keyed_provider import GOOD_KEY, seed_opening_scene
from tests.fixtures.discord import Server, button, latest, mint_finished, now, text_of
from world.settings import Settings

MINT = "Mint this branch"


@pytest.fixture
def discord_settings(discord_settings: Settings) -> Settings:
    """One generation at a time in this process."""
    generation = replace(discord_settings.generation, max_concurrent_jobs=1)
    return replace(discord_settings, generation=generation)


async def mint_choice(member, channel, choice: str):
    card = latest(channel)
    await member.click(card, custom_id=button(card, choice)["custom_id"])
    mint = latest(channel)
    form = await member.click(mint, custom_id=button(mint, MINT)["custom_id"])
    return await member.submit_modal(form, {"api_key": GOOD_KEY})


async def test_the_second_mint_shows_its_place_in_line_on_its_progress_message(
    world_env, world_service, keyed_provider
):
    await seed_opening_scene(world_service)
    alpha, beta = Server(world_env, "alpha"), Server(world_env, "beta")
    for server in (alpha, beta):
        await server.admin.slash(server.channel, "adventure start", mode="pick")
    keyed_provider.hold()  # the first mint keeps the only slot until released

    first = await mint_choice(alpha.member(), alpha.channel, "1.")
    assert "Minting started" in first.response.content
    assert "waits in line" not in first.response.content
    second = await mint_choice(beta.member(), beta.channel, "2.")
    assert second.response.content.endswith("Every generation slot is busy; it waits in line, 1st.")
    assert world_service.queue_position("default", "1") == 1

    waiting = latest(beta.channel)
    assert "Minting “" in text_of(waiting)
    assert "⏳ Waiting in line: 1st, next to start (every generation slot is busy)" in text_of(
        waiting
    )
    assert "Waiting in line" not in text_of(latest(alpha.channel))

    keyed_provider.release()
    await mint_finished(world_env, world_service, "default", "0")
    await mint_finished(world_env, world_service, "default", "1")
    assert "Done" in text_of(now(beta.channel, waiting))
    assert world_service.queue_position("default", "1") is None
    assert keyed_provider.paid_calls == 3
