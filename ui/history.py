"""What /imagine-history shows: one line per job (status, prompt, model, when, link), a page at a time."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import discord

from services.store.models import Job, JobKind, JobStatus
from ui.render import message_link, quote, short_model

PROMPT_CUT = 60
STATUS = {
    JobStatus.QUEUED: "⏳ queued",
    JobStatus.SUBMITTING: "🚀 starting",
    JobStatus.RUNNING: "🎨 running",
    JobStatus.DELIVERING: "📤 posting",
    JobStatus.SUCCEEDED: "✅ done",
    JobStatus.FAILED: "⚠️ failed",
    JobStatus.CANCELED: "🛑 canceled",
}
KIND = {JobKind.REROLL: "🔄 reroll", JobKind.EDIT: "✏️ edit", JobKind.VARIATION: "🪄 variation"}


def history_line(job: Job, *, gone: bool, show_user: bool) -> str:
    """`✅ done · **a lighthouse…** · flux-dev · 🪄 variation · 3 minutes ago · [open](…)`."""
    parts = [STATUS.get(job.status, str(job.status)), f"**{quote(str(job.input.get('prompt', '')), PROMPT_CUT)}**"]
    parts.append(short_model(job.model))
    if job.kind in KIND:
        parts.append(KIND[job.kind])
    if show_user:
        parts.append(f"<@{job.user_id}>")  # never pings: mentions in embeds don't, and none are allowed
    parts.append(f"<t:{int(job.created_at)}:R>")
    if job.message_id is None:
        parts.append("no message")
    elif gone:
        parts.append("message deleted")
    else:
        parts.append(f"[open]({message_link(job.guild_id, job.channel_id, job.message_id)})")
    return " · ".join(parts)


def history_embed(
    jobs: Sequence[Job], gone: Collection[str], *, page: int, pages: int, total: int, server: bool
) -> discord.Embed:
    title = "Recent images in this server" if server else "Your recent images"
    embed = discord.Embed(title=title, colour=discord.Colour.blurple())
    if not jobs:
        embed.description = "No images yet: try `/imagine`."
        return embed
    lines = [history_line(job, gone=job.id in gone, show_user=server) for job in jobs]
    embed.description = "\n".join(lines)
    embed.set_footer(text=f"Page {page + 1} of {pages} · {total} job{'s' if total != 1 else ''}, newest first")
    return embed
