"""Editing images: ✏️ Edit and E1..En on results, and "Edit with FLUX" on any message with an image.

All open the same modal asking what to change, with room for more reference images (a file upload: FLUX.2
editing models take several; they are checked like /imagine's attachments). The edit then runs the server's
editing model (Kontext, or a FLUX.2 model, which can take all the message's images as references) like any job,
posted as a new reply with live progress, and linked to the job whose result it edits (when the image is one of
ours). The store is read only after the modal is submitted: a modal must be the interaction's first answer, within 3 s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from services.errors import BadInput
from services.jobs.kinds import edit as edit_kind
from services.rules.catalogue import MAX_PROMPT_CHARS
from services.rules.input_images import ImageRef
from services.store.models import Job
from services.text import _
from ui.attachments import image_at, image_refs
from ui.errors import report_error
from ui.i18n import tr
from ui.launch import ask_from, image_ref
from ui.views import Press

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot

Interaction = discord.Interaction[Any]
FindParent = Callable[[], Awaitable[Job | None]]


# L10N: the title of the edit form and the name of the message menu command, at most 32 characters
EDIT_WITH_FLUX = _("Edit with FLUX")
# L10N: the label of the edit form's text box, at most 45 characters
WHAT_TO_CHANGE = _("What should change?")
# L10N: the example in the edit form's text box, at most 100 characters
EXAMPLE = _("e.g. make it night, with snow falling")
# L10N: a label of the edit form (a file upload), at most 45 characters
MORE_REFERENCES = _("More reference images (optional)")
# L10N: the description under the edit form's file upload, at most 100 characters
REFERENCES_HINT = _("For FLUX.2 editing models, which take several images: sent after the one edited")
MAX_UPLOADS = 10  # Discord's most files in one file upload


class EditModal(discord.ui.Modal):
    def __init__(
        self,
        bot: FluxBot,
        images: list[ImageRef],
        find_parent: FindParent,
        interaction: Interaction,
        *,
        chosen: int | None = None,
    ) -> None:
        # The form is private: in the user's language.
        super().__init__(timeout=900, title=tr(interaction, EDIT_WITH_FLUX))
        self.instruction: discord.ui.TextInput[EditModal] = discord.ui.TextInput(
            label=tr(interaction, WHAT_TO_CHANGE),
            style=discord.TextStyle.paragraph,
            placeholder=tr(interaction, EXAMPLE),
            max_length=MAX_PROMPT_CHARS,
            custom_id="instruction",
        )
        self.add_item(self.instruction)
        self.references: discord.ui.FileUpload[EditModal] = discord.ui.FileUpload(
            custom_id="references", required=False, min_values=0, max_values=MAX_UPLOADS
        )
        references = discord.ui.Label(
            text=tr(interaction, MORE_REFERENCES),
            description=tr(interaction, REFERENCES_HINT),
            component=self.references,
        )
        self.bot, self.images, self.find_parent, self.chosen = bot, images, find_parent, chosen
        self.which: discord.ui.TextInput[EditModal] | None = None
        if chosen is None and len(images) > 1:
            # L10N: a label of the edit form, at most 45 characters
            label = tr(interaction, _("Which images (1-{count}, e.g. 2, 1,3 or all)", count=len(images)))
            # L10N: a placeholder of the edit form, at most 100 characters
            placeholder = tr(interaction, _("Blank: as many as the editing model takes, from the first"))
            self.which = discord.ui.TextInput(
                label=label, placeholder=placeholder, max_length=40, required=False, custom_id="which"
            )
            self.add_item(self.which)
        self.add_item(references)

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
        # isdecimal, not isdigit: "²" is a digit that int() refuses
        if not all(n.isdecimal() and 1 <= int(n) <= len(self.images) for n in numbers):
            raise BadInput(
                _("Pick an image number from 1 to {count} (several like 1,3, or all).", count=len(self.images))
            )
        picked = list(dict.fromkeys(int(n) for n in numbers))  # in the order given, each once
        return [self.images[n - 1] for n in picked], False, picked[0] if len(picked) == 1 else None

    async def on_submit(self, interaction: Interaction) -> None:
        images, fit, position = self.chosen_images()
        if self.references.values:  # references given: all are sent, so the model's limit is checked
            images, fit = [*images, *(image_ref(a) for a in self.references.values)], False
        ask = ask_from(interaction, edit_kind.Edit(fit=fit, of_image=position), self.instruction.value, images=images)
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
        self.menu = app_commands.ContextMenu(name=EDIT_WITH_FLUX.msgid, callback=self.edit_message)
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
        await interaction.response.send_modal(EditModal(self.bot, images, find_parent, interaction, chosen=chosen))


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Edit(bot))
