"""Where the bytes of images in flight are kept: in memory up to one budget for the whole process, in temporary
files beyond it, so a burst of jobs never holds all its images in memory at once.

Each image counts against the budget from its first byte until the last reference to it goes (a finalizer gives
its bytes back, or deletes its file): nothing has to remember to release it, and an image dropped half-way
(a failed or cancelled download) is given back too.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import weakref
from collections.abc import Callable


class MemoryBudget:
    """Bytes of images held in memory, at most `limit` (0: none, every image goes to a file)."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("a memory budget cannot be negative")
        self.limit = limit
        self.used = 0
        self.peak = 0
        self.spilled = 0  # images written to files because the budget was full

    def try_take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        self.peak = max(self.peak, self.used)
        return True

    def give_back(self, size: int) -> None:
        self.used = max(0, self.used - size)


class ImageSpool:
    """Makes the writers that collect downloaded images, under one budget and in one folder."""

    def __init__(self, memory_bytes: int, directory: str | None = None) -> None:
        self.budget = MemoryBudget(memory_bytes)
        self.directory = directory  # None: the system's temporary folder

    def writer(self) -> SpoolWriter:
        return SpoolWriter(self)


class Stored:
    """One image's bytes: `data` in memory (counted in the budget), or `path`, a temporary file of `size` bytes."""

    __slots__ = ("__weakref__", "data", "path", "size")

    def __init__(self, data: bytes | None, path: str | None, size: int) -> None:
        self.data = data
        self.path = path
        self.size = size


class SpoolWriter:
    """Collects one file's bytes as they arrive: in memory while the budget allows, then in a temporary file."""

    def __init__(self, spool: ImageSpool) -> None:
        self._spool = spool
        self._buffer: io.BytesIO | None = io.BytesIO()  # written into, so its bytes are taken out without a copy
        self._file: io.BufferedWriter | None = None
        self._path: str | None = None
        self.size = 0
        self._taken = 0  # bytes of the budget this writer holds
        self._release: Callable[[], None] | None = None

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._buffer is not None:
            if self._spool.budget.try_take(len(chunk)):
                self._taken += len(chunk)
                self._buffer.write(chunk)
                return
            self._spill()
        assert self._file is not None
        self._file.write(chunk)

    def _spill(self) -> None:
        """The budget is full: what was collected so far goes to a file, and the rest after it."""
        assert self._buffer is not None
        fd, self._path = tempfile.mkstemp(prefix="flux-image-", dir=self._spool.directory)
        self._file = os.fdopen(fd, "wb")
        self._file.write(self._buffer.getbuffer())
        self._buffer = None
        self._spool.budget.give_back(self._taken)
        self._taken = 0
        self._spool.budget.spilled += 1

    def finish(self) -> Stored:
        """The bytes collected; the budget is given back (or the file deleted) once the result is dropped."""
        if self._buffer is not None:
            data = self._buffer.getvalue()  # the buffer's own bytes object, not a copy
            self._buffer = None
            stored = Stored(data, None, self.size)
            weakref.finalize(stored, self._spool.budget.give_back, self._taken)
            self._taken = 0
            return stored
        assert self._file is not None
        assert self._path is not None
        self._file.close()
        self._file = None
        stored = Stored(None, self._path, self.size)
        weakref.finalize(stored, _remove, self._path)
        self._path = None
        return stored

    def discard(self) -> None:
        """Drop what was collected (a failed or refused download)."""
        self._buffer = None
        self._spool.budget.give_back(self._taken)
        self._taken = 0
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._path is not None:
            _remove(self._path)
            self._path = None


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
