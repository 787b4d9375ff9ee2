"""Plain values the WorldService hands to its front doors (Discord, HTTP)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

# The failure code of a branch whose last paid create may have started a render that never
# reported back: claimed again only when the next payer confirms (or an admin retries).
UNCERTAIN = "uncertain"


class Status(enum.StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    READY = "ready"
    FAILED = "failed"
    # Taken down by the admins (world/moderation.py): no clip or text; mintable again.
    HIDDEN = "hidden"


class ChildState(enum.StrEnum):
    READY = "ready"
    MINTING = "minting"
    FAILED = "failed"
    UNEXPLORED = "unexplored"


@dataclass(frozen=True)
class Credentials:
    """A contributor's provider key, held only in memory and never printed."""

    api_key: str = field(repr=False)

    def __repr__(self) -> str:
        return "Credentials(api_key=<hidden>)"

    __str__ = __repr__


@dataclass(frozen=True)
class ChoiceView:
    index: int
    label: str
    short_label: str
    path: str
    state: ChildState
    progress: int = 0
    failure: str | None = None
    progress_known: bool = True  # False: the provider reports no percentage; show none


@dataclass(frozen=True)
class SceneView:
    world_id: str
    path: str
    depth: int
    status: Status
    title: str | None = None
    narration: str | None = None
    choice_label: str | None = None  # the parent's choice that led here
    choices: tuple[ChoiceView, ...] = ()
    state_summary: str | None = None
    video_url: str | None = None
    poster_url: str | None = None
    video_key: str | None = None
    poster_key: str | None = None
    video_bytes: int | None = None
    progress: int = 0
    failure_code: str | None = None
    failure_detail: str | None = None
    claimed_at: datetime | None = None
    updated_at: datetime | None = None
    estimated_cost_usd: float = 0.0
    progress_known: bool = True  # False: the provider reports no percentage; show none

    @property
    def is_ready(self) -> bool:
        return self.status is Status.READY


class ClaimOutcome(enum.StrEnum):
    READY = "ready"  # the branch already exists: play it, nobody pays
    QUEUED = "queued"  # a generation is running (this caller's or someone else's)
    REFUSED = "refused"


@dataclass(frozen=True)
class ClaimResult:
    outcome: ClaimOutcome
    world_id: str
    path: str
    progress: int = 0
    claimed_by_caller: bool = False
    reason: str | None = None  # refusal code
    message: str | None = None  # refusal as one plain sentence


@dataclass(frozen=True)
class SceneEvent:
    """Progress and status changes of one branch, fanned out to subscribers."""

    world_id: str
    path: str
    status: Status
    progress: int = 0
    stage: str | None = None  # planning | rendering | storing | summarising | done
    failure_code: str | None = None
    failure_detail: str | None = None
    # While rendering on a provider that reports no percentage: its own status word and the
    # time the render has taken against the model's usual time (honest progress).
    provider_status: str | None = None
    elapsed_seconds: float | None = None
    typical_seconds: float | None = None
    # Waiting for one of this process's generation slots: its place in line (1 = next).
    queue_position: int | None = None


@dataclass(frozen=True)
class Metrics:
    world_id: str
    branches: dict[str, int]
    queued_backlog: int
    failures_by_code: dict[str, int]
    storage_bytes: int
    success_rate: float
    render_ms_p50: float | None
    render_ms_p95: float | None
    render_ms_p99: float | None
    estimated_spend_usd: float
    distinct_contributors: int
    renders: int
    actual_spend_usd: float = 0.0
