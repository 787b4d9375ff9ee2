"""Blocking media helpers (PyAV + Pillow): offline scene clips, last-frame posters, probing.

Every function here blocks on CPU or disk; call them through `asyncio.to_thread`.
Nothing reads a whole video into memory: PyAV demuxes from the file on demand.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import logging
import math
import os
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import av.error
from PIL import Image, ImageDraw

from world.lettering import (
    MIN_FONT_SIZE,
    fit_text,
    line_height,
    load_font,
    text_width,
    with_ellipsis,
)

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learns about a clip's first video stream."""

    width: int
    height: int
    duration_seconds: float
    codec: str
    pix_fmt: str | None = None
    frames: int = 0


# --------------------------------------------------------------------------- scene clips

Colour = tuple[int, int, int]

MAX_TEASED_CHOICES = 3
ENCODER_OPTIONS = {"preset": "ultrafast", "crf": "30", "threads": "1"}
_FAR_PAN = 0.12  # how far (in frame widths) the sky and far hills travel across the clip...
_NEAR_PAN = 0.3  # ...and the near hills: the difference is the parallax
_TEXT = (246, 241, 232)
_SUBTEXT = (222, 222, 234)
_PILL = (12, 12, 22)
_PILL_ALPHA = 190
_SCRIM_ALPHA = 80
# Hue offsets (sky, land, accent) of the schemes a world's palette is drawn from.
_SCHEMES = ((0.0, 0.08, 0.5), (0.0, 0.5, 0.12), (0.0, 0.33, 0.66), (0.0, -0.1, 0.42))
_SHAPES = ("spires", "domes", "trees", "blocks", "arches", "crystals")
# Pillow's YCbCr is full range (JPEG); H.264 yuv420p is limited range (Y 16-235, C 16-240).
_LUMA_RANGE = [16 + round(v * 219 / 255) for v in range(256)]
_CHROMA_RANGE = [128 + round((v - 128) * 224 / 255) for v in range(256)]
_LIMITED_RANGE = _LUMA_RANGE + _CHROMA_RANGE + _CHROMA_RANGE


