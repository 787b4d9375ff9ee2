"""Claims: per-(world, path) asyncio locks in front of the database compare-and-set.

The database decides who pays (a conditional UPDATE whose rowcount is 1 for exactly one
caller, in any number of processes); the in-process lock only keeps one event loop from
stampeding the database with identical claims. Locks are refcounted and dropped when idle,
so the table never grows with the number of paths ever claimed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class PathLocks:
    """Refcounted asyncio locks keyed by (world_id, path)."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]


def new_claim_token() -> str:
    return uuid.uuid4().hex


def contributor_id(salt: str, contributor: str) -> str:
    """A keyed hash of who paid: countable, not reversible without the salt.

    Any text hashes, also text no UTF-8 encoder accepts (a lone surrogate from a front door
    or from a badly encoded environment variable): surrogates are kept as they are.
    """
    key, who = (text.encode("utf-8", "surrogatepass") for text in (salt, contributor))
    digest = hmac.new(key, who, hashlib.sha256).hexdigest()
    return digest[:32]
