"""Object keys and content types shared by every asset store."""

from __future__ import annotations

from urllib.parse import quote

from storage.base import StorageError

_CONTENT_TYPES = {
    "mp4": "video/mp4",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
}


def content_type_for(key: str) -> str:
    """The Content-Type for a key, from its extension (case-insensitive).

    `.mp4` → video/mp4, `.png` → image/png, `.jpg`/`.jpeg` → image/jpeg, anything else →
    application/octet-stream.
    """
    name = key.rsplit("/", 1)[-1]
    if "." not in name:
        return "application/octet-stream"
    return _CONTENT_TYPES.get(name.rsplit(".", 1)[-1].lower(), "application/octet-stream")


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative POSIX path; raise StorageError otherwise.

    Rejected: empty keys, absolute paths, backslashes, control characters, and empty, `.` or
    `..` segments (so a key can never step outside the store's root or bucket prefix).
    """
    if not isinstance(key, str) or not key:
        raise StorageError("storage key must be a non-empty string")
    if key.startswith("/"):
        raise StorageError(f"storage key {key!r} is absolute; use a relative path like 'a/b.mp4'")
    if "\\" in key or any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise StorageError(f"storage key {key!r} contains a backslash or control character")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise StorageError(
                f"storage key {key!r} has an empty, '.' or '..' segment; "
                "keys must stay inside the store"
            )
    return key


def join_url(base: str, key: str) -> str:
    """`base` without trailing slashes, then `/`, then the key (percent-encoded, `/` kept)."""
    return base.rstrip("/") + "/" + quote(key, safe="/-_.~")
