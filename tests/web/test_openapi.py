"""/openapi.json is a valid OpenAPI 3.1 document and lists every route of the world API."""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from web import api, maps, openapi
from web.app import build_app


def api_routes() -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route web/api.py, web/maps.py and web/openapi.py add."""
    app = web.Application()
    api.install(app)
    maps.install(app)
    openapi.install(app)
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical  # type: ignore[union-attr]
        path = path.replace("{world_id}", "{worldId}")
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)
        routes.add((route.method.lower(), path))
    return routes


async def test_openapi_document_is_valid_3_1_and_lists_every_route(settings, service):
    async with TestClient(TestServer(build_app(settings, service))) as http:
        response = await http.get("/openapi.json")
        assert response.status == 200
        document = await response.json()
    assert document["openapi"].startswith("3.1")
    validate(document)
    listed = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert listed == api_routes()
    assert len(listed) == 9
