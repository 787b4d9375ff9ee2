"""Benchmark: OpenRouter provider-layer overhead per mint, and 50 mints at once against the fake.

Runs the real provider (world.providers.openrouter.OpenRouterProvider, built with
`world.providers.build_provider`: the openai SDK for plan and summary, aiohttp for the four
video endpoints) through the real WorldService pipeline (SQLite, local store) against the
loopback fake of OpenRouter (tests/fakes/openrouter_server.py). The fake runs in a child
process (this script with `--fake-server`) for the same reason moto does in bench/pipeline.py:
its request handling (JSON-schema plan generation, frame-image decoding, the request log)
would otherwise compete for the GIL and the event loop with the code being measured, and its
memory would count towards this process's RSS. `--fake-in-process` runs it on this event loop
instead, as the tests do, for comparison. The fake serves one clip for every job: a real
1280x720 H.264 title card padded to `--clip-mb` (4) MiB with a top-level `free` box, the size
of a real 8 s 720p clip.

Phase 1, provider-layer overhead of one mint (target p99 < 100 ms). After one warm-up mint
(the root: catalogue fetch, connection pools, PyAV import), `--runs` branches are minted one
after another, children after their parents, so every create carries the parent's last frame
as a base64 PNG like a real child mint. The key is scripted with create_delay=0.25 s,
polls_to_complete=3 and download_delay=0.01 s; polls start at 0.1 s and stay there
(poll_interval_seconds = poll_max_interval_seconds = 0.1).

    What is counted: the provider instance is wrapped in `TimedProvider`, a thin proxy given to
    `WorldService.start(settings, providers={world: proxy})`, which adds up the wall time
    spent inside the provider's own coroutines for one mint: `plan`, `start_render`, each
    step (`__anext__`) of `watch_render` (the poll requests and the provider's own sleeps
    between them, not the time the pipeline holds a yielded status), `download` and
    `summarise`. Two figures are taken from that sum:
    "overhead" (the target's definition) subtracts what the fake and the provider were told
    to wait:
        create_delay                                    (the fake sleeps before answering)
      + the provider's poll sleeps, (polls - 1) x 0.1 s  (Backoff with first == max)
      + download_delay x (64 KiB chunks of the clip - 1) (the fake sleeps between chunks)
    so it still holds the fake's own time: its handlers' CPU (plan JSON generated from the
    schema and validated, the frame image decoded, 64 chunk writes) and how late its 63
    `asyncio.sleep(0.01)` between chunks wake up.
    "client side" instead subtracts the fake's measured handler time per request (from the
    moment its middleware sees the request until the handler returns, after the last byte
    of a download) and the provider's nominal poll sleeps: what is left is this process's
    own cost: building requests (the first frame base64-encoded into the create body, the
    planner's JSON schema), the openai SDK and aiohttp, loopback transport, JSON parsing,
    plan validation, writing the clip to the spool file in threads, lateness of the
    provider's own poll sleeps. "fake beyond injected" is the difference of the two.
    Pipeline work outside the provider calls (database writes, last-frame extraction, the
    poster, storing, events) is in neither; it is shown as "pipeline ms" = mint wall time -
    time inside provider calls.

Phase 2, 50 branches minted at once (`--burst`), on a fresh service and database with 2 s
polls (poll_interval_seconds = poll_max_interval_seconds = 2.0), generation.max_concurrent_jobs
= 64. Setup mints (a key with polls_to_complete=1, so no poll sleeps) the root and enough of
the ternary tree, level by level, that 50 unminted children of ready scenes exist; then the
burst key (create_delay=0.5 s, polls_to_complete=3, i.e. two 2 s poll sleeps, download_delay
0.01 s) claims 50 of them with one asyncio.gather and every branch is followed with
service.subscribe until it settles. `--rounds` bursts run one after another (round 2 claims
children of round 1), so RSS growth that repeats per round shows as a leak.
Measured per round: event-loop lag (a task sleeping 10 ms in a loop records how late each
wake-up is; target p99 < 20 ms), RSS of this process before the claims, after every job
ended, and the peak (psutil, sampled every 10 ms in a thread), CPU seconds of this process
and of the fake, creates the fake received and accepted (target: exactly 50 each), and the
provider overhead per mint as in phase 1 (under load; no target).
RSS target (the issue says "bounded" without a number; this script's reading): peak growth
in a round < 100 MB, i.e. under 2 MB per branch in flight (a job holding its 4 MiB clip in
memory would show as 200 MB), and from round 2 on, RSS after the round <= the peak of round
1 (no growth from round to round; `--rounds 4` shows the plateau better).
`--slow-callbacks MS` (diagnosis) lists the event-loop callbacks of burst round 1 that ran
for MS or longer, by the task's code segment, and the garbage collections of the round.

    .venv/bin/python bench/providers.py [--quick] [--runs 20] [--burst 50] [--rounds 2]
        [--clip-mb 4] [--postgres] [--fake-in-process] [--profile FILE] [--slow-callbacks MS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import math
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from _common import (
    MiB,
    RssSampler,
    default_postgres_url,
    fresh_postgres,
    migrate,
    percentile,
    print_table,
    quiet_logging,
    verdict,
)
from aiohttp import web

from tests.fakes._common import CHUNK_SIZE
from tests.fakes.openrouter_server import FakeOpenRouter
from tests.fixtures.providers import mint_with, paid_settings
from world import paths
from world.media import extract_last_frame_png, probe, render_title_card
from world.providers import build_provider
from world.providers.base import (
    PlanRequest,
    Provider,
    RenderRequest,
    RenderStatus,
    SummaryRequest,
)
from world.providers.transfer import Backoff
from world.service import WorldService
from world.settings import GenerationSettings, Settings
from world.types import Credentials, Status

WORLD = "default"
OVERHEAD_TARGET_MS = 100.0
LAG_TARGET_MS = 20.0
RSS_PEAK_TARGET_MB = 100.0
LAG_INTERVAL = 0.010
SEQ_KEY = "sk-test-bench-seq-7a41"
SETUP_KEY = "sk-test-bench-setup-2c9e"
BURST_KEY = "sk-test-bench-burst-d05b"
# Phase 1 script: what the fake and the provider are told to wait, per mint.
SEQ_POLL = 0.1
SEQ_BEHAVIOUR = {"create_delay": 0.25, "polls_to_complete": 3, "download_delay": 0.01}
# Phase 2 script.
BURST_POLL = 2.0
BURST_BEHAVIOUR = {"create_delay": 0.5, "polls_to_complete": 3, "download_delay": 0.01}
SETUP_BEHAVIOUR = {"polls_to_complete": 1}
STEPS = ("plan", "create", "polls", "download", "summary")


# --------------------------------------------------------------------------- the fake


class BenchFake(FakeOpenRouter):
    """FakeOpenRouter plus two control routes, and the time spent in its handlers.

    `GET /bench/stats` and `POST /bench/keys` ({"key", "behaviour"}) let the parent drive a
    fake in a child process; they are left out of every count. `handler_wall` adds up, per
    step of a mint, the wall time from the moment the fake's middleware gets a request until
    its handler returns (for a download: after the last byte was written), so it includes the
    injected sleeps as they really lasted. `handler_cpu` is process CPU time inside handlers;
    both are exact only while one request runs at a time (phase 1).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.handler_cpu = 0.0  # process CPU seconds inside handlers (sleeps cost none)
        self.handler_wall: dict[str, float] = dict.fromkeys((*STEPS, "other"), 0.0)

    def _step(self, request: web.Request) -> str:
        route = request.path.removeprefix(self.api_prefix)
        if request.method == "POST" and route == "/videos":
            return "create"
        if request.method == "GET" and route.startswith("/videos/") and route != "/videos/models":
            return "download" if route.endswith("/content") else "polls"
        if request.method == "POST" and route == "/chat/completions":
            body = self.chats[-1].body if self.chats else None
            return "plan" if body and "response_format" in body else "summary"
        return "other"

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/bench/stats", self._bench_stats)
        app.router.add_post("/bench/keys", self._bench_add_key)
        super()._add_routes(app)  # ends with the catch-all route, so ours come first

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/bench/"):
            return await handler(request)
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return await super()._middleware(request, handler)
        finally:
            self.handler_cpu += time.process_time() - cpu
            self.handler_wall[self._step(request)] += time.perf_counter() - wall

    def stats(self) -> dict[str, Any]:
        return {
            "creates": len(self.creates),
            "accepted": len(self.accepted_creates),
            "requests": len(self.requests),
            "chats": len(self.chats),
            "handler_cpu": self.handler_cpu,
            "handler_wall": dict(self.handler_wall),
            "internal_errors": len(self.internal_errors),
        }

    async def _bench_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _bench_add_key(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.add_key(body["key"], **body.get("behaviour", {}))
        return web.json_response({"ok": True})


async def serve_fake(clip_path: str) -> None:
    """Child-process mode: run BenchFake until stdin closes; print its addresses first."""
    async with BenchFake(clip=Path(clip_path).read_bytes()) as fake:
        origin = fake.base_url.removesuffix(fake.api_prefix)
        print(json.dumps({"base_url": fake.base_url, "control": origin}), flush=True)
        await asyncio.to_thread(sys.stdin.read)  # the parent closes stdin to stop us


class ChildFake:
    """The fake in a child process, driven over its control routes."""

    def __init__(self, clip: Path) -> None:
        self.clip = clip
        self.base_url = ""
        self._control = ""
        self._process: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def __aenter__(self) -> ChildFake:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--fake-server",
            str(self.clip),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), 60)
        if not line:
            raise RuntimeError("the fake server process exited before it started")
        info = json.loads(line)
        self.base_url, self._control = info["base_url"], info["control"]
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()
        process = self._process
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            code = await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            code = await process.wait()
        if code != 0 and exc == (None, None, None):
            raise RuntimeError(f"the fake server process exited with {code}")

    async def add_key(self, key: str, **behaviour: Any) -> None:
        assert self._http is not None
        async with self._http.post(
            f"{self._control}/bench/keys", json={"key": key, "behaviour": behaviour}
        ) as response:
            response.raise_for_status()

    async def stats(self) -> dict[str, Any]:
        assert self._http is not None
        async with self._http.get(f"{self._control}/bench/stats") as response:
            response.raise_for_status()
            return dict(await response.json())

    def cpu_seconds(self) -> float:
        if self.pid is None:
            return float("nan")
        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system


