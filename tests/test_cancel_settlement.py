"""What a cancelled job counts when its cancel races the work on it, each race driven step by step (no sleeps):
a Cancel from a process not running the job, while the process that runs it moves it on (its prediction's cancel
in the air while the prediction succeeds, or the job read before its create); a job cancelled while its create
is in the air, which the API then refuses; Cancel pressed twice (while the prediction runs, while its create is in
the air) or while the job ends on a failure; and a create refused with 429, which is not sent again after a Cancel
or once the process lost the job's lease. Both stores.

The runners use the real prediction service against the fake CometAPI; a request is held "in the air" there by a
gated fault (`fake.inject(..., gate=...)`) while the test takes the other side's step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from cli.harness import KEY
from fakes.cometapi import FakeCometAPI, Outcome
from services.cometapi.client import RetryPolicy
from services.cometapi.service import PredictionService
from services.config import load_settings
from services.jobs.leases import LeaseFence, LeaseTerms
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
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)  # a create refused with 429 is tried 3 times


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


@asynccontextmanager
async def runner_of(
    store: Store, fake: FakeCometAPI, owner: str, *, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[tuple[JobRunner, Shown]]:
    """The runner of process `owner`, with the real prediction service on the fake CometAPI; its lease fence reads
    `clock` (a test moves it on to pause the process past its lease)."""
    settings = load_settings({"COMETAPI_KEY": KEY, "COMETAPI_BASE_URL": fake.base_url}, require_discord=False)
    async with PredictionService.open(
        settings.api(), retry=FAST, typical_seconds=settings.catalogue.typical_seconds()
    ) as service:
        shown = Shown()
        lease = LeaseTerms(LEASE, owner)
        runner = JobRunner(
            service,
            store,
            shown,
            max_concurrent=1,
            lease=lease,
            fence=LeaseFence(store, lease, clock=clock),
            settlement=Settlement(Pricing(built_in())),
        )
        yield runner, shown


async def stored(store: Store, job: Job) -> Job:
    found = await store.get_job(job.id)
    assert found is not None
    return found


async def a_job(store: Store, *, owner: str, **fields: Any) -> Job:
    job = replace(new_job(1), cost_microusd=BOOKED, lease_owner=owner, lease_expires_at=time.time() + LEASE, **fields)
    await store.create_job(job)
    return await stored(store, job)


async def running_in_a(store: Store, job: Job, prediction_id: str) -> Job:
    """The job as process A leaves it once its create came back: running, with the prediction's id."""
    running = await store.transition(
        job.id, [JobStatus.QUEUED], JobStatus.RUNNING, owner="A", submitted_at=time.time(), prediction_id=prediction_id
    )
    assert running is not None and running.status == JobStatus.RUNNING
    return running


async def its_prediction(runner: JobRunner, fake: FakeCometAPI, job: Job, outcome: Outcome) -> str:
    """The prediction the job's own process created at the (fake) API, ending as `outcome`; its id."""
    fake.queue_outcome(outcome)
    made = await runner.service.create(job.model, dict(job.input))
    return made.id


def cancels(fake: FakeCometAPI) -> list[str]:
    """The predictions the fake CometAPI was asked to cancel, in order."""
    return [request.path.split("/")[-2] for request in fake.requests_for("cancel")]


# --- a Cancel from a process not running the job ------------------------------------------------------------


