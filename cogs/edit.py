"""Editing images: ✏️ Edit and E1..En on results, and "Edit with FLUX" on any message with an image.

All open the same modal asking what to change; the edit then runs the server's editing model (Kontext, or a
FLUX.2 model, which can take all the message's images as references) like any job, posted as a new reply with
live progress, and linked to the job whose result it edits (when the image is one of ours). The store is
read only after the modal is submitted: a modal must be the interaction's first answer, within 3 s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from services.errors import BadInput
from services.rules.catalogue import MAX_PROMPT_CHARS
from services.rules.input_images import ImageRef
from services.store.models import Job, JobKind
from ui.attachments import image_at, image_refs
from ui.errors import report_error
from ui.launch import ask_from
from ui.views import Press

if TYPE_CHECKING:
    from bot import FluxBot

Interaction = discord.Interaction[Any]
FindParent = Callable[[], Awaitable[Job | None]]


class EditModal(discord.ui.Modal, title="Edit with FLUX"):
    instruction: discord.ui.TextInput[EditModal] = discord.ui.TextInput(
        label="What should change?",
        style=discord.TextStyle.paragraph,
        placeholder="e.g. make it night, with snow falling",
        max_length=MAX_PROMPT_CHARS,
        custom_id="instruction",
    )

    def __init__(
        self, bot: FluxBot, images: list[ImageRef], find_parent: FindParent, *, chosen: int | None = None
    ) -> None:
        super().__init__(timeout=900)
        self.bot, self.images, self.find_parent, self.chosen = bot, images, find_parent, chosen
        self.which: discord.ui.TextInput[EditModal] | None = None
        if chosen is None and len(images) > 1:
            self.which = discord.ui.TextInput(
                label=f"Which images (1-{len(images)}, e.g. 2 or 1,3, or all)",
                placeholder="Blank: as many as the editing model takes, from the first",
                max_length=40,
                required=False,
                custom_id="which",
            )
            self.add_item(self.which)

    def chosen_images(self) -> tuple[list[ImageRef], bool, int | None]:
        """The images picked; whether to send only as many of them as the model takes (nothing was said); and,
        when one image was picked, its place in the message (1-based, for display)."""
        if self.chosen is not None:  # E1..En: that image
            return [image_at(self.images, self.chosen, doing="edit")], False, self.chosen
        text = self.which.value.strip().lower() if self.which is not None else ""
        if not text:
            return self.images, True, 1 if len(self.images) == 1 else None
        if text == "all":
            return self.images, False, None
        numbers = text.replace(",", " ").split()
        if not all(n.isdigit() and 1 <= int(n) <= len(self.images) for n in numbers):
            raise BadInput(f"Pick an image number from 1 to {len(self.images)} (several like 1,3, or all).")
        picked = list(dict.fromkeys(int(n) for n in numbers))  # in the order given, each once
        return [self.images[n - 1] for n in picked], False, picked[0] if len(picked) == 1 else None

    async def on_submit(self, interaction: Interaction) -> None:
        images, fit, position = self.chosen_images()
        fields: dict[str, Any] = {"images": images, "edit": True, "fit_images": fit, "of_image": position}
        ask = ask_from(interaction, JobKind.EDIT, self.instruction.value, **fields)
        self.bot.admission.check_early(ask)
        message_id = await self.bot.launcher.acknowledge(interaction)  # before the store is read for the parent
        ask = dataclasses.replace(ask, parent=await self.find_parent())
        await self.bot.launcher.launch(interaction, ask, message_id=message_id)

    # discord.py's Modal narrows BaseView.on_error (no item argument); mypy sees that as an override clash.
    async def on_error(self, interaction: Interaction, error: Exception, /) -> None:  # type: ignore[override]
        await report_error(interaction, error, where="Edit modal")


class Edit(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Edit with FLUX", callback=self.edit_message)
        self.bot.tree.add_command(self.menu)

    async def cog_load(self) -> None:
        self.bot.job_buttons.handle("edit", self.on_button)

    async def cog_unload(self) -> None:
        self.bot.job_buttons.forget("edit")
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def edit_message(self, interaction: Interaction, message: discord.Message) -> None:
        """The "Edit with FLUX" message command."""
        ours = self.bot.user is not None and message.author.id == self.bot.user.id

        async def parent() -> Job | None:
            return await self.bot.store.job_by_message(message.id) if ours else None

        await self.open(interaction, image_refs(message), parent)

    async def on_button(self, interaction: Interaction, press: Press) -> None:
        """✏️ Edit (asks which image when there are several) or E1..En (that image) on a result."""
        images = image_refs(interaction.message)

        async def parent() -> Job | None:
            return await self.bot.store.get_job(press.job_id)

        await self.open(interaction, images, parent, chosen=press.image)

    async def open(
        self, interaction: Interaction, images: list[ImageRef], find_parent: FindParent, *, chosen: int | None = None
    ) -> None:
        image_at(images, chosen or 1, doing="edit")  # refused now, before the modal, if it is not there
        await interaction.response.send_modal(EditModal(self.bot, images, find_parent, chosen=chosen))


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Edit(bot))
