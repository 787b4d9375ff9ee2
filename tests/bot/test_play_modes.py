"""Vote and pick mode on a free (offline) world: rounds, ties, restarts, many clicks at once."""

from __future__ import annotations

from tests.fixtures.discord import (
    Server,
    bot_messages,
    button,
    buttons_of,
    click_together,
    latest,
    mint_finished,
    now,
    restarted_bot,
    text_of,
)
from tests.fixtures.play import rounds_of
from tests.fixtures.world import renders_started, wait_until_settled
from world.models import utcnow
from world.play import VOTE


async def start_adventure(env, service, server: Server, **options) -> None:
    """The admin starts the adventure; on a free world the opening scene mints at once."""
    result = await server.admin.slash(server.channel, "adventure start", **options)
    assert result.acknowledged
    await mint_finished(env, service, "default", "")


async def mint_branch(service, path: str) -> None:
    await service.claim("default", path, None, "someone")
    await wait_until_settled(service, "default", path)


async def test_fifty_members_pick_the_same_unexplored_choice_one_claim(
    world_env, world_service, discord_settings
):
    server = Server(world_env, "alpha")
    await start_adventure(world_env, world_service, server, mode="pick")
    card = latest(server.channel)
    assert "first click decides" in text_of(card)
    assert renders_started(discord_settings) == 1

    members = server.members(50)
    results = await click_together(world_env, members, card, button(card, "3.")["custom_id"])

    answers = [r.response.content for r in results]
    assert all(r.acknowledged and r.ephemeral for r in results)
    assert sum("You picked **3." in a for a in answers) == 1
    too_late = ("Someone else picked first", "This round is over")
    assert sum(any(t in a for t in too_late) for a in answers) == 49
    await mint_finished(world_env, world_service, "default", "2")
    assert renders_started(discord_settings) == 2  # exactly one claim for the 50 clicks
    assert text_of(latest(server.channel)).count("Start › 3") == 1
    scene_cards = [m for m in bot_messages(server.channel) if "first click decides" in text_of(m)]
    assert len(scene_cards) == 1  # the new card; the old one now shows what was chosen
    assert "Chosen: **3." in text_of(now(server.channel, card))


async def test_a_tie_goes_to_the_ready_branch(world_env, world_service):
    server = Server(world_env, "alpha")
    await start_adventure(world_env, world_service, server)
    await mint_branch(world_service, "2")  # minted elsewhere: choice 3 is instant
    card = latest(server.channel)
    a, b = server.members(2)
    await a.click(card, custom_id=button(card, "1.")["custom_id"])
    await b.click(card, custom_id=button(card, "3.")["custom_id"])

    await world_env.advance_time(60)

    assert "Chosen: **3." in text_of(now(server.channel, card))
    assert "Start › 3" in text_of(latest(server.channel))
    assert "Voting closes" in text_of(latest(server.channel))


async def test_a_round_without_votes_stays_open_until_someone_votes(world_env, world_service):
    server = Server(world_env, "alpha")
    await start_adventure(world_env, world_service, server)
    card = latest(server.channel)

    await world_env.advance_time(61)
    held = now(server.channel, card)
    assert "nobody has voted yet" in text_of(held)
    assert latest(server.channel).id == card.id
    assert not any(b.get("disabled") for b in buttons_of(held))

    voter = server.member()
    vote = await voter.click(held, custom_id=button(held, "2.")["custom_id"])
    assert "voting closes <t:" in vote.response.content
    await world_env.advance_time(59)
    assert latest(server.channel).id == card.id
    await world_env.advance_time(2)
    await mint_finished(world_env, world_service, "default", "1")
    assert "Start › 2" in text_of(latest(server.channel))


async def test_buttons_and_the_countdown_survive_a_restart(
    world_env, world_service, discord_settings
):
    server = Server(world_env, "alpha")
    await start_adventure(world_env, world_service, server)
    card = latest(server.channel)
    early = server.member()
    await early.click(card, custom_id=button(card, "1.")["custom_id"])

    await world_env.restart_bot(restarted_bot(world_env, discord_settings, world_service))

    late = server.member()
    after = await late.click(card, custom_id=button(card, "1.")["custom_id"])
    assert after.ephemeral and "You voted for **1." in after.response.content
    [current] = [r for r in await rounds_of(world_service, server.channel.id) if r.is_open]
    assert await world_service.play.vote_counts(current.id) == {0: 2}

    await world_env.advance_time(60)  # the new process's loop closes the round on time
    await mint_finished(world_env, world_service, "default", "0")
    assert "Chosen: **1." in text_of(now(server.channel, card))
    assert "Start › 1" in text_of(latest(server.channel))


async def test_pick_mode_plays_a_ready_branch_at_once(world_env, world_service):
    server = Server(world_env, "alpha")
    await start_adventure(world_env, world_service, server, mode="pick")
    await mint_branch(world_service, "0")
    card = latest(server.channel)
    picker = server.member()

    picked = await picker.click(card, custom_id=button(card, "1.")["custom_id"])

    assert "You picked **1." in picked.response.content
    assert "Start › 1" in text_of(latest(server.channel))
    late = await server.member().click(
        latest(server.channel), custom_id=button(latest(server.channel), "1.")["custom_id"]
    )
    assert late.acknowledged


async def test_a_restart_resumes_only_the_servers_this_process_serves(
    world_env, world_service, discord_settings, caplog
):
    server = Server(world_env, "alpha")
    await start_adventure(world_env, world_service, server)
    # A channel of a server that another bot process (another shard) serves: bound in the
    # shared database, unknown to this process.
    await world_service.play.bind_channel(
        channel_id=987_654_321_000,
        guild_id=123_456_789_000,
        world_id="default",
        mode=VOTE,
        vote_seconds=60,
        path="",
        now=utcnow(),
    )

    await world_env.restart_bot(restarted_bot(world_env, discord_settings, world_service))
    await world_env.advance_time(1)

    assert "resuming channel failed" not in caplog.text
    assert "Start" in text_of(latest(server.channel))
