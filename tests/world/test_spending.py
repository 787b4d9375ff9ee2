"""Fair spending: caps per member and per server, refused inside the claim before anything
is written or spent, holding under racing claims (also across two processes on PostgreSQL)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from tests.bot.keyed_provider import GOOD_KEY, KeyedTestProvider
from tests.fixtures.world import (
    make_settings,
    offline_jobs_dir,
    renders_started,
    start_service,
    wait_until_settled,
)
from tests.world.helpers import mint, row
from world.claims import contributor_id
from world.models import Render, Scene
from world.settings import LimitsSettings, SettingsError, load_settings
from world.spending import Usage, cap_refusal, until_midnight_text
from world.types import ClaimOutcome, Credentials, Status

KEY = Credentials(GOOD_KEY)
NOON = datetime(2026, 12, 2, 12, 30, tzinfo=UTC)


def keyed_settings(root: Path, database_url: str | None = None, **limits: object):
    """A world priced like a paid provider (8 s at $0.10 a second: $0.80 a mint)."""
    settings = make_settings(root, database_url, limits=limits)
    return replace(settings, worlds=(replace(settings.worlds[0], provider="openai"),))


async def keyed_service(settings, provider: KeyedTestProvider | None = None):
    provider = provider or KeyedTestProvider(settings.providers, offline_jobs_dir(settings))
    return await start_service(settings, providers={"default": provider}, run_watchdog=False)


async def scene_count(service) -> int:
    async with service.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Scene)))


# -- the rules -------------------------------------------------------------------------------


def test_each_cap_has_its_own_sentence_saying_when_it_frees_up():
    limits = LimitsSettings(2, 3, 5.0, 20.0)
    assert cap_refusal(limits, member=Usage(1), server=Usage(2), estimate_usd=0.8, now=NOON) is None
    assert cap_refusal(limits, member=Usage(2), server=None, estimate_usd=0.0, now=NOON) == (
        "You already have 2 mints in progress, your cap of 2; "
        "you can start another when one of them finishes."
    )
    assert cap_refusal(limits, member=None, server=Usage(3), estimate_usd=0.0, now=NOON) == (
        "This server already has 3 mints in progress, its cap of 3; "
        "another can start when one of them finishes."
    )
    member_day = Usage(0, spent_usd=4.0, reserved_usd=0.5)
    assert cap_refusal(limits, member=member_day, server=None, estimate_usd=0.8, now=NOON) == (
        "This mint (about $0.80) would take you past your daily cap of $5.00 "
        "($4.50 spent or reserved today, estimated); it frees up at 00:00 UTC, in 11 h 30 min."
    )
    server_day = Usage(1, spent_usd=19.5)
    assert cap_refusal(limits, member=None, server=server_day, estimate_usd=0.8, now=NOON) == (
        "This mint (about $0.80) would take this server past its daily cap of $20.00 "
        "($19.50 spent or reserved today, estimated); it frees up at 00:00 UTC, in 11 h 30 min."
    )
    # A free mint is never refused for spend; a cap of 0 is no cap.
    assert cap_refusal(limits, member=member_day, server=None, estimate_usd=0.0, now=NOON) is None
    off = LimitsSettings()
    assert (
        cap_refusal(off, member=Usage(99, 1e6), server=Usage(99), estimate_usd=9, now=NOON) is None
    )


def test_the_day_ends_at_midnight_utc():
    assert until_midnight_text(datetime(2026, 12, 2, 23, 59, 30, tzinfo=UTC)) == "1 min"
    assert until_midnight_text(datetime(2026, 12, 2, 21, 0, tzinfo=UTC)) == "3 h"
    assert until_midnight_text(datetime(2026, 12, 2, 0, 0, tzinfo=UTC)) == "24 h"


def test_limits_come_from_the_file_and_the_environment_and_are_validated(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[limits]\nmember_concurrent_mints = 2\nserver_daily_usd = 25\n")
    settings = load_settings(config, env={"MEMBER_DAILY_USD": "5.5"})
    assert settings.limits == LimitsSettings(2, 0, 5.5, 25.0)
    assert load_settings(read_file=False, env={}).limits == LimitsSettings()  # no caps

    with pytest.raises(SettingsError) as raised:
        load_settings(
            read_file=False, env={"SERVER_CONCURRENT_MINTS": "-1", "MEMBER_DAILY_USD": "nan"}
        )
    assert raised.value.problems == [
        "limits.server_concurrent_mints (SERVER_CONCURRENT_MINTS): use 0 (no cap) to 1000 "
        "mints in progress at once.",
        "limits.member_daily_usd (MEMBER_DAILY_USD): use 0 (no cap) to 1,000,000 US dollars a day.",
    ]


# -- in the claim ----------------------------------------------------------------------------


async def test_racing_claims_of_one_member_against_a_cap_of_one_give_exactly_one(tmp_path):
    settings = make_settings(tmp_path, limits={"member_concurrent_mints": 1})
    service = await start_service(settings)
    try:
        await mint(service, "")  # by another member
        before = await scene_count(service)
        results = await asyncio.gather(
            *(service.claim("default", str(i), None, "member-7") for i in range(3))
        )
        won = [r for r in results if r.claimed_by_caller]
        lost = [r for r in results if r.outcome is ClaimOutcome.REFUSED]
        assert len(won) == 1 and len(lost) == 2
        assert {r.reason for r in lost} == {"cap"}
        assert lost[0].message == (
            "You already have 1 mint in progress, your cap of 1; "
            "you can start another when one of them finishes."
        )
        assert await scene_count(service) == before + 1  # refused claims wrote no row
        # Someone else is not held back by member-7's cap.
        other = await service.claim("default", lost[0].path, None, "member-8")
        assert other.claimed_by_caller
        for path in (won[0].path, lost[0].path):
            await wait_until_settled(service, "default", path)
        assert renders_started(settings) == 3
        # The mint finished, so the cap frees up.
        again = await service.claim("default", lost[1].path, None, "member-7")
        assert again.claimed_by_caller
        await wait_until_settled(service, "default", lost[1].path)
    finally:
        await service.close()


async def test_a_server_cap_counts_every_member_of_that_server(tmp_path):
    settings = keyed_settings(tmp_path, server_concurrent_mints=1)
    provider = KeyedTestProvider(settings.providers, offline_jobs_dir(settings))
    service = await keyed_service(settings, provider)
    try:
        await service.claim("default", "", KEY, "seeder")
        await wait_until_settled(service, "default", "")
        provider.hold()
        first = await service.claim("default", "0", KEY, "ann", guild="1001")
        blocked = await service.claim("default", "1", KEY, "bob", guild="1001")
        elsewhere = await service.claim("default", "2", KEY, "bob", guild="2002")
        assert first.claimed_by_caller and elsewhere.claimed_by_caller
        assert blocked.outcome is ClaimOutcome.REFUSED and blocked.reason == "cap"
        assert blocked.message.startswith("This server already has 1 mint in progress")
        assert await row(service, "1") is None
        stored = await row(service, "0")
        salt = settings.generation.contributor_salt
        assert stored.guild == contributor_id(salt, "1001") and "1001" not in stored.guild
        provider.release()
        for path in ("0", "2"):
            await wait_until_settled(service, "default", path)
        async with service.db.session() as session:
            guilds = set(await session.scalars(select(Render.guild).where(Render.path != "")))
        assert guilds == {contributor_id(salt, "1001"), contributor_id(salt, "2002")}
        assert provider.paid_calls == 3
    finally:
        await service.close()


async def test_daily_spend_counts_renders_reported_costs_and_mints_in_progress(tmp_path):
    settings = keyed_settings(tmp_path, member_daily_usd=1.0)
    provider = KeyedTestProvider(settings.providers, offline_jobs_dir(settings))
    service = await keyed_service(settings, provider)
    try:
        await service.claim("default", "", KEY, "seeder")
        await wait_until_settled(service, "default", "")
        provider.hold()
        await service.claim("default", "0", KEY, "ann")  # about $0.80, reserved while it runs
        refused = await service.claim("default", "1", KEY, "ann")  # 0.80 + 0.80 > 1.00
        assert refused.reason == "cap"
        assert refused.message.startswith(
            "This mint (about $0.80) would take you past your daily cap of $1.00 "
            "($0.80 spent or reserved today, estimated); it frees up at 00:00 UTC, in "
        )
        provider.release()
        await wait_until_settled(service, "default", "0")
        again = await service.claim("default", "1", KEY, "ann")  # rendered: still $0.80 today
        assert again.reason == "cap" and provider.paid_calls == 2
        async with service.db.transaction() as session:  # the provider reported $0.15
            await session.execute(update(Render).values(actual_cost_usd=0.15))
        paid = await service.claim("default", "1", KEY, "ann")
        assert paid.claimed_by_caller
        await wait_until_settled(service, "default", "1")

        report = await service.member_spending("ann")
        assert [(m.path, m.outcome) for m in report.mints] == [("1", "ready"), ("0", "ready")]
        assert report.mints[1].actual_usd == 0.15 and report.mints[0].estimated_usd == 0.8
        assert report.today == Usage(0, spent_usd=pytest.approx(0.95), reserved_usd=0.0)
        assert report.renders == 2 and report.estimated_usd == pytest.approx(1.6)

        world = await service.world_spending("default")
        assert world.days[0].day == datetime.now(UTC).date() and world.days[0].renders == 3
        assert world.days[0].spent_usd == pytest.approx(1.1) and len(world.days) == 7
        salt = settings.generation.contributor_salt
        ann, seeder = (contributor_id(salt, who)[:12] for who in ("ann", "seeder"))
        assert [(c.hashed_id, c.renders) for c in world.top] == [(ann, 2), (seeder, 1)]
    finally:
        await service.close()


@pytest.mark.postgres
async def test_racing_claims_from_two_processes_on_postgres_pass_a_cap_of_one_once(
    tmp_path, postgres_database
):
    """Two services on one database (two processes' worth of locks): each round one member
    claims one branch in each service at the same moment; exactly one of them may pass."""
    settings = make_settings(tmp_path, postgres_database, limits={"member_concurrent_mints": 1})
    one = await start_service(settings, run_watchdog=False)
    two = await start_service(settings, run_watchdog=False)
    try:
        await mint(one, "")
        for i in range(3):  # one at a time: "minter" has a cap of 1 too
            await mint(one, str(i))
        await two.view("default", "0")  # both services have a connection ready
        leaves = [f"{a}/{b}" for a in range(3) for b in range(3)]
        winners = []
        for round_ in range(4):
            mine, theirs = leaves[2 * round_], leaves[2 * round_ + 1]
            results = await asyncio.gather(
                one.claim("default", mine, None, f"racer-{round_}"),
                two.claim("default", theirs, None, f"racer-{round_}"),
            )
            assert sorted(r.outcome.value for r in results) == ["queued", "refused"], results
            assert {r.reason for r in results if r.outcome is ClaimOutcome.REFUSED} == {"cap"}
            winners += [r.path for r in results if r.claimed_by_caller]
        for path in winners:
            await wait_until_settled(one, "default", path)
            assert (await one.view("default", path)).status is Status.READY
        assert renders_started(settings) == 4 + 4
    finally:
        await one.close()
        await two.close()
