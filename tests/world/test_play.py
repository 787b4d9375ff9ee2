"""Channel play in the database: what several processes agree on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.votes import RoundCache, VoteBatcher
from tests.fixtures.play import cast_vote, member_vote, rounds_of
from world import play, scenes
from world.db import Database
from world.play import PlayStore

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


@pytest.fixture
def store(db: Database) -> PlayStore:
    return PlayStore(db)


async def bound(store: PlayStore, channel_id: int = 5, mode: str = play.VOTE) -> play.ChannelState:
    return await store.bind_channel(
        channel_id=channel_id,
        guild_id=1,
        world_id="default",
        mode=mode,
        vote_seconds=60,
        path="",
        now=NOW,
    )


async def opened(
    store: PlayStore, channel_id: int = 5, closes: datetime | None = NOW + timedelta(seconds=60)
):
    return await store.open_round(
        channel_id=channel_id,
        world_id="default",
        path="",
        mode=play.VOTE,
        closes_at=closes,
        now=NOW,
    )


async def test_one_vote_per_member_changeable_while_open(store):
    await bound(store)
    round_ = await opened(store)
    assert (await cast_vote(store, round_.id, 10, 1, NOW, vote_seconds=60)).counted
    assert (await cast_vote(store, round_.id, 10, 2, NOW, vote_seconds=60)).counted
    assert (await cast_vote(store, round_.id, 11, 2, NOW, vote_seconds=60)).counted
    assert await store.vote_counts(round_.id) == {2: 2}
    assert await member_vote(store, round_.id, 10) == 2

    assert await store.close_round(round_.id, 2, NOW)
    late = await cast_vote(store, round_.id, 12, 0, NOW, vote_seconds=60)
    assert not late.counted
    assert await store.vote_counts(round_.id) == {2: 2}


async def test_only_one_of_many_closers_wins(store):
    await bound(store)
    round_ = await opened(store)
    won = await asyncio.gather(*(store.close_round(round_.id, i % 3, NOW) for i in range(20)))
    assert won.count(True) == 1
    closed = await store.get_round(round_.id)
    assert closed is not None and not closed.is_open


async def test_a_channel_has_one_open_round(store):
    await bound(store)
    first = await opened(store)
    second = await opened(store)
    history = await rounds_of(store, 5)
    assert [r.id for r in history if r.is_open] == [second.id]
    assert (await store.get_round(first.id)).status == play.CLOSED
    assert (await store.open_round_of(5)).id == second.id
    assert await store.latest_round_message(5) is None


async def test_due_rounds_and_a_held_round(store):
    await bound(store)
    round_ = await opened(store)
    assert await store.due_rounds(NOW + timedelta(seconds=59)) == []
    [due] = await store.due_rounds(NOW + timedelta(seconds=60))
    assert due.id == round_.id
    assert await store.next_closing() == NOW + timedelta(seconds=60)

    assert await store.hold_round(round_.id)  # time ran out without votes
    assert await store.due_rounds(NOW + timedelta(days=1)) == []
    assert await store.next_closing() is None
    later = NOW + timedelta(minutes=5)
    receipt = await cast_vote(store, round_.id, 10, 0, later, vote_seconds=30)
    assert receipt.countdown_started == later + timedelta(seconds=30)
    again = await cast_vote(store, round_.id, 11, 0, later, vote_seconds=30)
    assert again.counted and again.countdown_started is None


async def test_moving_stopping_and_configuring_a_channel(store):
    await bound(store)
    round_ = await opened(store)
    assert await store.move_channel(5, "1", NOW, expect_path="")
    assert not await store.move_channel(5, "2", NOW, expect_path="")  # someone moved it already
    assert (await store.get_channel(5)).current_path == "1"

    state = await store.configure_channel(5, mode=play.PICK, vote_seconds=None, now=NOW)
    assert state.mode == play.PICK and state.vote_seconds == 60

    closed = await store.stop_channel(5, NOW)
    assert closed is not None and closed.id == round_.id and not closed.is_open
    assert not (await store.get_channel(5)).active
    assert await store.channels_at("default", "1") == []

    resumed = await bound(store)  # binding again reactivates it
    assert resumed.active and resumed.current_path == ""


async def test_votes_arriving_together_are_written_together(store):
    await bound(store, 5)
    await bound(store, 6)
    await bound(store, 7)
    live, held, closed = (
        await opened(store, 5),
        await opened(store, 6, closes=None),
        await opened(store, 7),
    )
    assert await store.close_round(closed.id, 0, NOW)

    receipts = await store.cast_votes(
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
    assert await store.vote_counts(live.id) == {2: 1}
    assert await store.vote_counts(held.id) == {1: 2}
    assert await store.vote_counts(closed.id) == {}


class CountingStore(PlayStore):
    """Counts the round reads that reach the database."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.round_reads: list[int] = []

    async def get_round(self, round_id: int) -> play.RoundState | None:
        self.round_reads.append(round_id)
        return await super().get_round(round_id)


async def test_two_hundred_clicks_share_reads_and_writes(db):
    store = CountingStore(db)
    await bound(store)
    round_ = await opened(store)

    cache = RoundCache(store)
    batcher = VoteBatcher(store, lambda: NOW)
    rows = await asyncio.gather(*(cache.get(round_.id) for _ in range(200)))
    receipts = await asyncio.gather(
        *(batcher.cast(play.Ballot(round_.id, user, user % 3, 60)) for user in range(200))
    )
    assert store.round_reads == [round_.id] and all(r == round_ for r in rows)
    assert all(r.counted for r in receipts)
    assert batcher.batches <= 2  # the first vote, then everyone who arrived meanwhile
    assert sum((await store.vote_counts(round_.id)).values()) == 200
