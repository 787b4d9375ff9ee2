"""The offline provider's story writer: plans and summaries from offline_story.toml.

The words and templates are data (offline_story.toml, beside this module, read once at
import); this module owns how they are put together. A plan is deterministic per world id
and branch path: a scene's place, cast and three choices come from a random generator
seeded by both, and a child scene starts where the choice that led to it went. Plans obey
the planner contract: narration of at most 120 words, exactly three clearly different
choices (one bold, one clever, one cautious), a title of at most eight words.

Narration and choices agree: both are written from one skeleton (`_Scene`), so a portal has
one colour and one sound wherever it is named, and the narration names everything the
scene's choices refer to (its hazard, cover, portal and where it opens, gadget, rival, ally,
the Rift). The story is the offline planner's own: no plan field or summary copies the
world's base prompt or guidance (those steer the paid planners).
"""

from __future__ import annotations

import hashlib
import random
import re
import string
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from world.providers.base import Plan, PlanChoice, PlanRequest, SummaryRequest

__all__ = ["MAX_NARRATION_WORDS", "ClipLook", "clip_look", "clip_words", "plan_scene", "summarise"]

MAX_NARRATION_WORDS = 120
MAX_LABEL_WORDS = 22
MAX_SHORT_LABEL_WORDS = 12
MAX_TITLE_WORDS = 8
MAX_BULLETS = 3
MAX_BULLET_CHARS = 159
DATA_FILE = "offline_story.toml"


# --------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class _Place:
    name: str
    short: str
    detail: str
    hazard: str
    cover: str
    light: str
    sound: str  # how a portal to it sounds


@dataclass(frozen=True)
class _Named:
    """A character or gadget: its first mention and its later ones."""

    name: str
    short: str


@dataclass(frozen=True)
class _ChoiceTemplate:
    label: str
    short: str
    moves: bool = False  # leads to another place
    intent: str = ""
    mentions: tuple[str, ...] = ()  # what the label refers to without a field ("rift")

    @property
    def uses(self) -> frozenset[str]:
        """The fields its label and short label fill in, and its `mentions`."""
        return _fields_of(self.label) | _fields_of(self.short) | set(self.mentions)


@dataclass(frozen=True)
class _Story:
    nexus: _Place
    places: tuple[_Place, ...]
    allies: tuple[_Named, ...]
    rivals: tuple[_Named, ...]
    gadgets: tuple[_Named, ...]
    words: dict[str, tuple[str, ...]]
    colour_rgb: dict[str, tuple[int, int, int]]
    root_choices: tuple[_ChoiceTemplate, ...]
    child_choices: dict[str, tuple[_ChoiceTemplate, ...]]  # by intent, in file order
    opening: dict[str, Any]
    scene: dict[str, Any]
    video_prompt: dict[str, Any]
    summary: dict[str, str]


def _load_story() -> _Story:
    raw = tomllib.loads(resources.files(__package__).joinpath(DATA_FILE).read_text("utf-8"))
    return _Story(
        nexus=_Place(**raw["nexus"]),
        places=tuple(_Place(**p) for p in raw["places"]),
        allies=tuple(_Named(**c) for c in raw["allies"]),
        rivals=tuple(_Named(**c) for c in raw["rivals"]),
        gadgets=tuple(_Named(**g) for g in raw["gadgets"]),
        words={key: tuple(values) for key, values in raw["words"].items()},
        colour_rgb={name: (rgb[0], rgb[1], rgb[2]) for name, rgb in raw["colour_rgb"].items()},
        root_choices=tuple(_choice_template(c) for c in raw["root_choices"]),
        child_choices={
            intent: tuple(_choice_template(t) for t in templates)
            for intent, templates in raw["child_choices"].items()
        },
        opening=raw["opening"],
        scene=raw["scene"],
        video_prompt=raw["video_prompt"],
        summary=raw["summary"],
    )


def _choice_template(raw: dict[str, Any]) -> _ChoiceTemplate:
    return _ChoiceTemplate(**(raw | {"mentions": tuple(raw.get("mentions", ()))}))


