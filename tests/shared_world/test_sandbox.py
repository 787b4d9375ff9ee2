"""`shared-world sandbox` as a person uses it: a subprocess, its URL in headless Chromium.

The test starts the command, opens the printed URL in Debian's chromium (driven by
playwright with `executable_path`; no browser download), types `/adventure start` as the
admin, sees the scene card with a clip that plays, votes as two members, lets the round
close, sees the next card, saves a screenshot (also to docs/sandbox.png, the README's
picture, with SHARED_WORLD_UPDATE_SCREENSHOT=1), then sends Ctrl-C and expects exit code 0
and no traceback.

The helpers here (`SandboxProcess`, `start_adventure`, `vote_as`, ...) are reused by
bench/sandbox.py.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = PROJECT / "docs" / "sandbox.png"
# The README's picture is refreshed only when asked, so a test run leaves the checkout clean.
UPDATE_SCREENSHOT = os.environ.get("SHARED_WORLD_UPDATE_SCREENSHOT") == "1"
URL_LINE = re.compile(r"Sandbox running: open (http://127\.0\.0\.1:\d+/#\S+) in your browser")
NO_CHROMIUM = (
    f"Debian's chromium is not installed at {CHROMIUM}; .ci/run installs it "
    "(apt-get install -y --no-install-recommends chromium)."
)
NO_PLAYWRIGHT = "playwright is missing; install the test extra: pip install -e '.[test]'."

# JavaScript run in the page (as functions: the page's CSP forbids evaluating strings).
VIDEOS = "Array.from(document.querySelectorAll('#channel-message-list video'))"
IS_READY = "Boolean(window.simcordPreview && window.simcordPreview.ready)"


# -- the subprocess ----------------------------------------------------------------------


class SandboxProcess:
    """`python -m shared_world sandbox ...` with its stdout read for the URL."""

    def __init__(self, data_dir: Path, *extra: str, log_path: Path | None = None) -> None:
        self.data_dir = data_dir
        self.log_path = log_path or data_dir.parent / "sandbox-stderr.log"
        self.args = [
            sys.executable,
            "-m",
            "shared_world",
            "sandbox",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            *extra,
        ]
        self.proc: subprocess.Popen[str] | None = None
        self.stdout_lines: list[str] = []
        self.url: str | None = None
        self.started_at = 0.0
        self.url_seconds = 0.0

    def start(self, timeout: float = 60.0) -> str:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.started_at = time.monotonic()
        self._stderr = self.log_path.open("w")
        self.proc = subprocess.Popen(
            self.args,
            cwd=PROJECT,  # the project's config.toml is read: the sandbox must override it
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while self.url is None:
            line = self._readline(deadline)
            if line is None:
                raise AssertionError(f"the sandbox printed no URL:\n{self.describe()}")
            match = URL_LINE.search(line)
            if match:
                self.url = match.group(1)
        self.url_seconds = time.monotonic() - self.started_at
        return self.url

    def _readline(self, deadline: float) -> str | None:
        assert self.proc is not None and self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    return None  # the process closed its stdout: it ended
                self.stdout_lines.append(line)
                return line
            if self.proc.poll() is not None:
                return None
        return None

    def stop(self, timeout: float = 30.0) -> tuple[int, str, str]:
        """Ctrl-C; returns (exit code, all stdout, all stderr)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rest, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rest, _ = self.proc.communicate()
        self.stdout_lines.append(rest or "")
        self._stderr.close()
        return self.proc.returncode, "".join(self.stdout_lines), self.stderr()

    def stderr(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def describe(self) -> str:
        tail = "\n".join(self.stderr().splitlines()[-40:])
        return f"stdout:\n{''.join(self.stdout_lines)}\nstderr (last lines):\n{tail}"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# -- the browser -------------------------------------------------------------------------


@contextmanager
def chromium_page(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A page of Debian's headless chromium, driven by playwright."""
    if not Path(CHROMIUM).exists():
        pytest.fail(NO_CHROMIUM)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(NO_PLAYWRIGHT)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--autoplay-policy=no-user-gesture-required"],
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def wait_ready(page: Any, timeout: float = 30.0) -> None:
    page.wait_for_function(f"() => {IS_READY}", timeout=timeout * 1000)


def open_sandbox(page: Any, url: str) -> None:
    page.goto(url)
    page.locator("#channel-composer-input").wait_for(state="visible")
    wait_ready(page)


def run_command(page: Any, command: str) -> None:
    """Type a slash command in the composer, pick it, and send it."""
    wait_ready(page)
    composer = page.locator("#channel-composer-input")
    composer.click()
    composer.type(command)
    page.locator(".command-entry", has_text=command).first.wait_for(state="visible")
    page.keyboard.press("Enter")  # picks the suggestion: the composer holds the command
    page.locator(".command-chip", has_text=command).wait_for(state="visible")
    page.locator("#send-message").click()


def video_count(page: Any) -> int:
    return int(page.evaluate(f"() => {VIDEOS}.length"))


def wait_for_card(page: Any, number: int, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until the channel shows `number` scene cards whose clips have loaded, and play
    the newest; returns what its <video> reports."""
    page.wait_for_function(
        f"""() => {{
            const videos = {VIDEOS};
            return videos.length >= {number}
                && videos.slice(0, {number}).every(v => v.readyState >= 2 && v.duration > 0);
        }}""",
        timeout=timeout * 1000,
    )
    video = page.locator("#channel-message-list video").nth(number - 1)
    video.scroll_into_view_if_needed()
    return dict(
        page.evaluate(
            """async (video) => {
                video.muted = true;
                await video.play();
                const start = video.currentTime;
                await new Promise(resolve => setTimeout(resolve, 600));
                return {src: video.currentSrc, readyState: video.readyState,
                        duration: video.duration, played: video.currentTime - start,
                        width: video.videoWidth, height: video.videoHeight};
            }""",
            video.element_handle(),
        )
    )


def view_as(page: Any, name: str) -> None:
    wait_ready(page)
    page.select_option("#viewer-picker", label=name)
    page.wait_for_function(
        f"""() => {{
            const picker = document.querySelector('#viewer-picker');
            const chosen = picker.options[picker.selectedIndex];
            return Boolean(chosen && chosen.text === {name!r}) && {IS_READY};
        }}"""
    )


def choice_button(page: Any, number: int) -> Any:
    """The newest card's button for choice `number`."""
    return page.locator("#channel-message-list button", has_text=re.compile(rf"^{number}\. ")).last


def vote_as(page: Any, name: str, number: int) -> None:
    """Act as `name` and click choice `number` on the newest card; wait for the reply."""
    view_as(page, name)
    choice_button(page, number).click()
    page.get_by_text(re.compile(rf"You voted for {number}\.")).last.wait_for(state="visible")
    wait_ready(page)


def pick_as(page: Any, name: str, number: int) -> None:
    """Pick mode: the first click decides."""
    view_as(page, name)
    choice_button(page, number).click()
    wait_ready(page)


def assert_clean_stop(code: int, stdout: str, stderr: str, context: str = "") -> None:
    assert code == 0, f"the sandbox exited {code}\n{context}\n{stderr[-4000:]}"
    assert "Traceback" not in stderr, stderr[-6000:]
    assert stdout.strip().splitlines()[-1] == "Sandbox stopped.", stdout


def save_screenshot(page: Any, paths: Sequence[Path]) -> None:
    first = paths[0]
    first.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(first))
    for path in paths[1:]:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(first, path)


# -- the settings and the folder (no browser) ------------------------------------------


def test_sandbox_settings_keep_real_worlds_out(tmp_path: Path) -> None:
    from shared_world.sandbox import SandboxOptions, sandbox_settings
    from world.settings import load_settings

    real = load_settings(
        PROJECT / "config.toml",
        env={
            "DISCORD_TOKEN": "a-real-token",
            "DATABASE_URL": "postgresql://real@db/world",
            "R2_BUCKET_NAME": "real-bucket",
            "R2_ACCESS_KEY_ID": "id",
            "R2_SECRET_ACCESS_KEY": "secret",
            "R2_ACCOUNT_ID": "acct",
        },
    )
    assert real.default_world.provider != "offline" and real.storage.backend == "s3"
    folder = tmp_path / "box"
    settings = sandbox_settings(real, SandboxOptions(data_dir=folder, vote_seconds=3))
    assert {world.provider for world in settings.worlds} == {"offline"}
    assert settings.database.url == f"sqlite:///{folder.resolve() / 'sandbox.db'}"
    assert settings.storage.backend == "local" and settings.storage.local_public_base_url is None
    assert Path(settings.storage.local_dir).is_relative_to(folder.resolve())
    assert Path(settings.generation.spool_dir).is_relative_to(folder.resolve())
    assert settings.discord.token is None and settings.http.enabled is False
    assert settings.discord.default_vote_seconds == 10  # the shortest vote there is


def test_a_fresh_sandbox_empties_only_its_own_folder(tmp_path: Path) -> None:
    from shared_world.sandbox import MARKER, NotASandboxFolder, prepare_data_dir

    real = tmp_path / "data"
    (real / "assets").mkdir(parents=True)
    (real / "shared_world.db").write_text("a real world")
    with pytest.raises(NotASandboxFolder, match="new or empty folder"):
        prepare_data_dir(real, fresh=True)
    assert (real / "shared_world.db").exists() and (real / "assets").exists()

    box = tmp_path / "box"
    prepare_data_dir(box, fresh=True)
    assert (box / MARKER).is_file()
    (box / "sandbox.db").write_text("last run")
    (box / "assets").mkdir()
    prepare_data_dir(box, fresh=False)
    assert (box / "sandbox.db").exists()
    prepare_data_dir(box, fresh=True)
    assert not (box / "sandbox.db").exists() and not (box / "assets").exists()


# -- the browser test --------------------------------------------------------------------


def test_sandbox_plays_the_real_bot_in_chromium(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(NO_CHROMIUM)
    sandbox = SandboxProcess(tmp_path / "sandbox", "--vote-seconds", "10", "--render-seconds", "1")
    try:
        url = sandbox.start()
        with chromium_page(height=1200) as page:
            open_sandbox(page, url)
            assert "No messages in this channel." in page.inner_text("#channel-timeline")

            run_command(page, "/adventure start")
            first = wait_for_card(page, 1)
            assert first["duration"] > 0 and first["played"] > 0, first
            assert (first["width"], first["height"]) == (320, 180), first
            assert "Vote by clicking a choice" in page.inner_text("#channel-message-list")

            vote_as(page, "Bea", 1)
            vote_as(page, "Cy", 1)

            view_as(page, "Ada (admin)")
            second = wait_for_card(page, 2, timeout=45)  # the round closes after 10 s
            assert second["duration"] > 0 and second["played"] > 0, second
            text = page.inner_text("#channel-message-list")
            assert "Chosen: 1." in text and "2 votes" in text, text[-2000:]
            assert "Start › 1" in text
            choice_button(page, 3).scroll_into_view_if_needed()  # the whole card, for the README
            save_screenshot(
                page, [tmp_path / "sandbox.png", *([SCREENSHOT] if UPDATE_SCREENSHOT else [])]
            )
            assert (tmp_path / "sandbox.png").stat().st_size > 10_000
        code, stdout, stderr = sandbox.stop()
    finally:
        sandbox.kill()
    assert_clean_stop(code, stdout, stderr, sandbox.describe())
    assert (tmp_path / "sandbox" / "sandbox.db").exists()  # its own database, not ./data


def test_sandbox_practice_keys_open_the_key_form(tmp_path: Path) -> None:
    """`--practice-keys`: the opening scene waits for a key, entered in the key form."""
    sandbox = SandboxProcess(
        tmp_path / "sandbox", "--practice-keys", "--render-seconds", "0.5", "--verbose"
    )
    try:
        url = sandbox.start()
        with chromium_page() as page:
            open_sandbox(page, url)
            run_command(page, "/adventure start")
            mint = page.locator("#channel-message-list button", has_text="Mint this branch").last
            mint.click()
            form = page.locator(".modal-dialog")
            form.wait_for(state="visible")
            assert "Mint this branch" in form.inner_text()
            form.locator("input[name=api_key]").fill("practice-key-123")
            form.locator("button[type=submit]").click()
            card = wait_for_card(page, 1)
            assert card["duration"] > 0 and card["played"] > 0, card
            assert "practice-key-123" not in page.inner_text("body")  # never echoed
        code, stdout, stderr = sandbox.stop()
    finally:
        sandbox.kill()
    assert_clean_stop(code, stdout, stderr, sandbox.describe())
    assert "INFO" in stderr, "--verbose: the key form's log lines were written"
    assert "practice-key-123" not in stdout + stderr  # nor logged
    for written in (tmp_path / "sandbox").rglob("*"):  # nor stored
        if written.is_file():
            assert b"practice-key-123" not in written.read_bytes(), written
