"""Upscale (Subtle) and Upscale (Creative) under a one-image result: that image redrawn at twice its size.

The image is taken from the clicked message itself (fresh links, the image the user saw) and sent as the only
reference to the upscaling model (services/jobs/kinds/upscale.py); the job then runs like any other: admission
with the limits and budgets, one create, progress, Cancel, resume after a restart.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from services.errors import BadInput
from services.jobs.kinds.upscale import upscale_ask
from services.store.models import JobStatus
from services.text import _
from ui.attachments import image_refs
from ui.launch import age_restricted
from ui.views import Press

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot


class Upscale(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.job_buttons.handle("upscale", self.on_button)

    async def cog_unload(self) -> None:
        self.bot.job_buttons.forget("upscale")

    async def on_button(self, interaction: discord.Interaction[Any], press: Press) -> None:
        if press.image is None or press.strength is None:
            raise BadInput(_("That button does nothing any more."))
        images = image_refs(interaction.message)
        if not 1 <= press.image <= len(images):
            raise BadInput(_("That image is not in the message any more, so I can't upscale it."))
        message_id = await self.bot.launcher.acknowledge(interaction)  # before the store, which may be slow
        parent = await self.bot.store.get_job(press.job_id)
        if parent is None:
            raise BadInput(_("That image is no longer in my records, so I can't upscale it."))
        if parent.status != JobStatus.SUCCEEDED:
            raise BadInput(_("That job did not finish, so it has no image to upscale."))
        ask = upscale_ask(
            parent,
            images[press.image - 1],
            of_image=press.image,
            creative=press.strength == "strong",  # the button's "strong" is Creative (ui/views.py)
            user_id=interaction.user.id,
            channel_id=interaction.channel_id or 0,
            guild_id=interaction.guild_id,
        )
        ask = dataclasses.replace(ask, age_restricted=age_restricted(interaction.channel))
        self.bot.admission.check_early(ask)
        await self.bot.launcher.launch(interaction, ask, message_id=message_id)


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Upscale(bot))
