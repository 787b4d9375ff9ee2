"""Fair spending: the caps per member and per server, and what each of them spent.

The caps (`[limits]` in world/settings.py, 0 = no cap) are checked inside the claim, before
anything is written or spent (world/claimer.py): mints in progress at once, and estimated US
dollars per UTC day. A member's or a server's day is the renders made since 00:00 UTC (what
the provider reported where it did, else the estimate shown before paying) plus the estimates
reserved by its mints in progress (`scenes.reserved_cost_usd`). Members and servers are known
only by their keyed hashes (world/claims.py `contributor_id`), never by a Discord id.

Racing claims: in one process the check runs under the claimer's per-path lock plus a lock
per identity (`SpendingGuard.hold`); on PostgreSQL it also takes a transaction-scoped advisory
lock per identity in the claim's own transaction, so claims from several processes that share
a member or a server are counted one after the other. The rules are pure functions
(`cap_refusal`); the rest are read-only queries for `/key status` and `/world status`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from world.claims import PathLocks
from world.db import Database
from world.models import Render, Scene
from world.settings import LimitsSettings
from world.types import Status

log = logging.getLogger(__name__)

MEMBER = "member"
SERVER = "server"
HASH_SHOWN = 12  # hex characters of a hashed id shown to admins


# -- plain values ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """One member's or one server's mints in progress and spend today (UTC)."""

    running: int = 0
    spent_usd: float = 0.0  # renders made today: reported cost where known, else the estimate
    reserved_usd: float = 0.0  # estimates held by mints in progress

    @property
    def today_usd(self) -> float:
        return self.spent_usd + self.reserved_usd


@dataclass(frozen=True)
class MintLine:
    """One branch a member minted (or is minting)."""

    world_id: str
    path: str
    title: str | None
    at: datetime
    outcome: str  # ready | failed | minting
    estimated_usd: float
    actual_usd: float | None = None  # what the provider reported, where it did


@dataclass(frozen=True)
class MemberSpending:
    mints: tuple[MintLine, ...]  # newest first: in progress, then renders
    today: Usage
    renders: int  # every render of this member, all time
    estimated_usd: float  # all time
    actual_usd: float  # all time, where reported
    limits: LimitsSettings


@dataclass(frozen=True)
class DaySpend:
    day: date
    renders: int
    spent_usd: float  # reported where known, else estimated
    actual_usd: float  # the reported part


@dataclass(frozen=True)
class Contributor:
    hashed_id: str  # a prefix of the keyed hash; never a Discord id or name
    renders: int
    spent_usd: float


@dataclass(frozen=True)
class WorldSpending:
    world_id: str
    days: tuple[DaySpend, ...]  # the latest first, one per UTC day (zeros included)
    top: tuple[Contributor, ...]  # over the same days, highest spend first
    server_today: Usage | None  # the asking server's day, when known


# -- the rules (pure) ------------------------------------------------------------------------


def day_start(now: datetime) -> datetime:
    """00:00 UTC of `now`'s day: the daily caps count from here."""
    now = now.astimezone(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def until_midnight_text(now: datetime) -> str:
    """How long until the daily caps free up, e.g. "3 h 12 min"."""
    left = day_start(now) + timedelta(days=1) - now.astimezone(UTC)
    minutes = max(1, int(left.total_seconds() // 60) + (1 if left.total_seconds() % 60 else 0))
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"


def usd(amount: float) -> str:
    return f"${amount:.2f}"


def _mints(count: int) -> str:
    return f"{count} mint{'' if count == 1 else 's'}"


def cap_refusal(
    limits: LimitsSettings,
    *,
    member: Usage | None,
    server: Usage | None,
    estimate_usd: float,
    now: datetime,
) -> str | None:
    """The one sentence refusing a mint over a cap, or None when every cap allows it.

    `member` / `server` are None when the claim has no such identity (or its caps are off).
    A free mint (estimate 0) is never refused for spend, only for mints in progress.
    """
    if member is not None and 0 < limits.member_concurrent_mints <= member.running:
        return (
            f"You already have {_mints(member.running)} in progress, your cap of "
            f"{limits.member_concurrent_mints}; you can start another when one of them finishes."
        )
    if server is not None and 0 < limits.server_concurrent_mints <= server.running:
        return (
            f"This server already has {_mints(server.running)} in progress, its cap of "
            f"{limits.server_concurrent_mints}; another can start when one of them finishes."
        )
    if estimate_usd <= 0:
        return None
    frees = f"it frees up at 00:00 UTC, in {until_midnight_text(now)}"
    if member is not None and 0 < limits.member_daily_usd < member.today_usd + estimate_usd:
        return (
            f"This mint (about {usd(estimate_usd)}) would take you past your daily cap of "
            f"{usd(limits.member_daily_usd)} ({usd(member.today_usd)} spent or reserved today, "
            f"estimated); {frees}."
        )
    if server is not None and 0 < limits.server_daily_usd < server.today_usd + estimate_usd:
        return (
            f"This mint (about {usd(estimate_usd)}) would take this server past its daily cap "
            f"of {usd(limits.server_daily_usd)} ({usd(server.today_usd)} spent or reserved "
            f"today, estimated); {frees}."
        )
    return None


def member_capped(limits: LimitsSettings) -> bool:
    return bool(limits.member_concurrent_mints or limits.member_daily_usd)


def server_capped(limits: LimitsSettings) -> bool:
    return bool(limits.server_concurrent_mints or limits.server_daily_usd)


def advisory_key(kind: str, hashed_id: str) -> int:
    """A signed 64-bit PostgreSQL advisory lock key for one identity."""
    digest = hashlib.sha256(f"shared-world spending {kind} {hashed_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# -- the queries -----------------------------------------------------------------------------

_COST = func.coalesce(Render.actual_cost_usd, Render.estimated_cost_usd)


async def usage(
    session: AsyncSession, kind: str, hashed_id: str, now: datetime | None = None
) -> Usage:
    """A member's (`kind` MEMBER) or a server's (SERVER) mints in progress and day so far."""
    now = now or datetime.now(UTC)
    scene_col = Scene.contributor if kind == MEMBER else Scene.guild
    render_col = Render.contributor if kind == MEMBER else Render.guild
    running, reserved = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(Scene.reserved_cost_usd), 0.0)).where(
                scene_col == hashed_id, Scene.status == Status.QUEUED.value
            )
        )
    ).one()
    spent = await session.scalar(
        select(func.coalesce(func.sum(_COST), 0.0)).where(
            render_col == hashed_id, Render.created_at >= day_start(now)
        )
    )
    return Usage(int(running), float(spent or 0.0), float(reserved or 0.0))


