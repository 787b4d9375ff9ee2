"""The offline provider: a local planner and title-card clips made with PyAV. Costs nothing.

It stands in for a paid provider when trying the bot and in tests, with the same shapes:
plans obey the planner contract (narration <= 120 words, exactly three clearly different
choices), renders are jobs with ids that survive a restart (one JSON spec per job in
`jobs_dir`), progress is simulated over `offline_render_seconds` measured from the job's
creation, and the download is a real H.264 mp4.

Test markers: a video prompt containing "FAILME" fails its render at about 50 % with a
`blocked` error; a chosen choice containing "BLOCKME" makes `plan` raise the same error.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from world.media import render_title_card
from world.providers.base import (
    KeyCheck,
    Plan,
    PlanChoice,
    PlanRequest,
    ProviderError,
    RenderRequest,
    RenderStatus,
    SummaryRequest,
)
from world.settings import ProviderSettings
from world.types import Credentials

log = logging.getLogger(__name__)

FAIL_MARKER = "FAILME"
BLOCK_MARKER = "BLOCKME"
JOB_PREFIX = "offline-"
_JOB_ID = re.compile(r"^offline-[0-9a-f]{32}$")
_SPEC_TEMP = re.compile(r"^\.offline-[0-9a-f]{32}\.json\.[0-9a-f]{32}\.tmp$")
_WATCH_STEPS = 10
_BLOCKED_MESSAGE = "The provider refused to render this scene."
_NOT_FOUND_MESSAGE = "That render job does not exist or has expired."

MAX_NARRATION_WORDS = 120
MAX_LABEL_WORDS = 22
MAX_SHORT_LABEL_WORDS = 12
MAX_TITLE_WORDS = 8
MAX_BULLETS = 3
MAX_BULLET_CHARS = 159


def _blocked() -> ProviderError:
    return ProviderError("blocked", _BLOCKED_MESSAGE, retryable=False)


def _not_found() -> ProviderError:
    return ProviderError("not_found", _NOT_FOUND_MESSAGE, retryable=False)


# --------------------------------------------------------------------------- world vocabulary


@dataclass(frozen=True)
class _Place:
    name: str  # "a clockwork jungle"
    short: str  # "Clockwork Jungle" (titles)
    detail: str  # a clause describing it
    hazard: str  # something to cross or dodge
    cover: str  # somewhere to hide
    light: str  # lighting for the video prompt


_NEXUS = _Place(
    name="the Nexus Gate",
    short="Nexus Gate",
    detail="a ring of weathered stone floating above a sea of cloud",
    hazard="the crumbling rim of the Gate",
    cover="a leaning rune-stone",
    light="cool dawn light with three coloured portal glows",
)

_PLACES: tuple[_Place, ...] = (
    _Place(
        "a neon arcade city",
        "Neon Arcade",
        "where towering game cabinets flicker like skyscrapers",
        "a river of rolling pinball steel",
        "a dead cabinet's shadow",
        "pink and cyan neon glare",
    ),
    _Place(
        "a clockwork jungle",
        "Clockwork Jungle",
        "where brass vines tick and gear-flowers bloom",
        "a canopy of snapping brass vines",
        "a hollow copper log",
        "golden light dappled through spinning cogs",
    ),
    _Place(
        "a drowned cathedral",
        "Drowned Cathedral",
        "where bells ring underwater and lanterns float in the nave",
        "the flooded nave's swirling current",
        "a toppled stone pew",
        "green underwater shafts of light",
    ),
    _Place(
        "an orbital bazaar",
        "Orbital Bazaar",
        "where market stalls drift in zero gravity around a ringed planet",
        "a tumbling stream of cargo crates",
        "a stall draped in star-charts",
        "warm lantern light against black space",
    ),
    _Place(
        "a pixel-block canyon",
        "Pixel Canyon",
        "where the cliffs are stacked from giant square blocks",
        "a bridge of blocks that vanish when touched",
        "an overhang of mossy blocks",
        "bright midday sun with hard block shadows",
    ),
    _Place(
        "a carnival on stilts",
        "Stilt Carnival",
        "where a ferris wheel turns above a foggy marsh",
        "the swaying rope walkways between rides",
        "a painted ticket booth",
        "string lights glowing through fog",
    ),
    _Place(
        "a sky-whale harbour",
        "Sky-Whale Harbour",
        "where airships dock on the backs of drifting whales",
        "the slick back of a surfacing sky-whale",
        "a stack of rope-bound cargo",
        "soft sunset clouds",
    ),
    _Place(
        "a lava-forge fortress",
        "Lava Forge",
        "where molten channels feed giant hammering anvils",
        "a row of pounding forge hammers",
        "a cooled slag boulder",
        "orange lava glow and drifting sparks",
    ),
    _Place(
        "a desert of mirrors",
        "Mirror Desert",
        "where crystal dunes reflect a dozen skies at once",
        "a dune of sliding mirror-shards",
        "a half-buried crystal arch",
        "blinding white light and rainbow glints",
    ),
    _Place(
        "a lantern-mushroom forest",
        "Lantern Forest",
        "where glowing mushrooms tower like street lamps",
        "a carpet of bursting spore-puffs",
        "a giant mushroom's gills",
        "blue bioluminescent glow at dusk",
    ),
    _Place(
        "a rain-soaked cyber alley",
        "Cyber Alley",
        "where holographic koi swim through the rain",
        "a tangle of sparking cables",
        "a steaming noodle cart",
        "rain-streaked magenta signs",
    ),
    _Place(
        "a frozen observatory",
        "Frozen Observatory",
        "where a cracked telescope points at the Rift",
        "a frozen dome that groans underfoot",
        "the telescope's iced gears",
        "pale moonlight on blue ice",
    ),
    _Place(
        "a floating-island racetrack",
        "Island Racetrack",
        "where go-karts leap between islands on rainbow ramps",
        "a ramp with karts roaring toward it",
        "a checkered pit-stop tent",
        "saturated cartoon sunshine",
    ),
    _Place(
        "a sunken pirate grotto",
        "Pirate Grotto",
        "where ghostly ships rock in a glowing lagoon",
        "a rope bridge over churning tide-pools",
        "a barnacled treasure chest",
        "turquoise lagoon light on wet rock",
    ),
)


@dataclass(frozen=True)
class _Character:
    name: str  # first mention
    short: str  # later mentions


_ALLIES: tuple[_Character, ...] = (
    _Character("Pell, a fox-eared mechanic with a wrench of living vine", "Pell"),
    _Character("Sir Brassbolt, a retired robot knight", "Sir Brassbolt"),
    _Character("Wisp, a lantern sprite no bigger than a thumb", "Wisp"),
    _Character("Captain Oro, a sky-pirate with a patchwork balloon", "Captain Oro"),
    _Character("Tome, a librarian golem who speaks in page-rustles", "Tome"),
    _Character("Mira, a cartographer ghost who maps the Rift", "Mira"),
)

_RIVALS: tuple[_Character, ...] = (
    _Character("the Hollow Warden, a faceless knight in rusted armour", "the Warden"),
    _Character("a swarm of glitch-moths that eat light", "the glitch-moths"),
    _Character("Vex, a rival shard-thief in a chrome mask", "Vex"),
    _Character("a pack of clockwork hounds", "the hounds"),
    _Character("the Courier's own shadow-echo, torn loose by the Rift", "the shadow-echo"),
    _Character("the Tollkeeper, a many-armed automaton", "the Tollkeeper"),
)

_COLOURS: tuple[str, ...] = (
    "amber",
    "emerald",
    "violet",
    "crimson",
    "silver",
    "teal",
    "gold",
    "rose",
)

_GADGETS: tuple[tuple[str, str], ...] = (
    ("a grappling ribbon", "the ribbon"),
    ("a pocket mirror that shows other worlds", "the mirror"),
    ("a whistle that calms machines", "the whistle"),
    ("a jar of bottled lightning", "the lightning jar"),
    ("a compass that points at shards", "the compass"),
    ("a chalk that draws working doors", "the chalk"),
)

_SHARD_SPOTS: tuple[str, ...] = (
    "glinting at the top of a spinning tower",
    "lodged in the jaws of a stone idol",
    "hanging from a chain above a drop",
    "locked inside a ticking cage",
    "embedded in the back of a sleeping giant",
    "floating inside a bubble of frozen time",
)

_PORTAL_SOUNDS: tuple[str, ...] = (
    "humming like a choir",
    "crackling with static",
    "ticking like a giant clock",
    "whispering with distant surf",
    "thrumming with arcade chimes",
    "roaring with far-off engines",
)

_TITLE_PATTERNS: tuple[str, ...] = (
    "Shardfall in the {short}",
    "Chase Through the {short}",
    "The {short} Gambit",
    "Rift Shadows over the {short}",
    "A Shard in the {short}",
    "Portal Storm at the {short}",
    "The {short} Trap",
    "Echoes of the {short}",
)

_OUTCOMES: tuple[str, ...] = (
    "the plan works, but not the way anyone expected",
    "the move buys a heartbeat of advantage and costs a scrape",
    "the world answers with a rumble and a shower of sparks",
    "it pays off just as the ground lurches",
    "a gasp goes up from every watcher as it lands",
)

_RIFT_BEATS: tuple[str, ...] = (
    "Overhead, the Cataclysm Rift widens another violet inch.",
    "The Cataclysm Rift pulses, and the horizon briefly folds.",
    "Somewhere far off, the Rift swallows a street whole.",
    "The shards in the satchel hum, steadying the ground for now.",
)


# --------------------------------------------------------------------------- the local planner

# (label, short label, moves to another world?) per intent; every label of one intent starts
# with its own verb so the three choices of a scene never read as variants of one move.
_CHILD_TEMPLATES: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "bold": (
        (
            "Leap through the flickering {colour} portal after {rival} and land in {elsewhere}",
            "Leap after {rival}",
            True,
        ),
        (
            "Sprint across {hazard} and dive through the {colour} portal toward {elsewhere}",
            "Dive through the {colour} portal",
            True,
        ),
        (
            "Grab the shard in one wild jump and ride the {colour} portal's blast into {elsewhere}",
            "Grab the shard and jump",
            True,
        ),
        (
            "Charge through {hazard} straight at {rival} and wrench the shard free",
            "Charge {rival} for the shard",
            False,
        ),
        (
            "Vault over {hazard}, snatch the shard, and tumble through the {colour} portal",
            "Snatch the shard and vault",
            True,
        ),
    ),
    "clever": (
        (
            "Use {gadget} to trick {rival} into opening the shard's hiding place",
            "Trick {rival} with {gadget_short}",
            False,
        ),
        (
            "Bargain with {ally}: trade {gadget_short} for the secret route to the shard",
            "Bargain with {ally}",
            False,
        ),
        (
            "Turn {hazard} against {rival} with a quick, well-timed decoy",
            "Set a decoy for {rival}",
            False,
        ),
        (
            "Swap the shard for a glowing fake while {ally} distracts {rival}",
            "Swap in a fake shard",
            False,
        ),
        (
            "Read the Rift's flicker and time a dash for the moment {rival} looks away",
            "Time the perfect dash",
            False,
        ),
    ),
    "cautious": (
        (
            "Hide behind {cover} and watch where {rival} carries the shard",
            "Hide and watch",
            False,
        ),
        (
            "Help {ally} steady the wobbling portal before the Rift swallows the way back",
            "Steady the portal",
            False,
        ),
        (
            "Slip back to {cover}, tend a scrape, and map the safest path forward",
            "Regroup and map a route",
            False,
        ),
        (
            "Ask {ally} what the shard is guarding before anyone touches it",
            "Ask {ally} about the shard",
            False,
        ),
        (
            "Follow {rival} at a distance to learn where the next portal opens",
            "Shadow {rival} quietly",
            False,
        ),
    ),
}


@dataclass(frozen=True)
class _ChoiceSeed:
    intent: str  # bold | clever | cautious
    label: str
    short_label: str
    destination: _Place
    portal: str | None = None  # the opening scene's choices each name a portal colour
    template: str = ""  # "intent:index" of the child template used


@dataclass(frozen=True)
class _Scene:
    place: _Place
    ally: _Character
    rival: _Character
    colour: str
    gadget: tuple[str, str]
    shard_spot: str
    choices: tuple[_ChoiceSeed, ...]


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
    stays continuous (a bold move jumps worlds, clever and cautious ones stay put).
    """
    parent = _split_path(path)
    avoid: frozenset[str] = frozenset()
    if parent is None:
        place = _NEXUS
    else:
        parent_path, index = parent
        parent_scene = _scene(world_id, parent_path)
        place = parent_scene.choices[index].destination
        avoid = frozenset(c.template for c in parent_scene.choices)
    rng = _rng(world_id, path)
    ally = rng.choice(_ALLIES)
    rival = rng.choice(_RIVALS)
    colours = rng.sample(_COLOURS, 3)
    gadget = rng.choice(_GADGETS)
    shard_spot = rng.choice(_SHARD_SPOTS)
    others = [p for p in _PLACES if p != place]
    if parent is None:
        worlds = rng.sample(_PLACES, 3)
        choices = _root_choices(rng, colours, worlds)
    else:
        fields = {
            "hazard": place.hazard,
            "cover": place.cover,
            "colour": colours[0],
            "elsewhere": (elsewhere := rng.choice(others)).name,
            "rival": rival.short,
            "ally": ally.short,
            "gadget": gadget[0],
            "gadget_short": gadget[1],
        }
        choices = _child_choices(rng, fields, place, elsewhere, avoid)
    return _Scene(place, ally, rival, colours[0], gadget, shard_spot, choices)


