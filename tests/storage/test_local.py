"""LocalStore against a real temporary directory."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from storage import AssetStore, StorageError, build_store, content_type_for
from storage.local import LocalStore
from world.settings import StorageSettings

MiB = 1024 * 1024
BAD_KEYS = [
    "",
    "/etc/passwd",
    "../outside.mp4",
    "a/../../outside.mp4",
    "a//b.mp4",
    "a\\b.mp4",
    "./a",
]


def _write(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


async def test_put_file_copies_bytes_and_keeps_source(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "assets", None)
    source = tmp_path / "clip.mp4"
    data = _write(source, 3 * MiB + 17)

    size = await store.put_file("worlds/w1/scenes/s1/g1.mp4", source, "video/mp4")

    assert size == len(data)
    assert await store.exists("worlds/w1/scenes/s1/g1.mp4")
    assert await store.open_bytes("worlds/w1/scenes/s1/g1.mp4") == data
    assert (tmp_path / "assets/worlds/w1/scenes/s1/g1.mp4").read_bytes() == data
    assert source.read_bytes() == data  # the caller's file is untouched
    leftovers = [p.name for p in (tmp_path / "assets/worlds/w1/scenes/s1").iterdir()]
    assert leftovers == ["g1.mp4"]  # no temporary files left behind


async def test_put_file_replaces_existing_asset(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, None)
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    _write(first, 1000)
    data = _write(second, 2000)
    await store.put_file("k/x.png", first, "image/png")
    assert await store.put_file("k/x.png", second, "image/png") == 2000
    assert await store.open_bytes("k/x.png") == data


async def test_failed_put_leaves_nothing_visible(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "assets", None)
    with pytest.raises(StorageError, match="could not store"):
        await store.put_file("w/missing.mp4", tmp_path / "does-not-exist.mp4", "video/mp4")
    assert not await store.exists("w/missing.mp4")
    assert not any(p.is_file() for p in (tmp_path / "assets").rglob("*"))


async def test_event_loop_keeps_running_during_copy(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "assets", None)
    source = tmp_path / "big.mp4"
    _write(source, 20 * MiB)
    ticks = 0
    upload = asyncio.create_task(store.put_file("big.mp4", source, "video/mp4"))

    async def ticker() -> None:
        nonlocal ticks
        while not upload.done():
            await asyncio.sleep(0.001)
            if not upload.done():
                ticks += 1

    tick_task = asyncio.create_task(ticker())
    assert await upload == 20 * MiB
    await tick_task
    assert ticks > 0


def test_url_for_uses_public_base_url(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, "https://bot.example.com/assets/")
    assert store.url_for("worlds/w1/g1.mp4") == "https://bot.example.com/assets/worlds/w1/g1.mp4"
    assert LocalStore(tmp_path, None).url_for("worlds/w1/g1.mp4") is None


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_keys_that_escape_the_root_are_rejected(tmp_path: Path, key: str) -> None:
    root = tmp_path / "assets"
    store = LocalStore(root, "https://bot.example.com/assets")
    source = tmp_path / "clip.mp4"
    _write(source, 100)
    with pytest.raises(StorageError):
        await store.put_file(key, source, "video/mp4")
    with pytest.raises(StorageError):
        store.url_for(key)
    with pytest.raises(StorageError):
        await store.open_bytes(key)
    with pytest.raises(StorageError):
        await store.exists(key)
    with pytest.raises(StorageError):
        await store.delete(key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


async def test_symlink_out_of_root_is_rejected(tmp_path: Path) -> None:
    root = tmp_path / "assets"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    source = tmp_path / "clip.mp4"
    _write(source, 100)
    with pytest.raises(StorageError, match="outside"):
        await LocalStore(root, None).put_file("link/x.mp4", source, "video/mp4")
    assert list((tmp_path / "elsewhere").iterdir()) == []


async def test_delete_and_missing_assets(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, None)
    source = tmp_path / "clip.mp4"
    _write(source, 10)
    await store.put_file("a/b.mp4", source, "video/mp4")
    await store.delete("a/b.mp4")
    assert not await store.exists("a/b.mp4")
    await store.delete("a/b.mp4")  # deleting twice is fine
    with pytest.raises(StorageError, match="does not exist"):
        await store.open_bytes("a/b.mp4")


async def test_check_creates_directory_and_leaves_no_probe(tmp_path: Path) -> None:
    root = tmp_path / "new" / "assets"
    store = LocalStore(root, None)
    await store.check()
    assert root.is_dir()
    assert list(root.iterdir()) == []
    await store.close()


async def test_check_fails_with_a_plain_message_when_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    store = LocalStore(blocker / "assets", None)
    with pytest.raises(StorageError, match=r"not writable.*storage\.local_dir"):
        await store.check()


def test_build_store_picks_local(tmp_path: Path) -> None:
    store = build_store(
        StorageSettings(
            backend="local", local_dir=str(tmp_path), local_public_base_url="http://h/assets"
        )
    )
    assert isinstance(store, LocalStore)
    assert isinstance(store, AssetStore)
    assert store.url_for("x.png") == "http://h/assets/x.png"


def test_build_store_rejects_unknown_backend() -> None:
    with pytest.raises(StorageError, match="unknown"):
        build_store(StorageSettings(backend="ftp"))


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("w/g.mp4", "video/mp4"),
        ("w/g.last.png", "image/png"),
        ("w/G.JPG", "image/jpeg"),
        ("w/g.jpeg", "image/jpeg"),
        ("w/g.txt", "application/octet-stream"),
        ("w.d/noext", "application/octet-stream"),
    ],
)
def test_content_type_for(key: str, expected: str) -> None:
    assert content_type_for(key) == expected
