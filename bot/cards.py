"""Card layouts: scene cards, mint cards, progress cards, as Components V2 layouts.

Nothing here touches the network or the database: every function takes plain values and
returns text or a `discord.ui.LayoutView`, so it is unit-tested without Discord. Limits kept
here: <= 40 components, <= 4000 characters of text, button labels <= 80 characters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import discord
from discord import ui

from bot.components import ChoiceButton, MintButton, ReportButton
from bot.rules import relative_time
from world import paths
from world.play import PICK, RoundState
from world.types import UNCERTAIN, ChildState, ChoiceView, SceneView, Status

MAX_TEXT = 4000
MAX_LABEL = 80
MAX_NARRATION = 1800
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024

COLOUR_SCENE = discord.Colour(0x5865F2)
COLOUR_MINT = discord.Colour(0xF0B232)
COLOUR_FAILED = discord.Colour(0xDA373C)
COLOUR_DONE = discord.Colour(0x23A55A)


@dataclass(frozen=True)
class Media:
    """How a scene's clip appears on its card."""

    url: str | None = None  # a link the client can play
    filename: str | None = None  # an attachment uploaded with the card
    note: str | None = None  # why there is no clip


# -- small text pieces ---------------------------------------------------------------
# Plain, key-free reasons for the codes a provider error can carry.
FAILURE_REASONS = {
    "invalid_key": "the provider rejected the contributor's key",
    "quota": "the contributor's key ran out of quota",
    "rate_limited": "the provider is rate-limiting the contributor's key",
    "permission": "the contributor's key may not use this video model",
    "no_video_access": "the contributor's key cannot make videos (a free-tier key, or no billing)",
    "blocked": "the video provider refused to make this scene",
    "storage": "the clip could not be stored yet",
}


def failure_reason(code: str | None, detail: str | None) -> str:
    """Why a mint failed, as a clause for a sentence."""
    if code in FAILURE_REASONS:
        return FAILURE_REASONS[code]
    return (detail or "something went wrong while making it").rstrip(".")


def choice_name(label: str | None, index: int) -> str:
    """A clicked button's label without its state suffix ("2. Hide · instant" -> "2. Hide")."""
    if not label:
        return f"choice {index + 1}"
    return label.split(" · ", 1)[0]


def clip_filename(view: SceneView) -> str:
    return f"scene-{paths.storage_slug(view.path)}.mp4"


def clip_media(view: SceneView, upload_limit: int = DEFAULT_UPLOAD_LIMIT) -> Media:
    """A link when the store has one; otherwise the file, if it fits the upload limit."""
    if view.video_url:
        return Media(url=view.video_url)
    if view.video_key and view.video_bytes is not None and view.video_bytes <= upload_limit:
        return Media(filename=clip_filename(view))
    if view.video_key:
        return Media(note="The clip is too large to upload to this server.")
    return Media(note="This scene has no clip.")


def progress_bar(percent: int, width: int = 12) -> str:
    """`▰▰▰▱▱▱▱▱▱▱▱▱ 25 %` (clamped to 0..100)."""
    percent = max(0, min(100, int(percent)))
    filled = round(percent * width / 100)
    return "▰" * filled + "▱" * (width - filled) + f" {percent} %"