async def test_a_cancel_from_elsewhere_leaves_a_job_its_process_moved_to_delivery_and_its_settlement(store, fake):
    """The Cancel's process reads the job running and asks the API to cancel its prediction; meanwhile the job's own
    process finds the prediction succeeded and settles it (delivering, at its real cost). The cancel's end must not
    overwrite that with the booked cost, nor end a job whose images are being posted."""
    async with runner_of(store, fake, "B") as (elsewhere, shown):
        job = await a_job(store, owner="A")
        prediction_id = await its_prediction(elsewhere, fake, job, Outcome(queue_time=0.0, duration=0.0))
        running = await running_in_a(store, job, prediction_id)
        gate = asyncio.Event()
        fake.inject("cancel", status=None, gate=gate)  # the cancel stays in the air until the gate opens
        canceling = asyncio.create_task(elsewhere.cancel_elsewhere(running))
        await fake.wait_for(lambda: fake.requests_for("cancel"), what="the prediction's cancel in the air")
        # Meanwhile A finds the prediction succeeded and settles it: what its `_delivering` writes.
        assert (await elsewhere.service.get(prediction_id)).status == "succeeded"
        moved = await store.transition(
            job.id,
            [JobStatus.RUNNING],
            JobStatus.DELIVERING,
            owner="A",
            completed_at=time.time(),
            settled_microusd=SETTLED,
        )
        assert moved is not None
        gate.set()
        assert await canceling is False  # it came too late: the job reached delivery meanwhile
    after = await stored(store, job)
    assert cancels(fake) == [prediction_id]
    assert fake.predictions[prediction_id].status == "succeeded"  # the cancel found it done
    assert (after.status, after.settled_microusd, after.counted_microusd) == (JobStatus.DELIVERING, SETTLED, SETTLED)
    assert shown.failures == []  # nothing said it was cancelled
    # A finishes its delivery as if no Cancel came.
    done = await store.transition(job.id, [JobStatus.DELIVERING], JobStatus.SUCCEEDED, owner="A", image_count=1)
    assert done is not None and done.settled_microusd == SETTLED


async def test_a_cancel_from_elsewhere_settles_the_job_as_stored_not_as_it_was_read(store, fake):
    """The Cancel read the job queued; by the time it acts, the job's process has created its prediction. The cancel
    stops that prediction and counts the job as a cancelled prediction (its booking), not as a job never sent."""
    async with runner_of(store, fake, "B") as (elsewhere, shown):
        job = await a_job(store, owner="A")
        read = job  # what the Cancel button's handler read
        prediction_id = await its_prediction(elsewhere, fake, job, Outcome(status="never"))
        await running_in_a(store, job, prediction_id)
        assert await elsewhere.cancel_elsewhere(read) is True
    after = await stored(store, job)
    assert cancels(fake) == [prediction_id]
    assert fake.predictions[prediction_id].status == "canceled"
    assert (after.status, after.settled_microusd) == (JobStatus.CANCELED, BOOKED)
    assert shown.failures == [(job.id, True)]


async def test_a_cancel_from_elsewhere_of_a_running_job_stops_it_and_counts_its_booking(store, fake):
    async with runner_of(store, fake, "B") as (elsewhere, shown):
        job = await a_job(store, owner="A")
        prediction_id = await its_prediction(elsewhere, fake, job, Outcome(status="never"))
        running = await running_in_a(store, job, prediction_id)
        assert await elsewhere.cancel_elsewhere(running) is True
    after = await stored(store, job)
    assert cancels(fake) == [prediction_id]
    assert fake.predictions[prediction_id].status == "canceled"
    assert (after.status, after.settled_microusd, after.image_count) == (JobStatus.CANCELED, BOOKED, 0)
    assert shown.failures == [(job.id, True)]


# --- a Cancel while the create is in the air ------------------------------------------------------------------


async def cancelled_during_its_create(
    runner: JobRunner, store: Store, fake: FakeCometAPI
) -> tuple[Job, asyncio.Task[None], asyncio.Task[bool]]:
    """A job started whose create the fake holds in the air (the caller's gate), and a Cancel pressed and delivered
    to the job's task meanwhile: the job, its task and the press (to await once the gate opens)."""
    job = await a_job(store, owner="A")
    task = runner.start(job)
    await fake.wait_for(fake.creates, what="the create in the air")
    press = asyncio.create_task(runner.cancel(job.id))
    await until(task.cancelling, what="the cancel delivered to the job's task")
    return job, task, press


