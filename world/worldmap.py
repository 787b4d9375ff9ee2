"""The world map: a bounded read of the explored tree around a branch, its layout, its PNG.

It owns three steps, each usable alone (tests sample pixels at the layout's node centres):

- `read_tree`: the focus branch's trail (the root and its last ancestors) plus its
  descendants down to `depth` more levels, read level by level as point lookups on the
  `uq_scenes_world_path` index (`path IN (children of the previous level's ready scenes)`),
  only the columns drawn. At most `MAX_DEPTH` levels and `MAX_NODES` nodes, so the work is
  bounded whatever the size of the world: a level that would pass the cap is left out and
  the picture says so. Choices nobody explored yet appear as their parent's grey children.
- `layout`: pure; nodes to pixel positions (a tidy top-down tree, each leaf one slot).
- `render_png`: pure Pillow drawing of a layout: nodes coloured by status, ready ("instant")
  branches badged, the channel's position outlined, short titles, a legend.
"""

from __future__ import annotations

import enum
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from world import paths
from world.lettering import Font, cut_to_lines, fit_line, load_font, text_width, wrap
from world.models import Scene
from world.types import Status

log = logging.getLogger(__name__)

MIN_DEPTH = 1
MAX_DEPTH = 6
DEFAULT_DEPTH = 3
MAX_NODES = 400  # descendants drawn at most; a full ternary tree fits 5 levels
TRAIL_SHOWN = 4  # the root and the focus's last 3 ancestors; the rest is "… n more"
HIDDEN = Status.HIDDEN.value  # the status of a scene the admins hid
HIDDEN_LABEL = "Removed by the admins"
_LOOKUP_CHUNK = 500  # bind parameters per IN list (well under SQLite's and asyncpg's limits)


class MapRefused(ValueError):
    """A map request that cannot be drawn; the message is one plain sentence."""


class NodeState(enum.StrEnum):
    READY = "ready"
    MAKING = "making"
    FAILED = "failed"
    UNEXPLORED = "unexplored"
    HIDDEN = "hidden"  # removed by the admins (world/moderation.py): open to be made again


@dataclass(frozen=True)
class MapNode:
    path: str
    state: NodeState
    label: str
    on_trail: bool = False  # an ancestor of the focus


@dataclass(frozen=True)
class MapTree:
    """What the map shows: trail (root first), focus, then descendants level by level."""

    world_id: str
    focus: str
    depth: int
    nodes: tuple[MapNode, ...]
    highlight: str | None = None
    trail_hidden: int = 0  # ancestors between the root and the shown ones
    cut_at_level: int | None = None  # the first level left out to stay under MAX_NODES

    def node(self, path: str) -> MapNode:
        return next(n for n in self.nodes if n.path == path)


def check_depth(depth: int) -> int:
    if (
        isinstance(depth, bool)
        or not isinstance(depth, int)
        or not (MIN_DEPTH <= depth <= MAX_DEPTH)
    ):
        raise MapRefused(f"A map shows {MIN_DEPTH} to {MAX_DEPTH} levels below its branch.")
    return depth


# -- the bounded read ---------------------------------------------------------------------


def _state(status: str) -> NodeState:
    return {
        Status.READY.value: NodeState.READY,
        Status.QUEUED.value: NodeState.MAKING,
        Status.FAILED.value: NodeState.FAILED,
        HIDDEN: NodeState.HIDDEN,
    }.get(status, NodeState.UNEXPLORED)


def _choice_label(parent: Any, index: int) -> str:
    choices = parent.choices or []
    if index < len(choices):
        choice = choices[index] or {}
        text = choice.get("short_label") or choice.get("label")
        if text:
            return str(text)
    return f"Choice {index + 1}"


def _label(row: Any, parent: Any | None) -> str:
    if row is not None and row.status == Status.READY.value and row.title:
        return str(row.title)
    if row is not None and row.status == HIDDEN:
        return HIDDEN_LABEL
    if row is not None and row.path == "":
        return "Opening scene"
    index = paths.last_index(row.path) if row is not None else None
    if parent is not None and index is not None:
        return _choice_label(parent, index)
    return "Untitled"


