"""Minting: the mint buttons, the key form, the key check, the claim, telling the contributor.

A click on a mint card answers within Discord's 3 seconds with the key form (or the choice
between the session's key and a new one); the submitted key is checked with the provider
before anything is claimed, kept in the session vault only once it checks out, and the
contributor hears here if their key runs into trouble later.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import discord
from discord import ui

from bot import cards, ids
from bot.components import KeyForms, KeyModal, NewKeyButton, SavedKeyButton
from bot.errors import Refusal
from bot.keyvault import KeyVault
from world.logsafe import forget_secret, register_secret
from world.play import ChannelState, PlayStore
from world.providers.base import ProviderError
from world.service import FINAL_FAILURES, InvalidBranch, WorldService
from world.types import UNCERTAIN, ClaimOutcome, ClaimResult, Credentials, SceneView, Status

if TYPE_CHECKING:
    from bot.director import Director

log = logging.getLogger(__name__)

NOT_RUNNING = "No adventure is running in that channel any more."
MOVED_ON = "The story has moved on since this card was posted; use the newest card in the channel."


class Contributors:
    """The members whose key is minting a branch, so they hear if it fails (this process)."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, str], list[discord.Interaction]] = {}

    def add(self, world_id: str, path: str, interaction: discord.Interaction) -> None:
        self._waiting.setdefault((world_id, path), []).append(interaction)

    def forget(self, world_id: str, path: str) -> None:
        self._waiting.pop((world_id, path), None)

    async def tell(
        self, world_id: str, path: str, status: Status, code: str | None, detail: str | None
    ) -> None:
        """The mint ended without a scene: each contributor gets one ephemeral sentence."""
        for interaction in self._waiting.pop((world_id, path), []):
            if interaction.is_expired():
                continue
            reason = cards.failure_reason(code, detail)
            if status is Status.PENDING and code:
                text = (
                    f"Your key could not finish this branch: {reason}. "
                    "Nothing more will be charged for it; the branch is unexplored again."
                )
            elif status is Status.FAILED:
                text = f"Minting failed: {reason}."
            else:
                text = "Minting was stopped before it finished."
            with contextlib.suppress(discord.HTTPException):
                await interaction.followup.send(text, ephemeral=True)


