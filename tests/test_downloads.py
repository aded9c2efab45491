"""The Downloader against the fake CometAPI's file route (and a bare file host for answers aiohttp won't make).

Covers concurrency, expired files, size caps (declared and streamed), non-images, the URL allow-list and
redirects. A session trace records every request the client starts, so "refused without a request" is checked
on the client's side, not just by the fake.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from cli.harness import KEY  # the key of the `fake` fixture's API
from fakes.cometapi import FakeCometAPI, Outcome
from services.cometapi.client import CometClient, RetryPolicy
from services.cometapi.files import DOWNLOADS_AT_ONCE, MAX_REDIRECTS, Downloader, sniff
from services.cometapi.spool import ImageSpool
from services.errors import DownloadError
from services.locales import render
from services.secrets import Secret

SCHNELL = "black-forest-labs/flux-schnell"
MIB = 1024 * 1024
MAX_BYTES = 1 * MIB
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class RequestLog:
    """Every request the session starts (redirect hops included, as they are separate requests here)."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.config = aiohttp.TraceConfig()
        self.config.on_request_start.append(self._started)

    async def _started(
        self, session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        self.urls.append(str(params.url))


@pytest.fixture
def request_log() -> RequestLog:
    return RequestLog()


@pytest.fixture
async def session(request_log: RequestLog) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(trace_configs=[request_log.config]) as s:
        yield s


def make_downloader(session: aiohttp.ClientSession, *trusted: str, **kwargs: Any) -> Downloader:
    options: dict[str, Any] = {"max_bytes": MAX_BYTES, "timeout": 2.0, "retry": FAST, **kwargs}
    return Downloader(session, trusted_urls=trusted, **options)


@pytest.fixture
def downloader(session: aiohttp.ClientSession, fake: FakeCometAPI) -> Downloader:
    return make_downloader(session, fake.base_url)


async def output_urls(fake: FakeCometAPI, outcome: Outcome | None = None, **model_input: object) -> list[str]:
    """Make a prediction on the fake and wait for it to succeed: its output file URLs."""
    if outcome is not None:
        fake.queue_outcome(outcome)
    async with aiohttp.ClientSession() as session:
        client = CometClient(session, base_url=fake.base_url, api_key=Secret(KEY), retry=FAST)
        created = await client.create(SCHNELL, {"prompt": "a fox", **model_input})
        async with asyncio.timeout(5):
            while True:
                current = await client.get(created.id)
                if current.terminal:
                    break
                await asyncio.sleep(0.01)
    assert current.status == "succeeded"
    if current.output:
        return list(current.output)
    pred = fake.predictions[created.id]
    return pred.file_urls(fake.base_url)  # data_removed: the URLs the files had


class RawFileHost:
    """A bare HTTP/1.1 file host on asyncio streams, for answers aiohttp's server will not produce.

    mode "declared": Content-Length far above the cap, a few bytes, then nothing until the client leaves.
    mode "chunked": no Content-Length, an endless-looking chunked body (up to `total` bytes).
    `sent` counts body bytes written; `done` is set when the handler ends.
    """

    def __init__(self, mode: str, total: int = 256 * MIB) -> None:
        self.mode = mode
        self.total = total
        self.sent = 0
        self.requests = 0
        self.done = asyncio.Event()
        self.base_url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        piece = PNG_SIGNATURE + bytes(64 * 1024 - len(PNG_SIGNATURE))
        try:
            await reader.readuntil(b"\r\n\r\n")
            if self.mode == "declared":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n" % self.total)
                writer.write(piece)
                await writer.drain()
                self.sent += len(piece)
                await reader.read()  # hold the connection until the client goes away
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n")
                while self.sent < self.total:
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    await writer.drain()
                    self.sent += len(piece)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.done.set()
            writer.close()


@pytest.fixture
async def raw_host(request: pytest.FixtureRequest) -> AsyncIterator[RawFileHost]:
    host = RawFileHost(request.param)
    await host.start()
    try:
        yield host
    finally:
        await host.close()


# -- fetching --------------------------------------------------------------------------------------------


async def test_fetch_all_downloads_every_file_at_once(fake: FakeCometAPI, downloader: Downloader) -> None:
    urls = await output_urls(fake, num_outputs=4, output_format="png")
    hold = 0.6
    fake.inject("file", status=None, delay=hold, times=4)
    images = await downloader.fetch_all(urls)
    assert [image.data for image in images] == [fake.file_bytes(url) for url in urls]  # in order
    assert all(sniff(image.data) == ("image/png", "png") for image in images)
    files = fake.requests_for("file")
    assert sorted(r.path for r in files) == sorted(url.removeprefix(fake.base_url) for url in urls)
    # Each answer was held for `hold` seconds: the last request arrived while the first was still held.
    assert max(r.at for r in files) - min(r.at for r in files) < hold


async def test_downloads_past_the_limit_wait_for_one_to_end(
    fake: FakeCometAPI, downloader: Downloader, request_log: RequestLog
) -> None:
    """Each download under way holds socket buffers outside the memory budget: a burst's wait their turn."""
    urls = await output_urls(fake, num_outputs=4, output_format="png")
    wanted = urls * (DOWNLOADS_AT_ONCE // len(urls) + 2)  # a few more than may run at once
    gate = asyncio.Event()
    fake.inject("file", status=None, gate=gate, times=len(wanted))
    fetching = asyncio.gather(*(downloader.fetch(url) for url in wanted))
    await fake.wait_for(lambda: len(fake.requests_for("file")) >= DOWNLOADS_AT_ONCE)
    # Every download was asked for before the first request reached the fake; only the first few were started.
    assert len(request_log.urls) == DOWNLOADS_AT_ONCE
    gate.set()
    images = await fetching
    assert [image.data for image in images] == [fake.file_bytes(url) for url in wanted]
    assert len(request_log.urls) == len(wanted)


async def test_fetch_all_raises_the_first_failure(fake: FakeCometAPI, downloader: Downloader) -> None:
    (url,) = await output_urls(fake)
    missing = url.replace("/0.webp", "/3.webp")  # the fake has no fourth file: 404
    with pytest.raises(DownloadError, match="gone"):
        await downloader.fetch_all([url, missing])


@pytest.mark.parametrize("status", [404, 410])
async def test_an_expired_file_is_gone(fake: FakeCometAPI, downloader: Downloader, status: int) -> None:
    (url,) = await output_urls(fake, Outcome(file_status=status))
    with pytest.raises(DownloadError, match=f"gone;.*\\(HTTP {status}\\)") as info:
        await downloader.fetch(url)
    assert len(fake.requests_for("file")) == 1  # not retried
    # What a user reads comes from the catalogue, in their language, without the status (the log has it).
    assert info.value.text.msgid.startswith("The image file is gone") and "HTTP" not in render(info.value.text, "en")
    assert render(info.value.text, "id") != render(info.value.text, "en")


async def test_a_file_host_5xx_is_retried(fake: FakeCometAPI, downloader: Downloader) -> None:
    (url,) = await output_urls(fake)
    fake.inject("file", status=503)
    image = await downloader.fetch(url)
    assert image.data == fake.file_bytes(url)
    assert len(fake.requests_for("file")) == 2


async def test_a_file_host_that_keeps_failing_gives_up(fake: FakeCometAPI, downloader: Downloader) -> None:
    (url,) = await output_urls(fake)
    fake.inject("file", status=502, times=10)
    with pytest.raises(DownloadError, match="HTTP 502"):
        await downloader.fetch(url)
    assert len(fake.requests_for("file")) == FAST.attempts


async def test_a_huge_file_is_refused_by_its_content_length(fake: FakeCometAPI, downloader: Downloader) -> None:
    (url,) = await output_urls(fake, Outcome(file_size=64 * MIB))
    with pytest.raises(DownloadError, match="larger than the 1 MiB limit"):
        await downloader.fetch(url)
    assert len(fake.requests_for("file")) == 1


@pytest.mark.parametrize("raw_host", ["declared"], indirect=True)
async def test_a_declared_size_over_the_cap_is_refused_before_reading(
    session: aiohttp.ClientSession, raw_host: RawFileHost
) -> None:
    # The host sends 64 KiB and then stalls: only the Content-Length check can say "too large" here; a
    # downloader that read the body would time out instead.
    downloader = make_downloader(session, raw_host.base_url)
    with pytest.raises(DownloadError, match="larger than the 1 MiB limit"):
        await downloader.fetch(f"{raw_host.base_url}/out-0.png")
    assert raw_host.requests == 1


@pytest.mark.parametrize("raw_host", ["chunked"], indirect=True)
async def test_a_streamed_body_without_a_length_is_cut_off_at_the_cap(
    session: aiohttp.ClientSession, raw_host: RawFileHost
) -> None:
    downloader = make_downloader(session, raw_host.base_url)
    with pytest.raises(DownloadError, match="larger than the 1 MiB limit"):
        await downloader.fetch(f"{raw_host.base_url}/out-0.png")
    await asyncio.wait_for(raw_host.done.wait(), 10)  # the host noticed the client hang up
    assert raw_host.requests == 1
    assert raw_host.sent < raw_host.total // 8  # the cap plus socket buffers, not the whole body


@pytest.mark.parametrize("declared_type", [None, "image/png"])
async def test_an_html_page_is_not_an_image(
    fake: FakeCometAPI, downloader: Downloader, declared_type: str | None
) -> None:
    (url,) = await output_urls(fake, Outcome(not_image=True, file_content_type=declared_type))
    with pytest.raises(DownloadError, match="not a PNG, JPEG, GIF or WebP image"):
        await downloader.fetch(url)


async def test_data_uris_need_no_request(request_log: RequestLog, downloader: Downloader) -> None:
    png = PNG_SIGNATURE + bytes(100)
    image = await downloader.fetch("data:image/png;base64," + base64.b64encode(png).decode())
    assert (image.data, image.extension) == (png, "png")
    with pytest.raises(DownloadError, match="not a PNG"):
        await downloader.fetch("data:image/png;base64," + base64.b64encode(b"<html></html>").decode())
    with pytest.raises(DownloadError, match="unusable"):
        await downloader.fetch("data:text/plain,hello")
    with pytest.raises(DownloadError, match="unusable"):
        await downloader.fetch("data:image/png;base64," + "A" * (2 * MAX_BYTES))
    assert request_log.urls == []


# -- what may be fetched ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/out-0.webp",
        "http://replicate.delivery/out-0.webp",
        "ftp://example.com/out-0.webp",
        "file:///etc/passwd",
        "gopher://example.com/0",
        "/files/abc/0.webp",
    ],
)
async def test_refused_urls_send_no_request(request_log: RequestLog, downloader: Downloader, url: str) -> None:
    with pytest.raises(DownloadError, match="Refusing"):
        downloader.check_url(url)
    with pytest.raises(DownloadError, match="Refusing"):
        await downloader.fetch(url)
    with pytest.raises(DownloadError, match="Refusing"):
        await downloader.fetch_all([url])
    assert request_log.urls == []


