"""The records the store keeps: generation jobs and per-guild settings.

`Job` is the one declaration of the job schema: the column list, the insert parameters, the row mapping
and the checks of the fields a transition may set are all derived from its fields. The SQL table lives in
`migrations/` (a history of changes, not a second declaration); a test checks the two agree.

Times are epoch seconds (float), ids of Discord objects are ints, and the `dict` fields are stored as
JSON text, so their values must be JSON-compatible (a tuple comes back as a list, an int key as a str);
`extra` is a `JobExtra`, stored as JSON too.

A job's `kind` is the name of the kind of job that made it (services/jobs/kinds/): checked where jobs are
made, not by the table, so a new kind needs no migration.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from services.store.job_extra import JobExtra


class JobStatus(StrEnum):
    QUEUED = "queued"
    SUBMITTING = "submitting"
    RUNNING = "running"
    DELIVERING = "delivering"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


JOB_STATUSES: Final[tuple[str, ...]] = tuple(JobStatus)
# A job in one of these states still needs work from the bot that owns its shard.
ACTIVE: Final[tuple[JobStatus, ...]] = (
    JobStatus.QUEUED,
    JobStatus.SUBMITTING,
    JobStatus.RUNNING,
    JobStatus.DELIVERING,
)
TERMINAL: Final[tuple[JobStatus, ...]] = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)
# Jobs that ended like this gave their reserved images back: they do not count against quotas.
NOT_COUNTED: Final[tuple[JobStatus, ...]] = (JobStatus.FAILED, JobStatus.CANCELED)

# Rows that record what a chat with the API cost (services/jobs/words.py): they count in the budgets like any
# job, but make no image, start no cooldown and are not shown in a history.
WORDS_KINDS: Final[tuple[str, ...]] = ("enhance", "describe")

# In a job's `extra`: Discord made the job's reply private (ephemeral); only its owner sees it in a history.
PRIVATE_REPLY: Final = "private"

# Field metadata: `transition` and `update_job` may set it (never id, status, input, ...).
_MUTABLE = {"mutable": True}


@dataclass(frozen=True)
class Job:
    """One request to make images, from the moment we accept it until its reply shows the result."""

    id: str  # uuid4 hex, made by us BEFORE any API call
    kind: str  # imagine, reroll, edit, variation, blend, ... (services/jobs/kinds/)
    user_id: int
    channel_id: int
    guild_id: int | None  # None in DMs
    shard_id: int  # which bot shard owns it (a process resumes only its own shards' jobs)
    model: str  # full model id "owner/name"
    input: dict[str, object]  # the full `input` object sent to the API (incl. seed, prompt)
    status: JobStatus
    created_at: float
    parent_id: str | None = None  # the job this one rerolls, edits or varies
    message_id: int | None = field(default=None, metadata=_MUTABLE)  # the bot's reply showing progress/result
    prediction_id: str | None = field(default=None, metadata=_MUTABLE)
    error: str | None = field(default=None, metadata=_MUTABLE)
    submitted_at: float | None = field(default=None, metadata=_MUTABLE)
    completed_at: float | None = field(default=None, metadata=_MUTABLE)  # prediction ended
    delivered_at: float | None = field(default=None, metadata=_MUTABLE)  # final message edited
    # Images reserved at admission, then the number delivered; what the daily quotas count.
    image_count: int = field(default=0, metadata=_MUTABLE)
    # Small data: where it came from, display notes, what delivery and billing need (services/store/job_extra.py).
    extra: JobExtra = field(default_factory=JobExtra, metadata=_MUTABLE)
    # Millionths of a US dollar: the upper bound booked at admission (what the budgets count while the job runs),
    # and what it settled at once its prediction ended (services/jobs/settlement.py); None: not settled.
    cost_microusd: int = 0
    # Which process is working on the job, and until when: it renews the lease while it lives, and a live
    # process adopts a job whose lease ran out (its owner died). None: no lease (resumed by its shard's process).
    lease_owner: str | None = field(default=None, metadata=_MUTABLE)
    lease_expires_at: float | None = field(default=None, metadata=_MUTABLE)
    locale: str | None = None  # the language of the job's message (the server's, or the user's where private)
    # Where the bot cannot post in the channel (a user install in a server without the bot, another person's
    # DM or a group DM, a reply Discord made private), the interaction is the only way to the job's message:
    # its token (a secret: never logged, hence repr=False; deleted from the store when the job ends, useless
    # once expired) and when the job must have shown its end, before the token expires.
    interaction_token: str | None = field(default=None, repr=False)
    reply_by: float | None = None
    settled_microusd: int | None = field(default=None, metadata=_MUTABLE)
    # What pays for it when credits are on: "balance" (its member's) or "subscription" (its server's); None: nothing
    # (credits off, or a free job). Chosen by the store inside the admitting transaction (services/store/credits.py).
    paid_with: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def counted_microusd(self) -> int:
        """What the job counts against budgets and credits now (the store's COUNTED_COST, for one job in hand)."""
        if self.settled_microusd is not None:
            return self.settled_microusd
        if self.prediction_id is None and self.status in NOT_COUNTED:
            return 0
        return self.cost_microusd


JOB_FIELDS: Final = dataclasses.fields(Job)
JOB_COLUMNS: Final[tuple[str, ...]] = tuple(f.name for f in JOB_FIELDS)
MUTABLE_JOB_FIELDS: Final[frozenset[str]] = frozenset(f.name for f in JOB_FIELDS if f.metadata.get("mutable"))


@dataclass(frozen=True)
class GuildSettings:
    """A server's defaults and limits, set by its managers."""

    guild_id: int
    defaults: dict[str, object]  # option name -> value (model, aspect_ratio, output_format, ...)
    allowed_models: list[str] | None  # None = every catalogue model
    limits: dict[str, float | int]  # e.g. cooldown_seconds, jobs_in_flight, images_per_user_per_day
    updated_at: float
    # blocked_words (list of str), max_safety_tolerance (int), log_channel_id (int)
    moderation: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class InputImage:
    """An input image's bytes, stored once under their sha256 however many jobs use them."""

    sha256: str  # lower-case hex of sha256(data)
    content_type: str  # as recognised from the bytes (image/png, ...)
    data: bytes = field(repr=False)

    @classmethod
    def of(cls, data: bytes, content_type: str) -> InputImage:
        return cls(hashlib.sha256(data).hexdigest(), content_type, data)


@dataclass(frozen=True)
class PageMark:
    """A job a history page was turned from, by its place in the order (newest first): the next page holds the
    jobs just older or just newer than it, however many were made since, and whether or not it still exists."""

    created_at: float
    job_id: str
