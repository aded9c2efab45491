"""Python's cycle collector, set for a process that makes many short-lived objects for every job.

By default a young collection runs every 700 net allocations, and every tenth one moves survivors towards the
oldest generation, whose collections walk the whole heap (the modules, discord.py's caches, every job in
flight). Under a burst of 2,000 /imagine that took about a seventh of the bot's CPU, and each full pass held the
event loop for about 100 ms. Nearly everything a job makes is freed by reference counting as soon as it is
dropped, so:
- a young collection runs every `YOUNG_THRESHOLD` net allocations;
- what exists once the bot has started (modules, the catalogue, the cogs) is left out of every later collection,
  and the full collections that follow are paced by what was made since (not by the frozen start-up heap);
- at a steady pace the young generation fills slowly (what is freed by reference counting does not count), and
  what a job kept alive for a few seconds reaches the older generations, whose collections then wait for minutes:
  the cyclic garbage of jobs (an interaction, its response, the bytes they hold) piled up and RSS crept. A soak at
  5 commands a second held about 10,000 such objects a minute. `keep_collecting` runs a full collection every
  `COLLECT_EVERY_SECONDS`: with the start-up heap frozen it walks only what was made since, 6-10 ms then.
"""

from __future__ import annotations

import asyncio
import gc

YOUNG_THRESHOLD = 10_000
COLLECT_EVERY_SECONDS = 30.0


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
    """A full collection every `every` seconds, for as long as the bot runs; in a burst, Python's own rule collects
    more often."""
    while True:
        await asyncio.sleep(every)
        gc.collect()
