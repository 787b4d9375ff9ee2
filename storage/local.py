"""Assets on local disk, optionally served under a public base URL (e.g. the HTTP front door)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
import uuid
from pathlib import Path

from storage.base import StorageError
from storage.keys import join_url, validate_key

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
# The temp names `_copy` and `_check` write (a killed process leaves them behind).
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{32}\.part|\.probe-[0-9a-f]{32}")


class LocalStore:
    """An `AssetStore` that keeps each key as a file under `root`.

    Writes go to a hidden temporary file in the destination directory and are moved into
    place with `os.replace`, so readers never see a half-written asset.
    """

    def __init__(self, root: Path, public_base_url: str | None = None) -> None:
        self.root = Path(root)
        self.public_base_url = public_base_url or None

    def _path(self, key: str) -> Path:
        validate_key(key)
        path = self.root / key
        root = self.root.resolve()
        resolved = path.resolve()
        if resolved != root and root not in resolved.parents:
            raise StorageError(f"storage key {key!r} resolves outside the asset directory")
        return path

    async def put_file(self, key: str, source: Path, content_type: str) -> int:
        """Copy `source` to `key` atomically; return the number of bytes written.

        `content_type` is not stored: local files are served by extension.
        """
        dest = self._path(key)
        size = await asyncio.to_thread(self._copy, Path(source), dest)
        log.info("local store wrote key=%s bytes=%d", key, size)
        return size

    @staticmethod
    def _copy(source: Path, dest: Path) -> int:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.part"
            size = 0
            try:
                with source.open("rb") as src, tmp.open("wb") as out:
                    while chunk := src.read(CHUNK_SIZE):
                        out.write(chunk)
                        size += len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, dest)
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
        except OSError as exc:
            raise StorageError(
                f"could not store {source} as {dest}: {exc.strerror or exc}"
            ) from exc
        return size

    def url_for(self, key: str) -> str | None:
        """`<local_public_base_url>/<key>`, or None when no public base URL is configured."""
        validate_key(key)
        if self.public_base_url is None:
            return None
        return join_url(self.public_base_url, key)

    async def open_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise StorageError(f"asset {key!r} does not exist in the local store") from exc
        except OSError as exc:
            raise StorageError(f"could not read asset {key!r}: {exc.strerror or exc}") from exc

    async def exists(self, key: str) -> bool:
        path = self._path(key)
        return await asyncio.to_thread(path.is_file)

    async def delete(self, key: str) -> None:
        """Remove `key`; deleting a missing key is not an error."""
        path = self._path(key)
        try:
            await asyncio.to_thread(path.unlink, True)
        except OSError as exc:
            raise StorageError(f"could not delete asset {key!r}: {exc.strerror or exc}") from exc
        log.info("local store deleted key=%s", key)

    async def check(self) -> None:
        """Create the asset directory and prove it is writable and readable."""
        await asyncio.to_thread(self._check)
        log.info("local store ok dir=%s public_base_url=%s", self.root, self.public_base_url)

    def _check(self) -> None:
        probe = self.root / f".probe-{uuid.uuid4().hex}"
        payload = b"shared-world storage probe"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(payload)
            if probe.read_bytes() != payload:
                raise StorageError(
                    f"asset directory {self.root} returned different bytes than were written; "
                    "check the disk or choose another storage.local_dir"
                )
            probe.unlink()
        except OSError as exc:
            with contextlib.suppress(OSError):
                probe.unlink()
            raise StorageError(
                f"asset directory {self.root} is not writable ({exc.strerror or exc}); "
                "fix its permissions or set storage.local_dir to a writable directory"
            ) from exc

    async def sweep_partial(self, older_than_seconds: float) -> int:
        """Delete temp files of copies that never finished (a killed process); returns how many.

        Only this store's own temp names (`.<name>.<32 hex>.part`, `.probe-<32 hex>`) untouched
        for `older_than_seconds` go: a copy in progress writes its temp file continuously.
        """
        removed = await asyncio.to_thread(self._sweep_partial, time.time() - older_than_seconds)
        if removed:
            log.info("local store swept %d unfinished temp files dir=%s", removed, self.root)
        return removed

    def _sweep_partial(self, cutoff: float) -> int:
        removed = 0
        for folder, _, names in os.walk(self.root):
            for name in names:
                if not _TEMP_NAME.fullmatch(name):
                    continue
                path = Path(folder) / name
                try:
                    if path.stat().st_mtime >= cutoff:
                        continue
                    path.unlink()
                    removed += 1
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    log.warning("local store could not sweep %s (%s)", name, exc.strerror or exc)
        return removed

    async def close(self) -> None:
        """Nothing to release for local disk."""
