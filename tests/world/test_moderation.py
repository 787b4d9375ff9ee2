"""Moderation in the engine: reports, hide / unhide, the audit trail, the hidden clip's
retention, and the web API's reading of a hidden scene, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer
from alembic import command
from sqlalchemy import func, select

from tests.fixtures.world import (
    fresh_postgres_database,
    make_settings,
    renders_started,
    start_service,
)
from tests.world.helpers import mint, row
from web.app import build_app
from web.openapi import SCHEMAS
from world import views
from world.db import Database, alembic_config
from world.models import AdminAction, HiddenClip, Report, Scene, utcnow
from world.service import ServiceError, WorldService
from world.types import ChildState, ClaimOutcome, Status

HIDDEN_DETAIL = "This scene was removed by the admins; it can be made again."


@pytest.fixture(params=["sqlite", "postgresql"])
async def backend_url(request, tmp_path) -> AsyncIterator[str]:
    """Each test here runs on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'world.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    async with fresh_postgres_database(base, "mod") as url:
        yield url


async def started(tmp_path, url: str, retention_days: int = 7) -> WorldService:
    settings = make_settings(
        tmp_path,
        url,
        moderation={"hidden_asset_retention_days": retention_days},
        providers={"offline_render_seconds": 0.05},
    )
    return await start_service(settings, run_watchdog=False)


async def audit_rows(service: WorldService) -> list[AdminAction]:
    async with service.db.session() as session:
        return list(await session.scalars(select(AdminAction).order_by(AdminAction.id)))


async def count(service: WorldService, model) -> int:
    async with service.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_hide_reopens_the_branch_and_a_new_mint_plays_a_new_clip(tmp_path, backend_url):
    service = await started(tmp_path, backend_url)
    try:
        await mint(service, "")
        await mint(service, "0")
        await mint(service, "0/1")  # below it: the story stays reachable
        old = await service.view("default", "0")
        assert old.is_ready and old.video_key and old.title

        hidden = await service.hide("default", "0", "  graphic   violence ", "admin-1", guild_id=5)
        assert hidden.title == old.title
        assert hidden.delete_after - utcnow() > timedelta(days=6)

        view = await service.view("default", "0")
        assert view.status is Status.HIDDEN
        assert (view.title, view.narration, view.video_url, view.video_key) == (None,) * 4
        assert (view.poster_url, view.state_summary, view.choices) == (None, None, ())
        assert view.failure_detail == HIDDEN_DETAIL
        parent = await service.view("default", "")
        assert parent.choices[0].state is ChildState.UNEXPLORED
        assert (await service.view("default", "0/1")).is_ready
        assert await service.store.exists(old.video_key), "kept for the retention window"
        with pytest.raises(ServiceError, match="already hidden"):
            await service.hide("default", "0", None, "admin-1")

        claim = await service.claim("default", "0", None, "member-9")
        assert claim.outcome is ClaimOutcome.QUEUED and claim.claimed_by_caller
        await mint(service, "0")
        fresh = await service.view("default", "0")
        assert fresh.is_ready and fresh.video_key != old.video_key and fresh.title
        assert renders_started(service.settings) == 4
        assert await service.store.exists(old.video_key)
        with pytest.raises(ServiceError, match="minted again since it was hidden"):
            await service.unhide("default", "0", "admin-1")

        [hide] = await audit_rows(service)
        assert (hide.action, hide.world_id, hide.path, hide.guild_id) == ("hide", "default", "0", 5)
        assert hide.reason == "graphic violence"
        assert hide.actor != "admin-1" and len(hide.actor) == 32  # a keyed hash, never the id
    finally:
        await service.close()


