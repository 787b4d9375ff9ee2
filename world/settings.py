"""Typed settings: `config.toml` plus environment overrides, validated once at start-up.

Where settings come from, in order: the built-in defaults of the dataclasses below; the config
file (`path`, else the file named by SHARED_WORLD_CONFIG, else `./config.toml` if it exists;
a named file that does not exist is refused); then the environment, through the one table
`ENV_OVERRIDES`. `Settings.config_path` says which file was read.

Mistakes are refused, never ignored: an unknown section or key, a value of the wrong type
(booleans are real TOML booleans in the file and 1/0, true/false, yes/no or on/off in the
environment), a value out of range. Every problem is one line naming the setting and the fix,
and all of them are raised together in one SettingsError.

Secrets (the Discord token, storage credentials, the contributor salt) come only from the
environment. The original app's variable names keep their meaning; the `WORLD_*` variables
describe the default world (the first `[[worlds]]` entry). Each limit is a module constant
(`MIN_VOTE_SECONDS`, `MAX_DEPTH_LIMIT`, ...) used by the validation.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

# Re-exported: `from world.settings import StorageSettings` keeps working.
from storage.settings import StorageSettings

PROVIDERS = ("openrouter", "openai", "gemini", "offline")
DEFAULT_CONFIG_NAME = "config.toml"
CONFIG_ENV = "SHARED_WORLD_CONFIG"
DEFAULT_SALT = "shared-world-default-salt"

# Limits, each defined once; the validation below and the bot's own checks use these.
MIN_VOTE_SECONDS = 10
MAX_VOTE_SECONDS = 86_400
MAX_DEPTH_LIMIT = 500
MIN_VIDEO_SECONDS = 1
MAX_VIDEO_SECONDS = 20
MAX_SIGNED_URL_TTL = 604_800  # 7 days: the longest an S3 / R2 presigned link may live
MIN_SCENE_TIMEOUT_SECONDS = 10
MIN_LEASE_SECONDS = 3
MAX_PORT = 65_535
MAX_FILM_SECONDS = 3 * 3600  # a film of a deep path: still one upload, still bounded work
MAX_CONCURRENT_MINTS_CAP = 1000
MAX_DAILY_USD_CAP = 1_000_000.0
MAX_RETENTION_DAYS = 3650  # how long a hidden clip may be kept for an unhide
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

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
    # A host's own Gemini key, only for `shared-world check` to look the configured models up
    # (env GEMINI_API_KEY_FOR_CHECK; never read from the file, never used to pay for scenes).
    gemini_check_api_key: str | None = field(default=None, repr=False)
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
    # offline provider: simulated render time and the size and length of its animated clips
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
class FilmSettings:
    # `/adventure film`: the longest film made; a longer path keeps its most recent scenes.
    max_seconds: int = 600
    max_clips: int = 60
    # Where clips are fetched to and joined, one folder per film, removed when it is stored
    # ("" = a "film" folder beside generation.spool_dir).
    spool_dir: str = ""


@dataclass(frozen=True)
class ModerationSettings:
    # A clip the admins hid is kept this many days (for /world unhide), then deleted from
    # the store by the periodic sweep; 0 deletes it at the next sweep.
    hidden_asset_retention_days: int = 7


@dataclass(frozen=True)
class LimitsSettings:
    """Fair spending: caps per member and per server (Discord); 0 means no cap.

    Concurrent caps count mints in progress; daily caps are estimated US dollars per UTC day
    (renders made today, at what the provider reported where it did, plus the estimates
    reserved by mints in progress)."""

    member_concurrent_mints: int = 0
    server_concurrent_mints: int = 0
    member_daily_usd: float = 0.0
    server_daily_usd: float = 0.0

    @property
    def enabled(self) -> bool:
        """Whether any cap is set (claims skip the spending check otherwise)."""
        return bool(
            self.member_concurrent_mints
            or self.server_concurrent_mints
            or self.member_daily_usd
            or self.server_daily_usd
        )


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    enabled: bool = True
    # Browser origins allowed to call the world API, comma-separated ("" = none; "*" = any).
    cors_origins: str = ""
    claims_per_minute_per_ip: int = 10  # POST claims and retries per client address
    max_body_bytes: int = 16384  # larger request bodies get 413

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip())


@dataclass(frozen=True)
class Settings:
    worlds: tuple[WorldSettings, ...]
    database: DatabaseSettings = DatabaseSettings()
    storage: StorageSettings = field(default_factory=StorageSettings)
    generation: GenerationSettings = GenerationSettings()
    providers: ProviderSettings = ProviderSettings()
    discord: DiscordSettings = DiscordSettings()
    http: HttpSettings = HttpSettings()
    film: FilmSettings = FilmSettings()
    limits: LimitsSettings = LimitsSettings()
    moderation: ModerationSettings = ModerationSettings()
    log_level: str = "INFO"
    # The config file that was read, as given; None when the built-in defaults were used.
    config_path: str | None = None

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


# -- reading values: one parser per kind, one problem line per bad value ---------------------

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class _Invalid(ValueError):
    """One bad value; its message is the problem line."""


def _to_bool(where: str, value: Any, from_env: bool) -> bool:
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if from_env and word in _TRUE_WORDS | _FALSE_WORDS:
        return word in _TRUE_WORDS
    if from_env:
        raise _Invalid(
            f"{where}: {value!r} is not a yes/no value; use 1/0, true/false, yes/no or on/off."
        )
    if word in _TRUE_WORDS | _FALSE_WORDS:
        raise _Invalid(f"{where}: got the string {value!r}; write true or false without quotes.")
    raise _Invalid(f"{where}: expected true or false, got {value!r}.")


def _to_int(where: str, value: Any, from_env: bool) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise _Invalid(f"{where}: expected a whole number, got {value!r}.") from None
    raise _Invalid(f"{where}: expected int, got {value!r}.")


def _to_float(where: str, value: Any, from_env: bool) -> float:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            raise _Invalid(f"{where}: expected a number, got {value!r}.") from None
    raise _Invalid(f"{where}: expected float, got {value!r}.")


def _to_str(where: str, value: Any, from_env: bool) -> str:
    if isinstance(value, str):
        return value
    raise _Invalid(f"{where}: expected str, got {value!r}.")


_PARSERS: dict[type, Callable[[str, Any, bool], Any]] = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    str: _to_str,
}


def _parse_into(
    target: dict[str, Any],
    key: str,
    where: str,
    value: Any,
    kind: type,
    problems: list[str],
    *,
    from_env: bool = False,
) -> None:
    """`target[key] = value` read as `kind`, or one more line in `problems`."""
    try:
        target[key] = _PARSERS[kind](where, value, from_env)
    except _Invalid as exc:
        problems.append(str(exc))


def _field_kind(cls: type, name: str) -> type:
    annotation = str(cls.__dataclass_fields__[name].type)
    for kind in (bool, int, float, str):
        if annotation.startswith(kind.__name__):
            return kind
    return str


def _summary_model(value: str | None) -> str | None:
    """The chronicler model, or None when it is turned off ("", "none", "off", "disabled")."""
    if value is None:
        return None
    return None if value.strip().lower() in {"", "none", "off", "disabled"} else value.strip()


# -- the config file ---------------------------------------------------------------------------

# The [sections] of config.toml and the settings they fill; [[worlds]] is read on its own.
SECTIONS: dict[str, type] = {
    "database": DatabaseSettings,
    "storage": StorageSettings,
    "generation": GenerationSettings,
    "providers": ProviderSettings,
    "discord": DiscordSettings,
    "http": HttpSettings,
    "film": FilmSettings,
    "limits": LimitsSettings,
    "moderation": ModerationSettings,
}
# Settings that sit at the top of config.toml, outside any section.
TOP_LEVEL_SETTINGS: dict[str, type] = {"log_level": str}
# Secrets are refused in the file; each is read only from these environment variables.
SECRETS_IN_ENV: dict[tuple[str, str], str] = {
    ("discord", "token"): "DISCORD_TOKEN",
    ("storage", "access_key_id"): "R2_ACCESS_KEY_ID / R2_SECRET_ACCESS_KEY",
    ("storage", "secret_access_key"): "R2_ACCESS_KEY_ID / R2_SECRET_ACCESS_KEY",
    ("generation", "contributor_salt"): "CONTRIBUTOR_SALT",
    ("providers", "gemini_check_api_key"): "GEMINI_API_KEY_FOR_CHECK",
}
_SECTION_NAMES = ", ".join((*SECTIONS, "worlds"))


def _config_file(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    """The file to read: `path`, SHARED_WORLD_CONFIG or ./config.toml; None for the defaults."""
    if path:
        chosen = Path(path)
        if not chosen.exists():
            raise SettingsError([f"{chosen}: file not found; pass an existing config file."])
        return chosen
    named = env.get(CONFIG_ENV, "")
    if named.strip():
        if not Path(named).exists():
            raise SettingsError(
                [
                    f"{CONFIG_ENV}={named}: file not found; point {CONFIG_ENV} at an existing "
                    "config file or unset it."
                ]
            )
        return Path(named)
    default = Path(DEFAULT_CONFIG_NAME)
    return default if default.exists() else None


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError([f"{file}: not valid TOML ({exc}); fix the file."]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(
            [f"{file}: cannot be read ({exc}); point at a readable UTF-8 config file."]
        ) from exc


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping) or (
        isinstance(value, list) and all(isinstance(item, Mapping) for item in value)
    )


def _unknown_top_level(data: Mapping[str, Any]) -> list[str]:
    """A line for every top-level name that is neither a section nor a top-level setting."""
    problems: list[str] = []
    for key, value in data.items():
        if key in SECTIONS or key == "worlds" or key in TOP_LEVEL_SETTINGS:
            continue
        if _is_table(value):
            problems.append(
                f"{key}: unknown section; remove it or check its spelling "
                f"(sections: {_SECTION_NAMES})."
            )
        else:
            problems.append(
                f"{key}: unknown setting; remove it or check its spelling "
                f"(top-level settings: {', '.join(TOP_LEVEL_SETTINGS)}; sections: "
                f"{_SECTION_NAMES})."
            )
    return problems


def _table(data: Mapping[str, Any], name: str, problems: list[str]) -> Mapping[str, Any]:
    value = data.get(name, {})
    if isinstance(value, Mapping):
        return value
    problems.append(
        f"{name}: expected a [{name}] section, got {value!r}; put its settings under a "
        f"[{name}] header."
    )
    return {}


def _build(
    cls: type, where: str, table: Mapping[str, Any], problems: list[str], **fixed: Any
) -> Any:
    """`cls` from one table of the file; unknown keys and bad values become problem lines."""
    known = {f.name for f in fields(cls)}
    values: dict[str, Any] = dict(fixed)
    for key, raw in table.items():
        if key in fixed:
            continue
        if key not in known:
            problems.append(f"{where}.{key}: unknown setting; remove it or check its spelling.")
            continue
        _parse_into(values, key, f"{where}.{key}", raw, _field_kind(cls, key), problems)
    return cls(**values)


def _read_section(data: Mapping[str, Any], name: str, problems: list[str]) -> Any:
    table = _table(data, name, problems)
    public: dict[str, Any] = {}
    for key, value in table.items():
        if (name, key) in SECRETS_IN_ENV:
            problems.append(
                f"{name}.{key}: secrets are read only from the environment; remove it from "
                f"config.toml and set {SECRETS_IN_ENV[name, key]}."
            )
        else:
            public[key] = value
    return _build(SECTIONS[name], name, public, problems)


def _read_worlds(data: Mapping[str, Any], problems: list[str]) -> list[WorldSettings]:
    tables = data.get("worlds", [])
    if not isinstance(tables, list):
        problems.append("worlds: expected a list of [[worlds]] tables.")
        tables = []
    worlds: list[WorldSettings] = []
    for i, table in enumerate(tables):
        if not isinstance(table, Mapping):
            problems.append(f"worlds[{i}]: expected a [[worlds]] table, got {table!r}.")
            continue
        world = _build(WorldSettings, f"worlds[{i}]", table, problems, id=str(table.get("id", "")))
        worlds.append(replace(world, summary_model=_summary_model(world.summary_model)))
    return worlds or [WorldSettings(id="default")]


def _read_file(
    data: Mapping[str, Any], problems: list[str]
) -> tuple[dict[str, Any], list[WorldSettings]]:
    """The file's sections and top-level settings (by Settings field name) and its worlds."""
    problems.extend(_unknown_top_level(data))
    parts: dict[str, Any] = {name: _read_section(data, name, problems) for name in SECTIONS}
    for key, kind in TOP_LEVEL_SETTINGS.items():
        if key in data:
            _parse_into(parts, key, key, data[key], kind, problems)
    return parts, _read_worlds(data, problems)


