"""Issue 7 finding 9: a process killed mid-download or mid-upload leaves no temp file forever.

Each test SIGKILLs a real bot process (this module, run as
`python -m tests.world.test_sweep <mode> <root>`) at a chosen moment of the real code:
inside the media writer (download), inside the local store's copy (upload), or between
publish and the spool clean-up. Start-up and the watchdog then sweep what no live job owns
and keep what a branch still needs: a paid spool clip of an unfinished branch is never
deleted, and the branch completes from it on resume without a new render.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage.base import StorageError
from storage.local import LocalStore
from tests.fixtures.world import make_settings, renders_started, start_service
from tests.world.helpers import expire_lease, row, wait_for
from world.types import Status

PROJECT = Path(__file__).resolve().parents[2]
OLD = 3600.0  # seconds: older than any grace period


class KilledWorker:
    """A bot process that claims the root branch and blocks at one moment until killed."""

    def __init__(self, root: Path, mode: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.world.test_sweep", mode, str(root)],
            cwd=PROJECT,
            env={**os.environ, "PYTHONPATH": str(PROJECT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    async def kill_at(self, marker: str) -> None:
        try:
            line = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), 60)
            assert line.strip() == marker, line or self.process.stderr.read()
        finally:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
            self.process.communicate(timeout=30)


def _spool_dir(settings) -> Path:
    return Path(settings.generation.spool_dir)


def _assets_dir(settings) -> Path:
    return Path(settings.storage.local_dir)


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def _age(*folders: Path, seconds: float = OLD) -> None:
    """Make every file under `folders` look `seconds` old (a process killed that long ago)."""
    then = time.time() - seconds
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                os.utime(path, (then, then))


def _temp(name: str) -> bool:
    return name.endswith(".part") or ".part." in name


async def _settled(service) -> None:
    """The job's task has ended (it cleans its spool up just after publishing)."""
    async with asyncio.timeout(30):
        while service.running_jobs():
            await asyncio.sleep(0.01)


async def _migrate(settings) -> None:
    await (await start_service(settings, run_watchdog=False)).close()


@pytest.fixture
def sweep_every_pass(monkeypatch):
    monkeypatch.setattr("world.sweep.SWEEP_INTERVAL_SECONDS", 0.0)


async def test_kill_mid_upload_start_up_sweeps_the_store_temp_and_the_paid_clip_completes(
    tmp_path, sweep_every_pass
):
    settings = make_settings(tmp_path)
    await _migrate(settings)
    await KilledWorker(tmp_path, "upload").kill_at("uploading")

    spool, assets = _spool_dir(settings), _assets_dir(settings)
    left = _files(spool) | _files(assets)
    clips = [p for p in spool.rglob("*.mp4")]
    assert len(clips) == 1, left
    paid_clip = clips[0]
    assert any(".mp4." in n and _temp(n) for n in _files(assets)), left  # the store's copy
    download_part = paid_clip.with_suffix(".part")  # a download that broke earlier
    download_part.write_bytes(b"half a clip")
    _age(spool, assets)
    fresh_upload = assets / "worlds" / ".fresh.mp4.0123456789abcdef0123456789abcdef.part"
    fresh_upload.parent.mkdir(parents=True, exist_ok=True)
    fresh_upload.write_bytes(b"another process is uploading right now")

    service = await start_service(settings, run_watchdog=False)
    try:
        assert not any(_temp(n) for n in _files(assets) - {fresh_upload.name}), _files(assets)
        assert fresh_upload.exists(), "a temp file inside the grace period is kept"
        assert paid_clip.exists() and download_part.exists(), (
            "a branch queued with a live lease owns its spool folder"
        )

        await expire_lease(service, "")
        assert await service.watchdog.run_once() == 1
        scene = await row(service, "")
        assert scene.status == "pending" and scene.provider_job_id
        assert paid_clip.exists(), "the paid clip of an unfinished branch is never swept"
        assert not download_part.exists(), "an unowned broken download is swept"

        await service.claim("default", "", None, "bob")
        await wait_for(service, "", lambda e: e.status is Status.READY)
        await _settled(service)
        assert renders_started(settings) == 1, "resumed from the spool clip, no new render"
        view = await service.view("default", "")
        assert (assets / view.video_key).is_file()
        assert _files(spool) == set()
    finally:
        await service.close()


