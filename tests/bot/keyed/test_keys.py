"""Keys: checked before anything is claimed, kept only in memory, never shown again."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.bot.keyed_provider import GOOD_KEY
from tests.fixtures.discord import (
    Server,
    button,
    buttons_of,
    latest,
    mint_finished,
    now,
    restarted_bot,
    text_of,
)
from world import logsafe
from world.providers.base import ProviderError
from world.settings import Settings
from world.types import Status

ROOT_MINT = "Mint this branch"


@pytest.fixture
def discord_settings(discord_settings: Settings) -> Settings:
    """Keys are forgotten after 2 idle minutes here (30 by default)."""
    return replace(discord_settings, discord=replace(discord_settings.discord, key_idle_minutes=2))


async def open_mint_card(env, service) -> Server:
    """A channel whose opening scene is not made yet: it shows a mint card."""
    server = Server(env, "alpha")
    await server.admin.slash(server.channel, "adventure start")
    assert ROOT_MINT in text_of(latest(server.channel))
    return server


async def test_an_invalid_key_claims_nothing(world_env, world_service, keyed_provider, simcord_bot):
    server = await open_mint_card(world_env, world_service)
    mint = latest(server.channel)
    member = server.member()

    shown = await member.click(mint, custom_id=button(mint, ROOT_MINT)["custom_id"])
    answered = await member.submit_modal(shown, {"api_key": "sk-wrong-4d5e6f7a8b"})

    assert answered.ephemeral
    assert answered.response.content == (
        "keyed-test did not accept that key, so nothing was claimed or charged."
    )
    assert (await world_service.view("default", "")).status is Status.PENDING
    assert keyed_provider.paid_calls == 0
    assert len(simcord_bot.vault) == 0
    assert latest(server.channel).id == mint.id  # no progress message, the card stays
    assert not buttons_of(mint)[0].get("disabled")


async def test_quota_running_out_mid_mint_puts_the_branch_back(
    world_env, world_service, keyed_provider
):
    server = await open_mint_card(world_env, world_service)
    mint = latest(server.channel)
    contributor = server.member()
    keyed_provider.fail_with_quota = True

    shown = await contributor.click(mint, custom_id=button(mint, ROOT_MINT)["custom_id"])
    submitted = await contributor.submit_modal(shown, {"api_key": GOOD_KEY})
    assert "Minting started" in submitted.response.content
    await mint_finished(world_env, world_service, "default", "")

    view = await world_service.view("default", "")
    assert view.status is Status.PENDING  # unexplored again, anyone can mint it
    [private] = submitted.followups
    assert private.ephemeral
    assert (
        "ran out of quota" in private.content and "Nothing more will be charged" in private.content
    )
    progress, new_mint = [m for m in server.channel.history() if m.author.bot][-2:]
    assert "Minting stopped: the contributor's key ran out of quota" in text_of(progress)
    assert ROOT_MINT in text_of(new_mint) and button(new_mint, ROOT_MINT)
    for message in server.channel.history():
        assert GOOD_KEY not in text_of(message)


async def test_a_saved_key_is_offered_and_used_after_the_cost_is_shown(
    world_env, world_service, keyed_provider
):
    server = await open_mint_card(world_env, world_service)
    mint = latest(server.channel)
    member = server.member()
    shown = await member.click(mint, custom_id=button(mint, ROOT_MINT)["custom_id"])
    keyed_provider.fail_with_quota = True  # the first attempt fails; the key stays saved
    await member.submit_modal(shown, {"api_key": GOOD_KEY})
    await mint_finished(world_env, world_service, "default", "")
    again = latest(server.channel)

    offer = await member.click(again, custom_id=button(again, ROOT_MINT)["custom_id"])
    assert offer.modal is None and offer.ephemeral
    assert "Estimated cost: **about $0.80**" in offer.response.content
    labels = [b["label"] for b in buttons_of(offer.response)]
    assert labels == ["Use my saved key · about $0.80", "Enter a different key"]

    used = await member.click(offer.response, custom_id=buttons_of(offer.response)[0]["custom_id"])
    assert "Minting started" in now_text(used)
    await mint_finished(world_env, world_service, "default", "")
    assert "The Nexus Gate" in text_of(latest(server.channel))


def now_text(result) -> str:
    return result.response.content if result.response is not None else ""


async def save_a_key(env, service, provider, server: Server, member) -> None:
    """The member mints with their key (the attempt runs out of quota); the key stays saved."""
    mint = latest(server.channel)
    provider.fail_with_quota = True
    form = await member.click(mint, custom_id=button(mint, ROOT_MINT)["custom_id"])
    await member.submit_modal(form, {"api_key": GOOD_KEY})
    await mint_finished(env, service, "default", "")


async def test_key_status_forget_and_idle_timeout(
    world_env, world_service, keyed_provider, simcord_bot
):
    server = await open_mint_card(world_env, world_service)
    member = server.member()
    none_held = await member.slash(server.channel, "key status")
    assert none_held.ephemeral and "No key of yours is held" in none_held.response.content

    await save_a_key(world_env, world_service, keyed_provider, server, member)
    held = await member.slash(server.channel, "key status")
    assert "a keyed-test key, forgotten after 2 more idle minutes" in held.response.content
    assert GOOD_KEY not in held.response.content
    forgot = await member.slash(server.channel, "key forget")
    assert forgot.response.content == "Your key is forgotten."
    assert GOOD_KEY not in logsafe._secrets
    again = await member.slash(server.channel, "key forget")
    assert again.response.content == "No key of yours was held."

    await save_a_key(world_env, world_service, keyed_provider, server, member)
    await world_env.advance_time(119)
    assert "keyed-test key" in (await member.slash(server.channel, "key status")).response.content
    await world_env.advance_time(2)  # 2 idle minutes since the key was last used
    expired = await member.slash(server.channel, "key status")
    assert "No key of yours is held" in expired.response.content
    assert len(simcord_bot.vault) == 0
    assert GOOD_KEY not in logsafe._secrets


async def test_a_second_contributor_pays_nothing_when_someone_is_already_minting(
    world_env, world_service, keyed_provider
):
    server = await open_mint_card(world_env, world_service)
    mint = latest(server.channel)
    first, second = server.members(2)
    first_form = await first.click(mint, custom_id=button(mint, ROOT_MINT)["custom_id"])
    second_form = await second.click(mint, custom_id=button(mint, ROOT_MINT)["custom_id"])
    keyed_provider.hold()

    started = await first.submit_modal(first_form, {"api_key": GOOD_KEY})
    waited = await second.submit_modal(second_form, {"api_key": "sk-test-good-second-999"})

    assert "Minting started" in started.response.content
    assert (
        "Someone else is already minting this branch, so you pay nothing" in waited.response.content
    )
    keyed_provider.release()
    await mint_finished(world_env, world_service, "default", "")
    assert keyed_provider.paid_calls == 1
    assert "The Nexus Gate" in text_of(latest(server.channel))


async def test_a_key_form_opened_before_a_restart_gets_an_answer(
    world_env, world_service, discord_settings, keyed_provider
):
    server = await open_mint_card(world_env, world_service)
    mint = latest(server.channel)
    member = server.member()
    form = await member.click(mint, custom_id=button(mint, ROOT_MINT)["custom_id"])

    await world_env.restart_bot(restarted_bot(world_env, discord_settings, world_service))
    answered = await member.submit_modal(form, {"api_key": GOOD_KEY})

    assert answered.ephemeral and "opened before the bot restarted" in answered.response.content
    assert keyed_provider.paid_calls == 0
    assert (await world_service.view("default", "")).status is Status.PENDING
    # The mint card itself still works in the new process.
    retry = await member.click(
        now(server.channel, mint), custom_id=button(mint, ROOT_MINT)["custom_id"]
    )
    assert retry.modal is not None


async def test_a_failed_mint_shows_a_plain_reason_and_a_retry_finishes_it(
    world_env, world_service, keyed_provider
):
    server = await open_mint_card(world_env, world_service)
    mint = latest(server.channel)
    contributor, helper = server.members(2)
    keyed_provider.fail_render_with = ProviderError(
        "unavailable", "The video provider is not answering right now."
    )
    form = await contributor.click(mint, custom_id=button(mint, ROOT_MINT)["custom_id"])
    await contributor.submit_modal(form, {"api_key": GOOD_KEY})
    await mint_finished(world_env, world_service, "default", "")

    assert (await world_service.view("default", "")).status is Status.FAILED
    progress, retry_card = [m for m in server.channel.history() if m.author.bot][-2:]
    assert "Minting failed: The video provider is not answering right now." in text_of(progress)
    retry = button(retry_card, "Retry")

    retry_form = await helper.click(retry_card, custom_id=retry["custom_id"])
    answered = await helper.submit_modal(retry_form, {"api_key": GOOD_KEY})
    assert "Minting started" in answered.response.content
    await mint_finished(world_env, world_service, "default", "")

    assert (await world_service.view("default", "")).status is Status.READY
    assert keyed_provider.paid_calls == 1, "the retry resumed the job the contributor paid for"
    assert "Start" in text_of(latest(server.channel))