async def test_a_job_cancelled_while_its_create_is_refused_costs_nothing(store, fake):
    """A Cancel comes while the create is in the air (it is never abandoned half-way: it is let finish); the API
    then refuses it (422, not retried). No prediction was made: the job ends cancelled at no cost."""
    gate = asyncio.Event()
    fake.inject("create", status=422, gate=gate)  # the create stays in the air until the gate opens
    async with runner_of(store, fake, "A") as (runner, shown):
        job, task, stopping = await cancelled_during_its_create(runner, store, fake)
        gate.set()
        assert await stopping
        await asyncio.gather(task, return_exceptions=True)
    after = await stored(store, job)
    assert len(fake.creates()) == 1 and fake.pending_faults() == []  # refused: nothing was made
    assert fake.predictions == {} and cancels(fake) == []
    assert (after.status, after.prediction_id, after.settled_microusd) == (JobStatus.CANCELED, None, 0)
    assert after.counted_microusd == 0
    assert shown.failures == [(job.id, True)]


# --- Cancel pressed twice, or while the job ends anyway ---------------------------------------------------------


async def a_second_press(runner: JobRunner, job: Job) -> asyncio.Task[bool]:
    """Cancel pressed again; returns once that press has been handled up to its wait for the job's end."""
    second = asyncio.create_task(runner.cancel(job.id))
    await asyncio.sleep(0)  # (one turn of the loop: what a press does before it waits takes no I/O)
    assert not second.done()
    return second


async def test_cancel_pressed_twice_while_the_prediction_runs_stops_it_once_and_ends_the_job(store, fake):
    """The second press comes while the first one's end is under way (its prediction's cancel in the air): it waits
    for that end instead of cutting it off, which left the job "running" with no task and its prediction running."""
    fake.queue_outcome(Outcome(status="never"))
    gate = asyncio.Event()
    fake.inject("cancel", status=None, gate=gate)  # the prediction's cancel stays in the air until the gate opens
    async with runner_of(store, fake, "A") as (runner, shown):
        job = await a_job(store, owner="A")
        task = runner.start(job)
        running = await until(lambda: its_status(store, job, JobStatus.RUNNING), what="the prediction running")
        first = asyncio.create_task(runner.cancel(job.id))
        await fake.wait_for(lambda: fake.requests_for("cancel"), what="the prediction's cancel in the air")
        second = await a_second_press(runner, job)
        gate.set()
        assert await first and await second
        assert task.done() and not runner.running(job.id)
    after = await stored(store, job)
    assert cancels(fake) == [running.prediction_id]
    assert fake.predictions[running.prediction_id].status == "canceled"
    assert (after.status, after.prediction_id, after.settled_microusd) == (
        JobStatus.CANCELED,
        running.prediction_id,
        BOOKED,
    )
    assert shown.failures == [(job.id, True)]


async def test_cancel_pressed_twice_while_the_create_is_in_the_air_records_and_stops_its_prediction(store, fake):
    """Both presses come while the create is in the air: the wait for it is not cut off by the second one (which
    used to abandon the create: a paid prediction nobody recorded, left running). Its id is recorded, it is
    cancelled, and the job ends cancelled."""
    fake.queue_outcome(Outcome(status="never"))
    gate = asyncio.Event()
    fake.inject("create", status=None, gate=gate)  # the create stays in the air until the gate opens
    async with runner_of(store, fake, "A") as (runner, shown):
        job, task, first = await cancelled_during_its_create(runner, store, fake)
        second = await a_second_press(runner, job)
        gate.set()
        assert await first and await second
        assert task.done() and not runner.running(job.id)
    [prediction_id] = await fake.wait_for(lambda: list(fake.predictions), what="the prediction the create made")
    after = await stored(store, job)
    assert len(fake.creates()) == 1
    assert cancels(fake) == [prediction_id]
    assert fake.predictions[prediction_id].status == "canceled"
    assert (after.status, after.prediction_id, after.settled_microusd) == (JobStatus.CANCELED, prediction_id, BOOKED)
    assert shown.failures == [(job.id, True)]


