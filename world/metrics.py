"""Metrics query: one world's branch counts, render outcomes, spend and render latencies.

Read-only: a handful of aggregate queries over `scenes` and `renders` in one session.
"""

from __future__ import annotations

from sqlalchemy import case, func, select

from world import scenes
from world.counters import RenderTimes
from world.db import Database
from world.models import Render
from world.types import Metrics, Status

LATENCY_SAMPLE = 1000  # the latest ready renders the percentiles are taken over


async def world_metrics(db: Database, world_id: str) -> Metrics:
    async with db.session() as session:
        branches = await scenes.count_by_status(session, world_id)
        outcome_rows = await session.execute(
            select(
                Render.outcome,
                Render.failure_code,
                func.count(),
                func.coalesce(func.sum(Render.bytes), 0),
                func.coalesce(func.sum(Render.estimated_cost_usd), 0.0),
                func.coalesce(func.sum(Render.actual_cost_usd), 0.0),
            )
            .where(Render.world_id == world_id)
            .group_by(Render.outcome, Render.failure_code)
        )
        durations = list(
            await session.scalars(
                select(Render.total_ms)
                .where(Render.world_id == world_id, Render.outcome == "ready")
                .order_by(Render.id.desc())
                .limit(LATENCY_SAMPLE)
            )
        )
        contributors = await session.scalar(
            select(func.count(func.distinct(Render.contributor))).where(
                Render.world_id == world_id, Render.outcome == "ready"
            )
        )
    ready_renders = failed_renders = storage_bytes = 0
    spend = actual = 0.0
    failures: dict[str, int] = {}
    for outcome, code, count, stored, cost, reported in outcome_rows:
        spend += float(cost)
        actual += float(reported)
        if outcome == "ready":
            ready_renders += count
            storage_bytes += int(stored)
        else:
            failed_renders += count
            failures[code or "unknown"] = failures.get(code or "unknown", 0) + count
    finished = ready_renders + failed_renders
    durations.sort()
    return Metrics(
        world_id=world_id,
        branches={s.value: branches.get(s.value, 0) for s in Status},
        queued_backlog=branches.get(Status.QUEUED.value, 0),
        failures_by_code=failures,
        storage_bytes=storage_bytes,
        success_rate=ready_renders / finished if finished else 1.0,
        render_ms_p50=_percentile(durations, 50),
        render_ms_p95=_percentile(durations, 95),
        render_ms_p99=_percentile(durations, 99),
        estimated_spend_usd=round(spend, 4),
        distinct_contributors=int(contributors or 0),
        actual_spend_usd=round(actual, 4),
        renders=ready_renders,
    )


async def render_times(db: Database, world_id: str, bounds: tuple[float, ...]) -> RenderTimes:
    """Every ready render's total time, counted at or under each bound (seconds), in one query."""
    ordered = tuple(sorted(bounds))
    under = [
        func.coalesce(func.sum(case((Render.total_ms <= bound * 1000, 1), else_=0)), 0)
        for bound in ordered
    ]
    query = select(func.count(), func.coalesce(func.sum(Render.total_ms), 0), *under).where(
        Render.world_id == world_id, Render.outcome == "ready"
    )
    async with db.session() as session:
        count, total_ms, *cumulative = (await session.execute(query)).one()
    return RenderTimes(
        bounds=ordered,
        cumulative=tuple(int(c) for c in cumulative),
        count=int(count),
        sum_seconds=float(total_ms) / 1000,
    )


def _percentile(ordered: list[int], pct: float) -> float | None:
    if not ordered:
        return None
    rank = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return float(ordered[rank])
