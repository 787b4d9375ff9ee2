"""How the bot waits on things outside a click's handling.

A mint's progress from the world engine and the pause between coalesced edits are waits on
the world, not on Discord. `build_bot(..., waits=...)` takes the function that performs
them; a test harness with a virtual clock (SimCord) passes its declared external wait, so
these waits never race its clock. In production they are plain awaits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

Waits = Callable[[Awaitable[Any], str], Awaitable[Any]]


async def plain_wait(awaitable: Awaitable[T], reason: str) -> T:
    return await awaitable