async def test_kill_mid_download_the_watchdog_sweeps_the_media_temp_once_no_job_owns_it(
    tmp_path, sweep_every_pass
):
    settings = make_settings(tmp_path)
    await _migrate(settings)
    await KilledWorker(tmp_path, "download").kill_at("downloading")

    spool = _spool_dir(settings)
    left = _files(spool)
    assert left and all(_temp(n) for n in left), left  # only the media writer's temp file
    _age(spool)

    service = await start_service(settings, run_watchdog=False)
    try:
        assert _files(spool) == left, "the branch's lease is live: its folder is not touched"
        await expire_lease(service, "")
        assert await service.watchdog.run_once() == 1
        assert _files(spool) == set(), "no live job owns the temp file any more"

        await service.claim("default", "", None, "bob")
        await wait_for(service, "", lambda e: e.status is Status.READY)
        await _settled(service)
        assert renders_started(settings) == 1, "the paid job was downloaded again, not re-rendered"
    finally:
        await service.close()


async def test_kill_after_publish_start_up_sweeps_the_spool_clip_and_poster(tmp_path):
    settings = make_settings(tmp_path)
    await _migrate(settings)
    await KilledWorker(tmp_path, "publish").kill_at("published")

    spool = _spool_dir(settings)
    left = _files(spool)
    assert any(n.endswith(".mp4") for n in left) and any(n.endswith(".png") for n in left), left
    _age(spool)

    service = await start_service(settings, run_watchdog=False)
    try:
        scene = await row(service, "")
        assert scene.status == "ready"
        assert _files(spool) == set(), "the published branch's spool copies are swept"
        assert (_assets_dir(settings) / scene.asset_key).is_file(), "the asset itself stays"
    finally:
        await service.close()


class FailingStore(LocalStore):
    """A local store whose uploads fail until told otherwise."""

    failing = True

    async def put_file(self, key, source, content_type):
        if self.failing:
            raise StorageError("the store is down")
        return await super().put_file(key, source, content_type)


async def test_a_failed_upload_keeps_its_paid_clip_through_sweeps_and_a_retry_uploads_it(
    tmp_path, sweep_every_pass
):
    settings = make_settings(tmp_path)
    store = FailingStore(_assets_dir(settings))
    service = await start_service(settings, store=store, run_watchdog=False)
    try:
        await service.claim("default", "", None, "alice")
        failed = await wait_for(service, "", lambda e: e.status is Status.FAILED)
        assert failed.failure_code == "storage"
        spool = _spool_dir(settings)
        clips = list(spool.rglob("*.mp4"))
        assert len(clips) == 1
        stray = clips[0].parent / f".{clips[0].stem}.part.feedfacefeedface.part"
        stray.write_bytes(b"x")
        _age(spool)

        await service.watchdog.run_once()
        assert clips[0].exists(), "a failed branch's paid clip is kept"
        assert not stray.exists()

        store.failing = False
        await service.retry("default", "", None, "admin")
        await wait_for(service, "", lambda e: e.status is Status.READY)
        await _settled(service)
        assert renders_started(settings) == 1
        assert _files(spool) == set()
    finally:
        await service.close()

    restarted = await start_service(settings, store=store, run_watchdog=False)
    await restarted.close()  # a start-up sweep with nothing to do is harmless


# --------------------------------------------------------------------------- the child process


def _block(marker: str) -> None:
    print(marker, flush=True)
    while True:  # until SIGKILL
        time.sleep(60)


class _OsWith:
    """The os module with one function replaced (for one module of the child only)."""

    def __init__(self, **replaced) -> None:
        self._replaced = replaced

    def __getattr__(self, name):
        return self._replaced.get(name) or getattr(os, name)


async def _child(mode: str, root: str) -> None:
    import storage.local
    import world.media
    from world.service import WorldService

    settings = make_settings(Path(root))
    spool_dir = Path(settings.generation.spool_dir).resolve()
    if mode == "download":  # the title-card writer has written its temp file, not renamed it
        world.media.os = _OsWith(replace=lambda *a, **k: _block("downloading"))
    elif mode == "upload":  # the local store's copy has written its temp file, not synced it
        storage.local.os = _OsWith(fsync=lambda *a, **k: _block("uploading"))
    elif mode == "publish":  # the branch is ready; the spool clean-up never happens
        real_unlink = Path.unlink

        def unlink(self, *args, **kwargs):
            if spool_dir in self.resolve().parents:
                _block("published")
            return real_unlink(self, *args, **kwargs)

        Path.unlink = unlink
    service = await WorldService.start(settings, run_watchdog=False)
    await service.claim("default", "", None, "killed-member")
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1], sys.argv[2]))
