"""The `shared-world` command: run, serve, check, db upgrade, sync-commands, prerender.

Owns argument parsing, loading the settings (a SettingsError or an unreadable --config file is
printed in plain words to stderr and exits 2, never a traceback), logging set-up, and handing
each command to `shared_world.check` or `shared_world.runner`.

`--config PATH` is accepted before or after the subcommand. Every host mistake is one sentence
on stderr and no traceback (tracebacks only with LOG_LEVEL=DEBUG). Exit codes:

  0  done
  1  a service could not be reached or refused us (Discord unreachable, token rejected, the
     database server unreachable or refusing the login), `check` found a problem, or an
     unexpected error (one line naming LOG_LEVEL=DEBUG)
  2  fix the settings or the set-up first (a settings problem, no DISCORD_TOKEN, a database
     that does not exist or is not migrated, storage that is not writable, the HTTP port in
     use); argparse's own usage errors are 2 as well
  130  interrupted (Ctrl-C) outside `run` and `serve`

Below DEBUG, library log records (discord, aiohttp, asyncio, sqlalchemy, ...) that carry an
exception are one line each (the exception's last line, no traceback), and discord.py's
"voice will NOT be supported" warnings are dropped (the bot has no voice). `check` logs only
warnings and worse unless LOG_LEVEL=DEBUG, so its own lines stand alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import logging
import os
import sys
from collections.abc import Sequence

from world.settings import Settings, SettingsError, load_settings

log = logging.getLogger("shared_world")


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Our own packages keep their tracebacks (a bug worth reporting); everything else is a library.
OWN_PACKAGES = ("shared_world", "world", "bot", "web", "storage")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is now (pytest's capture swaps it between tests)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


class _OneLineLibraryErrors(logging.Formatter):
    """Below DEBUG, a library record's exception is its last line, never a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        own = record.name.split(".", 1)[0] in OWN_PACKAGES
        if own or not (record.exc_info or record.exc_text):
            return super().format(record)
        summary = _exception_summary(record)
        record = copy.copy(record)
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        record.msg = f"{record.getMessage()} ({summary})" if summary else record.getMessage()
        record.args = None
        return super().format(record)


