"""The asset store protocol shared by local disk and S3-compatible storage."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable


class StorageError(Exception):
    """A storage failure with a message that is safe to log (no credentials)."""


@runtime_checkable
class AssetStore(Protocol):
    async def put_file(self, key: str, source: Path, content_type: str) -> int:
        """Upload `source` under `key` (streaming, retried with backoff); return its size."""

    def url_for(self, key: str) -> str | None:
        """A URL a Discord client can open (public or presigned), or None if there is none."""

    async def open_bytes(self, key: str) -> bytes:
        """The object's bytes (small assets only, e.g. a poster or an attachment fallback)."""

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None: ...

    async def check(self) -> None:
        """Prove the store is writable and URLs can be made; raise StorageError if not."""

    async def close(self) -> None: ...