async def test_cancel_pressed_while_the_job_ends_on_a_failure_lets_that_end_finish(store, fake):
    """The job fails (its prediction vanished from the API) and its end is under way, stopping the prediction,
    when Cancel is pressed: the end is not cut off (the job used to stay "running" with no task)."""
    fake.queue_outcome(Outcome(status="never"))
    fake.inject("get", status=404)  # the first poll: the API no longer knows the prediction
    gate = asyncio.Event()
    fake.inject("cancel", status=None, gate=gate)
    async with runner_of(store, fake, "A") as (runner, shown):
        job = await a_job(store, owner="A")
        task = runner.start(job)
        await fake.wait_for(lambda: fake.requests_for("cancel"), what="the failed job's prediction being stopped")
        pressed = asyncio.create_task(runner.cancel(job.id))
        await asyncio.sleep(0)  # (the press is handled up to its wait for the job's end)
        gate.set()
        assert await pressed
        assert task.done() and not runner.running(job.id)
    after = await stored(store, job)
    assert after.status == JobStatus.FAILED and after.prediction_id is not None
    assert cancels(fake) == [after.prediction_id]
    assert shown.failures == [(job.id, False)]


# --- a create refused with 429, waiting to be sent again ----------------------------------------------------------

RETRY_AFTER = 5  # seconds the API asks to wait before the create is sent again


async def refused_for_now(runner: JobRunner, fake: FakeCometAPI) -> None:
    """Until the API's 429 to the create came back: the create waits RETRY_AFTER to be sent again."""
    await fake.wait_for(fake.creates, what="the create")
    await until(lambda: runner.service.client.errors["rate_limited"], what="the 429 to the create")


async def test_a_cancel_while_a_refused_create_waits_to_be_sent_again_sends_nothing_more(store, fake):
    """Cancel pressed during the Retry-After of a 429 to the create: the create is not sent again (it used to be,
    once the wait was over: a paid prediction for a cancelled job), nor is the Cancel held up by the wait."""
    fake.inject("create", status=429, headers={"Retry-After": str(RETRY_AFTER)})
    async with runner_of(store, fake, "A") as (runner, shown):
        job = await a_job(store, owner="A")
        task = runner.start(job)
        await refused_for_now(runner, fake)
        pressed = time.monotonic()
        assert await runner.cancel(job.id)
        waited = time.monotonic() - pressed
        assert task.done()
    after = await stored(store, job)
    assert len(fake.creates()) == 1 and fake.predictions == {} and cancels(fake) == []
    assert waited < RETRY_AFTER - 1  # the Cancel took effect at once, not once the wait was over
    assert (after.status, after.prediction_id, after.settled_microusd, after.counted_microusd) == (
        JobStatus.CANCELED,
        None,
        0,
        0,
    )
    assert shown.failures == [(job.id, True)]


async def test_a_process_that_lost_the_lease_while_a_refused_create_waits_never_sends_it_again(store, fake):
    """During the Retry-After of a 429 to the create, the process is paused past its lease and another process
    adopts the job (and fails it as interrupted, nothing having been made): on waking, the create is not sent again
    (it used to be: a paid prediction for a job someone else ended)."""
    clock = [1000.0]
    async with runner_of(store, fake, "A", clock=lambda: clock[0]) as (runner, shown):
        fake.inject("create", status=429, headers={"Retry-After": str(RETRY_AFTER)})
        job = await a_job(store, owner="A")
        task = runner.start(job)
        await refused_for_now(runner, fake)
        clock[0] += LEASE + 1  # A is paused past its lease...
        now = time.time()  # ... B adopts the job and fails it, as a job caught mid-create
        assert await store.claim_lease(job.id, "B", now + LEASE, now=now, force=True) is not None
        failed = await store.transition(
            job.id, [JobStatus.SUBMITTING], JobStatus.FAILED, owner="B", error="interrupted while starting"
        )
        assert failed is not None
        paused = time.monotonic()
        await asyncio.wait({task})
        waited = time.monotonic() - paused
        assert task.exception() is None  # A stopped: the job is B's
    after = await stored(store, job)
    assert len(fake.creates()) == 1 and fake.predictions == {}
    assert waited < RETRY_AFTER - 1  # A stopped as soon as it could tell, not once the wait was over
    assert (after.status, after.prediction_id, after.lease_owner) == (JobStatus.FAILED, None, "B")
    assert shown.failures == []  # A showed nothing of a job no longer its own


async def its_status(store: Store, job: Job, status: str) -> Job | None:
    found = await stored(store, job)
    return found if found.status == status else None
