"""Pure round rules: winners, ties, countdowns; the vote-length bounds the commands use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot import rules
from bot.cogs.adventure import AdventureCog
from world.settings import MAX_VOTE_SECONDS, MIN_VOTE_SECONDS


def test_most_votes_wins():
    assert rules.winner({0: 1, 1: 4, 2: 2}) == 1


def test_a_round_without_votes_has_no_winner():
    assert rules.winner({}) is None
    assert rules.winner({0: 0, 1: 0}) is None


def test_a_tie_goes_to_a_ready_branch():
    assert rules.winner({0: 2, 1: 2, 2: 1}, ready={1}) == 1
    assert rules.winner({0: 2, 1: 2, 2: 2}, ready={1, 2}) == 1


def test_a_tie_without_ready_branches_goes_to_the_lowest_index():
    assert rules.winner({2: 3, 1: 3}) == 1
    assert rules.winner({2: 3, 1: 3}, ready={0}) == 1  # a ready branch nobody voted for


def test_a_ready_branch_does_not_beat_more_votes():
    assert rules.winner({0: 3, 1: 2}, ready={1}) == 0


def test_countdown_markup():
    opened = datetime(2026, 1, 1, tzinfo=UTC)
    closes = rules.closes_at(opened, 60)
    assert closes == opened + timedelta(seconds=60)
    assert rules.relative_time(closes) == f"<t:{int(closes.timestamp())}:R>"


@pytest.mark.parametrize("command", ["start", "settings"])
def test_the_commands_offer_the_vote_lengths_settings_allow(command):
    """One definition of the bounds: the slash commands' ranges are the settings limits."""
    assert (MIN_VOTE_SECONDS, MAX_VOTE_SECONDS) == (10, 86_400)
    slash = getattr(AdventureCog, command)
    option = next(p for p in slash.parameters if p.name == "vote_seconds")
    assert (option.min_value, option.max_value) == (MIN_VOTE_SECONDS, MAX_VOTE_SECONDS)
