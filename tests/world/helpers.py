"""Small helpers for world tests: direct row access, as another process would see it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select, update

from world.models import Render, Scene, utcnow
from world.service import WorldService
from world.types import SceneEvent


async def row(service: WorldService, path: str, world_id: str = "default") -> Scene | None:
    async with service.db.session() as session:
        return await session.scalar(
            select(Scene).where(Scene.world_id == world_id, Scene.path == path)
        )


async def render_rows(service: WorldService) -> list[Render]:
    async with service.db.session() as session:
        return list(await session.scalars(select(Render)))


async def expire_lease(service: WorldService, path: str, world_id: str = "default") -> None:
    async with service.db.transaction() as session:
        await session.execute(
            update(Scene)
            .where(Scene.world_id == world_id, Scene.path == path)
            .values(lease_until=utcnow() - timedelta(seconds=5))
        )


async def wait_for(
    service: WorldService, path: str, predicate, world_id: str = "default"
) -> SceneEvent:
    """The first event for `path` that satisfies `predicate`."""
    async with asyncio.timeout(30):
        while True:
            async with service.subscribe(world_id, path) as events:
                async for event in events:
                    if predicate(event):
                        return event
            await asyncio.sleep(0.05)


async def mint(service: WorldService, path: str, world_id: str = "default") -> None:
    await service.claim(world_id, path, None, "minter")
    async with asyncio.timeout(30):
        async for _ in service.subscribe(world_id, path):
            pass
