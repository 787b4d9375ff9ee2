"""Progress fan-out: one channel per branch, bounded queues, cleaned up when the last
subscriber leaves.

Events published in this process reach subscribers at once. Changes made by other processes
are found by one poller per branch (not one per subscriber): it reads the database once when
the first subscriber arrives, then every `interval` seconds while no job for that branch
runs in this process. Pollers are started with the `spawn` function the bus is given (by
default `asyncio.create_task`), so the service decides where its background tasks live.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from world.types import SceneEvent, Status

TERMINAL = frozenset({Status.READY, Status.FAILED, Status.PENDING, Status.HIDDEN})
QUEUE_SIZE = 16

Key = tuple[str, str]
PollFn = Callable[[str, str], Awaitable[SceneEvent]]
# How background tasks are started: spawn(coroutine, task name) -> the running task.
Spawn = Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]


def default_spawn(coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
    return asyncio.create_task(coro, name=name)


class Subscription:
    """An async iterator of events for one branch; ends after a terminal status."""

    def __init__(self, bus: EventBus, key: Key) -> None:
        self._bus = bus
        self._key = key
        self._queue: asyncio.Queue[SceneEvent] = asyncio.Queue(QUEUE_SIZE)
        self._last: SceneEvent | None = None
        self._attached = False
        self._finished = False

    def offer(self, event: SceneEvent) -> None:
        if self._queue.full():  # progress coalesces: the newest event matters most
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
        self._queue.put_nowait(event)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> SceneEvent:
        if self._finished:
            raise StopAsyncIteration
        if not self._attached:
            self._attached = True
            current = self._bus._attach(self._key, self)
            if current is not None:
                return self._emit(current)
        while True:
            event = await self._queue.get()
            if event != self._last:
                return self._emit(event)

    def _emit(self, event: SceneEvent) -> SceneEvent:
        self._last = event
        if event.status in TERMINAL:
            self._finish()
        return event

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            if self._attached:
                self._bus._detach(self._key, self)

    async def aclose(self) -> None:
        self._finish()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@dataclass
class _Channel:
    # Weak: a subscriber dropped without aclose() must not keep its branch's poller alive.
    subscribers: weakref.WeakSet[Subscription] = field(default_factory=weakref.WeakSet)
    last: SceneEvent | None = None
    published: int = 0  # bumps on every local event, so a slower poll never overrides one
    poller: asyncio.Task[None] | None = None


class EventBus:
    def __init__(
        self,
        poll: PollFn,
        interval: float,
        is_local: Callable[[Key], bool] = lambda key: False,
        spawn: Spawn | None = None,
    ) -> None:
        self._poll = poll
        self._spawn = spawn or default_spawn
        self._interval = interval
        self._is_local = is_local
        self._channels: dict[Key, _Channel] = {}
        self._pollers: set[asyncio.Task[None]] = set()  # until each has really finished

    def subscribe(self, world_id: str, path: str) -> Subscription:
        return Subscription(self, (world_id, path))

    def subscriber_count(self) -> int:
        return sum(len(c.subscribers) for c in self._channels.values())

    def channel_count(self) -> int:
        return len(self._channels)

    def publish(self, event: SceneEvent) -> None:
        channel = self._channels.get((event.world_id, event.path))
        if channel is None:
            return
        channel.published += 1
        self._deliver(channel, event)

    def _deliver(self, channel: _Channel, event: SceneEvent) -> None:
        channel.last = event
        for subscription in tuple(channel.subscribers):
            subscription.offer(event)

    def _attach(self, key: Key, subscription: Subscription) -> SceneEvent | None:
        channel = self._channels.get(key)
        if channel is None:
            channel = self._channels[key] = _Channel()
            channel.poller = self._spawn(
                self._poll_loop(key, channel), f"progress {key[0]}/{key[1]}"
            )
            self._pollers.add(channel.poller)
            channel.poller.add_done_callback(self._pollers.discard)
        channel.subscribers.add(subscription)
        return channel.last

    def _detach(self, key: Key, subscription: Subscription) -> None:
        channel = self._channels.get(key)
        if channel is None:
            return
        channel.subscribers.discard(subscription)
        if not channel.subscribers:
            del self._channels[key]
            if channel.poller is not None:
                channel.poller.cancel()

    async def close(self) -> None:
        """Stop every poller (before the database they read goes away)."""
        self._channels.clear()
        pollers = list(self._pollers)  # also those detached and still unwinding a query
        for poller in pollers:
            poller.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)

    async def _poll_loop(self, key: Key, channel: _Channel) -> None:
        first = True
        while True:
            if not channel.subscribers:  # every subscriber went away without closing
                if self._channels.get(key) is channel:
                    del self._channels[key]
                return
            if first or not self._is_local(key):
                before = channel.published
                try:
                    event = await self._poll(*key)
                except Exception:
                    event = None  # a failed poll is tried again at the next interval
                if event is not None and channel.published == before and event != channel.last:
                    self._deliver(channel, event)
                first = False
            await asyncio.sleep(self._interval)
