"""Admission: from what someone asked for to a stored job, the same way for every kind of job.

/imagine, /blend, the Reroll, Vary and Edit buttons, 🔄 reactions, the edit modal and the "Edit with FLUX" menu
all describe their request as an `Ask` of some kind (services/jobs/kinds/) and go through the same two steps:

1. `check_early(ask)`: what can be judged with no I/O (the prompt, the attachments' descriptions, the
   options given for a named model, one by one). A mistake is answered before acknowledging.
2. `admit(ask)`, a sequence of short steps: the user's and server's settings; the prompt judged; the model
   (the kind's choice where none is named) and its options; the images fetched and checked (kept once in the
   store, the job referring to them: services/jobs/input_refs.py), or a reroll's references reused; the
   model's input built by the kind and held to the moderation rules; its cost booked as an upper bound (from
   the input images' real sizes); the job inserted by the store in one atomic step with the limits (cooldown,
   jobs in flight, quotas and budgets: the server's, the operator's per user and for the whole bot). The job
   exists before any API call; a refusal raises `LimitReached` naming the limit, and nothing is stored.

Blocked words (the operator's and the server's) are judged on the prompt exactly as it is sent: the `prompt`
of the assembled model input, after the prompt's parameters are taken out and the text cleaned, whoever wrote
it (the member, a parent job for rerolls and variations, or the bot: /blend's default prompt). The same text is
judged earlier too, so a refusal costs nothing: in `check_early` against the operator's list, and in `admit`
against both lists before any attachment is fetched.

✨ Enhance (`enhance` given, or `--enhance` in the prompt) rewrites the judged prompt with a chat model
(services/jobs/words.py), but only once everything that can refuse the job from what is known has been judged
(the model and its options, the input images, the moderation rules, the typed prompt): a request that would be
refused pays for no chat. The chat's cost is then booked, through the same atomic check of the limits, as a row
of its own that also carries the images and cost of the job built from the typed prompt, so it is judged as that
job will be (a member at a quota, in a cooldown or short of budget pays for no chat); the row gives those back
once the chat is over. The job's input is built again with the rewritten prompt, which is judged like a typed
one (a refusal then costs the chat, which was made, and no image), and the job is admitted, judged again, as any
other; if the chat fails, the typed prompt is used and a note says so.
`describe` is /describe's chat: an image in, four prompts out, booked the same way.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from services.cometapi.files import Downloader, ImageFile
from services.errors import ApiError, BadInput
from services.jobs.ask import Ask
from services.jobs.checks import checking
from services.jobs.input_refs import KeptImages, check_request_size, keep, stored_copies
from services.jobs.kinds.base import Kind
from services.jobs.leases import LeaseTerms
from services.jobs.policy import Policy
from services.jobs.words import (
    DESCRIBE_MAX_TOKENS,
    ENHANCE_MAX_TOKENS,
    Chat,
    describe_messages,
    enhance_messages,
    enhanced_prompt,
    four_prompts,
)
from services.limits import Limits, Refusal
from services.rules.catalogue import ModelSpec, check_option, clean_prompt
from services.rules.input_images import ImageRef, precheck, prepare
from services.rules.invisible import visible
from services.rules.moderation import BlockedPrompt, Moderation, apply_safety, check_prompt
from services.rules.options import RequestContext, Resolved, chosen_model
from services.rules.prompt_params import apply
from services.store.base import InputImagesGone, Store
from services.store.job_extra import JobExtra, MessageRef
from services.store.models import InputImage, Job, JobStatus
from services.text import Text, _, verbatim

log = logging.getLogger(__name__)

ENHANCE = "enhance"  # the option (and `--enhance`) that asks for ✨ prompt help; never sent to the image model


class LimitReached(BadInput):
    """The user or the server is at a limit; the message says which."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.text())
        self.refusal = refusal


@dataclass(frozen=True)
class Admitted:
    job: Job
    # Where the server's job log goes (None: nowhere), read with the rest of its settings at admission, so
    # the log line costs no second read.
    log_channel_id: int | None = None


