"""/imagine-prefs: a user's own defaults, used before the server's (but after what a command gives)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from services.rules.options import OPTION_NAMES
from services.rules.server_settings import shown_value, unusable_defaults, validated_defaults
from services.store.saving import save_over_what_was_read
from services.text import _, joined
from ui.choices import given, model_choices
from ui.replies import reply_ephemeral

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot

Interaction = discord.Interaction[Any]
SAVES = {"saves": True}  # the error path says "Not saved" when a command refuses something


class Prefs(commands.GroupCog, group_name="imagine-prefs", group_description="Your own defaults for /imagine"):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot
        self.catalogue = bot.settings.catalogue
        super().__init__()

    @app_commands.command(name="show", description="Your saved defaults")
    async def show(self, interaction: Interaction) -> None:
        prefs = await self.bot.store.get_user_prefs(interaction.user.id)
        if not prefs:
            await reply_ephemeral(interaction, _("You have no saved defaults; the server's apply."))
            return
        names = [name for name in ("model", *OPTION_NAMES) if name in prefs]
        lines = [f"**{name}**: `{shown_value(self.catalogue, name, prefs[name])}`" for name in names]
        mine = _("Your defaults:\n{lines}", lines="\n".join(lines))
        await reply_ephemeral(interaction, joined([mine, *unusable_defaults(self.catalogue, prefs)]))

    @app_commands.command(name="set", description="Save your own defaults for /imagine", extras=SAVES)
    # The same words as /imagine-settings set, so each option is described (not "…") and already translated.
    @app_commands.describe(
        model="Default model", aspect_ratio="Default shape, e.g. 16:9", output_format="webp, jpg or png",
        output_quality="0-100, for jpg and webp", num_outputs="Images per request (1-4, schnell/dev)",
    )  # fmt: skip
    async def set_prefs(
        self,
        interaction: Interaction,
        model: str | None = None,
        aspect_ratio: str | None = None,
        output_format: str | None = None,
        output_quality: app_commands.Range[int, 0, 100] | None = None,
        num_outputs: app_commands.Range[int, 1, 4] | None = None,
    ) -> None:
        options = given(
            model=model, aspect_ratio=aspect_ratio, output_format=output_format,
            output_quality=output_quality, num_outputs=num_outputs,
        )  # fmt: skip
        if not options:
            await reply_ephemeral(interaction, _("Nothing to save: give at least one option."))
            return
        prefs = await self._change(interaction.user.id, options)
        saved = ", ".join(f"{k} → `{shown_value(self.catalogue, k, prefs.get(k, v))}`" for k, v in options.items())
        await reply_ephemeral(interaction, _("Saved: {changes}", changes=saved))

    async def _change(self, user_id: int, options: dict[str, Any]) -> dict[str, object]:
        """Save `options` over the stored preferences (it may refuse with BadInput), only over the ones they were
        checked against: two of one person's commands at once (from two devices) both keep their change."""
        store, default_model = self.bot.store, self.bot.settings.default_model
        return await save_over_what_was_read(
            lambda: store.get_user_prefs(user_id),
            lambda current: validated_defaults(self.catalogue, current, options, default_model=default_model),
            lambda prefs, current: store.replace_user_prefs(user_id, prefs, over=current),
            what=f"the preferences of user {user_id}",
        )

    @set_prefs.autocomplete("model")
    async def _model(self, interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
        return model_choices(self.catalogue.values(), current)

    @app_commands.command(name="clear", description="Forget your saved defaults")
    async def clear(self, interaction: Interaction) -> None:
        await self.bot.store.delete_user_prefs(interaction.user.id)
        await reply_ephemeral(interaction, _("Your saved defaults are cleared."))


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Prefs(bot))
