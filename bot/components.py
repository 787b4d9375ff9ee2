"""The bot's buttons and its key form.

Every button is a `DynamicItem` whose custom_id carries only ids (see bot/ids.py), so it is
routed after a restart with no per-message registration, and its callback reads everything
else from the database. `StaleButton` answers any custom_id no other item claims (an old
version's button, a malformed id), so no click ever ends in "This interaction failed".
Callbacks wrap their own errors: discord.py only logs a DynamicItem's exceptions.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import TYPE_CHECKING, Any

import discord
from discord import ui

from bot import ids
from bot.errors import guarded, reply_error

if TYPE_CHECKING:
    from bot.app import SharedWorldBot

CHANNEL = r"(?P<channel>[0-9]{1,20})"
PATH = rf"(?P<path>{ids.PATH_CODE})"

CHOICE_TEMPLATE = r"sw:v1:c:(?P<round>[0-9]{1,20}):(?P<index>[0-9])"
MINT_TEMPLATE = rf"sw:v1:m:{CHANNEL}:{PATH}"
SAVED_KEY_TEMPLATE = rf"sw:v1:k:{CHANNEL}:{PATH}"
NEW_KEY_TEMPLATE = rf"sw:v1:n:{CHANNEL}:{PATH}"
REPORT_TEMPLATE = r"sw:v1:rp:(?P<round>[0-9]{1,20})"
KEY_FORM_PREFIX = "sw:v1:key:"

STALE_SENTENCE = (
    "That button belongs to an older card that no longer works; use the newest card in the channel."
)
KEY_FORM_LIFETIME_SECONDS = 15 * 60


def _anonymous(template: str) -> str:
    return re.sub(r"\(\?P<[a-z_]+>", "(?:", template)


def _bot(interaction: discord.Interaction) -> SharedWorldBot:
    return interaction.client  # type: ignore[return-value]


class ChoiceButton(ui.DynamicItem[ui.Button[Any]], template=CHOICE_TEMPLATE):
    """A choice on a scene card: a vote in vote mode, the decision in pick mode."""

    def __init__(
        self,
        round_id: int,
        index: int,
        *,
        label: str = "",
        style: discord.ButtonStyle = discord.ButtonStyle.primary,
        disabled: bool = False,
    ) -> None:
        super().__init__(
            ui.Button(
                label=label or f"Choice {index + 1}",
                style=style,
                disabled=disabled,
                custom_id=ids.custom_id("c", round_id, index),
            )
        )
        self.round_id = round_id
        self.index = index

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: ui.Button[Any], match: re.Match[str], /
    ) -> ChoiceButton:
        return cls(int(match["round"]), int(match["index"]), label=item.label or "")

    async def callback(self, interaction: discord.Interaction) -> None:
        rounds = _bot(interaction).rounds
        await guarded(
            interaction, rounds.on_choice(interaction, self.round_id, self.index, self.item.label)
        )


class _BranchButton(
    ui.DynamicItem[ui.Button[Any]], template=r"sw:v1:_never_:(?P<channel>0):(?P<path>\.)"
):
    """A button about one branch as seen from one channel; the path is decoded on click.

    A base for the buttons below, never registered itself (DynamicItem insists on a
    template, so it gets one no custom_id of ours can match).
    """

    kind = "_"

    def __init__(
        self,
        channel_id: int,
        path: str | None = None,
        *,
        path_code: str | None = None,
        label: str = "",
        style: discord.ButtonStyle = discord.ButtonStyle.success,
    ) -> None:
        code = path_code if path_code is not None else ids.encode_path(path or "")
        super().__init__(
            ui.Button(
                label=label or "Continue",
                style=style,
                custom_id=ids.custom_id(self.kind, channel_id, code),
            )
        )
        self.channel_id = channel_id
        self.path_code = code

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: ui.Button[Any], match: re.Match[str], /
    ) -> Any:
        return cls(int(match["channel"]), path_code=match["path"], label=item.label or "")


class MintButton(_BranchButton, template=MINT_TEMPLATE):
    """On a mint card: mint (or retry) this branch with the clicker's key."""

    kind = "m"

    async def callback(self, interaction: discord.Interaction) -> None:
        minting = _bot(interaction).minting
        await guarded(interaction, minting.on_mint(interaction, self.channel_id, self.path_code))


class SavedKeyButton(_BranchButton, template=SAVED_KEY_TEMPLATE):
    """Ephemeral: mint with the key already in the member's session."""

    kind = "k"

    async def callback(self, interaction: discord.Interaction) -> None:
        minting = _bot(interaction).minting
        await guarded(
            interaction,
            minting.on_mint_with_saved_key(interaction, self.channel_id, self.path_code),
        )