class InProcessFake:
    """The fake on this event loop (as in the tests); same interface as ChildFake."""

    pid = None

    def __init__(self, clip: Path) -> None:
        self.fake = BenchFake(clip=clip.read_bytes())
        self.base_url = ""

    async def __aenter__(self) -> InProcessFake:
        await self.fake.start()
        self.base_url = self.fake.base_url
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.fake.__aexit__(None, None, None)

    async def add_key(self, key: str, **behaviour: Any) -> None:
        self.fake.add_key(key, **behaviour)

    async def stats(self) -> dict[str, Any]:
        return self.fake.stats()

    def cpu_seconds(self) -> float:
        return float("nan")  # shares this process: not separable


# --------------------------------------------------------------------------- the timing proxy


class TimedProvider:
    """Thin proxy around a real provider: wall time inside each call, per branch.

    Calls are attributed to branches by request.path (plan, start_render), by job id
    (watch_render, download: the id start_render returned) and by the task that planned
    (summarise runs in the job's task, and SummaryRequest carries no path).
    Everything else (name, needs_key, estimates, close, ...) goes straight to the provider.
    """

    def __init__(self, inner: Provider) -> None:
        self._inner = inner
        self.seconds: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(STEPS, 0.0))
        self.polls: dict[str, int] = defaultdict(int)
        self._job_path: dict[str, str] = {}
        self._task_path: dict[int, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def reset(self) -> None:
        self.seconds.clear()
        self.polls.clear()
        self._job_path.clear()
        self._task_path.clear()

    def _add(self, path: str, step: str, t0: float) -> None:
        self.seconds[path][step] += time.perf_counter() - t0

    async def plan(self, request: PlanRequest, credentials: Credentials | None) -> Any:
        task = asyncio.current_task()
        if task is not None:
            self._task_path[id(task)] = request.path
        t0 = time.perf_counter()
        try:
            return await self._inner.plan(request, credentials)
        finally:
            self._add(request.path, "plan", t0)

    async def start_render(self, request: RenderRequest, credentials: Credentials | None) -> str:
        t0 = time.perf_counter()
        try:
            job_id = await self._inner.start_render(request, credentials)
        finally:
            self._add(request.path, "create", t0)
        self._job_path[job_id] = request.path
        return job_id

    async def watch_render(
        self, job_id: str, credentials: Credentials | None
    ) -> AsyncIterator[RenderStatus]:
        path = self._job_path.get(job_id, "?")
        inner = self._inner.watch_render(job_id, credentials)
        try:
            while True:
                t0 = time.perf_counter()
                try:
                    status = await inner.__anext__()
                except StopAsyncIteration:
                    return
                finally:
                    self._add(path, "polls", t0)
                self.polls[path] += 1
                yield status  # time the pipeline holds the status is not the provider's
        finally:
            await inner.aclose()  # type: ignore[attr-defined]

    async def download(
        self, job_id: str, credentials: Credentials | None, destination: Path
    ) -> int:
        path = self._job_path.get(job_id, "?")
        t0 = time.perf_counter()
        try:
            return await self._inner.download(job_id, credentials, destination)
        finally:
            self._add(path, "download", t0)

    async def summarise(self, request: SummaryRequest, credentials: Credentials | None) -> str:
        task = asyncio.current_task()
        path = self._task_path.get(id(task), "?") if task is not None else "?"
        t0 = time.perf_counter()
        try:
            return await self._inner.summarise(request, credentials)
        finally:
            self._add(path, "summary", t0)


def injected_seconds(
    behaviour: dict[str, Any], polls: int, poll_interval: float, clip_bytes: int
) -> dict[str, float]:
    """What the fake and the provider were told to wait, per step, for one mint."""
    backoff = Backoff(poll_interval, poll_interval)  # what watch_render builds (first == max)
    chunks = math.ceil(clip_bytes / CHUNK_SIZE)
    return {
        "plan": 0.0,
        "create": float(behaviour.get("create_delay", 0.0)),
        "polls": sum(backoff.next() for _ in range(max(0, polls - 1))),
        "download": float(behaviour.get("download_delay", 0.0)) * max(0, chunks - 1),
        "summary": 0.0,
    }


def overheads(
    provider: TimedProvider,
    path: str,
    behaviour: dict[str, Any],
    poll_interval: float,
    clip_bytes: int,
) -> dict[str, Any]:
    """Provider time, injected waits and overhead (ms) of one minted branch, per step."""
    seconds = provider.seconds[path]
    polls = provider.polls[path]
    if polls != behaviour["polls_to_complete"]:
        raise RuntimeError(f"{path!r}: {polls} poll steps, expected the scripted number")
    injected = injected_seconds(behaviour, polls, poll_interval, clip_bytes)
    steps = {step: (seconds[step] - injected[step]) * 1000 for step in STEPS}
    return {
        "provider_ms": sum(seconds.values()) * 1000,
        "injected_ms": sum(injected.values()) * 1000,
        "overhead_ms": sum(steps.values()),
        "steps": steps,
        "step_wall_ms": {step: seconds[step] * 1000 for step in STEPS},
    }


# --------------------------------------------------------------------------- samplers


class LoopLag:
    """How late a task sleeping LAG_INTERVAL in a loop wakes up: (offset s, lag ms) pairs."""

    def __init__(self, interval: float = LAG_INTERVAL) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None
        self.started = 0.0

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(self.interval)
            now = time.perf_counter()
            self.samples.append((now - self.started, (now - t0 - self.interval) * 1000))

    async def __aenter__(self) -> LoopLag:
        self.started = time.perf_counter()
        self._task = asyncio.create_task(self._run(), name="loop-lag")
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def lags(self) -> list[float]:
        return [max(0.0, lag) for _, lag in self.samples]


class SlowCallbacks:
    """Diagnosis (`--slow-callbacks MS`): event-loop callbacks that ran longer than MS.

    Wraps asyncio.events.Handle._run for the duration of a round. For a task step it names
    the segment of code that ran: the innermost frame of the task's await chain before the
    step (where it resumed) and after it (where it suspended again), preferring frames of
    world/ and storage/. Costs a few microseconds per callback, so lag figures taken with it
    on are slightly worse.
    """

    def __init__(self, threshold_ms: float) -> None:
        self.threshold = threshold_ms / 1000
        self.slow: dict[str, list[float]] = defaultdict(list)
        self.all_ms: list[float] = []
        self.gc_ms: dict[int, list[float]] = defaultdict(list)
        self._gc_start = 0.0
        self._original: Any = None

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc_ms[info["generation"]].append((time.perf_counter() - self._gc_start) * 1000)

    @staticmethod
    def _where(task: Any) -> str:
        coro: Any = task.get_coro() if hasattr(task, "get_coro") else None
        found = inner = "?"
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
            if frame is None:
                break
            code = frame.f_code
            inner = f"{code.co_qualname}:{frame.f_lineno}"
            if "/world/" in code.co_filename or "/storage/" in code.co_filename:
                found = inner
            coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        return found if found != "?" else inner

    def __enter__(self) -> SlowCallbacks:
        original = self._original = asyncio.events.Handle._run
        slow, threshold, where, all_ms = self.slow, self.threshold, self._where, self.all_ms

        def _run(handle: Any) -> None:
            task = getattr(handle._callback, "__self__", None)
            is_task = isinstance(task, asyncio.Task)
            before = where(task) if is_task else ""
            t0 = time.perf_counter()
            original(handle)
            elapsed = time.perf_counter() - t0
            all_ms.append(elapsed * 1000)
            if elapsed >= threshold:
                label = (
                    f"{before} -> {where(task) if not task.done() else 'done'}"
                    if is_task
                    else repr(handle._callback)[:80]
                )
                slow[label].append(elapsed * 1000)

        asyncio.events.Handle._run = _run  # type: ignore[method-assign]
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.events.Handle._run = self._original  # type: ignore[method-assign]
        gc.callbacks.remove(self._on_gc)

    def print(self, top: int = 15) -> None:
        slow = sorted(self.slow.items(), key=lambda kv: -sum(kv[1]))
        print()
        print(
            f"slow callbacks (>= {self.threshold * 1000:g} ms) in round 1: "
            f"{sum(len(v) for _, v in slow)} of {len(self.all_ms)} callbacks, "
            f"{sum(sum(v) for _, v in slow):.0f} of {sum(self.all_ms):.0f} ms on the loop; "
            "task segments as resumed-at -> suspended-at"
        )
        print_table(
            ["segment", "count", "total ms", "max ms"],
            [[label, len(v), sum(v), max(v)] for label, v in slow[:top]],
        )
        print(
            "garbage collections in round 1: "
            + "; ".join(
                f"gen {g}: {len(v)} taking {sum(v):.0f} ms (max {max(v):.1f} ms)"
                for g, v in sorted(self.gc_ms.items())
            )
            + f"; objects tracked now {len(gc.get_objects()):,}"
        )


def cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


class OtherLoad:
    """CPU seconds that processes other than this one and the fake used since creation.

    Other engineers' test runs on the same machine inflate lag and overhead; this says how
    much of the machine they took (busy CPU time of the whole machine, less ours).
    """

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        t = psutil.cpu_times()
        busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
        fake = self.fake.cpu_seconds()
        ours = cpu_seconds() + (0.0 if math.isnan(fake) else fake)
        return time.monotonic(), busy, ours, getattr(t, "steal", 0.0)

    def seconds(self) -> tuple[float, float, float]:
        """(CPU seconds of other processes, hypervisor steal seconds, wall seconds)."""
        now = self._sample()
        other = (now[1] - self.start[1]) - (now[2] - self.start[2])
        return other, now[3] - self.start[3], now[0] - self.start[0]

    def report(self, what: str) -> str:
        other, steal, wall = self.seconds()
        cpus = os.cpu_count() or 1
        share = other / (wall * cpus) if wall else 0.0
        line = (
            f"other processes on this machine during the {what}: {other:.1f} CPU-seconds in "
            f"{wall:.0f} s ({share:.0%} of {cpus} CPUs); hypervisor steal {steal:.1f} s"
        )
        if share > 0.1 or steal > 0.05 * wall * cpus:
            line += " - the figures are inflated by them; run again on an idle machine"
        return line


# --------------------------------------------------------------------------- set-up


def make_clip(folder: Path, size: str, seconds: int, total_bytes: int) -> tuple[Path, int]:
    """The clip the fake serves for every job: a real H.264 title card padded to
    `total_bytes` with one top-level ISO-BMFF `free` box (as bench/pipeline.py does), so the
    download has the size of a real 8 s 720p clip. Returns it and its last-frame PNG size."""
    width, height = (int(v) for v in size.split("x"))
    base = folder / "base.mp4"
    render_title_card(
        base,
        title="Benchmark clip",
        subtitle="served by the OpenRouter fake",
        seconds=seconds,
        width=width,
        height=height,
    )
    data = base.read_bytes()
    payload = max(0, total_bytes - len(data) - 8)
    clip = folder / "clip.mp4"
    clip.write_bytes(data + (payload + 8).to_bytes(4, "big") + b"free" + bytes(payload))
    info = probe(clip)
    poster = extract_last_frame_png(clip)
    print(
        f"clip: {clip.stat().st_size:,} bytes ({math.ceil(clip.stat().st_size / CHUNK_SIZE)} "
        f"chunks of 64 KiB), {info.codec} {info.width}x{info.height} "
        f"{info.duration_seconds:.1f}s; last frame PNG {len(poster):,} bytes"
    )
    return clip, len(poster)


def bench_settings(
    root: Path, base_url: str, database_url: str, poll: float, max_jobs: int
) -> Settings:
    """paid_settings for openrouter at the fake, with `poll` s polls and production timings
    for progress writes (make_settings' test value is 0.05 s)."""
    settings = paid_settings(
        root,
        "openrouter",
        base_url,
        providers={
            "poll_interval_seconds": poll,
            "poll_max_interval_seconds": poll,
            "request_timeout_seconds": 60.0,
            "create_timeout_seconds": 30.0,
        },
    )
    return replace(
        settings,
        database=replace(settings.database, url=database_url),
        generation=replace(
            settings.generation,
            max_concurrent_jobs=max_jobs,
            progress_write_interval_seconds=GenerationSettings.progress_write_interval_seconds,
        ),
    )


async def start_service(settings: Settings) -> tuple[WorldService, TimedProvider]:
    await migrate(settings.database.url)
    world = settings.worlds[0]
    data_dir = Path(settings.generation.spool_dir).parent
    provider = TimedProvider(build_provider(world, settings.providers, data_dir))
    service = await WorldService.start(settings, providers={WORLD: provider}, run_watchdog=False)
    await service.refresh_estimates()  # as tests.fixtures.providers.paid_service does
    return service, provider


async def settle(service: WorldService) -> None:
    """Wait for the spool clean-up that runs just after the ready event."""
    while service.running_jobs():
        await asyncio.sleep(0.001)


def bfs_paths() -> Iterator[str]:
    """ "", "0", "1", "2", "0/0", ...: every branch after its parent."""
    level = [""]
    while True:
        next_level = []
        for path in level:
            yield path
            next_level.extend(paths.children(path))
        level = next_level


async def database_url(stack: AsyncExitStack, args: argparse.Namespace, folder: Path) -> str:
    if args.postgres:
        url = await stack.enter_async_context(fresh_postgres(args.postgres_url))
    else:
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{folder / 'world.db'}"
    return str(url)


# --------------------------------------------------------------------------- phase 1


async def sequential_phase(
    args: argparse.Namespace, fake: Any, root: Path, clip_bytes: int, stack: AsyncExitStack
) -> list[dict[str, Any]]:
    url = await database_url(stack, args, root / "seq")
    settings = bench_settings(root / "seq", fake.base_url, url, SEQ_POLL, 16)
    service, provider = await start_service(settings)
    stack.push_async_callback(service.close)
    await fake.add_key(SEQ_KEY, **SEQ_BEHAVIOUR)
    branches = bfs_paths()
    warm = await mint_with(service, next(branches), SEQ_KEY)  # the root: warm-up, not counted
    if warm.status is not Status.READY:
        raise RuntimeError(f"warm-up mint ended {warm}")
    await settle(service)
    results = []
    profiler = cProfile.Profile() if args.profile else None
    for _ in range(args.runs):
        path = next(branches)
        provider.reset()
        before = await fake.stats()
        if profiler:
            profiler.enable()
        t0 = time.perf_counter()
        final = await mint_with(service, path, SEQ_KEY)
        wall = time.perf_counter() - t0
        if profiler:
            profiler.disable()
        if final.status is not Status.READY:
            raise RuntimeError(f"mint of {path!r} ended {final}")
        await settle(service)
        after = await fake.stats()
        if after["accepted"] - before["accepted"] != 1:
            raise RuntimeError(
                f"mint of {path!r}: {after['accepted'] - before['accepted']} creates"
            )
        result = overheads(provider, path, SEQ_BEHAVIOUR, SEQ_POLL, clip_bytes)
        result["wall_ms"] = wall * 1000
        result["pipeline_ms"] = result["wall_ms"] - result["provider_ms"]
        result["fake_cpu_ms"] = (after["handler_cpu"] - before["handler_cpu"]) * 1000
        result["requests"] = after["requests"] - before["requests"]
        # Client side: provider time minus the fake's measured handler time and minus the
        # provider's own (nominal) poll sleeps.
        sleeps = injected_seconds(SEQ_BEHAVIOUR, provider.polls[path], SEQ_POLL, 0)["polls"]
        fake_ms = {
            step: (after["handler_wall"][step] - before["handler_wall"][step]) * 1000
            for step in STEPS
        }
        result["fake_extra_ms"] = {  # the fake's time beyond what it was told to wait
            step: fake_ms[step] - (result["step_wall_ms"][step] - result["steps"][step])
            for step in STEPS
        }
        result["fake_extra_ms"]["polls"] += sleeps * 1000
        result["client_steps"] = {
            step: result["step_wall_ms"][step]
            - fake_ms[step]
            - (sleeps * 1000 if step == "polls" else 0)
            for step in STEPS
        }
        result["client_ms"] = sum(result["client_steps"].values())
        results.append(result)
    if profiler:
        profiler.dump_stats(args.profile)
        print(f"cProfile of the sequential mints written to {args.profile}")
    return results


def print_sequential(results: list[dict[str, Any]], in_process: bool) -> None:
    overhead = [r["overhead_ms"] for r in results]
    client = [r["client_ms"] for r in results]
    fake_extra = [sum(r["fake_extra_ms"].values()) for r in results]
    print()
    print(
        f"phase 1: {len(results)} mints one after another (fake "
        f"{'on this event loop' if in_process else 'in a child process'}); overhead = time "
        "inside provider calls - injected waits; client side = time inside provider calls - "
        "the fake's measured handler time - the provider's poll sleeps"
    )
    print_table(
        [
            "mints",
            "requests/mint",
            "wall p50 ms",
            "pipeline p50 ms",
            "provider p50 ms",
            "injected ms",
            "overhead p50",
            "p95",
            "p99",
            "max",
            "overhead p99 < 100 ms",
            "fake beyond injected p50",
            "fake cpu p50",
            "client side p50",
            "p99",
            "client side p99 < 100 ms",
        ],
        [
            [
                len(results),
                results[0]["requests"],
                percentile([r["wall_ms"] for r in results], 50),
                percentile([r["pipeline_ms"] for r in results], 50),
                percentile([r["provider_ms"] for r in results], 50),
                results[0]["injected_ms"],
                percentile(overhead, 50),
                percentile(overhead, 95),
                percentile(overhead, 99),
                max(overhead),
                verdict(percentile(overhead, 99) < OVERHEAD_TARGET_MS),
                percentile(fake_extra, 50),
                "n/a" if in_process else percentile([r["fake_cpu_ms"] for r in results], 50),
                percentile(client, 50),
                percentile(client, 99),
                verdict(percentile(client, 99) < OVERHEAD_TARGET_MS),
            ]
        ],
    )
    print()
    print("phase 1 by step (ms per mint)")
    rows = []
    for step in STEPS:
        over = [r["steps"][step] for r in results]
        extra = [r["fake_extra_ms"][step] for r in results]
        side = [r["client_steps"][step] for r in results]
        rows.append(
            [
                step,
                percentile([r["step_wall_ms"][step] for r in results], 50),
                results[0]["step_wall_ms"][step] - results[0]["steps"][step],
                percentile(over, 50),
                percentile(over, 99),
                percentile(extra, 50),
                percentile(side, 50),
                percentile(side, 99),
            ]
        )
    print_table(
        [
            "step",
            "wall p50",
            "injected",
            "overhead p50",
            "p99",
            "fake beyond injected p50",
            "client side p50",
            "p99",
        ],
        rows,
    )


# --------------------------------------------------------------------------- phase 2


async def mint_many(service: WorldService, batch: list[str], key: str) -> list[Any]:
    """Claim every branch of `batch` at once, then follow each until it settles."""
    credentials = Credentials(key)
    claims = await asyncio.gather(
        *(service.claim(WORLD, p, credentials, f"member-{i}") for i, p in enumerate(batch))
    )
    refused = [c for c in claims if not c.claimed_by_caller]
    if refused:
        raise RuntimeError(f"{len(refused)} claims did not start a job, first: {refused[0]}")

    async def follow(path: str) -> Any:
        last = None
        async for event in service.subscribe(WORLD, path):
            last = event
        return last

    async with asyncio.timeout(120):
        finals = await asyncio.gather(*(follow(p) for p in batch))
    failed = [f for f in finals if f is None or f.status is not Status.READY]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(batch)} mints did not end ready: {failed[0]}")
    return finals


