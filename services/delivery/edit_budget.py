"""A budget of message edits shared by everything shown in one channel: at most `limit` in any `window` seconds.

Discord limits edits through the channel endpoints per channel (about 5 per 5 s), whichever message they
edit, so eight jobs in one channel each editing their own line every 1.5 s run into it together. Progress
edits take a slot here in turn (first come, first served, so no job's line is starved) and wait while the
channel has none; results and failures `spend` a slot without waiting: they are counted, so the progress
lines make room for them, but never held up.

A slot counts from when it is taken until `window` seconds after its send ended: two edits `limit` apart
then *arrive* at least `window` apart even when the first one was slow to get there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
SWEEP_FLOOR = 64  # idle channels are forgotten once there are more than this (and twice as many as last time)


class Slot:
    """One edit's place in a channel's budget: call `used()` when the send is over, `unused()` if nothing was sent."""

    __slots__ = ("_budget", "_key", "ended")

    def __init__(self, budget: EditBudget[Any], key: Hashable) -> None:
        self._budget = budget
        self._key = key
        self.ended: float | None = None  # None while the send is under way: it counts until then

    def used(self) -> None:
        if self.ended is None:
            self.ended = self._budget.clock()
            self._budget._serve(self._key)

    def unused(self) -> None:
        if self.ended is None:
            self._budget._give_back(self._key, self)

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.used()


@dataclass
class _Channel:
    slots: list[Slot] = field(default_factory=list)
    waiters: deque[asyncio.Future[Slot]] = field(default_factory=deque)
    timer: asyncio.TimerHandle | None = None


class EditBudget(Generic[K]):
    def __init__(self, limit: int, window: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("an edit budget needs a limit of at least 1 and a positive window")
        self.limit = limit
        self.window = window
        self.clock = clock
        self._channels: dict[K, _Channel] = {}
        self._sweep_at = SWEEP_FLOOR

    def try_take(self, key: K) -> Slot | None:
        """A slot now if the channel has one free and nobody is waiting for it, else None."""
        channel = self._channels.get(key)
        if channel is not None and (channel.waiters or not self._has_room(channel)):
            return None
        return self._open(key)

    async def take(self, key: K) -> Slot:
        """A slot, when the channel has one; waiters are served in the order they came."""
        slot = self.try_take(key)
        if slot is not None:
            return slot
        channel = self._channels[key]  # try_take only refuses a channel it knows
        waiter: asyncio.Future[Slot] = asyncio.get_running_loop().create_future()
        channel.waiters.append(waiter)
        self._serve(key)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                waiter.result().unused()  # granted just as the wait was cancelled: give it back
            else:
                with contextlib.suppress(ValueError):
                    channel.waiters.remove(waiter)
            raise

    def spend(self, key: K) -> Slot:
        """A slot at once, even over the limit: for sends that must not wait (results, failures)."""
        return self._open(key)

    def in_use(self, key: K) -> int:
        """Slots that still count in this channel's window."""
        channel = self._channels.get(key)
        if channel is None:
            return 0
        self._has_room(channel)  # forgets the slots that no longer count
        return len(channel.slots)

    def _open(self, key: K) -> Slot:
        channel = self._channels.get(key)
        if channel is None:
            if len(self._channels) >= self._sweep_at:
                self._sweep()
            channel = self._channels[key] = _Channel()
        slot = Slot(self, key)
        channel.slots.append(slot)
        return slot

    def _has_room(self, channel: _Channel) -> bool:
        horizon = self.clock() - self.window
        channel.slots = [s for s in channel.slots if s.ended is None or s.ended > horizon]
        return len(channel.slots) < self.limit

    def _give_back(self, key: K, slot: Slot) -> None:
        channel = self._channels.get(key)
        if channel is not None and slot in channel.slots:
            channel.slots.remove(slot)
        self._serve(key)

    def _serve(self, key: K) -> None:
        """Hand free slots to waiters in order; if some must still wait, come back when the next slot frees."""
        channel = self._channels.get(key)
        if channel is None:
            return
        if channel.timer is not None:
            channel.timer.cancel()
            channel.timer = None
        while channel.waiters and self._has_room(channel):
            waiter = channel.waiters.popleft()
            if not waiter.done():  # a cancelled wait is skipped
                waiter.set_result(self._open(key))
        if channel.waiters:
            ends = [s.ended for s in channel.slots if s.ended is not None]
            if ends:  # otherwise every slot is still being sent, and the first to end serves again
                delay = max(0.0, min(ends) + self.window - self.clock())
                channel.timer = asyncio.get_running_loop().call_later(delay, self._serve, key)
        elif not channel.slots:
            del self._channels[key]

    def _sweep(self) -> None:
        for key, channel in list(self._channels.items()):
            self._has_room(channel)  # forgets the slots that no longer count
            if not channel.waiters and not channel.slots:
                del self._channels[key]
        self._sweep_at = max(SWEEP_FLOOR, 2 * len(self._channels))
