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
    if name in ("openai", "gemini"):
        raise NotImplementedError(f"The {name} provider is not available yet; use offline.")
    raise ValueError(f"Unknown provider {name!r}; use offline, openai or gemini.")
