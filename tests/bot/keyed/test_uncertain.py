"""A create that never reported back, on a provider that cannot look jobs up: the next member
is warned that the branch may already be paid for, and pays again only by choosing to."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.bot.keyed_provider import GOOD_KEY, KeyedTestProvider
from tests.fixtures.discord import Server, button, buttons_of, latest, mint_finished, text_of
from world.providers.errors import unknown_outcome
from world.settings import Settings
from world.types import Status


@pytest.fixture
def discord_settings(discord_settings: Settings) -> Settings:
    """A create that has not answered after 0.3 s is given up (60 s by default)."""
    return replace(
        discord_settings,
        providers=replace(discord_settings.providers, create_timeout_seconds=0.3),
    )


async def test_a_branch_that_may_be_paid_for_is_minted_again_only_on_mint_anyway(
    world_env, world_service, keyed_provider: KeyedTestProvider
):
    keyed_provider.can_find_renders = False  # as OpenRouter, which lists no jobs
    server = Server(world_env, "alpha")
    await server.admin.slash(server.channel, "adventure start")
    first, second = server.members(2)

    keyed_provider.fail_create_with = unknown_outcome("timeout")
    mint = latest(server.channel)
    form = await first.click(mint, custom_id=button(mint, "Mint this branch")["custom_id"])
    await first.submit_modal(form, {"api_key": GOOD_KEY})
    await mint_finished(world_env, world_service, "default", "")
    assert keyed_provider.paid_calls == 1

    retry_card = latest(server.channel)
    form = await second.click(retry_card, custom_id=button(retry_card, "Retry")["custom_id"])
    await second.submit_modal(form, {"api_key": GOOD_KEY})
    await mint_finished(world_env, world_service, "default", "")
    view = await world_service.view("default", "")
    assert (view.status, view.failure_code) == (Status.FAILED, "uncertain")
    assert keyed_provider.paid_calls == 1, "the retry did not pay again on its own"

    warning = latest(server.channel)
    assert "This branch may already have been paid for" in text_of(warning)
    assert "may already have been started" in text_of(warning)
    anyway = button(warning, "Mint anyway")
    offer = await second.click(warning, custom_id=anyway["custom_id"])  # their key is saved
    saved = buttons_of(offer.response)[0]
    assert saved["label"].startswith("Use my saved key")
    answered = await second.click(offer.response, custom_id=saved["custom_id"])
    assert "Minting started" in answered.response.content
    await mint_finished(world_env, world_service, "default", "")
    assert (await world_service.view("default", "")).status is Status.READY
    assert keyed_provider.paid_calls == 2, "paid once more, knowingly"
