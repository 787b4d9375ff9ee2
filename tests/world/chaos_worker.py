"""One bot process of the chaos run (bench/chaos.py): it claims, cancels, meets faults and dies.

Run as `python -m tests.world.chaos_worker <config.json> <worker-id> <mode>`; `mode` is
`chaos` (faults, self-kills and cancels as the config's probabilities say) or `clean` (the
final process that finishes whatever the chaos left: no faults, no kills, no cancels).

The process runs a real WorldService (watchdog included) on the shared database and data
dir, with two stand-ins:

- `ChaosProvider`, the offline provider with a create that takes a while (as an HTTP create
  does), provider faults (a plan carrying the FAILME marker of the test double
  tests/fixtures/faulty_offline.py once per branch, refused at render time in any process,
  clean ones included; creates refused, creates whose answer is lost after the job was made,
  transient `unavailable` from `watch_render` and `download`) and SIGKILLs of its own process
  placed in the dangerous windows: before the create, inside it, right after it returned
  (job id not yet recorded), mid-render, mid-download and right after it;
- `ChaosStore`, the local store with SIGKILLs mid-upload and after an upload, before its key
  is recorded. A hook on the service's events kills the process right after a branch was
  published, before its spool files are cleaned up.

"Mid-download", "mid-upload" and "inside the create" are exact: the module-level `os` of
world.media, storage.local and world.providers.offline is replaced (in this process only) by
a proxy that dies at the rename/fsync of the temp file when the calling task asked for it
(a ContextVar, which asyncio.to_thread carries into the worker thread).

Every event (claims, cancels, faults, kills) is appended as one JSON line to
`<events_dir>/worker-<id>.jsonl` before it happens, so a SIGKILLed process leaves its record.
The loop reads the branches from the database, claims the ones whose parent is ready (also
several times at once), retries failed ones, cancels some, and ends when the stop file
appears (chaos) or when every target is ready and no job of its own runs (clean).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import logging
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import select

from storage.local import LocalStore
from tests.fixtures.faulty_offline import FAIL_MARKER, FaultyOfflineProvider
from tests.fixtures.world import make_settings, offline_jobs_dir
from world import paths
from world.models import Scene
from world.providers.base import Plan, PlanRequest, RenderRequest, RenderStatus
from world.providers.errors import provider_error, unknown_outcome
from world.service import FINAL_FAILURES, WorldService
from world.settings import Settings
from world.types import UNCERTAIN, ClaimOutcome, Credentials, SceneEvent, Status

WORLD = "default"

# Probabilities of the chaos mode, per opportunity (see bench/chaos.py for the figures).
DEFAULT_PROBABILITIES: dict[str, float] = {
    # self-kills, per create / render / download / upload / publish
    "kill_before_create": 0.02,
    "kill_in_create": 0.01,
    "kill_after_create": 0.05,
    "kill_watch": 0.02,
    "kill_download": 0.03,
    "kill_upload": 0.03,
    "kill_publish": 0.03,
    # provider faults
    "fault_failme": 0.08,  # per branch, first plan only
    "fault_create_refused": 0.03,
    "fault_create_lost": 0.03,
    "fault_watch": 0.04,
    "fault_download": 0.03,
    # cancels: soon after a won claim, and of any queued branch per loop pass
    "cancel_soon": 0.08,
    "cancel_random": 0.02,
}
CREATE_LATENCY_SECONDS = 0.3  # an HTTP create answers after up to this long
MAX_JOBS_PER_PROCESS = 6


def chaos_settings(root: Path, database_url: str | None) -> Settings:
    """Short leases and create windows so killed work comes back fast; tiny clips."""
    return make_settings(
        root,
        database_url,
        generation={
            "lease_seconds": 3,
            "watchdog_interval_seconds": 1,
            "progress_write_interval_seconds": 0.25,
            "shutdown_grace_seconds": 0.0,
            "max_concurrent_jobs": MAX_JOBS_PER_PROCESS,
        },
        providers={
            "create_timeout_seconds": 1.0,
            "offline_render_seconds": 0.5,
            "offline_clip_seconds": 1,
            "offline_width": 64,
            "offline_height": 36,
        },
        database={"pool_size": 3, "max_overflow": 5},
    )


# --------------------------------------------------------------------------- event log + death

_events_fd: int | None = None
_worker_id = "?"
_marker_dir: Path | None = None
# The chaos decision (see Chaos.roll) behind each kill window, fault and cancel kind.
ROLL_OF = {
    "before_create": "kill_before_create",
    "create": "kill_in_create",
    "after_create": "kill_after_create",
    "watch": "kill_watch",
    "download": "kill_download",
    "upload": "kill_upload",
    "publish": "kill_publish",
    "create_refused": "fault_create_refused",
    "create_lost": "fault_create_lost",
    "watch_unavailable": "fault_watch",
    "download_unavailable": "fault_download",
    "soon": "cancel_soon",
}


def emit(event: str, **fields: Any) -> None:
    """Append one JSON line (a single write on an O_APPEND descriptor: safe from any thread)."""
    if _events_fd is None:
        return
    record = {"event": event, "worker": _worker_id, "pid": os.getpid(), "t": time.time(), **fields}
    os.write(_events_fd, (json.dumps(record) + "\n").encode())


def happened(kind: str) -> None:
    """A forced decision was carried out (see Chaos.roll): no other process repeats it."""
    name = ROLL_OF.get(kind)
    if _marker_dir is not None and name is not None:
        (_marker_dir / f"forced-{name}.done").touch()


def die(window: str, **fields: Any) -> None:
    emit("kill", kind=window, **fields)
    happened(window)
    os.kill(os.getpid(), signal.SIGKILL)


# The window the current task asked to die in, carried into asyncio.to_thread's thread.
_DIE_AT: contextvars.ContextVar[str | None] = contextvars.ContextVar("die_at", default=None)


class _DyingOs:
    """A module's view of `os`, with one function that dies when the calling task asked."""

    def __init__(self, function: str, window: str) -> None:
        self._function = function
        self._window = window

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if name != self._function:
            return real

        def maybe_die(*args: Any, **kwargs: Any) -> Any:
            if _DIE_AT.get() == self._window:
                die(self._window, when="mid")
            return real(*args, **kwargs)

        return maybe_die


