"""The Director: what each bound channel shows, and the admin's steering of it.

It binds and unbinds channels (start, stop, goto, settings), decides what a channel needs at
its current branch (`show`: a scene card with a new round, a mint under way, or a mint
card), posts the next card when a branch becomes ready, and after a restart resumes the
channels this process serves. Cards are posted by the board (bot/board.py), mints followed
by bot/progress.py; clicks are handled by bot/rounds.py and bot/minting.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime
from typing import Any

import discord

from bot import cards
from bot.board import Board
from bot.errors import Refusal
from bot.minting import Contributors
from bot.progress import Progress
from bot.waits import Waits
from world.play import VOTE, ChannelState, PlayStore
from world.service import WorldService
from world.types import ClaimOutcome, SceneEvent, SceneView, Status

log = logging.getLogger(__name__)

NOT_ACTIVE = "No adventure is running in this channel; an admin can use /adventure start."


class Director:
    def __init__(
        self,
        client: discord.Client,
        service: WorldService,
        play: PlayStore,
        *,
        waits: Waits,
        contributors: Contributors,
        now: Callable[[], datetime],
    ) -> None:
        self.client = client
        self.service = service
        self.play = play
        self.now = now
        self.contributors = contributors
        self.board = Board(client, service, play, waits=waits, now=now)
        self.progress = Progress(
            service,
            play,
            self.board,
            waits=waits,
            on_ready=self.branch_ready,
            on_stopped=self._mint_stopped,
        )
        self._locks: dict[int, asyncio.Lock] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._alarm: Callable[[datetime], None] = lambda closes_at: None

    # -- plumbing --------------------------------------------------------------------

    def _lock(self, channel_id: int) -> asyncio.Lock:
        lock = self._locks.get(channel_id)
        if lock is None:
            lock = self._locks[channel_id] = asyncio.Lock()
        return lock

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Work that goes on after a click was answered."""
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def on_countdown(self, alarm: Callable[[datetime], None]) -> None:
        """Call `alarm` with every new closing time (the rounds loop wakes up for it)."""
        self._alarm = alarm

    def countdown_started(self, closes_at: datetime) -> None:
        self._alarm(closes_at)

    async def close(self) -> None:
        await self.board.close()
        await self.progress.close()
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def world_for(self, state: ChannelState | None) -> str:
        return state.world_id if state is not None else self.service.settings.default_world.id

    async def world_of_channel(self, channel_id: int | None) -> str:
        """The world a channel plays (the default world for a channel never bound)."""
        state = await self.play.get_channel(channel_id) if channel_id else None
        return self.world_for(state)

    # -- admin: binding channels -------------------------------------------------------

    async def start(
        self, channel_id: int, guild_id: int, *, mode: str | None, vote_seconds: int | None
    ) -> ChannelState:
        """Bind a channel (resuming where it was, if it played before) and post its card."""
        previous = await self.play.get_channel(channel_id)
        replaced = await self.play.open_round_of(channel_id)
        discord_settings = self.service.settings.discord
        state = await self.play.bind_channel(
            channel_id=channel_id,
            guild_id=guild_id,
            world_id=self.world_for(previous),
            mode=mode or (previous.mode if previous else VOTE),
            vote_seconds=vote_seconds
            or (previous.vote_seconds if previous else discord_settings.default_vote_seconds),
            path=previous.current_path if previous else "",
            now=self.now(),
        )
        log.info(
            "adventure started world=%s path=%s channel=%s mode=%s",
            state.world_id,
            state.current_path,
            channel_id,
            state.mode,
        )
        if replaced is not None:  # started again while running: the old card stops taking votes
            await self.board.retire_card(replaced, winner=None)
        await self.show(channel_id, mint_now=True)
        return state

    async def stop(self, channel_id: int) -> bool:
        state = await self.play.get_channel(channel_id)
        if state is None or not state.active:
            return False
        closed = await self.play.stop_channel(channel_id, self.now())
        if closed is not None:
            await self.board.retire_card(closed, winner=None)
        log.info(
            "adventure stopped world=%s path=%s channel=%s",
            state.world_id,
            state.current_path,
            channel_id,
        )
        return True

    async def goto(self, channel_id: int, path: str) -> SceneView:
        """Move an active channel to `path` (the opening scene, or any reachable branch)."""
        state = await self.active_channel(channel_id)
        view = await self.service.view(state.world_id, path)  # raises InvalidBranch
        async with self._lock(channel_id):
            closed = await self.play.relocate_channel(channel_id, path, self.now())
        if closed is not None:
            await self.board.retire_card(closed, winner=None)
        log.info("adventure moved world=%s path=%s channel=%s", state.world_id, path, channel_id)
        await self.show(channel_id, mint_now=True)
        return view

    async def configure(
        self, channel_id: int, *, mode: str | None, vote_seconds: int | None
    ) -> ChannelState:
        await self.active_channel(channel_id)
        state = await self.play.configure_channel(
            channel_id, mode=mode, vote_seconds=vote_seconds, now=self.now()
        )
        assert state is not None
        log.info(
            "adventure configured world=%s channel=%s mode=%s vote_seconds=%s",
            state.world_id,
            channel_id,
            state.mode,
            state.vote_seconds,
        )
        return state

    async def active_channel(self, channel_id: int) -> ChannelState:
        state = await self.play.get_channel(channel_id)
        if state is None or not state.active:
            raise Refusal(NOT_ACTIVE)
        return state

    # -- what a channel sees -----------------------------------------------------------

    async def show(
        self, channel_id: int, *, mint_now: bool = False, decided_by: int | None = None
    ) -> None:
        """Post what the channel needs at its current branch: a scene card (with a new round),
        progress of a mint under way, or a mint card.

        `mint_now` (a decision was just made): on a world whose provider needs no key an
        unexplored branch starts minting at once instead of waiting for a click.
        """
        async with self._lock(channel_id):
            state = await self.play.get_channel(channel_id)
            if state is None or not state.active:
                return
            view = await self.service.view(state.world_id, state.current_path)
            if view.is_ready:
                current = await self.play.open_round_of(channel_id)
                if current is not None and current.path == view.path and current.message_id:
                    return  # its card is already up
                await self._post_scene(state, view)
                return
            if view.status is Status.QUEUED:
                self.progress.follow(state.channel_id, state.world_id, view.path)
                return
            provider = self.service.provider(state.world_id)
            if mint_now and not provider.needs_key and view.status is Status.PENDING:
                result = await self.service.claim(
                    state.world_id,
                    view.path,
                    None,
                    str(decided_by) if decided_by else None,
                    guild=str(state.guild_id),
                )
                if result.outcome is ClaimOutcome.QUEUED:
                    self.progress.follow(state.channel_id, state.world_id, view.path)
                    return
                if result.outcome is ClaimOutcome.READY:
                    view = await self.service.view(state.world_id, view.path)
                    await self._post_scene(state, view)
                    return
            await self.board.post_mint_card(state, view)

    async def _post_scene(self, state: ChannelState, view: SceneView) -> None:
        opened = await self.board.post_scene(state, view)
        if opened.closes_at is not None:
            self.countdown_started(opened.closes_at)

    async def branch_ready(self, world_id: str, path: str) -> None:
        """A branch became ready: every channel waiting at it gets its scene card."""
        self.contributors.forget(world_id, path)
        for state in await self.play.channels_at(world_id, path):
            await self.show(state.channel_id)

    async def _mint_stopped(
        self, channel_id: int, world_id: str, path: str, final: SceneEvent
    ) -> None:
        await self.contributors.tell(
            world_id, path, final.status, final.failure_code, final.failure_detail
        )
        state = await self.play.get_channel(channel_id)
        if state is not None and state.active and state.current_path == path:
            await self.show(channel_id)  # the mint card again (or a retry card)

    async def resume(self) -> None:
        """After a start: follow mints the channels wait for; post cards that went missing.

        Only channels of servers this process serves: with several processes (Discord shards),
        each resumes its own servers and no card or progress message is posted twice.
        """
        for state in await self.play.active_channels():
            if self.client.get_guild(state.guild_id) is None:
                continue
            try:
                current = await self.play.open_round_of(state.channel_id)
                if current is not None and current.message_id is not None:
                    continue  # its card's buttons work from the database
                view = await self.service.view(state.world_id, state.current_path)
                if view.status is Status.QUEUED:
                    self.progress.follow(state.channel_id, state.world_id, view.path)
                elif view.is_ready:
                    await self.show(state.channel_id)
            except Exception:
                log.exception(
                    "resuming channel failed world=%s channel=%s", state.world_id, state.channel_id
                )

    # -- reading -----------------------------------------------------------------------

    async def where(self, channel_id: int) -> str:
        state = await self.active_channel(channel_id)
        titled = await self.service.trail(state.world_id, state.current_path)
        return cards.where_text(titled, state.current_path)

    async def explored(
        self, channel_id: int | None, prefix: str
    ) -> Iterable[tuple[str, str | None]]:
        world_id = await self.world_of_channel(channel_id)
        return await self.service.explored_paths(world_id, prefix, limit=25)
