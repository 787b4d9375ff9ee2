"""Benchmark: CPU cost and size of the offline provider's animated clip (issue 10).

Renders `--clips` (20) clips per size with `world.media.render_scene_clip` exactly as the
offline provider does (24 fps, the branch path as the scene's seed and the world id as the
palette's, the three choices teased at the end, the scene's portals; see
`world.providers.offline.OfflineProvider.download`), each for a different branch path of the
offline planner's world, one after another in this process, after one warm-up clip (fonts,
codec setup). Per clip it takes the CPU time of this process (`time.process_time()`, all
threads: the encoder runs on one) and the wall time around the call, and the file's size.

Printed per size: CPU p50/p95/max ms, wall p50 ms, bytes p50/max, and whether the issue's
budget holds ("well under a second of CPU for a 4 s clip at 640x360", taken as p95 < 500 ms
at 640x360; the other sizes are reported only). 320x180 is the default `offline_width` x
`offline_height`, which the tests and the bot use.

    .venv/bin/python bench/offline_clip.py [--clips 20] [--seconds 4] [--sizes 320x180,640x360]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import percentile, print_table, quiet_logging, verdict

from world.media import render_scene_clip
from world.providers.base import PlanRequest
from world.providers.offline import CLIP_FPS
from world.providers.offline_story import clip_look, clip_words, plan_scene
from world.settings import DEFAULT_BASE_PROMPT, DEFAULT_GUIDANCE

WORLD = "default"
BUDGET_SIZE = (640, 360)
BUDGET_P95_MS = 500.0


def branch_paths(count: int) -> list[str]:
    """The first `count` branch paths breadth first: "", "0", "1", "2", "0/0", ..."""
    paths, frontier = [""], [""]
    while len(paths) < count:
        frontier = [f"{p}/{i}" if p else str(i) for p in frontier for i in range(3)]
        paths.extend(frontier)
    return paths[:count]


def render(path: str, destination: Path, seconds: int, size: tuple[int, int]) -> int:
    plan = plan_scene(
        PlanRequest(
            world_id=WORLD,
            base_prompt=DEFAULT_BASE_PROMPT,
            guidance=DEFAULT_GUIDANCE,
            path=path,
            depth=len(path.split("/")) if path else 0,
            video_seconds=8,
            model="local",
        )
    )
    look = clip_look(WORLD, path)
    return render_scene_clip(
        destination,
        title=plan.title,
        subtitle=clip_words(plan.video_prompt.splitlines()[0], 14),
        choices=look.choices,
        seed=path,
        palette_seed=WORLD,
        portals=look.portals,
        seconds=seconds,
        width=size[0],
        height=size[1],
        fps=CLIP_FPS,
    )


def measure(clips: int, seconds: int, size: tuple[int, int], folder: Path) -> dict[str, float]:
    render("warm-up", folder / "warm-up.mp4", seconds, size)
    cpu_ms: list[float] = []
    wall_ms: list[float] = []
    sizes: list[float] = []
    for index, path in enumerate(branch_paths(clips)):
        cpu, wall = time.process_time(), time.perf_counter()
        sizes.append(render(path, folder / f"clip-{index}.mp4", seconds, size))
        cpu_ms.append((time.process_time() - cpu) * 1000)
        wall_ms.append((time.perf_counter() - wall) * 1000)
    return {
        "cpu_p50": percentile(cpu_ms, 50),
        "cpu_p95": percentile(cpu_ms, 95),
        "cpu_max": max(cpu_ms),
        "wall_p50": percentile(wall_ms, 50),
        "bytes_p50": percentile(sizes, 50),
        "bytes_max": max(sizes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--sizes", default="320x180,640x360")
    args = parser.parse_args()
    quiet_logging()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="offline-clip-") as tmp:
        for width, height in sizes:
            folder = Path(tmp) / f"{width}x{height}"
            folder.mkdir()
            stats = measure(args.clips, args.seconds, (width, height), folder)
            budget = ""
            if (width, height) == BUDGET_SIZE and args.seconds == 4:
                budget = verdict(stats["cpu_p95"] < BUDGET_P95_MS)
            rows.append(
                [
                    f"{width}x{height}",
                    f"{args.seconds} s @ {CLIP_FPS} fps",
                    args.clips,
                    stats["cpu_p50"],
                    stats["cpu_p95"],
                    stats["cpu_max"],
                    stats["wall_p50"],
                    int(stats["bytes_p50"]),
                    int(stats["bytes_max"]),
                    budget,
                ]
            )
    print_table(
        [
            "size",
            "clip",
            "clips",
            "cpu p50 ms",
            "cpu p95 ms",
            "cpu max ms",
            "wall p50 ms",
            "bytes p50",
            "bytes max",
            f"budget (640x360 4 s: cpu p95 < {BUDGET_P95_MS:.0f} ms)",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
