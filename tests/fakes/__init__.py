"""Loopback fakes of the paid provider APIs (OpenRouter, OpenAI-compatible) for tests.

Each fake is a real aiohttp server on 127.0.0.1 in the test's event loop, so the project's
real HTTP clients (the `openai` SDK over httpx2, aiohttp) talk to it unchanged:

    async with FakeOpenRouter(clip=mp4_bytes) as fake:
        fake.add_key("sk-test-member", polls_to_complete=3)
        ...  # point the provider at fake.base_url
        assert len(fake.creates) == 1

    async with FakeOpenAI(clip=mp4_bytes) as fake:
        fake.add_key("sk-test-member", outcome="failed")
"""

from __future__ import annotations

from tests.fakes.openai_server import FakeOpenAI, OpenAIKeyBehaviour
from tests.fakes.openrouter_server import FakeOpenRouter, KeyBehaviour

__all__ = ["FakeOpenAI", "FakeOpenRouter", "KeyBehaviour", "OpenAIKeyBehaviour"]
