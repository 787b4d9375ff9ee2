"""Every failure a member can cause or meet becomes one plain ephemeral sentence."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import discord
from discord import app_commands

from world.paths import InvalidPath
from world.service import ServiceError

log = logging.getLogger(__name__)

INTERNAL = "Something went wrong on our side and nothing was changed; please try again in a moment."


class Refusal(Exception):
    """A request the bot turns down; the message is one plain sentence for the member."""


def plain_message(error: BaseException) -> str:
    """The sentence a member sees for an error; never an internal detail or a secret."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, Refusal | ServiceError | InvalidPath):
        return str(error)
    if isinstance(error, app_commands.MissingPermissions):
        return "You need the Manage Server permission to do that."
    if isinstance(error, app_commands.BotMissingPermissions):
        return (
            "I am missing permissions in this channel: "
            + ", ".join(p.replace("_", " ") for p in error.missing_permissions)
            + "."
        )
    if isinstance(error, app_commands.NoPrivateMessage):
        return "That only works in a server channel."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down a little: try again in {error.retry_after:.0f} seconds."
    if isinstance(error, app_commands.CheckFailure):
        return "You cannot use that here."
    if isinstance(error, app_commands.TransformerError):
        return "That value is not valid for this option."
    if isinstance(error, discord.Forbidden):
        return "I am not allowed to post in this channel; an admin can fix my permissions."
    return INTERNAL


async def reply_error(interaction: discord.Interaction, error: BaseException) -> None:
    """Answer an interaction that failed with one ephemeral sentence (initial or follow-up)."""
    message = plain_message(error)
    if message == INTERNAL:
        log.error(
            "interaction failed kind=%s custom_id=%s",
            interaction.type.name,
            (interaction.data or {}).get("custom_id") or (interaction.data or {}).get("name"),
            exc_info=error,
        )
    try:
        if interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
            await interaction.edit_original_response(content=message)
        elif interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True)
        else:
            await interaction.response.send_message(message, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not deliver an error reply kind=%s", interaction.type.name)


async def guarded(interaction: discord.Interaction, work: Awaitable[None]) -> None:
    """Run a component or modal handler; any failure becomes one sentence, never silence."""
    try:
        await work
    except Exception as error:
        await reply_error(interaction, error)