class NewKeyButton(_BranchButton, template=NEW_KEY_TEMPLATE):
    """Ephemeral: open the key form even though a key is in the session."""

    kind = "n"

    async def callback(self, interaction: discord.Interaction) -> None:
        minting = _bot(interaction).minting
        await guarded(
            interaction, minting.on_mint_with_new_key(interaction, self.channel_id, self.path_code)
        )


class ReportButton(ui.DynamicItem[ui.Button[Any]], template=REPORT_TEMPLATE):
    """On a scene card: report its clip to the server's admins (once per member per clip).

    It carries the card's round id: the round names the world, the scene and the card."""

    def __init__(self, round_id: int) -> None:
        super().__init__(
            ui.Button(
                label="Report",
                emoji="\N{WARNING SIGN}",
                style=discord.ButtonStyle.secondary,
                custom_id=ids.custom_id("rp", round_id),
            )
        )
        self.round_id = round_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: ui.Button[Any], match: re.Match[str], /
    ) -> ReportButton:
        return cls(int(match["round"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        moderation = _bot(interaction).moderation
        await guarded(interaction, moderation.on_report(interaction, self.round_id))


KNOWN_TEMPLATES = (
    CHOICE_TEMPLATE,
    MINT_TEMPLATE,
    SAVED_KEY_TEMPLATE,
    NEW_KEY_TEMPLATE,
    REPORT_TEMPLATE,
)
STALE_TEMPLATE = "".join(f"(?!(?:{_anonymous(t)})\\Z)" for t in KNOWN_TEMPLATES) + r"[\s\S]{1,100}"


class StaleButton(ui.DynamicItem[ui.Button[Any]], template=STALE_TEMPLATE):
    """Any custom_id no other item claims: answer with one sentence instead of silence."""

    def __init__(self, custom_id: str) -> None:
        super().__init__(ui.Button(label="Old button", custom_id=custom_id))

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: ui.Button[Any], match: re.Match[str], /
    ) -> StaleButton:
        return cls(match.group(0))

    async def callback(self, interaction: discord.Interaction) -> None:
        await guarded(
            interaction, interaction.response.send_message(STALE_SENTENCE, ephemeral=True)
        )


DYNAMIC_ITEMS = (
    ChoiceButton,
    MintButton,
    SavedKeyButton,
    NewKeyButton,
    ReportButton,
    StaleButton,
)


class KeyForms:
    """Custom ids of key forms this process opened, so a form opened before a restart (which
    discord.py can no longer route) still gets an answer."""

    def __init__(self) -> None:
        self._opened: dict[str, float] = {}

    def opened(self, custom_id: str) -> None:
        now = time.monotonic()
        self._opened = {
            k: t for k, t in self._opened.items() if now - t < KEY_FORM_LIFETIME_SECONDS
        }
        self._opened[custom_id] = now

    def __contains__(self, custom_id: object) -> bool:
        return custom_id in self._opened


class KeyModal(ui.Modal):
    """Asks for the member's provider key. It is the initial response to a click (3 s rule).

    The key is visible while typed (Discord has no password input); it is read once, handed
    to the key vault and never echoed.
    """

    def __init__(
        self,
        *,
        channel_id: int,
        path: str,
        choice_label: str | None,
        provider_name: str,
        cost: str,
        retry: bool = False,
    ) -> None:
        custom_id = ids.custom_id(
            "key", "r" if retry else "m", channel_id, ids.encode_path(path), secrets.token_hex(4)
        )
        super().__init__(
            title="Retry this branch" if retry else "Mint this branch",
            timeout=KEY_FORM_LIFETIME_SECONDS,
            custom_id=custom_id,
        )
        self.channel_id = channel_id
        self.path = path
        self.retry = retry
        what = choice_label or "the opening scene"
        if len(what) > 300:
            what = what[:299] + "…"
        self.add_item(
            ui.TextDisplay(
                f"**{what}**\nEstimated cost: **{cost}**, charged by {provider_name} to your key. "
                "Nothing is spent until the key checks out. Once made, the branch plays free "
                "for everyone."
            )
        )
        self.key_input: ui.TextInput[Any] = ui.TextInput(
            custom_id="api_key",
            style=discord.TextStyle.short,
            min_length=8,
            max_length=300,
            placeholder=f"Your {provider_name} API key",
        )
        self.add_item(
            ui.Label(
                text="API key",
                description="Visible while you type. Kept in memory for your session only.",
                component=self.key_input,
            )
        )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        minting = _bot(interaction).minting
        key = self.key_input.value
        await guarded(
            interaction,
            minting.on_key_submitted(
                interaction, self.channel_id, self.path, key, retry=self.retry
            ),
        )

    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:
        await reply_error(interaction, error)
