"""world.media: title-card clips, last-frame extraction and probing, checked with PyAV."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
from PIL import Image

from world import media
from world.media import (
    PNG_SIGNATURE,
    VideoInfo,
    extract_last_frame_png,
    probe,
    render_title_card,
)

WIDTH, HEIGHT = 320, 180


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


@pytest.fixture(scope="session")
def cards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Card]:
    """Rendered once per run: two short cards with different titles and a longer 24 fps one."""
    root = tmp_path_factory.mktemp("cards")
    return {
        "nexus": _render(root / "nexus.mp4", "The Nexus Gate Awakens"),
        "jungle": _render(root / "jungle.mp4", "Shardfall in the Clockwork Jungle"),
        "long": _render(root / "nested" / "long.mp4", "A Longer Chase", seconds=8, fps=24),
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
    assert _pixels(nexus[0]) != _pixels(jungle[0])
    assert _pixels(nexus[0]) != _pixels(nexus[-1])  # the bar grows across the clip


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
    font, lines = media._fit_text(text, 280, max_lines=3, start_size=22)
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
