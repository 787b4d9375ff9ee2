"""The deepest branch settings allow, minted through the bot: its buttons carry a hashed
path code (500 choices do not fit a custom_id) that the bot resolves from the database."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import update

from bot import ids
from tests.bot.keyed_provider import GOOD_KEY, seed_opening_scene
from tests.fixtures.discord import Server, bot_settings, button, latest, mint_finished, text_of
from world import paths, scenes
from world.models import Scene
from world.settings import Settings
from world.types import Status

DEEPEST = 500


@pytest.fixture
def discord_settings(tmp_path: Path) -> Settings:
    settings = bot_settings(tmp_path)
    return replace(
        settings,
        worlds=(replace(settings.worlds[0], provider="openai"),),
        generation=replace(settings.generation, max_depth=DEEPEST),
    )


async def _ready_chain(service, deepest: str) -> None:
    """Ready scenes down to the parent of `deepest`, as finished jobs leave them."""
    choices = [{"label": f"Door {i + 1} onward", "short_label": f"Door {i + 1}"} for i in range(3)]
    chain = [p for p in paths.ancestors(deepest) if p != ""]  # the root was minted for real
    async with service.db.transaction() as session:
        for path in chain:
            await scenes.insert_placeholder(
                session, "default", path, choices[paths.last_index(path)]["label"]
            )
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


async def test_the_deepest_branch_is_minted_from_its_mint_button(
    world_env, world_service, keyed_provider
):
    deepest = "/".join(["2"] * DEEPEST)
    await seed_opening_scene(world_service)
    await _ready_chain(world_service, deepest)
    server = Server(world_env, "alpha")
    await server.admin.slash(server.channel, "adventure start", mode="pick")
    moved = await server.admin.slash(server.channel, "adventure goto", path=deepest)
    assert moved.ephemeral and "Going to" in moved.response.content

    mint = latest(server.channel)
    assert "Mint this branch" in text_of(mint)
    custom_id = button(mint, "Mint this branch")["custom_id"]
    assert len(custom_id) <= ids.MAX_CUSTOM_ID
    assert custom_id.endswith(ids.encode_path(deepest)) and ":h" in custom_id

    contributor = server.member()
    shown = await contributor.click(mint, custom_id=custom_id)
    assert shown.modal is not None
    submitted = await contributor.submit_modal(shown, {"api_key": GOOD_KEY})
    assert "Minting started" in submitted.response.content
    await mint_finished(world_env, world_service, "default", deepest)

    view = await world_service.view("default", deepest)
    assert view.status is Status.READY and view.depth == DEEPEST
    assert keyed_provider.paid_calls == 2  # the seed and this branch
