"""/imagine: a prompt and options in, a job with live progress out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from services.errors import BadInput
from services.rules.catalogue import MAX_SEED, resolve_model
from services.rules.input_images import ImageRef
from services.rules.options import RequestContext, allowed_models, chosen_model
from services.store.models import JobKind
from ui.choices import model_choices
from ui.launch import ask_from
from ui.reach import bot_is_member

if TYPE_CHECKING:
    from bot import FluxBot

Interaction = discord.Interaction[Any]
Choices = list[app_commands.Choice[str]]


def image_ref(attachment: discord.Attachment) -> ImageRef:
    return ImageRef(attachment.url, attachment.filename, attachment.size, attachment.content_type)


class Imagine(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    @app_commands.command(name="imagine", description="Make an image with FLUX")
    @app_commands.describe(
        prompt="What to draw",
        model="Which FLUX model (default: the server's)",
        aspect_ratio="Shape of the image, e.g. 16:9",
        output_format="File type",
        output_quality="0-100, for jpg and webp",
        seed="Repeat a result: same prompt + same seed",
        num_outputs="How many images (1-4, schnell/dev)",
        image="An image to edit (Kontext models)",
        image2="Another reference image",
        image3="Another reference image",
        image4="Another reference image",
    )
    async def imagine(
        self,
        interaction: Interaction,
        prompt: str,
        model: str | None = None,
        aspect_ratio: str | None = None,
        output_format: str | None = None,
        output_quality: app_commands.Range[int, 0, 100] | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        num_outputs: app_commands.Range[int, 1, 4] | None = None,
        image: discord.Attachment | None = None,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
    ) -> None:
        given = {
            "model": model,
            "aspect_ratio": aspect_ratio,
            "output_format": output_format,
            "output_quality": output_quality,
            "seed": seed,
            "num_outputs": num_outputs,
        }
        images = [image_ref(a) for a in (image, image2, image3, image4) if a is not None]
        ask = ask_from(interaction, JobKind.IMAGINE, prompt, given=given, images=images)
        # A mistake that needs no I/O gets its private answer before any "thinking…".
        self.bot.admission.check_early(ask)
        await self.bot.launcher.launch(interaction, ask)

    @imagine.autocomplete("model")
    async def model_autocomplete(self, interaction: Interaction, current: str) -> Choices:
        context = await self._context(interaction)
        return model_choices(allowed_models(context), current)

    @imagine.autocomplete("aspect_ratio")
    async def ratio_autocomplete(self, interaction: Interaction, current: str) -> Choices:
        return await self._values_of(interaction, "aspect_ratio", current)

    @imagine.autocomplete("output_format")
    async def format_autocomplete(self, interaction: Interaction, current: str) -> Choices:
        return await self._values_of(interaction, "output_format", current)

    async def _values_of(self, interaction: Interaction, param: str, current: str) -> Choices:
        """The values the chosen (or default) model accepts for `param`."""
        context = await self._context(interaction)
        try:
            spec = resolve_model(chosen_model(getattr(interaction.namespace, "model", None), context))
        except BadInput:
            return []
        if spec is None:
            return []
        return [app_commands.Choice(name=v, value=v) for v in spec.choices(param) if current.lower() in v][:25]

    async def _context(self, interaction: Interaction) -> RequestContext:
        """The settings that apply: the server's only where the bot is in it (not through a user install)."""
        guild_id = interaction.guild_id if bot_is_member(interaction) else None
        return await self.bot.admission.context(guild_id, interaction.user.id)


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Imagine(bot))
