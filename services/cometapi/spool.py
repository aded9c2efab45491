"""Where the bytes of images in flight are kept: in memory up to one budget for the whole process, in temporary
files beyond it, so a burst of jobs never holds all its images in memory at once.

Each image counts against the budget from its first byte until the last reference to it goes (a finalizer gives
its bytes back, or deletes its file): nothing has to remember to release it, and an image dropped half-way
(a failed or cancelled download) is given back too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import weakref
from collections.abc import Callable
from typing import BinaryIO

FLUSH_BYTES = 256 * 1024  # bytes past the budget gathered before a write to the file


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
    """Makes the writers that collect downloaded images, under one budget and in one folder.

    The files are made, written and removed in worker threads: on a disk busy with other writes, creating or
    deleting a file can wait on the file system's journal for a second or more, which on the event loop would hold
    up every job (measured: dozens of stalls over 0.5 s in a burst of 2,000 jobs)."""

    def __init__(self, memory_bytes: int, directory: str | None = None) -> None:
        self.budget = MemoryBudget(memory_bytes)
        self.directory = directory  # None: the system's temporary folder
        self._file_work: set[asyncio.Future[None]] = set()
        self._doomed: list[str] = []  # files to remove on the next trip to a worker thread

    def writer(self) -> SpoolWriter:
        return SpoolWriter(self)

    def in_thread(self, work: Callable[[], None]) -> None:
        """Run file work in a worker thread (right here when no event loop runs, as at exit)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            work()
            return
        future = loop.run_in_executor(None, work)
        self._file_work.add(future)
        future.add_done_callback(self._file_work.discard)

    def remove(self, path: str) -> None:
        """Remove a file in a worker thread; files dropped together (a burst's) share one trip there."""
        self._doomed.append(path)
        if len(self._doomed) == 1:
            self.in_thread(self._remove_doomed)

    def _remove_doomed(self) -> None:
        """(In a worker thread; two such trips may overlap.)"""
        while True:
            try:
                path = self._doomed.pop()
            except IndexError:
                return
            _remove(path)

    async def idle(self) -> None:
        """Until the file work under way is over (files removed after their images were dropped, for instance)."""
        while self._file_work:
            await asyncio.gather(*self._file_work, return_exceptions=True)


class Stored:
    """One image's bytes: `parts` in memory (the pieces as they arrived, counted in the budget), or `path`, a
    temporary file of `size` bytes."""

    __slots__ = ("__weakref__", "parts", "path", "size")

    def __init__(self, parts: tuple[bytes, ...] | None, path: str | None, size: int) -> None:
        self.parts = parts
        self.path = path
        self.size = size


class SpoolWriter:
    """Collects one file's bytes as they arrive: in memory while the budget allows, then in a temporary file
    (written a few hundred KiB at a time, in a worker thread).

    In memory the pieces are kept as they came off the connection, not copied into one buffer: each copy would
    be written into fresh pages, which the kernel must first zero."""

    def __init__(self, spool: ImageSpool) -> None:
        self._spool = spool
        self._parts: list[bytes] | None = []
        self._pending: list[bytes] = []  # past the budget, not written yet
        self._pending_size = 0
        self._file: BinaryIO | None = None
        self._path: str | None = None
        self._flushing: asyncio.Future[None] | None = None
        self.size = 0
        self._taken = 0  # bytes of the budget this writer holds

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._parts is not None:
            if self._spool.budget.try_take(len(chunk)):
                self._taken += len(chunk)
                self._parts.append(chunk)
                return
            # The budget is full: what was collected so far goes to a file, and the rest after it.
            self._pending, self._pending_size, self._parts = self._parts, self._taken, None
            self._spool.budget.give_back(self._taken)
            self._taken = 0
            self._spool.budget.spilled += 1
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= FLUSH_BYTES:
            await self._flush()

    async def _flush(self, *, last: bool = False) -> None:
        pieces, self._pending, self._pending_size = self._pending, [], 0
        # Shielded: a cancelled download leaves the thread to finish its write before `discard` removes the file.
        self._flushing = asyncio.ensure_future(asyncio.to_thread(self._write_out, pieces, last=last))
        await asyncio.shield(self._flushing)

    def _write_out(self, pieces: list[bytes], *, last: bool = False) -> None:
        """(In a worker thread.)"""
        if self._file is None:
            fd, self._path = tempfile.mkstemp(prefix="flux-image-", dir=self._spool.directory)
            self._file = os.fdopen(fd, "wb")
        self._file.writelines(pieces)
        if last:
            self._file.close()

    async def finish(self) -> Stored:
        """The bytes collected; the budget is given back (or the file deleted) once the result is dropped."""
        if self._parts is not None:
            stored = Stored(tuple(self._parts), None, self.size)
            self._parts = None
            weakref.finalize(stored, self._spool.budget.give_back, self._taken)
            self._taken = 0
            return stored
        await self._flush(last=True)  # the file is closed in the same trip to the worker thread
        path, self._file, self._path = self._path, None, None
        assert path is not None
        stored = Stored(None, path, self.size)
        weakref.finalize(stored, self._spool.remove, path)
        return stored

    def discard(self) -> None:
        """Drop what was collected (a failed, refused or cancelled download)."""
        self._parts = None
        self._pending, self._pending_size = [], 0
        self._spool.budget.give_back(self._taken)
        self._taken = 0
        file, path = self._file, self._path
        self._file = self._path = None

        def clean_up() -> None:
            if file is not None:
                file.close()
            if path is not None:
                _remove(path)

        flushing = self._flushing
        if flushing is not None and not flushing.done():
            flushing.add_done_callback(lambda _: self._spool.in_thread(clean_up))
        elif file is not None or path is not None:
            self._spool.in_thread(clean_up)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
