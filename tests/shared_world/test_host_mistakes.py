"""Issue 10: one plain sentence for every host mistake, an exit code, and no traceback.

Each mistake is shown end to end through `python -m shared_world` at least once (the exit
code, exactly one sentence on stderr, no "Traceback" anywhere), and in-process where the
mapping needs a fake (a Discord that rejects the token answers on loopback). The tests have
no network: discord.com does not resolve, which is exactly "Discord unreachable".

Exit codes: 2 = fix the settings or the set-up first, 1 = a service failed or refused us.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import discord
import pytest
from aiohttp import web
from sqlalchemy.engine import make_url

from bot.app import SharedWorldBot
from shared_world import check as check_module
from shared_world import runner
from shared_world.check import (
    BAD_TOKEN,
    BAD_TOKEN_SHAPE,
    DISCORD_UNREACHABLE,
    application_id_from_token,
    run_checks,
    token_shape_problem,
)
from shared_world.cli import build_parser, configure_logging, main, remove_logging
from tests.fixtures.discord import bot_settings
from world.db import upgrade_database
from world.service import WorldService
from world.settings import SettingsError, load_settings

APP_ID = 123456789012345678
STRIPPED = ("R2_", "DISCORD_", "WORLD_", "SHARED_WORLD_CONFIG", "LOG_LEVEL", "DATABASE_", "S3_")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+: ")
CHECK_PREFIXES = ("ok    ", "WARN  ", "FAIL  ", "invite: ")


def fake_token(application_id: int = APP_ID) -> str:
    """Shaped like a bot token: base64url(id) . timestamp . hmac (not a real token)."""
    first = base64.urlsafe_b64encode(str(application_id).encode()).decode().rstrip("=")
    return f"{first}.GAAAAA.{'a' * 38}"


# -- running the real command -------------------------------------------------------------


def _cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED)}
    environment["DATABASE_URL"] = f"sqlite:///{cwd / 'host.db'}"
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "shared_world", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _sentence(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The one line on stderr that is not a log record; asserts the code and no traceback.

    Log records (timestamp, level, logger) may come before and after it: they are the log.
    """
    everything = result.stdout + result.stderr
    assert result.returncode == code, everything
    assert "Traceback" not in everything, everything
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    said = [line for line in lines if not LOG_LINE.match(line)]
    assert len(said) == 1, result.stderr
    assert not any(" ERROR " in line or " CRITICAL " in line for line in lines), result.stderr
    return said[0]


def _only_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """With LOG_LEVEL=WARNING: stderr is exactly one non-empty line, and stdout is empty."""
    sentence = _sentence(result, code)
    assert [line for line in result.stderr.splitlines() if line.strip()] == [sentence]
    assert result.stdout == "", result.stdout
    return sentence


def _config(cwd: Path, text: str = "") -> Path:
    """A config file that keeps the HTTP front door off port 8080 (tests run in parallel)."""
    path = cwd / "host.toml"
    path.write_text("[http]\nport = 0\n" + text, encoding="utf-8")
    return path


