"""/imagine: a prompt and options in, a job with live progress out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from services.jobs.kinds.imagine import IMAGINE
from services.rules.catalogue import MAX_SEED
from services.rules.options import allowed_models, chosen_model
from ui.choices import model_choices, param_choices
from ui.launch import ask_from, image_ref

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot

Interaction = discord.Interaction[Any]
Choices = list[app_commands.Choice[str]]


class Imagine(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    @app_commands.command(name="imagine", description="Make an image with FLUX")
    @app_commands.describe(
        prompt="What to draw",
        model="Which FLUX model (default: the server's)",
        aspect_ratio="Shape of the image, e.g. 16:9",
        resolution="Megapixels, e.g. 1 MP (FLUX.2 pro and flex)",
        output_format="File type",
        output_quality="0-100, for jpg and webp",
        seed="Repeat a result: same prompt + same seed",
        num_outputs="How many images (1-4, schnell/dev)",
        safety_tolerance="1 strictest to 6 most permissive (pro models; above 2 only in age-restricted channels)",
        image="An image to edit (Kontext) or a reference image (FLUX.2)",
        enhance="✨ Let a chat model rewrite a short prompt into a richer one first",
        **{f"image{n}": "Another reference image (FLUX.2: up to 4, 8 or 10)" for n in range(2, 11)},
    )
    async def imagine(
        self,
        interaction: Interaction,
        prompt: str,
        model: str | None = None,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        output_format: str | None = None,
        output_quality: app_commands.Range[int, 0, 100] | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        num_outputs: app_commands.Range[int, 1, 4] | None = None,
        safety_tolerance: app_commands.Range[int, 0, 6] | None = None,
        image: discord.Attachment | None = None,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        image5: discord.Attachment | None = None,
        image6: discord.Attachment | None = None,
        image7: discord.Attachment | None = None,
        image8: discord.Attachment | None = None,
        image9: discord.Attachment | None = None,
        image10: discord.Attachment | None = None,
        enhance: bool | None = None,
    ) -> None:
        given = {
            "model": model,
            "aspect_ratio": aspect_ratio,
            "resolution": resolution,
            "output_format": output_format,
            "output_quality": output_quality,
            "seed": seed,
            "num_outputs": num_outputs,
            "safety_tolerance": safety_tolerance,
            "enhance": enhance,
        }
        attached = (image, image2, image3, image4, image5, image6, image7, image8, image9, image10)
        images = [image_ref(a) for a in attached if a is not None]
        ask = ask_from(interaction, IMAGINE, prompt, given=given, images=images)
        # A mistake that needs no I/O gets its private answer before any "thinking…".
        self.bot.admission.check_early(ask)
        await self.bot.launcher.launch(interaction, ask)

    @imagine.autocomplete("model")
    async def model_autocomplete(self, interaction: Interaction, current: str) -> Choices:
        context = await self.bot.launcher.context(interaction)
        return model_choices(allowed_models(context), current)

    @imagine.autocomplete("aspect_ratio")
    async def ratio_autocomplete(self, interaction: Interaction, current: str) -> Choices:
        return await self._values_of(interaction, "aspect_ratio", current)

    @imagine.autocomplete("resolution")
    async def resolution_autocomplete(self, interaction: Interaction, current: str) -> Choices:
        return await self._values_of(interaction, "resolution", current)

    @imagine.autocomplete("output_format")
    async def format_autocomplete(self, interaction: Interaction, current: str) -> Choices:
        return await self._values_of(interaction, "output_format", current)

    async def _values_of(self, interaction: Interaction, param: str, current: str) -> Choices:
        """The values the chosen (or default) model accepts for `param`."""
        context = await self.bot.launcher.context(interaction)
        model = chosen_model(getattr(interaction.namespace, "model", None), context)
        return param_choices(context.catalogue, model, param, current)


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Imagine(bot))
