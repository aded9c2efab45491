"""The SQLite store's calls: run one after another in aiosqlite's thread, those asked for together in one trip
there, each failing or succeeding on its own; one given up while waiting is not run."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.store import SqliteStore
from tests.helpers import make_job


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "bot.db")
    try:
        yield opened
    finally:
        await opened.close()


def count_trips(store: SqliteStore) -> list[int]:
    """How many calls each trip to aiosqlite's thread carried (aiosqlite's own queueing method, wrapped)."""
    conn: Any = store._conn
    trips: list[int] = []
    queue = conn._execute

    async def counted(fn: Any, *args: Any) -> Any:
        trips.append(len(args[-1]) if args and isinstance(args[-1], list) else 1)
        return await queue(fn, *args)

    conn._execute = counted
    return trips


async def test_calls_asked_for_together_share_one_trip_and_run_in_order(store: SqliteStore):
    trips = count_trips(store)
    jobs = [make_job(id=f"job-{n:02d}") for n in range(20)]
    await asyncio.gather(*(store.create_job(job) for job in jobs))
    assert sum(trips) == 20
    assert len(trips) <= 2, trips  # the first call goes at once, the 19 asked for meanwhile go together
    # In the order asked for: rowid order is insertion order.
    ran: list[str] = await store._in_thread(lambda db: [r[0] for r in db.execute("SELECT id FROM jobs ORDER BY rowid")])
    assert ran == [job.id for job in jobs]
    threads: set[int] = set(
        await asyncio.gather(*(store._in_thread(lambda _db: threading.get_ident()) for _ in range(5)))
    )
    assert threads != {threading.get_ident()} and len(threads) == 1  # the database's own thread, not the loop's


async def test_a_failing_call_fails_alone(store: SqliteStore):
    job = make_job(id="twice")
    results = await asyncio.gather(
        store.create_job(make_job(id="before")),
        store.create_job(job),
        store.create_job(job),  # a duplicate: refused
        store.create_job(make_job(id="after")),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results] == ["NoneType", "NoneType", "DuplicateJob", "NoneType"]
    assert await store.get_job("after") is not None


async def test_a_call_given_up_while_waiting_for_its_turn_is_not_run(store: SqliteStore):
    started, release = threading.Event(), threading.Event()

    def hold(_db: sqlite3.Connection) -> None:
        started.set()
        release.wait(timeout=30)

    first = asyncio.ensure_future(store._in_thread(hold))
    await asyncio.to_thread(started.wait, 30)  # the first call is running in the thread
    waiting = asyncio.ensure_future(store.create_job(make_job(id="given-up")))
    kept = asyncio.ensure_future(store.create_job(make_job(id="kept")))
    await asyncio.sleep(0)  # both are asked for, behind the first
    waiting.cancel()
    release.set()
    await first
    await kept
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await store.get_job("given-up") is None
    assert await store.get_job("kept") is not None


async def test_close_waits_for_the_calls_asked_for(tmp_path: Path):
    store = await SqliteStore.open(tmp_path / "bot.db")
    pending = [asyncio.ensure_future(store.create_job(make_job(id=f"late-{n}"))) for n in range(5)]
    await asyncio.sleep(0)  # asked for
    await store.close()
    await asyncio.gather(*pending)
    reopened = await SqliteStore.open(tmp_path / "bot.db")
    try:
        assert all([await reopened.get_job(f"late-{n}") for n in range(5)])
    finally:
        await reopened.close()
