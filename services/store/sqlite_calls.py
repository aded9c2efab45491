"""Calls on the SQLite connection, run one after another in aiosqlite's thread, several per trip there.

A trip to the database thread and back costs far more CPU than a statement on the jobs table (waking the
thread, then waking the event loop with the answer). Calls asked for while a trip is under way wait and go
together on the next one, so a burst of jobs pays a trip per batch instead of one per statement, and the calls
still run in the order they were asked for, each as its own unit (a call that opens a transaction ends it).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import aiosqlite

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], Any]


class SerialCalls:
    """The queue of calls on one aiosqlite connection; at most one trip to its thread is under way."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._queued: list[tuple[Work, asyncio.Future[Any]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)` in the database thread, after every call asked for before it."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queued.append((work, future))
        if self._draining is None:
            self._draining = asyncio.ensure_future(self._drain())
        return await future

    async def idle(self) -> None:
        """Until the calls asked for so far are done."""
        while self._draining is not None:
            await asyncio.shield(self._draining)

    async def _drain(self) -> None:
        batch: list[tuple[Work, asyncio.Future[Any]]] = []
        try:
            while self._queued:
                # A caller that gave up while waiting for its turn is not run (as behind a lock).
                batch = [(work, future) for work, future in self._queued if not future.cancelled()]
                self._queued = []
                if not batch:
                    continue
                outcomes = await self._conn._execute(_run_all, self._conn._conn, [work for work, _ in batch])  # type: ignore[no-untyped-call]
                for (_, future), (failed, value) in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if failed:
                        future.set_exception(value)
                    else:
                        future.set_result(value)
                batch = []
        except BaseException as exc:
            # The connection is closed, or the loop is going away: nobody waiting is left hanging.
            for _, future in [*batch, *self._queued]:
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:
                    future.cancel()
            self._queued = []
            if not isinstance(exc, Exception):
                raise
        finally:
            self._draining = None


def _run_all(db: sqlite3.Connection, works: Sequence[Work]) -> list[tuple[bool, Any]]:
    """(In the database thread.) Each call's result, or the exception it raised, in order."""
    outcomes: list[tuple[bool, Any]] = []
    for work in works:
        try:
            outcomes.append((False, work(db)))
        except Exception as exc:  # handed to the caller that asked for this call
            outcomes.append((True, exc))
    return outcomes
