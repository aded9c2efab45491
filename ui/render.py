"""What job messages look like: progress lines, the result embed, failure text."""

from __future__ import annotations

import discord

from services.jobs.runner import JobProgress
from services.store.models import Job

PROMPT_PREVIEW = 180
STAGE_TEXT = {
    "queued": "⏳ Queued",
    "starting": "🚀 Starting",
    "generating": "🎨 Generating",
    "downloading": "📥 Downloading",
    "uploading": "📤 Uploading",
}


def short_model(model: str) -> str:
    return model.rsplit("/", 1)[-1]


def quote(text: str, limit: int) -> str:
    """User text shown back: single line, trimmed, markdown neutralised so it can't restyle the message."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return discord.utils.escape_markdown(flat)


def progress_text(job: Job, progress: JobProgress) -> str:
    line = STAGE_TEXT[progress.stage]
    if progress.stage == "queued" and progress.queue_position is not None:
        line += f" — #{progress.queue_position} in line"
    if progress.stage == "generating" and progress.percent is not None:
        line += f" — {progress.percent}%"
    line += f" · {progress.elapsed:.0f} s"
    if progress.usual is not None:
        low, high = (_seconds(value) for value in progress.usual)
        line += f" (longer than the usual {low}–{high} s)" if progress.overdue else f" (usually {low}–{high} s)"
    prompt = quote(str(job.input.get("prompt", "")), PROMPT_PREVIEW)
    return f"**{prompt}**\n{line} · {short_model(job.model)}"


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 3 else f"{value:.1f}"


def result_embed(job: Job, seconds: float, notes: list[str]) -> discord.Embed:
    prompt = quote(str(job.input.get("prompt", "")), 1000)
    embed = discord.Embed(description=f"**{prompt}**", colour=discord.Colour.blurple())
    embed.add_field(name="Model", value=short_model(job.model))
    embed.add_field(name="Seed", value=str(job.input.get("seed", "?")))
    ratio = job.input.get("aspect_ratio")
    if ratio:
        embed.add_field(name="Aspect ratio", value=str(ratio))
    embed.add_field(name="Time", value=f"{seconds:.1f} s")
    # A mention inside an embed never pings; allowed_mentions is also none on every message.
    embed.add_field(name="Requested by", value=f"<@{job.user_id}>")
    if job.kind != "imagine" and job.parent_id:
        embed.set_footer(text=f"{job.kind} of an earlier image")
    if notes:
        embed.add_field(name="Note", value="\n".join(notes)[:1000], inline=False)
    return embed


def failure_text(job: Job, message: str, *, canceled: bool) -> str:
    prompt = quote(str(job.input.get("prompt", "")), PROMPT_PREVIEW)
    icon = "🛑" if canceled else "⚠️"
    return f"**{prompt}**\n{icon} {message}"
