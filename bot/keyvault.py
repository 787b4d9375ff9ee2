"""The key vault: members' provider keys, in memory only, forgotten after idle time.

Every key the vault holds is registered with world.logsafe so no log line can carry it, and
is unregistered when the vault lets it go (`forget`, idle expiry). Nothing here is ever
written to disk or to the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from world.logsafe import forget_secret, register_secret
from world.types import Credentials


def _monotonic() -> float:
    return time.monotonic()  # looked up per call, so a patched clock (tests) is honoured


@dataclass
class _Entry:
    credentials: Credentials = field(repr=False)
    last_used: float


@dataclass(frozen=True)
class KeyStatus:
    provider: str
    expires_in_seconds: float


class KeyVault:
    def __init__(self, idle_seconds: float, clock: Callable[[], float] | None = None) -> None:
        self.idle_seconds = idle_seconds
        self._clock = clock or _monotonic
        self._entries: dict[tuple[int, str], _Entry] = {}

    def __repr__(self) -> str:
        return f"KeyVault(members={len(self._entries)})"

    def put(self, user_id: int, provider: str, credentials: Credentials) -> None:
        register_secret(credentials.api_key)
        previous = self._entries.get((user_id, provider))
        self._entries[(user_id, provider)] = _Entry(credentials, self._clock())
        if previous is not None and previous.credentials.api_key != credentials.api_key:
            self._release(previous)

    def get(self, user_id: int, provider: str) -> Credentials | None:
        """The member's key for this provider; using it restarts the idle timer."""
        entry = self._live(user_id, provider)
        if entry is None:
            return None
        entry.last_used = self._clock()
        return entry.credentials

    def has(self, user_id: int, provider: str) -> bool:
        return self._live(user_id, provider) is not None

    def status(self, user_id: int) -> list[KeyStatus]:
        now = self._clock()
        found = []
        for (owner, provider), entry in list(self._entries.items()):
            if owner != user_id:
                continue
            left = entry.last_used + self.idle_seconds - now
            if left <= 0:
                self._drop((owner, provider))
                continue
            found.append(KeyStatus(provider, left))
        return sorted(found, key=lambda s: s.provider)

    def forget(self, user_id: int) -> int:
        """Drop every key of this member; returns how many there were."""
        mine = [k for k in self._entries if k[0] == user_id]
        for key in mine:
            self._drop(key)
        return len(mine)

    def sweep(self) -> int:
        """Drop keys idle for longer than the timeout; returns how many."""
        now = self._clock()
        idle = [k for k, e in self._entries.items() if now - e.last_used >= self.idle_seconds]
        for key in idle:
            self._drop(key)
        return len(idle)

    def clear(self) -> None:
        for key in list(self._entries):
            self._drop(key)

    def __len__(self) -> int:
        return len(self._entries)

    def _live(self, user_id: int, provider: str) -> _Entry | None:
        entry = self._entries.get((user_id, provider))
        if entry is None:
            return None
        if self._clock() - entry.last_used >= self.idle_seconds:
            self._drop((user_id, provider))
            return None
        return entry

    def _drop(self, key: tuple[int, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._release(entry)

    def _release(self, entry: _Entry) -> None:
        secret = entry.credentials.api_key
        if not any(e.credentials.api_key == secret for e in self._entries.values()):
            forget_secret(secret)
