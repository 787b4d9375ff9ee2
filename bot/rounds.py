"""Rounds: choice clicks (a vote, or in pick mode the decision), closing due votes, advancing.

A click answers first and works afterwards: before its response it does at most a cached
round read and a batched vote write (bot/votes.py), never a provider or storage call. Every
process closes due rounds; the database decides which one wins each (a conditional UPDATE).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import discord

from bot import cards, rules
from bot.board import Board
from bot.errors import Refusal
from bot.votes import RoundCache, VoteBatcher
from world import paths
from world.play import PICK, Ballot, PlayStore, RoundState
from world.service import WorldService
from world.types import ChildState, SceneView

if TYPE_CHECKING:
    from bot.director import Director

log = logging.getLogger(__name__)

STALE_ROUND = "That card is from a round that no longer exists; use the newest card in the channel."
ROUND_OVER = "This round is over and the story has moved on; use the newest card in the channel."


class Rounds:
    def __init__(
        self,
        service: WorldService,
        play: PlayStore,
        director: Director,
        *,
        now: Callable[[], datetime],
    ) -> None:
        self.service = service
        self.play = play
        self.director = director
        self.now = now
        self.cache = RoundCache(play)
        self.votes = VoteBatcher(play, now)

    @property
    def board(self) -> Board:
        return self.director.board

    async def close(self) -> None:
        await self.votes.close()

    async def next_closing(self) -> datetime | None:
        """When the next open round's countdown ends (any channel, any process)."""
        return await self.play.next_closing()

    async def on_choice(
        self, interaction: discord.Interaction, round_id: int, index: int, label: str | None
    ) -> None:
        """A click on a scene card's choice: a vote, or in pick mode the decision."""
        current = await self.cache.get(round_id)
        if current is None:
            raise Refusal(STALE_ROUND)
        if not current.is_open:
            raise Refusal(ROUND_OVER)
        if index >= paths.CHOICES_PER_SCENE:
            raise Refusal(STALE_ROUND)
        name = cards.choice_name(label, index)
        if current.mode == PICK:
            await self._pick(interaction, current, index, name)
        else:
            await self._vote(interaction, current, index, name)

    async def _pick(
        self, interaction: discord.Interaction, current: RoundState, index: int, name: str
    ) -> None:
        won = await self.play.close_round(current.id, index, self.now())
        self.cache.forget(current.id)
        if not won:
            raise Refusal("Someone else picked first; the story goes on with their choice.")
        await interaction.response.send_message(f"You picked **{name}**.", ephemeral=True)
        log.info(
            "round decided world=%s path=%s channel=%s round=%s choice=%d mode=pick",
            current.world_id,
            current.path,
            current.channel_id,
            current.id,
            index,
        )
        await self.advance(current, index, decided_by=interaction.user.id)

    async def _vote(
        self, interaction: discord.Interaction, current: RoundState, index: int, name: str
    ) -> None:
        vote_seconds = self.service.settings.discord.default_vote_seconds
        if current.closes_at is None:  # held without votes: this vote restarts the countdown
            state = await self.play.get_channel(current.channel_id)
            vote_seconds = state.vote_seconds if state is not None else vote_seconds
        receipt = await self.votes.cast(
            Ballot(current.id, interaction.user.id, index, vote_seconds)
        )
        if not receipt.counted:
            raise Refusal("Voting for this round just closed; your vote came too late.")
        log.debug(
            "vote world=%s path=%s round=%s choice=%d",
            current.world_id,
            current.path,
            current.id,
            index,
        )
        if receipt.countdown_started is not None:
            self.cache.forget(current.id)
            self.director.countdown_started(receipt.countdown_started)
        closes = receipt.countdown_started or current.closes_at
        until = f" until voting closes {rules.relative_time(closes)}" if closes else ""
        await interaction.response.send_message(
            f"You voted for **{name}**. You can change your vote{until}.", ephemeral=True
        )
        self.board.refresh_card_soon(current)

    async def close_due_rounds(self) -> int:
        """Close every vote whose time is up (called by the rounds loop in every process)."""
        closed = 0
        for due in await self.play.due_rounds(self.now()):
            try:
                closed += await self._close_due(due)
            except Exception:
                log.exception(
                    "closing round failed world=%s path=%s round=%s", due.world_id, due.path, due.id
                )
        return closed

    async def _close_due(self, due: RoundState) -> int:
        counts = await self.play.vote_counts(due.id)
        self.cache.forget(due.id)
        if not counts:
            if await self.play.hold_round(due.id):
                log.info(
                    "round held without votes world=%s path=%s channel=%s round=%s",
                    due.world_id,
                    due.path,
                    due.channel_id,
                    due.id,
                )
                self.board.refresh_card_soon(due)
            return 0
        view = await self.service.view(due.world_id, due.path)
        ready = {c.index for c in view.choices if c.state is ChildState.READY}
        winner = rules.winner(counts, ready)
        if winner is None or not await self.play.close_round(due.id, winner, self.now()):
            return 0  # another process closed it first
        log.info(
            "round closed world=%s path=%s channel=%s round=%s choice=%d votes=%d",
            due.world_id,
            due.path,
            due.channel_id,
            due.id,
            winner,
            sum(counts.values()),
        )
        await self.advance(due, winner, view=view)
        return 1

    async def advance(
        self,
        closed: RoundState,
        winner: int,
        *,
        view: SceneView | None = None,
        decided_by: int | None = None,
    ) -> None:
        """A round was won by `winner`: move the channel on and post what comes next."""
        child = paths.child(closed.path, winner)
        moved = await self.play.move_channel(
            closed.channel_id, child, self.now(), expect_path=closed.path
        )
        if moved:
            await self.director.show(closed.channel_id, mint_now=True, decided_by=decided_by)
        await self.board.retire_card(closed, winner, view)