class Admission:
    def __init__(
        self,
        policy: Policy,
        store: Store,
        attachments: Downloader,
        *,
        shard_of: Callable[[int | None], int],
        lease: LeaseTerms,
        on_admitted: Callable[[Job], None] | None = None,
        chat: Chat | None = None,
    ) -> None:
        self.policy = policy
        self.store = store
        self.attachments = attachments
        self.shard_of = shard_of
        self.lease = lease
        self.on_admitted = on_admitted  # e.g. metrics: counted once the job is stored
        self.chat = chat  # chat completions with the same key (None: ✨ Enhance and /describe are off)

    def check_early(self, ask: Ask) -> None:
        """Raise BadInput for what is wrong with `ask` on its face (no I/O, nothing stored)."""
        catalogue = self.policy.catalogue
        applied = apply(ask.prompt, ask.given, catalogue)
        applied.given.pop(ENHANCE, None)
        check_prompt(clean_prompt(ask.kind.prompt(applied.prompt)), Moderation(), self.policy.blocked_words)
        precheck(list(ask.images), self.policy.max_input_image_bytes)
        model = applied.given.get("model")
        if not model or not ask.kind.checks_options:
            return  # the model comes from stored settings, or the options are fitted to it: judged on admission
        spec = catalogue.resolve(str(model), allow_unknown=self.policy.allow_unknown_models)
        if spec is None:
            return  # an allowed model we don't know: passed through unchecked
        for name, value in applied.given.items():
            if name != "model":
                check_option(spec, name, value)
        if ask.kind.checks_image_count:
            catalogue.check_images(spec, len(ask.images))

    async def context(self, guild_id: int | None, user_id: int) -> RequestContext:
        # Asked together: on SQLite one trip to the database thread, on PostgreSQL two connections at once.
        guild, user_prefs = await asyncio.gather(
            self.store.get_guild_settings(guild_id) if guild_id else _none(), self.store.get_user_prefs(user_id)
        )
        return RequestContext(
            default_model=self.policy.default_model,
            catalogue=self.policy.catalogue,
            allow_unknown_models=self.policy.allow_unknown_models,
            guild=guild,
            user_prefs=user_prefs,
        )

    def limits(self, context: RequestContext) -> Limits:
        """The bot's limits, narrowed by the server's settings where they apply."""
        base = self.policy.limits
        return base.merged(context.guild.limits) if context.guild else base

    async def admit(self, ask: Ask, *, message_id: int | None = None) -> Admitted:
        """The stored job, status queued; BadInput (LimitReached for limits) if it may not run."""
        context = await self.context(ask.guild_id if ask.server_settings else None, ask.user_id)
        moderation = Moderation.of(context.guild)
        limits = self.limits(context)
        applied = apply(ask.prompt, ask.given, context.catalogue)
        enhance = applied.given.pop(ENHANCE, None) is True
        typed = ask.kind.prompt(applied.prompt)
        # The text to be sent, judged before the attachments are fetched: a refusal costs nothing.
        judged = clean_prompt(typed)
        check_prompt(judged, moderation, self.policy.blocked_words)
        notes = list(applied.notes)
        images = len(ask.reused.images) if ask.reused is not None else len(ask.images)
        spec, given = self._model_and_options(ask.kind, applied.given, context, images=images)
        kept = ask.reused or await self._fetch(ask.kind.images(ask.images, spec))
        # Pillow work (an outpaint's canvas) in a thread; without images there is none, and no wait for a worker
        # that file work elsewhere may hold.
        kept, derived = await asyncio.to_thread(ask.kind.derive, kept) if kept.images else ask.kind.derive(kept)
        kind = ask.kind.sized(kept.sizes)

        def assembled(prompt: str) -> tuple[Resolved, dict[str, object]]:
            """The model's input for `prompt`, held to the moderation rules, and its text judged as it is sent
            (again only where it differs from the typed text judged above: an enhanced prompt, a model's wording)."""
            resolved = kind.build(prompt, given, kept.values, context)
            model_input = apply_safety(resolved.input, given, moderation, age_restricted=ask.age_restricted)
            sent = str(model_input.get("prompt", ""))
            if sent != judged:
                check_prompt(sent, moderation, self.policy.blocked_words)
            return resolved, model_input

        resolved, model_input = assembled(typed)
        reused = await self._check_stored_images(model_input, kept, reuse=ask.reused is not None)
        if enhance:
            # Everything that can refuse the job from what is known has been judged; the chat is booked with the
            # job's images and cost, so it is not paid for when the image could not be made anyway.
            planned = self._job(ask, resolved, model_input, kept, notes, message_id, derived)
            prompt, note = await self._enhance(ask, limits, typed, moderation, planned)
            notes.append(note)
            if prompt != typed:
                resolved, model_input = assembled(prompt)
                reused = await self._check_stored_images(model_input, kept, reuse=ask.reused is not None)
        job = self._job(ask, resolved, model_input, kept, [*notes, *resolved.notes], message_id, derived)
        check = checking(
            moderation.check_images, age_restricted=ask.age_restricted, log_channel_id=moderation.log_channel_id
        )
        if check:  # its images are checked before they are shown (services/jobs/checks.py)
            job = replace(job, extra=replace(job.extra, more={**job.extra.more, **check}))
        try:
            refusal = await self.store.admit_job(job, limits, now=job.created_at, images=kept.images, reused=reused)
        except InputImagesGone:  # deleted since they were looked at, just now
            raise BadInput(self.gone()) from None
        if refusal is not None:
            raise self._refused(refusal)
        if self.on_admitted is not None:
            self.on_admitted(job)
        return Admitted(job, moderation.log_channel_id)

    async def _enhance(
        self, ask: Ask, limits: Limits, typed: str, moderation: Moderation, planned: Job
    ) -> tuple[str, Text]:
        """The prompt to use instead of `typed`, and the note the result shows; `typed` itself when the chat fails.

        The chat is booked with the images and cost of `planned` (the job as built from `typed`), so it is judged
        by the limits as the image job will be and is refused before it is paid for when the job would be; its row
        gives them back once the chat is over, and the job is then admitted (judged again) on its own."""
        if self.chat is None:
            return typed, _("✨ Prompt help is not available on this bot; the prompt was used as typed.")
        messages = enhance_messages(clean_prompt(typed))
        model = self.policy.chat_model
        row = await self._book_words(
            ask, limits, ENHANCE, model, messages, ENHANCE_MAX_TOKENS, {"prompt": typed}, holding=planned
        )
        try:
            answer = await self.chat.chat(model, messages, max_tokens=ENHANCE_MAX_TOKENS)
        except ApiError as exc:
            log.warning("enhance: the chat with %s failed: %s", model, exc)
            await self._settle_words(row, 0)  # no answer: not billed as far as anyone can tell
            return typed, _("✨ The prompt could not be enhanced ({reason}); it was used as typed.", reason=_why(exc))
        except BaseException:
            # Interrupted (or worse) while the chat ran: it may be paid, so it counts at its bound as before; the
            # images held for the job are given back.
            await self._settle_words(row, self.policy.chat_price.bound(messages, ENHANCE_MAX_TOKENS))
            raise
        await self._settle_words(row, self.policy.chat_price.of(answer.tokens))
        rewritten = visible(enhanced_prompt(answer.content)).strip()
        if not rewritten:  # the chat's fault, not the member's: not "the prompt is empty"
            return typed, _("✨ The prompt could not be enhanced (an empty answer); it was used as typed.")
        rewritten = clean_prompt(rewritten)
        try:
            check_prompt(rewritten, moderation, self.policy.blocked_words)
        except BlockedPrompt as exc:  # the chat wrote it, not the member: say so, and name nothing
            raise BlockedPrompt(
                _("The ✨ enhanced prompt contains a word that is not allowed here, so no image was made; try again."),
                exc.public,
            ) from None
        return rewritten, _("✨ Enhanced from: {typed}", typed=verbatim(typed[:300]))

    async def describe(self, ask: Ask, image: ImageFile) -> tuple[Job, list[str]]:
        """/describe: four prompts for `image` from the vision model, and the row that records the chat's cost
        (its id names the answer's buttons; its `extra` keeps the prompts). The image is kept like an input
        image, so 🔄 can describe it again. BadInput when it may not or cannot be done."""
        if self.chat is None:
            raise BadInput(_("/describe is not available on this bot."))
        kept = InputImage.of(image.data, image.content_type)
        await self.store.put_input_image(kept)
        return await self._describe(ask, kept)

    async def describe_again(self, ask: Ask, row: Job) -> tuple[Job, list[str]]:
        """🔄 on a /describe answer: the same image described anew (a new chat, booked like the first)."""
        sha256 = row.input.get("image_sha256")
        kept = await self.store.get_input_image(sha256) if isinstance(sha256, str) else None
        if self.chat is None or kept is None:
            raise BadInput(_("That image is no longer kept; use /describe with it again."))
        return await self._describe(ask, kept)

    async def _describe(self, ask: Ask, image: InputImage) -> tuple[Job, list[str]]:
        assert self.chat is not None
        context = await self.context(ask.guild_id if ask.server_settings else None, ask.user_id)
        data_url = "data:{};base64,{}".format(image.content_type, base64.b64encode(image.data).decode("ascii"))
        messages = describe_messages(data_url)
        model = self.policy.describe_model
        record: dict[str, object] = {"image_sha256": image.sha256}
        row = await self._book_words(
            ask, self.limits(context), "describe", model, messages, DESCRIBE_MAX_TOKENS, record
        )
        try:
            answer = await self.chat.chat(model, messages, max_tokens=DESCRIBE_MAX_TOKENS)
        except ApiError as exc:
            log.warning("describe: the chat with %s failed: %s", model, exc)
            await self._settle_words(row, 0)
            reason = _why(exc)
            raise BadInput(_("The image could not be described ({reason}); try again later.", reason=reason)) from None
        prompts = four_prompts(answer.content)
        extra = replace(row.extra, more={**row.extra.more, "prompts": prompts})
        await self._settle_words(row, self.policy.chat_price.of(answer.tokens), extra=extra)
        if not prompts:
            raise BadInput(_("The model gave no prompts for this image; try again."))
        return replace(row, extra=extra), prompts

    async def _book_words(
        self,
        ask: Ask,
        limits: Limits,
        kind: str,
        model: str,
        messages: list[dict[str, object]],
        max_tokens: int,
        record: dict[str, object],
        *,
        holding: Job | None = None,
    ) -> Job:
        """A row for one chat, booked at its upper bound within the limits (LimitReached if not), before it is
        sent. Stored as succeeded: there is nothing to run or resume, and its cost counts from now on.

        `holding`: the job the chat is for. The row is then judged with that job's images and cost on top of its
        own, as the job will be, and holds them until `_settle_words` gives them back."""
        now = time.time()
        bound = self.policy.chat_price.bound(messages, max_tokens)
        if holding is not None:  # what the chat alone counts as, should its process stop before it is settled
            record = {**record, "bound_microusd": bound}
        row = Job(
            id=uuid.uuid4().hex,
            kind=kind,
            user_id=ask.user_id,
            channel_id=ask.channel_id,
            guild_id=ask.guild_id,
            shard_id=self.shard_of(ask.guild_id),
            model=model,
            input=record,
            status=JobStatus.SUCCEEDED,
            created_at=now,
            completed_at=now,
            image_count=holding.image_count if holding else 0,
            cost_microusd=bound + (holding.cost_microusd if holding else 0),
            locale=ask.locale,
            extra=JobExtra(private=True),
        )
        refusal = await self.store.admit_job(row, limits, now=now)
        if refusal is not None:
            raise self._refused(refusal)
        return row

    async def _settle_words(self, row: Job, cost: int, *, extra: JobExtra | None = None) -> None:
        """The chat's cost; the images a row held for the job it was for are given back."""
        fields: dict[str, object] = {"settled_microusd": cost}
        if row.image_count:
            fields["image_count"] = 0
        if extra is not None:
            fields["extra"] = extra
        # A chat's row ended when it was made (it holds no lease): no owner to write on.
        await self.store.update_job(row.id, owner=None, **fields)

    def _refused(self, refusal: Refusal) -> LimitReached:
        """The refusal to raise; one for lack of credits offers a credit pack (Discord's premium button)."""
        if refusal.limit == "credits":
            refusal = replace(refusal, sku_id=self.policy.credits.pack_to_offer)
        return LimitReached(refusal)

    def _model_and_options(
        self, kind: Kind, asked: Mapping[str, object], context: RequestContext, *, images: int
    ) -> tuple[ModelSpec | None, dict[str, object]]:
        """The model's spec (None for an allowed unknown model) and the options to send, as the kind wants them,
        for a request with `images` input images."""
        given = {name: value for name, value in asked.items() if value is not None}
        if "model" not in given and (model := kind.model(context)) is not None:
            given["model"] = model
        chosen = chosen_model(given.get("model"), context, images=images)
        spec = context.catalogue.resolve(chosen, allow_unknown=context.allow_unknown_models)
        return spec, kind.options(spec, given)

    async def _check_stored_images(self, model_input: dict[str, object], kept: KeptImages, *, reuse: bool) -> list[str]:
        """The stored images a reroll sends (each must still be kept), after sizing the request before it is
        built (its own images' sizes are known now; a reroll's are the store's)."""
        inline = stored_copies(model_input, kept.sha256, mode=self.policy.input_image_mode, now=time.time())
        reused = inline if reuse else []
        stored = {image.sha256: len(image.data) for image in kept.images}
        stored.update(await self.store.input_image_sizes(reused))
        if any(sha256 not in stored for sha256 in inline):
            raise BadInput(self.gone())
        check_request_size(model_input, [stored[sha256] for sha256 in inline], self.policy.max_request_bytes)
        return reused

    async def _fetch(self, images: list[ImageRef]) -> KeptImages:
        files = await prepare(images, self.attachments)
        return keep([ref.url for ref in images], files, mode=self.policy.input_image_mode)

    def _job(
        self,
        ask: Ask,
        resolved: Resolved,
        model_input: dict[str, object],
        kept: KeptImages,
        notes: Sequence[Text],
        message_id: int | None,
        derived: Mapping[str, Any],
    ) -> Job:
        now = time.time()
        return Job(
            id=uuid.uuid4().hex,
            kind=ask.kind.name,
            user_id=ask.user_id,
            channel_id=ask.channel_id,
            guild_id=ask.guild_id,
            shard_id=self.shard_of(ask.guild_id),
            model=resolved.model,
            input=model_input,
            status=JobStatus.QUEUED,
            created_at=now,
            parent_id=ask.parent.id if ask.parent else None,
            message_id=message_id,
            image_count=resolved.image_count,  # reserved now, so racing commands count it
            extra=_extra(ask, kept, notes, derived),
            cost_microusd=self.policy.pricing.book(resolved.model, model_input, kept.sizes),  # what the budgets count
            lease_owner=self.lease.owner,
            lease_expires_at=now + self.lease.seconds,
            locale=ask.locale,
            interaction_token=ask.interaction_token,
            reply_by=ask.reply_by,
        )

    def gone(self) -> Text:
        days = self.policy.input_image_retention_seconds / 86_400
        return _(
            "The images of this job are no longer kept (the bot keeps them {days} days after their last use), so it "
            "can't be sent again; attach them anew.",
            days=f"{days:g}",
        )

    async def withdraw(self, job: Job, reason: str) -> None:
        """End a job that was admitted but never started (nothing was sent): its images are given back."""
        await self.store.transition(
            job.id,
            [JobStatus.QUEUED],
            JobStatus.CANCELED,
            owner=self.lease.owner,  # admitted here, with this process's lease
            error=reason,
            completed_at=time.time(),
            image_count=0,
        )

    async def attach_message(self, job: Job, message_id: int) -> Job:
        """Record the message that shows `job` (posted after admission, as for 🔄 reactions)."""
        await self.store.update_job(job.id, owner=self.lease.owner, message_id=message_id)
        return replace(job, message_id=message_id)


def _why(exc: ApiError) -> Text:
    """A short reason for a failed chat, for the member (the detail goes to the log)."""
    if exc.status in (401, 403):
        return _("the API refused the key")
    if exc.status == 429:
        return _("the chat model is busy")
    if exc.status is None or exc.status >= 500:
        return _("the chat model did not answer")
    return _("the chat model refused")


def _extra(ask: Ask, kept: KeptImages, notes: Sequence[Text], derived: Mapping[str, Any]) -> JobExtra:
    """What the result shows beside the input, where the job came from, and what billing and rerolls need."""
    parent = ask.parent
    where = parent.message_id if parent is not None else None
    return JobExtra(
        notes=tuple(note.to_json() for note in notes),
        parent_message=MessageRef(parent.guild_id, parent.channel_id, where) if parent and where else None,
        input_sha256=dict(kept.sha256),
        input_sizes=tuple(kept.sizes) if any(size is not None for size in kept.sizes) else (),
        private=ask.private,
        **ask.kind.extra(),
        **derived,
    )


async def _none() -> None:
    return None
