"""Where the bot can reach the person who used it: the channel itself, or only the interaction.

Installed to a user's account, the app can be used in servers that never added the bot, in DMs between
people and in group DMs. There it has no channel endpoints (posting or editing answers Missing Access) and
sees no events: its only way to the user is the interaction, whose token lasts 15 minutes (an `@original`
edit, at most 5 follow-ups). The same holds for a reply Discord made private (ephemeral): only the token can
edit it. Such jobs store the token and must end before it expires (`Job.reply_by`).
"""

from __future__ import annotations

from typing import Any

import discord

from ui.i18n import public_locale, user_locale

Interaction = discord.Interaction[Any]
PRIVATE = "flux_private_reply"  # interaction.extras: Discord made the bot's answer ephemeral


def bot_is_member(interaction: Interaction) -> bool:
    """Whether the bot itself is in the server the interaction came from (its settings apply there)."""
    guild_id = interaction.guild_id
    if guild_id is None:
        return False
    return interaction.is_guild_integration() or interaction.client.get_guild(guild_id) is not None


def channel_reachable(interaction: Interaction) -> bool:
    """Whether the bot may post and edit in the interaction's channel (else only the interaction reaches it)."""
    if interaction.extras.get(PRIVATE):
        return False  # an ephemeral message: the channel endpoints can't see it
    context = interaction.context
    if context.guild:
        return bot_is_member(interaction)
    # A group DM or a DM between two people: no; the bot's own DM with the user (or no context given): yes.
    return not context.private_channel


def reply_fields(interaction: Interaction) -> dict[str, Any]:
    """What a job started by this interaction needs to show itself: its language, how to reach it, and whether
    its reply is private (then only its owner sees it in a history)."""
    private = bool(interaction.extras.get(PRIVATE))
    fields: dict[str, Any] = {
        "locale": user_locale(interaction) if private else public_locale(interaction),
        "private": private,
    }
    if not channel_reachable(interaction):
        fields |= {"interaction_token": interaction.token, "reply_by": interaction.expires_at.timestamp()}
    return fields
