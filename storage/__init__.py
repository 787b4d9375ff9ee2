"""Asset stores behind one protocol: local disk and S3-compatible (R2, AWS, MinIO)."""

from storage.base import AssetStore, StorageError
from storage.factory import build_store
from storage.keys import content_type_for

__all__ = ["AssetStore", "StorageError", "build_store", "content_type_for"]
