"""Benchmark: `shared-world sandbox` as a new host meets it, and its memory after 20 rounds.

1. Time to the first card: from starting `python -m shared_world sandbox` on a fresh data
   dir to the printed URL, and from there (page opened in Debian's headless chromium,
   `/adventure start` typed and sent as the admin) to the scene card whose clip has loaded.
   With `--cold` (the default) the subprocess gets an empty `PYTHONPYCACHEPREFIX`, so every
   module is compiled again as on a fresh venv's first run; the offline provider renders
   for the settings' `offline_render_seconds` (3 s in config.toml), as a host sees it.
2. Peak RSS after 20 rounds: a second sandbox on a fresh data dir, in pick mode (the first
   click decides) with `--render-seconds 0.5`, plays `--rounds` rounds, each member in turn
   clicking a choice; the sandbox process's RSS is sampled every 100 ms (psutil) and printed
   at the start, after each 5 rounds, and at its peak, with its child processes (SimCord's
   media worker) apart. Also the time per round and any click that had to be repeated.

    .venv/bin/python bench/sandbox.py [--rounds 20] [--no-cold]

Needs the test extra (playwright, simcord[preview]) and /usr/bin/chromium (.ci/run installs
it). The page helpers come from tests/shared_world/test_sandbox.py.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from _common import MiB, print_table

from tests.shared_world.test_sandbox import (
    SandboxProcess,
    assert_clean_stop,
    chromium_page,
    open_sandbox,
    run_command,
    view_as,
    wait_for_card,
    wait_ready,
)

PEOPLE = ("Ada (admin)", "Bea", "Cy", "Dee")


class TreeRss:
    """Peak RSS of one process (and, apart, of its children), sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.children_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> tuple[int, int]:
        try:
            own = self.process.memory_info().rss
            children = sum(
                child.memory_info().rss for child in self.process.children(recursive=True)
            )
        except psutil.Error:
            return 0, 0
        return own, children

    def _run(self) -> None:
        while not self._stop.is_set():
            own, children = self.now()
            self.peak = max(self.peak, own)
            self.children_peak = max(self.children_peak, children)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def start_in_pick_mode(page) -> None:
    """`/adventure start mode:pick`, typed as a person does."""
    wait_ready(page)
    composer = page.locator("#channel-composer-input")
    composer.click()
    composer.type("/adventure start")
    page.locator(".command-entry", has_text="/adventure start").first.wait_for(state="visible")
    page.keyboard.press("Enter")  # the command
    page.locator(".command-chip", has_text="/adventure start").wait_for(state="visible")
    page.keyboard.press("Enter")  # its first option: mode
    page.locator(".command-suggestion", has_text="pick").first.click()
    page.locator("#send-message").click()


def first_card(cold: bool, root: Path) -> tuple[float, float, float]:
    """Seconds: start -> URL, URL -> card shown, start -> card shown."""
    extra_env = {}
    if cold:
        extra_env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    old = {key: os.environ.get(key) for key in extra_env}
    os.environ.update(extra_env)
    sandbox = SandboxProcess(root / "first", log_path=root / "first.log")
    try:
        url = sandbox.start(timeout=180)
        with chromium_page() as page:
            open_sandbox(page, url)
            sent = time.monotonic()
            run_command(page, "/adventure start")
            wait_for_card(page, 1)
            shown = time.monotonic()
        code, stdout, stderr = sandbox.stop()
        assert_clean_stop(code, stdout, stderr)
    finally:
        sandbox.kill()
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return sandbox.url_seconds, shown - sent, shown - sandbox.started_at


def rounds(count: int, root: Path) -> tuple[list[list[object]], list[float], int]:
    sandbox = SandboxProcess(
        root / "rounds", "--render-seconds", "0.5", log_path=root / "rounds.log"
    )
    rows: list[list[object]] = []
    durations: list[float] = []
    repeats = 0
    try:
        url = sandbox.start(timeout=120)
        assert sandbox.proc is not None
        with TreeRss(sandbox.proc.pid) as rss, chromium_page() as page:
            own, children = rss.now()
            rows.append(["started", f"{own / MiB:.0f}", f"{children / MiB:.0f}"])
            open_sandbox(page, url)
            start_in_pick_mode(page)
            wait_for_card(page, 1)
            own, children = rss.now()
            rows.append(["first card", f"{own / MiB:.0f}", f"{children / MiB:.0f}"])
            for number in range(1, count + 1):
                began = time.monotonic()
                view_as(page, PEOPLE[number % len(PEOPLE)])
                repeats += click_until_next_card(page, number)
                durations.append(time.monotonic() - began)
                if number % 5 == 0:
                    own, children = rss.now()
                    rows.append(
                        [f"after {number} rounds", f"{own / MiB:.0f}", f"{children / MiB:.0f}"]
                    )
            rows.append(["peak", f"{rss.peak / MiB:.0f}", f"{rss.children_peak / MiB:.0f}"])
        code, stdout, stderr = sandbox.stop()
        assert_clean_stop(code, stdout, stderr)
    finally:
        sandbox.kill()
    return rows, durations, repeats


def click_until_next_card(page, number: int, attempts: int = 3) -> int:
    """Click choice 1 on the newest card until card `number + 1` arrives; returns repeats."""
    for attempt in range(attempts):
        page.locator("#channel-message-list button", has_text=re.compile(r"^1\. ")).last.click()
        try:
            wait_for_card(page, number + 1, timeout=20)
            return attempt
        except Exception:  # a click refused as stale (the page was republished): again
            wait_ready(page)
    raise AssertionError(f"round {number}: no new card after {attempts} clicks")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--cold", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sw-bench-sandbox-") as folder:
        root = Path(folder)
        to_url, to_card, total = first_card(args.cold, root)
        print(f"1. time to the first card ({'cold' if args.cold else 'warm'} bytecode)")
        print_table(
            ["step", "seconds"],
            [
                ["start -> URL printed", f"{to_url:.2f}"],
                ["/adventure start sent -> card with its clip loaded", f"{to_card:.2f}"],
                ["start -> card (incl. opening the page)", f"{total:.2f}"],
            ],
        )
        rows, durations, repeats = rounds(args.rounds, root)
        print(f"\n2. RSS of the sandbox over {args.rounds} rounds (pick mode, 0.5 s renders)")
        print_table(["when", "sandbox MiB", "children MiB"], rows)
        ordered = sorted(durations)
        print(
            f"rounds: {len(durations)}, seconds per round median "
            f"{ordered[len(ordered) // 2]:.2f}, max {ordered[-1]:.2f}; "
            f"clicks repeated: {repeats}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
