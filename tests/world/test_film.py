"""The story as one film (world/film.py): clips joined in order, decoded back with PyAV."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import aiohttp
import av
import pytest

from tests.fixtures.film import SMALL, audio_of, decode, path_of, seed_path, with_sound
from tests.fixtures.world import make_settings, start_service
from world import film as film_module
from world.film import REENCODE, REMUX, FilmProgress, join_clips
from world.media import render_scene_clip
from world.service import ServiceError
from world.settings import SettingsError, load_settings

FRAME = 1 / 24


@pytest.fixture
async def service(tmp_path):
    svc = await start_service(make_settings(tmp_path))
    try:
        yield svc
    finally:
        await svc.close()


def _stored(service, key: str) -> Path:
    return Path(service.settings.storage.local_dir) / key


def _clip(folder: Path, name: str, width: int, height: int, fps: int, seconds: int = 1) -> Path:
    target = folder / name
    render_scene_clip(target, title=name, seconds=seconds, width=width, height=height, fps=fps)
    return target


def test_clips_of_one_format_are_copied_without_re_encoding(tmp_path):
    clips = [_clip(tmp_path, f"{n}.mp4", 160, 90, 24) for n in range(3)]
    seen: list[tuple[int, int]] = []

    result = join_clips(clips, tmp_path / "film.mp4", progress=lambda d, t: seen.append((d, t)))

    assert result.method == REMUX
    codec, width, height, frames, duration = decode(tmp_path / "film.mp4")
    assert (codec, width, height, frames) == ("h264", 160, 90, 72)  # every frame decodes
    assert duration == pytest.approx(3.0, abs=FRAME)
    assert seen == [(1, 3), (2, 3), (3, 3)]


def _reordered_clip(target: Path, frames: int = 24) -> Path:
    """An H.264 clip with B-frames (decode order differs from display order), as providers'
    clips are, unlike the offline provider's."""
    with av.open(str(target), "w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 160, 90, "yuv420p"
        stream.options = {"preset": "medium", "bframes": "3"}
        for index in range(frames):
            frame = av.VideoFrame(160, 90, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([index * 9 % 256]) * plane.buffer_size)
            frame.pts, frame.time_base = index, Fraction(1, 24)
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return target


def test_clips_with_b_frames_are_copied_gaplessly_from_time_zero(tmp_path):
    clips = [_reordered_clip(tmp_path / f"{n}.mp4") for n in range(3)]
    with av.open(str(clips[0])) as source:  # the clip really holds frames back
        packets = [p for p in source.demux(source.streams.video[0]) if p.dts is not None]
        assert any(p.pts != p.dts for p in packets)

    result = join_clips(clips, tmp_path / "film.mp4")

    assert result.method == REMUX
    codec, _, _, frames, duration = decode(tmp_path / "film.mp4")
    assert (codec, frames) == ("h264", 72) and duration == pytest.approx(3.0, abs=FRAME)
    with av.open(str(tmp_path / "film.mp4")) as film:
        stream = film.streams.video[0]
        shown = [float(frame.pts * stream.time_base) for frame in film.decode(stream)]
    assert shown[0] == 0.0
    assert shown == pytest.approx([n / 24 for n in range(72)], abs=1e-3)  # no gap, no overlap

    large = _clip(tmp_path, "large.mp4", 320, 180, 24)
    mixed = join_clips([clips[0], large, clips[1]], tmp_path / "mixed.mp4")
    assert mixed.method == REENCODE
    codec, _, _, frames, duration = decode(tmp_path / "mixed.mp4")
    assert (codec, frames) == ("h264", 72) and duration == pytest.approx(3.0, abs=FRAME)


def test_clips_of_different_sizes_and_rates_are_re_encoded_to_h264(tmp_path):
    clips = [
        _clip(tmp_path, "small.mp4", 160, 90, 24),
        _clip(tmp_path, "large.mp4", 320, 180, 12, seconds=2),
        _clip(tmp_path, "small2.mp4", 160, 90, 24),
    ]

    result = join_clips(clips, tmp_path / "film.mp4")

    assert result.method == REENCODE
    codec, width, height, frames, duration = decode(tmp_path / "film.mp4")
    assert (codec, width, height) == ("h264", 320, 180)  # the largest clip's size
    assert frames == 24 + 24 + 24 == result.frames  # every frame of every clip kept
    assert duration == pytest.approx(4.0, abs=FRAME)


def test_sound_is_copied_when_every_clip_has_it_and_re_encoded_to_aac_when_some_lack_it(
    tmp_path,
):
    silent = _clip(tmp_path, "silent.mp4", 160, 90, 24)
    loud = with_sound(silent, tmp_path / "loud.mp4")

    copied = join_clips([loud, loud], tmp_path / "copied.mp4")
    mixed = join_clips([loud, silent, loud], tmp_path / "mixed.mp4")

    assert copied.method == REMUX and mixed.method == REENCODE
    for film, clips in ((tmp_path / "copied.mp4", 2), (tmp_path / "mixed.mp4", 3)):
        codec, _, _, frames, duration = decode(film)
        assert (codec, frames) == ("h264", 24 * clips)
        assert duration == pytest.approx(clips * 1.0, abs=0.05 * clips)  # AAC priming aside
        sound_codec, sound_seconds = audio_of(film)
        assert sound_codec == "aac"
        assert sound_seconds == pytest.approx(clips * 1.0, abs=0.1)  # the silent clip: silence
    assert audio_of(silent) is None


async def test_a_path_becomes_one_film_and_the_second_request_reuses_it(service, tmp_path):
    made = await seed_path(service, tmp_path / "clips", [SMALL] * 4)
    updates: list[FilmProgress] = []

    film = await service.film("default", made[-1], on_progress=updates.append)

    assert (film.clips, film.scenes, film.complete, film.cached) == (4, 4, True, False)
    assert film.method == REMUX and film.first_path == ""
    codec, _, _, frames, duration = decode(_stored(service, film.key))
    assert (codec, frames) == ("h264", 96)
    assert duration == pytest.approx(4.0, abs=FRAME) and film.seconds == pytest.approx(4.0)
    assert [u for u in updates if u.stage == "joining"][-1] == FilmProgress("joining", 4, 4)
    assert updates[-1].stage == "storing"
    stored = _stored(service, film.key).stat().st_mtime_ns

    again = await service.film("default", made[-1])

    assert again.cached and again.key == film.key and again.bytes == film.bytes
    assert _stored(service, film.key).stat().st_mtime_ns == stored  # nothing re-made
    assert not any(Path(film_module.work_root(service.settings)).iterdir())  # spool cleaned


async def test_a_film_of_a_shorter_path_is_its_own_film(service, tmp_path):
    made = await seed_path(service, tmp_path / "clips", [SMALL] * 3)
    whole = await service.film("default", made[-1])
    part = await service.film("default", made[1])
    assert part.key != whole.key and part.clips == 2


async def test_clips_of_two_sizes_on_a_path_are_re_encoded(service, tmp_path):
    made = await seed_path(service, tmp_path / "clips", [SMALL, (320, 180, 24), SMALL])
    film = await service.film("default", made[-1])
    assert film.method == REENCODE
    codec, width, height, frames, duration = decode(_stored(service, film.key))
    assert (codec, width, height, frames) == ("h264", 320, 180, 72)
    assert duration == pytest.approx(3.0, abs=FRAME)


async def test_concurrent_requests_for_one_path_make_one_film(service, tmp_path, caplog):
    made = await seed_path(service, tmp_path / "clips", [SMALL] * 3)
    fetched: list[list[FilmProgress]] = [[] for _ in range(5)]
    with caplog.at_level(logging.INFO, logger="world.film"):
        films = await asyncio.gather(
            *(service.film("default", made[-1], on_progress=seen.append) for seen in fetched)
        )
    assert len({f.key for f in films}) == 1
    assert [f.cached for f in films] == [False] * 5  # all waited for the one making...
    assert [r.message.startswith("film made") for r in caplog.records].count(True) == 1
    assert all(FilmProgress("joining", 3, 3) in seen for seen in fetched)  # ...and saw it


async def test_a_changed_clip_on_the_path_makes_a_new_film(service, tmp_path):
    made = await seed_path(service, tmp_path / "clips", [SMALL] * 2)
    first = await service.film("default", made[-1])
    await seed_path(service, tmp_path / "again", [SMALL] * 2, generation="b")  # new clips
    remade = await service.film("default", made[-1])
    assert remade.key != first.key and not remade.cached and remade.clips == 2


async def test_a_path_over_the_caps_is_filmed_from_its_most_recent_scenes(tmp_path):
    settings = make_settings(tmp_path, film={"max_seconds": 3, "max_clips": 5})
    svc = await start_service(settings)
    try:
        made = await seed_path(svc, tmp_path / "clips", [SMALL] * 6)
        film = await svc.film("default", made[-1])
        # max_clips keeps the last 5; max_seconds keeps the 3 newest of them (1 s each)
        assert (film.clips, film.scenes, film.complete) == (3, 6, False)
        assert film.first_path == path_of(3)
        _, _, _, frames, duration = decode(_stored(svc, film.key))
        assert frames == 72 and duration == pytest.approx(3.0, abs=FRAME)
    finally:
        await svc.close()


async def test_nothing_to_film_is_one_sentence_and_bad_paths_are_refused(service, tmp_path):
    with pytest.raises(ServiceError, match="nothing to film yet"):
        await service.film("default", "")
    with pytest.raises(ServiceError, match="not a branch path"):
        await service.film("default", "0//1")
    assert await service.film_clips("default", "") == 0
    assert not (Path(service.settings.storage.local_dir) / "worlds").exists()


async def test_a_clip_missing_from_the_store_refuses_with_a_sentence(service, tmp_path):
    made = await seed_path(service, tmp_path / "clips", [SMALL] * 2)
    await service.store.delete("worlds/default/scenes/root/a.mp4")
    with pytest.raises(ServiceError, match="cannot be read from storage"):
        await service.film("default", made[-1])
    assert not any(Path(film_module.work_root(service.settings)).iterdir())


def test_film_settings_are_validated_with_a_sentence(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[film]\nmax_seconds = 0\nmax_clips = 0\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(config, env={})
    assert any(p.startswith("film.max_seconds (FILM_MAX_SECONDS)") for p in raised.value.problems)
    assert any(p.startswith("film.max_clips") for p in raised.value.problems)
    settings = load_settings(config, env={"FILM_MAX_SECONDS": "90"}, read_file=False)
    assert settings.film.max_seconds == 90
    assert replace(settings.film, max_clips=7).max_clips == 7


async def test_a_film_on_postgresql_and_s3_is_a_presigned_link_and_cached(
    tmp_path, postgres_database, s3_server, s3_settings
):
    settings = make_settings(tmp_path, postgres_database)
    svc = await start_service(settings, store_settings=s3_settings)
    try:
        made = await seed_path(svc, tmp_path / "clips", [SMALL] * 3)
        film = await svc.film("default", made[-1])
        assert film.url and film.method == REMUX and not film.cached
        async with aiohttp.ClientSession() as http, http.get(film.url) as response:
            assert response.status == 200
            body = await response.read()
        (tmp_path / "linked.mp4").write_bytes(body)
        assert decode(tmp_path / "linked.mp4")[3] == 72 and len(body) == film.bytes
        again = await svc.film("default", made[-1])
        assert again.cached and again.key == film.key
    finally:
        await svc.close()
