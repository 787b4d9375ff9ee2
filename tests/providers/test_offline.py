"""The offline provider: contract-abiding local plans, restartable renders, real clips."""

from __future__ import annotations

import asyncio
import json
import re
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import av
import pytest
from PIL import ImageChops, ImageStat

from tests.fixtures.faulty_offline import (
    BLOCK_MARKER,
    BLOCKED_MESSAGE,
    FAIL_MARKER,
    FaultyOfflineProvider,
)
from world.media import probe
from world.providers import build_provider
from world.providers.base import (
    Plan,
    PlanRequest,
    Provider,
    ProviderError,
    RenderRequest,
    RenderStatus,
    SummaryRequest,
)
from world.providers.offline import CLIP_FPS, OfflineProvider
from world.providers.offline_story import clip_look
from world.settings import DEFAULT_BASE_PROMPT, DEFAULT_GUIDANCE, ProviderSettings, WorldSettings
from world.types import Credentials

FAST = ProviderSettings(
    offline_render_seconds=0.2, offline_clip_seconds=1, offline_width=160, offline_height=90
)
SLOW = ProviderSettings(offline_render_seconds=60.0, offline_clip_seconds=1)
FINAL_FRAME = "starting from the previous scene's final frame"
PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    return tmp_path / "offline-jobs"


@pytest.fixture
def provider(jobs_dir: Path) -> OfflineProvider:
    return OfflineProvider(FAST, jobs_dir)


@pytest.fixture
def faulty(jobs_dir: Path) -> FaultyOfflineProvider:
    """The offline provider with the test-only refusal markers (see faulty_offline)."""
    return FaultyOfflineProvider(FAST, jobs_dir)


def plan_request(
    path: str, chosen: str | None, *, world_id: str = "default", seconds: int = 8
) -> PlanRequest:
    return PlanRequest(
        world_id=world_id,
        base_prompt=DEFAULT_BASE_PROMPT,
        guidance=DEFAULT_GUIDANCE,
        path=path,
        depth=len(path.split("/")) if path else 0,
        video_seconds=seconds,
        model="local",
        chosen_choice=chosen,
    )


def render_request(prompt: str = "The Courier leaps through a portal.") -> RenderRequest:
    return RenderRequest(
        world_id="default",
        path="0/1",
        prompt=prompt,
        title="Shardfall in the Clockwork Jungle",
        model="local",
        size="1280x720",
        seconds=8,
    )


async def walk(provider: OfflineProvider, path: str, *, world_id: str = "default") -> Plan:
    """Plan every scene from the root down to `path`, passing the choice taken each time."""
    plan = await provider.plan(plan_request("", None, world_id=world_id), None)
    so_far: list[str] = []
    for part in path.split("/") if path else []:
        chosen = plan.choices[int(part)].label
        so_far.append(part)
        plan = await provider.plan(plan_request("/".join(so_far), chosen, world_id=world_id), None)
    return plan


def all_paths(depth: int) -> list[str]:
    paths = [""]
    frontier = [""]
    for _ in range(depth):
        frontier = [f"{p}/{i}" if p else str(i) for p in frontier for i in range(3)]
        paths.extend(frontier)
    return paths


def sentences(text: str) -> int:
    return len(re.findall(r"[.!?](?:\s|$)", text))


def assert_contract(plan: Plan, *, root: bool, seconds: int = 8) -> None:
    assert plan.title.strip() and len(plan.title.split()) <= 8
    assert plan.narration.strip() and len(plan.narration.split()) <= 120
    assert 2 <= sentences(plan.narration) <= 4, plan.narration
    assert len(plan.choices) == 3
    labels = [c.label for c in plan.choices]
    shorts = [c.short_label for c in plan.choices]
    assert len({label.lower() for label in labels}) == 3
    assert len({short.lower() for short in shorts}) == 3
    assert len({label.split()[0].lower() for label in labels}) == 3, labels  # different moves
    for choice in plan.choices:
        assert 1 <= len(choice.label.split()) <= 22, choice.label
        assert 1 <= len(choice.short_label.split()) <= 12, choice.short_label
        assert "missing choice" not in choice.label.lower()
    assert f"{seconds}-second" in plan.video_prompt
    assert (FINAL_FRAME in plan.video_prompt) is not root
    assert "Context (not visible in video, only for AI guidance):" in plan.video_prompt


