"""`shared-world check` for paid worlds: the catalogue confirms models, frames and prices."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from tests.fakes.openrouter_server import FakeOpenRouter

OPENROUTER_WORLD = {
    "WORLD_PROVIDER": "openrouter",
    "SORA_MODEL": "google/veo-3.1-fast",
    "PLANNER_MODEL": "openai/gpt-5-mini",
    "STATE_SUMMARY_MODEL": "openai/gpt-5-mini",
    # Shaped like a bot token (so check does not fail on it), not a real one.
    "DISCORD_TOKEN": "MTAwMDAwMDAwMDAwMDAwMDAw.GAAAAA." + "a" * 38,
}


async def _check(tmp_path: Path, **env: str) -> tuple[int, str, str]:
    """Run the real command in a subprocess (the fake keeps serving on this event loop)."""
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
    for args in (("db", "upgrade"), ("check",)):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shared_world",
            *args,
            cwd=tmp_path,
            env=environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode, out.decode(), err.decode()


async def test_check_confirms_the_models_first_frame_and_price(
    tmp_path, openrouter: FakeOpenRouter
):
    code, out, err = await _check(
        tmp_path, OPENROUTER_BASE_URL=openrouter.base_url, **OPENROUTER_WORLD
    )
    assert code == 0, out + err
    assert (
        "ok    providers: default: google/veo-3.1-fast makes 8 s 720p 16:9 clips from a first "
        "frame, about $0.96 per 8 s clip"
    ) in out
    assert "ok    providers: default: chat model openai/gpt-5-mini is available" in out
    assert openrouter.keys_seen() == set(), "the catalogue needs no key"


async def test_check_fails_for_a_model_or_duration_the_catalogue_does_not_offer(
    tmp_path, openrouter: FakeOpenRouter
):
    env = OPENROUTER_WORLD | {"SORA_MODEL": "google/veo-9", "PLANNER_MODEL": "test/no-structured"}
    code, out, _ = await _check(tmp_path, OPENROUTER_BASE_URL=openrouter.base_url, **env)
    assert code == 1
    line = next(line for line in out.splitlines() if line.startswith("FAIL  providers"))
    assert "video model 'google/veo-9' is not in the catalogue" in line
    assert "planner test/no-structured does not support structured output" in line

    code, out, _ = await _check(
        tmp_path, OPENROUTER_BASE_URL=openrouter.base_url, VIDEO_SECONDS="10", **OPENROUTER_WORLD
    )
    assert code == 1
    assert "10 s is not a duration it makes (it makes 4, 6, 8 s)" in out


async def test_an_unreachable_catalogue_is_one_warning_not_a_failure(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, out, err = await _check(
        tmp_path, OPENROUTER_BASE_URL=f"http://127.0.0.1:{port}/api/v1", **OPENROUTER_WORLD
    )
    assert code == 0, out + err
    warnings = [line for line in out.splitlines() if line.startswith("WARN  providers")]
    assert warnings == [
        f"WARN  providers: default: the OpenRouter catalogue at http://127.0.0.1:{port}/api/v1 "
        "cannot be reached; models and prices were not checked"
    ]
    assert "Traceback" not in out + err
