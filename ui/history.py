"""What /imagine-history shows: one line per job (status, prompt, model, when, link), a page at a time."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import discord

from services.locales import render
from services.store.models import Job, JobStatus
from services.text import Text, _, _n, verbatim
from ui.kind_words import words
from ui.render import message_link, quote, short_model, shown_prompt

PROMPT_CUT = 60
# L10N: a job's state in the /imagine-history list, after an emoji
STATUS: dict[str, tuple[str, Text]] = {
    JobStatus.QUEUED: ("⏳", _("queued")),
    JobStatus.SUBMITTING: ("🚀", _("starting")),
    JobStatus.RUNNING: ("🎨", _("running")),
    JobStatus.DELIVERING: ("📤", _("posting")),
    JobStatus.SUCCEEDED: ("✅", _("done")),
    JobStatus.FAILED: ("⚠️", _("failed")),
    JobStatus.CANCELED: ("🛑", _("cancelled")),
}


def history_line(job: Job, *, gone: bool, show_user: bool, locale: str | None = None) -> str:
    """`✅ done · **a lighthouse…** · flux-dev · 🪄 variation · 3 minutes ago · [open](…)`, in `locale`."""
    icon, status = STATUS.get(job.status, ("", verbatim(str(job.status))))
    parts = [f"{icon} {render(status, locale)}", f"**{quote(shown_prompt(job), PROMPT_CUT)}**"]
    parts.append(short_model(job.model))
    said = words(job.kind)
    if said.history is not None:
        parts.append(f"{said.icon} {render(said.history, locale)}")
    if show_user:
        parts.append(f"<@{job.user_id}>")  # never pings: mentions in embeds don't, and none are allowed
    parts.append(f"<t:{int(job.created_at)}:R>")
    if job.message_id is None:
        parts.append(render(_("no message"), locale))
    elif gone:
        parts.append(render(_("message deleted"), locale))
    else:
        link = message_link(job.guild_id, job.channel_id, job.message_id)
        parts.append(render(_("[open]({link})", link=link), locale))
    return " · ".join(parts)


def history_embed(
    jobs: Sequence[Job],
    gone: Collection[str],
    *,
    page: int,
    pages: int,
    total: int,
    server: bool,
    locale: str | None = None,
) -> discord.Embed:
    """A page of the history, in `locale` (the page is private: the user's language)."""
    # L10N: the title of the /imagine-history page, at most 256 characters
    title = _("Recent images in this server") if server else _("Your recent images")
    embed = discord.Embed(title=render(title, locale), colour=discord.Colour.blurple())
    if not jobs:
        embed.description = render(_("No images yet: try `/imagine`."), locale)
        return embed
    lines = [history_line(job, gone=job.id in gone, show_user=server, locale=locale) for job in jobs]
    embed.description = "\n".join(lines)
    footer = _n(
        "Page {page} of {pages} · {count} job, newest first",
        "Page {page} of {pages} · {count} jobs, newest first",
        total,
        page=page + 1,
        pages=pages,
        count=total,
    )
    embed.set_footer(text=render(footer, locale))
    return embed
