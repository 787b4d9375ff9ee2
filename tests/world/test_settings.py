"""Settings: config.toml plus environment overrides, validated with one line per problem."""

from __future__ import annotations

from dataclasses import fields

import pytest

from world.settings import (
    DEFAULT_BASE_PROMPT,
    ENV_OVERRIDES,
    MAX_DEPTH_LIMIT,
    MAX_VIDEO_SECONDS,
    MAX_VOTE_SECONDS,
    MIN_VOTE_SECONDS,
    SECTIONS,
    Settings,
    SettingsError,
    WorldSettings,
    load_settings,
)


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


# -- mistakes are refused, each named, all at once -------------------------------------------


def _problems(path, env=None) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(path, env={} if env is None else env)
    return caught.value.problems


def test_a_misspelt_section_is_refused_with_the_list_of_sections(tmp_path):
    problems = _problems(_config(tmp_path, '[databse]\nurl = "sqlite://"\n'))
    assert problems == [
        "databse: unknown section; remove it or check its spelling (sections: "
        f"{', '.join((*SECTIONS, 'worlds'))})."
    ]
    assert list(SECTIONS)[:3] == ["database", "storage", "generation"]


def test_world_instead_of_worlds_is_refused(tmp_path):
    problems = _problems(_config(tmp_path, '[[world]]\nid = "main"\n'))
    assert len(problems) == 1
    assert problems[0].startswith("world: unknown section; remove it or check its spelling")


def test_an_unknown_top_level_setting_is_refused(tmp_path):
    problems = _problems(_config(tmp_path, 'loglevel = "DEBUG"\n'))
    assert len(problems) == 1
    assert problems[0].startswith("loglevel: unknown setting; remove it or check its spelling")
    assert "log_level" in problems[0]


def test_a_value_where_a_section_belongs_is_refused(tmp_path):
    problems = _problems(_config(tmp_path, "database = 3\nworlds = [1]\n"))
    assert any(p.startswith("database: expected a [database] section, got 3") for p in problems)
    assert any(p.startswith("worlds[0]: expected a [[worlds]] table, got 1") for p in problems)


def test_an_unknown_key_inside_a_world_is_refused(tmp_path):
    problems = _problems(_config(tmp_path, '[[worlds]]\nid = "main"\nvideo_modle = "x"\n'))
    assert problems == ["worlds[0].video_modle: unknown setting; remove it or check its spelling."]


def test_mistakes_are_collected_into_one_error(tmp_path):
    config = '[databse]\nurl = "x"\n[storage]\nsignd_urls = true\n'
    problems = _problems(_config(tmp_path, config), env={"R2_SIGNED_URLS": "maybe"})
    assert [p.split(":", 1)[0] for p in problems] == [
        "databse",
        "storage.signd_urls",
        "R2_SIGNED_URLS",
    ]


def test_a_missing_file_named_by_shared_world_config_is_refused(tmp_path):
    missing = tmp_path / "y.toml"
    with pytest.raises(SettingsError) as caught:
        load_settings(env={"SHARED_WORLD_CONFIG": str(missing)})
    assert caught.value.problems == [
        f"SHARED_WORLD_CONFIG={missing}: file not found; point SHARED_WORLD_CONFIG at an "
        "existing config file or unset it."
    ]


def test_a_missing_explicit_path_is_refused_by_name(tmp_path):
    missing = tmp_path / "nope.toml"
    problems = _problems(missing, env={"SHARED_WORLD_CONFIG": str(_config(tmp_path, ""))})
    assert problems == [f"{missing}: file not found; pass an existing config file."]


def test_a_bool_that_is_neither_true_nor_false_is_refused_in_the_file(tmp_path):
    problems = _problems(_config(tmp_path, '[storage]\nsigned_urls = "maybe"\n'))
    assert problems == ["storage.signed_urls: expected true or false, got 'maybe'."]


def test_a_bool_that_is_no_yes_no_word_is_refused_in_the_environment(tmp_path):
    problems = _problems(_config(tmp_path, ""), env={"R2_SIGNED_URLS": "maybe"})
    assert len(problems) == 1
    assert problems[0].startswith("R2_SIGNED_URLS: 'maybe' is not a yes/no value")


def test_a_quoted_true_in_the_file_is_refused(tmp_path):
    problems = _problems(_config(tmp_path, '[http]\nenabled = "true"\n'))
    assert problems == ["http.enabled: got the string 'true'; write true or false without quotes."]


@pytest.mark.parametrize(
    ("word", "expected"),
    [("1", True), ("YES", True), (" on ", True), ("True", True), ("0", False), ("no", False)],
)
def test_environment_booleans_take_the_usual_words(tmp_path, word, expected):
    settings = load_settings(_config(tmp_path, ""), env={"R2_SIGNED_URLS": word})
    assert settings.storage.signed_urls is expected


def test_a_string_where_a_string_is_expected_elsewhere_is_refused(tmp_path):
    problems = _problems(_config(tmp_path, "log_level = 3\n[http]\nhost = 1\n"))
    assert "log_level: expected str, got 3." in problems
    assert "http.host: expected str, got 1." in problems


# -- the environment table keeps the original names ------------------------------------------


def test_sora_model_beats_video_model_and_blank_names_do_not_count(tmp_path):
    path = _config(tmp_path, "")
    env = {"SORA_MODEL": "sora-2-pro", "VIDEO_MODEL": "veo"}
    assert load_settings(path, env=env).default_world.video_model == "sora-2-pro"
    env = {"SORA_MODEL": "  ", "VIDEO_MODEL": "veo"}
    assert load_settings(path, env=env).default_world.video_model == "veo"
    env = {"WORLD_PROVIDER": "", "VIDEO_PROVIDER": "openai"}
    assert load_settings(path, env=env).default_world.provider == "openai"