def _root_choices(
    rng: random.Random, colours: Sequence[str], worlds: Sequence[_Place]
) -> tuple[_ChoiceSeed, ...]:
    c1, c2, c3 = colours
    w1, w2, w3 = worlds
    seeds = [
        _ChoiceSeed(
            "bold",
            f"Sprint straight through the {c1} portal toward the sound of {w1.name}",
            f"Sprint through the {c1} portal",
            w1,
            c1,
        ),
        _ChoiceSeed(
            "clever",
            f"Roll a glowing marble through the {c2} portal to scout {w2.name} before following",
            f"Scout the {c2} portal first",
            w2,
            c2,
        ),
        _ChoiceSeed(
            "cautious",
            f"Climb the Gate's rim and study the {c3} portal's hum before stepping "
            "carefully inside",
            f"Study the {c3} portal carefully",
            w3,
            c3,
        ),
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
    for intent, templates in _CHILD_TEMPLATES.items():
        fresh = [i for i in range(len(templates)) if f"{intent}:{i}" not in avoid]
        index = rng.choice(fresh or list(range(len(templates))))
        label, short, moves = templates[index]
        seeds.append(
            _ChoiceSeed(
                intent,
                _clip_words(label.format(**fields), MAX_LABEL_WORDS),
                _clip_words(short.format(**fields), MAX_SHORT_LABEL_WORDS),
                elsewhere if moves else place,
                template=f"{intent}:{index}",
            )
        )
    rng.shuffle(seeds)
    return tuple(seeds)


def _words(text: str) -> list[str]:
    return text.split()


def _clip_words(text: str, limit: int) -> str:
    words = _words(text)
    if len(words) <= limit:
        return text.strip()
    return " ".join(words[:limit]).rstrip(",;:") + "…"


def _as_clause(choice: str, limit: int = MAX_LABEL_WORDS) -> str:
    """'Leap through the portal.' -> 'leap through the portal' (one clause, no full stops)."""
    text = re.sub(r"[.!?]+", ",", " ".join(choice.split())).strip(" ,")
    text = _clip_words(text, limit)
    if text and not (len(text) > 1 and text[:2].isupper()):
        text = text[0].lower() + text[1:]
    return text


def _first_sentence(text: str, limit: int) -> str:
    sentence = re.split(r"(?<=[.!?])\s+", " ".join(text.split()), maxsplit=1)[0]
    return _clip_words(sentence, limit).rstrip(".")


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
        text = _clip_words(text, MAX_NARRATION_WORDS - 1).rstrip("…") + "."
    return text


def _local_plan(request: PlanRequest) -> Plan:
    scene = _scene_from_root(request.world_id, request.path)
    rng = _rng(request.world_id, request.path + "\x00text")
    seconds = max(1, request.video_seconds)
    beat1 = max(1, round(seconds * 3 / 8))
    beat2 = max(beat1, round(seconds * 6 / 8))
    place = scene.place
    context_bits = [_first_sentence(request.base_prompt, 40)]
    if request.guidance.strip():
        context_bits.append(_first_sentence(request.guidance, 25))

    if not request.path:
        colours = [c.portal or scene.colour for c in scene.choices]
        sounds = rng.sample(_PORTAL_SOUNDS, 3)
        title = "The Nexus Gate Awakens"
        narration = _fit_narration(
            [
                "The Nexus Gate shudders awake above a sea of cloud, its weathered stones "
                "grinding into a ring around the Courier.",
                f"Three unlabeled portals bloom open: one {colours[0]} and {sounds[0]}, "
                f"one {colours[1]} and {sounds[1]}, one {colours[2]} and {sounds[2]}.",
                "Far overhead the Cataclysm Rift pulses violet, and the satchel of "
                "chronoglyph shards hums an urgent warning.",
            ]
        )
        subject = (
            "The Courier, a wiry runner in a patched storm-coat, stands on the Nexus Gate "
            "as three portals ignite"
        )
        shot = f"One continuous {seconds}-second shot."
        setup = (
            "the stone ring floats above a sea of cloud; the Courier steadies a satchel "
            "of glowing glass"
        )
        escalation = (
            f"the ring grinds awake and three unlabeled portals flare open, {colours[0]}, "
            f"{colours[1]} and {colours[2]}, each rippling with a different world's light"
        )
        outcome = (
            "a violet crack of the Cataclysm Rift splits the sky; the Courier turns to "
            "face the three portals"
        )
        camera = "slow push-in from a low angle, then a gentle orbit around the Courier"
        chosen = None
    else:
        chosen = _as_clause(request.chosen_choice or "press on toward the next shard")
        title = rng.choice(_TITLE_PATTERNS).format(short=place.short)
        arrival = (
            f"The Courier chose to {chosen}, and {rng.choice(_OUTCOMES)}."
            if request.chosen_choice
            else f"The Courier presses on, and {rng.choice(_OUTCOMES)}."
        )
        narration = _fit_narration(
            [
                arrival,
                f"Now the chase runs through {place.name}, {place.detail}.",
                f"{_cap(_appositive(scene.rival.name))} closes in on a chronoglyph shard "
                f"{scene.shard_spot}, while {_appositive(scene.ally.name)} signals from nearby.",
                rng.choice(_RIFT_BEATS),
            ]
        )
        subject = f"The Courier in {place.name} goes after a shard {scene.shard_spot}"
        shot = (
            f"One continuous {seconds}-second shot, starting from the previous scene's final frame."
        )
        setup = f"already in motion, the Courier acts on the choice to {chosen}"
        escalation = (
            f"{scene.rival.short} lunges for the shard as {place.hazard} shifts and "
            f"{scene.ally.short} shouts a warning"
        )
        outcome = (
            f"a visible change: {_article(scene.colour)} {scene.colour} portal tears open "
            "nearby and the Rift's "
            "violet light floods the frame"
        )
        camera = "handheld tracking shot at the Courier's shoulder, whip-pan on the reveal"
    prompt_lines = [
        f"{subject}. {shot}",
        f"Setup (0-{beat1}s): {setup}.",
        f"Escalation ({beat1}-{beat2}s): {escalation}.",
        f"Outcome ({beat2}-{seconds}s): {outcome}.",
        f"Camera: {camera}. Lighting: {place.light}.",
        "Context (not visible in video, only for AI guidance): "
        + "; ".join(bit for bit in context_bits if bit)
        + (f"; the chosen action was to {chosen}" if chosen else "; this is the opening scene")
        + ". No text, logos or real people on screen.",
    ]
    choices = tuple(PlanChoice(label=c.label, short_label=c.short_label) for c in scene.choices)
    return Plan(
        title=_clip_words(title, MAX_TITLE_WORDS),
        narration=narration,
        video_prompt="\n".join(prompt_lines),
        choices=choices,
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


def _local_summary(request: SummaryRequest) -> str:
    bullets: list[str] = []
    if request.narration.strip():
        bullets.append(_bullet("Now: " + _terminate(_first_sentence(request.narration, 40))))
    previous = [
        _strip_bullet(line)
        for line in (request.previous_summary or "").splitlines()
        if _strip_bullet(line)
    ]
    if previous:
        last_now = next((p for p in previous if p.startswith("Now:")), previous[0])
        earlier = last_now.removeprefix("Now:").strip()
        bullets.append(_bullet("Earlier: " + earlier))
    elif request.base_prompt.strip():
        bullets.append(_bullet("Stakes: " + _terminate(_first_sentence(request.base_prompt, 30))))
    options = [_as_clause(c, 6) for c in request.choices if c.strip()]
    if options:
        bullets.append(_bullet("Open paths: " + _terminate("; ".join(options))))
    return "\n".join(bullets[:MAX_BULLETS])


# --------------------------------------------------------------------------- the provider


class OfflineProvider:
    """Local planner, simulated renders and title-card clips; needs no key, costs nothing."""

    name = "offline"
    display_name = "offline"
    needs_key = False
    reports_progress = True
    can_find_renders = True  # its job specs name the attempt that created them

    def __init__(self, settings: ProviderSettings, jobs_dir: Path) -> None:
        self.settings = settings
        self.jobs_dir = Path(jobs_dir)
        self.render_starts = 0  # renders started by this instance (what a paid provider bills)

    async def validate_key(self, credentials: Credentials | None) -> KeyCheck:
        """Any key, or none, is fine offline."""
        return KeyCheck()

    async def estimate_cost_usd(self) -> float:
        return 0.0

    def cached_estimate_usd(self) -> float | None:
        return 0.0

    async def plan(self, request: PlanRequest, credentials: Credentials | None) -> Plan:
        if request.chosen_choice and BLOCK_MARKER in request.chosen_choice:
            log.info("offline plan blocked world=%s path=%r", request.world_id, request.path)
            raise _blocked()
        plan = _local_plan(request)
        log.info(
            "offline plan world=%s path=%r depth=%d title=%r",
            request.world_id,
            request.path,
            request.depth,
            plan.title,
        )
        return plan

    async def start_render(self, request: RenderRequest, credentials: Credentials | None) -> str:
        job_id = JOB_PREFIX + uuid.uuid4().hex
        spec = {
            "job_id": job_id,
            "world_id": request.world_id,
            "path": request.path,
            "prompt": request.prompt,
            "title": request.title,
            "model": request.model,
            "size": request.size,
            "seconds": request.seconds,
            "has_reference_image": request.reference_image is not None,
            "attempt_id": request.attempt_id,
            "created": time.time(),
        }
        await asyncio.to_thread(self._write_spec, job_id, spec)
        self.render_starts += 1
        log.info(
            "offline render started world=%s path=%r job=%s", request.world_id, request.path, job_id
        )
        return job_id

    async def watch_render(
        self, job_id: str, credentials: Credentials | None
    ) -> AsyncIterator[RenderStatus]:
        spec = await self._load(job_id)
        total = max(0.0, float(self.settings.offline_render_seconds))
        step = total / _WATCH_STEPS
        fails = FAIL_MARKER in str(spec.get("prompt", ""))
        where = f"world={spec.get('world_id')} path={spec.get('path')!r} job={job_id}"
        last = 0
        while True:
            elapsed = max(0.0, time.time() - float(spec["created"]))
            progress = 100 if total <= 0 else min(100, int(elapsed * 100 / total))
            last = max(last, progress)
            if fails and last >= 50:
                log.info("offline render failed %s code=blocked progress=%d", where, last)
                raise _blocked()
            if elapsed >= total:
                log.info("offline render done %s", where)
                yield RenderStatus(100, done=True)
                return
            yield RenderStatus(min(last, 99))
            await asyncio.sleep(max(0.001, min(step, total - elapsed)))

    async def download(
        self, job_id: str, credentials: Credentials | None, destination: Path
    ) -> int:
        spec = await self._load(job_id)
        where = f"world={spec.get('world_id')} path={spec.get('path')!r} job={job_id}"
        prompt = str(spec.get("prompt", ""))
        if FAIL_MARKER in prompt:
            raise _blocked()
        remaining = float(spec["created"]) + self.settings.offline_render_seconds - time.time()
        if remaining > 0:
            log.warning("offline download before render finished %s", where)
            raise ProviderError("provider_error", "The clip has not finished rendering yet.")
        width = self.settings.offline_width - self.settings.offline_width % 2
        height = self.settings.offline_height - self.settings.offline_height % 2
        size = await asyncio.to_thread(
            render_title_card,
            Path(destination),
            title=str(spec.get("title") or "Untitled scene"),
            subtitle=_clip_words(prompt.splitlines()[0] if prompt else "", 14),
            seconds=max(1, self.settings.offline_clip_seconds),
            width=max(16, width),
            height=max(16, height),
        )
        log.info("offline download %s bytes=%d", where, size)
        return size

    async def find_render(
        self, request: RenderRequest, since: datetime, credentials: Credentials | None
    ) -> str | None:
        if not request.attempt_id:
            return None
        return await asyncio.to_thread(self._job_of_attempt, request.attempt_id)

    def _job_of_attempt(self, attempt_id: str) -> str | None:
        if not self.jobs_dir.exists():
            return None
        for spec_file in self.jobs_dir.glob(f"{JOB_PREFIX}*.json"):
            spec = self._read_spec(spec_file.stem)
            if spec is not None and spec.get("attempt_id") == attempt_id:
                return str(spec["job_id"])
        return None

    async def summarise(self, request: SummaryRequest, credentials: Credentials | None) -> str:
        summary = _local_summary(request)
        log.info("offline summary world=%s bullets=%d", request.world_id, summary.count("\n") + 1)
        return summary

    async def check(self) -> list[tuple[str, str]]:
        return []

    async def close(self) -> None:
        """Nothing to release."""
        return None

    async def sweep_partial(self, older_than_seconds: float) -> int:
        """Remove job-spec temp files a killed process left (a create that never finished)."""
        return await asyncio.to_thread(self._sweep_partial, older_than_seconds)

    def _sweep_partial(self, older_than_seconds: float) -> int:
        if not self.jobs_dir.exists():
            return 0
        cutoff = time.time() - older_than_seconds
        removed = 0
        for leftover in self.jobs_dir.glob(".offline-*.json.*.tmp"):
            if not _SPEC_TEMP.match(leftover.name):
                continue
            try:
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    # -- job specs -------------------------------------------------------------------------

    def _spec_path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.json"

    def _write_spec(self, job_id: str, spec: dict[str, Any]) -> None:
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        final = self._spec_path(job_id)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        try:
            with tmp.open("w", encoding="utf-8") as handle:
                json.dump(spec, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _read_spec(self, job_id: str) -> dict[str, Any] | None:
        if not _JOB_ID.match(job_id):
            return None
        try:
            data = json.loads(self._spec_path(job_id).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict) or "created" not in data:
            return None
        return data

    async def _load(self, job_id: str) -> dict[str, Any]:
        spec = await asyncio.to_thread(self._read_spec, job_id)
        if spec is None:
            log.info("offline job not found job=%s", job_id)
            raise _not_found()
        return spec