async def _rows(session: AsyncSession, world_id: str, wanted: Sequence[str]) -> dict[str, Any]:
    table = Scene.__table__
    columns = (table.c.path, table.c.status, table.c.title, table.c.choices)
    found: dict[str, Any] = {}
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = list(wanted[start : start + _LOOKUP_CHUNK])
        result = await session.execute(
            select(*columns).where(table.c.world_id == world_id, table.c.path.in_(chunk))
        )
        found.update({row.path: row for row in result})
    return found


async def read_tree(
    session: AsyncSession,
    world_id: str,
    focus: str,
    depth: int,
    *,
    highlight: str | None = None,
    max_nodes: int = MAX_NODES,
) -> MapTree:
    """The explored tree around `focus` (a canonical path); raises MapRefused."""
    check_depth(depth)
    ancestors = paths.ancestors(focus)
    shown = ancestors
    if len(ancestors) > TRAIL_SHOWN:
        shown = [ancestors[0], *ancestors[len(ancestors) - (TRAIL_SHOWN - 1) :]]
    rows = await _rows(session, world_id, [*shown, focus])
    top = rows.get(focus)
    if top is None or top.status == Status.PENDING.value:
        raise MapRefused(
            f"{paths.breadcrumbs(focus)} is unexplored, so there is no map around it yet."
        )
    nodes = [
        MapNode(
            path,
            _state(rows[path].status) if path in rows else NodeState.UNEXPLORED,
            _label(rows.get(path), None) if path in rows else "Untitled",
            on_trail=True,
        )
        for path in shown
    ]
    parent_row = rows.get(paths.parent(focus) or "") if focus else None
    nodes.append(MapNode(focus, _state(top.status), _label(top, parent_row)))
    frontier = [top] if top.status == Status.READY.value else []
    count = 0
    cut_at: int | None = None
    for level in range(1, depth + 1):
        wanted: list[tuple[str, Any]] = []
        for parent in frontier:
            for index in range(len(parent.choices or []) or paths.CHOICES_PER_SCENE):
                wanted.append((paths.child(parent.path, index), parent))
        if not wanted:
            break
        if count + len(wanted) > max_nodes:
            cut_at = level
            break
        found = await _rows(session, world_id, [p for p, _ in wanted])
        frontier = []
        for path, parent in wanted:
            row = found.get(path)
            if row is None or row.status == Status.PENDING.value:
                nodes.append(
                    MapNode(path, NodeState.UNEXPLORED, _choice_label(parent, _last(path)))
                )
                continue
            nodes.append(MapNode(path, _state(row.status), _label(row, parent)))
            if row.status == Status.READY.value:
                frontier.append(row)
        count += len(wanted)
    return MapTree(
        world_id=world_id,
        focus=focus,
        depth=depth,
        nodes=tuple(nodes),
        highlight=highlight,
        trail_hidden=len(ancestors) - len(shown),
        cut_at_level=cut_at,
    )


def _last(path: str) -> int:
    index = paths.last_index(path)
    return 0 if index is None else index


# -- layout (pure) ------------------------------------------------------------------------

MIN_WIDTH = 1000
MAX_WIDTH = 1600
MARGIN = 40
SLOT = 150  # a leaf's preferred width: room for a two-line title
HEADER = 96
TRAIL_ROW = 62
GAP_ROW = 40
ROW = 124
LEGEND = 64
MAX_RADIUS = 18
MIN_RADIUS = 4
RING_GAP = 4  # between a node and the highlight ring
RING_WIDTH = 5
LABEL_MIN_SPAN = 64  # narrower subtrees get no label (the picture stays readable)
TITLE_FONT = 30
LABEL_FONT = 20
TRAIL_FONT = 22
LEGEND_FONT = 20

