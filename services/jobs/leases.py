"""Leases: which live process works on each unfinished job, so that the others can take over when it dies.

A job gets a lease when it is admitted (or resumed, or adopted): its process's id and a time, a few tens of
seconds ahead, that the process keeps pushing forward while it works on the job. When a process dies for
good its leases run out; a live process finds those jobs (`Store.expired_leases`), takes each with a
compare-and-set (`Store.claim_lease`: only one process wins) and finishes it the way a restart would
(polling the same prediction; a job caught mid-create is failed, never sent again).

A process that finds it lost a lease (it was stalled longer than the lease, and another took the job over)
stops its own work on that job at once, without ending it.

SQLite is one process: there, leases are recorded but never adopted; a restart resumes every job.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field

DEFAULT_LEASE_SECONDS = 30.0


def new_owner_id() -> str:
    """A name for this process that no other (here or on another host, now or later) shares."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseTerms:
    """This process's id and how long its leases last."""

    seconds: float = DEFAULT_LEASE_SECONDS
    owner: str = field(default_factory=new_owner_id)

    @property
    def renew_every(self) -> float:
        """Renewed three times per lease: two missed renewals are survived."""
        return self.seconds / 3
