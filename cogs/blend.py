"""/blend (Midjourney's name for it): 2 to 10 images combined into one by a FLUX.2 model, the prompt optional.

flux-2-pro takes up to 8 reference images, flux-2-flex 10 and flux-2-dev 4; more than the model takes is
refused before anything is sent. The job runs like any /imagine, with Reroll and Edit on its result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from services.errors import BadInput
from services.jobs.kinds.blend import BLEND, BLENDERS
from services.rules.catalogue import MAX_SEED
from services.rules.options import allowed_models
from ui.choices import model_choices, param_choices
from ui.launch import ask_from, image_ref

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot

Interaction = discord.Interaction[Any]
Choices = list[app_commands.Choice[str]]


class Blend(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

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
