"""View cache: scenes as the front doors show them, and which branches are known ready.

It owns loading a scene with its choices' states (one indexed query, see `load_view`), the
TTL cache of ready scenes' views (concurrent misses of one scene share one query), the set
of branches known to be ready, and reading a branch's stored state for the progress
pollers. Local events invalidate at once (`saw`); the TTL bounds how long another
process's change takes to show, and how old a presigned URL in the cache can get.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from storage.base import AssetStore
from world import paths, scenes
from world.db import Database
from world.providers.base import Provider
from world.settings import StorageSettings, WorldSettings
from world.types import ChildState, ChoiceView, SceneEvent, SceneView, Status

READY_CACHE_SIZE = 4096
VIEW_CACHE_SIZE = 4096
VIEW_TTL_OPEN = 1.0  # a ready scene with a child that may still change in another process
VIEW_TTL_SETTLED = 60.0  # all three children ready: nothing left to change

Key = tuple[str, str]  # (world id, path)


class UnreachableBranch(Exception):
    """The branch's parent scene is not ready, so the branch cannot be shown."""


class ViewCache:
    def __init__(
        self,
        db: Database,
        store: AssetStore,
        providers: Mapping[str, Provider],
        storage: StorageSettings,
        estimated_cost: Callable[[str], float],
    ) -> None:
        self._db = db
        self._store = store
        self._providers = providers
        self._estimated_cost = estimated_cost
        self._url_ttl_budget = (
            storage.signed_url_ttl / 4
            if storage.backend == "s3" and storage.signed_urls
            else VIEW_TTL_SETTLED
        )
        self._views: OrderedDict[Key, tuple[float, SceneView]] = OrderedDict()
        self._loads: dict[Key, asyncio.Future[SceneView]] = {}
        self._ready: OrderedDict[Key, None] = OrderedDict()

    # -- views ---------------------------------------------------------------------

    async def view(self, world: WorldSettings, path: str) -> SceneView:
        """The scene at a valid `path`, from the cache or one query; raises UnreachableBranch."""
        key = (world.id, path)
        cached = self._views.get(key)
        if cached is not None:
            if cached[0] > time.monotonic():
                self._views.move_to_end(key)
                return cached[1]
            del self._views[key]
        loading = self._loads.get(key)
        if loading is None:  # concurrent misses of one scene share one query
            loading = asyncio.ensure_future(self.load_view(world, path))
            self._loads[key] = loading
            loading.add_done_callback(lambda _: self._loads.pop(key, None))
        view = await asyncio.shield(loading)
        if view.status is Status.READY:
            self._cache_view(key, view)
        return view

    def clear(self) -> None:
        """Forget every cached view (the ready set stays: a ready branch stays ready)."""
        self._views.clear()

    def use_store(self, store: AssetStore) -> None:
        """Build views' URLs with another store; cached views carry the old one's, so go."""
        if store is not self._store:
            self._store = store
            self.clear()

    def saw(self, event: SceneEvent) -> None:
        """A local event: the branch's view and its parent's (which shows it) are stale."""
        self._views.pop((event.world_id, event.path), None)
        parent_path = paths.parent(event.path)
        if parent_path is not None:
            self._views.pop((event.world_id, parent_path), None)
        if event.status is Status.READY:
            self.remember_ready(event.world_id, event.path)

    def _cache_view(self, key: Key, view: SceneView) -> None:
        # Ready scenes never change; only their children's states do.
        settled = all(c.state is ChildState.READY for c in view.choices)
        ttl = min(VIEW_TTL_SETTLED if settled else VIEW_TTL_OPEN, self._url_ttl_budget)
        self._views[key] = (time.monotonic() + ttl, view)
        self._views.move_to_end(key)
        while len(self._views) > VIEW_CACHE_SIZE:
            self._views.popitem(last=False)

    async def load_view(self, world: WorldSettings, path: str) -> SceneView:
        """The scene, its choices' states and its parent in one query (no cache)."""
        world_id = world.id
        parent_path = paths.parent(path)
        wanted = [path, *paths.children(path)]
        if parent_path is not None:
            wanted.append(parent_path)
        async with self._db.session() as session:
            rows = await scenes.load_view_rows(session, world_id, wanted)
        if parent_path is not None:
            parent = rows.get(parent_path)
            if parent is None or parent.status != Status.READY.value:
                raise UnreachableBranch("That branch cannot be reached yet: its scene comes first.")
        scene = rows.get(path)
        if scene is None:
            label = parent_choice_label(
                rows.get(parent_path) if parent_path is not None else None, path
            )
            return SceneView(
                world_id=world_id,
                path=path,
                depth=paths.depth(path),
                status=Status.PENDING,
                choice_label=label,
                estimated_cost_usd=self._estimated_cost(world_id),
            )
        return self.scene_view(world, scene, rows)

    def scene_view(self, world: WorldSettings, scene: Any, rows: Mapping[str, Any]) -> SceneView:
        """A stored scene row as a view; `rows` holds its children's rows by path."""
        known = self._providers[world.id].reports_progress
        store = self._store
        choices: list[ChoiceView] = []
        if scene.status == Status.READY.value and scene.choices:
            for index, choice in enumerate(scene.choices):
                child_path = paths.child(scene.path, index)
                child = rows.get(child_path)
                choices.append(
                    ChoiceView(
                        index=index,
                        label=choice["label"],
                        short_label=choice["short_label"],
                        path=child_path,
                        state=_child_state(child),
                        progress=child.progress if child is not None else 0,
                        failure=child.failure_detail if child is not None else None,
                        progress_known=known,
                    )
                )
        ready = scene.status == Status.READY.value
        return SceneView(
            world_id=world.id,
            path=scene.path,
            depth=scene.depth,
            status=Status(scene.status),
            title=scene.title if ready else None,
            narration=scene.narration if ready else None,
            choice_label=scene.choice_label,
            choices=tuple(choices),
            state_summary=scene.state_summary,
            video_url=store.url_for(scene.asset_key) if ready and scene.asset_key else None,
            poster_url=store.url_for(scene.poster_key) if ready and scene.poster_key else None,
            video_key=scene.asset_key if ready else None,
            video_bytes=scene.asset_bytes if ready else None,
            progress=scene.progress,
            failure_code=scene.failure_code,
            failure_detail=scene.failure_detail,
            claimed_at=scene.claimed_at,
            updated_at=scene.updated_at,
            estimated_cost_usd=self._estimated_cost(world.id),
            progress_known=known,
        )

    async def stored_event(self, world_id: str, path: str) -> SceneEvent:
        """The branch's state as stored: how progress of other processes' jobs arrives."""
        async with self._db.session() as session:
            scene = (await scenes.load_paths(session, world_id, [path])).get(path)
        if scene is None:
            return SceneEvent(world_id, path, Status.PENDING)
        return SceneEvent(
            world_id,
            path,
            Status(scene.status),
            progress=scene.progress,
            failure_code=scene.failure_code,
            failure_detail=scene.failure_detail,
        )

    # -- ready branches ------------------------------------------------------------

    def is_ready(self, world_id: str, path: str) -> bool:
        """Known ready here: a ready branch never changes, so a claim of it needs no query."""
        return (world_id, path) in self._ready

    def remember_ready(self, world_id: str, path: str) -> None:
        key = (world_id, path)
        self._ready[key] = None
        self._ready.move_to_end(key)
        while len(self._ready) > READY_CACHE_SIZE:
            self._ready.popitem(last=False)


def _child_state(child: Any) -> ChildState:
    if child is None:
        return ChildState.UNEXPLORED
    return {
        Status.READY.value: ChildState.READY,
        Status.QUEUED.value: ChildState.MINTING,
        Status.FAILED.value: ChildState.FAILED,
    }.get(child.status, ChildState.UNEXPLORED)


def parent_choice_label(parent: Any, path: str) -> str | None:
    """The label of the choice in `parent` (a scene row or None) that leads to `path`."""
    index = paths.last_index(path)
    if parent is None or index is None or not parent.choices or index >= len(parent.choices):
        return None
    return parent.choices[index].get("label")
