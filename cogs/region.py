"""Vary (Region) under a result (services/jobs/kinds/region.py): pick the parts to change, say what goes there.

The button (offered under every result, working after a restart: the job id is in its custom id) opens a form
with a select menu of the cells of a 3x3 grid (several may be picked), an optional mask (a file upload: white where
it changes, black elsewhere) and a text box; the job then runs like any other, and only the picked cells (or the
mask's white) of the model's output replace the original. A mask is checked like any attachment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from cogs.outpaint import chosen_image, start
from services.jobs.kinds.region import CELLS, Region, check_cells
from services.rules.input_images import ImageRef
from services.text import Text, _
from ui.errors import report_error
from ui.i18n import tr
from ui.launch import image_ref
from ui.views import Press

# What the box takes: the prompt's limit, less the model's instruction around it at its longest (every cell named).
INSTRUCTION_CHARS = Region(cells=tuple(CELLS)).prompt_room()

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot

Interaction = discord.Interaction[Any]
ACTION = "vary_region"

# L10N: the title of the Vary (Region) form, at most 45 characters
REGION_TITLE = _("Vary (Region)")
# L10N: a label of the Vary (Region) form (a menu of the parts of the image), at most 45 characters
WHICH_PARTS = _("Which parts to change")
# L10N: a label of the Vary (Region) form, at most 45 characters
WHAT_GOES_THERE = _("What should be there?")
# L10N: the example in the Vary (Region) form's text box, at most 100 characters
REGION_EXAMPLE = _("e.g. a red sailing boat")
# L10N: a label of the Vary (Region) form (a file upload), at most 45 characters
MASK_LABEL = _("Or a mask (optional)")
# L10N: the description under the Vary (Region) form's mask upload, at most 100 characters
MASK_HINT = _("An image the same shape: white where it changes, black where it stays")
# L10N: the parts of an image in a 3x3 grid, for a menu, each at most 100 characters
CELL_NAMES: tuple[Text, ...] = (
    _("Top left"),
    _("Top centre"),
    _("Top right"),
    _("Middle left"),
    _("Centre"),
    _("Middle right"),
    _("Bottom left"),
    _("Bottom centre"),
    _("Bottom right"),
)


class RegionModal(discord.ui.Modal):
    def __init__(self, bot: FluxBot, press: Press, image: tuple[ImageRef, int], interaction: Interaction) -> None:
        super().__init__(timeout=900, title=tr(interaction, REGION_TITLE))
        options = [
            discord.SelectOption(label=tr(interaction, name), value=str(n))
            for n, name in zip(CELLS, CELL_NAMES, strict=True)
        ]
        self.cells: discord.ui.Select[RegionModal] = discord.ui.Select(
            custom_id="cells", options=options, min_values=0, max_values=len(options), required=False
        )
        self.mask: discord.ui.FileUpload[RegionModal] = discord.ui.FileUpload(
            custom_id="mask", required=False, min_values=0, max_values=1
        )
        self.instruction: discord.ui.TextInput[RegionModal] = discord.ui.TextInput(
            style=discord.TextStyle.paragraph,
            placeholder=tr(interaction, REGION_EXAMPLE),
            max_length=INSTRUCTION_CHARS,
            custom_id="instruction",
        )
        self.add_item(discord.ui.Label(text=tr(interaction, WHICH_PARTS), component=self.cells))
        mask = discord.ui.Label(
            text=tr(interaction, MASK_LABEL), description=tr(interaction, MASK_HINT), component=self.mask
        )
        self.add_item(mask)
        self.add_item(discord.ui.Label(text=tr(interaction, WHAT_GOES_THERE), component=self.instruction))
        self.bot, self.press, self.image = bot, press, image

    async def on_submit(self, interaction: Interaction) -> None:
        # Checked before anything is acknowledged or stored: a refusal is private and costs nothing.
        picked = [int(value) for value in self.cells.values if value.isdigit()]
        image, number = self.image
        masks = [image_ref(attachment) for attachment in self.mask.values]
        cells = check_cells(picked) if picked or not masks else ()  # a mask alone says where
        kind = Region(cells, number, masked=bool(masks))
        await start(self.bot, interaction, self.press, kind, image, self.instruction.value, more=masks)

    # discord.py's Modal narrows BaseView.on_error (no item argument); mypy sees that as an override clash.
    async def on_error(self, interaction: Interaction, error: Exception, /) -> None:  # type: ignore[override]
        await report_error(interaction, error, where="Vary (Region) modal")


class VaryRegion(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.job_buttons.handle(ACTION, self.on_button, offer=True)

    async def cog_unload(self) -> None:
        self.bot.job_buttons.forget(ACTION)

    async def on_button(self, interaction: Interaction, press: Press) -> None:
        image = chosen_image(interaction, press)  # refused now, before the form, if it is not there
        await interaction.response.send_modal(RegionModal(self.bot, press, image, interaction))


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(VaryRegion(bot))
