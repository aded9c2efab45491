"""Python's cycle collector, set for a process that makes many short-lived objects for every job.

By default a young collection runs every 700 net allocations, and every tenth one moves survivors towards the
oldest generation, whose collections walk the whole heap (the modules, discord.py's caches, every job in
flight). Under a burst of 2,000 /imagine that took about a seventh of the bot's CPU, and each full pass held the
event loop for about 100 ms. Nearly everything a job makes is freed by reference counting as soon as it is
dropped, so:
- a young collection runs every `YOUNG_THRESHOLD` net allocations;
- what exists once the bot has started (modules, the catalogue, the cogs) is left out of every later collection,
  and the full collections that follow are paced by what was made since (not by the frozen start-up heap);
- at a steady pace the young generation fills slowly (what is freed by reference counting does not count), so the
  cyclic garbage of jobs (an interaction, its response, the bytes they hold) would wait minutes for a collection:
  `keep_collecting` collects the two younger generations every few seconds (without it, a soak at 5 commands a
  second held about 10,000 garbage objects at a time, and RSS crept up: docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import gc

YOUNG_THRESHOLD = 10_000
COLLECT_EVERY_SECONDS = 5.0


def tune_collector() -> None:
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


def freeze_startup_objects() -> int:
    """Once started: what exists now stays, so later collections need not walk it (garbage goes first).
    Returns how many objects are left out of collections."""
    gc.collect()
    gc.freeze()
    # A full collection waits until a quarter as many objects as the last one kept have reached the oldest
    # generation. The last one kept the whole start-up heap, which is now frozen: without this (cheap) pass over
    # what is left, the next full collection would wait for tens of thousands of survivors, and RSS would creep.
    gc.collect()
    return gc.get_freeze_count()


async def keep_collecting(every: float = COLLECT_EVERY_SECONDS) -> None:
    """Collect the young and middle generations every `every` seconds, for as long as the bot runs (a few
    milliseconds each: they hold only what was made since); full collections follow by Python's own rule."""
    while True:
        await asyncio.sleep(every)
        gc.collect(1)