async def burst_phase(
    args: argparse.Namespace, fake: Any, root: Path, clip_bytes: int, stack: AsyncExitStack
) -> list[dict[str, Any]]:
    url = await database_url(stack, args, root / "burst")
    settings = bench_settings(root / "burst", fake.base_url, url, BURST_POLL, max(64, args.burst))
    service, provider = await start_service(settings)
    stack.push_async_callback(service.close)
    await fake.add_key(SETUP_KEY, **SETUP_BEHAVIOUR)
    await fake.add_key(BURST_KEY, **BURST_BEHAVIOUR)

    # Set-up: mint level by level until `burst` unminted children of ready scenes exist.
    t0 = time.perf_counter()
    ready: list[str] = []
    claimable = [""]
    while len(claimable) < args.burst:
        wanted = math.ceil((args.burst - len(claimable)) / 2)  # each mint turns 1 into 3
        batch, claimable = claimable[:wanted], claimable[wanted:]
        await mint_many(service, batch, SETUP_KEY)
        ready += batch
        claimable += [c for p in batch for c in paths.children(p)]
    await settle(service)
    print()
    print(
        f"phase 2 set-up: {len(ready)} branches minted (polls_to_complete=1) in "
        f"{time.perf_counter() - t0:.1f}s; {len(claimable)} claimable"
    )

    rounds = []
    for number in range(1, args.rounds + 1):
        batch, claimable = claimable[: args.burst], claimable[args.burst :]
        provider.reset()
        gc.collect()
        before = await fake.stats()
        fake_cpu0, cpu0 = fake.cpu_seconds(), cpu_seconds()
        round_load = OtherLoad(fake)
        diagnose = (
            SlowCallbacks(args.slow_callbacks) if args.slow_callbacks and number == 1 else None
        )
        with RssSampler() as rss, diagnose or contextlib.nullcontext():
            async with LoopLag() as lag:
                t0 = time.perf_counter()
                await mint_many(service, batch, BURST_KEY)
                await settle(service)
                wall = time.perf_counter() - t0
            rss_after = rss.process.memory_info().rss
        cpu, fake_cpu = cpu_seconds() - cpu0, fake.cpu_seconds() - fake_cpu0
        other_cpu, steal, _ = round_load.seconds()
        after = await fake.stats()
        claimable += [c for p in batch for c in paths.children(p)]
        per_mint = [overheads(provider, p, BURST_BEHAVIOUR, BURST_POLL, clip_bytes) for p in batch]
        worst = max(lag.samples, key=lambda s: s[1])
        rounds.append(
            {
                "round": number,
                "branches": len(batch),
                "depths": sorted({paths.depth(p) for p in batch}),
                "wall_s": wall,
                "lags": lag.lags,
                "worst_at_s": worst[0],
                "samples": lag.samples,
                "rss_before": rss.baseline / MiB,
                "rss_after": rss_after / MiB,
                "rss_peak": rss.peak / MiB,
                "creates": after["creates"] - before["creates"],
                "accepted": after["accepted"] - before["accepted"],
                "cpu_s": cpu,
                "fake_cpu_s": fake_cpu,
                "other_cpu_s": other_cpu,
                "steal_s": steal,
                "overhead": [m["overhead_ms"] for m in per_mint],
                "create_ms": [m["steps"]["create"] for m in per_mint],
                "download_ms": [m["steps"]["download"] for m in per_mint],
            }
        )
        if diagnose is not None:
            diagnose.print()
    return rounds