async def test_unhide_restores_the_clip_and_writes_the_audit_trail(tmp_path, backend_url):
    service = await started(tmp_path, backend_url)
    try:
        await mint(service, "")
        before = await service.view("default", "")
        with pytest.raises(ServiceError, match="not hidden"):
            await service.unhide("default", "", "admin-1")
        await service.hide("default", "", "spam", "admin-1", guild_id=7)
        assert (await row(service, "")).status == "hidden"

        back = await service.unhide("default", "", "admin-2", guild_id=7)
        assert back.title == before.title
        after = await service.view("default", "")
        assert after.is_ready
        assert (after.title, after.narration, after.video_key) == (
            before.title,
            before.narration,
            before.video_key,
        )
        assert [c.label for c in after.choices] == [c.label for c in before.choices]
        claim = await service.claim("default", "", None, "member")
        assert claim.outcome is ClaimOutcome.READY  # nobody pays for it again
        assert [(a.action, a.reason) for a in await audit_rows(service)] == [
            ("hide", "spam"),
            ("unhide", None),
        ]
        entries = await service.audit_log(world_id="default")
        assert [e.action for e in entries] == ["unhide", "hide"]  # newest first
        assert {e.guild_id for e in entries} == {7}
    finally:
        await service.close()


async def test_bad_hide_requests_change_nothing(tmp_path):
    service = await started(tmp_path, f"sqlite:///{tmp_path / 'world.db'}")
    try:
        await mint(service, "")
        for path, reason, sentence in (
            ("", "x" * 301, "Keep the reason to 300 characters or fewer."),
            ("1", None, "That scene has not been made, so there is nothing to hide."),
        ):
            with pytest.raises(ServiceError) as refused:
                await service.hide("default", path, reason, "admin")
            assert str(refused.value) == sentence
        with pytest.raises(ServiceError, match=r"not a branch path|does not exist"):
            await service.hide("default", "0/9", None, "admin")
        assert (await service.view("default", "")).is_ready
        assert await audit_rows(service) == []
        assert await count(service, HiddenClip) == 0
    finally:
        await service.close()


async def test_reports_one_per_member_per_clip(tmp_path):
    service = await started(tmp_path, f"sqlite:///{tmp_path / 'world.db'}")
    try:
        await mint(service, "")
        first = await service.report("default", "", reporter="11", guild_id=1, channel_id=2)
        assert (first.reports, first.report_channel_id, first.title) == (1, None, first.title)
        with pytest.raises(ServiceError, match="already reported"):
            await service.report("default", "", reporter="11", guild_id=1)
        await service.set_report_channel(1, 99, "admin")
        await service.set_report_channel(1, 100, "admin")  # changed: the newest counts
        second = await service.report("default", "", reporter="12", guild_id=1)
        assert (second.reports, second.report_channel_id) == (2, 100)
        assert await service.report_channel(1) == 100 and await service.report_channel(2) is None
        with pytest.raises(ServiceError, match="Only a scene that has been made"):
            await service.report("default", "1", reporter="11", guild_id=1)
        assert await count(service, Report) == 2

        await service.hide("default", "", None, "admin")
        with pytest.raises(ServiceError, match="already removed"):
            await service.report("default", "", reporter="13", guild_id=1)
        await mint(service, "")  # the new clip is another clip: the same member may report it
        fresh = await service.report("default", "", reporter="11", guild_id=1)
        assert fresh.reports == 1
        actions = [a.action for a in await audit_rows(service)]
        assert actions == ["report_channel", "report_channel", "hide"]
    finally:
        await service.close()


async def test_the_sweep_deletes_a_hidden_clip_after_its_retention_and_not_before(tmp_path):
    service = await started(tmp_path, f"sqlite:///{tmp_path / 'world.db'}", retention_days=2)
    try:
        await mint(service, "")
        old = await service.view("default", "")
        await service.hide("default", "", None, "admin")
        swept = await service.sweep_stray_files()  # the watchdog's sweep, now
        assert swept.hidden_clips == 0
        assert await service.purge_hidden_clips(utcnow() + timedelta(days=1)) == 0
        assert await service.store.exists(old.video_key)

        assert await service.purge_hidden_clips(utcnow() + timedelta(days=2, minutes=1)) == 1
        assert not await service.store.exists(old.video_key)
        assert await service.purge_hidden_clips(utcnow() + timedelta(days=3)) == 0  # once
        with pytest.raises(ServiceError, match="already been deleted"):
            await service.unhide("default", "", "admin")
        assert (await service.view("default", "")).status is Status.HIDDEN
    finally:
        await service.close()


