"""Moderation in Discord (SimCord): the Report button and the admins' report channel,
/world hide and /world unhide, who may use them, and the audit trail they leave."""

from __future__ import annotations

import re

import discord
from sqlalchemy import select, update

from bot import cards
from bot.components import DYNAMIC_ITEMS, REPORT_TEMPLATE, STALE_TEMPLATE, ReportButton
from tests.bot.test_cards import a_round, buttons, scene, texts, within_limits
from tests.fixtures.discord import (
    Server,
    bot_messages,
    button,
    buttons_of,
    components_of,
    latest,
    mint_finished,
    now,
    refusals,
    text_of,
    walk,
)
from tests.fixtures.world import renders_started
from world import scenes
from world.models import AdminAction, Scene
from world.play import CLOSED
from world.types import Status

NEEDS_MANAGE = "You need the Manage Server permission to do that."
MEDIA_GALLERY = 12


async def started(env, service) -> Server:
    server = Server(env, "alpha")
    await server.admin.slash(server.channel, "adventure start", mode="pick")
    await mint_finished(env, service, "default", "")
    return server


async def audit(service) -> list[tuple[str, str | None]]:
    async with service.db.session() as session:
        rows = await session.scalars(select(AdminAction).order_by(AdminAction.id))
        return [(r.action, r.path) for r in rows]


def has_clip(message) -> bool:
    gallery = any(c.get("type") == MEDIA_GALLERY for c in walk(components_of(message)))
    return gallery or bool(message.attachments)


async def test_a_report_reaches_the_admin_channel_once_per_member(world_env, world_service):
    server = await started(world_env, world_service)
    card = latest(server.channel)
    title = (await world_service.view("default", "")).title
    report = button(card, "Report")["custom_id"]
    first, second = server.members(2)

    unset = await first.click(card, custom_id=report)
    assert unset.ephemeral and "have not chosen a report channel" in unset.response.content

    muted = server.guild.create_text_channel(
        "muted", overwrites={world_env.bot.user: discord.PermissionOverwrite(send_messages=False)}
    )
    unusable = await server.admin.slash(server.channel, "world settings", report_channel=muted)
    assert unusable.ephemeral and unusable.response.content.startswith("I cannot post in")
    assert await world_service.report_channel(server.guild.id) is None
    reports = server.guild.create_text_channel("mod-reports")
    chosen = await server.admin.slash(server.channel, "world settings", report_channel=reports)
    assert chosen.ephemeral and f"<#{reports.id}>" in chosen.response.content

    again = await first.click(card, custom_id=report)  # the same member, the same clip
    assert again.ephemeral and again.response.content == (
        "You have already reported this scene; the admins have it."
    )
    sent = await second.click(card, custom_id=report)
    assert sent.ephemeral and sent.response.content.startswith("Thanks: your report")

    [posted] = bot_messages(reports)
    text = text_of(posted)
    assert "Scene reported" in text and "Start" in text and "path `start`" in text
    assert title in text
    link = f"https://discord.com/channels/{server.guild.id}/{server.channel.id}/{card.id}"
    assert link in text and "2 members have reported this clip" in text
    # A button's refusal is its own reply (bot.errors); the command tree saw only the channel.
    assert refusals(world_env) == [unusable.response.content]
    assert await audit(world_service) == [("report_channel", None)]


async def test_members_are_refused_hide_unhide_and_settings(world_env, world_service):
    server = await started(world_env, world_service)
    member = server.member()
    reports = server.guild.create_text_channel("mod-reports")
    for command, options in (
        ("world hide", {"path": "start", "reason": "mine"}),
        ("world unhide", {"path": "start"}),
        ("world settings", {"report_channel": reports}),
    ):
        refused = await member.slash(server.channel, command, **options)
        assert refused.ephemeral and refused.response.content == NEEDS_MANAGE, command
    assert refusals(world_env) == [NEEDS_MANAGE] * 3
    assert (await world_service.view("default", "")).is_ready
    assert await world_service.report_channel(server.guild.id) is None
    assert await audit(world_service) == []