# -- the environment ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvOverride:
    """One setting the environment overrides, under one or more variable names."""

    names: tuple[str, ...]  # the first one set (and not blank) wins
    section: str  # "world" (the default world), a key of SECTIONS, or "top" (TOP_LEVEL_SETTINGS)
    key: str  # the field in that section
    kind: type = str
    strip: bool = True  # prose and the salt are taken exactly as given
    empty_counts: bool = False  # set but blank is a value too (STATE_SUMMARY_MODEL="")
    convert: Callable[[str], Any] | None = None  # replaces reading the value as `kind`
    # When none of `names` is set: the value implied by other variables, or None.
    derive: Callable[[Mapping[str, str]], str | None] | None = None

    def lookup(self, env: Mapping[str, str]) -> tuple[str, str] | None:
        """(variable name, raw value) when this setting is overridden, else None."""
        for name in self.names:
            value = env.get(name)
            if value is not None and (self.empty_counts or value.strip()):
                return name, value.strip() if self.strip else value
        derived = self.derive(env) if self.derive else None
        return None if derived is None else (self.names[0], derived)


def _endpoint_from_r2_account(env: Mapping[str, str]) -> str | None:
    """R2_ACCOUNT_ID=<id> means the endpoint https://<id>.r2.cloudflarestorage.com."""
    account = env.get("R2_ACCOUNT_ID", "").strip()
    return f"https://{account}.r2.cloudflarestorage.com" if account else None


