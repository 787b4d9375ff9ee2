"""What the service counts for its front doors' metrics: claims by outcome, views served,
and render times bucketed for a histogram. Plain values; no metrics library here."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ServiceCounters:
    """Counts since this process started; front doors read them, only the service adds."""

    claims: dict[str, int] = field(default_factory=dict)  # claim outcome -> claims answered
    views: int = 0  # scene views served

    def claimed(self, outcome: str) -> None:
        self.claims[outcome] = self.claims.get(outcome, 0) + 1


@dataclass(frozen=True)
class RenderTimes:
    """Every ready render's total time of one world, cumulative per upper bound (seconds)."""

    bounds: tuple[float, ...]  # ascending upper bounds, without +Inf
    cumulative: tuple[int, ...]  # renders at or under each bound
    count: int  # every ready render (the +Inf bucket)
    sum_seconds: float
