"""`shared-world sandbox`: the real bot and the real WorldService, played in a browser.

No Discord application, token or key: SimCord's in-process Discord (`simcord.Env`) hosts a
server with a #story channel, an admin and a few pretend members, the real bot
(`bot.app.build_bot`) connects to it, and SimCord's Preview serves that channel on
127.0.0.1. In the page a person types `/adventure start`, votes as different members
("Viewing as"), watches the clips play and plays on for as long as they like. Nothing in the
bot or the engine is stubbed; only Discord is simulated.

What it is for: trying the bot before connecting it to Discord, and showing it. It is not a
way to run a community: one person drives every pretend member, the world lives in a
sandbox folder, and the Preview has limits (below).

The settings are the host's (config file and environment), with what keeps the sandbox
away from real worlds forced on top: every world uses the free offline provider, the
database is `<data-dir>/sandbox.db` (a new one each run unless `--no-fresh`), assets and
spool files live under the data dir, the HTTP front door is off and no token is read. The
schema is upgraded here, so there is no separate `db upgrade` step.

How the two clocks meet. SimCord runs the bot on a virtual clock; the engine's renders run
on the real clock beside it (`_spawn_outside_the_bot`, the same seam the tests use), and the
bot's waits on the engine are declared to SimCord as external waits (`_ExternalWaits`). The
bot's own timers (vote countdowns, coalesced progress edits) fire only when the virtual
clock moves, so `_ClockLoop` advances it every half second to match the real time that
passed (the virtual clock starts at the real now: `simcord_hooks.start_clock_at`). SimCord
refuses two operations at once, so the loop and every page action share one lock
(`simcord_hooks.serialize_page_actions`). The page is republished only when the bot sent
something (`env.http_requests` grew) since the last publication, which each page action
also makes: a republish bumps the page's revision, and a click that carries an older
revision is refused as stale, so publishing on every tick would make clicks fail.

The Preview's limits (SimCord 3.2.1): at most 16 open pages (tabs), a window of the latest
50 messages per page ("Load earlier messages" pages back), relative times ("closes in 8
seconds") read from the last publication, and "End preview session" (under "More") closes
the session for everyone: the sandbox then stops with a sentence saying how to start again.

Why the Preview and not a page of our own: it already shows the cards, plays the clips,
runs the buttons, the key form and a slash-command composer, and lets the person act as
each member, through SimCord's real interaction rules. Out of the box it was not smooth on
one point: it shows a clip only once its media worker has transcoded it to VP9 with
libvpx's slowest settings (3 to 6 s a clip here), and it transcodes every visible clip again
on each switch of "Viewing as" (a minute, ten cards in). `simcord_hooks.reuse_transcoded_clips`
fixes both (a realtime encoder, about 0.5 s a clip, and each clip transcoded once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import logging
import shutil
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from world.settings import MAX_VOTE_SECONDS, MIN_VOTE_SECONDS, Settings

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = "./data/sandbox"
DEFAULT_VOTE_SECONDS = 20
DATABASE_NAME = "sandbox.db"
MARKER = ".shared-world-sandbox"
TICK_SECONDS = 0.5
# How long one clock step or republication may wait for the bot before it is logged and
# tried again on the next tick (SimCord's own default is 5 s).
SETTLE_SECONDS = 30.0
MEMBER_NAMES = ("Bea", "Cy", "Dee", "Eli", "Fay", "Gus")
ADMIN_NAME = "Ada"
BOT_NAME = "Shared World"

NEEDS_PREVIEW = (
    "The sandbox needs SimCord's Preview, an optional extra: "
    "pip install -e '.[sandbox]' (then run `shared-world sandbox` again)."
)
ENDED_IN_PAGE = (
    "The preview session was ended in the page, so the sandbox stopped. Run `shared-world "
    "sandbox --no-fresh` to play on in the same world, or `shared-world sandbox` for a new one."
)


@dataclass(frozen=True)
class SandboxOptions:
    port: int = 0
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    fresh: bool = True
    vote_seconds: int = DEFAULT_VOTE_SECONDS
    members: int = 3
    practice_keys: bool = False
    render_seconds: float | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SandboxOptions:
        return cls(
            port=args.port,
            data_dir=Path(args.data_dir),
            fresh=args.fresh,
            vote_seconds=args.vote_seconds,
            members=args.members,
            practice_keys=args.practice_keys,
            render_seconds=args.render_seconds,
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `sandbox` subcommand's flags (shared_world/cli.py adds the subparser)."""
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        choices=("127.0.0.1",),
        help="address of the page: SimCord's Preview listens on loopback only",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port of the page (default 0: a free port)"
    )
    parser.add_argument(
        "--data-dir",
        default=DEFAULT_DATA_DIR,
        help=f"the sandbox's database and clips (default {DEFAULT_DATA_DIR}); "
        "real worlds are never touched",
    )
    parser.add_argument(
        "--fresh",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start from an empty world (default); --no-fresh plays on in the last one",
    )
    parser.add_argument(
        "--vote-seconds",
        type=_vote_seconds,
        default=DEFAULT_VOTE_SECONDS,
        help=f"default length of a vote round (default {DEFAULT_VOTE_SECONDS}, "
        f"at least {MIN_VOTE_SECONDS})",
    )
    parser.add_argument(
        "--members",
        type=int,
        default=3,
        choices=range(1, len(MEMBER_NAMES) + 1),
        metavar=f"1-{len(MEMBER_NAMES)}",
        help="how many pretend members besides the admin (default 3)",
    )
    parser.add_argument(
        "--practice-keys",
        action="store_true",
        help="ask for a key before each new branch, as a paid provider does "
        "(any 8 characters work; nothing is charged or sent anywhere)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="log at the settings' log_level (default: the sandbox shows warnings only)",
    )
    parser.add_argument(
        "--render-seconds",
        type=float,
        default=None,
        help="how long the offline provider takes per clip (default: the settings')",
    )


