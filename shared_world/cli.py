"""The `shared-world` command: run, check, db upgrade, sync-commands.

Owns argument parsing, loading the settings (a SettingsError or an unreadable --config file is
printed in plain words to stderr and exits 2, never a traceback), logging set-up, and handing
each command to `shared_world.check` or `shared_world.runner`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

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
    """The settings, or exit 2 after saying in plain words what to fix."""
    try:
        return load_settings(config)
    except SettingsError as exc:
        problems = list(exc.problems) or [str(exc)]
    except OSError as exc:  # e.g. --config names a directory or an unreadable file
        where = exc.filename or config
        problems = [f"{where}: cannot be read ({exc.strerror or type(exc).__name__})."]
    if len(problems) == 1:
        print(f"Shared World cannot start: {problems[0]}", file=sys.stderr)
    else:
        print("The settings need fixing before Shared World can start:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
    raise SystemExit(2)


def _db_upgrade(settings: Settings) -> int:
    from world.db import redacted_url, upgrade_database

    upgrade_database(settings.database.url)
    print(f"Database is up to date ({redacted_url(settings.database.url)}).")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv[1:]), run one command and return its exit code."""
    parser = argparse.ArgumentParser(
        prog="shared-world", description="Shared World: one story world, minted together."
    )
    parser.add_argument(
        "--config", help="path to config.toml (default: $SHARED_WORLD_CONFIG, else ./config.toml)"
    )
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
        from shared_world.check import run_checks

        return asyncio.run(run_checks(settings))
    if args.command == "run":
        from shared_world.runner import run

        return run(settings)
    if args.command == "sync-commands":
        from shared_world.runner import sync_commands

        return asyncio.run(sync_commands(settings, args.guild))
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
