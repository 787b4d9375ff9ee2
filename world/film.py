"""The story as one film: a branch path's clips, opening scene first, joined into one mp4.

This module owns `/adventure film`'s engine (the front doors reach it through
`WorldService.film`):

- which clips a path's film holds: every ready scene with a clip from the opening scene down
  to the path, in order, capped by `[film] max_clips` and `[film] max_seconds`. A path longer
  than the caps is filmed from its most recent scenes that fit (`Film.scenes` says how many
  the whole path has), never refused for its length;
- joining them (`join_clips`, blocking, run in a thread): a stream copy (remux) when every clip
  has the same format (H.264 with identical codec extradata, size, frame rate, pixel format
  and time base; the same audio codec, layout, rate and extradata, or no audio at all), else
  a re-encode to H.264 (+ AAC when any clip has sound) at the largest clip's size, each clip
  letterboxed into it. Timestamps are rebased so the film's duration is the sum of its clips'
  durations and every frame of every clip is kept. No title cards are added;
- the cache: a film is stored under a key derived from the world, the path, its clips' asset
  keys and the caps (`film_key`), with a small JSON sidecar describing it; a changed clip
  makes a new key, and the same path again reuses the stored film without encoding anything;
- single flight: concurrent requests for the same film wait for one making; at most
  `MAX_FILMS_AT_ONCE` films are made at a time in this process.

Clips are fetched one at a time into a folder of their own under the film spool directory
(`[film] spool_dir`) and read from there packet by packet, so no more than one clip is ever
held in memory; the folder is removed once the film is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from storage.base import AssetStore, StorageError
from world import paths, scenes
from world.db import Database
from world.settings import FilmSettings, Settings
from world.types import Status

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # part of every film key: bump it when the way films are made changes
MAX_FILMS_AT_ONCE = 2  # films joined at the same time in one process (CPU-bound re-encodes)
STALE_WORK_SECONDS = 6 * 3600.0  # a film folder untouched this long was left by a killed process
# The re-encode: H.264 that every Discord client plays, AAC sound.
ENCODE_OPTIONS = {"preset": "veryfast", "crf": "23"}
ENCODE_TIME_BASE = Fraction(1, 90_000)  # frames keep their own timing (clips may differ in fps)
AUDIO_RATE = 48_000
AUDIO_LAYOUT = "stereo"
REMUX_CODECS = frozenset({"h264"})  # a stream copy must still be a film every client plays
REMUX_AUDIO_CODECS = frozenset({"aac"})

REMUX = "remux"
REENCODE = "reencode"

Progress = Callable[["FilmProgress"], None]


class FilmRefused(Exception):
    """A film that cannot be made; the message is one plain sentence for the member."""


@dataclass(frozen=True)
class FilmProgress:
    """How far a film is: `stage` is fetching, joining or storing; clip `done` of `total`."""

    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class Film:
    """A stored film of a path's clips."""

    world_id: str
    path: str
    key: str  # the film's asset key in the store
    url: str | None  # a link a client can play, when the store gives one
    bytes: int
    seconds: float
    clips: int  # clips in the film
    scenes: int  # scenes with a clip on the whole path (more than `clips` when capped)
    first_path: str  # the branch of the film's first clip ("" = the opening scene)
    method: str  # REMUX or REENCODE (how it was made, also when taken from the cache)
    cached: bool  # True: taken from the store, nothing was joined for this request

    @property
    def complete(self) -> bool:
        """Whether the film starts at the opening scene (no cap cut its beginning off)."""
        return self.clips == self.scenes


@dataclass(frozen=True)
class JoinResult:
    """What `join_clips` wrote."""

    method: str
    seconds: float
    frames: int
    bytes: int


@dataclass(frozen=True)
class _Clip:
    path: str
    key: str


# --------------------------------------------------------------------------- keys


