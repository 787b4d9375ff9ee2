"""`shared-world check`: one line per check, ok or what to fix; exit 1 on any failure.

Owns the checks (settings and which config file they came from, database, storage, providers,
the Discord token) and the bot's invite URL with the exact Discord permission bits it needs:
those are process wiring, not domain, so they live here rather than in world/.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from world.db import Database, SchemaOutdated, redacted_url
from world.settings import Settings

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


async def run_checks(settings: Settings, *, echo: Callable[[str], None] = print) -> int:
    """Run every check, `echo` one line each (then the invite URL); 1 if any failed, else 0."""
    failures = 0

    async def check(name: str, probe: Callable[[], Awaitable[str]]) -> None:
        nonlocal failures
        try:
            detail = await probe()
            echo(f"ok    {name}: {detail}")
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
        except SchemaOutdated:
            raise
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
        if not settings.discord.token:
            raise RuntimeError(
                "DISCORD_TOKEN is not set; create a bot at https://discord.com/developers/"
                "applications and export its token"
            )
        return "token set"

    await check("settings", settings_probe)
    await check("database", database_probe)
    await check("storage", storage_probe)
    await check("providers", provider_probe)
    await check("discord", discord_probe)
    echo(f"invite: {invite_url()}")
    return 1 if failures else 0


def _plain(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
