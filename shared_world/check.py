"""`shared-world check`: one line per check, ok or what to fix; exit 1 on any failure.

Owns the checks (settings and which config file they came from, database, storage, providers,
the Discord token) and the bot's invite URL with the exact Discord permission bits it needs:
those are process wiring, not domain, so they live here rather than in world/.

Every line it prints starts with `ok    `, `WARN  `, `FAIL  ` or `invite: ` (library log lines
go to the log on stderr). The Discord token is checked for its shape without any network call;
when Discord is reachable the token itself is verified (`GET /oauth2/applications/@me`), and
an unreachable Discord is a WARN, not a failure. The invite URL carries the application id
Discord answered with, else the one encoded in the token's first part.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from world.db import Database, DatabaseUnavailable, SchemaOutdated, redacted_url
from world.settings import Settings

DISCORD_API = "https://discord.com/api/v10"  # tests point this at a loopback fake
DISCORD_VERIFY_TIMEOUT_SECONDS = 10.0

DISCORD_UNREACHABLE = "cannot reach discord.com: check the network"
BAD_TOKEN = (
    "Discord rejected DISCORD_TOKEN; copy a fresh token from the Developer Portal (Bot > Reset "
    "Token) and export it again."
)
BAD_TOKEN_SHAPE = (
    "DISCORD_TOKEN does not look like a bot token (three dot-separated parts, the first the "
    "encoded application id); copy it from the Developer Portal (Bot > Reset Token), not the "
    "client secret or the application id"
)
_TOKEN_PART = re.compile(r"[A-Za-z0-9_-]+")
_SNOWFLAKE = re.compile(r"[0-9]{15,21}")

REQUIRED_PERMISSIONS = {
    # Exactly what the bot uses: it posts and edits its own cards (partial messages, so no
    # history reads, no replies) and uploads a clip when storage has no public URL.
    "View Channels": 1 << 10,
    "Send Messages": 1 << 11,
    "Embed Links": 1 << 14,
    "Attach Files": 1 << 15,
}


def settings_source(settings: Settings) -> str:
    """Where the settings came from, in words: the config file read, or the built-in defaults."""
    if settings.config_path is None:
        return "built-in defaults (no config file)"
    return f"read {os.path.abspath(settings.config_path)}"


def invite_url(application_id: int | str = "YOUR_APPLICATION_ID") -> str:
    """The OAuth2 URL that adds the bot with its slash commands and exactly the permissions."""
    permissions = sum(REQUIRED_PERMISSIONS.values())
    return (
        "https://discord.com/oauth2/authorize"
        f"?client_id={application_id}&scope=bot+applications.commands&permissions={permissions}"
    )


def application_id_from_token(token: str) -> int | None:
    """The application (bot user) id a well-shaped bot token encodes, else None.

    A bot token is three base64url parts joined by dots; the first is the bot's user id in
    decimal, which is the application id. Nothing is sent anywhere.
    """
    parts = token.split(".")
    if len(parts) != 3 or not all(_TOKEN_PART.fullmatch(part) for part in parts):
        return None
    first = parts[0]
    try:
        decoded = base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    return int(decoded) if _SNOWFLAKE.fullmatch(decoded) else None


def token_shape_problem(token: str) -> str | None:
    """One sentence when `token` cannot be a bot token, else None."""
    if application_id_from_token(token) is not None:
        return None
    if token.lower().startswith("bot "):
        return "DISCORD_TOKEN starts with 'Bot ': export the token alone, without the prefix"
    return BAD_TOKEN_SHAPE


class CheckWarning(Exception):
    """A probe's result worth a WARN line: not verified, but not a failure either."""


