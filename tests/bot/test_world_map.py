"""/world map in SimCord: any member gets an ephemeral map.png of the explored tree.

The picture is decoded with Pillow and sampled at the node centres of the same layout the
service drew (world/worldmap.py), so the colours a member sees are checked: ready green,
being made blue, failed red, unexplored grey, the channel's position ringed. With
SHARED_WORLD_UPDATE_SCREENSHOT=1 the first map is also saved as docs/map.png (the README's).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image
from sqlalchemy import func, select, update

from tests.fixtures.discord import Server, mint_finished, refusals
from tests.fixtures.world import wait_until_settled
from world import scenes, worldmap
from world.models import Scene

PROJECT = Path(__file__).resolve().parents[2]
SCREENSHOT = PROJECT / "docs" / "map.png"
UPDATE_SCREENSHOT = os.environ.get("SHARED_WORLD_UPDATE_SCREENSHOT") == "1"


async def _set_status(service, path: str, status: str, parent_label: str) -> None:
    async with service.db.transaction() as session:
        await scenes.insert_placeholder(session, "default", path, parent_label)
        await session.execute(
            update(Scene)
            .where(Scene.world_id == "default", Scene.path == path)
            .values(status=status, failure_code="storage" if status == "failed" else None)
        )


async def _expected_layout(service, focus: str, depth: int, highlight: str | None):
    async with service.db.session() as session:
        tree = await worldmap.read_tree(session, "default", focus, depth, highlight=highlight)
    return worldmap.layout(tree)


async def _scene_count(service) -> int:
    async with service.db.session() as session:
        return await session.scalar(select(func.count()).select_from(Scene))


async def _png_of(result) -> Image.Image:
    assert result.ephemeral
    [attachment] = result.response.attachments
    assert attachment.filename == "map.png"
    data = await attachment.read()
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    return image.convert("RGB")


def _assert_node(image: Image.Image, plan, path: str, state: worldmap.NodeState) -> None:
    placed = plan.at(path)
    assert image.getpixel((placed.x, placed.y)) == worldmap.COLOURS[state], path


def _ringed(image: Image.Image, plan, path: str) -> bool:
    placed = plan.at(path)
    ring = plan.ring_radius(path)
    points = [
        (placed.x - ring, placed.y),
        (placed.x, placed.y + ring),
        (placed.x + ring, placed.y),
    ]
    return all(image.getpixel(p) == worldmap.RING for p in points)


async def test_any_member_gets_a_map_of_the_explored_tree(world_env, world_service):
    server = Server(world_env, "alpha")
    await server.admin.slash(server.channel, "adventure start")
    await mint_finished(world_env, world_service, "default", "")
    for path in ("1", "1/2"):
        await world_service.claim("default", path, None, "someone")
        await wait_until_settled(world_service, "default", path)
    await _set_status(world_service, "0", "failed", "first choice")
    await _set_status(world_service, "2", "queued", "third choice")
    member = server.member()
    assert "world map" in member.available_commands(server.channel)

    shown = await member.slash(server.channel, "world map")

    image = await _png_of(shown)
    plan = await _expected_layout(world_service, "", worldmap.DEFAULT_DEPTH, "")
    assert image.size == (plan.width, plan.height)
    assert 1000 <= plan.width <= 1600
    assert "Start" in shown.response.content and "ringed" in shown.response.content
    _assert_node(image, plan, "", worldmap.NodeState.READY)
    _assert_node(image, plan, "1", worldmap.NodeState.READY)
    _assert_node(image, plan, "1/2", worldmap.NodeState.READY)
    _assert_node(image, plan, "0", worldmap.NodeState.FAILED)
    _assert_node(image, plan, "2", worldmap.NodeState.MAKING)
    for unexplored in ("1/0", "1/1", "1/2/0", "1/2/1", "1/2/2"):
        _assert_node(image, plan, unexplored, worldmap.NodeState.UNEXPLORED)
    assert {p.node.path for p in plan.nodes} == {
        "", "0", "1", "2", "1/0", "1/1", "1/2", "1/2/0", "1/2/1", "1/2/2",
    }  # fmt: skip
    badge = plan.at("1").badge
    assert badge is not None and image.getpixel(badge[:2]) == worldmap.BADGE  # instant
    assert plan.at("0").badge is None
    assert _ringed(image, plan, "") and not _ringed(image, plan, "1")
    if UPDATE_SCREENSHOT:
        SCREENSHOT.parent.mkdir(exist_ok=True)
        image.save(SCREENSHOT)

    # Moved on to 2 › 3: a map around it, one level down, rings the channel's branch.
    await server.admin.slash(server.channel, "adventure goto", path="1/2")
    around = await member.slash(server.channel, "world map", path="1/2", depth=1)
    image = await _png_of(around)
    plan = await _expected_layout(world_service, "1/2", 1, "1/2")
    assert image.size == (plan.width, plan.height)
    assert [p.node.path for p in plan.nodes] == ["", "1", "1/2", "1/2/0", "1/2/1", "1/2/2"]
    assert _ringed(image, plan, "1/2") and not _ringed(image, plan, "")
    _assert_node(image, plan, "1", worldmap.NodeState.READY)


async def test_bad_map_requests_get_one_sentence_and_change_nothing(world_env, world_service):
    server = Server(world_env, "alpha")
    await server.admin.slash(server.channel, "adventure start")
    await mint_finished(world_env, world_service, "default", "")
    member = server.member()
    before = await _scene_count(world_service)

    bad_choice = await member.slash(server.channel, "world map", path="0/7")
    too_deep = await member.slash(server.channel, "world map", depth=9)
    unexplored = await member.slash(server.channel, "world map", path="2")

    for refused in (bad_choice, too_deep, unexplored):
        assert refused.ephemeral and not refused.response.attachments
    assert "Choice 7 does not exist" in bad_choice.response.content
    assert too_deep.response.content == "A map shows 1 to 6 levels below its branch."
    assert unexplored.response.content == (
        "Start › 3 is unexplored, so there is no map around it yet."
    )
    assert refusals(world_env) == [
        bad_choice.response.content,
        too_deep.response.content,
        unexplored.response.content,
    ]
    assert await _scene_count(world_service) == before
