"""Pure round rules: tallies, winners, ties, countdowns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot import rounds


def test_tally_counts_one_vote_per_member():
    assert rounds.tally([0, 2, 2, 1, 2]) == {0: 1, 1: 1, 2: 3}
    assert rounds.tally([]) == {}


def test_most_votes_wins():
    assert rounds.winner({0: 1, 1: 4, 2: 2}) == 1


def test_a_round_without_votes_has_no_winner():
    assert rounds.winner({}) is None
    assert rounds.winner({0: 0, 1: 0}) is None


def test_a_tie_goes_to_a_ready_branch():
    assert rounds.winner({0: 2, 1: 2, 2: 1}, ready={1}) == 1
    assert rounds.winner({0: 2, 1: 2, 2: 2}, ready={1, 2}) == 1


def test_a_tie_without_ready_branches_goes_to_the_lowest_index():
    assert rounds.winner({2: 3, 1: 3}) == 1
    assert rounds.winner({2: 3, 1: 3}, ready={0}) == 1  # a ready branch nobody voted for


def test_a_ready_branch_does_not_beat_more_votes():
    assert rounds.winner({0: 3, 1: 2}, ready={1}) == 0


def test_countdown_markup_and_due():
    opened = datetime(2026, 1, 1, tzinfo=UTC)
    closes = rounds.closes_at(opened, 60)
    assert closes == opened + timedelta(seconds=60)
    assert rounds.relative_time(closes) == f"<t:{int(closes.timestamp())}:R>"
    assert not rounds.is_due(closes, opened + timedelta(seconds=59))
    assert rounds.is_due(closes, opened + timedelta(seconds=60))
    assert not rounds.is_due(None, opened)


def test_vote_lengths():
    assert rounds.valid_vote_seconds(10) and rounds.valid_vote_seconds(86_400)
    assert not rounds.valid_vote_seconds(9) and not rounds.valid_vote_seconds(86_401)