async def test_plain_http_only_to_the_trusted_host_and_port(
    fake: FakeCometAPI, request_log: RequestLog, downloader: Downloader
) -> None:
    (url,) = await output_urls(fake)
    downloader.check_url(url)  # the configured API base is trusted
    port = int(fake.base_url.rsplit(":", 1)[1])
    other_port = url.replace(f":{port}/", f":{port + 1 if port < 65535 else port - 1}/")
    with pytest.raises(DownloadError, match="Refusing"):
        await downloader.fetch(other_port)
    assert request_log.urls == []


async def test_https_any_host_is_allowed_unless_switched_off(
    fake: FakeCometAPI, session: aiohttp.ClientSession
) -> None:
    open_downloader = make_downloader(session, fake.base_url)
    open_downloader.check_url("https://replicate.delivery/xezq/abc/out-0.webp")
    open_downloader.check_url("https://any.example.org:8443/x.png")
    strict = make_downloader(session, fake.base_url, "https://files.example.com", https_any_host=False)
    strict.check_url("https://files.example.com/x.png")
    strict.check_url("data:image/png;base64,AAAA")
    with pytest.raises(DownloadError, match="Refusing"):
        strict.check_url("https://replicate.delivery/xezq/abc/out-0.webp")


@pytest.mark.parametrize(
    "url",
    [
        "https://replicate.delivery:99999/out-0.webp",  # port out of range
        "https://replicate.delivery:abc/out-0.webp",  # port not a number
        "http://[::1/out-0.webp",  # broken IPv6 host
    ],
)
async def test_a_malformed_url_is_a_download_error(request_log: RequestLog, downloader: Downloader, url: str) -> None:
    # Output URLs come from the API: a malformed one must be a DownloadError, not a ValueError escaping.
    with pytest.raises(DownloadError):
        downloader.check_url(url)
    with pytest.raises(DownloadError):
        await downloader.fetch(url)
    assert request_log.urls == []


