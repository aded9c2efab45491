"""The prediction service: one object that creates, waits for, resumes, cancels and downloads predictions.

It owns one aiohttp session for the API and the file downloads, and the learned poll timings. It is built from
plain values (a `Connection` and each model's typical duration), not from the settings or the catalogue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from services.cometapi.client import CometClient, Guard, RetryPolicy, Sleep
from services.cometapi.connection import Connection
from services.cometapi.files import Downloader, ImageFile
from services.cometapi.polling import DurationStats, OnUpdate, PollTuning, wait_for
from services.cometapi.predictions import Prediction
from services.cometapi.spool import ImageSpool


@dataclass(frozen=True)
class Result:
    prediction: Prediction
    images: list[ImageFile]
    seconds: float


class PredictionService:
    def __init__(
        self,
        client: CometClient,
        downloader: Downloader,
        *,
        deadline_seconds: float,
        stats: DurationStats | None = None,
    ) -> None:
        self.client = client
        self.downloader = downloader
        self.deadline_seconds = deadline_seconds
        self.stats = stats or DurationStats({})

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        api: Connection,
        *,
        typical_seconds: Mapping[str, tuple[float, float]] | None = None,
        retry: RetryPolicy | None = None,
        tuning: PollTuning | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> AsyncIterator[PredictionService]:
        """`typical_seconds`: each model's usual duration (model id -> (low, high)), until it is learned.
        `sleep` is the API client's wait between retries (the CLI makes it end early on Ctrl-C)."""
        connector = aiohttp.TCPConnector(limit=100, ttl_dns_cache=300)
        # No cookie jar: the API authenticates by key, and nothing one host sets is sent on to another (an image
        # host, a link in a prompt); nor is a jar filtered for every poll.
        async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as session:
            client = CometClient(
                session,
                base_url=api.base_url,
                api_key=api.api_key,
                connect_timeout=api.connect_timeout,
                read_timeout=api.read_timeout,
                retry=retry,
                sync_wait=api.sync_wait_seconds,
                sleep=sleep,
            )
            downloader = Downloader(
                session,
                max_bytes=api.max_download_bytes,
                timeout=api.download_timeout,
                trusted_urls=[api.base_url],
                retry=retry,
                spool=ImageSpool(api.image_memory_bytes),
            )
            stats = DurationStats(dict(typical_seconds or {}), tuning)
            yield cls(client, downloader, deadline_seconds=api.prediction_deadline, stats=stats)

    async def create(self, model: str, model_input: dict[str, object], *, guard: Guard | None = None) -> Prediction:
        """Create a prediction; `guard` is awaited before each retry of the create (a 429, a connection never made)
        and stops it by raising: then nothing was created (client.py)."""
        return await self.client.create(model, model_input, guard=guard)

    async def wait(
        self,
        prediction: Prediction,
        model: str,
        *,
        started: float | None = None,
        on_update: OnUpdate | None = None,
        guard: Guard | None = None,
    ) -> Prediction:
        """Wait for a prediction made at monotonic time `started` (default: now); `guard` is awaited before each
        request (it raises to stop)."""
        started = time.monotonic() if started is None else started
        return await wait_for(
            self.client,
            prediction,
            model=model,
            stats=self.stats,
            started=started,
            deadline=started + self.deadline_seconds,
            on_update=on_update,
            guard=guard,
        )

    async def resume(
        self,
        prediction_id: str,
        model: str,
        *,
        age: float,
        on_update: OnUpdate | None = None,
        guard: Guard | None = None,
    ) -> Prediction:
        """Pick up a prediction created `age` seconds ago (e.g. before a restart): poll it, never recreate it."""
        started = time.monotonic() - age
        if guard is not None:
            await guard()
        current = await self.client.get(prediction_id)
        return await self.wait(current, model, started=started, on_update=on_update, guard=guard)

    async def get(self, prediction_id: str) -> Prediction:
        return await self.client.get(prediction_id)

    async def fetch_outputs(self, prediction: Prediction) -> list[ImageFile]:
        return await self.downloader.fetch_all(prediction.output)

    async def cancel(self, prediction_id: str) -> None:
        await self.client.cancel(prediction_id)

    async def run(self, model: str, model_input: dict[str, object], *, on_update: OnUpdate | None = None) -> Result:
        """Create, wait and download: the whole job, for callers that keep no records (the CLI)."""
        started = time.monotonic()
        prediction = await self.create(model, model_input)
        done = await self.wait(prediction, model, started=started, on_update=on_update)
        images = await self.fetch_outputs(done)
        return Result(done, images, time.monotonic() - started)
