"""The `shared-world` entry point: which settings `check` read, and a missing --config file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared_world.cli import main

STRIPPED = ("R2_", "DISCORD_", "WORLD_", "SHARED_WORLD_CONFIG")


@pytest.fixture
def clean_env(monkeypatch, tmp_path: Path) -> Path:
    """An empty working directory, no config file named, a fresh SQLite file, no secrets."""
    for name in list(os.environ):
        if name.startswith(STRIPPED):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _settings_line(out: str) -> str:
    first = out.splitlines()[0]
    assert first.startswith("ok    settings: "), out
    return first


def _named_file(line: str) -> Path:
    """The path in `ok    settings: read PATH; worlds: ...`."""
    assert "settings: read " in line, line
    return Path(line.split("settings: read ", 1)[1].split("; worlds: ", 1)[0])


def test_check_names_the_config_file_it_read(clean_env: Path, capsys):
    config = clean_env / "elsewhere" / "my-config.toml"
    config.parent.mkdir()
    config.write_text('log_level = "INFO"\n', encoding="utf-8")
    main(["--config", str(config), "check"])
    line = _settings_line(capsys.readouterr().out)
    assert _named_file(line).resolve() == config.resolve()
    assert line.endswith("; worlds: default (offline)")


def test_check_says_when_it_runs_on_built_in_defaults(clean_env: Path, capsys):
    main(["check"])
    line = _settings_line(capsys.readouterr().out)
    assert line == "ok    settings: built-in defaults (no config file); worlds: default (offline)"


def test_a_missing_config_file_is_one_sentence_and_exit_2(clean_env: Path, capsys):
    missing = clean_env / "missing.toml"
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(missing), "check"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert str(missing) in lines[0] and "Traceback" not in captured.err


def _subprocess(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED)}
    environment["DATABASE_URL"] = f"sqlite:///{cwd / 'cli.db'}"
    return subprocess.run(
        [sys.executable, "-m", "shared_world", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_python_m_shared_world_check_reads_the_config_in_the_working_directory(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('log_level = "INFO"\n', encoding="utf-8")
    result = _subprocess(tmp_path, "check")
    assert result.returncode == 1, result.stdout + result.stderr  # no DISCORD_TOKEN, no schema
    line = _settings_line(result.stdout)
    assert _named_file(line).resolve() == config.resolve()
    assert "FAIL  discord: DISCORD_TOKEN is not set" in result.stdout


def test_python_m_shared_world_refuses_a_missing_config_file(tmp_path):
    missing = tmp_path / "missing.toml"
    result = _subprocess(tmp_path, "--config", str(missing), "check")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0], result.stderr
