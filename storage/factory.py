"""Pick the asset store named by the settings."""

from __future__ import annotations

from pathlib import Path

from storage.base import AssetStore, StorageError
from storage.local import LocalStore
from storage.settings import StorageSettings


def build_store(settings: StorageSettings) -> AssetStore:
    """A `LocalStore` for `backend="local"`, an `S3Store` for `backend="s3"`."""
    if settings.backend == "local":
        return LocalStore(Path(settings.local_dir), settings.local_public_base_url)
    if settings.backend == "s3":
        from storage.s3 import S3Store  # boto3 is only imported when S3 is used

        return S3Store(settings)
    raise StorageError(f"storage.backend {settings.backend!r} is unknown; use 'local' or 's3'")
