"""The one error path: commands, buttons and modals all end here when their callback raises.

BadInput (and every refusal built on it) becomes its own message, privately; permission and context
failures get a short sentence; anything else is logged with its traceback and the user is told it was.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from services.errors import BadInput
from ui.replies import reply_ephemeral

log = logging.getLogger(__name__)

GENERIC = "Something went wrong on the bot's side. It has been logged."


async def report_error(interaction: discord.Interaction[Any], error: BaseException, *, where: str) -> None:
    original = getattr(error, "original", error)
    if isinstance(original, BadInput):
        # A command that saves settings says so: extras={"refused": "Not saved: "}.
        prefix = interaction.command.extras.get("refused", "") if interaction.command else ""
        await reply_ephemeral(interaction, f"{prefix}{original}")
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
    log.error("%s failed", where, exc_info=original)
    await reply_ephemeral(interaction, GENERIC)


class FluxTree(app_commands.CommandTree):
    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        command = interaction.command.qualified_name if interaction.command else "?"
        await report_error(interaction, error, where=f"Command {command}")
