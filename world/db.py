"""The async engine, sessions, and the schema version check.

One async session per unit of work. SQLite runs in WAL mode with a busy timeout so several
processes can share one file; PostgreSQL goes through asyncpg.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

if TYPE_CHECKING:
    from world.settings import DatabaseSettings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000


class SchemaOutdated(RuntimeError):
    """The database is behind the code; the message names the command that fixes it."""


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or refuses us; the message is one sentence with the fix."""


class DatabaseMissing(DatabaseUnavailable):
    """The PostgreSQL server is up but the named database does not exist (SQLSTATE 3D000)."""


# SQLSTATEs that name a host's mistake rather than a momentary failure.
MISSING_DATABASE_STATE = "3D000"  # invalid_catalog_name
LOGIN_REFUSED_STATES = frozenset({"28P01", "28000"})  # invalid_password, invalid_authorization


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc`, what it wraps (`.orig`) and its causes, outermost first (at most 8)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 8:
        chain.append(current)
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException) and orig not in chain:
            current = orig
        else:
            current = current.__cause__ or current.__context__
    return chain


def explain_connect_error(url: str, exc: BaseException) -> DatabaseUnavailable | None:
    """One sentence for a database the host set up wrong (missing, login refused, unreachable).

    None when `exc` is none of those (a bug or a failure worth its traceback).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        return None
    host = parsed.host or "localhost"
    port = parsed.port or 5432
    name = parsed.database or "postgres"
    user = parsed.username
    chain = _causes(exc)
    states = {getattr(cause, "sqlstate", None) for cause in chain}
    if MISSING_DATABASE_STATE in states:
        command = ["createdb", "-h", host]
        if port != 5432:
            command += ["-p", str(port)]
        if user:
            command += ["-U", user]
        command.append(name)
        return DatabaseMissing(
            f'PostgreSQL database "{name}" does not exist on {host}:{port}: create it with '
            f'`{" ".join(command)}` (or CREATE DATABASE "{name}";), then run '
            "`shared-world db upgrade`."
        )
    if states & LOGIN_REFUSED_STATES:
        who = f"user {user!r}" if user else "the login"
        return DatabaseUnavailable(
            f"PostgreSQL on {host}:{port} refused {who}: check the user and password in "
            "DATABASE_URL."
        )
    for cause in chain:
        if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
            why = cause.strerror or type(cause).__name__
            return DatabaseUnavailable(
                f"cannot reach PostgreSQL on {host}:{port} ({why}): check DATABASE_URL and "
                "that the server is running."
            )
        if isinstance(cause, TimeoutError):
            return DatabaseUnavailable(
                f"PostgreSQL on {host}:{port} did not answer in time: check DATABASE_URL and "
                "that the server is running."
            )
    return None


def async_url(url: str) -> str:
    """Map the plain URLs people write to the async drivers we use."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def redacted_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        return None
    return Path(parsed.database)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# SQLSTATEs of a server that is saturated or starting: worth waiting for, not failing on.
TRANSIENT_CONNECT_STATES = frozenset({"53300", "57P03", "53400"})


def _transient_connect_error(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    return getattr(exc, "sqlstate", None) in TRANSIENT_CONNECT_STATES


def patient_connect(url: str, patience_seconds: float) -> Callable[[], Awaitable[Any]]:
    """An asyncpg connect that waits out "too many clients" and restarts, with backoff.

    The pool calls it for every new connection, so every unit of work (a claim, a job's
    write, a vote) rides over a momentarily saturated server instead of failing.
    """
    import asyncpg

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def connect() -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience_seconds
        delay = 0.05
        while True:
            try:
                return await asyncpg.connect(dsn)
            except Exception as exc:
                if not _transient_connect_error(exc) or loop.time() + delay > deadline:
                    raise
                log.warning(
                    "database busy (%s); connecting again in %.2fs", type(exc).__name__, delay
                )
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(1.0, delay * 2)

    return connect


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    max_overflow: int = 5,
    pool_timeout_seconds: float = 30.0,
    connect_patience_seconds: float = 30.0,
    **kwargs: Any,
) -> AsyncEngine:
    url = async_url(url)
    is_sqlite = url.startswith("sqlite")
    if is_sqlite:
        path = _sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        kwargs.setdefault("pool_size", 8)
        kwargs.setdefault("max_overflow", 8)
    else:
        # Several bot processes share one server (max_connections is often 100): the pool
        # is sized from settings, and new connections wait out a saturated server.
        kwargs.setdefault("pool_size", pool_size)
        kwargs.setdefault("max_overflow", max_overflow)
        kwargs.setdefault("pool_timeout", pool_timeout_seconds)
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("async_creator", patient_connect(url, connect_patience_seconds))
    engine = create_async_engine(url, **kwargs)
    if is_sqlite:
        event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    return engine


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    return config


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None
    return head


class Database:
    """Engine plus session factory for one database URL."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: DatabaseSettings) -> Database:
        """The database with the pool the settings size (PostgreSQL; SQLite keeps its own)."""
        return cls(
            settings.url,
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            pool_timeout_seconds=settings.pool_timeout_seconds,
            connect_patience_seconds=settings.connect_patience_seconds,
        )

    async def connection_budget(self) -> tuple[int, int] | None:
        """(max_connections, reserved for superusers) of a PostgreSQL server; None on SQLite."""
        if self.dialect != "postgresql":
            return None
        async with self.engine.connect() as connection:
            limit = await connection.scalar(text("SHOW max_connections"))
            reserved = await connection.scalar(text("SHOW superuser_reserved_connections"))
        return int(limit), int(reserved)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session, session.begin():
            yield session

    async def current_revision(self) -> str | None:
        def read(connection: Connection) -> str | None:
            return MigrationContext.configure(connection).get_current_revision()

        async with self.engine.connect() as connection:
            return await connection.run_sync(read)

    async def require_current_schema(self) -> None:
        """Raise SchemaOutdated (or DatabaseUnavailable / DatabaseMissing, in one sentence)."""
        try:
            current = await self.current_revision()
        except Exception as exc:
            explained = explain_connect_error(self.url, exc)
            if explained is None:
                raise
            raise explained from exc
        head = head_revision()
        if current != head:
            state = "has no tables yet" if current is None else f"is at revision {current}"
            raise SchemaOutdated(
                f"The database {state} but this version needs {head}; "
                "run `shared-world db upgrade` first."
            )

    async def upgrade(self) -> None:
        """Apply every migration (Alembic's own engine, run in a thread)."""
        await asyncio.to_thread(upgrade_database, self.url)

    async def close(self) -> None:
        await self.engine.dispose()


def upgrade_database(url: str) -> None:
    path = _sqlite_file(async_url(url))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        command.upgrade(alembic_config(url), "head")
    except Exception as exc:
        explained = explain_connect_error(url, exc)
        if explained is None:
            raise
        raise explained from exc
    log.info("database upgraded to %s (%s)", head_revision(), redacted_url(url))