# --------------------------------------------------------------------------- protocol, keys


async def test_is_a_keyless_provider(provider: OfflineProvider) -> None:
    assert isinstance(provider, Provider)
    assert provider.name == "offline"
    assert provider.needs_key is False
    await provider.validate_key(None)
    await provider.validate_key(Credentials("anything at all"))
    await provider.close()


def test_build_provider(tmp_path: Path) -> None:
    built = build_provider(WorldSettings(id="default"), FAST, tmp_path)
    assert isinstance(built, OfflineProvider)
    assert built.jobs_dir == tmp_path / "offline-jobs"
    with pytest.raises(ValueError, match="Unknown provider"):
        build_provider(WorldSettings(id="default", provider="nope"), FAST, tmp_path)


# --------------------------------------------------------------------------- planning


async def test_root_plan_opens_at_the_nexus_gate(provider: OfflineProvider) -> None:
    plan = await provider.plan(plan_request("", None), None)
    assert_contract(plan, root=True)
    assert "Nexus Gate" in plan.narration
    assert "portals" in plan.narration and "Three" in plan.narration
    assert "portals" in plan.video_prompt
    assert all("portal" in c.label for c in plan.choices)


async def test_every_plan_to_depth_three_keeps_the_contract(provider: OfflineProvider) -> None:
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for path in all_paths(3):
        plan = await walk(provider, path)
        assert_contract(plan, root=path == "")
        seen.add((plan.narration, tuple(c.label for c in plan.choices)))
    assert len(seen) == len(all_paths(3))  # every path plans differently


async def test_children_do_not_repeat_their_parents_choices(provider: OfflineProvider) -> None:
    for path in all_paths(3)[1:]:
        parent_path = path.rpartition("/")[0]
        parent = await walk(provider, parent_path)
        child = await walk(provider, path)
        assert not {c.label for c in parent.choices} & {c.label for c in child.choices}


async def test_deep_paths_keep_the_contract(provider: OfflineProvider) -> None:
    for path in ("/".join(["2", "0", "1"] * 16 + ["2", "2"]), "/".join(["1"] * 50)):
        plan = await walk(provider, path)
        assert_contract(plan, root=False)
    short = await provider.plan(plan_request("0/1", "Leap", seconds=4), None)
    assert_contract(short, root=False, seconds=4)


async def test_plans_are_deterministic_per_path(jobs_dir: Path) -> None:
    one = OfflineProvider(FAST, jobs_dir)
    two = OfflineProvider(FAST, jobs_dir)
    for path in ("", "0", "2/1/0"):
        assert await walk(one, path) == await walk(two, path)
    assert await walk(one, "0/1") != await walk(one, "1/0")
    assert await walk(one, "0") != await walk(one, "1")
    root_a = await walk(one, "", world_id="alpha")
    root_b = await walk(one, "", world_id="beta")
    assert root_a.choices != root_b.choices


async def test_child_narration_follows_the_chosen_choice(provider: OfflineProvider) -> None:
    root = await walk(provider, "")
    child = await provider.plan(plan_request("2", root.choices[2].label), None)
    first_words = " ".join(root.choices[2].label.split()[:4]).lower()
    assert first_words in child.narration.lower()
    assert first_words in child.video_prompt.lower()


STORY = tomllib.loads(
    resources.files("world.providers").joinpath("offline_story.toml").read_text("utf-8")
)
COLOURS = tuple(STORY["words"]["colours"])
WORLDS = ("default", "alpha", "noir")
CUSTOM_PROMPT = (
    "Rain on neon. A detective hunts a stolen moon across a flooded city of glass towers. "
    "Every witness lies a little, and the tide rises with each wrong guess."
)
CUSTOM_GUIDANCE = "Tone: hardboiled but kind. Keep every scene under a minute of story time."


