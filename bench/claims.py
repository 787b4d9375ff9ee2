"""Benchmark: N concurrent claims of one fresh branch, 1 and 4 processes, SQLite and PostgreSQL.

For every configuration a fresh database (a SQLite file in a temp dir, or a new
`sw_bench_<random>` PostgreSQL database) is migrated and seeded, then P worker processes
(this script with `--worker`) start a WorldService each with the offline provider, report
that they are up, and are released at the same wall-clock instant; each then fires its share
of the N claims of the opening scene at once (asyncio.gather), times `service.claim`, and
follows the branch with `service.subscribe` until it settles.

Printed per configuration: paid renders started (offline job specs on disk, across all
processes), winners, errors (exceptions and refusals), callers that ended on ready, claim
latency p50/p99/max and the time until the last caller saw ready.
Targets (N=200): exactly 1 render, 0 errors, p99 < 50 ms.

    .venv/bin/python bench/claims.py [--n 200] [--processes 1,4] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from _common import (
    PROJECT,
    ConnectionPeak,
    default_postgres_url,
    fresh_postgres,
    make_settings,
    migrate,
    percentile,
    print_table,
    quiet_logging,
    renders_started,
    verdict,
)

from world.service import WorldService
from world.types import ClaimOutcome

WORLD = "default"
P99_TARGET_MS = 50.0
START_DELAY_SECONDS = 0.5  # between "all workers are up" and the common start instant


# --------------------------------------------------------------------------- worker process


async def worker(config_path: str, n: int) -> None:
    config = json.loads(Path(config_path).read_text())
    settings = make_settings(Path(config["root"]), config["database_url"])
    service = await WorldService.start(settings, run_watchdog=False)
    try:
        print("UP", flush=True)
        start_at = float(await asyncio.to_thread(sys.stdin.readline))
        await asyncio.sleep(max(0.0, start_at - time.time()))
        late_ms = (time.time() - start_at) * 1000
        path = config["path"]

        async def claim(i: int) -> dict[str, Any]:
            t0 = time.perf_counter()
            result = await service.claim(WORLD, path, None, f"member-{i}")
            return {
                "outcome": result.outcome.value,
                "reason": result.reason,
                "won": result.claimed_by_caller,
                "final": None,
                "ms": (time.perf_counter() - t0) * 1000,
                "settled_s": None,
            }

        async def follow(record: dict[str, Any]) -> dict[str, Any]:
            try:
                if record["outcome"] != ClaimOutcome.REFUSED.value:
                    async for event in service.subscribe(WORLD, path):
                        record["final"] = event.status.value
            except Exception as exc:  # counted as an error of this caller
                record["error"] = f"subscribe: {exc!r}"[:300]
            record["settled_s"] = time.time() - start_at
            return record

        async def claim_then_follow(i: int) -> dict[str, Any]:
            return await follow(await claim(i))

        async with asyncio.timeout(120):
            if config["follow"] == "each":
                # What claim_worker.py does: every caller follows its branch right away.
                results = await asyncio.gather(
                    *(claim_then_follow(i) for i in range(n)), return_exceptions=True
                )
            else:
                # Every caller of this process claims first; following starts afterwards.
                results = await asyncio.gather(
                    *(claim(i) for i in range(n)), return_exceptions=True
                )
                followed = await asyncio.gather(
                    *(follow(r) for r in results if not isinstance(r, BaseException)),
                    return_exceptions=True,
                )
                results = [r for r in results if isinstance(r, BaseException)] + followed
        records = [r for r in results if not isinstance(r, BaseException)]
        report = {
            "late_ms": late_ms,
            "results": records,
            "errors": [f"claim: {r!r}"[:300] for r in results if isinstance(r, BaseException)]
            + [r["error"] for r in records if r.get("error")],
        }
        print(json.dumps(report), flush=True)
    finally:
        await service.close()


# --------------------------------------------------------------------------- orchestration


def run_workers(
    root: Path, database_url: str, processes: int, n: int, follow: str
) -> list[dict[str, Any]]:
    config = root / "claims.json"
    config.write_text(
        json.dumps({"root": str(root), "database_url": database_url, "path": "", "follow": follow})
    )
    shares = [n // processes + (1 if i < n % processes else 0) for i in range(processes)]
    workers = []
    logs = []
    try:
        for index, share in enumerate(shares):
            log_file = (root / f"worker-{index}.log").open("w")
            logs.append(log_file)
            workers.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--worker", str(config), str(share)],
                    cwd=PROJECT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log_file,
                    text=True,
                )
            )
        for index, proc in enumerate(workers):
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "UP":
                raise RuntimeError(f"worker {index} failed to start:\n{_tail(root, index)}")
        start_at = time.time() + START_DELAY_SECONDS
        for proc in workers:
            assert proc.stdin is not None
            proc.stdin.write(f"{start_at!r}\n")
            proc.stdin.flush()
        reports = []
        for index, proc in enumerate(workers):
            out, _ = proc.communicate(timeout=180)
            if proc.returncode != 0 or not out.strip():
                raise RuntimeError(
                    f"worker {index} exited with {proc.returncode}:\n{_tail(root, index)}"
                )
            reports.append(json.loads(out.strip().splitlines()[-1]))
        return reports
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log_file in logs:
            log_file.close()


def _tail(root: Path, index: int) -> str:
    path = root / f"worker-{index}.log"
    return path.read_text()[-3000:] if path.exists() else ""


async def run_config(
    backend: str, processes: int, n: int, follow: str, postgres_url: str
) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sw-bench-claims-")))
        if backend == "postgres":
            database_url = await stack.enter_async_context(fresh_postgres(postgres_url))
        else:
            database_url = f"sqlite:///{root / 'world.db'}"
        settings = make_settings(root, database_url)
        await migrate(database_url)
        await (await WorldService.start(settings, run_watchdog=False)).close()  # seed worlds
        peak = None
        if backend == "postgres":
            peak = await stack.enter_async_context(ConnectionPeak(database_url))
        reports = await asyncio.to_thread(run_workers, root, database_url, processes, n, follow)
        renders = renders_started(settings)
        connections = peak.peak if peak is not None else "-"
    results = [r for report in reports for r in report["results"]]
    errors = [e for report in reports for e in report["errors"]]
    refused = [r for r in results if r["outcome"] == ClaimOutcome.REFUSED.value]
    latencies = [r["ms"] for r in results]
    return {
        "backend": backend,
        "processes": processes,
        "follow": follow,
        "n": n,
        "connections": connections,
        "renders": renders,
        "wins": sum(1 for r in results if r["won"]),
        "errors": len(errors) + len(refused),
        "error_samples": Counter(errors + [f"refused: {r['reason']}" for r in refused]),
        "ready": sum(1 for r in results if r["final"] == "ready"),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies, default=float("nan")),
        "all_ready_s": max((r["settled_s"] for r in results), default=float("nan")),
        "late_ms": max(report["late_ms"] for report in reports),
    }


async def one_row(backend: str, processes: int, follow: str, args: argparse.Namespace) -> list:
    started = time.monotonic()
    r = await run_config(backend, processes, args.n, follow, args.postgres_url)
    for message, count in r["error_samples"].most_common(3):
        print(f"  {backend} x{processes} follow={follow}: {count} x {message}")
    all_ready = r["ready"] == r["n"]
    return [
        r["backend"],
        r["processes"],
        r["follow"],
        r["n"],
        f"{r['renders']} {verdict(r['renders'] == 1)}",
        r["wins"],
        f"{r['errors']} {verdict(r['errors'] == 0)}",
        f"{r['ready']}/{r['n']} {'ok' if all_ready else 'NOT ALL READY'}",
        r["p50"],
        f"{r['p99']:.2f} {verdict(r['p99'] < P99_TARGET_MS)}",
        r["max"],
        r["all_ready_s"],
        r["late_ms"],
        r["connections"],
        time.monotonic() - started,
    ]


async def main(args: argparse.Namespace) -> int:
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    process_counts = [int(p) for p in args.processes.split(",") if p.strip()]
    follows = [f.strip() for f in args.follow.split(",") if f.strip()]
    render_s = make_settings(Path(tempfile.gettempdir())).providers.offline_render_seconds
    print(
        f"claims: N={args.n} concurrent claims of one fresh branch per configuration, offline "
        f"provider (render {render_s} s). Latency = time for service.claim to return.\n"
        "follow=each: every caller subscribes as soon as its claim returns (claim_worker.py);"
        " follow=after: a process's callers subscribe once all its claims returned."
    )
    rows = []
    for backend in backends:
        for processes in process_counts:
            for follow in follows:
                rows.append(await one_row(backend, processes, follow, args))
    print()
    print_table(
        [
            "db",
            "procs",
            "follow",
            "claims",
            "renders (=1)",
            "wins",
            "errors (=0)",
            "saw ready",
            "p50 ms",
            "p99 ms (<50)",
            "max ms",
            "all ready s",
            "start skew ms",
            "pg conns",
            "run s",
        ],
        rows,
    )
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="concurrent claims per configuration")
    parser.add_argument("--processes", default="1,4", help="comma-separated process counts")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument(
        "--follow", default="each,after", help="each,after (when callers start subscribing)"
    )
    parser.add_argument("--postgres-url", default=default_postgres_url())
    return parser.parse_args(argv)


if __name__ == "__main__":
    quiet_logging()
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        asyncio.run(worker(sys.argv[2], int(sys.argv[3])))
        sys.exit(0)
    sys.exit(asyncio.run(main(parse_args(sys.argv[1:]))))
