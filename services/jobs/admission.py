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
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from services.cometapi.files import Downloader
from services.errors import BadInput
from services.jobs.ask import Ask
from services.jobs.input_refs import KeptImages, check_request_size, keep, stored_copies
from services.jobs.kinds.base import Kind
from services.jobs.leases import LeaseTerms
from services.jobs.policy import Policy
from services.limits import Limits, Refusal
from services.rules.catalogue import ModelSpec, check_images, check_option, clean_prompt, resolve_model
from services.rules.input_images import ImageRef, precheck, prepare
from services.rules.moderation import Moderation, apply_safety, check_prompt
from services.rules.options import RequestContext, Resolved, chosen_model
from services.rules.prompt_params import apply
from services.store.base import InputImagesGone, Store
from services.store.job_extra import JobExtra, MessageRef
from services.store.models import Job, JobStatus
from services.text import Text, _


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
    ) -> None:
        self.policy = policy
        self.store = store
        self.attachments = attachments
        self.shard_of = shard_of
        self.lease = lease
        self.on_admitted = on_admitted  # e.g. metrics: counted once the job is stored

    def check_early(self, ask: Ask) -> None:
        """Raise BadInput for what is wrong with `ask` on its face (no I/O, nothing stored)."""
        applied = apply(ask.prompt, ask.given)
        check_prompt(clean_prompt(ask.kind.prompt(applied.prompt)), Moderation(), self.policy.blocked_words)
        precheck(list(ask.images), self.policy.max_input_image_bytes)
        model = applied.given.get("model")
        if not model or not ask.kind.checks_options:
            return  # the model comes from stored settings, or the options are fitted to it: judged on admission
        spec = resolve_model(str(model), allow_unknown=self.policy.allow_unknown_models)
        if spec is None:
            return  # an allowed model we don't know: passed through unchecked
        for name, value in applied.given.items():
            if name != "model":
                check_option(spec, name, value)
        if ask.kind.checks_image_count:
            check_images(spec, len(ask.images))

    async def context(self, guild_id: int | None, user_id: int) -> RequestContext:
        guild = await self.store.get_guild_settings(guild_id) if guild_id else None
        return RequestContext(
            default_model=self.policy.default_model,
            allow_unknown_models=self.policy.allow_unknown_models,
            guild=guild,
            user_prefs=await self.store.get_user_prefs(user_id),
        )

    def limits(self, context: RequestContext) -> Limits:
        """The bot's limits, narrowed by the server's settings where they apply."""
        base = self.policy.limits
        return base.merged(context.guild.limits) if context.guild else base

    async def admit(self, ask: Ask, *, message_id: int | None = None) -> Admitted:
        """The stored job, status queued; BadInput (LimitReached for limits) if it may not run."""
        context = await self.context(ask.guild_id if ask.server_settings else None, ask.user_id)
        moderation = Moderation.of(context.guild)
        applied = apply(ask.prompt, ask.given)
        prompt = ask.kind.prompt(applied.prompt)
        # The text to be sent, judged before the attachments are fetched: a refusal costs nothing.
        check_prompt(clean_prompt(prompt), moderation, self.policy.blocked_words)
        spec, given = self._model_and_options(ask.kind, applied.given, context)
        kept = ask.reused or await self._fetch(ask.kind.images(ask.images, spec))
        kept, derived = await asyncio.to_thread(ask.kind.derive, kept)  # Pillow work, for an outpaint's canvas
        resolved = ask.kind.sized(kept.sizes).build(prompt, given, kept.values, context)
        model_input = apply_safety(resolved.input, given, moderation, age_restricted=ask.age_restricted)
        # And the text that is sent, as it is in the input: what is judged is what the API gets.
        check_prompt(str(model_input.get("prompt", "")), moderation, self.policy.blocked_words)
        reused = await self._check_stored_images(model_input, kept, reuse=ask.reused is not None)
        notes = [*applied.notes, *resolved.notes]
        job = self._job(ask, resolved, model_input, kept, notes, message_id, derived)
        try:
            refusal = await self.store.admit_job(
                job, self.limits(context), now=job.created_at, images=kept.images, reused=reused
            )
        except InputImagesGone:  # deleted since they were looked at, just now
            raise BadInput(self.gone()) from None
        if refusal is not None:
            raise LimitReached(refusal)
        if self.on_admitted is not None:
            self.on_admitted(job)
        return Admitted(job, moderation.log_channel_id)

    def _model_and_options(
        self, kind: Kind, asked: Mapping[str, object], context: RequestContext
    ) -> tuple[ModelSpec | None, dict[str, object]]:
        """The model's spec (None for an allowed unknown model) and the options to send, as the kind wants them."""
        given = {name: value for name, value in asked.items() if value is not None}
        if "model" not in given and (model := kind.model(context)) is not None:
            given["model"] = model
        spec = resolve_model(chosen_model(given.get("model"), context), allow_unknown=context.allow_unknown_models)
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
