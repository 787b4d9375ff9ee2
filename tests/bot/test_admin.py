"""Admin commands, where-am-I, and bad input: one plain sentence, nothing changed."""

from __future__ import annotations

import discord
from discord import ui
from sqlalchemy import update

from bot.components import STALE_SENTENCE
from tests.fixtures.discord import (
    Server,
    bot_messages,
    button,
    buttons_of,
    latest,
    mint_finished,
    now,
    refusals,
    text_of,
)
from tests.fixtures.play import rounds_of
from tests.fixtures.world import wait_until_settled
from world import scenes
from world.models import Scene

NEEDS_MANAGE = "You need the Manage Server permission to do that."


async def started(env, service, **options) -> Server:
    server = Server(env, "alpha")
    await server.admin.slash(server.channel, "adventure start", **options)
    await mint_finished(env, service, "default", "")
    return server


async def test_members_are_refused_admin_commands_and_nothing_changes(world_env, world_service):
    server = Server(world_env, "alpha")
    member = server.member()
    for command, options in (
        ("adventure start", {}),
        ("adventure stop", {}),
        ("adventure restart", {}),
        ("adventure goto", {"path": "0"}),
        ("adventure settings", {"mode": "pick"}),
        ("world status", {}),
        ("world retry", {"path": "0"}),
        ("world cancel", {"path": "0"}),
    ):
        refused = await member.slash(server.channel, command, **options)
        assert refused.ephemeral and refused.response.content == NEEDS_MANAGE, command
    assert refusals(world_env) == [NEEDS_MANAGE] * 8
    assert await world_service.play.get_channel(server.channel.id) is None
    assert not bot_messages(server.channel)
    # /world is listed for members (its map is for everyone); its admin commands refuse them.
    assert "world map" in member.available_commands(server.channel)


async def test_world_commands_check_permissions_again_at_run_time(world_env, world_service):
    server = Server(world_env, "alpha")
    member = server.member()
    [world_command] = [c for c in await world_env.bot.tree.fetch_commands() if c.name == "world"]
    server.guild.set_command_permissions(world_command, {member: True})  # an admin allowed it

    refused = await member.slash(server.channel, "world status")

    assert refused.ephemeral and refused.response.content == NEEDS_MANAGE
    assert refusals(world_env) == [NEEDS_MANAGE]


async def test_world_status_retry_and_cancel(world_env, world_service):
    server = await started(world_env, world_service)
    status = await server.admin.slash(server.channel, "world status")
    assert status.ephemeral
    assert "**World default**" in status.response.content
    assert "1 ready" in status.response.content and "Renders: 1 made" in status.response.content

    async with world_service.db.transaction() as session:  # a branch that failed earlier
        await scenes.insert_placeholder(session, "default", "1", "Roll a marble")
        await session.execute(
            update(Scene)
            .where(Scene.path == "1")
            .values(status="failed", failure_code="storage", failure_detail="Not stored.")
        )
    retried = await server.admin.slash(server.channel, "world retry", path="1")
    assert "Minting started" in retried.response.content
    await wait_until_settled(world_service, "default", "1")
    assert (await world_service.view("default", "1")).is_ready

    nothing = await server.admin.slash(server.channel, "world cancel", path="0/1")
    assert nothing.response.content == "Start › 1 › 2 is not being minted."
    bad = await server.admin.slash(server.channel, "world retry", path="0/7")
    assert bad.ephemeral and "Choice 7 does not exist" in bad.response.content
    assert refusals(world_env) == [nothing.response.content, bad.response.content]


