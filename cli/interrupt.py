"""Ctrl-C and SIGTERM during `generate`: stop soon, but never leave a paid prediction running unknown.

The first SIGINT or SIGTERM is recorded, not raised, so each stage stops at a safe point:
- before the create is sent: nothing is sent;
- while the create is on the wire: its answer is awaited (bounded) so the new prediction can be cancelled,
  and a retry the client would send after a 429 or a failed connection is not sent;
- once the prediction exists: the wait or the download stops and the prediction is cancelled on the API.
The exit status is 128 + the signal number (130 for SIGINT, 143 for SIGTERM), as shells report it.
Later signals are ignored: the clean-up they would cut short is itself bounded.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TypeVar

from services.cometapi.polling import OnUpdate
from services.cometapi.predictions import CANCELED, Prediction
from services.cometapi.service import PredictionService, Result
from services.errors import ApiError, ServiceError, UncertainCreate

T = TypeVar("T")
SIGNALS = (signal.SIGINT, signal.SIGTERM)
CREATE_GRACE = 10.0  # seconds allowed, after a signal, for the answer to a create already sent
CANCEL_TIMEOUT = 10.0  # seconds allowed for the cancel, retries included


class Stopped(Exception):
    """A signal came, so the stage in progress was abandoned."""


class Interrupted(Exception):
    """The command stopped on a signal; the message says what became of the prediction."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(f"interrupted ({signal.Signals(signum).name}): {message}")
        self.exit_code = 128 + signum


class StopSignal:
    """Records the first SIGINT or SIGTERM and wakes the stage that waits on it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._refusing_retries = False
        self._between_retries = False

    @contextmanager
    def installed(self) -> Iterator[StopSignal]:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    @contextmanager
    def in_loop(self) -> Iterator[None]:
        """While the event loop runs: a signal wakes whatever waits in `until_stopped` or `retry_sleep`."""
        self._event = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self.signum is not None:
            self._event.set()
        try:
            yield
        finally:
            self._loop = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        if self._loop is not None and self._event is not None:
            # A Python signal handler runs between two bytecodes of the loop's own thread: hand over safely.
            self._loop.call_soon_threadsafe(self._event.set)

    async def until_stopped(self, work: Awaitable[T]) -> T:
        """The result of `work`; if a signal comes first, `work` is cancelled and Stopped raised."""
        assert self._event is not None, "use inside in_loop()"
        if self.signum is not None:  # recorded, though the loop may not have woken the event yet
            if inspect.iscoroutine(work):
                work.close()
            raise Stopped
        task = asyncio.ensure_future(work)
        waiter = asyncio.ensure_future(self._event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        finally:
            waiter.cancel()
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # it ended some other way while being cancelled; that no longer matters
        raise Stopped

    @property
    def between_retries(self) -> bool:
        """The client is waiting to retry (so nothing of its is on the wire)."""
        return self._between_retries

    @contextmanager
    def refusing_retries(self) -> Iterator[None]:
        """While a create is under way, a signal ends the client's wait before a retry: the retry is not sent."""
        self._refusing_retries = True
        try:
            yield
        finally:
            self._refusing_retries = False

    async def retry_sleep(self, seconds: float) -> None:
        """The API client's wait between two tries of a request (see `refusing_retries`)."""
        if not self._refusing_retries or self._event is None:
            await asyncio.sleep(seconds)
            return
        self._between_retries = True
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return
        finally:
            self._between_retries = False
        raise Stopped


async def run_stoppable(
    service: PredictionService,
    stop: StopSignal,
    model: str,
    model_input: dict[str, object],
    *,
    on_update: OnUpdate,
    notice: Callable[[str], None],
    create_grace: float = CREATE_GRACE,
) -> Result:
    """PredictionService.run, ended by SIGINT or SIGTERM as the module docstring says: then Interrupted is raised."""
    if stop.signum is not None:
        raise Interrupted(stop.signum, "nothing was sent; no prediction was created")
    started = time.monotonic()
    prediction = await _create(service, stop, model, model_input, notice=notice, grace=create_grace)
    try:  # a signal that came while the create was on the wire stops the wait before it starts
        done = await stop.until_stopped(service.wait(prediction, model, started=started, on_update=on_update))
        images = await stop.until_stopped(service.fetch_outputs(done))
    except Stopped:
        assert stop.signum is not None
        raise Interrupted(stop.signum, await _cancel(service, prediction.id)) from None
    return Result(done, images, time.monotonic() - started)


async def _create(
    service: PredictionService,
    stop: StopSignal,
    model: str,
    model_input: dict[str, object],
    *,
    notice: Callable[[str], None],
    grace: float,
) -> Prediction:
    """The new prediction, also when a signal comes while the create is on the wire (within `grace`)."""
    create = asyncio.ensure_future(service.create(model, model_input))
    with stop.refusing_retries():
        try:
            # The shield keeps the create going when the signal comes: cancelling it could lose a new id.
            return await stop.until_stopped(asyncio.shield(create))
        except Stopped:
            pass
        assert stop.signum is not None
        signum = stop.signum
        if not create.done() and not stop.between_retries:
            name = signal.Signals(signum).name
            notice(f"interrupted ({name}): waiting up to {grace:g} s for the answer to the create, to cancel it")
        try:
            return await asyncio.wait_for(create, grace)
        except Stopped:  # the client was waiting to retry: the last try was refused or never connected
            raise Interrupted(signum, "the create was not sent again; no prediction was created") from None
        except TimeoutError:
            raise Interrupted(
                signum,
                f"the API did not answer the create within {grace:g} s, so a prediction may have started; "
                "check the account's predictions",
            ) from None
        except UncertainCreate as exc:
            raise Interrupted(signum, str(exc)) from None
        except ServiceError as exc:
            raise Interrupted(signum, f"no prediction was created ({exc})") from None


async def _cancel(service: PredictionService, prediction_id: str) -> str:
    """Cancel the prediction (bounded) and say what became of it, always naming it."""
    try:
        async with asyncio.timeout(CANCEL_TIMEOUT):
            answer = await service.client.cancel(prediction_id)
    except TimeoutError:
        return f"prediction {prediction_id}: no answer to the cancel within {CANCEL_TIMEOUT:g} s; it may still run"
    except ApiError as exc:
        return f"prediction {prediction_id} could not be cancelled ({exc}); it may still run"
    if answer is None:
        return f"prediction {prediction_id}: cancel sent, but the API has no cancel endpoint; it may run to the end"
    if answer.status == CANCELED:
        return f"prediction {prediction_id} cancelled"
    if answer.terminal:
        return f"prediction {prediction_id} had already {answer.status}; nothing to cancel"
    return f"prediction {prediction_id} is being cancelled"