def _install_dying_os() -> None:
    import storage.local
    import world.media
    import world.providers.offline

    world.media.os = _DyingOs("replace", "download")  # media temp written, not renamed
    storage.local.os = _DyingOs("fsync", "upload")  # store temp written, not renamed
    world.providers.offline.os = _DyingOs("replace", "create")  # job spec temp, not renamed


# --------------------------------------------------------------------------- chaos decisions


def _first(marker: Path) -> bool:
    """True for exactly one caller across every process (O_EXCL on a marker file)."""
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _take_forced(marker_dir: Path, name: str) -> bool | None:
    """True: this caller carries out `name` now. False: another one does. None: done."""
    if (marker_dir / f"forced-{name}.done").exists():
        return None
    attempt = 0
    while True:
        marker = marker_dir / f"forced-{name}.{attempt}"
        if _first(marker):
            return True
        try:
            holder = marker.read_text().strip()
        except OSError:
            return False
        if not holder or int(holder) == os.getpid() or _alive(int(holder)):
            return False
        attempt += 1  # its holder was killed (at random) before carrying it out: take over


class Chaos:
    """Seeded decisions. `forced` names fire once at their first opportunity (off the root)
    in any process, again elsewhere if a random kill got there first, so every dangerous
    window is hit in every run; the rest is down to the probabilities."""

    def __init__(
        self,
        seed: int,
        probabilities: dict[str, float],
        marker_dir: Path,
        forced: list[str],
        failme_paths: list[str],
    ) -> None:
        self.rng = random.Random(seed)
        self.p = {**DEFAULT_PROBABILITIES, **probabilities}
        self.marker_dir = marker_dir
        self.forced = set(forced)
        self.failme_paths = set(failme_paths)

    def roll(self, name: str, path: str | None = None) -> bool:
        """`path`: the branch at stake; forced names skip the root, which everything awaits."""
        if name in self.forced and path:
            taken = _take_forced(self.marker_dir, name)
            if taken:
                return True
            if taken is None:
                self.forced.discard(name)
        return self.rng.random() < self.p.get(name, 0.0)

    def fault(self, kind: str, **fields: Any) -> None:
        emit("fault", kind=kind, **fields)
        happened(kind)

    def failme_once(self, path: str) -> bool:
        """FAILME for about p of the branches (and the named ones), once per branch."""
        digest = hashlib.sha256(f"{path}\x00failme".encode()).digest()
        chosen = int.from_bytes(digest[:4], "big") / 2**32 < self.p["fault_failme"]
        if not (chosen or path in self.failme_paths):
            return False
        return _first(self.marker_dir / f"failme-{hashlib.sha256(path.encode()).hexdigest()[:24]}")


