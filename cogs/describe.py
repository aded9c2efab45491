"""/describe and the "Describe with FLUX" message menu: four prompts for an image, written by a chat model that
sees images (DESCRIBE_MODEL), shown privately with buttons 1 to 4 that start an /imagine with that prompt, and 🔄
to describe it again.

The chat is booked and settled by admission (services/jobs/admission.py `describe`); its row's id names the
buttons (`flux:use_prompt:ROW:N`, `flux:describe:ROW`) and keeps the prompts, so they work after a restart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from services.errors import BadInput
from services.jobs.ask import Ask
from services.jobs.kinds.imagine import IMAGINE
from services.rules.input_images import ImageRef, precheck, prepare
from services.store.models import Job
from services.text import Text, _, verbatim
from ui.attachments import image_refs
from ui.credits import credit_interaction
from ui.i18n import tr
from ui.launch import ask_from, image_ref, settings_guild
from ui.replies import MAX_CONTENT
from ui.views import Press, button

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot

Interaction = discord.Interaction[Any]

# L10N: the name of the message menu command that describes a message's image, at most 32 characters
DESCRIBE_WITH_FLUX = _("Describe with FLUX")
USE = "use_prompt"  # buttons 1..4
AGAIN = "describe"  # 🔄


def answer_view(row: Job, prompts: list[str], locale: str | None) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for n in range(1, len(prompts) + 1):
        view.add_item(button(USE, Press(row.id, n), label=verbatim(str(n)), row=0))
    view.add_item(button(AGAIN, Press(row.id), row=0, locale=locale))
    return view


def answer_text(prompts: list[str]) -> Text:
    lines = "\n".join(f"**{n}.** {prompt}" for n, prompt in enumerate(prompts, 1))
    # L10N: above the four prompts /describe wrote; {prompts} is the numbered list
    return _("Prompts for this image; a button starts an /imagine with that one:\n{prompts}", prompts=verbatim(lines))


class Describe(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name=DESCRIBE_WITH_FLUX.msgid, callback=self.describe_message)
        self.bot.tree.add_command(self.menu)

    async def cog_load(self) -> None:
        self.bot.job_buttons.handle(USE, self.on_use)
        self.bot.job_buttons.handle(AGAIN, self.on_again)

    async def cog_unload(self) -> None:
        self.bot.job_buttons.forget(USE)
        self.bot.job_buttons.forget(AGAIN)
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    @app_commands.command(name="describe", description="Four FLUX prompts for an image")
    @app_commands.describe(image="The image to describe (PNG, JPEG, GIF or WebP)")
    async def describe(self, interaction: Interaction, image: discord.Attachment) -> None:
        await self._describe(interaction, image_ref(image))

    async def describe_message(self, interaction: Interaction, message: discord.Message) -> None:
        """The "Describe with FLUX" message command: the message's first image."""
        images = image_refs(message)
        if not images:
            raise BadInput(_("That message has no image to describe: attach a PNG, JPEG, GIF or WebP."))
        await self._describe(interaction, images[0])

    async def _describe(self, interaction: Interaction, ref: ImageRef) -> None:
        precheck([ref], self.bot.admission.policy.max_input_image_bytes)  # a mistake answered before "thinking…"
        await interaction.response.defer(ephemeral=True, thinking=True)
        [image] = await prepare([ref], self.bot.admission.attachments)
        await credit_interaction(self.bot.credits, interaction)  # a purchase the gateway has not told us of yet
        row, prompts = await self.bot.admission.describe(self._ask(interaction), image)
        await self._show(interaction, row, prompts)

    def _ask(self, interaction: Interaction, prompt: str = "") -> Ask:
        guild = settings_guild(interaction)
        return ask_from(interaction, IMAGINE, prompt, server_settings=interaction.guild_id is None or guild is not None)

    async def _show(self, interaction: Interaction, row: Job, prompts: list[str]) -> None:
        locale = str(interaction.locale)
        text = tr(interaction, answer_text(prompts))[:MAX_CONTENT]
        await interaction.edit_original_response(
            content=text, view=answer_view(row, prompts, locale), allowed_mentions=discord.AllowedMentions.none()
        )

    async def on_use(self, interaction: Interaction, press: Press) -> None:
        """Button N: an /imagine with prompt N, posted like any /imagine."""
        row = await self.bot.store.get_job(press.job_id)
        prompts = row.extra.more.get("prompts") if row is not None else None
        if not isinstance(prompts, list) or press.image is None or not 1 <= press.image <= len(prompts):
            raise BadInput(_("Those prompts are no longer in my records; use /describe again."))
        ask = ask_from(interaction, IMAGINE, str(prompts[press.image - 1]))
        self.bot.admission.check_early(ask)
        await self.bot.launcher.launch(interaction, ask)

    async def on_again(self, interaction: Interaction, press: Press) -> None:
        """🔄: the same image described anew, in the same private message."""
        row = await self.bot.store.get_job(press.job_id)
        if row is None:
            raise BadInput(_("That image is no longer kept; use /describe with it again."))
        await interaction.response.defer()  # an update of the private answer, which shows the new prompts
        await credit_interaction(self.bot.credits, interaction)
        new_row, prompts = await self.bot.admission.describe_again(self._ask(interaction), row)
        await self._show(interaction, new_row, prompts)


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Describe(bot))
