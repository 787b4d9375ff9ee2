"""Following a mint: one bot-owned progress message per channel, edited at a throttled rate.

One follower task per (channel, branch), whoever asked first. When the branch is ready or
the mint ends, the follower writes the outcome and hands over to the callbacks it was built
with (the director posts what the channel needs next).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot import cards
from bot.board import Board
from bot.coalesce import Coalescer
from bot.waits import Waits
from world.play import PlayStore
from world.service import WorldService
from world.types import SceneEvent, Status

log = logging.getLogger(__name__)

OnReady = Callable[[str, str], Awaitable[None]]
OnStopped = Callable[[int, str, str, SceneEvent], Awaitable[None]]


class Progress:
    def __init__(
        self,
        service: WorldService,
        play: PlayStore,
        board: Board,
        *,
        waits: Waits,
        on_ready: OnReady,
        on_stopped: OnStopped,
    ) -> None:
        self.service = service
        self.play = play
        self.board = board
        self.waits = waits
        self.on_ready = on_ready  # (world_id, path): the branch is ready
        self.on_stopped = on_stopped  # (channel_id, world_id, path, final event)
        self._followers: dict[tuple[int, str], asyncio.Task[None]] = {}

    async def follow_branch(self, world_id: str, path: str) -> None:
        """Follow a mint in every channel waiting at its branch."""
        for state in await self.play.channels_at(world_id, path):
            self.follow(state.channel_id, world_id, path)

    def follow(self, channel_id: int, world_id: str, path: str) -> None:
        key = (channel_id, path)
        running = self._followers.get(key)
        if running is not None and not running.done():
            return
        task = asyncio.create_task(
            self._watch(channel_id, world_id, path),
            name=f"follow {world_id}/{path} in {channel_id}",
        )
        self._followers[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))

    def _forget(self, key: tuple[int, str], task: asyncio.Task[None]) -> None:
        if self._followers.get(key) is task:
            del self._followers[key]

    async def close(self) -> None:
        tasks = list(self._followers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._followers.clear()

    async def _watch(self, channel_id: int, world_id: str, path: str) -> None:
        try:
            await self._follow_to_the_end(channel_id, world_id, path)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "following a mint failed world=%s path=%s channel=%s", world_id, path, channel_id
            )

    async def _follow_to_the_end(self, channel_id: int, world_id: str, path: str) -> None:
        start = await self.service.view(world_id, path)
        label = start.choice_label
        await self.board.retire_mint_card(channel_id, label, path)
        place = self.service.queue_position(world_id, path)  # waiting for a generation slot
        if place is not None:
            waiting: str | None = cards.queue_wait_text(place)
        else:
            waiting = None if start.progress_known else cards.stage_wait_text("queued")
        message = await self.board.messageable(channel_id).send(
            view=cards.progress_card(label, path, start.progress, stage="queued", waiting=waiting)
        )
        await self.play.set_channel_messages(channel_id, progress_message_id=message.id)
        latest: dict[str, Any] = {"progress": start.progress, "stage": "queued", "waiting": waiting}

        async def edit_progress() -> None:
            await message.edit(
                view=cards.progress_card(
                    label,
                    path,
                    latest["progress"],
                    stage=latest["stage"],
                    waiting=latest["waiting"],
                )
            )

        editor = Coalescer(
            self.service.settings.discord.progress_edit_seconds,
            edit_progress,
            name=f"progress {world_id}/{path}",
            sleep=self.board.pause,
        )
        editor.mark_ran()  # the message was just posted
        final = None
        async with self.service.subscribe(world_id, path) as events:
            while final is None:
                try:
                    event = await self.waits(anext(events), "progress of a mint")
                except StopAsyncIteration:
                    break
                place = self.service.queue_position(world_id, path)
                if place is not None and event.status is Status.QUEUED:
                    waiting = cards.queue_wait_text(place)
                elif event.elapsed_seconds is not None:
                    waiting = cards.render_wait_text(
                        event.provider_status, event.elapsed_seconds, event.typical_seconds
                    )
                elif not start.progress_known:
                    waiting = cards.stage_wait_text(event.stage)
                else:
                    waiting = None
                if event.status is not Status.QUEUED:
                    final = event
                elif (event.progress, event.stage, waiting) != (
                    latest["progress"],
                    latest["stage"],
                    latest["waiting"],
                ):
                    latest.update(
                        progress=event.progress,
                        stage=event.stage or latest["stage"],
                        waiting=waiting,
                    )
                    editor.poke()
        await editor.close()
        if final is None:
            return
        if final.status is Status.READY:
            await message.edit(
                view=cards.progress_card(label, path, 100, outcome="Done: the new scene is below.")
            )
            log.info(
                "mint followed to the end world=%s path=%s channel=%s", world_id, path, channel_id
            )
            await self.on_ready(world_id, path)
            return
        reason = cards.failure_reason(final.failure_code, final.failure_detail)
        if final.status is Status.FAILED:
            outcome = f"Minting failed: {reason}. An admin or anyone with a key can retry it."
        elif final.failure_code:
            outcome = (
                f"Minting stopped: {reason}. The branch is unexplored again; anyone can mint it."
            )
        else:
            outcome = "Minting was stopped. The branch is unexplored again; anyone can mint it."
        await message.edit(view=cards.progress_card(label, path, 0, outcome=outcome, failed=True))
        log.info(
            "mint ended world=%s path=%s channel=%s status=%s code=%s",
            world_id,
            path,
            channel_id,
            final.status.value,
            final.failure_code,
        )
        await self.on_stopped(channel_id, world_id, path, final)