def film_key(world_id: str, path: str, clip_keys: Sequence[str], film: FilmSettings) -> str:
    """The film's asset key: world, path, every clip's asset key and the caps, hashed.

    A new clip anywhere on the path (or other caps) gives another key, so a stale film is
    never served; the same inputs always give the same key.
    """
    material = json.dumps(
        [FORMAT_VERSION, world_id, path, list(clip_keys), film.max_seconds, film.max_clips]
    )
    digest = hashlib.sha256(material.encode()).hexdigest()[:24]
    return f"worlds/{world_id}/films/{paths.storage_slug(path)}/{digest}.mp4"


def _sidecar_key(key: str) -> str:
    return key.removesuffix(".mp4") + ".json"


def work_root(settings: Settings) -> Path:
    """Where films are joined: `[film] spool_dir`, else a "film" folder beside the spool."""
    if settings.film.spool_dir:
        return Path(settings.film.spool_dir)
    return Path(settings.generation.spool_dir).parent / "film"


# --------------------------------------------------------------------------- joining (blocking)


def _signature(path: Path) -> tuple[Any, ...]:
    """Everything two clips must share for their packets to be copied into one track each."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path.name} has no video stream.")
        video = container.streams.video[0]
        vc = video.codec_context
        parts: list[Any] = [
            vc.name,
            vc.width,
            vc.height,
            vc.pix_fmt,
            video.average_rate,
            video.time_base,
            bytes(vc.extradata or b""),
        ]
        if container.streams.audio:
            audio = container.streams.audio[0]
            ac = audio.codec_context
            parts += [
                ac.name,
                ac.sample_rate,
                ac.layout.name,
                audio.time_base,
                bytes(ac.extradata or b""),
            ]
        return tuple(parts)


def _can_remux(signatures: Sequence[tuple[Any, ...]]) -> bool:
    first = signatures[0]
    if any(signature != first for signature in signatures[1:]):
        return False
    if first[0] not in REMUX_CODECS:
        return False
    return len(first) == 7 or first[7] in REMUX_AUDIO_CODECS


def clip_seconds(path: Path) -> float:
    """A clip's length: where its last video or audio packet ends."""
    with av.open(str(path)) as container:
        ends = []
        streams = [*container.streams.video[:1], *container.streams.audio[:1]]
        for stream in streams:
            first, end = _stream_span(container, stream)
            if end is not None and first is not None and stream.time_base is not None:
                ends.append(float((end - first) * stream.time_base))
        if not ends:
            raise ValueError(f"{path.name} has no timed packets.")
        return max(ends)


def _stream_span(container: Any, stream: Any) -> tuple[int | None, int | None]:
    """(first packet's presentation time, where the last shown frame ends), in the stream's
    time base; packets in decode order may show out of order (B-frames)."""
    container.seek(0)
    first: int | None = None
    end: int | None = None
    fallback = _packet_fallback(stream)
    for packet in container.demux(stream):
        at = _shown_at(packet)
        if at is None:
            continue
        if first is None:
            first = at
        stop = at + (packet.duration or fallback)
        end = stop if end is None else max(end, stop)
    return first, end


def _shown_at(packet: Any) -> int | None:
    return packet.pts if packet.pts is not None else packet.dts


def _packet_fallback(stream: Any) -> int:
    """One frame (video) or 1024 samples (audio) in the stream's time base, for packets that
    carry no duration."""
    time_base = stream.time_base or Fraction(1, 90_000)
    if stream.type == "video":
        rate = stream.average_rate or stream.guessed_rate or 24
        return max(1, round(1 / (Fraction(rate) * time_base)))
    rate = stream.codec_context.sample_rate or AUDIO_RATE
    return max(1, round(Fraction(1024, rate) / time_base))


