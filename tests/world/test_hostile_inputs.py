"""Long and hostile inputs (invariant 7), and the deepest allowed branch, end to end.

Every input through `WorldService.view/claim/retry/cancel/subscribe` is either accepted or
refused with one short sentence: a refusal quotes at most a short, sanitised prefix of what
was typed, creates no row, and nothing raises except the service's own `ServiceError`s.
Every name derived from a path (spool folders, asset keys) stays bounded at the deepest depth
the settings allow.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from tests.fixtures.world import (
    make_settings,
    renders_started,
    start_service,
    wait_until_settled,
)
from tests.world.helpers import mint, row
from world import logsafe, paths, scenes
from world.claims import contributor_id
from world.events import Subscription
from world.models import Scene
from world.pipeline import GenerationJob, JobContext, asset_keys
from world.service import InvalidBranch, ServiceError, UnknownWorld, WorldService
from world.settings import SettingsError, load_settings
from world.types import ClaimOutcome, ClaimResult, Status

MAX_MESSAGE = 200  # every refusal sentence stays under this many characters
MAX_QUOTE = 24  # at most this many characters of the input come back
NAME_MAX = 255  # bytes in one file or folder name (ext4, APFS, NTFS)
KEY_MAX = 1024  # bytes in an S3 / R2 object key
SLUG_LIMIT = 128  # a path's storage name, at any depth
MEGABYTE = 2**20
TEST_KEY = "sk-test-" + "Zq7Xw2Lp9Rt4Vb6N" * 3


# -- the deepest depth the settings allow ----------------------------------------------


def _allowed_max_depth(tmp_path: Path) -> int:
    """The largest generation.max_depth settings validation accepts (checked, not assumed)."""

    def loads(depth: int) -> bool:
        config = tmp_path / f"depth-{depth}.toml"
        config.write_text(f"[generation]\nmax_depth = {depth}\n", encoding="utf-8")
        try:
            load_settings(config, env={})
        except SettingsError:
            return False
        return True

    deepest = 500
    assert loads(deepest) and not loads(deepest + 1)
    return deepest


def _deep(depth: int, last: int = 2) -> str:
    return "/".join(["2"] * (depth - 1) + [str(last)])


def test_every_name_derived_from_the_deepest_path_is_bounded(tmp_path):
    depth = _allowed_max_depth(tmp_path)
    world_id = "w" * 64  # the longest world id settings accept
    settings = make_settings(tmp_path)
    world = replace(settings.worlds[0], id=world_id)
    generation = replace(settings.generation, spool_dir=str(tmp_path / "spool"))
    ctx = JobContext(
        db=None,  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        provider=None,  # type: ignore[arg-type]
        world=world,
        generation=generation,
        publish=lambda event: None,
    )
    job_id = "job_" + "x" * 300  # provider job ids are hashed, however long
    seen: set[str] = set()
    for path in ["", "0", "0/2/1", _deep(depth), _deep(depth, 0), _deep(depth - 1), _deep(130)]:
        slug = paths.storage_slug(path)
        assert len(slug) <= SLUG_LIMIT and slug.isascii()
        assert all(ch.isalnum() or ch in "-_" for ch in slug), slug
        seen.add(slug)

        spool = GenerationJob(
            ctx, path=path, token="t", credentials=None, contributor=None
        )._spool_path(job_id)
        relative = spool.relative_to(generation.spool_dir)
        for variant in (spool, spool.with_suffix(".part"), spool.with_suffix(".last.png")):
            assert all(len(part.encode()) <= NAME_MAX for part in variant.parts), variant
        assert len(str(relative)) <= 300

        for key in asset_keys(world_id, path, job_id):
            assert len(key.encode()) <= KEY_MAX
            assert all(0 < len(part.encode()) <= NAME_MAX for part in key.split("/")), key
    assert len(seen) == 7, "different branches keep different names"
    assert paths.storage_slug("0/2/1") == "0-2-1"  # short names are unchanged and readable
    assert paths.storage_slug(_deep(depth)).startswith("2-2-2-2-")


@hypothesis_settings(max_examples=60, deadline=None, database=None)
@given(
    st.integers(1, 500).flatmap(lambda n: st.lists(st.integers(0, 2), min_size=n, max_size=n)),
    st.integers(1, 500).flatmap(lambda n: st.lists(st.integers(0, 2), min_size=n, max_size=n)),
)
def test_storage_names_are_bounded_and_distinct_at_any_depth(a, b):
    first, second = paths.join(a), paths.join(b)
    slug = paths.storage_slug(first)
    assert len(slug) <= SLUG_LIMIT
    if first != second:
        assert slug != paths.storage_slug(second)


async def _make_ready_chain(service: WorldService, deepest: str) -> None:
    """Ready ancestors of `deepest`, written the way a finished job leaves them."""
    choices = [{"label": f"Take door {i + 1}", "short_label": f"Door {i + 1}"} for i in range(3)]
    chain = paths.ancestors(deepest)
    async with service.db.transaction() as session:
        for path in chain:
            label = None if path == "" else choices[paths.last_index(path)]["label"]
            await scenes.insert_placeholder(session, "default", path, label)
        await session.execute(
            update(Scene)
            .where(Scene.world_id == "default", Scene.path.in_(chain))
            .values(
                status=Status.READY.value,
                title="A long corridor",
                narration="The corridor goes on.",
                video_prompt="One continuous shot down a corridor.",
                choices=choices,
                progress=100,
            )
        )


async def test_the_deepest_allowed_branch_is_minted_end_to_end(tmp_path):
    depth = _allowed_max_depth(tmp_path)
    settings = make_settings(
        tmp_path,
        generation={"max_depth": depth},
        providers={"offline_render_seconds": 0.01},
    )
    deepest = _deep(depth)
    service = await start_service(settings)
    try:
        await _make_ready_chain(service, deepest)
        assert (await service.view("default", paths.parent(deepest))).is_ready

        result = await service.claim("default", deepest, None, "deep diver")
        assert result.outcome is ClaimOutcome.QUEUED and result.claimed_by_caller
        events = await wait_until_settled(service, "default", deepest)

        assert events[-1].status is Status.READY, events[-1]
        scene = await row(service, deepest)
        assert scene is not None and scene.status == Status.READY.value
        assert scene.depth == depth and scene.asset_key and scene.poster_key
        assert len(scene.asset_key) <= KEY_MAX
        assert await service.store.open_bytes(scene.poster_key)
        assert await service.store.open_bytes(scene.asset_key)
        view = await service.view("default", deepest)
        assert view.is_ready and len(view.choices) == 3 and view.video_key == scene.asset_key
        assert renders_started(settings) == 1
        spool = Path(settings.generation.spool_dir)
        assert not [p for p in spool.rglob("*") if p.is_file()], "the spool is cleaned up"

        # One step further is past the maximum: refused with a sentence, nothing written.
        too_deep = paths.child(deepest, 0)
        refused = await service.claim("default", too_deep, None, "deep diver")
        assert refused.outcome is ClaimOutcome.REFUSED and "deeper" in refused.message
        assert len(refused.message) < MAX_MESSAGE
        assert await row(service, too_deep) is None
    finally:
        await service.close()


# -- explicit hostile inputs -----------------------------------------------------------


async def _scene_count(service: WorldService) -> int:
    async with service.db.session() as session:
        return await session.scalar(select(func.count()).select_from(Scene))


def _assert_short_sentence(message: str | None, *typed: object) -> None:
    assert isinstance(message, str) and message
    assert len(message) < MAX_MESSAGE, f"{len(message)} characters"
    assert all(ch.isprintable() for ch in message), ascii(message)
    assert TEST_KEY[:12] not in message
    for text in typed:
        if not isinstance(text, str) or len(text) <= MAX_QUOTE:
            continue
        window = MAX_QUOTE + 1
        echoed = [message[i : i + window] for i in range(len(message) - window + 1)]
        assert not any(part in text for part in echoed), "more of the input came back"


async def test_a_one_megabyte_path_is_refused_in_one_short_sentence(service):
    await mint(service, "")
    before = await _scene_count(service)
    for path in ["0/" * (MEGABYTE // 2), "x" * MEGABYTE, "9" * MEGABYTE]:
        with pytest.raises(InvalidBranch) as caught:
            await service.view("default", path)
        _assert_short_sentence(str(caught.value), path)
        for call in (service.claim, service.retry):
            result = await call("default", path, None, "mallory")
            assert result.outcome is ClaimOutcome.REFUSED
            _assert_short_sentence(result.message, path)
    assert await _scene_count(service) == before


async def test_an_unknown_world_is_named_by_a_short_sanitised_prefix(service):
    world_id = "nowhere-" + "w" * MEGABYTE
    with pytest.raises(UnknownWorld) as caught:
        await service.view(world_id, "")
    _assert_short_sentence(str(caught.value), world_id)
    assert "nowhere-" in str(caught.value) and "…" in str(caught.value)

    result = await service.claim(world_id, "", None, "mallory")
    assert result.outcome is ClaimOutcome.REFUSED
    _assert_short_sentence(result.message, world_id)
    with pytest.raises(UnknownWorld) as caught:
        await service.cancel(world_id, "")
    _assert_short_sentence(str(caught.value), world_id)
    with pytest.raises(UnknownWorld) as caught:
        service.subscribe(world_id, "")
    _assert_short_sentence(str(caught.value), world_id)
    assert await _scene_count(service) == 0


@pytest.mark.parametrize(
    "text",
    ["\u202e0/1", "0/1\x00", "\x00" * 5000, "\ud800/0", "0\u200f/\u2066x", "\x1b[31mred", "a\nb"],
)
async def test_control_bidi_and_surrogate_characters_never_come_back(service, text):
    with pytest.raises(InvalidBranch) as caught:
        await service.view("default", text)
    _assert_short_sentence(str(caught.value), text)
    with pytest.raises(UnknownWorld) as caught:
        await service.view(text, "")
    _assert_short_sentence(str(caught.value), text)
    str(caught.value).encode()  # a refusal is always sendable text


async def test_a_key_typed_into_the_wrong_field_is_not_repeated(service):
    secret = "my-own-gateway-token-0123456789"
    logsafe.register_secret(secret)  # what the bot's key vault does with a member's key
    try:
        for typed in (TEST_KEY, secret, f"0/{TEST_KEY}"):
            for world_id, path in (("default", typed), (typed, "")):
                result = await service.claim(world_id, path, None, "mallory")
                assert result.outcome is ClaimOutcome.REFUSED
                _assert_short_sentence(result.message, typed)
                assert secret[:8] not in result.message
                assert TEST_KEY[:11] not in result.message
    finally:
        logsafe.forget_secret(secret)


async def test_retry_of_a_never_tried_branch_is_refused_and_leaves_no_row(service):
    await mint(service, "")
    before = await _scene_count(service)

    result = await service.retry("default", "0", None, "admin")

    assert result.outcome is ClaimOutcome.REFUSED and result.reason == "not_failed"
    _assert_short_sentence(result.message)
    assert await row(service, "0") is None
    assert await _scene_count(service) == before
    view = await service.view("default", "0")
    assert view.status is Status.PENDING


@pytest.mark.parametrize(
    "contributor", ["\ud800", "x\udfffy", "\x00", "\u202eevil", "m" * MEGABYTE, ""]
)
async def test_any_contributor_text_can_mint(service, contributor):
    await mint(service, "")
    result = await service.claim("default", "1", None, contributor)
    assert result.outcome is ClaimOutcome.QUEUED and result.claimed_by_caller
    await wait_until_settled(service, "default", "1")
    scene = await row(service, "1")
    assert scene is not None and scene.status == Status.READY.value
    if contributor:
        assert scene.contributor == contributor_id(
            service.settings.generation.contributor_salt, contributor
        )


def test_contributor_ids_stay_distinct_for_lone_surrogates():
    ids = {contributor_id("salt", text) for text in ["\ud800", "\ud801", "\udfff", "?", ""]}
    assert len(ids) == 5
    assert contributor_id("\udc80salt", "x")  # a salt read from a badly encoded env var


# -- hypothesis: anything at all through the five calls ---------------------------------

SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
NASTY = st.sampled_from(["\x00", "\u202e", "\u200f", "\u2066", "\ufeff", "/", "0", "\n", "…"])
HOSTILE_TEXT = st.lists(st.one_of(st.characters(), SURROGATES, NASTY), max_size=40).map("".join)


class Long(str):
    """A long input that prints short when hypothesis reports an example."""

    def __repr__(self) -> str:
        return f"Long({str.__repr__(self[:16])}... {len(self)} characters)"


HUGE = st.sampled_from(
    [
        Long("0/" * (MEGABYTE // 2)),
        Long("/".join(["2"] * 600)),
        "/".join(["2"] * 50),
        "/".join(["0"] * 51),
        Long("1" * MEGABYTE),
        Long("\x00" * MEGABYTE),
        Long("\ud800" * 4096),
        Long("é" * MEGABYTE),
        Long("\u202e" * MEGABYTE),
        TEST_KEY,
        "default\x00",
        "default\u200f",
        "DEFAULT",
        " default",
        "../../etc/passwd",
        "%s%n{0}{}",
    ]
)
VALID_PATHS = st.lists(st.integers(0, 2), max_size=3).map(paths.join)
NEAR_PATHS = st.lists(st.integers(0, 12), max_size=4).map(paths.join)
PATHS = st.one_of(
    VALID_PATHS, NEAR_PATHS, HOSTILE_TEXT, HUGE, st.builds(str.__add__, VALID_PATHS, HOSTILE_TEXT)
)
WORLDS = st.one_of(st.just("default"), st.just("default"), HOSTILE_TEXT, HUGE)
CONTRIBUTORS = st.one_of(st.none(), st.just("alice"), HOSTILE_TEXT, HUGE)


async def _one_of_everything(
    service: WorldService, world_id: str, path: str, contributor: str | None
) -> None:
    max_depth = service.settings.generation.max_depth
    try:
        paths.parse(path, max_depth)
        acceptable = world_id == "default"
    except paths.InvalidPath:
        acceptable = False
    typed = (world_id, path, contributor)

    async def refused_without_a_trace(message: str | None, before: int) -> None:
        _assert_short_sentence(message, *typed)
        assert await _scene_count(service) == before, "a refused call created a row"

    for name in ("view", "claim", "retry", "cancel", "subscribe"):
        before = await _scene_count(service)
        try:
            if name == "view":
                outcome: object = await service.view(world_id, path)
            elif name in ("claim", "retry"):
                outcome = await getattr(service, name)(world_id, path, None, contributor)
            elif name == "cancel":
                outcome = await service.cancel(world_id, path)
            else:
                outcome = service.subscribe(world_id, path)
        except ServiceError as exc:
            await refused_without_a_trace(str(exc), before)
            continue
        if isinstance(outcome, ClaimResult) and outcome.outcome is ClaimOutcome.REFUSED:
            await refused_without_a_trace(outcome.message, before)
            continue
        assert acceptable, f"{name} accepted {world_id[:40]!a}, {path[:40]!a}"
        if isinstance(outcome, Subscription):
            await outcome.aclose()


def test_hostile_inputs_are_accepted_or_refused_in_a_short_sentence(tmp_path):
    settings = make_settings(tmp_path, providers={"offline_render_seconds": 0.01})
    with asyncio.Runner() as runner:
        service = runner.run(start_service(settings, run_watchdog=False))
        try:
            runner.run(mint(service, ""))

            @hypothesis_settings(
                max_examples=100,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(world_id=WORLDS, path=PATHS, contributor=CONTRIBUTORS)
            def check(world_id: str, path: str, contributor: str | None) -> None:
                runner.run(_one_of_everything(service, world_id, path, contributor))

            check()
        finally:
            runner.run(service.close())
