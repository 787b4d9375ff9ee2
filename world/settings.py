"""Typed settings: `config.toml` plus environment overrides, validated once at start-up.

Secrets (the Discord token, storage credentials, the contributor salt) come only from the
environment. The original app's variable names keep their meaning; the `WORLD_*` variables
describe the default world.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

PROVIDERS = ("openrouter", "openai", "gemini", "offline")
DEFAULT_CONFIG_NAME = "config.toml"
DEFAULT_SALT = "shared-world-default-salt"

DEFAULT_BASE_PROMPT = (
    "A multiverse chase told in eight-second shots. The Courier, a wiry runner in a patched "
    "storm-coat with a satchel of glowing glass, races to recover the chronoglyph shards: "
    "splinters of a clock that once held every world apart. Each shard pulled from a world "
    "steadies it; each one lost widens the Cataclysm Rift, a violet wound in the sky that "
    "swallows streets, forests and starships alike. The story opens at the Nexus Gate, a ring "
    "of weathered stone floating above a sea of cloud, as it wakes and opens three unlabeled "
    "portals, each humming with a different world's light. Worlds mash together the feel of "
    "classic games and films without ever naming them: neon arcades, clockwork jungles, "
    "drowned cathedrals, orbital bazaars. Allies and rivals cross between worlds and react "
    "plausibly to what the Courier has done."
)

DEFAULT_GUIDANCE = (
    "Tone: adventurous and wondrous, suitable for all ages. Keep momentum: every scene changes "
    "the situation. Tie choices to the shard hunt and the Rift's stakes. Offer three clearly "
    "different intents (for example: bold, clever, cautious). No real people, brands, logos "
    "or named characters from existing works."
)


class SettingsError(Exception):
    """Raised with one line per problem; each line names the setting and the fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class WorldSettings:
    id: str
    base_prompt: str = DEFAULT_BASE_PROMPT
    guidance: str = DEFAULT_GUIDANCE
    provider: str = "offline"
    planner_model: str = "gpt-5-mini"
    video_model: str = "sora-2"
    summary_model: str | None = "gpt-5-mini"
    video_size: str = "1280x720"
    video_seconds: int = 8
    # Price of one second of video when the provider's catalogue gives none (or is out of
    # reach); shown before anyone pays.
    cost_per_second_usd: float = 0.10
    # Ask for a soundtrack where the video model can make one (it changes the price).
    generate_audio: bool = True
    # How long the video model usually takes for one clip: progress shows elapsed time
    # against it, because the providers report no percentage.
    typical_render_seconds: int = 90

    @property
    def estimated_cost_usd(self) -> float:
        """The fallback estimate from settings; providers with a price list know better."""
        return 0.0 if self.provider == "offline" else self.cost_per_second_usd * self.video_seconds

    @property
    def resolution(self) -> str:
        """`video_size` as a resolution name: 1280x720 -> "720p"."""
        width, height = (int(side) for side in self.video_size.split("x"))
        short = min(width, height)
        return "4k" if short >= 2160 else f"{short}p"

    @property
    def aspect_ratio(self) -> str:
        """`video_size` as an aspect ratio: 1280x720 -> "16:9"."""
        width, height = (int(side) for side in self.video_size.split("x"))
        divisor = math.gcd(width, height)
        return f"{width // divisor}:{height // divisor}"


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///./data/shared_world.db"
    # PostgreSQL connections per process: pool_size kept open, max_overflow more at peaks.
    # processes x (pool_size + max_overflow) must stay below the server's max_connections
    # (100 by default, 3 of them reserved): 8 processes x 10 = 80 fits.
    pool_size: int = 5
    max_overflow: int = 5
    # How long a unit of work waits for a free pooled connection before it fails.
    pool_timeout_seconds: float = 30.0
    # How long opening a connection keeps retrying while the server is saturated or starting.
    connect_patience_seconds: float = 30.0
    # How many bot processes share this database (only `shared-world check` reads it).
    processes: int = 1


@dataclass(frozen=True)
class StorageSettings:
    backend: str = "local"  # local | s3
    local_dir: str = "./data/assets"
    # Base URL under which local assets are reachable (e.g. the HTTP front door's /assets).
    local_public_base_url: str | None = None
    endpoint_url: str | None = None
    region: str = "auto"
    bucket: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    public_base_url: str | None = None
    signed_urls: bool = True
    signed_url_ttl: int = 3600
    upload_attempts: int = 6
    upload_backoff_seconds: float = 0.5


