"""Which language an answer is in, and the Translator that localises the commands themselves.

Private answers (errors, settings, modals) are in the user's own client language (`interaction.locale`);
a job's message, which the whole channel sees, is in the server's language (`guild_locale`), or the user's
where there is no server or the message is private. Texts come from the catalogue (`services/locales.py`).
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from services.locales import Catalogues, catalogues, render
from services.text import Text

Location = app_commands.TranslationContextLocation
# Slash command, group and option names must stay lowercase single words and are what interactions carry:
# they keep their English names. Descriptions, choices and context-menu names (free text) are translated.
TRANSLATED = frozenset(
    {
        Location.command_description,
        Location.group_description,
        Location.parameter_description,
        Location.choice_name,
    }
)


def user_locale(interaction: discord.Interaction[Any]) -> str:
    return interaction.locale.value


def public_locale(interaction: discord.Interaction[Any]) -> str:
    """The language of a message everyone in the channel sees: the server's, else the user's."""
    return (interaction.guild_locale or interaction.locale).value


def tr(interaction: discord.Interaction[Any], text: Text | str) -> str:
    """`text` in the user's own language (for private answers)."""
    return render(text, user_locale(interaction))


def translates(string: app_commands.locale_str, context: app_commands.TranslationContextTypes) -> bool:
    if context.location in TRANSLATED:
        return True
    return context.location is Location.command_name and isinstance(context.data, app_commands.ContextMenu)


class CatalogueTranslator(app_commands.Translator):
    """Gives discord.py the localisations of every command text the catalogue has, for every locale it has."""

    def __init__(self, found: Catalogues | None = None) -> None:
        self.catalogues = found or catalogues()

    async def translate(
        self, string: app_commands.locale_str, locale: discord.Locale, context: app_commands.TranslationContextTypes
    ) -> str | None:
        if not translates(string, context):
            return None
        return self.catalogues.gettext(string.message, locale.value)
