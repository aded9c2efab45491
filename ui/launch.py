"""The Discord side of admission: acknowledge, admit, then show and start the job.

Used the same way by /imagine, the Reroll button and the edit modal. A command through the server's install of
the app is admitted first and answered with the job's first line (one call to Discord, not a "thinking…" and an
edit), unless admission takes longer than `ANSWER_SECONDS` or many commands are being admitted at once: then
"thinking…" goes first, as everywhere else (a user install, or a caller that acknowledged already). A refusal
(BadInput) is raised to the caller's error path, which answers privately (in place of the public "thinking…" if
there is one).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import discord

from services.jobs.admission import Admission, Admitted
from services.jobs.ask import Ask
from services.jobs.credits import CreditLedger
from services.jobs.kinds.base import Kind
from services.jobs.runner import JobRunner
from services.rules.input_images import ImageRef
from services.rules.options import RequestContext
from services.store.models import Job
from ui.credits import credit_interaction
from ui.display import DiscordDisplay
from ui.job_log import JobLog
from ui.reach import PRIVATE, bot_is_member, reply_fields

Interaction = discord.Interaction[Any]
# How long admission may take before "thinking…" answers for it. Discord waits 3 s for an answer; a loop busy
# enough to make admission slow (a burst) also delays the answer sent after it, by up to a second or more.
ANSWER_SECONDS = 0.5
BUSY_ADMISSIONS = 4  # commands being admitted at once from which "thinking…" answers first


def age_restricted(channel: object) -> bool:
    """Whether a channel (of any kind discord.py gives) is age-restricted; a thread follows its parent."""
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


def ask_from(interaction: Interaction, kind: Kind, prompt: str, **fields: Any) -> Ask:
    """An `Ask` by the interaction's user, in its channel and server."""
    return Ask(
        kind=kind,
        user_id=interaction.user.id,
        channel_id=interaction.channel_id or 0,
        guild_id=interaction.guild_id,
        prompt=prompt,
        age_restricted=age_restricted(interaction.channel),
        **fields,
    )


def settings_guild(interaction: Interaction) -> int | None:
    """The server whose settings apply: the interaction's, where the bot is in it (not through a user install)."""
    return interaction.guild_id if bot_is_member(interaction) else None


def image_ref(attachment: discord.Attachment) -> ImageRef:
    """An attachment as the services see it."""
    return ImageRef(attachment.url, attachment.filename, attachment.size, attachment.content_type)


class Launcher:
    def __init__(
        self,
        admission: Admission,
        runner: JobRunner,
        display: DiscordDisplay,
        job_log: JobLog | None = None,
        *,
        credits: CreditLedger | None = None,
    ) -> None:
        self.admission = admission
        self.runner = runner
        self.display = display
        self.job_log = job_log
        self.credits = credits  # None: credits are off
        self.admitting = 0  # commands between their arrival and their job's admission

    async def acknowledge(self, interaction: Interaction) -> int:
        """Answer within Discord's 3 s with a public "thinking…"; the id of the message that will show the job."""
        response = await interaction.response.defer(thinking=True)
        message_id = response.message_id if response is not None else None
        resource = response.resource if response is not None else None
        if message_id is None or not isinstance(resource, discord.InteractionMessage):
            resource = await interaction.original_response()
            message_id = resource.id
        # Discord makes it private where the user may not post (e.g. "Use External Apps" is off there).
        interaction.extras[PRIVATE] = resource.flags.ephemeral
        return message_id

    async def launch(self, interaction: Interaction, ask: Ask, *, message_id: int | None = None) -> Job:
        """Acknowledge (unless done already, giving `message_id`), admit and start `ask`."""
        # Discord never makes an answer through the server's install private, so the job's first line can answer;
        # but while many commands are being admitted (a burst) "thinking…" goes first, the surest way to answer in time.
        answer_later = message_id is None and interaction.is_guild_integration() and self.admitting < BUSY_ADMISSIONS
        if message_id is None and not answer_later:
            message_id = await self.acknowledge(interaction)
        # Where the bot is not in the server (a user install), the server's settings don't apply.
        ask = replace(
            ask,
            server_settings=ask.guild_id is None or settings_guild(interaction) is not None,
            **reply_fields(interaction),
        )
        await credit_interaction(self.credits, interaction)  # a purchase the gateway has not told us of yet
        self.admitting += 1
        try:
            if answer_later:
                admitted, message_id = await self._admit_quickly(interaction, ask)
            else:
                admitted = await self.admission.admit(ask, message_id=message_id)
        finally:
            self.admitting -= 1
        job, log_channel_id = admitted.job, admitted.log_channel_id
        if message_id is None:
            self._answer_with_first_line(job, interaction, log_channel_id)
            return job
        if answer_later:
            job = await self.admission.attach_message(job, message_id)
        self.start(job, interaction, log_channel_id=log_channel_id)
        return job

    async def _admit_quickly(self, interaction: Interaction, ask: Ask) -> tuple[Admitted, int | None]:
        """Admit `ask`; if that takes over `ANSWER_SECONDS`, "thinking…" answers meanwhile (its message id)."""
        message_id = None
        admitting = asyncio.ensure_future(self.admission.admit(ask))
        try:
            quick, _ = await asyncio.wait({admitting}, timeout=ANSWER_SECONDS)
            if not quick:
                try:
                    message_id = await self.acknowledge(interaction)
                except Exception:
                    # Nothing will show the job (the interaction is gone): once admitted, it is withdrawn unpaid.
                    [admitted] = await asyncio.gather(admitting, return_exceptions=True)
                    if isinstance(admitted, Admitted):
                        await self.admission.withdraw(admitted.job, "its command could not be answered")
                    raise
            return await admitting, message_id
        finally:
            if not admitting.done():
                admitting.cancel()

    def _answer_with_first_line(self, job: Job, interaction: Interaction, log_channel_id: int | None) -> None:
        """Start `job`, whose first line (or end) answers `interaction`, and record the message it makes."""

        async def attach(job: Job, message_id: int) -> None:
            job = await self.admission.attach_message(job, message_id)
            self._log(job, log_channel_id)  # once its entry can link to the message

        self.display.track(job, interaction, attach=attach)
        self.runner.start(job)

    async def context(self, interaction: Interaction) -> RequestContext:
        """What shapes a request from this interaction besides its options (for autocompletes, as on admission)."""
        return await self.admission.context(settings_guild(interaction), interaction.user.id)

    def start(self, job: Job, interaction: Interaction | None, *, log_channel_id: int | None = None) -> None:
        self.display.track(job, interaction)
        self.runner.start(job)
        self._log(job, log_channel_id)

    def _log(self, job: Job, log_channel_id: int | None) -> None:
        if self.job_log is not None and log_channel_id is not None:
            self.job_log.record_soon(job, log_channel_id)
