"""CometClient against the fake CometAPI: requests, retry rules, typed errors, and never a second create.

Every test uses a real aiohttp session and the real client; only CometAPI is faked. Assertions are made on
what the fake recorded (how many creates, when each GET arrived), so a wrong retry rule shows up as a count.
"""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from cli.harness import KEY  # the key of the `fake` fixture's API
from fakes.cometapi import FakeCometAPI, Outcome
from services.cometapi.client import CometClient, RetryPolicy
from services.cometapi.predictions import Prediction
from services.errors import (
    ApiError,
    AuthError,
    BillingError,
    RateLimited,
    Rejected,
    Unavailable,
    UncertainCreate,
)
from services.secrets import Secret
from tests.helpers import until

SCHNELL = "black-forest-labs/flux-schnell"
INPUT: dict[str, object] = {"prompt": "a red fox in the snow", "num_outputs": 1}
RETRYABLE = (500, 502, 503, 504, 524)
HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    "</center><hr><center>cloudflare</center></body></html>"
)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def make_client(
    session: aiohttp.ClientSession,
    base_url: str,
    *,
    key: str = KEY,
    attempts: int = 4,
    read_timeout: float = 5.0,
    max_retry_after: float = 120.0,
    sync_wait: int = 0,
) -> CometClient:
    return CometClient(
        session,
        base_url=base_url,
        api_key=Secret(key),
        connect_timeout=2.0,
        read_timeout=read_timeout,
        retry=RetryPolicy(attempts=attempts, base_delay=0.01, max_delay=0.05, max_retry_after=max_retry_after),
        sync_wait=sync_wait,
    )


@pytest.fixture
def client(session: aiohttp.ClientSession, fake: FakeCometAPI) -> CometClient:
    return make_client(session, fake.base_url)


async def finished(client: CometClient, prediction_id: str, timeout: float = 5.0) -> Prediction:
    async with asyncio.timeout(timeout):
        while True:
            current = await client.get(prediction_id)
            if current.terminal:
                return current
            await asyncio.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- the requests themselves ------------------------------------------------------------------------------


async def test_create_and_get_send_the_documented_requests(fake: FakeCometAPI, client: CometClient) -> None:
    fake.queue_outcome(Outcome(queue_time=0.5, duration=0.05))  # "starting" outlasts a late answer on a busy machine
    created = await client.create(SCHNELL, INPUT)
    assert created.status == "starting"
    assert list(fake.predictions) == [created.id]
    done = await finished(client, created.id)
    assert done.status == "succeeded"
    assert done.output == (f"{fake.base_url}/files/{created.id}/0.webp",)

    (create,) = fake.creates()
    assert create.method == "POST"
    assert create.path == "/replicate/v1/models/black-forest-labs/flux-schnell/predictions"
    assert create.json == {"input": INPUT}
    assert create.headers["Authorization"] == f"Bearer {KEY}"
    assert "Prefer" not in create.headers  # sync mode is opt-in
    gets = fake.requests_for("get")
    assert gets
    # The poll URL is built from the configured base, never from urls.get (api.replicate.com).
    assert all(g.path == f"/replicate/v1/predictions/{created.id}" for g in gets)
    assert all(g.headers["Authorization"] == f"Bearer {KEY}" for g in gets)
    assert client.counts["retry"] == 0


async def test_sync_wait_sends_prefer_and_gets_a_finished_prediction(
    fake: FakeCometAPI, session: aiohttp.ClientSession
) -> None:
    client = make_client(session, fake.base_url, sync_wait=5)
    created = await client.create(SCHNELL, INPUT)
    (create,) = fake.creates()
    assert create.headers["Prefer"] == "wait=5"
    assert created.status == "succeeded" and created.output


async def test_a_sync_create_held_longer_than_the_read_timeout_is_waited_for(
    fake: FakeCometAPI, session: aiohttp.ClientSession
) -> None:
    """Sync mode holds the create until the prediction ends (here 0.6 s): more than the read timeout (0.2 s), within
    the wait asked for (2 s). Timing out would leave a paid prediction that nobody hears of."""
    fake.queue_outcome(Outcome(duration=0.6))
    client = make_client(session, fake.base_url, read_timeout=0.2, sync_wait=2)
    created = await client.create(SCHNELL, INPUT)
    assert created.status == "succeeded" and created.output
    assert len(fake.creates()) == 1


