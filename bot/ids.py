"""The custom_id scheme every component the bot has ever sent follows.

`sw:v1:<kind>:<ids...>`: versioned, at most 100 characters, ids only; all state is in the
database. A branch path is packed as its choice digits ("0/2/1" -> "021", the opening scene
-> "."). A path deeper than 59 choices (settings allow 500) does not fit that way, so it is
sent as "h" and a hash of the path: the bot resolves it against the channel's current path,
read from the database, which is the only branch such a button can act on.
"""

from __future__ import annotations

import hashlib
import re

from world import paths
from world.quoting import quote

PREFIX = "sw:v1"
MAX_CUSTOM_ID = 100
ROOT_CODE = "."
# The longest path sent as digits: a key form's custom_id (40 characters besides the path
# with a 19-digit channel id) has room for 59. Buttons of older versions carry up to 60.
MAX_DIGITS = 59
HASH_CODE = "h"
_HASH_HEX = 32
PATH_CODE = rf"(?:\.|[0-9]{{1,60}}|{HASH_CODE}[0-9a-f]{{{_HASH_HEX}}})"

_PATH_CODE = re.compile(PATH_CODE)


class BadPathCode(ValueError):
    pass


def encode_path(path: str) -> str:
    """A canonical path as custom_id text (at most 59 characters at any depth)."""
    if path == "":
        return ROOT_CODE
    parts = path.split("/")
    if any(len(part) != 1 for part in parts):
        raise BadPathCode(f"{quote(path)} has a choice that does not fit one digit.")
    if len(parts) > MAX_DIGITS:
        digest = hashlib.sha256(path.encode(errors="surrogatepass")).hexdigest()
        return HASH_CODE + digest[:_HASH_HEX]
    return "".join(parts)


def decode_path(code: str, max_depth: int, *, current: str | None = None) -> str:
    """The canonical path a custom_id carries; raises BadPathCode for anything else.

    A hashed code (a path deeper than 59 choices) decodes only to `current`, the channel's
    current path from the database, and only when it is that path's code.
    """
    if not isinstance(code, str) or not _PATH_CODE.fullmatch(code):
        raise BadPathCode(f"{quote(code)} is not a path code.")
    if code.startswith(HASH_CODE):
        if current is None or encode_path(current) != code:
            raise BadPathCode("That path code is not the branch this channel is on.")
        path = current
    else:
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