@dataclass(frozen=True)
class GenerationSettings:
    scene_timeout_seconds: int = 900
    watchdog_interval_seconds: int = 60
    lease_seconds: int = 120
    max_depth: int = 50
    shutdown_grace_seconds: float = 20.0
    contributor_salt: str = field(default=DEFAULT_SALT, repr=False)
    spool_dir: str = "./data/spool"
    max_concurrent_jobs: int = 16
    progress_write_interval_seconds: float = 2.0


@dataclass(frozen=True)
class ProviderSettings:
    openrouter_base_url: str = "https://openrouter.ai/api/v1"
    openai_base_url: str = "https://api.openai.com/v1"
    gemini_base_url: str | None = None
    gemini_api_version: str = "v1beta"
    request_timeout_seconds: float = 180.0
    # A paid create that has not answered after this long is given up (never re-sent).
    create_timeout_seconds: float = 60.0
    # Render polls start at poll_interval_seconds and back off to poll_max_interval_seconds.
    poll_interval_seconds: float = 5.0
    poll_max_interval_seconds: float = 30.0
    # How long a provider's model catalogue (prices, durations, frame support) is trusted.
    catalogue_ttl_seconds: float = 3600.0
    # Attribution OpenRouter shows on its rankings (headers HTTP-Referer, X-OpenRouter-Title).
    app_url: str | None = None
    app_title: str = "Shared World"
    # offline provider: simulated render time and the size of its title cards
    offline_render_seconds: float = 3.0
    offline_clip_seconds: int = 4
    offline_width: int = 320
    offline_height: int = 180


@dataclass(frozen=True)
class DiscordSettings:
    token: str | None = field(default=None, repr=False)
    default_world: str | None = None
    key_idle_minutes: int = 30
    default_vote_seconds: int = 60
    progress_edit_seconds: float = 5.0


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    enabled: bool = True


