"""Coalesce a stream of display updates: at most one send per interval, only when the value changed.
The interval runs from the end of one send to the start of the next.

Used for progress edits so that hundreds of jobs respect Discord's rate limits: an update that comes too
soon after the last send is held, and replaced by any newer one, until the interval has passed. With a `settle`
time, every update after the first send is held at least that long: the final message (which `discard`s it)
often comes within it, and then the update would have been shown for less than that anyway, so it is not sent. A `Gate`
shared with other coalescers (a channel's edit budget) may hold it longer: the send waits for its turn, and
whatever is newest when the turn comes is sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

V = TypeVar("V")


class Permit(Protocol):
    """Leave to send once, from a `Gate`."""

    def used(self) -> None:
        """The send is over."""

    def unused(self) -> None:
        """Nothing was sent after all: give the permit back."""


class Gate(Protocol):
    def try_enter(self) -> Permit | None:
        """A permit now, or None if the send must wait for one."""

    async def enter(self) -> Permit:
        """A permit, when there is one."""


class _Open:
    """The permit of a coalescer with no gate."""

    def used(self) -> None:
        pass

    def unused(self) -> None:
        pass

    def try_enter(self) -> Permit:
        return self

    async def enter(self) -> Permit:
        return self


OPEN = _Open()  # a gate that never holds anything back, and its permit


class Coalescer(Generic[V]):
    def __init__(
        self, send: Callable[[V], Awaitable[None]], interval: float, gate: Gate = OPEN, *, settle: float = 0.0
    ) -> None:
        self._send = send
        self._interval = interval
        self._settle = settle
        self._gate = gate
        self._last_value: V | None = None
        self._last_time = float("-inf")
        self._pending: V | None = None
        self._timer: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._lock = asyncio.Lock()
        self.sends = 0

    async def push(self, value: V, *, settle: bool = True, settle_for: float | None = None) -> None:
        """Send `value` now if allowed, else hold it. Raises what a held send raised since the last call.
        `settle=False`: not held for the settle time (an update no final message is about to replace);
        `settle_for`: held that long instead (a final message is due later than usual)."""
        self._raise_pending_error()
        if value == self._last_value:
            self._pending = None
            return
        wait = self._last_time + self._interval - time.monotonic()
        if self.sends and settle:
            wait = max(wait, self._settle if settle_for is None else settle_for)
        if wait <= 0 and self._timer is None and not self._lock.locked():
            permit = self._gate.try_enter()
            if permit is not None:
                await self._deliver(value, permit)
                return
        self._pending = value
        if self._timer is None:
            self._timer = asyncio.create_task(self._later(max(0.0, wait)))

    def discard(self) -> None:
        """Forget any held update (the final message replaces it)."""
        self._pending = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _later(self, wait: float) -> None:
        await asyncio.sleep(wait)
        async with self._lock:
            pass  # a send still in flight: the interval counts from its end
        left = self._last_time + self._interval - time.monotonic()
        if left > 0:
            await asyncio.sleep(left)
        permit = await self._gate.enter()  # meanwhile newer updates replace the held one
        self._timer = None
        value, self._pending = self._pending, None
        if value is None or value == self._last_value:
            permit.unused()
            return
        try:
            await self._deliver(value, permit)
        except Exception as exc:  # surfaced to the job on its next push
            self._error = exc

    async def _deliver(self, value: V, permit: Permit) -> None:
        try:
            async with self._lock:
                self._last_time = time.monotonic()  # holds back other updates while this one is in flight
                self._last_value = value
                self.sends += 1
                try:
                    await self._send(value)
                finally:
                    # The interval runs from the end of the send: two sends then *arrive* at least `interval`
                    # apart even when the first one took longer to get there than the second (measured under
                    # load, 1 job in 12 had two edits arrive 1.42-1.49 s apart when it ran from the start).
                    self._last_time = time.monotonic()
        finally:
            permit.used()  # also when cancelled: a permit must never stay taken

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
