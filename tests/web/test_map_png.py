"""GET /worlds/{id}/map.png over aiohttp's test client: a PNG of the explored tree; bad
input is 422 with one sentence, an unknown world 404; reads write nothing."""

from __future__ import annotations

import io

from aiohttp.test_utils import TestClient, TestServer
from PIL import Image
from sqlalchemy import func, select

from tests.world.helpers import mint
from web.app import build_app
from world import worldmap
from world.models import Scene


async def scene_count(service) -> int:
    async with service.db.session() as session:
        return await session.scalar(select(func.count()).select_from(Scene))


async def test_map_png_draws_the_tree_and_refuses_bad_input(settings, service):
    await mint(service, "")
    await mint(service, "2")
    before = await scene_count(service)
    async with TestClient(TestServer(build_app(settings, service))) as http:
        response = await http.get("/worlds/default/map.png", params={"depth": "2"})
        assert response.status == 200
        assert response.content_type == "image/png"
        image = Image.open(io.BytesIO(await response.read()))
        around = await http.get("/worlds/default/map.png", params={"path": "2", "depth": "1"})
        assert around.status == 200
        refused = {}
        for name, value in (
            ("depth", "0"),
            ("depth", "7"),
            ("depth", "two"),
            ("path", "01"),
            ("path", "1"),
        ):
            answer = await http.get("/worlds/default/map.png", params={name: value})
            refused[value] = (answer.status, (await answer.json())["detail"])
        unknown = await http.get("/worlds/nowhere/map.png")
        assert unknown.status == 404
        assert (await unknown.json())["detail"] == "There is no world called 'nowhere'."

    async with service.db.session() as session:
        tree = await worldmap.read_tree(session, "default", "", 2)
    plan = worldmap.layout(tree)
    assert image.format == "PNG" and image.size == (plan.width, plan.height)
    image = image.convert("RGB")
    for path, state in (("", "ready"), ("2", "ready"), ("0", "unexplored"), ("2/1", "unexplored")):
        placed = plan.at(path)
        assert image.getpixel((placed.x, placed.y)) == worldmap.COLOURS[worldmap.NodeState(state)]
    assert plan.highlight is None  # nothing is ringed on the web: no channel there

    levels = "A map shows 1 to 6 levels below its branch."
    assert refused == {
        "0": (422, levels),
        "7": (422, levels),
        "two": (422, "depth must be a whole number from 1 to 6."),
        "01": (422, "'01' is not a branch path; use choice numbers joined by '/', like 0/2/1."),
        "1": (422, "Start › 2 is unexplored, so there is no map around it yet."),
    }
    assert await scene_count(service) == before