@contextlib.contextmanager
def _dying_in(window: str):
    token = _DIE_AT.set(window)
    try:
        yield
    finally:
        _DIE_AT.reset(token)


class ChaosProvider(FaultyOfflineProvider):
    """The offline provider with a slow create, faults and self-kills (chaos=None: no new
    faults, but FAILME renders are still refused: a clean process resumes them as failing)."""

    def __init__(self, settings: Any, jobs_dir: Path, chaos: Chaos | None) -> None:
        super().__init__(settings, jobs_dir)
        self.chaos = chaos

    async def plan(self, request: PlanRequest, credentials: Credentials | None) -> Plan:
        plan = await super().plan(request, credentials)
        if self.chaos is not None and self.chaos.failme_once(request.path):
            self.chaos.fault("failme", path=request.path)
            return replace(plan, video_prompt=f"{plan.video_prompt}\n{FAIL_MARKER}")
        return plan

    async def start_render(self, request: RenderRequest, credentials: Credentials | None) -> str:
        chaos = self.chaos
        if chaos is None:
            return await super().start_render(request, credentials)
        where = {"path": request.path, "attempt": request.attempt_id}
        await asyncio.sleep(chaos.rng.uniform(0.0, CREATE_LATENCY_SECONDS))  # on the wire
        if chaos.roll("kill_before_create", request.path):
            die("before_create", **where)
        if chaos.roll("fault_create_refused", request.path):
            chaos.fault("create_refused", **where)
            raise provider_error("unavailable")  # refused: nothing was created
        if chaos.roll("kill_in_create", request.path):
            with _dying_in("create"):  # dies with the job spec written, not renamed
                await super().start_render(request, credentials)
            raise AssertionError("the create was to die at its rename")
        job_id = await super().start_render(request, credentials)
        if chaos.roll("kill_after_create", request.path):
            die("after_create", job=job_id, **where)
        if chaos.roll("fault_create_lost", request.path):
            chaos.fault("create_lost", job=job_id, **where)
            raise unknown_outcome("timeout")  # the job exists; its answer never arrived
        return job_id

    async def _path_of(self, job_id: str) -> str | None:
        spec = await asyncio.to_thread(self._read_spec, job_id)
        return None if spec is None else str(spec.get("path"))

    async def watch_render(
        self, job_id: str, credentials: Credentials | None
    ) -> AsyncIterator[RenderStatus]:
        chaos = self.chaos
        kill_at = fault_at = None
        if chaos is not None:
            path = await self._path_of(job_id)
            if chaos.roll("kill_watch", path):
                kill_at = chaos.rng.randint(0, 8)
            elif chaos.roll("fault_watch", path):
                fault_at = chaos.rng.randint(0, 8)
        step = 0
        async for status in super().watch_render(job_id, credentials):
            # at the chosen poll, or at the last one of a render that is (nearly) done
            if kill_at is not None and (step >= kill_at or status.done):
                die("watch", job=job_id)
            if chaos is not None and fault_at is not None and (step >= fault_at or status.done):
                chaos.fault("watch_unavailable", job=job_id)
                raise provider_error("unavailable")
            step += 1
            yield status

    async def download(
        self, job_id: str, credentials: Credentials | None, destination: Path
    ) -> int:
        chaos = self.chaos
        path = await self._path_of(job_id) if chaos is not None else None
        if chaos is not None and chaos.roll("kill_download", path):
            if chaos.rng.random() < 0.5:
                with _dying_in("download"):  # dies at the media writer's rename
                    await super().download(job_id, credentials, destination)
            await super().download(job_id, credentials, destination)
            die("download", when="after", job=job_id)  # complete, never renamed into place
        if chaos is not None and chaos.roll("fault_download", path):
            chaos.fault("download_unavailable", job=job_id)
            if chaos.rng.random() < 0.5:  # the connection broke after some bytes
                await asyncio.to_thread(Path(destination).write_bytes, b"\0" * 1024)
            raise provider_error("unavailable")
        return await super().download(job_id, credentials, destination)