def _fields_of(template: str) -> frozenset[str]:
    """The names of the fields a format string fills in."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


_STORY = _load_story()


# --------------------------------------------------------------------------- scene skeletons


@dataclass(frozen=True)
class _ChoiceSeed:
    intent: str  # bold | clever | cautious
    label: str
    short_label: str
    destination: _Place
    portal: str | None = None  # the opening scene's choices each name a portal colour...
    sound: str | None = None  # ...and its sound (the sound of the place it leads to)
    template: str = ""  # "intent:index" of the child template used
    uses: frozenset[str] = frozenset()  # the fields and mentions its labels use


@dataclass(frozen=True)
class _Scene:
    place: _Place
    ally: _Named
    rival: _Named
    colour: str
    gadget: _Named
    shard_spot: str
    choices: tuple[_ChoiceSeed, ...]
    elsewhere: _Place | None = None  # where this scene's portal opens onto (later scenes)

    @property
    def uses(self) -> frozenset[str]:
        """Everything the three choices refer to: the narration must name all of it."""
        return frozenset().union(*(c.uses for c in self.choices))


def _rng(world_id: str, path: str) -> random.Random:
    digest = hashlib.sha256(f"{world_id}\x00{path}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _split_path(path: str) -> tuple[str, int] | None:
    """(parent path, choice index) of a child path; None for the root."""
    if not path:
        return None
    parent, _, last = path.rpartition("/")
    try:
        index = int(last)
    except ValueError:
        index = sum(last.encode())
    return parent, index % 3


def _scene_from_root(world_id: str, path: str) -> _Scene:
    """`_scene` at any depth: the ancestors are made (and cached) root first, so `_scene`
    never recurses more than one level, even on the deepest path settings allow."""
    parts = path.split("/") if path else []
    for depth in range(len(parts)):
        _scene(world_id, "/".join(parts[:depth]))
    return _scene(world_id, path)


@lru_cache(maxsize=4096)
def _scene(world_id: str, path: str) -> _Scene:
    """The deterministic skeleton of a scene: where it is, who is there, the three choices.

    A child's place is the destination of the choice that led to it, so walking down a path
    stays continuous (a bold move jumps worlds, clever and cautious ones stay put), and a
    rival or ally that choice named is still there.
    """
    story = _STORY
    parent = _split_path(path)
    avoid: frozenset[str] = frozenset()
    led_by: _ChoiceSeed | None = None
    if parent is None:
        place = story.nexus
    else:
        parent_path, index = parent
        parent_scene = _scene(world_id, parent_path)
        led_by = parent_scene.choices[index]
        place = led_by.destination
        avoid = frozenset(c.template for c in parent_scene.choices)
    rng = _rng(world_id, path)
    ally = rng.choice(story.allies)
    rival = rng.choice(story.rivals)
    if led_by is not None:
        ally = parent_scene.ally if "ally" in led_by.uses else ally
        rival = parent_scene.rival if "rival" in led_by.uses else rival
    colours = rng.sample(story.words["colours"], 3)
    gadget = rng.choice(story.gadgets)
    shard_spot = rng.choice(story.words["shard_spots"])
    others = [p for p in story.places if p != place]
    elsewhere: _Place | None = None
    if parent is None:
        worlds = rng.sample(story.places, 3)
        choices = _root_choices(rng, colours, worlds)
    else:
        fields = {
            "hazard": place.hazard,
            "cover": place.cover,
            "colour": colours[0],
            "elsewhere": (elsewhere := rng.choice(others)).name,
            "rival": rival.short,
            "ally": ally.short,
            "gadget": gadget.name,
            "gadget_short": gadget.short,
        }
        choices = _child_choices(rng, fields, place, elsewhere, avoid)
    return _Scene(place, ally, rival, colours[0], gadget, shard_spot, choices, elsewhere)


def _root_choices(
    rng: random.Random, colours: Sequence[str], worlds: Sequence[_Place]
) -> tuple[_ChoiceSeed, ...]:
    """One choice per portal (its colour, its sound: the sound of the place it leads to), in
    a per-world order."""
    seeds = [
        _ChoiceSeed(
            template.intent,
            template.label.format(colour=colour, sound=world.sound, world=world.name),
            template.short.format(colour=colour, sound=world.sound, world=world.name),
            world,
            colour,
            world.sound,
            uses=template.uses,
        )
        for template, colour, world in zip(_STORY.root_choices, colours, worlds, strict=True)
    ]
    rng.shuffle(seeds)
    return tuple(seeds)


def _child_choices(
    rng: random.Random,
    fields: dict[str, str],
    place: _Place,
    elsewhere: _Place,
    avoid: frozenset[str],
) -> tuple[_ChoiceSeed, ...]:
    """One bold, one clever and one cautious choice, never reusing the parent's templates."""
    seeds: list[_ChoiceSeed] = []
    for intent, templates in _STORY.child_choices.items():
        fresh = [i for i in range(len(templates)) if f"{intent}:{i}" not in avoid]
        index = rng.choice(fresh or list(range(len(templates))))
        template = templates[index]
        seeds.append(
            _ChoiceSeed(
                intent,
                clip_words(template.label.format(**fields), MAX_LABEL_WORDS),
                clip_words(template.short.format(**fields), MAX_SHORT_LABEL_WORDS),
                elsewhere if template.moves else place,
                template=f"{intent}:{index}",
                uses=template.uses,
            )
        )
    rng.shuffle(seeds)
    return tuple(seeds)


