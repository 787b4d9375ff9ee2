"""Quoting what someone typed inside a refusal: short, printable and free of keys.

A refusal names the bad input so the member can see what was wrong, but never echoes it
whole: a 1 MB path, control characters, right-to-left marks or an API key typed into the
wrong field must not come back (invariants 3 and 7).
"""

from __future__ import annotations

from world import logsafe

QUOTE_CHARS = 24  # at most this many characters of the input are quoted
_SCAN = 256  # only the start of the input is looked at
ELLIPSIS = "…"


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """`value` as a short quotation: 'abc…'.

    Non-printable characters (controls, NUL, bidi and other format marks, lone surrogates,
    line separators) are dropped, key-shaped text and registered secrets are redacted, and
    at most `limit` characters are kept, with an ellipsis when anything was cut.
    """
    text = value if isinstance(value, str) else type(value).__name__
    head = "".join(ch for ch in text[:_SCAN] if ch.isprintable())
    head = logsafe.redact(head)
    cut = len(head) > limit or len(text) > _SCAN
    return "'" + head[:limit] + (ELLIPSIS if cut else "") + "'"