@dataclass(frozen=True)
class Settings:
    worlds: tuple[WorldSettings, ...]
    database: DatabaseSettings = DatabaseSettings()
    storage: StorageSettings = StorageSettings()
    generation: GenerationSettings = GenerationSettings()
    providers: ProviderSettings = ProviderSettings()
    discord: DiscordSettings = DiscordSettings()
    http: HttpSettings = HttpSettings()
    log_level: str = "INFO"

    @property
    def default_world(self) -> WorldSettings:
        wanted = self.discord.default_world
        for world in self.worlds:
            if world.id == wanted:
                return world
        return self.worlds[0]

    def world(self, world_id: str) -> WorldSettings | None:
        for world in self.worlds:
            if world.id == world_id:
                return world
        return None


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _section(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    return dict(value) if isinstance(value, Mapping) else {}


class _Loader:
    """Collects problems instead of failing on the first, so one run lists every fix."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def typed(self, where: str, value: Any, kind: type, default: Any) -> Any:
        if value is None:
            return default
        if kind is bool and isinstance(value, str):
            return _truthy(value)
        if kind is int and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                self.problems.append(f"{where}: expected a whole number, got {value!r}.")
                return default
        if kind is float and isinstance(value, (str, int)) and not isinstance(value, bool):
            try:
                return float(value)
            except ValueError:
                self.problems.append(f"{where}: expected a number, got {value!r}.")
                return default
        if kind is str and isinstance(value, str):
            return value
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return value
        self.problems.append(f"{where}: expected {kind.__name__}, got {value!r}.")
        return default

    def build(self, cls: type, where: str, values: Mapping[str, Any], **fixed: Any) -> Any:
        defaults = cls(**fixed) if fixed else cls()
        kwargs: dict[str, Any] = dict(fixed)
        known = {f.name: f for f in defaults.__dataclass_fields__.values()}
        for key, raw in values.items():
            if key in fixed:
                continue
            if key not in known:
                self.problems.append(
                    f"{where}.{key}: unknown setting; remove it or check its spelling."
                )
                continue
            default = getattr(defaults, key)
            kind = _field_kind(cls, key, default)
            kwargs[key] = self.typed(f"{where}.{key}", raw, kind, default)
        return replace(defaults, **kwargs)


def _field_kind(cls: type, name: str, default: Any) -> type:
    annotation = str(cls.__dataclass_fields__[name].type)
    for kind in (bool, int, float, str):
        if annotation.startswith(kind.__name__):
            return kind
    return type(default) if default is not None else str


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value if value is not None and value.strip() != "" else None


def _normalise_summary_model(value: str | None) -> str | None:
    if value is None:
        return None
    return None if value.strip().lower() in {"", "none", "off", "disabled"} else value.strip()


def load_settings(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Read `config.toml` (or `path`) and apply environment overrides; raise SettingsError."""
    env = os.environ if env is None else env
    loader = _Loader()
    data: dict[str, Any] = {}
    config_path = Path(path) if path else Path(env.get("SHARED_WORLD_CONFIG", DEFAULT_CONFIG_NAME))
    if config_path.exists():
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError([f"{config_path}: not valid TOML ({exc}); fix the file."]) from exc
    elif path is not None:
        raise SettingsError([f"{config_path}: file not found; pass an existing config file."])

    database = loader.build(DatabaseSettings, "database", _section(data, "database"))
    storage = loader.build(StorageSettings, "storage", _section(data, "storage"))
    generation = loader.build(GenerationSettings, "generation", _section(data, "generation"))
    providers = loader.build(ProviderSettings, "providers", _section(data, "providers"))
    discord_cfg = _section(data, "discord")
    for secret in ("token",):
        if secret in discord_cfg:
            loader.problems.append(
                f"discord.{secret}: secrets are read only from the environment; "
                "remove it from config.toml and set DISCORD_TOKEN."
            )
            discord_cfg.pop(secret)
    discord = loader.build(DiscordSettings, "discord", discord_cfg)
    http = loader.build(HttpSettings, "http", _section(data, "http"))
    for secret in ("access_key_id", "secret_access_key"):
        if secret in _section(data, "storage"):
            loader.problems.append(
                f"storage.{secret}: secrets are read only from the environment; remove it "
                "from config.toml and set R2_ACCESS_KEY_ID / R2_SECRET_ACCESS_KEY."
            )
    if "contributor_salt" in _section(data, "generation"):
        loader.problems.append(
            "generation.contributor_salt: secrets are read only from the environment; "
            "remove it from config.toml and set CONTRIBUTOR_SALT."
        )
    log_level = str(data.get("log_level", "INFO"))

    worlds_raw = data.get("worlds", [])
    if not isinstance(worlds_raw, list):
        loader.problems.append("worlds: expected a list of [[worlds]] tables.")
        worlds_raw = []
    worlds = [
        loader.build(
            WorldSettings,
            f"worlds[{i}]",
            {k: v for k, v in w.items() if k != "id"},
            id=str(w.get("id", "")),
        )
        for i, w in enumerate(worlds_raw)
        if isinstance(w, Mapping)
    ]
    if not worlds:
        worlds = [WorldSettings(id="default")]

    # Environment overrides: the original app's names first.
    default = worlds[0]
    world_env = {
        "base_prompt": _env(env, "WORLD_BASE_PROMPT"),
        "guidance": _env(env, "WORLD_PROMPT_GUIDANCE"),
        "planner_model": _env(env, "PLANNER_MODEL"),
        "video_model": _env(env, "SORA_MODEL") or _env(env, "VIDEO_MODEL"),
        "video_size": _env(env, "VIDEO_SIZE"),
        "provider": _env(env, "WORLD_PROVIDER") or _env(env, "VIDEO_PROVIDER"),
    }
    overrides: dict[str, Any] = {k: v for k, v in world_env.items() if v is not None}
    if "STATE_SUMMARY_MODEL" in env:
        overrides["summary_model"] = _normalise_summary_model(env["STATE_SUMMARY_MODEL"])
    if _env(env, "VIDEO_SECONDS"):
        overrides["video_seconds"] = loader.typed(
            "VIDEO_SECONDS", env["VIDEO_SECONDS"], int, default.video_seconds
        )
    if _env(env, "WORLD_ID"):
        overrides["id"] = env["WORLD_ID"].strip()
    if overrides:
        default = replace(default, **overrides)
    worlds[0] = replace(default, summary_model=_normalise_summary_model(default.summary_model))
    worlds[1:] = [
        replace(w, summary_model=_normalise_summary_model(w.summary_model)) for w in worlds[1:]
    ]

    if _env(env, "DATABASE_URL"):
        database = replace(database, url=env["DATABASE_URL"].strip())
    for name, key in (
        ("DATABASE_POOL_SIZE", "pool_size"),
        ("DATABASE_MAX_OVERFLOW", "max_overflow"),
        ("DATABASE_PROCESSES", "processes"),
    ):
        if _env(env, name):
            database = replace(
                database, **{key: loader.typed(name, env[name], int, getattr(database, key))}
            )

    r2_account = _env(env, "R2_ACCOUNT_ID")
    storage_env: dict[str, Any] = {}
    if r2_account:
        storage_env["endpoint_url"] = f"https://{r2_account}.r2.cloudflarestorage.com"
    if _env(env, "S3_ENDPOINT_URL"):
        storage_env["endpoint_url"] = env["S3_ENDPOINT_URL"].strip()
    for name, key in (
        ("R2_ACCESS_KEY_ID", "access_key_id"),
        ("R2_SECRET_ACCESS_KEY", "secret_access_key"),
        ("R2_BUCKET_NAME", "bucket"),
        ("R2_PUBLIC_BASE_URL", "public_base_url"),
    ):
        if _env(env, name):
            storage_env[key] = env[name].strip()
    if _env(env, "R2_SIGNED_URLS"):
        storage_env["signed_urls"] = _truthy(env["R2_SIGNED_URLS"])
    if _env(env, "R2_SIGNED_URL_TTL"):
        storage_env["signed_url_ttl"] = loader.typed(
            "R2_SIGNED_URL_TTL", env["R2_SIGNED_URL_TTL"], int, storage.signed_url_ttl
        )
    if storage_env.get("bucket") and storage_env.get("access_key_id"):
        storage_env.setdefault("backend", "s3")
    if _env(env, "STORAGE_BACKEND"):
        storage_env["backend"] = env["STORAGE_BACKEND"].strip()
    storage = replace(storage, **storage_env)

    generation_env: dict[str, Any] = {}
    for name, key in (
        ("SCENE_TIMEOUT_SECONDS", "scene_timeout_seconds"),
        ("WATCHDOG_INTERVAL_SECONDS", "watchdog_interval_seconds"),
    ):
        if _env(env, name):
            generation_env[key] = loader.typed(name, env[name], int, getattr(generation, key))
    if _env(env, "CONTRIBUTOR_SALT"):
        generation_env["contributor_salt"] = env["CONTRIBUTOR_SALT"]
    generation = replace(generation, **generation_env)

    providers_env: dict[str, Any] = {}
    if _env(env, "OPENAI_API_BASE") or _env(env, "OPENAI_BASE_URL"):
        providers_env["openai_base_url"] = (
            _env(env, "OPENAI_API_BASE") or env["OPENAI_BASE_URL"]
        ).strip()
    if _env(env, "OPENROUTER_BASE_URL"):
        providers_env["openrouter_base_url"] = env["OPENROUTER_BASE_URL"].strip()
    if _env(env, "GEMINI_BASE_URL"):
        providers_env["gemini_base_url"] = env["GEMINI_BASE_URL"].strip()
    providers = replace(providers, **providers_env)

    if _env(env, "DISCORD_TOKEN"):
        discord = replace(discord, token=env["DISCORD_TOKEN"].strip())
    if _env(env, "LOG_LEVEL"):
        log_level = env["LOG_LEVEL"].strip()

    settings = Settings(
        worlds=tuple(worlds),
        database=database,
        storage=storage,
        generation=generation,
        providers=providers,
        discord=discord,
        http=http,
        log_level=log_level.upper(),
    )
    loader.problems.extend(validate(settings))
    if loader.problems:
        raise SettingsError(loader.problems)
    return settings


_WORLD_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_VIDEO_SIZE = re.compile(r"^(\d{2,4})x(\d{2,4})$")


def validate(settings: Settings) -> list[str]:
    """Every problem with a loaded Settings, as one plain line each."""
    problems: list[str] = []
    seen: set[str] = set()
    for i, world in enumerate(settings.worlds):
        where = f"worlds[{i}]" if i else "worlds[0] (WORLD_ID)"
        if not _WORLD_ID.match(world.id):
            problems.append(
                f"{where}.id: {world.id!r} is not a valid world id; use 1-64 lowercase letters, "
                "digits, '-' or '_'."
            )
        if world.id in seen:
            problems.append(
                f"{where}.id: world {world.id!r} is defined twice; give each world its own id."
            )
        seen.add(world.id)
        if world.provider not in PROVIDERS:
            problems.append(
                f"{where}.provider: {world.provider!r} is not a provider; "
                f"use one of {', '.join(PROVIDERS)} (env WORLD_PROVIDER)."
            )
        if not world.base_prompt.strip():
            problems.append(
                f"{where}.base_prompt: empty; write the world's premise (env WORLD_BASE_PROMPT)."
            )
        if not _VIDEO_SIZE.match(world.video_size):
            problems.append(
                f"{where}.video_size: {world.video_size!r} is not WIDTHxHEIGHT; "
                "use e.g. 1280x720 (env VIDEO_SIZE)."
            )
        if not 1 <= world.video_seconds <= 20:
            problems.append(
                f"{where}.video_seconds: {world.video_seconds} is out of range; use 1 to 20."
            )
        if world.cost_per_second_usd < 0:
            problems.append(f"{where}.cost_per_second_usd: must not be negative.")
        if world.typical_render_seconds < 1:
            problems.append(f"{where}.typical_render_seconds: use at least 1.")
        if not world.planner_model.strip() or not world.video_model.strip():
            problems.append(f"{where}: planner_model and video_model must not be empty.")

    if settings.discord.default_world and settings.world(settings.discord.default_world) is None:
        problems.append(
            f"discord.default_world: {settings.discord.default_world!r} is not a defined world; "
            "use one of the [[worlds]] ids."
        )

    url = settings.database.url
    if not url.startswith(("sqlite", "postgresql", "postgres")):
        problems.append(
            "database.url (DATABASE_URL): use a sqlite:/// or postgresql:// URL, "
            f"not {url.split(':', 1)[0]!r}."
        )

    db = settings.database
    if db.pool_size < 1 or db.max_overflow < 0 or db.processes < 1:
        problems.append(
            "database: pool_size and processes must be at least 1 and max_overflow at least 0 "
            "(env DATABASE_POOL_SIZE, DATABASE_MAX_OVERFLOW, DATABASE_PROCESSES)."
        )
    if db.pool_timeout_seconds <= 0 or db.connect_patience_seconds < 0:
        problems.append(
            "database: pool_timeout_seconds must be above 0 and connect_patience_seconds "
            "not negative."
        )

    storage = settings.storage
    if storage.backend not in ("local", "s3"):
        problems.append(f"storage.backend: {storage.backend!r} is unknown; use 'local' or 's3'.")
    if storage.backend == "s3":
        for key, env_name in (
            ("bucket", "R2_BUCKET_NAME"),
            ("access_key_id", "R2_ACCESS_KEY_ID"),
            ("secret_access_key", "R2_SECRET_ACCESS_KEY"),
            ("endpoint_url", "R2_ACCOUNT_ID or S3_ENDPOINT_URL"),
        ):
            if not getattr(storage, key):
                problems.append(f"storage.{key}: required for the s3 backend; set {env_name}.")
    if not 1 <= storage.signed_url_ttl <= 604800:
        problems.append(
            f"storage.signed_url_ttl (R2_SIGNED_URL_TTL): {storage.signed_url_ttl} is out of "
            "range; use 1 to 604800 seconds (7 days)."
        )
    if storage.upload_attempts < 1:
        problems.append("storage.upload_attempts: use at least 1.")

    prov = settings.providers
    for name in ("openrouter_base_url", "openai_base_url"):
        value = getattr(prov, name)
        if not value.startswith(("http://", "https://")):
            problems.append(f"providers.{name}: {value!r} is not an http(s) URL.")
    if prov.create_timeout_seconds <= 0 or prov.request_timeout_seconds <= 0:
        problems.append(
            "providers: create_timeout_seconds and request_timeout_seconds must be above 0."
        )
    if not 0 < prov.poll_interval_seconds <= prov.poll_max_interval_seconds:
        problems.append(
            "providers.poll_interval_seconds: must be > 0 and at most poll_max_interval_seconds."
        )

    gen = settings.generation
    if gen.scene_timeout_seconds < 10:
        problems.append(
            "generation.scene_timeout_seconds (SCENE_TIMEOUT_SECONDS): use at least 10."
        )
    if gen.watchdog_interval_seconds < 1:
        problems.append(
            "generation.watchdog_interval_seconds (WATCHDOG_INTERVAL_SECONDS): use at least 1."
        )
    if gen.lease_seconds < 3:
        problems.append("generation.lease_seconds: use at least 3.")
    if not 1 <= gen.max_depth <= 500:
        problems.append("generation.max_depth: use 1 to 500.")
    if gen.max_concurrent_jobs < 1:
        problems.append("generation.max_concurrent_jobs: use at least 1.")
    if settings.log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        problems.append(
            f"log_level (LOG_LEVEL): {settings.log_level!r} is unknown; "
            "use DEBUG, INFO, WARNING or ERROR."
        )
    if not 10 <= settings.discord.default_vote_seconds <= 86400:
        problems.append("discord.default_vote_seconds: use 10 to 86400.")
    if settings.discord.key_idle_minutes < 1:
        problems.append("discord.key_idle_minutes: use at least 1.")
    return problems