async def verify_discord_token(token: str) -> dict[str, object]:
    """Discord's own answer for the token's application; RuntimeError when Discord rejects
    it, CheckWarning when Discord cannot be reached or answers with an error."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=DISCORD_VERIFY_TIMEOUT_SECONDS)
    headers = {
        "Authorization": f"Bot {token}",
        "User-Agent": "DiscordBot (shared-world, 1)",
    }
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{DISCORD_API}/oauth2/applications/@me", headers=headers) as response,
        ):
            body = await response.text()
            status = response.status
    except (aiohttp.ClientError, OSError) as exc:  # OSError covers TimeoutError
        raise CheckWarning(
            f"DISCORD_TOKEN looks right but could not be verified: {DISCORD_UNREACHABLE}"
        ) from exc
    if status == 401:
        raise RuntimeError(BAD_TOKEN.rstrip("."))
    if status >= 400:
        raise CheckWarning(
            f"could not verify DISCORD_TOKEN: Discord answered HTTP {status}; try again later"
        )
    try:
        application = json.loads(body)
    except ValueError as exc:
        raise CheckWarning("could not verify DISCORD_TOKEN: Discord's answer was not JSON") from exc
    if not isinstance(application, dict):
        raise CheckWarning("could not verify DISCORD_TOKEN: Discord's answer was unexpected")
    return application


async def run_checks(settings: Settings, *, echo: Callable[[str], None] = print) -> int:
    """Run every check, `echo` one line each (then the invite URL); 1 if any failed, else 0."""
    failures = 0
    application_id: int | str = "YOUR_APPLICATION_ID"

    async def check(name: str, probe: Callable[[], Awaitable[str]]) -> None:
        nonlocal failures
        try:
            detail = await probe()
            echo(f"ok    {name}: {detail}")
        except CheckWarning as exc:
            echo(f"WARN  {name}: {_plain(exc)}")
        except Exception as exc:
            failures += 1
            echo(f"FAIL  {name}: {_plain(exc)}")

    async def settings_probe() -> str:
        worlds = ", ".join(f"{w.id} ({w.provider})" for w in settings.worlds)
        return f"{settings_source(settings)}; worlds: {worlds}"

    async def database_probe() -> str:
        db = Database.from_settings(settings.database)
        try:
            await db.require_current_schema()
            budget = await db.connection_budget()
            if budget is not None:
                echo_budget(budget)
            return f"reachable and migrated ({redacted_url(settings.database.url)})"
        except (SchemaOutdated, DatabaseUnavailable):
            raise  # already one sentence naming the fix
        except Exception as exc:
            raise RuntimeError(
                f"cannot reach {redacted_url(settings.database.url)} ({type(exc).__name__}); "
                "check DATABASE_URL and that the server is running"
            ) from exc
        finally:
            await db.close()

    def echo_budget(budget: tuple[int, int]) -> None:
        limit, reserved = budget
        per_process = settings.database.pool_size + settings.database.max_overflow
        wanted = settings.database.processes * per_process
        if wanted > limit - reserved:
            echo(
                f"WARN  database: {settings.database.processes} processes x {per_process} "
                f"connections = {wanted}, more than the server's {limit - reserved} "
                "(max_connections minus superuser_reserved_connections); lower "
                "[database] pool_size / max_overflow or raise max_connections"
            )

    async def storage_probe() -> str:
        from storage.factory import build_store

        store = build_store(settings.storage)
        try:
            await store.check()
            url = store.url_for("worlds/check/probe.mp4")
            how = "no public URL (clips are uploaded to Discord)" if url is None else "URLs ok"
            return f"{settings.storage.backend} storage writable; {how}"
        finally:
            with contextlib.suppress(Exception):
                await store.close()

    async def provider_probe() -> str:
        from world.providers import build_provider

        data_dir = Path(settings.generation.spool_dir).parent
        lines = []
        problems = []
        for world in settings.worlds:
            try:
                provider = build_provider(world, settings.providers, data_dir)
            except NotImplementedError as exc:
                raise RuntimeError(f"world {world.id!r}: {exc}") from exc
            try:
                for level, sentence in await provider.check():
                    if level == "fail":
                        problems.append(sentence)
                    elif level == "warn":
                        echo(f"WARN  providers: {sentence}")
                    else:
                        echo(f"ok    providers: {sentence}")
            finally:
                await provider.close()
            who = "free, no key" if not provider.needs_key else "members bring their own keys"
            lines.append(f"{world.id}: {world.provider}, video model {world.video_model} ({who})")
        if problems:
            raise RuntimeError("; ".join(problems))
        return "; ".join(lines)

    async def discord_probe() -> str:
        nonlocal application_id
        token = settings.discord.token
        if not token:
            raise RuntimeError(
                "DISCORD_TOKEN is not set; create a bot at https://discord.com/developers/"
                "applications and export its token"
            )
        problem = token_shape_problem(token)
        if problem is not None:
            raise RuntimeError(problem)
        decoded = application_id_from_token(token)
        assert decoded is not None
        application_id = decoded
        application = await verify_discord_token(token)
        if str(application.get("id", "")).isdigit():
            application_id = int(str(application["id"]))
        name = application.get("name")
        named = f"application {name!r}, " if isinstance(name, str) and name else "application "
        return f"Discord accepted the token ({named}id {application_id})"

    await check("settings", settings_probe)
    await check("database", database_probe)
    await check("storage", storage_probe)
    await check("providers", provider_probe)
    await check("discord", discord_probe)
    echo(f"invite: {invite_url(application_id)}")
    return 1 if failures else 0


def _plain(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