def _backend_from_bucket_and_key(env: Mapping[str, str]) -> str | None:
    """R2_BUCKET_NAME together with R2_ACCESS_KEY_ID means the s3 backend."""
    both = env.get("R2_BUCKET_NAME", "").strip() and env.get("R2_ACCESS_KEY_ID", "").strip()
    return "s3" if both else None


ENV_OVERRIDES: tuple[EnvOverride, ...] = (
    # the default world: the original app's names first
    EnvOverride(("WORLD_ID",), "world", "id"),
    EnvOverride(("WORLD_BASE_PROMPT",), "world", "base_prompt", strip=False),
    EnvOverride(("WORLD_PROMPT_GUIDANCE",), "world", "guidance", strip=False),
    EnvOverride(("PLANNER_MODEL",), "world", "planner_model"),
    EnvOverride(("SORA_MODEL", "VIDEO_MODEL"), "world", "video_model"),
    EnvOverride(("VIDEO_SIZE",), "world", "video_size"),
    EnvOverride(("VIDEO_SECONDS",), "world", "video_seconds", kind=int),
    EnvOverride(("WORLD_PROVIDER", "VIDEO_PROVIDER"), "world", "provider"),
    EnvOverride(
        ("STATE_SUMMARY_MODEL",),
        "world",
        "summary_model",
        empty_counts=True,
        convert=_summary_model,
    ),
    # database
    EnvOverride(("DATABASE_URL",), "database", "url"),
    EnvOverride(("DATABASE_POOL_SIZE",), "database", "pool_size", kind=int),
    EnvOverride(("DATABASE_MAX_OVERFLOW",), "database", "max_overflow", kind=int),
    EnvOverride(("DATABASE_PROCESSES",), "database", "processes", kind=int),
    # storage: S3_ENDPOINT_URL wins over R2_ACCOUNT_ID; STORAGE_BACKEND over the implied s3
    EnvOverride(("S3_ENDPOINT_URL",), "storage", "endpoint_url", derive=_endpoint_from_r2_account),
    EnvOverride(("R2_ACCESS_KEY_ID",), "storage", "access_key_id"),
    EnvOverride(("R2_SECRET_ACCESS_KEY",), "storage", "secret_access_key"),
    EnvOverride(("R2_BUCKET_NAME",), "storage", "bucket"),
    EnvOverride(("R2_PUBLIC_BASE_URL",), "storage", "public_base_url"),
    EnvOverride(("R2_SIGNED_URLS",), "storage", "signed_urls", kind=bool),
    EnvOverride(("R2_SIGNED_URL_TTL",), "storage", "signed_url_ttl", kind=int),
    EnvOverride(("STORAGE_BACKEND",), "storage", "backend", derive=_backend_from_bucket_and_key),
    # generation
    EnvOverride(("SCENE_TIMEOUT_SECONDS",), "generation", "scene_timeout_seconds", kind=int),
    EnvOverride(
        ("WATCHDOG_INTERVAL_SECONDS",), "generation", "watchdog_interval_seconds", kind=int
    ),
    EnvOverride(("CONTRIBUTOR_SALT",), "generation", "contributor_salt", strip=False),
    # providers
    EnvOverride(("OPENAI_API_BASE", "OPENAI_BASE_URL"), "providers", "openai_base_url"),
    EnvOverride(("OPENROUTER_BASE_URL",), "providers", "openrouter_base_url"),
    EnvOverride(("GEMINI_BASE_URL",), "providers", "gemini_base_url"),
    EnvOverride(("GEMINI_API_VERSION",), "providers", "gemini_api_version"),
    EnvOverride(("GEMINI_API_KEY_FOR_CHECK",), "providers", "gemini_check_api_key"),
    # discord and the top level
    EnvOverride(("DISCORD_TOKEN",), "discord", "token"),
    EnvOverride(("LOG_LEVEL",), "top", "log_level"),
    # the HTTP front door
    EnvOverride(("HTTP_HOST",), "http", "host"),
    EnvOverride(("HTTP_PORT",), "http", "port", kind=int),
    # the film of a channel's path
    EnvOverride(("FILM_MAX_SECONDS",), "film", "max_seconds", kind=int),
    # fair spending (0 = no cap)
    EnvOverride(("MEMBER_CONCURRENT_MINTS",), "limits", "member_concurrent_mints", kind=int),
    EnvOverride(("SERVER_CONCURRENT_MINTS",), "limits", "server_concurrent_mints", kind=int),
    EnvOverride(("MEMBER_DAILY_USD",), "limits", "member_daily_usd", kind=float),
    EnvOverride(("SERVER_DAILY_USD",), "limits", "server_daily_usd", kind=float),
    # moderation
    EnvOverride(
        ("HIDDEN_ASSET_RETENTION_DAYS",), "moderation", "hidden_asset_retention_days", kind=int
    ),
)


