"""What `/key status` and `/world status` say about spending: pure text from the service's
figures (world/spending.py values), within Discord's 2,000-character message limit.

Costs are the estimates shown before paying, and what the provider reported where it did.
Contributors appear only as a prefix of their keyed hash, never as a Discord id or name.
"""

from __future__ import annotations

from typing import Any

import discord

from bot import cards

MESSAGE_LIMIT = 2000


def usd(amount: float) -> str:
    return f"${amount:.2f}"


def _mints(count: int) -> str:
    return f"{count} mint{'' if count == 1 else 's'}"


def _renders(count: int) -> str:
    return f"{count} render{'' if count == 1 else 's'}"


def mint_line(mint: Any) -> str:
    """One branch a member minted: where, when, and what it cost."""
    where = cards.breadcrumbs(mint.path)
    title = f" “{cards.clip(mint.title, 60)}”" if mint.title else ""
    when = discord.utils.format_dt(mint.at, "R")
    cost = cards.cost_text(mint.estimated_usd)
    if mint.outcome == "minting":
        reserved = f"{cost} reserved" if mint.estimated_usd > 0 else cost
        return f"• {where}{title} · minting since {when} · {reserved}"
    if mint.actual_usd is not None:
        cost += f" · reported {usd(mint.actual_usd)}"
    return f"• {where}{title} · {mint.outcome} {when} · {cost}"


def member_text(report: Any) -> str:
    """The spending part of `/key status` for one member."""
    limits = report.limits
    if not report.mints:
        lines = ["You have not minted anything yet."]
    else:
        lines = ["**What you minted** (newest first; costs are estimates unless reported)"]
        lines += [mint_line(mint) for mint in report.mints]
    today = f"Today (UTC): {usd(report.today.today_usd)} spent or reserved"
    if limits.member_daily_usd:
        today += f" of your daily cap of {usd(limits.member_daily_usd)}"
    today += f"; {_mints(report.today.running)} in progress"
    if limits.member_concurrent_mints:
        today += f" (cap {limits.member_concurrent_mints})"
    lines.append(today + ".")
    if report.renders:
        total = f"All time: {_renders(report.renders)}, about {usd(report.estimated_usd)}"
        if report.actual_usd:
            total += f" estimated, {usd(report.actual_usd)} reported"
        lines.append(total + ".")
    return "\n".join(lines)


def world_text(report: Any, limits: Any) -> str:
    """The spending part of `/world status`: spend per UTC day and the top contributors."""
    lines = ["**Spend per day** (UTC; reported cost where known, else the estimate)"]
    for day in report.days:
        reported = f" ({usd(day.actual_usd)} reported)" if day.actual_usd else ""
        lines.append(
            f"`{day.day.isoformat()}` {usd(day.spent_usd)}{reported} · {_renders(day.renders)}"
        )
    if report.top:
        lines.append(f"**Top contributors** (last {len(report.days)} days, hashed ids)")
        lines += [
            f"`{who.hashed_id}` {usd(who.spent_usd)} · {_renders(who.renders)}"
            for who in report.top
        ]
    else:
        lines.append(f"No contributors in the last {len(report.days)} days.")
    if report.server_today is not None:
        server = report.server_today
        line = f"This server today: {usd(server.today_usd)} spent or reserved"
        if limits.server_daily_usd:
            line += f" of its daily cap of {usd(limits.server_daily_usd)}"
        line += f"; {_mints(server.running)} in progress"
        if limits.server_concurrent_mints:
            line += f" (cap {limits.server_concurrent_mints})"
        lines.append(line + ".")
    return "\n".join(lines)


def fit(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Whole lines up to Discord's limit; a line that does not fit ends the message with …"""
    if len(text) <= limit:
        return text
    kept: list[str] = []
    size = 0
    for line in text.split("\n"):
        if size + len(line) + 1 > limit - 2:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept) + "\n…"
