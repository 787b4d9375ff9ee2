"""world.media: animated scene clips, last-frame extraction and probing, checked with PyAV."""

from __future__ import annotations

import io
import itertools
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from world import lettering, media
from world.media import (
    PNG_SIGNATURE,
    VideoInfo,
    extract_last_frame_png,
    probe,
    render_scene_clip,
    render_title_card,
)

WIDTH, HEIGHT = 320, 180
CHOICES = ("Leap after the Warden", "Trick the Warden with the ribbon", "Hide and watch")
PORTALS = ((255, 176, 32), (40, 200, 110), (150, 80, 235))
MOTION = 2.0  # mean absolute difference (0-255, over R, G and B) that counts as "it moved"
SAME = 0.5  # ...and below which two frames are the same picture (encoder noise aside)


@dataclass(frozen=True)
class Card:
    path: Path
    size: int
    seconds: int
    fps: int
    progress: tuple[int, ...]


def _render(path: Path, title: str, *, seconds: int = 4, fps: int = 12) -> Card:
    progress: list[int] = []
    size = render_title_card(
        path,
        title=title,
        subtitle="The Courier vaults through the amber portal into a clockwork jungle",
        seconds=seconds,
        width=WIDTH,
        height=HEIGHT,
        fps=fps,
        progress=progress.append,
    )
    return Card(path, size, seconds, fps, tuple(progress))


def _scene(
    path: Path,
    *,
    seed: str = "0/1",
    palette_seed: str = "default",
    title: str = "Shardfall in the Clockwork Jungle",
    choices: tuple[str, ...] = CHOICES,
    seconds: int = 4,
    size: tuple[int, int] = (WIDTH, HEIGHT),
) -> Card:
    """An offline scene clip as the offline provider makes one (24 fps, the three choices)."""
    progress: list[int] = []
    clip_size = render_scene_clip(
        path,
        title=title,
        subtitle="The Courier in a clockwork jungle goes after a shard",
        choices=choices,
        seed=seed,
        palette_seed=palette_seed,
        portals=PORTALS,
        seconds=seconds,
        width=size[0],
        height=size[1],
        fps=24,
        progress=progress.append,
    )
    return Card(path, clip_size, seconds, 24, tuple(progress))


@pytest.fixture(scope="session")
def cards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Card]:
    """Rendered once per run: two short 12 fps title cards with different titles, a longer
    24 fps one, and offline scene clips: one branch twice, another branch, another world, the
    same branch with another title, with other choices, and a 640x360 one."""
    root = tmp_path_factory.mktemp("cards")
    return {
        "nexus": _render(root / "nexus.mp4", "The Nexus Gate Awakens"),
        "jungle": _render(root / "jungle.mp4", "Shardfall in the Clockwork Jungle"),
        "long": _render(root / "nested" / "long.mp4", "A Longer Chase", seconds=8, fps=24),
        "scene": _scene(root / "scene.mp4"),
        "scene_again": _scene(root / "again" / "scene.mp4"),
        "other_path": _scene(root / "other-path.mp4", seed="2/0"),
        "other_world": _scene(root / "other-world.mp4", palette_seed="noir"),
        "retitled": _scene(root / "retitled.mp4", title="A Different Title Entirely"),
        "rechosen": _scene(
            root / "rechosen.mp4", choices=("Run", "Hide in the dark", "Bargain with Vex")
        ),
        "large": _scene(root / "large.mp4", seconds=2, size=(640, 360)),
    }


def _top_level_boxes(path: Path) -> list[str]:
    boxes: list[str] = []
    total = path.stat().st_size
    with path.open("rb") as handle:
        offset = 0
        while offset < total:
            handle.seek(offset)
            size, kind = struct.unpack(">I4s", handle.read(8))
            if size == 1:
                size = struct.unpack(">Q", handle.read(8))[0]
            elif size == 0:
                size = total - offset
            assert size >= 8, f"corrupt box at {offset}"
            boxes.append(kind.decode("latin-1"))
            offset += size
    return boxes


def _frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def _pixels(frame: av.VideoFrame) -> bytes:
    return frame.to_image().convert("RGB").tobytes()


def _images(path: Path) -> list[Image.Image]:
    return [frame.to_image().convert("RGB") for frame in _frames(path)]


