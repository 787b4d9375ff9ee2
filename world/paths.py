"""Canonical branch paths: "" is the opening scene, children are choice indexes joined by "/".

Pure functions only; every path is checked here before it reaches the database.
"""

from __future__ import annotations

import hashlib
import re

from world.quoting import quote

CHOICES_PER_SCENE = 3
# Names derived from a path (spool folders, asset keys, attachment names) stay this short at
# any depth: a long path keeps a readable prefix and ends in a hash of the whole path.
SLUG_MAX = 120
_SLUG_HASH = 32
_PART = re.compile(r"0|[1-9][0-9]{0,2}")


class InvalidPath(ValueError):
    """A path that is not canonical; the message is a plain sentence for the user."""


def parse(path: str, max_depth: int) -> tuple[int, ...]:
    """Return the choice indexes of a canonical path, or raise InvalidPath."""
    if not isinstance(path, str):
        raise InvalidPath("A branch path must be text like 0/2/1.")
    if path == "":
        return ()
    parts = path.split("/")
    if len(parts) > max_depth:
        raise InvalidPath(f"That branch is deeper than this world allows ({max_depth} choices).")
    indexes: list[int] = []
    for part in parts:
        if not _PART.fullmatch(part):
            raise InvalidPath(
                f"{quote(path)} is not a branch path; use choice numbers joined by '/', like 0/2/1."
            )
        index = int(part)
        if index >= CHOICES_PER_SCENE:
            raise InvalidPath(f"Choice {index} does not exist; each scene has choices 0 to 2.")
        indexes.append(index)
    return tuple(indexes)


def canonical(path: str, max_depth: int) -> str:
    """The path itself when it is canonical; raises InvalidPath otherwise."""
    parse(path, max_depth)
    return path


def join(indexes: tuple[int, ...] | list[int]) -> str:
    return "/".join(str(i) for i in indexes)


def depth(path: str) -> int:
    return 0 if path == "" else path.count("/") + 1


def parent(path: str) -> str | None:
    if path == "":
        return None
    return path.rsplit("/", 1)[0] if "/" in path else ""


def last_index(path: str) -> int | None:
    if path == "":
        return None
    return int(path.rsplit("/", 1)[-1])


def child(path: str, index: int) -> str:
    return str(index) if path == "" else f"{path}/{index}"


def children(path: str, count: int = CHOICES_PER_SCENE) -> list[str]:
    return [child(path, i) for i in range(count)]


def ancestors(path: str) -> list[str]:
    """Every path from the root down to (not including) `path`."""
    if path == "":
        return []
    parts = path.split("/")
    return [""] + ["/".join(parts[:n]) for n in range(1, len(parts))]


def breadcrumbs(path: str) -> str:
    """Human form of a path: "Start › 1 › 3 › 2" (choices counted from 1)."""
    if path == "":
        return "Start"
    return "Start › " + " › ".join(str(int(p) + 1) for p in path.split("/"))


def storage_slug(path: str) -> str:
    """A filesystem- and URL-safe name for a path ("root", "0-2-1"), at most SLUG_MAX long.

    Paths up to depth 60 read as they are; a deeper one keeps a readable prefix and ends in
    "_" and a hash of the whole path ("2-2-…-2_<32 hex>"), so every derived name stays under
    the filesystems' 255-byte limit at any allowed depth and different paths never share one.
    """
    if path == "":
        return "root"
    slug = path.replace("/", "-")
    if len(slug) <= SLUG_MAX:
        return slug
    digest = hashlib.sha256(path.encode(errors="surrogatepass")).hexdigest()[:_SLUG_HASH]
    return f"{slug[: SLUG_MAX - _SLUG_HASH - 1].rstrip('-')}_{digest}"
