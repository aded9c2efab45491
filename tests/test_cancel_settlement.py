"""What a cancelled job counts when its cancel races the work on it, each race driven step by step (no sleeps):
a Cancel from a process not running the job, while the process that runs it moves it on (its prediction's cancel
in the air while the prediction succeeds, or the job read before its create); and a job cancelled while its create
is in the air, which the API then refuses. Both stores."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from services.errors import RateLimited
from services.jobs.leases import LeaseTerms
from services.jobs.runner import Delivery, JobRunner
from services.jobs.settlement import Settlement
from services.rules.catalogue import built_in
from services.rules.pricing import Pricing
from services.store.base import Store
from services.store.models import Job, JobStatus
from tests.helpers import new_job, until

BOOKED = 40_000  # what admission booked
SETTLED = 6_000  # what the prediction settled at once it succeeded (fewer or smaller images than booked)
LEASE = 30.0


class Shown:
    """Stands in for Discord: the ends each runner showed."""

    def __init__(self) -> None:
        self.failures: list[tuple[str, bool]] = []

    async def progress(self, job: Job, progress: object) -> None:
        pass

    async def deliver(self, job: Job, delivery: Delivery) -> int:
        raise AssertionError("nothing is delivered here")

    async def failed(self, job: Job, message: object, *, canceled: bool) -> None:
        self.failures.append((job.id, canceled))


class Service:
    """Stands in for the prediction service: each call is a step the test drives."""

    def __init__(self) -> None:
        self.canceled: list[str] = []
        self.while_canceling: Callable[[], Awaitable[None]] | None = None  # what happens while a cancel is in the air
        self.creating = asyncio.Event()  # a create was sent
        self.answer = asyncio.Event()  # ... and may be answered

    async def cancel(self, prediction_id: str) -> None:
        self.canceled.append(prediction_id)
        if self.while_canceling is not None:
            await self.while_canceling()

    async def create(self, model: str, model_input: dict[str, object]) -> Any:
        self.creating.set()
        await self.answer.wait()
        raise RateLimited("The API is rate limiting requests: slow down", retry_after=None)


def runner_of(store: Store, owner: str) -> tuple[JobRunner, Service, Shown]:
    service, shown = Service(), Shown()
    service_: Any = service
    runner = JobRunner(
        service_,
        store,
        shown,
        max_concurrent=1,
        lease=LeaseTerms(LEASE, owner),
        settlement=Settlement(Pricing(built_in())),
    )
    return runner, service, shown


async def stored(store: Store, job: Job) -> Job:
    found = await store.get_job(job.id)
    assert found is not None
    return found


async def a_job(store: Store, *, owner: str, **fields: Any) -> Job:
    job = replace(new_job(1), cost_microusd=BOOKED, lease_owner=owner, lease_expires_at=time.time() + LEASE, **fields)
    await store.create_job(job)
    return await stored(store, job)


# --- a Cancel from a process not running the job ------------------------------------------------------------


async def test_a_cancel_from_elsewhere_leaves_a_job_its_process_moved_to_delivery_and_its_settlement(store):
    """The Cancel's process reads the job running and asks the API to cancel its prediction; meanwhile the job's own
    process finds the prediction succeeded and settles it (delivering, at its real cost). The cancel's end must not
    overwrite that with the booked cost, nor end a job whose images are being posted."""
    job = await a_job(store, owner="A", prediction_id="p1")
    job = await store.transition(job.id, [JobStatus.QUEUED], JobStatus.RUNNING, owner="A", submitted_at=time.time())
    assert job is not None and job.status == JobStatus.RUNNING
    elsewhere, service, shown = runner_of(store, "B")

    async def succeeded_meanwhile() -> None:  # what A's `_delivering` writes
        moved = await store.transition(
            job.id,
            [JobStatus.RUNNING],
            JobStatus.DELIVERING,
            owner="A",
            completed_at=time.time(),
            settled_microusd=SETTLED,
        )
        assert moved is not None

    service.while_canceling = succeeded_meanwhile
    await elsewhere.cancel_elsewhere(job)
    after = await stored(store, job)
    assert service.canceled == ["p1"]
    assert (after.status, after.settled_microusd, after.counted_microusd) == (JobStatus.DELIVERING, SETTLED, SETTLED)
    assert shown.failures == []  # nothing said it was cancelled
    # A finishes its delivery as if no Cancel came.
    done = await store.transition(job.id, [JobStatus.DELIVERING], JobStatus.SUCCEEDED, owner="A", image_count=1)
    assert done is not None and done.settled_microusd == SETTLED


async def test_a_cancel_from_elsewhere_settles_the_job_as_stored_not_as_it_was_read(store):
    """The Cancel read the job queued; by the time it acts, the job's process has created its prediction. The cancel
    stops that prediction and counts the job as a cancelled prediction (its booking), not as a job never sent."""
    job = await a_job(store, owner="A")
    read = job  # what the Cancel button's handler read
    running = await store.transition(
        job.id, [JobStatus.QUEUED], JobStatus.RUNNING, owner="A", submitted_at=time.time(), prediction_id="p2"
    )
    assert running is not None
    elsewhere, service, shown = runner_of(store, "B")
    await elsewhere.cancel_elsewhere(read)
    after = await stored(store, job)
    assert service.canceled == ["p2"]
    assert (after.status, after.settled_microusd) == (JobStatus.CANCELED, BOOKED)
    assert shown.failures == [(job.id, True)]


async def test_a_cancel_from_elsewhere_of_a_running_job_stops_it_and_counts_its_booking(store):
    job = await a_job(store, owner="A", prediction_id="p3")
    job = await store.transition(job.id, [JobStatus.QUEUED], JobStatus.RUNNING, owner="A")
    assert job is not None
    elsewhere, service, shown = runner_of(store, "B")
    await elsewhere.cancel_elsewhere(job)
    after = await stored(store, job)
    assert service.canceled == ["p3"]
    assert (after.status, after.settled_microusd, after.image_count) == (JobStatus.CANCELED, BOOKED, 0)
    assert shown.failures == [(job.id, True)]


# --- a Cancel while the create is in the air ------------------------------------------------------------------


async def test_a_job_cancelled_while_its_create_is_refused_costs_nothing(store):
    """A Cancel comes while the create is in the air (it is never abandoned half-way: it is let finish); the API
    then refuses it (a 429 that outlasted the retries). No prediction was made: the job ends cancelled at no cost."""
    runner, service, shown = runner_of(store, "A")
    job = await a_job(store, owner="A")
    task = runner.start(job)
    await service.creating.wait()
    stopping = asyncio.create_task(runner.cancel(job.id))
    await until(task.cancelling, what="the cancel delivered to the job's task")
    service.answer.set()
    assert await stopping
    await asyncio.gather(task, return_exceptions=True)
    after = await stored(store, job)
    assert (after.status, after.prediction_id, after.settled_microusd) == (JobStatus.CANCELED, None, 0)
    assert after.counted_microusd == 0
    assert shown.failures == [(job.id, True)]
