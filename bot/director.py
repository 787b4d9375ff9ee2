"""The Director runs the story in every bound channel.

It posts scene and mint cards, records votes and picks, closes rounds, starts mints and
follows them on one bot-owned progress message per channel. Channel state lives in the
database (bot/play.py); what is kept here is only in-process bookkeeping (running progress
followers, pending coalesced edits, per-channel locks) that a restart may lose safely.

Click handlers answer first and work afterwards: before the first response they do at most a
couple of indexed database reads (and a vote write), never a provider or storage call.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import ui
from discord.utils import MISSING

from bot import ids, play, render, rounds
from bot.coalesce import Coalescer
from bot.components import KeyModal, NewKeyButton, SavedKeyButton
from bot.errors import Refusal
from bot.play import PICK, VOTE, ChannelState, RoundState
from bot.votes import RoundCache, VoteBatcher
from world import paths, scenes
from world.logsafe import forget_secret, register_secret
from world.providers.base import ProviderError
from world.service import FINAL_FAILURES, InvalidBranch, WorldService
from world.types import (
    UNCERTAIN,
    ChildState,
    ClaimOutcome,
    ClaimResult,
    Credentials,
    SceneView,
    Status,
)

if TYPE_CHECKING:
    from bot.app import SharedWorldBot

log = logging.getLogger(__name__)
T = TypeVar("T")

STALE_ROUND = "That card is from a round that no longer exists; use the newest card in the channel."
ROUND_OVER = "This round is over and the story has moved on; use the newest card in the channel."
NOT_RUNNING = "No adventure is running in that channel any more."
MOVED_ON = "The story has moved on since this card was posted; use the newest card in the channel."

# Plain, key-free reasons for the codes a provider error can carry.
FAILURE_REASONS = {
    "invalid_key": "the provider rejected the contributor's key",
    "quota": "the contributor's key ran out of quota",
    "rate_limited": "the provider is rate-limiting the contributor's key",
    "permission": "the contributor's key may not use this video model",
    "no_video_access": "the contributor's key is a free-tier key, which cannot make videos",
    "blocked": "the video provider refused to make this scene",
    "storage": "the clip could not be stored yet",
}


def failure_reason(code: str | None, detail: str | None) -> str:
    if code in FAILURE_REASONS:
        return FAILURE_REASONS[code]
    return (detail or "something went wrong while making it").rstrip(".")


def _choice_name(label: str | None, index: int) -> str:
    """The clicked button's label without its state suffix ("2. Hide · instant" -> "2. Hide")."""
    if not label:
        return f"choice {index + 1}"
    return label.split(" · ", 1)[0]


async def _await(awaitable: Awaitable[T], reason: str) -> T:
    return await awaitable


