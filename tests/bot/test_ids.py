"""custom_ids carry only ids, are versioned and fit Discord's 100 characters."""

from __future__ import annotations

import re

import pytest

from bot import ids
from bot.components import (
    CHOICE_TEMPLATE,
    MINT_TEMPLATE,
    STALE_TEMPLATE,
    ChoiceButton,
    KeyModal,
    MintButton,
)


def test_paths_round_trip():
    for path in ["", "0", "2/1/0", "/".join(["2"] * 50)]:
        assert ids.decode_path(ids.encode_path(path), 50) == path
    assert ids.encode_path("") == "."
    assert ids.encode_path("0/2/1") == "021"


@pytest.mark.parametrize("code", ["", "3", "9", "0a", "..", "0" * 51, "/"])
def test_bad_path_codes_are_refused(code):
    with pytest.raises(ids.BadPathCode):
        ids.decode_path(code, 50)


def test_the_longest_ids_fit_the_limit():
    deepest = "/".join(["2"] * 50)
    snowflake = 2**63 - 1
    mint = MintButton(snowflake, deepest).item.custom_id
    choice = ChoiceButton(snowflake, 2).item.custom_id
    form = KeyModal(
        channel_id=snowflake, path=deepest, choice_label="x", provider_name="openai", cost="free"
    ).custom_id
    for value in (mint, choice, form):
        assert value.startswith("sw:v1:") and len(value) <= 100
    assert re.fullmatch(MINT_TEMPLATE, mint) and re.fullmatch(CHOICE_TEMPLATE, choice)


def test_the_fallback_answers_only_what_no_other_button_claims():
    stale = re.compile(STALE_TEMPLATE)
    assert stale.fullmatch("cyoa:v1:c:12:0")
    assert stale.fullmatch("sw:v2:c:1:0")
    assert stale.fullmatch("sw:v1:c:abc:0")
    assert not stale.fullmatch("sw:v1:c:123:2")
    assert not stale.fullmatch("sw:v1:m:123:021")
    assert not stale.fullmatch("sw:v1:k:123:.")
    assert not stale.fullmatch("sw:v1:n:123:0")
