"""The visible queue: with every generation slot busy a claim waits in line (first come,
first served) and its place is known at once and published as it changes."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from tests.bot.keyed_provider import GOOD_KEY, KeyedTestProvider
from tests.fixtures.world import (
    make_settings,
    offline_jobs_dir,
    renders_started,
    start_service,
    wait_until_settled,
)
from world.queue import JobSlots
from world.types import Credentials, Status

KEY = Credentials(GOOD_KEY)


async def test_slots_go_to_the_head_of_the_line_and_places_are_told_when_they_change():
    told: list[tuple[str, int | None]] = []
    slots = JobSlots(1, lambda key, place: told.append((key[1], place)))
    first = slots.enter("t1", ("w", "a"))
    second = slots.enter("t2", ("w", "b"))
    third = slots.enter("t3", ("w", "c"))
    assert first.done() and not second.done() and not third.done()
    assert [slots.position(("w", p)) for p in "abc"] == [None, 1, 2]
    assert told == [("b", 1), ("c", 2)]

    slots.leave("t1")  # the running job ended: b starts, c moves up
    assert second.done() and not third.done()
    assert told[2:] == [("b", None), ("c", 1)]
    assert slots.busy == 1 and len(slots) == 1

    fourth = slots.enter("t4", ("w", "d"))
    slots.leave("t3")  # c was cancelled while waiting: d moves up, nobody starts
    assert not fourth.done() and slots.position(("w", "d")) == 1
    assert told[4:] == [("d", 2), ("d", 1)]
    slots.leave("t2")
    assert fourth.done() and slots.busy == 1 and len(slots) == 0
    slots.leave("t4")
    slots.leave("t4")  # twice is harmless
    assert slots.busy == 0


async def test_a_claim_waits_in_line_with_its_place_published(tmp_path):
    settings = make_settings(tmp_path, generation={"max_concurrent_jobs": 1})
    settings = replace(settings, worlds=(replace(settings.worlds[0], provider="openai"),))
    provider = KeyedTestProvider(settings.providers, offline_jobs_dir(settings))
    service = await start_service(settings, providers={"default": provider}, run_watchdog=False)
    try:
        await service.claim("default", "", KEY, "seeder")
        await wait_until_settled(service, "default", "")
        provider.hold()  # the first render holds the only slot until released
        results = [await service.claim("default", str(i), KEY, f"m{i}") for i in range(3)]
        assert all(r.claimed_by_caller for r in results)
        assert [service.queue_position("default", str(i)) for i in range(3)] == [None, 1, 2]

        seen: list[int | None] = []

        async def watch() -> None:
            async for event in service.subscribe("default", "2"):
                if event.status is Status.QUEUED:
                    seen.append(event.queue_position)

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.1)
        provider.release()
        for i in range(3):
            await wait_until_settled(service, "default", str(i))
        await asyncio.wait_for(watcher, 30)
        assert seen[:2] == [2, 1]  # its place when it subscribed, then one up
        assert None in seen[2:]  # then it started
        assert service.queue_position("default", "2") is None
        assert renders_started(settings) == 4
    finally:
        await service.close()
