"""Helpers shared by the benchmark scripts in bench/ (not part of the application).

Importing this module puts the project root on sys.path so the scripts can reuse the test
fixtures (`tests.fixtures.world.make_settings`, `renders_started`) when run as
`.venv/bin/python bench/<name>.py` from any directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

import asyncpg  # noqa: E402
import psutil  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from tests.fixtures.world import (  # noqa: E402
    asyncpg_dsn,
    fresh_postgres_database,
    make_settings,
    renders_started,
)
from world.db import Database  # noqa: E402
from world.settings import StorageSettings  # noqa: E402

__all__ = [
    "PROJECT",
    "ConnectionPeak",
    "MotoProcess",
    "default_postgres_url",
    "fresh_postgres",
    "make_settings",
    "migrate",
    "percentile",
    "print_table",
    "quiet_logging",
    "renders_started",
    "verdict",
]

POSTGRES_ENV = "SHARED_WORLD_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def default_postgres_url() -> str:
    return os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL


def quiet_logging() -> None:
    """Warnings and errors only: the service logs every claim and upload at INFO."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("werkzeug", "botocore", "boto3", "s3transfer", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (numpy's default method); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def verdict(met: bool) -> str:
    return "target met" if met else "target missed"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A compact left-aligned text table."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print("  ".join(value.ljust(widths[i]) for i, value in enumerate(row)).rstrip())
        if index == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


MiB = 1024 * 1024


# --------------------------------------------------------------------------- memory


class RssSampler:
    """Peak RSS of this process, sampled every 10 ms in a daemon thread."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.process = psutil.Process()
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self.peak_at = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self.process.memory_info().rss
            if rss > self.peak:
                self.peak, self.peak_at = rss, time.monotonic()
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / MiB


# --------------------------------------------------------------------------- databases


def fresh_postgres(base_url: str) -> Any:
    """CREATE DATABASE sw_bench_<random> on the server of `base_url`; DROP ... WITH (FORCE)."""
    return fresh_postgres_database(base_url, prefix="sw_bench")


class ConnectionPeak:
    """Peak number of server connections to one PostgreSQL database, sampled every 20 ms."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ConnectionPeak:
        name = make_url(self.database_url).database
        connection = await asyncpg.connect(asyncpg_dsn(self.database_url))

        async def sample() -> None:
            try:
                while True:
                    count = await connection.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name
                    )
                    self.peak = max(self.peak, int(count) - 1)  # minus this sampler
                    await asyncio.sleep(0.02)
            finally:
                await connection.close()

        self._task = asyncio.create_task(sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def migrate(url: str) -> None:
    """Apply every migration (what `shared-world db upgrade` does)."""
    db = Database(url)
    try:
        await db.upgrade()
    finally:
        await db.close()


# --------------------------------------------------------------------------- S3 (moto)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class MotoProcess:
    """moto's standalone S3 server in a child process (`python -m moto.server`).

    The tests run moto in a thread of the test process (tests.fixtures.s3.MotoS3Server); a
    benchmark must not: moto's request handling would compete for the GIL with the code
    being measured, and objects it keeps would count towards this process's RSS.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = _free_port(host)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self._process.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto server did not start listening") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> MotoProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Imported here, not at the top: moto's import graph is large enough to slow the garbage
    # collector in benchmarks that never touch S3 (measured: clicks p99 65 -> 129 ms).
    def client(self) -> Any:
        from tests.fixtures.s3 import setup_client

        return setup_client(self.endpoint_url)

    def new_bucket(self) -> StorageSettings:
        """Create a uniquely named bucket; StorageSettings for the s3 backend pointing at it."""
        from tests.fixtures.s3 import new_bucket_settings

        return new_bucket_settings(self.endpoint_url, "sw-bench", upload_attempts=3)