@dataclass(frozen=True)
class Thing:
    """Something a choice can name: how to spot it in a label, and the forms the narration
    may name it by (its first mention, or its later one without a leading "the ")."""

    kind: str
    spotted_by: tuple[str, ...]
    named_as: tuple[str, ...]


def _named(kind: str, entries: list[dict[str, str]]) -> list[Thing]:
    return [
        Thing(kind, (e["name"], e["short"]), (e["name"], e["short"].removeprefix("the ")))
        for e in entries
    ]


THINGS = (
    _named("rival", STORY["rivals"])
    + _named("ally", STORY["allies"])
    + _named("gadget", STORY["gadgets"])
    + [
        Thing(kind, (p[kind],), (p[kind],))
        for p in STORY["places"]
        for kind in ("name", "hazard", "cover", "sound")
    ]
    + [Thing("rift", ("Rift",), ("Rift",))]
)


def colours_in(text: str) -> list[str]:
    return [c for c in COLOURS if re.search(rf"\b{c}\b", text)]


def portal_colours_in(text: str) -> set[str]:
    """The colours `text` gives a portal ("the amber portal", not the Rift's "violet inch")."""
    return {c for c in COLOURS if re.search(rf"\b{c} portal", text)}


def plans_by_path(
    world_id: str,
    depth: int,
    *,
    prompt: str = DEFAULT_BASE_PROMPT,
    guidance: str = DEFAULT_GUIDANCE,
) -> Iterator[tuple[str, str | None, Plan]]:
    """(path, the choice that led there, plan) for every path to `depth`, parents first, each
    planned once with its parent's label as the chosen choice."""
    from world.providers.offline_story import plan_scene

    def request(path: str, chosen: str | None) -> PlanRequest:
        return PlanRequest(
            world_id=world_id,
            base_prompt=prompt,
            guidance=guidance,
            path=path,
            depth=len(path.split("/")) if path else 0,
            video_seconds=8,
            model="local",
            chosen_choice=chosen,
        )

    frontier = [("", None)]
    while frontier:
        path, chosen = frontier.pop(0)
        plan = plan_scene(request(path, chosen))
        yield path, chosen, plan
        if (len(path.split("/")) if path else 0) < depth:
            frontier += [
                (f"{path}/{i}" if path else str(i), c.label) for i, c in enumerate(plan.choices)
            ]


def assert_narration_names_what_the_choices_name(plan: Plan, *, root: bool) -> None:
    """The agreement rule. Every rival, ally, gadget, place, hazard, cover, portal sound and
    the Rift that a choice (label or short label) names is named in the narration too; every
    portal colour a choice names is a colour the narration gives a portal (a later scene has
    one portal: the narration, past the sentence on the choice taken, names no other colour,
    and names the place it opens onto when a choice goes through it). In the opening,
    the narration gives each portal one colour and one sound ("one amber and ticking like a
    giant clock"), and each choice names exactly one portal: its colour, and if it names a
    sound, that portal's sound and no other."""
    narration = plan.narration
    for choice in plan.choices:
        for text in (choice.label, choice.short_label):
            for thing in THINGS:
                if any(form in text for form in thing.spotted_by):
                    assert any(form in narration for form in thing.named_as), (
                        f"the choice {text!r} names the {thing.kind} {thing.spotted_by[0]!r}, "
                        f"the narration does not: {narration!r}"
                    )
            for colour in colours_in(text):
                assert re.search(rf"\b{colour}\b", narration), (text, narration)
    if not root:
        named = {c for choice in plan.choices for c in portal_colours_in(choice.label)}
        assert len(named) <= 1, plan.choices  # a later scene has one portal
        now = " ".join(re.split(r"(?<=[.!?])\s+", narration)[1:])  # after the choice taken
        assert not named or portal_colours_in(now) == named, (narration, named)
        return
    portals = dict(re.findall(r"one (\w+) and ([^,.]+)", narration))
    assert len(portals) == 3, narration
    sounds = {p["sound"] for p in STORY["places"]}
    assert set(portals.values()) <= sounds, portals
    for choice in plan.choices:
        for text in (choice.label, choice.short_label):
            named = colours_in(text)
            assert len(named) == 1 and named[0] in portals, (text, portals)
            others = [sound for colour, sound in portals.items() if colour != named[0]]
            assert not [s for s in others if s in text], f"{text!r}: another portal's sound"
        assert portals[colours_in(choice.label)[0]] in choice.label, (choice.label, portals)


