"""`shared-world prerender`: a host mints every branch of a world down to a depth, with its key.

Owns the command's whole run: checking what the host asked for (the world, the depth, the key
variable) before anything is started, counting the branches still to make and their estimated
cost, the confirmation, the breadth-first walk that claims up to `[generation]
max_concurrent_jobs` branches at once through `WorldService.claim` (so the caps and provider
limits of every other mint apply), the progress display (a tqdm bar on a terminal, one line
per branch otherwise) and stopping on Ctrl-C.

Resuming is the engine's: a ready branch is never claimed again, a branch a stopped run left
pending keeps its plan and provider job (the next claim fetches that job instead of paying
for a new one), and a branch a killed process left queued comes back when its lease expires
(this command recycles expired leases while it waits, as the watchdog does). The key is read
from the environment, held in memory only and never printed or logged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import getpass
import logging
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from shared_world.mistakes import HostMistake, say
from world import paths
from world.quoting import quote
from world.settings import Settings
from world.types import ChildState, ClaimOutcome, Credentials, Status

if TYPE_CHECKING:  # imported when the command runs: `shared-world --help` stays quick
    from world.service import WorldService

log = logging.getLogger(__name__)

# The variable the host's key is read from when --key-env is not given, per provider.
DEFAULT_KEY_ENV = {
    "openrouter": "OPENROUTER_API_KEY",
    "openai": "OPENAI_API_KEY",
    "gemini": "GEMINI_API_KEY",
}
# Claims of one branch in one run (a branch given back by a lease or a stop is claimed again).
MAX_CLAIMS_PER_BRANCH = 4
# While waiting on a branch another (perhaps killed) process holds, expired leases are looked
# for this often.
RECYCLE_EVERY_SECONDS = 1.0
# Refusals that mean "not now, while your other mints run" rather than "never".
CAP_REASONS = frozenset({"cap", "caps", "member_cap", "server_cap", "concurrent_cap"})
TITLE_CHARS = 60
RESUME_HINT = (
    "run the same command again to continue (ready branches are not made or paid for again)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `shared-world prerender`."""
    parser.add_argument("--world", required=True, metavar="W", help="the world's id")
    parser.add_argument(
        "--depth",
        required=True,
        type=int,
        metavar="N",
        help="make every branch down to this depth (1 = the opening scene and its 3 choices)",
    )
    parser.add_argument(
        "--key-env",
        metavar="VAR",
        help="environment variable holding the host's API key (default per provider: "
        + ", ".join(f"{p} {v}" for p, v in DEFAULT_KEY_ENV.items())
        + "; the offline provider needs none)",
    )
    parser.add_argument("--yes", action="store_true", help="do not ask before paying")


def subtree_size(depth: int, max_depth: int) -> int:
    """Branches in a full subtree whose top is at `depth`, down to `max_depth` (3 choices)."""
    levels = max_depth - depth + 1
    if levels <= 0:
        return 0
    per = paths.CHOICES_PER_SCENE
    return (per**levels - 1) // (per - 1)


@dataclass
class Tally:
    """What the run has done so far; `remaining` counts what can still be made."""

    total: int
    done: int = 0
    failed: int = 0
    unreachable: int = 0  # below a failed branch: cannot be made this run
    estimated_usd: float = 0.0
    actual_usd: float = 0.0
    actual_known: bool = False

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.done - self.failed - self.unreachable)

    def spend(self) -> str:
        text = f"~${self.estimated_usd:.2f}"
        if self.actual_known:
            text += f" (reported ${self.actual_usd:.2f})"
        return text

    def summary(self) -> str:
        return (
            f"done {self.done}, failed {self.failed}, remaining {self.remaining}, "
            f"spent {self.spend()}"
        )


class Result(enum.Enum):
    MADE = "made"  # ready now
    FAILED = "failed"
    DEFERRED = "deferred"  # refused by a concurrency cap while other mints of ours run
    STOPPED = "stopped"


@dataclass(frozen=True)
class Outcome:
    path: str
    result: Result
    paid_here: bool = False
    reason: str | None = None
    message: str | None = None


