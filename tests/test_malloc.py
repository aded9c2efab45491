"""The allocator settings that give image buffers back to the system: applied unless the operator set them."""

from __future__ import annotations

import platform

import pytest

from services.malloc import tune_malloc


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_set_on_glibc_unless_the_environment_says_otherwise():
    assert tune_malloc({}) == ["mmap threshold 128 KiB", "2 arenas"]
    assert tune_malloc({"MALLOC_ARENA_MAX": "4"}) == ["mmap threshold 128 KiB"]
    assert tune_malloc({"MALLOC_ARENA_MAX": "4", "MALLOC_MMAP_THRESHOLD_": "65536"}) == []
