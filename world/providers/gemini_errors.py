"""Gemini's failures as ProviderErrors: one public-safe sentence per failure code.

google-genai 3.6.1 raises two unrelated error families (providers reference §2.3, §2.5):
`google.genai.errors.APIError` (`.code`, `.status`, `.message`, `.details`) from
`generate_content`, `models.*` and `files.*`, and `google.genai._interactions.APIError`
(`.status_code`, `.body["error"]`) from `interactions.*`. Network trouble surfaces as raw
aiohttp errors or builtin TimeoutError on the first family and as the interactions' own
`APIConnectionError` / `APITimeoutError` on the second. Both families are read the same way
here; the upstream text is looked at (for a reason or a safety word) but never kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import pydantic
from google.genai import _interactions as interactions_errors
from google.genai import errors as genai_errors

from world.providers.base import ProviderError
from world.providers.errors import looks_like_moderation, provider_error, unknown_outcome

# Where a call failed: the same status means different things at each step.
Step = Literal["key", "plan", "create", "poll", "download"]

# Omni has no free tier (§2.5): a key whose project has no billing is refused at the create
# with 400 FAILED_PRECONDITION. It is the `no_video_access` problem, told in Gemini's terms.
NO_BILLING = (
    "That Gemini key has no billing enabled, and Gemini Omni has no free tier; turn billing "
    "on for the key's Google project or use another key."
)
RETIRED_MODEL = (
    "Gemini does not know this world's model (it may have been retired); an admin should run "
    "`shared-world check`."
)
BUDGET_EXCEEDED = "Gemini stopped the render at its spending budget; it can be retried."

# Every exception an SDK call can raise for an upstream or network reason. Anything else is
# a bug of ours and is left to the pipeline's crash handler.
SDK_ERRORS: tuple[type[BaseException], ...] = (
    genai_errors.APIError,
    genai_errors.UnknownApiResponseError,
    interactions_errors.APIError,
    aiohttp.ClientError,
    TimeoutError,
    pydantic.ValidationError,
)


@dataclass(frozen=True)
class Upstream:
    """What an upstream error says, from either family (the message is only inspected)."""

    http_status: int | None
    status: str  # canonical status name, e.g. INVALID_ARGUMENT ("" when none)
    message: str
    reasons: frozenset[str]


def _error_object(body: Any) -> Mapping[str, Any]:
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if isinstance(body, Mapping):
        inner = body.get("error")
        return inner if isinstance(inner, Mapping) else body
    return {}


def _reasons(error: Mapping[str, Any]) -> frozenset[str]:
    details = error.get("details")
    if not isinstance(details, list):
        return frozenset()
    return frozenset(
        str(item["reason"]) for item in details if isinstance(item, Mapping) and item.get("reason")
    )


def read_upstream(exc: BaseException) -> Upstream | None:
    """The status, message and reasons of an HTTP error of either family; None otherwise."""
    if isinstance(exc, genai_errors.APIError):
        error = _error_object(exc.details)
        return Upstream(
            http_status=exc.code if isinstance(exc.code, int) else None,
            status=str(exc.status or error.get("status") or ""),
            message=str(exc.message or error.get("message") or ""),
            reasons=_reasons(error),
        )
    if isinstance(exc, interactions_errors.APIStatusError):
        error = _error_object(exc.body)
        code = error.get("code")
        status = error.get("status") or (code if isinstance(code, str) else "")
        return Upstream(
            http_status=exc.status_code,
            status=str(status).upper(),
            message=str(error.get("message") or ""),
            reasons=_reasons(error),
        )
    return None


def code_for(upstream: Upstream, step: Step) -> str:
    """The failure code of an upstream error at `step` (the tables of §2.3 and §2.5).

    `status` is Google's canonical status (INVALID_ARGUMENT, ...) or, from the Interactions
    API's own envelope, its string code upper-cased (AUTHENTICATION, SAFETY, ...).
    """
    status, http = upstream.status, upstream.http_status or 0
    message = upstream.message.lower()
    if (
        "API_KEY_INVALID" in upstream.reasons
        or "api key not valid" in message
        or http == 401
        or status in ("UNAUTHENTICATED", "AUTHENTICATION")
    ):
        return "invalid_key"
    if status == "SAFETY":
        return "blocked"
    if status == "FAILED_PRECONDITION":
        if step == "download":
            return "unavailable"  # the file is not ACTIVE yet: look again
        return "no_video_access"  # billing off, or no free tier where the key lives
    if http == 403 or status in ("PERMISSION_DENIED", "PERMISSION"):
        return "permission"
    if http == 429 or status in ("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "RATE_LIMIT_EXCEEDED"):
        if step in ("poll", "download"):
            return "rate_limited"  # a look-up hit a limit; the paid render goes on
        if status == "QUOTA_EXCEEDED" or "exceeded your current quota" in message:
            return "quota"
        return "rate_limited"
    if http == 408 or status == "DEADLINE_EXCEEDED":
        return "timeout"
    if http == 404 or status in ("NOT_FOUND", "MODEL_NOT_FOUND"):
        return "not_found" if step in ("poll", "download") else "config"
    if http >= 500 or status in ("INTERNAL", "UNAVAILABLE", "API_ERROR", "SERVICE_UNAVAILABLE"):
        return "unavailable"
    if http == 400 or status in ("INVALID_ARGUMENT", "INVALID_REQUEST"):
        # Gemini refuses an unsafe prompt with a plain 400 (§2.5); our own settings were
        # checked against the model before anything was sent.
        if looks_like_moderation(message) or (step == "create" and "prompt" in message):
            return "blocked"
        return "config"
    return "provider_error"


def from_exception(exc: BaseException, step: Step) -> ProviderError:
    """Any SDK exception as a ProviderError with its public sentence; no upstream text kept.

    At `create`, an answer that was lost (timeout, connection, 5xx) may hide an interaction
    that exists and is being paid for: that is an unknown outcome, never a plain failure.
    """
    upstream = read_upstream(exc)
    if upstream is not None:
        code = code_for(upstream, step)
    elif isinstance(exc, (interactions_errors.APITimeoutError, TimeoutError)):
        code = "timeout"
    elif isinstance(exc, (interactions_errors.APIConnectionError, aiohttp.ClientError)):
        code = "unavailable"
    else:  # a body the SDK could not read: the call reached Gemini and got nonsense back
        code = "provider_error"
    if step == "create" and (
        code in ("timeout", "unavailable")
        or (upstream is None and code == "provider_error")
        or (upstream is not None and (upstream.http_status or 0) >= 500)
    ):
        return unknown_outcome(code)
    if code == "no_video_access":
        return provider_error(code, NO_BILLING)
    if code == "config" and upstream is not None and upstream.http_status == 404:
        return provider_error(code, RETIRED_MODEL)
    return provider_error(code)


def failed_interaction(status: str, errors: Any) -> ProviderError:
    """A render that ended without a clip: `failed` (blocked or not), `cancelled`, ..."""
    if status == "budget_exceeded":
        return provider_error("render_failed", BUDGET_EXCEEDED)
    if status == "failed":
        texts = []
        for item in errors if isinstance(errors, list) else []:
            for name in ("code", "message"):
                value = item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)
                if value:
                    texts.append(str(value))
        # The safety shape is unverified (§2.5): any failure that names a filter is a block.
        if looks_like_moderation(" ".join(texts)) or any(
            word in " ".join(texts).lower() for word in ("unsafe", "prohibited", "policy")
        ):
            return provider_error("blocked")
    return provider_error("render_failed")
