"""What job messages look like: one Components V2 card from the first answer to the last.

The card is a container holding the prompt and one short line (model · seed · ratio · time · who asked, and
where a reroll, edit or variation came from), then the stage line while the job runs, the images once it is
done (a media gallery of the message's attachments) or why it ended without them, and the buttons.

They are seen by the whole channel, so they are in the job's language (`Job.locale`: the server's, or the
user's where the message is private).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import discord

from services.jobs.kinds.upscale import subject
from services.jobs.runner import JobProgress
from services.locales import render
from services.store.models import Job
from services.text import Text, _, clip
from ui.kind_words import words
from ui.views import Row

PROMPT_SHOWN = 1000
ALT_TEXT = 1024  # Discord's most for a media gallery item's description
CARD_COLOUR = discord.Colour.blurple()
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
    """The stage line of a job in progress: "🎨 Generating — 40% · 12 s (usually 7–35 s)"."""
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
    return line


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


def stored_notes(job: Job) -> list[Text]:
    """The notes admission stored with the job (older records hold plain English strings)."""
    return [Text.from_json(note) for note in job.extra.notes]


@dataclass(frozen=True)
class CardImage:
    """One image of a result card: the message's attachment of that name, blurred when `spoiler`."""

    filename: str
    spoiler: bool = False


def facts_line(job: Job, seconds: float | None = None) -> str:
    """The card's one short line: model · seed · ratio · time (None: nothing ran, as for U1) · who asked."""
    parts = [short_model(job.model)]
    seed = job.input.get("seed")
    if seed is not None:
        # L10N: on the line under a prompt, between the model's name and the aspect ratio
        parts.append(render(_("seed {seed}", seed=seed), job.locale))
    ratio = job.input.get("aspect_ratio")
    if ratio:
        parts.append(render(_("as the input"), job.locale) if ratio == "match_input_image" else str(ratio))
    if seconds is not None:
        parts.append(f"{seconds:.1f} s")
    # A mention never pings here: allowed_mentions is none on every job message.
    parts.append(f"<@{job.user_id}>")
    return " · ".join(parts)


def shown_prompt(job: Job) -> str:
    """The job's prompt as people read it: what was asked for, without the instruction this bot wrapped around it
    for the model (a zoom's, an upscale's); the whole prompt where it names nothing else (a subtle upscale)."""
    prompt = str(job.input.get("prompt", ""))
    return subject(prompt) or prompt


def heading(job: Job, seconds: float | None = None) -> str:
    """The prompt in bold, the facts line, and the origin line of a job that came from another."""
    prompt = quote(shown_prompt(job), PROMPT_SHOWN)
    lines = [f"**{prompt}**", f"-# {facts_line(job, seconds)}"]
    origin = origin_line(job)
    if origin:
        lines.append(f"-# {origin}")
    return "\n".join(lines)


def job_card(
    job: Job,
    heading_text: str,
    texts: Sequence[str] = (),
    *,
    images: Sequence[CardImage] = (),
    rows: Sequence[Row] = (),
) -> discord.ui.LayoutView:
    """One container: the heading, the images in a gallery, `texts` (a display each) and the rows of buttons."""
    container: discord.ui.Container[discord.ui.LayoutView] = discord.ui.Container(accent_colour=CARD_COLOUR)
    container.add_item(discord.ui.TextDisplay(heading_text))
    if images:
        alt = clip(" ".join(shown_prompt(job).split()), ALT_TEXT) or None
        gallery: discord.ui.MediaGallery[discord.ui.LayoutView] = discord.ui.MediaGallery()
        for image in images:
            gallery.add_item(media=f"attachment://{image.filename}", description=alt, spoiler=image.spoiler)
        container.add_item(gallery)
    for text in texts:
        container.add_item(discord.ui.TextDisplay(text))
    for row in rows:
        container.add_item(discord.ui.ActionRow(*row))
    view = discord.ui.LayoutView(timeout=None)
    view.add_item(container)
    return view


def progress_card(job: Job, stage_line: str, rows: Sequence[Row]) -> discord.ui.LayoutView:
    """A job in progress: the stage line where the images will be."""
    return job_card(job, heading(job), [stage_line], rows=rows)


def result_card(
    job: Job, seconds: float | None, notes: Sequence[Text], images: Sequence[CardImage], rows: Sequence[Row]
) -> discord.ui.LayoutView:
    """A result: the heading with its time (None: nothing ran, as for U1), the images, any notes, the buttons."""
    lines = [line for note in notes for line in render(note, job.locale).splitlines() if line.strip()]
    texts = ["\n".join(f"-# {line}" for line in lines)] if lines else []
    return job_card(job, heading(job, seconds), texts, images=images, rows=rows)


def failure_card(job: Job, message: Text, *, canceled: bool, rows: Sequence[Row]) -> discord.ui.LayoutView:
    """A job that ended without images: why (🛑 cancelled, ⚠️ anything else), and 🔄 where trying again helps."""
    icon = "🛑" if canceled else "⚠️"
    return job_card(job, heading(job), [f"{icon} {render(message, job.locale)}"], rows=rows)
