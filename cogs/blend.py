"""/blend (Midjourney's name for it): 2 to 10 images combined into one by a FLUX.2 model, the prompt optional.

flux-2-pro takes up to 8 reference images, flux-2-flex 10 and flux-2-dev 4; more than the model takes is
refused before anything is sent. The job runs like any /imagine, with Reroll and Edit on its result.

"Blend with…" under a result does the same from a form: its image first, then the images uploaded in the form
(checked like /blend's attachments), linked to the result it came from; "Blend with FLUX" on any message blends
its images (2 or more).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.outpaint import chosen_image, parent_job
from services.errors import BadInput
from services.jobs.kinds.blend import BLEND, BLENDERS
from services.rules.catalogue import MAX_PROMPT_CHARS, MAX_SEED
from services.rules.input_images import ImageRef
from services.rules.options import allowed_models
from services.text import _
from ui.attachments import image_refs
from ui.choices import model_choices, param_choices
from ui.errors import report_error
from ui.i18n import tr
from ui.launch import ask_from, image_ref
from ui.views import Press

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot

Interaction = discord.Interaction[Any]
Choices = list[app_commands.Choice[str]]
ACTION = "blend_with"
MAX_OTHERS = 9  # /blend's 10 images, less the result's own

# L10N: the name of a message menu command, at most 32 characters
BLEND_WITH_FLUX = _("Blend with FLUX")
# L10N: the title of the "Blend with…" form, at most 45 characters
BLEND_WITH_TITLE = _("Blend with…")
# L10N: a label of the "Blend with…" form (a file upload), at most 45 characters
OTHER_IMAGES = _("The images to blend it with")
# L10N: the description under the "Blend with…" form's file upload, at most 100 characters
OTHER_IMAGES_HINT = _("1 to 9 images; the model's own limit applies (flux-2-pro: 8 in all)")
# L10N: a label of the "Blend with…" form, at most 45 characters
HOW_TO_COMBINE = _("How to combine them (optional)")
# L10N: the example in the "Blend with…" form's text box, at most 100 characters
COMBINE_EXAMPLE = _("e.g. the cat from image 1 in the room of image 2")


class BlendWithModal(discord.ui.Modal):
    def __init__(self, bot: FluxBot, press: Press, image: ImageRef, interaction: Interaction) -> None:
        super().__init__(timeout=900, title=tr(interaction, BLEND_WITH_TITLE))
        self.others: discord.ui.FileUpload[BlendWithModal] = discord.ui.FileUpload(
            custom_id="images", min_values=1, max_values=MAX_OTHERS
        )
        self.prompt: discord.ui.TextInput[BlendWithModal] = discord.ui.TextInput(
            style=discord.TextStyle.paragraph,
            placeholder=tr(interaction, COMBINE_EXAMPLE),
            max_length=MAX_PROMPT_CHARS,
            required=False,
            custom_id="prompt",
        )
        others = discord.ui.Label(
            text=tr(interaction, OTHER_IMAGES), description=tr(interaction, OTHER_IMAGES_HINT), component=self.others
        )
        self.add_item(others)
        self.add_item(discord.ui.Label(text=tr(interaction, HOW_TO_COMBINE), component=self.prompt))
        self.bot, self.press, self.image = bot, press, image

    async def on_submit(self, interaction: Interaction) -> None:
        images = [self.image, *(image_ref(a) for a in self.others.values)]
        ask = ask_from(interaction, BLEND, self.prompt.value, images=images)
        self.bot.admission.check_early(ask)  # refused privately, before anything is acknowledged or stored
        message_id = await self.bot.launcher.acknowledge(interaction)
        ask = dataclasses.replace(ask, parent=await parent_job(self.bot, self.press.job_id))
        await self.bot.launcher.launch(interaction, ask, message_id=message_id)

    # discord.py's Modal narrows BaseView.on_error (no item argument); mypy sees that as an override clash.
    async def on_error(self, interaction: Interaction, error: Exception, /) -> None:  # type: ignore[override]
        await report_error(interaction, error, where="Blend with modal")


class Blend(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name=BLEND_WITH_FLUX.msgid, callback=self.blend_message)
        self.bot.tree.add_command(self.menu)

    async def cog_load(self) -> None:
        self.bot.job_buttons.handle(ACTION, self.on_button, offer=True)

    async def cog_unload(self) -> None:
        self.bot.job_buttons.forget(ACTION)
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def blend_message(self, interaction: Interaction, message: discord.Message) -> None:
        """The "Blend with FLUX" message command: the message's images, blended."""
        images = image_refs(message)
        if len(images) < 2:
            raise BadInput(
                _("Blending takes a message with 2 images or more; for one, use Blend with… under a result.")
            )
        ask = ask_from(interaction, BLEND, "", images=images)
        self.bot.admission.check_early(ask)
        await self.bot.launcher.launch(interaction, ask)

    async def on_button(self, interaction: Interaction, press: Press) -> None:
        """ "Blend with…" under a result: a form for the other images."""
        image, _number = chosen_image(interaction, press)  # refused now, before the form, if it is not there
        await interaction.response.send_modal(BlendWithModal(self.bot, press, image, interaction))

    @app_commands.command(name="blend", description="Blend 2 to 10 images into one with FLUX.2")
    @app_commands.describe(
        image1="First image",
        image2="Second image",
        prompt="How to combine them (optional), e.g. the cat from image 1 in the room of image 2",
        model="A FLUX.2 model: pro (up to 8 images), flex (10) or dev (4)",
        aspect_ratio="Shape of the result, e.g. 16:9 or match_input_image",
        resolution="Megapixels, e.g. 1 MP (pro and flex)",
        output_format="File type",
        seed="Repeat a result: same images, prompt and seed",
        **{f"image{n}": "Another image" for n in range(3, 11)},
    )
    async def blend(
        self,
        interaction: Interaction,
        image1: discord.Attachment,
        image2: discord.Attachment,
        prompt: str | None = None,
        model: str | None = None,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        output_format: str | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        image5: discord.Attachment | None = None,
        image6: discord.Attachment | None = None,
        image7: discord.Attachment | None = None,
        image8: discord.Attachment | None = None,
        image9: discord.Attachment | None = None,
        image10: discord.Attachment | None = None,
    ) -> None:
        given = {
            "model": model,
            "aspect_ratio": aspect_ratio,
            "resolution": resolution,
            "output_format": output_format,
            "seed": seed,
        }
        attached = (image1, image2, image3, image4, image5, image6, image7, image8, image9, image10)
        images = [image_ref(a) for a in attached if a is not None]
        ask = ask_from(interaction, BLEND, prompt or "", given=given, images=images)
        self.bot.admission.check_early(ask)
        await self.bot.launcher.launch(interaction, ask)

    @blend.autocomplete("model")
    async def model_autocomplete(self, interaction: Interaction, current: str) -> Choices:
        context = await self.bot.launcher.context(interaction)
        return model_choices([spec for spec in allowed_models(context) if spec.max_images >= 2], current)

    @blend.autocomplete("aspect_ratio")
    async def ratio_autocomplete(self, interaction: Interaction, current: str) -> Choices:
        return await self._values_of(interaction, "aspect_ratio", current)

    @blend.autocomplete("resolution")
    async def resolution_autocomplete(self, interaction: Interaction, current: str) -> Choices:
        return await self._values_of(interaction, "resolution", current)

    @blend.autocomplete("output_format")
    async def format_autocomplete(self, interaction: Interaction, current: str) -> Choices:
        return await self._values_of(interaction, "output_format", current)

    async def _values_of(self, interaction: Interaction, param: str, current: str) -> Choices:
        """The values the chosen model (or the one /blend would use) takes for `param`."""
        model = getattr(interaction.namespace, "model", None)
        if not model:
            context = await self.bot.launcher.context(interaction)
            try:
                model = BLENDERS.pick(context)
            except BadInput:
                return []
        return param_choices(self.bot.settings.catalogue, str(model), param, current)


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Blend(bot))