def _vote_seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if not MIN_VOTE_SECONDS <= value <= MAX_VOTE_SECONDS:
        raise argparse.ArgumentTypeError(f"use {MIN_VOTE_SECONDS} to {MAX_VOTE_SECONDS} seconds")
    return value


# -- settings and the data folder ----------------------------------------------------------


def sandbox_settings(base: Settings, options: SandboxOptions) -> Settings:
    """The host's settings with everything that could reach a real world replaced."""
    root = options.data_dir.resolve()
    worlds = tuple(replace(world, provider="offline") for world in base.worlds)
    providers = base.providers
    if options.render_seconds is not None:
        providers = replace(providers, offline_render_seconds=max(0.0, options.render_seconds))
    return replace(
        base,
        worlds=worlds,
        database=replace(base.database, url=f"sqlite:///{root / DATABASE_NAME}"),
        storage=replace(
            base.storage,
            backend="local",
            local_dir=str(root / "assets"),
            local_public_base_url=None,
        ),
        generation=replace(
            base.generation,
            spool_dir=str(root / "spool"),
            shutdown_grace_seconds=min(base.generation.shutdown_grace_seconds, 2.0),
        ),
        providers=providers,
        discord=replace(
            base.discord,
            token=None,
            default_vote_seconds=max(MIN_VOTE_SECONDS, options.vote_seconds),
        ),
        http=replace(base.http, enabled=False),
    )


class NotASandboxFolder(Exception):
    """--data-dir names a folder with other files in it: the sandbox leaves it alone."""


def prepare_data_dir(root: Path, *, fresh: bool) -> None:
    """Make the data folder; for a fresh run, remove what an earlier sandbox left there.

    Only a new or empty folder, or one an earlier sandbox marked as its own (MARKER), is
    used, so pointing --data-dir at a real data folder cannot delete a real world's clips.
    """
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise NotASandboxFolder(
            f"{root} already holds files that are not a sandbox's; give --data-dir a new or "
            "empty folder (the default is ./data/sandbox)."
        )
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("A `shared-world sandbox` folder: it may be emptied on start.\n")
    if not fresh:
        return
    for name in (DATABASE_NAME, f"{DATABASE_NAME}-wal", f"{DATABASE_NAME}-shm"):
        (root / name).unlink(missing_ok=True)
    for folder in ("assets", "spool", "offline-jobs"):
        shutil.rmtree(root / folder, ignore_errors=True)


