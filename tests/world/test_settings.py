"""Settings: config.toml plus environment overrides, validated with one line per problem."""

from __future__ import annotations

import pytest

from world.settings import DEFAULT_BASE_PROMPT, SettingsError, load_settings


def _config(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_tell_the_multiverse_chase_and_use_the_offline_provider(tmp_path):
    settings = load_settings(_config(tmp_path, ""), env={})
    world = settings.default_world
    assert world.id == "default"
    assert world.provider == "offline"
    for motif in ("Courier", "chronoglyph shards", "Cataclysm Rift", "Nexus Gate", "three"):
        assert motif in DEFAULT_BASE_PROMPT
    assert settings.database.url.startswith("sqlite")
    assert settings.storage.backend == "local"


def test_the_original_apps_variables_keep_their_meaning(tmp_path):
    env = {
        "WORLD_ID": "mirrorverse",
        "WORLD_BASE_PROMPT": "A city of mirrors.",
        "WORLD_PROMPT_GUIDANCE": "Keep it eerie.",
        "PLANNER_MODEL": "planner-x",
        "SORA_MODEL": "video-y",
        "VIDEO_SIZE": "720x1280",
        "STATE_SUMMARY_MODEL": "none",
        "DATABASE_URL": "postgresql://u:p@db.example/world",
        "R2_ACCOUNT_ID": "acct",
        "R2_ACCESS_KEY_ID": "AKIA-test",
        "R2_SECRET_ACCESS_KEY": "secret-test",
        "R2_BUCKET_NAME": "clips",
        "R2_PUBLIC_BASE_URL": "https://media.example",
        "R2_SIGNED_URLS": "0",
        "R2_SIGNED_URL_TTL": "600",
        "SCENE_TIMEOUT_SECONDS": "300",
        "WATCHDOG_INTERVAL_SECONDS": "15",
        "CONTRIBUTOR_SALT": "pepper-test",
        "LOG_LEVEL": "debug",
        "DISCORD_TOKEN": "discord-test-token",
        "WORLD_PROVIDER": "gemini",
    }
    settings = load_settings(_config(tmp_path, ""), env=env)
    world = settings.default_world
    assert (world.id, world.base_prompt, world.guidance) == (
        "mirrorverse",
        "A city of mirrors.",
        "Keep it eerie.",
    )
    assert (world.planner_model, world.video_model, world.video_size) == (
        "planner-x",
        "video-y",
        "720x1280",
    )
    assert world.summary_model is None
    assert world.provider == "gemini"
    assert settings.database.url == "postgresql://u:p@db.example/world"
    storage = settings.storage
    assert storage.backend == "s3"
    assert storage.endpoint_url == "https://acct.r2.cloudflarestorage.com"
    assert (storage.bucket, storage.public_base_url) == ("clips", "https://media.example")
    assert (storage.signed_urls, storage.signed_url_ttl) == (False, 600)
    assert settings.generation.scene_timeout_seconds == 300
    assert settings.generation.watchdog_interval_seconds == 15
    assert settings.generation.contributor_salt == "pepper-test"
    assert settings.log_level == "DEBUG"
    assert settings.discord.token == "discord-test-token"
    assert "discord-test-token" not in repr(settings)
    assert "secret-test" not in repr(settings)


def test_several_worlds_each_with_its_own_prompt_and_provider(tmp_path):
    path = _config(
        tmp_path,
        """
[[worlds]]
id = "main"
provider = "offline"

[[worlds]]
id = "noir"
provider = "openai"
base_prompt = "Rain on neon."
guidance = "Hardboiled."
""",
    )
    settings = load_settings(path, env={"WORLD_BASE_PROMPT": "Only the first world."})
    assert [w.id for w in settings.worlds] == ["main", "noir"]
    assert settings.world("main").base_prompt == "Only the first world."
    assert settings.world("noir").base_prompt == "Rain on neon."
    assert settings.world("noir").provider == "openai"
    assert settings.world("missing") is None


def test_every_problem_is_one_line_naming_the_setting_and_the_fix(tmp_path):
    path = _config(
        tmp_path,
        """
[storage]
backend = "s3"
secret_access_key = "in-the-file"

[generation]
lease_seconds = "soon"
max_depth = 0

[[worlds]]
id = "Bad World"
provider = "sora"
video_size = "big"

[[worlds]]
id = "twin"

[[worlds]]
id = "twin"
""",
    )
    with pytest.raises(SettingsError) as caught:
        load_settings(path, env={})
    problems = caught.value.problems
    expected = [
        "storage.secret_access_key: secrets are read only from the environment",
        "generation.lease_seconds: expected a whole number",
        "generation.max_depth: use 1 to 500",
        "is not a valid world id",
        "'sora' is not a provider",
        "'big' is not WIDTHxHEIGHT",
        "world 'twin' is defined twice",
        "storage.bucket: required for the s3 backend; set R2_BUCKET_NAME",
    ]
    for text in expected:
        assert any(text in problem for problem in problems), (text, problems)
    assert all("\n" not in problem for problem in problems)


def test_a_typo_in_a_setting_name_is_reported(tmp_path):
    with pytest.raises(SettingsError, match=r"database\.ulr: unknown setting"):
        load_settings(_config(tmp_path, '[database]\nulr = "sqlite://"\n'), env={})


def test_a_missing_explicit_config_file_is_reported(tmp_path):
    with pytest.raises(SettingsError, match="file not found"):
        load_settings(tmp_path / "nope.toml", env={})


def test_provider_variables_and_the_openrouter_world(tmp_path):
    env = {
        "WORLD_PROVIDER": "openrouter",
        "OPENROUTER_BASE_URL": "http://127.0.0.1:9/api/v1",
        "OPENAI_API_BASE": "http://127.0.0.1:9/v1",
        "VIDEO_MODEL": "bytedance/seedance-2.0",
        "VIDEO_SIZE": "720x1280",
        "VIDEO_SECONDS": "6",
    }
    config = '[providers]\napp_url = "https://example.test/world"\napp_title = "My World"\n'
    settings = load_settings(_config(tmp_path, config), env=env)
    world = settings.default_world
    assert (world.provider, world.video_model, world.video_seconds) == (
        "openrouter",
        "bytedance/seedance-2.0",
        6,
    )
    assert (world.resolution, world.aspect_ratio) == ("720p", "9:16")
    assert settings.providers.openrouter_base_url == "http://127.0.0.1:9/api/v1"
    assert settings.providers.openai_base_url == "http://127.0.0.1:9/v1"
    assert (settings.providers.app_url, settings.providers.app_title) == (
        "https://example.test/world",
        "My World",
    )
    # SORA_MODEL, the original app's name, wins over the alias
    both = load_settings(_config(tmp_path, ""), env=env | {"SORA_MODEL": "google/veo-3.1"})
    assert both.default_world.video_model == "google/veo-3.1"


def test_bad_provider_settings_are_each_named(tmp_path):
    config = (
        '[providers]\nopenrouter_base_url = "openrouter.ai"\npoll_interval_seconds = 0\n'
        '[[worlds]]\nid = "w"\nprovider = "sora"\ntypical_render_seconds = 0\n'
    )
    with pytest.raises(SettingsError) as caught:
        load_settings(_config(tmp_path, config), env={"VIDEO_SECONDS": "eight"})
    problems = "\n".join(caught.value.problems)
    assert "providers.openrouter_base_url: 'openrouter.ai' is not an http(s) URL." in problems
    assert "providers.poll_interval_seconds" in problems
    assert "'sora' is not a provider; use one of openrouter, openai, gemini, offline" in problems
    assert "typical_render_seconds: use at least 1." in problems
    assert "VIDEO_SECONDS: expected a whole number, got 'eight'." in problems
