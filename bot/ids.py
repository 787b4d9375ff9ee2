"""The custom_id scheme every component the bot has ever sent follows.

`sw:v1:<kind>:<ids...>`: versioned, at most 100 characters, ids only; all state is in the
database. A branch path is packed as its choice digits ("0/2/1" -> "021", the opening scene
-> "."), which keeps the deepest allowed path (50 choices) well inside the limit.
"""

from __future__ import annotations

import re

from world import paths

PREFIX = "sw:v1"
MAX_CUSTOM_ID = 100
ROOT_CODE = "."
PATH_CODE = r"(?:\.|[0-9]{1,60})"

_PATH_CODE = re.compile(PATH_CODE)


class BadPathCode(ValueError):
    pass


def encode_path(path: str) -> str:
    """A canonical path as custom_id text; every choice index is a single digit."""
    if path == "":
        return ROOT_CODE
    parts = path.split("/")
    if any(len(part) != 1 for part in parts):
        raise BadPathCode(f"{path!r} has a choice that does not fit one digit")
    return "".join(parts)


def decode_path(code: str, max_depth: int) -> str:
    """The canonical path a custom_id carries; raises BadPathCode for anything else."""
    if not _PATH_CODE.fullmatch(code):
        raise BadPathCode(f"{code!r} is not a path code")
    path = "" if code == ROOT_CODE else "/".join(code)
    try:
        return paths.canonical(path, max_depth)
    except paths.InvalidPath as exc:
        raise BadPathCode(str(exc)) from exc


def custom_id(kind: str, *parts: object) -> str:
    value = ":".join([PREFIX, kind, *(str(p) for p in parts)])
    if len(value) > MAX_CUSTOM_ID:
        raise ValueError(f"custom_id {value[:40]}... is longer than {MAX_CUSTOM_ID} characters")
    return value
