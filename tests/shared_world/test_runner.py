"""`shared-world run` / `sync-commands`: plain messages, clean shutdown, exit codes."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import replace
from pathlib import Path

import discord
import pytest

from bot.app import SharedWorldBot
from shared_world import runner
from shared_world.cli import main as cli_main
from tests.fixtures.discord import bot_settings
from world.db import Database
from world.service import WorldService


@pytest.fixture
def settings(tmp_path: Path):
    base = bot_settings(tmp_path)
    return replace(
        base,
        discord=replace(base.discord, token="test-token-not-real"),
        http=replace(base.http, enabled=False),
    )


@pytest.fixture
async def migrated(settings):
    database = Database(settings.database.url)
    await database.upgrade()
    await database.close()
    return settings


@pytest.fixture
def services(monkeypatch) -> list[WorldService]:
    started: list[WorldService] = []
    original = WorldService.start

    async def recording_start(*args, **kwargs):
        service = await original(*args, **kwargs)
        started.append(service)
        return service

    monkeypatch.setattr(runner.WorldService, "start", recording_start)
    return started


def test_run_without_a_token_says_how_to_get_one(settings, capsys):
    code = runner.run(replace(settings, discord=replace(settings.discord, token=None)))
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("DISCORD_TOKEN is not set") and "discord.com/developers" in err
    assert len(err.splitlines()) == 1


def test_the_cli_exits_2_without_a_token(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cli_main(["run"]) == 2
    assert "DISCORD_TOKEN is not set" in capsys.readouterr().err
    assert cli_main(["sync-commands", "--guild", "1"]) == 2


async def test_sigterm_closes_the_gateway_and_drains_the_service(migrated, services, monkeypatch):
    closed: list[bool] = []

    async def gateway(self: SharedWorldBot, token: str, *, reconnect: bool = True) -> None:
        assert token == "test-token-not-real"
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.Event().wait()  # connected until told to stop

    original_close = SharedWorldBot.close

    async def close(self: SharedWorldBot) -> None:
        closed.append(True)
        await original_close(self)

    monkeypatch.setattr(SharedWorldBot, "start", gateway)
    monkeypatch.setattr(SharedWorldBot, "close", close)

    assert await runner.serve(migrated) == 0
    assert closed and services[0].closing


async def test_a_rejected_token_exits_1_with_a_sentence(migrated, services, monkeypatch, capsys):
    async def gateway(self: SharedWorldBot, token: str, *, reconnect: bool = True) -> None:
        raise discord.LoginFailure("Improper token has been passed.")

    monkeypatch.setattr(SharedWorldBot, "start", gateway)
    assert await runner.serve(migrated) == 1
    assert capsys.readouterr().err.strip() == runner.BAD_TOKEN
    assert services[0].closing


async def test_an_outdated_database_names_the_command_to_run(settings, capsys):
    assert await runner.serve(settings) == 2
    assert "shared-world db upgrade" in capsys.readouterr().err


async def test_sync_commands_publishes_to_one_server(settings, monkeypatch, capsys):
    published: list[tuple[list[str], int | None]] = []

    async def login(self: SharedWorldBot, token: str) -> None:
        assert token == "test-token-not-real"
        await self.setup_hook()  # what discord.py's login runs; no gateway, no service

    async def sync(self, *, guild=None):
        names = [c.name for c in self.get_commands(guild=guild)]
        published.append((names, guild.id if guild else None))
        return [type("Published", (), {"name": name})() for name in names]

    monkeypatch.setattr(SharedWorldBot, "login", login)
    monkeypatch.setattr(discord.app_commands.CommandTree, "sync", sync)

    assert await runner.sync_commands(settings, 1234) == 0
    assert published == [(["adventure", "key", "world"], 1234)]
    out = capsys.readouterr().out
    assert out.startswith("Published 3 commands to server 1234 (available now)")
