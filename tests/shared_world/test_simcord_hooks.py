"""Each private SimCord hook of shared_world/simcord_hooks.py, against the pinned SimCord.

The sandbox relies on these; an upgrade of SimCord that moves or changes them fails here,
with the hook's name, rather than in a person's browser.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import io
import re
import tomllib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
import simcord
from discord.ext import commands

from shared_world import simcord_hooks

PROJECT = Path(__file__).resolve().parents[2]

# The SimCord code the hooks mirror or wrap, as in 3.2.1 (sha256 of inspect.getsource).
MIRRORED_SOURCES = {
    "simcord.preview._media.MediaWorker._decode": (
        "e9c785e1121dd05b92376c2da1662acf4a3a53c1e52e03ecda9c420f3271564b"
    ),
    "simcord.preview._media_worker.main": (
        "7bf34f2a7f93c037330d7fd236e33691bbbea64b7b7796c716113f6de04cb2ff"
    ),
    "simcord.preview.Preview._advance_presentation_time": (
        "ee11080fdd08b26c61e87fcdca1cf88dea0b8809f039fa28a75a2da144de1937"
    ),
}


def _source_of(dotted: str) -> str:
    from simcord.preview import Preview, _media, _media_worker

    objects = {
        "simcord.preview._media.MediaWorker._decode": _media.MediaWorker._decode,
        "simcord.preview._media_worker.main": _media_worker.main,
        "simcord.preview.Preview._advance_presentation_time": Preview._advance_presentation_time,
    }
    return inspect.getsource(objects[dotted])


# -- the pin -----------------------------------------------------------------------------


def test_the_installed_simcord_is_the_pinned_one() -> None:
    assert simcord_hooks.installed_version() == simcord_hooks.SIMCORD_VERSION
    simcord_hooks.require_pinned_simcord()


def test_pyproject_pins_the_same_simcord_in_both_extras() -> None:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = f"simcord[preview]=={simcord_hooks.SIMCORD_VERSION}"
    assert wanted in extras["sandbox"]
    assert wanted in extras["test"]
    runtime = " ".join(project["dependencies"])
    assert "simcord" not in runtime and "playwright" not in runtime


@pytest.mark.parametrize("dotted", sorted(MIRRORED_SOURCES))
def test_the_simcord_code_the_hooks_mirror_is_unchanged(dotted: str) -> None:
    digest = hashlib.sha256(_source_of(dotted).encode()).hexdigest()
    assert digest == MIRRORED_SOURCES[dotted], (
        f"{dotted} changed: review shared_world/simcord_hooks.py against the new SimCord"
    )


# -- a small bot in a running Env with a Preview -----------------------------------------


def tiny_bot() -> commands.Bot:
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())

    @bot.tree.command(description="Say hello")
    async def hello(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("hello")

    return bot


@pytest.fixture
async def env() -> AsyncIterator[simcord.Env]:
    env = simcord.Env(tiny_bot(), check_errors=False)
    await env.start()
    try:
        yield env
    finally:
        await env.shutdown()


def test_start_clock_at_moves_the_clock_and_the_snowflakes() -> None:
    env = simcord.Env(tiny_bot())
    assert env.now().year == 2026 and env.now().month == 1  # SimCord's fixed epoch
    moment = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    simcord_hooks.start_clock_at(env, moment)
    assert env.now() == moment
    user = env.create_user("someone")
    assert abs(discord.utils.snowflake_time(user.id) - moment) < timedelta(seconds=1)
    with pytest.raises(ValueError):
        simcord_hooks.start_clock_at(env, datetime(2031, 1, 1))


async def test_name_the_bot_renames_the_bot_user() -> None:
    bot = tiny_bot()
    env = simcord.Env(bot, check_errors=False)
    simcord_hooks.name_the_bot(env, "Shared World")
    await env.start()
    try:
        assert bot.user is not None and bot.user.name == "Shared World"
    finally:
        await env.shutdown()


class PageClient:
    """The browser's side of the Preview protocol, enough for one action."""

    def __init__(self, preview: Any) -> None:
        self.preview = preview
        self.origin = preview.url.split("/#")[0]
        self.headers = {
            "X-Simcord-Capability": preview.url.split("#", 1)[1],
            "Origin": self.origin,
        }

    async def open_page(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        async with session.post(
            f"{self.origin}/api/pages", json={}, headers=self.headers
        ) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def act(
        self,
        session: aiohttp.ClientSession,
        page: dict[str, Any],
        sequence: int,
        kind: str,
        **fields: Any,
    ) -> dict[str, Any]:
        context = page["context"]
        body = {
            "protocol_version": 3,
            "sequence": sequence,
            "request_id": f"r{sequence}",
            "generation": context["generation"],
            "bot_generation": page["botGeneration"],
            "published_revision": page["publishedRevision"],
            "kind": kind,
            **fields,
        }
        headers = {**self.headers, "X-Simcord-Context": context["id"]}
        async with session.post(f"{self.origin}/api/action", json=body, headers=headers) as r:
            assert r.status == 200, await r.text()
            return await r.json()


async def test_serialize_page_actions_runs_browser_actions_under_the_lock(
    env: simcord.Env,
) -> None:
    guild = env.create_guild("hooks")
    channel = guild.create_text_channel("story")
    member = guild.add_member(env.create_user("member"))
    lock = asyncio.Lock()
    finished: list[bool] = []
    async with env.preview(channel, viewers=[member], layout="channel") as preview:
        simcord_hooks.serialize_page_actions(preview, lock, after=lambda: finished.append(True))
        client = PageClient(preview)
        async with aiohttp.ClientSession() as session:
            page = await client.open_page(session)
            await lock.acquire()
            action = asyncio.create_task(client.act(session, page, 1, "refresh"))
            await asyncio.sleep(0.3)
            assert not action.done() and not finished  # waits for the clock loop's lock
            lock.release()
            result = await asyncio.wait_for(action, 10)
    assert result["rejected"] is False and result["settlement"] == "settled", result
    assert finished == [True]


async def test_serialize_page_actions_moves_the_presentation_time(env: simcord.Env) -> None:
    guild = env.create_guild("hooks")
    channel = guild.create_text_channel("story")
    member = guild.add_member(env.create_user("member"))
    async with env.preview(channel, viewers=[member], layout="channel") as preview:
        simcord_hooks.serialize_page_actions(preview, asyncio.Lock())
        before = preview.capture_time
        await env.advance_time(30)
        assert preview.capture_time == before  # SimCord moves it only on a refresh
        size = {"width": 960, "height": 720, "host_width": 960, "host_height": 720}
        async with aiohttp.ClientSession() as session:
            client = PageClient(preview)
            page = await client.open_page(session)
            result = await client.act(
                session,
                page,
                1,
                "configure_presentation",
                layout="channel",
                display="fixed",
                **size,
            )
        assert result["rejected"] is False, result
        assert preview.capture_time == env.now() == before + timedelta(seconds=30)


def h264_clip(seconds: float = 1.0, size: int = 64, fps: int = 12) -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(int(seconds * fps)):
            frame = av.VideoFrame(size, size, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([index * 10 % 256]) * plane.buffer_size)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


async def test_reuse_transcoded_clips_transcodes_once_per_clip(env: simcord.Env) -> None:
    guild = env.create_guild("hooks")
    channel = guild.create_text_channel("story")
    member = guild.add_member(env.create_user("member"))
    clip = h264_clip()
    async with env.preview(channel, viewers=[member]) as preview:
        simcord_hooks.reuse_transcoded_clips(preview)
        worker = preview._media_worker
        first = await worker.validate("asset-a", clip)
        again = await worker.validate("asset-b", clip)  # another page, the same bytes
        assert again is first and (worker.transcoded, worker.reused) == (1, 1)
        assert first.kind == "video" and first.content_type == "video/webm"
        assert first.source_codecs == {"video": "h264"}
        assert first.display_codecs == {"video": "vp9"}
        assert first.duration == pytest.approx(1.0, abs=0.1)
        assert first.normalized.startswith(b"\x1a\x45\xdf\xa3")  # a WebM (Matroska) file
    assert preview._media_worker is None  # SimCord closed and dropped it with the session


def test_the_fast_media_module_sets_the_realtime_encoder() -> None:
    media = simcord_hooks.fast_media_module()
    assert media._configure_encoders.__name__ == "configure_fast"
    info = media._process_media(h264_clip(), None)
    assert info.display_codecs == {"video": "vp9"} and info.transformation == "transcode"


def test_the_hooks_refuse_a_preview_that_is_not_the_pinned_shape() -> None:
    class NotAPreview:
        pass

    with pytest.raises(simcord_hooks.SimcordMismatch, match="_action"):
        simcord_hooks.serialize_page_actions(NotAPreview(), asyncio.Lock())
    with pytest.raises(simcord_hooks.SimcordMismatch, match="_media_worker"):
        simcord_hooks.reuse_transcoded_clips(NotAPreview())
    assert re.fullmatch(r"\d+\.\d+\.\d+", simcord_hooks.SIMCORD_VERSION)
