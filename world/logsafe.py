"""Secrets never reach a log line.

A log-record factory redacts every registered secret (the keys the vault holds, the bot
token) and anything shaped like a provider key, in the message, its arguments and any
formatted exception, before a handler sees the record. This also covers discord.py's DEBUG
gateway dumps, which contain modal payloads. Keys in use by the WorldService (any caller's,
any shape) are held, refcounted, for as long as a call or a job uses them.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REDACTED = "[redacted]"
KEY_SHAPES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|gsk_[A-Za-z0-9]{16,}|r8_[A-Za-z0-9]{16,})"
)

# Modal submissions (and component payloads) carry what members typed in "value" fields;
# discord.py's DEBUG gateway log prints them before any key vault has seen the key.
COMPONENT_VALUE = re.compile(r"""(['"]value['"]\s*:\s*)(['"])(?:\\.|(?!\2).)*\2""")

MIN_SECRET_LENGTH = 6
MAX_MESSAGE_CHARS = 300
MAX_FRAMES = 8
MAX_CHAIN = 3

_lock = threading.Lock()
# Two owners of one registry: the bot's key vault registers a key while it holds it
# (register/forget, idempotent), and every holder of a credential in use (the WorldService,
# per call and per job) takes a counted hold. A text stays redacted while either has it.
_secrets: set[str] = set()
_holds: dict[str, int] = {}
_installed = False


def register_secret(secret: str) -> None:
    """Redact this exact text from every later log line (keys of 6+ characters)."""
    if secret and len(secret) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(secret)


def forget_secret(secret: str) -> None:
    """Undo `register_secret`; holds taken with `hold_secret` stay in force."""
    with _lock:
        _secrets.discard(secret)


def hold_secret(secret: str | None) -> None:
    """Redact `secret` until every hold on it is released (refcounted; see release_secret)."""
    if secret and len(secret) >= MIN_SECRET_LENGTH:
        with _lock:
            _holds[secret] = _holds.get(secret, 0) + 1


def release_secret(secret: str | None) -> None:
    """Release one hold; a secret still registered or held by someone else stays redacted."""
    if secret and len(secret) >= MIN_SECRET_LENGTH:
        with _lock:
            left = _holds.get(secret, 0) - 1
            if left > 0:
                _holds[secret] = left
            else:
                _holds.pop(secret, None)


@contextlib.contextmanager
def holding(secret: str | None) -> Iterator[None]:
    """`hold_secret` for the duration of a block."""
    hold_secret(secret)
    try:
        yield
    finally:
        release_secret(secret)


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets | _holds.keys(), key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "custom_id" in text:
        text = COMPONENT_VALUE.sub(lambda m: m.group(1) + m.group(2) + REDACTED + m.group(2), text)
    return KEY_SHAPES.sub(REDACTED, text)


def describe_exception(exc: BaseException, *secrets: str | None) -> str:
    """One log-safe line for an unexpected exception: no traceback text, no secret.

    `Type: redacted message [at file:line in function <- ...]`, for the exception and up to
    MAX_CHAIN of its causes. Messages lose every registered or held secret, every key shape
    and each of `secrets` (the caller's own key, redacted even if nothing registered it), and
    are cut to MAX_MESSAGE_CHARS; the frames (innermost first) say where it was raised.
    """
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) <= MAX_CHAIN:
        seen.add(id(current))
        try:
            message = str(current)
        except Exception:
            message = "<unprintable message>"
        for secret in sorted((s for s in secrets if s), key=len, reverse=True):
            if len(secret) >= MIN_SECRET_LENGTH:
                message = message.replace(secret, REDACTED)
        message = redact(message)
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + "…"
        frames = traceback.extract_tb(current.__traceback__)[-MAX_FRAMES:]
        where = " <- ".join(
            f"{_short(f.filename)}:{f.lineno} in {f.name}" for f in reversed(frames)
        )
        text = f"{type(current).__name__}: {message}" if message else type(current).__name__
        parts.append(f"{text} [at {where}]" if where else text)
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__suppress_context__:
            current = None
        else:
            current = current.__context__
    return "; caused by ".join(parts)


def _short(filename: str) -> str:
    """A frame's file relative to the working directory, else its last two parts."""
    path = Path(filename)
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return "/".join(path.parts[-2:])


def install_redaction() -> None:
    """Idempotent: wrap the current log-record factory with redaction."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None
        return record

    logging.setLogRecordFactory(factory)
