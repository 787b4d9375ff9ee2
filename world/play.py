"""Channel play in the database: bound channels, rounds and votes (`PlayStore`).

A front door that lets a group play together (the Discord bot's channels) keeps its state
here, so every button keeps working after a restart and several bot processes agree.
Everything a button needs lives here, so every button keeps working after a restart and
several bot processes agree. One async session per unit of work; every state change that
two processes could race on is a conditional UPDATE whose rowcount says who won.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Integer, column, exists, func, select, update, values
from sqlalchemy.ext.asyncio import AsyncSession

from world.db import Database
from world.models import Channel, Round, UTCDateTime, Vote
from world.scenes import dialect_insert

VOTE = "vote"
PICK = "pick"
MODES = (VOTE, PICK)
OPEN = "open"
CLOSED = "closed"
VOTE_CHUNK = 500  # ballots per INSERT (4 parameters each, well inside SQLite's limit)


@dataclass(frozen=True)
class ChannelState:
    channel_id: int
    guild_id: int
    world_id: str
    current_path: str
    mode: str
    vote_seconds: int
    active: bool
    card_message_id: int | None
    progress_message_id: int | None


@dataclass(frozen=True)
class RoundState:
    id: int
    channel_id: int
    world_id: str
    path: str
    mode: str
    status: str
    message_id: int | None
    opened_at: datetime
    closes_at: datetime | None
    winner_index: int | None

    @property
    def is_open(self) -> bool:
        return self.status == OPEN

    @classmethod
    def from_row(cls, row: Round) -> RoundState:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


def _channel_state(row: Channel) -> ChannelState:
    return ChannelState(**{f.name: getattr(row, f.name) for f in fields(ChannelState)})


def _round_state(row: Round) -> RoundState:
    return RoundState.from_row(row)


@dataclass(frozen=True)
class Ballot:
    """One member's vote as it arrives (a later ballot of the same member replaces it)."""

    round_id: int
    user_id: int
    choice_index: int
    vote_seconds: int  # the countdown a held round restarts with


@dataclass(frozen=True)
class VoteReceipt:
    counted: bool  # False: the round was closed
    countdown_started: datetime | None = None  # set when this vote restarted a held round


