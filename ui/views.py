"""The buttons on job messages. They are persistent: the job id is in the custom id, so they keep working
after a restart.

One dynamic item serves them all; what a click does is registered by the cog that owns the feature
(`JobButtons.handle`), so this module needs no cog, and every click's error takes the one error path.

Custom ids: `flux:ACTION:JOB` (cancel, reroll, and edit asking which image), `flux:ACTION:JOB:N` (for image N
of the message, as `flux:edit:JOB:2`) and `flux:ACTION:JOB:N:STRENGTH` (`flux:vary:JOB:1:subtle`). ACTION is
any name a cog registers; its label and emoji are in ui/kind_words.py.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import discord

from services.locales import render
from services.rules.variation_models import GRID_STRENGTH, Strength
from services.text import Text, _, verbatim
from ui.errors import report_error
from ui.kind_words import words
from ui.replies import reply_ephemeral

log = logging.getLogger(__name__)

Action = str  # what a button does: a name registered with JobButtons.handle
ROW_SIZE = 5  # Discord's most buttons in one row


@dataclass(frozen=True)
class Press:
    """What a click names: the job, and for per-image buttons the image (1-based, in the message) and strength."""

    job_id: str
    image: int | None = None
    strength: Strength | None = None


Handler = Callable[[discord.Interaction[Any], Press], Awaitable[None]]


class JobButtons:
    """What each button does; the bot owns one, the cogs fill it."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._offered: list[str] = []

    def handle(self, action: Action, handler: Handler, *, offer: bool = False) -> None:
        """What a click on `action`'s buttons does; with `offer`, every result also carries one such button
        (after the built-in ones), so a new kind of job brings its own button."""
        self._handlers[action] = handler
        if offer and action not in self._offered:
            self._offered.append(action)

    def forget(self, action: Action) -> None:
        self._handlers.pop(action, None)
        if action in self._offered:
            self._offered.remove(action)

    @property
    def offered(self) -> tuple[str, ...]:
        """The actions every result offers beside the built-in buttons, in the order they were registered."""
        return tuple(self._offered)

    def handler(self, action: str) -> Handler | None:
        return self._handlers.get(action)


class HasJobButtons(Protocol):
    job_buttons: JobButtons


def custom_id(action: Action, press: Press) -> str:
    parts = ["flux", action, press.job_id]
    if press.image is not None:
        parts.append(str(press.image))
        if press.strength is not None:
            parts.append(press.strength)
    return ":".join(parts)


def button(
    action: Action,
    press: Press,
    *,
    label: Text | None = None,
    emoji: str | None = None,
    row: int | None = None,
    locale: str | None = None,
) -> discord.ui.Button[Any]:
    """A job button, labelled in `locale` (the job message's language); the label and emoji default to the
    action's own."""
    said = words(action)
    return discord.ui.Button(
        label=render(label or said.button or verbatim(action), locale),
        emoji=emoji if label else (said.icon or None),
        style=discord.ButtonStyle.secondary,
        custom_id=custom_id(action, press),
        row=row,
    )


class JobButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"flux:(?P<action>[a-z][a-z_]{0,19}):(?P<job>[0-9a-f]{32})"
    r"(?::(?P<image>[1-9]|10)(?::(?P<strength>subtle|strong))?)?",
):
    def __init__(self, action: Action, press: Press) -> None:
        super().__init__(button(action, press))
        self.action, self.press = action, press

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> JobButton:
        image = int(match["image"]) if match["image"] else None
        press = Press(match["job"], image, cast(Strength | None, match["strength"]))
        return cls(match["action"], press)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler = cast(HasJobButtons, interaction.client).job_buttons.handler(self.action)
        try:
            if handler is None:
                await reply_ephemeral(interaction, _("That button does nothing any more."))
                return
            await handler(interaction, self.press)
        except Exception as exc:
            await report_error(interaction, exc, where=f"Button {self.action}")


def progress_view(job_id: str, locale: str | None = None) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(button("cancel", Press(job_id), locale=locale))
    return view


def retry_view(job_id: str, locale: str | None = None) -> discord.ui.View:
    """🔄 alone, under a job the provider refused as unsafe."""
    view = discord.ui.View(timeout=None)
    view.add_item(button("reroll", Press(job_id), locale=locale))
    return view


def result_view(
    job_id: str, images: int = 1, locale: str | None = None, more: Sequence[Action] = ()
) -> discord.ui.View:
    """The buttons under a result showing `images` images, as Midjourney users know them.

    One image: Vary (Subtle), Vary (Strong), ✏️ Edit, 🔄 Reroll. Several: V1..Vn (a variation of image N)
    with 🔄 Reroll, and E1..En (edit image N) on the next row. None (not attached): 🔄 Reroll only. Then the
    buttons of `more` (JobButtons.offered) where a result is shown.
    """
    view = _builtin_result_view(job_id, images, locale)
    if images:
        for action in more:
            if len(view.children) < ROW_SIZE * 5:  # Discord's most components in one message
                view.add_item(button(action, Press(job_id), locale=locale))
    return view


def _builtin_result_view(job_id: str, images: int, locale: str | None) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    if images == 1:
        # L10N: a button on a finished image (a variation close to it), at most 80 characters
        subtle = _("Vary (Subtle)")
        # L10N: a button on a finished image (a variation further from it), at most 80 characters
        strong = _("Vary (Strong)")
        view.add_item(button("vary", Press(job_id, 1, "subtle"), label=subtle, emoji="🪄", locale=locale))
        view.add_item(button("vary", Press(job_id, 1, "strong"), label=strong, emoji="🪄", locale=locale))
        view.add_item(button("edit", Press(job_id), locale=locale))
        view.add_item(button("reroll", Press(job_id), locale=locale))
        return view
    shown = range(1, min(images, ROW_SIZE) + 1)
    # V1..Vn and E1..En are the same in every language (as Midjourney users know them).
    for n in shown:
        view.add_item(button("vary", Press(job_id, n, GRID_STRENGTH), label=verbatim(f"V{n}"), row=0))
    view.add_item(button("reroll", Press(job_id), row=0 if len(shown) < ROW_SIZE else 2, locale=locale))
    for n in shown:
        view.add_item(button("edit", Press(job_id, n), label=verbatim(f"E{n}"), row=1))
    return view