def _env_overrides(env: Mapping[str, str], problems: list[str]) -> dict[str, dict[str, Any]]:
    """{section: {key: value}} for every ENV_OVERRIDES entry that is set in `env`."""
    found: dict[str, dict[str, Any]] = {}
    for entry in ENV_OVERRIDES:
        hit = entry.lookup(env)
        if hit is None:
            continue
        name, raw = hit
        values = found.setdefault(entry.section, {})
        if entry.convert is not None:
            values[entry.key] = entry.convert(raw)
        else:
            _parse_into(values, entry.key, name, raw, entry.kind, problems, from_env=True)
    return found


def _assemble(
    parts: dict[str, Any],
    worlds: list[WorldSettings],
    overrides: Mapping[str, Mapping[str, Any]],
    config_path: str | None,
) -> Settings:
    for section, values in overrides.items():
        if section == "world":
            worlds[0] = replace(worlds[0], **values)
        elif section == "top":
            parts.update(values)
        else:
            parts[section] = replace(parts[section], **values)
    if "log_level" in parts:
        parts["log_level"] = parts["log_level"].upper()
    return Settings(worlds=tuple(worlds), config_path=config_path, **parts)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    read_file: bool = True,
) -> Settings:
    """Read the config file and apply environment overrides; raise SettingsError.

    The file is `path`, else SHARED_WORLD_CONFIG, else ./config.toml when it exists (else the
    built-in defaults). `read_file=False` uses the built-in defaults and ignores
    SHARED_WORLD_CONFIG; the environment still applies.
    """
    env = os.environ if env is None else env
    file = _config_file(path, env) if read_file else None
    problems: list[str] = []
    parts, worlds = _read_file(_read_toml(file) if file else {}, problems)
    overrides = _env_overrides(env, problems)
    settings = _assemble(parts, worlds, overrides, str(file) if file else None)
    problems.extend(validate(settings))
    if problems:
        raise SettingsError(problems)
    return settings


