"""U1..Un: one image of a result with several, posted alone as a result of its own (Midjourney's way).

Not a job through the API: nothing is created and nothing is spent. It still needs a record, so the buttons on
its message (Upscale, Vary, Remix, ...) find a job after a restart: a job of kind "pick", succeeded, costing
nothing and reserving no image, with the parent's model, input and kept images (a reroll or remix of it is
one of the parent's settings). Its `created_at` is the parent's: a pick is no new request, so it must not
start the user's cooldown (which counts from the newest job).
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from services.store.job_extra import MessageRef
from services.store.models import Job, JobStatus

PICK = "pick"


def pick_job(
    parent: Job,
    *,
    of_image: int,
    user_id: int,
    channel_id: int,
    guild_id: int | None,
    shard_id: int,
    message_id: int,
    locale: str | None,
    private: bool,
    now: float,
) -> Job:
    """The record of image `of_image` of `parent`'s result, posted alone in message `message_id` by `user_id`."""
    where = parent.message_id
    extra = replace(
        parent.extra,
        notes=(),
        parent_message=MessageRef(parent.guild_id, parent.channel_id, where) if where is not None else None,
        of_image=of_image,
        strength=None,
        private=private,
        posted={0: message_id},
        upload_limit=None,
        message_deleted=False,
    )
    return Job(
        id=uuid.uuid4().hex,
        kind=PICK,
        user_id=user_id,
        channel_id=channel_id,
        guild_id=guild_id,
        shard_id=shard_id,
        model=parent.model,
        input=dict(parent.input),
        status=JobStatus.SUCCEEDED,
        created_at=parent.created_at,
        parent_id=parent.id,
        message_id=message_id,
        completed_at=now,
        delivered_at=now,
        image_count=0,
        extra=extra,
        cost_microusd=0,
        settled_microusd=0,
        locale=locale,
    )
