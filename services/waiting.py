"""Wait for a prediction to end, reporting each visible change, within a deadline."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.cometapi import CometClient
from services.errors import (
    ApiError,
    Canceled,
    GenerationFailed,
    RateLimited,
    ServiceError,
    TimedOut,
    Unavailable,
)
from services.polling import DurationStats
from services.predictions import ABORTED, CANCELED, FAILED, SUCCEEDED, Prediction, Progress, parse_progress

log = logging.getLogger(__name__)


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
) -> Prediction:
    """Poll until `prediction` ends; return it when it succeeded with outputs, else raise a typed error.

    `started` is when the prediction was created (monotonic seconds), `deadline` the monotonic time by
    which it must end: then it is cancelled and TimedOut raised. Transient API errors while polling are
    ridden out until the deadline; the prediction keeps running on the API's side either way.
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
            current = await _poll_once(client, current, deadline=clock())
            if current.terminal:
                continue
            await _cancel_quietly(client, current.id)
            raise TimedOut(
                f"The generation did not finish within {deadline - started:.3g} s and was cancelled.",
                prediction_id=current.id,
            )
        await asyncio.sleep(delay)
        current = await _poll_once(client, current, deadline=deadline)


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
            raise GenerationFailed("The API removed the images before they could be fetched.", prediction_id=pid)
        raise GenerationFailed("The model finished without returning an image.", prediction_id=pid)
    if prediction.status == FAILED:
        raise GenerationFailed(prediction.error or "The model failed without saying why.", prediction_id=pid)
    if prediction.status == CANCELED:
        raise Canceled(prediction_id=pid)
    if prediction.status == ABORTED:
        raise GenerationFailed(
            "The API dropped the request before it started (not billed). Please try again.", prediction_id=pid
        )
    raise ServiceError(f"Unexpected final status {prediction.status!r}")


async def _cancel_quietly(client: CometClient, prediction_id: str) -> None:
    try:
        await client.cancel(prediction_id)
    except ApiError as exc:
        log.warning("Could not cancel %s: %s", prediction_id, exc)
