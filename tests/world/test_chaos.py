"""Issue 7's chaos run in its short form: invariants 1 and 2 under kills, cancels and faults.

30 mints across 3 bot processes sharing one database and data dir, with SIGKILLs at random
moments and in every dangerous window (each hit at least once per run), cancels and provider
faults; then, from the database and the offline provider's own job list: one paid render per
branch, every paid job published or resumable, no stuck branch, no stray file. The long form
and its figures: `.venv/bin/python bench/chaos.py` (see bench/README.md).

The randomness is seeded, but the interleavings are not: the assertions are invariants that
hold for any of them, and the figures are printed for the record (`pytest -s`).
"""

from __future__ import annotations

from bench.chaos import DANGEROUS_WINDOWS, ChaosConfig, print_report, run_chaos


async def _chaos(tmp_path, database_url):
    report = await run_chaos(ChaosConfig.quick(tmp_path, database_url, seed=7))
    print_report(report)
    assert report.ok, report.explain()
    assert report.ready == report.mints
    assert report.paid_renders == report.mints + report.refused_renders
    missed = [w for w in DANGEROUS_WINDOWS if not report.kills[w]]
    assert not missed, f"the run never killed a process in: {missed}"
    assert report.faults["create_lost"] and report.faults["watch_unavailable"]
    assert report.cancels["soon sent"]


async def test_chaos_on_sqlite(tmp_path):
    await _chaos(tmp_path, None)


async def test_chaos_on_postgres(tmp_path, postgres_database):
    await _chaos(tmp_path, postgres_database)