def _migrated(cwd: Path) -> None:
    upgrade_database(f"sqlite:///{cwd / 'host.db'}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- Discord unreachable -------------------------------------------------------------------


def test_run_with_discord_unreachable_is_one_sentence_and_exit_1(tmp_path):
    _migrated(tmp_path)
    config = _config(tmp_path)
    result = _cli(tmp_path, "run", "--config", str(config), DISCORD_TOKEN=fake_token())
    assert (
        _sentence(result, 1) == DISCORD_UNREACHABLE == "cannot reach discord.com: check the network"
    )


def test_sync_commands_with_discord_unreachable_is_one_sentence_and_exit_1(tmp_path):
    result = _cli(tmp_path, "sync-commands", DISCORD_TOKEN=fake_token(), LOG_LEVEL="WARNING")
    assert _only_line(result, 1) == DISCORD_UNREACHABLE


@pytest.mark.parametrize(
    "error",
    [
        OSError("Network is unreachable"),
        TimeoutError(),
        discord.GatewayNotFound(),
    ],
)
def test_every_way_of_not_reaching_discord_is_the_same_sentence(error):
    assert runner.discord_failure(error) == (DISCORD_UNREACHABLE, 1)


# -- a token Discord rejects (a loopback Discord that answers 401) ------------------------


@pytest.fixture
async def rejecting_discord(monkeypatch) -> AsyncIterator[str]:
    """discord.py's REST base and check's pointed at a loopback server that answers 401."""
    seen: list[str] = []

    async def unauthorized(request: web.Request) -> web.Response:
        seen.append(request.path)
        body = json.dumps({"message": "401: Unauthorized", "code": 0}).encode()
        return web.Response(status=401, body=body, headers={"Content-Type": "application/json"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", unauthorized)
    web_runner = web.AppRunner(app, access_log=None)
    await web_runner.setup()
    site = web.TCPSite(web_runner, "127.0.0.1", 0)
    await site.start()
    port = web_runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}/api/v10"
    monkeypatch.setattr(discord.http.Route, "BASE", base)
    monkeypatch.setattr(check_module, "DISCORD_API", base)
    try:
        yield base
    finally:
        await web_runner.cleanup()
    assert seen, "the fake Discord was never asked"


@pytest.fixture
def settings(tmp_path: Path):
    base = bot_settings(tmp_path)
    return replace(
        base,
        discord=replace(base.discord, token=fake_token()),
        http=replace(base.http, enabled=False),
    )


@pytest.fixture
def migrated(settings):
    upgrade_database(settings.database.url)
    return settings


async def test_run_with_a_rejected_token_is_one_sentence_and_exit_1(
    migrated, rejecting_discord, capsys
):
    assert await runner.serve(migrated) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == BAD_TOKEN and "Traceback" not in captured.out + captured.err


async def test_sync_commands_with_a_rejected_token_is_one_sentence_and_exit_1(
    settings, rejecting_discord, capsys
):
    assert await runner.sync_commands(settings, None) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == BAD_TOKEN and captured.out == ""


async def test_check_fails_a_token_discord_rejects(settings, migrated, rejecting_discord):
    lines: list[str] = []
    assert await run_checks(settings, echo=lines.append) == 1
    assert f"FAIL  discord: {BAD_TOKEN.rstrip('.')}" in lines
    assert lines[-1].startswith(f"invite: https://discord.com/oauth2/authorize?client_id={APP_ID}&")


async def test_check_verifies_the_token_and_uses_discords_application_id(
    settings, migrated, monkeypatch
):
    async def application(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == f"Bot {fake_token()}"
        body = json.dumps({"id": "999999999999999999", "name": "Shared World"}).encode()
        return web.Response(body=body, headers={"Content-Type": "application/json"})

    app = web.Application()
    app.router.add_get("/api/v10/oauth2/applications/@me", application)
    web_runner = web.AppRunner(app, access_log=None)
    await web_runner.setup()
    await web.TCPSite(web_runner, "127.0.0.1", 0).start()
    port = web_runner.addresses[0][1]
    monkeypatch.setattr(check_module, "DISCORD_API", f"http://127.0.0.1:{port}/api/v10")
    lines: list[str] = []
    try:
        assert await run_checks(settings, echo=lines.append) == 0
    finally:
        await web_runner.cleanup()
    assert (
        "ok    discord: Discord accepted the token (application 'Shared World', id "
        "999999999999999999)"
    ) in lines
    assert lines[-1] == (
        "invite: https://discord.com/oauth2/authorize?client_id=999999999999999999"
        "&scope=bot+applications.commands&permissions=52224"
    )


# -- the token's shape: no network call at all --------------------------------------------


def test_the_application_id_is_read_from_the_tokens_first_part():
    assert application_id_from_token(fake_token(APP_ID)) == APP_ID
    assert application_id_from_token(fake_token(100000000000000000)) == 100000000000000000
    for wrong in ("test-token", "a.b", "a.b.c.d", "bm90LWEtbnVtYmVy.GAAAAA.xyz", "x y.a.b", ""):
        assert application_id_from_token(wrong) is None, wrong
    assert token_shape_problem(fake_token()) is None
    assert token_shape_problem(f"Bot {fake_token()}").startswith("DISCORD_TOKEN starts with 'Bot '")


async def test_check_fails_a_misshapen_token_without_asking_discord(
    settings, migrated, monkeypatch
):
    async def never(token: str) -> dict[str, object]:
        raise AssertionError("a misshapen token must not be sent anywhere")

    monkeypatch.setattr(check_module, "verify_discord_token", never)
    lines: list[str] = []
    misshapen = replace(settings, discord=replace(settings.discord, token="my-client-secret"))
    assert await run_checks(misshapen, echo=lines.append) == 1
    assert f"FAIL  discord: {BAD_TOKEN_SHAPE}" in lines
    assert "client_id=YOUR_APPLICATION_ID" in lines[-1]


def test_check_prints_only_its_own_lines_and_warns_when_discord_cannot_verify(tmp_path):
    _migrated(tmp_path)
    result = _cli(tmp_path, "check", DISCORD_TOKEN=fake_token())  # LOG_LEVEL: the default INFO
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith(CHECK_PREFIXES) for line in lines), result.stdout
    assert (
        "WARN  discord: DISCORD_TOKEN looks right but could not be verified: "
        "cannot reach discord.com: check the network"
    ) in lines
    assert lines[-1] == (
        f"invite: https://discord.com/oauth2/authorize?client_id={APP_ID}"
        "&scope=bot+applications.commands&permissions=52224"
    )
    assert result.stderr == ""  # library INFO lines (alembic, storage) stay out of the way
    assert "Traceback" not in result.stdout + result.stderr


# -- a PostgreSQL database that does not exist --------------------------------------------


@pytest.fixture
def missing_database(postgres_url: str) -> tuple[str, str]:
    """(DATABASE_URL naming a database that does not exist, its name)."""
    name = f"sw_missing_{uuid.uuid4().hex[:10]}"
    return make_url(postgres_url).set(database=name).render_as_string(hide_password=False), name


def _createdb(url: str) -> str:
    parsed = make_url(url)
    port = "" if (parsed.port or 5432) == 5432 else f" -p {parsed.port}"
    user = f" -U {parsed.username}" if parsed.username else ""
    return f"`createdb -h {parsed.host}{port}{user} {parsed.database}`"


@pytest.mark.postgres
@pytest.mark.parametrize("command", [("db", "upgrade"), ("run",)])
def test_a_missing_database_names_it_and_the_command_that_creates_it(
    tmp_path, missing_database, command
):
    url, name = missing_database
    config = _config(tmp_path)
    result = _cli(
        tmp_path,
        *command,
        "--config",
        str(config),
        DATABASE_URL=url,
        DISCORD_TOKEN=fake_token(),
        LOG_LEVEL="WARNING",
    )
    sentence = _only_line(result, 2)
    assert sentence.startswith(f'PostgreSQL database "{name}" does not exist on '), sentence
    assert _createdb(url) in sentence and f'CREATE DATABASE "{name}"' in sentence


@pytest.mark.postgres
def test_check_names_a_missing_database_in_its_database_line(tmp_path, missing_database):
    url, name = missing_database
    result = _cli(tmp_path, "check", DATABASE_URL=url, DISCORD_TOKEN=fake_token())
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert line.startswith(f'FAIL  database: PostgreSQL database "{name}" does not exist')
    assert _createdb(url) in line


def test_an_unreachable_postgresql_server_is_one_sentence_and_exit_1(tmp_path):
    port = _free_port()  # nobody listens there
    url = f"postgresql://postgres@127.0.0.1:{port}/shared_world"
    result = _cli(tmp_path, "db", "upgrade", DATABASE_URL=url, LOG_LEVEL="WARNING")
    sentence = _only_line(result, 1)
    assert sentence.startswith(f"cannot reach PostgreSQL on 127.0.0.1:{port} ("), sentence
    assert sentence.endswith("check DATABASE_URL and that the server is running.")


# -- the HTTP port already in use ----------------------------------------------------------


def test_run_with_the_http_port_in_use_is_one_sentence_and_exit_2(tmp_path):
    _migrated(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "port.toml"
        config.write_text(f'[http]\nhost = "127.0.0.1"\nport = {port}\n', encoding="utf-8")
        result = _cli(
            tmp_path,
            "--config",
            str(config),
            "run",
            DISCORD_TOKEN=fake_token(),
            LOG_LEVEL="WARNING",
        )
    assert _only_line(result, 2) == (
        f"port {port} on 127.0.0.1 is already in use: set [http] port in the config file to a "
        "free port, or stop the other process."
    )


async def test_the_port_is_taken_before_the_gateway_and_nothing_is_left_running(
    migrated, monkeypatch, capsys
):
    started: list[WorldService] = []
    original = WorldService.start

    async def recording_start(*args, **kwargs):
        service = await original(*args, **kwargs)
        started.append(service)
        return service

    async def gateway(self: SharedWorldBot, token: str, *, reconnect: bool = True) -> None:
        raise AssertionError("the gateway must not be opened when the port is taken")

    monkeypatch.setattr(runner.WorldService, "start", recording_start)
    monkeypatch.setattr(SharedWorldBot, "start", gateway)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = replace(migrated, http=replace(migrated.http, enabled=True, port=port))
        assert await runner.serve(settings) == 2
    assert f"port {port} on 127.0.0.1 is already in use" in capsys.readouterr().err
    assert started and started[0].closing  # the service was drained, not left running


# -- storage not writable at `run` ---------------------------------------------------------


def test_run_checks_storage_at_start_and_names_the_directory(tmp_path):
    _migrated(tmp_path)
    (tmp_path / "afile").write_text("not a directory")  # fails for root too, unlike chmod
    assets = tmp_path / "afile" / "assets"
    config = _config(tmp_path, f'[storage]\nlocal_dir = "{assets}"\n')
    result = _cli(tmp_path, "run", "--config", str(config), DISCORD_TOKEN=fake_token())
    sentence = _sentence(result, 2)
    assert sentence.startswith(f"storage: asset directory {assets} is not writable"), sentence
    assert "storage.local_dir" in sentence
    assert "logging in" not in result.stderr  # refused before Discord was contacted


# -- a bucket without credentials ----------------------------------------------------------


def test_r2_bucket_name_without_credentials_is_refused_not_silently_local(tmp_path):
    result = _cli(tmp_path, "run", R2_BUCKET_NAME="clips", DISCORD_TOKEN=fake_token())
    sentence = _only_line(result, 2)
    assert sentence.startswith("Shared World cannot start: storage.bucket (R2_BUCKET_NAME)")
    assert "R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY are not set" in sentence


def test_a_bucket_in_the_file_without_credentials_is_refused(tmp_path):
    path = tmp_path / "bucket.toml"
    path.write_text('[storage]\nbucket = "clips"\n', encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_settings(path, env={"R2_ACCESS_KEY_ID": "key"})
    (problem,) = caught.value.problems
    assert "R2_SECRET_ACCESS_KEY is not set" in problem and "R2_ACCESS_KEY_ID" not in problem
    both = {"R2_ACCESS_KEY_ID": "key", "R2_SECRET_ACCESS_KEY": "secret"}
    assert load_settings(path, env=both | {"STORAGE_BACKEND": "local"}).storage.bucket == "clips"


# -- --config on either side, --help for each subcommand ----------------------------------


@pytest.fixture
def clean_env(monkeypatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith(STRIPPED):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'host.db'}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_is_accepted_before_or_after_the_subcommand(clean_env, capsys, where):
    config = clean_env / "mine.toml"
    config.write_text('[[worlds]]\nid = "mine"\n', encoding="utf-8")
    flag = ["--config", str(config)]
    main([*flag, "check"] if where == "before" else ["check", *flag])
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"ok    settings: read {config.resolve()}; worlds: mine (offline)"


def test_config_after_a_nested_subcommand_and_the_later_one_wins(clean_env, capsys):
    good = clean_env / "good.toml"
    good.write_text('log_level = "WARNING"\n', encoding="utf-8")
    missing = clean_env / "missing.toml"
    assert main(["--config", str(missing), "db", "upgrade", "--config", str(good)]) == 0
    assert capsys.readouterr().out.startswith("Database is up to date")


def test_python_m_shared_world_check_with_config_after_the_subcommand(tmp_path):
    config = tmp_path / "after.toml"
    config.write_text('[[worlds]]\nid = "after"\n', encoding="utf-8")
    result = _cli(tmp_path, "check", "--config", str(config))
    assert result.returncode == 1  # no token, no schema: but the file was read
    assert result.stdout.splitlines()[0].endswith("; worlds: after (offline)"), result.stdout


def _subparsers(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, object]:
    found: dict[str, object] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[f"{prefix}{name}"] = sub
                found.update(_subparsers(sub, f"{prefix}{name} "))
    return found


def test_every_subcommand_says_what_it_does_and_takes_config():
    commands = _subparsers(build_parser())
    assert {"run", "check", "db", "db upgrade", "sync-commands"} <= set(commands)
    for name, sub in commands.items():
        assert isinstance(sub, argparse.ArgumentParser)
        assert (sub.description or "").strip(), f"`shared-world {name} --help` says nothing"
        assert any("--config" in a.option_strings for a in sub._actions), name


def test_run_help_prints_its_description(tmp_path):
    result = _cli(tmp_path, "run", "--help")
    assert result.returncode == 0
    assert "Run the Discord bot and the HTTP front door" in result.stdout
    assert "--config" in result.stdout


# -- unexpected errors and library tracebacks ----------------------------------------------


def test_an_unexpected_error_is_one_line_naming_log_level_debug(clean_env, monkeypatch, capsys):
    async def broken(settings, **kwargs):
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr(check_module, "run_checks", broken)
    assert main(["check"]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        "Shared World stopped on an unexpected error (RuntimeError: something nobody "
        "foresaw); run with LOG_LEVEL=DEBUG to see the traceback in the log."
    )
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    assert main(["check"]) == 1
    assert "Traceback" in capsys.readouterr().err  # with DEBUG, the log has it


def test_library_errors_are_one_line_below_debug(capsys):
    reconnect = logging.getLogger("discord.client")
    try:
        configure_logging("INFO")
        try:
            raise OSError("Cannot connect to host discord.com:443")
        except OSError:
            reconnect.exception("Attempting a reconnect in %.2fs", 1.0)
        logging.getLogger("discord.client").warning(
            "PyNaCl is not installed, voice will NOT be supported"
        )
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].endswith(
            "ERROR discord.client: Attempting a reconnect in 1.00s "
            "(OSError: Cannot connect to host discord.com:443)"
        )
        configure_logging("DEBUG")
        try:
            raise OSError("still down")
        except OSError:
            reconnect.exception("Attempting a reconnect in %.2fs", 2.0)
        assert "Traceback" in capsys.readouterr().err
    finally:
        remove_logging()


def test_the_discord_mapping_covers_the_gateways_own_refusals():
    closed = discord.ConnectionClosed.__new__(discord.ConnectionClosed)
    closed.code, closed.reason, closed.shard_id = 4004, "Authentication failed.", None
    assert runner.discord_failure(closed) == (BAD_TOKEN, 1)
    assert runner.discord_failure(discord.LoginFailure("bad")) == (BAD_TOKEN, 1)
    assert runner.discord_failure(ValueError("not ours")) is None


def test_sentences_are_single_lines():
    for sentence in (DISCORD_UNREACHABLE, BAD_TOKEN, BAD_TOKEN_SHAPE, runner.NO_TOKEN):
        assert "\n" not in sentence