async def test_cancel_stops_a_running_prediction(fake: FakeCometAPI, client: CometClient) -> None:
    fake.queue_outcome(Outcome(status="never"))
    created = await client.create(SCHNELL, INPUT)
    answer = await client.cancel(created.id)
    assert answer is not None and answer.status == "canceled"
    (cancel,) = fake.requests_for("cancel")
    assert cancel.path == f"/replicate/v1/predictions/{created.id}/cancel"
    assert (await client.get(created.id)).status == "canceled"


@pytest.mark.parametrize("status", [404, 405])
async def test_cancel_without_an_endpoint_returns_none(fake: FakeCometAPI, client: CometClient, status: int) -> None:
    fake.queue_outcome(Outcome(status="never"))
    created = await client.create(SCHNELL, INPUT)
    fake.cancel_status = status
    assert await client.cancel(created.id) is None
    assert len(fake.requests_for("cancel")) == 1  # not retried


async def test_a_malformed_prediction_id_is_refused_without_a_request(fake: FakeCometAPI, client: CometClient) -> None:
    with pytest.raises(Rejected, match="Not a prediction id"):
        await client.get("../../models/x")
    with pytest.raises(Rejected):
        await client.cancel("a b")
    assert fake.requests == []


# -- GET retries ---------------------------------------------------------------------------------------


async def test_get_honours_retry_after_seconds(fake: FakeCometAPI, client: CometClient) -> None:
    created = await client.create(SCHNELL, INPUT)
    fake.inject("get", status=429, headers={"Retry-After": "1"})
    got = await client.get(created.id)
    assert got.id == created.id
    first, second = fake.requests_for("get")
    # The backoff alone is at most 0.05 s here: a gap of about a second is the Retry-After.
    assert second.at - first.at >= 0.95
    assert client.counts["retry"] == 1


async def test_get_honours_retry_after_as_an_http_date(fake: FakeCometAPI, client: CometClient) -> None:
    created = await client.create(SCHNELL, INPUT)
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # 1-2 s ahead (whole seconds)
    fake.inject("get", status=503, headers={"Retry-After": when})
    got = await client.get(created.id)
    assert got.id == created.id
    first, second = fake.requests_for("get")
    assert second.at - first.at >= 0.9


async def test_a_retry_after_beyond_the_limit_is_reported_not_slept(
    fake: FakeCometAPI, session: aiohttp.ClientSession
) -> None:
    client = make_client(session, fake.base_url, max_retry_after=5)
    created = await client.create(SCHNELL, INPUT)
    fake.inject("get", status=429, headers={"Retry-After": "600"})
    with pytest.raises(RateLimited) as caught:
        await client.get(created.id)
    assert caught.value.retry_after == 600
    assert len(fake.requests_for("get")) == 1


@pytest.mark.parametrize("status", RETRYABLE)
async def test_get_server_errors_are_retried(fake: FakeCometAPI, client: CometClient, status: int) -> None:
    created = await client.create(SCHNELL, INPUT)
    fake.inject("get", status=status, times=2)
    got = await client.get(created.id)
    assert got.id == created.id
    assert len(fake.requests_for("get")) == 3
    assert client.counts["retry"] == 2


@pytest.mark.parametrize(
    ("status", "text", "content_type"),
    [
        pytest.param(502, HTML_PAGE, "text/html", id="html-502"),
        pytest.param(200, HTML_PAGE, "text/html", id="html-200"),
        pytest.param(200, '{"id": "abc", "status": "proc', "application/json", id="truncated-json"),
    ],
)
async def test_unreadable_get_answers_are_retried(
    fake: FakeCometAPI, client: CometClient, status: int, text: str, content_type: str
) -> None:
    created = await client.create(SCHNELL, INPUT)
    fake.inject("get", status=status, text=text, content_type=content_type)
    got = await client.get(created.id)
    assert got.id == created.id
    assert len(fake.requests_for("get")) == 2


