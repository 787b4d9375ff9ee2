"""Secrets never reach a log line.

A log-record factory redacts every registered secret (the keys the vault holds, the bot
token) and anything shaped like a provider key, in the message, its arguments and any
formatted exception, before a handler sees the record. This also covers discord.py's DEBUG
gateway dumps, which contain modal payloads.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from typing import Any

REDACTED = "[redacted]"
KEY_SHAPES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|gsk_[A-Za-z0-9]{16,}|r8_[A-Za-z0-9]{16,})"
)

# Modal submissions (and component payloads) carry what members typed in "value" fields;
# discord.py's DEBUG gateway log prints them before any key vault has seen the key.
COMPONENT_VALUE = re.compile(r"""(['"]value['"]\s*:\s*)(['"])(?:\\.|(?!\2).)*\2""")

_lock = threading.Lock()
_secrets: set[str] = set()
_installed = False


def register_secret(secret: str) -> None:
    """Redact this exact text from every later log line (keys of 6+ characters)."""
    if secret and len(secret) >= 6:
        with _lock:
            _secrets.add(secret)


def forget_secret(secret: str) -> None:
    with _lock:
        _secrets.discard(secret)


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "custom_id" in text:
        text = COMPONENT_VALUE.sub(lambda m: m.group(1) + m.group(2) + REDACTED + m.group(2), text)
    return KEY_SHAPES.sub(REDACTED, text)


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
