"""custom_ids and other names stay bounded at the deepest depth settings allow (500)."""

from __future__ import annotations

import re

import pytest

from bot import cards, ids
from bot.components import (
    MINT_TEMPLATE,
    NEW_KEY_TEMPLATE,
    SAVED_KEY_TEMPLATE,
    STALE_TEMPLATE,
    KeyModal,
    MintButton,
    NewKeyButton,
    SavedKeyButton,
)
from world.types import SceneView, Status

DEEPEST = 500  # settings validation: generation.max_depth is 1 to 500
SNOWFLAKE = 2**63 - 1


def _deep(depth: int, last: int = 2) -> str:
    return "" if depth == 0 else "/".join(["2"] * (depth - 1) + [str(last)])


@pytest.mark.parametrize("depth", [0, 1, 50, 60, 61, 129, DEEPEST - 1, DEEPEST])
def test_every_custom_id_fits_at_any_allowed_depth(depth):
    path = _deep(depth)
    buttons = [
        (MintButton(SNOWFLAKE, path), MINT_TEMPLATE),
        (SavedKeyButton(SNOWFLAKE, path), SAVED_KEY_TEMPLATE),
        (NewKeyButton(SNOWFLAKE, path), NEW_KEY_TEMPLATE),
    ]
    stale = re.compile(STALE_TEMPLATE)
    for item, template in buttons:
        value = item.item.custom_id
        assert value.startswith("sw:v1:") and len(value) <= ids.MAX_CUSTOM_ID
        match = re.fullmatch(template, value)
        assert match, value
        assert not stale.fullmatch(value), "a live button must not read as stale"
        code = match["path"]
        if code.startswith("h"):  # a hashed code is resolved against the channel's path
            assert ids.decode_path(code, DEEPEST, current=path) == path
        else:
            assert ids.decode_path(code, DEEPEST) == path
    form = KeyModal(
        channel_id=SNOWFLAKE, path=path, choice_label="x", provider_name="openai", cost="free"
    )
    assert len(form.custom_id) <= ids.MAX_CUSTOM_ID


def test_short_paths_keep_their_digit_codes():
    # Codes of paths up to 59 choices are unchanged, and buttons already posted (digit
    # codes of up to 60 choices) keep working.
    assert ids.encode_path("") == "."
    assert ids.encode_path("0/2/1") == "021"
    assert ids.encode_path(_deep(59)) == "2" * 59
    assert ids.encode_path(_deep(60)).startswith("h")
    assert ids.decode_path("2" * 60, DEEPEST) == _deep(60)


def test_a_hashed_code_names_only_the_channels_current_path():
    deep, other = _deep(DEEPEST), _deep(DEEPEST, 0)
    code = ids.encode_path(deep)
    assert code != ids.encode_path(other) and code != ids.encode_path(_deep(DEEPEST - 1))
    assert ids.decode_path(code, DEEPEST, current=deep) == deep
    assert ids.decode_path("021", DEEPEST, current=deep) == "0/2/1"  # digits name themselves
    for current in (None, other, "", "0/2/1"):
        with pytest.raises(ids.BadPathCode):
            ids.decode_path(code, DEEPEST, current=current)
    with pytest.raises(ids.BadPathCode, match="deeper"):
        ids.decode_path(code, 50, current=deep)  # a world whose maximum was lowered since


@pytest.mark.parametrize(
    "code", ["h", "h" + "0" * 31, "h" + "0" * 33, "H" + "0" * 32, "h" + "g" * 32, "x" * 10**6]
)
def test_malformed_codes_are_refused_in_a_short_sentence(code):
    with pytest.raises(ids.BadPathCode) as caught:
        ids.decode_path(code, DEEPEST)
    assert len(str(caught.value)) < 200


def test_the_clip_attachment_name_is_bounded():
    view = SceneView(world_id="default", path=_deep(DEEPEST), depth=DEEPEST, status=Status.READY)
    name = cards.clip_filename(view)
    assert name.startswith("scene-2-2-") and name.endswith(".mp4") and len(name) <= 140
