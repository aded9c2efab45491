"""A server's job log: one line per job in the channel its managers chose (who, prompt, model, estimated cost, link).

Posted in the background when a job starts; a log that cannot be posted (channel gone, no permission) is
logged for the operator and never holds up or fails the job.
"""

from __future__ import annotations

import asyncio
import logging

import discord

from services.jobs.checks import WITHHOLD, OutputCheck
from services.locales import render
from services.money import dollars
from services.store.models import Job
from services.text import _, verbatim
from ui.kind_words import words
from ui.render import message_link, quote, short_model

log = logging.getLogger(__name__)

PROMPT_CHARS = 300


def log_line(job: Job) -> str:
    prompt = quote(str(job.input.get("prompt", "")), PROMPT_CHARS)
    link = message_link(job.guild_id, job.channel_id, job.message_id) if job.message_id else f"<#{job.channel_id}>"
    # In the job's language, like its message; a kind without a name of its own (imagine) is shown as it is.
    label = words(job.kind).history
    kind = render(label, job.locale) if label is not None else job.kind
    # L10N: the estimated cost of a job, in the server's job log
    cost = render(_("about {cost}", cost=dollars(job.cost_microusd)), job.locale)
    return f"<@{job.user_id}> · {kind} · {short_model(job.model)} · {cost} · {link}\n> {prompt}"


class JobLog:
    def __init__(self, client: discord.Client) -> None:
        self.client = client
        self._tasks: set[asyncio.Task[None]] = set()

    def record_soon(self, job: Job, channel_id: int) -> None:
        """Post `job`'s line in the server's log channel `channel_id` (as admission read it), in the background."""
        if job.guild_id is None:
            return
        task = asyncio.create_task(self.record(job, channel_id), name=f"job-log-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def record(self, job: Job, channel_id: int, line: str | None = None) -> None:
        try:
            channel = self.client.get_partial_messageable(channel_id, guild_id=job.guild_id)
            await channel.send(line or log_line(job), allowed_mentions=discord.AllowedMentions.none())
        except Exception as exc:  # a log line is never worth failing a job for
            log.warning("Job %s: could not post to the server's job log: %s", job.id, exc)

    def flagged_soon(self, job: Job, channel_id: int, check: OutputCheck) -> None:
        """Record in the log channel that the server's image check flagged some of `job`'s images."""
        if job.guild_id is None:
            return
        numbers = ", ".join(str(index + 1) for index in sorted(check.hidden))
        what = ", ".join(check.categories) or render(_("not checkable"), job.locale)
        if check.mode == WITHHOLD:
            # L10N: a line in the server's job log; {numbers} are image numbers, {what} the flagged categories
            said = _("🚩 image {numbers} withheld ({what})", numbers=verbatim(numbers), what=verbatim(what))
        else:
            # L10N: a line in the server's job log; {numbers} are image numbers, {what} the flagged categories
            said = _("🚩 image {numbers} posted as a spoiler ({what})", numbers=verbatim(numbers), what=verbatim(what))
        line = f"{render(said, job.locale)} · {log_line(job)}"
        task = asyncio.create_task(self.record(job, channel_id, line), name=f"job-log-flag-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
