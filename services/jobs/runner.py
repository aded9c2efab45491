"""Run image jobs from stored record to delivered message, and resume them after a restart.

The job record exists (status "queued") before any API call. Every step is a compare-and-set in the
store, so a job is never submitted twice, even by two processes:

    queued -> submitting -> running -> delivering -> succeeded
                 |             |           |
                 +-------------+-----------+--> failed / canceled

A job found in "submitting" after a crash may or may not have reached the API; it is failed with a
message rather than sent again. "running" jobs are polled by their prediction id; "delivering" ones
are fetched again and delivered.

Each job this process works on holds a lease in the store (services/jobs/leases.py), renewed by
`keep_leases`; the same loop adopts jobs whose process died (their lease ran out) and stops local work on a
job whose lease another process took over. Between renewals the process fences itself: each create, cancel,
poll, download and display of a job first checks `self.fence` (it holds the job's lease, renewed less than a
lease ago), and each store write of a job names this process as the lease's owner, so a process paused past
its lease never acts on a job another process adopted meanwhile.

A job's end, a create in the air and the record of a delivered job's success run to their end whatever cancels the
job's task meanwhile (a Cancel pressed twice; a shutdown, within its grace). Once its images are shown a job is
never shown as failed: a result Discord refuses for a while (5xx, 429) is posted again later, the job waiting in
"delivering", and a success the store does not take is left "delivering", to be resumed.

How a job is shown (Discord messages) is the `JobDisplay` given by the caller; this module knows nothing
of Discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, TypeVar

import aiohttp

from services.cometapi.files import ImageFile
from services.cometapi.polling import Update
from services.cometapi.predictions import PROCESSING, STARTING, Prediction
from services.cometapi.service import PredictionService
from services.delivery.posted_images import PostedImages
from services.errors import ApiError, Canceled, LeaseLost, ServiceError, TooLate
from services.failures import describe
from services.jobs.checks import WITHHOLD, OutputCheck, check_outputs, withheld_text
from services.jobs.fairqueue import FairLimiter
from services.jobs.input_refs import api_input
from services.jobs.leases import LeaseFence, LeaseTerms
from services.jobs.restore import restored
from services.jobs.settlement import Settlement, refused
from services.metrics import Metrics
from services.store.base import Store
from services.store.models import ACTIVE, Job, JobStatus
from services.text import Text, _

log = logging.getLogger(__name__)

T = TypeVar("T")
Stage = Literal["queued", "starting", "generating", "downloading", "uploading"]
QUEUE_REPORT_SECONDS = 1.5  # how often a queued job looks at its place in line (an edit only when it is due)
QUEUE_MOVE_SECONDS = 5.0  # a new place in line is shown at most this often
# ... and only once it moved by this share of the place shown (at least one place): "#412" then "#398" is an edit
# for little news, while "#3" then "#2" is news.
QUEUE_MOVE_SHARE = 0.2
QUEUE_REFRESH_SECONDS = 15.0  # an unchanged place in line is shown again this often (the elapsed time moved on)
REFRESH_SECONDS = 10.0
SLOW_TRANSFER_SECONDS = 1.0  # a download taking longer than this is shown as a stage of its own
INTERRUPTED = _(
    "The bot restarted while starting this job. To avoid charging twice it was not sent again; please try again."
)
# A job that must reach its user through an interaction (Job.reply_by) stops waiting this long before the
# token expires, leaving time to post the images, or to say it was stopped.
REPLY_MARGIN = 60.0
# A job in one of these may be cancelled by a process not running it; once delivering, its prediction succeeded.
BEFORE_DELIVERY = (JobStatus.QUEUED, JobStatus.SUBMITTING, JobStatus.RUNNING)
# A result Discord refuses for now (5xx, 429) after the display's own retries is posted again later: first after
# this many seconds, then twice as long each time up to DELIVERY_RETRY_MAX, while the outputs last (OUTPUTS_SECONDS
# after the prediction ended: a restart meanwhile fetches them again) and, for a job reached only through its
# interaction, while its token does.
DELIVERY_RETRY_SECONDS = 15.0
DELIVERY_RETRY_MAX = 300.0
OUTPUTS_SECONDS = 3600.0
# What was paid for (a created prediction's id, a delivered job's success) is written this many times (waiting
# RECORD_RETRY_SECONDS, then twice as long...) while the store fails. Then a delivered job is left "delivering", to be
# resumed (its images are shown: a failed write never turns it into a failure); a prediction is cancelled.
RECORD_ATTEMPTS = 4
RECORD_RETRY_SECONDS = 0.5


@dataclass(frozen=True)
class JobProgress:
    stage: Stage
    elapsed: float
    queue_position: int | None = None
    percent: int | None = None
    # While generating without a percentage from the model: how long it usually takes, as (low, high) seconds,
    # and whether its prediction has run longer than that (not counting the wait in our own queue).
    usual: tuple[float, float] | None = None
    overdue: bool = False
    # While generating: seconds until the model's usual time (the high end) is up, when its result is due.
    due_in: float | None = None


@dataclass(frozen=True)
class Delivery:
    images: list[ImageFile]
    prediction: Prediction
    seconds: float
    posted: PostedImages  # what an earlier, interrupted attempt already posted; the display adds to it
    checked: OutputCheck | None = None  # what the moderation endpoint flagged, where the server checks outputs


class Superseded(Exception):
    """Another process moved the job on while this one worked on it (it took over an expired lease)."""


class MessageGone(Exception):
    """Raised by a display when the job's message no longer exists: the job is cancelled."""