# --------------------------------------------------------------------------- text helpers


def _words(text: str) -> list[str]:
    return text.split()


def clip_words(text: str, limit: int) -> str:
    """`text` cut to `limit` words, with an ellipsis when something was cut."""
    words = _words(text)
    if len(words) <= limit:
        return text.strip()
    return " ".join(words[:limit]).rstrip(",;:") + "…"


def _as_clause(choice: str, limit: int = MAX_LABEL_WORDS) -> str:
    """'Leap through the portal.' -> 'leap through the portal' (one clause, no full stops)."""
    text = re.sub(r"[.!?]+", ",", " ".join(choice.split())).strip(" ,")
    text = clip_words(text, limit)
    if text and not (len(text) > 1 and text[:2].isupper()):
        text = text[0].lower() + text[1:]
    return text


def _first_sentence(text: str, limit: int) -> str:
    sentence = re.split(r"(?<=[.!?])\s+", " ".join(text.split()), maxsplit=1)[0]
    return clip_words(sentence, limit).rstrip(".")


def _appositive(name: str) -> str:
    """'Pell, a mechanic' -> 'Pell, a mechanic,' so the sentence can carry on."""
    return f"{name}," if "," in name else name


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _terminate(text: str) -> str:
    """End `text` with a full stop unless it already ends a sentence or trails off."""
    text = text.rstrip(" ,;:")
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _fit_narration(sentences: list[str]) -> str:
    """Join 2-4 sentences, dropping trailing ones until within the word limit."""
    kept = sentences[:4]
    while len(kept) > 2 and len(_words(" ".join(kept))) > MAX_NARRATION_WORDS:
        kept.pop()
    text = " ".join(kept)
    if len(_words(text)) > MAX_NARRATION_WORDS:
        text = clip_words(text, MAX_NARRATION_WORDS - 1).rstrip("…") + "."
    return text


# --------------------------------------------------------------------------- the planner


def plan_scene(request: PlanRequest) -> Plan:
    """The plan of `request.path` in `request.world_id`: the same request, the same plan.

    Only the world id, the path, the choice taken and the video length are read: the base
    prompt and guidance are for the paid planners, and none of their words reach the plan.
    """
    story = _STORY
    scene = _scene_from_root(request.world_id, request.path)
    rng = _rng(request.world_id, request.path + "\x00text")
    seconds = max(1, request.video_seconds)
    beat1 = max(1, round(seconds * 3 / 8))
    beat2 = max(beat1, round(seconds * 6 / 8))
    place = scene.place

    chosen: str | None = None
    fields: dict[str, Any] = {"seconds": seconds}
    if not request.path:
        text = story.opening
        for number, choice in enumerate(scene.choices, 1):
            fields[f"colour{number}"] = choice.portal or scene.colour
            fields[f"sound{number}"] = choice.sound or choice.destination.sound
        title = text["title"]
        narration = _fit_narration([sentence.format(**fields) for sentence in text["narration"]])
    else:
        text = story.scene
        chosen = _as_clause(request.chosen_choice or text["unnamed_choice"])
        title = rng.choice(story.words["title_patterns"]).format(short=place.short)
        elsewhere = scene.elsewhere or place
        fields |= {
            "chosen": chosen,
            "outcome": rng.choice(story.words["outcomes"]),
            "place": place.name,
            "detail": place.detail,
            "hazard": place.hazard,
            "cover": place.cover,
            "rival_intro": _cap(_appositive(scene.rival.name)),
            "ally_intro": _appositive(scene.ally.name),
            "rival": scene.rival.short,
            "ally": scene.ally.short,
            "shard_spot": scene.shard_spot,
            "colour": scene.colour,
            "colour_article": _article(scene.colour),
            "elsewhere": elsewhere.name,
            "gadget": scene.gadget.name,
        }
        fields["arrival"] = text["arrived" if request.chosen_choice else "pressed_on"].format(
            **fields
        )
        narration = _scene_narration(scene, fields, rift=rng.choice(story.words["rift_beats"]))
    frame = story.video_prompt
    action = frame["chosen_action"] if chosen else frame["opening_scene"]
    prompt_fields = {
        part: text[part].format(**fields)
        for part in ("subject", "shot", "setup", "escalation", "outcome", "camera")
    } | {
        "beat1": beat1,
        "beat2": beat2,
        "seconds": seconds,
        "light": place.light,
        "context": "; ".join([frame["world_context"], action.format(chosen=chosen)]),
    }
    choices = tuple(PlanChoice(label=c.label, short_label=c.short_label) for c in scene.choices)
    return Plan(
        title=clip_words(title, MAX_TITLE_WORDS),
        narration=narration,
        video_prompt="\n".join(line.format(**prompt_fields) for line in frame["lines"]),
        choices=choices,
    )


