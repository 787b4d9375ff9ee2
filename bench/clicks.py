"""Benchmark: how fast the Discord bot answers clicks, with 100,000 scenes stored.

The real bot (discord.py 2.7, its cogs and DynamicItems) runs against SimCord's in-process
Discord on a fresh SQLite file bulk-seeded with a 100,000-scene ternary tree (the rows of
bench/view.py). Times are wall-clock (`time.perf_counter`), taken when SimCord emits the
INTERACTION_CREATE and when the bot's request reaches SimCord's REST router, so they include
discord.py's parsing and dispatch, the bot's database work and asyncio scheduling, but no
network (Discord's own latency comes on top in production).

1. Click -> first response: `--clicks` members (default 200) click a vote button on the same
   scene card at the same instant (a DB read + a vote upsert each); time to each one's
   interaction callback. Target p99 < 100 ms (Discord allows 3,000 ms).
2. Instant branch -> next scene card: in pick mode, a click on a choice whose branch is ready,
   to the new scene card's `POST /channels/{id}/messages`; `--steps` clicks (default 200)
   one at a time, spread over 20 channels walking down the tree. Target p99 < 250 ms.

Clips are linked (the local store has a public base URL, as behind the HTTP front door or a
bucket's public domain), so no upload is timed.

    .venv/bin/python bench/clicks.py [--scenes 100000] [--clicks 200] [--steps 200]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import discord
import simcord
from _common import make_settings, migrate, percentile, print_table, quiet_logging, verdict
from simcord._runtime import _restore_loop
from simcord.http import router as simcord_router
from view import seed

from bot.app import build_bot
from tests.fixtures.discord import (
    Server,
    SimcordWaits,
    button,
    click_payload,
    latest,
    text_of,
)
from world.service import WorldService

FIRST_RESPONSE_TARGET_MS = 100.0
NEXT_CARD_TARGET_MS = 250.0
CHANNELS = 20  # x 10 levels = 200 clicks on instant branches


class RequestClock:
    """Timestamps of the bot's requests as SimCord's REST router receives them."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, str]] = []
        self._original: Callable[..., Any] = simcord_router.dispatch

    def __enter__(self) -> RequestClock:
        original = self._original

        def timed(backend: Any, method: str, path: str, **kwargs: Any) -> Any:
            self.seen.append((time.perf_counter(), method, path))
            return original(backend, method, path, **kwargs)

        simcord_router.dispatch = timed
        return self

    def __exit__(self, *exc: object) -> None:
        simcord_router.dispatch = self._original

    def first(self, after: float, method: str, prefix: str, suffix: str = "") -> float | None:
        for at, seen_method, path in self.seen:
            if (
                at >= after
                and seen_method == method
                and path.startswith(prefix)
                and path.endswith(suffix)
            ):
                return at
        return None


def summary(name: str, values_ms: list[float], target_ms: float) -> list[Any]:
    p99 = percentile(values_ms, 99)
    return [
        name,
        len(values_ms),
        percentile(values_ms, 50),
        p99,
        max(values_ms),
        f"p99 < {target_ms:.0f} ms: {verdict(p99 < target_ms)}",
    ]


async def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.perf_counter() + seconds
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the bot did not answer in time")
        await asyncio.sleep(0.0005)


async def first_responses(
    env: simcord.Env, clock: RequestClock, server: Server, n: int
) -> list[float]:
    """n members vote on the same card at once; ms from each click to its callback."""
    card = latest(server.channel)
    custom_id = button(card, "2.")["custom_id"]
    emitted: dict[int, float] = {}
    records = []
    for actor in server.members(n):
        record, payload = click_payload(env, actor, card, custom_id)
        emitted[record.id] = time.perf_counter()
        env.backend.emit("INTERACTION_CREATE", payload)
        records.append(record)
    await wait_for(lambda: all(r.responded for r in records))
    latencies = []
    for record in records:
        answered = clock.first(
            emitted[record.id], "POST", f"/interactions/{record.id}/", "/callback"
        )
        assert answered is not None
        latencies.append((answered - emitted[record.id]) * 1000)
    return latencies


