"""glibc's allocator told to reuse freed memory during a burst and to give it back to the system afterwards.

By default glibc raises its mmap threshold each time a large block is freed, so after the first images have come
and gone, buffers of up to 32 MB come from its heaps, whose free space it seldom returns; and every thread (the
SQLite one, the thread pool) gets heaps of its own. Measured under a burst of 2,000 /imagine: peak RSS 241 MB and
227 MB still held at the end.

So the thresholds are fixed:
- blocks under 1 MiB (the 256 KiB socket reads, the body chunks parsed out of them) come from the heaps, and
  freed ones are kept there for the next job. Mapped afresh and unmapped when freed, they cost about a seventh
  of the bot's CPU at 10 commands a second (page faults: the kernel zeroes each page of a new mapping);
- larger blocks (whole images) are mapped on their own and unmapped as soon as they are freed;
- the heaps are not trimmed on every free; `release_free_memory` hands their free pages back, every few seconds
  (`keep_releasing`), so RSS comes back down after a burst.

Applied once at start-up, before other threads exist. The operator's own MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_
or MALLOC_TRIM_THRESHOLD_ (read by glibc itself) wins; elsewhere than glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Mapping

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # from malloc.h
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024  # in effect never on a free: `release_free_memory` does it
ARENAS = 2
RELEASE_EVERY_SECONDS = 5.0


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018 (glibc has it; musl and macOS do not)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def tune_malloc(environ: Mapping[str, str]) -> list[str]:
    """Set what the environment did not; returns what was set (empty off glibc)."""
    libc = _libc()
    if libc is None:
        return []
    done = []
    if "MALLOC_MMAP_THRESHOLD_" not in environ and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1:
        done.append(f"mmap threshold {MMAP_THRESHOLD // 1024} KiB")
    if "MALLOC_TRIM_THRESHOLD_" not in environ and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1:
        done.append(f"free memory given back every {RELEASE_EVERY_SECONDS:g} s")
    if "MALLOC_ARENA_MAX" not in environ and libc.mallopt(M_ARENA_MAX, ARENAS) == 1:
        done.append(f"{ARENAS} arenas")
    return done


def release_free_memory() -> bool:
    """Hand the free pages of every heap back to the system; False off glibc."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


async def keep_releasing(every: float = RELEASE_EVERY_SECONDS) -> None:
    """`release_free_memory` every `every` seconds, in a worker thread (it walks the heaps with their locks held,
    which the event loop need not wait for); returns at once off glibc."""
    if not await asyncio.to_thread(release_free_memory):
        return
    while True:
        await asyncio.sleep(every)
        await asyncio.to_thread(release_free_memory)