class SpendingGuard:
    """The cap check of a claim: locks per identity, then the counts, then the rule."""

    def __init__(self, limits: LimitsSettings) -> None:
        self.limits = limits
        self._locks = PathLocks()  # refcounted, so the table never outgrows the claims

    @property
    def active(self) -> bool:
        return self.limits.enabled

    def identities(self, member: str | None, server: str | None) -> list[tuple[str, str]]:
        """The (kind, hashed id) pairs whose caps apply to a claim, in lock order."""
        found = []
        if member is not None and member_capped(self.limits):
            found.append((MEMBER, member))
        if server is not None and server_capped(self.limits):
            found.append((SERVER, server))
        return sorted(found)

    @asynccontextmanager
    async def hold(self, member: str | None, server: str | None) -> AsyncIterator[None]:
        """This process's locks for the claim's identities (taken after the path lock)."""
        async with AsyncExitStack() as stack:
            for identity in self.identities(member, server):
                await stack.enter_async_context(self._locks.hold(identity))
            yield

    async def check(
        self,
        session: AsyncSession,
        member: str | None,
        server: str | None,
        estimate_usd: float,
        now: datetime | None = None,
    ) -> str | None:
        """Inside the claim's transaction: the refusal sentence, or None to go ahead."""
        wanted = self.identities(member, server)
        if not wanted:
            return None
        now = now or datetime.now(UTC)
        if session.bind.dialect.name == "postgresql":
            for kind, hashed in wanted:  # released when the claim's transaction ends
                await session.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(kind, hashed)}
                )
        found = {kind: await usage(session, kind, hashed, now) for kind, hashed in wanted}
        return cap_refusal(
            self.limits,
            member=found.get(MEMBER),
            server=found.get(SERVER),
            estimate_usd=estimate_usd,
            now=now,
        )


