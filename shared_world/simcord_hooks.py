"""Every private SimCord hook the sandbox uses, in one place, for SimCord ==3.2.1 only.

`shared-world sandbox` runs on SimCord's public API (`Env`, `env.preview`, `advance_time`,
`external_wait`, `http_requests`, `Preview.refresh`/`wait_closed`) plus the hooks below.
They reach into SimCord's internals, so SimCord is pinned (`simcord[preview]==3.2.1` in the
`sandbox` and `test` extras) and `tests/shared_world/test_simcord_hooks.py` checks each one
against the installed version: an upgrade that moves them fails loudly there, not in a
person's browser.

- `start_clock_at(env, moment)`: SimCord's virtual clock starts on 2026-01-01 in every run,
  so its snowflakes (guild, channel, message ids) would repeat from one sandbox run to the
  next, and the bot's countdowns would read a date far from the world engine's real clock.
  This moves the clock's epoch (`Backend.clock._epoch`) to `moment`, before anything is
  created.
- `name_the_bot(env, name)`: SimCord's bot user is called "TestBot"; the sandbox shows
  the bot's own name instead (`Backend.bot_user.name`, before `env.start`).
- `serialize_page_actions(preview, lock, after=...)`: SimCord refuses two operations at once
  ("operation overlaps active ..."), and a page action (`Preview._action`, the entry every
  browser click, command and form submit goes through) may come while the sandbox advances
  the clock. This wraps that entry so it runs under the same `asyncio.Lock` as the clock
  loop, and calls `after()` once each action is done. Before each action it also moves the
  page's presentation time to the clock's now (`Preview._advance_presentation_time`, which
  SimCord itself calls only on a refresh), so "closes in 8 seconds" in a reply is counted
  from the moment of the click, not from the last republication.
- `reuse_transcoded_clips(preview)`: the Preview shows a clip only after its media worker
  (a child process) has transcoded it from H.264 to VP9, with libvpx's slowest settings:
  3 to 6 s for one 4-second 320x180 offline clip on 2 cores. And a page forgets its clips
  whenever the person switches "Viewing as", so every switch transcoded every visible clip
  again (about a minute, ten cards in). This gives the Preview a media worker
  (`Preview._media_worker`, a subclass of `simcord.preview._media.MediaWorker`) that keeps
  the results of the last `keep` transcodes by the clip's SHA-256, and whose child process
  (this file run as a script, `media-worker`) is SimCord's own worker code
  (`_media_worker._limit_memory`, `_media._process_media`, `_media._worker_payload`, the
  same wire format read by `_media._read_result`) with the VP9 encoder set to realtime
  (`_media._configure_encoders`): about 0.5 s a clip.

This file imports only the standard library at the top, so it can run as that child.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import json
import struct
import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

SIMCORD_VERSION = "3.2.1"
# libvpx's fastest settings: the Preview only needs a clip a browser can play.
FAST_VP9_OPTIONS = {"deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
MEDIA_WORKER_ARG = "media-worker"
WORKER_SCRIPT = str(Path(__file__).resolve())


class SimcordMismatch(RuntimeError):
    """The installed SimCord is not the one these hooks were written for."""


def installed_version() -> str:
    from importlib.metadata import version

    return version("simcord")


def require_pinned_simcord() -> None:
    """Refuse to run the hooks on any SimCord but the pinned one, with the fix."""
    found = installed_version()
    if found != SIMCORD_VERSION:
        raise SimcordMismatch(
            f"the sandbox needs SimCord {SIMCORD_VERSION} (found {found}); "
            "reinstall with: pip install -e '.[sandbox]'"
        )


def start_clock_at(env: Any, moment: datetime) -> None:
    """Set the env's virtual clock so that it reads `moment` now (call before `env.start`)."""
    clock = env.backend.clock
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    if not hasattr(clock, "_epoch") or not isinstance(clock._epoch, datetime):
        raise SimcordMismatch("SimCord's Clock has no _epoch: the pinned version changed")
    clock._epoch = moment - (clock.now() - clock._epoch)


def name_the_bot(env: Any, name: str) -> None:
    """Show the bot as `name` (call before `env.start`: login reads the bot user)."""
    user = getattr(env.backend, "bot_user", None)
    if user is None or not isinstance(getattr(user, "name", None), str):
        raise SimcordMismatch("SimCord's Backend has no bot_user: the pinned version changed")
    user.name = name
    user.global_name = name


ActionEntry = Callable[[str | None, Mapping[str, Any]], Awaitable[dict[str, Any]]]


