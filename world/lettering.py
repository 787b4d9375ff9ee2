"""Lettering: text fitted into pixels with Pillow's default font, for the offline clips'
cards (world/media.py) and the world map (world/worldmap.py). Pure functions."""

from __future__ import annotations

from functools import lru_cache

from PIL import ImageFont

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
ELLIPSIS = "…"
MIN_FONT_SIZE = 8


@lru_cache(maxsize=32)
def load_font(size: int) -> Font:
    """Pillow's default font at `size` pixels (loaded once per size)."""
    return ImageFont.load_default(size=size)


def text_width(font: Font, text: str) -> float:
    return font.getlength(text)


def line_height(font: Font) -> int:
    _left, top, _right, bottom = font.getbbox("Ag")
    return int((bottom - top) * 1.3) + 1


def fit_text(
    text: str, max_width: int, *, max_lines: int, start_size: int
) -> tuple[Font, list[str]]:
    """Wrap `text` to `max_width`, shrinking the font until it fits in `max_lines`.

    At the smallest size the text is cut after `max_lines` lines with an ellipsis.
    """
    size = start_size
    while True:
        font = load_font(size)
        lines = wrap(text, font, max_width)
        if len(lines) <= max_lines or size <= MIN_FONT_SIZE:
            break
        size = max(MIN_FONT_SIZE, size - max(1, size // 8))
    return font, cut_to_lines(lines, font, max_width, max_lines)


def cut_to_lines(lines: list[str], font: Font, max_width: float, max_lines: int) -> list[str]:
    """The first `max_lines` lines, the last ending in an ellipsis if any were left out."""
    if len(lines) <= max_lines:
        return lines
    kept = lines[:max_lines]
    kept[-1] = with_ellipsis(kept[-1], font, max_width)
    return kept


def fit_line(text: str, font: Font, max_width: float) -> str:
    """The text as it is if it fits `max_width`, else cut with an ellipsis."""
    return text if text_width(font, text) <= max_width else with_ellipsis(text, font, max_width)


def with_ellipsis(line: str, font: Font, max_width: float) -> str:
    candidate = line.rstrip()
    while candidate and text_width(font, candidate + ELLIPSIS) > max_width:
        candidate = candidate[:-1].rstrip()
    return candidate + ELLIPSIS


def wrap(text: str, font: Font, max_width: float) -> list[str]:
    """Greedy word wrap; words wider than a line are broken between characters."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if text_width(font, candidate) <= max_width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = ""
        while text_width(font, word) > max_width and len(word) > 1:
            cut = len(word) - 1
            while cut > 1 and text_width(font, word[:cut]) > max_width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    return lines
