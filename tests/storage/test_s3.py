"""S3Store against a real moto S3 server (no mocking of boto3)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from storage import AssetStore, StorageError, build_store
from storage.s3 import S3Store, backoff_delay, clamp_expires_in
from tests.fixtures.s3 import MotoS3Server
from world.settings import StorageSettings

MiB = 1024 * 1024
VIDEO = "video/mp4"


def _write(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


async def _download(url: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.read()


def _expires(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])


@pytest.fixture
async def store(s3_settings: StorageSettings) -> AsyncIterator[S3Store]:
    s3 = S3Store(s3_settings)
    yield s3
    await s3.close()


async def _wait_for_log(caplog: pytest.LogCaptureFixture, text: str) -> None:
    while not any(text in record.getMessage() for record in caplog.records):
        await asyncio.sleep(0.02)


# -- uploads and URLs --------------------------------------------------------------------


async def test_upload_few_mb_and_fetch_via_presigned_url(store: S3Store, tmp_path: Path) -> None:
    source = tmp_path / "clip.mp4"
    data = _write(source, 3 * MiB + 5)
    key = "worlds/w1/scenes/s1/g1.mp4"

    assert await store.put_file(key, source, VIDEO) == len(data)

    assert await store.exists(key)
    assert await store.open_bytes(key) == data
    url = store.url_for(key)
    assert url is not None and "X-Amz-Signature=" in url
    status, content_type, body = await _download(url)
    assert (status, content_type) == (200, VIDEO)
    assert body == data
    assert source.read_bytes() == data  # the store never deletes the caller's file


async def test_upload_sets_cache_control_for_immutable_keys(
    store: S3Store, s3_server: MotoS3Server, s3_settings: StorageSettings, tmp_path: Path
) -> None:
    source = tmp_path / "poster.png"
    _write(source, 1000)
    await store.put_file("w/g.last.png", source, "image/png")
    client = s3_server.client()
    try:
        head = client.head_object(Bucket=s3_settings.bucket, Key="w/g.last.png")
    finally:
        client.close()
    assert head["ContentType"] == "image/png"
    assert head["CacheControl"] == "public, max-age=31536000, immutable"


async def test_multipart_upload_arrives_intact(
    store: S3Store, s3_server: MotoS3Server, s3_settings: StorageSettings, tmp_path: Path
) -> None:
    source = tmp_path / "long.mp4"
    data = _write(source, 8 * MiB * 2 + 12345)  # three parts: 8 MiB, 8 MiB, remainder
    key = "worlds/w1/scenes/s2/g2.mp4"

    assert await store.put_file(key, source, VIDEO) == len(data)

    client = s3_server.client()
    try:
        etag = client.head_object(Bucket=s3_settings.bucket, Key=key)["ETag"]
    finally:
        client.close()
    assert etag.strip('"').endswith("-3")  # stored as a 3-part multipart upload
    url = store.url_for(key)
    assert url is not None
    status, content_type, body = await _download(url)
    assert (status, content_type) == (200, VIDEO)
    assert body == data


async def test_event_loop_keeps_ticking_during_upload(store: S3Store, tmp_path: Path) -> None:
    source = tmp_path / "big.mp4"
    _write(source, 20 * MiB)
    ticks = 0
    upload = asyncio.create_task(store.put_file("w/big.mp4", source, VIDEO))

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


async def test_public_base_url_mode(s3_settings: StorageSettings, tmp_path: Path) -> None:
    settings = dataclasses.replace(
        s3_settings, public_base_url="https://media.example.com/", signed_urls=False
    )
    store = S3Store(settings)
    try:
        assert store.url_for("worlds/w1/g1.mp4") == "https://media.example.com/worlds/w1/g1.mp4"
        await store.check()  # the check also works in public mode
    finally:
        await store.close()

    signed = S3Store(dataclasses.replace(settings, signed_urls=True))
    try:
        url = signed.url_for("worlds/w1/g1.mp4")
        assert url is not None
        assert url.startswith(f"{s3_settings.endpoint_url}/{s3_settings.bucket}/worlds/w1/g1.mp4?")
        assert "X-Amz-Signature=" in url
    finally:
        await signed.close()


async def test_presigned_urls_are_reused_until_half_expired(
    s3_settings: StorageSettings,
) -> None:
    store = S3Store(dataclasses.replace(s3_settings, signed_url_ttl=2))
    try:
        first = store.url_for("w/a.mp4")
        assert store.url_for("w/a.mp4") == first  # repeated views get the same URL
        assert store.url_for("w/b.mp4") != first
        await asyncio.sleep(1.1)  # past half of the 2 s lifetime
        again = store.url_for("w/a.mp4")
        assert again != first
        assert _expires(again) == 2
    finally:
        await store.close()


def test_ttl_clamp_is_pure() -> None:
    assert clamp_expires_in(3600) == 3600
    assert clamp_expires_in(604800) == 604800
    assert clamp_expires_in(604801) == 604800
    assert clamp_expires_in(8 * 86400) == 604800
    assert clamp_expires_in(0) == 1
    assert clamp_expires_in(-30) == 1
    assert clamp_expires_in(1.9) == 1


@pytest.mark.parametrize(("ttl", "expected"), [(10**7, 604800), (0, 1), (900, 900)])
async def test_presigned_url_expiry_is_clamped(ttl: int, expected: int) -> None:
    # Presigning is local; no server is needed (moto would not check expiry anyway).
    settings = StorageSettings(
        backend="s3",
        endpoint_url="http://127.0.0.1:9",
        bucket="clamp-test",
        access_key_id="test-access",
        secret_access_key="test-secret",
        signed_url_ttl=ttl,
    )
    store = S3Store(settings)
    try:
        url = store.url_for("w/x.mp4")
        assert url is not None
        assert _expires(url) == expected
        assert "/auto/s3/aws4_request" in parse_qs(urlsplit(url).query)["X-Amz-Credential"][0]
    finally:
        await store.close()


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_delay(0.5, n) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(0.5, 10) == 30.0


@pytest.mark.parametrize("key", ["", "/abs.mp4", "../up.mp4", "a/../../b.mp4", "a//b.mp4"])
async def test_traversal_keys_are_rejected(store: S3Store, tmp_path: Path, key: str) -> None:
    source = tmp_path / "clip.mp4"
    _write(source, 10)
    with pytest.raises(StorageError):
        await store.put_file(key, source, VIDEO)
    with pytest.raises(StorageError):
        store.url_for(key)
    with pytest.raises(StorageError):
        await store.exists(key)


async def test_exists_open_and_delete(store: S3Store, tmp_path: Path) -> None:
    source = tmp_path / "clip.mp4"
    _write(source, 10)
    assert not await store.exists("w/none.mp4")
    with pytest.raises(StorageError, match="does not exist"):
        await store.open_bytes("w/none.mp4")
    await store.put_file("w/x.mp4", source, VIDEO)
    await store.delete("w/x.mp4")
    assert not await store.exists("w/x.mp4")
    await store.delete("w/x.mp4")  # deleting twice is fine


async def test_missing_source_fails_without_retrying(store: S3Store, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        await store.put_file("w/x.mp4", tmp_path / "nope.mp4", VIDEO)


# -- check() -----------------------------------------------------------------------------


async def test_check_passes_on_a_good_bucket(
    store: S3Store, s3_server: MotoS3Server, s3_settings: StorageSettings
) -> None:
    await store.check()
    client = s3_server.client()
    try:
        listing = client.list_objects_v2(Bucket=s3_settings.bucket)
    finally:
        client.close()
    assert listing["KeyCount"] == 0  # the probe object was cleaned up


async def test_check_names_a_missing_bucket(s3_settings: StorageSettings) -> None:
    store = S3Store(dataclasses.replace(s3_settings, bucket="sw-no-such-bucket"))
    try:
        with pytest.raises(StorageError) as info:
            await store.check()
    finally:
        await store.close()
    message = str(info.value)
    assert "'sw-no-such-bucket' does not exist" in message
    assert "R2_BUCKET_NAME" in message
    assert "test-secret" not in message


async def test_check_names_an_unreachable_endpoint(s3_settings: StorageSettings) -> None:
    import socket

    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = S3Store(dataclasses.replace(s3_settings, endpoint_url=f"http://127.0.0.1:{port}"))
    try:
        with pytest.raises(StorageError, match=r"unreachable.*S3_ENDPOINT_URL"):
            await store.check()
    finally:
        await store.close()


def test_build_store_picks_s3(s3_settings: StorageSettings) -> None:
    store = build_store(s3_settings)
    assert isinstance(store, S3Store)
    assert isinstance(store, AssetStore)


def test_missing_bucket_setting_is_a_plain_error() -> None:
    with pytest.raises(StorageError, match="R2_BUCKET_NAME"):
        S3Store(StorageSettings(backend="s3", bucket=None))


# -- outages -----------------------------------------------------------------------------


async def test_server_restart_keeps_objects_on_the_same_port(
    store: S3Store, s3_server: MotoS3Server, tmp_path: Path
) -> None:
    source = tmp_path / "clip.mp4"
    data = _write(source, 1000)
    await store.put_file("w/keep.mp4", source, VIDEO)
    port = s3_server.port
    s3_server.stop()
    try:
        with pytest.raises(StorageError):
            await store.exists("w/keep.mp4")
    finally:
        s3_server.start()
    assert s3_server.port == port
    assert await store.open_bytes("w/keep.mp4") == data


async def test_upload_survives_a_server_outage(
    store: S3Store,
    s3_server: MotoS3Server,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="storage.s3")
    source = tmp_path / "clip.mp4"
    data = _write(source, 10 * MiB + 3)  # multipart, so every part is retried too
    key = "worlds/w1/scenes/s3/g3.mp4"

    s3_server.stop()
    try:
        upload = asyncio.create_task(store.put_file(key, source, VIDEO))
        await asyncio.wait_for(_wait_for_log(caplog, "retrying in"), timeout=60)
        assert not upload.done()
        await asyncio.sleep(1.0)
    finally:
        s3_server.start()

    assert await upload == len(data)
    assert await store.open_bytes(key) == data
    url = store.url_for(key)
    assert url is not None
    status, content_type, body = await _download(url)
    assert (status, content_type, body) == (200, VIDEO, data)
    assert source.read_bytes() == data


async def test_upload_gives_up_after_the_last_attempt(
    s3_settings: StorageSettings,
    s3_server: MotoS3Server,
    tmp_path: Path,
) -> None:
    store = S3Store(
        dataclasses.replace(s3_settings, upload_attempts=2, upload_backoff_seconds=0.05)
    )
    source = tmp_path / "clip.mp4"
    data = _write(source, 2 * MiB)
    s3_server.stop()
    try:
        with pytest.raises(StorageError) as info:
            await store.put_file("w/lost.mp4", source, VIDEO)
    finally:
        s3_server.start()
        await store.close()
    message = str(info.value)
    assert "after 2 attempts" in message
    assert "test-secret" not in message and "test-access" not in message
    assert source.read_bytes() == data
