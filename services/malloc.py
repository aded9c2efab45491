"""glibc's allocator told to give memory back: image buffers are freed to the system, not kept in its heaps.

By default glibc raises its mmap threshold each time a large block is freed, so after the first images have come
and gone, buffers of up to 32 MB come from its heaps, whose free space it seldom returns; and every thread (the
SQLite one, the thread pool) gets heaps of its own. Measured under a burst of 2,000 /imagine: peak RSS 241 MB and
227 MB still held at the end; with a fixed 128 KiB threshold and two heaps, 189 MB and 112 MB (bench/load.py).

Applied once at start-up, before other threads exist. The operator's own MALLOC_ARENA_MAX or
MALLOC_MMAP_THRESHOLD_ (read by glibc itself) wins; elsewhere than glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Mapping

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # from malloc.h
M_ARENA_MAX = -8
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, kept fixed
ARENAS = 2


def tune_malloc(environ: Mapping[str, str]) -> list[str]:
    """Set what the environment did not; returns what was set (empty off glibc)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return []
    done = []
    if "MALLOC_MMAP_THRESHOLD_" not in environ and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1:
        done.append(f"mmap threshold {MMAP_THRESHOLD // 1024} KiB")
    if "MALLOC_ARENA_MAX" not in environ and mallopt(M_ARENA_MAX, ARENAS) == 1:
        done.append(f"{ARENAS} arenas")
    return done
