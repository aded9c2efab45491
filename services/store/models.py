"""The records the store keeps: generation jobs and per-guild settings.

Times are epoch seconds (float), ids of Discord objects are ints, and the `dict` fields are stored as
JSON text, so their values must be JSON-compatible (a tuple comes back as a list, an int key as a str).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

JobStatus = Literal["queued", "submitting", "running", "delivering", "succeeded", "failed", "canceled"]
JobKind = Literal["imagine", "reroll", "edit"]

JOB_STATUSES: Final[tuple[str, ...]] = (
    "queued",
    "submitting",
    "running",
    "delivering",
    "succeeded",
    "failed",
    "canceled",
)
# A job in one of these states still needs work from the bot that owns its shard.
ACTIVE: Final[tuple[str, ...]] = ("queued", "submitting", "running", "delivering")
TERMINAL: Final[tuple[str, ...]] = ("succeeded", "failed", "canceled")
# Jobs in these states never produced images, so they do not count against quotas.
NOT_COUNTED: Final[tuple[str, ...]] = ("failed", "canceled")
JOB_KINDS: Final[tuple[str, ...]] = ("imagine", "reroll", "edit")

# The fields `Store.transition` and `Store.update_job` may change (never id, status, input, ...).
MUTABLE_JOB_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "message_id",
        "prediction_id",
        "error",
        "submitted_at",
        "completed_at",
        "delivered_at",
        "image_count",
        "extra",
    }
)


@dataclass(frozen=True)
class Job:
    """One request to make images, from the moment we accept it until its reply shows the result."""

    id: str  # uuid4 hex, made by us BEFORE any API call
    kind: str  # "imagine" | "reroll" | "edit"
    user_id: int
    channel_id: int
    guild_id: int | None  # None in DMs
    shard_id: int  # which bot shard owns it (a process resumes only its own shards' jobs)
    model: str  # full model id "owner/name"
    input: dict[str, object]  # the full `input` object sent to the API (incl. seed, prompt)
    status: str
    created_at: float
    parent_id: str | None = None  # the job this one rerolls or edits
    message_id: int | None = None  # the bot's reply showing progress/result
    prediction_id: str | None = None
    error: str | None = None
    submitted_at: float | None = None
    completed_at: float | None = None  # prediction ended
    delivered_at: float | None = None  # final message edited
    image_count: int = 0
    extra: dict[str, object] = field(default_factory=dict)  # small display data

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


@dataclass(frozen=True)
class GuildSettings:
    """A server's defaults and limits, set by its managers."""

    guild_id: int
    defaults: dict[str, object]  # option name -> value (model, aspect_ratio, output_format, ...)
    allowed_models: list[str] | None  # None = every catalogue model
    limits: dict[str, float | int]  # e.g. cooldown_seconds, jobs_in_flight, images_per_user_per_day
    updated_at: float