# -- validation: one function per section, each returning its problem lines -------------------

_WORLD_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_VIDEO_SIZE = re.compile(r"^(\d{2,4})x(\d{2,4})$")
_API_VERSION = re.compile(r"^v\d+[a-z0-9]*$")


def _validate_world(where: str, world: WorldSettings) -> list[str]:
    problems: list[str] = []
    if not _WORLD_ID.match(world.id):
        problems.append(
            f"{where}.id: {world.id!r} is not a valid world id; use 1-64 lowercase letters, "
            "digits, '-' or '_'."
        )
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
    if not MIN_VIDEO_SECONDS <= world.video_seconds <= MAX_VIDEO_SECONDS:
        problems.append(
            f"{where}.video_seconds: {world.video_seconds} is out of range; "
            f"use {MIN_VIDEO_SECONDS} to {MAX_VIDEO_SECONDS}."
        )
    if world.cost_per_second_usd < 0:
        problems.append(f"{where}.cost_per_second_usd: must not be negative.")
    if world.typical_render_seconds < 1:
        problems.append(f"{where}.typical_render_seconds: use at least 1.")
    if not world.planner_model.strip() or not world.video_model.strip():
        problems.append(f"{where}: planner_model and video_model must not be empty.")
    return problems


def _validate_worlds(settings: Settings) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for i, world in enumerate(settings.worlds):
        where = f"worlds[{i}]" if i else "worlds[0] (WORLD_ID)"
        if world.id in seen:
            problems.append(
                f"{where}.id: world {world.id!r} is defined twice; give each world its own id."
            )
        seen.add(world.id)
        problems.extend(_validate_world(where, world))
    return problems


