"""Progress fan-out: bounded per-subscriber queues, cleaned up when the subscriber leaves."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from world.types import SceneEvent, Status

TERMINAL = frozenset({Status.READY, Status.FAILED, Status.PENDING})
QUEUE_SIZE = 16

Key = tuple[str, str]


class Subscription:
    """An async iterator of events for one branch; ends after a terminal status.

    Events published in this process arrive at once; changes made by other processes are
    found by polling the database through `poll` every `poll_interval` seconds.
    """

    def __init__(
        self,
        bus: EventBus,
        key: Key,
        poll: Callable[[], Awaitable[SceneEvent | None]],
        poll_interval: float,
    ) -> None:
        self._bus = bus
        self._key = key
        self._poll = poll
        self._poll_interval = poll_interval
        self._queue: asyncio.Queue[SceneEvent] = asyncio.Queue(QUEUE_SIZE)
        self._last: SceneEvent | None = None
        self._started = False
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
        if not self._started:
            self._started = True
            self._bus._attach(self._key, self)
            current = await self._poll()
            if current is not None:
                return self._emit(current)
        while True:
            try:
                event = await asyncio.wait_for(self._queue.get(), self._poll_interval)
            except TimeoutError:
                polled = await self._poll()
                if polled is None or polled == self._last:
                    continue
                event = polled
            if event == self._last:
                continue
            return self._emit(event)

    def _emit(self, event: SceneEvent) -> SceneEvent:
        self._last = event
        if event.status in TERMINAL:
            self._finish()
        return event

    def _finish(self) -> None:
        self._finished = True
        self._bus._detach(self._key, self)

    async def aclose(self) -> None:
        self._finish()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class EventBus:
    def __init__(self) -> None:
        self._subscribers: dict[Key, set[Subscription]] = {}

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    def publish(self, event: SceneEvent) -> None:
        for subscription in tuple(self._subscribers.get((event.world_id, event.path), ())):
            subscription.offer(event)

    def _attach(self, key: Key, subscription: Subscription) -> None:
        self._subscribers.setdefault(key, set()).add(subscription)

    def _detach(self, key: Key, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(key)
        if subscribers is None:
            return
        subscribers.discard(subscription)
        if not subscribers:
            del self._subscribers[key]
