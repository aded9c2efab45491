"""Variations: V1..Vn under results with several images, Vary (Subtle) and Vary (Strong) under one.

A variation keeps the parent's prompt and sends the chosen image as the reference, taken from the clicked
message itself (the interaction carries its attachments with fresh links), so it is the image the user saw
and never a link that has expired. It then runs like any job: admission with the limits, one create, live
progress, Cancel, resume after a restart; it is posted as a new reply linked to its parent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from services.errors import BadInput
from services.jobs.kinds.variation import variation_ask
from services.store.models import JobStatus
from services.text import _
from ui.attachments import image_at, image_refs
from ui.launch import age_restricted
from ui.views import Press

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot


class Vary(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.job_buttons.handle("vary", self.on_button)

    async def cog_unload(self) -> None:
        self.bot.job_buttons.forget("vary")

    async def on_button(self, interaction: discord.Interaction[Any], press: Press) -> None:
        if press.image is None or press.strength is None:
            raise BadInput(_("That button does nothing any more."))
        image = image_at(image_refs(interaction.message), press.image, doing="vary")
        message_id = await self.bot.launcher.acknowledge(interaction)  # before the store, which may be slow
        parent = await self.bot.store.get_job(press.job_id)
        if parent is None:
            raise BadInput(_("That image is no longer in my records, so I can't make variations of it."))
        if parent.status != JobStatus.SUCCEEDED:
            raise BadInput(_("That job did not finish, so it has no image to vary."))
        ask = variation_ask(
            parent,
            image,
            of_image=press.image,
            strength=press.strength,
            user_id=interaction.user.id,
            channel_id=interaction.channel_id or 0,
            guild_id=interaction.guild_id,
            age_restricted=age_restricted(interaction.channel),
        )
        self.bot.admission.check_early(ask)
        await self.bot.launcher.launch(interaction, ask, message_id=message_id)


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Vary(bot))