async def test_get_timeouts_are_retried(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    client = make_client(session, fake.base_url, read_timeout=0.2)
    created = await client.create(SCHNELL, INPUT)
    fake.inject("get", status=None, delay=1.0)
    got = await client.get(created.id)
    assert got.id == created.id
    assert len(fake.requests_for("get")) == 2
    assert client.counts["retry"] == 1


async def test_dropped_get_connections_are_retried(fake: FakeCometAPI, client: CometClient) -> None:
    created = await client.create(SCHNELL, INPUT)
    # aiohttp itself resends an idempotent request once after a drop, so two drops reach our retry loop.
    fake.inject("get", drop=True, times=2)
    got = await client.get(created.id)
    assert got.id == created.id
    assert len(fake.requests_for("get")) == 3
    assert client.counts["get"] == 2 and client.counts["retry"] == 1


async def test_get_gives_up_after_the_attempts_with_unavailable(
    fake: FakeCometAPI, session: aiohttp.ClientSession
) -> None:
    client = make_client(session, fake.base_url, attempts=3)
    created = await client.create(SCHNELL, INPUT)
    fake.inject("get", status=503, times=10)
    with pytest.raises(Unavailable, match="HTTP 503"):
        await client.get(created.id)
    assert len(fake.requests_for("get")) == 3


async def test_get_gives_up_after_the_attempts_with_rate_limited(
    fake: FakeCometAPI, session: aiohttp.ClientSession
) -> None:
    client = make_client(session, fake.base_url, attempts=3)
    created = await client.create(SCHNELL, INPUT)
    fake.inject("get", status=429, headers={"Retry-After": "0"}, times=10)
    with pytest.raises(RateLimited, match="rate limit"):
        await client.get(created.id)
    assert len(fake.requests_for("get")) == 3


async def test_get_timeouts_give_up_with_unavailable(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    client = make_client(session, fake.base_url, attempts=2, read_timeout=0.2)
    created = await client.create(SCHNELL, INPUT)
    fake.inject("get", status=None, delay=1.0, times=5)
    with pytest.raises(Unavailable, match="timed out"):
        await client.get(created.id)
    assert len(fake.requests_for("get")) == 2


@pytest.mark.parametrize("route", ["get", "create"])
async def test_a_cometapi_500_with_invalid_request_is_not_retried(
    fake: FakeCometAPI, client: CometClient, route: str
) -> None:
    created = await client.create(SCHNELL, INPUT)
    body = {
        "error": {
            "message": "invalid input: prompt too long (request id: 2025010112000000abcd)",
            "type": "comet_api_error",
            "param": "",
            "code": "invalid_request",
        }
    }
    fake.inject(route, status=500, json=body)
    before = len(fake.requests_for(route))
    call = client.get(created.id) if route == "get" else client.create(SCHNELL, INPUT)
    with pytest.raises(Rejected, match="prompt too long") as caught:
        await call
    assert caught.value.status == 500
    assert len(fake.requests_for(route)) == before + 1


async def test_a_404_on_get_is_not_retried(fake: FakeCometAPI, client: CometClient) -> None:
    with pytest.raises(Rejected, match="HTTP 404"):
        await client.get("doesnotexist0000000000000a")
    assert len(fake.requests_for("get")) == 1


# -- never a second create -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", RETRYABLE)
async def test_a_create_answered_5xx_is_not_repeated(fake: FakeCometAPI, client: CometClient, status: int) -> None:
    fake.inject("create", status=status, times=5)
    with pytest.raises(Unavailable, match=f"HTTP {status}"):
        await client.create(SCHNELL, INPUT)
    assert len(fake.creates()) == 1
    assert fake.predictions == {}


async def test_a_create_that_did_create_then_answered_502_is_not_repeated(
    fake: FakeCometAPI, client: CometClient
) -> None:
    fake.inject("create", status=502, side_effects=True, times=5)
    with pytest.raises(Unavailable):
        await client.create(SCHNELL, INPUT)
    assert len(fake.creates()) == 1
    assert len(fake.predictions) == 1


async def test_a_dropped_create_is_uncertain_and_not_repeated(fake: FakeCometAPI, client: CometClient) -> None:
    fake.inject("create", drop=True, times=5)
    with pytest.raises(UncertainCreate, match="not repeated"):
        await client.create(SCHNELL, INPUT)
    assert len(fake.creates()) == 1
    assert len(fake.predictions) == 1  # the fake did create it: a retry would have been a second charge


async def test_a_create_read_timeout_is_uncertain_and_not_repeated(
    fake: FakeCometAPI, session: aiohttp.ClientSession
) -> None:
    client = make_client(session, fake.base_url, read_timeout=0.2)
    fake.inject("create", status=None, delay=1.0, times=5)
    with pytest.raises(UncertainCreate, match="timed out"):
        await client.create(SCHNELL, INPUT)
    assert len(fake.creates()) == 1
    assert len(fake.predictions) == 1


async def test_an_unreadable_create_answer_is_uncertain_and_not_repeated(
    fake: FakeCometAPI, client: CometClient
) -> None:
    fake.inject("create", status=201, text='{"id": "abc', content_type="application/json", side_effects=True, times=5)
    with pytest.raises(UncertainCreate):
        await client.create(SCHNELL, INPUT)
    assert len(fake.creates()) == 1


async def test_a_create_answer_without_an_id_is_uncertain_and_not_repeated(
    fake: FakeCometAPI, client: CometClient
) -> None:
    # The API took the request (and the charge) but its answer names no prediction: the caller must not
    # be told "unavailable, try again" as if nothing had happened.
    fake.inject("create", status=201, json={"status": "starting"}, side_effects=True, times=5)
    with pytest.raises(UncertainCreate):
        await client.create(SCHNELL, INPUT)
    assert len(fake.creates()) == 1


async def test_a_rate_limited_create_is_retried_once_accepted(fake: FakeCometAPI, client: CometClient) -> None:
    fake.inject("create", status=429)
    created = await client.create(SCHNELL, INPUT)
    assert len(fake.creates()) == 2
    assert list(fake.predictions) == [created.id]  # the 429 created nothing; the retry created one
    assert client.counts["retry"] == 1


async def test_a_rate_limited_create_gives_up_with_rate_limited(
    fake: FakeCometAPI, session: aiohttp.ClientSession
) -> None:
    client = make_client(session, fake.base_url, attempts=3)
    fake.inject("create", status=429, headers={"Retry-After": "0"}, times=10)
    with pytest.raises(RateLimited):
        await client.create(SCHNELL, INPUT)
    assert len(fake.creates()) == 3
    assert fake.predictions == {}


async def test_a_create_s_guard_is_asked_before_it_is_sent_again_and_stops_it(
    fake: FakeCometAPI, client: CometClient
) -> None:
    """The guard (a job runner's Cancel, deadline and lease) is asked before a refused create is sent again, and
    while it waits to be: raising, it stops the create, with the refusal as its cause (nothing was made)."""
    fake.inject("create", status=429, headers={"Retry-After": "5"})
    asked: list[float] = []
    stop = asyncio.Event()

    async def guard() -> None:
        asked.append(time.monotonic())
        if stop.is_set():
            raise LookupError("stopped by its job")

    creating = asyncio.create_task(client.create(SCHNELL, INPUT, guard=guard))
    await until(lambda: asked, what="the guard asked during the Retry-After")
    stop.set()
    started = time.monotonic()
    with pytest.raises(LookupError) as stopped:
        await creating
    assert time.monotonic() - started < 2  # asked now and then: not held up by the 5 s wait
    assert isinstance(stopped.value.__cause__, RateLimited)
    assert len(fake.creates()) == 1 and fake.predictions == {}


async def test_a_create_whose_guard_lets_it_go_is_sent_again(fake: FakeCometAPI, client: CometClient) -> None:
    fake.inject("create", status=429)
    asked: list[bool] = []

    async def guard() -> None:
        asked.append(True)

    created = await client.create(SCHNELL, INPUT, guard=guard)
    assert asked  # before the retry
    assert len(fake.creates()) == 2 and list(fake.predictions) == [created.id]


async def test_a_create_is_retried_while_nothing_listens_and_creates_once(session: aiohttp.ClientSession) -> None:
    port = free_port()
    client = make_client(session, f"http://127.0.0.1:{port}", attempts=100)
    task = asyncio.create_task(client.create(SCHNELL, INPUT))
    await until(lambda: client.counts["create"] >= 2 or task.done(), what="two refused connections")
    assert not task.done()
    refused = client.counts["create"]
    assert refused >= 2  # connection refused, and tried again
    server = FakeCometAPI(api_key=KEY, speed=0.02)
    await server.start(port=port)
    try:
        created = await asyncio.wait_for(task, 10)
        assert len(server.creates()) == 1
        assert list(server.predictions) == [created.id]
        assert client.counts["create"] > refused
    finally:
        await server.close()


# -- typed errors ------------------------------------------------------------------------------------------


async def test_a_wrong_key_is_an_auth_error(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    wrong = "sk-wrong-key-fedcba9876543210"
    client = make_client(session, fake.base_url, key=wrong)
    with pytest.raises(AuthError, match="HTTP 401") as caught:
        await client.create(SCHNELL, INPUT)
    assert caught.value.status == 401
    assert wrong not in str(caught.value) and wrong not in repr(caught.value)
    assert len(fake.creates()) == 1


async def test_a_403_is_an_auth_error(fake: FakeCometAPI, client: CometClient) -> None:
    created = await client.create(SCHNELL, INPUT)
    fake.inject("get", status=403)
    with pytest.raises(AuthError, match="HTTP 403"):
        await client.get(created.id)
    assert len(fake.requests_for("get")) == 1


async def test_402_is_a_billing_error(fake: FakeCometAPI, client: CometClient) -> None:
    fake.inject("create", status=402)
    with pytest.raises(BillingError, match="credit") as caught:
        await client.create(SCHNELL, INPUT)
    assert caught.value.status == 402
    assert len(fake.creates()) == 1


async def test_422_is_rejected_with_the_detail(fake: FakeCometAPI, client: CometClient) -> None:
    with pytest.raises(Rejected, match="HTTP 422") as caught:
        await client.create(SCHNELL, {"prompt": "a fox", "num_outputs": 9})  # the fake validates like Replicate
    assert "input.num_outputs: Must be less than or equal to 4" in str(caught.value)
    assert caught.value.status == 422
    assert len(fake.creates()) == 1 and fake.predictions == {}


async def test_an_unknown_model_is_rejected(fake: FakeCometAPI, client: CometClient) -> None:
    with pytest.raises(Rejected, match="not found") as caught:
        await client.create("black-forest-labs/flux-9000", INPUT)
    assert caught.value.status == 404
    assert len(fake.creates()) == 1


@pytest.mark.parametrize("route", ["create", "get"])
@pytest.mark.parametrize("status", [301, 302, 307])
async def test_a_redirect_is_rejected_and_not_followed(
    fake: FakeCometAPI, client: CometClient, route: str, status: int
) -> None:
    created = await client.create(SCHNELL, INPUT)
    fake.inject(route, status=status, headers={"Location": f"{fake.base_url}/files/{created.id}/0.webp"})
    requests_before = len(fake.requests)
    call = client.get(created.id) if route == "get" else client.create(SCHNELL, INPUT)
    with pytest.raises(Rejected, match="COMETAPI_BASE_URL") as caught:
        await call
    assert caught.value.status == status
    assert len(fake.requests) == requests_before + 1  # the Location was not fetched


async def test_typed_errors_are_api_errors(fake: FakeCometAPI, client: CometClient) -> None:
    fake.inject("create", status=418, text="I'm a teapot")
    with pytest.raises(ApiError, match="HTTP 418: I'm a teapot") as caught:
        await client.create(SCHNELL, INPUT)
    assert type(caught.value) is ApiError
    assert len(fake.creates()) == 1


def _key_across_the_cut(limit: int) -> str:
    """A detail that echoes the key so that it starts 12 characters before the detail is shortened to `limit`."""
    return "x" * (limit - 12) + KEY + " and more after it"


@pytest.mark.parametrize(
    ("shape", "limit"),
    [("error object", 300), ("error string", 300), ("detail", 300), ("text", 200), ("html title", 80)],
)
async def test_a_key_echoed_across_the_cut_is_still_redacted(
    fake: FakeCometAPI, client: CometClient, shape: str, limit: int
) -> None:
    echoed = _key_across_the_cut(limit)
    if shape == "error object":
        fake.inject("create", status=400, json={"error": {"message": echoed, "code": "invalid_request"}})
    elif shape == "error string":
        fake.inject("create", status=400, json={"error": echoed})
    elif shape == "detail":
        fake.inject("create", status=400, json={"detail": echoed, "title": "Invalid input"})
    elif shape == "text":
        fake.inject("create", status=400, text=echoed)
    else:
        fake.inject("create", status=400, text=f"<html><title>{echoed}</title></html>", content_type="text/html")
    with pytest.raises(Rejected, match="HTTP 400") as caught:
        await client.create(SCHNELL, INPUT)
    shown = str(caught.value)
    assert "[redacted]" in shown  # redacted whole, then shortened
    assert KEY[:8] not in shown and "more after" not in shown