def test_narration_and_choices_agree_over_many_paths() -> None:
    seen = 0
    for world_id in WORLDS:
        for path, chosen, plan in plans_by_path(world_id, 4):
            assert_contract(plan, root=path == "")
            assert_narration_names_what_the_choices_name(plan, root=path == "")
            if chosen is not None:
                assert " ".join(chosen.split()[:4]).lower() in plan.narration.lower()
            seen += 1
    assert seen >= 300


def test_a_choice_naming_a_character_leads_to_a_scene_with_them() -> None:
    checked = 0
    for path, chosen, plan in plans_by_path("default", 4):
        if chosen is None:
            continue
        for thing in THINGS:
            if thing.kind in ("rival", "ally") and thing.spotted_by[1] in chosen:
                now = " ".join(re.split(r"(?<=[.!?])\s+", plan.narration)[1:])
                assert any(form in now for form in thing.named_as), (path, chosen, now)
                checked += 1
    assert checked > 50


def _runs(text: str, length: int = 6) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower().replace("\u2019", "'"))
    return {tuple(words[i : i + length]) for i in range(len(words) - length + 1)}


@pytest.mark.parametrize(
    ("prompt", "guidance"),
    [(DEFAULT_BASE_PROMPT, DEFAULT_GUIDANCE), (CUSTOM_PROMPT, CUSTOM_GUIDANCE)],
    ids=["default", "custom"],
)
async def test_no_prompt_text_leaks_into_plans_or_summaries(
    provider: OfflineProvider, prompt: str, guidance: str
) -> None:
    """No run of six words from the world's prompt or guidance (so no sentence of them) is in
    any plan field (title, narration, labels, video prompt) or in any summary."""
    forbidden = _runs(prompt) | _runs(guidance)
    summaries: dict[str, str] = {}
    checked = 0
    for path, _chosen, plan in plans_by_path("default", 3, prompt=prompt, guidance=guidance):
        parent = path.rpartition("/")[0] if path else None
        summary = await provider.summarise(
            SummaryRequest(
                world_id="default",
                base_prompt=prompt,
                model="local",
                previous_summary=summaries.get(parent) if parent is not None else None,
                narration=plan.narration,
                choices=tuple(c.label for c in plan.choices),
            ),
            None,
        )
        summaries[path] = summary
        fields = [plan.title, plan.narration, plan.video_prompt, summary]
        fields += [text for c in plan.choices for text in (c.label, c.short_label)]
        for text in fields:
            leaked = _runs(text) & forbidden
            assert not leaked, f"{' '.join(sorted(leaked)[0])!r} leaked into {text!r}"
        checked += 1
    assert checked == len(all_paths(3))
    assert "Stakes:" in summaries[""] and "multiverse" not in summaries[""]


