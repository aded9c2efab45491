"""🎛️ Remix under a one-image result: a form with the prompt filled in; change it and the job runs again with
the same settings (and the image as a reference where the model takes one: services/jobs/kinds/remix.py).

The parent is read before the form opens (its prompt fills the form; a modal must be the first answer, within
3 s, and one read by id is quick); the image comes from the clicked message, as the user saw it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from services.errors import BadInput
from services.jobs.kinds.remix import remix_ask
from services.rules.catalogue import MAX_PROMPT_CHARS
from services.rules.input_images import ImageRef
from services.store.models import Job, JobStatus
from services.text import _
from ui.attachments import image_refs
from ui.errors import report_error
from ui.i18n import tr
from ui.launch import age_restricted
from ui.render import shown_prompt
from ui.views import Press

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot

Interaction = discord.Interaction[Any]

# L10N: the title of the remix form, at most 45 characters
REMIX = _("Remix")
# L10N: the label of the remix form's text box, at most 45 characters
PROMPT = _("Prompt (change it, the rest stays)")


class RemixModal(discord.ui.Modal):
    def __init__(self, bot: FluxBot, parent: Job, image: ImageRef, of_image: int, interaction: Interaction) -> None:
        super().__init__(timeout=900, title=tr(interaction, REMIX))  # private: the user's language
        self.prompt: discord.ui.TextInput[RemixModal] = discord.ui.TextInput(
            label=tr(interaction, PROMPT),
            style=discord.TextStyle.paragraph,
            default=shown_prompt(parent)[:MAX_PROMPT_CHARS],
            max_length=MAX_PROMPT_CHARS,
            custom_id="prompt",
        )
        self.add_item(self.prompt)
        self.bot, self.parent, self.image, self.of_image = bot, parent, image, of_image

    async def on_submit(self, interaction: Interaction) -> None:
        ask = remix_ask(
            self.parent,
            self.image,
            self.prompt.value,
            of_image=self.of_image,
            user_id=interaction.user.id,
            channel_id=interaction.channel_id or 0,
            guild_id=interaction.guild_id,
            age_restricted=age_restricted(interaction.channel),
        )
        self.bot.admission.check_early(ask)  # a blocked prompt is refused before anything is shown
        await self.bot.launcher.launch(interaction, ask)

    # discord.py's Modal narrows BaseView.on_error (no item argument); mypy sees that as an override clash.
    async def on_error(self, interaction: Interaction, error: Exception, /) -> None:  # type: ignore[override]
        await report_error(interaction, error, where="Remix modal")


class Remix(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.job_buttons.handle("remix", self.on_button)

    async def cog_unload(self) -> None:
        self.bot.job_buttons.forget("remix")

    async def on_button(self, interaction: Interaction, press: Press) -> None:
        images = image_refs(interaction.message)
        position = press.image or 1
        if not 1 <= position <= len(images):
            raise BadInput(_("That image is not in the message any more, so I can't remix it."))
        parent = await self.bot.store.get_job(press.job_id)
        if parent is None:
            raise BadInput(_("That image is no longer in my records, so I can't remix it."))
        if parent.status != JobStatus.SUCCEEDED:
            raise BadInput(_("That job did not finish, so it has nothing to remix."))
        modal = RemixModal(self.bot, parent, images[position - 1], position, interaction)
        await interaction.response.send_modal(modal)


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Remix(bot))
