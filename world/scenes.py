"""Scene queries: placeholder upserts, the claim compare-and-set, fenced job writes.

Every write a generation job makes is conditional on its claim token, so a job whose lease
expired and whose branch was claimed again can never overwrite the newer claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from world import paths
from world.models import Scene, World, utcnow
from world.types import Status


class ClaimLost(Exception):
    """The job's claim token no longer owns the branch."""


def dialect_insert(session: AsyncSession) -> Any:
    """`insert` of the session's dialect (PostgreSQL or SQLite), for ON CONFLICT clauses."""
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert


async def upsert_world(session: AsyncSession, values: dict[str, Any]) -> None:
    stmt = dialect_insert(session)(World).values(**values)
    updates = {k: stmt.excluded[k] for k in values if k not in ("id", "created_at")}
    await session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=updates))


async def load_paths(
    session: AsyncSession, world_id: str, wanted: Sequence[str]
) -> dict[str, Scene]:
    """One indexed query for a set of paths of one world."""
    rows = await session.scalars(
        select(Scene).where(Scene.world_id == world_id, Scene.path.in_(list(wanted)))
    )
    return {row.path: row for row in rows}


async def load_view_rows(
    session: AsyncSession, world_id: str, wanted: Sequence[str]
) -> dict[str, Any]:
    """Like load_paths, but plain rows (no ORM identity map) of the columns a view shows:
    the hot read of `view`."""
    rows = await session.execute(
        select(*_VIEW_COLUMNS).where(
            _SCENES.c.world_id == world_id, _SCENES.c.path.in_(list(wanted))
        )
    )
    return {row.path: row for row in rows}


# What only the engine reads (prompts, paid-create intents, leases) stays out of view reads.
_ENGINE_ONLY_COLUMNS = frozenset(
    {
        "video_prompt",
        "render_attempt",
        "render_request",
        "render_requested_at",
        "provider_job_id",
        "claim_token",
        "contributor",
        "lease_until",
        "attempts",
        "created_at",
        "guild",
        "reserved_cost_usd",
    }
)
_SCENES = Scene.__table__
_VIEW_COLUMNS = [c for c in _SCENES.c if c.name not in _ENGINE_ONLY_COLUMNS]


async def insert_placeholder(
    session: AsyncSession, world_id: str, path: str, choice_label: str | None
) -> None:
    """Create the pending row if absent; never check-then-insert."""
    now = utcnow()
    stmt = (
        dialect_insert(session)(Scene)
        .values(
            world_id=world_id,
            path=path,
            parent_path=paths.parent(path),
            depth=paths.depth(path),
            choice_index=paths.last_index(path),
            choice_label=choice_label,
            status=Status.PENDING.value,
            progress=0,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["world_id", "path"])
    )
    await session.execute(stmt)


