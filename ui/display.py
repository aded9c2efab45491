"""Shows jobs in Discord: throttled progress edits, then the result (or the failure) in the same message.

While the interaction token is fresh, edits go through the interaction webhook (its own rate-limit bucket
per interaction, so many jobs in one channel don't queue behind each other); after ~14 minutes, or for
jobs resumed after a restart, through the channel message endpoints. Those share one bucket per channel, so
the progress edits of every job in a channel take turns in one `EditBudget`; results and failures are
counted in it but never wait.

A job the bot can reach only through its interaction (`Job.reply_by`: a user install where the bot is not
a member, a private reply) never uses the channel endpoints: its message is edited through the token, also
after a restart (the token is stored with the job), and extra images go as follow-ups, at most 5.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import discord

from services.jobs.edit_budget import EditBudget, Slot
from services.jobs.runner import Delivery, JobProgress, MessageGone, NotDelivered
from services.jobs.throttle import OPEN, Coalescer, Permit
from services.locales import render
from services.store.models import Job
from services.text import Text, _, _n
from ui.render import failure_text, progress_text, result_embed, stored_notes
from ui.views import progress_view, result_view

log = logging.getLogger(__name__)

EDIT_INTERVAL = 1.5  # seconds between two progress edits of one job
# Progress edits through the channel endpoints, per channel: Discord allows about 5 edits per 5 s in a
# channel; one is left for the results, failures and other edits, which are counted but never held back.
CHANNEL_EDITS = 4
CHANNEL_WINDOW = 5.0
TOKEN_LIFETIME = 14 * 60  # interaction tokens last 15 minutes; keep a margin
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
MAX_FILES = 10
GONE_CODES = frozenset({10003, 10008})  # Unknown Channel, Unknown Message
TOKEN_CODES = frozenset({10015, 50027})  # Unknown Webhook, Invalid Webhook Token: the token expired
DELIVERY_ATTEMPTS = 4
MAX_FOLLOWUPS = 5  # Discord's limit per interaction


class _ProgressGate:
    """When a job's progress edit may go: at once through the webhook, else on its turn in the channel's budget."""

    def __init__(self, budget: EditBudget[int], channel_id: int, via_webhook: Callable[[], bool]) -> None:
        self._budget = budget
        self._channel_id = channel_id
        self._via_webhook = via_webhook
        self.slot: Slot | None = None  # the channel slot held by the edit being sent, if it goes that way

    def try_enter(self) -> Permit | None:
        if self._via_webhook():
            self.slot = None
            return OPEN
        self.slot = self._budget.try_take(self._channel_id)
        return self.slot

    async def enter(self) -> Permit:
        if self._via_webhook():
            self.slot = None
            return OPEN
        self.slot = await self._budget.take(self._channel_id)
        return self.slot


@dataclass
class _Live:
    coalescer: Coalescer[str]
    gate: _ProgressGate
    interaction: discord.Interaction[Any] | None = None
    opened: float = field(default_factory=time.monotonic)
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    notes: list[Text] = field(default_factory=list)


class DiscordDisplay:
    def __init__(self, client: discord.Client) -> None:
        self.client = client
        self._live: dict[str, _Live] = {}
        self.budget: EditBudget[int] = EditBudget(CHANNEL_EDITS, CHANNEL_WINDOW)

    def track(self, job: Job, interaction: discord.Interaction[Any] | None, notes: Sequence[Text] = ()) -> None:
        live = self._entry(job)
        live.interaction = interaction
        live.notes = list(notes)
        if interaction is not None:
            live.upload_limit = interaction.filesize_limit or DEFAULT_UPLOAD_LIMIT

    def _entry(self, job: Job) -> _Live:
        live = self._live.get(job.id)
        if live is None:

            async def send(text: str) -> None:
                view = progress_view(job.id, job.locale)
                await self._edit(job, slot=gate.slot, content=text, embeds=[], view=view)

            def via_token() -> bool:
                return job.reply_by is not None or self._webhook(job.id) is not None

            gate = _ProgressGate(self.budget, job.channel_id, via_token)
            live = self._live[job.id] = _Live(Coalescer(send, EDIT_INTERVAL, gate), gate)
            if job.guild_id is not None:
                guild = self.client.get_guild(job.guild_id)
                if guild is not None:
                    live.upload_limit = guild.filesize_limit
        return live

    async def progress(self, job: Job, progress: JobProgress) -> None:
        try:
            await self._entry(job).coalescer.push(progress_text(job, progress))
        except discord.HTTPException as exc:
            # A progress line is not worth failing the job for; the final edit will try again.
            log.warning("Job %s: progress edit failed: %s", job.id, exc)

    async def deliver(self, job: Job, delivery: Delivery) -> None:
        live = self._entry(job)
        live.coalescer.discard()
        groups, skipped = _pack(job, delivery, live.upload_limit)
        if job.reply_by is not None and len(groups) > 1 + MAX_FOLLOWUPS:
            skipped += sum(len(group) for group in groups[1 + MAX_FOLLOWUPS :])
            groups = groups[: 1 + MAX_FOLLOWUPS]
        # Notes come from the live job, or from the record when the job was resumed after a restart.
        notes = list(live.notes) or stored_notes(job)
        if skipped:
            notes.append(
                _n(
                    "{count} image was over this server's upload limit and could not be attached.",
                    "{count} images were over this server's upload limit and could not be attached.",
                    skipped,
                    count=skipped,
                )
            )
        if len(groups) > 1:
            more = len(groups) - 1
            notes.append(
                _n(
                    "The images did not fit in one message, so they follow in {count} more.",
                    "The images did not fit in one message, so they follow in {count} more.",
                    more,
                    count=more,
                )
            )
        embed = result_embed(job, delivery.seconds, notes)
        try:
            first, rest = groups[0], groups[1:]

            async def edit_result() -> None:
                with _files(first) as files:
                    view = result_view(job.id, job.locale)
                    await self._edit(job, content=None, embeds=[embed], attachments=files, view=view)

            await self._retrying(edit_result)
            for group in rest:

                async def send_group(group: list[tuple[str, bytes]] = group) -> None:
                    await self._send_more(job, group)

                await self._retrying(send_group)
        except discord.Forbidden as exc:
            if exc.code != 50013:
                raise MessageGone() from exc
            reason = _("I need the **Attach Files** permission in this channel to post the images.")
            content = render(reason, job.locale)
            await self._edit(job, content=content, embeds=[embed], attachments=[], view=result_view(job.id, job.locale))
            raise NotDelivered(str(reason)) from exc
        finally:
            self._live.pop(job.id, None)

    async def failed(self, job: Job, message: Text, *, canceled: bool) -> None:
        live = self._live.get(job.id)
        if live is not None:
            live.coalescer.discard()
        try:
            await self._edit(job, content=failure_text(job, message, canceled=canceled), embeds=[], view=None)
        finally:
            self._live.pop(job.id, None)

    def _webhook(self, job_id: str) -> discord.Interaction[Any] | None:
        """The interaction to edit the job's message through while its token is fresh, else None."""
        live = self._live.get(job_id)
        if live is not None and live.interaction is not None and time.monotonic() - live.opened < TOKEN_LIFETIME:
            return live.interaction
        return None

    async def _edit(self, job: Job, *, slot: Slot | None = None, **fields: Any) -> None:
        """Edit the job's message. Through the channel endpoints it takes `slot` in the channel's budget (a
        progress edit's, taken in turn) or, for anything else, spends one at once."""
        if job.reply_by is not None:
            await self._edit_by_token(job, **fields)
            return
        live = self._live.get(job.id)
        interaction = self._webhook(job.id)
        if interaction is not None and live is not None:
            try:
                await interaction.edit_original_response(allowed_mentions=discord.AllowedMentions.none(), **fields)
            except discord.NotFound as exc:
                if exc.code not in TOKEN_CODES:
                    raise MessageGone() from exc
                live.interaction = None  # the token expired: use the channel endpoints from now on
            except discord.Forbidden as exc:
                if exc.code == 50001:  # Missing Access, as on the channel endpoints below
                    raise MessageGone() from exc
                raise
            else:
                return
        if job.message_id is None:
            raise MessageGone()
        channel = self.client.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        spent = self.budget.spend(job.channel_id) if slot is None else None
        try:
            await channel.get_partial_message(job.message_id).edit(
                allowed_mentions=discord.AllowedMentions.none(), **fields
            )
        except discord.NotFound as exc:
            raise MessageGone() from exc
        except discord.Forbidden as exc:
            if exc.code == 50001:  # Missing Access: the bot can no longer see the channel
                raise MessageGone() from exc
            raise
        finally:
            if spent is not None:
                spent.used()

    def _token_webhook(self, job: Job) -> discord.Webhook:
        """The interaction webhook of a job's token: its own live interaction's, or one built from the record."""
        live = self._live.get(job.id)
        if live is not None and live.interaction is not None:
            return live.interaction.followup
        assert job.interaction_token is not None
        assert self.client.application_id is not None
        return discord.Webhook.partial(self.client.application_id, job.interaction_token, client=self.client)

    async def _edit_by_token(self, job: Job, **fields: Any) -> None:
        """Edit the job's message through its interaction: the only way where the bot can't use the channel."""
        live = self._live.get(job.id)
        mentions = discord.AllowedMentions.none()
        try:
            if live is not None and live.interaction is not None:
                await live.interaction.edit_original_response(allowed_mentions=mentions, **fields)
            elif job.message_id is not None and job.interaction_token is not None:
                await self._token_webhook(job).edit_message(job.message_id, allowed_mentions=mentions, **fields)
            else:
                raise MessageGone()
        except discord.HTTPException as exc:
            if isinstance(exc, discord.NotFound) or exc.code in TOKEN_CODES or exc.code == 50001:
                # The message is gone or the token expired: nothing else can reach it.
                raise MessageGone() from exc
            raise

    async def _send_more(self, job: Job, group: list[tuple[str, bytes]]) -> None:
        mentions = discord.AllowedMentions.none()
        if job.reply_by is not None:  # a follow-up, the one way to post more
            with _files(group) as files:
                await self._token_webhook(job).send(files=files, allowed_mentions=mentions)
            return
        channel = self.client.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        with _files(group) as files:
            if job.message_id is None:
                await channel.send(files=files, allowed_mentions=mentions)
                return
            reference = discord.MessageReference(
                message_id=job.message_id, channel_id=job.channel_id, fail_if_not_exists=False
            )
            await channel.send(files=files, reference=reference, allowed_mentions=mentions)

    @staticmethod
    async def _retrying(action: Callable[[], Awaitable[None]]) -> None:
        """Discord's 5xx and 429s are retried by discord.py a few times; a result is worth a few more, spaced out."""
        for attempt in range(DELIVERY_ATTEMPTS):
            try:
                await action()
            except discord.HTTPException as exc:
                # discord.py gives up on a 429 after 5 tries and raises a plain HTTPException with status 429.
                transient = isinstance(exc, discord.DiscordServerError) or exc.status == 429
                if not transient or attempt + 1 == DELIVERY_ATTEMPTS:
                    raise
                await asyncio.sleep(2**attempt)
            else:
                return


