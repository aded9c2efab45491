"""/imagine-history: your recent jobs, newest first, a page at a time; `scope: server` shows everyone's in this
server to members with Manage Server, except another member's jobs whose reply was private (ephemeral).
Private answers; the page buttons keep working after a restart, and are checked again at every press: only
the person who opened the page may turn it, and the server's pages still need Manage Server. A button turns from
the job at its end of the page (its time and id are in the custom id), so jobs made meanwhile shift nothing.

A job's message may have been deleted since: each page asks Discord whether its messages still exist (all
at once, with a deadline) and says so instead of linking nowhere; a deletion found is remembered.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, cast

import discord
from discord import app_commands
from discord.ext import commands

from services.errors import BadInput
from services.locales import render
from services.store.models import TERMINAL, Job, PageMark
from services.text import _
from ui.errors import report_error
from ui.history import history_embed

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot

log = logging.getLogger(__name__)

Interaction = discord.Interaction[Any]
Scope = Literal["mine", "server"]
PAGE_SIZE = 8
CHECK_SECONDS = 2.5  # how long a page waits for Discord to say which messages still exist


def check_scope(interaction: Interaction, scope: Scope) -> None:
    """Everyone sees their own; the server's only in a server, with Manage Server (checked at every page)."""
    if scope != "server":
        return
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    if not interaction.permissions.manage_guild:
        raise app_commands.MissingPermissions(["manage_guild"])


class HistoryButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    # The page number, then the job the page is turned from (its time and id; buttons before these had none and
    # still turn by number).
    template=r"flux-history:(?P<scope>mine|server):(?P<direction>newer|older):(?P<page>\d{1,6})"
    r"(?::(?P<at>\d{1,17}(?:\.\d{1,17})?):(?P<job>[0-9a-f]{32}))?",
):
    def __init__(
        self,
        scope: Scope,
        direction: str,
        page: int,
        mark: PageMark | None = None,
        *,
        disabled: bool = False,
        locale: str | None = None,
    ) -> None:
        # L10N: a button of the /imagine-history page, at most 80 characters
        label = render(_("◀ Newer") if direction == "newer" else _("Older ▶"), locale)
        anchor = "" if mark is None else f":{mark.created_at!r}:{mark.job_id}"  # the exact time: it is compared
        super().__init__(
            discord.ui.Button(
                label=label,
                style=discord.ButtonStyle.secondary,
                custom_id=f"flux-history:{scope}:{direction}:{page}{anchor}",
                disabled=disabled,
            )
        )
        self.scope, self.direction, self.page, self.mark = scope, direction, page, mark

    @classmethod
    async def from_custom_id(
        cls, interaction: Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> HistoryButton:
        mark = PageMark(float(match["at"]), match["job"]) if match["job"] else None
        return cls(cast(Scope, match["scope"]), match["direction"], int(match["page"]), mark)

    async def callback(self, interaction: Interaction) -> None:
        try:
            check_presser(interaction)
            check_scope(interaction, self.scope)
            await interaction.response.defer()  # first: the store and Discord are asked before the page shows
            turn = None if self.mark is None else Turn(self.mark, older=self.direction == "older")
            bot = cast("FluxBot", interaction.client)
            embed, view = await build_page(bot, interaction, self.scope, self.page, turn)
            await interaction.edit_original_response(embed=embed, view=view)
        except Exception as exc:
            await report_error(interaction, exc, where="History page")


def check_presser(interaction: Interaction) -> None:
    """A page button works on its own page only: a private message of the person who opened it. A button
    pressed anywhere else, or by anyone else, was forged (its custom id is public and easy to copy)."""
    message = interaction.message
    opened_by = message.interaction_metadata if message is not None else None
    if message is None or not message.flags.ephemeral or opened_by is None or opened_by.user.id != interaction.user.id:
        # L10N: a refusal, privately, when someone presses a page button of a history that is not theirs
        raise BadInput(_("Only the person who opened this history can turn its pages: use /imagine-history."))


@dataclass(frozen=True)
class Turn:
    """A page turned from a job shown: the jobs just older than it, or just newer."""

    mark: PageMark
    older: bool


def pager(scope: Scope, page: int, pages: int, jobs: list[Job], locale: str | None = None) -> discord.ui.View:
    """◀ Newer and Older ▶, each turning from the job at its end of the page (no mark on an empty page)."""
    first = PageMark(jobs[0].created_at, jobs[0].id) if jobs else None
    last = PageMark(jobs[-1].created_at, jobs[-1].id) if jobs else None
    view = discord.ui.View(timeout=None)
    view.add_item(HistoryButton(scope, "newer", max(page - 1, 0), first, disabled=page == 0, locale=locale))
    older = min(page + 1, pages - 1)
    view.add_item(HistoryButton(scope, "older", older, last, disabled=page >= pages - 1, locale=locale))
    return view


async def build_page(
    bot: FluxBot, interaction: Interaction, scope: Scope, page: int, turn: Turn | None = None
) -> tuple[discord.Embed, discord.ui.View | None]:
    """The embed and buttons of page `page` (0-based; past the end, the last page). With `turn`, the page just
    older or newer than the job it was turned from, so jobs made meanwhile shift nothing; its number is then
    counted from the jobs newer than it."""
    mine = scope == "mine"
    # The server's: this server's jobs only, and of the private ones only the viewer's own.
    user = interaction.user.id
    filters: dict[str, Any] = {"user_id": user} if mine else {"guild_id": interaction.guild_id, "shown_to": user}
    total = await bot.store.count_jobs(**filters)
    pages = max(1, -(-total // PAGE_SIZE))
    jobs: list[Job] = []
    if turn is not None:
        older_than, newer_than = (turn.mark, None) if turn.older else (None, turn.mark)
        jobs = await bot.store.recent_jobs(**filters, limit=PAGE_SIZE, older_than=older_than, newer_than=newer_than)
    if jobs:
        newer = await bot.store.count_jobs(**filters, newer_than=PageMark(jobs[0].created_at, jobs[0].id))
        older = max(0, total - newer - len(jobs))
        page = -(-newer // PAGE_SIZE)  # any newer jobs are at least one page before this one
        pages = page + 1 + -(-older // PAGE_SIZE)
    else:  # by number: an old button, a first page, or nothing left past the mark
        page = min(max(page, 0), pages - 1)
        jobs = await bot.store.recent_jobs(**filters, limit=PAGE_SIZE, offset=page * PAGE_SIZE)
    gone = await deleted_messages(bot, jobs)
    locale = interaction.locale.value  # the page is private: in the user's language
    embed = history_embed(jobs, gone, page=page, pages=pages, total=total, server=not mine, locale=locale)
    return embed, (pager(scope, page, pages, jobs, locale) if pages > 1 else None)


async def deleted_messages(bot: FluxBot, jobs: list[Job]) -> set[str]:
    """The ids of the jobs whose message no longer exists (as far as Discord says within CHECK_SECONDS)."""
    gone = {job.id for job in jobs if job.extra.message_deleted}
    unknown = [job for job in jobs if job.message_id is not None and job.id not in gone]
    if not unknown:
        return gone
    checks = {asyncio.create_task(message_exists(bot, job)): job for job in unknown}
    done, pending = await asyncio.wait(checks, timeout=CHECK_SECONDS)
    for task in pending:
        task.cancel()
    for task in done:
        job = checks[task]
        if task.exception() is None and task.result() is False:
            gone.add(job.id)
            if job.status in TERMINAL:  # a finished job's message stays deleted: don't ask again
                await bot.store.update_job(job.id, owner=None, extra=replace(job.extra, message_deleted=True))
    return gone


async def message_exists(bot: FluxBot, job: Job) -> bool | None:
    """False when Discord says the message (or its channel) is gone; None when it can't tell (no access)."""
    assert job.message_id is not None
    channel = bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
    try:
        await channel.fetch_message(job.message_id)
    except discord.NotFound:
        return False
    except discord.HTTPException:
        return None
    return True


class History(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(HistoryButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(HistoryButton)

    @app_commands.command(name="imagine-history", description="Your recent images, newest first")
    @app_commands.describe(scope="Yours, or everyone's in this server (needs Manage Server)")
    async def history(self, interaction: Interaction, scope: Scope = "mine") -> None:
        check_scope(interaction, scope)
        await interaction.response.defer(ephemeral=True, thinking=True)  # first: the store may be slow
        embed, view = await build_page(self.bot, interaction, scope, 0)
        await interaction.edit_original_response(embed=embed, view=view)


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(History(bot))
