"""/imagine: acknowledge at once, then validate, store the job and run it with live progress."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from services.cometapi.files import Downloader
from services.errors import BadInput
from services.jobs.rerolls import reroll_request
from services.rules.catalogue import MAX_SEED, Request, build_input, clean_prompt, resolve_model
from services.rules.input_images import ImageRef, precheck, prepare
from services.rules.options import (
    Limits,
    RequestContext,
    Resolved,
    allowed_models,
    check_admission,
    chosen_model,
    edit_model,
    resolve,
)
from services.store.models import Job
from ui.choices import model_choices
from ui.errors import reply_ephemeral
from ui.views import DYNAMIC_ITEMS

if TYPE_CHECKING:
    from bot import FluxBot

log = logging.getLogger(__name__)

Choice = app_commands.Choice[str]
DISCORD_CDN = ("https://cdn.discordapp.com", "https://media.discordapp.net")


class Imagine(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot
        settings = bot.settings
        trusted = [*DISCORD_CDN, *([settings.discord_api_base_url] if settings.discord_api_base_url else [])]
        self.attachments = Downloader(
            bot.service.downloader.session,
            max_bytes=settings.max_input_image_bytes,
            timeout=settings.download_timeout,
            trusted_urls=trusted,
            https_any_host=False,
        )

    # --- /imagine -------------------------------------------------------------------------------------

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
        interaction: discord.Interaction[Any],
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
        given: dict[str, object] = {
            "model": model,
            "aspect_ratio": aspect_ratio,
            "output_format": output_format,
            "output_quality": output_quality,
            "seed": seed,
            "num_outputs": num_outputs,
        }
        refs = [
            ImageRef(a.url, a.filename, a.size, a.content_type)
            for a in (image, image2, image3, image4)
            if a is not None
        ]
        # Checks that need no I/O come first, so a mistake gets a private answer with no "thinking…".
        try:
            clean_prompt(prompt)
            precheck(refs, self.bot.settings.max_input_image_bytes)
            if model:
                # The model is named, so what was given can be checked against it now (the stored defaults
                # are merged, and checked again, after the acknowledgement).
                options = {k: v for k, v in given.items() if k != "model" and v is not None}
                placeholders = tuple(f"https://cdn.discordapp.com/{ref.filename}" for ref in refs)
                build_input(
                    model, Request(prompt, options, placeholders), allow_unknown=self.bot.settings.allow_unknown_models
                )
        except BadInput as exc:
            await reply_ephemeral(interaction, str(exc))
            return
        await self.launch(interaction, prompt=prompt, given=given, refs=refs, kind="imagine", parent=None)

    @imagine.autocomplete("model")
    async def model_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        context = await self.context(interaction.guild_id, interaction.user.id)
        return model_choices(allowed_models(context), current)

    @imagine.autocomplete("aspect_ratio")
    async def ratio_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return await self._choices_for(interaction, "aspect_ratio", current)

    @imagine.autocomplete("output_format")
    async def format_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return await self._choices_for(interaction, "output_format", current)

    async def _choices_for(
        self, interaction: discord.Interaction[Any], param: str, current: str
    ) -> list[app_commands.Choice[str]]:
        """The values the chosen (or default) model accepts for `param`."""
        context = await self.context(interaction.guild_id, interaction.user.id)
        try:
            spec = resolve_model(chosen_model(getattr(interaction.namespace, "model", None), context))
        except BadInput:
            return []
        if spec is None:
            return []
        return [app_commands.Choice(name=v, value=v) for v in spec.choices(param) if current.lower() in v][:25]

    # --- shared by /imagine, the buttons and reactions -------------------------------------------------

    async def context(self, guild_id: int | None, user_id: int) -> RequestContext:
        store = self.bot.store
        guild = await store.get_guild_settings(guild_id) if guild_id else None
        return RequestContext(
            default_model=self.bot.settings.default_model,
            allow_unknown_models=self.bot.settings.allow_unknown_models,
            guild=guild,
            user_prefs=await store.get_user_prefs(user_id),
        )

    def limits(self, context: RequestContext) -> Limits:
        base = Limits(
            cooldown_seconds=self.bot.settings.user_cooldown, jobs_in_flight=self.bot.settings.max_jobs_per_user
        )
        return base.merged(context.guild.limits) if context.guild else base

    async def admit(
        self,
        context: RequestContext,
        prompt: str,
        given: Mapping[str, object],
        image_urls: Sequence[str],
        *,
        user_id: int,
        guild_id: int | None,
        seed: int | None = None,
    ) -> Resolved:
        """The request as it will be sent, once it and the user's limits allow it; else BadInput saying why."""
        resolved = resolve(prompt, given, image_urls, context, seed=seed)
        await check_admission(
            self.bot.store, user_id=user_id, guild_id=guild_id, limits=self.limits(context),
            images=resolved.image_count,
        )  # fmt: skip
        return resolved

    async def launch(
        self,
        interaction: discord.Interaction[Any],
        *,
        prompt: str,
        given: dict[str, object],
        refs: list[ImageRef],
        kind: str,
        parent: Job | None,
        image_urls: list[str] | None = None,
        seed: int | None = None,
        edit: bool = False,
    ) -> Job | None:
        """Acknowledge, then validate, store and start a job whose progress replaces the "thinking…" reply.

        `edit`: run the server's image-editing model on the given image, matching its shape.
        """
        response = await interaction.response.defer(thinking=True)
        try:
            context = await self.context(interaction.guild_id, interaction.user.id)
            if edit:
                given = {**given, "model": edit_model(context), "aspect_ratio": "match_input_image"}
            urls = image_urls if image_urls is not None else await prepare(
                refs, self.attachments, mode=self.bot.settings.input_image_mode
            )  # fmt: skip
            resolved = await self.admit(
                context, prompt, given, urls, user_id=interaction.user.id, guild_id=interaction.guild_id, seed=seed
            )
        except BadInput as exc:
            await self._refuse(interaction, str(exc))
            return None
        message_id = response.message_id if response is not None else None
        if message_id is None:
            message_id = (await interaction.original_response()).id
        job = self.new_job(kind, interaction.user.id, interaction.channel_id, interaction.guild_id, resolved, parent)
        return await self.store_and_start(job, message_id, interaction, resolved)

    async def _refuse(self, interaction: discord.Interaction[Any], message: str) -> None:
        """A private answer in place of the public "thinking…": nothing was started."""
        await reply_ephemeral(interaction, message)

    def new_job(
        self,
        kind: str,
        user_id: int,
        channel_id: int | None,
        guild_id: int | None,
        resolved: Resolved,
        parent: Job | None,
    ) -> Job:
        return Job(
            id=uuid.uuid4().hex,
            kind=kind,
            user_id=user_id,
            channel_id=channel_id or 0,
            guild_id=guild_id,
            shard_id=self.bot.shard_of(guild_id),
            model=resolved.model,
            input=resolved.input,
            status="queued",
            created_at=time.time(),
            parent_id=parent.id if parent else None,
            extra={"notes": list(resolved.notes)} if resolved.notes else {},
        )

    async def store_and_start(
        self, job: Job, message_id: int, interaction: discord.Interaction[Any] | None, resolved: Resolved
    ) -> Job:
        job = Job(**{**job.__dict__, "message_id": message_id})
        await self.bot.store.create_job(job)  # the record exists before any API call
        self.bot.display.track(job, interaction, resolved.notes)
        self.bot.runner.start(job)
        return job

    async def reroll_from_button(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        parent = await self.bot.store.get_job(job_id)
        if parent is None:
            await reply_ephemeral(interaction, "That image is no longer in my records, so I can't reroll it.")
            return
        await self.reroll(interaction, parent)

    async def reroll(self, interaction: discord.Interaction[Any], parent: Job) -> Job | None:
        """Same model and inputs as `parent`, a new random seed, for whoever asked."""
        request = reroll_request(parent)
        return await self.launch(
            interaction,
            prompt=request.prompt,
            given=request.given,
            refs=[],
            kind="reroll",
            parent=parent,
            image_urls=request.image_urls,
        )


async def setup(bot: FluxBot) -> None:
    bot.add_dynamic_items(*DYNAMIC_ITEMS)
    await bot.add_cog(Imagine(bot))