async def next_cards(
    env: simcord.Env, clock: RequestClock, servers: list[Server], steps: int, rng: random.Random
) -> list[float]:
    """One click at a time on a ready branch; ms from the click to the next card's POST."""
    latencies: list[float] = []
    pickers = {s.guild.id: s.member() for s in servers}
    while len(latencies) < steps:
        walked = len(latencies)
        for server in servers[: steps - len(latencies)]:
            card = latest(server.channel)
            if text_of(card).count("›") >= 10:  # a 100,000-scene tree is ten levels deep
                continue
            choice = button(card, f"{rng.randrange(3) + 1}.")
            assert choice["label"].endswith("instant"), "the seed is too shallow"
            record, payload = click_payload(
                env, pickers[server.guild.id], card, choice["custom_id"]
            )
            started = time.perf_counter()
            env.backend.emit("INTERACTION_CREATE", payload)
            prefix = f"/channels/{server.channel.id}/messages"
            await wait_for(lambda p=prefix, t=started: clock.first(t, "POST", p) is not None)
            latencies.append((clock.first(started, "POST", prefix) - started) * 1000)
            await wait_for(lambda r=record: r.responded)
            await asyncio.sleep(0.005)  # let the old card's edit finish
        if len(latencies) == walked:
            raise SystemExit("the seeded tree is too shallow for that many steps")
    return latencies


def run_without_settling(env: simcord.Env, waits: SimcordWaits) -> None:
    """From here on the bot runs on plain asyncio; SimCord only answers its requests.

    SimCord's settling scans every pending task and timer on each turn of the loop, which
    with 200 concurrent handlers costs far more than the handlers (it would measure the
    harness, not the bot). Setup above used SimCord's actors; the measurements below emit
    gateway events themselves and poll for the bot's requests.
    """
    _restore_loop(env)
    waits.env = None  # plain awaits again


async def main(args: argparse.Namespace) -> int:
    quiet_logging()
    logging.getLogger("discord").setLevel(logging.ERROR)
    root = Path(tempfile.mkdtemp(prefix="sw-bench-click-"))
    settings = make_settings(
        root,
        storage={"local_public_base_url": "http://127.0.0.1:8080/assets"},
        discord={"progress_edit_seconds": 5.0},
    )
    await migrate(settings.database.url)
    service = await WorldService.start(settings, run_watchdog=False)
    try:
        pool, seconds = await seed(service, args.scenes)
        print(f"seeded {len(pool):,} ready scenes in {seconds:.1f} s ({settings.database.url})")
        waits = SimcordWaits()
        bot = build_bot(settings, service, waits=waits)
        rows = []
        with RequestClock() as clock:
            async with simcord.run(bot, settle_timeout=60.0) as env:
                waits.env = env
                await bot.tree.sync()
                voting = Server(env, "voting")
                await voting.admin.slash(voting.channel, "adventure start", vote_seconds=3600)
                servers = [Server(env, f"pick{i}") for i in range(CHANNELS + 2)]
                for server in servers:
                    await server.admin.slash(server.channel, "adventure start", mode="pick")
                run_without_settling(env, waits)

                await first_responses(env, clock, voting, 20)  # warm-up
                clicks = await first_responses(env, clock, voting, args.clicks)
                rows.append(
                    summary(
                        f"click -> first response ({args.clicks} at once)",
                        clicks,
                        FIRST_RESPONSE_TARGET_MS,
                    )
                )
                await next_cards(env, clock, servers[CHANNELS:], 10, random.Random(1))  # warm-up
                cards = await next_cards(
                    env, clock, servers[:CHANNELS], args.steps, random.Random(2)
                )
                rows.append(
                    summary("instant branch click -> next scene card", cards, NEXT_CARD_TARGET_MS)
                )
        print_table(["measure", "n", "p50 ms", "p99 ms", "max ms", "verdict"], rows)
    finally:
        await service.close()
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=100_000)
    parser.add_argument("--clicks", type=int, default=200)
    parser.add_argument("--steps", type=int, default=200)
    return parser.parse_args(argv)


if __name__ == "__main__":
    if discord.version_info[:2] != (2, 7):
        print("bench/clicks.py expects discord.py 2.7", file=sys.stderr)
    sys.exit(asyncio.run(main(parse_args(sys.argv[1:]))))
