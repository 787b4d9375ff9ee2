"""The original web app's world API (seed-behaviour.md §9) over aiohttp's test client.

Contract: each endpoint's JSON has exactly the original's field names and types. Reads
create no rows; malformed input is refused (422) and changes nothing; claims through HTTP
and through the WorldService share one render; a recognisable fake key sent in a claim
appears in no log, row, file or response.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from tests.bot.keyed_provider import KeyedTestProvider
from tests.fixtures.discord import (  # noqa: F401  (fixtures are found by name)
    Server,
    discord_settings,
    mint_finished,
    simcord_bot,
    simcord_waits,
    world_env,
    world_providers,
    world_service,
)
from tests.fixtures.world import (
    make_settings,
    offline_jobs_dir,
    renders_started,
    start_service,
    wait_until_settled,
)
from tests.world.helpers import mint
from web.api import KEY_REQUIRED
from web.app import build_app
from web.limits import ClaimRateLimit
from web.openapi import SCHEMAS
from world.models import Scene
from world.providers.base import ProviderError
from world.service import WorldService
from world.settings import Settings
from world.types import Credentials

SCENE_KEYS = {
    "worldId",
    "path",
    "depth",
    "status",
    "scenarioDisplay",
    "soraPrompt",
    "triggerChoice",
    "choices",
    "choicesShort",
    "choicesStatus",
    "childrenPaths",
    "videoUrl",
    "posterUrl",
    "failureCode",
    "failureDetail",
    "queuedSince",
    "updatedAt",
    "progress",
    "progressUpdatedAt",
    "stateSummary",
}
WORLD_KEYS = {"worldId", "basePrompt", "plannerModel", "soraModel", "videoSize"}
METRICS_KEYS = {
    "worldId",
    "sceneCount",
    "readyCount",
    "queuedCount",
    "failedCount",
    "storageBytes",
    "successRate",
}
STATUSES = {"pending", "queued", "ready", "failed"}


def check_schema(name: str, body: Any) -> None:
    """`body` against the OpenAPI document's schema `name` (additionalProperties false)."""
    jsonschema.validate(
        body, {"$ref": f"#/components/schemas/{name}", "components": {"schemas": SCHEMAS}}
    )


def check_scene(body: dict[str, Any]) -> None:
    assert set(body) == SCENE_KEYS
    check_schema("Scene", body)
    assert isinstance(body["worldId"], str) and isinstance(body["path"], str)
    assert isinstance(body["depth"], int) and isinstance(body["progress"], int)
    assert body["status"] in STATUSES
    assert len(body["choicesStatus"]) == 3 and set(body["choicesStatus"]) <= STATUSES
    assert len(body["childrenPaths"]) == 3
    for key in ("choices", "choicesShort"):
        assert isinstance(body[key], list) and all(isinstance(c, str) for c in body[key])


@pytest.fixture
async def client(settings: Settings, service: WorldService) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(settings, service))) as http:
        yield http


async def scene_rows(service: WorldService) -> int:
    async with service.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Scene)) or 0)


async def until_settled(http: TestClient, path: str, world: str = "default") -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            response = await http.get(f"/worlds/{world}/scenes", params={"path": path})
            body = await response.json()
            if body["status"] != "queued":
                return body
            await asyncio.sleep(0.05)


# -- contract ------------------------------------------------------------------------