class PlayStore:
    """The one owner of the channels, rounds and votes tables (built once per process)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- channels ------------------------------------------------------------------

    async def get_channel(self, channel_id: int) -> ChannelState | None:
        async with self.db.session() as session:
            row = await session.get(Channel, channel_id)
            return _channel_state(row) if row is not None else None

    async def bind_channel(
        self,
        *,
        channel_id: int,
        guild_id: int,
        world_id: str,
        mode: str,
        vote_seconds: int,
        path: str,
        now: datetime,
    ) -> ChannelState:
        """Bind (or re-bind) a channel to a world at `path`; any open round there closes."""
        async with self.db.transaction() as session:
            await _close_open_rounds(session, channel_id, now)
            values = {
                "guild_id": guild_id,
                "world_id": world_id,
                "current_path": path,
                "mode": mode,
                "vote_seconds": vote_seconds,
                "active": True,
                "updated_at": now,
            }
            stmt = dialect_insert(session)(Channel).values(
                channel_id=channel_id, created_at=now, **values
            )
            await session.execute(
                stmt.on_conflict_do_update(index_elements=["channel_id"], set_=values)
            )
            row = await session.get(Channel, channel_id, populate_existing=True)
            assert row is not None
            return _channel_state(row)

    async def stop_channel(self, channel_id: int, now: datetime) -> RoundState | None:
        """Deactivate a channel; returns the round that was open there, now closed."""
        async with self.db.transaction() as session:
            closed = await _close_open_rounds(session, channel_id, now)
            await session.execute(
                update(Channel)
                .where(Channel.channel_id == channel_id)
                .values(active=False, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            return closed

    async def move_channel(
        self, channel_id: int, path: str, now: datetime, *, expect_path: str | None = None
    ) -> bool:
        """Point an active channel at `path` (only if it is still at `expect_path`, when given)."""
        async with self.db.transaction() as session:
            query = update(Channel).where(
                Channel.channel_id == channel_id, Channel.active.is_(True)
            )
            if expect_path is not None:
                query = query.where(Channel.current_path == expect_path)
            result = await session.execute(
                query.values(current_path=path, updated_at=now).execution_options(
                    synchronize_session=False
                )
            )
            return result.rowcount == 1

    async def relocate_channel(
        self, channel_id: int, path: str, now: datetime
    ) -> RoundState | None:
        """An admin moved the channel: close its open round and point it at `path`."""
        async with self.db.transaction() as session:
            closed = await _close_open_rounds(session, channel_id, now)
            await session.execute(
                update(Channel)
                .where(Channel.channel_id == channel_id)
                .values(current_path=path, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            return closed

    async def configure_channel(
        self, channel_id: int, *, mode: str | None, vote_seconds: int | None, now: datetime
    ) -> ChannelState | None:
        values: dict[str, Any] = {"updated_at": now}
        if mode is not None:
            values["mode"] = mode
        if vote_seconds is not None:
            values["vote_seconds"] = vote_seconds
        async with self.db.transaction() as session:
            await session.execute(
                update(Channel)
                .where(Channel.channel_id == channel_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            row = await session.get(Channel, channel_id, populate_existing=True)
            return _channel_state(row) if row is not None else None

    async def set_channel_messages(
        self,
        channel_id: int,
        *,
        card_message_id: int | type[Ellipsis] | None = ...,
        progress_message_id: int | type[Ellipsis] | None = ...,
    ) -> None:
        values: dict[str, Any] = {}
        if card_message_id is not ...:
            values["card_message_id"] = card_message_id
        if progress_message_id is not ...:
            values["progress_message_id"] = progress_message_id
        if not values:
            return
        async with self.db.transaction() as session:
            await session.execute(
                update(Channel)
                .where(Channel.channel_id == channel_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    async def active_channels(self) -> list[ChannelState]:
        async with self.db.session() as session:
            rows = await session.scalars(select(Channel).where(Channel.active.is_(True)))
            return [_channel_state(row) for row in rows]

    async def channels_at(self, world_id: str, path: str) -> list[ChannelState]:
        """Active channels currently at this branch (e.g. waiting for it to be minted)."""
        async with self.db.session() as session:
            rows = await session.scalars(
                select(Channel).where(
                    Channel.world_id == world_id,
                    Channel.current_path == path,
                    Channel.active.is_(True),
                )
            )
            return [_channel_state(row) for row in rows]

    # -- rounds --------------------------------------------------------------------------

    async def open_round(
        self,
        *,
        channel_id: int,
        world_id: str,
        path: str,
        mode: str,
        closes_at: datetime | None,
        now: datetime,
    ) -> RoundState:
        """Open the channel's next round (closing any round still open there)."""
        async with self.db.transaction() as session:
            await _close_open_rounds(session, channel_id, now)
            row = Round(
                channel_id=channel_id,
                world_id=world_id,
                path=path,
                mode=mode,
                status=OPEN,
                opened_at=now,
                closes_at=closes_at,
            )
            session.add(row)
            await session.flush()
            return _round_state(row)

    async def get_round(self, round_id: int) -> RoundState | None:
        async with self.db.session() as session:
            row = await session.get(Round, round_id)
            return _round_state(row) if row is not None else None

    async def open_round_of(self, channel_id: int) -> RoundState | None:
        async with self.db.session() as session:
            row = await session.scalar(
                select(Round).where(Round.channel_id == channel_id, Round.status == OPEN)
            )
            return _round_state(row) if row is not None else None

    async def latest_round_message(self, channel_id: int) -> int | None:
        """The message of the channel's newest round (its newest scene card)."""
        async with self.db.session() as session:
            return await session.scalar(
                select(Round.message_id)
                .where(Round.channel_id == channel_id)
                .order_by(Round.id.desc())
                .limit(1)
            )

    async def set_round_message(self, round_id: int, message_id: int) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(Round)
                .where(Round.id == round_id)
                .values(message_id=message_id)
                .execution_options(synchronize_session=False)
            )

    async def close_round(self, round_id: int, winner_index: int, now: datetime) -> bool:
        """Close an open round with its winner. Exactly one caller, in any process, gets True."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(Round)
                .where(Round.id == round_id, Round.status == OPEN)
                .values(status=CLOSED, winner_index=winner_index, closed_at=now)
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1

    async def hold_round(self, round_id: int) -> bool:
        """A round whose time ran out without votes stays open, without a countdown."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(Round)
                .where(Round.id == round_id, Round.status == OPEN)
                .values(closes_at=None)
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1

    async def due_rounds(self, now: datetime, limit: int = 100) -> list[RoundState]:
        async with self.db.session() as session:
            rows = await session.scalars(
                select(Round)
                .where(Round.status == OPEN, Round.closes_at <= now)
                .order_by(Round.closes_at)
                .limit(limit)
            )
            return [_round_state(row) for row in rows]

    async def next_closing(self) -> datetime | None:
        """When the next open round's countdown ends (any channel, any process)."""
        async with self.db.session() as session:
            return await session.scalar(
                select(func.min(Round.closes_at)).where(Round.status == OPEN)
            )

    # -- votes ---------------------------------------------------------------------------

    async def cast_votes(self, ballots: Sequence[Ballot], now: datetime) -> list[VoteReceipt]:
        """Record (or change) many votes in one transaction, each only while its round is open.

        One INSERT ... SELECT ... WHERE the round is open ... ON CONFLICT DO UPDATE per chunk of
        ballots, so the transaction holds SQLite's write lock from its first statement (no
        read-then-upgrade race with a concurrent close). A round whose countdown ran out without
        votes gets a fresh countdown from its first new vote.
        """
        latest: dict[tuple[int, int], Ballot] = {}
        for ballot in ballots:  # a member who clicked twice in one batch: the later click counts
            latest.pop((ballot.round_id, ballot.user_id), None)
            latest[(ballot.round_id, ballot.user_id)] = ballot
        unique = list(latest.values())
        round_ids = sorted({b.round_id for b in unique})
        restarted: dict[int, datetime] = {}
        async with self.db.transaction() as session:
            insert = dialect_insert(session)
            for start in range(0, len(unique), VOTE_CHUNK):
                chunk = unique[start : start + VOTE_CHUNK]
                incoming = (
                    values(
                        column("round_id", BigInteger),
                        column("user_id", BigInteger),
                        column("choice_index", Integer),
                        column("voted_at", UTCDateTime()),
                        name="incoming",
                    )
                    .data([(b.round_id, b.user_id, b.choice_index, now) for b in chunk])
                    .cte("incoming")
                )
                source = select(
                    incoming.c.round_id,
                    incoming.c.user_id,
                    incoming.c.choice_index,
                    incoming.c.voted_at,
                ).where(exists().where(Round.id == incoming.c.round_id, Round.status == OPEN))
                stmt = insert(Vote).from_select(
                    ["round_id", "user_id", "choice_index", "voted_at"], source
                )
                stmt = stmt.on_conflict_do_update(
                    index_elements=["round_id", "user_id"],
                    set_={
                        "choice_index": stmt.excluded.choice_index,
                        "voted_at": stmt.excluded.voted_at,
                    },
                )
                await session.execute(stmt)
            open_rounds = dict(
                (
                    await session.execute(
                        select(Round.id, Round.closes_at).where(
                            Round.id.in_(round_ids), Round.status == OPEN
                        )
                    )
                ).all()
            )
            for round_id, closes_at in open_rounds.items():
                if closes_at is not None:
                    continue
                first = next(b for b in unique if b.round_id == round_id)
                closes = now + timedelta(seconds=first.vote_seconds)
                result = await session.execute(
                    update(Round)
                    .where(Round.id == round_id, Round.status == OPEN, Round.closes_at.is_(None))
                    .values(closes_at=closes)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:
                    restarted[round_id] = closes
        receipts = []
        for ballot in ballots:
            counted = ballot.round_id in open_rounds
            receipts.append(
                VoteReceipt(counted, restarted.pop(ballot.round_id, None) if counted else None)
            )
        return receipts

    async def vote_counts(self, round_id: int) -> dict[int, int]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(Vote.choice_index, func.count())
                .where(Vote.round_id == round_id)
                .group_by(Vote.choice_index)
            )
            return {index: count for index, count in rows}


async def _close_open_rounds(
    session: AsyncSession, channel_id: int, now: datetime
) -> RoundState | None:
    """Close the channel's open round, if any, in one write (UPDATE ... RETURNING)."""
    result = await session.execute(
        update(Round)
        .where(Round.channel_id == channel_id, Round.status == OPEN)
        .values(status=CLOSED, closed_at=now)
        .returning(Round)
        .execution_options(synchronize_session=False)
    )
    row = result.scalars().first()
    return _round_state(row) if row is not None else None