def _difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two frames, 0-255, averaged over R, G and B."""
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def test_title_card_is_real_h264_yuv420p_of_the_right_size_and_length(
    cards: dict[str, Card],
) -> None:
    card = cards["nexus"]
    info = probe(card.path)
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert info.codec == "h264"
    assert info.pix_fmt == "yuv420p"
    assert info.frames == card.seconds * card.fps
    assert info.duration_seconds == pytest.approx(card.seconds, abs=1 / card.fps + 0.01)
    assert card.size == card.path.stat().st_size > 0
    with av.open(str(card.path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"


def test_title_card_is_faststart(cards: dict[str, Card]) -> None:
    for card in cards.values():
        assert card.path.read_bytes()[4:8] == b"ftyp"
        boxes = _top_level_boxes(card.path)
        assert boxes[0] == "ftyp"
        assert "moov" in boxes and "mdat" in boxes
        assert boxes.index("moov") < boxes.index("mdat")


def test_title_card_reports_progress_up_to_100(cards: dict[str, Card]) -> None:
    progress = cards["nexus"].progress
    assert progress, "progress callback never called"
    assert list(progress) == sorted(progress)
    assert progress[-1] == 100
    assert all(0 <= p <= 100 for p in progress)


def test_title_card_frames_animate_and_titles_differ(cards: dict[str, Card]) -> None:
    nexus = _frames(cards["nexus"].path)
    jungle = _frames(cards["jungle"].path)
    assert _pixels(nexus[0]) != _pixels(jungle[0])  # the scene is keyed by the title
    assert _pixels(nexus[0]) != _pixels(nexus[-1])


# --------------------------------------------------------------------------- scene clips


@pytest.mark.parametrize(
    ("name", "size", "seconds"), [("scene", (320, 180), 4), ("large", (640, 360), 2)]
)
def test_scene_clip_is_h264_yuv420p_of_the_asked_size_and_length(
    cards: dict[str, Card], name: str, size: tuple[int, int], seconds: int
) -> None:
    card = cards[name]
    info = probe(card.path)
    assert (info.width, info.height) == size
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert info.frames == seconds * 24
    assert abs(info.duration_seconds - seconds) <= 1 / 24 + 1e-6
    with av.open(str(card.path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        frames = list(container.decode(stream))
    assert len(frames) == seconds * 24
    assert {(f.width, f.height) for f in frames} == {size}
    assert {f.format.name for f in frames} == {"yuv420p"}
    last = frames[-1]
    assert abs(float(last.pts * last.time_base) + 1 / 24 - seconds) <= 1 / 24 + 1e-6
    assert card.size == card.path.stat().st_size
    assert card.size < 600_000 * seconds / 4  # far below Discord's upload limit
    assert card.progress[-1] == 100 and list(card.progress) == sorted(card.progress)


def test_scene_clip_moves(cards: dict[str, Card]) -> None:
    images = _images(cards["scene"].path)
    first, middle, last = images[0], images[len(images) // 2], images[-1]
    assert _difference(first, middle) > MOTION
    assert _difference(middle, last) > MOTION
    steps = [_difference(a, b) for a, b in itertools.pairwise(images)]
    assert all(step > 0 for step in steps), "two consecutive frames are identical"
    assert sum(step > 0.05 for step in steps) >= len(steps) * 0.9  # it keeps moving
    quarter = len(images) // 4  # the camera pans: the first quarter alone moves too
    assert _difference(images[0], images[quarter]) > MOTION


def test_scene_clip_is_deterministic(cards: dict[str, Card]) -> None:
    one, two = cards["scene"], cards["scene_again"]
    assert one.path.read_bytes() == two.path.read_bytes()
    assert [_pixels(f) for f in _frames(one.path)] == [_pixels(f) for f in _frames(two.path)]


@pytest.mark.parametrize("other", ["other_path", "other_world"])
def test_scene_clips_of_other_branches_and_worlds_look_different(
    cards: dict[str, Card], other: str
) -> None:
    mine, theirs = _images(cards["scene"].path), _images(cards[other].path)
    for index in (0, len(mine) // 2, -1):
        assert _difference(mine[index], theirs[index]) > MOTION * 4


def test_scene_clip_fades_the_title_in(cards: dict[str, Card]) -> None:
    """Same branch, another title: the first frame (nothing written yet) is the same picture;
    a second in, the title is there."""
    mine, retitled = _images(cards["scene"].path), _images(cards["retitled"].path)
    assert _difference(mine[0], retitled[0]) < SAME
    assert _difference(mine[24], retitled[24]) > MOTION
    assert _difference(mine[-1], retitled[-1]) > MOTION


def test_scene_clip_teases_the_choices_in_the_last_second(cards: dict[str, Card]) -> None:
    """Same branch, other choices: the same clip until the last second and a bit, then not."""
    mine, rechosen = _images(cards["scene"].path), _images(cards["rechosen"].path)
    for index in (0, 24, 48, 60):  # up to 2.5 s of 4
        assert _difference(mine[index], rechosen[index]) < SAME, index
    assert _difference(mine[-1], rechosen[-1]) > MOTION / 2


def test_scene_clip_last_frame_is_the_settled_scene_with_the_choices(
    cards: dict[str, Card],
) -> None:
    card = cards["scene"]
    png = Image.open(io.BytesIO(extract_last_frame_png(card.path))).convert("RGB")
    assert png.size == (WIDTH, HEIGHT)
    assert png.tobytes() == _pixels(_frames(card.path)[-1])
    images = _images(card.path)
    assert _difference(images[-2], images[-1]) < MOTION  # the camera has come to rest


def test_scene_clip_is_cheap(tmp_path: Path) -> None:
    """The issue's budget: well under a second of CPU for a 4 s 640x360 clip."""
    started = time.process_time()
    _scene(tmp_path / "budget.mp4", size=(640, 360))
    assert time.process_time() - started < 1.0


