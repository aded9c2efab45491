"""Image files for Discord uploads, sent without copying their bytes.

discord.File wants a file object. A `BytesIO` over an image's bytes would be copied whole by aiohttp before the
upload (its payload asks the buffer for a writable view, which unshares the bytes), and a whole image written at
once is copied again into the socket's buffer. An image in memory is therefore given as an `ImageReader`, which
aiohttp sends with `_ReaderPayload`: slices of a read-only view, 64 KiB at a time, waiting for the socket to drain.
An image spilled to a temporary file is given by its path (aiohttp streams it from the disk).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from typing import Any, cast

import discord
from aiohttp import payload

from services.cometapi.files import ImageFile

CHUNK = 64 * 1024


class ImageReader(io.BufferedIOBase):
    """A read-only, seekable file over bytes in memory that shares them (never copies them whole)."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.view = memoryview(data)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self.view)}[whence]
        self._position = max(0, base + offset)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        end = len(self.view) if size is None or size < 0 else self._position + size
        chunk = bytes(self.view[self._position : end])
        self._position += len(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.view[self._position : self._position + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)


class _ReaderPayload(payload.BytesPayload):
    """An `ImageReader` as a request body part, from its position on, in slices of its view."""

    def __init__(self, value: ImageReader, *args: Any, **kwargs: Any) -> None:
        super().__init__(value.view[value.tell() :], *args, **kwargs)

    async def write(self, writer: Any) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        view = cast(memoryview, self._value)
        end = len(view) if content_length is None else min(len(view), content_length)
        for start in range(0, end, CHUNK):
            await writer.write(view[start : min(start + CHUNK, end)])


payload.register_payload(_ReaderPayload, ImageReader, order=payload.Order.try_first)


def upload_file(image: ImageFile, filename: str) -> discord.File:
    """The image as a file to attach: read from its temporary file, or shared from memory."""
    if image.path is not None:
        return discord.File(image.path, filename=filename)
    return discord.File(ImageReader(image.data), filename=filename)


@contextlib.contextmanager
def upload_files(group: Sequence[tuple[str, ImageFile]]) -> Iterator[list[discord.File]]:
    """Files to upload, closed once the upload is over (a temporary file's handle)."""
    files = [upload_file(image, name) for name, image in group]
    try:
        yield files
    finally:
        for file in files:
            file.close()
            if isinstance(file.fp, ImageReader):
                # discord.File put back `close` as an attribute of the reader, a bound method of itself: a cycle.
                with contextlib.suppress(AttributeError):
                    del file.fp.close