BACKGROUND = (251, 250, 247)
INK = (32, 33, 36)
MUTED = (95, 99, 104)
EDGE = (150, 154, 160)
EDGE_UNEXPLORED = (205, 208, 213)
RING = (192, 38, 211)
BADGE = (255, 214, 10)
COLOURS: dict[NodeState, tuple[int, int, int]] = {
    NodeState.READY: (46, 158, 91),
    NodeState.MAKING: (59, 130, 246),
    NodeState.FAILED: (214, 69, 69),
    NodeState.UNEXPLORED: (200, 204, 210),
    NodeState.HIDDEN: (75, 85, 99),
}
LEGEND_TEXT: dict[NodeState, str] = {
    NodeState.READY: "ready (badge: instant)",
    NodeState.MAKING: "being made",
    NodeState.FAILED: "failed",
    NodeState.UNEXPLORED: "unexplored choice",
    NodeState.HIDDEN: "removed by the admins",
}


@dataclass(frozen=True)
class PlacedNode:
    node: MapNode
    x: int
    y: int
    r: int
    lines: tuple[str, ...] = ()
    label_beside: bool = False  # trail and focus: one line to the right of the node

    @property
    def label_bottom(self) -> int:
        """Just below the node and the label lines under it (where its edges start)."""
        if self.label_beside or not self.lines:
            return self.y + self.r
        return self.y + self.r + 6 + len(self.lines) * (LABEL_FONT + 4) + 2

    @property
    def badge(self) -> tuple[int, int, int] | None:
        """Centre and radius of the "instant" badge of a ready node big enough for one."""
        if self.node.state is not NodeState.READY or self.r < 8:
            return None
        return (self.x + round(self.r * 0.75), self.y - round(self.r * 0.75), max(4, self.r // 3))


@dataclass(frozen=True)
class MapLayout:
    width: int
    height: int
    nodes: tuple[PlacedNode, ...]
    edges: tuple[tuple[str, str], ...]  # (parent path, child path)
    header: tuple[str, ...]
    highlight: str | None
    gap: tuple[int, int, str] | None = None  # where "… n more" sits on the trail
    legend_y: int = 0
    legend: tuple[tuple[NodeState | None, str], ...] = ()
    _by_path: dict[str, PlacedNode] = field(default_factory=dict, compare=False, repr=False)

    def at(self, path: str) -> PlacedNode:
        if not self._by_path:
            self._by_path.update({p.node.path: p for p in self.nodes})
        return self._by_path[path]

    def ring_radius(self, path: str) -> int:
        """The radius of the middle of the highlight ring around a node."""
        return self.at(path).r + RING_GAP + RING_WIDTH // 2


def font(size: int) -> Font:
    return load_font(size)


def _text_width(text: str, size: int) -> float:
    return text_width(load_font(size), text)


def _fit(text: str, size: int, width: float) -> str:
    """The text, cut with an ellipsis to fit `width` pixels."""
    return fit_line(text, load_font(size), width)


def _wrap(text: str, size: int, width: float, lines: int = 2) -> tuple[str, ...]:
    return tuple(cut_to_lines(wrap(text, load_font(size), width), load_font(size), width, lines))


def layout(tree: MapTree) -> MapLayout:
    """Where every node of `tree` goes, its radius and label lines (pure, deterministic)."""
    focus = tree.focus
    trail = [n for n in tree.nodes if n.on_trail]
    below = [n for n in tree.nodes if not n.on_trail and n.path != focus]
    children: dict[str, list[MapNode]] = {}
    for node in below:
        children.setdefault(paths.parent(node.path) or "", []).append(node)
    leaves: dict[str, int] = {}

    def count(path: str) -> int:
        kids = children.get(path, [])
        leaves[path] = sum(count(k.path) for k in kids) if kids else 1
        return leaves[path]

    total = count(focus)
    legend = _legend_entries(tree)
    wanted = max(2 * MARGIN + total * SLOT, 2 * MARGIN + _legend_width(legend))
    width = max(MIN_WIDTH, min(MAX_WIDTH, wanted))
    slot = (width - 2 * MARGIN) / total
    y = HEADER
    placed: list[PlacedNode] = []
    edges: list[tuple[str, str]] = []
    centre_x = round(MARGIN + total * slot / 2)
    beside_width = width - centre_x - MARGIN - MAX_RADIUS - 12
    gap: tuple[int, int, str] | None = None
    previous: str | None = None
    for index, node in enumerate(trail):
        y += TRAIL_ROW if index else MAX_RADIUS
        line = _fit(node.label, TRAIL_FONT, beside_width)
        placed.append(PlacedNode(node, centre_x, y, MAX_RADIUS, (line,), label_beside=True))
        if previous is not None:
            edges.append((previous, node.path))
        previous = node.path
        if index == 0 and tree.trail_hidden:
            y += GAP_ROW
            gap = (centre_x, y, f"… {tree.trail_hidden} more")
    y += TRAIL_ROW if trail else MAX_RADIUS
    focus_node = tree.node(focus)
    placed.append(
        PlacedNode(
            focus_node,
            centre_x,
            y,
            MAX_RADIUS,
            (_fit(focus_node.label, TRAIL_FONT, beside_width),),
            label_beside=True,
        )
    )
    if previous is not None:
        edges.append((previous, focus))
    focus_y = y

    def place(path: str, left: float, level: int) -> None:
        offset = left
        for kid in children.get(path, []):
            span = leaves[kid.path] * slot
            x = round(offset + span / 2)
            r = max(MIN_RADIUS, min(MAX_RADIUS, round(span * 0.3)))
            lines = _wrap(kid.label, LABEL_FONT, span - 8) if span >= LABEL_MIN_SPAN else ()
            placed.append(PlacedNode(kid, x, focus_y + level * ROW, r, lines))
            edges.append((path, kid.path))
            place(kid.path, offset, level + 1)
            offset += span

    place(focus, MARGIN, 1)
    legend_y = max(p.label_bottom for p in placed) + 24
    height = legend_y + LEGEND
    return MapLayout(
        width=width,
        height=height,
        nodes=tuple(placed),
        edges=tuple(edges),
        header=_header(tree),
        highlight=tree.highlight,
        gap=gap,
        legend_y=legend_y,
        legend=legend,
    )


def _header(tree: MapTree) -> tuple[str, ...]:
    counts = {state: 0 for state in NodeState}
    for node in tree.nodes:
        if not node.on_trail:
            counts[node.state] += 1
    levels = "level" if tree.depth == 1 else "levels"
    first = (
        f"Map of {tree.world_id} around {paths.breadcrumbs(tree.focus)}, {tree.depth} {levels} down"
    )
    parts = [
        f"{counts[NodeState.READY]} ready",
        f"{counts[NodeState.MAKING]} being made",
        f"{counts[NodeState.FAILED]} failed",
        f"{counts[NodeState.UNEXPLORED]} unexplored",
    ]
    if counts[NodeState.HIDDEN]:
        parts.append(f"{counts[NodeState.HIDDEN]} removed")
    second = " · ".join(parts)
    if tree.cut_at_level is not None:
        second += f" · level {tree.cut_at_level} and deeper left out (over {MAX_NODES} branches)"
    return first, second


# -- drawing (pure) -----------------------------------------------------------------------


def _darker(colour: tuple[int, int, int], by: float = 0.7) -> tuple[int, int, int]:
    r, g, b = colour
    return (int(r * by), int(g * by), int(b * by))


def render_png(plan: MapLayout) -> bytes:
    """The map as PNG bytes (RGB, `plan.width` x `plan.height`)."""
    image = Image.new("RGB", (plan.width, plan.height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text(
        (MARGIN, 18),
        _fit(plan.header[0], TITLE_FONT, plan.width - 2 * MARGIN),
        INK,
        font(TITLE_FONT),
    )
    draw.text(
        (MARGIN, 58),
        _fit(plan.header[1], LABEL_FONT, plan.width - 2 * MARGIN),
        MUTED,
        font(LABEL_FONT),
    )
    for parent_path, child_path in plan.edges:
        parent, child = plan.at(parent_path), plan.at(child_path)
        colour = EDGE_UNEXPLORED if child.node.state is NodeState.UNEXPLORED else EDGE
        if parent.x == child.x and parent.label_beside:
            draw.line([(parent.x, parent.y + parent.r), (child.x, child.y - child.r)], colour, 3)
        else:
            start = parent.label_bottom
            mid = (start + child.y - child.r) // 2
            draw.line(
                [
                    (parent.x, start),
                    (parent.x, mid),
                    (child.x, mid),
                    (child.x, child.y - child.r),
                ],
                colour,
                2,
            )
    if plan.gap is not None:
        x, y, text = plan.gap
        for dy in (-10, 0, 10):
            draw.ellipse([x - 3, y + dy - 3, x + 3, y + dy + 3], BACKGROUND, EDGE)
        draw.text((x + MAX_RADIUS + 12, y), text, MUTED, font(LABEL_FONT), anchor="lm")
    for placed in plan.nodes:
        _node(draw, placed, highlighted=placed.node.path == plan.highlight)
    _legend(draw, plan)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def _node(draw: ImageDraw.ImageDraw, placed: PlacedNode, *, highlighted: bool) -> None:
    x, y, r = placed.x, placed.y, placed.r
    colour = COLOURS[placed.node.state]
    if highlighted:
        ring = r + RING_GAP + RING_WIDTH
        draw.ellipse([x - ring, y - ring, x + ring, y + ring], outline=RING, width=RING_WIDTH)
    draw.ellipse([x - r, y - r, x + r, y + r], colour, _darker(colour), 2 if r >= 6 else 1)
    badge = placed.badge
    if badge is not None:
        bx, by, br = badge
        draw.ellipse([bx - br, by - br, bx + br, by + br], BADGE, INK, 1)
    if placed.label_beside:
        draw.text((x + r + 14, y), placed.lines[0], INK, font(TRAIL_FONT), anchor="lm")
        return
    top = y + r + 6
    for index, line in enumerate(placed.lines):
        draw.text((x, top + index * (LABEL_FONT + 4)), line, INK, font(LABEL_FONT), anchor="ma")


def _legend_entries(tree: MapTree) -> tuple[tuple[NodeState | None, str], ...]:
    """Every status (removed ones only when the map has one), then the highlight ring."""
    shown = {n.state for n in tree.nodes}
    states = [s for s in NodeState if s is not NodeState.HIDDEN or s in shown]
    return (*((s, LEGEND_TEXT[s]) for s in states), (None, "this channel is here"))


def _legend_width(entries: Sequence[tuple[NodeState | None, str]]) -> int:
    return sum(2 * 10 + 10 + round(_text_width(t, LEGEND_FONT)) + 30 for _, t in entries)


def _legend(draw: ImageDraw.ImageDraw, plan: MapLayout) -> None:
    y = plan.legend_y + LEGEND // 2
    x = MARGIN
    r = 10
    for state, text in plan.legend:
        if state is None:
            ring = r + 3
            draw.ellipse([x - ring + r, y - ring, x + ring + r, y + ring], outline=RING, width=4)
        else:
            colour = COLOURS[state]
            draw.ellipse([x, y - r, x + 2 * r, y + r], colour, _darker(colour), 2)
            if state is NodeState.READY:
                draw.ellipse([x + 2 * r - 4, y - r - 4, x + 2 * r + 4, y - r + 4], BADGE, INK, 1)
        draw.text((x + 2 * r + 10, y), text, INK, font(LEGEND_FONT), anchor="lm")
        x += 2 * r + 10 + round(_text_width(text, LEGEND_FONT)) + 30


def draw_map(tree: MapTree) -> bytes:
    """Layout and PNG of a tree (CPU work: run it in a thread)."""
    return render_png(layout(tree))
