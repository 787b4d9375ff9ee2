"""world/worldmap.py: the bounded read on real SQLite and PostgreSQL, the layout, the PNG.

The read is checked on a seeded full ternary tree (what it returns, the node cap, the
collapsed trail of a deep branch); the drawing by decoding the PNG with Pillow and sampling
the colours at the layout's node centres, badges and rings.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from tests.fixtures.world import make_settings, start_service
from world import paths, worldmap
from world.models import Scene, utcnow
from world.service import InvalidBranch, WorldService
from world.worldmap import MapNode, MapRefused, MapTree, NodeState


def full_tree(levels: int) -> list[str]:
    out, level = [], [""]
    for _ in range(levels + 1):
        out += level
        level = [c for p in level for c in paths.children(p)]
    return out


def scene_row(path: str, status: str = "ready") -> dict[str, Any]:
    now = utcnow()
    return {
        "world_id": "default",
        "path": path,
        "parent_path": paths.parent(path),
        "depth": paths.depth(path),
        "choice_index": paths.last_index(path),
        "status": status,
        "title": f"Scene {paths.breadcrumbs(path)}" if status == "ready" else None,
        "choices": [{"label": f"Go {i}", "short_label": f"Go {i} ({path})"} for i in range(3)]
        if status == "ready"
        else None,
        "progress": 0,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


async def seeded(settings, rows: list[dict[str, Any]]) -> WorldService:
    service = await start_service(settings, run_watchdog=False)
    async with service.db.engine.begin() as connection:
        await connection.execute(Scene.__table__.insert(), rows)
    return service


async def read(service: WorldService, focus: str, depth: int, **kwargs: Any) -> MapTree:
    async with service.db.session() as session:
        return await worldmap.read_tree(session, "default", focus, depth, **kwargs)


async def check_bounded_read(service: WorldService) -> None:
    tree = await read(service, "1", 2, highlight="1/0")
    assert [n.path for n in tree.nodes if n.on_trail] == [""]
    assert [n.path for n in tree.nodes] == [
        "", "1", "1/0", "1/1", "1/2",
        "1/0/0", "1/0/1", "1/0/2", "1/1/0", "1/1/1", "1/1/2", "1/2/0", "1/2/1", "1/2/2",
    ]  # fmt: skip
    assert all(n.state is NodeState.READY for n in tree.nodes)
    assert tree.node("1/0").label == "Scene Start › 2 › 1"
    assert tree.cut_at_level is None and tree.trail_hidden == 0

    # Past the level 4 leaves (seeded to depth 4): unexplored choices, labelled from the parent.
    edge = await read(service, "0/0/0", 2)
    assert [n.state for n in edge.nodes if paths.depth(n.path) == 4] == [NodeState.READY] * 3
    fringe = [n for n in edge.nodes if paths.depth(n.path) == 5]
    assert len(fringe) == 9 and all(n.state is NodeState.UNEXPLORED for n in fringe)
    assert edge.node("0/0/0/0/2").label == "Go 2 (0/0/0/0)"

    capped = await read(service, "", 4, max_nodes=20)  # 3 + 9 fit; 27 more would not
    assert len([n for n in capped.nodes if n.path]) == 12 and capped.cut_at_level == 3

    deep = await read(service, "2/1/0/2", 1)
    assert [n.path for n in deep.nodes if n.on_trail] == ["", "2", "2/1", "2/1/0"]
    assert deep.trail_hidden == 0 and len(deep.nodes) == 5 + 3

    with pytest.raises(MapRefused, match="unexplored"):
        await read(service, "0/0/0/0/1", 1)
    with pytest.raises(MapRefused, match="1 to 6 levels"):
        await read(service, "", 7)


async def test_the_read_is_bounded_and_returns_the_tree_around_a_branch(tmp_path):
    service = await seeded(make_settings(tmp_path), [scene_row(p) for p in full_tree(4)])
    try:
        await check_bounded_read(service)
    finally:
        await service.close()


async def test_the_read_on_postgresql(tmp_path, postgres_database):
    settings = make_settings(tmp_path, postgres_database)
    service = await seeded(settings, [scene_row(p) for p in full_tree(4)])
    try:
        await check_bounded_read(service)
    finally:
        await service.close()


async def test_a_deep_trail_is_collapsed_and_the_facade_refuses_in_sentences(tmp_path):
    trail = ["", "0", "0/1", "0/1/2", "0/1/2/0", "0/1/2/0/1", "0/1/2/0/1/2"]
    service = await seeded(make_settings(tmp_path), [scene_row(p) for p in trail])
    try:
        tree = await read(service, trail[-1], 1)
        assert [n.path for n in tree.nodes if n.on_trail] == ["", *trail[3:6]]
        assert tree.trail_hidden == 2
        plan = worldmap.layout(tree)
        assert plan.gap is not None and plan.gap[2] == "… 2 more"
        png = await service.world_map("default", trail[-1], 1, highlight=trail[-1])
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and image.size == (plan.width, plan.height)
        for bad, sentence in (
            ("0/9", "Choice 9 does not exist"),
            ("1", "is unexplored, so there is no map around it yet"),
        ):
            with pytest.raises(InvalidBranch, match=sentence):
                await service.world_map("default", bad, 2)
        with pytest.raises(InvalidBranch, match="A map shows 1 to 6 levels"):
            await service.world_map("default", "", 0)
    finally:
        await service.close()


def sample_tree() -> MapTree:
    nodes = [
        MapNode("", NodeState.READY, "The Nexus Gate Awakens", on_trail=True),
        MapNode("1", NodeState.READY, "Storm over the glass desert"),
        MapNode("1/0", NodeState.READY, "Follow the lantern"),
        MapNode("1/1", NodeState.MAKING, "Climb the bell tower"),
        MapNode("1/2", NodeState.FAILED, "Bargain with the tide"),
        MapNode("1/0/0", NodeState.UNEXPLORED, "Hide in the bazaar"),
        MapNode("1/0/1", NodeState.UNEXPLORED, "Decode the mirror"),
        MapNode("1/0/2", NodeState.UNEXPLORED, "Shout for allies"),
    ]
    return MapTree("default", "1", 2, tuple(nodes), highlight="1/0")


def test_layout_and_render_colour_each_node_by_status():
    tree = sample_tree()
    plan = worldmap.layout(tree)
    image = Image.open(io.BytesIO(worldmap.render_png(plan)))
    assert image.format == "PNG" and image.size == (plan.width, plan.height)
    assert worldmap.MIN_WIDTH <= plan.width <= worldmap.MAX_WIDTH
    image = image.convert("RGB")
    for node in tree.nodes:
        placed = plan.at(node.path)
        assert image.getpixel((placed.x, placed.y)) == worldmap.COLOURS[node.state], node.path
        assert placed.r >= 8  # big enough to see at Discord's preview size (about half)
    # Ready branches carry the "instant" badge; the channel's branch is ringed.
    for path in ("", "1", "1/0"):
        badge = plan.at(path).badge
        assert badge is not None and image.getpixel(badge[:2]) == worldmap.BADGE
    assert plan.at("1/1").badge is None and plan.at("1/2").badge is None
    ring = plan.ring_radius("1/0")
    x, y = plan.at("1/0").x, plan.at("1/0").y
    assert image.getpixel((x - ring, y)) == worldmap.RING
    assert image.getpixel((x + ring, y)) == worldmap.RING
    x, y = plan.at("1/1").x, plan.at("1/1").y
    assert image.getpixel((x + plan.ring_radius("1/1"), y)) != worldmap.RING
    # Children sit below their parent, left to right in choice order; every node is labelled.
    row = [plan.at(f"1/{i}") for i in range(3)]
    assert row[0].x < row[1].x < row[2].x and row[0].y > plan.at("1").y
    assert all(p.lines for p in plan.nodes)
    # Counted from the focus down (the trail above it is always ready).
    assert plan.header[1] == "2 ready · 1 being made · 1 failed · 3 unexplored"
    # The legend shows every status colour ("removed" only on a map that has one).
    legend = image.crop((0, plan.legend_y, plan.width, plan.height))
    colours = {colour for _, colour in legend.getcolors(maxcolors=1 << 16)}
    shown = {c for state, c in worldmap.COLOURS.items() if state is not NodeState.HIDDEN}
    assert shown | {worldmap.RING, worldmap.BADGE} <= colours
    assert worldmap.COLOURS[NodeState.HIDDEN] not in colours


def test_a_wide_level_shrinks_nodes_drops_crowded_labels_and_stays_within_the_width():
    nodes = [MapNode("", NodeState.READY, "Opening")]
    for path in full_tree(4)[1:]:
        nodes.append(MapNode(path, NodeState.READY, f"A long title for {path}"))
    plan = worldmap.layout(MapTree("default", "", 4, tuple(nodes)))
    assert plan.width == worldmap.MAX_WIDTH
    leaves = [p for p in plan.nodes if paths.depth(p.node.path) == 4]
    assert len(leaves) == 81 and not any(p.lines for p in leaves)
    assert all(worldmap.MIN_RADIUS <= p.r < worldmap.MAX_RADIUS for p in leaves)
    assert all(p.x - p.r > 0 and p.x + p.r < plan.width for p in plan.nodes)
    assert plan.at("1").lines  # the upper levels keep their titles
    xs = [p.x for p in leaves]
    assert xs == sorted(xs) and len(set(xs)) == 81


async def test_a_hidden_scene_shows_as_removed_without_its_title_or_branches(tmp_path):
    rows = [scene_row(p) for p in full_tree(2)]
    for row in rows:
        if row["path"] == "1":
            row["status"] = "hidden"  # as world/moderation.py leaves it; the title stays here
    service = await seeded(make_settings(tmp_path), rows)
    try:
        tree = await read(service, "", 2)
        hidden = tree.node("1")
        assert hidden.state is NodeState.HIDDEN and hidden.label == "Removed by the admins"
        assert not [n for n in tree.nodes if n.path.startswith("1/")]
        plan = worldmap.layout(tree)
        assert (NodeState.HIDDEN, "removed by the admins") in plan.legend
        assert plan.header[1].endswith("· 1 removed")
        image = Image.open(io.BytesIO(worldmap.render_png(plan))).convert("RGB")
        placed = plan.at("1")
        assert image.getpixel((placed.x, placed.y)) == worldmap.COLOURS[NodeState.HIDDEN]
    finally:
        await service.close()
