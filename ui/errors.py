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
from services.jobs.admission import LimitReached
from services.text import _
from ui.credits import premium_view
from ui.replies import reply_ephemeral

log = logging.getLogger(__name__)

GENERIC = _("Something went wrong on the bot's side. It has been logged.")


async def report_error(interaction: discord.Interaction[Any], error: BaseException, *, where: str) -> None:
    original = getattr(error, "original", error)
    if isinstance(original, BadInput):
        # A command that saves settings says so: extras={"saves": True}.
        saves = interaction.command.extras.get("saves", False) if interaction.command else False
        text = _("Not saved: {reason}", reason=original.text) if saves else original.text
        sku_id = original.refusal.sku_id if isinstance(original, LimitReached) else None
        await reply_ephemeral(interaction, text, view=None if sku_id is None else premium_view(sku_id))
        return
    if isinstance(error, app_commands.NoPrivateMessage):
        await reply_ephemeral(interaction, _("This command works in servers only."))
        return
    if isinstance(error, app_commands.MissingPermissions | app_commands.CheckFailure):
        await reply_ephemeral(interaction, _("You don't have permission to use this command."))
        return
    if isinstance(error, app_commands.CommandOnCooldown):
        await reply_ephemeral(
            interaction, _("Slow down: try again in {seconds} s.", seconds=f"{error.retry_after:.0f}")
        )
        return
    log.error("%s failed", where, exc_info=original)
    await reply_ephemeral(interaction, GENERIC)


class FluxTree(app_commands.CommandTree):
    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        command = interaction.command.qualified_name if interaction.command else "?"
        await report_error(interaction, error, where=f"Command {command}")
