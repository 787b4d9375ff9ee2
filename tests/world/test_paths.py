"""Canonical paths: the rules are pure, and the service refuses anything else."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.world.helpers import mint
from world import paths
from world.models import Scene
from world.service import InvalidBranch
from world.types import ClaimOutcome

MALFORMED = ["00", "0//1", "abc", "-1", "01", "0/", "/0", " 0", "0/3", "1/2/9", "1e3", "٣"]


@pytest.mark.parametrize("path", MALFORMED)
def test_malformed_paths_are_not_canonical(path):
    with pytest.raises(paths.InvalidPath):
        paths.parse(path, max_depth=10)


def test_canonical_paths_parse_and_relate():
    assert paths.parse("", 10) == ()
    assert paths.parse("0/2/1", 10) == (0, 2, 1)
    assert paths.parent("0/2/1") == "0/2"
    assert paths.parent("2") == ""
    assert paths.parent("") is None
    assert paths.children("0") == ["0/0", "0/1", "0/2"]
    assert paths.ancestors("0/2/1") == ["", "0", "0/2"]
    assert paths.depth("0/2/1") == 3
    assert paths.breadcrumbs("0/2/1") == "Start › 1 › 3 › 2"
    assert paths.storage_slug("0/2/1") == "0-2-1"


def test_depth_past_the_maximum_is_refused():
    with pytest.raises(paths.InvalidPath, match="deeper"):
        paths.parse("/".join(["0"] * 4), max_depth=3)


async def _scene_count(service) -> int:
    async with service.db.session() as session:
        return await session.scalar(select(func.count()).select_from(Scene))


@pytest.mark.parametrize("path", MALFORMED)
async def test_malformed_paths_are_refused_and_create_no_row(service, path):
    await mint(service, "")
    before = await _scene_count(service)

    result = await service.claim("default", path, None, "mallory")

    assert result.outcome is ClaimOutcome.REFUSED
    assert result.message and result.message.endswith(".")
    assert await _scene_count(service) == before
    with pytest.raises(InvalidBranch):
        await service.view("default", path)


async def test_a_branch_whose_parent_does_not_exist_is_refused(service):
    await mint(service, "")
    before = await _scene_count(service)
    result = await service.claim("default", "0/1", None, "mallory")
    assert result.outcome is ClaimOutcome.REFUSED
    assert result.reason == "parent_not_ready"
    assert await _scene_count(service) == before


async def test_a_depth_past_the_configured_maximum_is_refused(settings_factory):
    from tests.fixtures.world import start_service

    service = await start_service(settings_factory(generation={"max_depth": 2}))
    try:
        result = await service.claim("default", "0/0/0", None, "mallory")
        assert result.outcome is ClaimOutcome.REFUSED
        assert "deeper" in result.message
        assert await _scene_count(service) == 0
    finally:
        await service.close()


async def test_an_unknown_world_is_refused(service):
    result = await service.claim("nowhere", "", None, "mallory")
    assert result.outcome is ClaimOutcome.REFUSED
    assert await _scene_count(service) == 0