# -- redirects ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "strict"),
    [
        pytest.param("http://evil.example/out-0.webp", False, id="http-elsewhere"),
        pytest.param("file:///etc/passwd", False, id="file"),
        pytest.param("ftp://evil.example/out-0.webp", False, id="ftp"),
        pytest.param("https://evil.example/out-0.webp", True, id="https-elsewhere-when-strict"),
    ],
)
async def test_a_redirect_to_a_refused_url_is_not_followed(
    fake: FakeCometAPI, session: aiohttp.ClientSession, request_log: RequestLog, location: str, strict: bool
) -> None:
    downloader = make_downloader(session, fake.base_url, https_any_host=not strict)
    (url,) = await output_urls(fake)
    fake.inject("file", status=302, headers={"Location": location})
    with pytest.raises(DownloadError, match="Refusing"):
        await downloader.fetch(url)
    assert request_log.urls == [url]
    assert len(fake.requests_for("file")) == 1


@pytest.mark.parametrize("location", ["http://127.0.0.1:99999/out-0.webp", "http://[::1/out-0.webp"])
async def test_a_redirect_with_a_malformed_location_is_a_download_error(
    fake: FakeCometAPI, request_log: RequestLog, downloader: Downloader, location: str
) -> None:
    (url,) = await output_urls(fake)
    fake.inject("file", status=302, headers={"Location": location})
    with pytest.raises(DownloadError):
        await downloader.fetch(url)
    assert request_log.urls == [url]