async def member_spending(
    db: Database, limits: LimitsSettings, hashed_id: str, limit: int = 10
) -> MemberSpending:
    """What a member minted (newest first, at most `limit`) and what it cost."""
    now = datetime.now(UTC)
    async with db.session() as session:
        today = await usage(session, MEMBER, hashed_id, now)
        running = await session.execute(
            select(
                Scene.world_id, Scene.path, Scene.title, Scene.claimed_at, Scene.reserved_cost_usd
            )
            .where(Scene.contributor == hashed_id, Scene.status == Status.QUEUED.value)
            .order_by(Scene.claimed_at.desc())
            .limit(limit)
        )
        lines = [
            MintLine(world, path, title, at or now, "minting", float(reserved or 0.0))
            for world, path, title, at, reserved in running
        ]
        made = await session.execute(
            select(
                Render.world_id,
                Render.path,
                Scene.title,
                Render.created_at,
                Render.outcome,
                Render.estimated_cost_usd,
                Render.actual_cost_usd,
            )
            .join(Scene, Scene.id == Render.scene_id)
            .where(Render.contributor == hashed_id)
            .order_by(Render.created_at.desc(), Render.id.desc())
            .limit(max(0, limit - len(lines)))
        )
        lines += [
            MintLine(world, path, title, at, outcome, float(est or 0.0), actual)
            for world, path, title, at, outcome, est, actual in made
        ]
        count, estimated, actual = (
            await session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(Render.estimated_cost_usd), 0.0),
                    func.coalesce(func.sum(Render.actual_cost_usd), 0.0),
                ).where(Render.contributor == hashed_id)
            )
        ).one()
    return MemberSpending(
        mints=tuple(lines),
        today=today,
        renders=int(count),
        estimated_usd=float(estimated),
        actual_usd=float(actual),
        limits=limits,
    )


def _day_of(session: AsyncSession, column: Any) -> Any:
    """A UTC calendar day as 'YYYY-MM-DD' text, on SQLite (naive UTC) and PostgreSQL."""
    if session.bind.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


async def world_spending(
    db: Database,
    world_id: str,
    *,
    days: int = 7,
    top: int = 5,
    server: str | None = None,
) -> WorldSpending:
    """A world's spend per UTC day (the last `days`) and its top contributors (hashed)."""
    now = datetime.now(UTC)
    since = day_start(now) - timedelta(days=days - 1)
    async with db.session() as session:
        day = _day_of(session, Render.created_at)
        per_day = await session.execute(
            select(
                day,
                func.count(),
                func.coalesce(func.sum(_COST), 0.0),
                func.coalesce(func.sum(Render.actual_cost_usd), 0.0),
            )
            .where(Render.world_id == world_id, Render.created_at >= since)
            .group_by(day)
        )
        found = {str(d): (int(n), float(s), float(a)) for d, n, s, a in per_day}
        spent = func.coalesce(func.sum(_COST), 0.0)
        leaders = await session.execute(
            select(Render.contributor, func.count(), spent)
            .where(
                Render.world_id == world_id,
                Render.created_at >= since,
                Render.contributor.is_not(None),
            )
            .group_by(Render.contributor)
            .order_by(spent.desc(), func.count().desc())
            .limit(top)
        )
        contributors = tuple(
            Contributor(str(who)[:HASH_SHOWN], int(n), float(s)) for who, n, s in leaders
        )
        server_today = await usage(session, SERVER, server, now) if server else None
    listed = []
    for back in range(days):
        when = (since + timedelta(days=days - 1 - back)).date()
        n, s, a = found.get(when.isoformat(), (0, 0.0, 0.0))
        listed.append(DaySpend(when, n, s, a))
    return WorldSpending(world_id, tuple(listed), contributors, server_today)


async def branch_render_cost(
    db: Database, world_id: str, path: str
) -> tuple[float, float | None] | None:
    """The estimate and the provider-reported cost (None if unreported) of the branch's
    latest finished render; None when it has none."""
    async with db.session() as session:
        row = (
            await session.execute(
                select(Render.estimated_cost_usd, Render.actual_cost_usd)
                .where(
                    Render.world_id == world_id,
                    Render.path == path,
                    Render.outcome == Status.READY.value,
                )
                .order_by(Render.id.desc())
                .limit(1)
            )
        ).first()
    if row is None:
        return None
    return float(row[0] or 0.0), (float(row[1]) if row[1] is not None else None)