class Minting:
    def __init__(
        self,
        service: WorldService,
        play: PlayStore,
        director: Director,
        *,
        vault: KeyVault,
        key_forms: KeyForms,
        contributors: Contributors,
    ) -> None:
        self.service = service
        self.play = play
        self.director = director
        self.vault = vault
        self.key_forms = key_forms
        self.contributors = contributors

    # -- the buttons -----------------------------------------------------------------

    async def on_mint(
        self, interaction: discord.Interaction, channel_id: int, path_code: str
    ) -> None:
        """A mint card's button: mint (or retry) the channel's branch."""
        target = await self._mintable(interaction, channel_id, path_code)
        if target is None:
            return
        state, view = target
        provider = self.service.provider(state.world_id)
        cost = cards.cost_text(view.estimated_cost_usd)
        if not provider.needs_key:
            await interaction.response.defer(ephemeral=True, thinking=True)
            result = await self.service.claim(
                state.world_id,
                view.path,
                None,
                str(interaction.user.id),
                confirm_uncertain=view.failure_code == UNCERTAIN,
                guild=_guild_of(interaction),
            )
            await self.report_claim(interaction, result, cost)
            return
        if self.vault.has(interaction.user.id, provider.name):
            buttons = ui.View(timeout=None)
            buttons.add_item(
                SavedKeyButton(channel_id, view.path, label=f"Use my saved key · {cost}")
            )
            buttons.add_item(
                NewKeyButton(
                    channel_id,
                    view.path,
                    label="Enter a different key",
                    style=discord.ButtonStyle.secondary,
                )
            )
            await interaction.response.send_message(
                f"Mint **{cards.clip(view.choice_label or 'the opening scene', 300)}**? "
                f"Estimated cost: **{cost}**, charged by {provider.display_name} to your key.",
                view=buttons,
                ephemeral=True,
            )
            return
        await self.open_key_form(interaction, state.world_id, channel_id, view.path, view)

    async def on_mint_with_new_key(
        self, interaction: discord.Interaction, channel_id: int, path_code: str
    ) -> None:
        target = await self._mintable(interaction, channel_id, path_code)
        if target is None:
            return
        state, view = target
        await self.open_key_form(interaction, state.world_id, channel_id, view.path, view)

    async def on_mint_with_saved_key(
        self, interaction: discord.Interaction, channel_id: int, path_code: str
    ) -> None:
        target = await self._mintable(interaction, channel_id, path_code)
        if target is None:
            return
        state, view = target
        provider = self.service.provider(state.world_id)
        credentials = self.vault.get(interaction.user.id, provider.name)
        if credentials is None:  # idle timeout since the offer: ask again
            await self.open_key_form(interaction, state.world_id, channel_id, view.path, view)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._check_and_claim(
            interaction, state.world_id, view.path, credentials, retry=False
        )

    async def retry_branch(
        self, interaction: discord.Interaction, world_id: str, path: str
    ) -> None:
        """An admin's /world retry: with the session's key, or the key form first."""
        provider = self.service.provider(world_id)
        credentials = None
        if provider.needs_key:
            credentials = self.vault.get(interaction.user.id, provider.name)
            if credentials is None:
                await self.open_key_form(
                    interaction,
                    world_id,
                    interaction.channel_id or 0,
                    path,
                    None,
                    label=f"Retry {cards.breadcrumbs(path)}",
                    retry=True,
                )
                return
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self.service.retry(
            world_id, path, credentials, str(interaction.user.id), guild=_guild_of(interaction)
        )
        if result.outcome is ClaimOutcome.REFUSED:
            raise Refusal(result.message or "That branch cannot be retried.")
        await self._audit_retry(interaction, world_id, path, result)
        await self.report_claim(
            interaction, result, cards.cost_text(self.service.estimated_cost(world_id))
        )

    # -- the key form ----------------------------------------------------------------

    async def open_key_form(
        self,
        interaction: discord.Interaction,
        world_id: str,
        channel_id: int,
        path: str,
        view: SceneView | None,
        *,
        label: str | None = None,
        retry: bool = False,
    ) -> None:
        """Answer the click with the key form (the initial response: Discord's 3 s rule)."""
        provider = self.service.provider(world_id)
        cost = view.estimated_cost_usd if view else self.service.estimated_cost(world_id)
        form = KeyModal(
            channel_id=channel_id,
            path=path,
            choice_label=label or (view.choice_label if view else None),
            provider_name=provider.display_name,
            cost=cards.cost_text(cost),
            retry=retry,
        )
        self.key_forms.opened(form.custom_id)
        await interaction.response.send_modal(form)

    async def on_key_submitted(
        self,
        interaction: discord.Interaction,
        channel_id: int,
        path: str,
        key: str,
        *,
        retry: bool,
    ) -> None:
        key = key.strip()
        register_secret(key)
        await interaction.response.defer(ephemeral=True, thinking=True)
        state = await self.play.get_channel(channel_id)
        if not retry:
            if state is None or not state.active:
                self._forget_unused(interaction.user.id, state, key)
                raise Refusal(NOT_RUNNING + " Your key was not used.")
            if state.current_path != path:
                self._forget_unused(interaction.user.id, state, key)
                raise Refusal(MOVED_ON + " Your key was not used.")
        world_id = self.director.world_for(state)
        credentials = Credentials(key)
        stored = await self._check_and_claim(interaction, world_id, path, credentials, retry=retry)
        if not stored:
            self._forget_unused(interaction.user.id, state, key)

    def _forget_unused(self, user_id: int, state: ChannelState | None, key: str) -> None:
        provider = self.service.provider(self.director.world_for(state))
        saved = self.vault.get(user_id, provider.name)
        if saved is None or saved.api_key != key:
            forget_secret(key)

    # -- checking and claiming -------------------------------------------------------

    async def _check_and_claim(
        self,
        interaction: discord.Interaction,
        world_id: str,
        path: str,
        credentials: Credentials,
        *,
        retry: bool,
    ) -> bool:
        """Check the key cheaply, keep it for the session, claim. True when the key was kept."""
        provider = self.service.provider(world_id)
        try:
            check = await self.service.validate_key(world_id, credentials)
        except ProviderError as error:
            log.info("key refused world=%s path=%s code=%s", world_id, path, error.code)
            if error.code == "invalid_key":
                sentence = (
                    f"{provider.display_name} did not accept that key, "
                    "so nothing was claimed or charged."
                )
            else:
                reason = error.public_message.rstrip(".")
                sentence = f"Nothing was claimed or charged: {reason[:1].lower()}{reason[1:]}."
            await interaction.edit_original_response(content=sentence, view=None)
            return False
        self.vault.put(interaction.user.id, provider.name, credentials)
        if retry:
            result = await self.service.retry(
                world_id, path, credentials, str(interaction.user.id), guild=_guild_of(interaction)
            )
            await self._audit_retry(interaction, world_id, path, result)
        else:
            # The mint card this member clicked warned them if a render may already exist.
            seen = await self.service.view(world_id, path)
            result = await self.service.claim(
                world_id,
                path,
                credentials,
                str(interaction.user.id),
                confirm_uncertain=seen.failure_code == UNCERTAIN,
                guild=_guild_of(interaction),
            )
        cost = cards.cost_text(self.service.estimated_cost(world_id))
        if check.remaining_usd is not None:
            cost += f"; your key has ${check.remaining_usd:.2f} of credit left"
        await self.report_claim(interaction, result, cost)
        return True

    async def _audit_retry(
        self, interaction: discord.Interaction, world_id: str, path: str, result: ClaimResult
    ) -> None:
        """An admin's retry that started a mint, in the audit trail (a refused one, or one of
        a branch someone else made meanwhile, changed nothing)."""
        if not result.claimed_by_caller:
            return
        log.info("admin retry world=%s path=%s outcome=%s", world_id, path, result.outcome.value)
        await self.service.record_admin_action(
            "retry",
            str(interaction.user.id),
            guild_id=interaction.guild_id,
            world_id=world_id,
            path=path,
        )

    async def report_claim(
        self, interaction: discord.Interaction, result: ClaimResult, cost: str
    ) -> None:
        """Tell the member what their claim did, and follow the mint in the channels."""
        world_id, path = result.world_id, result.path
        progress = self.director.progress
        if result.outcome is ClaimOutcome.READY:
            sentence = (
                "Someone made this branch a moment ago, so it is free for you: playing it now."
            )
            self.director.spawn(self.director.branch_ready(world_id, path), "show ready branch")
        elif result.outcome is ClaimOutcome.QUEUED and result.claimed_by_caller:
            sentence = (
                f"Minting started ({cost}). Watch the channel; if your key runs into trouble "
                "I will tell you here."
            )
            place = self.service.queue_position(world_id, path)
            if place is not None:
                sentence += (
                    f" Every generation slot is busy; it waits in line, {cards.ordinal(place)}."
                )
            self.contributors.add(world_id, path, interaction)
            log.info("mint started world=%s path=%s", world_id, path)
            await progress.follow_branch(world_id, path)
        elif result.outcome is ClaimOutcome.QUEUED:
            sentence = (
                "Someone else is already minting this branch, so you pay nothing: "
                "watch the channel."
            )
            await progress.follow_branch(world_id, path)
        else:
            sentence = result.message or "That branch cannot be minted right now."
        await interaction.edit_original_response(content=sentence, view=None)

    # -- which branch a button means -------------------------------------------------

    async def _mintable(
        self, interaction: discord.Interaction, channel_id: int, path_code: str
    ) -> tuple[ChannelState, SceneView] | None:
        """The channel and branch a mint button is about (<= 2 reads), or None when the click
        was answered already because the branch needs no mint (it is made, or being made)."""
        state = await self.play.get_channel(channel_id)
        if state is None or not state.active:
            raise Refusal(NOT_RUNNING)
        try:  # a very deep branch's code is a hash, resolved against the channel's path
            path = ids.decode_path(
                path_code, self.service.settings.generation.max_depth, current=state.current_path
            )
        except ids.BadPathCode:
            raise Refusal(MOVED_ON) from None
        if state.current_path != path:
            raise Refusal(MOVED_ON)
        try:
            view = await self.service.view(state.world_id, path)
        except InvalidBranch:
            raise Refusal(MOVED_ON) from None
        if await self._answer_unneeded_mint(interaction, state, view):
            return None
        return state, view

    async def _answer_unneeded_mint(
        self, interaction: discord.Interaction, state: ChannelState, view: SceneView
    ) -> bool:
        """Answer clicks on a branch that needs no mint; True when answered."""
        if view.is_ready:
            await interaction.response.send_message(
                "This branch is already made and plays free; its card is in the channel.",
                ephemeral=True,
            )
            self.director.spawn(
                self.director.branch_ready(state.world_id, view.path), "show ready branch"
            )
            return True
        if view.status is Status.QUEUED:
            place = self.service.queue_position(state.world_id, view.path)
            if place is not None:
                how = f" (it waits in line for a free generation slot, {cards.ordinal(place)})"
            else:
                how = f" ({view.progress} %)" if view.progress_known else ""
            await interaction.response.send_message(
                "Someone is minting this branch right now"
                + how
                + ". It is free for you: watch the channel, the scene appears when it is done.",
                ephemeral=True,
            )
            self.director.progress.follow(state.channel_id, state.world_id, view.path)
            return True
        if view.status is Status.FAILED and view.failure_code in FINAL_FAILURES:
            raise Refusal(
                "The video provider refused this branch; an admin can retry it with /world retry."
            )
        return False


def _guild_of(interaction: discord.Interaction) -> str | None:
    """The server a claim comes from, for its caps (hashed by the service, like the member)."""
    return str(interaction.guild_id) if interaction.guild_id else None
