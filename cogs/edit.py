"""Editing images with FLUX Kontext: ✏️ Edit on results and "Edit with FLUX" on any message with an image.

Both open the same modal asking what to change; the edit then runs like any job, posted as a new reply with
live progress, and linked to the job whose result it edits (when the image is one of ours).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from services.errors import BadInput
from services.rules.catalogue import MAX_PROMPT_CHARS, clean_prompt
from services.rules.input_images import ACCEPTED_TYPES, ImageRef, precheck
from services.store.models import Job
from ui.errors import reply_ephemeral

if TYPE_CHECKING:
    from bot import FluxBot
    from cogs.imagine import Imagine

log = logging.getLogger(__name__)

Interaction = discord.Interaction[Any]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


def image_refs(message: discord.Message) -> list[ImageRef]:
    """The message's attachments that look like images (they are checked again once downloaded)."""
    return [
        ImageRef(a.url, a.filename, a.size, a.content_type)
        for a in message.attachments
        if (a.content_type or "").split(";")[0] in ACCEPTED_TYPES or a.filename.lower().endswith(IMAGE_SUFFIXES)
    ]


class EditModal(discord.ui.Modal, title="Edit with FLUX"):
    instruction: discord.ui.TextInput[EditModal] = discord.ui.TextInput(
        label="What should change?",
        style=discord.TextStyle.paragraph,
        placeholder="e.g. make it night, with snow falling",
        max_length=MAX_PROMPT_CHARS,
        custom_id="instruction",
    )

    def __init__(self, edit: Edit, images: list[ImageRef], parent: Job | None) -> None:
        super().__init__(timeout=900)
        self.edit, self.images, self.parent = edit, images, parent
        self.which: discord.ui.TextInput[EditModal] | None = None
        if len(images) > 1:
            self.which = discord.ui.TextInput(
                label=f"Which image (1-{len(images)})", default="1", max_length=2, required=False, custom_id="which"
            )
            self.add_item(self.which)

    async def on_submit(self, interaction: Interaction) -> None:
        index = 1
        if self.which is not None and self.which.value.strip():
            try:
                index = int(self.which.value)
            except ValueError:
                index = 0
            if not 1 <= index <= len(self.images):
                await reply_ephemeral(interaction, f"Pick an image number from 1 to {len(self.images)}.")
                return
        await self.edit.start(interaction, self.instruction.value, self.images[index - 1], self.parent)

    # discord.py's Modal narrows BaseView.on_error (no item argument); mypy sees that as an override clash.
    async def on_error(self, interaction: Interaction, error: Exception, /) -> None:  # type: ignore[override]
        log.error("Edit modal failed", exc_info=error)
        await reply_ephemeral(interaction, "Something went wrong on the bot's side. It has been logged.")


class Edit(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Edit with FLUX", callback=self.edit_message)
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def edit_message(self, interaction: Interaction, message: discord.Message) -> None:
        """The "Edit with FLUX" message command."""
        parent = None
        if self.bot.user is not None and message.author.id == self.bot.user.id:
            parent = await self.bot.store.job_by_message(message.id)
        await self.open(interaction, image_refs(message), parent)

    async def open(self, interaction: Interaction, images: list[ImageRef], parent: Job | None) -> None:
        """Ask what to change (a modal must be the interaction's first answer, so no defer here)."""
        if not images:
            await reply_ephemeral(interaction, "That message has no image to edit: attach a PNG, JPEG, GIF or WebP.")
            return
        await interaction.response.send_modal(EditModal(self, images, parent))

    async def start(self, interaction: Interaction, instruction: str, image: ImageRef, parent: Job | None) -> None:
        try:
            clean_prompt(instruction)
            precheck([image], self.bot.settings.max_input_image_bytes)
        except BadInput as exc:
            await reply_ephemeral(interaction, str(exc))
            return
        imagine: Imagine = self.bot.get_cog("Imagine")  # type: ignore[assignment]
        await imagine.launch(
            interaction, prompt=instruction, given={}, refs=[image], kind="edit", parent=parent, edit=True
        )


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Edit(bot))
