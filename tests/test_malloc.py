"""The allocator settings: freed memory is reused during a burst and given back to the system afterwards; the
operator's own settings win. Each check runs in a child process, whose allocator it may change."""

from __future__ import annotations

import platform

import pytest

from services.malloc import MMAP_THRESHOLD
from tests.helpers import run_child

MB = 1024 * 1024

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")


def test_set_on_glibc_unless_the_environment_says_otherwise():
    said = run_child(
        """
        import json
        from services.malloc import tune_malloc
        print(json.dumps({
            "none": tune_malloc({}),
            "arenas": tune_malloc({"MALLOC_ARENA_MAX": "4"}),
            "all": tune_malloc({"MALLOC_ARENA_MAX": "4", "MALLOC_MMAP_THRESHOLD_": "65536",
                                "MALLOC_TRIM_THRESHOLD_": "1"}),
        }))
        """
    )
    assert said["none"] == ["mmap threshold 1024 KiB", "free memory given back every 5 s", "2 arenas"]
    assert said["arenas"] == ["mmap threshold 1024 KiB", "free memory given back every 5 s"]
    assert said["all"] == []


def test_freed_buffers_are_kept_for_reuse_until_released():
    """Socket-sized buffers freed during a burst stay in the heap (no fresh pages, which the kernel must zero, for
    the next job), and `release_free_memory` hands them back to the system."""
    seen = run_child(
        """
        import json, os
        from services.malloc import release_free_memory, tune_malloc

        def rss():
            with open("/proc/self/statm") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

        tune_malloc({})
        before = rss()
        blocks = [bytes([n % 251]) * (256 * 1024) for n in range(320)]  # 80 MB of socket-read-sized buffers
        held = rss()
        del blocks
        freed = rss()
        released = release_free_memory()
        print(json.dumps({"held": held - before, "freed": freed - before, "released": rss() - before,
                          "ok": released}))
        """
    )
    assert MMAP_THRESHOLD > 256 * 1024
    assert seen["ok"] is True
    assert isinstance(seen["held"], int) and seen["held"] > 70 * MB
    assert isinstance(seen["freed"], int) and seen["freed"] > 70 * MB  # kept for reuse
    assert isinstance(seen["released"], int) and seen["released"] < 10 * MB  # and given back
