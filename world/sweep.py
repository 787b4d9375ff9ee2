"""What killed processes leave on disk, swept at start-up and by the watchdog.

A process killed mid-download or mid-upload leaves temp files nothing will ever finish:

- in the spool (`generation.spool_dir/<world>/<slug>/`): a provider download `<clip>.part`,
  the media writer's `.<name>.<uuid>.part`, and, after a kill between publish and clean-up,
  the published clip `<clip>.mp4` and its poster `<clip>.last.png`;
- in the local asset folder: the store's `.<name>.<uuid>.part` (see storage/local.py).

Ownership is decided conservatively, because a spooled clip may be paid work (invariant 2):

- a spool folder whose branch is queued with a live lease (in any process) or whose job runs
  in this process is not touched at all;
- a branch that is not ready keeps every complete file, whatever its age: its clip is paid
  and waits for an upload (or a retry). Only its temp files older than the grace period go;
- a ready branch whose video is in the store loses its own published clip and poster once
  they are older than the grace period, plus its old temp files;
- a folder whose branch cannot be told (no row, a name that maps back to no path) loses only
  temp files older than the grace period.

Files of any other shape are never touched, and every file is looked at again right before
it is deleted (a fresh modification time means a writer is back, so it stays).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from storage.base import AssetStore, StorageError
from world import paths
from world.db import Database
from world.models import Scene, utcnow
from world.pipeline import spool_file
from world.types import Status

log = logging.getLogger(__name__)

# A temp file untouched this long has no writer: downloads and copies write continuously.
TEMP_GRACE_SECONDS = 15 * 60.0
# How often the watchdog sweeps (start-up always does).
SWEEP_INTERVAL_SECONDS = 10 * 60.0

_TEMP = re.compile(r"\.part(?:\.|$)")  # "<clip>.part", ".<name>.<uuid>.part", "*.part.*"


@dataclass
class SweepReport:
    temp_files: int = 0  # broken downloads and writes nobody owns
    spool_copies: int = 0  # published clips and posters left in the spool
    kept_clips: int = 0  # complete spool files of unfinished branches, kept on purpose
    store_temp_files: int = 0  # the local store's unfinished copies
    hidden_clips: int = 0  # clips the admins hid, deleted once their retention ran out

    @property
    def removed(self) -> int:
        return self.temp_files + self.spool_copies + self.store_temp_files


@dataclass(frozen=True)
class _Folder:
    world_id: str
    slug: str
    directory: Path
    temp: tuple[Path, ...]  # temp files older than the grace period
    complete: tuple[Path, ...]  # every other file (any age)


def is_temp(name: str) -> bool:
    return _TEMP.search(name) is not None


async def sweep_stray_files(
    *,
    db: Database,
    store: AssetStore,
    spool_dir: str | Path,
    max_depth: int,
    running: Collection[tuple[str, str]] = (),
    grace_seconds: float | None = None,
) -> SweepReport:
    """Remove what no live job owns; see the module docstring for what is kept."""
    grace = TEMP_GRACE_SECONDS if grace_seconds is None else grace_seconds
    report = SweepReport()
    cutoff = time.time() - grace
    folders = await asyncio.to_thread(_scan_spool, Path(spool_dir), cutoff)
    if folders:
        await _sweep_spool(db, store, Path(spool_dir), max_depth, running, folders, cutoff, report)
    sweep_store = getattr(store, "sweep_partial", None)
    if sweep_store is not None:
        report.store_temp_files = await sweep_store(grace)
    if report.removed or report.kept_clips:
        log.log(
            logging.INFO if report.removed else logging.DEBUG,
            "swept stray files temp=%d spool_copies=%d store_temp=%d kept_clips=%d",
            report.temp_files,
            report.spool_copies,
            report.store_temp_files,
            report.kept_clips,
        )
    return report


async def _sweep_spool(
    db: Database,
    store: AssetStore,
    spool_dir: Path,
    max_depth: int,
    running: Collection[tuple[str, str]],
    folders: list[_Folder],
    cutoff: float,
    report: SweepReport,
) -> None:
    worlds = sorted({f.world_id for f in folders})
    wanted: dict[str, dict[str, str]] = {}  # world -> slug -> path
    for folder in folders:
        path = _path_of(folder.slug, max_depth)
        if path is not None and _folder_of(spool_dir, folder.world_id, path) == folder.directory:
            wanted.setdefault(folder.world_id, {})[folder.slug] = path
    now = utcnow()
    async with db.session() as session:
        live_rows = await session.execute(
            select(Scene.world_id, Scene.path).where(
                Scene.world_id.in_(worlds),
                Scene.status == Status.QUEUED.value,
                Scene.lease_until > now,
            )
        )
        owned = {(w, p) for w, p in live_rows} | set(running)
        rows: dict[tuple[str, str], Any] = {}
        for world_id, slugs in wanted.items():
            found = await session.execute(
                select(
                    Scene.world_id,
                    Scene.path,
                    Scene.status,
                    Scene.lease_until,
                    Scene.asset_key,
                    Scene.provider_job_id,
                ).where(Scene.world_id == world_id, Scene.path.in_(list(slugs.values())))
            )
            rows.update({(r.world_id, r.path): r for r in found})
    live = {_folder_of(spool_dir, w, p) for w, p in owned}

    for folder in folders:
        if folder.directory in live:
            continue
        path = wanted.get(folder.world_id, {}).get(folder.slug)
        scene = rows.get((folder.world_id, path)) if path is not None else None
        doomed_temp = list(folder.temp)
        doomed_copies: list[Path] = []
        if scene is not None and scene.status == Status.READY.value:
            if scene.provider_job_id and await _stored(store, scene.asset_key):
                clip = spool_file(spool_dir, folder.world_id, scene.path, scene.provider_job_id)
                published = {clip, clip.with_suffix(".last.png")}
                doomed_copies = [p for p in folder.complete if p in published]
        else:
            # Not ready (or unknown): every complete file may be a paid clip. Keep it.
            report.kept_clips += sum(1 for p in folder.complete if p.suffix == ".mp4")
        report.temp_files += await asyncio.to_thread(_unlink_old, doomed_temp, cutoff)
        report.spool_copies += await asyncio.to_thread(_unlink_old, doomed_copies, cutoff)


async def _stored(store: AssetStore, key: str | None) -> bool:
    if not key:
        return False
    try:
        return await store.exists(key)
    except StorageError as exc:
        log.warning("sweep could not check asset key=%s (%s); keeping its spool copy", key, exc)
        return False


def _folder_of(spool_dir: Path, world_id: str, path: str) -> Path:
    return spool_file(spool_dir, world_id, path, "-").parent


def _path_of(slug: str, max_depth: int) -> str | None:
    """The branch path a spool folder name stands for, if it maps back to exactly one."""
    candidate = "" if slug == "root" else slug.replace("-", "/")
    try:
        paths.parse(candidate, max_depth)
    except paths.InvalidPath:
        return None
    return candidate if paths.storage_slug(candidate) == slug else None


def _scan_spool(spool_dir: Path, cutoff: float) -> list[_Folder]:
    """Branch folders holding a temp file older than `cutoff` or any complete file."""
    found: list[_Folder] = []
    for world_dir in _subdirs(spool_dir):
        for branch_dir in _subdirs(world_dir):
            temp: list[Path] = []
            complete: list[Path] = []
            with contextlib.suppress(OSError), os.scandir(branch_dir) as entries:
                for entry in entries:
                    try:
                        if not entry.is_file(follow_symlinks=False):
                            continue
                        if is_temp(entry.name):
                            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                                temp.append(Path(entry.path))
                        else:
                            complete.append(Path(entry.path))
                    except OSError:
                        continue
            if temp or complete:
                found.append(
                    _Folder(
                        world_dir.name, branch_dir.name, branch_dir, tuple(temp), tuple(complete)
                    )
                )
    return found


def _subdirs(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _unlink_old(files: Iterable[Path], cutoff: float) -> int:
    """Delete each file still older than `cutoff` (looked at again now); returns how many."""
    removed = 0
    for path in files:
        try:
            if path.stat().st_mtime >= cutoff:
                continue  # written to since the scan: someone owns it
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("sweep could not remove %s (%s)", path.name, exc.strerror or exc)
    return removed