def render_scene_clip(
    destination: Path,
    *,
    title: str,
    subtitle: str = "",
    choices: Sequence[str] = (),
    seed: str = "",
    palette_seed: str = "",
    portals: Sequence[Colour] = (),
    seconds: int,
    width: int,
    height: int,
    fps: int = 24,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Encode a `seconds`-long animated scene clip to `destination`; return its size in bytes.

    The picture is a landscape drawn once with Pillow in two layers wider than the frame: the
    far one (a sky gradient, stars, a glowing disc, distant hills and one glowing portal per
    colour in `portals`) and the near one (two ridges with spires, domes, trees, blocks,
    arches or crystals on them). Its colours come from a palette seeded by `palette_seed` (a
    world: its clips share a look), shifted and laid out by `seed` too (a branch path: every
    branch differs). Each frame crops the layers at offsets that ease to rest, so the camera
    pans slowly with parallax while motes drift across the frame; the title fades in over
    the first second, `subtitle` after it, and in the last second up to three `choices`
    slide in as numbered pills while the title rises to the top. The last frame holds the
    settled scene, the title and every choice. Same inputs, same bytes.

    The clip is libx264 (`ENCODER_OPTIONS`: ultrafast, CRF 30, one thread), yuv420p,
    `+faststart` (moov before mdat), one keyframe a second, exactly `seconds * fps` frames
    of `width`x`height`. Frames are composed in YCbCr and handed to the encoder as yuv420p
    planes, so no per-frame RGB conversion is made. The file is written to a temporary
    sibling and renamed into place, so `destination` never holds half a clip.
    `progress(percent)` is called as frames are encoded and with 100 once the file is
    complete.
    """
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"Clips need even dimensions of at least 16, got {width}x{height}.")
    if seconds < 1 or fps < 1:
        raise ValueError(f"Clips need at least 1 second at 1 fps, got {seconds}s @ {fps}.")
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    scene = _Scene.build(
        title=title,
        subtitle=subtitle,
        choices=tuple(c for c in choices if c.strip())[:MAX_TEASED_CHOICES],
        seed=seed,
        palette_seed=palette_seed,
        portals=tuple(portals),
        seconds=seconds,
        width=width,
        height=height,
    )
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
            stream.options = dict(ENCODER_OPTIONS)
            time_base = Fraction(1, fps)
            for index in range(total_frames):
                at = index / (total_frames - 1) if total_frames > 1 else 1.0
                frame = scene.frame(at).video_frame()
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
        "scene clip rendered file=%s size=%dx%d seconds=%d fps=%d bytes=%d elapsed_ms=%.0f",
        destination.name,
        width,
        height,
        seconds,
        fps,
        size,
        (time.perf_counter() - started) * 1000,
    )
    return size


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
    choices: Sequence[str] = (),
    seed: str | None = None,
    palette_seed: str | None = None,
    portals: Sequence[Colour] = (),
) -> int:
    """`render_scene_clip` with the title card's old defaults: 12 fps, and the scene and its
    palette keyed by the title unless `seed` / `palette_seed` say otherwise."""
    return render_scene_clip(
        destination,
        title=title,
        subtitle=subtitle,
        choices=choices,
        seed=title if seed is None else seed,
        palette_seed=title if palette_seed is None else palette_seed,
        portals=portals,
        seconds=seconds,
        width=width,
        height=height,
        fps=fps,
        progress=progress,
    )


@dataclass(frozen=True)
class _Planes:
    """A picture as H.264 wants it: limited-range Y at full size, Cb and Cr at half size
    (4:2:0), each an "L" image. Frames are composed plane by plane, so nothing is converted
    from RGB per frame and only 1.5 bytes a pixel are moved."""

    y: Image.Image
    cb: Image.Image
    cr: Image.Image

    @classmethod
    def of(cls, image: Image.Image) -> _Planes:
        """`image` (RGB or RGBA) converted once; chroma is averaged over 2x2 blocks."""
        luma, blue, red = image.convert("RGB").convert("YCbCr").point(_LIMITED_RANGE).split()
        return cls(luma, blue.reduce(2), red.reduce(2))

    def crop(self, x: int, width: int, height: int) -> _Planes:
        half = x // 2
        return _Planes(
            self.y.crop((x, 0, x + width, height)),
            self.cb.crop((half, 0, half + width // 2, height // 2)),
            self.cr.crop((half, 0, half + width // 2, height // 2)),
        )

    def paste(self, other: _Planes, x: int, y: int, mask: Image.Image, half: Image.Image) -> None:
        """Blend `other` in at (x, y) through `mask` (and `half`, the mask at chroma size)."""
        self.y.paste(other.y, (x, y), mask)
        self.cb.paste(other.cb, (x // 2, y // 2), half)
        self.cr.paste(other.cr, (x // 2, y // 2), half)

    def video_frame(self) -> av.VideoFrame:
        frame = av.VideoFrame(self.y.width, self.y.height, "yuv420p")
        for plane, band in zip(frame.planes, (self.y, self.cb, self.cr), strict=True):
            stride = plane.line_size
            if stride != band.width:  # rows are padded for alignment
                padded = Image.new("L", (stride, band.height))
                padded.paste(band, (0, 0))
                band = padded
            plane.update(band.tobytes())
        return frame


def _video_luma(colour: Colour) -> int:
    return int(_Planes.of(Image.new("RGB", (2, 2), colour)).y.getpixel((0, 0)))


@lru_cache(maxsize=256)
def _alpha_table(level: int) -> list[int]:
    return [(v * level + 127) // 255 for v in range(256)]


def _rng(*keys: str) -> random.Random:
    digest = hashlib.sha256("\x00".join(keys).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _rgb(hue: float, saturation: float, value: float) -> Colour:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, min(1.0, max(0.0, saturation)), value)
    return round(r * 255), round(g * 255), round(b * 255)


def _mix(a: Colour, b: Colour, t: float) -> Colour:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _ramp(value: float, start: float, end: float) -> float:
    """0 before `start`, 1 after `end`, smoothstepped in between."""
    if end <= start:
        return 1.0 if value >= end else 0.0
    t = min(1.0, max(0.0, (value - start) / (end - start)))
    return t * t * (3 - 2 * t)


@dataclass(frozen=True)
class _Palette:
    sky_top: Colour
    sky_horizon: Colour
    glow: Colour
    ridges: tuple[Colour, Colour, Colour]  # far to near
    accent: Colour
    star: Colour
    night: float  # 0 bright day .. 1 deep night

    @classmethod
    def build(cls, world: random.Random, scene: random.Random) -> _Palette:
        """The world's hues and scheme, with the scene's own shift and time of day."""
        hue = world.random()
        sky, land, accent = world.choice(_SCHEMES)
        saturation = world.uniform(0.45, 0.7)
        hue += scene.uniform(-0.09, 0.09)
        night = scene.random()
        land_value = 0.55 - 0.25 * night
        return cls(
            sky_top=_rgb(hue + sky, saturation + 0.15, 0.42 - 0.3 * night),
            sky_horizon=_rgb(hue + sky + 0.07, saturation - 0.1, 0.92 - 0.35 * night),
            glow=_rgb(hue + accent + 0.04, 0.35, 1.0),
            ridges=(
                _rgb(hue + land, saturation - 0.15, land_value),
                _rgb(hue + land + 0.03, saturation, land_value * 0.62),
                _rgb(hue + land + 0.06, saturation + 0.1, land_value * 0.32),
            ),
            accent=_rgb(hue + accent, 0.6, 1.0),
            star=_rgb(hue + sky, 0.12, 1.0),
            night=night,
        )


@dataclass(frozen=True)
class _Sprite:
    """A pre-rendered overlay, its coverage mask (and at chroma size) and its place."""

    planes: _Planes
    mask: Image.Image
    half_mask: Image.Image
    x: int
    y: int

    @classmethod
    def of(cls, layer: Image.Image, x: int, y: int) -> _Sprite:
        """From an RGBA `layer`: its colours and its alpha as the mask."""
        mask = layer.getchannel("A")
        return cls(_Planes.of(layer), mask, mask.reduce(2), x, y)

    @property
    def height(self) -> int:
        return self.mask.height

    def paste(
        self, frame: _Planes, alpha: float, *, x: int | None = None, y: int | None = None
    ) -> None:
        """Blend onto `frame` at `alpha` opacity, at its place unless `x`/`y` say otherwise
        (it may hang over the frame's edges)."""
        level = round(alpha * 255)
        if level <= 0:
            return
        mask, half = self.mask, self.half_mask
        if level < 255:
            mask, half = mask.point(_alpha_table(level)), half.point(_alpha_table(level))
        frame.paste(self.planes, self.x if x is None else x, self.y if y is None else y, mask, half)


@dataclass(frozen=True)
class _Mote:
    x: float
    y: float
    dx: float
    dy: float
    radius: float
    phase: float


@dataclass(frozen=True)
class _Scene:
    """Everything drawn once per clip, and `frame(at)` that composes one frame from it."""

    width: int
    height: int
    seconds: int
    far: _Planes  # `width` + the far pan wide
    near: _Sprite  # `width` + the near pan wide, from its top down
    pan_right: bool
    motes: tuple[_Mote, ...]
    mote_luma: int
    title: _Sprite
    subtitle: _Sprite | None
    choices: tuple[_Sprite, ...]
    title_top: int  # where the title rises to while the choices come in

    @classmethod
    def build(
        cls,
        *,
        title: str,
        subtitle: str,
        choices: tuple[str, ...],
        seed: str,
        palette_seed: str,
        portals: tuple[Colour, ...],
        seconds: int,
        width: int,
        height: int,
    ) -> _Scene:
        rng = _rng("scene", palette_seed, seed)
        palette = _Palette.build(_rng("palette", palette_seed), rng)
        far, near = _draw_layers(
            rng,
            palette,
            portals,
            (width + round(width * _FAR_PAN), width + round(width * _NEAR_PAN)),
            height,
        )
        motes = tuple(
            _Mote(
                rng.random(),
                rng.random(),
                rng.uniform(-0.12, 0.12),
                rng.uniform(0.06, 0.22),
                rng.uniform(0.6, 1.6),
                rng.uniform(0, 2 * math.pi),
            )
            for _ in range(max(6, min(24, width * height // 4800)))
        )
        margin = max(4, width // 20)
        text_width = width - 2 * margin
        shadow = max(1, height // 180)
        title_sprite = _text_sprite(
            title.strip() or "Untitled",
            text_width,
            width,
            max_lines=2 if choices else 3,
            size=max(MIN_FONT_SIZE, height // 8),
            fill=_TEXT,
            shadow=shadow,
        )
        sub_sprite = None
        if subtitle.strip():
            sub_sprite = _text_sprite(
                subtitle.strip(),
                text_width,
                width,
                max_lines=2,
                size=max(MIN_FONT_SIZE, height // 15),
                fill=_SUBTEXT,
                shadow=shadow,
            )
        gap = max(1, height // 60)
        block = title_sprite.height + (gap + sub_sprite.height if sub_sprite else 0)
        top = max(0, (height - block) // 2)
        title_sprite = replace(title_sprite, y=top)
        if sub_sprite is not None:
            sub_sprite = replace(sub_sprite, y=top + title_sprite.height + gap)
        return cls(
            width=width,
            height=height,
            seconds=seconds,
            far=far,
            near=near,
            pan_right=rng.random() < 0.5,
            motes=motes,
            mote_luma=_video_luma(_mix(palette.glow, (255, 255, 255), 0.4)),
            title=title_sprite,
            subtitle=sub_sprite,
            choices=_choice_sprites(choices, text_width, width, height, margin, palette.accent),
            title_top=max(0, margin // 3),
        )

    def frame(self, at: float) -> _Planes:
        """The frame `at` of the way through the clip (0 first, 1 last)."""
        ease = 1 - (1 - at) ** 2  # the camera slows to rest on the last frame
        across = ease if self.pan_right else 1 - ease
        far_x = round((self.far.y.width - self.width) * across)
        image = self.far.crop(far_x, self.width, self.height)
        near_x = round((self.near.mask.width - self.width) * across)
        self.near.paste(image, 1.0, x=-near_x)
        self._draw_motes(image, at)

        now = at * self.seconds
        fade_in = (min(0.25, 0.08 * self.seconds), min(1.25, 0.35 * self.seconds))
        teaser = min(1.4, 0.45 * self.seconds) if self.choices else 0.0
        start = self.seconds - teaser
        rise = _ramp(now, start, start + teaser * 0.35) if self.choices else 0.0
        y = round(self.title.y + (self.title_top - self.title.y) * rise)
        self.title.paste(image, _ramp(now, *fade_in), y=y)
        if self.subtitle is not None:
            delay = (fade_in[1] - fade_in[0]) * 0.5
            alpha = _ramp(now, fade_in[0] + delay, fade_in[1] + delay) * (1 - rise)
            self.subtitle.paste(image, alpha)
        for number, pill in enumerate(self.choices):
            begin = start + teaser * (0.25 + 0.15 * number)
            alpha = _ramp(now, begin, begin + teaser * 0.35)
            pill.paste(image, alpha, y=pill.y + round((1 - alpha) * pill.height * 0.6))
        return image

    def _draw_motes(self, image: _Planes, at: float) -> None:
        """Bright specks drifting up (drawn in luma only: they take the colour beneath)."""
        draw = ImageDraw.Draw(image.y)
        scale = self.height / 180
        for mote in self.motes:
            x = ((mote.x + mote.dx * at) % 1.0) * self.width
            y = ((mote.y - mote.dy * at) % 1.0) * self.height
            r = max(0.6, mote.radius * scale * (0.75 + 0.25 * math.sin(mote.phase + 9 * at)))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=self.mote_luma)


def _draw_layers(
    rng: random.Random,
    palette: _Palette,
    portals: tuple[Colour, ...],
    widths: tuple[int, int],
    height: int,
) -> tuple[Image.Image, _Sprite]:
    """The far layer (sky, stars, glowing disc, distant hills, portals) and the near one
    (two ridges with a row of shapes each, cropped to where it is drawn), drawn once."""
    far_w, near_w = widths
    column = Image.new("RGB", (1, height))
    span = max(1, height - 1)
    column.putdata(
        [_mix(palette.sky_top, palette.sky_horizon, (y / span) ** 1.4) for y in range(height)]
    )
    far = column.resize((far_w, height), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(far)
    unit = height / 180

    for _ in range(round(far_w * height / 1500 * (0.25 + palette.night))):
        x, y = rng.uniform(0, far_w), rng.uniform(0, height * 0.55)
        r = rng.uniform(0.3, 0.9) * max(1.0, unit)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_mix(palette.sky_top, palette.star, 0.8))

    cx, cy = rng.uniform(0.15, 0.85) * far_w, rng.uniform(0.14, 0.34) * height
    radius = rng.uniform(0.06, 0.11) * height
    sky = _mix(palette.sky_top, palette.sky_horizon, (cy / height) ** 1.4)
    for ring in range(6, 0, -1):
        r = radius * (1 + ring * 0.32)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_mix(sky, palette.glow, 0.5 / ring))
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=palette.glow)

    hills = _ridge(rng, far_w, height, 0.56, amplitude=0.08)
    draw.polygon([(0, height), *hills, (far_w, height)], fill=palette.ridges[0])
    _draw_portals(draw, rng, portals, far_w, height, unit)

    near = Image.new("RGBA", (near_w, height), (*palette.ridges[1], 0))
    draw = ImageDraw.Draw(near)
    kind = rng.choice(_SHAPES)
    for layer, base in ((1, 0.72), (2, 0.87)):
        colour = palette.ridges[layer]
        ridge = _ridge(rng, near_w, height, base, amplitude=0.05 if layer == 1 else 0.035)
        _draw_shapes(draw, rng, kind, ridge, near_w, height, colour, palette.accent, layer)
        draw.polygon([(0, height), *ridge, (near_w, height)], fill=(*colour, 255))
    mask = near.getchannel("A")
    top = (mask.getbbox() or (0, 0, near_w, height))[1]
    near = near.crop((0, top, near_w, height))
    return _Planes.of(far), _Sprite.of(near, 0, top)


def _ridge(
    rng: random.Random, width: int, height: int, base: float, *, amplitude: float
) -> list[tuple[float, float]]:
    """A hill line: three random sine waves added, `base` (of the height) on average."""
    waves = [
        (rng.uniform(0.6, 1.0) / k, rng.uniform(0.8, 1.6) * k, rng.uniform(0, 2 * math.pi))
        for k in (1, 2, 4)
    ]
    step = max(2, width // 64)
    points = []
    for x in range(0, width + step, step):
        t = x / width * 2 * math.pi
        lift = sum(a * math.sin(f * t + p) for a, f, p in waves)
        points.append((float(min(x, width)), height * (base - amplitude * lift)))
    return points


def _ridge_y(ridge: list[tuple[float, float]], x: float) -> float:
    step = ridge[1][0] - ridge[0][0] if len(ridge) > 1 else 1.0
    return ridge[min(len(ridge) - 1, max(0, round(x / step)))][1]


def _draw_portals(
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    portals: tuple[Colour, ...],
    width: int,
    height: int,
    unit: float,
) -> None:
    """One glowing upright oval per colour, spread across the middle of the scene."""
    count = len(portals)
    for number, colour in enumerate(portals):
        x = width * (0.2 + 0.6 * (number + 0.5) / count + rng.uniform(-0.03, 0.03))
        y = height * rng.uniform(0.48, 0.55)
        rx, ry = height * 0.055, height * 0.11
        for ring in range(4, 0, -1):
            grow = 1 + ring * 0.22
            draw.ellipse(
                (x - rx * grow, y - ry * grow, x + rx * grow, y + ry * grow),
                fill=_mix((10, 10, 20), colour, 0.9 / (ring + 1)),
            )
        draw.ellipse(
            (x - rx, y - ry, x + rx, y + ry),
            fill=_mix(colour, (255, 255, 255), 0.45),
            outline=colour,
            width=max(2, round(2 * unit)),
        )


def _draw_shapes(
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    kind: str,
    ridge: list[tuple[float, float]],
    width: int,
    height: int,
    colour: Colour,
    accent: Colour,
    layer: int,
) -> None:
    """A row of `kind` standing on the ridge, in the ridge's colour with accent details."""
    ink = (*colour, 255)
    light = (*_mix(colour, accent, 0.35), 255)
    spark = (*accent, 255)
    scale = height * (0.07 if layer == 1 else 0.1)
    for _ in range(rng.randint(3, 7)):
        x = rng.uniform(0.03, 0.97) * width
        ground = _ridge_y(ridge, x) + scale * 0.15
        size = scale * rng.uniform(0.6, 1.4)
        half = size * 0.25
        tip = ground - size * 2.2
        if kind == "spires":
            draw.polygon([(x - half, ground), (x, tip), (x + half, ground)], fill=ink)
            draw.ellipse((x - 2, tip - 2, x + 2, tip + 2), fill=spark)
        elif kind == "domes":
            draw.pieslice((x - size, ground - size, x + size, ground + size), 180, 360, fill=ink)
            draw.rectangle((x - 1, ground - size * 1.4, x + 1, ground - size), fill=spark)
        elif kind == "trees":
            draw.rectangle((x - half * 0.2, ground - size, x + half * 0.2, ground), fill=ink)
            crown = [(x - size * 0.6, ground - size * 0.6), (x, ground - size * 2)]
            draw.polygon([*crown, (x + size * 0.6, ground - size * 0.6)], fill=ink)
        elif kind == "blocks":
            for row in range(rng.randint(1, 3)):
                top = ground - size * (row + 1) * 0.7
                draw.rectangle((x - half * 1.6, top, x + half * 1.6, top + size * 0.7), fill=ink)
            draw.rectangle((x - half * 0.5, ground - size * 0.5, x, ground - size * 0.3), spark)
        elif kind == "arches":
            box = (x - size, ground - size * 1.6, x + size, ground + size * 0.4)
            draw.arc(box, 180, 360, fill=ink, width=max(2, round(size * 0.28)))
        else:  # crystals
            facets = [(x - half, ground), (x - half * 0.6, ground - size * 1.2)]
            facets += [(x, ground - size * 1.7), (x + half * 0.7, ground - size * 1.1)]
            draw.polygon([*facets, (x + half, ground)], fill=light)


def _text_sprite(
    text: str,
    max_width: int,
    frame_width: int,
    *,
    max_lines: int,
    size: int,
    fill: Colour,
    shadow: int,
) -> _Sprite:
    """`text` wrapped and centred across the frame on a faint scrim, with a drop shadow."""
    font, lines = fit_text(text, max_width, max_lines=max_lines, start_size=size)
    line_h = line_height(font)
    pad = max(1, line_h // 5)
    layer = Image.new("RGBA", (frame_width, line_h * len(lines) + 2 * pad), (*fill, 0))
    draw = ImageDraw.Draw(layer)
    widest = max((text_width(font, line) for line in lines), default=0)
    left = max(0, round((frame_width - widest) / 2) - 2 * pad)
    draw.rounded_rectangle(
        (left, 0, frame_width - 1 - left, layer.height - 1),
        radius=2 * pad,
        fill=(0, 0, 0, _SCRIM_ALPHA),
    )
    for number, line in enumerate(lines):
        x = (frame_width - text_width(font, line)) / 2
        y = pad + number * line_h
        draw.text((x + shadow, y + shadow), line, font=font, fill=(0, 0, 0, 220))
        draw.text((x, y), line, font=font, fill=(*fill, 255))
    return _Sprite.of(layer, 0, 0)


def _choice_sprites(
    choices: tuple[str, ...],
    max_width: int,
    frame_width: int,
    height: int,
    margin: int,
    accent: Colour,
) -> tuple[_Sprite, ...]:
    """One numbered pill per choice, stacked up from the bottom margin, centred."""
    if not choices:
        return ()
    font = load_font(max(MIN_FONT_SIZE, height // 16))
    line_h = line_height(font)
    pad = max(2, height // 90)
    pill_h = line_h + 2 * pad
    disc = line_h
    gap = max(2, height // 60)
    text_room = max(1, max_width - disc - 4 * pad)
    top = height - margin // 2 - len(choices) * pill_h - (len(choices) - 1) * gap
    sprites = []
    for number, label in enumerate(choices, 1):
        text = " ".join(label.split())
        if text_width(font, text) > text_room:
            text = with_ellipsis(text, font, text_room)
        pill_w = min(max_width, round(disc + 4 * pad + text_width(font, text)))
        layer = Image.new("RGBA", (pill_w, pill_h), (*_PILL, 0))
        draw = ImageDraw.Draw(layer)
        draw.rounded_rectangle(
            (0, 0, pill_w - 1, pill_h - 1), radius=pill_h // 2, fill=(*_PILL, _PILL_ALPHA)
        )
        draw.ellipse((pad, pad, pad + disc - 1, pad + disc - 1), fill=(*accent, 255))
        digit = str(number)
        baseline = pad + line_h * 0.05
        digit_x = pad + (disc - text_width(font, digit)) / 2
        draw.text((digit_x, baseline), digit, font=font, fill=(*_PILL, 255))
        draw.text((disc + 3 * pad, baseline), text, font=font, fill=(*_TEXT, 255))
        y = top + (number - 1) * (pill_h + gap)
        sprites.append(_Sprite.of(layer, (frame_width - pill_w) // 2, y))
    return tuple(sprites)


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
