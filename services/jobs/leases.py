"""Leases: which live process works on each unfinished job, so that the others can take over when it dies.

A job gets a lease when it is admitted (or resumed, or adopted): its process's id and a time, a few tens of
seconds ahead, that the process keeps pushing forward while it works on the job. When a process dies for
good its leases run out; a live process finds those jobs (`Store.expired_leases`), takes each with a
compare-and-set (`Store.claim_lease`: only one process wins) and finishes it the way a restart would
(polling the same prediction; a job caught mid-create is failed, never sent again).

A process that was only paused past its lease (SIGSTOP, a frozen container or VM, a database it could not
reach) must not act on a job another process may have adopted meanwhile. So it fences itself (`LeaseFence`):
before each outward action for a job (a Discord call, an upload, a create, cancel or poll of the prediction,
a download) it checks that the job's last successful renewal is younger than the lease, on the monotonic
clock, which a pause does not fool; if not, it renews first and stops for good when that fails. Every job
write in the store is also conditional on the lease (`owner` in `Store.transition` and `Store.update_job`).

SQLite is one process: there, leases are recorded but never adopted; a restart resumes every job (and a
pause is survived: the lease is renewed on waking, since no one else can take it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from services.errors import LeaseLost
from services.store.base import Store
from services.store.models import Job

log = logging.getLogger(__name__)


def new_owner_id() -> str:
    """A name for this process that no other (here or on another host, now or later) shares."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseTerms:
    """This process's id and how long its leases last."""

    seconds: float  # JOB_LEASE_SECONDS
    owner: str = field(default_factory=new_owner_id)

    @property
    def renew_every(self) -> float:
        """Renewed three times per lease: two missed renewals are survived."""
        return self.seconds / 3


class LeaseFence:
    """Whether this process may act on a job now: only while it can prove it holds the job's lease.

    The proof is the last successful claim or renewal of the lease: it set the lease to run `terms.seconds` from
    the moment it was sent, so until then no other process can have adopted the job. Measured on the monotonic
    clock from when the renewal was sent (not answered), it errs on the safe side.
    """

    def __init__(self, store: Store, terms: LeaseTerms, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.terms = terms
        self._clock = clock
        self._proved: dict[str, float] = {}  # job id -> when its last successful renewal was sent (monotonic)
        self._renewing = asyncio.Lock()

    def granted(self, job_ids: Iterable[str], sent_at: float) -> None:
        """A claim or renewal of these jobs' leases, sent at monotonic time `sent_at`, succeeded."""
        for job_id in job_ids:
            self._proved[job_id] = max(sent_at, self._proved.get(job_id, sent_at))

    def admitted(self, job: Job) -> None:
        """A job stored with this process's lease (at admission, or as claimed): its proof is when it was set."""
        if job.lease_owner != self.terms.owner or job.lease_expires_at is None:
            return  # not ours yet: the first check claims it
        set_ago = time.time() - (job.lease_expires_at - self.terms.seconds)
        self.granted([job.id], self._clock() - max(0.0, set_ago))

    def forget(self, job_id: str) -> None:
        self._proved.pop(job_id, None)

    def holds(self, job_id: str) -> bool:
        """Whether the job's last successful renewal is younger than the lease (no I/O)."""
        sent = self._proved.get(job_id)
        return sent is not None and self._clock() - sent < self.terms.seconds

    async def renew(self, job_ids: Sequence[str]) -> set[str]:
        """Renew (or claim, where no live process holds them) these jobs' leases; returns the ids now held.

        A job not held any more loses its proof at once: it is someone else's, or it ended.
        """
        if not job_ids:
            return set()
        sent = self._clock()
        now = time.time()
        held = await self.store.renew_leases(self.terms.owner, job_ids, now + self.terms.seconds, now=now)
        self.granted(held, sent)
        for job_id in set(job_ids) - held:
            self.forget(job_id)
        return held

    async def check(self, job_id: str) -> None:
        """Return when this process may act on the job; raise LeaseLost if it may not any more.

        With a fresh proof this returns at once. Otherwise (the process was paused, or could not renew) the lease
        is renewed first; while the store cannot be reached, nothing can be proved and this waits.
        """
        while not self.holds(job_id):
            async with self._renewing:  # one renewal at a time: a check waiting behind another may find it done
                if self.holds(job_id):
                    return
                try:
                    held = await self.renew([job_id])
                except Exception as exc:
                    log.warning(
                        "Job %s: cannot prove this process still holds its lease (%s: %s); waiting",
                        job_id,
                        type(exc).__name__,
                        exc,
                    )
                    held = None
            if held is None:
                await asyncio.sleep(self.terms.renew_every)
            elif job_id not in held:
                raise LeaseLost(job_id)
