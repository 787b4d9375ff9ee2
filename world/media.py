"""Blocking media helpers (PyAV + Pillow): title-card clips, last-frame posters, probing.

Every function here blocks on CPU or disk; call them through `asyncio.to_thread`.
Nothing reads a whole video into memory: PyAV demuxes from the file on demand.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ELLIPSIS = "…"
_MIN_FONT_SIZE = 8

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learns about a clip's first video stream."""

    width: int
    height: int
    duration_seconds: float
    codec: str
    pix_fmt: str | None = None
    frames: int = 0


# --------------------------------------------------------------------------- title cards


def render_title_card(
    destination: Path,
    *,
    title: str,
    subtitle: str,
    seconds: int,
    width: int,
    height: int,
    fps: int = 12,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Encode a `seconds`-long H.264 title card to `destination`; return its size in bytes.

    The clip is libx264, yuv420p, `+faststart` (moov before mdat), one keyframe a second:
    a dark gradient whose hue comes from a hash of the title, the wrapped title and subtitle,
    and a bar growing along the bottom edge so every frame differs. The file is written to a
    temporary sibling and renamed into place, so `destination` never holds half a clip.
    `progress(percent)` is called as frames are encoded and with 100 once the file is complete.
    """
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"Title cards need even dimensions of at least 16, got {width}x{height}.")
    if seconds < 1 or fps < 1:
        raise ValueError(f"Title cards need at least 1 second at 1 fps, got {seconds}s @ {fps}.")
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    background = _card_background(title, subtitle, width, height)
    bar_colour = _accent_colour(title)
    total_frames = seconds * fps
    tmp = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.part")
    last_reported = -1
    try:
        container = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
        try:
            stream = container.add_stream("libx264", rate=fps)
            stream.width = width
            stream.height = height
            stream.pix_fmt = "yuv420p"
            stream.codec_context.gop_size = fps  # a keyframe a second keeps tail seeks cheap
            stream.options = {"preset": "veryfast", "crf": "30"}
            time_base = Fraction(1, fps)
            for index in range(total_frames):
                image = _card_frame(background, index, total_frames, bar_colour)
                frame = av.VideoFrame.from_image(image)
                frame.pts = index
                frame.time_base = time_base
                container.mux(stream.encode(frame))
                percent = min(99, (index + 1) * 100 // total_frames)
                if progress is not None and percent != last_reported:
                    last_reported = percent
                    progress(percent)
            container.mux(stream.encode(None))
        finally:
            container.close()
        os.replace(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    size = destination.stat().st_size
    if progress is not None:
        progress(100)
    log.info(
        "title card rendered file=%s size=%dx%d seconds=%d bytes=%d elapsed_ms=%.0f",
        destination.name,
        width,
        height,
        seconds,
        size,
        (time.perf_counter() - started) * 1000,
    )
    return size


def _title_hue(title: str) -> float:
    digest = hashlib.sha256(title.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def _accent_colour(title: str) -> tuple[int, int, int]:
    return _rgb(_title_hue(title) + 0.5, 0.55, 0.95)


def _card_background(title: str, subtitle: str, width: int, height: int) -> Image.Image:
    """The static part of the card: gradient plus text, drawn once per clip."""
    hue = _title_hue(title)
    top = _rgb(hue, 0.70, 0.38)
    bottom = _rgb(hue + 0.08, 0.85, 0.07)
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    span = max(1, height - 1)
    for y in range(height):
        t = y / span
        colour = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        draw.line([(0, y), (width, y)], fill=colour)

    margin = max(6, width // 16)
    text_width = width - 2 * margin
    title_font, title_lines = _fit_text(
        title.strip() or "Untitled",
        text_width,
        max_lines=3,
        start_size=max(_MIN_FONT_SIZE, height // 8),
    )
    sub_font, sub_lines = _fit_text(
        subtitle.strip(),
        text_width,
        max_lines=3,
        start_size=max(_MIN_FONT_SIZE, height // 14),
    )
    title_h = _line_height(title_font)
    sub_h = _line_height(sub_font)
    gap = sub_h // 2 if sub_lines else 0
    block = title_h * len(title_lines) + gap + sub_h * len(sub_lines)
    bar_space = max(4, height // 12) * 2
    y = max(margin // 2, (height - bar_space - block) // 2)
    shadow = max(1, height // 180)
    for line in title_lines:
        _draw_centred(draw, line, title_font, y, width, (245, 240, 230), shadow)
        y += title_h
    y += gap
    for line in sub_lines:
        _draw_centred(draw, line, sub_font, y, width, (200, 200, 215), shadow)
        y += sub_h
    return image


def _card_frame(
    background: Image.Image, index: int, total: int, colour: tuple[int, int, int]
) -> Image.Image:
    """The background plus a bar that grows from nothing to full width over the clip."""
    image = background.copy()
    width, height = image.size
    bar_h = max(2, height // 45)
    margin = max(4, height // 12)
    y = height - margin - bar_h
    draw = ImageDraw.Draw(image)
    draw.rectangle([margin, y, width - margin, y + bar_h], fill=(30, 30, 40))
    filled = margin + round((width - 2 * margin) * (index + 1) / total)
    draw.rectangle([margin, y, filled, y + bar_h], fill=colour)
    return image


def _draw_centred(
    draw: ImageDraw.ImageDraw,
    text: str,
    font: Font,
    y: int,
    width: int,
    fill: tuple[int, int, int],
    shadow: int,
) -> None:
    x = (width - _text_width(font, text)) / 2
    draw.text((x + shadow, y + shadow), text, font=font, fill=(0, 0, 0))
    draw.text((x, y), text, font=font, fill=fill)


def _load_font(size: int) -> Font:
    return ImageFont.load_default(size=size)


def _text_width(font: Font, text: str) -> float:
    return font.getlength(text)


def _line_height(font: Font) -> int:
    _left, top, _right, bottom = font.getbbox("Ag")
    return int((bottom - top) * 1.3) + 1


def _fit_text(
    text: str, max_width: int, *, max_lines: int, start_size: int
) -> tuple[Font, list[str]]:
    """Wrap `text` to `max_width`, shrinking the font until it fits in `max_lines`.

    At the smallest size the text is cut after `max_lines` lines with an ellipsis.
    """
    size = start_size
    while True:
        font = _load_font(size)
        lines = _wrap(text, font, max_width)
        if len(lines) <= max_lines or size <= _MIN_FONT_SIZE:
            break
        size = max(_MIN_FONT_SIZE, size - max(1, size // 8))
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _with_ellipsis(lines[-1], font, max_width)
    return font, lines


def _with_ellipsis(line: str, font: Font, max_width: int) -> str:
    candidate = line.rstrip()
    while candidate and _text_width(font, candidate + _ELLIPSIS) > max_width:
        candidate = candidate[:-1].rstrip()
    return candidate + _ELLIPSIS


def _wrap(text: str, font: Font, max_width: int) -> list[str]:
    """Greedy word wrap; words wider than a line are broken between characters."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if _text_width(font, candidate) <= max_width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = ""
        while _text_width(font, word) > max_width and len(word) > 1:
            cut = len(word) - 1
            while cut > 1 and _text_width(font, word[:cut]) > max_width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    return lines


# --------------------------------------------------------------------------- last frame


def extract_last_frame_png(video: Path) -> bytes:
    """PNG bytes of the clip's final frame.

    Seeks to about a second before the end (backward, to the keyframe at or before it) and
    decodes forward; if that fails or yields nothing, decodes the whole clip instead. Only
    the demuxed packets are held, never the whole file. Raises ValueError for a file
    without a decodable video stream.
    """
    video = Path(video)
    last: av.VideoFrame | None = None
    try:
        last = _last_frame_by_seeking(video)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        log.warning("last frame seek failed file=%s error=%s; decoding fully", video.name, exc)
    if last is None:
        last = _last_frame_full_decode(video)
    if last is None:
        raise ValueError(f"{video.name} has no decodable video frames.")
    buffer = io.BytesIO()
    last.to_image().save(buffer, format="PNG")
    return buffer.getvalue()


def _last_frame_by_seeking(video: Path) -> av.VideoFrame | None:
    with av.open(str(video)) as container:
        if not container.streams.video:
            raise ValueError(f"{video.name} has no video stream.")
        stream = container.streams.video[0]
        target = _tail_seek_target(container, stream)
        if target is None:
            return None
        container.seek(target, stream=stream, backward=True, any_frame=False)
        last = None
        for frame in container.decode(stream):
            last = frame
        return last


def _last_frame_full_decode(video: Path) -> av.VideoFrame | None:
    with av.open(str(video)) as container:
        if not container.streams.video:
            raise ValueError(f"{video.name} has no video stream.")
        last = None
        for frame in container.decode(container.streams.video[0]):
            last = frame
        return last


def _tail_seek_target(container: av.container.InputContainer, stream: av.VideoStream) -> int | None:
    """One second before the end, in the stream's time base; None if the length is unknown."""
    time_base = stream.time_base
    if time_base is None or time_base == 0:
        return None
    start = stream.start_time or 0
    if stream.duration is not None and stream.duration > 0:
        end = start + stream.duration
    elif container.duration is not None and container.duration > 0:
        end = start + int(Fraction(container.duration, av.time_base) / time_base)
    else:
        return None
    return max(start, end - int(1 / time_base))


# --------------------------------------------------------------------------- probing


def probe(video: Path) -> VideoInfo:
    """Size, duration, codec and pixel format of the clip's first video stream."""
    video = Path(video)
    with av.open(str(video)) as container:
        if not container.streams.video:
            raise ValueError(f"{video.name} has no video stream.")
        stream = container.streams.video[0]
        context = stream.codec_context
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        return VideoInfo(
            width=context.width,
            height=context.height,
            duration_seconds=duration,
            codec=context.name,
            pix_fmt=context.pix_fmt,
            frames=stream.frames,
        )