def _path_of_key(key: str) -> str | None:
    """The branch an asset key belongs to ("worlds/<w>/scenes/<slug>/..."), for `roll`."""
    parts = key.split("/")
    return None if len(parts) < 4 or parts[3] == "root" else parts[3].replace("-", "/")


class ChaosStore(LocalStore):
    def __init__(self, root: Path, chaos: Chaos | None) -> None:
        super().__init__(root)
        self.chaos = chaos

    async def put_file(self, key: str, source: Path, content_type: str) -> int:
        chaos = self.chaos
        if chaos is not None and chaos.roll("kill_upload", _path_of_key(key)):
            if chaos.rng.random() < 0.5:
                with _dying_in("upload"):  # dies with the temp copy written, not renamed
                    await super().put_file(key, source, content_type)
            await super().put_file(key, source, content_type)
            die("upload", when="after", key=key)  # stored, its key never recorded
        return await super().put_file(key, source, content_type)


def _hook_publish(
    chaos: Chaos, service: Callable[[], WorldService]
) -> Callable[[SceneEvent], None]:
    """The service's `on_event`: die right after a local job published its branch, before the
    spool clean-up. `service` gives the service the observer was passed to."""

    def published(event: SceneEvent) -> None:
        local = service().is_running_here(event.world_id, event.path)
        if event.status is Status.READY and local and chaos.roll("kill_publish", event.path):
            die("publish", path=event.path)

    return published


# --------------------------------------------------------------------------- the loop


async def _snapshot(service: WorldService) -> dict[str, tuple[str, str | None]]:
    async with service.db.session() as session:
        rows = await session.execute(
            select(Scene.path, Scene.status, Scene.failure_code).where(Scene.world_id == WORLD)
        )
        return {p: (s, c) for p, s, c in rows}


