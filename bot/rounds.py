"""Pure round rules: tallies, the winner, the countdown. No Discord, no database."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta

MIN_VOTE_SECONDS = 10
MAX_VOTE_SECONDS = 86_400


def tally(choice_indexes: Iterable[int]) -> dict[int, int]:
    """Votes per choice index from one vote per member."""
    counts: dict[int, int] = {}
    for index in choice_indexes:
        counts[index] = counts.get(index, 0) + 1
    return counts


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


def is_due(closes: datetime | None, now: datetime) -> bool:
    return closes is not None and closes <= now


def relative_time(moment: datetime) -> str:
    """Discord's relative timestamp markup, rendered by each client as "in 42 seconds"."""
    return f"<t:{int(moment.timestamp())}:R>"


def valid_vote_seconds(seconds: int) -> bool:
    return MIN_VOTE_SECONDS <= seconds <= MAX_VOTE_SECONDS