@pytest.mark.parametrize("size", [(16, 16), (64, 36), (160, 90), (330, 186)])
def test_scene_clips_of_small_and_unaligned_sizes(tmp_path: Path, size: tuple[int, int]) -> None:
    card = _scene(tmp_path / "small.mp4", seconds=1, size=size)
    info = probe(card.path)
    assert (info.width, info.height, info.frames) == (*size, 24)
    png = Image.open(io.BytesIO(extract_last_frame_png(card.path)))
    assert png.size == size


def test_title_card_leaves_no_partial_files(cards: dict[str, Card]) -> None:
    for card in cards.values():
        assert sorted(p.name for p in card.path.parent.iterdir() if p.name.startswith(".")) == []


def test_title_card_rejects_odd_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        render_title_card(
            tmp_path / "odd.mp4", title="t", subtitle="s", seconds=1, width=321, height=180
        )
    assert not list(tmp_path.iterdir())


def test_long_titles_wrap_within_the_card(tmp_path: Path) -> None:
    text = "Chronoglyph " * 40 + "Supercalifragilisticexpialidocious" * 3
    font, lines = lettering.fit_text(text, 280, max_lines=3, start_size=22)
    assert 1 <= len(lines) <= 3
    assert all(font.getlength(line) <= 280 for line in lines)
    assert lines[-1].endswith("…")
    size = render_title_card(
        tmp_path / "long.mp4", title=text, subtitle=text, seconds=1, width=WIDTH, height=HEIGHT
    )
    assert size > 0


@pytest.mark.parametrize("name", ["nexus", "long"])
def test_last_frame_png_matches_a_full_decode(cards: dict[str, Card], name: str) -> None:
    card = cards[name]
    png = extract_last_frame_png(card.path)
    assert png.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.size == (WIDTH, HEIGHT)
    assert image.convert("RGB").tobytes() == _pixels(_frames(card.path)[-1])


def test_last_frame_uses_the_tail_seek(
    cards: dict[str, Card], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_full_decode(video: Path) -> None:
        raise AssertionError("the seek path should have found the last frame")

    monkeypatch.setattr(media, "_last_frame_full_decode", no_full_decode)
    png = extract_last_frame_png(cards["long"].path)
    assert png.startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("failure", ["nothing", "error"])
def test_last_frame_falls_back_to_a_full_decode(
    cards: dict[str, Card], monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    def broken_seek(video: Path) -> None:
        if failure == "error":
            raise OSError("seek failed")
        return None

    monkeypatch.setattr(media, "_last_frame_by_seeking", broken_seek)
    card = cards["long"]
    png = extract_last_frame_png(card.path)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.tobytes() == _pixels(_frames(card.path)[-1])


def test_last_frame_of_a_non_video_raises(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(ValueError):
        extract_last_frame_png(junk)
