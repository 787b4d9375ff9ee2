"""The visible queue: this process's generation slots, handed out first come, first served.

`[generation] max_concurrent_jobs` bounds how many jobs work at once. A job that finds every
slot taken waits in line instead of failing; its place (1 = next to start) is known from the
moment it was claimed, and every change of the line is reported through `on_change` with the
new places of everyone still waiting, so the front doors can show "2nd in line". A slot that
is freed goes straight to the head of the line, so nobody is overtaken.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable

Key = tuple[str, str]  # (world id, path)
# Called with (key, place) for every waiting job whose place changed; place None: it started.
OnChange = Callable[[Key, int | None], None]


class JobSlots:
    """`size` slots; `enter` takes one or a place in line, `leave` gives either back."""

    def __init__(self, size: int, on_change: OnChange | None = None) -> None:
        self._size = size
        self._holders: set[str] = set()  # claim tokens holding a slot
        self._line: OrderedDict[str, tuple[Key, asyncio.Future[None]]] = OrderedDict()
        self._told: dict[str, int] = {}  # the place last reported for each waiting token
        self._on_change = on_change

    def __len__(self) -> int:
        """How many jobs wait in line."""
        return len(self._line)

    @property
    def busy(self) -> int:
        return len(self._holders)

    @property
    def _free(self) -> int:
        return self._size - len(self._holders)

    def enter(self, token: str, key: Key) -> asyncio.Future[None]:
        """A slot for the job of `token`: the future is done when the job may start."""
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._free > 0 and not self._line:
            self._holders.add(token)
            granted.set_result(None)
        else:
            self._line[token] = (key, granted)
            self._tell(token, key, len(self._line))
        return granted

    def leave(self, token: str) -> None:
        """The job of `token` ended (or never ran): its slot or its place goes to the next."""
        if token in self._holders:
            self._holders.discard(token)
        elif token in self._line:
            self._line.pop(token)
            self._told.pop(token, None)
        else:
            return
        self._grant()
        self._renumber()

    def position(self, key: Key) -> int | None:
        """The branch's place in line (1 = next to start), None when it is not waiting."""
        for place, (waiting, _) in enumerate(self._line.values(), start=1):
            if waiting == key:
                return place
        return None

    def _grant(self) -> None:
        while self._free > 0 and self._line:
            token, (key, granted) = self._line.popitem(last=False)
            self._told.pop(token, None)
            if granted.done():  # its job was cancelled while waiting
                continue
            self._holders.add(token)
            granted.set_result(None)
            if self._on_change is not None:
                self._on_change(key, None)

    def _renumber(self) -> None:
        for place, (token, (key, _)) in enumerate(self._line.items(), start=1):
            self._tell(token, key, place)

    def _tell(self, token: str, key: Key, place: int) -> None:
        if self._told.get(token) == place:
            return
        self._told[token] = place
        if self._on_change is not None:
            self._on_change(key, place)
