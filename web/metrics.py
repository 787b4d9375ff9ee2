"""`GET /metrics`: the Prometheus text format, read from the WorldService at scrape time.

Each app gets its own registry (never prometheus_client's global one). The scrape handler
awaits every configured world's figures through the facade, hands that snapshot to a
collector and renders it; the collector itself never touches the database. An event-loop
lag sampler runs from the app's startup to its cleanup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from world.counters import RenderTimes
from world.service import WorldService
from world.types import Metrics

log = logging.getLogger(__name__)

PREFIX = "shared_world"
# Render times of a short video clip: seconds to several minutes.
RENDER_BUCKETS = (1.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LAG_INTERVAL_SECONDS = 0.25


@dataclass
class Snapshot:
    """What one scrape read from the service, per world (a world that failed is left out)."""

    worlds: dict[str, Metrics] = field(default_factory=dict)
    render_times: dict[str, RenderTimes] = field(default_factory=dict)
    read_ok: dict[str, bool] = field(default_factory=dict)


class WorldCollector(Collector):
    """Turns the latest snapshot and the service's counters into metric families."""

    def __init__(self, service: WorldService, interactions: Callable[[], int] | None) -> None:
        self.service = service
        self.interactions = interactions
        self.snapshot = Snapshot()

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        up = GaugeMetricFamily(
            f"{PREFIX}_world_metrics_up",
            "1 if this scrape read the world's figures, 0 if the read failed.",
            labels=["world"],
        )
        for world_id, ok in snap.read_ok.items():
            up.add_metric([world_id], 1.0 if ok else 0.0)
        yield up

        branches = GaugeMetricFamily(
            f"{PREFIX}_branches", "Branches by status.", labels=["world", "status"]
        )
        backlog = GaugeMetricFamily(
            f"{PREFIX}_backlog", "Branches queued for generation.", labels=["world"]
        )
        renders = CounterMetricFamily(
            f"{PREFIX}_renders", "Renders that finished ready.", labels=["world"]
        )
        failures = CounterMetricFamily(
            f"{PREFIX}_render_failures", "Renders that failed, by code.", labels=["world", "code"]
        )
        storage = GaugeMetricFamily(
            f"{PREFIX}_storage_bytes", "Bytes of stored clips.", labels=["world"]
        )
        spend = GaugeMetricFamily(
            f"{PREFIX}_estimated_spend_usd", "Estimated provider spend.", labels=["world"]
        )
        actual = GaugeMetricFamily(
            f"{PREFIX}_actual_spend_usd", "Spend the providers reported.", labels=["world"]
        )
        for world_id, m in snap.worlds.items():
            for status, count in m.branches.items():
                branches.add_metric([world_id, status], float(count))
            backlog.add_metric([world_id], float(m.queued_backlog))
            renders.add_metric([world_id], float(m.renders))
            for code, count in m.failures_by_code.items():
                failures.add_metric([world_id, code], float(count))
            storage.add_metric([world_id], float(m.storage_bytes))
            spend.add_metric([world_id], m.estimated_spend_usd)
            actual.add_metric([world_id], m.actual_spend_usd)
        yield from (branches, backlog, renders, failures, storage, spend, actual)

        seconds = HistogramMetricFamily(
            f"{PREFIX}_render_seconds", "Total time of each ready render.", labels=["world"]
        )
        for world_id, times in snap.render_times.items():
            buckets = [
                (_bound(b), float(c)) for b, c in zip(times.bounds, times.cumulative, strict=True)
            ]
            buckets.append(("+Inf", float(times.count)))
            seconds.add_metric([world_id], buckets, times.sum_seconds)
        yield seconds

        counters = self.service.counters
        claims = CounterMetricFamily(
            f"{PREFIX}_claims", "Claims answered, by outcome.", labels=["outcome"]
        )
        for outcome, count in sorted(counters.claims.items()):
            claims.add_metric([outcome], float(count))
        yield claims
        yield CounterMetricFamily(f"{PREFIX}_views", "Scene views served.", value=counters.views)
        yield GaugeMetricFamily(
            f"{PREFIX}_running_jobs",
            "Generation jobs running in this process.",
            value=self.service.running_jobs(),
        )
        if self.interactions is not None:
            try:
                handled = self.interactions()
            except Exception:  # a broken reader costs this one metric, not the scrape
                log.exception("reading the Discord interaction count failed")
                return
            yield CounterMetricFamily(
                f"{PREFIX}_discord_interactions",
                "Discord interactions handled by this process.",
                value=handled,
            )


def _bound(value: float) -> str:
    return repr(float(value))


async def refresh(collector: WorldCollector) -> None:
    """Read every configured world's figures through the facade into a new snapshot."""
    service = collector.service
    snap = Snapshot()
    for world in service.settings.worlds:
        try:
            snap.worlds[world.id] = await service.metrics(world.id)
            snap.render_times[world.id] = await service.render_times(world.id, RENDER_BUCKETS)
            snap.read_ok[world.id] = True
        except Exception:
            log.exception("metrics read failed world=%s", world.id)
            snap.worlds.pop(world.id, None)
            snap.read_ok[world.id] = False
    collector.snapshot = snap


@dataclass
class MetricsState:
    registry: CollectorRegistry
    collector: WorldCollector
    lag: Histogram


METRICS_KEY = web.AppKey("metrics", MetricsState)


async def scrape(request: web.Request) -> web.Response:
    state = request.app[METRICS_KEY]
    await refresh(state.collector)
    body = generate_latest(state.registry)  # no await between refresh and render
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def sample_lag(lag: Histogram, interval: float = LAG_INTERVAL_SECONDS) -> None:
    """Sleep `interval` again and again; how late each wake-up comes is the loop's lag."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(interval)
        lag.observe(max(0.0, loop.time() - started - interval))


def install(
    app: web.Application,
    service: WorldService,
    *,
    interactions: Callable[[], int] | None = None,
) -> None:
    """Add `GET /metrics` and the lag sampler to `app`.

    `interactions`, when given, returns the Discord interactions this process handled so far
    (the bot runs in the same process); read at each scrape.
    """
    registry = CollectorRegistry(auto_describe=False)
    collector = WorldCollector(service, interactions)
    registry.register(collector)
    lag = Histogram(
        f"{PREFIX}_event_loop_lag_seconds",
        "How late the event loop woke a sleeping task.",
        buckets=LAG_BUCKETS,
        registry=registry,
    )
    app[METRICS_KEY] = MetricsState(registry, collector, lag)
    app.router.add_get("/metrics", scrape)

    async def lag_sampler(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(sample_lag(lag), name="event loop lag sampler")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(lag_sampler)