@pytest.mark.parametrize("value", ["", "none", "Off", "disabled"])
def test_state_summary_model_empty_or_none_turns_the_chronicler_off(tmp_path, value):
    settings = load_settings(_config(tmp_path, ""), env={"STATE_SUMMARY_MODEL": value})
    assert settings.default_world.summary_model is None


def test_state_summary_model_names_the_chronicler_and_the_file_can_turn_it_off(tmp_path):
    path = _config(tmp_path, '[[worlds]]\nid = "a"\n[[worlds]]\nid = "b"\nsummary_model = ""\n')
    settings = load_settings(path, env={"STATE_SUMMARY_MODEL": " chron-1 "})
    assert settings.world("a").summary_model == "chron-1"
    assert settings.world("b").summary_model is None


def test_r2_account_id_makes_the_endpoint_and_s3_endpoint_url_wins(tmp_path):
    path = _config(tmp_path, "")
    r2 = load_settings(path, env={"R2_ACCOUNT_ID": "acct"})
    assert r2.storage.endpoint_url == "https://acct.r2.cloudflarestorage.com"
    both = {"R2_ACCOUNT_ID": "acct", "S3_ENDPOINT_URL": "http://minio:9000"}
    assert load_settings(path, env=both).storage.endpoint_url == "http://minio:9000"


def test_a_bucket_and_an_access_key_imply_s3_unless_storage_backend_says_otherwise(tmp_path):
    path = _config(tmp_path, "")
    env = {
        "R2_BUCKET_NAME": "clips",
        "R2_ACCESS_KEY_ID": "key",
        "R2_SECRET_ACCESS_KEY": "secret",
        "S3_ENDPOINT_URL": "http://minio:9000",
    }
    assert load_settings(path, env=env).storage.backend == "s3"
    local = load_settings(path, env=env | {"STORAGE_BACKEND": "local"})
    assert local.storage.backend == "local"
    # A bucket without its credentials is refused, never silently local (issue 10).
    with pytest.raises(SettingsError, match="R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY"):
        load_settings(path, env={"R2_BUCKET_NAME": "clips"})


def test_database_and_provider_variables(tmp_path):
    env = {
        "DATABASE_POOL_SIZE": "7",
        "DATABASE_MAX_OVERFLOW": "0",
        "DATABASE_PROCESSES": "4",
        "OPENAI_BASE_URL": "http://gateway/v1",
        "GEMINI_BASE_URL": "http://gemini.test",
        "CONTRIBUTOR_SALT": " salt with spaces ",
    }
    settings = load_settings(_config(tmp_path, ""), env=env)
    db = settings.database
    assert (db.pool_size, db.max_overflow, db.processes) == (7, 0, 4)
    assert settings.providers.openai_base_url == "http://gateway/v1"
    assert settings.providers.gemini_base_url == "http://gemini.test"
    assert settings.generation.contributor_salt == " salt with spaces "
    both = env | {"OPENAI_API_BASE": "http://first/v1"}
    assert load_settings(_config(tmp_path, ""), env=both).providers.openai_base_url == (
        "http://first/v1"
    )


def test_every_environment_override_names_a_real_setting():
    for entry in ENV_OVERRIDES:
        if entry.section == "world":
            cls = WorldSettings
        elif entry.section == "top":
            cls = Settings
        else:
            cls = SECTIONS[entry.section]
        assert entry.key in {f.name for f in fields(cls)}, entry
    names = [name for entry in ENV_OVERRIDES for name in entry.names]
    assert len(names) == len(set(names))


# -- where the settings came from -----------------------------------------------------------


def test_config_path_is_the_file_that_was_read(tmp_path):
    path = _config(tmp_path, "")
    assert load_settings(path, env={}).config_path == str(path)
    assert load_settings(env={"SHARED_WORLD_CONFIG": str(path)}).config_path == str(path)


def test_config_path_is_none_for_the_built_in_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./config.toml here
    assert load_settings(env={}).config_path is None
    missing = {"SHARED_WORLD_CONFIG": str(tmp_path / "absent.toml")}
    settings = load_settings(env=missing, read_file=False)
    assert settings.config_path is None
    assert settings.default_world.id == "default"


def test_config_toml_in_the_working_directory_is_read_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _config(tmp_path, '[[worlds]]\nid = "here"\n')
    settings = load_settings(env={})
    assert (settings.config_path, settings.default_world.id) == ("config.toml", "here")


def test_read_file_false_ignores_the_file_but_not_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _config(tmp_path, '[[worlds]]\nid = "here"\n')
    settings = load_settings(env={"WORLD_ID": "from-env"}, read_file=False)
    assert settings.default_world.id == "from-env"


def test_limits_are_the_constants(tmp_path):
    assert (MIN_VOTE_SECONDS, MAX_VOTE_SECONDS) == (10, 86_400)
    config = f"[generation]\nmax_depth = {MAX_DEPTH_LIMIT + 1}\n"
    config += f"[discord]\ndefault_vote_seconds = {MIN_VOTE_SECONDS - 1}\n"
    config += f"[[worlds]]\nid = 'w'\nvideo_seconds = {MAX_VIDEO_SECONDS + 1}\n"
    problems = _problems(_config(tmp_path, config))
    assert f"generation.max_depth: use 1 to {MAX_DEPTH_LIMIT}." in problems
    assert "discord.default_vote_seconds: use 10 to 86400." in problems
    assert any(p.startswith("worlds[0] (WORLD_ID).video_seconds: 21 is out") for p in problems)


def test_storage_settings_are_one_class_shared_with_storage():
    from storage.settings import StorageSettings as FromStorage
    from world.settings import StorageSettings

    assert StorageSettings is FromStorage