class Director:
    def __init__(self, bot: SharedWorldBot) -> None:
        self.bot = bot
        # How the director waits on things outside a click's handling: a mint's progress from
        # the world engine, the pause between coalesced edits. A test harness with a virtual
        # clock (SimCord) swaps in its declared wait, so these never race its clock.
        self.wait_external: Callable[[Awaitable[T], str], Awaitable[T]] = _await
        self._followers: dict[tuple[int, str], asyncio.Task[None]] = {}
        self._contributors: dict[tuple[str, str], list[discord.Interaction]] = {}
        self._card_edits: dict[int, Coalescer] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.rounds = RoundCache(lambda: self.db)
        self.votes = VoteBatcher(lambda: self.db, self.now)
        # Set by the rounds loop: called with each new closing time so it wakes up for it.
        self.on_countdown: Callable[[datetime], None] = lambda closes_at: None

    # -- plumbing ------------------------------------------------------------------

    @property
    def service(self) -> WorldService:
        return self.bot.service

    @property
    def db(self) -> Any:
        return self.service.db

    @staticmethod
    def now() -> datetime:
        return discord.utils.utcnow()

    def _lock(self, channel_id: int) -> asyncio.Lock:
        lock = self._locks.get(channel_id)
        if lock is None:
            lock = self._locks[channel_id] = asyncio.Lock()
        return lock

    def _messageable(self, channel_id: int) -> discord.abc.Messageable:
        channel = self.bot.get_channel(channel_id)
        if isinstance(channel, discord.abc.Messageable):
            return channel
        return self.bot.get_partial_messageable(channel_id)

    def _upload_limit(self, channel_id: int) -> int:
        channel = self.bot.get_channel(channel_id)
        guild = getattr(channel, "guild", None)
        return guild.filesize_limit if guild is not None else render.DEFAULT_UPLOAD_LIMIT

    async def _pause(self, seconds: float) -> None:
        await self.wait_external(asyncio.sleep(seconds), "pause between coalesced edits")

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def close(self) -> None:
        await self.votes.close()
        tasks = [*self._followers.values(), *self._background]
        for editor in list(self._card_edits.values()):
            await editor.close()
        self._card_edits.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._followers.clear()

    def world_for(self, state: ChannelState | None) -> str:
        return state.world_id if state is not None else self.service.settings.default_world.id

    # -- admin: binding channels ------------------------------------------------------

    async def start(
        self, channel_id: int, guild_id: int, *, mode: str | None, vote_seconds: int | None
    ) -> ChannelState:
        """Bind a channel (resuming where it was, if it played before) and post its card."""
        previous = await play.get_channel(self.db, channel_id)
        replaced = await play.open_round_of(self.db, channel_id)
        discord_settings = self.service.settings.discord
        world_id = self.world_for(previous)
        state = await play.bind_channel(
            self.db,
            channel_id=channel_id,
            guild_id=guild_id,
            world_id=world_id,
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
            await self._retire_card(replaced, winner=None)
        await self.show(channel_id, mint_now=True)
        return state

    async def stop(self, channel_id: int) -> bool:
        state = await play.get_channel(self.db, channel_id)
        if state is None or not state.active:
            return False
        closed = await play.stop_channel(self.db, channel_id, self.now())
        if closed is not None:
            await self._retire_card(closed, winner=None)
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
            closed = await play.relocate_channel(self.db, channel_id, path, self.now())
        if closed is not None:
            await self._retire_card(closed, winner=None)
        log.info("adventure moved world=%s path=%s channel=%s", state.world_id, path, channel_id)
        await self.show(channel_id, mint_now=True)
        return view

    async def configure(
        self, channel_id: int, *, mode: str | None, vote_seconds: int | None
    ) -> ChannelState:
        await self.active_channel(channel_id)
        state = await play.configure_channel(
            self.db, channel_id, mode=mode, vote_seconds=vote_seconds, now=self.now()
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
        state = await play.get_channel(self.db, channel_id)
        if state is None or not state.active:
            raise Refusal(
                "No adventure is running in this channel; an admin can use /adventure start."
            )
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
            state = await play.get_channel(self.db, channel_id)
            if state is None or not state.active:
                return
            view = await self.service.view(state.world_id, state.current_path)
            if view.is_ready:
                current = await play.open_round_of(self.db, channel_id)
                if current is not None and current.path == view.path and current.message_id:
                    return  # its card is already up
                await self._post_scene(state, view)
                return
            if view.status is Status.QUEUED:
                self._follow(state.channel_id, state.world_id, view.path)
                return
            provider = self.service.provider(state.world_id)
            if mint_now and not provider.needs_key and view.status is Status.PENDING:
                result = await self.service.claim(
                    state.world_id, view.path, None, str(decided_by) if decided_by else None
                )
                if result.outcome is ClaimOutcome.QUEUED:
                    self._follow(state.channel_id, state.world_id, view.path)
                    return
                if result.outcome is ClaimOutcome.READY:
                    view = await self.service.view(state.world_id, view.path)
                    await self._post_scene(state, view)
                    return
            await self._post_mint_card(state, view)

    async def _post_scene(self, state: ChannelState, view: SceneView) -> None:
        now = self.now()
        closes = rounds.closes_at(now, state.vote_seconds) if state.mode == VOTE else None
        opened = await play.open_round(
            self.db,
            channel_id=state.channel_id,
            world_id=state.world_id,
            path=view.path,
            mode=state.mode,
            closes_at=closes if view.choices else None,
            now=now,
        )
        media, upload = await self._clip(view, state.channel_id)
        layout = render.scene_card(view, round=opened, media=media)
        message = await self._messageable(state.channel_id).send(
            view=layout, file=upload if upload is not None else MISSING
        )
        await play.set_round_message(self.db, opened.id, message.id)
        await play.set_channel_messages(self.db, state.channel_id, card_message_id=message.id)
        if opened.closes_at is not None:
            self.on_countdown(opened.closes_at)
        log.info(
            "scene card posted world=%s path=%s channel=%s round=%s mode=%s",
            state.world_id,
            view.path,
            state.channel_id,
            opened.id,
            state.mode,
        )

    async def _clip(
        self, view: SceneView, channel_id: int
    ) -> tuple[render.Media, discord.File | None]:
        media = render.clip_media(view, self._upload_limit(channel_id))
        if media.filename is None or view.video_key is None:
            return media, None
        try:
            data = await self.service.store.open_bytes(view.video_key)
        except Exception:
            log.warning(
                "clip unavailable world=%s path=%s", view.world_id, view.path, exc_info=True
            )
            return render.Media(note="The clip could not be loaded right now."), None
        return media, discord.File(io.BytesIO(data), filename=media.filename)

    async def _post_mint_card(self, state: ChannelState, view: SceneView) -> None:
        provider = self.service.provider(state.world_id)
        layout = render.mint_card(
            view,
            channel_id=state.channel_id,
            provider_name=provider.display_name,
            needs_key=provider.needs_key,
        )
        message = await self._messageable(state.channel_id).send(view=layout)
        await play.set_channel_messages(self.db, state.channel_id, card_message_id=message.id)
        log.info(
            "mint card posted world=%s path=%s channel=%s status=%s",
            state.world_id,
            view.path,
            state.channel_id,
            view.status.value,
        )

    async def _retire_card(
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
            counts = await play.vote_counts(self.db, closed.id) if closed.mode == VOTE else {}
            finished = RoundState(
                **{**closed.__dict__, "status": play.CLOSED, "winner_index": winner}
            )
            media = render.clip_media(view, self._upload_limit(closed.channel_id))
            layout = render.scene_card(
                view, round=finished, tallies=counts, media=media, winner=winner
            )
            await (
                self._messageable(closed.channel_id)
                .get_partial_message(closed.message_id)
                .edit(view=layout)
            )
        except discord.HTTPException:
            log.warning(
                "could not retire card world=%s path=%s round=%s",
                closed.world_id,
                closed.path,
                closed.id,
            )

    async def _retire_mint_card(self, channel_id: int, label: str | None, path: str) -> None:
        """The channel's mint card loses its button once the branch is being minted."""
        state = await play.get_channel(self.db, channel_id)
        if state is None or state.card_message_id is None:
            return
        if state.card_message_id == await play.latest_round_message(self.db, channel_id):
            return  # the newest card is a scene card, already retired by its round
        await play.set_channel_messages(self.db, channel_id, card_message_id=None)
        notice = render.notice_card(
            f"## Being minted\n-# {render.breadcrumbs(path)}\n"
            f"**{render.clip(label or 'The opening scene', 300)}** is being minted: "
            "follow the progress below.",
            colour=render.COLOUR_MINT,
        )
        with contextlib.suppress(discord.HTTPException):
            await (
                self._messageable(channel_id)
                .get_partial_message(state.card_message_id)
                .edit(view=notice)
            )

    def _refresh_card_soon(self, round_state: RoundState) -> None:
        editor = self._card_edits.get(round_state.id)
        if editor is None:
            interval = self.service.settings.discord.progress_edit_seconds

            async def refresh() -> None:
                await self._refresh_card(round_state.id)

            editor = Coalescer(
                interval, refresh, name=f"card of round {round_state.id}", sleep=self._pause
            )
            self._card_edits[round_state.id] = editor
        editor.poke()

    async def _refresh_card(self, round_id: int) -> None:
        current = await play.get_round(self.db, round_id)
        if current is None or not current.is_open or current.message_id is None:
            return
        view = await self.service.view(current.world_id, current.path)
        counts = await play.vote_counts(self.db, round_id)
        media = render.clip_media(view, self._upload_limit(current.channel_id))
        layout = render.scene_card(view, round=current, tallies=counts, media=media)
        await (
            self._messageable(current.channel_id)
            .get_partial_message(current.message_id)
            .edit(view=layout)
        )

    # -- rounds ----------------------------------------------------------------------

    async def on_choice(
        self, interaction: discord.Interaction, round_id: int, index: int, label: str | None
    ) -> None:
        """A click on a scene card's choice: a vote, or in pick mode the decision."""
        current = await self.rounds.get(round_id)
        if current is None:
            raise Refusal(STALE_ROUND)
        if not current.is_open:
            raise Refusal(ROUND_OVER)
        if index >= paths.CHOICES_PER_SCENE:
            raise Refusal(STALE_ROUND)
        name = _choice_name(label, index)
        now = self.now()
        if current.mode == PICK:
            won = await play.close_round(self.db, current.id, index, now)
            self.rounds.forget(current.id)
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
            return
        vote_seconds = self.service.settings.discord.default_vote_seconds
        if current.closes_at is None:  # held without votes: this vote restarts the countdown
            state = await play.get_channel(self.db, current.channel_id)
            vote_seconds = state.vote_seconds if state is not None else vote_seconds
        receipt = await self.votes.cast(
            play.Ballot(current.id, interaction.user.id, index, vote_seconds)
        )
        if not receipt.counted:
            raise Refusal("Voting for this round just closed; your vote came too late.")
        log.debug(
            "vote world=%s path=%s round=%s choice=%d counted=%s",
            current.world_id,
            current.path,
            current.id,
            index,
            receipt.counted,
        )
        if receipt.countdown_started is not None:
            self.rounds.forget(current.id)
            self.on_countdown(receipt.countdown_started)
        closes = receipt.countdown_started or current.closes_at
        until = f" until voting closes {rounds.relative_time(closes)}" if closes else ""
        await interaction.response.send_message(
            f"You voted for **{name}**. You can change your vote{until}.", ephemeral=True
        )
        self._refresh_card_soon(current)

    async def close_due_rounds(self) -> int:
        """Close every vote whose time is up (called by the rounds loop in every process)."""
        closed = 0
        for due in await play.due_rounds(self.db, self.now()):
            try:
                closed += await self._close_due(due)
            except Exception:
                log.exception(
                    "closing round failed world=%s path=%s round=%s", due.world_id, due.path, due.id
                )
        return closed

    async def _close_due(self, due: RoundState) -> int:
        counts = await play.vote_counts(self.db, due.id)
        self.rounds.forget(due.id)
        if not counts:
            if await play.hold_round(self.db, due.id):
                log.info(
                    "round held without votes world=%s path=%s channel=%s round=%s",
                    due.world_id,
                    due.path,
                    due.channel_id,
                    due.id,
                )
                self._refresh_card_soon(due)
            return 0
        view = await self.service.view(due.world_id, due.path)
        ready = {c.index for c in view.choices if c.state is ChildState.READY}
        winner = rounds.winner(counts, ready)
        if winner is None or not await play.close_round(self.db, due.id, winner, self.now()):
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
        moved = await play.move_channel(
            self.db, closed.channel_id, child, self.now(), expect_path=closed.path
        )
        if moved:
            await self.show(closed.channel_id, mint_now=True, decided_by=decided_by)
        await self._retire_card(closed, winner, view)

    # -- minting ---------------------------------------------------------------------

    async def _mint_target(self, channel_id: int, path_code: str) -> tuple[ChannelState, SceneView]:
        """The channel and branch a mint button refers to, if it still applies (<= 2 reads)."""
        state = await play.get_channel(self.db, channel_id)
        if state is None or not state.active:
            raise Refusal(NOT_RUNNING)
        try:  # a very deep branch's code is a hash, resolved against the channel's path
            path = ids.decode_path(
                path_code, self.service.settings.generation.max_depth, current=state.current_path
            )
        except ids.BadPathCode:
            raise Refusal(MOVED_ON) from None
        if state.current_path != path:
            raise Refusal(MOVED_ON)
        try:
            view = await self.service.view(state.world_id, path)
        except InvalidBranch:
            raise Refusal(MOVED_ON) from None
        return state, view

    async def _mintable(
        self, interaction: discord.Interaction, channel_id: int, path_code: str
    ) -> tuple[ChannelState, SceneView] | None:
        """The channel and branch a mint button is about, or None when the click was answered
        already because the branch needs no mint (it is made, or being made)."""
        state, view = await self._mint_target(channel_id, path_code)
        if await self._answer_unneeded_mint(interaction, state, view):
            return None
        return state, view

    async def _answer_unneeded_mint(
        self, interaction: discord.Interaction, state: ChannelState, view: SceneView
    ) -> bool:
        """Answer clicks on a branch that needs no mint; True when answered."""
        if view.is_ready:
            await interaction.response.send_message(
                "This branch is already made and plays free; its card is in the channel.",
                ephemeral=True,
            )
            self._spawn(self._branch_ready(state.world_id, view.path), "show ready branch")
            return True
        if view.status is Status.QUEUED:
            await interaction.response.send_message(
                "Someone is minting this branch right now"
                + (f" ({view.progress} %)" if view.progress_known else "")
                + ". "
                "It is free for you: "
                "watch the channel, the scene appears when it is done.",
                ephemeral=True,
            )
            self._follow(state.channel_id, state.world_id, view.path)
            return True
        if view.status is Status.FAILED and view.failure_code in FINAL_FAILURES:
            raise Refusal(
                "The video provider refused this branch; an admin can retry it with /world retry."
            )
        return False

    async def on_mint(
        self, interaction: discord.Interaction, channel_id: int, path_code: str
    ) -> None:
        target = await self._mintable(interaction, channel_id, path_code)
        if target is None:
            return
        state, view = target
        provider = self.service.provider(state.world_id)
        cost = render.cost_text(view.estimated_cost_usd)
        if not provider.needs_key:
            await interaction.response.defer(ephemeral=True, thinking=True)
            result = await self.service.claim(
                state.world_id,
                view.path,
                None,
                str(interaction.user.id),
                confirm_uncertain=view.failure_code == UNCERTAIN,
            )
            await self._report_claim(interaction, result, cost)
            return
        if self.bot.vault.has(interaction.user.id, provider.name):
            buttons = ui.View(timeout=None)
            buttons.add_item(
                SavedKeyButton(channel_id, view.path, label=f"Use my saved key · {cost}")
            )
            buttons.add_item(
                NewKeyButton(
                    channel_id,
                    view.path,
                    label="Enter a different key",
                    style=discord.ButtonStyle.secondary,
                )
            )
            await interaction.response.send_message(
                f"Mint **{render.clip(view.choice_label or 'the opening scene', 300)}**? "
                f"Estimated cost: **{cost}**, charged by {provider.display_name} to your key.",
                view=buttons,
                ephemeral=True,
            )
            return
        await self._open_key_form(interaction, state, view)

    async def _open_key_form(
        self,
        interaction: discord.Interaction,
        state: ChannelState,
        view: SceneView,
        *,
        retry: bool = False,
    ) -> None:
        provider = self.service.provider(state.world_id)
        form = KeyModal(
            channel_id=state.channel_id,
            path=view.path,
            choice_label=view.choice_label,
            provider_name=provider.display_name,
            cost=render.cost_text(view.estimated_cost_usd),
            retry=retry,
        )
        self.bot.key_forms.opened(form.custom_id)
        await interaction.response.send_modal(form)

    async def on_mint_with_new_key(
        self, interaction: discord.Interaction, channel_id: int, path_code: str
    ) -> None:
        target = await self._mintable(interaction, channel_id, path_code)
        if target is None:
            return
        state, view = target
        await self._open_key_form(interaction, state, view)

    async def on_mint_with_saved_key(
        self, interaction: discord.Interaction, channel_id: int, path_code: str
    ) -> None:
        target = await self._mintable(interaction, channel_id, path_code)
        if target is None:
            return
        state, view = target
        provider = self.service.provider(state.world_id)
        credentials = self.bot.vault.get(interaction.user.id, provider.name)
        if credentials is None:  # idle timeout since the offer: ask again
            await self._open_key_form(interaction, state, view)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._check_and_claim(
            interaction, state.world_id, view.path, credentials, retry=False
        )

    async def on_key_submitted(
        self,
        interaction: discord.Interaction,
        channel_id: int,
        path: str,
        key: str,
        *,
        retry: bool,
    ) -> None:
        key = key.strip()
        register_secret(key)
        await interaction.response.defer(ephemeral=True, thinking=True)
        state = await play.get_channel(self.db, channel_id)
        if not retry:
            if state is None or not state.active:
                await self._forget_unused(interaction.user.id, state, key)
                raise Refusal(NOT_RUNNING + " Your key was not used.")
            if state.current_path != path:
                await self._forget_unused(interaction.user.id, state, key)
                raise Refusal(MOVED_ON + " Your key was not used.")
        world_id = self.world_for(state)
        credentials = Credentials(key)
        stored = await self._check_and_claim(interaction, world_id, path, credentials, retry=retry)
        if not stored:
            await self._forget_unused(interaction.user.id, state, key)

    async def _forget_unused(self, user_id: int, state: ChannelState | None, key: str) -> None:
        provider = self.service.provider(self.world_for(state))
        saved = self.bot.vault.get(user_id, provider.name)
        if saved is None or saved.api_key != key:
            forget_secret(key)

    async def _check_and_claim(
        self,
        interaction: discord.Interaction,
        world_id: str,
        path: str,
        credentials: Credentials,
        *,
        retry: bool,
    ) -> bool:
        """Check the key cheaply, keep it for the session, claim. True when the key was kept."""
        provider = self.service.provider(world_id)
        try:
            check = await self.service.validate_key(world_id, credentials)
        except ProviderError as error:
            log.info("key refused world=%s path=%s code=%s", world_id, path, error.code)
            if error.code == "invalid_key":
                sentence = (
                    f"{provider.display_name} did not accept that key, "
                    "so nothing was claimed or charged."
                )
            else:
                reason = error.public_message.rstrip(".")
                sentence = f"Nothing was claimed or charged: {reason[:1].lower()}{reason[1:]}."
            await interaction.edit_original_response(content=sentence, view=None)
            return False
        self.bot.vault.put(interaction.user.id, provider.name, credentials)
        if retry:
            result = await self.service.retry(world_id, path, credentials, str(interaction.user.id))
        else:
            # The mint card this member clicked warned them if a render may already exist.
            seen = await self.service.view(world_id, path)
            result = await self.service.claim(
                world_id,
                path,
                credentials,
                str(interaction.user.id),
                confirm_uncertain=seen.failure_code == UNCERTAIN,
            )
        view_cost = render.cost_text(self.service.estimated_cost(world_id))
        if check.remaining_usd is not None:
            view_cost += f"; your key has ${check.remaining_usd:.2f} of credit left"
        await self._report_claim(interaction, result, view_cost)
        return True

    async def _report_claim(
        self, interaction: discord.Interaction, result: ClaimResult, cost: str
    ) -> None:
        world_id, path = result.world_id, result.path
        if result.outcome is ClaimOutcome.READY:
            sentence = (
                "Someone made this branch a moment ago, so it is free for you: playing it now."
            )
            self._spawn(self._branch_ready(world_id, path), "show ready branch")
        elif result.outcome is ClaimOutcome.QUEUED and result.claimed_by_caller:
            sentence = (
                f"Minting started ({cost}). Watch the channel; if your key runs into trouble "
                "I will tell you here."
            )
            self._contributors.setdefault((world_id, path), []).append(interaction)
            log.info("mint started world=%s path=%s", world_id, path)
            await self._follow_branch(world_id, path)
        elif result.outcome is ClaimOutcome.QUEUED:
            sentence = (
                "Someone else is already minting this branch, so you pay nothing: "
                "watch the channel."
            )
            await self._follow_branch(world_id, path)
        else:
            sentence = result.message or "That branch cannot be minted right now."
        await interaction.edit_original_response(content=sentence, view=None)

    # -- following a mint ------------------------------------------------------------

    async def _follow_branch(self, world_id: str, path: str) -> None:
        for state in await play.channels_at(self.db, world_id, path):
            self._follow(state.channel_id, world_id, path)

    def _follow(self, channel_id: int, world_id: str, path: str) -> None:
        key = (channel_id, path)
        running = self._followers.get(key)
        if running is not None and not running.done():
            return
        task = asyncio.create_task(
            self._watch(channel_id, world_id, path),
            name=f"follow {world_id}/{path} in {channel_id}",
        )
        self._followers[key] = task
        task.add_done_callback(lambda done: self._forget_follower(key, done))

    def _forget_follower(self, key: tuple[int, str], task: asyncio.Task[None]) -> None:
        if self._followers.get(key) is task:
            del self._followers[key]

    async def _watch(self, channel_id: int, world_id: str, path: str) -> None:
        """Follow one mint on one bot-owned message, edited at most every few seconds."""
        try:
            await self._watch_inner(channel_id, world_id, path)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "following a mint failed world=%s path=%s channel=%s", world_id, path, channel_id
            )

    async def _watch_inner(self, channel_id: int, world_id: str, path: str) -> None:
        start = await self.service.view(world_id, path)
        label = start.choice_label
        messageable = self._messageable(channel_id)
        await self._retire_mint_card(channel_id, label, path)
        waiting = None if start.progress_known else render.stage_wait_text("queued")
        message = await messageable.send(
            view=render.progress_card(label, path, start.progress, stage="queued", waiting=waiting)
        )
        await play.set_channel_messages(self.db, channel_id, progress_message_id=message.id)
        latest: dict[str, Any] = {"progress": start.progress, "stage": "queued", "waiting": waiting}

        async def edit_progress() -> None:
            await message.edit(
                view=render.progress_card(
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
            sleep=self._pause,
        )
        editor.mark_ran()  # the message was just posted
        final = None
        async with self.service.subscribe(world_id, path) as events:
            while final is None:
                try:
                    event = await self.wait_external(anext(events), "progress of a mint")
                except StopAsyncIteration:
                    break
                if event.elapsed_seconds is not None:
                    waiting = render.render_wait_text(
                        event.provider_status, event.elapsed_seconds, event.typical_seconds
                    )
                elif not start.progress_known:
                    waiting = render.stage_wait_text(event.stage)
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
                view=render.progress_card(label, path, 100, outcome="Done: the new scene is below.")
            )
            log.info(
                "mint followed to the end world=%s path=%s channel=%s", world_id, path, channel_id
            )
            await self._branch_ready(world_id, path)
            return
        reason = failure_reason(final.failure_code, final.failure_detail)
        if final.status is Status.FAILED:
            outcome = f"Minting failed: {reason}. An admin or anyone with a key can retry it."
        elif final.failure_code:
            outcome = (
                f"Minting stopped: {reason}. The branch is unexplored again; anyone can mint it."
            )
        else:
            outcome = "Minting was stopped. The branch is unexplored again; anyone can mint it."
        await message.edit(view=render.progress_card(label, path, 0, outcome=outcome, failed=True))
        log.info(
            "mint ended world=%s path=%s channel=%s status=%s code=%s",
            world_id,
            path,
            channel_id,
            final.status.value,
            final.failure_code,
        )
        await self._tell_contributors(
            world_id, path, final.status, final.failure_code, final.failure_detail
        )
        state = await play.get_channel(self.db, channel_id)
        if state is not None and state.active and state.current_path == path:
            await self.show(channel_id)  # the mint card again (or a retry card)

    async def _tell_contributors(
        self, world_id: str, path: str, status: Status, code: str | None, detail: str | None
    ) -> None:
        for interaction in self._contributors.pop((world_id, path), []):
            if interaction.is_expired():
                continue
            if status is Status.PENDING and code:
                text = (
                    f"Your key could not finish this branch: {failure_reason(code, detail)}. "
                    "Nothing more will be charged for it; the branch is unexplored again."
                )
            elif status is Status.FAILED:
                text = f"Minting failed: {failure_reason(code, detail)}."
            else:
                text = "Minting was stopped before it finished."
            with contextlib.suppress(discord.HTTPException):
                await interaction.followup.send(text, ephemeral=True)

    async def _branch_ready(self, world_id: str, path: str) -> None:
        """A branch became ready: every channel waiting at it gets its scene card."""
        self._contributors.pop((world_id, path), None)
        for state in await play.channels_at(self.db, world_id, path):
            await self.show(state.channel_id)

    async def resume(self) -> None:
        """After a start: follow mints the channels wait for; post cards that went missing.

        Only channels of servers this process serves: with several processes (Discord shards),
        each resumes its own servers and no card or progress message is posted twice.
        """
        for state in await play.active_channels(self.db):
            if self.bot.get_guild(state.guild_id) is None:
                continue
            try:
                current = await play.open_round_of(self.db, state.channel_id)
                if current is not None and current.message_id is not None:
                    continue  # its card's buttons work from the database
                view = await self.service.view(state.world_id, state.current_path)
                if view.status is Status.QUEUED:
                    self._follow(state.channel_id, state.world_id, view.path)
                elif view.is_ready:
                    await self.show(state.channel_id)
            except Exception:
                log.exception(
                    "resuming channel failed world=%s channel=%s", state.world_id, state.channel_id
                )

    # -- reading -----------------------------------------------------------------------

    async def where(self, channel_id: int) -> str:
        state = await self.active_channel(channel_id)
        steps = [*paths.ancestors(state.current_path), state.current_path]
        async with self.db.session() as session:
            rows = await scenes.load_paths(session, state.world_id, steps)
        titled = [(step, rows[step].title if step in rows else None) for step in steps]
        return render.where_text(titled, state.current_path)

    async def explored(
        self, channel_id: int | None, prefix: str
    ) -> Iterable[tuple[str, str | None]]:
        state = await play.get_channel(self.db, channel_id) if channel_id else None
        return await self.service.explored_paths(self.world_for(state), prefix, limit=25)
