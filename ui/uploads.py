"""Image files for Discord uploads, sent without copying their bytes.

discord.File wants a file object. A `BytesIO` over an image's bytes would be copied whole by aiohttp before the
upload (its payload asks the buffer for a writable view, which unshares the bytes), and a whole image written at
once is copied again into the socket's buffer. An image in memory is therefore given as an `ImageReader` over
its pieces (as a download arrived in them), which aiohttp sends with `_ReaderPayload`: 64 KiB at a time, waiting
for the socket to drain. An image spilled to a temporary file is given as a `SpilledReader`, sent by
`_SpilledPayload`: aiohttp's own file payload goes to a worker thread for every 64 KiB it reads, and each of those
trips costs more CPU than the read itself. A spilled image was written moments before, so its bytes are usually
still in the page cache: those are copied on the event loop (a read that cannot wait), the rest in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import os
from collections.abc import Iterator, Sequence
from typing import Any

import discord
from aiohttp import payload

from services.cometapi.files import ImageFile

CHUNK = 64 * 1024  # bytes per socket write (what the socket does not take at once is copied); small pieces are grouped
READ_BLOCK = 256 * 1024  # bytes of a spilled image read at a time (per trip to a worker thread, where one is needed)
# Linux's RWF_NOWAIT: a read that takes only what the page cache holds, instead of waiting for the disk.
_read_cached: bool = hasattr(os, "RWF_NOWAIT")


async def read_block(fd: int, size: int, position: int) -> memoryview | bytes:
    """Up to `size` bytes of the file from `position` (empty only at its end): what the page cache holds at once,
    else from a worker thread, as a read from the disk may wait."""
    global _read_cached
    if _read_cached:
        buffer = bytearray(size)
        try:
            got = os.preadv(fd, [buffer], position, os.RWF_NOWAIT)
        except BlockingIOError:
            got = 0  # not in the page cache
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            _read_cached, got = False, 0  # a file system (or kernel) without such reads
        if got:
            return memoryview(buffer)[:got]
    return await asyncio.to_thread(os.pread, fd, size, position)


class ImageReader(io.BufferedIOBase):
    """A read-only, seekable file over pieces of bytes in memory that shares them (never copies them whole)."""

    def __init__(self, parts: Sequence[bytes]) -> None:
        super().__init__()
        self.parts = [memoryview(part) for part in parts if part]
        self.size = sum(len(part) for part in self.parts)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def pieces(self, start: int, end: int) -> Iterator[memoryview]:
        """Views of the bytes from `start` to `end`, piece by piece."""
        offset = 0
        for part in self.parts:
            lo, hi = max(start - offset, 0), min(end - offset, len(part))
            if lo < hi:
                yield part[lo:hi]
            offset += len(part)

    def read(self, size: int | None = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self._position + size)
        chunk = b"".join(self.pieces(self._position, end))
        self._position += len(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        filled = 0
        for piece in self.pieces(self._position, self._position + len(target)):
            target[filled : filled + len(piece)] = piece
            filled += len(piece)
        self._position += filled
        return filled


class _ReaderPayload(payload.Payload):
    """An `ImageReader` as a request body part, from its position on, in writes of about `CHUNK` bytes."""

    _autoclose = True  # bytes in memory: nothing to close

    def __init__(self, value: ImageReader, *args: Any, **kwargs: Any) -> None:
        super().__init__(value, *args, **kwargs)
        self._reader = value
        self._start = value.tell()
        self._length = max(0, value.size - self._start)
        self._size = self._length

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self._bytes().decode(encoding, errors)

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self._bytes()

    def _bytes(self) -> bytes:
        return b"".join(self._reader.pieces(self._start, self._start + self._length))

    async def write(self, writer: Any) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        end = self._start + (self._length if content_length is None else min(self._length, content_length))
        group: list[memoryview] = []  # small pieces gathered into one write (a single one is sent as it is)
        grouped = 0
        for piece in self._reader.pieces(self._start, end):
            for at in range(0, len(piece), CHUNK):
                group.append(piece[at : at + CHUNK])
                grouped += len(group[-1])
                if grouped >= CHUNK:
                    await writer.write(_one_write(group))
                    group, grouped = [], 0
        if group:
            await writer.write(_one_write(group))


def _one_write(group: list[memoryview]) -> bytes | memoryview:
    return group[0] if len(group) == 1 else b"".join(group)


payload.register_payload(_ReaderPayload, ImageReader, order=payload.Order.try_first)


class SpilledReader(io.BufferedReader):
    """A spilled image's temporary file, opened for reading; `upload_files` closes it."""

    def __init__(self, path: str) -> None:
        super().__init__(io.FileIO(path, "rb"))


class _SpilledPayload(payload.Payload):
    """A `SpilledReader` as a request body part, from its position on: read `READ_BLOCK` bytes at a time
    (`read_block`), sent in writes of `CHUNK` bytes."""

    _autoclose = True  # not closed here: discord.py sends the same file again when it retries a request

    def __init__(self, value: SpilledReader, *args: Any, **kwargs: Any) -> None:
        super().__init__(value, *args, **kwargs)
        self._fd = value.fileno()
        self._start = value.tell()
        self._length = max(0, os.fstat(self._fd).st_size - self._start)
        self._size = self._length

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return os.pread(self._fd, self._length, self._start).decode(encoding, errors)

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return await asyncio.to_thread(os.pread, self._fd, self._length, self._start)

    async def write(self, writer: Any) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        left = self._length if content_length is None else min(self._length, content_length)
        position = self._start
        while left > 0:
            block = await read_block(self._fd, min(READ_BLOCK, left), position)
            if not block:
                return  # the file is shorter than it was: the request's length check reports it
            view = memoryview(block)
            for at in range(0, len(view), CHUNK):
                await writer.write(view[at : at + CHUNK])
            position += len(block)
            left -= len(block)


payload.register_payload(_SpilledPayload, SpilledReader, order=payload.Order.try_first)


def upload_file(image: ImageFile, filename: str) -> discord.File:
    """The image as a file to attach: read from its temporary file, or shared from memory."""
    if image.parts is None:
        assert image.path is not None
        return discord.File(SpilledReader(image.path), filename=filename)
    return discord.File(ImageReader(image.parts), filename=filename)


@contextlib.contextmanager
def upload_files(group: Sequence[tuple[str, ImageFile]]) -> Iterator[list[discord.File]]:
    """Files to upload, closed once the upload is over (a temporary file's handle)."""
    files = [upload_file(image, name) for name, image in group]
    try:
        yield files
    finally:
        for file in files:
            file.close()
            # discord.File put back `close` as an attribute of the reader, a bound method of itself: a cycle.
            with contextlib.suppress(AttributeError):
                del file.fp.close
            file.fp.close()  # discord.py closes only the files it opened itself (a spilled image's file)
