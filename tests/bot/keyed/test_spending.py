"""Fair spending on Discord: a mint over a cap is refused with one sentence before any
provider call; /key status lists what a member minted and what it cost; /world status shows
spend per day and the top contributors by hashed id only."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tests.bot.keyed_provider import GOOD_KEY, seed_opening_scene
from tests.fixtures.discord import Server, button, latest, mint_finished, now, refusals, text_of
from tests.fixtures.world import renders_started
from world.claims import contributor_id
from world.settings import LimitsSettings, Settings
from world.types import Status

MINT = "Mint this branch"


@pytest.fixture
def discord_settings(discord_settings: Settings) -> Settings:
    """$0.80 a mint; a member may spend $1.00 a UTC day; one mint at a time per server."""
    limits = LimitsSettings(member_daily_usd=1.0, server_concurrent_mints=1)
    return replace(discord_settings, limits=limits)


async def pick(member, channel, choice: str):
    """In pick mode the first click decides; an unexplored branch then gets a mint card."""
    card = latest(channel)
    await member.click(card, custom_id=button(card, choice)["custom_id"])
    mint = latest(channel)
    assert MINT in text_of(mint)
    return mint


async def mint_with_key(member, mint):
    form = await member.click(mint, custom_id=button(mint, MINT)["custom_id"])
    return await member.submit_modal(form, {"api_key": GOOD_KEY})


async def test_a_member_over_the_daily_cap_is_refused_before_any_provider_call(
    world_env, world_service, keyed_provider, discord_settings
):
    await seed_opening_scene(world_service)
    server = Server(world_env, "alpha")
    await server.admin.slash(server.channel, "adventure start", mode="pick")
    member = server.member()
    started = await mint_with_key(member, await pick(member, server.channel, "1."))
    assert "Minting started" in started.response.content
    await mint_finished(world_env, world_service, "default", "0")
    assert renders_started(discord_settings) == 2 and keyed_provider.paid_calls == 2

    mint = await pick(member, server.channel, "1.")
    offer = await member.click(mint, custom_id=button(mint, MINT)["custom_id"])
    refused = await member.click(
        offer.response, custom_id=button(offer.response, "Use my saved key")["custom_id"]
    )

    assert refused.ephemeral
    assert refused.response.content.startswith(
        "This mint (about $0.80) would take you past your daily cap of $1.00 "
        "($0.80 spent or reserved today, estimated); it frees up at 00:00 UTC, in "
    )
    assert renders_started(discord_settings) == 2 and keyed_provider.paid_calls == 2
    assert (await world_service.view("default", "0/0")).status is Status.PENDING
    assert MINT in text_of(now(server.channel, mint))  # the mint card stays for someone else
    assert refusals(world_env) == []  # answered as a plain outcome, not an error

    status = await member.slash(server.channel, "key status")
    text = status.response.content
    assert status.ephemeral
    assert text.startswith("Held in memory only: a keyed-test key")
    assert "**What you minted**" in text
    assert "• Start › 1 “Rift Shadows over the Orbital Bazaar” · ready <t:" in text
    assert "· about $0.80" in text
    assert (
        "Today (UTC): $0.80 spent or reserved of your daily cap of $1.00; 0 mints in progress."
        in text
    )
    assert "All time: 1 render, about $0.80." in text
    assert GOOD_KEY not in text and len(text) <= 2000

    admin_view = await server.admin.slash(server.channel, "world status")
    figures = admin_view.response.content
    today = datetime.now(UTC).date().isoformat()
    assert "**Spend per day** (UTC; reported cost where known, else the estimate)" in figures
    assert f"`{today}` $1.60 · 2 renders" in figures
    assert "**Top contributors** (last 7 days, hashed ids)" in figures
    salt = discord_settings.generation.contributor_salt
    assert f"`{contributor_id(salt, str(member.id))[:12]}` $0.80 · 1 render" in figures
    assert str(member.id) not in figures and "member1" not in figures
    assert "This server today: $0.80 spent or reserved; 0 mints in progress (cap 1)." in figures
    assert len(figures) <= 2000


async def test_one_mint_at_a_time_per_server_and_the_cap_frees_up_when_it_finishes(
    world_env, world_service, keyed_provider
):
    await seed_opening_scene(world_service)
    server = Server(world_env, "alpha")
    second_channel = server.guild.create_text_channel("story-2")
    for channel in (server.channel, second_channel):
        await server.admin.slash(channel, "adventure start", mode="pick")
    ann, bob = server.members(2)
    keyed_provider.hold()
    started = await mint_with_key(ann, await pick(ann, server.channel, "1."))
    assert "Minting started" in started.response.content

    mint = await pick(bob, second_channel, "2.")
    refused = await mint_with_key(bob, mint)
    assert refused.response.content == (
        "This server already has 1 mint in progress, its cap of 1; "
        "another can start when one of them finishes."
    )
    assert keyed_provider.paid_calls == 2  # the seed and ann's mint
    assert (await world_service.view("default", "1")).status is Status.PENDING

    keyed_provider.release()
    await mint_finished(world_env, world_service, "default", "0")
    offer = await bob.click(mint, custom_id=button(mint, MINT)["custom_id"])
    again = await bob.click(
        offer.response, custom_id=button(offer.response, "Use my saved key")["custom_id"]
    )
    assert "Minting started" in again.response.content
    await mint_finished(world_env, world_service, "default", "1")
    assert "The" in text_of(latest(second_channel)) and keyed_provider.paid_calls == 3
