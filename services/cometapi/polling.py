"""When to poll next: cheap (few GETs) and quick (little delay between done and noticed).

A fixed interval wastes requests while an image cannot possibly be ready yet. Instead each model's
create-to-done times are learned (seeded with typical figures from the catalogue), and a prediction is
 - not polled before the fastest usual time (the window's low end; a first poll is never later than
   `max_interval`, so a stage change still shows),
 - polled inside the usual window every `fine_interval`, or every `patience` share of the time it has run
   when that is longer (a finished image then waits about as long, relative to its making, on a 2 s model as
   on a 30 s one, and a slow model is not polled 50 times),
 - polled less and less often past its high end, up to `max_interval`,
 - and when the logs give a tqdm rate, polled when the steps left should be done.

`wait_for` runs that schedule until the prediction ends, reporting each visible change, within a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from services.cometapi.client import CometClient, Guard
from services.cometapi.predictions import ABORTED, CANCELED, FAILED, SUCCEEDED, Prediction, Progress, parse_progress
from services.errors import (
    ApiError,
    Canceled,
    GenerationFailed,
    RateLimited,
    ServiceError,
    TimedOut,
    Unavailable,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollTuning:
    fine_interval: float = 0.4
    patience: float = 0.1  # inside the window, polls are at least this share of the time run so far apart
    min_interval: float = 0.1
    max_interval: float = 5.0
    tail_growth: float = 1.5
    samples_needed: int = 8  # observations before the learned window replaces the prior
    memory: int = 64  # observations kept per model
    default_window: tuple[float, float] = (1.0, 15.0)  # for a model with no prior


class DurationStats:
    """Create-to-done seconds per model, learned from finished predictions."""

    def __init__(self, priors: Mapping[str, tuple[float, float]], tuning: PollTuning | None = None) -> None:
        self.tuning = tuning or PollTuning()
        self._priors = dict(priors)
        self._seen: dict[str, deque[float]] = {}

    def observe(self, model: str, seconds: float) -> None:
        if seconds > 0:
            self._seen.setdefault(model, deque(maxlen=self.tuning.memory)).append(seconds)

    def window(self, model: str) -> tuple[float, float]:
        """Roughly the 5th and 95th percentile of how long the model takes."""
        prior = self._priors.get(model, self.tuning.default_window)
        seen = self._seen.get(model)
        if seen is None or len(seen) < self.tuning.samples_needed:
            return prior
        cuts = statistics.quantiles(seen, n=20, method="inclusive")
        # With many jobs in flight the first to finish are the fast ones, so the learned high end starts out
        # too low. A low end that is too early costs a few GETs; a high end that is too early costs delay.
        return cuts[0], max(cuts[-1], prior[1])

    def plan(self, model: str) -> PollPlan:
        return PollPlan(self.window(model), self.tuning)


class PollPlan:
    """The schedule for one prediction."""

    def __init__(self, window: tuple[float, float], tuning: PollTuning) -> None:
        self.low, self.high = window
        self.tuning = tuning
        self._tail_polls = 0

    def next_delay(self, elapsed: float, progress: Progress | None = None) -> float:
        t = self.tuning
        if progress is not None and progress.seconds_left is not None and progress.seconds_left > t.fine_interval:
            delay = progress.seconds_left
        elif elapsed < self.low:
            delay = self.low - elapsed
        elif elapsed <= self.high:
            delay = max(t.fine_interval, t.patience * elapsed)
        else:
            delay = t.fine_interval * t.tail_growth**self._tail_polls
            self._tail_polls += 1
        return min(t.max_interval, max(t.min_interval, delay))


@dataclass(frozen=True)
class Update:
    """One visible change of a prediction, as reported to the caller."""

    prediction: Prediction
    progress: Progress
    elapsed: float

    @property
    def status(self) -> str:
        return self.prediction.status


OnUpdate = Callable[[Update], Awaitable[None]]
# `Guard` (client.py): awaited before each request about the prediction; raises to stop the wait (a job runner's
# lease fence).
Clock = Callable[[], float]


async def wait_for(
    client: CometClient,
    prediction: Prediction,
    *,
    model: str,
    stats: DurationStats,
    deadline: float,
    started: float | None = None,
    on_update: OnUpdate | None = None,
    clock: Clock = time.monotonic,
    guard: Guard | None = None,
) -> Prediction:
    """Poll until `prediction` ends; return it when it succeeded with outputs, else raise a typed error.

    `started` is when the prediction was created (monotonic seconds), `deadline` the monotonic time by
    which it must end: then it is cancelled and TimedOut raised. Transient API errors while polling are
    ridden out until the deadline; the prediction keeps running on the API's side either way. `guard` is
    awaited before each request (a poll, the cancel at the deadline).
    """
    started = clock() if started is None else started
    plan = stats.plan(model)
    current, last_seen = prediction, None
    while True:
        progress = parse_progress(current.logs)
        seen = (current.status, progress.percent, progress.stage)
        if on_update is not None and seen != last_seen:
            await on_update(Update(current, progress, clock() - started))
        last_seen = seen
        if current.terminal:
            return _finish(current, model, stats, clock() - started)

        delay = plan.next_delay(clock() - started, progress)
        if clock() + delay >= deadline:
            await asyncio.sleep(max(0.0, deadline - clock()))
            # One last look (no retries: the deadline has passed) so a job that just finished is not cancelled.
            await _guarded(guard)
            current = await _poll_once(client, current, deadline=clock())
            if current.terminal:
                continue
            await _guarded(guard)
            await _cancel_quietly(client, current.id)
            raise TimedOut(
                f"The generation did not finish within {deadline - started:.3g} s and was cancelled.",
                prediction_id=current.id,
            )
        await asyncio.sleep(delay)
        await _guarded(guard)
        current = await _poll_once(client, current, deadline=deadline)


async def _guarded(guard: Guard | None) -> None:
    if guard is not None:
        await guard()


async def _poll_once(client: CometClient, current: Prediction, *, deadline: float | None) -> Prediction:
    try:
        return await client.get(current.id, deadline=deadline)
    except (Unavailable, RateLimited) as exc:
        # The client already retried; the prediction is still running remotely, so keep the last state.
        log.warning("Polling %s failed for now: %s", current.id, exc)
        return current


def _finish(prediction: Prediction, model: str, stats: DurationStats, elapsed: float) -> Prediction:
    pid = prediction.id
    if prediction.status == SUCCEEDED:
        stats.observe(model, prediction.server_seconds or elapsed)
        if prediction.output:
            return prediction
        if prediction.data_removed:
            raise GenerationFailed(
                "The API removed the images before they could be fetched.", prediction_id=pid, outcome=SUCCEEDED
            )
        raise GenerationFailed("The model finished without returning an image.", prediction_id=pid, outcome=SUCCEEDED)
    if prediction.status == FAILED:
        raise GenerationFailed(prediction.error or "The model failed without saying why.", prediction_id=pid)
    if prediction.status == CANCELED:
        raise Canceled(prediction_id=pid)
    if prediction.status == ABORTED:
        raise GenerationFailed(
            "The API dropped the request before it started (not billed). Please try again.",
            prediction_id=pid,
            outcome=ABORTED,
        )
    raise ServiceError(f"Unexpected final status {prediction.status!r}")


async def _cancel_quietly(client: CometClient, prediction_id: str) -> None:
    try:
        await client.cancel(prediction_id)
    except ApiError as exc:
        log.warning("Could not cancel %s: %s", prediction_id, exc)
