"""`shared-world prerender`, run as the host runs it: `python -m shared_world prerender ...`.

A temp SQLite database and the offline provider with short renders and leases. Depth 2 is
13 branches (1 + 3 + 9): the run is interrupted once with SIGINT and once with SIGKILL while
branches are rendering, then resumed, and ends with every branch ready and exactly 13 renders
started in all (one offline job file per paid render). The confirmation prompt is answered
on a real terminal (a pty); every host mistake is one sentence and exit 2 with nothing done.
"""

from __future__ import annotations

import asyncio
import os
import pty
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fakes.openrouter_server import FakeOpenRouter
from tests.fixtures.providers import GOOD_OR_KEY
from tests.fixtures.world import renders_started
from world.db import upgrade_database
from world.settings import Settings, load_settings

STRIPPED = ("R2_", "DISCORD_", "WORLD_", "SHARED_WORLD_CONFIG", "LOG_LEVEL", "DATABASE_", "S3_")
POOR_KEY = "sk-test-or-poor-1111"
ALL_BRANCHES = 13  # depth 2: the opening scene, its 3 choices and their 9


def write_config(
    root: Path, *, provider: str = "offline", extra: str = "", providers: str = "", world: str = ""
) -> Path:
    data = root / "data"
    config = root / "config.toml"
    config.write_text(
        f"""
[database]
url = "sqlite:///{data / "world.db"}"
[storage]
local_dir = "{data / "assets"}"
[generation]
spool_dir = "{data / "spool"}"
lease_seconds = 3
watchdog_interval_seconds = 1
shutdown_grace_seconds = 0.0
max_concurrent_jobs = 3
progress_write_interval_seconds = 0.1
max_depth = 4
[providers]
offline_render_seconds = 0.6
request_timeout_seconds = 10.0
{providers}
{extra}
[[worlds]]
id = "w"
provider = "{provider}"
summary_model = ""
{world}
"""
    )
    data.mkdir(exist_ok=True)
    return config


def settings_of(config: Path) -> Settings:
    return load_settings(str(config), env={})


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED)}
    env.pop("OPENROUTER_API_KEY", None)
    env.update(extra)
    return env


def command(config: Path, *args: str) -> list[str]:
    # -X faulthandler: a run that hangs is aborted with every thread's stack on stderr.
    return [
        sys.executable,
        "-X",
        "faulthandler",
        "-m",
        "shared_world",
        "--config",
        str(config),
        "prerender",
        *args,
    ]


