"""view: a scene with every choice's state and asset URLs, in a bounded number of queries."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from tests.fixtures.world import make_settings, start_service
from tests.world.helpers import mint, wait_for
from world.service import InvalidBranch, ServiceError
from world.types import ChildState, SceneEvent, Status


@contextmanager
def count_queries(service):
    statements: list[str] = []

    def before(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(service.db.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(service.db.engine.sync_engine, "before_cursor_execute", before)


async def test_view_shows_each_choice_state_in_at_most_two_queries(tmp_path):
    settings = make_settings(
        tmp_path,
        generation={"progress_write_interval_seconds": 0.01},
        providers={"offline_render_seconds": 3.0},
    )
    service = await start_service(settings, run_watchdog=False)
    try:
        settings_fast = service.settings
        await mint(service, "")
        await service.claim("default", "1", None, "bob")  # minting
        await wait_for(service, "1", lambda e: e.stage == "rendering" and e.progress > 5)

        with count_queries(service) as statements:
            view = await service.view("default", "")

        assert len(statements) <= 2
        assert view.status is Status.READY
        assert view.title and view.narration
        assert view.video_key and view.video_key.endswith(".mp4")
        states = [c.state for c in view.choices]
        assert states == [ChildState.UNEXPLORED, ChildState.MINTING, ChildState.UNEXPLORED]
        assert view.choices[1].progress > 0
        assert [c.path for c in view.choices] == ["0", "1", "2"]
        assert settings_fast.storage.backend == "local"
    finally:
        await service.close()


async def test_view_of_an_unexplored_branch_is_pending_and_writes_nothing(service):
    await mint(service, "")
    with count_queries(service) as statements:
        view = await service.view("default", "2")
    assert view.status is Status.PENDING
    assert view.choice_label, "the choice that leads here is shown"
    assert all(s.lstrip().upper().startswith("SELECT") for s in statements)


async def test_a_local_store_with_a_public_base_url_gives_clip_urls(tmp_path):
    settings = make_settings(
        tmp_path, storage={"local_public_base_url": "http://127.0.0.1:8080/assets"}
    )
    service = await start_service(settings)
    try:
        await mint(service, "")
        view = await service.view("default", "")
        assert view.video_url == f"http://127.0.0.1:8080/assets/{view.video_key}"
        assert (tmp_path / "assets" / view.video_key).read_bytes()[4:8] == b"ftyp"
    finally:
        await service.close()


async def test_metrics_count_branches_renders_and_contributors(service):
    await mint(service, "")
    await asyncio.gather(*(service.claim("default", str(i), None, f"m{i % 2}") for i in range(3)))
    for i in range(3):
        await wait_for(service, str(i), lambda e: e.status is Status.READY)

    metrics = await service.metrics("default")

    assert metrics.branches["ready"] == 4
    assert metrics.queued_backlog == 0
    assert metrics.renders == 4
    assert metrics.success_rate == 1.0
    assert metrics.distinct_contributors == 3  # minter, m0, m1
    assert metrics.storage_bytes > 0
    assert metrics.render_ms_p50 is not None and metrics.render_ms_p99 >= metrics.render_ms_p50
    assert metrics.estimated_spend_usd == 0.0  # the offline provider is free


async def test_a_cached_view_shows_child_changes_from_this_and_other_processes(tmp_path):
    settings = make_settings(tmp_path, providers={"offline_render_seconds": 3.0})
    service = await start_service(settings, run_watchdog=False)
    other = await start_service(settings, run_watchdog=False)  # a second bot process
    try:
        await mint(service, "")
        first = await service.view("default", "")
        with count_queries(service) as statements:
            again = await service.view("default", "")
        assert statements == [] and again == first, "a ready scene is served from memory"

        await service.claim("default", "0", None, "alice")  # this process: seen at once
        assert (await service.view("default", "")).choices[0].state is ChildState.MINTING

        await other.claim("default", "1", None, "bob")  # another process: seen within a second
        async with asyncio.timeout(10):
            while (await service.view("default", "")).choices[1].state is not ChildState.MINTING:
                await asyncio.sleep(0.1)
    finally:
        await service.close()
        await other.close()


async def test_a_burst_of_misses_is_read_in_one_query_and_each_view_is_as_read_alone(tmp_path):
    settings = make_settings(tmp_path, providers={"offline_render_seconds": 0.05})
    service = await start_service(settings, run_watchdog=False)
    try:
        await mint(service, "")
        for child in ("0", "1"):
            await mint(service, child)
        wanted = ["", "0", "1", "2", "0/0", "0/1", "1/2"] * 4  # ready, pending, repeated
        alone = {}
        for path in set(wanted):
            service.views.clear()
            alone[path] = await service.view("default", path)

        service.views.clear()
        with count_queries(service) as statements:
            together = await asyncio.gather(*(service.view("default", p) for p in wanted))
        assert len(statements) == 1, "28 concurrent misses of 7 scenes: one query"
        assert together == [alone[p] for p in wanted]
        with pytest.raises(ServiceError):  # an unreachable branch in a burst fails alone
            await asyncio.gather(service.view("default", "2/0"), service.view("default", "0"))
        assert (await service.view("default", "0")).status is Status.READY
    finally:
        await service.close()


async def test_a_view_an_event_changed_while_it_was_read_is_returned_but_not_kept(service):
    await mint(service, "")
    service.views.clear()
    engine = service.db.engine.sync_engine

    def an_event_arrives_mid_read(conn, cursor, statement, *args):
        if "FROM scenes" in statement:  # e.g. branch 1 claimed by this process just now
            service.views.saw(SceneEvent("default", "1", Status.QUEUED))

    event.listen(engine, "before_cursor_execute", an_event_arrives_mid_read)
    try:
        first = await service.view("default", "")
    finally:
        event.remove(engine, "before_cursor_execute", an_event_arrives_mid_read)
    assert first.status is Status.READY
    with count_queries(service) as statements:
        again = await service.view("default", "")
    assert len(statements) == 1, "the possibly stale view was not cached"
    with count_queries(service) as statements:
        assert await service.view("default", "") == again
    assert statements == [], "a view read with no event meanwhile is cached"


async def test_trail_names_the_path_and_each_ancestor_root_first(service):
    await mint(service, "")
    await mint(service, "2")
    root, second = await service.view("default", ""), await service.view("default", "2")

    trail = await service.trail("default", "2/0")

    assert trail == [("", root.title), ("2", second.title), ("2/0", None)]
    assert await service.trail("default", "") == [("", root.title)]
    with pytest.raises(InvalidBranch):
        await service.trail("default", "9")


async def test_clip_bytes_reads_a_ready_views_clip_and_refuses_a_view_without_one(service):
    await mint(service, "")
    ready = await service.view("default", "")
    pending = await service.view("default", "1")

    clip = await service.clip_bytes(ready)

    assert clip[4:8] == b"ftyp" and len(clip) == ready.video_bytes
    with pytest.raises(ServiceError, match="not available"):
        await service.clip_bytes(pending)


async def test_background_tasks_start_through_spawn_and_events_reach_the_observer(tmp_path):
    spawned: list[str] = []
    seen: list[tuple[str, Status, bool]] = []

    def spawn(coro, name):
        spawned.append(name)
        return asyncio.create_task(coro, name=name)

    def observe(event):
        running = service.is_running_here(event.world_id, event.path)
        seen.append((event.path, event.status, running))

    settings = make_settings(tmp_path)
    service = await start_service(settings, run_watchdog=False, spawn=spawn, on_event=observe)
    try:
        await mint(service, "")
        assert "generate default/" in spawned, "the job"
        assert "progress default/" in spawned, "the poller of the subscription"
        assert "prices" in spawned
        assert ("", Status.QUEUED, True) in seen
        assert ("", Status.READY, True) in seen, "seen while its job still runs"
        async with asyncio.timeout(10):
            while service.running_jobs():  # the job cleans its spool up after publishing
                await asyncio.sleep(0.01)
        assert not service.is_running_here("default", "")

        await service.view("default", "")
        service.views.clear()
        with count_queries(service) as statements:
            await service.view("default", "")
        assert statements, "a cleared cache asks the database again"
    finally:
        await service.close()
