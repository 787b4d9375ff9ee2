"""Storage settings: which asset store to use and how to reach it.

`StorageSettings` lives here, not in `world.settings`, so that `storage/` imports nothing from
`world/`. `world.settings` re-exports it and fills it from the `[storage]` section of
`config.toml` and the `R2_*` / `S3_ENDPOINT_URL` / `STORAGE_BACKEND` environment variables;
validation of its values stays there too.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StorageSettings:
    backend: str = "local"  # local | s3
    local_dir: str = "./data/assets"
    # Base URL under which local assets are reachable (e.g. the HTTP front door's /assets).
    local_public_base_url: str | None = None
    endpoint_url: str | None = None
    region: str = "auto"
    bucket: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    public_base_url: str | None = None
    signed_urls: bool = True
    signed_url_ttl: int = 3600
    upload_attempts: int = 6
    upload_backoff_seconds: float = 0.5
