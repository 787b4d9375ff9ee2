"""Pure round rules: the winner of a vote, when a countdown ends, how it is shown.

No Discord, no database. The bounds of a vote's length are settings limits
(`world.settings.MIN_VOTE_SECONDS`, `MAX_VOTE_SECONDS`), defined there once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta


def winner(tallies: Mapping[int, int], ready: Collection[int] = ()) -> int | None:
    """The winning choice, or None when nobody voted (the round then stays open).

    Most votes wins; a tie goes to a choice whose branch is ready (it plays at once, nobody
    pays), then to the lowest index.
    """
    voted = {index: count for index, count in tallies.items() if count > 0}
    if not voted:
        return None
    top = max(voted.values())
    tied = sorted(index for index, count in voted.items() if count == top)
    ready_tied = [index for index in tied if index in ready]
    return (ready_tied or tied)[0]


def closes_at(opened_at: datetime, vote_seconds: int) -> datetime:
    return opened_at + timedelta(seconds=vote_seconds)


def relative_time(moment: datetime) -> str:
    """Discord's relative timestamp markup, rendered by each client as "in 42 seconds"."""
    return f"<t:{int(moment.timestamp())}:R>"
