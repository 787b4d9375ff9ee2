"""Coalesced edits: many updates, at most one edit per interval, the newest state last."""

from __future__ import annotations

import asyncio

from bot.coalesce import Coalescer


async def test_pokes_within_an_interval_fold_into_one_edit():
    now = [0.0]
    slept: list[float] = []
    seen: list[int] = []
    state = {"value": 0}

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async def edit() -> None:
        seen.append(state["value"])

    editor = Coalescer(5.0, edit, clock=lambda: now[0], sleep=sleep)
    state["value"] = 1
    editor.poke()
    await asyncio.sleep(0)
    for value in range(2, 12):  # ten updates arrive right after the first edit
        state["value"] = value
        editor.poke()
    while editor.pending:
        await asyncio.sleep(0)

    assert seen == [1, 11]  # the first at once, then one edit with the newest state
    assert slept == [5.0]


async def test_close_drops_a_pending_edit():
    runs: list[int] = []

    async def edit() -> None:
        runs.append(1)

    editor = Coalescer(60.0, edit)
    editor.mark_ran()
    editor.poke()
    await asyncio.sleep(0)
    await editor.close()
    assert runs == [] and not editor.pending
