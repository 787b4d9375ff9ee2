"""`/adventure film` in a channel: one progress message, then the film as a link or a file.

The command answers the member at once (ephemeral); the film is made by the world engine
(`WorldService.film`, cached per path) while one bot-owned message in the channel shows how
far it is, edited at most every `[discord] progress_edit_seconds`. The film is then posted as
a link when the store gives public URLs, else as an attachment when it fits the server's
upload limit; otherwise the progress message ends with one sentence saying why.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import discord

from bot import cards
from bot.board import Board
from bot.coalesce import Coalescer
from bot.errors import Refusal
from world.film import Film, FilmProgress
from world.play import ChannelState
from world.service import ServiceError, WorldService

log = logging.getLogger(__name__)

NOT_STARTED = "No adventure has been played in this channel yet, so there is nothing to film."
NOTHING_YET = "There is nothing to film yet: no scene on this channel's path has a clip."
ALREADY = "A film of this channel is already being made; it will be posted here."
FAILED = "The film could not be made right now; please try again in a few minutes."
MiB = 1024 * 1024

_STAGES = {"fetching": "Fetching clip", "joining": "Joining clip"}


def progress_text(path: str, update: FilmProgress | None) -> str:
    """The progress message: "Making the film of Start › 1 … Joining clip 3 of 12 …"."""
    head = f"🎬 Making the film of **{cards.breadcrumbs(path)}** …"
    if update is None:
        return f"{head}\n-# Starting …"
    if update.stage in _STAGES:
        return f"{head}\n-# {_STAGES[update.stage]} {update.done} of {update.total} …"
    return f"{head}\n-# Storing the film …"


def duration_text(seconds: float) -> str:
    whole = max(0, round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def film_caption(film: Film, max_seconds: int, max_clips: int) -> str:
    """What the film's message says above the video."""
    scenes = "1 scene" if film.clips == 1 else f"{film.clips} scenes"
    caption = (
        f"🎬 **The story so far: {cards.breadcrumbs(film.path)}** · {scenes} · "
        f"{duration_text(film.seconds)}"
    )
    if not film.complete:
        caption += (
            f"\n-# The last {film.clips} of {film.scenes} scenes: a film holds at most "
            f"{max_clips} scenes and {max_seconds} s."
        )
    return caption


def filename_of(film: Film) -> str:
    """The attachment's name: film-<path>.mp4 (film-start.mp4 at the opening scene)."""
    slug = film.path.replace("/", "-") or "start"
    return cards.clip(f"film-{slug}", 90).replace("…", "") + ".mp4"


class ChannelFilms:
    """The films being made for channels; at most one per channel at a time."""

    def __init__(self, service: WorldService, board: Board, spawn: Any) -> None:
        self.service = service
        self.board = board
        self._spawn = spawn  # Director.spawn: work that goes on after the command was answered
        self._busy: set[int] = set()

    async def request(self, interaction: discord.Interaction, channel_id: int) -> None:
        """Check, answer the member within Discord's 3 s, and start the film in the background.

        Two indexed reads happen before the answer (the channel, the path's clips); nothing
        touches storage until the answer is sent.
        """
        state = await self.service.play.get_channel(channel_id)
        if state is None:
            raise Refusal(NOT_STARTED)
        if channel_id in self._busy:
            raise Refusal(ALREADY)
        if not await self.service.film_clips(state.world_id, state.current_path):
            raise Refusal(NOTHING_YET)
        self._busy.add(channel_id)
        try:
            await interaction.response.send_message(
                f"Making the film of **{cards.breadcrumbs(state.current_path)}**; "
                "it will be posted in this channel.",
                ephemeral=True,
            )
        except BaseException:
            self._busy.discard(channel_id)
            raise
        self._spawn(self._post(state), f"film of {state.world_id}/{state.current_path}")

    async def _post(self, state: ChannelState) -> None:
        try:
            await self._make_and_post(state)
        except Exception:
            log.exception(
                "film post failed world=%s path=%s channel=%s",
                state.world_id,
                state.current_path,
                state.channel_id,
            )
        finally:
            self._busy.discard(state.channel_id)

    async def _make_and_post(self, state: ChannelState) -> None:
        channel = self.board.messageable(state.channel_id)
        path = state.current_path
        message = await channel.send(progress_text(path, None))
        latest: dict[str, FilmProgress | None] = {"update": None}

        async def edit_progress() -> None:
            await message.edit(content=progress_text(path, latest["update"]))

        editor = Coalescer(
            self.service.settings.discord.progress_edit_seconds,
            edit_progress,
            name=f"film progress {state.world_id}/{path}",
            sleep=self.board.pause,
        )
        editor.mark_ran()  # the message was just posted

        def on_progress(update: FilmProgress) -> None:
            latest["update"] = update
            editor.poke()

        try:
            film = await self.board.waits(
                self.service.film(state.world_id, path, on_progress=on_progress), "a film"
            )
        except ServiceError as exc:
            await editor.close()
            await message.edit(content=f"🎬 {exc}")
            return
        except Exception:
            await editor.close()
            await message.edit(content=f"🎬 {FAILED}")
            raise
        await editor.close()
        await self._deliver(state, message, film)

    async def _deliver(self, state: ChannelState, message: discord.Message, film: Film) -> None:
        film_settings = self.service.settings.film
        caption = film_caption(film, film_settings.max_seconds, film_settings.max_clips)
        channel = self.board.messageable(state.channel_id)
        where = f"**{cards.breadcrumbs(film.path)}**"
        if film.url:
            await channel.send(f"{caption}\n{film.url}")
        else:
            limit = self.board.upload_limit(state.channel_id)
            if film.bytes > limit:
                await message.edit(
                    content=f"🎬 The film of {where} is {film.bytes / MiB:.1f} MiB, more than "
                    f"this server's upload limit of {limit / MiB:.0f} MiB, and the bot's "
                    "storage has no public links to post instead."
                )
                log.info(
                    "film too large world=%s path=%s bytes=%d limit=%d",
                    film.world_id,
                    film.path,
                    film.bytes,
                    limit,
                )
                return
            data = await self.board.waits(self.service.film_bytes(film), "a film's bytes")
            await channel.send(caption, file=discord.File(io.BytesIO(data), filename_of(film)))
        await message.edit(content=f"🎬 The film of {where} is below.")
        log.info(
            "film posted world=%s path=%s channel=%s clips=%d cached=%s link=%s",
            film.world_id,
            film.path,
            state.channel_id,
            film.clips,
            film.cached,
            film.url is not None,
        )
