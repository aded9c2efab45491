"""Images in memory are kept in the pieces they were downloaded in, and uploaded from those pieces: no copy of a
whole image is made on the way, and the bytes that arrive are the bytes that came in."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import math
import os
import random
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.cometapi.files import ImageFile
from services.cometapi.spool import ImageSpool, Stored
from ui.uploads import CHUNK, READ_BLOCK, ImageReader, SpilledReader, upload_file, upload_files

KIB = 1024


def pieces(sizes: list[int], seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for size in sizes]


async def test_a_download_in_memory_keeps_the_pieces_it_came_in():
    spool = ImageSpool(memory_bytes=4 * 1024 * KIB)
    writer = spool.writer()
    arrived = pieces([256 * KIB, 256 * KIB, 17 * KIB, 1])
    for piece in arrived:
        await writer.write(piece)
    stored = await writer.finish()
    assert stored.parts is not None
    assert all(kept is came for kept, came in zip(stored.parts, arrived, strict=True))  # the same objects
    image = ImageFile.stored(stored, "image/png", "png")
    assert image.data == b"".join(arrived)
    assert image.head(300 * KIB) == b"".join(arrived)[: 300 * KIB]
    assert image.size == spool.budget.used == sum(map(len, arrived))


def test_the_reader_reads_and_seeks_across_pieces_as_one_file():
    parts = pieces([5, 0, 70_000, 3, 200_000])
    whole = b"".join(parts)
    reader, plain = ImageReader(parts), io.BytesIO(whole)
    for offset, size in ((0, 2), (3, 10), (70_004, 100), (0, -1), (270_000, 50), (270_010, 5), (9, 130_000)):
        reader.seek(offset)
        plain.seek(offset)
        assert reader.read(size) == plain.read(size)
        assert reader.tell() == plain.tell()
    reader.seek(-8, io.SEEK_END)
    target = bytearray(20)
    assert reader.readinto(target) == 8
    assert bytes(target[:8]) == whole[-8:]


async def test_an_upload_sends_the_pieces_from_the_readers_position_in_few_writes():
    received: list[bytes] = []

    async def upload(request: web.Request) -> web.Response:
        form = await request.post()
        field = form["file"]
        assert isinstance(field, web.FileField)
        received.append(field.file.read())
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * 1024 * KIB)
    app.router.add_post("/upload", upload)
    # 100 pieces of 16 KiB (a TLS download's pieces), some larger ones, one past the size of a write.
    parts = pieces([16 * KIB] * 100 + [3, 300 * KIB, 1, CHUNK + 5])
    whole = b"".join(parts)
    sizes: list[int] = []  # of each write to the socket
    trace = aiohttp.TraceConfig()

    async def chunk_sent(_s: object, _c: object, params: aiohttp.TraceRequestChunkSentParams) -> None:
        sizes.append(len(params.chunk))

    trace.on_request_chunk_sent.append(chunk_sent)
    async with TestServer(app) as server, aiohttp.ClientSession(trace_configs=[trace]) as session:
        for start in (0, 123_457):
            image = ImageFile.stored(Stored(tuple(parts), None, len(whole)), "image/png", "png")
            file = upload_file(image, "a.png")
            file.fp.seek(start)
            form = aiohttp.FormData()
            form.add_field("file", file.fp, filename="a.png", content_type="image/png")
            sizes.clear()
            async with session.post(server.make_url("/upload"), data=form) as response:
                assert response.status == 200
            assert received[-1] == whole[start:]
            image_writes = [size for size in sizes if size >= 16 * KIB]
            assert len(image_writes) <= len(whole) // CHUNK + 2  # grouped, not one write per 16 KiB piece
            assert max(image_writes) < 2 * CHUNK  # and never the whole image at once


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor, counting the work sent to its threads."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.trips = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        self.trips += 1
        return super().submit(fn, *args, **kwargs)


def evict_from_page_cache(path: str) -> None:
    """As if the file had been written long ago: its bytes are on the disk only."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


async def test_a_spilled_image_is_uploaded_from_its_file_read_on_the_loop_when_cached_else_in_a_thread():
    received: list[bytes] = []

    async def upload(request: web.Request) -> web.Response:
        # Read in memory (request.post() would write the file to disk through the same threads).
        part = await (await request.multipart()).next()
        assert isinstance(part, aiohttp.BodyPartReader)
        received.append(bytes(await part.read()))
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * 1024 * KIB)
    app.router.add_post("/upload", upload)
    spool = ImageSpool(memory_bytes=0)  # every image goes to a file
    writer = spool.writer()
    arrived = pieces([16 * KIB] * 64 + [3, 700 * KIB + 7])
    whole = b"".join(arrived)
    for piece in arrived:
        await writer.write(piece)
    image = ImageFile.stored(await writer.finish(), "image/png", "png")
    assert image.parts is None and image.path is not None
    sizes: list[int] = []
    trace = aiohttp.TraceConfig()

    async def chunk_sent(_s: object, _c: object, params: aiohttp.TraceRequestChunkSentParams) -> None:
        sizes.append(len(params.chunk))

    trace.on_request_chunk_sent.append(chunk_sent)
    executor = CountingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    async with TestServer(app) as server, aiohttp.ClientSession(trace_configs=[trace]) as session:
        for start, cached in ((0, True), (300_001, True), (0, False), (300_001, False)):
            if not cached:
                evict_from_page_cache(image.path)
            with upload_files([("a.png", image)]) as files:
                reader = files[0].fp
                assert isinstance(reader, SpilledReader)
                reader.seek(start)
                form = aiohttp.FormData()
                form.add_field("file", reader, filename="a.png", content_type="image/png")
                sizes.clear()
                executor.trips = 0
                async with session.post(server.make_url("/upload"), data=form) as response:
                    assert response.status == 200
            assert reader.closed
            assert received[-1] == whole[start:]
            # Just written, the file is in the page cache: no trip to a thread. Read from the disk: one trip per
            # READ_BLOCK (aiohttp's own file payload makes one per 64 KiB, and one more to close the file).
            if cached:
                assert executor.trips == 0
            else:
                assert 1 <= executor.trips <= math.ceil((len(whole) - start) / READ_BLOCK)
            assert max(sizes) <= CHUNK  # written a socket's worth at a time, never a whole block at once
