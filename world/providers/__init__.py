"""Model providers behind one protocol (see base.py)."""

from __future__ import annotations

from pathlib import Path

from world.providers.base import Provider
from world.settings import ProviderSettings, WorldSettings

__all__ = ["build_provider"]


def build_provider(world: WorldSettings, providers: ProviderSettings, data_dir: Path) -> Provider:
    """The provider a world is configured to use.

    The offline provider keeps its job specs in `data_dir / "offline-jobs"` so a render can
    be resumed by job id after a restart.
    """
    name = world.provider
    if name == "offline":
        # Imported here so `world.providers.base` stays light (no PyAV/Pillow) for its users.
        from world.providers.offline import OfflineProvider

        return OfflineProvider(providers, Path(data_dir) / "offline-jobs")
    if name == "openrouter":
        from world.providers.openrouter import OpenRouterProvider

        return OpenRouterProvider(world, providers)
    if name == "openai":
        from world.providers.openai import OpenAIProvider

        return OpenAIProvider(world, providers)
    if name == "gemini":
        from world.providers.gemini import GeminiProvider

        return GeminiProvider(world, providers)
    raise ValueError(f"Unknown provider {name!r}; use openrouter, openai, gemini or offline.")