def print_burst(rounds: list[dict[str, Any]], burst: int, in_process: bool) -> None:
    print()
    print(
        f"phase 2: {burst} branches claimed at once, 2 s polls, "
        f"create_delay {BURST_BEHAVIOUR['create_delay']} s, polls_to_complete "
        f"{BURST_BEHAVIOUR['polls_to_complete']}; fake "
        f"{'on this event loop' if in_process else 'in a child process'}"
    )
    rows = []
    for r in rounds:
        lags = r["lags"]
        rss_growth = r["rss_peak"] - r["rss_before"]
        rss_ok = rss_growth < RSS_PEAK_TARGET_MB and (
            r["round"] == 1 or r["rss_after"] <= rounds[0]["rss_peak"]
        )
        rows.append(
            [
                r["round"],
                ",".join(str(d) for d in r["depths"]),
                r["wall_s"],
                len(lags),
                percentile(lags, 50),
                percentile(lags, 99),
                max(lags),
                r["worst_at_s"],
                r["rss_before"],
                r["rss_peak"],
                r["rss_after"],
                rss_growth,
                r["cpu_s"],
                "n/a" if in_process else r["fake_cpu_s"],
                r["other_cpu_s"],
                r["steal_s"],
                f"{r['creates']}/{r['accepted']}",
                verdict(percentile(lags, 99) < LAG_TARGET_MS),
                verdict(rss_ok),
                verdict(r["creates"] == burst and r["accepted"] == burst),
            ]
        )
    print_table(
        [
            "round",
            "depths",
            "wall s",
            "lag n",
            "lag p50 ms",
            "p99",
            "max",
            "max at s",
            "rss before MB",
            "peak",
            "after",
            "peak growth",
            "cpu s",
            "fake cpu s",
            "others cpu s",
            "steal s",
            "creates/accepted",
            "lag p99 < 20 ms",
            "rss bounded",
            "exactly 50 creates",
        ],
        rows,
    )
    print()
    print(
        "phase 2 provider overhead per mint under load (ms; injected waits subtracted; no target)"
    )
    print_table(
        ["round", "overhead p50", "p99", "max", "create p99", "download p99"],
        [
            [
                r["round"],
                percentile(r["overhead"], 50),
                percentile(r["overhead"], 99),
                max(r["overhead"]),
                percentile(r["create_ms"], 99),
                percentile(r["download_ms"], 99),
            ]
            for r in rounds
        ],
    )
    print()
    print("phase 2 event-loop lag by 0.5 s window of round 1 (windows with max lag >= 5 ms)")
    windows: dict[int, list[float]] = defaultdict(list)
    for offset, lag in rounds[0]["samples"]:
        windows[int(offset * 2)].append(max(0.0, lag))
    print_table(
        ["from s", "samples", "p50 ms", "max ms"],
        [
            [w / 2, len(v), percentile(v, 50), max(v)]
            for w, v in sorted(windows.items())
            if max(v) >= 5.0
        ],
    )