def join_clips(
    sources: Sequence[Path],
    destination: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> JoinResult:
    """Join `sources` in order into one mp4 at `destination`; see the module docstring.

    Written to a temporary sibling and renamed into place, so `destination` never holds half
    a film. `progress(done, total)` is called after each clip. Raises ValueError for a clip
    without a decodable video stream.
    """
    if not sources:
        raise ValueError("A film needs at least one clip.")
    destination = Path(destination)
    signatures = [_signature(Path(source)) for source in sources]
    method = REMUX if _can_remux(signatures) else REENCODE
    tmp = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.part")
    try:
        if method == REMUX:
            seconds, frames = _remux(sources, tmp, progress)
        else:
            seconds, frames = _reencode(sources, tmp, progress)
        os.replace(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return JoinResult(method, seconds, frames, destination.stat().st_size)


def _remux(
    sources: Sequence[Path], tmp: Path, progress: Callable[[int, int], None] | None
) -> tuple[float, int]:
    """Stream copy: every clip's packets, shifted to start where the previous clip ended."""
    offset = Fraction(0)  # where the next clip starts in the film, in seconds
    frames = 0
    previous_dts: dict[str, int] = {}  # the last decode time muxed per stream
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as output:
        with av.open(str(sources[0])) as first:
            outputs = [output.add_stream_from_template(first.streams.video[0])]
            if first.streams.audio:
                outputs.append(output.add_stream_from_template(first.streams.audio[0]))
        for number, source in enumerate(sources, start=1):
            with av.open(str(source)) as clip:
                streams = [clip.streams.video[0], *clip.streams.audio[:1]]
                shifts: dict[str, int] = {}
                ends: dict[str, Fraction] = {}
                fallbacks = {s.type: _packet_fallback(s) for s in streams}
                for packet in clip.demux(streams):
                    at = _shown_at(packet)
                    if packet.dts is None or at is None:
                        continue
                    stream = packet.stream
                    index, time_base = stream.type, stream.time_base  # video | audio
                    if index not in shifts:  # the clip's first packet of this stream shows
                        shifts[index] = round(offset / time_base) - at  # where the last ended
                    shift = shifts[index]
                    stop = (at + shift + (packet.duration or fallbacks[index])) * time_base
                    ends[index] = max(ends.get(index, stop), stop)
                    dts = packet.dts + shift
                    if index in previous_dts and dts <= previous_dts[index]:
                        # A clip that holds back more frames than the one before it: keep the
                        # decode order strictly increasing (shows that frame a tick later).
                        bump = previous_dts[index] + 1 - dts
                        shifts[index] += bump
                        shift, dts = shift + bump, dts + bump
                    packet.dts = dts
                    if packet.pts is not None:
                        packet.pts += shift
                    previous_dts[index] = dts
                    if stream.type == "video":
                        frames += 1
                    packet.stream = outputs[0 if index == "video" else 1]
                    output.mux(packet)
                if not ends:
                    raise ValueError(f"{Path(source).name} has no timed packets.")
                offset = max(ends.values())
            if progress is not None:
                progress(number, len(sources))
    return float(offset), frames


class _Letterbox:
    """Frames of one clip scaled to fit the film's size, centred on black, as yuv420p."""

    def __init__(self, stream: Any, width: int, height: int) -> None:
        self.graph = av.filter.Graph()
        source = self.graph.add_buffer(template=stream)
        chain = [
            source,
            self.graph.add("scale", f"{width}:{height}:force_original_aspect_ratio=decrease"),
            self.graph.add("pad", f"{width}:{height}:(ow-iw)/2:(oh-ih)/2"),
            self.graph.add("setsar", "1"),
            self.graph.add("format", "yuv420p"),
            self.graph.add("buffersink"),
        ]
        for a, b in itertools.pairwise(chain):
            a.link_to(b)
        self.graph.configure()

    def __call__(self, frame: av.VideoFrame) -> av.VideoFrame:
        self.graph.push(frame)
        return self.graph.pull()


def _reencode(
    sources: Sequence[Path], tmp: Path, progress: Callable[[int, int], None] | None
) -> tuple[float, int]:
    """H.264 (+ AAC) at the largest clip's size; each frame keeps its place in its clip."""
    sizes, rates, sound = [], [], False
    for source in sources:
        with av.open(str(source)) as clip:
            video = clip.streams.video[0]
            sizes.append((video.codec_context.width, video.codec_context.height))
            rates.append(Fraction(video.average_rate or video.guessed_rate or 24))
            sound = sound or bool(clip.streams.audio)
    width, height = max(sizes, key=lambda size: size[0] * size[1])
    width, height = width - width % 2, height - height % 2
    offset = Fraction(0)
    frames = 0
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as output:
        video_out = output.add_stream("libx264", rate=max(rates))
        video_out.width, video_out.height, video_out.pix_fmt = width, height, "yuv420p"
        video_out.codec_context.time_base = ENCODE_TIME_BASE
        video_out.options = dict(ENCODE_OPTIONS)
        audio_out = _Sound(output) if sound else None
        next_pts = [0]  # the earliest presentation time the next frame may have
        for number, source in enumerate(sources, start=1):
            length, count = _reencode_clip(
                Path(source), output, video_out, audio_out, offset, next_pts
            )
            frames += count
            offset += length
            if audio_out is not None:
                audio_out.silence_until(offset)
            if progress is not None:
                progress(number, len(sources))
        output.mux(video_out.encode(None))
        if audio_out is not None:
            audio_out.flush()
    return float(offset), frames


def _reencode_clip(
    source: Path,
    output: Any,
    video_out: Any,
    audio_out: _Sound | None,
    offset: Fraction,
    video_out_next: list[int],
) -> tuple[Fraction, int]:
    """One clip's frames into the film from `offset`; returns (its length, its frames)."""
    count = 0
    with av.open(str(source)) as clip:
        video = clip.streams.video[0]
        letterbox = _Letterbox(video, video_out.width, video_out.height)
        time_base = video.time_base
        fallback = Fraction(1) / Fraction(video.average_rate or video.guessed_rate or 24)
        start: int | None = None
        end = Fraction(0)
        for packet in clip.demux(video):
            shown = _shown_at(packet)
            if packet.dts is not None and shown is not None:
                if start is None:  # the first packet (a keyframe) shows first
                    start = shown
                duration = packet.duration * time_base if packet.duration else fallback
                end = max(end, (shown - start) * time_base + duration)
            for frame in packet.decode():
                at = (frame.pts - (start or 0)) * time_base if frame.pts is not None else end
                picture = letterbox(frame)
                picture.pts = max(round((offset + at) / ENCODE_TIME_BASE), video_out_next[0])
                video_out_next[0] = picture.pts + 1  # presentation times only ever grow
                picture.time_base = ENCODE_TIME_BASE
                output.mux(video_out.encode(picture))
                count += 1
        if audio_out is not None and clip.streams.audio:
            audio_end = audio_out.clip(clip, clip.streams.audio[0], offset)
            end = max(end, audio_end - offset)
    return end, count


class _Sound:
    """The film's AAC track: each clip's sound at its clip's place, silence where none."""

    def __init__(self, output: Any) -> None:
        self.output = output
        self.stream = output.add_stream("aac", rate=AUDIO_RATE, layout=AUDIO_LAYOUT)
        self.written = 0  # samples so far

    def _write(self, frame: av.AudioFrame) -> None:
        frame.pts = self.written
        frame.sample_rate = AUDIO_RATE
        frame.time_base = Fraction(1, AUDIO_RATE)
        self.written += frame.samples
        self.output.mux(self.stream.encode(frame))

    def silence_until(self, seconds: Fraction) -> None:
        target = round(seconds * AUDIO_RATE)
        while self.written < target:
            samples = min(4096, target - self.written)
            frame = av.AudioFrame(format="fltp", layout=AUDIO_LAYOUT, samples=samples)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            self._write(frame)

    def clip(self, clip: Any, stream: Any, offset: Fraction) -> Fraction:
        """The clip's sound from `offset`; returns where it ends in the film (seconds)."""
        self.silence_until(offset)
        resampler = av.AudioResampler(format="fltp", layout=AUDIO_LAYOUT, rate=AUDIO_RATE)
        clip.seek(0)
        for frame in clip.decode(stream):
            for converted in resampler.resample(frame):
                self._write(converted)
        for converted in resampler.resample(None):
            self._write(converted)
        return Fraction(self.written, AUDIO_RATE)

    def flush(self) -> None:
        self.output.mux(self.stream.encode(None))


# --------------------------------------------------------------------------- the service part


class Filmmaker:
    """Makes and caches films for WorldService.film (one instance per service)."""

    def __init__(self, settings: Settings, db: Database, store: Callable[[], AssetStore]) -> None:
        self.settings = settings
        self.db = db
        self._store = store  # the service's current store (it may be swapped)
        self._making: dict[str, asyncio.Task[Film]] = {}
        self._listeners: dict[str, list[Progress]] = {}
        self._slots = asyncio.Semaphore(MAX_FILMS_AT_ONCE)

    async def close(self) -> None:
        """Stop the films being made (their waiters get CancelledError; nothing is stored)."""
        tasks = list(self._making.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def clips_of(self, world_id: str, path: str) -> list[_Clip]:
        """Every ready scene with a clip from the opening scene to `path`, in order."""
        steps = [*paths.ancestors(path), path]
        async with self.db.session() as session:
            rows = await scenes.load_paths(session, world_id, steps)
        return [
            _Clip(step, rows[step].asset_key)  # type: ignore[arg-type]
            for step in steps
            if step in rows
            and rows[step].status == Status.READY.value
            and rows[step].asset_key is not None
        ]

    async def film(self, world_id: str, path: str, *, on_progress: Progress | None = None) -> Film:
        """The stored film of the path (made now unless the store has it); raises FilmRefused."""
        clips = await self.clips_of(world_id, path)
        if not clips:
            raise FilmRefused("There is nothing to film yet: no scene on this path has a clip.")
        caps = self.settings.film
        scenes_total = len(clips)
        clips = clips[-caps.max_clips :]
        key = film_key(world_id, path, [clip.key for clip in clips], caps)
        listeners = self._listeners.setdefault(key, [])
        if on_progress is not None:
            listeners.append(on_progress)
        task = self._making.get(key)
        if task is None:
            task = asyncio.create_task(
                self._film(world_id, path, key, clips, scenes_total),
                name=f"film {world_id}/{path}",
            )
            self._making[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        try:
            return await asyncio.shield(task)
        finally:
            if on_progress is not None and on_progress in self._listeners.get(key, []):
                self._listeners[key].remove(on_progress)

    def _finished(self, key: str, task: asyncio.Task[Film]) -> None:
        if self._making.get(key) is task:
            del self._making[key]
            self._listeners.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            if not isinstance(error, FilmRefused):
                log.error("film failed key=%s", key, exc_info=error)

    def _tell(self, key: str, update: FilmProgress) -> None:
        for listener in list(self._listeners.get(key, [])):
            try:
                listener(update)
            except Exception:
                log.exception("film progress listener failed key=%s", key)

    async def _film(
        self, world_id: str, path: str, key: str, clips: list[_Clip], scenes_total: int
    ) -> Film:
        store = self._store()
        cached = await self._cached(store, key, world_id, path, scenes_total)
        if cached is not None:
            log.info("film reused world=%s path=%s key=%s", world_id, path, key)
            return cached
        async with self._slots:
            return await self._make(store, world_id, path, key, clips, scenes_total)

    async def _cached(
        self, store: AssetStore, key: str, world_id: str, path: str, scenes_total: int
    ) -> Film | None:
        try:
            about = json.loads(await store.open_bytes(_sidecar_key(key)))
        except (StorageError, ValueError):
            return None
        if not await store.exists(key):
            return None
        return Film(
            world_id=world_id,
            path=path,
            key=key,
            url=store.url_for(key),
            bytes=int(about["bytes"]),
            seconds=float(about["seconds"]),
            clips=int(about["clips"]),
            scenes=scenes_total,
            first_path=str(about["first_path"]),
            method=str(about["method"]),
            cached=True,
        )

    async def _make(
        self,
        store: AssetStore,
        world_id: str,
        path: str,
        key: str,
        clips: list[_Clip],
        scenes_total: int,
    ) -> Film:
        started = time.perf_counter()
        root = work_root(self.settings)
        await asyncio.to_thread(_sweep_stale, root)
        folder = root / uuid.uuid4().hex
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        try:
            chosen = await self._fetch(store, key, clips, folder)
            total = len(chosen)

            def joined(done: int, _total: int) -> None:
                loop.call_soon_threadsafe(self._tell, key, FilmProgress("joining", done, total))

            target = folder / "film.mp4"
            result = await asyncio.to_thread(
                join_clips, [source for _, source in chosen], target, progress=joined
            )
            self._tell(key, FilmProgress("storing", total, total))
            size = await store.put_file(key, target, "video/mp4")
            about = {
                "version": FORMAT_VERSION,
                "bytes": size,
                "seconds": result.seconds,
                "frames": result.frames,
                "clips": total,
                "first_path": chosen[0][0].path,
                "method": result.method,
            }
            sidecar = folder / "film.json"
            await asyncio.to_thread(sidecar.write_text, json.dumps(about), "utf-8")
            await store.put_file(_sidecar_key(key), sidecar, "application/json")
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)
        log.info(
            "film made world=%s path=%s clips=%d seconds=%.2f method=%s bytes=%d elapsed_ms=%.0f",
            world_id,
            path,
            total,
            result.seconds,
            result.method,
            size,
            (time.perf_counter() - started) * 1000,
        )
        return Film(
            world_id=world_id,
            path=path,
            key=key,
            url=store.url_for(key),
            bytes=size,
            seconds=result.seconds,
            clips=total,
            scenes=scenes_total,
            first_path=chosen[0][0].path,
            method=result.method,
            cached=False,
        )

    async def _fetch(
        self, store: AssetStore, key: str, clips: list[_Clip], folder: Path
    ) -> list[tuple[_Clip, Path]]:
        """The most recent clips that fit `[film] max_seconds`, fetched to `folder`, in order.

        Newest first, one clip in memory at a time; raises FilmRefused when even the newest
        clip is longer than the cap or a clip cannot be read from the store.
        """
        limit = self.settings.film.max_seconds
        chosen: list[tuple[_Clip, Path]] = []
        seconds = 0.0
        for done, clip in enumerate(reversed(clips), start=1):
            self._tell(key, FilmProgress("fetching", done, len(clips)))
            target = folder / f"{len(clips) - done:04d}.mp4"
            try:
                data = await store.open_bytes(clip.key)
            except StorageError:
                log.warning("film clip unavailable path=%s key=%s", clip.path, clip.key)
                raise FilmRefused(
                    "A clip of this path cannot be read from storage right now; try again later."
                ) from None
            await asyncio.to_thread(target.write_bytes, data)
            del data
            try:
                length = await asyncio.to_thread(clip_seconds, target)
            except (ValueError, av.error.FFmpegError):
                log.warning("film clip unreadable path=%s key=%s", clip.path, clip.key)
                raise FilmRefused(
                    "A clip of this path is damaged, so no film can be made."
                ) from None
            if seconds + length > limit:
                await asyncio.to_thread(target.unlink, True)
                break
            seconds += length
            chosen.append((clip, target))
        if not chosen:
            raise FilmRefused(
                f"The newest scene alone is longer than the film limit of {limit} seconds."
            )
        chosen.reverse()
        return chosen


def _sweep_stale(root: Path) -> None:
    """Remove film folders a killed process left behind (untouched for STALE_WORK_SECONDS)."""
    if not root.is_dir():
        return
    cutoff = time.time() - STALE_WORK_SECONDS
    for entry in root.iterdir():
        with contextlib.suppress(OSError):
            if entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
                log.info("film swept a stale work folder name=%s", entry.name)
