"""Shows jobs in Discord: throttled progress edits, then the result (or the failure) in the same message.

While the interaction token is fresh, edits go through the interaction webhook (its own rate-limit bucket
per interaction, so many jobs in one channel don't queue behind each other); from a minute before the token
expires (15 minutes after the interaction was made), once Discord refuses it, or for jobs resumed after a
restart, through the channel message endpoints. Those share one bucket per channel, so the progress edits of
every job in a channel take turns in one `EditBudget`; results and failures are counted in it but never wait.

A result is posted so that nothing is lost or doubled: images over the upload limit are made to fit, a result
too large for one message follows in more messages (each recorded once sent, so a resumed delivery sends
only what is missing), and a message Discord refuses leaves the images already shown in place.

Nothing is sent for a job this process cannot prove it still holds (its lease: services/jobs/leases.py), so a
process paused past its lease never edits or posts over the result another process delivered meanwhile. The
one exception is a job's end, shown only after this process recorded it in the store (the job is then no one
else's).

A job the bot can reach only through its interaction (`Job.reply_by`: a user install where the bot is not
a member, a private reply) never uses the channel endpoints: its message is edited through the token, also
after a restart (the token is stored with the job), and more images go as follow-ups, at most 5.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import discord
from discord.ui.view import BaseView

from services.cometapi.files import ImageFile
from services.delivery.edit_budget import EditBudget, Slot
from services.delivery.fit_images import Fitted, fit_images
from services.delivery.throttle import OPEN, Coalescer, Permit
from services.failures import worth_retrying
from services.jobs.checks import WITHHOLD, check_notes
from services.jobs.leases import LeaseFence
from services.jobs.runner import CONNECTION_FAULTS, Delivery, JobProgress, MessageGone, NotDelivered
from services.store.models import Job
from services.text import Text, _, _n
from ui.job_log import JobLog
from ui.render import CardImage, failure_card, progress_card, progress_text, result_card, stored_notes
from ui.uploads import upload_files
from ui.views import JobButtons, progress_rows, result_rows, retry_rows, stopped

log = logging.getLogger(__name__)

T = TypeVar("T")

EDIT_INTERVAL = 1.5  # seconds between two progress edits of one job
# A progress edit after a job's first one (once the job runs) waits this long: when the result comes meanwhile it
# takes the edit's place (in a run of 300 jobs, half the jobs' last progress line was replaced by the result within
# a second of arriving).
MERGE_SECONDS = 1.0
# A generating line of a job whose model is usually done within this long waits until then (and MERGE_SECONDS
# more): the result, due by then, takes its place. "Generating" would show for a second or two at most.
DUE_SOON_SECONDS = 3.0
# Progress edits through the channel endpoints, per channel: Discord allows about 5 edits per 5 s in a
# channel; one is left for the results, failures and other edits, which are counted but never held back.
CHANNEL_EDITS = 4
CHANNEL_WINDOW = 5.0
# The token lasts 15 minutes from the interaction (interaction.expires_at), however late the job was started;
# stop using it a minute early (clock skew, a slow request).
TOKEN_MARGIN = datetime.timedelta(minutes=1)
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
MAX_FILES = 10
TOKEN_CODES = frozenset({10015, 50027})  # Unknown Webhook, Invalid Webhook Token: the token expired
DELIVERY_ATTEMPTS = 4
UPLOADS_AT_ONCE = 16  # results being uploaded at once (a burst's others wait their turn)
MAX_FOLLOWUPS = 5  # Discord's limit per interaction where the bot is not a member
SPOILER = "SPOILER_"  # a file name's prefix that blurs it (also in the card's gallery)

# one file to upload: (image index, filename, image)
_Upload = tuple[int, str, ImageFile | None]


class _FilesSpent(Exception):
    """The interaction token was refused for an edit that uploaded files: discord.py closed them after that request
    (an image spilled to a temporary file for good), so the edit is made again with new files, and it goes through
    the channel endpoints (the token is no longer used)."""


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
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    notes: list[Text] = field(default_factory=list)
    # The interaction the job's first line answers (nothing answered it yet), and how the message is then recorded.
    unanswered: discord.Interaction[Any] | None = None
    attach: Callable[[Job, int], Awaitable[object]] | None = None
    answering: asyncio.Lock = field(default_factory=asyncio.Lock)
    message_id: int | None = None  # the message the answer made (the runner's copy of the job predates it)


class DiscordDisplay:
    def __init__(self, client: discord.Client, fence: LeaseFence, buttons: JobButtons | None = None) -> None:
        self.client = client
        self.fence = fence  # checked before each Discord call for a job (the runner's)
        self.buttons = buttons or JobButtons()  # what the cogs registered (the buttons a result offers)
        self._live: dict[str, _Live] = {}
        self.budget: EditBudget[int] = EditBudget(CHANNEL_EDITS, CHANNEL_WINDOW)
        self._uploading = asyncio.Semaphore(UPLOADS_AT_ONCE)

    def track(
        self,
        job: Job,
        interaction: discord.Interaction[Any] | None,
        notes: Sequence[Text] = (),
        *,
        attach: Callable[[Job, int], Awaitable[object]] | None = None,
    ) -> None:
        """Show `job`, made by `interaction` (None: by a reaction, its message posted already). With `attach`, the
        interaction is not answered yet: the job's first line (or its end) answers it, one call instead of a
        "thinking…" and an edit, and `attach` records the message that answer made."""
        live = self._entry(job)
        live.interaction = interaction
        live.notes = list(notes)
        if attach is not None:
            live.unanswered, live.attach = interaction, attach
        if interaction is not None:
            live.upload_limit = interaction.filesize_limit or DEFAULT_UPLOAD_LIMIT

    def _entry(self, job: Job) -> _Live:
        live = self._live.get(job.id)
        if live is None:
            rows = progress_rows(job.id, job.locale)  # the same Cancel button under every progress line

            async def send(stage_line: str) -> None:
                await self._edit(job, slot=gate.slot, view=progress_card(job, stage_line, rows))

            def via_token() -> bool:
                return job.reply_by is not None or self._webhook(job.id) is not None

            gate = _ProgressGate(self.budget, job.channel_id, via_token)
            live = self._live[job.id] = _Live(Coalescer(send, EDIT_INTERVAL, gate, settle=MERGE_SECONDS), gate)
            if job.guild_id is not None:
                guild = self.client.get_guild(job.guild_id)
                if guild is not None:
                    live.upload_limit = guild.filesize_limit
        return live

    async def progress(self, job: Job, progress: JobProgress) -> None:
        try:
            # Only a line the result may soon replace waits to settle: "queued" and "starting" go at once, so a
            # deleted reply is noticed before the job is sent to the API (and paid for).
            settle = progress.stage not in ("queued", "starting")
            due = progress.due_in
            settle_for = due + MERGE_SECONDS if due is not None and due <= DUE_SOON_SECONDS else None
            await self._entry(job).coalescer.push(progress_text(job, progress), settle=settle, settle_for=settle_for)
        except (discord.HTTPException, *CONNECTION_FAULTS) as exc:
            # A progress line is not worth failing the job for; the final edit will try again.
            log.warning("Job %s: progress edit failed: %s", job.id, str(exc) or type(exc).__name__)

    async def deliver(self, job: Job, delivery: Delivery) -> int:
        live = self._entry(job)
        live.coalescer.discard()
        try:
            return await self._post_result(job, delivery, live)
        finally:
            self._live.pop(job.id, None)

    async def _post_result(self, job: Job, delivery: Delivery, live: _Live) -> int:
        record = delivery.posted
        # A resumed delivery packs with the first attempt's limit, so it sends the same messages (same nonces).
        limit = record.upload_limit or live.upload_limit
        fitted = await _fit(delivery.images, limit)
        shown = record.messages
        check = delivery.checked  # the server's image check: flagged images withheld or behind a spoiler
        withheld = check.hidden if check is not None and check.mode == WITHHOLD else frozenset()
        spoilered = check.hidden if check is not None and check.mode != WITHHOLD else frozenset()
        todo = [
            (index, image)
            for index, image in enumerate(fitted.images)
            if image is not None and index not in shown and index not in withheld
        ]
        groups = _pack(job, todo, limit, spoilered)
        # Notes come from the live job, or from the record when the job was resumed after a restart.
        notes = [*(live.notes or stored_notes(job)), *fitted.notes, *(check_notes(check) if check else [])]
        if check is not None and check.hidden and check.log_channel_id is not None and job.guild_id is not None:
            JobLog(self.client).flagged_soon(job, check.log_channel_id, check)
        if job.reply_by is not None and len(groups) > 1 + MAX_FOLLOWUPS:  # only follow-ups can carry the rest
            left = sum(len(group) for group in groups[1 + MAX_FOLLOWUPS :])
            groups = groups[: 1 + MAX_FOLLOWUPS]
            notes.append(
                _n(
                    "{count} more image could not be posted: Discord allows 5 more messages here.",
                    "{count} more images could not be posted: Discord allows 5 more messages here.",
                    left,
                    count=left,
                )
            )
        count = len(shown)
        # the images the first message shows (its gallery), when it was posted by an earlier attempt
        first = [_upload(job, i, fitted.images[i], spoilered) for i, at in shown.items() if at == job.message_id]
        if job.message_id is None or job.message_id not in shown.values():
            first = groups.pop(0) if groups else []
            split = (
                [
                    _n(
                        "The images did not fit in one message, so they follow in {count} more.",
                        "The images did not fit in one message, so they follow in {count} more.",
                        len(groups),
                        count=len(groups),
                    )
                ]
                if groups
                else []
            )
            await self._edit_result(job, delivery.seconds, notes + split, first)
            count += len(first)
            if groups and job.message_id is not None:  # (a lone message is simply edited again on a resume)
                await record.add([index for index, _, _ in first], job.message_id, upload_limit=limit)
        for number, group in enumerate(groups):
            try:
                message_id = await self._retrying(functools.partial(self._send_more, job, group))
            except discord.HTTPException as exc:
                # What is shown stays shown; the reply says what is missing and why.
                left = sum(len(g) for g in groups[number:])
                log.warning("Job %s: %d image(s) not posted: %s", job.id, left, exc)
                reason = self._refusal(job, live, exc)
                notes.append(
                    _n(
                        "{count} more image could not be posted: {reason}",
                        "{count} more images could not be posted: {reason}",
                        left,
                        count=left,
                        reason=reason,
                    )
                )
                with contextlib.suppress(discord.HTTPException, MessageGone):
                    await self._edit(job, view=self._result_card(job, delivery.seconds, notes, first))
                break
            count += len(group)
            await record.add([index for index, _, _ in group], message_id, upload_limit=limit)
        return count

    def _result_card(
        self, job: Job, seconds: float | None, notes: list[Text], first: list[_Upload]
    ) -> discord.ui.LayoutView:
        """The result's card showing the message's own files `first` (V1, E1... name them by their place)."""
        images = [CardImage(name, spoiler=name.startswith(SPOILER)) for _, name, _ in first]
        rows = result_rows(job.id, len(first), job.locale, self.buttons.offered, self.buttons.icons)
        return result_card(job, seconds, notes, images, rows)

    async def _edit_result(self, job: Job, seconds: float | None, notes: list[Text], first: list[_Upload]) -> None:
        """The reply becomes the result, with the first files; NotDelivered if it can show none."""

        async def send_result() -> None:
            async with self._files(first) as files:
                card = self._result_card(job, seconds, notes, first)
                await self._edit(job, attachments=files, view=card)

        async def edit_result() -> None:
            try:
                await send_result()
            except _FilesSpent:
                await send_result()  # through the channel endpoints now, with files made again

        try:
            await self._retrying(edit_result)
        except discord.Forbidden as exc:
            if exc.code != 50013:
                raise MessageGone() from exc
            reason = _("I need the **Attach Files** permission in this channel to post the images.")
            await self._edit(job, attachments=[], view=self._result_card(job, seconds, [*notes, reason], []))
            raise NotDelivered(str(reason)) from exc
        if not first:  # every image was left out (the card's notes say why)
            reason = _("None of the images could be posted.")
            await self._edit(job, view=self._result_card(job, seconds, [*notes, reason], []))
            raise NotDelivered(str(reason))

    def _refusal(self, job: Job, live: _Live, exc: discord.HTTPException) -> Text:
        """Why Discord refused a message: the permission the bot lacks, when that was it."""
        if not isinstance(exc, discord.Forbidden):
            return _("Discord refused them ({status}).", status=exc.status)
        channel = self.client.get_channel(job.channel_id)
        missing = _missing_permission(self._permissions(job, live), thread=isinstance(channel, discord.Thread))
        if missing is None:
            return _("I need the **Send Messages** and **Attach Files** permissions in this channel.")
        # The permission's name as Discord shows it in English (its settings show the same names).
        return _("I need the **{permission}** permission in this channel.", permission=missing)

    def _permissions(self, job: Job, live: _Live) -> discord.Permissions | None:
        """The bot's permissions in the job's channel, from the cache (kept current by the gateway)."""
        channel = self.client.get_channel(job.channel_id)
        if isinstance(channel, discord.abc.GuildChannel | discord.Thread):
            with contextlib.suppress(discord.ClientException):  # a thread whose parent is not cached
                return channel.permissions_for(channel.guild.me)
        return live.interaction.app_permissions if live.interaction is not None else None

    async def failed(self, job: Job, message: Text, *, canceled: bool) -> None:
        live = self._live.get(job.id)
        if live is not None:
            live.coalescer.discard()
        try:
            # 🔄 where the same request may pass this time (a safety refusal with a new seed, a timeout...)
            rows = retry_rows(job.id, job.locale) if canceled or worth_retrying(message) else []
            card = failure_card(job, message, canceled=canceled, rows=rows)
            await self._edit(job, ended=True, view=card)
        finally:
            self._live.pop(job.id, None)

    def _webhook(self, job_id: str) -> discord.Interaction[Any] | None:
        """The interaction to edit the job's message through while its token is fresh, else None."""
        live = self._live.get(job_id)
        if live is not None and live.interaction is not None and _token_fresh(live.interaction):
            return live.interaction
        return None

    async def _edit(self, job: Job, *, slot: Slot | None = None, ended: bool = False, **fields: Any) -> None:
        try:
            await self._edit_message(job, slot=slot, ended=ended, **fields)
        except MessageGone:
            # The job ends without a result or a failure shown (nothing can show them): nothing else forgets it.
            self._live.pop(job.id, None)
            raise

    async def _edit_message(self, job: Job, *, slot: Slot | None, ended: bool, **fields: Any) -> None:
        """Edit the job's message. Through the channel endpoints it takes `slot` in the channel's budget (a
        progress edit's, taken in turn) or, for anything else, spends one at once.

        Only while this process holds the job's lease (else LeaseLost), unless `ended`: the job's end, which this
        process has just recorded. An edit uploading files whose token Discord refuses raises _FilesSpent instead
        of going on through the channel: its files are closed, the caller makes them again."""
        if not ended:
            await self.fence.check(job.id)
        if isinstance(fields.get("view"), BaseView):
            stopped(fields["view"])  # not kept by discord.py once sent: see ui/views.py
        live = self._live.get(job.id)
        if live is not None and (live.unanswered is not None or live.answering.locked()):
            async with live.answering:  # an edit waits for the answer that makes the message
                if live.unanswered is not None:
                    await self._answer(job, live, fields)
                    return
        view = fields.get("view")
        if isinstance(view, BaseView) and view.has_components_v2():
            # A message made before it was a card (an older version's, with plain text) can become one only by
            # an edit that clears the text; for a card already, clearing nothing changes nothing.
            fields = {"content": None, "embeds": [], **fields}
        if job.reply_by is not None:
            await self._edit_by_token(job, **fields)
            return
        interaction = self._webhook(job.id)
        if interaction is not None and live is not None:
            try:
                await interaction.edit_original_response(allowed_mentions=discord.AllowedMentions.none(), **fields)
            except discord.HTTPException as exc:
                if not _token_gone(exc):
                    if isinstance(exc, discord.NotFound):
                        raise MessageGone() from exc
                    if isinstance(exc, discord.Forbidden) and exc.code == 50001:  # Missing Access, as below
                        raise MessageGone() from exc
                    raise
                live.interaction = None  # Discord no longer takes the token: the channel endpoints from now on
                if _uploads(fields):
                    raise _FilesSpent() from exc  # the same files can't be sent again: they are made anew
            else:
                return
        message_id = job.message_id if job.message_id is not None else live.message_id if live is not None else None
        if message_id is None:
            raise MessageGone()
        channel = self.client.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        spent = self.budget.spend(job.channel_id) if slot is None else None
        try:
            await channel.get_partial_message(message_id).edit(
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

    async def _answer(self, job: Job, live: _Live, fields: dict[str, Any]) -> None:
        """Answer the job's interaction with its message (`fields` as for an edit) and record the message."""
        interaction, live.unanswered = live.unanswered, None
        assert interaction is not None
        assert live.attach is not None
        if "attachments" in fields:  # the result as the very first answer: its files are new
            fields = {**fields, "files": fields["attachments"]}
            del fields["attachments"]
        try:
            response = await interaction.response.send_message(
                allowed_mentions=discord.AllowedMentions.none(), **fields
            )
        except discord.HTTPException as exc:
            # Nothing shows the job (Discord no longer takes the interaction): it ends before anything is paid.
            log.warning("Job %s: could not answer its interaction: %s", job.id, exc)
            raise MessageGone() from exc
        message_id = response.message_id
        if message_id is None:
            message_id = (await interaction.original_response()).id
        live.message_id = message_id
        await live.attach(job, message_id)

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
            if isinstance(exc, discord.NotFound) or _token_gone(exc) or exc.code == 50001:
                # The message is gone or the token expired: nothing else can reach it.
                raise MessageGone() from exc
            raise

    async def _send_more(self, job: Job, group: list[_Upload]) -> int:
        """One more message of a split result, as a reply to the result; returns its id.

        The nonce names the job and the group's first image: Discord returns the message already made with
        it (for a few minutes) instead of making another, so a send repeated after a cut posts it once.
        """
        await self.fence.check(job.id)
        mentions = discord.AllowedMentions.none()
        if job.reply_by is not None:  # a follow-up of the interaction, the one way to post more there
            async with self._files(group) as files:
                followup = await self._token_webhook(job).send(files=files, allowed_mentions=mentions, wait=True)
            return followup.id
        channel = self.client.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        nonce = f"{job.id[:16]}-{group[0][0]}"
        async with self._files(group) as files:
            if job.message_id is None:
                message = await channel.send(files=files, allowed_mentions=mentions, nonce=nonce)
            else:
                reference = discord.MessageReference(
                    message_id=job.message_id, channel_id=job.channel_id, fail_if_not_exists=False
                )
                message = await channel.send(files=files, reference=reference, allowed_mentions=mentions, nonce=nonce)
        return message.id

    @contextlib.asynccontextmanager
    async def _files(self, group: list[_Upload]) -> AsyncIterator[list[discord.File]]:
        """The files to upload (read without copying the images: ui/uploads.py), once fewer than UPLOADS_AT_ONCE
        others are under way: each holds socket buffers outside the images' memory budget."""
        async with self._uploading:
            with upload_files([(name, image) for _, name, image in group if image is not None]) as files:
                yield files

    @staticmethod
    async def _retrying(action: Callable[[], Awaitable[T]]) -> T:
        """Discord's 5xx and 429s are retried by discord.py a few times; a result is worth a few more, spaced out.
        So is a connection cut or timed out, which discord.py does not retry on Linux (only BSD's and Windows'
        connection resets)."""
        for attempt in range(DELIVERY_ATTEMPTS):
            try:
                return await action()
            except discord.HTTPException as exc:
                # discord.py gives up on a 429 after 5 tries and raises a plain HTTPException with status 429.
                transient = isinstance(exc, discord.DiscordServerError) or exc.status == 429
                if not transient or attempt + 1 == DELIVERY_ATTEMPTS:
                    raise
            except CONNECTION_FAULTS as exc:
                if attempt + 1 == DELIVERY_ATTEMPTS:
                    raise
                log.info("Discord's connection failed (%s); trying again", type(exc).__name__)
            await asyncio.sleep(2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _token_fresh(interaction: discord.Interaction[Any]) -> bool:
    return discord.utils.utcnow() < interaction.expires_at - TOKEN_MARGIN


def _token_gone(exc: discord.HTTPException) -> bool:
    """Discord refused the interaction token itself (expired or unknown), whatever the clock said."""
    return exc.status == 401 or exc.code in TOKEN_CODES


def _uploads(fields: dict[str, Any]) -> bool:
    """Whether an edit's fields upload files (which discord.py closes once their request is over)."""
    items = [*(fields.get("attachments") or []), *(fields.get("files") or []), fields.get("file")]
    return any(isinstance(item, discord.File) for item in items)


def _missing_permission(permissions: discord.Permissions | None, *, thread: bool) -> str | None:
    """The first permission a split result's extra messages need that the bot lacks (None: can't tell)."""
    if permissions is None:
        return None
    needed = (
        ("view_channel", "View Channel"),
        ("send_messages_in_threads", "Send Messages in Threads") if thread else ("send_messages", "Send Messages"),
        ("attach_files", "Attach Files"),
        ("read_message_history", "Read Message History"),  # to reply to the result
    )
    return next((name for flag, name in needed if not getattr(permissions, flag)), None)


async def _fit(images: list[ImageFile], limit: int) -> Fitted:
    """Images over the limit re-encoded or scaled down to fit, in a thread (seconds of CPU for big ones)."""
    if all(image.size <= limit for image in images):
        return Fitted(list(images), [])
    return await asyncio.to_thread(fit_images, images, limit)


def _pack(
    job: Job, images: list[tuple[int, ImageFile]], limit: int, spoilered: frozenset[int] = frozenset()
) -> list[list[_Upload]]:
    """Group files so each message stays within the upload limit and 10 files (each file fits on its own);
    those in `spoilered` behind a spoiler (Discord's SPOILER_ file name)."""
    groups: list[list[_Upload]] = []
    size = 0
    for index, image in images:
        if not groups or size + image.size > limit or len(groups[-1]) >= MAX_FILES:
            groups.append([])
            size = 0
        groups[-1].append(_upload(job, index, image, spoilered))
        size += image.size
    return groups


def _upload(job: Job, index: int, image: ImageFile | None, spoilered: frozenset[int]) -> _Upload:
    """Image `index` of a job as a file to upload, named the same on every attempt (the card refers to the name)."""
    spoiler = SPOILER if index in spoilered else ""
    extension = image.extension if image is not None else "png"
    return index, f"{spoiler}flux-{job.id[:8]}-{index + 1}.{extension}", image