class Driver:
    def __init__(
        self, service: WorldService, targets: list[str], chaos: Chaos | None, rng: random.Random
    ) -> None:
        self.service = service
        self.targets = targets
        self.chaos = chaos
        self.rng = rng
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def claim(self, path: str, status: str | None, code: str | None) -> None:
        copies = self.rng.choice((1, 1, 2, 3)) if self.chaos is not None else 1
        if status == Status.FAILED.value and code == UNCERTAIN:
            emit("uncertain", path=path)  # never confirmed here: it is a finding
            return
        retry = status == Status.FAILED.value and (
            code in FINAL_FAILURES or self.rng.random() < 0.3
        )
        call = self.service.retry if retry else self.service.claim
        results = await asyncio.gather(
            *(call(WORLD, path, None, f"chaos-{_worker_id}") for _ in range(copies)),
            return_exceptions=True,
        )
        won = False
        for result in results:
            if isinstance(result, BaseException):
                emit("claim_error", path=path, error=repr(result)[:300])
                continue
            won = won or result.claimed_by_caller
            emit(
                "claim",
                path=path,
                retry=retry,
                outcome=result.outcome.value,
                won=result.claimed_by_caller,
                reason=result.reason if result.outcome is ClaimOutcome.REFUSED else None,
            )
        if won and self.chaos is not None and self.chaos.roll("cancel_soon", path):
            await asyncio.sleep(self.rng.uniform(0.0, 0.8))
            await self.cancel(path, "soon")

    async def cancel(self, path: str, kind: str) -> None:
        try:
            done = await self.service.cancel(WORLD, path)
        except Exception as exc:
            emit("cancel_error", path=path, kind=kind, error=repr(exc)[:300])
            return
        emit("cancel", path=path, kind=kind, cancelled=done)
        happened(kind)

    async def run(self, stop_file: Path, deadline: float) -> str:
        while True:
            if self.chaos is not None and stop_file.exists():
                return "stopped"
            if time.time() > deadline:
                return "deadline"
            snap = await _snapshot(self.service)
            status = {p: snap.get(p, (None, None)) for p in self.targets}
            if all(s == Status.READY.value for s, _ in status.values()):
                if self.service.running_jobs() == 0 and not self.tasks:
                    return "all ready"
            elif self.chaos is not None and self.chaos.roll("cancel_random"):
                queued = [p for p, (s, _) in status.items() if s == Status.QUEUED.value]
                if queued:
                    self.spawn(self.cancel(self.rng.choice(queued), "random"))
            free = MAX_JOBS_PER_PROCESS - self.service.running_jobs()
            if free > 0:
                candidates = [
                    p
                    for p, (s, _) in status.items()
                    if s in (None, Status.PENDING.value, Status.FAILED.value)
                    and (not p or snap.get(paths.parent(p) or "", (None,))[0] == Status.READY.value)
                ]
                self.rng.shuffle(candidates)
                for path in candidates[: min(free, self.rng.randint(1, 3))]:
                    self.spawn(self.claim(path, *status[path]))
            await asyncio.sleep(self.rng.uniform(0.05, 0.25))


async def main(config_path: str, worker_id: str, mode: str) -> None:
    global _events_fd, _marker_dir, _worker_id
    config = json.loads(Path(config_path).read_text())
    root = Path(config["root"])
    _worker_id = worker_id
    events_dir = Path(config["events_dir"])
    events_dir.mkdir(parents=True, exist_ok=True)
    _events_fd = os.open(
        events_dir / f"worker-{worker_id}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND
    )
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    settings = chaos_settings(root, config["database_url"])
    seed = int(config["seed"]) * 1000 + int(worker_id)
    chaos = None
    if mode == "chaos":
        _marker_dir = Path(config["marker_dir"])
        chaos = Chaos(
            seed,
            config.get("probabilities", {}),
            Path(config["marker_dir"]),
            list(config.get("forced", [])),
            list(config.get("failme_paths", [])),
        )
        _install_dying_os()
    provider = ChaosProvider(settings.providers, offline_jobs_dir(settings), chaos)
    store = ChaosStore(Path(settings.storage.local_dir), chaos)
    on_event = _hook_publish(chaos, lambda: service) if chaos is not None else None
    service = await WorldService.start(
        settings, store=store, providers={WORLD: provider}, on_event=on_event
    )
    emit("up", mode=mode)
    driver = Driver(service, list(config["targets"]), chaos, random.Random(seed + 1))
    try:
        deadline = time.time() + float(config["deadline_seconds"][mode])
        why = await driver.run(Path(config["stop_file"]), deadline)
        for task in list(driver.tasks):
            task.cancel()
        await asyncio.gather(*driver.tasks, return_exceptions=True)
    finally:
        await service.close()
    emit("exit", why=why, jobs_started=provider.render_starts)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