# --------------------------------------------------------------------------- main


async def main(args: argparse.Namespace) -> int:
    print(
        "providers: OpenRouterProvider through WorldService against the loopback fake "
        f"(database {'postgres' if args.postgres else 'sqlite'}, local store); "
        f"{os.cpu_count()} CPUs, load average {_load()}"
    )
    async with AsyncExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sw-bench-prov-")))
        (root / "clip").mkdir()
        clip, _ = await asyncio.to_thread(
            make_clip, root / "clip", args.clip_size, args.clip_seconds, int(args.clip_mb * MiB)
        )
        clip_bytes = clip.stat().st_size
        fake_class = InProcessFake if args.fake_in_process else ChildFake
        fake = await stack.enter_async_context(fake_class(clip))
        others = OtherLoad(fake)
        if args.runs:
            phase_load = OtherLoad(fake)
            results = await sequential_phase(args, fake, root, clip_bytes, stack)
            print_sequential(results, args.fake_in_process)
            print(phase_load.report("phase 1"))
        if args.rounds:
            rounds = await burst_phase(args, fake, root, clip_bytes, stack)
            print_burst(rounds, args.burst, args.fake_in_process)
        print()
        print(others.report("whole run"))
        stats = await fake.stats()
        if stats["internal_errors"]:
            raise RuntimeError(f"the fake hit {stats['internal_errors']} internal errors")
    return 0


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 sequential mints, 1 burst round")
    parser.add_argument("--runs", type=int, default=None, help="sequential mints (default 20)")
    parser.add_argument("--burst", type=int, default=50, help="branches claimed at once")
    parser.add_argument("--rounds", type=int, default=None, help="burst rounds (default 2)")
    parser.add_argument("--clip-size", default="1280x720", help="title-card size WxH")
    parser.add_argument("--clip-seconds", type=int, default=4)
    parser.add_argument("--clip-mb", type=float, default=4.0, help="clip size the fake serves")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--postgres-url", default=default_postgres_url())
    parser.add_argument(
        "--fake-in-process", action="store_true", help="run the fake on this event loop"
    )
    parser.add_argument("--profile", help="write a cProfile of the sequential mints here")
    parser.add_argument(
        "--slow-callbacks",
        type=float,
        metavar="MS",
        help="diagnosis: list event-loop callbacks of burst round 1 that took >= MS",
    )
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 5 if args.quick else 20
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    return args


if __name__ == "__main__":
    quiet_logging()
    if len(sys.argv) == 3 and sys.argv[1] == "--fake-server":
        asyncio.run(serve_fake(sys.argv[2]))
        sys.exit(0)
    sys.exit(asyncio.run(main(parse_args(sys.argv[1:]))))
