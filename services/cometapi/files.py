"""Fetch image files: concurrently, streamed, capped in size and time, from allowed places only.

Allowed: `data:` URIs, `https:` URLs (any host, or only trusted ones when `https_any_host` is off), and
plain `http:` only to the trusted hosts (the configured API base, for tests and proxies). Redirects are
followed by hand so each hop passes the same check.

Downloaded bytes are recognised by their signature (PNG, JPEG, GIF, WebP), never by a declared type. They are
collected by an `ImageSpool`: in memory under the process's budget, in a temporary file beyond it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import logging
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import aiohttp

from services.cometapi.client import RetryPolicy, Sleep
from services.cometapi.spool import ImageSpool, SpoolWriter, Stored
from services.errors import DownloadError
from services.text import Text, _

# (content type, file extension) by leading bytes; the declared Content-Type is not trusted.
_SIGNATURES: tuple[tuple[bytes, int, tuple[str, str]], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, ("image/png", "png")),
    (b"\xff\xd8\xff", 0, ("image/jpeg", "jpg")),
    (b"GIF87a", 0, ("image/gif", "gif")),
    (b"GIF89a", 0, ("image/gif", "gif")),
    (b"WEBP", 8, ("image/webp", "webp")),
)


class ImageFile:
    """An image file: its bytes in memory (one piece, or the pieces a download arrived in), or in a temporary
    file (a download past the memory budget).

    `data` joins the pieces, or reads the file, each time it is asked for: the hot path (sizes, uploads) uses
    `head`, `parts` and `open` instead, which copy nothing.
    """

    __slots__ = ("_parts", "_stored", "content_type", "extension", "size")

    def __init__(self, data: bytes, content_type: str, extension: str) -> None:
        self._parts: tuple[bytes, ...] | None = (data,)
        self._stored: Stored | None = None
        self.content_type = content_type
        self.extension = extension
        self.size = len(data)

    @classmethod
    def stored(cls, stored: Stored, content_type: str, extension: str) -> ImageFile:
        image = cls(b"", content_type, extension)
        image._parts, image._stored, image.size = stored.parts, stored, stored.size
        return image

    @property
    def path(self) -> str | None:
        """The temporary file holding the bytes, when they are not in memory."""
        return self._stored.path if self._stored is not None else None

    @property
    def parts(self) -> tuple[bytes, ...] | None:
        """The bytes in memory, in pieces; None when they are in a file."""
        return self._parts

    @property
    def data(self) -> bytes:
        if self._parts is not None:
            return self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        assert self._stored is not None
        assert self._stored.path is not None
        with open(self._stored.path, "rb") as file:
            return file.read()

    def head(self, size: int) -> bytes:
        if self._parts is not None:
            return _head_of(self._parts, size)
        with self.open() as file:
            return file.read(size)

    def open(self) -> BinaryIO:
        """A reader of the bytes (shares them when they are in memory in one piece)."""
        if self._parts is not None:
            return io.BytesIO(self.data)
        assert self._stored is not None
        assert self._stored.path is not None
        return open(self._stored.path, "rb")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageFile):
            return NotImplemented
        same_kind = (self.content_type, self.extension, self.size) == (other.content_type, other.extension, other.size)
        return same_kind and self.data == other.data

    __hash__ = None  # type: ignore[assignment]  # compared by content, which may live in a file

    def __repr__(self) -> str:
        where = f"file {self.path}" if self._parts is None else "memory"
        return f"ImageFile({self.content_type}, {self.size} bytes in {where})"


def sniff(data: bytes) -> tuple[str, str] | None:
    """(content type, extension) when `data` starts like a PNG, JPEG, GIF or WebP file."""
    for magic, offset, kind in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic and (offset == 0 or data[:4] == b"RIFF"):
            return kind
    return None


def as_image(data: bytes, what: str) -> ImageFile:
    kind = sniff(data)
    if kind is None:
        raise ValueError(f"{what} is not a PNG, JPEG, GIF or WebP image")
    return ImageFile(data, *kind)


_DATA_URI = re.compile(r"data:([\w/+.-]*)((?:;[\w=.-]+)*?)(;base64)?,(.*)", re.S)


def decode_data_uri(uri: str, max_bytes: int) -> bytes:
    match = _DATA_URI.fullmatch(uri.strip())
    if match is None or not match[3]:
        raise ValueError("not a base64 data: URI")
    payload = match[4]
    if len(payload) * 3 // 4 > max_bytes:
        raise ValueError(f"larger than {max_bytes // 1024} KiB")
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        raise ValueError("broken base64 in data: URI") from None


def encode_data_uri(image: ImageFile) -> str:
    return f"data:{image.content_type};base64,{base64.b64encode(image.data).decode('ascii')}"


log = logging.getLogger(__name__)

CHUNK = 64 * 1024
DEFAULT_MEMORY_BYTES = 32 * 1024 * 1024  # images held in memory before they go to temporary files
MAX_REDIRECTS = 3
# Downloads under way at once. Each holds socket reads and a file's pending writes (up to about 1 MiB) outside the
# memory budget, so in a burst their number, not only the budget, bounds the memory images take.
DOWNLOADS_AT_ONCE = 32
EXPIRED = frozenset({404, 410})
NOT_AN_IMAGE = _("The downloaded file is not a PNG, JPEG, GIF or WebP image.")
HOST_ERROR = _("The image host answered with an error.")


def host_of(url: str) -> str:
    """`host:port` as compared against the trusted list."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return f"{(parts.hostname or '').lower()}:{port}"


