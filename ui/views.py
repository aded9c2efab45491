"""The buttons on job messages. They are persistent: the job id is in the custom id, so they keep working
after a restart.

One dynamic item serves them all; what a click does is registered by the cog that owns the feature
(`JobButtons.handle`), so this module needs no cog, and every click's error takes the one error path.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, cast

import discord

from services.locales import render
from services.text import Text, _
from ui.errors import report_error
from ui.replies import reply_ephemeral

log = logging.getLogger(__name__)

Action = Literal["cancel", "reroll", "edit"]
Handler = Callable[[discord.Interaction[Any], str], Awaitable[None]]  # (interaction, job id)
LOOKS: dict[Action, tuple[Text, str | None]] = {
    # L10N: a button on an image job in progress, at most 80 characters
    "cancel": (_("Cancel"), None),
    # L10N: a button on a finished image (same settings, new seed), at most 80 characters
    "reroll": (_("Reroll"), "🔄"),
    # L10N: a button on a finished image (change it with a prompt), at most 80 characters
    "edit": (_("Edit"), "✏️"),
}


class JobButtons:
    """What each button does; the bot owns one, the cogs fill it."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def handle(self, action: Action, handler: Handler) -> None:
        self._handlers[action] = handler

    def forget(self, action: Action) -> None:
        self._handlers.pop(action, None)

    def handler(self, action: str) -> Handler | None:
        return self._handlers.get(action)


class HasJobButtons(Protocol):
    job_buttons: JobButtons


def custom_id(action: Action, job_id: str) -> str:
    return f"flux:{action}:{job_id}"


def button(action: Action, job_id: str, locale: str | None = None) -> discord.ui.Button[Any]:
    """The button, labelled in `locale` (the job message's language)."""
    label, emoji = LOOKS[action]
    return discord.ui.Button(
        label=render(label, locale),
        emoji=emoji,
        style=discord.ButtonStyle.secondary,
        custom_id=custom_id(action, job_id),
    )


class JobButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"flux:(?P<action>cancel|reroll|edit):(?P<job>[0-9a-f]{32})",
):
    def __init__(self, action: Action, job_id: str) -> None:
        super().__init__(button(action, job_id))
        self.action, self.job_id = action, job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> JobButton:
        return cls(cast(Action, match["action"]), match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler = cast(HasJobButtons, interaction.client).job_buttons.handler(self.action)
        try:
            if handler is None:
                await reply_ephemeral(interaction, _("That button does nothing any more."))
                return
            await handler(interaction, self.job_id)
        except Exception as exc:
            await report_error(interaction, exc, where=f"Button {self.action}")


def progress_view(job_id: str, locale: str | None = None) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(button("cancel", job_id, locale))
    return view


def result_view(job_id: str, locale: str | None = None) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(button("reroll", job_id, locale))
    view.add_item(button("edit", job_id, locale))
    return view
