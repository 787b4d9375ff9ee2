"""Start-up: outdated schemas are refused by name; the CLI's db upgrade and check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.world import make_settings
from world.db import SchemaOutdated
from world.service import WorldService

PROJECT = Path(__file__).resolve().parents[2]
# Shaped like a bot token (its first part encodes application id 100000000000000000), not real.
FAKE_TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAw.GAAAAA." + "a" * 38


async def test_the_service_refuses_an_unmigrated_database_and_names_the_command(tmp_path):
    settings = make_settings(tmp_path)
    with pytest.raises(SchemaOutdated, match="shared-world db upgrade"):
        await WorldService.start(settings)


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("R2_", "DISCORD_", "WORLD_", "SHARED_WORLD_CONFIG"))
    }
    # no config file in cwd (tmp_path) and no SHARED_WORLD_CONFIG: the built-in defaults
    environment.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "shared_world", *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_db_upgrade_then_check_reports_one_line_per_check(tmp_path):
    before = _cli(tmp_path, "check", DISCORD_TOKEN=FAKE_TOKEN)
    assert before.returncode == 1
    assert "FAIL  database" in before.stdout and "shared-world db upgrade" in before.stdout

    upgraded = _cli(tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr

    after = _cli(tmp_path, "check", DISCORD_TOKEN=FAKE_TOKEN)
    assert after.returncode == 0, after.stdout + after.stderr
    lines = after.stdout.splitlines()
    for name in ("settings", "database", "storage", "providers"):
        assert any(line.startswith(f"ok    {name}:") for line in lines), after.stdout
    # no network in the tests: the token's shape is fine, Discord could not confirm it
    assert any(line.startswith(("ok    discord:", "WARN  discord:")) for line in lines)
    assert any("permissions=" in line for line in lines)


def test_check_without_a_token_says_how_to_get_one(tmp_path):
    _cli(tmp_path, "db", "upgrade")
    result = _cli(tmp_path, "check")
    assert result.returncode == 1
    assert "FAIL  discord: DISCORD_TOKEN is not set" in result.stdout


def test_invalid_settings_stop_start_up_with_one_line_per_problem(tmp_path):
    result = _cli(
        tmp_path, "check", VIDEO_SIZE="huge", WORLD_PROVIDER="sora", R2_SIGNED_URL_TTL="9999999"
    )
    assert result.returncode == 2
    problems = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert len(problems) == 3, result.stderr
    assert any("VIDEO_SIZE" in p for p in problems)
    assert any("WORLD_PROVIDER" in p for p in problems)
    assert any("R2_SIGNED_URL_TTL" in p for p in problems)


def test_settings_file_at_the_project_root_is_valid():
    from world.settings import load_settings

    settings = load_settings(PROJECT / "config.toml", env={})
    assert settings.worlds[0].id == "default"
    world = settings.worlds[0]
    assert (world.provider, world.video_model) == ("openrouter", "google/veo-3.1-fast")
    assert (world.video_seconds, world.resolution, world.aspect_ratio) == (8, "720p", "16:9")


def test_check_fails_for_a_clip_length_the_video_model_cannot_make(tmp_path):
    _cli(tmp_path, "db", "upgrade")
    result = _cli(
        tmp_path,
        "check",
        WORLD_PROVIDER="gemini",
        VIDEO_SECONDS="12",
        DISCORD_TOKEN=FAKE_TOKEN,
    )
    assert result.returncode == 1
    assert "FAIL  providers:" in result.stdout
    assert "12 s is not a duration it makes (it makes 3 to 10 s)" in result.stdout


def test_check_says_what_it_could_not_verify_without_a_host_gemini_key(tmp_path):
    _cli(tmp_path, "db", "upgrade")
    result = _cli(tmp_path, "check", WORLD_PROVIDER="gemini", DISCORD_TOKEN=FAKE_TOKEN)
    warning = [line for line in result.stdout.splitlines() if line.startswith("WARN  providers")]
    assert warning and "GEMINI_API_KEY_FOR_CHECK" in warning[0], result.stdout


@pytest.mark.postgres
async def test_check_warns_when_the_processes_would_exhaust_max_connections(
    tmp_path, postgres_database
):
    from dataclasses import replace

    from shared_world.check import run_checks
    from world.db import Database

    settings = make_settings(tmp_path, postgres_database)
    db = Database(postgres_database)
    await db.upgrade()
    await db.close()
    lines: list[str] = []
    await run_checks(settings, echo=lines.append)
    assert not any(line.startswith("WARN  database") for line in lines)
    crowded = replace(settings, database=replace(settings.database, processes=12))
    lines.clear()
    await run_checks(crowded, echo=lines.append)
    warning = next(line for line in lines if line.startswith("WARN  database"))
    assert "12 processes x 10 connections = 120, more than the server's 97" in warning
