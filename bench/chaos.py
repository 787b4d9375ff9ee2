"""Chaos run (issue 7): N mints across several processes with SIGKILLs, cancels and faults.

Several bot processes (tests/world/chaos_worker.py, each a real WorldService with its
watchdog) share one database (PostgreSQL, or a SQLite file) and one data dir, and mint the
first N branches of the tree level by level (3 choices per scene; a branch is claimed once
its parent is ready, often by several callers and processes at once). Meanwhile:

- processes die by SIGKILL: at random moments (sent from here), and by their own hand
  exactly in the dangerous windows: before the paid create, inside it, right after it
  returned (job id not recorded yet), mid-render, mid-download and right after it, mid-upload
  and right after it, and right after publish (spool not cleaned). Each window is hit at its
  first opportunity in every run, then with a probability; a killed process is replaced;
- `service.cancel` is called soon after won claims and on random queued branches (of this
  process or another);
- the provider misbehaves: a plan carrying the FAILME marker of the test double the workers
  run (tests/fixtures/faulty_offline.py; refused at render time, once per chosen branch),
  creates refused, creates whose answer is lost after the job was made, transient
  `unavailable` from `watch_render` and `download`.

Leases are 3 s, the watchdog runs every second and creates time out after 1 s, so the work of
a dead process comes back quickly. When every branch is ready (or the chaos budget is spent)
the chaos processes are stopped and a clean process finishes what is left, claiming pending
branches and retrying failed ones. The files are then aged past the stray-file sweep's grace
period and one more process starts (its start-up sweep runs). Then the checks, from the
database and from the offline provider's own job list (one spec file per paid create):

1. paid once: at most one paid render per branch (the FAILME render the provider refused is
   counted apart: at most one per branch, as only one plan per branch carries the marker);
   every ready branch has exactly one, and one `ready` renders row;
2. published or resumable: every paid job is published (its branch is ready, the asset key
   derives from the job id, the asset is in the store), resumable (the branch's
   provider_job_id or its open intent's attempt id points at it), or was refused by the
   provider and recorded so (FAILME, a failed `blocked` render row) — none orphaned;
3. not stuck: no branch left queued (with an expired lease or not), every target ready;
4. no stray files under the data dir and the local asset dir: `*.part`, `*.part.*`,
   `.*.tmp`, spool files of ready branches (also counted before the sweep: what kills left).

Prints the figures (mints, processes, kills by kind, cancels, faults, claims, paid renders,
violations per check, wall time); exits non-zero when a check found a violation.

    .venv/bin/python bench/chaos.py [--quick] [--mints 200] [--processes 4] [--seed 1]
        [--backends postgres,sqlite] [--postgres-url URL] [--keep DIR]

`--quick` is the CI form (30 mints, 3 processes; tests/world/test_chaos.py runs it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from sqlalchemy import func, select  # noqa: E402

from tests.fixtures.faulty_offline import FAIL_MARKER  # noqa: E402
from tests.fixtures.world import fresh_postgres_database, offline_jobs_dir  # noqa: E402
from tests.world.chaos_worker import DEFAULT_PROBABILITIES, WORLD, chaos_settings  # noqa: E402
from world import paths  # noqa: E402
from world.db import Database  # noqa: E402
from world.models import Render, Scene, utcnow  # noqa: E402
from world.pipeline import asset_keys  # noqa: E402
from world.service import WorldService  # noqa: E402
from world.types import Status  # noqa: E402

POSTGRES_ENV = "SHARED_WORLD_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
CHECKS = ("paid once", "published or resumable", "not stuck", "no stray files")
# Each fires once, at its first opportunity in any process (see chaos_worker.Chaos).
FORCED = (
    "kill_after_create",
    "kill_in_create",
    "kill_download",
    "kill_upload",
    "kill_publish",
    "fault_create_lost",
    "fault_watch",
    "cancel_soon",
)
DANGEROUS_WINDOWS = ("after_create", "create", "download", "upload", "publish")


@dataclass
class ChaosConfig:
    root: Path
    database_url: str | None = None  # None: a SQLite file under root
    mints: int = 200
    processes: int = 4
    seed: int = 1
    random_kill_every_seconds: float = 6.0  # mean time between SIGKILLs sent from here
    # random SIGKILLs go to processes up this long (a start-up takes ~1.5 s of CPU)
    random_kill_min_age_seconds: float = 2.0
    chaos_seconds: float = 240.0  # the chaos phase ends earlier once every branch is ready
    finish_seconds: float = 120.0
    probabilities: dict[str, float] = field(default_factory=dict)
    forced: tuple[str, ...] = FORCED

    @classmethod
    def quick(cls, root: Path, database_url: str | None = None, seed: int = 1) -> ChaosConfig:
        return cls(
            root=root,
            database_url=database_url,
            mints=30,
            processes=3,
            seed=seed,
            random_kill_every_seconds=8.0,
            chaos_seconds=30.0,
            finish_seconds=40.0,
            # half the long form's odds: the forced first hits already cover every window
            probabilities={k: p / 2 for k, p in DEFAULT_PROBABILITIES.items()},
        )


@dataclass
class ChaosReport:
    database: str
    mints: int
    processes: int
    seed: int
    started: Counter[str] = field(default_factory=Counter)  # processes by mode
    kills: Counter[str] = field(default_factory=Counter)
    cancels: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    claims: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # claim/cancel exceptions, crashes
    paid_renders: int = 0
    refused_renders: int = 0
    ready: int = 0
    ready_after_chaos: int = 0  # before the clean process took over
    left_by_kills: Counter[str] = field(default_factory=Counter)  # strays before the sweep
    violations: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in CHECKS})
    phases: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    root: str = ""

    @property
    def ok(self) -> bool:
        return not any(self.violations.values()) and not self.errors

    def explain(self) -> str:
        lines = [f"{name}: {v}" for name, found in self.violations.items() for v in found]
        lines += [f"error: {e}" for e in self.errors]
        return "\n".join(lines[:80]) + (
            f"\n... ({len(lines) - 80} more)" if len(lines) > 80 else ""
        )


# --------------------------------------------------------------------------- the tree


def tree_paths(n: int) -> list[str]:
    """The first `n` branches, breadth first: "", "0", "1", "2", "0/0", ..."""
    found = [""]
    index = 0
    while len(found) < n:
        found.extend(paths.child(found[index], i) for i in range(3))
        index += 1
    return found[:n]


# --------------------------------------------------------------------------- processes


class Child:
    def __init__(self, worker_id: int, mode: str, config_file: Path, logs: Path) -> None:
        self.worker_id = worker_id
        self.mode = mode
        self.log_path = logs / f"worker-{worker_id}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.world.chaos_worker",
                str(config_file),
                str(worker_id),
                mode,
            ],
            cwd=PROJECT,
            env={**os.environ, "PYTHONPATH": str(PROJECT)},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.started = time.monotonic()
        self.killed_by_us: str | None = None

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self, kind: str) -> None:
        if self.alive():
            self.killed_by_us = kind
            self.process.send_signal(signal.SIGKILL)

    def reap(self) -> int:
        code = self.process.wait()
        self._log.close()
        return code

    def tail(self, lines: int = 12) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


async def _wait_exit(children: list[Child], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while any(c.alive() for c in children) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- the run


async def run_chaos(cfg: ChaosConfig) -> ChaosReport:
    t_start = time.monotonic()
    root = Path(cfg.root)
    root.mkdir(parents=True, exist_ok=True)
    url = cfg.database_url or f"sqlite:///{root / 'world.db'}"
    settings = chaos_settings(root, url)
    chaos_dir = root / "chaos"  # bookkeeping: outside the data dir and the asset dir
    for sub in ("events", "logs", "markers"):
        (chaos_dir / sub).mkdir(parents=True, exist_ok=True)
    targets = tree_paths(cfg.mints)
    config = {
        "root": str(root),
        "database_url": url,
        "targets": targets,
        "seed": cfg.seed,
        "events_dir": str(chaos_dir / "events"),
        "marker_dir": str(chaos_dir / "markers"),
        "stop_file": str(chaos_dir / "stop"),
        "probabilities": cfg.probabilities,
        "forced": list(cfg.forced),
        "failme_paths": targets[2:3],
        "deadline_seconds": {"chaos": cfg.chaos_seconds + 60.0, "clean": cfg.finish_seconds},
    }
    config_file = chaos_dir / "config.json"
    config_file.write_text(json.dumps(config))
    report = ChaosReport(
        database="postgresql" if url.startswith("postgres") else "sqlite",
        mints=cfg.mints,
        processes=cfg.processes,
        seed=cfg.seed,
        root=str(root),
    )
    db = Database(url)
    await db.upgrade()
    rng = random.Random(cfg.seed)
    children: list[Child] = []
    next_id = 0

    def spawn(mode: str) -> Child:
        nonlocal next_id
        next_id += 1
        child = Child(next_id, mode, config_file, chaos_dir / "logs")
        children.append(child)
        report.started[mode] += 1
        return child

    def reap(child: Child) -> None:
        code = child.reap()
        if child.killed_by_us:
            report.kills[child.killed_by_us] += 1
        elif code not in (0, -signal.SIGKILL):
            report.errors.append(f"worker {child.worker_id} exited {code}:\n{child.tail()}")

    try:
        # -- chaos
        t0 = time.monotonic()
        live = [spawn("chaos") for _ in range(cfg.processes)]
        next_kill = t0 + rng.expovariate(1 / cfg.random_kill_every_seconds)
        while True:
            if await _count_ready(db) >= len(targets):
                break
            if time.monotonic() - t0 > cfg.chaos_seconds:
                break
            for child in [c for c in live if not c.alive()]:
                reap(child)
                live.remove(child)
                live.append(spawn("chaos"))
            if time.monotonic() >= next_kill:
                old = [
                    c
                    for c in live
                    if time.monotonic() - c.started >= cfg.random_kill_min_age_seconds
                ]
                if old:
                    rng.choice(old).kill("random")
                next_kill = time.monotonic() + rng.expovariate(1 / cfg.random_kill_every_seconds)
            await asyncio.sleep(0.05)
        (chaos_dir / "stop").touch()
        await _wait_exit(live, 20.0)
        for child in live:
            child.kill("stop")  # a stop that hung: counted apart
            reap(child)
        report.phases["chaos"] = time.monotonic() - t0
        report.ready_after_chaos = await _count_ready(db)

        # -- a clean process finishes the rest
        t0 = time.monotonic()
        finisher = spawn("clean")
        await _wait_exit([finisher], cfg.finish_seconds + 30.0)
        if finisher.alive():
            report.errors.append("the clean process did not finish in time")
            finisher.kill("stop")
        reap(finisher)
        report.phases["finish"] = time.monotonic() - t0

        # -- strays as the kills left them; then a process started past the grace period
        t0 = time.monotonic()
        report.left_by_kills = Counter(_classify_strays(settings, await _ready_paths(db)))
        _age_files(settings)
        sweeper = await WorldService.start(settings, run_watchdog=False)
        await sweeper.close()
        report.started["sweep (in this process)"] += 1
        report.phases["sweep"] = time.monotonic() - t0

        # -- the checks
        await _check(db, settings, targets, report)
    finally:
        for child in children:
            if child.alive():
                child.kill("stop")
                child.reap()
        await db.close()
    _read_events(chaos_dir / "events", report)
    report.wall_seconds = time.monotonic() - t_start
    return report


async def _count_ready(db: Database) -> int:
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).where(Scene.world_id == WORLD, Scene.status == Status.READY.value)
        )
    return int(count or 0)


async def _ready_paths(db: Database) -> set[str]:
    async with db.session() as session:
        rows = await session.scalars(
            select(Scene.path).where(Scene.world_id == WORLD, Scene.status == Status.READY.value)
        )
        return set(rows)


def _age_files(settings: Any) -> None:
    """Make every file of the data dir and the asset dir look older than any grace period."""
    try:
        from world.sweep import TEMP_GRACE_SECONDS as grace
    except ImportError:
        grace = 15 * 60.0
    then = time.time() - grace - 3600.0
    data_dir = Path(settings.generation.spool_dir).parent
    for folder in (data_dir, Path(settings.storage.local_dir)):
        if folder.exists():
            for path in folder.rglob("*"):
                if path.is_file():
                    os.utime(path, (then, then))


def _read_events(events_dir: Path, report: ChaosReport) -> None:
    for file in sorted(events_dir.glob("*.jsonl")):
        for line in file.read_text().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
            kind = event.get("event")
            if kind == "kill":
                report.kills[event["kind"]] += 1
            elif kind == "fault":
                report.faults[event["kind"]] += 1
            elif kind == "cancel":
                report.cancels[f"{event['kind']} sent"] += 1
                report.cancels[f"{event['kind']} cancelled"] += int(bool(event["cancelled"]))
            elif kind == "claim":
                report.claims["calls"] += 1
                report.claims["won"] += int(bool(event["won"]))
                report.claims["retries"] += int(bool(event["retry"]))
                if event.get("reason"):
                    report.refusals[event["reason"]] += 1
            elif kind in ("claim_error", "cancel_error"):
                report.errors.append(f"{kind} worker {event['worker']}: {event['error']}")
            elif kind == "uncertain":
                report.refusals["uncertain (never confirmed)"] += 1


# --------------------------------------------------------------------------- the checks


def _is_stray_name(name: str) -> str | None:
    if name.endswith(".part") or ".part." in name:
        return "*.part"
    if name.startswith(".") and name.endswith(".tmp"):
        return ".*.tmp"
    return None


def _classify_strays(settings: Any, ready: set[str]) -> list[str]:
    """One entry per stray file: its kind and where it is (relative to its folder)."""
    data_dir = Path(settings.generation.spool_dir).parent
    spool = Path(settings.generation.spool_dir)
    assets = Path(settings.storage.local_dir)
    ready_dirs = {spool / WORLD / paths.storage_slug(p) for p in ready}
    found: list[str] = []
    for base, label in ((data_dir, "data"), (assets, "assets")):
        if not base.exists():
            continue
        for path in base.rglob("*"):
            if not path.is_file():
                continue
            where = path.relative_to(base.parent)
            kind = _is_stray_name(path.name)
            if kind is not None:
                sub = "spool" if spool in path.parents else path.relative_to(base).parts[0]
                found.append(f"{kind} in {label}/{sub}: {where}")
            elif path.parent in ready_dirs:
                found.append(f"spool file of a ready branch: {where}")
    return found


async def _check(db: Database, settings: Any, targets: list[str], report: ChaosReport) -> None:
    v = report.violations
    async with db.session() as session:
        rows = {r.path: r for r in await session.scalars(select(Scene))}
        renders = list(
            await session.execute(select(Render.path, Render.outcome, Render.failure_code))
        )
    specs = _load_specs(offline_jobs_dir(settings))
    report.paid_renders = len(specs)
    report.ready = sum(1 for r in rows.values() if r.status == Status.READY.value)
    ready_rows: Counter[str] = Counter(p for p, outcome, _ in renders if outcome == "ready")
    # A refused render is recorded once (its job is then forgotten): one row per FAILME job.
    blocked: Counter[str] = Counter(
        p for p, outcome, code in renders if outcome == "failed" and code == "blocked"
    )
    target_set = set(targets)
    assets = Path(settings.storage.local_dir)

    # 1. paid once
    by_branch: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for spec in specs:
        if spec.get("world_id") != WORLD or spec.get("path") not in target_set:
            v["paid once"].append(f"a paid render of a branch nobody minted: {_spec(spec)}")
        by_branch[str(spec.get("path"))].append(spec)
    for path, group in sorted(by_branch.items()):
        refused = [s for s in group if FAIL_MARKER in str(s.get("prompt", ""))]
        healthy = [s for s in group if s not in refused]
        report.refused_renders += len(refused)
        for kind, found in (("paid renders", healthy), ("refused (FAILME) renders", refused)):
            if len(found) > 1:
                v["paid once"].append(
                    f"branch {path!r}: {len(found)} {kind}: "
                    + "; ".join(_spec(s) for s in sorted(found, key=lambda s: s["created"]))
                )
    for path, row in rows.items():
        if row.status == Status.READY.value:
            healthy = [
                s for s in by_branch.get(path, []) if FAIL_MARKER not in str(s.get("prompt"))
            ]
            if not healthy:
                v["paid once"].append(f"branch {path!r} is ready without a paid render")
            if ready_rows[path] != 1:
                v["paid once"].append(f"branch {path!r} has {ready_rows[path]} ready renders rows")

    # 2. every paid job published or resumable (or refused by the provider, and recorded)
    for spec in specs:
        path, job = str(spec.get("path")), str(spec.get("job_id"))
        row = rows.get(path)
        if row is None:
            v["published or resumable"].append(f"no row for {_spec(spec)}")
            continue
        video_key, poster_key = asset_keys(WORLD, path, job)
        if row.status == Status.READY.value and row.asset_key == video_key:
            missing = [k for k in (video_key, poster_key) if not (assets / k).is_file()]
            if missing or row.poster_key != poster_key:
                v["published or resumable"].append(
                    f"published {_spec(spec)} but its files are missing: {missing}"
                )
            continue
        if row.status != Status.READY.value and (
            row.provider_job_id == job
            or (row.provider_job_id is None and row.render_attempt == spec.get("attempt_id"))
        ):
            continue  # resumable: the next claim fetches it instead of paying
        if FAIL_MARKER in str(spec.get("prompt", "")) and blocked[path] > 0:
            blocked[path] -= 1  # the provider refused it (no clip exists), and that was recorded
            continue
        v["published or resumable"].append(
            f"orphaned {_spec(spec)}: branch is {row.status}, provider_job_id="
            f"{row.provider_job_id}, render_attempt={row.render_attempt}, "
            f"asset_key={row.asset_key}"
        )

    # 3. not stuck
    now = utcnow()
    for path, row in sorted(rows.items()):
        if row.status == Status.QUEUED.value:
            lease = "expired" if row.lease_until is None or row.lease_until < now else "live"
            v["not stuck"].append(f"branch {path!r} left queued (lease {lease})")
    for path in targets:
        row = rows.get(path)
        if row is None or row.status != Status.READY.value:
            state = "never claimed" if row is None else f"{row.status} ({row.failure_code})"
            v["not stuck"].append(f"branch {path!r} did not finish: {state}")

    # 4. no stray files
    ready = {p for p, r in rows.items() if r.status == Status.READY.value}
    v["no stray files"].extend(_classify_strays(settings, ready))


def _load_specs(folder: Path) -> list[dict[str, Any]]:
    specs = []
    for file in sorted(folder.glob("offline-*.json")) if folder.exists() else []:
        with contextlib.suppress(OSError, json.JSONDecodeError):
            specs.append(json.loads(file.read_text()))
    return specs


def _spec(spec: dict[str, Any]) -> str:
    return (
        f"job {spec.get('job_id')} (path {spec.get('path')!r}, attempt {spec.get('attempt_id')}, "
        f"created {spec.get('created', 0):.3f})"
    )


# --------------------------------------------------------------------------- output


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counter.items())) or "none"


def print_report(report: ChaosReport) -> None:
    kills = sum(report.kills.values())
    cancels_sent = sum(n for k, n in report.cancels.items() if k.endswith("sent"))
    cancelled = sum(n for k, n in report.cancels.items() if k.endswith("cancelled"))
    lines = [
        f"chaos run: {report.database}, {report.mints} mints, up to {report.processes} "
        f"processes at a time, seed {report.seed}",
        f"  processes started: {_counts(report.started)}",
        f"  kills: {kills} ({_counts(report.kills)})",
        f"  cancels: {cancels_sent} sent, {cancelled} stopped a queued branch "
        f"({_counts(report.cancels)})",
        f"  faults: {sum(report.faults.values())} ({_counts(report.faults)})",
        f"  claims: {_counts(report.claims)}; refused: {_counts(report.refusals)}",
        f"  paid renders: {report.paid_renders} ({report.refused_renders} refused by the "
        f"provider, FAILME); branches ready: {report.ready}/{report.mints} "
        f"({report.ready_after_chaos} when the chaos phase ended)",
        f"  left by kills before the sweep: {sum(report.left_by_kills.values())} "
        f"({_counts(Counter(k.split(':')[0] for k in report.left_by_kills.elements()))})",
    ]
    for name in CHECKS:
        found = report.violations[name]
        lines.append(f"  check {name}: {len(found)} violations")
        lines.extend(f"    {line}" for line in found[:20])
    lines.append(f"  errors: {len(report.errors)}")
    lines.extend(f"    {line}" for line in report.errors[:10])
    phases = ", ".join(f"{k} {s:.1f} s" for k, s in report.phases.items())
    lines.append(f"  wall time: {report.wall_seconds:.1f} s ({phases})")
    print("\n".join(lines), flush=True)


async def _main(args: argparse.Namespace) -> int:
    failed = False
    for backend in args.backends.split(","):
        workdir = (
            Path(args.keep) / backend if args.keep else Path(tempfile.mkdtemp(prefix="chaos-"))
        )
        if args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        try:
            if backend == "postgres":
                async with fresh_postgres_database(args.postgres_url, prefix="sw_chaos") as url:
                    report = await run_chaos(_config(args, workdir, url))
            elif backend == "sqlite":
                report = await run_chaos(_config(args, workdir, None))
            else:
                raise SystemExit(f"unknown backend {backend!r}: use postgres or sqlite")
        finally:
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
        print_report(report)
        failed = failed or not report.ok
    return 1 if failed else 0


def _config(args: argparse.Namespace, root: Path, url: str | None) -> ChaosConfig:
    if args.quick:
        return ChaosConfig.quick(root, url, seed=args.seed)
    return ChaosConfig(
        root=root, database_url=url, mints=args.mints, processes=args.processes, seed=args.seed
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="the CI form: 30 mints, 3 processes")
    parser.add_argument("--mints", type=int, default=200)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backends", default="postgres", help="postgres, sqlite or both")
    parser.add_argument(
        "--postgres-url", default=os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL
    )
    parser.add_argument("--keep", help="run under this folder and keep it (logs, events, data)")
    args = parser.parse_args()
    sys.exit(asyncio.run(_main(args)))


if __name__ == "__main__":
    main()