def _pack(job: Job, delivery: Delivery, limit: int) -> tuple[list[list[tuple[str, bytes]]], int]:
    """Group files so each message stays within the upload limit and 10 files; count those too large alone."""
    groups: list[list[tuple[str, bytes]]] = [[]]
    size, skipped = 0, 0
    for index, image in enumerate(delivery.images):
        name = f"flux-{job.id[:8]}-{index + 1}.{image.extension}"
        if image.size > limit:
            skipped += 1
            continue
        if groups[-1] and (size + image.size > limit or len(groups[-1]) >= MAX_FILES):
            groups.append([])
            size = 0
        groups[-1].append((name, image.data))
        size += image.size
    return groups, skipped


@contextlib.contextmanager
def _files(group: list[tuple[str, bytes]]) -> Iterator[list[discord.File]]:
    """The files to upload; their buffers are freed as soon as the upload is over.

    discord.File replaces `fp.close` with a bound method of `fp` itself, a reference cycle, so a BytesIO
    given to it is freed only by the cyclic garbage collector, and aiohttp's upload copies the image into
    the BytesIO (`getbuffer()` unshares it), so the copies would outlive their jobs. Closing each buffer
    releases its bytes at once.
    """
    buffers = [io.BytesIO(data) for _, data in group]
    try:
        yield [discord.File(buffer, filename=name) for buffer, (name, _) in zip(buffers, group, strict=True)]
    finally:
        for buffer in buffers:
            io.BytesIO.close(buffer)  # the class's close: discord.File may have stubbed out the instance's
