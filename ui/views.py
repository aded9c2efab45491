"""The buttons on job messages. They are persistent: the job id is in the custom id, so they keep working
after a restart.

One dynamic item serves them all; what a click does is registered by the cog that owns the feature
(`JobButtons.handle`), so this module needs no cog, and every click's error takes the one error path.

Custom ids: `flux:ACTION:JOB` (cancel, reroll, and edit asking which image), `flux:ACTION:JOB:N` (for image N
of the message, as `flux:edit:JOB:2`, `flux:pick:JOB:3` for U3) and `flux:ACTION:JOB:N:STRENGTH`
(`flux:vary:JOB:1:subtle`; `flux:upscale:JOB:1:strong` is Upscale (Creative)). ACTION is any name a cog
registers; its label and emoji are in ui/kind_words.py.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import discord
from discord.ui.view import BaseView

from services.locales import render
from services.rules.variation_models import GRID_STRENGTH, Strength
from services.text import Text, _, verbatim
from ui.errors import report_error
from ui.kind_words import words
from ui.replies import reply_ephemeral

log = logging.getLogger(__name__)

Action = str  # what a button does: a name registered with JobButtons.handle
ROW_SIZE = 5  # Discord's most buttons in one row
MAX_ROWS = 5  # Discord's most rows in one message


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
        # the app's own emojis for some buttons, "action:strength" -> "<:name:id>" (ui/app_emojis.py)
        self.icons: Mapping[str, str] = {}

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


Row = list[discord.ui.Button[Any]]  # one action row's buttons, left to right

V = TypeVar("V", bound=BaseView)


def stopped(view: V) -> V:
    """The view, stopped: sent as it is, but not kept by discord.py, which would otherwise hold the buttons of
    every message sent with them for good (their presses reach `JobButton`, a dynamic item, either way)."""
    view.stop()
    return view


def progress_rows(job_id: str, locale: str | None = None) -> list[Row]:
    return [[button("cancel", Press(job_id), locale=locale)]]


def retry_rows(job_id: str, locale: str | None = None) -> list[Row]:
    """🔄 alone, under a job that ended without images where trying again makes sense."""
    return [[button("reroll", Press(job_id), locale=locale)]]


def result_rows(
    job_id: str,
    images: int = 1,
    locale: str | None = None,
    more: Sequence[Action] = (),
    icons: Mapping[str, str] | None = None,
) -> list[Row]:
    """The buttons under a result showing `images` images, as Midjourney users know them (at most Discord's
    five rows of five).

    One image: Upscale (Subtle), Upscale (Creative), Vary (Subtle), Vary (Strong); then Remix, ✏️ Edit, 🔄
    Reroll. Several: U1..Un (that image posted alone, which then carries the one-image buttons) with 🔄 Reroll,
    V1..Vn (a variation of image N) and E1..En (edit image N), a row each. None (not attached): 🔄 Reroll
    only. Then, under one image, the buttons of `more` (JobButtons.offered: actions on one image, such as Zoom
    and Pan) in the rows left; under several, U1..Un lead to them. `icons` (JobButtons.icons) replace the
    Unicode emojis of the buttons they name.
    """
    rows = _builtin_result_rows(job_id, images, locale, icons or {})
    if images == 1:
        room = (MAX_ROWS - len(rows)) * ROW_SIZE  # Discord allows five rows of five
        extras = [button(action, Press(job_id), locale=locale) for action in more[:room]]
        rows += [extras[start : start + ROW_SIZE] for start in range(0, len(extras), ROW_SIZE)]
    return rows


def _builtin_result_rows(job_id: str, images: int, locale: str | None, icons: Mapping[str, str]) -> list[Row]:
    if images == 1:
        # Upscale's "strong" is Creative: the custom id keeps the two strengths every per-image button has.
        # L10N: a button on a finished image (twice the size, as it is), at most 80 characters
        upscale_subtle = _("Upscale (Subtle)")
        # L10N: a button on a finished image (twice the size, with added detail), at most 80 characters
        upscale_creative = _("Upscale (Creative)")
        # L10N: a button on a finished image (a variation close to it), at most 80 characters
        subtle = _("Vary (Subtle)")
        # L10N: a button on a finished image (a variation further from it), at most 80 characters
        strong = _("Vary (Strong)")
        first = [
            button(action, press, label=label, emoji=icons.get(f"{action}:{press.strength}", emoji), locale=locale)
            for action, press, label, emoji in (
                ("upscale", Press(job_id, 1, "subtle"), upscale_subtle, "🔍"),
                ("upscale", Press(job_id, 1, "strong"), upscale_creative, "🔍"),
                ("vary", Press(job_id, 1, "subtle"), subtle, "🪄"),
                ("vary", Press(job_id, 1, "strong"), strong, "🪄"),
            )
        ]
        second = [button(action, Press(job_id, 1) if action == "remix" else Press(job_id), locale=locale)
                  for action in ("remix", "edit", "reroll")]  # fmt: skip
        return [first, second]
    shown = range(1, min(images, ROW_SIZE) + 1)
    # U1..Un, V1..Vn and E1..En are the same in every language (as Midjourney users know them).
    picks = [button("pick", Press(job_id, n), label=verbatim(f"U{n}")) for n in shown]
    variations = [button("vary", Press(job_id, n, GRID_STRENGTH), label=verbatim(f"V{n}")) for n in shown]
    edits = [button("edit", Press(job_id, n), label=verbatim(f"E{n}")) for n in shown]
    reroll = button("reroll", Press(job_id), locale=locale)
    rows = [row for row in (picks, variations, edits) if row]
    if rows and len(picks) < ROW_SIZE:
        picks.append(reroll)
    else:
        rows.append([reroll])
    return rows