def _validate_database(settings: Settings) -> list[str]:
    db = settings.database
    problems: list[str] = []
    if not db.url.startswith(("sqlite", "postgresql", "postgres")):
        problems.append(
            "database.url (DATABASE_URL): use a sqlite:/// or postgresql:// URL, "
            f"not {db.url.split(':', 1)[0]!r}."
        )
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
    return problems


_S3_REQUIRED = (
    ("bucket", "R2_BUCKET_NAME"),
    ("access_key_id", "R2_ACCESS_KEY_ID"),
    ("secret_access_key", "R2_SECRET_ACCESS_KEY"),
    ("endpoint_url", "R2_ACCOUNT_ID or S3_ENDPOINT_URL"),
)


def _validate_storage(settings: Settings) -> list[str]:
    storage = settings.storage
    problems: list[str] = []
    if storage.backend not in ("local", "s3"):
        problems.append(f"storage.backend: {storage.backend!r} is unknown; use 'local' or 's3'.")
    if storage.backend == "s3":
        problems.extend(
            f"storage.{key}: required for the s3 backend; set {env_name}."
            for key, env_name in _S3_REQUIRED
            if not getattr(storage, key)
        )
    elif storage.bucket and not (storage.access_key_id and storage.secret_access_key):
        # A bucket without its credentials would otherwise leave clips silently on local disk.
        missing = [env_name for key, env_name in _S3_REQUIRED[1:3] if not getattr(storage, key)]
        endpoint = "" if storage.endpoint_url else " (and R2_ACCOUNT_ID or S3_ENDPOINT_URL)"
        problems.append(
            f"storage.bucket (R2_BUCKET_NAME) is {storage.bucket!r} but "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; set "
            f"{'it' if len(missing) == 1 else 'both'}{endpoint} to keep clips in the bucket, "
            "or remove the bucket to keep them on local disk."
        )
    if not 1 <= storage.signed_url_ttl <= MAX_SIGNED_URL_TTL:
        problems.append(
            f"storage.signed_url_ttl (R2_SIGNED_URL_TTL): {storage.signed_url_ttl} is out of "
            f"range; use 1 to {MAX_SIGNED_URL_TTL} seconds (7 days)."
        )
    if storage.upload_attempts < 1:
        problems.append("storage.upload_attempts: use at least 1.")
    return problems


