"""Polling cadence, Retry-After, and streaming a finished clip to its spool file.

Clips never sit in memory whole: chunks go straight to disk (file writes in a thread, so the
event loop never blocks). A download that breaks is retried from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import IO

import aiohttp

from world.providers.base import ProviderError
from world.providers.errors import code_for_status, provider_error

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


class Backoff:
    """Waits that start at `first` and grow by half each time, up to `most`."""

    def __init__(self, first: float, most: float, factor: float = 1.5) -> None:
        self._next = first
        self._most = max(first, most)
        self._factor = factor

    def next(self) -> float:
        wait = self._next
        self._next = min(self._most, self._next * self._factor)
        return wait


def retry_after_seconds(headers: Mapping[str, str], *, default: float, cap: float) -> float:
    """The server's Retry-After (seconds form), else `default`; never above `cap`."""
    raw = headers.get("Retry-After") if headers else None
    try:
        value = float(raw) if raw is not None else default
    except ValueError:
        value = default
    return max(0.0, min(cap, value))


async def write_chunks(chunks: AsyncIterator[bytes], destination: Path) -> int:
    """Write every chunk to `destination` (replacing it); return the bytes written.

    Chunks are gathered up to CHUNK_BYTES and written in one thread hop, so memory stays
    bounded and a download does not queue one thread task per network read.
    """
    await asyncio.to_thread(destination.parent.mkdir, parents=True, exist_ok=True)
    handle: IO[bytes] = await asyncio.to_thread(destination.open, "wb")
    size = 0
    pending: list[bytes] = []
    pending_bytes = 0
    try:
        async for chunk in chunks:
            if chunk:
                pending.append(chunk)
                pending_bytes += len(chunk)
                size += len(chunk)
            if pending_bytes >= CHUNK_BYTES:
                await asyncio.to_thread(handle.write, b"".join(pending))
                pending, pending_bytes = [], 0
        if pending:
            await asyncio.to_thread(handle.write, b"".join(pending))
    finally:
        await asyncio.to_thread(handle.close)
    return size


async def stream_to_file(
    session: aiohttp.ClientSession,
    url: str,
    *,
    headers: Mapping[str, str],
    destination: Path,
    attempts: int,
    time_limit: float,
    status_table: Mapping[int, str],
    retry_wait: float = 1.0,
) -> int:
    """GET `url` into `destination`, retrying broken or 5xx downloads; return its size."""
    last: ProviderError = provider_error("unavailable")
    for attempt in range(1, attempts + 1):
        try:
            async with session.get(
                url, headers=dict(headers), timeout=aiohttp.ClientTimeout(total=time_limit)
            ) as response:
                if response.status == 200:
                    return await write_chunks(
                        response.content.iter_chunked(CHUNK_BYTES), destination
                    )
                code = code_for_status(response.status, status_table)
                if response.status < 500 and response.status not in (408, 429):
                    raise provider_error(code)
                last = provider_error(code)
        except TimeoutError:
            last = provider_error("timeout")
        except aiohttp.ClientError:
            last = provider_error("unavailable")
        with contextlib.suppress(OSError):
            await asyncio.to_thread(destination.unlink)
        log.info("clip download attempt %d failed code=%s", attempt, last.code)
        if attempt < attempts:
            await asyncio.sleep(retry_wait * attempt)
    raise last