def serialize_page_actions(
    preview: Any, lock: asyncio.Lock, *, after: Callable[[], None] | None = None
) -> None:
    """Run every browser action of `preview` while holding `lock`; then call `after()`."""
    original: ActionEntry | None = getattr(preview, "_action", None)
    if original is None or not callable(original):
        raise SimcordMismatch("SimCord's Preview has no _action entry: the pinned version changed")
    advance_presentation: Callable[[], None] | None = getattr(
        preview, "_advance_presentation_time", None
    )
    if advance_presentation is None or not callable(advance_presentation):
        raise SimcordMismatch(
            "SimCord's Preview has no _advance_presentation_time: the pinned version changed"
        )

    async def action(context_id: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        async with lock:
            advance_presentation()
            try:
                return await original(context_id, body)
            finally:
                if after is not None:
                    after()

    preview._action = action


def reuse_transcoded_clips(preview: Any, keep: int = 48) -> None:
    """Give `preview` a faster media worker that reuses its results for the same clip."""
    try:
        from simcord.preview import _media
    except ImportError as exc:
        raise SimcordMismatch(
            "SimCord has no preview media worker: the pinned version changed"
        ) from exc
    if not hasattr(preview, "_media_worker") or preview._media_worker is not None:
        raise SimcordMismatch(
            "SimCord's Preview has no idle _media_worker slot: the pinned version changed"
        )
    preview._media_worker = reusing_media_worker(_media, keep)


def reusing_media_worker(media: ModuleType, keep: int = 48) -> Any:
    """A `media.MediaWorker` whose child transcodes fast and whose results are kept."""
    for name in ("MediaWorker", "WORKER_DEADLINE_SECONDS", "_read_result", "_TransientMediaError"):
        if not hasattr(media, name):
            raise SimcordMismatch(
                f"SimCord's preview media has no {name}: the pinned version changed"
            )

    class ReusingMediaWorker(media.MediaWorker):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.results: OrderedDict[tuple[str, float | None], Any] = OrderedDict()
            self.reused = 0
            self.transcoded = 0

        async def validate(self, key: str, blob: bytes, *, media_time: float | None = None) -> Any:
            done = (hashlib.sha256(blob).hexdigest(), media_time)
            info = self.results.get(done)
            if info is not None:
                self.results.move_to_end(done)
                self.reused += 1
                return info
            info = await super().validate(key, blob, media_time=media_time)
            self.results[done] = info
            while len(self.results) > keep:
                self.results.popitem(last=False)
            return info

        async def _decode(self, key: str, blob: bytes, media_time: float | None) -> Any:
            """As MediaWorker._decode, with this file as the child process."""
            process: asyncio.subprocess.Process | None = None
            try:
                async with asyncio.timeout(media.WORKER_DEADLINE_SECONDS), self._lock:
                    process = await asyncio.create_subprocess_exec(
                        sys.executable,
                        WORKER_SCRIPT,
                        MEDIA_WORKER_ARG,
                        stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.DEVNULL,
                    )
                    self._process = process
                    time_code = -1.0 if media_time is None else media_time
                    request = struct.pack("!dQ", time_code, len(blob)) + blob
                    stdout, _ = await process.communicate(request)
                    if process.returncode != 0:
                        raise media._TransientMediaError(
                            "media worker exited before producing a validated result"
                        )
                    self.transcoded += 1
                    return media._read_result(stdout, blob)
            except TimeoutError as exc:
                raise media._TransientMediaError(
                    "media worker exceeded its deadline and was terminated"
                ) from exc
            finally:
                if process is not None and process.returncode is None:
                    process.kill()
                    with contextlib.suppress(TimeoutError, ProcessLookupError):
                        await asyncio.wait_for(process.wait(), timeout=1)
                if self._process is process:
                    self._process = None

    return ReusingMediaWorker()


# -- the media worker's child process ------------------------------------------------------


def _load_preview_module(filename: str, name: str) -> ModuleType:
    """One of SimCord's preview files, loaded as SimCord's own worker loads `_media.py`:
    by path, without importing `simcord` (and discord.py) in the child."""
    found = importlib.util.find_spec("simcord")
    if found is None or found.origin is None:
        raise SimcordMismatch("SimCord is not installed")
    path = Path(found.origin).parent / "preview" / filename
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SimcordMismatch(f"SimCord has no preview/{filename}: the pinned version changed")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def fast_media_module() -> ModuleType:
    """SimCord's `_media.py` with the VP9 encoder set to FAST_VP9_OPTIONS."""
    media = _load_preview_module("_media.py", "_simcord_preview_media")
    configure = media._configure_encoders

    def configure_fast(*args: Any, **kwargs: Any) -> Any:
        video, audio, resampler = configure(*args, **kwargs)
        if video is not None:
            video.options = dict(FAST_VP9_OPTIONS)
        return video, audio, resampler

    media._configure_encoders = configure_fast
    return media


def media_worker_main() -> int:
    """The child: read one clip on stdin, write SimCord's worker result on stdout."""
    worker = _load_preview_module("_media_worker.py", "_simcord_preview_media_worker")
    memory_limited = worker._limit_memory()
    media = fast_media_module()
    header = sys.stdin.buffer.read(16)
    if len(header) != 16:
        return 2
    media_time, length = struct.unpack("!dQ", header)
    if length > media.MAX_SOURCE_BYTES:
        return 2
    blob = sys.stdin.buffer.read(length)
    if len(blob) != length:
        return 2
    payloads: tuple[bytes, ...] = ()
    try:
        info = media._process_media(blob, None if media_time < 0 else media_time)
        metadata, payloads = media._worker_payload(info, blob)
        metadata["memoryLimited"] = memory_limited
    except media.MediaError as exc:
        metadata = {"error": str(exc), "memoryLimited": memory_limited}
    encoded = json.dumps(metadata, separators=(",", ":")).encode("utf-8")
    output = sys.stdout.buffer
    output.write(struct.pack("!I", len(encoded)))
    output.write(encoded)
    output.write(struct.pack("!QQQ", *(len(item) for item in (*payloads, b"", b"", b"")[:3])))
    for item in payloads:
        output.write(item)
    output.flush()
    return 0


if __name__ == "__main__" and sys.argv[1:] == [MEDIA_WORKER_ARG]:
    raise SystemExit(media_worker_main())