def _validate_providers(settings: Settings) -> list[str]:
    prov = settings.providers
    problems = [
        f"providers.{name}: {getattr(prov, name)!r} is not an http(s) URL."
        for name in ("openrouter_base_url", "openai_base_url")
        if not getattr(prov, name).startswith(("http://", "https://"))
    ]
    if prov.gemini_base_url is not None and not prov.gemini_base_url.startswith(
        ("http://", "https://")
    ):
        problems.append(
            f"providers.gemini_base_url (GEMINI_BASE_URL): {prov.gemini_base_url!r} is not an "
            "http(s) URL."
        )
    if not _API_VERSION.match(prov.gemini_api_version):
        problems.append(
            f"providers.gemini_api_version (GEMINI_API_VERSION): {prov.gemini_api_version!r} is "
            "not an API version; use e.g. v1beta or v1."
        )
    if prov.create_timeout_seconds <= 0 or prov.request_timeout_seconds <= 0:
        problems.append(
            "providers: create_timeout_seconds and request_timeout_seconds must be above 0."
        )
    if not 0 < prov.poll_interval_seconds <= prov.poll_max_interval_seconds:
        problems.append(
            "providers.poll_interval_seconds: must be > 0 and at most poll_max_interval_seconds."
        )
    return problems


def _validate_generation(settings: Settings) -> list[str]:
    gen = settings.generation
    problems: list[str] = []
    if gen.scene_timeout_seconds < MIN_SCENE_TIMEOUT_SECONDS:
        problems.append(
            "generation.scene_timeout_seconds (SCENE_TIMEOUT_SECONDS): "
            f"use at least {MIN_SCENE_TIMEOUT_SECONDS}."
        )
    if gen.watchdog_interval_seconds < 1:
        problems.append(
            "generation.watchdog_interval_seconds (WATCHDOG_INTERVAL_SECONDS): use at least 1."
        )
    if gen.lease_seconds < MIN_LEASE_SECONDS:
        problems.append(f"generation.lease_seconds: use at least {MIN_LEASE_SECONDS}.")
    if not 1 <= gen.max_depth <= MAX_DEPTH_LIMIT:
        problems.append(f"generation.max_depth: use 1 to {MAX_DEPTH_LIMIT}.")
    if gen.max_concurrent_jobs < 1:
        problems.append("generation.max_concurrent_jobs: use at least 1.")
    return problems


