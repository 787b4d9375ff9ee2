"""Benchmark: generation-pipeline overhead besides provider time, and RSS growth on a 200 MB clip.

Uses `BenchProvider`, a benchmark stand-in defined below (not a real provider, never used by
the bot): plan, start_render and watch_render return at once, download streams a prepared
clip to the spool file in 1 MiB chunks in a worker thread, summarise returns at once. The
time spent inside its calls is the "provider time"; everything else from `service.claim` to
the ready event is pipeline overhead: database writes, last-frame extraction (PyAV) and the
PNG poster, the continuity-frame read of the parent poster, uploads of video and poster to
S3 (storage.s3.S3Store against moto's standalone server, run in a child process so neither
its CPU nor its memory counts here), the summary step and publishing.

Clips: a short real H.264 title card (world.media.render_title_card) padded to ~5 MB and
~200 MB with a top-level ISO-BMFF `free` box appended (4-byte big-endian size, b"free",
payload), checked with world.media.probe and extract_last_frame_png.

Printed: for `--runs` jobs with the 5 MB clip, p50/p99 of overhead (target < 300 ms) and of
`renders.upload_ms`; for `--big-runs` jobs with the 200 MB clip, the overhead, upload_ms and
peak RSS growth of this process during the job (psutil RSS sampled every 10 ms in a thread;
growth = peak - RSS just before the claim; target < 30 MB), plus (unless `--no-breakdown`)
the RSS growth of the job's heavy steps each run alone in a fresh process.

    .venv/bin/python bench/pipeline.py [--runs 20] [--big-runs 2] [--postgres] [--no-breakdown]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from _common import (
    MiB,
    MotoProcess,
    RssSampler,
    default_postgres_url,
    fresh_postgres,
    make_settings,
    migrate,
    percentile,
    print_table,
    quiet_logging,
    verdict,
)
from sqlalchemy import select

from storage.s3 import S3Store
from world import paths
from world.media import PNG_SIGNATURE, extract_last_frame_png, probe, render_title_card
from world.models import Render
from world.providers.base import (
    Plan,
    PlanChoice,
    PlanRequest,
    RenderRequest,
    RenderStatus,
    SummaryRequest,
)
from world.service import WorldService
from world.types import Credentials, Status

WORLD = "default"
SMALL_BYTES = 5 * MiB
BIG_BYTES = 200 * MiB
OVERHEAD_TARGET_MS = 300.0
RSS_TARGET_MB = 30.0
CHUNK = MiB


# --------------------------------------------------------------------------- the stand-in


class BenchProvider:
    """BENCHMARK STAND-IN, not a real provider: instant plan/render/summary, and a download
    that copies `self.clip` to the destination in 1 MiB chunks in a worker thread.

    `busy_seconds` adds up the wall time spent inside its calls (the "provider time").
    """

    name = "bench"
    needs_key = False

    def __init__(self, clip: Path) -> None:
        self.clip = clip
        self.busy_seconds = 0.0
        self.renders = 0

    async def validate_key(self, credentials: Credentials | None) -> None:
        return None

    async def plan(self, request: PlanRequest, credentials: Credentials | None) -> Plan:
        t0 = time.perf_counter()
        n = request.depth
        plan = Plan(
            title=f"Bench scene at depth {n}",
            narration=(
                "The Courier vaults a rail of humming glass as the violet rift yawns wider, "
                "and three portals flicker open in the rain of sparks."
            ),
            video_prompt="Wide shot, a runner in a storm-coat leaps between floating stones.",
            choices=(
                PlanChoice("Dive through the red portal", "Red portal"),
                PlanChoice("Bargain with the lantern keeper", "Bargain"),
                PlanChoice("Hide behind the rune-stone and watch", "Hide"),
            ),
        )
        self.busy_seconds += time.perf_counter() - t0
        return plan

    async def start_render(self, request: RenderRequest, credentials: Credentials | None) -> str:
        self.renders += 1
        return f"bench-{uuid.uuid4().hex}"

    async def watch_render(
        self, job_id: str, credentials: Credentials | None
    ) -> AsyncIterator[RenderStatus]:
        yield RenderStatus(100, done=True)

    async def download(
        self, job_id: str, credentials: Credentials | None, destination: Path
    ) -> int:
        t0 = time.perf_counter()
        try:
            return await asyncio.to_thread(_copy_in_chunks, self.clip, Path(destination))
        finally:
            self.busy_seconds += time.perf_counter() - t0

    async def summarise(self, request: SummaryRequest, credentials: Credentials | None) -> str:
        return "- Now: the Courier reached the gate.\n- Open paths: portal; bargain; hide."

    async def close(self) -> None:
        return None


def _copy_in_chunks(source: Path, destination: Path) -> int:
    size = 0
    with source.open("rb") as src, destination.open("wb") as out:
        while chunk := src.read(CHUNK):
            out.write(chunk)
            size += len(chunk)
    return size


# --------------------------------------------------------------------------- clips


def make_clip(base: Path, destination: Path, total_bytes: int) -> None:
    """`base` followed by one top-level `free` box so the file is `total_bytes` long."""
    base_bytes = base.read_bytes()
    payload = total_bytes - len(base_bytes) - 8
    if payload < 0 or payload + 8 >= 2**32:
        raise ValueError(f"cannot pad {len(base_bytes)} bytes to {total_bytes}")
    block = bytes(range(256)) * (CHUNK // 256)
    with destination.open("wb") as out:
        out.write(base_bytes)
        out.write((payload + 8).to_bytes(4, "big") + b"free")
        while payload > 0:
            piece = block[: min(payload, len(block))]
            out.write(piece)
            payload -= len(piece)


def top_level_boxes(path: Path) -> list[tuple[str, int]]:
    """(type, size) of every top-level ISO-BMFF box; raises if they do not tile the file."""
    boxes = []
    total = path.stat().st_size
    with path.open("rb") as handle:
        offset = 0
        while offset < total:
            handle.seek(offset)
            header = handle.read(16)
            size = int.from_bytes(header[:4], "big")
            kind = header[4:8].decode("latin-1")
            if size == 1:
                size = int.from_bytes(header[8:16], "big")
            if size < 8 or offset + size > total:
                raise ValueError(f"bad box {kind!r} at {offset} in {path.name}")
            boxes.append((kind, size))
            offset += size
    return boxes


def prepare_clips(folder: Path, size: str, seconds: int) -> dict[str, Path]:
    width, height = (int(v) for v in size.split("x"))
    base = folder / "base.mp4"
    render_title_card(
        base,
        title="Benchmark clip",
        subtitle="A real H.264 title card padded with a free box",
        seconds=seconds,
        width=width,
        height=height,
    )
    clips = {}
    for name, total in (("5MB", SMALL_BYTES), ("200MB", BIG_BYTES)):
        clip = folder / f"clip-{name}.mp4"
        make_clip(base, clip, total)
        info = probe(clip)
        poster = extract_last_frame_png(clip)
        boxes = top_level_boxes(clip)
        if info.codec != "h264" or not poster.startswith(PNG_SIGNATURE) or boxes[-1][0] != "free":
            raise RuntimeError(f"prepared clip {clip.name} is not usable: {info} {boxes}")
        print(
            f"clip {name}: {clip.stat().st_size:,} bytes, {info.codec} {info.width}x"
            f"{info.height} {info.duration_seconds:.1f}s, boxes {[b[0] for b in boxes]}, "
            f"last frame PNG {len(poster):,} bytes"
        )
        clips[name] = clip
    return clips


# --------------------------------------------------------------------------- measuring


async def run_job(
    service: WorldService, provider: BenchProvider, path: str, clip: Path
) -> dict[str, Any]:
    """Claim `path`, follow it to ready; wall time, provider time and the renders row."""
    provider.clip = clip
    provider.busy_seconds = 0.0
    stages: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    result = await service.claim(WORLD, path, None, "bench")
    if not result.claimed_by_caller:
        raise RuntimeError(f"claim of {path!r} did not start a job: {result}")
    final = None
    async for event in service.subscribe(WORLD, path):
        final = event
        if event.stage and (not stages or stages[-1][1] != event.stage):
            stages.append((time.monotonic(), event.stage))
    wall = time.perf_counter() - t0
    if final is None or final.status is not Status.READY:
        raise RuntimeError(f"job for {path!r} ended {final}")
    while service.running_jobs():  # spool clean-up runs just after the ready event
        await asyncio.sleep(0.001)
    async with service.db.session() as session:
        row = await session.scalar(select(Render).where(Render.path == path))
    assert row is not None
    return {
        "wall_ms": wall * 1000,
        "provider_ms": provider.busy_seconds * 1000,
        "overhead_ms": (wall - provider.busy_seconds) * 1000,
        "upload_ms": row.upload_ms,
        "total_ms": row.total_ms,
        "video_ms": row.video_ms,
        "stages": stages,
    }


def _stage_at(stages: list[tuple[float, str]], when: float) -> str:
    current = "claim"
    for started, stage in stages:
        if started <= when:
            current = stage
    return current


# --------------------------------------------------------------------------- breakdown probes


def rss_probe(kind: str, clip: str, storage_json: str) -> None:
    """Child-process mode: RSS growth of one heavy step of the job, alone, in a fresh process."""
    from boto3.s3.transfer import S3Transfer

    from world.settings import StorageSettings

    store = S3Store(StorageSettings(**json.loads(storage_json)))
    source = Path(clip)
    warm = source.with_name(f"warm-{uuid.uuid4().hex}.bin")
    warm.write_bytes(b"x" * 1024)
    asyncio.run(store.put_file(f"bench/warm-{warm.name}", warm, "video/mp4"))  # load botocore
    warm.unlink()
    extract_last_frame_png(source)  # load PyAV/Pillow codecs
    key = f"bench/probe-{uuid.uuid4().hex}.mp4"
    with RssSampler() as sampler:
        t0 = time.perf_counter()
        if kind == "extract":
            extract_last_frame_png(source)
        elif kind == "put_file":
            asyncio.run(store.put_file(key, source, "video/mp4"))
        elif kind == "upload_file":
            # The same client and TransferConfig, but handing s3transfer the file name.
            S3Transfer(client=store._client, config=store._transfer).upload_file(
                str(source), store.bucket, key, extra_args={"ContentType": "video/mp4"}
            )
        else:
            raise SystemExit(f"unknown probe {kind}")
        seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "growth_mb": sampler.growth_mb}), flush=True)


def run_probe(kind: str, clip: Path, storage: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-probe", kind, str(clip), json.dumps(storage)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"probe {kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main


async def main(args: argparse.Namespace) -> int:
    print(
        "pipeline: overhead = wall time from service.claim to the ready event minus time "
        "inside BenchProvider calls (a benchmark stand-in; its download copies the clip)"
    )
    async with AsyncExitStack() as stack:
        moto = stack.enter_context(MotoProcess())
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sw-bench-pipe-")))
        clips = await asyncio.to_thread(
            prepare_clips, root / "clips", args.clip_size, args.clip_seconds
        )
        if args.postgres:
            database_url = await stack.enter_async_context(fresh_postgres(args.postgres_url))
        else:
            database_url = f"sqlite:///{root / 'world.db'}"
        storage = moto.new_bucket()
        settings = make_settings(root, database_url)
        settings = replace(settings, storage=storage)
        await migrate(database_url)
        provider = BenchProvider(clips["5MB"])
        store = S3Store(storage)
        service = await WorldService.start(
            settings, store=store, providers={WORLD: provider}, run_watchdog=False
        )
        stack.push_async_callback(service.close)
        db_name = "postgres" if args.postgres else "sqlite"

        branch = _branches()
        await run_job(service, provider, next(branch), clips["5MB"])  # warm-up, not counted
        small = [
            await run_job(service, provider, next(branch), clips["5MB"]) for _ in range(args.runs)
        ]
        overhead = [r["overhead_ms"] for r in small]
        upload = [r["upload_ms"] for r in small]
        print()
        print_table(
            [
                "clip",
                "db",
                "runs",
                "wall p50 ms",
                "provider p50 ms",
                "overhead p50 ms",
                "overhead p99 ms",
                "upload_ms p50",
                "upload_ms p99",
                "total_ms p50",
                "overhead p99 < 300 ms",
            ],
            [
                [
                    "5MB",
                    db_name,
                    len(small),
                    percentile([r["wall_ms"] for r in small], 50),
                    percentile([r["provider_ms"] for r in small], 50),
                    percentile(overhead, 50),
                    percentile(overhead, 99),
                    percentile(upload, 50),
                    percentile(upload, 99),
                    percentile([r["total_ms"] for r in small], 50),
                    verdict(percentile(overhead, 99) < OVERHEAD_TARGET_MS),
                ]
            ],
        )

        big_rows = []
        for run in range(args.big_runs):
            path = next(branch)
            with RssSampler() as sampler:
                result = await run_job(service, provider, path, clips["200MB"])
            big_rows.append(
                [
                    "200MB",
                    run + 1,
                    result["wall_ms"] / 1000,
                    result["provider_ms"],
                    result["overhead_ms"],
                    result["upload_ms"],
                    sampler.baseline / MiB,
                    sampler.peak / MiB,
                    sampler.growth_mb,
                    _stage_at(result["stages"], sampler.peak_at),
                    verdict(sampler.growth_mb < RSS_TARGET_MB),
                ]
            )
        print()
        print_table(
            [
                "clip",
                "run",
                "wall s",
                "provider ms",
                "overhead ms",
                "upload_ms",
                "rss before MB",
                "rss peak MB",
                "growth MB",
                "peak in stage",
                "growth < 30 MB",
            ],
            big_rows,
        )

        if not args.no_breakdown:
            storage_json = {
                k: getattr(storage, k)
                for k in storage.__dataclass_fields__  # a plain dict for the child process
            }
            probes = [
                ("extract_last_frame_png(200MB clip)", "extract"),
                ("S3Store.put_file(200MB clip)", "put_file"),
                ("same client+TransferConfig, upload_file(path)", "upload_file"),
            ]
            rows = []
            for label, kind in probes:
                measured = await asyncio.to_thread(run_probe, kind, clips["200MB"], storage_json)
                rows.append([label, measured["seconds"], measured["growth_mb"]])
            print()
            print("breakdown: each step alone in a fresh process (after warm-up), RSS growth")
            print_table(["step", "seconds", "rss growth MB"], rows)
        await asyncio.to_thread(shutil.rmtree, root / "clips", True)
    return 0


def _branches() -> Iterator[str]:
    """Fresh branches whose parent is minted before them: "", "0", "1", "2", "0/0", ..."""
    level = [""]
    while True:
        next_level = []
        for path in level:
            yield path
            next_level.extend(paths.children(path))
        level = next_level


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="jobs with the 5 MB clip")
    parser.add_argument("--big-runs", type=int, default=2, help="jobs with the 200 MB clip")
    parser.add_argument("--clip-size", default="1280x720", help="title-card size WxH")
    parser.add_argument("--clip-seconds", type=int, default=4)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--postgres-url", default=default_postgres_url())
    parser.add_argument("--no-breakdown", action="store_true", help="skip per-step RSS probes")
    return parser.parse_args(argv)


if __name__ == "__main__":
    quiet_logging()
    if len(sys.argv) == 5 and sys.argv[1] == "--rss-probe":
        rss_probe(sys.argv[2], sys.argv[3], sys.argv[4])
        sys.exit(0)
    sys.exit(asyncio.run(main(parse_args(sys.argv[1:]))))
