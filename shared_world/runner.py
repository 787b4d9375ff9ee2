"""`shared-world run`, `serve` and `sync-commands`: one event loop, one WorldService.

`serve` is `run` without Discord: the same checks, the world service and the HTTP front door
(whatever `[http] enabled` says), no token; SIGTERM or Ctrl-C drains and exits 0.

`run` checks the things a host can get wrong before it connects anywhere (storage writable,
database there and migrated, the HTTP port free), then starts the world service, the HTTP
front door (when enabled) and, last, the bot; on SIGTERM or Ctrl-C it closes the gateway,
drains the service (running mints reach a safe point, the rest stays resumable) and exits 0.
Commands are published only by `sync-commands`.

Owns the process's lifetime: signals, exit codes and the plain sentences for every host
mistake it meets (printed once to stderr, never a traceback): a missing or rejected Discord
token, an unreachable Discord, storage that is not writable, a missing or outdated database,
an HTTP port already in use. Exit 2 means "fix the settings or the set-up first", 1 means
"a service refused us or could not be reached". This is the one place the bot and the HTTP
front door meet.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import discord

from bot.app import build_bot
from shared_world.check import BAD_TOKEN, DISCORD_UNREACHABLE
from shared_world.mistakes import HostMistake, say
from world.db import DatabaseMissing, DatabaseUnavailable, SchemaOutdated
from world.logsafe import redact
from world.service import WorldService
from world.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "BAD_TOKEN",
    "DISCORD_UNREACHABLE",
    "NO_TOKEN",
    "run",
    "run_http",
    "serve",
    "serve_http",
    "sync_commands",
]

NO_TOKEN = (
    "DISCORD_TOKEN is not set: create an application at https://discord.com/developers/"
    "applications, copy its bot token (Bot > Reset Token) and export DISCORD_TOKEN=<token>."
)
MISSING_INTENT = "Discord refused the connection: the bot asked for an intent it does not have."


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (the same code, about twice the requests
    a second through the HTTP front door), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _run_until_stopped(main: Coroutine[Any, Any, int]) -> int:
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(main)
    except KeyboardInterrupt:  # a second Ctrl-C while draining
        return 0


def run(settings: Settings) -> int:
    """Run until SIGTERM or Ctrl-C; returns the process exit code."""
    if not settings.discord.token:
        say(NO_TOKEN)
        return 2
    return _run_until_stopped(serve(settings))


def run_http(settings: Settings) -> int:
    """`shared-world serve`: the HTTP front door alone (no Discord, no token) until a signal."""
    return _run_until_stopped(serve_http(settings))


async def serve_http(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    """Run the WorldService and the HTTP app (even with [http] enabled = false) until `stop`
    is set or SIGTERM/SIGINT arrives; the same checks and sentences as `run`."""
    try:
        await require_writable_storage(settings)
        service = await start_service(settings)
    except HostMistake as mistake:
        say(mistake.sentence)
        return mistake.code
    stop = stop or asyncio.Event()
    signals: list[signal.Signals] = []
    web_runner: Any = None
    try:
        try:
            web_runner = await _start_http(settings, service, always=True)
        except HostMistake as mistake:
            say(mistake.sentence)
            return mistake.code
        signals = _on_signals(stop)
        await stop.wait()
        log.info("stop requested: closing the HTTP server and draining running mints")
    finally:
        if web_runner is not None:
            await web_runner.cleanup()
        await service.close()
        loop = asyncio.get_running_loop()
        for signum in signals:
            loop.remove_signal_handler(signum)
    log.info("stopped exit_code=0")
    return 0


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    """Run the bot (and the HTTP front door) until `stop` is set or a signal arrives."""
    token = settings.discord.token
    if not token:
        say(NO_TOKEN)
        return 2
    try:
        await require_writable_storage(settings)
        service = await start_service(settings)
    except HostMistake as mistake:
        say(mistake.sentence)
        return mistake.code
    stop = stop or asyncio.Event()
    signals: list[signal.Signals] = []
    web_runner: Any = None
    bot: Any = None
    bot_task: asyncio.Task[Any] | None = None
    stop_task: asyncio.Task[Any] | None = None
    code = 0
    try:
        try:
            web_runner = await _start_http(
                settings,
                service,
                interactions=lambda: bot.interactions_handled if bot is not None else 0,
            )
        except HostMistake as mistake:
            say(mistake.sentence)
            return mistake.code
        signals = _on_signals(stop)
        bot = build_bot(settings, service)
        bot_task = asyncio.create_task(bot.start(token), name="discord gateway")
        stop_task = asyncio.create_task(stop.wait(), name="wait for a stop signal")
        await asyncio.wait({bot_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if bot_task.done():
            code = _bot_exit_code(bot_task)
        else:
            log.info("stop requested: closing the gateway and draining running mints")
    finally:
        if stop_task is not None:
            stop_task.cancel()
        if bot is not None:
            await bot.close()
        if bot_task is not None:
            bot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await bot_task
        if web_runner is not None:
            await web_runner.cleanup()
        await service.close()
        loop = asyncio.get_running_loop()
        for signum in signals:
            loop.remove_signal_handler(signum)
    log.info("stopped exit_code=%d", code)
    return code


async def require_writable_storage(settings: Settings) -> None:
    """The same probe `shared-world check` runs, at start rather than at the first clip."""
    from storage.base import StorageError
    from storage.factory import build_store

    try:
        store = build_store(settings.storage)
    except StorageError as exc:
        raise HostMistake(f"storage: {exc}", 2) from exc
    try:
        await store.check()
    except StorageError as exc:
        raise HostMistake(f"storage: {exc}", 2) from exc
    finally:
        with contextlib.suppress(Exception):
            await store.close()


async def start_service(settings: Settings) -> WorldService:
    try:
        return await WorldService.start(settings)
    except (SchemaOutdated, DatabaseMissing) as exc:
        raise HostMistake(str(exc), 2) from exc
    except DatabaseUnavailable as exc:
        raise HostMistake(str(exc), 1) from exc


def discord_failure(error: BaseException) -> tuple[str, int] | None:
    """The sentence and exit code for a failure talking to Discord, or None if unknown."""
    if isinstance(error, discord.LoginFailure):
        return BAD_TOKEN, 1
    if isinstance(error, discord.PrivilegedIntentsRequired):
        return MISSING_INTENT, 1
    if isinstance(error, discord.ConnectionClosed):
        if error.code == 4004:  # authentication failed
            return BAD_TOKEN, 1
        reason = f": {error.reason}" if error.reason else ""
        return f"Discord closed the connection (code {error.code}{reason}); try again later.", 1
    if isinstance(error, discord.GatewayNotFound | aiohttp.ClientConnectionError | OSError):
        return DISCORD_UNREACHABLE, 1  # DNS, refused, reset, TLS, timeouts (TimeoutError)
    if isinstance(error, discord.DiscordServerError):
        return f"Discord is having trouble (HTTP {error.status}); try again in a few minutes.", 1
    if isinstance(error, discord.HTTPException):
        text = f": {error.text}" if error.text else ""
        return f"Discord refused the request (HTTP {error.status}{text}).", 1
    return None


def _bot_exit_code(task: asyncio.Task[Any]) -> int:
    if task.cancelled():
        return 0
    error = task.exception()
    if error is None:
        return 0
    known = discord_failure(error)
    if known is not None:
        sentence, code = known
        log.debug("the Discord connection failed", exc_info=error)  # the traceback: DEBUG only
        say(sentence)
        return code
    log.debug("the Discord connection failed", exc_info=error)
    say(
        f"the Discord connection failed ({type(error).__name__}: {redact(str(error))}); run "
        "with LOG_LEVEL=DEBUG to see the traceback in the log."
    )
    return 1


def _on_signals(stop: asyncio.Event) -> list[signal.Signals]:
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    return installed


def port_problem(host: str, port: int, exc: OSError) -> str | None:
    """One sentence for an HTTP address that cannot be bound, or None if `exc` is another error."""
    where = f"port {port} on {host}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"{where} is already in use: set [http] port in the config file to a free port, "
            "or stop the other process."
        )
    if exc.errno == errno.EACCES:
        return (
            f"{where} may not be opened by this user (ports below 1024 need privileges): set "
            "[http] port in the config file to 1024 or above."
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"{host} is not an address of this machine: set [http] host in the config file "
            "(127.0.0.1 or 0.0.0.0)."
        )
    return None


async def _start_http(
    settings: Settings,
    service: WorldService,
    *,
    always: bool = False,
    interactions: Callable[[], int] | None = None,
) -> Any:
    if not settings.http.enabled and not always:
        return None
    from aiohttp import web

    from web.app import build_app

    app = build_app(settings, service, interactions=interactions)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.http.host, settings.http.port).start()
    except OSError as exc:
        await runner.cleanup()
        sentence = port_problem(settings.http.host, settings.http.port, exc)
        if sentence is None:
            raise
        raise HostMistake(sentence, 2) from exc
    except BaseException:
        await runner.cleanup()
        raise
    bound = [a[1] for a in runner.addresses if isinstance(a, tuple) and len(a) >= 2]
    port = bound[0] if bound else settings.http.port  # the port picked when [http] port = 0
    log.info("http listening host=%s port=%d", settings.http.host, port)
    settle_heap()
    return runner


def settle_heap() -> None:
    """Once start-up is done: what it made (modules, metadata, the app) leaves the garbage
    collector's sight (`gc.freeze`), so the full collections a busy front door triggers scan
    only what requests made and pause it for less (bench/web.py: p99 of cold reads at
    concurrency 64 about 150 ms -> 50 ms)."""
    gc.collect()
    gc.freeze()


async def sync_commands(settings: Settings, guild_id: int | None) -> int:
    """Publish the slash commands: to one server (instant) or globally."""
    token = settings.discord.token
    if not token:
        say(NO_TOKEN)
        return 2
    bot = build_bot(settings, None)
    try:
        async with bot:
            await bot.login(token)
            try:
                if guild_id is not None:
                    guild = discord.Object(id=guild_id)
                    bot.tree.copy_global_to(guild=guild)
                    synced = await bot.tree.sync(guild=guild)
                    where = f"to server {guild_id} (available now)"
                else:
                    synced = await bot.tree.sync()
                    where = "globally (Discord may take up to an hour to show them)"
            except discord.Forbidden:
                say(
                    "Discord refused: invite the bot to that server with the "
                    "applications.commands scope (the URL from `shared-world check`)."
                )
                return 1
    except Exception as exc:
        known = discord_failure(exc)
        if known is None:
            raise
        log.debug("sync-commands failed", exc_info=exc)
        sentence, code = known
        say(sentence)
        return code
    print(f"Published {len(synced)} commands {where}: {', '.join('/' + c.name for c in synced)}.")
    return 0