def run(config: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(config, *args),
        env=environment(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def statuses(config: Path) -> dict[str, str]:
    database = config.parent / "data" / "world.db"
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT path, status FROM scenes WHERE world_id = 'w'")
        return dict(rows.fetchall())


def ready_renders(config: Path) -> int:
    database = config.parent / "data" / "world.db"
    with sqlite3.connect(database) as connection:
        row = connection.execute(
            "SELECT count(*) FROM renders WHERE world_id = 'w' AND outcome = 'ready'"
        ).fetchone()
    return int(row[0])


def one_sentence(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


class Running:
    """A prerender subprocess whose stdout lines are read as they come."""

    def __init__(self, config: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            command(config, *args),
            env=environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        # A hung run fails with its stacks (SIGABRT), never hangs the suite.
        self._guard = threading.Timer(45, self.proc.send_signal, (signal.SIGABRT,))
        self._guard.start()

    def read_until_ready(self, count: int) -> None:
        """Read stdout until `count` more branches are reported ready."""
        seen = 0
        assert self.proc.stdout is not None
        while seen < count:
            line = self.proc.stdout.readline()
            assert line, f"prerender ended early: {self.lines}"
            self.lines.append(line.rstrip("\n"))
            if line.startswith("ready "):
                seen += 1

    def finish(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=60)
        self._guard.cancel()
        self.lines.extend(out.splitlines())
        return self.proc.returncode, "\n".join(self.lines), err


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = write_config(tmp_path)
    upgrade_database(settings_of(path).database.url)
    return path


def test_interrupted_and_killed_then_resumed_makes_every_branch_once(config: Path) -> None:
    settings = settings_of(config)

    first = Running(config, "--world", "w", "--depth", "2", "--yes")
    first.read_until_ready(2)
    first.proc.send_signal(signal.SIGINT)
    code, out, err = first.finish()
    assert code == 130, (out, err)
    assert "13 branches to make (0 already ready)" in out
    assert "run the same command again to continue" in err
    assert "Traceback" not in err
    after_first = statuses(config)
    made_first = sum(status == "ready" for status in after_first.values())
    assert 2 <= made_first < ALL_BRANCHES
    assert "queued" not in after_first.values()  # stopped at a safe point, given back

    second = Running(config, "--world", "w", "--depth", "2", "--yes")
    second.read_until_ready(2)
    time.sleep(0.3)  # the next branches are claimed and rendering
    second.proc.kill()
    code, out, _ = second.finish()
    assert code == -signal.SIGKILL
    assert f"{ALL_BRANCHES - made_first} branches to make ({made_first} already ready)" in out
    after_kill = statuses(config)
    assert sum(status == "ready" for status in after_kill.values()) < ALL_BRANCHES
    assert "queued" in after_kill.values()  # a killed process's claims: leases left behind

    third = run(config, "--world", "w", "--depth", "2", "--yes")
    assert third.returncode == 0, (third.stdout, third.stderr)
    assert "Finished: done" in third.stdout and "failed 0, remaining 0" in third.stdout
    assert "another process is making it" in third.stdout  # the killed run's claims
    final = statuses(config)
    assert len(final) == ALL_BRANCHES
    assert set(final.values()) == {"ready"}
    assert renders_started(settings) == ALL_BRANCHES  # nothing was paid twice
    assert ready_renders(config) == ALL_BRANCHES

    again = run(config, "--world", "w", "--depth", "2", "--yes")
    assert again.returncode == 0
    assert "0 branches to make (13 already ready)" in again.stdout
    assert renders_started(settings) == ALL_BRANCHES


def test_answering_no_on_a_terminal_changes_nothing(config: Path) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        command(config, "--world", "w", "--depth", "2"),
        env=environment(),
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(slave)
    assert proc.stdout is not None
    shown = b""
    deadline = time.monotonic() + 30
    while b"[y/N]" not in shown and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            shown += chunk
    os.write(master, b"n\n")
    out, err = proc.communicate(timeout=30)
    os.close(master)
    text = (shown + out).decode()
    assert proc.returncode == 1, (text, err)
    assert "13 branches to make (0 already ready), estimated cost $0.00" in text
    assert "Nothing was made." in text
    assert statuses(config) == {}
    assert renders_started(settings_of(config)) == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--world", "nope", "--depth", "2"), "There is no world called 'nope'"),
        (("--world", "w", "--depth", "0"), "--depth 0 is out of range: use 1 to 4"),
        (("--world", "w", "--depth", "5"), "--depth 5 is out of range: use 1 to 4"),
    ],
)
def test_bad_requests_are_one_sentence_and_exit_2(
    config: Path, args: tuple[str, ...], expected: str
) -> None:
    sentence = one_sentence(run(config, *args, "--yes"), 2)
    assert sentence.startswith(expected)
    assert statuses(config) == {}


def test_without_a_terminal_it_asks_for_yes(config: Path) -> None:
    result = run(config, "--world", "w", "--depth", "1")
    sentence = one_sentence(result, 2)
    assert "4 branches to make" in result.stdout
    assert sentence == "Nothing was made: confirm with --yes when stdin is not a terminal."
    assert statuses(config) == {}
    assert renders_started(settings_of(config)) == 0


def test_a_paid_world_needs_the_key_variable(tmp_path: Path) -> None:
    config = write_config(tmp_path, provider="openrouter")
    upgrade_database(settings_of(config).database.url)
    missing = one_sentence(run(config, "--world", "w", "--depth", "1", "--yes"), 2)
    assert missing.startswith("OPENROUTER_API_KEY is not set")
    other = run(config, "--world", "w", "--depth", "1", "--key-env", "HOST_KEY", "--yes")
    assert one_sentence(other, 2).startswith("HOST_KEY is not set")


async def run_async(config: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """`run` without blocking the event loop (a fake provider in this test serves on it)."""
    proc = await asyncio.create_subprocess_exec(
        *command(config, *args),
        env=environment(**env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_paid_world_pays_with_the_hosts_key_once_per_branch(
    tmp_path: Path, openrouter: FakeOpenRouter
) -> None:
    openrouter.add_key(GOOD_OR_KEY, polls_to_complete=1, cost=0.5)
    config = write_config(
        tmp_path,
        provider="openrouter",
        providers=f"""
openrouter_base_url = "{openrouter.base_url}"
poll_interval_seconds = 0.05
poll_max_interval_seconds = 0.1
""",
        world="""
planner_model = "openai/gpt-5-mini"
video_model = "google/veo-3.1-fast"
""",
    )
    upgrade_database(settings_of(config).database.url)
    args = ("--world", "w", "--depth", "1", "--key-env", "HOST_KEY", "--yes")

    code, out, err = await run_async(config, *args, HOST_KEY="sk-test-or-wrong-0000")
    assert code == 1 and err.startswith("The provider did not accept the key"), (out, err)
    assert "wrong-0000" not in out + err
    assert statuses(config) == {} and openrouter.accepted_creates == []

    # A key the provider accepts but whose every create is refused (no credits left).
    openrouter.add_key(POOR_KEY, create_status=402)
    code, out, err = await run_async(config, *args, HOST_KEY=POOR_KEY)
    assert code == 1, (out, err)
    assert "failed the opening scene: " in out
    assert "done 0, failed 1, remaining 0" in out
    assert POOR_KEY not in out + err and POOR_KEY.split("-")[-2] not in out + err
    assert err.strip().splitlines()[-1] == (
        "1 branch could not be made (3 below not reached); see the lines above, fix the "
        "cause and run the command again."
    )
    assert openrouter.accepted_creates == []

    code, out, err = await run_async(config, *args, HOST_KEY=GOOD_OR_KEY)
    assert code == 0, (out, err)
    assert "4 branches to make (0 already ready), estimated cost $" in out
    assert "failed 0, remaining 0, spent ~$" in out
    assert "(reported $2.00)" in out  # what the provider billed: 4 renders at $0.50
    assert GOOD_OR_KEY not in out + err and GOOD_OR_KEY.split("-")[-2] not in out + err
    assert len(openrouter.accepted_creates) == 4
    assert set(statuses(config).values()) == {"ready"}
    for key in ("wrong-0000", POOR_KEY, GOOD_OR_KEY):  # no file the runs wrote holds a key
        for written in tmp_path.rglob("*"):
            if written.is_file():
                assert key.encode() not in written.read_bytes(), written


def test_a_cap_on_mints_at_once_is_honoured_not_failed(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra="[limits]\nmember_concurrent_mints = 1")
    upgrade_database(settings_of(config).database.url)
    result = run(config, "--world", "w", "--depth", "1", "--yes")
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "1 at once from now on:" in result.stdout
    assert "failed 0, remaining 0" in result.stdout
    assert set(statuses(config).values()) == {"ready"} and len(statuses(config)) == 4
    assert renders_started(settings_of(config)) == 4