def _practice_key_providers(settings: Settings) -> dict[str, Any]:
    """The offline provider behind the key form: any key of 8+ characters, never charged."""
    from world.providers.offline import OfflineProvider

    class PracticeKeyProvider(OfflineProvider):
        name = "offline"
        display_name = "sandbox"
        needs_key = True

    data_dir = Path(settings.generation.spool_dir).parent
    return {
        world.id: PracticeKeyProvider(settings.providers, data_dir / "offline-jobs")
        for world in settings.worlds
    }


# -- the seams between SimCord's virtual clock and the engine's real one -------------------


def _spawn_outside_the_bot(coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
    """The service's `spawn`: jobs and pollers run on the real clock, beside the bot.

    SimCord counts a task as the bot's (virtual clock) when it is created while the bot's
    context is current; creating it from a fresh Context keeps renders on the real clock.
    """
    return contextvars.Context().run(asyncio.create_task, coro, name=name)


class _ExternalWaits:
    """The bot's waits on the engine, declared to SimCord as external waits."""

    def __init__(self) -> None:
        self.env: Any = None

    async def __call__(self, awaitable: Any, reason: str) -> Any:
        if self.env is None:
            return await awaitable
        return await self.env.external_wait(awaitable, reason=reason)


class _ClockLoop:
    """Moves SimCord's virtual clock with the real one and republishes the page when the bot
    has sent something; shares `lock` with every page action."""

    def __init__(self, env: Any, preview: Any, lock: asyncio.Lock) -> None:
        self.env = env
        self.preview = preview
        self.lock = lock
        self.published_requests = len(env.http_requests)
        self._real_start = time.monotonic()
        self._virtual_start = env.now()

    def mark_published(self) -> None:
        """The page shows everything the bot sent so far (called after each page action)."""
        self.published_requests = len(self.env.http_requests)

    async def tick(self) -> None:
        async with self.lock:
            target = self._virtual_start + timedelta(seconds=time.monotonic() - self._real_start)
            behind = (target - self.env.now()).total_seconds()
            if behind > 0:
                await self.env.advance_time(behind)
            if len(self.env.http_requests) != self.published_requests:
                await self.preview.refresh()
                self.mark_published()

    async def run(self, interval: float = TICK_SECONDS) -> None:
        failures = 0
        while True:
            await asyncio.sleep(interval)
            try:
                await self.tick()
                failures = 0
            except TimeoutError:
                log.warning("the bot is busy; the sandbox clock catches up on the next tick")
            except Exception:  # one bad tick must not stop the sandbox; say it once
                failures += 1
                if failures == 1:
                    log.exception("the sandbox clock failed a tick; it keeps going")


# -- the sandbox ---------------------------------------------------------------------------


@dataclass
class _World:
    """The pretend Discord: one server, its #story channel and its people."""

    guild: Any
    channel: Any
    admin: Any
    members: list[Any]

    @property
    def people(self) -> list[Any]:
        return [self.admin, *self.members]


def _arrange(env: Any, members: int) -> _World:
    import discord

    guild = env.create_guild("Shared World sandbox")
    channel = guild.create_text_channel("story")
    admins = guild.create_role("Admins", permissions=discord.Permissions(manage_guild=True))
    admin = guild.add_member(
        env.create_user(ADMIN_NAME.lower(), global_name=f"{ADMIN_NAME} (admin)"), roles=[admins]
    )
    people = [
        guild.add_member(env.create_user(name.lower(), global_name=name))
        for name in MEMBER_NAMES[:members]
    ]
    return _World(guild, channel, admin, people)


async def serve_sandbox(
    base: Settings,
    options: SandboxOptions,
    *,
    stop: asyncio.Event | None = None,
    announce: Callable[[str], None] | None = None,
) -> int:
    """Run the sandbox until `stop` is set, a signal arrives or the page ends the session."""
    try:
        import simcord
        from simcord.preview import _require_preview_runtime

        _require_preview_runtime()
    except Exception:  # ImportError, or SimCord's SetupError naming the missing modules
        print(NEEDS_PREVIEW, file=sys.stderr)
        return 2

    from bot.app import build_bot
    from shared_world import simcord_hooks
    from world.db import Database
    from world.service import WorldService

    try:
        simcord_hooks.require_pinned_simcord()
    except simcord_hooks.SimcordMismatch as exc:
        print(f"Shared World cannot start the sandbox: {exc}.", file=sys.stderr)
        return 2

    settings = sandbox_settings(base, options)
    try:
        prepare_data_dir(options.data_dir.resolve(), fresh=options.fresh)
    except (NotASandboxFolder, OSError) as exc:
        print(f"Shared World cannot start the sandbox: {exc}", file=sys.stderr)
        return 2
    database = Database(settings.database.url)
    try:
        await database.upgrade()
    finally:
        await database.close()

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
            signals.append(signum)

    providers = _practice_key_providers(settings) if options.practice_keys else None
    service = await WorldService.start(settings, providers=providers, spawn=_spawn_outside_the_bot)
    waits = _ExternalWaits()
    bot = build_bot(settings, service, waits=waits)
    env = simcord.Env(bot, check_errors=False, settle_timeout=SETTLE_SECONDS)
    simcord_hooks.start_clock_at(env, datetime.now(UTC))
    simcord_hooks.name_the_bot(env, BOT_NAME)
    ended_in_page: bool | None = None
    started = False
    try:
        await env.start()
        started = True
        waits.env = env
        world = _arrange(env, options.members)
        await bot.tree.sync()
        ended_in_page = await _play(env, world, options, stop, announce or _print_line)
    finally:
        if started:
            with contextlib.suppress(Exception):
                await env.shutdown()
        await service.close()
        for signum in signals:
            loop.remove_signal_handler(signum)
    if ended_in_page is None:
        return 2
    print(ENDED_IN_PAGE if ended_in_page else "Sandbox stopped.", flush=True)
    return 0


async def _play(
    env: Any,
    world: _World,
    options: SandboxOptions,
    stop: asyncio.Event,
    say: Callable[[str], None],
) -> bool | None:
    """Serve the page until `stop` or the page ends the session (True); None: no page."""
    from simcord import SetupError

    from shared_world import simcord_hooks

    lock = asyncio.Lock()
    try:
        preview = await env.preview(
            world.channel, viewers=world.people, layout="channel", port=options.port
        ).__aenter__()
    except SetupError as exc:  # e.g. the port is taken
        print(
            f"Shared World cannot start the sandbox: {exc} (pick another with --port).",
            file=sys.stderr,
        )
        return None
    try:
        clock = _ClockLoop(env, preview, lock)
        simcord_hooks.serialize_page_actions(preview, lock, after=clock.mark_published)
        simcord_hooks.reuse_transcoded_clips(preview)
        say(
            f"Sandbox running: open {preview.url} in your browser "
            f"(you are {ADMIN_NAME}, the admin; type /adventure start). Ctrl-C to stop."
        )
        ticking = asyncio.create_task(clock.run(), name="sandbox clock")
        stopping = asyncio.create_task(stop.wait(), name="sandbox stop")
        closing = asyncio.create_task(preview.wait_closed(), name="sandbox page closed")
        tasks = (ticking, stopping, closing)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            return closing.done() and not stopping.done()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        async with lock:  # let a page action that is running finish first
            await preview.close()


def _print_line(line: str) -> None:
    print(line, flush=True)


def run_sandbox(settings: Settings, args: argparse.Namespace) -> int:
    """`shared-world sandbox`: returns the process exit code."""
    options = SandboxOptions.from_args(args)
    if not getattr(args, "verbose", False):
        root = logging.getLogger()
        root.setLevel(max(root.level, logging.WARNING))
        logging.getLogger("discord").setLevel(logging.ERROR)  # SimCord's login has no voice
    try:
        return asyncio.run(serve_sandbox(settings, options))
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 0
