"""Upstream failures as ProviderErrors: one public-safe sentence per failure code.

A provider's raw error text is never shown: it can carry a masked key, billing details or the
flagged prompt. Each provider maps its HTTP statuses and error codes through a table here.
"""

from __future__ import annotations

from collections.abc import Mapping

from world.providers.base import ProviderError

SENTENCES: Mapping[str, str] = {
    "invalid_key": "The provider did not accept that key.",
    "quota": "That key has run out of credit or quota; top it up and try again.",
    "no_video_access": "That is a free-tier key, which cannot make videos; use a key with credit.",
    "rate_limited": "The provider is rate-limiting that key right now; try again in a minute.",
    "permission": "That key is not allowed to use this world's models.",
    "blocked": "The provider's content filter refused this scene.",
    "config": "The provider refused this world's video settings; an admin should run "
    "`shared-world check`.",
    "timeout": "The provider did not answer in time; try again soon.",
    "unavailable": "The provider is unavailable right now; try again soon.",
    "not_found": "The provider no longer has that render job; a retry starts a new one.",
    "expired": "The provider dropped the render before it finished; it can be retried.",
    "render_failed": "The provider could not finish the render; it can be retried.",
    "bad_output": "The story planner returned an unusable scene; it can be retried.",
    "provider_error": "The provider answered with something unexpected; it can be retried.",
}

# A create that failed this way may or may not have started a paid job upstream.
UNKNOWN_OUTCOME = (
    "The provider did not confirm the render, so it was not sent again; a retry first "
    "checks whether it started."
)

_FINAL = frozenset({"invalid_key", "quota", "no_video_access", "permission", "blocked", "config"})


def provider_error(code: str, message: str | None = None) -> ProviderError:
    """The ProviderError for `code`, with its standard sentence unless one is given."""
    return ProviderError(
        code,
        message or SENTENCES.get(code, SENTENCES["provider_error"]),
        retryable=code not in _FINAL,
    )


def unknown_outcome(code: str) -> ProviderError:
    """A paid create that may have started a job although it did not say so."""
    return ProviderError(code, UNKNOWN_OUTCOME, retryable=True, outcome_unknown=True)


def code_for_status(status: int, table: Mapping[int, str]) -> str:
    """A failure code from an HTTP status through a provider's table (5xx: unavailable)."""
    if status in table:
        return table[status]
    if status >= 500:
        return "unavailable"
    return "provider_error"


def looks_like_moderation(text: str | None) -> bool:
    """Whether a failed job's error string is a content-policy refusal."""
    lowered = (text or "").lower()
    return any(
        word in lowered for word in ("content policy", "moderation", "safety", "flagged", "blocked")
    )