class Downloader:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        max_bytes: int,
        timeout: float,
        trusted_urls: Iterable[str] = (),
        https_any_host: bool = True,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        spool: ImageSpool | None = None,
    ) -> None:
        self._session = session
        self.spool = spool or ImageSpool(DEFAULT_MEMORY_BYTES)
        self._max = max_bytes
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._trusted = {host_of(url) for url in trusted_urls}
        self._https_any_host = https_any_host
        self._retry = retry or RetryPolicy(attempts=3, max_delay=4.0)
        self._sleep = sleep
        self._downloading = asyncio.Semaphore(DOWNLOADS_AT_ONCE)

    @property
    def session(self) -> aiohttp.ClientSession:
        return self._session

    def check_url(self, url: str) -> None:
        """Raise DownloadError unless `url` is one we are willing to fetch."""
        try:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            if scheme == "data":
                return
            trusted = host_of(url) in self._trusted
        except ValueError:  # a malformed host or port: urlsplit and SplitResult.port raise ValueError
            raise DownloadError(_("Refusing to fetch a malformed URL.")) from None
        if scheme == "https" and (self._https_any_host or trusted):
            return
        if scheme == "http" and trusted:
            return
        refused = _("Refusing to fetch a link from {host}.", host=repr(parts.hostname))
        raise DownloadError(refused, logged=f"{scheme or 'relative'} URL")

    async def fetch_all(self, urls: Sequence[str]) -> list[ImageFile]:
        """All of them at once; the first failure cancels the rest and is raised as it is."""
        tasks = [asyncio.ensure_future(self.fetch(url)) for url in urls]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def fetch(self, url: str) -> ImageFile:
        self.check_url(url)
        if url.startswith("data:"):
            try:
                data = decode_data_uri(url, self._max)
            except ValueError as exc:
                raise DownloadError(_("The image data is unusable."), logged=str(exc)) from None
            try:
                return as_image(data, "The downloaded file")
            except ValueError:
                raise DownloadError(NOT_AN_IMAGE) from None
        stored = await self._fetch_with_retries(url)
        kind = sniff(_head_of(stored.parts, 16) if stored.parts is not None else _head(stored))
        if kind is None:
            raise DownloadError(NOT_AN_IMAGE)
        return ImageFile.stored(stored, *kind)

    async def _fetch_with_retries(self, url: str) -> Stored:
        for attempt in range(self._retry.attempts):
            try:
                return await self._fetch_once(url)
            except (TimeoutError, aiohttp.ClientError) as exc:
                failure = DownloadError(_("Downloading the image failed."), logged=type(exc).__name__ or "timeout")
            except _Transient as exc:
                failure = DownloadError(HOST_ERROR, logged=str(exc))
            if attempt + 1 < self._retry.attempts:
                log.info("%s; retrying", failure)
                await self._sleep(self._retry.backoff(attempt))
        raise failure

    async def _fetch_once(self, url: str) -> Stored:
        async with self._downloading:
            return await self._fetch_gated(url)

    async def _fetch_gated(self, url: str) -> Stored:
        for _redirect in range(MAX_REDIRECTS + 1):
            async with self._session.get(url, timeout=self._timeout, allow_redirects=False) as response:
                if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                    try:
                        url = urljoin(url, response.headers["Location"])
                    except ValueError:
                        raise DownloadError(_("The image URL redirects to a malformed URL.")) from None
                    self.check_url(url)
                    continue
                if response.status in EXPIRED:
                    gone = _("The image file is gone; the API deletes its images an hour after making them.")
                    raise DownloadError(gone, logged=f"HTTP {response.status}")
                if response.status >= 500:
                    raise _Transient(f"HTTP {response.status}")
                if response.status != 200:
                    raise DownloadError(HOST_ERROR, logged=f"HTTP {response.status}")
                if response.content_length is not None and response.content_length > self._max:
                    raise DownloadError(self._too_large())
                return await self._collect(response.content.iter_any())
        raise DownloadError(_("The image URL redirects too many times."))

    async def _collect(self, chunks: AsyncIterator[bytes]) -> Stored:
        """The body, chunk by chunk, into the spool (memory while its budget allows, else a file)."""
        writer: SpoolWriter = self.spool.writer()
        try:
            async for chunk in chunks:
                await writer.write(chunk)
                if writer.size > self._max:
                    break
        except BaseException:
            writer.discard()
            raise
        if writer.size > self._max:
            writer.discard()
            raise DownloadError(self._too_large())
        try:
            return await writer.finish()
        except BaseException:
            writer.discard()
            raise

    def _too_large(self) -> Text:
        # 0.1, not 0.0999994
        return _("The image is larger than the {limit} MiB limit.", limit=f"{self._max / 1024 / 1024:.3g}")


def _head_of(parts: Sequence[bytes], size: int) -> bytes:
    """The first `size` bytes of the pieces (joining only the pieces it takes)."""
    taken, length = [], 0
    for part in parts:
        if length >= size:
            break
        taken.append(part)
        length += len(part)
    return (taken[0] if len(taken) == 1 else b"".join(taken))[:size]


def _head(stored: Stored) -> bytes:
    assert stored.path is not None
    with open(stored.path, "rb") as file:
        return file.read(16)


class _Transient(Exception):
    """A server-side failure worth another try."""