def duration_text(seconds: float) -> str:
    """`0:42`, `12:05`: minutes and seconds."""
    whole = max(0, int(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def render_wait_text(
    provider_status: str | None, elapsed_seconds: float, typical_seconds: float | None
) -> str:
    """Honest progress for a provider that reports no percentage: status and time taken."""
    status = (provider_status or "in progress").replace("_", " ")
    text = f"rendering ({status}) · {duration_text(elapsed_seconds)} so far"
    if typical_seconds:
        text += f"; this model usually takes about {duration_text(typical_seconds)}"
    return text


_STAGE_WAITS = {
    "queued": "waiting for the provider to start",
    "planning": "planning the scene",
    "rendering": "rendering",
    "storing": "storing the clip",
    "summarising": "writing down what changed in the world",
}


def stage_wait_text(stage: str | None) -> str:
    """A stage in words, for providers without percentages (no bar, no number)."""
    return _STAGE_WAITS.get(stage or "", "working on it")


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st..."""
    if 10 <= number % 100 <= 20:
        return f"{number}th"
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def queue_wait_text(place: int) -> str:
    """A mint waiting for a free generation slot: its place in line (1 = next to start)."""
    ahead = place - 1
    others = "next to start" if not ahead else f"{ahead} ahead of it"
    return f"Waiting in line: {ordinal(place)}, {others} (every generation slot is busy)"


def cost_text(usd: float) -> str:
    if usd <= 0:
        return "free"
    return f"about ${usd:.2f}"


def clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


def choice_state_text(choice: ChoiceView, cost_usd: float) -> str:
    if choice.state is ChildState.READY:
        return "instant"
    if choice.state is ChildState.MINTING:
        if not choice.progress_known:
            return "minting"
        return f"minting {max(0, min(100, choice.progress))} %"
    if choice.state is ChildState.FAILED:
        return "failed · retry"
    return f"unexplored · {cost_text(cost_usd)}"


def choice_button_label(choice: ChoiceView, cost_usd: float) -> str:
    state = choice_state_text(choice, cost_usd)
    head = f"{choice.index + 1}. "
    room = MAX_LABEL - len(head) - len(state) - 3
    return f"{head}{clip(choice.short_label or choice.label, max(8, room))} · {state}"[:MAX_LABEL]


def votes_text(count: int) -> str:
    return "1 vote" if count == 1 else f"{count} votes"


BREADCRUMB_STEPS = 12  # a deeper path shows its first and last steps and its depth


def breadcrumbs(path: str) -> str:
    """A path for people ("Start › 1 › 3 › 2"), bounded at any depth: past 12 steps only the
    first and last show ("Start › 1 › 3 › 2 › … › 3 (500 deep)")."""
    depth = paths.depth(path)
    if depth <= BREADCRUMB_STEPS:
        return paths.breadcrumbs(path)
    steps = [str(int(part) + 1) for part in path.split("/")]
    return "Start › " + " › ".join([*steps[:3], "…", *steps[-6:]]) + f" ({depth} deep)"


# -- cards ---------------------------------------------------------------------------


def _button_style(choice: ChoiceView) -> discord.ButtonStyle:
    if choice.state is ChildState.READY:
        return discord.ButtonStyle.success
    if choice.state is ChildState.FAILED:
        return discord.ButtonStyle.danger
    if choice.state is ChildState.MINTING:
        return discord.ButtonStyle.secondary
    return discord.ButtonStyle.primary


def _media_item(media: Media, view: SceneView) -> ui.MediaGallery | None:
    source = media.url or (f"attachment://{media.filename}" if media.filename else None)
    if source is None:
        return None
    description = clip(view.title or "Scene clip", 256)
    return ui.MediaGallery(discord.MediaGalleryItem(source, description=description))


def scene_card(
    view: SceneView,
    *,
    round: RoundState | None,
    tallies: Mapping[int, int] | None = None,
    media: Media,
    winner: int | None = None,
    reportable: bool = False,
) -> ui.LayoutView:
    """The card of a ready scene: clip, title, narration, breadcrumbs, one button per choice.

    With an open round the buttons vote (or pick); a closed round shows the chosen branch and
    disabled buttons. `reportable`: an open round's card also has a Report button. A scene
    the admins hid shows that it was removed, without its clip or text.
    """
    if view.status is Status.HIDDEN:
        return removed_card(view)
    tallies = tallies or {}
    layout = ui.LayoutView(timeout=None)
    box = ui.Container(accent_colour=COLOUR_SCENE)
    box.add_item(
        ui.TextDisplay(
            f"## {clip(view.title or 'Untitled scene', 200)}\n-# {breadcrumbs(view.path)}"
        )
    )
    gallery = _media_item(media, view)
    if gallery is not None:
        box.add_item(gallery)
    elif media.note:
        box.add_item(ui.TextDisplay(f"-# {media.note}"))
    box.add_item(ui.TextDisplay(clip(view.narration or "", MAX_NARRATION) or "…"))
    box.add_item(ui.Separator())
    voting = round is not None and round.mode != PICK
    lines = []
    for choice in view.choices:
        state = choice_state_text(choice, view.estimated_cost_usd)
        line = f"**{choice.index + 1}.** {clip(choice.label, 300)} — {state}"
        if voting:
            line += f" · {votes_text(tallies.get(choice.index, 0))}"
        if winner == choice.index:
            line = f"▶ {line}"
        lines.append(line)
    if lines:
        box.add_item(ui.TextDisplay("\n".join(lines)))
    box.add_item(ui.TextDisplay(_round_footer(view, round, winner)))
    if round is not None and view.choices:
        open_round = round.is_open and winner is None
        row = ui.ActionRow()
        for choice in view.choices:
            row.add_item(
                ChoiceButton(
                    round.id,
                    choice.index,
                    label=choice_button_label(choice, view.estimated_cost_usd),
                    style=_button_style(choice) if open_round else discord.ButtonStyle.secondary,
                    disabled=not open_round,
                )
            )
        box.add_item(row)
    if reportable and round is not None and round.is_open and winner is None:
        box.add_item(ui.ActionRow(ReportButton(round.id)))
    layout.add_item(box)
    return layout


REMOVED_HEADING = "Removed by the admins"


def removed_card(view: SceneView) -> ui.LayoutView:
    """What a card of a hidden scene shows instead: no clip, no text, no choices."""
    layout = ui.LayoutView(timeout=None)
    box = ui.Container(accent_colour=COLOUR_FAILED)
    box.add_item(ui.TextDisplay(f"## {REMOVED_HEADING}\n-# {breadcrumbs(view.path)}"))
    box.add_item(
        ui.TextDisplay(
            "This scene's clip and text were removed by the admins. The branch can be minted again."
        )
    )
    layout.add_item(box)
    return layout


def _round_footer(view: SceneView, round: RoundState | None, winner: int | None) -> str:
    if not view.choices:
        return "-# The story ends here."
    if round is None:
        return "-# This card is no longer taking choices."
    if winner is not None or not round.is_open:
        chosen = winner if winner is not None else round.winner_index
        if chosen is None or chosen >= len(view.choices):
            return "-# This round is over."
        return f"-# Chosen: **{chosen + 1}. {clip(view.choices[chosen].short_label, 80)}**"
    if round.mode == PICK:
        return "-# Pick mode: the first click decides."
    if round.closes_at is None:
        return "-# Time is up but nobody has voted yet: the first vote starts a new countdown."
    return (
        f"-# Vote by clicking a choice (you can change your vote). "
        f"Voting closes {relative_time(round.closes_at)}."
    )


def mint_card(
    target: SceneView, *, channel_id: int, provider_name: str, needs_key: bool
) -> ui.LayoutView:
    """The card of an unexplored (or failed) winner: what it costs and a button to mint it."""
    layout = ui.LayoutView(timeout=None)
    failed = target.status is Status.FAILED
    uncertain = failed and target.failure_code == UNCERTAIN
    hidden = target.status is Status.HIDDEN
    box = ui.Container(accent_colour=COLOUR_FAILED if failed else COLOUR_MINT)
    heading = (
        "This branch may already have been paid for"
        if uncertain
        else "Minting this branch failed"
        if failed
        else REMOVED_HEADING
        if hidden
        else "Mint this branch"
    )
    box.add_item(ui.TextDisplay(f"## {heading}\n-# {breadcrumbs(target.path)}"))
    choice = clip(target.choice_label or "The opening scene", 400)
    cost = cost_text(target.estimated_cost_usd)
    if needs_key:
        pays = (
            f"Whoever mints it pays {cost} with their own {provider_name} key; after that it plays "
            "free for everyone, in every server."
        )
    else:
        pays = "Minting it is free on this world; after that it plays at once in every server."
    lines = [f"**{choice}** has not been made yet." if not failed else f"**{choice}**", pays]
    if hidden:
        lines[0] = f"**{choice}**: its clip was removed by the admins; it can be made again."
    elif failed and target.failure_detail:
        lines.append(f"Reason: {clip(target.failure_detail, 300)}")
    elif target.failure_detail:
        lines.append(f"-# Last attempt: {clip(target.failure_detail, 300)}")
    box.add_item(ui.TextDisplay("\n".join(lines)))
    label = (
        "Mint anyway" if uncertain else "Retry" if failed else "Mint this branch"
    ) + f" · {cost}"
    style = discord.ButtonStyle.danger if failed else discord.ButtonStyle.success
    box.add_item(ui.ActionRow(MintButton(channel_id, target.path, label=label, style=style)))
    layout.add_item(box)
    return layout


def progress_card(
    choice_label: str | None,
    path: str,
    percent: int,
    *,
    stage: str | None = None,
    outcome: str | None = None,
    failed: bool = False,
    waiting: str | None = None,
) -> ui.LayoutView:
    """The one bot-owned message a channel watches while a branch is minted.

    `waiting` replaces the bar while a provider without percentages renders (see
    `render_wait_text`): no invented number is ever shown.
    """
    layout = ui.LayoutView(timeout=None)
    colour = COLOUR_MINT if outcome is None else COLOUR_FAILED if failed else COLOUR_DONE
    box = ui.Container(accent_colour=colour)
    title = clip(choice_label or "The opening scene", 200)
    box.add_item(ui.TextDisplay(f"### Minting “{title}”\n-# {breadcrumbs(path)}"))
    if outcome is None and waiting:
        box.add_item(ui.TextDisplay(f"⏳ {waiting}"))
    elif outcome is None:
        stage_text = f" · {stage}" if stage else ""
        box.add_item(ui.TextDisplay(f"`{progress_bar(percent)}`{stage_text}"))
    else:
        box.add_item(ui.TextDisplay(outcome))
    layout.add_item(box)
    return layout


def notice_card(text: str, *, colour: discord.Colour = COLOUR_SCENE) -> ui.LayoutView:
    layout = ui.LayoutView(timeout=None)
    layout.add_item(ui.Container(ui.TextDisplay(text), accent_colour=colour))
    return layout


def where_text(view_titles: list[tuple[str, str | None]], path: str) -> str:
    """Breadcrumbs plus the title of every scene on the way (for /adventure where)."""
    lines = [f"**{breadcrumbs(path)}**"]
    for step_path, title in view_titles:
        depth = paths.depth(step_path)
        lines.append(f"{'  ' * depth}• {clip(title or 'not made yet', 100)}")
    return clip_lines("\n".join(lines), 1900)


def clip_lines(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