def _exception_summary(record: logging.LogRecord) -> str:
    if record.exc_info and record.exc_info[1] is not None:
        from world.logsafe import redact

        exc = record.exc_info[1]
        return redact(f"{type(exc).__name__}: {exc}".rstrip(": "))
    lines = [line for line in (record.exc_text or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _not_voice_noise(record: logging.LogRecord) -> bool:
    return not (
        record.name == "discord.client" and "voice will NOT be supported" in str(record.msg)
    )


def remove_logging() -> None:
    """Take out the handler `configure_logging` added (main does, on its way out)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "shared_world", False)]:
        root.removeHandler(handler)
        root.setLevel(handler.root_level_before)  # type: ignore[attr-defined]


def configure_logging(level: str, *, command: str | None = None) -> None:
    """One stderr handler (replaced, not stacked, when called again), with redaction.

    `command="check"` logs only warnings and worse unless `level` is DEBUG.
    """
    from world.logsafe import install_redaction

    install_redaction()
    debug = level == "DEBUG"
    root = logging.getLogger()
    remove_logging()
    handler = _StderrHandler()
    handler.shared_world = True  # type: ignore[attr-defined]
    handler.root_level_before = root.level  # type: ignore[attr-defined]
    formatter = logging.Formatter if debug else _OneLineLibraryErrors
    handler.setFormatter(formatter(LOG_FORMAT))
    if not debug:
        handler.addFilter(_not_voice_noise)
    if command in ("check", "prerender") and not debug:  # their own lines stand alone
        handler.setLevel(max(logging.WARNING, logging.getLevelName(level)))
    root.addHandler(handler)
    root.setLevel(level)
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
    from world.db import DatabaseMissing, DatabaseUnavailable, redacted_url, upgrade_database

    try:
        upgrade_database(settings.database.url)
    except DatabaseUnavailable as exc:
        print(str(exc), file=sys.stderr)
        return 2 if isinstance(exc, DatabaseMissing) else 1
    print(f"Database is up to date ({redacted_url(settings.database.url)}).")
    return 0


CONFIG_HELP = "path to config.toml (default: $SHARED_WORLD_CONFIG, else ./config.toml)"


def _accept_config_after_the_subcommand(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand (at any depth) its own `--config`, so it works on either side.

    Its default is SUPPRESS: a subcommand without `--config` leaves the global value alone.
    """
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for subparser in action.choices.values():
            if not any("--config" in a.option_strings for a in subparser._actions):
                subparser.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
            _accept_config_after_the_subcommand(subparser)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv[1:]), run one command and return its exit code.

    A host mistake is one sentence on stderr (see the exit codes above); an unexpected error
    is one line too, its traceback in the log only with LOG_LEVEL=DEBUG.
    """
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `shared-world check | head -1`: the reader left, nothing to say
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        from world.logsafe import redact

        log.debug("unexpected failure", exc_info=exc)  # the traceback: DEBUG only
        detail = (redact(str(exc)).strip().splitlines() or ["no details"])[0]
        print(
            f"Shared World stopped on an unexpected error ({type(exc).__name__}: {detail}); "
            "run with LOG_LEVEL=DEBUG to see the traceback in the log.",
            file=sys.stderr,
        )
        return 1
    finally:
        remove_logging()  # in-process callers (tests) do not inherit our handler


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand, each with a description of what it does and its own `--config`."""
    parser = argparse.ArgumentParser(
        prog="shared-world",
        description="Shared World: one story world, minted together. Settings come from "
        "config.toml and the environment; secrets only from the environment.",
        epilog="Exit codes: 0 done, 1 a service failed or refused (or `check` found a "
        "problem), 2 fix the settings or the set-up first.",
    )
    parser.add_argument("--config", help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser(
        "run",
        help="run the Discord bot and the HTTP server",
        description="Run the Discord bot and the HTTP front door in one process until "
        "SIGTERM or Ctrl-C. Storage, the database and the HTTP port are checked before "
        "connecting to Discord.",
    )
    sub.add_parser(
        "serve",
        help="run only the HTTP server (no Discord, no token)",
        description="Run the world service and the HTTP front door (the world API, "
        "/health, /openapi.json, local assets) without Discord until SIGTERM or Ctrl-C, on "
        "[http] host and port (env HTTP_HOST, HTTP_PORT; 0 picks a free port). No "
        "DISCORD_TOKEN needed; storage, the database and the port are checked first.",
    )
    sub.add_parser(
        "check",
        help="check settings, database, storage, providers and the Discord token",
        description="Check the settings (and which file they came from), the database, "
        "storage, the providers and the Discord token, one line each, and print the bot's "
        "invite URL. Exits 1 if anything failed.",
    )
    db = sub.add_parser(
        "db",
        help="database schema",
        description="Manage the database schema.",
    )
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    db_sub.add_parser(
        "upgrade",
        help="apply every pending migration",
        description="Create the tables or bring them up to this version (run it after every "
        "upgrade; safe to run again).",
    )
    sync = sub.add_parser(
        "sync-commands",
        help="publish the slash commands to Discord",
        description="Publish the bot's slash commands to Discord: globally (Discord may take "
        "up to an hour) or, with --guild, to one server at once.",
    )
    sync.add_argument("--guild", type=int, help="sync to one server only (instant)")
    sandbox = sub.add_parser(
        "sandbox",
        help="try the bot in a browser: no Discord, no token, no keys",
        description="Run the real bot and WorldService inside SimCord's in-process Discord "
        "(a server, a #story channel, an admin and pretend members) on the free offline "
        "provider and a sandbox database, and serve the channel as a page on 127.0.0.1. "
        "Needs the extra: pip install -e '.[sandbox]'.",
    )
    from shared_world.sandbox import add_arguments as add_sandbox_arguments

    add_sandbox_arguments(sandbox)
    prerender = sub.add_parser(
        "prerender",
        help="mint every branch down to a depth with the host's key",
        description="Mint every branch of a world from the opening scene down to --depth "
        "with the host's own key (read from an environment variable, never printed), "
        "breadth-first, up to [generation] max_concurrent_jobs at once, under the same caps "
        "and provider limits as any mint. It first shows the branches still to make and "
        "their estimated cost and asks (--yes skips the question; without a terminal --yes "
        "is required), then shows progress with done, failed, remaining and the spend so "
        "far. Ctrl-C stops new claims and exits 130; running it again continues where it "
        "stopped (also after a crash) without paying twice for a branch. Exit 1 if some "
        "branches could not be made or the question was answered no.",
    )
    from shared_world.prerender import add_arguments as add_prerender_arguments

    add_prerender_arguments(prerender)
    _accept_config_after_the_subcommand(parser)
    return parser


def _main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    settings = _load(args.config)
    configure_logging(settings.log_level, command=args.command)

    if args.command == "db":
        return _db_upgrade(settings)
    if args.command == "check":
        from shared_world.check import run_checks

        return asyncio.run(run_checks(settings))
    if args.command == "run":
        from shared_world.runner import run

        return run(settings)
    if args.command == "serve":
        from shared_world.runner import run_http

        return run_http(settings)
    if args.command == "sandbox":
        from shared_world.sandbox import run_sandbox

        return run_sandbox(settings, args)
    if args.command == "prerender":
        from shared_world.prerender import run_prerender

        return run_prerender(settings, args)
    if args.command == "sync-commands":
        from shared_world.runner import sync_commands

        return asyncio.run(sync_commands(settings, args.guild))
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