async def test_hide_removes_the_clip_and_reopens_the_branch(
    world_env, world_service, discord_settings
):
    server = await started(world_env, world_service)
    card = latest(server.channel)
    old = await world_service.view("default", "")
    assert has_clip(card)

    hidden = await server.admin.slash(server.channel, "world hide", path="start", reason="gore")
    assert hidden.ephemeral and hidden.response.content.startswith("Hid **Start**")
    assert "/world unhide" in hidden.response.content

    retired = now(server.channel, card)
    assert "Removed by the admins" in text_of(retired) and not has_clip(retired)
    assert old.title not in text_of(retired)
    offer = latest(server.channel)  # the next card: no clip, the branch can be minted again
    assert offer.id != card.id and not has_clip(offer)
    assert "Removed by the admins" in text_of(offer) and old.title not in text_of(offer)
    assert (await world_service.view("default", "")).status is Status.HIDDEN

    minted = await server.member().click(offer, custom_id=button(offer, "Mint")["custom_id"])
    assert minted.acknowledged
    await mint_finished(world_env, world_service, "default", "")
    fresh = await world_service.view("default", "")
    assert fresh.is_ready and fresh.video_key != old.video_key
    assert renders_started(discord_settings) == 2
    new_card = latest(server.channel)
    assert has_clip(new_card) and fresh.title in text_of(new_card)
    assert any(b["label"] == "Report" for b in buttons_of(new_card))

    late = await server.admin.slash(server.channel, "world unhide", path="start")
    assert "minted again since it was hidden" in late.response.content
    assert refusals(world_env) == [late.response.content]
    assert await audit(world_service) == [("hide", "")]


async def test_unhide_brings_the_scene_back_and_admin_actions_are_audited(world_env, world_service):
    server = await started(world_env, world_service)
    old = await world_service.view("default", "")
    await server.admin.slash(server.channel, "world hide", path="start")
    back = await server.admin.slash(server.channel, "world unhide", path="start")
    assert back.ephemeral and "is back" in back.response.content

    card = latest(server.channel)
    assert has_clip(card) and old.title in text_of(card)
    assert (await world_service.view("default", "")).video_key == old.video_key

    async with world_service.db.transaction() as session:  # a branch that failed earlier
        await scenes.insert_placeholder(session, "default", "1", "Roll a marble")
        await session.execute(
            update(Scene).where(Scene.path == "1").values(status="failed", failure_code="storage")
        )
    retried = await server.admin.slash(server.channel, "world retry", path="1")
    assert "Minting started" in retried.response.content
    await mint_finished(world_env, world_service, "default", "1")
    nothing = await server.admin.slash(server.channel, "world cancel", path="1")
    again = await server.admin.slash(server.channel, "world retry", path="1")  # ready now
    assert refusals(world_env) == [nothing.response.content]
    assert "playing it now" in again.response.content
    # neither changed anything, so neither is audited
    assert await audit(world_service) == [("hide", ""), ("unhide", ""), ("retry", "1")]


# -- the cards, without Discord -------------------------------------------------------------


def test_an_open_card_has_a_report_button_within_discord_limits():
    largest = scene(narration_words=400, label_words=80, title="T" * 400)
    layout = cards.scene_card(largest, round=a_round(), media=cards.Media(), reportable=True)
    within_limits(layout)
    ids = [b.custom_id for b in buttons(layout)]
    assert ids == [*(f"sw:v1:c:42:{i}" for i in range(3)), "sw:v1:rp:42"]
    assert [b.label for b in buttons(layout)][-1] == "Report"
    closed = cards.scene_card(
        scene(), round=a_round(status=CLOSED), media=cards.Media(), reportable=True, winner=1
    )
    assert "sw:v1:rp:42" not in [b.custom_id for b in buttons(closed)]  # a retired card

    hidden = scene(status=Status.HIDDEN, title=None, narration=None, choices=(), video_key=None)
    removed = cards.scene_card(hidden, round=a_round(), media=cards.Media(), reportable=True)
    assert "Removed by the admins" in texts(removed) and not buttons(removed)
    offer = cards.mint_card(hidden, channel_id=7, provider_name="offline", needs_key=False)
    assert "Removed by the admins" in texts(offer) and "can be made again" in texts(offer)
    assert [b.label for b in buttons(offer)] == ["Mint this branch · about $0.80"]
    within_limits(offer)


def test_report_buttons_are_routed_and_not_taken_for_stale_ones():
    assert re.fullmatch(REPORT_TEMPLATE, "sw:v1:rp:42")
    assert not re.fullmatch(STALE_TEMPLATE, "sw:v1:rp:42")
    assert re.fullmatch(STALE_TEMPLATE, "sw:v1:rp:x")
    assert ReportButton in DYNAMIC_ITEMS