async def test_an_allowed_redirect_is_followed(
    fake: FakeCometAPI, request_log: RequestLog, downloader: Downloader
) -> None:
    (url,) = await output_urls(fake)
    path = url.removeprefix(fake.base_url)
    fake.inject("file", status=302, headers={"Location": path})  # relative: resolved against the URL
    image = await downloader.fetch(url)
    assert image.data == fake.file_bytes(url)
    assert request_log.urls == [url, url]
    assert len(fake.requests_for("file")) == 2


async def test_endless_redirects_stop(fake: FakeCometAPI, downloader: Downloader) -> None:
    (url,) = await output_urls(fake)
    fake.inject("file", status=302, headers={"Location": url}, times=50)
    with pytest.raises(DownloadError, match="redirects too many times"):
        await downloader.fetch(url)
    assert len(fake.requests_for("file")) == MAX_REDIRECTS + 1


# -- the memory budget ------------------------------------------------------------------------------------


async def test_images_past_the_memory_budget_go_to_files_and_come_back_whole(
    fake: FakeCometAPI, session: aiohttp.ClientSession
) -> None:
    urls = await output_urls(fake, num_outputs=4, output_format="png")
    sizes = [len(fake.file_bytes(url)) for url in urls]
    spool = ImageSpool(memory_bytes=sizes[0] + sizes[1])  # room for about two of the four
    downloader = make_downloader(session, fake.base_url, spool=spool)
    images = [await downloader.fetch(url) for url in urls]  # one after the other: the first two fit
    on_disk = [image for image in images if image.path is not None]
    assert images[0].path is None
    assert images[1].path is None
    assert len(on_disk) == 2
    assert spool.budget.used == sizes[0] + sizes[1] <= spool.budget.limit
    assert spool.budget.spilled == 2
    for image, url in zip(images, urls, strict=True):  # the same bytes, wherever they are kept
        assert image.data == fake.file_bytes(url)
        assert image.size == len(fake.file_bytes(url))
        assert image.content_type == "image/png"
        with image.open() as reader:
            assert reader.read() == fake.file_bytes(url)
    paths = [image.path for image in on_disk]
    assert all(path is not None and os.path.exists(path) for path in paths)
    del images, on_disk, image
    assert spool.budget.used == 0  # dropping the images gives their memory back...
    await spool.idle()  # (files are removed in a worker thread)
    assert not any(path is not None and os.path.exists(path) for path in paths)  # ...and deletes their files


@pytest.mark.parametrize("raw_host", ["chunked"], indirect=True)
async def test_a_download_cut_off_at_the_cap_gives_its_memory_back(
    session: aiohttp.ClientSession, raw_host: RawFileHost
) -> None:
    spool = ImageSpool(memory_bytes=8 * MIB)
    downloader = make_downloader(session, raw_host.base_url, spool=spool)
    with pytest.raises(DownloadError, match="larger than"):
        await downloader.fetch(f"{raw_host.base_url}/out-0.png")
    assert spool.budget.peak > MAX_BYTES // 2  # it was counted while it came in
    assert spool.budget.used == 0


async def test_a_budget_of_zero_keeps_every_image_on_disk(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    (url,) = await output_urls(fake)
    downloader = make_downloader(session, fake.base_url, spool=ImageSpool(memory_bytes=0))
    image = await downloader.fetch(url)
    assert image.path is not None
    assert image.data == fake.file_bytes(url)
    assert sniff(image.head(16)) == (image.content_type, image.extension)
