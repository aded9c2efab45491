"""Zoom Out 2x / 1.5x / Custom, Make Square and Pan ⬅ ➡ ⬆ ⬇ under a result (services/jobs/kinds/outpaint.py).

Each is a button offered under every result (`job_buttons.handle(..., offer=True)`); the job id is in its custom
id, so it works after a restart. The image is taken from the clicked message (fresh links, the image the user
saw). Custom asks a factor (more than 1.0, at most 2.0) and, optionally, a new prompt in a modal, refused privately
and at no cost when the factor is not one or would add nothing to the image; the others start at once. Each then
runs like any job: admission with the limits, one create, live progress, Cancel, resume; posted as a new reply
linked to its parent.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from services.errors import BadInput
from services.imaging.outpaint import MAX_ZOOM, MIN_ZOOM, ZOOM_RANGE, Direction, Size, zoom
from services.jobs.kinds.base import Kind
from services.jobs.kinds.outpaint import MakeSquare, Pan, ZoomOut
from services.jobs.kinds.upscale import subject
from services.rules.input_images import ImageRef
from services.store.models import Job, JobStatus
from services.text import _, clip
from ui.attachments import image_at, image_refs
from ui.errors import report_error
from ui.i18n import tr
from ui.launch import ask_from
from ui.views import Press

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot

Interaction = discord.Interaction[Any]
ZOOMS = {"zoom_double": 2.0, "zoom_half": 1.5}  # Zoom Out 2x and 1.5x
PANS: dict[str, Direction] = {"pan_left": "left", "pan_right": "right", "pan_up": "up", "pan_down": "down"}
CUSTOM_ZOOM, MAKE_SQUARE = "zoom_custom", "make_square"
ACTIONS = (*ZOOMS, CUSTOM_ZOOM, MAKE_SQUARE, *PANS)
ANCESTORS = 20  # how many jobs back the subject of a result is looked for


def chosen_image(interaction: Interaction, press: Press) -> tuple[ImageRef, int]:
    """The image a button acts on and its place in the message: the one the button names, or the only one."""
    images = image_refs(interaction.message)
    if press.image is None and len(images) > 1:
        raise BadInput(_("This works on a result with one image; make a result of the one you want first."))
    number = press.image or 1
    return image_at(images, number, doing="edit"), number


async def parent_job(bot: FluxBot, job_id: str) -> Job:
    """The job whose result was clicked; BadInput if it is gone or has no image."""
    parent = await bot.store.get_job(job_id)
    if parent is None:
        raise BadInput(_("That image is no longer in my records, so I can't work on it."))
    if parent.status != JobStatus.SUCCEEDED:
        raise BadInput(_("That job did not finish, so it has no image to work on."))
    return parent


async def shown_in(bot: FluxBot, job: Job) -> str:
    """What `job`'s image shows, in the user's words (`subject`): from its prompt or, where that names nothing (a
    subtle upscale, a region's change), from the nearest job it came from that does; "" if none does."""
    for _hop in range(ANCESTORS):
        shown = subject(str(job.input.get("prompt", "")))
        if shown or job.parent_id is None:
            return shown
        parent = await bot.store.get_job(job.parent_id)
        if parent is None:
            break
        job = parent
    return ""


async def start(
    bot: FluxBot,
    interaction: Interaction,
    press: Press,
    kind: Kind,
    image: ImageRef,
    prompt: str | None = None,
    more: Sequence[ImageRef] = (),
) -> None:
    """Acknowledge, then admit and run `kind` on `image` (and `more`: a mask), with the subject of the parent's image
    (not its prompt: that may be an instruction of ours around it) unless a new prompt is given."""
    message_id = await bot.launcher.acknowledge(interaction)  # before the store, which may be slow
    parent = await parent_job(bot, press.job_id)
    # The parent's subject is cut to leave room for the kind's instruction around it.
    typed = prompt if prompt and prompt.strip() else clip(await shown_in(bot, parent), kind.prompt_room())
    ask = ask_from(interaction, kind, typed, images=[image, *more], parent=parent)
    bot.admission.check_early(ask)
    await bot.launcher.launch(interaction, ask, message_id=message_id)


def zoom_factor(text: str) -> float:
    """The factor typed in the Custom Zoom form; BadInput unless it is a number more than 1.0 and at most 2.0."""
    try:
        factor = float(text.strip().replace(",", ".").removesuffix("x").removesuffix("X"))
    except ValueError:
        factor = math.nan
    if not MIN_ZOOM < factor <= MAX_ZOOM:  # NaN fails this too
        raise BadInput(ZOOM_RANGE)
    return factor


def shown_size(interaction: Interaction, image: ImageRef) -> Size | None:
    """The size the clicked message gives for `image` (Discord's, from the attachment), None where it gives none."""
    attachments = interaction.message.attachments if interaction.message else []
    shown = next((a for a in attachments if a.url == image.url), None)
    if shown is None or shown.width is None or shown.height is None:
        return None
    return shown.width, shown.height


# L10N: the title of the Custom Zoom form, at most 45 characters
CUSTOM_ZOOM_TITLE = _("Custom Zoom")
# L10N: a label of the Custom Zoom form, at most 45 characters
FACTOR_LABEL = _("Zoom out by (more than 1.0, up to 2.0)")
# L10N: a label of the Custom Zoom form, at most 45 characters
NEW_PROMPT_LABEL = _("Prompt (blank: the same as before)")


class ZoomModal(discord.ui.Modal):
    def __init__(
        self, bot: FluxBot, press: Press, image: tuple[ImageRef, int], interaction: Interaction, size: Size | None
    ) -> None:
        super().__init__(timeout=900, title=tr(interaction, CUSTOM_ZOOM_TITLE))
        self.factor: discord.ui.TextInput[ZoomModal] = discord.ui.TextInput(
            label=tr(interaction, FACTOR_LABEL), default="1.5", max_length=8, custom_id="factor"
        )
        self.prompt: discord.ui.TextInput[ZoomModal] = discord.ui.TextInput(
            label=tr(interaction, NEW_PROMPT_LABEL),
            style=discord.TextStyle.paragraph,
            required=False,
            max_length=ZoomOut(image[1], MAX_ZOOM).prompt_room(),  # the model's instruction goes around it
            custom_id="prompt",
        )
        self.add_item(self.factor)
        self.add_item(self.prompt)
        self.bot, self.press, self.image, self.size = bot, press, image, size

    async def on_submit(self, interaction: Interaction) -> None:
        factor = zoom_factor(self.factor.value)  # refused privately before anything is acknowledged or stored
        if self.size is not None:
            zoom(self.size, factor)  # one that adds nothing to the image shown, too (judged again on its real size)
        image, number = self.image
        await start(self.bot, interaction, self.press, ZoomOut(number, factor), image, self.prompt.value)

    # discord.py's Modal narrows BaseView.on_error (no item argument); mypy sees that as an override clash.
    async def on_error(self, interaction: Interaction, error: Exception, /) -> None:  # type: ignore[override]
        await report_error(interaction, error, where="Custom zoom modal")


class Outpaint(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        for action, factor in ZOOMS.items():
            self.bot.job_buttons.handle(action, self.zoom(factor), offer=True)
        self.bot.job_buttons.handle(CUSTOM_ZOOM, self.on_custom_zoom, offer=True)
        self.bot.job_buttons.handle(MAKE_SQUARE, self.on_make_square, offer=True)
        for action, direction in PANS.items():
            self.bot.job_buttons.handle(action, self.pan(direction), offer=True)

    async def cog_unload(self) -> None:
        for action in ACTIONS:
            self.bot.job_buttons.forget(action)

    def zoom(self, factor: float) -> Callable[[Interaction, Press], Awaitable[None]]:
        async def on_button(interaction: Interaction, press: Press) -> None:
            image, number = chosen_image(interaction, press)
            await start(self.bot, interaction, press, ZoomOut(number, factor), image)

        return on_button

    def pan(self, direction: Direction) -> Callable[[Interaction, Press], Awaitable[None]]:
        async def on_button(interaction: Interaction, press: Press) -> None:
            image, number = chosen_image(interaction, press)
            await start(self.bot, interaction, press, Pan(number, direction), image)

        return on_button

    async def on_custom_zoom(self, interaction: Interaction, press: Press) -> None:
        image = chosen_image(interaction, press)  # refused now, before the modal, if it is not there
        size = shown_size(interaction, image[0])
        await interaction.response.send_modal(ZoomModal(self.bot, press, image, interaction, size))

    async def on_make_square(self, interaction: Interaction, press: Press) -> None:
        image, number = chosen_image(interaction, press)
        size = shown_size(interaction, image)
        if size is not None and size[0] == size[1]:
            raise BadInput(_("That image is already square."))  # known from the message: refused before any work
        await start(self.bot, interaction, press, MakeSquare(number), image)


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Outpaint(bot))
