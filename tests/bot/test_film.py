"""`/adventure film` through SimCord: one progress message, then the film of the path."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tests.fixtures.discord import Server, bot_messages, bot_settings, now, refusals, text_of
from tests.fixtures.film import SMALL, decode, seed_path
from world.settings import Settings

NOT_STARTED = "No adventure has been played in this channel yet, so there is nothing to film."
NOTHING_YET = "There is nothing to film yet: no scene on this channel's path has a clip."


@pytest.fixture
def discord_settings(tmp_path, request) -> Settings:
    """The bot's test settings; `indirect` parametrization overrides sections of them."""
    settings = bot_settings(tmp_path)
    for section, values in getattr(request, "param", {}).items():
        settings = replace(settings, **{section: replace(getattr(settings, section), **values)})
    return settings


def _edits(env, message_id: int) -> list[str]:
    pattern = re.compile(rf"/channels/\d+/messages/{message_id}$")
    return [
        (r.json or {}).get("content", "")
        for r in env.http_requests
        if r.method == "PATCH" and pattern.search(r.path)
    ]


async def _at(env, service, tmp_path, depth: int) -> Server:
    made = await seed_path(service, tmp_path / "clips", [SMALL] * depth)
    server = Server(env, "alpha")
    await server.admin.slash(server.channel, "adventure start")
    if made[-1]:
        await server.admin.slash(server.channel, "adventure goto", path=made[-1])
    return server


async def test_film_posts_the_paths_film_and_edits_one_progress_message(
    world_env, world_service, tmp_path
):
    server = await _at(world_env, world_service, tmp_path, 3)
    before = len(bot_messages(server.channel))

    asked = await server.member().slash(server.channel, "adventure film")
    await world_env.settle()

    assert asked.ephemeral and "Making the film of **Start › 1 › 2**" in asked.response.content
    progress, posted = bot_messages(server.channel)[before:]  # exactly two new messages
    assert text_of(now(server.channel, progress)) == "🎬 The film of **Start › 1 › 2** is below."
    # 5 s between edits: the film was made within one interval, so only the final edit
    assert _edits(world_env, progress.id) == ["🎬 The film of **Start › 1 › 2** is below."]
    assert "The story so far: Start › 1 › 2** · 3 scenes · 0:03" in posted.content
    [attachment] = posted.attachments
    assert attachment.filename == "film-0-1.mp4"
    film = tmp_path / "posted.mp4"
    film.write_bytes(await attachment.read())
    codec, width, height, frames, duration = decode(film)
    assert (codec, width, height, frames) == ("h264", 160, 90, 72)
    assert duration == pytest.approx(3.0, abs=1 / 24)


async def test_a_second_film_of_the_same_path_reuses_the_stored_one(
    world_env, world_service, tmp_path
):
    server = await _at(world_env, world_service, tmp_path, 2)
    await server.member().slash(server.channel, "adventure film")
    await world_env.settle()
    first = bot_messages(server.channel)[-1]

    await server.member().slash(server.channel, "adventure film")
    await world_env.settle()

    second = bot_messages(server.channel)[-1]
    assert second.id != first.id and second.content == first.content
    assert await second.attachments[0].read() == await first.attachments[0].read()


async def test_nothing_to_film_gets_one_sentence_and_posts_nothing(world_env, world_service):
    server = Server(world_env, "alpha")
    member = server.member()

    refused = await member.slash(server.channel, "adventure film")
    assert refused.ephemeral and refused.response.content == NOT_STARTED

    # A channel at the opening scene whose clip is not made yet.
    await world_service.play.bind_channel(
        channel_id=server.channel.id,
        guild_id=server.guild.id,
        world_id="default",
        mode="vote",
        vote_seconds=60,
        path="",
        now=datetime.now(UTC),
    )
    refused = await member.slash(server.channel, "adventure film")
    assert refused.ephemeral and refused.response.content == NOTHING_YET
    assert not bot_messages(server.channel)
    assert refusals(world_env) == [NOT_STARTED, NOTHING_YET]


@pytest.mark.parametrize(
    "discord_settings",
    [{"storage": {"local_public_base_url": "https://media.example.com"}}],
    indirect=True,
)
async def test_a_store_with_public_links_posts_the_film_as_a_link(
    world_env, world_service, tmp_path
):
    server = await _at(world_env, world_service, tmp_path, 2)
    await server.member().slash(server.channel, "adventure film")
    await world_env.settle()
    posted = bot_messages(server.channel)[-1]
    link = re.search(
        r"https://media\.example\.com/(worlds/default/films/0/\w+\.mp4)", posted.content
    )
    assert link and not posted.attachments
    assert decode(tmp_path / "assets" / link.group(1))[3] == 48  # the linked film: 2 clips


@pytest.mark.parametrize(
    "discord_settings", [{"discord": {"progress_edit_seconds": 0.0}}], indirect=True
)
async def test_progress_names_the_clip_being_joined(world_env, world_service, tmp_path):
    server = await _at(world_env, world_service, tmp_path, 3)
    before = len(bot_messages(server.channel))
    await server.member().slash(server.channel, "adventure film")
    await world_env.settle()
    progress = bot_messages(server.channel)[before]
    edits = _edits(world_env, progress.id)
    assert edits[0] == "🎬 Making the film of **Start › 1 › 2** …\n-# Fetching clip 1 of 3 …"
    assert any(edit.endswith("Joining clip 3 of 3 …") for edit in edits), edits
    assert edits[-1] == "🎬 The film of **Start › 1 › 2** is below."
