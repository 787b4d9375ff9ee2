"""Channel play in the database: what several processes agree on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import play
from bot.votes import RoundCache, VoteBatcher
from world import scenes
from world.db import Database

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'play.db'}"
    return request.getfixturevalue("postgres_database")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.upgrade()
    async with database.transaction() as session:
        await scenes.upsert_world(
            session,
            {
                "id": "default",
                "base_prompt": "p",
                "guidance": "g",
                "provider": "offline",
                "planner_model": "m",
                "video_model": "v",
                "summary_model": None,
                "video_size": "1280x720",
                "video_seconds": 8,
            },
        )
    try:
        yield database
    finally:
        await database.close()


async def bound(db: Database, channel_id: int = 5, mode: str = play.VOTE) -> play.ChannelState:
    return await play.bind_channel(
        db,
        channel_id=channel_id,
        guild_id=1,
        world_id="default",
        mode=mode,
        vote_seconds=60,
        path="",
        now=NOW,
    )


async def opened(
    db: Database, channel_id: int = 5, closes: datetime | None = NOW + timedelta(seconds=60)
):
    return await play.open_round(
        db,
        channel_id=channel_id,
        world_id="default",
        path="",
        mode=play.VOTE,
        closes_at=closes,
        now=NOW,
    )


async def test_one_vote_per_member_changeable_while_open(db):
    await bound(db)
    round_ = await opened(db)
    assert (await play.cast_vote(db, round_.id, 10, 1, NOW, vote_seconds=60)).counted
    assert (await play.cast_vote(db, round_.id, 10, 2, NOW, vote_seconds=60)).counted
    assert (await play.cast_vote(db, round_.id, 11, 2, NOW, vote_seconds=60)).counted
    assert await play.vote_counts(db, round_.id) == {2: 2}
    assert await play.member_vote(db, round_.id, 10) == 2

    assert await play.close_round(db, round_.id, 2, NOW)
    late = await play.cast_vote(db, round_.id, 12, 0, NOW, vote_seconds=60)
    assert not late.counted
    assert await play.vote_counts(db, round_.id) == {2: 2}


async def test_only_one_of_many_closers_wins(db):
    await bound(db)
    round_ = await opened(db)
    won = await asyncio.gather(*(play.close_round(db, round_.id, i % 3, NOW) for i in range(20)))
    assert won.count(True) == 1
    closed = await play.get_round(db, round_.id)
    assert closed is not None and not closed.is_open


async def test_a_channel_has_one_open_round(db):
    await bound(db)
    first = await opened(db)
    second = await opened(db)
    history = await play.rounds_of(db, 5)
    assert [r.id for r in history if r.is_open] == [second.id]
    assert (await play.get_round(db, first.id)).status == play.CLOSED
    assert (await play.open_round_of(db, 5)).id == second.id
    assert await play.latest_round_message(db, 5) is None


async def test_due_rounds_and_a_held_round(db):
    await bound(db)
    round_ = await opened(db)
    assert await play.due_rounds(db, NOW + timedelta(seconds=59)) == []
    [due] = await play.due_rounds(db, NOW + timedelta(seconds=60))
    assert due.id == round_.id
    assert await play.next_closing(db) == NOW + timedelta(seconds=60)

    assert await play.hold_round(db, round_.id)  # time ran out without votes
    assert await play.due_rounds(db, NOW + timedelta(days=1)) == []
    assert await play.next_closing(db) is None
    later = NOW + timedelta(minutes=5)
    receipt = await play.cast_vote(db, round_.id, 10, 0, later, vote_seconds=30)
    assert receipt.countdown_started == later + timedelta(seconds=30)
    again = await play.cast_vote(db, round_.id, 11, 0, later, vote_seconds=30)
    assert again.counted and again.countdown_started is None


async def test_moving_stopping_and_configuring_a_channel(db):
    await bound(db)
    round_ = await opened(db)
    assert await play.move_channel(db, 5, "1", NOW, expect_path="")
    assert not await play.move_channel(db, 5, "2", NOW, expect_path="")  # someone moved it already
    assert (await play.get_channel(db, 5)).current_path == "1"

    state = await play.configure_channel(db, 5, mode=play.PICK, vote_seconds=None, now=NOW)
    assert state.mode == play.PICK and state.vote_seconds == 60

    closed = await play.stop_channel(db, 5, NOW)
    assert closed is not None and closed.id == round_.id and not closed.is_open
    assert not (await play.get_channel(db, 5)).active
    assert await play.channels_at(db, "default", "1") == []

    resumed = await bound(db)  # binding again reactivates it
    assert resumed.active and resumed.current_path == ""


async def test_votes_arriving_together_are_written_together(db):
    await bound(db, 5)
    await bound(db, 6)
    await bound(db, 7)
    live, held, closed = await opened(db, 5), await opened(db, 6, closes=None), await opened(db, 7)
    assert await play.close_round(db, closed.id, 0, NOW)

    receipts = await play.cast_votes(
        db,
        [
            play.Ballot(live.id, 1, 0, 60),
            play.Ballot(live.id, 1, 2, 60),  # the same member changes their mind
            play.Ballot(held.id, 2, 1, 30),
            play.Ballot(held.id, 3, 1, 30),
            play.Ballot(closed.id, 4, 0, 60),
        ],
        NOW,
    )

    assert [r.counted for r in receipts] == [True, True, True, True, False]
    assert [r.countdown_started for r in receipts] == [
        None,
        None,
        NOW + timedelta(seconds=30),
        None,
        None,
    ]
    assert await play.vote_counts(db, live.id) == {2: 1}
    assert await play.vote_counts(db, held.id) == {1: 2}
    assert await play.vote_counts(db, closed.id) == {}


async def test_two_hundred_clicks_share_reads_and_writes(db):
    await bound(db)
    round_ = await opened(db)
    reads = []
    original = play.get_round

    async def counted_get_round(database, round_id):
        reads.append(round_id)
        return await original(database, round_id)

    cache = RoundCache(lambda: db)
    batcher = VoteBatcher(lambda: db, lambda: NOW)
    play.get_round, saved = counted_get_round, play.get_round
    try:
        rows = await asyncio.gather(*(cache.get(round_.id) for _ in range(200)))
        receipts = await asyncio.gather(
            *(batcher.cast(play.Ballot(round_.id, user, user % 3, 60)) for user in range(200))
        )
    finally:
        play.get_round = saved
    assert reads == [round_.id] and all(r == round_ for r in rows)
    assert all(r.counted for r in receipts)
    assert batcher.batches <= 2  # the first vote, then everyone who arrived meanwhile
    assert sum((await play.vote_counts(db, round_.id)).values()) == 200
