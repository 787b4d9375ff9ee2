"""What the planner and the chronicler are told, and the plan's JSON schema every provider shares.

Pure functions: the words sent to a model, and the parsing of what comes back. A plan that does
not parse or does not meet the contract raises `ProviderError("bad_output")`; it is never padded.
"""

from __future__ import annotations

import json
from typing import Any

from world.paths import CHOICES_PER_SCENE
from world.providers.base import Plan, PlanChoice, PlanRequest, ProviderError, SummaryRequest

PLAN_SCHEMA_NAME = "branch_plan"
MAX_NARRATION_WORDS = 120
MAX_SUMMARY_BULLETS = 3

PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "narration", "video_prompt", "choices"],
    "properties": {
        "title": {"type": "string", "description": "2 to 6 words naming the scene."},
        "narration": {
            "type": "string",
            "description": f"What happens, for the reader: at most {MAX_NARRATION_WORDS} words.",
        },
        "video_prompt": {
            "type": "string",
            "description": "One continuous shot for the video model: setup, escalation, outcome.",
        },
        "choices": {
            "type": "array",
            "minItems": 3,
            "maxItems": 3,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["label", "short_label"],
                "properties": {
                    "label": {"type": "string", "description": "The choice, one sentence."},
                    "short_label": {"type": "string", "description": "At most 5 words."},
                },
            },
        },
    },
}

BAD_OUTPUT_MESSAGE = "The story planner returned an unusable scene; it can be retried."


def planner_instructions(request: PlanRequest) -> str:
    return (
        "You are the planner of a shared choose-your-own-adventure told in short video clips.\n"
        f"World premise: {request.base_prompt}\n"
        f"Guidance: {request.guidance}\n"
        "Plan the next scene as JSON matching the schema: a short title; narration of at most "
        f"{MAX_NARRATION_WORDS} words; a video prompt describing ONE continuous "
        f"{request.video_seconds}-second shot (setup, escalation, outcome) that starts from the "
        "previous scene's final frame; exactly three clearly different choices, each with a "
        "short label. No real people, brands, logos or on-screen text."
    )


def planner_input(request: PlanRequest) -> str:
    lines = [f"Scene path: {request.path or '(opening scene)'} (depth {request.depth})."]
    if request.history:
        lines.append("The story so far:")
        for step in request.history:
            taken = f" -> chose: {step.choice_taken}" if step.choice_taken else ""
            lines.append(f"- {step.title or 'untitled'}{taken}")
    if request.parent_summary:
        lines.append(f"World state:\n{request.parent_summary}")
    if request.parent_video_prompt:
        lines.append(f"The previous shot: {request.parent_video_prompt}")
    if request.chosen_choice:
        lines.append(f"The audience chose: {request.chosen_choice}")
    else:
        lines.append("This is the opening scene of the world.")
    return "\n".join(lines)


def chronicler_instructions() -> str:
    return (
        f"You keep the running state of a shared story world in at most {MAX_SUMMARY_BULLETS} "
        "short bullet lines starting with '- '. Keep what still matters, add what changed, drop "
        "what no longer matters. Reply with the bullets only."
    )


def chronicler_input(request: SummaryRequest) -> str:
    previous = request.previous_summary or "(nothing yet)"
    choices = "; ".join(request.choices)
    return (
        f"Premise: {request.base_prompt}\nPrevious state:\n{previous}\n"
        f"This scene: {request.narration}\nOpen choices: {choices}"
    )


def parse_plan(text: str | None) -> Plan:
    """A plan from the model's JSON text; raises ProviderError("bad_output")."""
    try:
        data = json.loads(text or "")
    except (TypeError, ValueError):
        raise _bad_output() from None
    if not isinstance(data, dict):
        raise _bad_output()
    try:
        choices = tuple(
            PlanChoice(label=_text(c["label"]), short_label=_text(c["short_label"]))
            for c in data["choices"]
        )
        return Plan(
            title=_text(data["title"]),
            narration=_text(data["narration"]),
            video_prompt=_text(data["video_prompt"]),
            choices=choices,
        )
    except (KeyError, TypeError):
        raise _bad_output() from None


def validate_plan(plan: Plan) -> Plan:
    """Refuse a plan that does not meet the contract; never pad it with filler."""
    problems = []
    if not plan.title.strip():
        problems.append("no title")
    if not plan.narration.strip():
        problems.append("no narration")
    elif len(plan.narration.split()) > MAX_NARRATION_WORDS:
        problems.append("narration over 120 words")
    if not plan.video_prompt.strip():
        problems.append("no video prompt")
    if len(plan.choices) != CHOICES_PER_SCENE:
        problems.append(f"{len(plan.choices)} choices instead of 3")
    labels = [c.label.strip() for c in plan.choices]
    if any(not label for label in labels) or any(not c.short_label.strip() for c in plan.choices):
        problems.append("an empty choice")
    if len({label.lower() for label in labels}) != len(labels):
        problems.append("repeated choices")
    if problems:
        raise _bad_output()
    return plan


def parse_summary(text: str | None) -> str:
    """At most three '- ' bullets from the chronicler's reply; raises ProviderError."""
    bullets = []
    for line in (text or "").splitlines():
        body = line.strip().lstrip("-*• ").strip()
        if body:
            bullets.append(f"- {body}")
    if not bullets:
        raise ProviderError("bad_output", "The chronicler returned nothing usable.")
    return "\n".join(bullets[:MAX_SUMMARY_BULLETS])


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value.strip()


def _bad_output() -> ProviderError:
    return ProviderError("bad_output", BAD_OUTPUT_MESSAGE)
