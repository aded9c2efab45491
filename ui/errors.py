"""The command tree: one place where every command's unexpected error is turned into a short reply."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from services.errors import BadInput

log = logging.getLogger(__name__)


MAX_CONTENT = 2000  # Discord refuses a longer message, and the user would get no answer at all


async def reply_ephemeral(interaction: discord.Interaction, text: str) -> None:
    """Answer privately, whether or not the interaction was already acknowledged."""
    if len(text) > MAX_CONTENT:
        text = text[: MAX_CONTENT - 1] + "…"
    try:
        if interaction.response.is_done():
            await _drop_thinking(interaction)
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())
        else:
            await interaction.response.send_message(
                text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
            )
    except discord.HTTPException:
        log.warning("Could not send an error reply for interaction %s", interaction.id)


async def _drop_thinking(interaction: discord.Interaction) -> None:
    """Delete a public "thinking…" placeholder that nothing has replaced yet.

    Discord turns the first follow-up after a deferral into an edit of that placeholder, keeping it public
    whatever the follow-up's flags say; deleting it first lets the follow-up be a private message.
    """
    if interaction.response.type is not discord.InteractionResponseType.deferred_channel_message:
        return
    try:
        original = await interaction.original_response()
        if original.flags.loading and not original.flags.ephemeral:
            await interaction.delete_original_response()
    except discord.HTTPException:
        pass  # already gone, or not ours to delete: the follow-up still goes out


class FluxTree(app_commands.CommandTree):
    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        original = getattr(error, "original", error)
        if isinstance(original, BadInput):
            await reply_ephemeral(interaction, str(original))
            return
        if isinstance(error, app_commands.NoPrivateMessage):
            await reply_ephemeral(interaction, "This command works in servers only.")
            return
        if isinstance(error, app_commands.MissingPermissions | app_commands.CheckFailure):
            await reply_ephemeral(interaction, "You don't have permission to use this command.")
            return
        if isinstance(error, app_commands.CommandOnCooldown):
            await reply_ephemeral(interaction, f"Slow down: try again in {error.retry_after:.0f} s.")
            return
        command = interaction.command.qualified_name if interaction.command else "?"
        log.error("Command %s failed", command, exc_info=original)
        await reply_ephemeral(interaction, "Something went wrong on the bot's side. It has been logged.")
