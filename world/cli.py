"""The `shared-world` command: run, check, db upgrade, sync-commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from world.settings import Settings, SettingsError, load_settings

log = logging.getLogger("shared_world")


def configure_logging(level: str) -> None:
    from world.logsafe import install_redaction

    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    install_redaction()
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # start-up noise


def _load(config: str | None) -> Settings:
    try:
        return load_settings(config)
    except SettingsError as exc:
        print("The settings need fixing before Shared World can start:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def _db_upgrade(settings: Settings) -> int:
    from world.db import redacted_url, upgrade_database

    upgrade_database(settings.database.url)
    print(f"Database is up to date ({redacted_url(settings.database.url)}).")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="shared-world", description="Shared World: one story world, minted together."
    )
    parser.add_argument("--config", help="path to config.toml (default: ./config.toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the Discord bot and the HTTP server")
    sub.add_parser("check", help="check settings, database, storage and providers")
    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply every pending migration")
    sync = sub.add_parser("sync-commands", help="publish the slash commands to Discord")
    sync.add_argument("--guild", type=int, help="sync to one server only (instant)")
    args = parser.parse_args(argv)

    settings = _load(args.config)
    configure_logging(settings.log_level)

    if args.command == "db":
        return _db_upgrade(settings)
    if args.command == "check":
        from world.check import run_checks

        return asyncio.run(run_checks(settings))
    if args.command == "run":
        from bot.runner import run

        return run(settings)
    if args.command == "sync-commands":
        from bot.runner import sync_commands

        return asyncio.run(sync_commands(settings, args.guild))
    parser.error(f"unknown command {args.command}")
    return 2


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


if __name__ == "__main__":
    raise SystemExit(main())
