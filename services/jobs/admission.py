"""Admission: from what someone asked for to a stored job, the same way for every way of asking.

/imagine, the Reroll, Vary and Edit buttons, 🔄 reactions, the edit modal and the "Edit with FLUX" menu all
describe their request as an `Ask` and go through the same two steps:

1. `check_early(ask)`: what can be judged with no I/O (the prompt, the attachments' descriptions, the
   options given for a named model, one by one). A mistake is answered before acknowledging.
2. `admit(ask)`: the user's and server's settings are merged in, the attachments fetched and checked
   (and kept once in the store, the job referring to them: services/jobs/input_refs.py), the model's input
   assembled and held to the server's moderation rules (blocked words, safety settings by channel), its cost
   booked as an upper bound (from the input images' real sizes), and the job inserted by the store in one
   atomic step with the limits (cooldown, jobs in flight, daily quotas, budgets in dollars: the server's, the
   operator's per user and for the whole bot). The job exists before any API call; a refusal raises
   `LimitReached` naming the limit, and nothing is stored.

Blocked words (the operator's and the server's) are judged on the prompt exactly as it is sent: the `prompt`
of the assembled model input, after the prompt's parameters are taken out and the text cleaned, whoever wrote
it (the member, a parent job for rerolls and variations, or the bot: /blend's default prompt). The same text is
judged earlier too, so a refusal costs nothing: in `check_early` against the operator's list, and in `admit`
against both lists before any attachment is fetched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from services.cometapi.files import Downloader
from services.config import Settings
from services.errors import BadInput
from services.jobs.input_refs import EXTRA_KEY, SIZES_KEY, KeptImages, input_sizes, keep
from services.jobs.leases import LeaseTerms
from services.limits import Limits, Refusal
from services.rules.catalogue import MATCH_INPUT, check_images, check_option, clean_prompt, resolve_model
from services.rules.input_images import ImageRef, Size, dimensions, precheck, prepare
from services.rules.moderation import Moderation, apply_safety, check_prompt
from services.rules.options import RequestContext, blend_model, chosen_model, edit_model, resolve, variation_model
from services.rules.pricing import Pricing
from services.rules.prompt_params import Applied, apply
from services.rules.variation_models import Strength, carried_options, with_reference
from services.store.base import Store
from services.store.models import PRIVATE_REPLY, Job, JobKind, JobStatus
from services.text import Text, _


@dataclass(frozen=True)
class Ask:
    """What someone asked for, in plain values."""

    kind: JobKind
    user_id: int
    channel_id: int
    guild_id: int | None
    prompt: str
    given: Mapping[str, object] = field(default_factory=dict)  # options as given (None: not given)
    images: Sequence[ImageRef] = ()  # attachments, fetched and checked on admission
    image_urls: Sequence[str] | None = None  # inputs already sent once (a reroll): used as they are
    image_sha256: Mapping[str, str] = field(default_factory=dict)  # of image_urls: stored copies of links
    parent: Job | None = None
    edit: bool = False  # run the server's editing model on the image, keeping its shape
    blend: bool = False  # /blend: several images into one; a model that takes several, the prompt optional
    fit_images: bool = False  # send only as many of `images` as the model takes (an edit of a whole message)
    # False where the server's settings don't apply: a user install used in a server that never added the bot
    # (its own defaults and limits, and the built-in ones, apply there).
    server_settings: bool = True
    locale: str | None = None  # the language of the job's message
    # Set where the interaction is the only way to the job's message (see Job.interaction_token).
    interaction_token: str | None = field(default=None, repr=False)
    reply_by: float | None = None
    private: bool = False  # Discord made the reply private (ephemeral): recorded for the history (PRIVATE_REPLY)
    # A variation of the one image (images or image_urls) at this strength, on the server's variation model
    # unless `given` names one (a reroll of a variation keeps its model).
    vary: Strength | None = None
    of_image: int | None = None  # the image's position in the parent's message (1-based), for display
    age_restricted: bool = False  # asked in an age-restricted (NSFW) channel: permissive settings may be allowed


class LimitReached(BadInput):
    """The user or the server is at a limit; the message says which."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.text())
        self.refusal = refusal


