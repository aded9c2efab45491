"""U1..Un under a result with several images: that image posted alone, as a result of its own.

No API call and no cost: the image is fetched from the clicked message (the bytes the user saw) and uploaded
again in a new reply, under the buttons of a one-image result (Upscale, Vary, Remix, Edit, Reroll and those
other features offer). Its record (services/jobs/kinds/pick.py) is stored before the buttons are shown, so
they work after a restart like any result's.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from services.errors import BadInput
from services.jobs.kinds.pick import pick_job
from services.rules.input_images import prepare
from services.store.models import JobStatus
from services.text import _
from ui.attachments import image_refs
from ui.display import SPOILER
from ui.reach import reply_fields
from ui.render import CardImage, result_card
from ui.uploads import upload_files
from ui.views import Press, result_rows, stopped

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot


class Pick(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.job_buttons.handle("pick", self.on_button)

    async def cog_unload(self) -> None:
        self.bot.job_buttons.forget("pick")

    async def on_button(self, interaction: discord.Interaction[Any], press: Press) -> None:
        if press.image is None:
            raise BadInput(_("That button does nothing any more."))
        images = image_refs(interaction.message)
        if not 1 <= press.image <= len(images):
            raise BadInput(_("That image is not in the message any more."))
        image = images[press.image - 1]
        message_id = await self.bot.launcher.acknowledge(interaction)  # before the store and the download
        parent = await self.bot.store.get_job(press.job_id)
        if parent is None:
            raise BadInput(_("That image is no longer in my records, so I can't post it alone."))
        if parent.status != JobStatus.SUCCEEDED:
            raise BadInput(_("That job did not finish, so it has no image to post."))
        (file,) = await prepare([image], self.bot.admission.attachments)
        shown = reply_fields(interaction)
        job = pick_job(
            parent,
            of_image=press.image,
            user_id=interaction.user.id,
            channel_id=interaction.channel_id or 0,
            guild_id=interaction.guild_id,
            shard_id=self.bot.admission.shard_of(interaction.guild_id),
            message_id=message_id,
            locale=shown["locale"],
            private=shown["private"],
            now=time.time(),
        )
        await self.bot.store.create_job(job)  # first: the buttons below must find it
        # An image the server's check put behind a spoiler stays behind one: posting it alone is no new check.
        spoiler = SPOILER if image.filename.startswith(SPOILER) else ""
        name = f"{spoiler}flux-{job.id[:8]}-1.{file.extension}"
        buttons = self.bot.job_buttons
        rows = result_rows(job.id, 1, job.locale, buttons.offered, buttons.icons)
        with upload_files([(name, file)]) as files:  # closed, and the reader's cycle undone, as for every result
            await interaction.edit_original_response(
                attachments=files,
                view=stopped(result_card(job, None, [], [CardImage(name, spoiler=bool(spoiler))], rows)),
                allowed_mentions=discord.AllowedMentions.none(),
            )


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Pick(bot))