class Display:
    """A tqdm bar on a terminal; one plain line per branch otherwise."""

    def __init__(self, tally: Tally, out: IO[str], tty: bool) -> None:
        self._tally = tally
        self._out = out
        self._bar: Any = None
        if tty:
            from tqdm import tqdm

            self._bar = tqdm(total=tally.total, unit="branch", file=out, dynamic_ncols=True)
            self._refresh()

    def _refresh(self) -> None:
        if self._bar is not None:
            t = self._tally
            self._bar.n = t.done + t.failed + t.unreachable
            self._bar.set_postfix_str(
                f"done {t.done} failed {t.failed} remaining {t.remaining} spent {t.spend()}"
            )

    def line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self._out)
        else:
            print(text, file=self._out, flush=True)

    def started(self, path: str) -> None:
        if self._bar is None:
            self.line(f"started {_name(path)}")

    def finished(self, text: str) -> None:
        if self._bar is not None:
            self._refresh()
            if not text.startswith("ready"):
                self._bar.write(text, file=self._out)
        else:
            self.line(f"{text} ({self._tally.summary()})")

    def close(self) -> None:
        if self._bar is not None:
            self._refresh()
            self._bar.close()


def _is_terminal(out: IO[str]) -> bool:
    """A terminal with a size (tqdm hides its bar on one that reports 0 rows)."""
    try:
        return out.isatty() and os.get_terminal_size(out.fileno()).lines > 0
    except (OSError, ValueError, AttributeError):
        return False


def _branches(count: int) -> str:
    return f"{count} branch" if count == 1 else f"{count} branches"


def _name(path: str) -> str:
    return "the opening scene" if path == "" else f"branch {path}"


