"""The browser player: its page, static files and SSE progress route, and the page itself in
Debian's headless chromium (playwright with `executable_path`; no browser download).

The browser tests serve `build_app` on a real port: an offline world (open the page, claim
the opening scene, see its clip play, choose an unexplored branch, watch progress, see the new
clip play) and a keyed world (the key form shows the cost; a bad key gets one sentence).
Screenshots go to the test's tmp dir, and to docs/player.png with
SHARED_WORLD_UPDATE_SCREENSHOT=1.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import web.player as player
from tests.bot.keyed_provider import GOOD_KEY, SEED_KEY, KeyedTestProvider, seed_opening_scene
from tests.fixtures.world import make_settings, offline_jobs_dir, start_service
from web.app import build_app
from world.service import WorldService
from world.settings import Settings
from world.types import Credentials

PROJECT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = PROJECT / "docs" / "player.png"
UPDATE_SCREENSHOT = os.environ.get("SHARED_WORLD_UPDATE_SCREENSHOT") == "1"
NO_CHROMIUM = (
    f"Debian's chromium is not installed at {CHROMIUM}; .ci/run installs it "
    "(apt-get install -y --no-install-recommends chromium)."
)
NO_PLAYWRIGHT = "playwright is missing; install the test extra: pip install -e '.[test]'."
EVENT_FIELDS = {
    "status",
    "progress",
    "stage",
    "failureCode",
    "failureDetail",
    "providerStatus",
    "elapsedSeconds",
    "typicalSeconds",
}


def player_app(settings: Settings, service: WorldService) -> web.Application:
    return build_app(settings, service)


@pytest.fixture
def offline_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, providers={"offline_render_seconds": 0.5})


@pytest.fixture
async def offline_service(offline_settings: Settings) -> AsyncIterator[WorldService]:
    service = await start_service(offline_settings)
    try:
        yield service
    finally:
        await service.close()


@asynccontextmanager
async def client_for(settings: Settings, service: WorldService) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(player_app(settings, service)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def parse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


# -- the page, static files and the SSE route (no browser) ------------------------------


async def test_page_and_static_files(offline_settings, offline_service):
    async with client_for(offline_settings, offline_service) as client:
        response = await client.get("/")
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
        assert 'data-world="default"' in page
        assert '<script src="/static/player.js"' in page
        assert "<style" not in page and "onclick" not in page  # strict CSP: no inline code
        response = await client.get("/worlds/default", headers={"Accept": "text/html,*/*"})
        assert 'data-world="default"' in await response.text()
        response = await client.get("/worlds/nowhere", headers={"Accept": "text/html"})
        assert response.status == 404
        assert "nowhere" in (await response.json())["detail"]
        for name in ("player.js", "player.css"):
            response = await client.get(f"/static/{name}")
            assert response.status == 200, name
        response = await client.get("/static/../player.py")
        assert response.status in (403, 404)
        assert "localStorage" not in await (await client.get("/static/player.js")).text()


async def test_events_follow_a_claim_until_ready(offline_settings, offline_service, monkeypatch):
    monkeypatch.setattr(player, "HEARTBEAT_SECONDS", 0.05)
    async with client_for(offline_settings, offline_service) as client:
        await offline_service.claim("default", "", None, "tester")
        async with asyncio.timeout(20):
            response = await client.get("/worlds/default/events", params={"path": ""})
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            text = await response.text()  # the stream ends after the terminal status
    events = parse_events(text)
    assert events and all(set(event) == EVENT_FIELDS for event in events)
    assert events[-1]["status"] == "ready"
    assert all(event["status"] == "queued" for event in events[:-1])
    assert ": heartbeat" in text


async def test_events_refuse_bad_paths_and_unknown_worlds(offline_settings, offline_service):
    async with client_for(offline_settings, offline_service) as client:
        response = await client.get("/worlds/default/events", params={"path": "0/x"})
        assert response.status == 422
        assert (await response.json())["detail"]
        response = await client.get("/worlds/nowhere/events", params={"path": ""})
        assert response.status == 404
        assert "nowhere" in (await response.json())["detail"]


async def test_events_stop_when_the_client_goes_away(tmp_path):
    settings = make_settings(tmp_path, providers={"offline_render_seconds": 30})
    service = await start_service(settings)
    try:
        async with client_for(settings, service) as client:
            await service.claim("default", "", None, "tester")
            response = await client.get("/worlds/default/events", params={"path": ""})
            first = await response.content.readuntil(b"\n\n")  # the retry hint
            assert first.startswith(b"retry:")
            line = await response.content.readuntil(b"\n\n")
            assert json.loads(line[6:])["status"] == "queued"
            assert service.events.subscriber_count() == 1
            response.close()
            async with asyncio.timeout(5):
                while service.events.subscriber_count():
                    await asyncio.sleep(0.05)
    finally:
        await service.close()


# -- the page in headless chromium ------------------------------------------------------

PLAYING = """(previous) => {
    const v = document.getElementById('clip');
    return !v.hidden && v.readyState >= 2 && v.currentTime > 0.3 && !v.paused
        && v.currentSrc !== '' && v.currentSrc !== previous;
}"""
# Every text the status line shows, recorded as it changes (progress is short-lived).
RECORD_STATUS = """() => {
    window.statusLog = [];
    const watch = () => {
        const el = document.getElementById('status');
        if (!el) return setTimeout(watch, 10);
        new MutationObserver(() => window.statusLog.push(el.textContent))
            .observe(el, {childList: true, characterData: true, subtree: true});
    };
    document.addEventListener('DOMContentLoaded', watch);
}"""


STRICT_CSP = "default-src 'self'; media-src 'self'; img-src 'self'; object-src 'none'"


@web.middleware
async def strict_csp(request: web.Request, handler: Any) -> web.StreamResponse:
    """The policy the app sends (or a stricter one): the page must work under it."""
    response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", STRICT_CSP)
    return response


@asynccontextmanager
async def serving(settings: Settings, service: WorldService) -> AsyncIterator[str]:
    app = player_app(settings, service)
    app.middlewares.append(strict_csp)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def chromium_page() -> AsyncIterator[Any]:
    """A page of Debian's headless chromium, driven by playwright's async API."""
    if not Path(CHROMIUM).exists():
        pytest.fail(NO_CHROMIUM)
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail(NO_PLAYWRIGHT)
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--autoplay-policy=no-user-gesture-required"],
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 860})
            page.set_default_timeout(20_000)
            await page.add_init_script(f"({RECORD_STATUS})()")
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            yield page
            assert not [p for p in problems if "Content Security Policy" in p or "Error" in p], (
                problems
            )
        finally:
            await browser.close()


async def wait_playing(page: Any, previous: str = "") -> str:
    await page.wait_for_function(PLAYING, arg=previous)
    return await page.evaluate("document.getElementById('clip').currentSrc")


async def save_screenshot(page: Any, paths: list[Path]) -> None:
    first = paths[0]
    first.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(first))
    for path in paths[1:]:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(first, path)


async def test_player_plays_an_offline_world_in_chromium(
    tmp_path, offline_settings, offline_service
):
    async with serving(offline_settings, offline_service) as base, chromium_page() as page:
        response = await page.goto(base + "/")
        assert "default-src 'self'" in response.headers["content-security-policy"]
        # Nobody has made the opening scene: claim it (a keyless world: no form), watch it.
        make = page.locator('#choices button[data-path=""]')
        assert "free" in await make.inner_text()
        await make.click()
        opening = await wait_playing(page)
        assert "being made" in " ".join(await page.evaluate("window.statusLog")).lower()
        choices = page.locator("#choices button.choice")
        assert await choices.count() == 3
        first = page.locator('#choices button[data-path="0"]')
        assert await first.get_attribute("data-status") == "pending"
        assert "unexplored" in await first.inner_text()
        assert await page.locator("#breadcrumbs").inner_text() != ""

        await page.evaluate("window.statusLog = []")
        await first.click()
        await wait_playing(page, opening)
        log = await page.evaluate("window.statusLog")
        assert any(text.startswith("Being made") and "%" in text for text in log), log
        assert "›" in await page.locator("#breadcrumbs").inner_text()
        assert await page.locator("#key-form").is_hidden()
        made = await offline_service.view("default", "0")
        assert made.title and await page.locator("#title").inner_text() == made.title
        await save_screenshot(
            page, [tmp_path / "player.png", *([SCREENSHOT] if UPDATE_SCREENSHOT else [])]
        )

        # Back in the opening scene its first choice is now instant.
        await page.click("#restart")
        await wait_playing(page)
        badge = page.locator('#choices button[data-path="0"] .badge')
        await page.wait_for_function(
            "() => document.querySelector('#choices button[data-path=\"0\"]')"
            "?.dataset.status === 'ready'"
        )
        assert await badge.inner_text() == "instant"
        assert await page.locator("#map-tree li").count() == 2  # the explored branches


async def test_player_asks_for_a_key_in_a_keyed_world(tmp_path):
    base_settings = make_settings(tmp_path)
    settings = replace(base_settings, worlds=(replace(base_settings.worlds[0], provider="openai"),))
    provider = KeyedTestProvider(settings.providers, offline_jobs_dir(settings))
    service = await start_service(settings, providers={"default": provider})
    try:
        await seed_opening_scene(service)
        provider.hold()  # another member's branch stays "being made" until released
        await service.claim("default", "2", Credentials(SEED_KEY), "someone else")
        async with serving(settings, service) as base, chromium_page() as page:
            await page.goto(base + "/worlds/default")
            opening = await wait_playing(page)
            making = page.locator('#choices button[data-path="2"]')
            assert await making.get_attribute("data-status") == "queued"
            await page.wait_for_function(
                "() => /being made · \\d+%/.test(document.querySelector("
                "'#choices button[data-path=\"2\"] .badge').textContent)"
            )
            provider.release()  # the stream ends at ready and the choice turns instant
            await page.wait_for_function(
                "() => document.querySelector('#choices button[data-path=\"2\"]')"
                "?.dataset.status === 'ready'"
            )
            choice = page.locator('#choices button[data-path="1"]')
            assert "$0.80" in await choice.inner_text()
            await choice.click()
            form = page.locator("#key-form")
            await form.wait_for(state="visible")
            assert "$0.80" in await page.locator("#key-cost").inner_text()

            await page.fill("#key-input", "sk-not-a-real-key")
            await page.click("#key-submit")
            error = page.locator("#key-error")
            await page.wait_for_function(
                "() => document.getElementById('key-error').textContent.length > 0"
            )
            sentence = await error.inner_text()
            assert sentence.endswith(".") and sentence.count(".") == 1, sentence
            assert "sk-not-a-real-key" not in await page.content()
            await save_screenshot(page, [tmp_path / "player-key.png"])

            await page.fill("#key-input", GOOD_KEY)
            await page.click("#key-submit")
            await wait_playing(page, opening)
            assert await form.is_hidden()
            storage = "localStorage.length + sessionStorage.length"
            assert await page.evaluate(storage) == 0
            assert GOOD_KEY not in await page.content()
    finally:
        await service.close()