async def test_where_goto_restart_settings_and_stop(world_env, world_service):
    server = await started(world_env, world_service)
    await world_service.claim("default", "1", None, "someone")
    await wait_until_settled(world_service, "default", "1")
    member = server.member()

    where = await member.slash(server.channel, "adventure where")
    assert where.ephemeral and where.response.content.startswith("**Start**")
    assert "The Nexus Gate Awakens" in where.response.content

    offered = await server.admin.autocomplete(server.channel, "adventure goto", "path", "")
    assert [c["value"] for c in offered] == ["start", "1"]
    assert offered[1]["name"].startswith("Start › 2 — ")

    moved = await server.admin.slash(server.channel, "adventure goto", path="1")
    assert moved.response.content == "Going to **Start › 2**."
    assert "Start › 2" in text_of(latest(server.channel))
    unreachable = await server.admin.slash(server.channel, "adventure goto", path="0/0")
    assert (
        unreachable.response.content == "That branch cannot be reached yet: its scene comes first."
    )
    malformed = await server.admin.slash(server.channel, "adventure goto", path="01")
    assert "is not a branch path" in malformed.response.content

    changed = await server.admin.slash(server.channel, "adventure settings", mode="pick")
    assert "Mode: **pick**" in changed.response.content
    await server.admin.slash(server.channel, "adventure restart")
    card = latest(server.channel)
    assert "Start\n" in text_of(card) and "first click decides" in text_of(card)

    await server.admin.slash(server.channel, "adventure stop")
    assert all(b.get("disabled") for b in buttons_of(now(server.channel, card)))
    stopped = await member.slash(server.channel, "adventure where")
    assert "No adventure is running in this channel" in stopped.response.content
    assert refusals(world_env) == [
        unreachable.response.content,
        malformed.response.content,
        stopped.response.content,
    ]


async def test_unknown_and_stale_buttons_get_a_sentence(world_env, world_service):
    server = await started(world_env, world_service)
    member = server.member()
    card = latest(server.channel)

    # A button from some older version of the bot, with a custom_id nothing knows.
    old = ui.View(timeout=None)
    old.add_item(ui.Button(label="Old", custom_id="cyoa:v0:choice:12:1"))
    old.add_item(ui.Button(label="Gone round", custom_id="sw:v1:c:999999:0"))
    old.add_item(ui.Button(label="Bad path", custom_id=f"sw:v1:m:{server.channel.id}:9"))
    channel = world_env.bot.get_channel(server.channel.id)
    assert isinstance(channel, discord.TextChannel)
    relic = await channel.send("From an older version", view=old)

    unknown = await member.click(relic, label="Old")
    assert unknown.ephemeral and unknown.response.content == STALE_SENTENCE
    gone = await member.click(relic, label="Gone round")
    assert "round that no longer exists" in gone.response.content
    bad_path = await member.click(relic, label="Bad path")
    assert "The story has moved on" in bad_path.response.content

    await server.admin.slash(server.channel, "adventure stop")
    assert latest(server.channel).id == relic.id
    [round_] = await rounds_of(world_service, server.channel.id)
    assert not round_.is_open
    assert card.id == round_.message_id


async def test_a_channel_arriving_at_a_branch_being_minted_waits_free(world_env, world_service):
    alpha = await started(world_env, world_service, mode="pick")
    beta = Server(world_env, "beta")
    await beta.admin.slash(beta.channel, "adventure start", mode="pick")
    alpha_card, beta_card = latest(alpha.channel), latest(beta.channel)

    await alpha.member().click(alpha_card, custom_id=button(alpha_card, "1.")["custom_id"])
    await beta.member().click(beta_card, custom_id=button(beta_card, "1.")["custom_id"])
    await mint_finished(world_env, world_service, "default", "0")

    for server in (alpha, beta):
        assert "Start › 1" in text_of(latest(server.channel))
    assert (await world_service.metrics("default")).renders == 2


async def test_starting_again_replaces_the_card_and_keeps_the_place(world_env, world_service):
    server = await started(world_env, world_service)
    first = latest(server.channel)
    again = await server.admin.slash(
        server.channel, "adventure start", mode="pick", vote_seconds=30
    )
    assert "first click decides" in again.response.content
    assert all(b.get("disabled") for b in buttons_of(now(server.channel, first)))
    second = latest(server.channel)
    assert second.id != first.id and "first click decides" in text_of(second)
    state = await world_service.play.get_channel(server.channel.id)
    assert (state.mode, state.vote_seconds, state.current_path) == ("pick", 30, "")
