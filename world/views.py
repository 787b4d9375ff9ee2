"""View cache: scenes as the front doors show them, and which branches are known ready.

It owns loading scenes with their choices' states (one indexed query, see `_read_views`), the
TTL cache of ready scenes' views (concurrent misses of one scene share one load, and misses
arriving while a query runs are read together by the next; a view read late in its TTL is
fetched again in the background, so hot scenes never make a reader wait), the set
of branches known to be ready, and reading a branch's stored state for the progress
pollers. Local events invalidate at once (`saw`); the TTL bounds how long another
process's change takes to show, and how old a presigned URL in the cache can get.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from storage.base import AssetStore
from world import paths, scenes
from world.db import Database
from world.providers.base import Provider
from world.settings import StorageSettings, WorldSettings
from world.types import ChildState, ChoiceView, SceneEvent, SceneView, Status

READY_CACHE_SIZE = 4096
READY_TTL = 300.0  # how long a branch is known ready without a query (a hide elsewhere)
VIEW_CACHE_SIZE = 4096
VIEW_TTL_OPEN = 1.0  # a ready scene with a child that may still change in another process
VIEW_TTL_SETTLED = 60.0  # all three children ready: nothing left to change
REFRESH_AHEAD = 0.75  # a view read after this share of its TTL is fetched again in the background
MAX_BATCH_VIEWS = 200  # views read by one query (about 5 rows each)

UNREACHABLE = "That branch cannot be reached yet: its scene comes first."

Key = tuple[str, str]  # (world id, path)
_REACHABLE_PARENT = frozenset({Status.READY.value, Status.HIDDEN.value})


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
        # key -> (refresh after, expires, view), oldest use first
        self._views: OrderedDict[Key, tuple[float, float, SceneView]] = OrderedDict()
        self._loads: dict[Key, asyncio.Future[SceneView]] = {}
        self._waiting: list[tuple[WorldSettings, str, asyncio.Future[SceneView]]] = []
        self._loader: asyncio.Task[None] | None = None
        # While a query runs: the views events changed meanwhile (not cached from it).
        self._changed_while_reading: set[Key] | None = None
        self._ready: OrderedDict[Key, float] = OrderedDict()  # key -> known ready until

    # -- views ---------------------------------------------------------------------

    async def view(self, world: WorldSettings, path: str) -> SceneView:
        """The scene at a valid `path`, from the cache or a query; raises UnreachableBranch."""
        key = (world.id, path)
        cached = self._views.get(key)
        if cached is not None:
            refresh_at, expires, view = cached
            now = time.monotonic()
            if now < expires:
                self._views.move_to_end(key)
                if now >= refresh_at:  # read often: fetched again ahead, nobody waits for it
                    self._load(world, path)
                return view
            del self._views[key]
        return await asyncio.shield(self._load(world, path))

    def _load(self, world: WorldSettings, path: str) -> asyncio.Future[SceneView]:
        """The pending load of one view. Misses that arrive while a query runs are read
        together by the next one, so a burst of misses costs a few queries, not one each."""
        key = (world.id, path)
        loading = self._loads.get(key)
        if loading is None:  # concurrent misses of one scene share one load
            loading = asyncio.get_running_loop().create_future()
            loading.add_done_callback(_retrieve)
            self._loads[key] = loading
            self._waiting.append((world, path, loading))
            if self._loader is None or self._loader.done():
                self._loader = asyncio.create_task(self._load_waiting(), name="view-loads")
        return loading

    async def _load_waiting(self) -> None:
        while self._waiting:
            batch = self._waiting[:MAX_BATCH_VIEWS]
            del self._waiting[:MAX_BATCH_VIEWS]
            self._changed_while_reading = set()
            try:
                outcomes = await self._read_views([(world, path) for world, path, _ in batch])
            except BaseException as exc:
                self._changed_while_reading = None
                for world, path, loading in batch:
                    self._loads.pop((world.id, path), None)
                    if isinstance(exc, asyncio.CancelledError):
                        loading.cancel()
                    else:
                        loading.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            # A view an event changed while the query ran may be older than the event:
            # it is returned, not kept.
            changed, self._changed_while_reading = self._changed_while_reading, None
            for (world, path, loading), outcome in zip(batch, outcomes, strict=True):
                key = (world.id, path)
                self._loads.pop(key, None)
                if isinstance(outcome, UnreachableBranch):
                    loading.set_exception(outcome)
                    continue
                if key not in changed and outcome.status is Status.READY:
                    self._cache_view(key, outcome)
                loading.set_result(outcome)

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
        stale = [(event.world_id, event.path)]
        parent_path = paths.parent(event.path)
        if parent_path is not None:
            stale.append((event.world_id, parent_path))
        for key in stale:
            self._views.pop(key, None)
        if self._changed_while_reading is not None:
            self._changed_while_reading.update(stale)
        if event.status is Status.HIDDEN:  # the one change a ready branch can go through
            self._ready.pop((event.world_id, event.path), None)
        if event.status is Status.READY:
            self.remember_ready(event.world_id, event.path)

    def _cache_view(self, key: Key, view: SceneView) -> None:
        # Ready scenes never change; only their children's states do.
        settled = all(c.state is ChildState.READY for c in view.choices)
        ttl = min(VIEW_TTL_SETTLED if settled else VIEW_TTL_OPEN, self._url_ttl_budget)
        now = time.monotonic()
        self._views[key] = (now + ttl * REFRESH_AHEAD, now + ttl, view)
        self._views.move_to_end(key)
        while len(self._views) > VIEW_CACHE_SIZE:
            self._views.popitem(last=False)

    async def _read_views(
        self, wanted: Sequence[tuple[WorldSettings, str]]
    ) -> list[SceneView | UnreachableBranch]:
        """Each scene with its children and parent: one indexed query per world."""
        by_world: dict[str, set[str]] = {}
        for world, path in wanted:
            rows_wanted = by_world.setdefault(world.id, set())
            rows_wanted.add(path)
            rows_wanted.update(paths.children(path))
            parent_path = paths.parent(path)
            if parent_path is not None:
                rows_wanted.add(parent_path)
        rows: dict[str, Mapping[str, Any]] = {}
        async with self._db.session() as session:
            for world_id, world_paths in by_world.items():
                rows[world_id] = await scenes.load_view_rows(session, world_id, list(world_paths))
        return [self._view_from_rows(world, path, rows[world.id]) for world, path in wanted]

    def _view_from_rows(
        self, world: WorldSettings, path: str, rows: Mapping[str, Any]
    ) -> SceneView | UnreachableBranch:
        parent_path = paths.parent(path)
        if parent_path is not None:
            parent = rows.get(parent_path)
            # Below a hidden scene the story stays where it was (only that clip is gone).
            if parent is None or parent.status not in _REACHABLE_PARENT:
                return UnreachableBranch(UNREACHABLE)
        scene = rows.get(path)
        if scene is None:
            label = parent_choice_label(
                rows.get(parent_path) if parent_path is not None else None, path
            )
            return SceneView(
                world_id=world.id,
                path=path,
                depth=paths.depth(path),
                status=Status.PENDING,
                choice_label=label,
                estimated_cost_usd=self._estimated_cost(world.id),
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
            poster_key=scene.poster_key if ready else None,
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
        """Known ready here, so a claim of it needs no query. A ready branch changes only when
        the admins hide it: this process hears of its own hides at once (`saw`), another
        process's within READY_TTL."""
        expires = self._ready.get((world_id, path))
        if expires is None:
            return False
        if expires < time.monotonic():
            del self._ready[(world_id, path)]
            return False
        return True

    def remember_ready(self, world_id: str, path: str) -> None:
        key = (world_id, path)
        self._ready[key] = time.monotonic() + READY_TTL
        self._ready.move_to_end(key)
        while len(self._ready) > READY_CACHE_SIZE:
            self._ready.popitem(last=False)


def _retrieve(loading: asyncio.Future[SceneView]) -> None:
    """A load nobody awaits (a refresh ahead) must not log "exception never retrieved"."""
    if not loading.cancelled():
        loading.exception()


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
