"""The prediction service end to end against the fake CometAPI: PredictionService.run / wait / resume.

Covers every model family, every final status, progress callbacks, the deadline (with its cancel), resuming
without recreating, and that the API key never leaks. Real objects throughout; only CometAPI is faked.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from cli.harness import KEY  # the key of the `fake` fixture's API
from fakes.cometapi import FakeCometAPI, Outcome
from fakes.common import ManualClock
from services.cometapi.client import CometClient, RetryPolicy
from services.cometapi.files import encode_data_uri, sniff
from services.cometapi.polling import DurationStats, PollTuning, Update, wait_for
from services.cometapi.predictions import Prediction
from services.cometapi.service import PredictionService, Result
from services.config import Settings, load_settings
from services.errors import (
    AuthError,
    Canceled,
    GenerationFailed,
    Rejected,
    TimedOut,
    Unavailable,
    UncertainCreate,
)
from services.rules.catalogue import Request, built_in
from services.secrets import Secret
from tests.helpers import png

SCHNELL = "black-forest-labs/flux-schnell"
PRO = "black-forest-labs/flux-1.1-pro"
TUNING = PollTuning(fine_interval=0.02, min_interval=0.005, max_interval=0.1)
MODELS = built_in()
PRIORS = dict.fromkeys(MODELS, (0.02, 0.5))
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


def png_data_uri() -> str:
    return "data:image/png;base64," + base64.b64encode(png()).decode()


def settings_for(fake: FakeCometAPI, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "cometapi_key": Secret(KEY),
        "cometapi_base_url": fake.base_url,
        "connect_timeout": 1.0,
        "read_timeout": 2.0,
        "prediction_deadline": 10.0,
        "download_timeout": 5.0,
        **changes,
    }
    return Settings(**values)


@asynccontextmanager
async def open_service(fake: FakeCometAPI, **changes: Any) -> AsyncIterator[PredictionService]:
    async with PredictionService.open(settings_for(fake, **changes).api(), retry=FAST, tuning=TUNING) as service:
        service.stats = DurationStats(PRIORS, TUNING)  # the catalogue's priors are real-world seconds
        yield service


@pytest.fixture
async def service(fake: FakeCometAPI) -> AsyncIterator[PredictionService]:
    async with open_service(fake) as opened:
        yield opened


@pytest.fixture
async def stepped() -> AsyncIterator[FakeCometAPI]:
    """A fake whose clock moves 20 ms per poll: the service sees every phase, however busy the machine."""
    clock = ManualClock(per_poll=0.02)
    async with FakeCometAPI(api_key=KEY, speed=0.02, seed=0, image_size=20_000, clock=clock) as server:
        yield server


@pytest.fixture
async def stepped_service(stepped: FakeCometAPI) -> AsyncIterator[PredictionService]:
    async with open_service(stepped) as opened:
        yield opened


class Recorder:
    def __init__(self) -> None:
        self.updates: list[Update] = []

    async def __call__(self, update: Update) -> None:
        self.updates.append(update)

    @property
    def statuses(self) -> list[str]:
        return [u.status for u in self.updates]


def assert_images_match(fake: FakeCometAPI, result: Result, count: int, ext: str) -> None:
    assert len(result.prediction.output) == count
    assert len(result.images) == count
    for url, image in zip(result.prediction.output, result.images, strict=True):
        assert image.data == fake.file_bytes(url)
        assert sniff(image.data) == (image.content_type, image.extension)
        assert image.extension == ext


# -- every model family, end to end ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "options", "count", "ext", "shape"),
    [
        pytest.param("flux-schnell", {"num_outputs": 2}, 2, "webp", "list", id="schnell-2"),
        pytest.param("flux-schnell", {"num_outputs": 4, "output_format": "png"}, 4, "png", "list", id="schnell-4"),
        pytest.param("flux-dev", {"num_outputs": 3, "output_format": "jpg"}, 3, "jpg", "list", id="dev-3"),
        pytest.param("flux-1.1-pro", {}, 1, "webp", "string", id="1.1-pro"),
        pytest.param("flux-1.1-pro-ultra", {"output_format": "png"}, 1, "png", "string", id="ultra"),
    ],
)
async def test_text_models_end_to_end(
    fake: FakeCometAPI,
    service: PredictionService,
    model: str,
    options: dict[str, object],
    count: int,
    ext: str,
    shape: str,
) -> None:
    full, model_input = MODELS.build_input(model, Request("a lighthouse at dusk", options))
    result = await service.run(full, model_input)
    assert result.prediction.status == "succeeded"
    (create,) = fake.creates()
    assert create.path == f"/replicate/v1/models/{full}/predictions"
    assert create.json == {"input": model_input}
    assert fake.predictions[result.prediction.id].spec.output == shape  # list for schnell/dev, str for pro
    assert_images_match(fake, result, count, ext)
    assert len(fake.requests_for("file")) == count


@pytest.mark.parametrize("model", ["flux-kontext-pro", "flux-kontext-max"])
async def test_kontext_edits_an_input_image_sent_as_a_data_uri(
    fake: FakeCometAPI, service: PredictionService, model: str
) -> None:
    image = png_data_uri()
    full, model_input = MODELS.build_input(model, Request("make it night", {"output_format": "jpg"}, (image,)))
    result = await service.run(full, model_input)
    (create,) = fake.creates()
    assert isinstance(create.json, dict)
    assert create.json["input"]["input_image"] == image
    assert base64.b64decode(create.json["input"]["input_image"].split(",", 1)[1]) == png()
    assert_images_match(fake, result, 1, "jpg")


@pytest.mark.parametrize(
    ("model", "options", "count", "ext"),
    [
        pytest.param("flux-schnell", {"num_outputs": 2, "output_format": "png"}, 2, "png", id="schnell-list"),
        pytest.param("flux-1.1-pro", {"output_format": "jpg"}, 1, "jpg", id="pro-string"),
    ],
)
async def test_outputs_as_data_uris(
    fake: FakeCometAPI, service: PredictionService, model: str, options: dict[str, object], count: int, ext: str
) -> None:
    fake.queue_outcome(Outcome(output_shape="data_uri"))
    full, model_input = MODELS.build_input(model, Request("a red fox", options))
    result = await service.run(full, model_input)
    assert all(url.startswith("data:image/") for url in result.prediction.output)
    assert_images_match(fake, result, count, ext)
    assert fake.requests_for("file") == []  # nothing to download


# -- final statuses ----------------------------------------------------------------------------------------


async def test_failed_carries_the_models_error(fake: FakeCometAPI, service: PredictionService) -> None:
    fake.queue_outcome(Outcome(status="failed", error="NSFW content detected. Try a different prompt."))
    with pytest.raises(GenerationFailed, match=r"^NSFW content detected\. Try a different prompt\.$") as caught:
        await service.run(SCHNELL, {"prompt": "a fox"})
    assert caught.value.prediction_id in fake.predictions
    assert fake.requests_for("file") == []


async def test_canceled_raises_canceled(fake: FakeCometAPI, service: PredictionService) -> None:
    fake.queue_outcome(Outcome(status="canceled"))
    with pytest.raises(Canceled) as caught:
        await service.run(SCHNELL, {"prompt": "a fox"})
    assert caught.value.prediction_id in fake.predictions


async def test_aborted_is_a_failure_that_was_not_billed(fake: FakeCometAPI, service: PredictionService) -> None:
    fake.queue_outcome(Outcome(status="aborted"))
    with pytest.raises(GenerationFailed, match="not billed") as caught:
        await service.run(SCHNELL, {"prompt": "a fox"})
    assert caught.value.prediction_id in fake.predictions


async def test_an_unknown_status_is_shown_then_success(
    stepped: FakeCometAPI, stepped_service: PredictionService
) -> None:
    fake, service = stepped, stepped_service
    fake.queue_outcome(Outcome(unknown_status="queued_for_gpu", unknown_status_time=0.3, queue_time=0.05))
    recorder = Recorder()
    result = await service.run(SCHNELL, {"prompt": "a fox"}, on_update=recorder)
    assert result.prediction.status == "succeeded"
    assert "queued_for_gpu" in recorder.statuses
    assert recorder.statuses.index("queued_for_gpu") < recorder.statuses.index("processing")
    assert_images_match(fake, result, 1, "webp")


async def test_data_removed_is_a_failure_saying_so(fake: FakeCometAPI, service: PredictionService) -> None:
    fake.queue_outcome(Outcome(data_removed=True))
    with pytest.raises(GenerationFailed, match="removed"):
        await service.run(SCHNELL, {"prompt": "a fox"})
    assert fake.requests_for("file") == []


@pytest.mark.parametrize("output", [None, [], ""])
async def test_succeeded_without_output_is_a_failure(
    fake: FakeCometAPI, service: PredictionService, output: object
) -> None:
    created = await service.create(SCHNELL, {"prompt": "a fox"})
    fake.inject("get", status=200, json={"id": created.id, "status": "succeeded", "output": output})
    with pytest.raises(GenerationFailed, match="without returning an image") as caught:
        await service.wait(created, SCHNELL)
    assert caught.value.prediction_id == created.id


async def test_odd_and_failing_poll_answers_are_ridden_out(
    fake: FakeCometAPI, service: PredictionService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="services")
    fake.queue_outcome(Outcome(queue_time=0.05, duration=0.3))
    created = await service.create(SCHNELL, {"prompt": "a fox"})
    fake.inject("get", status=200, json={"id": created.id})  # no status: read as still starting
    fake.inject("get", status=200, json={"status": "succeeded"})  # no id: unusable
    fake.inject("get", status=503, times=FAST.attempts)  # outlasts the client's retries
    done = await service.wait(created, SCHNELL)
    assert done.status == "succeeded" and done.id == created.id
    assert len(fake.requests_for("get")) >= 2 + FAST.attempts + 1
    assert any("failed for now" in r.getMessage() for r in caplog.records)
    assert len(fake.creates()) == 1


# -- progress callbacks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["flux-schnell", "flux-dev"])
async def test_on_update_reports_each_change_with_a_rising_percent(
    stepped: FakeCometAPI, stepped_service: PredictionService, model: str
) -> None:
    fake, service = stepped, stepped_service
    fake.queue_outcome(Outcome(queue_time=0.1, duration=0.4))  # the fake's time: 25 polls
    recorder = Recorder()
    full, model_input = MODELS.build_input(model, Request("a fox"))
    result = await service.run(full, model_input, on_update=recorder)
    statuses = recorder.statuses
    assert statuses[0] == "starting"
    assert statuses[-1] == "succeeded"
    first = statuses.index("processing")
    assert set(statuses[:first]) == {"starting"}
    assert set(statuses[first:-1]) == {"processing"}
    processing = [u for u in recorder.updates if u.status == "processing"]
    percents = [u.progress.percent for u in processing if u.progress.percent is not None]
    assert len(percents) == len(processing) >= 3
    assert percents == sorted(set(percents))  # strictly rising: each update is a visible change
    seen = [(u.status, u.progress.percent, u.progress.stage) for u in recorder.updates]
    assert all(a != b for a, b in itertools.pairwise(seen))
    elapsed = [u.elapsed for u in recorder.updates]
    assert elapsed == sorted(elapsed)
    assert recorder.updates[-1].prediction.id == result.prediction.id


@pytest.mark.parametrize("model", ["flux-1.1-pro", "flux-1.1-pro-ultra", "flux-kontext-pro"])
async def test_pro_models_never_get_a_percent(
    stepped: FakeCometAPI, stepped_service: PredictionService, model: str
) -> None:
    fake, service = stepped, stepped_service
    fake.queue_outcome(Outcome(queue_time=0.05, duration=0.4))
    recorder = Recorder()
    images = (png_data_uri(),) if "kontext" in model else ()
    full, model_input = MODELS.build_input(model, Request("a fox", {}, images))
    await service.run(full, model_input, on_update=recorder)
    assert recorder.statuses[0] == "starting" and recorder.statuses[-1] == "succeeded"
    assert "processing" in recorder.statuses
    assert all(u.progress.percent is None for u in recorder.updates)
    assert any(u.progress.stage == "Generating image..." for u in recorder.updates if u.status == "processing")


async def test_tqdm_lines_without_a_total_give_no_percent(
    stepped: FakeCometAPI, stepped_service: PredictionService
) -> None:
    fake, service = stepped, stepped_service
    fake.queue_outcome(Outcome(logs_style="no_total", queue_time=0.05, duration=0.5))
    recorder = Recorder()
    await service.run(SCHNELL, {"prompt": "a fox"}, on_update=recorder)
    assert "processing" in recorder.statuses
    assert all(u.progress.percent is None for u in recorder.updates)


async def test_sync_mode_needs_no_polling(fake: FakeCometAPI) -> None:
    async with open_service(fake, sync_wait_seconds=5) as service:
        result = await service.run(SCHNELL, {"prompt": "a fox", "num_outputs": 2})
    (create,) = fake.creates()
    assert create.headers["Prefer"] == "wait=5"
    assert fake.requests_for("get") == []
    assert_images_match(fake, result, 2, "webp")


# -- the deadline --------------------------------------------------------------------------------------------


async def test_the_deadline_cancels_and_raises_timed_out(fake: FakeCometAPI) -> None:
    fake.queue_outcome(Outcome(status="never"))
    async with open_service(fake, prediction_deadline=0.5) as service:
        with pytest.raises(TimedOut, match="cancelled") as caught:
            await service.run(SCHNELL, {"prompt": "a fox"})
    (pred_id,) = fake.predictions
    assert caught.value.prediction_id == pred_id
    (cancel,) = fake.requests_for("cancel")
    assert cancel.path == f"/replicate/v1/predictions/{pred_id}/cancel"
    assert fake.predictions[pred_id].cancel_requested
    assert fake.predictions[pred_id].status == "canceled"
    assert fake.requests_for("file") == []


@pytest.mark.parametrize("cancel_status", [404, 405])
async def test_a_missing_cancel_endpoint_is_handled_quietly(
    fake: FakeCometAPI, caplog: pytest.LogCaptureFixture, cancel_status: int
) -> None:
    caplog.set_level(logging.WARNING)
    fake.queue_outcome(Outcome(status="never"))
    fake.cancel_status = cancel_status
    async with open_service(fake, prediction_deadline=0.4) as service:
        with pytest.raises(TimedOut):
            await service.run(SCHNELL, {"prompt": "a fox"})
    (pred_id,) = fake.predictions
    (cancel,) = fake.requests_for("cancel")  # asked once, not retried
    assert cancel.path == f"/replicate/v1/predictions/{pred_id}/cancel"
    assert [r for r in caplog.records if r.name.startswith("services")] == []


async def test_wait_for_directly_with_its_own_deadline(fake: FakeCometAPI) -> None:
    fake.queue_outcome(Outcome(status="never"))
    async with aiohttp.ClientSession() as session:
        client = CometClient(session, base_url=fake.base_url, api_key=Secret(KEY), retry=FAST)
        created = await client.create(SCHNELL, {"prompt": "a fox"})
        stats = DurationStats(PRIORS, TUNING)
        with pytest.raises(TimedOut):
            await wait_for(client, created, model=SCHNELL, stats=stats, deadline=time.monotonic() + 0.3)
    assert len(fake.requests_for("cancel")) == 1
    assert len(fake.requests_for("get")) >= 2


# -- resume --------------------------------------------------------------------------------------------------


async def create_elsewhere(fake: FakeCometAPI, model_input: dict[str, object]) -> Prediction:
    """A prediction made by an earlier process (another session and client), as before a restart."""
    async with aiohttp.ClientSession() as session:
        earlier = CometClient(session, base_url=fake.base_url, api_key=Secret(KEY), retry=FAST)
        return await earlier.create(SCHNELL, model_input)


async def test_resume_polls_an_existing_prediction_and_never_creates(
    fake: FakeCometAPI, service: PredictionService
) -> None:
    fake.queue_outcome(Outcome(queue_time=0.05, duration=0.3))
    created = await create_elsewhere(fake, {"prompt": "a fox", "num_outputs": 2})
    recorder = Recorder()
    done = await service.resume(created.id, SCHNELL, age=0.01, on_update=recorder)
    assert done.id == created.id and done.status == "succeeded"
    assert recorder.statuses[-1] == "succeeded"
    assert len(fake.creates()) == 1
    assert service.client.counts["create"] == 0
    assert fake.requests_for("get")
    images = await service.fetch_outputs(done)
    assert [image.data for image in images] == [fake.file_bytes(url) for url in done.output]


async def test_resume_of_a_finished_prediction_takes_one_get(fake: FakeCometAPI, service: PredictionService) -> None:
    created = await create_elsewhere(fake, {"prompt": "a fox"})
    pred = fake.predictions[created.id]
    assert pred.end_offset is not None
    await asyncio.sleep(pred.end_offset - pred.elapsed() + 0.02)
    assert pred.is_terminal()
    done = await service.resume(created.id, SCHNELL, age=60.0)
    assert done.status == "succeeded"
    assert len(fake.requests_for("get")) == 1
    assert len(fake.creates()) == 1


async def test_resume_past_the_deadline_cancels(fake: FakeCometAPI, service: PredictionService) -> None:
    fake.queue_outcome(Outcome(status="never"))
    created = await create_elsewhere(fake, {"prompt": "a fox"})
    with pytest.raises(TimedOut):
        await service.resume(created.id, SCHNELL, age=service.deadline_seconds + 5)
    assert len(fake.creates()) == 1
    (cancel,) = fake.requests_for("cancel")
    assert cancel.path.endswith(f"/{created.id}/cancel")


async def test_resume_of_an_unknown_prediction_is_rejected(fake: FakeCometAPI, service: PredictionService) -> None:
    with pytest.raises(Rejected, match="404"):
        await service.resume("doesnotexist0000000000000a", SCHNELL, age=1.0)
    assert fake.creates() == []


# -- the key stays secret --------------------------------------------------------------------------------------


async def test_the_api_key_never_shows_in_logs_errors_or_settings(
    fake: FakeCometAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    echo = {"error": {"message": f"upstream refused token {KEY}", "type": "comet_api_error", "code": "upstream"}}
    async with open_service(fake) as service:
        # A successful run through retries, one of which echoes the key back.
        fake.inject("get", status=503)
        fake.inject("get", status=500, json=echo)
        fake.inject("get", status=429, headers={"Retry-After": "0"})
        result = await service.run(SCHNELL, {"prompt": "a fox"})
        assert result.images
        # Failures of every kind, some with the key in the API's answer.
        fake.queue_outcome(Outcome(status="failed"))
        with pytest.raises(GenerationFailed) as failed:
            await service.run(SCHNELL, {"prompt": "a fox"})
        errors.append(failed.value)
        fake.inject("create", status=422, json={"title": "Invalid", "detail": f"key {KEY} may not", "status": 422})
        fake.inject("create", drop=True)
        fake.inject("create", status=502, json=echo)
        for _ in range(3):
            try:
                await service.run(SCHNELL, {"prompt": "a fox"})
            except (GenerationFailed, Rejected, UncertainCreate, Unavailable) as exc:
                errors.append(exc)
        fake.inject("get", status=503, json=echo, times=FAST.attempts)
        try:
            await service.client.get(result.prediction.id)
        except Unavailable as exc:
            errors.append(exc)
    async with aiohttp.ClientSession() as session:
        wrong = CometClient(session, base_url=fake.base_url, api_key=Secret(KEY[::-1]), retry=FAST)
        try:
            await wrong.create(SCHNELL, {"prompt": "a fox"})
        except AuthError as exc:
            errors.append(exc)

    kinds = [type(e) for e in errors]
    # The 502 on a create is "uncertain" (it may have been made), like the dropped create before it.
    assert kinds == [GenerationFailed, Rejected, UncertainCreate, UncertainCreate, Unavailable, AuthError]
    for error in errors:
        for text in (str(error), repr(error), "".join(traceback.format_exception(error))):
            assert KEY not in text and KEY[::-1] not in text
    assert "[redacted]" in str(errors[1])  # the echoed key was there, and was scrubbed
    messages = [r.getMessage() for r in caplog.records]
    assert any("retrying" in m for m in messages)  # the retries were logged ...
    assert any("[redacted]" in m for m in messages)  # ... including the answer that echoed the key
    assert KEY not in caplog.text and KEY[::-1] not in caplog.text
    for record in caplog.records:
        assert KEY not in record.getMessage()
        assert KEY not in (record.exc_text or "")

    settings = settings_for(fake)
    assert KEY not in repr(settings) and KEY not in str(settings)
    loaded = load_settings(
        {"COMETAPI_KEY": KEY, "DISCORD_TOKEN": "discord-token-0123456789"}, require_discord=True, dotenv_path=None
    )
    assert loaded.cometapi_key.reveal() == KEY
    assert KEY not in repr(loaded) and "discord-token-0123456789" not in repr(loaded)


def test_encoded_input_images_are_data_uris() -> None:
    from services.cometapi.files import as_image

    uri = encode_data_uri(as_image(png(), "test"))
    assert uri == png_data_uri()


async def test_cookies_the_api_sets_are_not_kept_or_sent_back(fake: FakeCometAPI) -> None:
    # By name, not by address: aiohttp's own jar keeps no cookies for an IP address anyway.
    by_name = fake.base_url.replace("127.0.0.1", "localhost")
    fake.queue_outcome(Outcome(queue_time=0.05, duration=0.3))
    fake.inject("create", status=None, headers={"Set-Cookie": "session=abc; Path=/"})
    async with open_service(fake, cometapi_base_url=by_name) as service:
        prediction = await service.create(SCHNELL, {"prompt": "a fox"})
        await service.wait(prediction, model=SCHNELL)
    polls = fake.requests_for("get")
    assert polls
    assert [poll.headers.get("Cookie") for poll in polls] == [None] * len(polls)
