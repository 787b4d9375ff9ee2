"""The provider protocol: plan a scene, render it (with progress), download it, summarise it.

A provider never retries a call that starts paid work; it maps every upstream error to a
ProviderError whose message is safe to show anyone (no key fragments, no billing details).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from world.types import Credentials


class ProviderError(Exception):
    """An upstream failure, mapped to a code and one public-safe sentence."""

    # codes: invalid_key, quota, no_video_access, rate_limited, permission, blocked, config,
    # timeout, unavailable, not_found, expired, render_failed, bad_output, provider_error
    def __init__(
        self, code: str, message: str, *, retryable: bool = True, outcome_unknown: bool = False
    ) -> None:
        self.code = code
        self.public_message = message
        self.retryable = retryable
        # Raised by a paid create that may have started a job anyway (timeout, 5xx, a lost
        # connection): the intent stays, and the next attempt reconciles before paying.
        self.outcome_unknown = outcome_unknown
        super().__init__(f"{code}: {message}")

    @property
    def releases_claim(self) -> bool:
        """Key problems put the branch back to unexplored instead of marking it failed."""
        return self.code in KEY_PROBLEMS


KEY_PROBLEMS = frozenset({"invalid_key", "quota", "no_video_access", "permission", "rate_limited"})


@dataclass(frozen=True)
class KeyCheck:
    """What a spend-free key check learned; `remaining_usd` None means no limit is known."""

    remaining_usd: float | None = None


@dataclass(frozen=True)
class PlanChoice:
    label: str
    short_label: str


@dataclass(frozen=True)
class Plan:
    title: str
    narration: str
    video_prompt: str
    choices: tuple[PlanChoice, ...]


@dataclass(frozen=True)
class StepContext:
    """One earlier scene on the way to the branch being planned."""

    path: str
    title: str
    choice_taken: str | None  # the label chosen in this scene to go on (None for the last)


@dataclass(frozen=True)
class PlanRequest:
    world_id: str
    base_prompt: str
    guidance: str
    path: str
    depth: int
    video_seconds: int
    model: str
    history: tuple[StepContext, ...] = ()
    parent_summary: str | None = None
    parent_video_prompt: str | None = None
    chosen_choice: str | None = None  # None for the opening scene


@dataclass(frozen=True)
class RenderRequest:
    world_id: str
    path: str
    prompt: str
    title: str
    model: str
    size: str
    seconds: int
    reference_image: bytes | None = field(
        default=None, repr=False
    )  # PNG of the parent's last frame
    attempt_id: str = ""  # the intent this create answers (see world.scenes.write_intent)


@dataclass(frozen=True)
class RenderStatus:
    """One observation of a running render; `done` when completed, raises on failure.

    `progress` is the provider's own percentage, or None when it reports none (OpenRouter,
    Gemini): then progress is shown as the provider's `state` and the time elapsed, never as
    an invented number. `cost_usd` is the actual spend, when the provider reports it.
    """

    progress: int | None
    done: bool = False
    state: str | None = None
    cost_usd: float | None = None


@dataclass(frozen=True)
class SummaryRequest:
    world_id: str
    base_prompt: str
    model: str
    previous_summary: str | None
    narration: str
    choices: tuple[str, ...]


@runtime_checkable
class Provider(Protocol):
    name: str
    display_name: str  # how members see it named ("OpenRouter")
    needs_key: bool
    reports_progress: bool  # False: progress is a status and elapsed time, never a number

    async def validate_key(self, credentials: Credentials | None) -> KeyCheck:
        """Cheap check that spends nothing; raises ProviderError(invalid_key, ...)."""

    async def estimate_cost_usd(self) -> float | None:
        """One branch's cost from the provider's price list; None: use the world's setting."""

    def cached_estimate_usd(self) -> float | None:
        """The last price-list estimate, without any network call (None if none yet)."""

    async def plan(self, request: PlanRequest, credentials: Credentials | None) -> Plan:
        """Plan the scene; raises ProviderError."""

    async def start_render(self, request: RenderRequest, credentials: Credentials | None) -> str:
        """Start paid work and return the provider's job id. Never retried automatically."""

    def watch_render(
        self, job_id: str, credentials: Credentials | None
    ) -> AsyncIterator[RenderStatus]:
        """Yield progress until the render is done; raises ProviderError if it failed."""

    async def download(
        self, job_id: str, credentials: Credentials | None, destination: Path
    ) -> int:
        """Stream the finished clip to `destination`; return its size in bytes."""

    # Whether `find_render` can look a create up without its job id (list or search jobs).
    can_find_renders: bool

    async def find_render(
        self, request: RenderRequest, since: datetime, credentials: Credentials | None
    ) -> str | None:
        """The job a create of `request` started at or after `since`, or None if none did."""

    async def summarise(self, request: SummaryRequest, credentials: Credentials | None) -> str:
        """<= 3 short bullets of evolving world state; raises ProviderError."""

    async def check(self) -> list[tuple[str, str]]:
        """For `shared-world check`: (level, sentence) pairs, level ok | warn | fail."""

    async def close(self) -> None:
        """Release connections."""
