"""`shared-world run` and `shared-world sync-commands`: one event loop, one WorldService.

`run` starts the world service, the HTTP front door (when enabled) and the bot; on SIGTERM
or Ctrl-C it closes the gateway, drains the service (running mints reach a safe point, the
rest stays resumable) and exits 0. Commands are published only by `sync-commands`.

Owns the process's lifetime: signals, exit codes and the plain sentences for a missing or
rejected Discord token. This is the one place the bot and the HTTP front door meet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

import discord

from bot.app import build_bot
from world.db import SchemaOutdated
from world.service import WorldService
from world.settings import Settings

log = logging.getLogger(__name__)

NO_TOKEN = (
    "DISCORD_TOKEN is not set: create an application at https://discord.com/developers/"
    "applications, copy its bot token (Bot > Reset Token) and export DISCORD_TOKEN=<token>."
)
BAD_TOKEN = (
    "Discord rejected DISCORD_TOKEN; copy a fresh token from the Developer Portal (Bot > Reset "
    "Token) and export it again."
)


def run(settings: Settings) -> int:
    """Run until SIGTERM or Ctrl-C; returns the process exit code."""
    if not settings.discord.token:
        print(NO_TOKEN, file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(settings))
    except KeyboardInterrupt:  # a second Ctrl-C while draining
        return 0


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    """Run the bot (and the HTTP front door) until `stop` is set or a signal arrives."""
    token = settings.discord.token
    if not token:
        print(NO_TOKEN, file=sys.stderr)
        return 2
    try:
        service = await WorldService.start(settings)
    except SchemaOutdated as exc:
        print(str(exc), file=sys.stderr)
        return 2
    stop = stop or asyncio.Event()
    signals = _on_signals(stop)
    bot = build_bot(settings, service)
    web_runner = await _start_http(settings, service)
    bot_task = asyncio.create_task(bot.start(token), name="discord gateway")
    stop_task = asyncio.create_task(stop.wait(), name="wait for a stop signal")
    code = 0
    try:
        await asyncio.wait({bot_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if bot_task.done():
            code = _bot_exit_code(bot_task)
        else:
            log.info("stop requested: closing the gateway and draining running mints")
    finally:
        stop_task.cancel()
        await bot.close()
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


def _bot_exit_code(task: asyncio.Task[Any]) -> int:
    if task.cancelled():
        return 0
    error = task.exception()
    if error is None:
        return 0
    if isinstance(error, discord.LoginFailure):
        print(BAD_TOKEN, file=sys.stderr)
        return 1
    if isinstance(error, discord.PrivilegedIntentsRequired):
        print(
            "Discord refused the connection: the bot asked for an intent it does not have.",
            file=sys.stderr,
        )
        return 1
    log.error("the Discord connection failed", exc_info=error)
    return 1


def _on_signals(stop: asyncio.Event) -> list[signal.Signals]:
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    return installed


async def _start_http(settings: Settings, service: WorldService) -> Any:
    if not settings.http.enabled:
        return None
    from aiohttp import web

    from web.app import build_app

    runner = web.AppRunner(build_app(settings, service), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.http.host, settings.http.port).start()
    log.info("http listening host=%s port=%d", settings.http.host, settings.http.port)
    return runner


async def sync_commands(settings: Settings, guild_id: int | None) -> int:
    """Publish the slash commands: to one server (instant) or globally."""
    token = settings.discord.token
    if not token:
        print(NO_TOKEN, file=sys.stderr)
        return 2
    bot = build_bot(settings, None)
    async with bot:
        try:
            await bot.login(token)
        except discord.LoginFailure:
            print(BAD_TOKEN, file=sys.stderr)
            return 1
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
            print(
                "Discord refused: invite the bot to that server with the applications.commands "
                "scope (the URL from `shared-world check`).",
                file=sys.stderr,
            )
            return 1
    print(f"Published {len(synced)} commands {where}: {', '.join('/' + c.name for c in synced)}.")
    return 0