async def test_with_no_retention_the_next_sweep_deletes_the_clip(tmp_path, backend_url):
    service = await started(tmp_path, backend_url, retention_days=0)
    try:
        await mint(service, "")
        old = await service.view("default", "")
        await service.hide("default", "", None, "admin")
        swept = await service.sweep_stray_files()
        assert swept.hidden_clips == 1
        assert not await service.store.exists(old.video_key)
        assert not await service.store.exists(old.video_key.replace(".mp4", ".png"))
        async with service.db.session() as session:
            [clip] = list(await session.scalars(select(HiddenClip)))
        assert clip.deleted_at is not None and clip.restored_at is None
    finally:
        await service.close()


async def test_the_web_api_returns_a_hidden_scene_as_hidden(tmp_path):
    service = await started(tmp_path, f"sqlite:///{tmp_path / 'world.db'}")
    try:
        await mint(service, "")
        await service.hide("default", "", "spam", "admin")
        rows_before = await count(service, Scene)
        async with TestClient(TestServer(build_app(service.settings, service))) as http:
            response = await http.get("/worlds/default/scenes", params={"path": ""})
            body = await response.json()
        assert response.status == 200
        assert body["status"] == "hidden"
        for field in ("scenarioDisplay", "videoUrl", "posterUrl", "stateSummary"):
            assert body[field] is None, field
        assert body["choices"] == [] and body["failureDetail"] == HIDDEN_DETAIL
        assert body["failureCode"] == "hidden"
        jsonschema.validate(
            body, {"$ref": "#/components/schemas/Scene", "components": {"schemas": SCHEMAS}}
        )
        assert await count(service, Scene) == rows_before  # reads never write
    finally:
        await service.close()


async def test_the_moderation_migration_goes_down_and_up_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'world.db'}"
    db = Database(url)
    await db.upgrade()
    await db.close()

    config = alembic_config(url)
    await asyncio.to_thread(command.downgrade, config, "0004")
    await asyncio.to_thread(command.upgrade, config, "head")
    service = await started(tmp_path, url)
    try:
        await mint(service, "")
        await service.hide("default", "", None, "admin")
        assert (await row(service, "")).status == "hidden"
    finally:
        await service.close()


async def test_another_process_sees_the_hide_and_mints_the_branch_again(tmp_path, monkeypatch):
    monkeypatch.setattr(views, "READY_TTL", 0.0)  # what a hide elsewhere waits for, at once
    here = await started(tmp_path, f"sqlite:///{tmp_path / 'world.db'}")
    there = await WorldService.start(here.settings, run_watchdog=False)
    try:
        await mint(here, "")
        assert (await there.claim("default", "", None, "m")).outcome is ClaimOutcome.READY
        await here.hide("default", "", None, "admin")
        there.views.clear()  # its cached views age out (VIEW_TTL_* seconds)
        assert (await there.view("default", "")).status is Status.HIDDEN
        again = await there.claim("default", "", None, "m")
        assert again.outcome is ClaimOutcome.QUEUED and again.claimed_by_caller
        await mint(there, "")
        assert (await here.view("default", "")).is_ready
    finally:
        await there.close()
        await here.close()


async def test_below_a_hidden_scene_made_branches_still_play_and_new_ones_wait(tmp_path):
    here = await started(tmp_path, f"sqlite:///{tmp_path / 'world.db'}")
    there = await WorldService.start(here.settings, run_watchdog=False)  # knows nothing yet
    try:
        await mint(here, "")
        await mint(here, "0")
        await here.hide("default", "", None, "admin")
        below = await there.claim("default", "0", None, "m")
        assert below.outcome is ClaimOutcome.READY, "a made branch stays playable"
        assert (await there.view("default", "0")).is_ready
        new = await there.claim("default", "1", None, "m")
        assert new.outcome is ClaimOutcome.REFUSED and "removed" in (new.message or "")
        assert await count(here, Scene) == 2
    finally:
        await there.close()
        await here.close()
