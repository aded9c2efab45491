"""A concurrency limit whose waiters are served round robin between users.

One user queueing twenty jobs does not make everyone else wait behind all twenty: each free slot goes
to the next user in turn, oldest job first.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairLimiter:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.in_use = 0
        # user -> their waiting futures, oldest first; the dict's order is the round-robin ring.
        self._waiting: OrderedDict[int, deque[asyncio.Future[None]]] = OrderedDict()
        # Every waiter's place in line, worked out at once when asked after the line changed (each queued job asks
        # now and then: one by one, each answer walked every user in line, a cost that grew with the line squared).
        self._changes = 0
        self._places: dict[asyncio.Future[None], int] = {}
        self._places_at = -1

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    def position(self, user: int, waiter: asyncio.Future[None]) -> int | None:
        """1-based place in line of `waiter`, or None once it is no longer waiting."""
        if self._places_at != self._changes:
            self._places, self._places_at = self._ranked(), self._changes
        return self._places.get(waiter)

    def _ranked(self) -> dict[asyncio.Future[None], int]:
        """Places in the order the slots will be handed out: round by round, users in the ring's order."""
        places: dict[asyncio.Future[None], int] = {}
        queues = list(self._waiting.values())
        depth = 0
        while queues:
            deeper = []
            for queue in queues:
                places[queue[depth]] = len(places) + 1
                if len(queue) > depth + 1:
                    deeper.append(queue)
            queues, depth = deeper, depth + 1
        return places

    def try_acquire(self) -> bool:
        if self.in_use < self.capacity and not self._waiting:
            self.in_use += 1
            return True
        return False

    def enqueue(self, user: int) -> asyncio.Future[None]:
        """A future that completes when `user` holds a slot (already done if one is free now)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.try_acquire():
            waiter.set_result(None)
        else:
            self._waiting.setdefault(user, deque()).append(waiter)
            self._changes += 1
        return waiter

    def abandon(self, user: int, waiter: asyncio.Future[None]) -> None:
        """Withdraw a waiter (its job was cancelled); gives the slot back if it had been granted."""
        queue = self._waiting.get(user)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self._waiting[user]
            waiter.cancel()
            self._changes += 1
        elif waiter.done() and not waiter.cancelled():
            self.release()

    def release(self) -> None:
        self.in_use -= 1
        while self._waiting and self.in_use < self.capacity:
            user, queue = next(iter(self._waiting.items()))
            waiter = queue.popleft()
            # Move this user to the back of the ring; drop them from it when they have no more waiters.
            del self._waiting[user]
            if queue:
                self._waiting[user] = queue
            self._changes += 1
            if not waiter.done():
                self.in_use += 1
                waiter.set_result(None)

    @asynccontextmanager
    async def slot(self, user: int) -> AsyncIterator[None]:
        waiter = self.enqueue(user)
        try:
            await waiter
        except BaseException:
            self.abandon(user, waiter)
            raise
        try:
            yield
        finally:
            self.release()