async def test_each_endpoint_has_the_originals_fields_and_types(client, service):
    response = await client.get("/health")
    assert response.status == 200 and await response.json() == {"status": "ok"}

    response = await client.get("/worlds/default")
    world = await response.json()
    assert response.status == 200 and set(world) == WORLD_KEYS
    check_schema("World", world)
    assert world["worldId"] == "default" and all(isinstance(v, str) for v in world.values())

    response = await client.get("/worlds/default/scenes", params={"path": ""})
    pending = await response.json()
    assert response.status == 200
    check_scene(pending)
    assert pending["status"] == "pending" and pending["choices"] == []
    assert pending["choicesStatus"] == ["pending"] * 3
    assert pending["childrenPaths"] == ["0", "1", "2"]
    assert pending["videoUrl"] is None and pending["soraPrompt"] is None

    response = await client.post("/worlds/default/scenes", json={"path": ""})
    claimed = await response.json()
    assert response.status == 200
    check_scene(claimed)
    assert claimed["status"] == "queued" and isinstance(claimed["queuedSince"], str)

    ready = await until_settled(client, "")
    check_scene(ready)
    assert ready["status"] == "ready" and ready["progress"] == 100
    assert len(ready["choices"]) == 3 and len(ready["choicesShort"]) == 3
    assert isinstance(ready["scenarioDisplay"], str) and isinstance(ready["videoUrl"], str)
    assert ready["queuedSince"] is None and ready["failureDetail"] is None
    clip = await client.get(ready["videoUrl"])  # local store: served under /assets/
    assert clip.status == 200 and (await clip.read())[4:8] == b"ftyp"
    poster = await client.get(ready["posterUrl"])  # and its poster beside it
    assert poster.status == 200 and (await poster.read())[:8] == b"\x89PNG\r\n\x1a\n"

    child = await (await client.get("/worlds/default/scenes", params={"path": "2"})).json()
    check_scene(child)
    assert child["depth"] == 1 and child["triggerChoice"] == ready["choices"][2]
    assert child["childrenPaths"] == ["2/0", "2/1", "2/2"]

    response = await client.get("/worlds/default/metrics")
    metrics = await response.json()
    assert set(metrics) == METRICS_KEYS
    check_schema("Metrics", metrics)
    assert metrics["readyCount"] == 1 and metrics["sceneCount"] == 1
    assert metrics["successRate"] == 1.0 and metrics["storageBytes"] > 0
    assert all(isinstance(metrics[k], int) for k in METRICS_KEYS - {"worldId", "successRate"})


async def test_the_trail_gives_each_steps_title_and_writes_nothing(client, service):
    await mint(service, "")
    rows = await scene_rows(service)
    response = await client.get("/worlds/default/trail", params={"path": "1/2"})
    body = await response.json()
    assert response.status == 200
    check_schema("Trail", body)
    opening = await service.view("default", "")
    assert body["steps"] == [
        {"path": "", "title": opening.title},
        {"path": "1", "title": None},
        {"path": "1/2", "title": None},
    ]
    bad = await client.get("/worlds/default/trail", params={"path": "1//2"})
    assert bad.status == 422 and (await bad.json())["detail"]
    assert (await client.get("/worlds/nowhere/trail")).status == 404
    assert await scene_rows(service) == rows


async def test_every_configured_world_and_unknown_worlds_are_404(tmp_path):
    settings = make_settings(tmp_path)
    second = replace(settings.worlds[0], id="second", base_prompt="A lighthouse at dusk.")
    settings = replace(settings, worlds=(settings.worlds[0], second))
    service = await start_service(settings)
    try:
        async with TestClient(TestServer(build_app(settings, service))) as http:
            body = await (await http.get("/worlds/second")).json()
            assert body["worldId"] == "second" and body["basePrompt"] == "A lighthouse at dusk."
            scene = await (await http.get("/worlds/second/scenes")).json()
            assert scene["worldId"] == "second"
            for method, url, payload in [
                ("GET", "/worlds/nowhere", None),
                ("GET", "/worlds/nowhere/scenes?path=", None),
                ("POST", "/worlds/nowhere/scenes", {"path": ""}),
                ("POST", "/worlds/nowhere/scenes/0/retry", {}),
                ("GET", "/worlds/nowhere/metrics", None),
            ]:
                response = await http.request(method, url, json=payload)
                assert response.status == 404, url
                detail = (await response.json())["detail"]
                assert isinstance(detail, str) and detail.endswith(".")
            assert await scene_rows(service) == 0
    finally:
        await service.close()


# -- reads never write; malformed input changes nothing ------------------------------


