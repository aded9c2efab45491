"""What job messages look like: progress lines, the result embed, failure text.

They are seen by the whole channel, so they are in the job's language (`Job.locale`: the server's, or the
user's where the message is private).
"""

from __future__ import annotations

import discord

from services.jobs.runner import JobProgress
from services.locales import render
from services.store.models import Job
from services.text import Text, _

PROMPT_PREVIEW = 180
STAGE_TEXT = {
    # L10N: a stage of an image job, shown after an emoji on its progress line
    "queued": ("⏳", _("Queued")),
    # L10N: a stage of an image job, shown after an emoji on its progress line
    "starting": ("🚀", _("Starting")),
    # L10N: a stage of an image job, shown after an emoji on its progress line
    "generating": ("🎨", _("Generating")),
    # L10N: a stage of an image job, shown after an emoji on its progress line
    "downloading": ("📥", _("Downloading")),
    # L10N: a stage of an image job, shown after an emoji on its progress line
    "uploading": ("📤", _("Uploading")),
}
# L10N: the footer of a result embed, at most 2048 characters
FOOTERS = {"reroll": _("Reroll of an earlier image"), "edit": _("Edit of an earlier image")}


def short_model(model: str) -> str:
    return model.rsplit("/", 1)[-1]


def quote(text: str, limit: int) -> str:
    """User text shown back: single line, trimmed, markdown neutralised so it can't restyle the message."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return discord.utils.escape_markdown(flat)


def progress_text(job: Job, progress: JobProgress) -> str:
    icon, stage = STAGE_TEXT[progress.stage]
    line = f"{icon} {render(stage, job.locale)}"
    if progress.stage == "queued" and progress.queue_position is not None:
        line += " — " + render(_("#{position} in line", position=progress.queue_position), job.locale)
    if progress.stage == "generating" and progress.percent is not None:
        line += f" — {progress.percent}%"
    line += f" · {progress.elapsed:.0f} s"
    prompt = quote(str(job.input.get("prompt", "")), PROMPT_PREVIEW)
    return f"**{prompt}**\n{line} · {short_model(job.model)}"


def stored_notes(job: Job) -> list[Text]:
    """The notes admission stored with the job (older records hold plain English strings)."""
    stored = job.extra.get("notes")
    return [Text.from_json(note) for note in stored] if isinstance(stored, list) else []


def result_embed(job: Job, seconds: float, notes: list[Text]) -> discord.Embed:
    def t(text: Text) -> str:
        return render(text, job.locale)

    prompt = quote(str(job.input.get("prompt", "")), 1000)
    embed = discord.Embed(description=f"**{prompt}**", colour=discord.Colour.blurple())
    # L10N: the name of a field of the result embed, at most 256 characters
    embed.add_field(name=t(_("Model")), value=short_model(job.model))
    # L10N: the name of a field of the result embed, at most 256 characters
    embed.add_field(name=t(_("Seed")), value=str(job.input.get("seed", "?")))
    ratio = job.input.get("aspect_ratio")
    if ratio:
        # L10N: the name of a field of the result embed, at most 256 characters
        embed.add_field(name=t(_("Aspect ratio")), value=str(ratio))
    # L10N: the name of a field of the result embed, at most 256 characters
    embed.add_field(name=t(_("Time")), value=f"{seconds:.1f} s")
    # A mention inside an embed never pings; allowed_mentions is also none on every message.
    # L10N: the name of a field of the result embed, at most 256 characters
    embed.add_field(name=t(_("Requested by")), value=f"<@{job.user_id}>")
    footer = FOOTERS.get(job.kind)
    if footer is not None and job.parent_id:
        embed.set_footer(text=t(footer))
    if notes:
        # L10N: the name of a field of the result embed, at most 256 characters
        embed.add_field(name=t(_("Note")), value="\n".join(t(note) for note in notes)[:1000], inline=False)
    return embed


def failure_text(job: Job, message: Text, *, canceled: bool) -> str:
    prompt = quote(str(job.input.get("prompt", "")), PROMPT_PREVIEW)
    icon = "🛑" if canceled else "⚠️"
    return f"**{prompt}**\n{icon} {render(message, job.locale)}"
