"""Upscale (Subtle) and Upscale (Creative) under a one-image result: that image redrawn at twice its size; and
"Upscale with FLUX" on any message with an image (its first, subtly; linked to its job when it is our result).

The image is taken from the clicked message itself (fresh links, the image the user saw) and sent as the only
reference to the upscaling model (services/jobs/kinds/upscale.py); the job then runs like any other: admission
with the limits and budgets, one create, progress, Cancel, resume after a restart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from services.errors import BadInput
from services.jobs.kinds.upscale import upscale_ask
from services.rules.input_images import ImageRef
from services.store.models import Job, JobStatus
from services.text import _
from ui.attachments import image_at, image_refs
from ui.launch import age_restricted
from ui.views import Press

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot


# L10N: the name of a message menu command, at most 32 characters
UPSCALE_WITH_FLUX = _("Upscale with FLUX")


class Upscale(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name=UPSCALE_WITH_FLUX.msgid, callback=self.upscale_message)
        self.bot.tree.add_command(self.menu)

    async def cog_load(self) -> None:
        self.bot.job_buttons.handle("upscale", self.on_button)

    async def cog_unload(self) -> None:
        self.bot.job_buttons.forget("upscale")
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def upscale_message(self, interaction: discord.Interaction[Any], message: discord.Message) -> None:
        """The "Upscale with FLUX" message command: the message's first image, twice the size, as it is."""
        image = image_at(image_refs(message), 1, doing="upscale")
        message_id = await self.bot.launcher.acknowledge(interaction)  # before the store, which may be slow
        ours = self.bot.user is not None and message.author.id == self.bot.user.id
        parent = await self.bot.store.job_by_message(message.id) if ours else None
        parent = parent if parent is not None and parent.status == JobStatus.SUCCEEDED else None
        await self._upscale(interaction, message_id, parent, image, of_image=1, creative=False)

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
        creative = press.strength == "strong"  # the button's "strong" is Creative (ui/views.py)
        await self._upscale(
            interaction, message_id, parent, images[press.image - 1], of_image=press.image, creative=creative
        )

    async def _upscale(
        self,
        interaction: discord.Interaction[Any],
        message_id: int,
        parent: Job | None,
        image: ImageRef,
        *,
        of_image: int,
        creative: bool,
    ) -> None:
        """Upscale `image` for the user of `interaction`, acknowledged already as `message_id`."""
        ask = upscale_ask(
            parent,
            image,
            of_image=of_image,
            creative=creative,
            user_id=interaction.user.id,
            channel_id=interaction.channel_id or 0,
            guild_id=interaction.guild_id,
            age_restricted=age_restricted(interaction.channel),
        )
        self.bot.admission.check_early(ask)
        await self.bot.launcher.launch(interaction, ask, message_id=message_id)


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Upscale(bot))
