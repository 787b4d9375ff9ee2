"""Benchmark: `WorldService.film` of a 20-clip path, by stream copy and by re-encode (issue 12).

Seeds a straight path of `--clips` (20) ready scenes, each with a real H.264 clip made by
`world.media.render_scene_clip` (`--seconds` 4 s at 24 fps) in a local store, on a fresh
SQLite file, then times one `service.film` call from the request to the stored film:

- remux: every clip `--size` (640x360), so the clips are copied packet by packet;
- re-encode: every other clip at `--other-size` (480x270), so the film is re-encoded to H.264
  at the larger size (libx264 veryfast, CRF 23).

Per case it prints the wall time, the CPU time of this process, the film's length, frames and
bytes, the peak RSS growth over the RSS right before the call (psutil, sampled every 5 ms in a
thread) and the time of a second call for the same path (a cache hit: nothing is joined).
Targets: peak RSS growth under 128 MB for both, whatever the number of clips (the film is
joined clip by clip from files, never held in memory; libx264's own working set is most of a
re-encode's growth: about 75 MB at 1280x720, 20 MB at 640x360), and the cache hit under
100 ms.

    .venv/bin/python bench/film.py [--clips 20] [--seconds 4] [--size 640x360]
                                   [--other-size 480x270]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import threading
import time
from pathlib import Path

import psutil
from _common import print_table, quiet_logging, verdict

from tests.fixtures.film import decode, seed_path
from tests.fixtures.world import make_settings, start_service

MB = 1024 * 1024
RSS_TARGET_MB = 128
CACHE_TARGET_MS = 100


def _size(text: str) -> tuple[int, int]:
    width, height = (int(part) for part in text.lower().split("x"))
    return width, height


class PeakRss:
    """The highest RSS of this process while it runs, sampled in a thread."""

    def __init__(self, interval: float = 0.005) -> None:
        self.process = psutil.Process()
        self.interval = interval
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


async def one_case(root: Path, looks: list[tuple[int, int, int]], seconds: int) -> list[object]:
    service = await start_service(make_settings(root))
    try:
        made = await seed_path(service, root / "clips", looks, seconds=seconds)
        gc.collect()
        before = psutil.Process().memory_info().rss
        cpu = time.process_time()
        started = time.perf_counter()
        with PeakRss() as rss:
            film = await service.film("default", made[-1])
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        started = time.perf_counter()
        again = await service.film("default", made[-1])
        cached_ms = (time.perf_counter() - started) * 1000
        assert again.cached and again.key == film.key
        stored = Path(service.settings.storage.local_dir) / film.key
        codec, width, height, frames, duration = decode(stored)
        growth = (rss.peak - before) / MB
        return [
            film.method,
            film.clips,
            f"{width}x{height} {codec}",
            f"{duration:.2f}",
            frames,
            f"{film.bytes / MB:.2f}",
            f"{wall:.2f}",
            f"{cpu:.2f}",
            f"{growth:.1f}",
            f"{cached_ms:.1f}",
            verdict(growth < RSS_TARGET_MB and cached_ms < CACHE_TARGET_MS),
        ]
    finally:
        await service.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--other-size", default="480x270")
    args = parser.parse_args()
    quiet_logging()
    width, height = _size(args.size)
    other = _size(args.other_size)
    same = [(width, height, 24)] * args.clips
    mixed = [(width, height, 24) if i % 2 == 0 else (*other, 24) for i in range(args.clips)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="sw-film-") as tmp:
        for name, looks in (("remux", same), ("reencode", mixed)):
            rows.append(await one_case(Path(tmp) / name, looks, args.seconds))
    print(
        f"film of a {args.clips}-clip path ({args.seconds} s clips at {args.size}; "
        f"re-encode mixes in {args.other_size})"
    )
    print_table(
        [
            "method",
            "clips",
            "film",
            "seconds",
            "frames",
            "MB",
            "wall s",
            "cpu s",
            "peak RSS +MB",
            "cached ms",
            f"RSS < {RSS_TARGET_MB} MB, cache < {CACHE_TARGET_MS} ms",
        ],
        rows,
    )


if __name__ == "__main__":
    asyncio.run(main())