async def test_blockme_choice_is_blocked(faulty: FaultyOfflineProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await faulty.plan(plan_request("1", f"Open the {BLOCK_MARKER} door"), None)
    assert caught.value.code == "blocked"
    assert caught.value.retryable is False
    assert caught.value.public_message == BLOCKED_MESSAGE
    assert caught.value.public_message == "The provider refused to render this scene."
    other = await faulty.plan(plan_request("1", "Open the door"), None)
    assert other == await OfflineProvider(FAST, faulty.jobs_dir).plan(
        plan_request("1", "Open the door"), None
    ), "without the marker it plans as the offline provider does"


async def test_the_product_provider_knows_no_test_markers(
    provider: OfflineProvider, tmp_path: Path
) -> None:
    plan = await provider.plan(plan_request("1", f"Open the {BLOCK_MARKER} door"), None)
    assert_contract(plan, root=False)
    job_id = await provider.start_render(render_request(f"A scene that will {FAIL_MARKER}."), None)
    statuses = [s async for s in provider.watch_render(job_id, None)]
    assert statuses[-1] == RenderStatus(100, done=True)
    assert await provider.download(job_id, None, tmp_path / "clip.mp4") > 0
    for source in (PROJECT / "world" / "providers").glob("offline*"):
        text = source.read_text()
        assert FAIL_MARKER not in text and BLOCK_MARKER not in text, source.name


def test_story_data_ships_with_the_package() -> None:
    data = resources.files("world.providers").joinpath("offline_story.toml")
    story = tomllib.loads(data.read_text("utf-8"))
    assert len(story["places"]) >= 4 and list(story["child_choices"]) == [
        "bold",
        "clever",
        "cautious",
    ]
    pyproject = tomllib.loads((PROJECT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["world"]
    assert any(Path("providers/offline_story.toml").match(p) for p in patterns), patterns


# --------------------------------------------------------------------------- rendering


async def test_render_progress_is_monotonic_and_ends_done(
    provider: OfflineProvider, jobs_dir: Path, tmp_path: Path
) -> None:
    job_id = await provider.start_render(render_request(), None)
    assert re.fullmatch(r"offline-[0-9a-f]{32}", job_id)
    assert provider.render_starts == 1
    spec = json.loads((jobs_dir / f"{job_id}.json").read_text())
    assert spec["prompt"] == render_request().prompt and spec["title"]
    statuses = [s async for s in provider.watch_render(job_id, None)]
    progress = [s.progress for s in statuses]
    assert progress == sorted(progress)
    assert all(0 <= p <= 100 for p in progress)
    assert statuses[-1] == RenderStatus(100, done=True)
    assert not any(s.done for s in statuses[:-1])
    size = await provider.download(job_id, None, tmp_path / "clip.mp4")
    info = probe(tmp_path / "clip.mp4")
    assert size == (tmp_path / "clip.mp4").stat().st_size
    assert (info.width, info.height, info.codec) == (160, 90, "h264")
    assert info.duration_seconds == pytest.approx(1, abs=0.1)


def _mean_difference(a: av.VideoFrame, b: av.VideoFrame) -> float:
    diff = ImageChops.difference(a.to_image().convert("RGB"), b.to_image().convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3


async def test_the_clip_is_the_scene_drawn_and_moving(jobs_dir: Path, tmp_path: Path) -> None:
    """At the default size and length: H.264 yuv420p, 320x180, 4 s at 24 fps, moving, the
    same bytes for the same branch and a different picture for another."""
    settings = ProviderSettings(offline_render_seconds=0.0)
    assert (settings.offline_width, settings.offline_height) == (320, 180)
    provider = OfflineProvider(settings, jobs_dir)
    clips = {}
    for name, path in (("root", ""), ("again", ""), ("child", "1")):
        plan = await walk(provider, path)
        request = RenderRequest(
            world_id="default",
            path=path,
            prompt=plan.video_prompt,
            title=plan.title,
            model="local",
            size="1280x720",
            seconds=8,
        )
        job_id = await provider.start_render(request, None)
        clips[name] = tmp_path / f"{name}.mp4"
        assert await provider.download(job_id, None, clips[name]) < 400_000
    info = probe(clips["root"])
    assert (info.width, info.height, info.codec, info.pix_fmt) == (320, 180, "h264", "yuv420p")
    assert info.frames == settings.offline_clip_seconds * CLIP_FPS
    assert abs(info.duration_seconds - settings.offline_clip_seconds) <= 1 / CLIP_FPS + 1e-6
    with av.open(str(clips["root"])) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 4 * CLIP_FPS
    assert _mean_difference(frames[0], frames[len(frames) // 2]) > 2
    assert _mean_difference(frames[len(frames) // 2], frames[-1]) > 2
    assert clips["root"].read_bytes() == clips["again"].read_bytes()
    with av.open(str(clips["child"])) as container:
        child_first = next(iter(container.decode(video=0)))
    assert _mean_difference(frames[0], child_first) > 8


async def test_the_clip_teases_the_plans_choices(provider: OfflineProvider) -> None:
    for path in ("", "0", "2/1"):
        plan = await walk(provider, path, world_id="noir")
        look = clip_look("noir", path)
        assert look.choices == tuple(c.short_label for c in plan.choices)
        assert len(look.portals) == (3 if path == "" else 1)
        colours = {name: tuple(rgb) for name, rgb in STORY["colour_rgb"].items()}
        named = colours_in(plan.video_prompt)  # the portals the video prompt shows
        assert {colours[c] for c in named} >= set(look.portals)


async def test_render_resumes_after_a_restart(jobs_dir: Path, tmp_path: Path) -> None:
    before = OfflineProvider(FAST, jobs_dir)
    job_id = await before.start_render(render_request(), None)
    watching = before.watch_render(job_id, None)
    first = await anext(watching)
    assert not first.done
    await watching.aclose()  # the process "dies" mid-render

    after = OfflineProvider(FAST, jobs_dir)
    statuses = [s async for s in after.watch_render(job_id, None)]
    assert statuses[-1].done
    assert await after.download(job_id, None, tmp_path / "resumed.mp4") > 0
    assert probe(tmp_path / "resumed.mp4").codec == "h264"
    assert (before.render_starts, after.render_starts) == (1, 0)
    assert len(list(jobs_dir.glob("*.json"))) == 1  # no new render was started


def _age_job(jobs_dir: Path, job_id: str, seconds: float) -> None:
    spec_path = jobs_dir / f"{job_id}.json"
    spec = json.loads(spec_path.read_text())
    spec["created"] = time.time() - seconds
    spec_path.write_text(json.dumps(spec))


async def test_resumed_watch_continues_from_the_jobs_creation(jobs_dir: Path) -> None:
    starter = OfflineProvider(SLOW, jobs_dir)
    job_id = await starter.start_render(render_request(), None)
    _age_job(jobs_dir, job_id, 30.0)  # half of the 60 s render happened before the restart
    watching = OfflineProvider(SLOW, jobs_dir).watch_render(job_id, None)
    first = await anext(watching)
    await watching.aclose()
    assert 50 <= first.progress < 100 and not first.done

    _age_job(jobs_dir, job_id, 120.0)  # the render finished while nobody was watching
    statuses = [s async for s in OfflineProvider(SLOW, jobs_dir).watch_render(job_id, None)]
    assert statuses == [RenderStatus(100, done=True)]


async def test_download_before_the_render_is_done_is_refused(
    jobs_dir: Path, tmp_path: Path
) -> None:
    slow = OfflineProvider(SLOW, jobs_dir)
    job_id = await slow.start_render(render_request(), None)
    with pytest.raises(ProviderError) as caught:
        await slow.download(job_id, None, tmp_path / "early.mp4")
    assert caught.value.code == "provider_error"
    assert not (tmp_path / "early.mp4").exists()


async def test_shared_jobs_dir_counts_renders_across_instances(jobs_dir: Path) -> None:
    one = OfflineProvider(FAST, jobs_dir)
    two = OfflineProvider(FAST, jobs_dir)
    ids = {
        await one.start_render(render_request(), None),
        await two.start_render(render_request(), None),
        await two.start_render(render_request(), None),
    }
    assert len(ids) == 3
    assert (one.render_starts, two.render_starts) == (1, 2)
    assert len(list(jobs_dir.glob("*.json"))) == 3
    assert not [p for p in jobs_dir.iterdir() if p.name.startswith(".")]


async def test_watch_can_be_cancelled(jobs_dir: Path) -> None:
    slow = OfflineProvider(SLOW, jobs_dir)
    job_id = await slow.start_render(render_request(), None)
    started = asyncio.Event()

    async def consume() -> None:
        async for _status in slow.watch_render(job_id, None):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_failme_render_fails_halfway_as_blocked(
    faulty: FaultyOfflineProvider, tmp_path: Path
) -> None:
    job_id = await faulty.start_render(render_request(f"A scene that will {FAIL_MARKER}."), None)
    seen: list[RenderStatus] = []
    with pytest.raises(ProviderError) as caught:
        async for status in faulty.watch_render(job_id, None):
            seen.append(status)
    assert caught.value.code == "blocked"
    assert caught.value.retryable is False
    assert caught.value.releases_claim is False
    assert caught.value.public_message == "The provider refused to render this scene."
    assert seen and all(not s.done and s.progress < 50 for s in seen)
    with pytest.raises(ProviderError) as again:
        await faulty.download(job_id, None, tmp_path / "never.mp4")
    assert again.value.code == "blocked"


async def test_a_resumed_failme_render_still_fails(jobs_dir: Path, tmp_path: Path) -> None:
    before = FaultyOfflineProvider(SLOW, jobs_dir)
    job_id = await before.start_render(render_request(f"A scene that will {FAIL_MARKER}."), None)
    _age_job(jobs_dir, job_id, 20.0)  # a third of the render happened before the restart
    watching = FaultyOfflineProvider(SLOW, jobs_dir).watch_render(job_id, None)
    first = await anext(watching)
    await watching.aclose()
    assert 30 <= first.progress < 50 and not first.done

    _age_job(jobs_dir, job_id, 120.0)  # it "finished" while nobody was watching: still refused
    after = FaultyOfflineProvider(SLOW, jobs_dir)
    with pytest.raises(ProviderError) as caught:
        async for _status in after.watch_render(job_id, None):
            pass
    assert caught.value.code == "blocked"
    with pytest.raises(ProviderError) as again:
        await after.download(job_id, None, tmp_path / "never.mp4")
    assert again.value.code == "blocked"
    assert (before.render_starts, after.render_starts) == (1, 0)


@pytest.mark.parametrize("job_id", ["offline-" + "0" * 32, "../../etc/passwd", ""])
async def test_unknown_jobs_are_not_found(
    provider: OfflineProvider, tmp_path: Path, job_id: str
) -> None:
    with pytest.raises(ProviderError) as watched:
        async for _status in provider.watch_render(job_id, None):
            pass
    assert watched.value.code == "not_found"
    with pytest.raises(ProviderError) as downloaded:
        await provider.download(job_id, None, tmp_path / "missing.mp4")
    assert downloaded.value.code == "not_found"


# --------------------------------------------------------------------------- summaries


def assert_bullets(summary: str) -> list[str]:
    lines = summary.splitlines()
    assert 1 <= len(lines) <= 3
    for line in lines:
        assert line.startswith("- ") and not line.startswith("- -"), line
        assert len(line) < 160
    return lines


async def test_summaries_are_three_short_bullets(provider: OfflineProvider) -> None:
    root = await walk(provider, "")
    first = await provider.summarise(
        SummaryRequest(
            world_id="default",
            base_prompt=DEFAULT_BASE_PROMPT,
            model="local",
            previous_summary=None,
            narration=root.narration,
            choices=tuple(c.label for c in root.choices),
        ),
        None,
    )
    assert len(assert_bullets(first)) == 3

    child = await walk(provider, "1")
    second = await provider.summarise(
        SummaryRequest(
            world_id="default",
            base_prompt=DEFAULT_BASE_PROMPT,
            model="local",
            previous_summary="- - " + "a very long earlier bullet " * 20 + "\n- * another",
            narration=child.narration,
            choices=tuple(c.label for c in child.choices),
        ),
        None,
    )
    lines = assert_bullets(second)
    assert any("Earlier:" in line for line in lines)
    assert second != first