def host_identity() -> str:
    """Who pays when the host prerenders (hashed by the claim like any member's id)."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment
        user = str(os.getuid()) if hasattr(os, "getuid") else "host"
    return f"host:{user}"


def check_request(settings: Settings, args: argparse.Namespace) -> Credentials | None:
    """The key to pay with, or HostMistake (exit 2) for a bad world, depth or key variable."""
    world = settings.world(args.world)
    if world is None:
        known = ", ".join(quote(w.id) for w in settings.worlds)
        raise HostMistake(f"There is no world called {quote(args.world)}; known: {known}.", 2)
    max_depth = settings.generation.max_depth
    if not 1 <= args.depth <= max_depth:
        raise HostMistake(
            f"--depth {args.depth} is out of range: use 1 to {max_depth} ([generation] max_depth).",
            2,
        )
    variable = args.key_env or DEFAULT_KEY_ENV.get(world.provider)
    if world.provider == "offline" and not args.key_env:
        return None
    if not variable:
        raise HostMistake("Say which environment variable holds the key: --key-env VAR.", 2)
    key = os.environ.get(variable, "").strip()
    if not key:
        if world.provider == "offline":
            return None
        raise HostMistake(
            f"{variable} is not set: export {variable}=<your {world.provider} API key> "
            "(or name another variable with --key-env).",
            2,
        )
    return Credentials(key)


def run_prerender(settings: Settings, args: argparse.Namespace) -> int:
    """`shared-world prerender`; returns the exit code."""
    try:
        credentials = check_request(settings, args)
    except HostMistake as mistake:
        say(mistake.sentence)
        return mistake.code
    return asyncio.run(
        prerender(
            settings,
            args.world,
            args.depth,
            credentials,
            yes=args.yes,
            stdin=sys.stdin,
            out=sys.stdout,
        )
    )


async def count_to_make(service: WorldService, world_id: str, depth: int) -> tuple[int, int]:
    """(branches still to make, branches already ready) from the opening scene to `depth`."""
    root = await service.view(world_id, "")
    if not root.is_ready:
        return subtree_size(0, depth), 0
    to_make, ready = 0, 0
    stack = [root]
    while stack:
        view = stack.pop()
        ready += 1
        if view.depth >= depth:
            continue
        for choice in view.choices:
            if choice.state is ChildState.READY:
                stack.append(await service.view(world_id, choice.path))
            else:
                to_make += subtree_size(paths.depth(choice.path), depth)
    return to_make, ready


async def _confirm(stdin: IO[str], out: IO[str]) -> bool:
    """Ask on the terminal; the answer is read by a daemon thread, so Ctrl-C still works."""
    print("Make them? [y/N] ", end="", file=out, flush=True)
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def read() -> None:
        try:
            line = stdin.readline()
        except (OSError, ValueError):
            line = ""
        with contextlib.suppress(RuntimeError):  # the loop is gone: the process is leaving
            loop.call_soon_threadsafe(lambda: answer.done() or answer.set_result(line))

    threading.Thread(target=read, name="prerender answer", daemon=True).start()
    return (await answer).strip().lower() in {"y", "yes"}


async def prerender(
    settings: Settings,
    world_id: str,
    depth: int,
    credentials: Credentials | None,
    *,
    yes: bool,
    stdin: IO[str],
    out: IO[str],
) -> int:
    """Count, confirm, then make every branch down to `depth`; the process exit code."""
    from shared_world import runner

    try:
        await runner.require_writable_storage(settings)
        service = await runner.start_service(settings)
    except HostMistake as mistake:
        say(mistake.sentence)
        return mistake.code
    try:
        return await _prerender(service, world_id, depth, credentials, yes, stdin, out)
    finally:
        await service.close()


async def _prerender(
    service: WorldService,
    world_id: str,
    depth: int,
    credentials: Credentials | None,
    yes: bool,
    stdin: IO[str],
    out: IO[str],
) -> int:
    from world.providers.base import ProviderError

    if service.provider(world_id).needs_key:
        try:
            await service.validate_key(world_id, credentials)
        except ProviderError as exc:
            if exc.code == "invalid_key":
                say(f"The provider did not accept the key: {exc.public_message}")
            else:
                say(f"The key could not be checked ({exc.code}): {exc.public_message}")
            return 1
    await service.refresh_estimates()
    to_make, ready = await count_to_make(service, world_id, depth)
    each = service.estimated_cost(world_id)
    print(
        f"World {quote(world_id)} to depth {depth}: {to_make} branches to make "
        f"({ready} already ready), estimated cost ${to_make * each:.2f} "
        f"({to_make} x ${each:.2f}).",
        file=out,
        flush=True,
    )
    if to_make == 0:
        print("Nothing to make.", file=out, flush=True)
        return 0
    if not yes:
        if not stdin.isatty():
            say("Nothing was made: confirm with --yes when stdin is not a terminal.")
            return 2
        if not await _confirm(stdin, out):
            print("Nothing was made.", file=out, flush=True)
            return 1
    tally = Tally(total=to_make)
    display = Display(tally, out, tty=_is_terminal(out))
    walk = Walk(service, world_id, depth, credentials, tally, display)
    try:
        stopped = await walk.run()
    finally:
        display.close()
    if walk.capped is not None:
        say(
            f"Stopped at a spending cap after {tally.done} of {tally.total} branches "
            f"({walk.capped.rstrip('.')}); run the same command again then to continue."
        )
        return 1
    if stopped:
        say(
            f"Stopped after {tally.done} of {tally.total} branches ({tally.spend()} spent); "
            f"{RESUME_HINT}."
        )
        return 130
    print(f"Finished: {tally.summary()}.", file=out, flush=True)
    if tally.failed:
        say(
            f"{_branches(tally.failed)} could not be made ({tally.unreachable} below "
            "not reached); see the lines above, fix the cause and run the command again."
        )
        return 1
    return 0


class Walk:
    """Breadth-first over the tree: a branch is claimed once its parent is ready."""

    def __init__(
        self,
        service: WorldService,
        world_id: str,
        depth: int,
        credentials: Credentials | None,
        tally: Tally,
        display: Display,
    ) -> None:
        self._service = service
        self._world_id = world_id
        self._depth = depth
        self._credentials = credentials
        self._tally = tally
        self._display = display
        self._contributor = host_identity()
        self._each = service.estimated_cost(world_id)
        self._stop = asyncio.Event()  # Ctrl-C or SIGTERM: the run ends early
        self._halt = asyncio.Event()  # no new claims; waiting branches return at once
        self._limit = max(1, service.settings.generation.max_concurrent_jobs)
        self._queue: deque[str] = deque()
        self._deferred: list[str] = []  # refused by a cap on mints at once, for now
        self.capped: str | None = None  # the refusal that ended the run at a spending cap

    async def run(self) -> bool:
        """Make everything reachable; True if a stop signal ended the run early."""
        loop = asyncio.get_running_loop()
        restore = _on_interrupt(loop, self._stop)
        try:
            await self._walk()
        finally:
            restore()
        return self._stop.is_set()

    async def _walk(self) -> None:
        await self._expand_or_queue("")
        running: dict[asyncio.Task[Outcome], str] = {}
        stop_wait = asyncio.ensure_future(self._stop.wait())
        try:
            while (self._queue or running) and not self._stop.is_set() and not self.capped:
                while self._queue and len(running) < self._limit:
                    path = self._queue.popleft()
                    self._display.started(path)
                    running[asyncio.ensure_future(self._make(path))] = path
                if not running:
                    break
                finished, _ = await asyncio.wait(
                    {*running, stop_wait}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in finished:
                    if task is stop_wait:
                        continue
                    running.pop(task)
                    await self._settle(task.result(), running=len(running))
        finally:
            # Not cancelled: a claim in the middle of its transaction finishes, and every
            # wait returns as soon as it sees the halt (the jobs themselves stop in close()).
            self._halt.set()
            stop_wait.cancel()
            await asyncio.gather(*running, stop_wait, return_exceptions=True)
            if self._stop.is_set():
                log.info("prerender stopping world=%s: no new claims", self._world_id)

    async def _expand_or_queue(self, path: str) -> None:
        """Queue `path` unless it is ready; a ready branch's children are looked at instead."""
        pending = deque([path])
        while pending:
            current = pending.popleft()
            view = await self._service.view(self._world_id, current)
            if not view.is_ready:
                self._queue.append(current)
                continue
            if view.depth >= self._depth:
                continue
            for choice in view.choices:
                if choice.state is ChildState.READY:
                    pending.append(choice.path)
                else:
                    self._queue.append(choice.path)

    async def _settle(self, outcome: Outcome, *, running: int) -> None:
        tally, path = self._tally, outcome.path
        if outcome.result is Result.STOPPED:
            return
        if outcome.result is Result.DEFERRED:
            if running:  # a cap on mints at once: claim it again when one of ours is done
                self._deferred.append(path)
                if running < self._limit:  # claim no more at once than the cap allows
                    self._limit = max(1, running)
                    self._display.line(
                        f"{self._limit} at once from now on: {outcome.message or 'a cap'}"
                    )
                return
            # Refused with nothing of ours running: a daily cap; every later claim would be too.
            self.capped = outcome.message or "a spending cap was reached."
            self._queue.appendleft(path)
            return
        if self._deferred:  # one of ours finished: a slot under the cap is free again
            self._queue.extendleft(reversed(self._deferred))
            self._deferred.clear()
        if outcome.result is Result.FAILED:
            tally.failed += 1
            below = subtree_size(paths.depth(path), self._depth) - 1
            tally.unreachable += below
            log.info(  # the display shows it; the log keeps it for LOG_LEVEL=DEBUG runs
                "prerender branch failed world=%s path=%s reason=%s",
                self._world_id,
                path,
                outcome.reason,
            )
            self._display.finished(
                f"failed {_name(path)}: {outcome.message or outcome.reason or 'no reason given'}"
            )
            return
        tally.done += 1
        if outcome.paid_here:
            estimated, actual = await self._render_cost(path)
            tally.estimated_usd += estimated
            if actual is not None:
                tally.actual_usd += actual
                tally.actual_known = True
        view = await self._service.view(self._world_id, path)
        title = f" {quote(view.title, TITLE_CHARS)}" if view.title else ""
        self._display.finished(f"ready {_name(path)}{title}")
        if view.depth < self._depth:
            for choice in view.choices:  # their states are on this view: no read for new ones
                if choice.state is ChildState.READY:
                    await self._expand_or_queue(choice.path)
                else:
                    self._queue.append(choice.path)

    async def _render_cost(self, path: str) -> tuple[float, float | None]:
        """The estimate and reported cost of the branch's finished render (0 if resumed)."""
        cost = await self._service.render_cost(self._world_id, path)
        return cost if cost is not None else (self._each, None)

    async def _make(self, path: str) -> Outcome:
        """Claim one branch and wait until it is ready, failed or given back (then again)."""
        service, world_id = self._service, self._world_id
        for _ in range(MAX_CLAIMS_PER_BRANCH):
            if self._halt.is_set():
                return Outcome(path, Result.STOPPED)
            result = await service.claim(world_id, path, self._credentials, self._contributor)
            if result.outcome is ClaimOutcome.READY:
                return Outcome(path, Result.MADE)
            if result.outcome is ClaimOutcome.REFUSED:
                if result.reason == "shutting_down":
                    return Outcome(path, Result.STOPPED)
                kind = Result.DEFERRED if result.reason in CAP_REASONS else Result.FAILED
                return Outcome(path, kind, reason=result.reason, message=result.message)
            mine = result.claimed_by_caller
            if not mine:
                lease = service.settings.generation.lease_seconds
                self._display.line(
                    f"waiting for {_name(path)}: another process is making it (a stopped "
                    f"run's claim is taken back within {lease} s)"
                )
            last = await self._wait(path, foreign=not mine)
            if last is None:
                return Outcome(path, Result.STOPPED)
            if last.status is Status.READY:
                return Outcome(path, Result.MADE, paid_here=mine)
            if last.status is Status.FAILED:
                return Outcome(
                    path, Result.FAILED, reason=last.failure_code, message=last.failure_detail
                )
            if last.failure_code not in (None, "timeout"):  # e.g. the key was rejected
                return Outcome(
                    path, Result.FAILED, reason=last.failure_code, message=last.failure_detail
                )
            # Given back (a lease expired, a stop, a cancel): claim it again.
        return Outcome(
            path,
            Result.FAILED,
            reason="gave_up",
            message=f"it was given back {MAX_CLAIMS_PER_BRANCH} times; try again later",
        )

    async def _wait(self, path: str, *, foreign: bool) -> Any:
        """The branch's terminal event (ready, failed or pending); None if halted first."""
        last = None
        subscription = self._service.subscribe(self._world_id, path)
        iterator = subscription.__aiter__()
        halt = asyncio.ensure_future(self._halt.wait())
        upcoming: asyncio.Future[Any] | None = None
        try:
            while True:
                if upcoming is None:
                    upcoming = asyncio.ensure_future(iterator.__anext__())
                done, _ = await asyncio.wait(
                    {upcoming, halt},
                    timeout=RECYCLE_EVERY_SECONDS,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if upcoming in done:
                    try:
                        last = upcoming.result()
                    except StopAsyncIteration:
                        return last
                    upcoming = None
                    if last.status is not Status.QUEUED:
                        return last
                elif halt in done:
                    return None
                elif foreign:  # held by a process that may be gone: its lease runs out
                    await self._service.recycle_expired_leases()
        finally:
            for future in (upcoming, halt):
                if future is not None:
                    future.cancel()
            await asyncio.gather(*(f for f in (upcoming, halt) if f), return_exceptions=True)
            await subscription.aclose()


def _on_interrupt(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Callable[[], None]:
    """The first SIGINT/SIGTERM stops new claims; a second Ctrl-C interrupts at once."""
    installed: list[signal.Signals] = []

    def first(signum: signal.Signals) -> None:
        stop.set()
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(signum)
        say("Stopping: no new branches; running ones reach a safe point (Ctrl-C again to quit).")

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, first, signum)
            installed.append(signum)

    def restore() -> None:
        for signum in installed:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)

    return restore