def _surroundings(scene: _Scene, fields: dict[str, Any], rift: str | None) -> str:
    """The narration's last sentence: every thing the choices use, and the Rift's clause
    when `rift` is given (it must be when a choice refers to the Rift)."""
    mentions = _STORY.scene["mentions"]
    uses = scene.uses
    parts = [
        mentions[name].format(**fields)
        for name, wanted in (
            ("hazard", {"hazard"}),
            ("portal", {"colour", "elsewhere"}),
            ("cover", {"cover"}),
            ("gadget", {"gadget", "gadget_short"}),
        )
        if uses & wanted
    ]
    if rift is not None:
        parts.append(rift)
    return _terminate(_cap("; ".join(parts))) if parts else ""


def _scene_narration(scene: _Scene, fields: dict[str, Any], *, rift: str) -> str:
    """The richest of the narration's variants that fits in the word limit: with the Rift's
    clause, then without it (unless a choice needs it), then with the place's detail
    dropped, then with short names for the cast; never without what the choices name."""
    text = _STORY.scene
    full, lean = text["narration"], text["narration_lean"]
    needs_rift = "rift" in scene.uses
    variants: list[tuple[bool, list[str]]] = [
        (True, full),
        (needs_rift, full),
        (needs_rift, [full[0], lean[1], full[2], full[3]]),
        (needs_rift, lean),
    ]
    for with_rift, sentences in variants:
        values = fields | {
            "surroundings": _surroundings(scene, fields, rift if with_rift else None)
        }
        written = [sentence.format(**values) for sentence in sentences]
        narration = " ".join(_cap(sentence) for sentence in written if sentence)
        if len(_words(narration)) <= MAX_NARRATION_WORDS:
            return narration
    return clip_words(narration, MAX_NARRATION_WORDS - 1).rstrip("…") + "."


# --------------------------------------------------------------------------- the clip


@dataclass(frozen=True)
class ClipLook:
    """What the offline clip of a scene shows besides its title: the choices it teases at
    the end (short labels, in the plan's order) and the colours of the portals in it."""

    choices: tuple[str, ...]
    portals: tuple[tuple[int, int, int], ...]


def clip_look(world_id: str, path: str) -> ClipLook:
    """The clip's look of the scene `plan_scene` plans at `path` (the same skeleton): the
    opening shows its three portals, a later scene the one its narration and video prompt
    name."""
    scene = _scene_from_root(world_id, path)
    colours = [scene.colour] if path else [c.portal or scene.colour for c in scene.choices]
    return ClipLook(
        choices=tuple(c.short_label for c in scene.choices),
        portals=tuple(_STORY.colour_rgb[c] for c in colours if c in _STORY.colour_rgb),
    )


# --------------------------------------------------------------------------- the chronicler


def _strip_bullet(line: str) -> str:
    return re.sub(r"^(?:\s*[-*•]\s*)+", "", line).strip()


def _bullet(text: str) -> str:
    body = " ".join(_strip_bullet(text).split())
    if len(body) + 2 > MAX_BULLET_CHARS:
        room = MAX_BULLET_CHARS - 3
        cut = body[:room]
        if " " in cut:
            cut = cut.rsplit(" ", 1)[0]
        body = cut.rstrip(",;:") + "…"
    return f"- {body}"


def summarise(request: SummaryRequest) -> str:
    """Up to three short bullets: the scene now, the one before (or, first, the story's
    stakes), the choices. Nothing is copied from the world's base prompt: the previous
    summary's "now" bullet is the only earlier text reused."""
    label = _STORY.summary
    bullets: list[str] = []
    if request.narration.strip():
        now = _terminate(_first_sentence(request.narration, 40))
        bullets.append(_bullet(f"{label['now']} {now}"))
    previous = [
        _strip_bullet(line)
        for line in (request.previous_summary or "").splitlines()
        if _strip_bullet(line)
    ]
    told = [p for p in previous if not p.startswith((label["stakes"], label["open_paths"]))]
    if told:
        last_now = next((p for p in told if p.startswith(label["now"])), told[0])
        earlier = last_now.removeprefix(label["now"]).removeprefix(label["earlier"]).strip()
        bullets.append(_bullet(f"{label['earlier']} {earlier}"))
    else:
        bullets.append(_bullet(f"{label['stakes']} {label['stakes_text']}"))
    options = [_as_clause(c, 6) for c in request.choices if c.strip()]
    if options:
        bullets.append(_bullet(f"{label['open_paths']} " + _terminate("; ".join(options))))
    return "\n".join(bullets[:MAX_BULLETS])