async def test_reads_create_no_rows(client, service):
    for path in ["", "0", "2/1"]:
        await client.get("/worlds/default/scenes", params={"path": path})
    assert await scene_rows(service) == 0
    await mint(service, "")
    before = await scene_rows(service)
    for path in ["0", "1", "2", "1/2", "0/0/0", ""]:
        response = await client.get("/worlds/default/scenes", params={"path": path})
        assert response.status in (200, 404)
    await client.get("/worlds/default/metrics")
    await client.get("/worlds/default")
    unreachable = await client.get("/worlds/default/scenes", params={"path": "1/2"})
    assert unreachable.status == 404 and "cannot be reached" in (await unreachable.json())["detail"]
    assert await scene_rows(service) == before == 1


@pytest.mark.parametrize("path", ["abc", "0//1", "00", "3", "0/", "/0", "-1", "0/" * 80 + "0"])
async def test_malformed_paths_are_422_and_change_nothing(client, service, path):
    await mint(service, "")
    before = await scene_rows(service)
    renders = renders_started(service.settings)
    get = await client.get("/worlds/default/scenes", params={"path": path})
    post = await client.post("/worlds/default/scenes", json={"path": path, "apiKey": "x"})
    for response in (get, post):
        assert response.status == 422
        detail = (await response.json())["detail"]
        assert isinstance(detail, str) and detail.endswith(".")
    if path and not path.startswith("/") and not path.endswith("/") and "//" not in path:
        retry = await client.post(f"/worlds/default/scenes/{path}/retry", json={})
        assert retry.status == 422
    assert await scene_rows(service) == before
    assert renders_started(service.settings) == renders


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"path": 1}', b"{}", b'{"path": "", "apiKey": 5}', b"\xff\xfe"],
)
async def test_malformed_bodies_are_422_and_change_nothing(client, service, body):
    response = await client.post(
        "/worlds/default/scenes", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 422
    assert isinstance((await response.json())["detail"], str)
    assert await scene_rows(service) == 0


async def test_bodies_over_the_limit_are_413(client, service):
    big = {"path": "", "apiKey": "k" * 20_000}
    response = await client.post("/worlds/default/scenes", json=big)
    assert response.status == 413
    assert "larger than 16384 bytes" in (await response.json())["detail"]

    async def chunks():  # no Content-Length: cut off while reading
        yield b'{"path": "", "pad": "'
        for _ in range(40):
            yield b"x" * 1024
        yield b'"}'

    response = await client.post("/worlds/default/scenes", data=chunks())
    assert response.status == 413
    assert await scene_rows(service) == 0


async def test_claims_are_rate_limited_per_address(tmp_path):
    settings = make_settings(tmp_path, http={"claims_per_minute_per_ip": 2})
    service = await start_service(settings)
    try:
        async with TestClient(TestServer(build_app(settings, service))) as http:
            for _ in range(2):
                response = await http.post("/worlds/default/scenes", json={"path": ""})
                assert response.status == 200
            response = await http.post("/worlds/default/scenes/0/retry", json={})
            assert response.status == 429
            assert 1 <= int(response.headers["Retry-After"]) <= 60
            assert "Too many claims" in (await response.json())["detail"]
            assert (await http.get("/worlds/default/scenes")).status == 200  # reads are free
            await wait_until_settled(service, "default", "")
    finally:
        await service.close()


async def test_a_member_cap_applies_to_each_address_and_is_429_before_any_render(tmp_path):
    settings = make_settings(
        tmp_path,
        limits={"member_concurrent_mints": 1},
        providers={"offline_render_seconds": 2.0},
    )
    service = await start_service(settings)
    try:
        await mint(service, "")
        async with TestClient(TestServer(build_app(settings, service))) as http:
            first = await http.post("/worlds/default/scenes", json={"path": "0"})
            assert first.status == 200 and (await first.json())["status"] == "queued"
            async with asyncio.timeout(10):  # the opening scene's render and branch 0's
                while renders_started(settings) < 2:
                    await asyncio.sleep(0.02)
            rows = await scene_rows(service)
            second = await http.post("/worlds/default/scenes", json={"path": "1"})
            assert second.status == 429
            assert "when one of them finishes" in (await second.json())["detail"]
            assert (renders_started(settings), await scene_rows(service)) == (2, rows)
            # another member (a Discord one here) is not held back by this address's mint
            other = await service.claim("default", "2", None, "member-2")
            assert other.outcome.value == "queued"
            for path in ("0", "2"):
                await wait_until_settled(service, "default", path)
    finally:
        await service.close()


def test_a_full_rate_limit_table_forgets_the_least_recently_seen_address():
    now = [0.0]
    limit = ClaimRateLimit(1, clock=lambda: now[0], max_clients=2)
    assert limit.check("a") is None and limit.check("b") is None
    now[0] = 10.0
    assert limit.check("a") == 50.0  # refused, and seen just now
    assert limit.check("c") is None  # the table is full: "b" goes, not the busy "a"
    assert limit.check("a") == 50.0, "a busy address keeps its window"
    assert limit.check("b") is None  # forgotten, so it starts afresh (and "c" goes)


# -- headers -------------------------------------------------------------------------


async def test_no_cors_by_default(client):
    response = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = await client.options(
        "/worlds/default/scenes",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


async def test_cors_for_configured_origins(tmp_path):
    settings = make_settings(
        tmp_path, http={"cors_origins": "https://play.example, https://b.example"}
    )
    service = await start_service(settings)
    try:
        async with TestClient(TestServer(build_app(settings, service))) as http:
            ok = await http.get("/worlds/default", headers={"Origin": "https://play.example"})
            assert ok.headers["Access-Control-Allow-Origin"] == "https://play.example"
            assert "Origin" in ok.headers.getall("Vary")
            other = await http.get("/worlds/default", headers={"Origin": "https://evil.example"})
            assert "Access-Control-Allow-Origin" not in other.headers
            preflight = await http.options(
                "/worlds/default/scenes",
                headers={"Origin": "https://b.example", "Access-Control-Request-Method": "POST"},
            )
            assert preflight.status == 204
            assert preflight.headers["Access-Control-Allow-Origin"] == "https://b.example"
            assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    finally:
        await service.close()


async def test_security_headers_on_every_response(client, service):
    await mint(service, "")
    view = await service.view("default", "")
    responses = [
        await client.get("/health"),
        await client.get("/worlds/default/scenes?path=0"),
        await client.get("/worlds/nowhere"),
        await client.get("/worlds/default/scenes?path=abc"),
        await client.get("/no/such/route"),
        await client.put("/worlds/default/scenes"),
        await client.get("/openapi.json"),
        await client.get(f"/assets/{view.video_key}"),
        await client.post("/worlds/default/scenes", data=b"x" * 20_000),
    ]
    for response in responses:
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff", response.url
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert [r.status for r in responses] == [200, 200, 404, 422, 404, 405, 200, 200, 413]
    assert (await responses[4].json()) == {"detail": "Not Found"}


# -- one render, shared branches -----------------------------------------------------


async def test_http_claim_and_service_claim_on_one_branch_give_one_render(client, service):
    await mint(service, "")
    before = renders_started(service.settings)
    http_claim, service_claim = await asyncio.gather(
        client.post("/worlds/default/scenes", json={"path": "1"}),
        service.claim("default", "1", None, "member-1"),
    )
    assert http_claim.status == 200
    assert (await http_claim.json())["status"] in ("queued", "ready")
    assert service_claim.outcome.value in ("queued", "ready")
    await wait_until_settled(service, "default", "1")
    again = await client.post("/worlds/default/scenes", json={"path": "1"})
    assert (await again.json())["status"] == "ready"
    retry = await client.post("/worlds/default/scenes/1/retry", json={})
    assert retry.status == 200 and (await retry.json())["status"] == "ready"
    assert renders_started(service.settings) - before == 1


async def test_a_branch_minted_through_another_front_door_plays_instantly(client, service):
    await mint(service, "")
    await mint(service, "0")  # as the bot does: service.claim from another front door
    renders = renders_started(service.settings)
    root = await (await client.get("/worlds/default/scenes")).json()
    assert root["choicesStatus"] == ["ready", "pending", "pending"]
    scene = await (await client.get("/worlds/default/scenes", params={"path": "0"})).json()
    assert scene["status"] == "ready" and scene["videoUrl"]
    claim = await client.post("/worlds/default/scenes", json={"path": "0"})
    assert (await claim.json())["status"] == "ready"
    clip = await client.get(scene["videoUrl"])
    assert clip.status == 200 and (await clip.read())[4:8] == b"ftyp"
    assert renders_started(service.settings) == renders


async def test_a_scene_minted_through_the_bot_plays_instantly_through_http(
    world_env,  # noqa: F811  (the SimCord fixtures imported above)
    world_service,  # noqa: F811
    discord_settings,  # noqa: F811
):
    server = Server(world_env, "alpha")
    await server.admin.slash(server.channel, "adventure start")  # the bot mints the opening
    await mint_finished(world_env, world_service, "default", "")
    renders = renders_started(discord_settings)
    async with TestClient(TestServer(build_app(discord_settings, world_service))) as http:
        claim = await http.post("/worlds/default/scenes", json={"path": ""})
        scene = await claim.json()
        assert claim.status == 200 and scene["status"] == "ready"
        check_scene(scene)
        clip = await http.get(scene["videoUrl"])
        assert clip.status == 200 and (await clip.read())[4:8] == b"ftyp"
    assert renders_started(discord_settings) == renders


async def test_a_claim_before_its_scene_is_409_and_writes_nothing(client, service):
    response = await client.post("/worlds/default/scenes", json={"path": "0"})
    assert response.status == 409
    assert (await response.json())["detail"] == "The scene before this one does not exist yet."
    assert await scene_rows(service) == 0


# -- keys: used for one claim, never kept ----------------------------------------------

FAKE_KEY = "sk-test-good-web-8c41d7e2"  # accepted by the keyed test provider
NEEDLE = "8c41d7e2"


@pytest.fixture
def keyed_settings(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path)
    return replace(settings, worlds=(replace(settings.worlds[0], provider="openai"),))


@pytest.fixture
def keyed_provider(keyed_settings: Settings) -> KeyedTestProvider:
    return KeyedTestProvider(keyed_settings.providers, offline_jobs_dir(keyed_settings))


async def test_a_key_in_a_claim_pays_once_and_is_never_kept(
    tmp_path, keyed_settings, keyed_provider, caplog
):
    caplog.set_level(logging.DEBUG)
    service = await start_service(keyed_settings, providers={"default": keyed_provider})
    bodies: list[str] = []
    try:
        async with TestClient(TestServer(build_app(keyed_settings, service))) as http:

            async def post(url: str, payload: dict[str, Any]) -> tuple[int, str]:
                response = await http.post(url, json=payload)
                text = await response.text()
                bodies.append(text + str(response.headers))
                return response.status, text

            status, text = await post("/worlds/default/scenes", {"path": ""})
            assert (status, text) == (400, '{"detail": "' + KEY_REQUIRED + '"}')
            bad = "sk-test-bad-web-8c41d7e2"
            status, _ = await post("/worlds/default/scenes", {"path": "", "apiKey": bad})
            assert status == 400 and await scene_rows(service) == 0
            assert keyed_provider.paid_calls == 0

            status, text = await post("/worlds/default/scenes", {"path": "", "apiKey": FAKE_KEY})
            assert status == 200 and '"status": "queued"' in text
            ready = await until_settled(http, "")
            assert ready["status"] == "ready"
            bodies.append(str(ready))

            # A failed child, retried over HTTP with the key (used for that claim only).
            keyed_provider.fail_render_with = ProviderError(
                "unavailable", "The provider is having trouble.", retryable=False
            )
            await service.claim("default", "1", Credentials(FAKE_KEY), "member-1")
            await wait_until_settled(service, "default", "1")
            failed = await (await http.get("/worlds/default/scenes?path=1")).json()
            assert failed["status"] == "failed"
            assert failed["failureDetail"] == "The provider is having trouble."
            status, text = await post("/worlds/default/scenes/1/retry", {"apiKey": FAKE_KEY})
            assert status == 200 and '"status": "queued"' in text
            assert (await until_settled(http, "1"))["status"] == "ready"
            status, text = await post("/worlds/default/scenes", {"path": "1"})
            assert status == 200 and '"status": "ready"' in text  # ready: free, no key
    finally:
        await service.close()
    assert 2 <= keyed_provider.paid_calls <= 3  # the retry may resume the kept render
    assert not [b for b in bodies if NEEDLE in b]
    assert NEEDLE not in caplog.text
    found = [
        str(p) for p in tmp_path.rglob("*") if p.is_file() and NEEDLE.encode() in p.read_bytes()
    ]
    assert found == []  # database, WAL, assets, spool


# -- shared-world serve ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_shared_world_serve_runs_the_api_without_a_token(tmp_path):
    import urllib.request

    db = tmp_path / "world.db"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "HTTP_", "SHARED_"))
    }
    port = free_port()
    env |= {
        "DATABASE_URL": f"sqlite:///{db}",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "SHARED_WORLD_CONFIG": str(tmp_path / "none.toml"),
        "LOG_LEVEL": "INFO",
    }
    cwd = tmp_path
    (tmp_path / "none.toml").write_text(
        f'[storage]\nlocal_dir = "{tmp_path / "assets"}"\n'
        f'[generation]\nspool_dir = "{tmp_path / "data" / "spool"}"\n'
    )
    cli = [sys.executable, "-m", "shared_world.cli"]
    upgrade = subprocess.run([*cli, "db", "upgrade"], env=env, cwd=cwd, capture_output=True)
    assert upgrade.returncode == 0, upgrade.stderr
    process = subprocess.Popen(
        [*cli, "serve"], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        body = None
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    body = r.read()
                    break
            except OSError:
                if process.poll() is not None:
                    break
                import time

                time.sleep(0.05)
        assert body == b'{"status": "ok"}', process.stderr.read() if process.poll() else body
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert b"http listening" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_shared_world_serve_says_one_sentence_when_the_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "HTTP_"))}
        env |= {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'world.db'}",
            "HTTP_PORT": str(port),
            "SHARED_WORLD_CONFIG": str(tmp_path / "none.toml"),
        }
        (tmp_path / "none.toml").write_text(
            f'[storage]\nlocal_dir = "{tmp_path / "assets"}"\n'
            f'[generation]\nspool_dir = "{tmp_path / "data" / "spool"}"\n'
        )
        cli = [sys.executable, "-m", "shared_world.cli"]
        subprocess.run(
            [*cli, "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True
        )
        result = subprocess.run(
            [*cli, "serve"], env=env, cwd=tmp_path, capture_output=True, text=True
        )
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr


# -- settings --------------------------------------------------------------------------


def test_http_settings_from_the_environment_and_their_checks():
    from world.settings import SettingsError, load_settings

    http = load_settings(env={"HTTP_HOST": "0.0.0.0", "HTTP_PORT": "9123"}, read_file=False).http
    assert (http.host, http.port, http.cors_origin_list) == ("0.0.0.0", 9123, ())
    assert (http.claims_per_minute_per_ip, http.max_body_bytes) == (10, 16384)
    with pytest.raises(SettingsError) as caught:
        load_settings(env={"HTTP_PORT": "70000"}, read_file=False)
    assert any("http.port" in p for p in caught.value.problems)
    settings = make_settings(Path("/tmp"))
    bad = replace(
        settings,
        http=replace(
            settings.http,
            cors_origins="https://ok.example, ftp://no",
            claims_per_minute_per_ip=0,
            max_body_bytes=10,
        ),
    )
    from world.settings import _validate_http

    problems = _validate_http(bad)
    assert len(problems) == 3 and all(p.startswith("http.") for p in problems)
