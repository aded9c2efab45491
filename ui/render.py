"""What job messages look like: progress lines, the result embed, failure text.

They are seen by the whole channel, so they are in the job's language (`Job.locale`: the server's, or the
user's where the message is private).
"""

from __future__ import annotations

import discord

from services.jobs.runner import JobProgress
from services.locales import render
from services.store.models import Job
from services.text import Text, _, clip
from ui.kind_words import words

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


def short_model(model: str) -> str:
    return model.rsplit("/", 1)[-1]


def quote(text: str, limit: int) -> str:
    """User text shown back: single line, trimmed, markdown neutralised so it can't restyle the message."""
    return discord.utils.escape_markdown(clip(" ".join(text.split()), limit))


def progress_text(job: Job, progress: JobProgress) -> str:
    icon, stage = STAGE_TEXT[progress.stage]
    line = f"{icon} {render(stage, job.locale)}"
    if progress.stage == "queued" and progress.queue_position is not None:
        line += " — " + render(_("#{position} in line", position=progress.queue_position), job.locale)
    if progress.stage == "generating" and progress.percent is not None:
        line += f" — {progress.percent}%"
    line += f" · {progress.elapsed:.0f} s"
    if progress.usual is not None:
        low, high = (_seconds(value) for value in progress.usual)
        # L10N: after a job's elapsed time on its progress line: how long the model usually takes
        usual = (
            _("longer than the usual {low}–{high} s", low=low, high=high)
            if progress.overdue
            else _("usually {low}–{high} s", low=low, high=high)
        )
        line += f" ({render(usual, job.locale)})"
    prompt = quote(str(job.input.get("prompt", "")), PROMPT_PREVIEW)
    return f"**{prompt}**\n{line} · {short_model(job.model)}"


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 3 else f"{value:.1f}"


def message_link(guild_id: object, channel_id: object, message_id: object) -> str:
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"


def parent_link(job: Job) -> str | None:
    """The link to the message of the job this one came from, if it had one."""
    where = job.extra.parent_message
    if job.parent_id is None or where is None:
        return None
    return message_link(where.guild_id, where.channel_id, where.message_id)


def origin_line(job: Job) -> str | None:
    """Where a reroll, edit or variation came from, with a link: "🪄 Subtle variation of image 2 of …"."""
    link = parent_link(job)
    said = words(job.kind)
    if link is None or said.lead is None:
        return None
    lead = said.by_strength.get(job.extra.strength or "", said.lead)
    of_image = job.extra.of_image
    if of_image is not None and said.names_image:
        line = _("{what} of image {image} of [an earlier result]({link})", what=lead, image=of_image, link=link)
    else:
        line = _("{what} of [an earlier result]({link})", what=lead, link=link)
    return f"{said.icon} {render(line, job.locale)}"


def buttons_hint(shown: int) -> Text | None:
    """A footer that says what the buttons under a result do, in Midjourney's words."""
    if shown == 1:
        # L10N: the footer of a result, at most 2048 characters
        return _(
            "Upscale: redrawn at twice the size · Vary: a new take on this image · Remix: change the prompt · "
            "Edit: change it in words · 🔄 Reroll: same prompt, new seed"
        )
    if shown > 1:
        # L10N: the footer of a result, at most 2048 characters
        return _(
            "U1-U{shown}: that image alone, with its own buttons · V1-V{shown}: variations of that image · "
            "E1-E{shown}: edit it · 🔄 Reroll: same prompt, new seed",
            shown=shown,
        )
    return None


def stored_notes(job: Job) -> list[Text]:
    """The notes admission stored with the job (older records hold plain English strings)."""
    return [Text.from_json(note) for note in job.extra.notes]


def result_embed(job: Job, seconds: float | None, notes: list[Text], *, shown: int = 1) -> discord.Embed:
    """The result's card: prompt, where it came from, model, seed, shape, time (None: nothing ran, as for U1)
    and requester; `shown` images are attached to the message (the footer explains their buttons)."""

    def t(text: Text) -> str:
        return render(text, job.locale)

    prompt = quote(str(job.input.get("prompt", "")), 1000)
    origin = origin_line(job)
    description = f"**{prompt}**" + (f"\n{origin}" if origin else "")
    embed = discord.Embed(description=description, colour=discord.Colour.blurple())
    # L10N: the name of a field of the result embed, at most 256 characters
    embed.add_field(name=t(_("Model")), value=short_model(job.model))
    # L10N: the name of a field of the result embed, at most 256 characters
    embed.add_field(name=t(_("Seed")), value=str(job.input.get("seed", "?")))
    ratio = job.input.get("aspect_ratio")
    if ratio:
        shape = t(_("as the input")) if ratio == "match_input_image" else str(ratio)
        # L10N: the name of a field of the result embed, at most 256 characters
        embed.add_field(name=t(_("Aspect ratio")), value=shape)
    if seconds is not None:
        # L10N: the name of a field of the result embed, at most 256 characters
        embed.add_field(name=t(_("Time")), value=f"{seconds:.1f} s")
    # A mention inside an embed never pings; allowed_mentions is also none on every message.
    # L10N: the name of a field of the result embed, at most 256 characters
    embed.add_field(name=t(_("Requested by")), value=f"<@{job.user_id}>")
    if notes:
        # L10N: the name of a field of the result embed, at most 256 characters
        embed.add_field(name=t(_("Note")), value="\n".join(t(note) for note in notes)[:1000], inline=False)
    hint = buttons_hint(shown)
    if hint:
        embed.set_footer(text=t(hint))
    return embed


def failure_text(job: Job, message: Text, *, canceled: bool) -> str:
    prompt = quote(str(job.input.get("prompt", "")), PROMPT_PREVIEW)
    icon = "🛑" if canceled else "⚠️"
    return f"**{prompt}**\n{icon} {render(message, job.locale)}"
