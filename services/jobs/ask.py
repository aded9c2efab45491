"""What someone asked for, in plain values: a kind of job and what it needs (services/jobs/admission.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.jobs.input_refs import KeptImages
from services.jobs.kinds.base import Kind
from services.rules.input_images import ImageRef
from services.store.models import Job


@dataclass(frozen=True)
class Ask:
    """What someone asked for, in plain values."""

    kind: Kind
    user_id: int
    channel_id: int
    guild_id: int | None
    prompt: str
    given: Mapping[str, object] = field(default_factory=dict)  # options as given (None: not given)
    images: Sequence[ImageRef] = ()  # attachments, fetched and checked on admission
    reused: KeptImages | None = None  # input images already kept (a reroll's): used as they are, nothing fetched
    parent: Job | None = None  # the job this one comes from (a reroll, an edit or a variation of its result)
    # False where the server's settings don't apply: a user install used in a server that never added the bot
    # (its own defaults and limits, and the built-in ones, apply there).
    server_settings: bool = True
    locale: str | None = None  # the language of the job's message
    # Set where the interaction is the only way to the job's message (see Job.interaction_token).
    interaction_token: str | None = field(default=None, repr=False)
    reply_by: float | None = None
    private: bool = False  # Discord made the reply private (ephemeral): recorded for the history
    age_restricted: bool = False  # asked in an age-restricted (NSFW) channel: permissive settings may be allowed
