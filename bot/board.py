"""The channel's board: posting, retiring and refreshing its cards, and loading a card's clip.

A scene card opens the channel's next round; a mint card offers an unexplored branch; a
retired card keeps its tallies with the chosen branch marked and its buttons disabled. Card
refreshes after votes are coalesced to at most one edit per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Callable
from datetime import datetime

import discord
from discord.utils import MISSING

from bot import cards, rules
from bot.coalesce import Coalescer
from bot.waits import Waits
from world.play import CLOSED, VOTE, ChannelState, PlayStore, RoundState
from world.service import WorldService
from world.types import SceneView, Status

log = logging.getLogger(__name__)


class Board:
    def __init__(
        self,
        client: discord.Client,
        service: WorldService,
        play: PlayStore,
        *,
        waits: Waits,
        now: Callable[[], datetime],
    ) -> None:
        self.client = client
        self.service = service
        self.play = play
        self.waits = waits
        self.now = now
        self._card_edits: dict[int, Coalescer] = {}

    # -- where cards go --------------------------------------------------------------

    def messageable(self, channel_id: int) -> discord.abc.Messageable:
        channel = self.client.get_channel(channel_id)
        if isinstance(channel, discord.abc.Messageable):
            return channel
        return self.client.get_partial_messageable(channel_id)

    def upload_limit(self, channel_id: int) -> int:
        channel = self.client.get_channel(channel_id)
        guild = getattr(channel, "guild", None)
        return guild.filesize_limit if guild is not None else cards.DEFAULT_UPLOAD_LIMIT

    async def pause(self, seconds: float) -> None:
        await self.waits(asyncio.sleep(seconds), "pause between coalesced edits")

    def _edit(self, channel_id: int, message_id: int) -> discord.PartialMessage:
        messageable = self.messageable(channel_id)
        return messageable.get_partial_message(message_id)  # type: ignore[attr-defined]

    # -- posting ---------------------------------------------------------------------

    async def post_scene(self, state: ChannelState, view: SceneView) -> RoundState:
        """Open the channel's next round and post its scene card; returns the round."""
        now = self.now()
        closes = rules.closes_at(now, state.vote_seconds) if state.mode == VOTE else None
        opened = await self.play.open_round(
            channel_id=state.channel_id,
            world_id=state.world_id,
            path=view.path,
            mode=state.mode,
            closes_at=closes if view.choices else None,
            now=now,
        )
        media, upload = await self.clip(view, state.channel_id)
        layout = cards.scene_card(view, round=opened, media=media, reportable=True)
        message = await self.messageable(state.channel_id).send(
            view=layout, file=upload if upload is not None else MISSING
        )
        await self.play.set_round_message(opened.id, message.id)
        await self.play.set_channel_messages(state.channel_id, card_message_id=message.id)
        log.info(
            "scene card posted world=%s path=%s channel=%s round=%s mode=%s",
            state.world_id,
            view.path,
            state.channel_id,
            opened.id,
            state.mode,
        )
        return opened

    async def clip(
        self, view: SceneView, channel_id: int
    ) -> tuple[cards.Media, discord.File | None]:
        """How the card shows its clip: a link, or the file to upload with it."""
        media = cards.clip_media(view, self.upload_limit(channel_id))
        if media.filename is None or view.video_key is None:
            return media, None
        try:
            data = await self.service.clip_bytes(view)
        except Exception:
            log.warning(
                "clip unavailable world=%s path=%s", view.world_id, view.path, exc_info=True
            )
            return cards.Media(note="The clip could not be loaded right now."), None
        return media, discord.File(io.BytesIO(data), filename=media.filename)

    async def post_mint_card(self, state: ChannelState, view: SceneView) -> None:
        provider = self.service.provider(state.world_id)
        layout = cards.mint_card(
            view,
            channel_id=state.channel_id,
            provider_name=provider.display_name,
            needs_key=provider.needs_key,
        )
        message = await self.messageable(state.channel_id).send(view=layout)
        await self.play.set_channel_messages(state.channel_id, card_message_id=message.id)
        log.info(
            "mint card posted world=%s path=%s channel=%s status=%s",
            state.world_id,
            view.path,
            state.channel_id,
            view.status.value,
        )

    # -- retiring --------------------------------------------------------------------

    async def retire_card(
        self, closed: RoundState, winner: int | None, view: SceneView | None = None
    ) -> None:
        """Edit a finished round's card: buttons disabled, the chosen branch marked."""
        editor = self._card_edits.pop(closed.id, None)
        if editor is not None:
            await editor.close()
        if closed.message_id is None:
            return
        try:
            view = view or await self.service.view(closed.world_id, closed.path)
            counts = await self.play.vote_counts(closed.id) if closed.mode == VOTE else {}
            finished = RoundState(**{**closed.__dict__, "status": CLOSED, "winner_index": winner})
            media = cards.clip_media(view, self.upload_limit(closed.channel_id))
            layout = cards.scene_card(
                view, round=finished, tallies=counts, media=media, winner=winner
            )
            # A scene the admins hid loses its uploaded clip too, not only the card's text.
            removed = {"attachments": []} if view.status is Status.HIDDEN else {}
            await self._edit(closed.channel_id, closed.message_id).edit(view=layout, **removed)
        except discord.HTTPException:
            log.warning(
                "could not retire card world=%s path=%s round=%s",
                closed.world_id,
                closed.path,
                closed.id,
            )

    async def retire_mint_card(self, channel_id: int, label: str | None, path: str) -> None:
        """The channel's mint card loses its button once the branch is being minted."""
        state = await self.play.get_channel(channel_id)
        if state is None or state.card_message_id is None:
            return
        if state.card_message_id == await self.play.latest_round_message(channel_id):
            return  # the newest card is a scene card, already retired by its round
        await self.play.set_channel_messages(channel_id, card_message_id=None)
        notice = cards.notice_card(
            f"## Being minted\n-# {cards.breadcrumbs(path)}\n"
            f"**{cards.clip(label or 'The opening scene', 300)}** is being minted: "
            "follow the progress below.",
            colour=cards.COLOUR_MINT,
        )
        with contextlib.suppress(discord.HTTPException):
            await self._edit(channel_id, state.card_message_id).edit(view=notice)

    # -- refreshing ------------------------------------------------------------------

    def refresh_card_soon(self, round_state: RoundState) -> None:
        """Show new tallies on an open round's card, at most once per interval."""
        editor = self._card_edits.get(round_state.id)
        if editor is None:
            interval = self.service.settings.discord.progress_edit_seconds

            async def refresh() -> None:
                await self._refresh_card(round_state.id)

            editor = Coalescer(
                interval, refresh, name=f"card of round {round_state.id}", sleep=self.pause
            )
            self._card_edits[round_state.id] = editor
        editor.poke()

    async def _refresh_card(self, round_id: int) -> None:
        current = await self.play.get_round(round_id)
        if current is None or not current.is_open or current.message_id is None:
            return
        view = await self.service.view(current.world_id, current.path)
        counts = await self.play.vote_counts(round_id)
        media = cards.clip_media(view, self.upload_limit(current.channel_id))
        layout = cards.scene_card(view, round=current, tallies=counts, media=media, reportable=True)
        await self._edit(current.channel_id, current.message_id).edit(view=layout)

    async def close(self) -> None:
        for editor in list(self._card_edits.values()):
            await editor.close()
        self._card_edits.clear()
