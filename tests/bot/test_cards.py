"""Pure card rendering: what members read, within Discord's Components V2 limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import discord
import pytest

from bot import cards
from world.play import CLOSED, OPEN, PICK, VOTE, RoundState
from world.types import ChildState, ChoiceView, SceneView, Status

OPENED = datetime(2026, 1, 1, tzinfo=UTC)


def scene(
    path: str = "0/2", *, narration_words: int = 120, label_words: int = 22, **kw
) -> SceneView:
    states = [ChildState.READY, ChildState.MINTING, ChildState.UNEXPLORED]
    choices = tuple(
        ChoiceView(
            index=i,
            label=" ".join(["wander"] * label_words),
            short_label=" ".join(["short"] * 12),
            path=f"{path}/{i}" if path else str(i),
            state=states[i],
            progress=40 if states[i] is ChildState.MINTING else 0,
        )
        for i in range(3)
    )
    values = {
        "world_id": "default",
        "path": path,
        "depth": path.count("/") + 1 if path else 0,
        "status": Status.READY,
        "title": "The Clockwork Jungle",
        "narration": " ".join(["storyword"] * narration_words),
        "choice_label": "Climb the rim",
        "choices": choices,
        "video_url": None,
        "video_key": "worlds/default/scenes/0-2/abc.mp4",
        "video_bytes": 20_000,
        "estimated_cost_usd": 0.8,
    }
    values.update(kw)
    return SceneView(**values)


def a_round(mode: str = VOTE, status: str = OPEN, closes: datetime | None = OPENED) -> RoundState:
    return RoundState(
        id=42,
        channel_id=7,
        world_id="default",
        path="0/2",
        mode=mode,
        status=status,
        message_id=9,
        opened_at=OPENED,
        closes_at=closes,
        winner_index=None,
    )


def texts(layout: discord.ui.LayoutView) -> str:
    return "\n".join(
        i.content for i in layout.walk_children() if isinstance(i, discord.ui.TextDisplay)
    )


def buttons(layout: discord.ui.LayoutView) -> list[discord.ui.Button]:
    found = []
    for item in layout.walk_children():
        if isinstance(item, discord.ui.DynamicItem):
            item = item.item
        if isinstance(item, discord.ui.Button):
            found.append(item)
    return found


def within_limits(layout: discord.ui.LayoutView) -> None:
    assert layout.content_length() <= 4000
    assert layout.total_children_count <= 40
    for b in buttons(layout):
        assert len(b.label or "") <= 80
        assert b.custom_id is None or len(b.custom_id) <= 100


@pytest.mark.parametrize(
    ("percent", "bar"),
    [
        (0, "▱" * 12 + " 0 %"),
        (50, "▰" * 6 + "▱" * 6 + " 50 %"),
        (100, "▰" * 12 + " 100 %"),
        (140, "▰" * 12 + " 100 %"),
        (-5, "▱" * 12 + " 0 %"),
    ],
)
def test_progress_bar(percent, bar):
    assert cards.progress_bar(percent) == bar


def test_costs_read_plainly():
    assert cards.cost_text(0) == "free"
    assert cards.cost_text(0.8) == "about $0.80"


def test_choice_states_on_buttons():
    view = scene()
    labels = [cards.choice_button_label(c, view.estimated_cost_usd) for c in view.choices]
    assert labels[0].startswith("1. short") and labels[0].endswith(" · instant")
    assert labels[1].endswith(" · minting 40 %")
    assert labels[2].endswith(" · unexplored · about $0.80")
    failed = ChoiceView(0, "Jump", "Jump", "0", ChildState.FAILED)
    assert cards.choice_button_label(failed, 0.8) == "1. Jump · failed · retry"
    assert all(len(label) <= 80 for label in labels)


def test_a_vote_card_shows_tallies_and_the_countdown():
    layout = cards.scene_card(
        scene(),
        round=a_round(closes=OPENED + timedelta(seconds=60)),
        tallies={0: 1, 2: 3},
        media=cards.Media(filename="scene-0-2.mp4"),
    )
    text = texts(layout)
    assert "## The Clockwork Jungle" in text and "-# Start › 1 › 3" in text
    assert "instant · 1 vote" in text and "3 votes" in text and "0 votes" in text
    assert f"<t:{int((OPENED + timedelta(seconds=60)).timestamp())}:R>" in text
    assert [b.custom_id for b in buttons(layout)] == [f"sw:v1:c:42:{i}" for i in range(3)]
    assert not any(b.disabled for b in buttons(layout))
    [gallery] = [i for i in layout.walk_children() if isinstance(i, discord.ui.MediaGallery)]
    assert gallery.items[0].media.url == "attachment://scene-0-2.mp4"
    within_limits(layout)


def test_the_largest_scene_stays_within_discord_limits():
    layout = cards.scene_card(
        scene(narration_words=400, label_words=80, title="T" * 400),
        round=a_round(),
        tallies={0: 10**6},
        media=cards.Media(url="https://cdn.example/x.mp4"),
    )
    within_limits(layout)


def test_a_pick_card_and_a_held_vote():
    assert "first click decides" in texts(
        cards.scene_card(scene(), round=a_round(PICK, closes=None), media=cards.Media())
    )
    held = cards.scene_card(scene(), round=a_round(closes=None), media=cards.Media())
    assert "the first vote starts a new countdown" in texts(held)


def test_a_closed_round_marks_the_choice_and_disables_buttons():
    layout = cards.scene_card(scene(), round=a_round(status=CLOSED), media=cards.Media(), winner=2)
    assert "Chosen: **3. short" in texts(layout)
    assert "▶ **3.**" in texts(layout)
    assert all(b.disabled for b in buttons(layout))


def test_clip_media_prefers_a_link_then_an_upload_that_fits():
    assert (
        cards.clip_media(scene(video_url="https://cdn.example/a.mp4")).url
        == "https://cdn.example/a.mp4"
    )
    assert cards.clip_media(scene()).filename == "scene-0-2.mp4"
    too_big = cards.clip_media(scene(video_bytes=11 * 1024 * 1024))
    assert too_big.filename is None and "too large" in (too_big.note or "")
    assert cards.clip_media(scene(), upload_limit=10_000).note


def test_mint_cards_show_the_price_before_anything_is_spent():
    target = SceneView(
        "default",
        "0/2/1",
        3,
        Status.PENDING,
        choice_label="Dive into the amber portal",
        estimated_cost_usd=0.8,
    )
    paid = cards.mint_card(target, channel_id=7, provider_name="openai", needs_key=True)
    assert "about $0.80 with their own openai key" in texts(paid)
    [mint] = buttons(paid)
    assert mint.label == "Mint this branch · about $0.80" and mint.custom_id == "sw:v1:m:7:021"
    free = cards.mint_card(target, channel_id=7, provider_name="offline", needs_key=False)
    assert "free on this world" in texts(free)
    failed = SceneView(
        "default",
        "0",
        1,
        Status.FAILED,
        choice_label="Jump",
        failure_detail="The provider refused to render this scene.",
        estimated_cost_usd=0.8,
    )
    retry = cards.mint_card(failed, channel_id=7, provider_name="openai", needs_key=True)
    assert "Reason: The provider refused" in texts(retry)
    assert buttons(retry)[0].label == "Retry · about $0.80"
    within_limits(paid)


def test_progress_cards():
    running = cards.progress_card("Dive", "0/1", 30, stage="rendering")
    assert (
        "Minting “Dive”" in texts(running)
        and "30 %" in texts(running)
        and "rendering" in texts(running)
    )
    done = cards.progress_card("Dive", "0/1", 100, outcome="Done: the new scene is below.")
    assert "Done" in texts(done) and "%" not in texts(done)
    assert not buttons(running)


def test_where_text_lists_every_step():
    text = cards.where_text([("", "The Gate"), ("1", "The Arcade"), ("1/0", None)], "1/0")
    assert text.splitlines()[0] == "**Start › 2 › 1**"
    assert "The Arcade" in text and "not made yet" in text


def test_render_wait_text_shows_status_and_time_never_a_percentage():
    text = cards.render_wait_text("in_progress", 42.7, 90)
    assert text == "rendering (in progress) · 0:42 so far; this model usually takes about 1:30"
    assert "%" not in text
    assert cards.render_wait_text(None, 3600, None) == "rendering (in progress) · 60:00 so far"


def test_a_branch_that_may_already_be_paid_for_asks_the_next_payer_to_mint_anyway():
    uncertain = SceneView(
        "default",
        "1",
        1,
        Status.FAILED,
        choice_label="Jump",
        failure_code="uncertain",
        failure_detail="A render of this branch may already have been started and paid for.",
        estimated_cost_usd=0.96,
    )
    card = cards.mint_card(uncertain, channel_id=7, provider_name="OpenRouter", needs_key=True)
    assert "This branch may already have been paid for" in texts(card)
    assert "may already have been started" in texts(card)
    assert buttons(card)[0].label == "Mint anyway · about $0.96"
    within_limits(card)


def test_a_provider_without_percentages_shows_minting_without_a_number():
    minting = ChoiceView(0, "Run", "Run", "0", ChildState.MINTING, progress=5)
    assert cards.choice_state_text(minting, 0.96) == "minting 5 %"
    unknown = ChoiceView(0, "Run", "Run", "0", ChildState.MINTING, progress=5, progress_known=False)
    assert cards.choice_state_text(unknown, 0.96) == "minting"
    assert cards.stage_wait_text("planning") == "planning the scene"
    card = cards.progress_card("Run", "0", 5, waiting=cards.stage_wait_text("queued"))
    assert "%" not in texts(card) and "waiting for the provider to start" in texts(card)