class Admission:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        attachments: Downloader,
        *,
        shard_of: Callable[[int | None], int],
        lease: LeaseTerms | None = None,
        on_admitted: Callable[[Job], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.attachments = attachments
        self.shard_of = shard_of
        self.lease = lease or LeaseTerms()
        self.on_admitted = on_admitted  # e.g. metrics: counted once the job is stored
        self.pricing = Pricing(settings.model_prices)

    def check_early(self, ask: Ask) -> None:
        """Raise BadInput for what is wrong with `ask` on its face (no I/O, nothing stored)."""
        applied = _with_prompt_params(ask)
        check_prompt(clean_prompt(applied.prompt), Moderation(), self.settings.blocked_words)
        precheck(list(ask.images), self.settings.max_input_image_bytes)
        model = applied.given.get("model")
        if not model or ask.vary:
            return  # the model comes from stored settings, or the options are fitted to it: judged on admission
        spec = resolve_model(str(model), allow_unknown=self.settings.allow_unknown_models)
        if spec is None:
            return  # an allowed model we don't know: passed through unchecked
        for name, value in applied.given.items():
            if name != "model":
                check_option(spec, name, value)
        if not ask.fit_images:
            check_images(spec, len(ask.images))

    async def context(self, guild_id: int | None, user_id: int) -> RequestContext:
        guild = await self.store.get_guild_settings(guild_id) if guild_id else None
        return RequestContext(
            default_model=self.settings.default_model,
            allow_unknown_models=self.settings.allow_unknown_models,
            guild=guild,
            user_prefs=await self.store.get_user_prefs(user_id),
        )

    def limits(self, context: RequestContext) -> Limits:
        settings = self.settings
        base = Limits(
            cooldown_seconds=settings.user_cooldown,
            jobs_in_flight=settings.max_jobs_per_user,
            everywhere_images_day=settings.user_daily_images,
            everywhere_budget_day=settings.user_daily_budget_micros,
            bot_budget_day=settings.bot_daily_budget_micros,
        )
        return base.merged(context.guild.limits) if context.guild else base

    async def admit(self, ask: Ask, *, message_id: int | None = None) -> Job:
        """The stored job, status queued; BadInput (LimitReached for limits) if it may not run."""
        context = await self.context(ask.guild_id if ask.server_settings else None, ask.user_id)
        moderation = Moderation.of(context.guild)
        applied = _with_prompt_params(ask)
        # The text to be sent, judged before the attachments are fetched: a refusal costs nothing.
        check_prompt(clean_prompt(applied.prompt), moderation, self.settings.blocked_words)
        given = {name: value for name, value in applied.given.items() if value is not None}
        if ask.edit and "model" not in given:
            given["model"] = edit_model(context)
        if ask.blend and "model" not in given:
            given["model"] = blend_model(context)
        if ask.vary:
            model = str(given.get("model") or variation_model(context))
            spec = resolve_model(model, allow_unknown=context.allow_unknown_models)
            given = {**carried_options(spec, {k: v for k, v in given.items() if k != "model"}), "model": model}
        spec = resolve_model(chosen_model(given.get("model"), context), allow_unknown=context.allow_unknown_models)
        if ask.edit and spec is not None and MATCH_INPUT in spec.choices("aspect_ratio"):
            given.setdefault("aspect_ratio", MATCH_INPUT)  # an edit keeps the picture's shape
        images = list(ask.images)
        if ask.fit_images and spec is not None:
            images = images[: max(spec.max_images, 1)]
        if ask.image_urls is None:
            files = await prepare(images, self.attachments)
            kept = keep([ref.url for ref in images], files, mode=self.settings.input_image_mode)
            sizes = [dimensions(file) for file in files]
        else:  # a reroll: the same references, nothing new to store
            kept = KeptImages(list(ask.image_urls), dict(ask.image_sha256), [])
            sizes = _parent_sizes(ask.parent, len(kept.values))
        if ask.vary:
            if len(kept.values) != 1:
                raise BadInput(_("A variation starts from exactly one image."))
            resolved = resolve(applied.prompt, given, [], context)
            resolved = replace(resolved, input=with_reference(resolved.model, resolved.input, kept.values[0], ask.vary))
        else:
            resolved = resolve(applied.prompt, given, kept.values, context)
        extra = _extra(ask, [*applied.notes, *resolved.notes])
        if kept.sha256:
            extra[EXTRA_KEY] = kept.sha256
        if any(size is not None for size in sizes):
            extra[SIZES_KEY] = [list(size) if size else None for size in sizes]  # to settle the job, and its rerolls
        model_input = apply_safety(resolved.input, given, moderation, age_restricted=ask.age_restricted)
        # And the text that is sent, as it is in the input: what is judged is what the API gets.
        check_prompt(str(model_input.get("prompt", "")), moderation, self.settings.blocked_words)
        cost = self.pricing.book(resolved.model, model_input, sizes)
        now = time.time()
        job = Job(
            id=uuid.uuid4().hex,
            kind=ask.kind,
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
            extra=extra,
            cost_microusd=cost,  # counted by the budgets from now on, like the images
            lease_owner=self.lease.owner,
            lease_expires_at=now + self.lease.seconds,
            locale=ask.locale,
            interaction_token=ask.interaction_token,
            reply_by=ask.reply_by,
        )
        refusal = await self.store.admit_job(job, self.limits(context), now=job.created_at, images=kept.images)
        if refusal is not None:
            raise LimitReached(refusal)
        if self.on_admitted is not None:
            self.on_admitted(job)
        return job

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


BLEND_PROMPT = "Blend the reference images into one coherent picture."


def _with_prompt_params(ask: Ask) -> Applied:
    """The prompt's own parameters taken out and merged with the options given; /blend's prompt is optional."""
    applied = apply(ask.prompt, ask.given)
    if ask.blend and not applied.prompt.strip():
        return replace(applied, prompt=BLEND_PROMPT)
    return applied


def _parent_sizes(parent: Job | None, count: int) -> list[Size | None]:
    """The sizes of a reroll's input images, as its parent kept them (unknown: booked as the largest)."""
    kept = input_sizes(parent.extra) if parent is not None else []
    return kept if len(kept) == count else [None] * count


def _extra(ask: Ask, notes: Sequence[Text]) -> dict[str, object]:
    """What the result shows beside the input: notes, and where the job came from (to link back to it)."""
    extra: dict[str, object] = {"notes": [note.to_json() for note in notes]} if notes else {}
    parent = ask.parent
    if parent is not None and parent.message_id is not None:
        extra["parent_message"] = {
            "guild_id": parent.guild_id,
            "channel_id": parent.channel_id,
            "message_id": parent.message_id,
        }
    if ask.of_image is not None:
        extra["of_image"] = ask.of_image
    if ask.vary is not None:
        extra["strength"] = ask.vary
    if ask.private:
        extra[PRIVATE_REPLY] = True
    return extra
