"""Shared fixtures: a fresh world service per test on real SQLite, PostgreSQL and storage."""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.world",
    "tests.fixtures.providers",
]
