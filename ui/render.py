"""What job messages look like: progress lines, the result embed, failure text."""

from __future__ import annotations

import discord

from services.jobs.runner import JobProgress
from services.store.models import Job, JobKind

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


def message_link(guild_id: object, channel_id: object, message_id: object) -> str:
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"


def parent_link(job: Job) -> str | None:
    """The link to the message of the job this one came from, if it had one."""
    where = job.extra.get("parent_message")
    if job.parent_id is None or not isinstance(where, dict):
        return None
    return message_link(where.get("guild_id"), where.get("channel_id"), where.get("message_id"))


def origin_line(job: Job) -> str | None:
    """Where a reroll, edit or variation came from, with a link: "🪄 Subtle variation of image 2 of …"."""
    link = parent_link(job)
    if link is None:
        return None
    strength = job.extra.get("strength")
    if job.kind == JobKind.VARIATION:
        lead = f"🪄 {strength.capitalize()} variation" if isinstance(strength, str) else "🪄 Variation"
    elif job.kind == JobKind.EDIT:
        lead = "✏️ Edit"
    else:
        lead = "🔄 Reroll"
    of_image = job.extra.get("of_image")
    if isinstance(of_image, int) and job.kind != JobKind.REROLL:
        lead += f" of image {of_image}"
    return f"{lead} of [an earlier result]({link})"


def buttons_hint(shown: int) -> str | None:
    """A footer that says what the buttons under a result do, in Midjourney's words."""
    if shown == 1:
        return "Vary: a new take on this image · Edit: change it in words · 🔄 Reroll: same prompt, new seed"
    if shown > 1:
        return f"V1-V{shown}: variations of that image · E1-E{shown}: edit it · 🔄 Reroll: same prompt, new seed"
    return None


def result_embed(job: Job, seconds: float, notes: list[str], *, shown: int = 1) -> discord.Embed:
    """The result's card: prompt, where it came from, model, seed, shape, time and requester; `shown` images
    are attached to the message (the footer explains their buttons)."""
    prompt = quote(str(job.input.get("prompt", "")), 1000)
    origin = origin_line(job)
    description = f"**{prompt}**" + (f"\n{origin}" if origin else "")
    embed = discord.Embed(description=description, colour=discord.Colour.blurple())
    embed.add_field(name="Model", value=short_model(job.model))
    embed.add_field(name="Seed", value=str(job.input.get("seed", "?")))
    ratio = job.input.get("aspect_ratio")
    if ratio:
        embed.add_field(name="Aspect ratio", value="as the input" if ratio == "match_input_image" else str(ratio))
    embed.add_field(name="Time", value=f"{seconds:.1f} s")
    # A mention inside an embed never pings; allowed_mentions is also none on every message.
    embed.add_field(name="Requested by", value=f"<@{job.user_id}>")
    if notes:
        embed.add_field(name="Note", value="\n".join(notes)[:1000], inline=False)
    hint = buttons_hint(shown)
    if hint:
        embed.set_footer(text=hint)
    return embed


def failure_text(job: Job, message: str, *, canceled: bool) -> str:
    prompt = quote(str(job.input.get("prompt", "")), PROMPT_PREVIEW)
    icon = "🛑" if canceled else "⚠️"
    return f"**{prompt}**\n{icon} {message}"
