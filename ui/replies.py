"""Private answers to an interaction, whether or not it was already acknowledged."""

from __future__ import annotations

import logging

import discord

from services.text import Text, clip
from ui.i18n import tr

log = logging.getLogger(__name__)


MAX_CONTENT = 2000  # Discord refuses a longer message, and the user would get no answer at all


async def reply_ephemeral(
    interaction: discord.Interaction, message: Text | str, *, view: discord.ui.View | None = None
) -> None:
    """Answer privately, in the user's language, whether or not the interaction was already acknowledged
    (with `view`'s buttons, such as the premium button that sells a credit pack)."""
    text = clip(tr(interaction, message), MAX_CONTENT)
    buttons = discord.utils.MISSING if view is None else view
    try:
        if interaction.response.is_done():
            await _drop_thinking(interaction)
            await interaction.followup.send(
                text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none(), view=buttons
            )
        else:
            await interaction.response.send_message(
                text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none(), view=buttons
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
