"""Which of a job's images are already posted, kept in the job's `extra` after each message that carried some.

A result split over several messages can be cut off half-way (a kill, a restart). The resumed delivery reads
this record and posts only what is missing, packed with the same upload limit as the first attempt, so the
messages it sends are the same ones (and Discord's nonce check can recognise one sent just before the cut).

The record is written on the delivering process's lease: a process that lost the job to another stops there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from services.errors import LeaseLost
from services.store.base import Store
from services.store.models import Job

log = logging.getLogger(__name__)


class PostedImages:
    def __init__(self, store: Store, job: Job, *, owner: str) -> None:
        self._store = store
        self._job_id = job.id
        self._owner = owner  # the lease the delivery runs on
        self._extra = job.extra

    @property
    def messages(self) -> dict[int, int]:
        """Image index (0-based) -> id of the message that shows it."""
        return dict(self._extra.posted)

    @property
    def upload_limit(self) -> int | None:
        """The upload limit the first attempt packed the messages with, once something was posted."""
        return self._extra.upload_limit

    async def add(self, indices: Sequence[int], message_id: int, *, upload_limit: int) -> None:
        posted = {**self._extra.posted, **dict.fromkeys(indices, message_id)}
        self._extra = replace(self._extra, posted=posted, upload_limit=upload_limit)
        try:
            written = await self._store.update_job(self._job_id, owner=self._owner, extra=self._extra)
        except Exception:
            # The images are out; losing the record only risks posting them again after a restart.
            log.warning("Job %s: could not record the posted images", self._job_id, exc_info=True)
            return
        if not written:  # another process holds the job now: it posts the rest from its own record
            raise LeaseLost(self._job_id)