async def try_claim(
    session: AsyncSession,
    world_id: str,
    path: str,
    *,
    token: str,
    contributor: str | None,
    provider: str,
    lease_seconds: int,
    from_statuses: Sequence[Status],
    guild: str | None = None,
    reserved_cost_usd: float | None = None,
) -> bool:
    """The compare-and-set: exactly one caller, in any process, gets rowcount 1."""
    now = utcnow()
    result = await session.execute(
        update(Scene)
        .where(
            Scene.world_id == world_id,
            Scene.path == path,
            Scene.status.in_([s.value for s in from_statuses]),
        )
        .values(
            status=Status.QUEUED.value,
            claim_token=token,
            contributor=contributor,
            guild=guild,
            reserved_cost_usd=reserved_cost_usd,
            provider=provider,
            claimed_at=now,
            lease_until=now + timedelta(seconds=lease_seconds),
            attempts=Scene.attempts + 1,
            failure_code=None,
            failure_detail=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def job_update(
    session: AsyncSession, world_id: str, path: str, token: str, **values: Any
) -> None:
    """A write by the job holding `token`; raises ClaimLost if it no longer owns the branch."""
    values.setdefault("updated_at", utcnow())
    result = await session.execute(
        update(Scene)
        .where(
            Scene.world_id == world_id,
            Scene.path == path,
            Scene.claim_token == token,
            Scene.status == Status.QUEUED.value,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise ClaimLost(f"{world_id}/{path}")


async def write_intent(
    session: AsyncSession,
    world_id: str,
    path: str,
    token: str,
    attempt: str,
    request: dict[str, Any],
) -> None:
    """Before a paid create: which attempt, and the exact request (fenced by the claim)."""
    await job_update(
        session,
        world_id,
        path,
        token,
        render_attempt=attempt,
        render_request=request,
        render_requested_at=utcnow(),
        provider_job_id=None,
    )


async def record_job_id(
    session: AsyncSession, world_id: str, path: str, attempt: str, job_id: str
) -> bool:
    """Store a provider job id the moment it exists, beside the intent it answers.

    Also when the claim was lost meanwhile (a cancel, an expired lease): a paid job must stay
    findable so the next claim resumes it instead of paying again. Keyed on the attempt, not
    the claim: only the create that the branch's intent names can fill it in.
    """
    result = await session.execute(
        update(Scene)
        .where(
            Scene.world_id == world_id,
            Scene.path == path,
            Scene.status != Status.READY.value,
            Scene.render_attempt == attempt,
            Scene.provider_job_id.is_(None),
        )
        .values(provider_job_id=job_id, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def clear_intent(session: AsyncSession, world_id: str, path: str, attempt: str) -> bool:
    """The create of `attempt` made nothing (refused, or not found upstream): forget it."""
    result = await session.execute(
        update(Scene)
        .where(
            Scene.world_id == world_id,
            Scene.path == path,
            Scene.render_attempt == attempt,
            Scene.provider_job_id.is_(None),
        )
        .values(render_attempt=None, render_request=None, render_requested_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def release(
    session: AsyncSession,
    world_id: str,
    path: str,
    token: str,
    *,
    status: Status = Status.PENDING,
    failure_code: str | None = None,
    failure_detail: str | None = None,
    lease_expired_before: datetime | None = None,
    forget_job: bool = False,
    forget_plan: bool = False,
) -> bool:
    """End a claim (back to pending, or failed); a no-op when the token lost the branch.

    With `lease_expired_before`, only a claim whose lease ran out by then is ended: the
    watchdog's compare-and-set, safe against a job that renewed its lease meanwhile. Anything
    else keeps the plan and the provider's job id, so the next claim resumes without paying.
    """
    conditions = [
        Scene.world_id == world_id,
        Scene.path == path,
        Scene.claim_token == token,
        Scene.status == Status.QUEUED.value,
    ]
    if lease_expired_before is not None:
        conditions.append(Scene.lease_until < lease_expired_before)
    values: dict[str, Any] = {
        "status": status.value,
        "claim_token": None,
        "lease_until": None,
        "failure_code": failure_code,
        "failure_detail": failure_detail,
        "updated_at": utcnow(),
    }
    if forget_job:  # the provider's job is dead: the next attempt starts a new one
        values.update(
            provider_job_id=None,
            progress=0,
            render_attempt=None,
            render_request=None,
            render_requested_at=None,
        )
    if forget_plan:  # the plan itself was the problem: the next attempt plans again
        values.update(title=None, narration=None, video_prompt=None, choices=None)
    result = await session.execute(
        update(Scene)
        .where(*conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def cancel_queued(session: AsyncSession, world_id: str, path: str) -> str | None:
    """Put a queued branch back to pending (job id kept); returns the token it cancelled."""
    row = await session.scalar(
        select(Scene.claim_token).where(
            Scene.world_id == world_id, Scene.path == path, Scene.status == Status.QUEUED.value
        )
    )
    if row is None:
        return None
    released = await release(session, world_id, path, row)
    return row if released else None


async def expired_claims(
    session: AsyncSession, now: datetime, limit: int = 500
) -> list[tuple[str, str, str]]:
    rows = await session.execute(
        select(Scene.world_id, Scene.path, Scene.claim_token)
        .where(Scene.status == Status.QUEUED.value, Scene.lease_until < now)
        .limit(limit)
    )
    return [(w, p, t) for w, p, t in rows if t is not None]


async def explored(
    session: AsyncSession, world_id: str, prefix: str, limit: int
) -> list[tuple[str, str | None]]:
    """Ready branches whose path starts with `prefix`, shallowest first (for autocomplete)."""
    query = select(Scene.path, Scene.title).where(
        Scene.world_id == world_id, Scene.status == Status.READY.value
    )
    if prefix:
        query = query.where(Scene.path.startswith(prefix, autoescape=True))
    rows = await session.execute(query.order_by(Scene.depth, Scene.path).limit(limit))
    return [(p, t) for p, t in rows]


async def count_by_status(session: AsyncSession, world_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(Scene.status, func.count()).where(Scene.world_id == world_id).group_by(Scene.status)
    )
    return {status: count for status, count in rows}
