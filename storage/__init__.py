"""Asset stores behind one protocol: local disk and S3-compatible (R2, AWS, MinIO)."""

from storage.base import AssetStore, StorageError

__all__ = ["AssetStore", "StorageError"]
