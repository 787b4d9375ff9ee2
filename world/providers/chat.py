"""Planner and chronicler over OpenAI-compatible chat completions, through the official SDK.

One root `AsyncOpenAI` client per provider holds the connection pool; each call runs on a copy
carrying the contributor's key (`with_options`), which shares that pool and is never stored.
The SDK's own retries are off: a planner reply that is invalid, truncated or lost to a
transient error is asked for once more, then the branch fails with a plain sentence.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import openai

from world import prompts
from world.providers.base import Plan, PlanRequest, ProviderError, SummaryRequest
from world.providers.errors import code_for_status, provider_error
from world.types import Credentials

log = logging.getLogger(__name__)

ATTEMPTS = 2
_TRANSIENT = frozenset({"timeout", "unavailable", "bad_output", "provider_error"})


def root_client(
    base_url: str, timeout_seconds: float, headers: Mapping[str, str] | None = None
) -> openai.AsyncOpenAI:
    """The one pooled client of a provider; calls run on per-key copies (`with_options`)."""
    return openai.AsyncOpenAI(
        api_key="unused",  # every call carries the contributor's key instead
        base_url=base_url.rstrip("/"),
        max_retries=0,  # a paid call is never re-sent behind our back
        timeout=timeout_seconds,
        default_headers=dict(headers or {}),
    )


def require_key(credentials: Credentials | None) -> str:
    if credentials is None or not credentials.api_key.strip():
        raise provider_error("invalid_key", "This world needs an API key to make new scenes.")
    return credentials.api_key.strip()


def map_sdk_error(exc: Exception, status_table: Mapping[int, str]) -> ProviderError:
    """An openai SDK exception as a ProviderError; the upstream text is never kept."""
    if isinstance(exc, openai.APITimeoutError):
        return provider_error("timeout")
    if isinstance(exc, openai.APIConnectionError):
        return provider_error("unavailable")
    if isinstance(exc, openai.APIStatusError):
        code = getattr(exc, "code", None)
        if code == "insufficient_quota":
            return provider_error("quota")
        if code in {"moderation_blocked", "sentinel_block", "content_policy_violation"}:
            return provider_error("blocked")
        if code == "invalid_api_key":
            return provider_error("invalid_key")
        return provider_error(code_for_status(exc.status_code, status_table))
    return provider_error("provider_error")


class ChatModels:
    """Plans scenes and writes the world-state summary with chat completions."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        status_table: Mapping[int, str],
        extra_body: Mapping[str, Any] | None = None,
        provider_name: str,
    ) -> None:
        self.client = client
        self.status_table = status_table
        self.extra_body = dict(extra_body or {})
        self.provider_name = provider_name

    def for_key(self, credentials: Credentials | None) -> openai.AsyncOpenAI:
        return self.client.with_options(api_key=require_key(credentials))

    async def plan(self, request: PlanRequest, credentials: Credentials | None) -> Plan:
        client = self.for_key(credentials)
        messages = [
            {"role": "system", "content": prompts.planner_instructions(request)},
            {"role": "user", "content": prompts.planner_input(request)},
        ]
        response_format = {
            "type": "json_schema",
            "json_schema": {
                "name": prompts.PLAN_SCHEMA_NAME,
                "strict": True,
                "schema": prompts.PLAN_SCHEMA,
            },
        }
        last: ProviderError | None = None
        for attempt in range(1, ATTEMPTS + 1):
            try:
                text = await self._complete(
                    client, request.model, messages, response_format=response_format
                )
                return prompts.validate_plan(prompts.parse_plan(text))
            except ProviderError as exc:
                last = exc
                log.warning(
                    "%s planner attempt %d failed world=%s path=%r code=%s",
                    self.provider_name,
                    attempt,
                    request.world_id,
                    request.path,
                    exc.code,
                )
                if exc.code not in _TRANSIENT:
                    raise
        assert last is not None
        raise last

    async def summarise(self, request: SummaryRequest, credentials: Credentials | None) -> str:
        client = self.for_key(credentials)
        messages = [
            {"role": "system", "content": prompts.chronicler_instructions()},
            {"role": "user", "content": prompts.chronicler_input(request)},
        ]
        return prompts.parse_summary(await self._complete(client, request.model, messages))

    async def _complete(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        messages: list[dict[str, str]],
        *,
        response_format: dict[str, Any] | None = None,
    ) -> str | None:
        kwargs: dict[str, Any] = {"model": model, "messages": messages}
        if response_format is not None:
            kwargs["response_format"] = response_format
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body
        try:
            completion = await client.chat.completions.create(**kwargs)
        except openai.OpenAIError as exc:
            raise map_sdk_error(exc, self.status_table) from None
        if not completion.choices:
            raise provider_error("bad_output")
        choice = completion.choices[0]
        if choice.finish_reason == "length" or getattr(choice.message, "refusal", None):
            raise provider_error("bad_output")
        return choice.message.content