class NotDelivered(Exception):
    """Raised by a display that could not post any image and has already told the user why."""


class NotRecorded(Exception):
    """The images are posted but the store did not take the job's success: it is left "delivering", to be resumed."""


class JobDisplay(Protocol):
    async def progress(self, job: Job, progress: JobProgress) -> None: ...

    async def deliver(self, job: Job, delivery: Delivery) -> int:
        """Post the images; returns how many the user can see (raises NotDelivered rather than return 0)."""
        ...

    async def failed(self, job: Job, message: Text, *, canceled: bool) -> None: ...


class JobRunner:
    def __init__(
        self,
        service: PredictionService,
        store: Store,
        display: JobDisplay,
        *,
        max_concurrent: int,
        input_image_mode: str = "url",
        max_request_bytes: int | None = None,
        lease: LeaseTerms,
        fence: LeaseFence | None = None,
        metrics: Metrics | None = None,
        settlement: Settlement,
    ) -> None:
        self.service = service
        self.store = store
        self.display = display
        self.input_image_mode = input_image_mode  # how stored input images are sent (services/jobs/input_refs.py)
        self.max_request_bytes = max_request_bytes  # the largest create with images inline
        self.limiter = FairLimiter(max_concurrent)
        # The display checks the same fence before each Discord call (bot.py gives both the same one).
        self.fence = fence or LeaseFence(store, lease)
        self.lease = self.fence.terms
        self.metrics = metrics or Metrics()
        self.settlement = settlement
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancel_requested: set[str] = set()
        self._taken_over: set[str] = set()  # jobs whose task `renew` stopped: another process holds their lease
        self._creating: dict[str, asyncio.Future[tuple[Job, Prediction]]] = {}
        # The work that runs to its end whatever cancels its job's task (a job's end, the record of its success);
        # only `shutdown` cuts it off, after its grace.
        self._finishing: set[asyncio.Future[Any]] = set()
        # Jobs stopped (a Cancel, their reply deadline) while their create was in the air, which the API then refused,
        # or whose create was stopped instead of sent again: nothing was made, so they end counting nothing, though
        # they end on something else than the refusal.
        self._refused: dict[str, BaseException] = {}
        self.counts: Counter[str] = Counter()
        # Seconds without news after which the progress line is refreshed anyway.
        self.refresh_seconds = REFRESH_SECONDS
        self.queue_move_seconds = QUEUE_MOVE_SECONDS
        self.queue_refresh_seconds = QUEUE_REFRESH_SECONDS
        self.delivery_retry_seconds = DELIVERY_RETRY_SECONDS
        self.delivery_retry_max = DELIVERY_RETRY_MAX
        self.record_retry_seconds = RECORD_RETRY_SECONDS

    def start(self, job: Job) -> asyncio.Task[None]:
        """Run a stored job in the background."""
        self.fence.admitted(job)
        task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
        self._tasks[job.id] = task
        task.add_done_callback(lambda _: self._stopped(job.id))
        return task

    def _stopped(self, job_id: str) -> None:
        self._tasks.pop(job_id, None)
        self._cancel_requested.discard(job_id)
        self._taken_over.discard(job_id)
        self._refused.pop(job_id, None)
        self.fence.forget(job_id)

    def running(self, job_id: str) -> bool:
        return job_id in self._tasks

    def in_flight(self) -> int:
        return len(self._tasks)

    async def resume(self, shard_ids: Sequence[int] | None) -> int:
        """Start every unfinished job of these shards (None: all) that no live process holds. Returns how many.

        With a one-process store every lease left in it is a dead process's; on PostgreSQL a lease still
        running is left to run out (its process may be alive), after which `keep_leases` adopts the job.
        """
        started = 0
        for job in await self.store.active_jobs(shard_ids):
            if job.id not in self._tasks and await self._take(job, force=self.store.single_process):
                started += 1
        if started:
            log.info("Resumed %d unfinished job(s)", started)
        return started

    async def adopt(self) -> int:
        """Take over the unfinished jobs whose process stopped renewing their lease. Returns how many."""
        adopted = 0
        for job in await self.store.expired_leases(time.time()):
            if job.id not in self._tasks and await self._take(job):
                adopted += 1
        if adopted:
            log.info("Adopted %d job(s) whose process stopped renewing their lease", adopted)
        return adopted

    async def _take(self, job: Job, *, force: bool = False) -> bool:
        sent, now = time.monotonic(), time.time()
        claimed = await self.store.claim_lease(job.id, self.lease.owner, now + self.lease.seconds, now=now, force=force)
        if claimed is None or claimed.id in self._tasks:
            return False
        self.fence.granted([claimed.id], sent)
        self.start(claimed)
        return True

    async def renew(self) -> None:
        """Renew the leases of the jobs running here; stop the ones another process took over meanwhile."""
        running = list(self._tasks)
        held = await self.fence.renew(running)
        for job_id in running:
            if job_id in held or job_id not in self._tasks:
                continue
            current = await self.store.get_job(job_id)
            if current is not None and current.active and current.lease_owner != self.lease.owner:
                task = self._tasks.get(job_id)
                if task is not None and self._taken(job_id):
                    task.cancel()  # like a shutdown: the job is left as it stands, to its new owner

    def _taken(self, job_id: str) -> bool:
        """Say once that another process took the job over (this process stops its work on it)."""
        if job_id in self._taken_over:
            return False
        self._taken_over.add(job_id)
        log.warning("Job %s: another process took it over; stopped here", job_id)
        return True

    async def keep_leases(self, *, adopt: bool) -> None:
        """Renew this process's leases for as long as it runs; with `adopt`, also take over dead processes' jobs."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.lease.renew_every)
            now = time.monotonic()
            if now - last > self.lease.seconds:
                # Paused (SIGSTOP, a frozen VM) or starved: other processes may have adopted its jobs meanwhile. The
                # jobs' fences already hold them back; this renewal tells which are still this process's.
                log.warning(
                    "This process renewed no lease for %.1f s, longer than leases last (%.0f s): it was paused or "
                    "starved; each job proves its lease again before going on",
                    now - last,
                    self.lease.seconds,
                )
            last = now
            try:
                await self.renew()
                if adopt:
                    await self.adopt()
            except Exception as exc:
                # The store is unreachable for now: try again next time (leases last three renewals).
                log.warning("Could not renew or adopt job leases (%s: %s); trying again", type(exc).__name__, exc)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a job of this process: withdraw it from the queue or cancel its prediction."""
        task = self._tasks.get(job_id)
        if task is None:
            return False
        if job_id not in self._cancel_requested:
            self._cancel_requested.add(job_id)
            task.cancel()
        # else a second Cancel (pressed twice, or by a moderator too): the first one is being carried out, and
        # cancelling again would land in it. Both wait for the job's end (`wait`: this caller's cancel never
        # reaches the job's task, as `gather`'s would).
        await asyncio.wait({task})
        return True

    async def cancel_elsewhere(self, job: Job) -> bool:
        """Cancel a job this process is not running (another process's, or one not resumed yet), before delivery;
        whether it was cancelled (not: it ended, or reached delivery, meanwhile).

        `job` may be out of date: its process may have moved it on since it was read, or while its prediction's
        cancel was in the air. So each step works on the job as stored, and its end is a compare-and-set on the
        status it was settled from; a job that reached delivery meanwhile is left to its process (its prediction
        succeeded: it is paid for at what it settled, and its images are posted, not thrown away).
        """
        canceled: set[str] = set()
        current: Job | None = job
        while current is not None and current.status in BEFORE_DELIVERY:
            if current.prediction_id and current.prediction_id not in canceled:
                canceled.add(current.prediction_id)
                try:
                    await self.service.cancel(current.prediction_id)
                except ServiceError as exc:
                    log.warning("Job %s: could not cancel prediction: %s", job.id, exc)
                current = await self.store.get_job(job.id)  # read again: its process went on meanwhile
                continue
            settled = self.settlement.ended(current, Canceled())
            ended = await self.store.transition(
                job.id,
                [current.status],  # only as settled: a job its process moved on meanwhile is read again
                JobStatus.CANCELED,
                owner=None,  # a user's cancel, whoever holds the lease
                error="Canceled",
                completed_at=time.time(),
                image_count=0,
                **({} if settled is None else {"settled_microusd": settled}),
            )
            if ended is not None:
                await self.display.failed(_as_shown(ended, job), describe(Canceled()), canceled=True)
                return True
            current = await self.store.get_job(job.id)
        return False

    async def shutdown(self, grace: float = 10.0) -> None:
        """Stop local work, leaving every job resumable in the store.

        Creates already sent are given `grace` seconds to come back, so their prediction ids are recorded
        and the jobs resume by polling instead of being failed as interrupted.
        """
        if self._creating:
            await asyncio.wait(list(self._creating.values()), timeout=grace)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            # A job's end under way (a Cancel's: its prediction's cancel, its record) is let finish within the
            # grace; after it, cut off (the job stays as it stands, resumed at the next start). A create is never
            # cut off: its job waits for it, then stops.
            _, late = await asyncio.wait(tasks, timeout=grace)
            if late:
                for work in list(self._finishing):
                    work.cancel()
                await asyncio.wait(late)
        try:
            # Handed over at once: another live process (or this one's restart) need not wait for them to run out.
            await self.store.release_leases(self.lease.owner)
        except Exception as exc:
            log.warning("Could not release job leases at shutdown (they will run out): %s", exc)

    async def _run(self, job: Job) -> None:
        prediction: Prediction | None = None
        try:
            if job.status == JobStatus.SUBMITTING:
                await self._end(job, ServiceError("interrupted while starting"), message=INTERRUPTED)
                return
            if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
                submitted = await self._until_reply_deadline(job)
                if submitted is None:
                    self._taken(job.id)  # another process or task claimed the job first: it is theirs
                    return
                job, prediction = submitted
            if job.status == JobStatus.DELIVERING:
                await self._deliver(job, prediction)
        except asyncio.CancelledError:
            # Two reasons: a Cancel from a user (stop the job), or the process shutting down (leave the job
            # as it stands, to be resumed).
            if job.id not in self._cancel_requested:
                raise  # (a job `renew` found taken over has said so already)
            await self._end(job, Canceled(), stop_prediction=True)
        except (Superseded, LeaseLost):
            self._taken(job.id)
        except NotRecorded:
            # Its images are shown: never a failure. Left "delivering" on this process's lease, which runs out: it
            # is resumed (adopted, or at the next start), and its message edited again with the same images.
            log.exception("Job %s: left delivering, to be resumed", job.id)
        except MessageGone:
            log.info("Job %s: its message was deleted; cancelling", job.id)
            await self._end(job, Canceled(), stop_prediction=True, show=False)
        except TooLate as exc:
            log.info("Job %s: not done before its reply deadline; stopped", job.id)
            await self._end(job, exc, stop_prediction=True)
        except NotDelivered as exc:
            # The user was told why; the job is not a success (its images don't count against quotas).
            log.info("Job %s: images not posted: %s", job.id, exc)
            await self._end(job, ServiceError(str(exc)), show=False)
        except ServiceError as exc:
            log.info("Job %s failed: %s", job.id, exc)
            # The API stopped answering our polls: the prediction may still run (and be billed), so stop it.
            await self._end(job, exc, stop_prediction=isinstance(exc, ApiError))
        except Exception as exc:
            log.exception("Job %s crashed", job.id)
            await self._end(job, exc, stop_prediction=True)

    async def _until_reply_deadline(self, job: Job) -> tuple[Job, Prediction] | None:
        """Queue, submit and wait for `job`; where it has a reply deadline, raise TooLate when it comes first."""
        when = None
        if job.reply_by is not None:
            when = asyncio.get_running_loop().time() + (job.reply_by - REPLY_MARGIN - time.time())
        try:
            async with asyncio.timeout_at(when) as limit:
                if job.status == JobStatus.QUEUED:
                    return await self._submit_and_wait(job)
                return await self._wait_existing(job)
        except TimeoutError:
            if not limit.expired():
                raise  # a timeout of its own, not the deadline
            raise TooLate("not done before the interaction token expires") from None

    async def _submit_and_wait(self, job: Job) -> tuple[Job, Prediction] | None:
        waiter = self.limiter.enqueue(job.user_id)
        try:
            await self._wait_for_slot(job, waiter)
        except BaseException:
            self.limiter.abandon(job.user_id, waiter)
            raise
        try:
            # Shown before the claim: a stop before the claim leaves the job "queued", to be submitted on restart.
            await self._show(job, "starting")
            # Stored input images become what the API gets (a link, or the bytes once it has expired). Done
            # before the claim: if it fails, or the process stops meanwhile, nothing was sent and the job is
            # still "queued" (failed with the reason, or resumed at restart), never "interrupted".
            model_input = await api_input(
                job, self.store, mode=self.input_image_mode, now=time.time(), max_request_bytes=self.max_request_bytes
            )
            await self.fence.check(job.id)
            claimed = await self.store.transition(
                job.id, [JobStatus.QUEUED], JobStatus.SUBMITTING, owner=self.lease.owner, submitted_at=time.time()
            )
            if claimed is None:
                return None
            job, prediction = await self._create(claimed, model_input)
            del model_input  # its images inline (data: URIs) are not held while the prediction runs
            done = await self._wait(job, prediction, started_wall=job.submitted_at or time.time())
            return await self._delivering(job, done), done
        finally:
            self.limiter.release()

    async def _create(self, job: Job, model_input: dict[str, object]) -> tuple[Job, Prediction]:
        """Create the prediction for `model_input` (`job.input` as sent) and record its id, even if cancelled.

        A create interrupted half-way would be paid for and then lost; so the create and the recording of
        its id run to the end, however many times the job's task is cancelled meanwhile (a Cancel pressed twice),
        and the cancellation is raised after (the job then has a prediction id to cancel, or to resume after a
        shutdown). The id is recorded even when the lease was lost meanwhile.

        A create the API refused (429) or that never left (no connection) is sent again only while nothing says
        stop (`_may_send_again`): not after a Cancel, past the job's reply deadline, or without the lease (another
        process may have adopted the job, and failed it as interrupted).
        """
        stopped: list[BaseException] = []  # what stopped the create before a retry: nothing was made

        async def may_send_again() -> None:
            try:
                await self._may_send_again(job)
            except Exception as exc:
                stopped.append(exc)
                raise

        async def create_and_record() -> tuple[Job, Prediction]:
            # Not sent without the lease: the job stays "submitting" with nothing sent, which whoever holds
            # it fails as interrupted; never a second create.
            await self.fence.check(job.id)
            self.counts["create"] += 1
            prediction = await self.service.create(job.model, model_input, guard=may_send_again)

            def recorded(current: Job) -> bool:
                return current.status == JobStatus.RUNNING and current.prediction_id == prediction.id

            try:
                running = await self._record(
                    job.id,
                    lambda: self.store.transition(
                        job.id,
                        [JobStatus.SUBMITTING],
                        JobStatus.RUNNING,
                        owner=self.lease.owner,
                        prediction_id=prediction.id,
                    ),
                    landed=recorded,
                    what=f"its prediction {prediction.id}",
                )
            except Exception:
                # Made, but the store never took its id: nothing could follow it or resume it, so stop paying for it.
                log.warning("Job %s: prediction %s could not be recorded; cancelling it", job.id, prediction.id)
                with contextlib.suppress(ServiceError):
                    await self.service.cancel(prediction.id)
                raise
            if running is None:
                # Another process took the job over while the create was in the air (this one was paused past
                # its lease) and failed it as interrupted, or a user cancelled it. The create still happened: keep
                # its id on the job, and stop paying for a prediction no one will deliver (no one else knows of
                # it, so cancelling it cannot touch another process's work).
                log.warning(
                    "Job %s: taken over while its prediction %s was created; cancelling it", job.id, prediction.id
                )
                try:
                    await self.store.record_prediction(job.id, prediction.id)
                except Exception as exc:
                    log.warning("Job %s: could not record prediction %s: %s", job.id, prediction.id, exc)
                with contextlib.suppress(ServiceError):
                    await self.service.cancel(prediction.id)
                raise Superseded()
            return running, prediction

        inner = asyncio.ensure_future(create_and_record())
        self._creating[job.id] = inner
        try:
            interrupted = await _outlast_cancels(inner)
        finally:
            del self._creating[job.id]
        failure = None if inner.cancelled() else inner.exception()
        if failure is not None and failure in stopped:
            # Stopped instead of sent again: the last attempt was refused, or never left (the stop's cause).
            self._refused[job.id] = failure.__cause__ or failure  # what the job's end settles on: nothing made
        elif interrupted and failure is not None and refused(failure):
            self._refused[job.id] = failure  # what the job's end settles on (it ends on this cancel)
        if interrupted:
            raise asyncio.CancelledError()
        return inner.result()

    async def _may_send_again(self, job: Job) -> None:
        """Raise if the job's create, refused or never sent, must not be sent again: Canceled, TooLate, LeaseLost."""
        if job.id in self._cancel_requested:
            raise Canceled()
        if job.reply_by is not None and time.time() >= job.reply_by - REPLY_MARGIN:
            raise TooLate("not done before the interaction token expires")
        await self.fence.check(job.id)

    async def _wait_existing(self, job: Job) -> tuple[Job, Prediction]:
        assert job.prediction_id is not None
        done = await self._wait(job, None, started_wall=job.submitted_at or job.created_at)
        return await self._delivering(job, done), done

    async def _wait(self, job: Job, prediction: Prediction | None, *, started_wall: float) -> Prediction:
        """Wait for `prediction` (None: the job's, made before a restart, picked up by its id)."""
        shown: dict[str, Any] = {"stage": "starting", "percent": None}

        async def report(update: Update) -> None:
            if update.prediction.terminal:
                # The result (or the failure) replaces the progress line right away. An edit now would show
                # "Starting" again (a finished status is neither starting nor processing) and hold up the
                # delivery by a Discord round trip.
                return
            stage: Stage = "generating" if update.status == PROCESSING else "starting"
            if update.status not in (STARTING, PROCESSING):
                stage = "generating"  # an unknown status: the API is working on it
            if shown == {"stage": stage, "percent": update.progress.percent}:
                # Nothing new but the elapsed time (a model without a percentage, polled again): the refresh
                # below shows that every `refresh_seconds`; an edit per poll would cost a Discord call each.
                return
            shown.update(stage=stage, percent=update.progress.percent)
            await self._show(job, stage, percent=update.progress.percent)

        age = time.time() - started_wall
        guard = functools.partial(self.fence.check, job.id)  # before each poll
        if prediction is None:
            assert job.prediction_id is not None
            wait = self.service.resume(job.prediction_id, job.model, age=age, on_update=report, guard=guard)
        else:
            started = time.monotonic() - age
            wait = self.service.wait(prediction, job.model, started=started, on_update=report, guard=guard)
        waiting = asyncio.ensure_future(wait)
        try:
            while True:
                done, _ = await asyncio.wait({waiting}, timeout=self.refresh_seconds)
                if done:
                    return waiting.result()
                # No news from the API for a while: refresh the elapsed time. This is also how a deleted
                # message is noticed (the edit fails) when a model reports no progress.
                await self._show(job, shown["stage"], percent=shown["percent"])
        finally:
            if not waiting.done():
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)

    async def _delivering(self, job: Job, done: Prediction) -> Job:
        # Settled now: a prediction that succeeded is billed whatever happens to its images after.
        moved = await self.store.transition(
            job.id,
            [JobStatus.RUNNING],
            JobStatus.DELIVERING,
            owner=self.lease.owner,
            completed_at=time.time(),
            settled_microusd=self.settlement.succeeded(job, done),
        )
        if moved is None:
            raise Superseded()
        if moved.completed_at is not None and moved.submitted_at is not None:
            self.metrics.prediction_done(moved.model, moved.completed_at - moved.submitted_at)
        return moved

    async def _deliver(self, job: Job, prediction: Prediction | None) -> None:
        if prediction is None:  # resumed in "delivering": the outputs may still be there
            assert job.prediction_id is not None
            await self.fence.check(job.id)
            prediction = await self.service.get(job.prediction_id)
            if not prediction.output:
                raise ServiceError("The images were no longer available after the restart.")
        await self.fence.check(job.id)
        # A quick download gets no "downloading"/"uploading" edits: each would hold the result up by a Discord
        # round trip for a line replaced a moment later anyway.
        fetch = asyncio.ensure_future(self.service.fetch_outputs(prediction))
        try:
            fetched, _ = await asyncio.wait({fetch}, timeout=SLOW_TRANSFER_SECONDS)
            if not fetched:  # a slow transfer: say so while it runs
                await self._show(job, "downloading")
                await asyncio.wait({fetch})
                await self._show(job, "uploading")
            images = fetch.result()
        finally:
            if not fetch.done():
                fetch.cancel()
                await asyncio.gather(fetch, return_exceptions=True)
        settled = self.settlement.fetched(job, images)
        images = await restored(job, images, self.store)  # what the kind asked to keep of the original
        seconds = (job.completed_at or time.time()) - job.created_at
        checked = await check_outputs(self.service.client, job, images)
        if checked is not None and checked.mode == WITHHOLD and len(checked.hidden) == len(images):
            # Nothing may be shown; the images were made, so they count (settled above, kept by _end).
            await self.store.update_job(job.id, owner=self.lease.owner, settled_microusd=settled)
            await self.display.failed(job, withheld_text(checked), canceled=False)
            raise NotDelivered("every image was withheld by the server's image check")
        posted = PostedImages(self.store, job, owner=self.lease.owner)
        shown = await self._post(job, Delivery(images, prediction, seconds, posted, checked))
        del images, fetch, fetched  # posted: their bytes go back to the memory budget now, not after the records
        if shown == 0:  # a job the user got no image from is no success (and counts against no quota)
            raise ServiceError("None of the images could be posted.")
        # From here on the images are shown: whatever comes (a store that fails, a Cancel, a shutdown), the job is
        # never shown as failed or cancelled over them.
        try:
            await self._finish(self._succeeded(job, shown, settled))
        except asyncio.CancelledError:
            self._cancel_requested.discard(job.id)  # a Cancel now comes too late: the job ends as recorded
            raise

    async def _post(self, job: Job, delivery: Delivery) -> int:
        """Show the result. Discord failing for a while (5xx, 429: an outage of minutes) outlasts the display's own
        retries: the job stays "delivering" and its result is posted again later, spaced out more and more, while
        its outputs last (the images in hand; a restart fetches them again) and, where only the interaction reaches
        its user, its token. Each attempt edits the same message and posts only what was not posted yet."""
        until = (job.completed_at or time.time()) + OUTPUTS_SECONDS
        if job.reply_by is not None:
            until = min(until, job.reply_by)
        retries = 0
        while True:
            try:
                return await self.display.deliver(job, delivery)
            except Exception as exc:
                if not _discord_unavailable(exc):
                    raise
                wait = min(self.delivery_retry_max, self.delivery_retry_seconds * 2**retries)
                if time.time() + wait >= until:
                    raise
                retries += 1
                log.warning(
                    "Job %s: Discord did not take the result (%s: %s); posting it again in %.0f s",
                    job.id,
                    type(exc).__name__,
                    exc,
                    wait,
                )
            await asyncio.sleep(wait)
            await self.fence.check(job.id)
            job = await self._as_stored(job)

    async def _as_stored(self, job: Job) -> Job:
        """The job as stored, still delivering on this process's lease (its message may have been recorded since
        this copy was read: the first line answered the command); this copy when the store cannot say."""
        try:
            current = await self.store.get_job(job.id)
        except Exception as exc:
            log.warning("Job %s: could not read it again (%s: %s)", job.id, type(exc).__name__, exc)
            return job
        if current is None or current.status != JobStatus.DELIVERING or current.lease_owner != self.lease.owner:
            raise Superseded()
        return current

    async def _succeeded(self, job: Job, shown: int, settled: int) -> None:
        """Record the success of a job whose images are shown, trying again a few times; NotRecorded after."""
        try:
            done = await self._record(
                job.id,
                lambda: self.store.transition(
                    job.id,
                    [JobStatus.DELIVERING],
                    JobStatus.SUCCEEDED,
                    owner=self.lease.owner,
                    delivered_at=time.time(),
                    image_count=shown,
                    settled_microusd=settled,
                ),
                landed=lambda current: current.status == JobStatus.SUCCEEDED,
                what="its success (its images are posted)",
            )
        except Exception as exc:
            raise NotRecorded(
                f"its images are posted, but its success could not be recorded ({type(exc).__name__}: {exc})"
            ) from exc
        if done is None:
            raise Superseded()  # another process ended it meanwhile (it took the job over)
        self.counts["delivered"] += 1
        self.metrics.job_ended(JobStatus.SUCCEEDED, job.model)
        if done.delivered_at is not None and done.completed_at is not None:
            self.metrics.delivered(job.model, done.delivered_at - done.completed_at)

    async def _record(
        self, job_id: str, write: Callable[[], Awaitable[Job | None]], *, landed: Callable[[Job], bool], what: str
    ) -> Job | None:
        """`write`, a transition that records what was paid for, tried RECORD_ATTEMPTS times while the store fails
        (waiting RECORD_RETRY_SECONDS, then twice as long...); the last failure is raised. None: the job is no longer
        as the write expects (another process took it over), unless a try whose answer was lost made it (`landed`)."""
        for attempt in range(RECORD_ATTEMPTS):
            try:
                done = await write()
                if done is None and attempt:
                    current = await self.store.get_job(job_id)
                    done = current if current is not None and landed(current) else None
            except Exception as exc:
                if attempt + 1 == RECORD_ATTEMPTS:
                    raise
                log.warning("Job %s: recording %s failed (%s: %s), trying again", job_id, what, type(exc).__name__, exc)
                await asyncio.sleep(self.record_retry_seconds * 2**attempt)
            else:
                return done
        raise AssertionError("unreachable")  # the last try returns or raises

    async def _wait_for_slot(self, job: Job, waiter: asyncio.Future[None]) -> None:
        """Wait in line, showing the place in line when it changes, and now and then the elapsed time.

        Each edit of a waiting job is a request to Discord for little news: a job queued for 17 minutes used
        to make one every 1.5 s (622 in all), and a few queued jobs filled their channel's edit budget.
        """
        shown: int | None = None
        shown_at = float("-inf")
        while not waiter.done():
            since = time.monotonic() - shown_at
            # The place in line costs a walk over every waiting user: it is looked up only when it could be shown.
            position = self.limiter.position(job.user_id, waiter) if since >= self.queue_move_seconds else None
            moved = position is not None and place_moved(position, shown)
            if position is not None and (moved or since >= self.queue_refresh_seconds):
                shown, shown_at = position, time.monotonic()
                await self._show(job, "queued", position=position)
            try:
                await asyncio.wait_for(asyncio.shield(waiter), QUEUE_REPORT_SECONDS)
            except TimeoutError:
                continue
        await waiter

    async def _show(self, job: Job, stage: Stage, *, percent: int | None = None, position: int | None = None) -> None:
        # A model that logs no progress bar (the pro models, FLUX.2) gets its usual duration instead, so a
        # 30 s FLUX.2 run does not look stuck; never an invented percentage.
        await self.fence.check(job.id)
        now = time.time()
        window = self.service.stats.window(job.model) if stage == "generating" else None
        ran = now - (job.submitted_at or job.created_at)
        usual = window if percent is None else None
        overdue = usual is not None and ran > usual[1]
        due_in = max(0.0, window[1] - ran) if window is not None else None
        progress = JobProgress(stage, now - job.created_at, position, percent, usual, overdue, due_in)
        await self.display.progress(job, progress)

    async def _finish(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` to its end even if the job's task is cancelled meanwhile, once or more (a second Cancel, a
        shutdown, a renewal that found the job taken over), then raise the cancellation. Cut off half-way, a job's
        end would leave it active with no task (its prediction's cancel aborted), and a delivered job's record would
        turn into a failure shown over its images. Only `shutdown` cuts it off, after its grace."""
        future = asyncio.ensure_future(work)
        self._finishing.add(future)
        future.add_done_callback(self._finishing.discard)
        if await _outlast_cancels(future):
            failure = None if future.cancelled() else future.exception()
            if failure is not None:  # (the cancellation is what the task ends on)
                log.warning("Work of a stopped job failed: %s: %s", type(failure).__name__, failure)
            raise asyncio.CancelledError()
        return future.result()

    async def _end(
        self,
        job: Job,
        error: BaseException,
        *,
        message: Text | None = None,
        show: bool = True,
        stop_prediction: bool = False,
    ) -> None:
        """End the job on `error`: its prediction stopped (`stop_prediction`), its end recorded and shown. Runs to
        its end whatever cancels the job's task meanwhile (`_finish`)."""
        await self._finish(self._record_end(job, error, message=message, show=show, stop_prediction=stop_prediction))

    async def _record_end(
        self, job: Job, error: BaseException, *, message: Text | None, show: bool, stop_prediction: bool
    ) -> None:
        canceled = isinstance(error, Canceled)
        status = JobStatus.CANCELED if canceled else JobStatus.FAILED
        try:
            # Neither the prediction's cancel nor the end is this process's to do once the job is another's.
            await self.fence.check(job.id)
        except LeaseLost:
            self._taken(job.id)
            return
        try:
            current = await self.store.get_job(job.id)
            prediction_id = current.prediction_id if current and current.status == JobStatus.RUNNING else None
            if stop_prediction and prediction_id:
                # The prediction may still be running on the API: stop paying for it.
                try:
                    await self.service.cancel(prediction_id)
                except ServiceError as exc:
                    log.warning("Job %s: could not cancel prediction: %s", job.id, exc)
            basis = self._refused.pop(job.id, error)  # a create refused while the job was being stopped: no cost
            settled = self.settlement.ended(current, basis) if current is not None else None
            ended = await self.store.transition(
                job.id,
                ACTIVE,
                status,
                owner=self.lease.owner,
                error=str(error)[:500] or type(error).__name__,
                completed_at=time.time(),
                image_count=0,  # its reserved images are given back to the quotas
                **({} if settled is None else {"settled_microusd": settled}),
            )
        except Exception:
            # The store is unreachable too: leave the job as it stands, to be picked up again at the next
            # start, rather than lose it or crash the runner.
            log.exception("Job %s: could not record its end (%s); it will be resumed at restart", job.id, status)
            return
        self.counts[status] += 1
        if ended is not None:
            self.metrics.job_ended(status, job.model)
        if ended is None or not show:
            return
        try:
            await self.display.failed(_as_shown(ended, job), message or describe(error), canceled=canceled)
        except MessageGone:
            pass
        except Exception:
            log.exception("Job %s: could not show the failure", job.id)


async def _outlast_cancels(inner: asyncio.Future[Any]) -> bool:
    """Wait for `inner` to end, however many times the waiting task is cancelled meanwhile (a cancel never reaches
    `inner`, as it would through `gather` or a bare `await`); whether it was cancelled."""
    interrupted = False
    while not inner.done():
        try:
            await asyncio.wait({inner})
        except asyncio.CancelledError:
            interrupted = True
    return interrupted


# A connection cut or timed out: discord.py retries neither on Linux (only BSD's and Windows' resets).
CONNECTION_FAULTS = (aiohttp.ClientConnectionError, TimeoutError)


def _discord_unavailable(exc: BaseException) -> bool:
    """Whether a display's error says Discord fails for now: an HTTP 5xx or 429, a connection cut or timed out,
    that outlasted the display's retries (discord.py's HTTPException carries `status`; this module knows nothing of
    Discord). The image service's own errors are ServiceErrors, never these."""
    if isinstance(exc, ServiceError):
        return False
    if isinstance(exc, CONNECTION_FAULTS):
        return True
    status = getattr(exc, "status", None)
    return isinstance(status, int) and (status == 429 or 500 <= status < 600)


def place_moved(position: int, shown: int | None) -> bool:
    """Whether a place in line moved enough from the one shown to be shown."""
    return shown is None or abs(position - shown) >= max(1.0, shown * QUEUE_MOVE_SHARE)


def _as_shown(ended: Job, job: Job) -> Job:
    """The ended job as its display needs it: the store deleted the interaction token at the end, but a message
    reached only through the interaction still needs it to show that end."""
    return replace(ended, interaction_token=job.interaction_token)