def _validate_discord(settings: Settings) -> list[str]:
    discord = settings.discord
    problems: list[str] = []
    if discord.default_world and settings.world(discord.default_world) is None:
        problems.append(
            f"discord.default_world: {discord.default_world!r} is not a defined world; "
            "use one of the [[worlds]] ids."
        )
    if not MIN_VOTE_SECONDS <= discord.default_vote_seconds <= MAX_VOTE_SECONDS:
        problems.append(
            f"discord.default_vote_seconds: use {MIN_VOTE_SECONDS} to {MAX_VOTE_SECONDS}."
        )
    if discord.key_idle_minutes < 1:
        problems.append("discord.key_idle_minutes: use at least 1.")
    return problems


def _validate_http(settings: Settings) -> list[str]:
    http = settings.http
    problems = []
    if not 0 <= http.port <= MAX_PORT:
        problems.append(
            f"http.port: {http.port} is out of range; use 0 to {MAX_PORT} (0 picks a free port)."
        )
    if http.claims_per_minute_per_ip < 1:
        problems.append("http.claims_per_minute_per_ip: use at least 1.")
    if not 256 <= http.max_body_bytes <= 1_048_576:
        problems.append("http.max_body_bytes: use 256 to 1048576.")
    for origin in http.cors_origin_list:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            problems.append(
                f"http.cors_origins: {origin!r} is not an origin like https://example.com or *."
            )
    return problems


def _validate_film(settings: Settings) -> list[str]:
    film = settings.film
    problems = []
    if not 1 <= film.max_seconds <= MAX_FILM_SECONDS:
        problems.append(
            f"film.max_seconds (FILM_MAX_SECONDS): {film.max_seconds} is out of range; "
            f"use 1 to {MAX_FILM_SECONDS} seconds."
        )
    if not 1 <= film.max_clips <= MAX_DEPTH_LIMIT + 1:
        problems.append(f"film.max_clips: use 1 to {MAX_DEPTH_LIMIT + 1} clips.")
    return problems


def _validate_limits(settings: Settings) -> list[str]:
    limits = settings.limits
    problems = []
    for name, env_name in (
        ("member_concurrent_mints", "MEMBER_CONCURRENT_MINTS"),
        ("server_concurrent_mints", "SERVER_CONCURRENT_MINTS"),
    ):
        if not 0 <= getattr(limits, name) <= MAX_CONCURRENT_MINTS_CAP:
            problems.append(
                f"limits.{name} ({env_name}): use 0 (no cap) to {MAX_CONCURRENT_MINTS_CAP} "
                "mints in progress at once."
            )
    for name, env_name in (
        ("member_daily_usd", "MEMBER_DAILY_USD"),
        ("server_daily_usd", "SERVER_DAILY_USD"),
    ):
        value = getattr(limits, name)
        if not (math.isfinite(value) and 0 <= value <= MAX_DAILY_USD_CAP):
            problems.append(
                f"limits.{name} ({env_name}): use 0 (no cap) to {MAX_DAILY_USD_CAP:,.0f} "
                "US dollars a day."
            )
    return problems


def _validate_moderation(settings: Settings) -> list[str]:
    days = settings.moderation.hidden_asset_retention_days
    if not 0 <= days <= MAX_RETENTION_DAYS:
        return [
            f"moderation.hidden_asset_retention_days (HIDDEN_ASSET_RETENTION_DAYS): {days} is "
            f"out of range; use 0 (delete at the next sweep) to {MAX_RETENTION_DAYS} days."
        ]
    return []


def _validate_top_level(settings: Settings) -> list[str]:
    if settings.log_level not in LOG_LEVELS:
        return [
            f"log_level (LOG_LEVEL): {settings.log_level!r} is unknown; "
            "use DEBUG, INFO, WARNING or ERROR."
        ]
    return []


_SECTION_CHECKS: tuple[Callable[[Settings], list[str]], ...] = (
    _validate_worlds,
    _validate_database,
    _validate_storage,
    _validate_providers,
    _validate_generation,
    _validate_discord,
    _validate_http,
    _validate_film,
    _validate_limits,
    _validate_moderation,
    _validate_top_level,
)


def validate(settings: Settings) -> list[str]:
    """Every problem with a loaded Settings, as one plain line each, section by section."""
    return [problem for check in _SECTION_CHECKS for problem in check(settings)]
