"""The Cancel button on a job in progress: for the person who asked, and moderators (Manage Messages)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from services.text import _
from ui.replies import reply_ephemeral
from ui.views import Press

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot


class Cancel(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.job_buttons.handle("cancel", self.on_cancel)

    async def cog_unload(self) -> None:
        self.bot.job_buttons.forget("cancel")

    async def on_cancel(self, interaction: discord.Interaction[Any], press: Press) -> None:
        await interaction.response.defer()  # first: Discord wants an answer within 3 s, the store may be slow
        job = await self.bot.store.get_job(press.job_id)
        if job is None:
            await reply_ephemeral(interaction, _("That image job no longer exists."))
            return
        if interaction.user.id != job.user_id and not interaction.permissions.manage_messages:
            await reply_ephemeral(
                interaction, _("Only the person who asked for this image (or a moderator) can cancel it.")
            )
            return
        if not job.active:
            await reply_ephemeral(interaction, _("This job has already finished."))
            return
        # Not running in this process (another shard's, or from before a restart): stopped here, unless its
        # process reached delivery meanwhile.
        if not await self.bot.runner.cancel(job.id) and not await self.bot.runner.cancel_elsewhere(job):
            await reply_ephemeral(interaction, _("Too late to cancel: the image is done and being posted."))


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Cancel(bot))
