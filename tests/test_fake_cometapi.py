"""Checks of the fake CometAPI itself (fakes/cometapi.py), with plain aiohttp requests."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import struct
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cli.harness import KEY  # the key of the `fake` fixture's API
from fakes.cometapi import FakeCometAPI, Outcome
from fakes.common import ManualClock

AUTH = {"Authorization": f"Bearer {KEY}"}
BFL = "black-forest-labs"
TQDM = re.compile(r"^\s*(\d+)%\s*\|.+?\|\s*(\d+)/(\d+)")
ID = re.compile(r"^[a-z0-9]{26}$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
async def stepped() -> AsyncIterator[FakeCometAPI]:
    """A fake whose predictions move only when the test moves its clock (`walk`): no phase is too short to see."""
    server = FakeCometAPI(api_key=KEY, speed=0.02, seed=0, image_size=20_000, clock=ManualClock())
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def create_url(fake: FakeCometAPI, model: str = "flux-schnell", owner: str = BFL) -> str:
    return f"{fake.base_url}/replicate/v1/models/{owner}/{model}/predictions"


def get_url(fake: FakeCometAPI, pred_id: str) -> str:
    return f"{fake.base_url}/replicate/v1/predictions/{pred_id}"


async def create(
    session: aiohttp.ClientSession, fake: FakeCometAPI, model: str = "flux-schnell", **inp: Any
) -> dict[str, Any]:
    inp.setdefault("prompt", "a red fox in the snow")
    async with session.post(create_url(fake, model), json={"input": inp}, headers=AUTH) as r:
        assert r.status == 201, await r.text()
        data: dict[str, Any] = await r.json()
        return data


async def get(session: aiohttp.ClientSession, fake: FakeCometAPI, pred_id: str) -> dict[str, Any]:
    async with session.get(get_url(fake, pred_id), headers=AUTH) as r:
        assert r.status == 200, await r.text()
        data: dict[str, Any] = await r.json()
        return data


async def poll(
    session: aiohttp.ClientSession,
    fake: FakeCometAPI,
    pred_id: str,
    until: Callable[[dict[str, Any]], bool] | None = None,
    timeout: float = 5.0,
) -> list[dict[str, Any]]:
    """Every answer from the first until ``until`` (default: a terminal status) holds."""
    until = until or (lambda p: p["status"] in {"succeeded", "failed", "canceled", "aborted"})
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            seen.append(await get(session, fake, pred_id))
            if until(seen[-1]):
                return seen
            await asyncio.sleep(0.005)


async def walk(session: aiohttp.ClientSession, fake: FakeCometAPI, pred_id: str, step: float) -> list[dict[str, Any]]:
    """Every answer from the first to a terminal status, the fake's manual clock moved ``step`` seconds after each."""
    clock = fake.clock
    assert isinstance(clock, ManualClock), "walk() needs the `stepped` fake"
    seen: list[dict[str, Any]] = []
    for _ in range(100_000):
        seen.append(await get(session, fake, pred_id))
        if seen[-1]["status"] in {"succeeded", "failed", "canceled", "aborted"}:
            return seen
        clock.advance(step)
    raise AssertionError(f"{pred_id} never ended: {seen[-1]['status']}")


def statuses(seen: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for p in seen:
        if not out or out[-1] != p["status"]:
            out.append(p["status"])
    return out


def progress(logs: str) -> tuple[int, int] | None:
    last = None
    for line in re.split(r"[\r\n]", logs):
        m = TQDM.match(line)
        if m:
            last = (int(m.group(2)), int(m.group(3)))
    return last


def decode_png(data: bytes) -> tuple[int, int]:
    """Check every chunk's CRC and that the pixel data inflates to the size IHDR says; return (w, h)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, kinds = 8, b"", []
    width = height = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        kinds.append(kind)
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert (depth, ctype) == (8, 3)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"PLTE" in kinds
    assert len(zlib.decompress(idat)) == height * (width + 1)
    return width, height


# -- create and the prediction object --------------------------------------------------------------------


async def test_create_answers_a_full_prediction_object(stepped: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake = stepped  # its clock stands still: "starting" lasts however late the answer is made on a busy machine
    inp = {"prompt": "a cat", "num_outputs": 2, "seed": 7}
    async with session.post(create_url(fake), json={"input": inp}, headers=AUTH) as r:
        assert r.status == 201
        assert r.content_type == "application/json"
        p = await r.json()
    assert ID.match(p["id"])
    assert p["model"] == f"{BFL}/flux-schnell"
    assert p["version"] == "hidden"
    assert p["input"] == inp
    assert (p["logs"], p["output"], p["error"], p["status"]) == ("", None, None, "starting")
    assert ISO.match(p["created_at"])
    assert p["started_at"] is None and p["completed_at"] is None
    assert p["data_removed"] is False and p["source"] == "api" and p["metrics"] == {}
    assert p["urls"]["get"] == f"https://api.replicate.com/v1/predictions/{p['id']}"
    assert p["urls"]["cancel"] == f"https://api.replicate.com/v1/predictions/{p['id']}/cancel"
    assert p["urls"]["web"] == f"https://replicate.com/p/{p['id']}"
    assert p["urls"]["stream"].startswith("https://")
    assert list(fake.predictions) == [p["id"]]
    assert fake.predictions[p["id"]].seed == 7


async def test_status_progresses_with_the_clock(stepped: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake = stepped
    fake.queue_outcome(Outcome(queue_time=0.15, duration=0.3))
    p = await create(session, fake)
    pred = fake.predictions[p["id"]]
    # the schedule itself, exactly
    assert pred.status_at(pred.created + 0.149) == "starting"
    assert pred.status_at(pred.created + 0.151) == "processing"
    assert pred.status_at(pred.created + 0.449) == "processing"
    assert pred.status_at(pred.created + 0.451) == "succeeded"
    assert pred.done_at_wall is None
    seen = await walk(session, fake, p["id"], 0.01)
    assert statuses(seen) == ["starting", "processing", "succeeded"]
    for s in seen:
        assert (s["started_at"] is None) == (s["status"] == "starting")
        assert (s["completed_at"] is None) == (s["status"] != "succeeded")
    last = seen[-1]
    assert last["metrics"]["predict_time"] == pytest.approx(0.3)
    assert last["metrics"]["total_time"] == pytest.approx(0.45)
    assert last["metrics"]["image_count"] == 1
    assert pred.done_at_wall == pytest.approx(pred.created_wall + 0.45, abs=1e-9)
    assert pred.started_at_wall == pytest.approx(pred.created_wall + 0.15, abs=1e-9)
    assert pred.gets == len(seen)


async def test_default_timings_scale_with_speed(session: aiohttp.ClientSession) -> None:
    expected = {
        "flux-schnell": (1, 2),
        "flux-dev": (3, 6),
        "flux-1.1-pro": (5, 15),
        "flux-1.1-pro-ultra": (5, 15),
        "flux-kontext-pro": (5, 15),
        "flux-pro": (5, 15),
        "flux-2-pro": (7, 30),
        "flux-2-flex": (12, 38),
        "flux-2-dev": (3, 12),
    }
    for speed in (1.0, 0.02):
        async with FakeCometAPI(KEY, speed=speed, image_size=5000) as f:
            for model, (low, high) in expected.items():
                image = {"input_image": "https://example.com/a.png"} if "kontext" in model else {}
                for _ in range(5):
                    p = await create(session, f, model, **image)
                    pred = f.predictions[p["id"]]
                    assert low * speed <= pred.duration <= high * speed
                    assert 0 <= pred.queue_time <= 0.5 * speed


async def test_same_seed_same_run(session: aiohttp.ClientSession) -> None:
    runs = []
    for seed in (5, 5, 6):
        async with FakeCometAPI(KEY, seed=seed) as f:
            ids = [(await create(session, f))["id"] for _ in range(3)]
            runs.append([(i, f.predictions[i].duration, f.predictions[i].seed) for i in ids])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize(
    ("model", "extra", "shape", "ext", "count"),
    [
        ("flux-schnell", {"num_outputs": 3}, list, "webp", 3),
        ("flux-schnell", {}, list, "webp", 1),
        ("flux-dev", {"num_outputs": 2, "output_format": "png"}, list, "png", 2),
        ("flux-1.1-pro", {}, str, "webp", 1),
        ("flux-1.1-pro-ultra", {}, str, "jpg", 1),
        ("flux-kontext-pro", {"input_image": "https://example.com/in.png"}, str, "png", 1),
        (
            "flux-kontext-max",
            {"input_image": "data:image/png;base64,iVBORw0KGgo=", "output_format": "jpg"},
            str,
            "jpg",
            1,
        ),
    ],
)
async def test_output_shape_per_model(
    fake: FakeCometAPI,
    session: aiohttp.ClientSession,
    model: str,
    extra: dict[str, Any],
    shape: type,
    ext: str,
    count: int,
) -> None:
    p = await create(session, fake, model, **extra)
    done = (await poll(session, fake, p["id"]))[-1]
    assert done["status"] == "succeeded"
    assert isinstance(done["output"], shape)
    urls = done["output"] if isinstance(done["output"], list) else [done["output"]]
    assert urls == [f"{fake.base_url}/files/{p['id']}/{n}.{ext}" for n in range(count)]


# -- logs ---------------------------------------------------------------------------------------------


async def test_tqdm_logs_advance_for_flux_dev(stepped: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake = stepped
    fake.queue_outcome(Outcome(queue_time=0.0, duration=0.6))
    p = await create(session, fake, "flux-dev", num_inference_steps=8, seed=1234)
    seen = await walk(session, fake, p["id"], 0.02)
    steps = [progress(s["logs"]) for s in seen if s["status"] == "processing"]
    numbers = [s[0] for s in steps if s is not None]
    assert all(s is None or s[1] == 8 for s in steps)
    assert numbers == sorted(numbers)
    assert len(set(numbers)) >= 4
    final = seen[-1]["logs"]
    assert final.startswith("Using seed: 1234\n")
    assert "\r" in final
    assert progress(final) == (8, 8)
    assert " 50%|█████     | 4/8 [" in final


async def test_schnell_defaults_to_four_steps_and_lf_style(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake.queue_outcome(Outcome(duration=0.05, logs_style="tqdm_lf"))
    p = await create(session, fake)
    logs = (await poll(session, fake, p["id"]))[-1]["logs"]
    assert "\r" not in logs
    assert progress(logs) == (4, 4)
    assert "\n 25%|██▌       | 1/4 [" in logs


async def test_pro_models_log_plain_text(stepped: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake = stepped
    fake.queue_outcome(Outcome(queue_time=0.0, duration=0.2))
    p = await create(session, fake, "flux-1.1-pro")
    seen = await walk(session, fake, p["id"], 0.05)
    during = [s["logs"] for s in seen if s["status"] == "processing"]
    assert during and all("Generating image..." in log and "%" not in log for log in during)
    assert "Generated image in" in seen[-1]["logs"]


async def test_logs_without_total(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake.queue_outcome(Outcome(duration=0.05, logs_style="no_total"))
    p = await create(session, fake, "flux-dev", num_inference_steps=5)
    logs = (await poll(session, fake, p["id"]))[-1]["logs"]
    assert "5it [" in logs and "%" not in logs and progress(logs) is None


# -- files --------------------------------------------------------------------------------------------


async def test_png_files_are_valid_and_stable(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake.queue_outcome(Outcome(duration=0.02))
    p = await create(session, fake, output_format="png", num_outputs=2)
    urls = (await poll(session, fake, p["id"]))[-1]["output"]
    bodies = []
    for url in [*urls, urls[0]]:
        async with session.get(url) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "image/png"
            bodies.append(await r.read())
    assert bodies[0] == bodies[2] == fake.file_bytes(urls[0])
    assert bodies[1] == fake.file_bytes(urls[1])
    assert bodies[0] != bodies[1]
    for body in bodies:
        assert len(body) == 20_000
        w, h = decode_png(body)
        assert w > 50 and h > 50


async def test_jpeg_and_webp_files_have_the_right_format(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    for model, ctype in (("flux-1.1-pro-ultra", "image/jpeg"), ("flux-schnell", "image/webp")):
        fake.queue_outcome(Outcome(duration=0.02))
        p = await create(session, fake, model)
        out = (await poll(session, fake, p["id"]))[-1]["output"]
        url = out if isinstance(out, str) else out[0]
        async with session.get(url) as r:
            assert r.headers["Content-Type"] == ctype
            body = await r.read()
        assert body == fake.file_bytes(url)
        assert abs(len(body) - 20_000) <= 1
        if ctype == "image/jpeg":
            assert body[:3] == b"\xff\xd8\xff" and body.endswith(b"\xff\xd9") and b"\xff\xc0" in body
        else:
            assert body[:4] == b"RIFF" and body[8:16] == b"WEBPVP8X"
            assert struct.unpack("<I", body[4:8])[0] == len(body) - 8
            assert b"VP8L" in body[:64]


async def test_huge_files_stream_with_a_length(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    size = 6_000_000
    fake.queue_outcome(Outcome(duration=0.02, file_size=size))
    p = await create(session, fake, output_format="png")
    url = (await poll(session, fake, p["id"]))[-1]["output"][0]
    async with session.get(url) as r:
        assert r.content_length == size
        body = await r.read()
    assert len(body) == size
    assert body == fake.file_bytes(url)
    decode_png(body)


async def test_unknown_files_are_404(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake.queue_outcome(Outcome(duration=0.02))
    p = await create(session, fake)
    url = (await poll(session, fake, p["id"]))[-1]["output"][0]
    for bad in (url.replace("/0.webp", "/1.webp"), url.replace(".webp", ".png"), f"{fake.base_url}/files/x/0.png"):
        async with session.get(bad) as r:
            assert r.status == 404


# -- auth and validation -----------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, "Bearer wrong-key", KEY, f"Basic {KEY}", "Bearer"])
async def test_bad_key_is_a_comet_401(fake: FakeCometAPI, session: aiohttp.ClientSession, auth: str | None) -> None:
    headers = {} if auth is None else {"Authorization": auth}
    async with session.post(create_url(fake), json={"input": {"prompt": "x"}}, headers=headers) as r:
        assert r.status == 401
        body = await r.json()
    err = body["error"]
    assert err["type"] == "comet_api_error" and err["param"] == "" and err["code"]
    assert re.match(r"^invalid token \(request id: \w+\)$", err["message"])
    assert fake.predictions == {}
    p = await create(session, fake)
    async with session.get(get_url(fake, p["id"]), headers=headers) as r:
        assert r.status == 401
    assert fake.requests[-1].headers.get("Authorization") == auth
    # The key is checked before the id: a prediction that does not exist tells a bad key (401) from a good
    # one (404, see below), which is how the bot checks its key at start-up.
    async with session.get(get_url(fake, "no-such-prediction"), headers=headers) as r:
        assert r.status == 401


@pytest.mark.parametrize(
    ("model", "inp", "field", "words"),
    [
        ("flux-schnell", {}, "input", "prompt is required"),
        ("flux-schnell", {"prompt": "  "}, "input", "prompt is required"),
        (
            "flux-kontext-pro",
            {"prompt": "x", "input_image": "https://e.com/a.png", "output_format": "webp"},
            "input.output_format",
            '"jpg", "png"',
        ),
        ("flux-kontext-max", {"prompt": "x"}, "input", "input_image is required"),
        ("flux-schnell", {"prompt": "x", "num_outputs": 5}, "input.num_outputs", "less than or equal to 4"),
        ("flux-dev", {"prompt": "x", "num_inference_steps": 51}, "input.num_inference_steps", "50"),
        ("flux-1.1-pro-ultra", {"prompt": "x", "output_format": "webp"}, "input.output_format", "must be one of"),
        ("flux-schnell", {"prompt": "x", "aspect_ratio": "7:3"}, "input.aspect_ratio", "must be one of"),
    ],
)
async def test_invalid_input_is_a_422_problem(
    fake: FakeCometAPI, session: aiohttp.ClientSession, model: str, inp: dict[str, Any], field: str, words: str
) -> None:
    fake.queue_outcome(Outcome(status="failed"))
    async with session.post(create_url(fake, model), json={"input": inp}, headers=AUTH) as r:
        assert r.status == 422
        assert r.content_type == "application/problem+json"
        body = await r.json()
    assert body["status"] == 422 and body["title"] and body["detail"]
    assert any(f["field"] == field and words in f["description"] for f in body["invalid_fields"]), body
    assert fake.predictions == {}
    p = await create(session, fake)  # the queued outcome was not used up by the rejected create
    assert fake.predictions[p["id"]].outcome.status == "failed"


async def test_unknown_model_and_prediction_are_404_json(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    for url in (create_url(fake, "flux-9"), create_url(fake, "flux-schnell", owner="someone")):
        async with session.post(url, json={"input": {"prompt": "x"}}, headers=AUTH) as r:
            assert r.status == 404
            assert "error" in await r.json()
    async with session.get(get_url(fake, "nope"), headers=AUTH) as r:
        assert r.status == 404
        assert (await r.json())["status"] == 404
    async with session.post(get_url(fake, "nope") + "/cancel", headers=AUTH) as r:
        assert r.status == 404


# -- injections --------------------------------------------------------------------------------------


async def test_inject_status_with_retry_after(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake.inject("create", status=429, headers={"Retry-After": "1"})
    async with session.post(create_url(fake), json={"input": {"prompt": "x"}}, headers=AUTH) as r:
        assert r.status == 429
        assert r.headers["Retry-After"] == "1"
        assert "resets in ~1s" in (await r.json())["detail"]
    assert fake.predictions == {}
    p = await create(session, fake)  # one time only
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    fake.inject("get", status=503, headers={"Retry-After": date}, times=2)
    for _ in range(2):
        async with session.get(get_url(fake, p["id"]), headers=AUTH) as r:
            assert r.status == 503
            assert r.headers["Retry-After"] == date
            assert (await r.json())["error"]["type"] == "comet_api_error"
    await get(session, fake, p["id"])


async def test_inject_html_and_truncated_json(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    p = await create(session, fake)
    fake.inject("get", status=502, text="<html>502 Bad Gateway</html>", content_type="text/html")
    async with session.get(get_url(fake, p["id"]), headers=AUTH) as r:
        assert r.status == 502
        assert r.content_type == "text/html"
        assert await r.text() == "<html>502 Bad Gateway</html>"
    fake.inject("get", status=200, text='{"id": "abc", "sta', content_type="application/json")
    async with session.get(get_url(fake, p["id"]), headers=AUTH) as r:
        assert r.status == 200 and r.content_type == "application/json"
        text = await r.text()
    assert text == '{"id": "abc", "sta'
    with pytest.raises(ValueError):
        json.loads(text)
    fake.inject("create", status=500, json={"error": {"code": "invalid_request", "message": "bad"}})
    async with session.post(create_url(fake), json={"input": {"prompt": "x"}}, headers=AUTH) as r:
        assert r.status == 500
        assert (await r.json())["error"]["code"] == "invalid_request"


async def test_dropped_create_still_creates(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake.queue_outcome(Outcome(duration=0.02))
    fake.inject("create", drop=True)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with session.post(create_url(fake), json={"input": {"prompt": "x"}}, headers=AUTH) as r:
            await r.read()
    assert len(fake.creates()) == 1
    [pred_id] = fake.predictions
    assert (await poll(session, fake, pred_id))[-1]["status"] == "succeeded"
    # aiohttp 3.14 quietly sends an idempotent request (GET) a second time when the server disconnects,
    # so two drops are needed for the client to see one
    gets_before = len(fake.requests_for("get"))
    fake.inject("get", drop=True, times=2)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await get(session, fake, pred_id)
    assert len(fake.requests_for("get")) == gets_before + 2


async def test_side_effects_create_then_answer_an_error(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake.inject("create", status=524, side_effects=True)
    async with session.post(create_url(fake), json={"input": {"prompt": "x"}}, headers=AUTH) as r:
        assert r.status == 524
    assert len(fake.predictions) == 1


async def test_delay_makes_clients_time_out(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    p = await create(session, fake)
    fake.inject("get", status=None, delay=1.0)
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await session.get(get_url(fake, p["id"]), headers=AUTH, timeout=aiohttp.ClientTimeout(total=0.1))
    assert time.monotonic() - started < 0.9
    await get(session, fake, p["id"])  # used up
    fake.inject("get", status=None, delay=0.2, headers={"X-Slow": "yes"})
    started = time.monotonic()
    async with session.get(get_url(fake, p["id"]), headers=AUTH) as r:
        assert r.status == 200 and r.headers["X-Slow"] == "yes"
        assert (await r.json())["id"] == p["id"]
    assert time.monotonic() - started >= 0.2


async def test_gate_holds_a_request_in_the_air_until_it_opens(
    fake: FakeCometAPI, session: aiohttp.ClientSession
) -> None:
    fake.queue_outcome(Outcome(status="never"))
    p = await create(session, fake)

    async def post(url: str, body: Any = None) -> int:
        async with session.post(url, json=body, headers=AUTH) as r:
            await r.read()
            return r.status

    # status None: recorded, held (not yet handled), then handled and answered normally once the gate opens
    gate = asyncio.Event()
    fake.inject("cancel", status=None, gate=gate)
    cancel = asyncio.create_task(post(get_url(fake, p["id"]) + "/cancel"))
    [held] = await fake.wait_for(lambda: fake.requests_for("cancel"), what="the cancel at the gate")
    assert held.path.endswith(f"/{p['id']}/cancel")
    assert not cancel.done() and not fake.predictions[p["id"]].cancel_requested  # not handled yet
    assert (await get(session, fake, p["id"]))["status"] != "canceled"  # other requests go on meanwhile
    gate.set()
    assert await cancel == 200
    assert fake.predictions[p["id"]].status == "canceled"
    # a status: that error once the gate opens, and nothing done
    gate = asyncio.Event()
    fake.inject("create", status=429, gate=gate)
    refused = asyncio.create_task(post(create_url(fake), {"input": {"prompt": "x"}}))
    await fake.wait_for(lambda: len(fake.creates()) == 2, what="the second create at the gate")
    assert not refused.done() and fake.pending_faults() == []  # the fault took it (and is used up)
    gate.set()
    assert await refused == 429
    assert list(fake.predictions) == [p["id"]]
    # a gate is set from Python only
    async with session.post(f"{fake.base_url}/_fake/inject", json={"route": "get", "gate": True}) as r:
        assert r.status == 400


async def test_inject_on_files(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake.queue_outcome(Outcome(duration=0.02))
    p = await create(session, fake)
    url = (await poll(session, fake, p["id"]))[-1]["output"][0]
    fake.inject("file", status=503)
    async with session.get(url) as r:
        assert r.status == 503
    async with session.get(url) as r:
        assert r.status == 200
    with pytest.raises(ValueError):
        fake.inject("upload")


# -- outcomes ---------------------------------------------------------------------------------------


async def test_failed_canceled_and_aborted(stepped: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    # The fake's clock moves only between two looks, so every phase is seen however busy the machine.
    fake = stepped
    fake.queue_outcome(Outcome(status="failed", error="NSFW content detected", queue_time=0.3, duration=0.5))
    fake.queue_outcome(Outcome(status="failed", duration=0.05))
    fake.queue_outcome(Outcome(status="canceled", duration=0.05))
    fake.queue_outcome(Outcome(status="aborted", queue_time=0.1))
    seen = []
    for _ in range(4):
        created = await create(session, fake)
        seen.append([created, *await walk(session, fake, created["id"], 0.01)])
    ids = [answers[0]["id"] for answers in seen]
    f1, f2, c, a = seen
    assert statuses(f1) == ["starting", "processing", "failed"]
    assert f1[-1]["error"] == "NSFW content detected" and f1[-1]["output"] is None
    assert f2[-1]["status"] == "failed" and f2[-1]["error"]
    assert c[-1]["status"] == "canceled" and c[-1]["output"] is None and c[-1]["completed_at"]
    assert statuses(a) == ["starting", "aborted"]
    assert a[-1]["started_at"] is None and "predict_time" not in a[-1]["metrics"]
    assert fake.predictions[ids[3]].done_at_wall is not None


async def test_never_stays_processing(stepped: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake = stepped
    fake.queue_outcome(Outcome(status="never", queue_time=0.0, duration=0.05))
    p = await create(session, fake, "flux-dev", num_inference_steps=4)
    assert isinstance(fake.clock, ManualClock)
    fake.clock.advance(600)  # ten minutes later, it still runs
    last = await get(session, fake, p["id"])
    assert last["status"] == "processing" and last["completed_at"] is None
    assert progress(last["logs"]) == (3, 4)
    assert fake.predictions[p["id"]].done_at_wall is None


async def test_data_removed(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake.queue_outcome(Outcome(data_removed=True, duration=0.02))
    p = await create(session, fake)
    done = (await poll(session, fake, p["id"]))[-1]
    assert done["status"] == "succeeded" and done["output"] is None and done["data_removed"] is True
    async with session.get(f"{fake.base_url}/files/{p['id']}/0.webp") as r:
        assert r.status == 404


async def test_unknown_status_is_shown_before_processing(stepped: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake = stepped
    fake.queue_outcome(Outcome(unknown_status="queued_for_gpu", unknown_status_time=0.1, queue_time=0.05, duration=0.1))
    p = await create(session, fake)
    assert statuses(await walk(session, fake, p["id"], 0.01)) == [
        "starting",
        "queued_for_gpu",
        "processing",
        "succeeded",
    ]


@pytest.mark.parametrize("code", [404, 410])
async def test_expired_files(fake: FakeCometAPI, session: aiohttp.ClientSession, code: int) -> None:
    fake.queue_outcome(Outcome(file_status=code, duration=0.02))
    p = await create(session, fake)
    url = (await poll(session, fake, p["id"]))[-1]["output"][0]
    async with session.get(url) as r:
        assert r.status == code


async def test_not_an_image_and_content_type(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake.queue_outcome(Outcome(not_image=True, duration=0.02))
    fake.queue_outcome(Outcome(file_content_type="application/octet-stream", duration=0.02))
    urls = []
    for _ in range(2):
        p = await create(session, fake)
        urls.append((await poll(session, fake, p["id"]))[-1]["output"][0])
    async with session.get(urls[0]) as r:
        assert r.status == 200 and r.content_type == "text/html"
        body = await r.read()
    assert b"<html>" in body and body == fake.file_bytes(urls[0])
    async with session.get(urls[1]) as r:
        assert r.content_type == "application/octet-stream"
        assert (await r.read())[:4] == b"RIFF"


async def test_output_shapes(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake.queue_outcome(Outcome(output_shape="string", duration=0.02))
    fake.queue_outcome(Outcome(output_shape="list", duration=0.02))
    fake.queue_outcome(Outcome(output_shape="data_uri", duration=0.02))
    outs = []
    for model in ("flux-schnell", "flux-1.1-pro", "flux-dev"):
        p = await create(session, fake, model, output_format="png")
        outs.append((await poll(session, fake, p["id"]))[-1]["output"])
    last_id = p["id"]
    assert isinstance(outs[0], str) and outs[0].endswith("/0.png")
    assert isinstance(outs[1], list) and len(outs[1]) == 1
    [uri] = outs[2]
    assert uri.startswith("data:image/png;base64,")
    raw = base64.b64decode(uri.split(",", 1)[1])
    assert raw == fake.file_bytes(uri) == fake.file_bytes(f"{fake.base_url}/files/{last_id}/0.png")
    decode_png(raw)


async def test_queued_outcomes_then_default(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake.queue_outcome(Outcome(status="failed"), times=2)
    fake.queue_outcome(Outcome(status="canceled"))
    got = [fake.predictions[(await create(session, fake))["id"]].outcome.status for _ in range(4)]
    assert got == ["failed", "failed", "canceled", "succeeded"]
    fake.default_outcome = Outcome(status="aborted")
    assert fake.predictions[(await create(session, fake))["id"]].outcome.status == "aborted"


# -- cancel -----------------------------------------------------------------------------------------


async def test_cancel(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake.queue_outcome(Outcome(queue_time=0.0, duration=10.0))
    p = await create(session, fake)
    await poll(session, fake, p["id"], until=lambda s: s["status"] == "processing")
    async with session.post(get_url(fake, p["id"]) + "/cancel", headers=AUTH) as r:
        assert r.status == 200
        body = await r.json()
    assert body["status"] == "canceled" and body["completed_at"] and body["started_at"]
    pred = fake.predictions[p["id"]]
    assert pred.cancel_requested
    assert pred.done_at_wall is not None and abs(pred.done_at_wall - time.time()) < 1.0
    await asyncio.sleep(0.05)
    assert (await get(session, fake, p["id"]))["status"] == "canceled"
    # cancelling a finished prediction changes nothing
    fake.queue_outcome(Outcome(duration=0.02))
    q = await create(session, fake)
    await poll(session, fake, q["id"])
    async with session.post(get_url(fake, q["id"]) + "/cancel", headers=AUTH) as r:
        assert (await r.json())["status"] == "succeeded"


@pytest.mark.parametrize("code", [404, 405])
async def test_cancel_can_be_unsupported(fake: FakeCometAPI, session: aiohttp.ClientSession, code: int) -> None:
    fake.cancel_status = code
    fake.queue_outcome(Outcome(queue_time=0.0, duration=0.2))
    p = await create(session, fake)
    async with session.post(get_url(fake, p["id"]) + "/cancel", headers=AUTH) as r:
        assert r.status == code
    assert fake.predictions[p["id"]].cancel_requested
    assert [r.path for r in fake.requests_for("cancel")] == [f"/replicate/v1/predictions/{p['id']}/cancel"]
    assert (await poll(session, fake, p["id"]))[-1]["status"] == "succeeded"


# -- records and the HTTP control routes ------------------------------------------------------------


async def test_requests_are_recorded(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    before = time.monotonic()
    p = await create(session, fake, seed=3)
    async with session.get(get_url(fake, p["id"]) + "?x=1", headers=AUTH) as r:
        assert r.status == 200
    create_req, get_req = fake.requests
    assert fake.creates() == [create_req]
    assert create_req.method == "POST" and create_req.route == "create"
    assert create_req.path == f"/replicate/v1/models/{BFL}/flux-schnell/predictions"
    assert create_req.headers["Authorization"] == f"Bearer {KEY}"
    assert create_req.json == {"input": {"prompt": "a red fox in the snow", "seed": 3}}
    assert before <= create_req.at <= get_req.at and abs(create_req.wall - time.time()) < 5
    assert get_req.route == "get" and get_req.query == {"x": "1"} and get_req.json is None


async def test_http_control_routes(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    base = f"{fake.base_url}/_fake"
    async with session.post(f"{base}/outcomes", json={"status": "failed", "error": "boom", "duration": 0.02}) as r:
        assert r.status == 200
    async with session.post(f"{base}/outcomes", json={"status": "sideways"}) as r:
        assert r.status == 400
    async with session.post(
        f"{base}/inject", json={"route": "get", "status": 503, "headers": {"Retry-After": "2"}}
    ) as r:
        assert r.status == 200
    async with session.post(f"{base}/inject", json={"route": "nowhere"}) as r:
        assert r.status == 400
    p = await create(session, fake)
    async with session.get(get_url(fake, p["id"]), headers=AUTH) as r:
        assert r.status == 503 and r.headers["Retry-After"] == "2"
    assert (await poll(session, fake, p["id"]))[-1]["error"] == "boom"
    async with session.get(f"{base}/requests") as r:
        reqs = await r.json()
    assert reqs[0]["route"] == "create" and reqs[0]["json"]["input"]["prompt"]
    assert reqs[0]["headers"]["Authorization"] == f"Bearer {KEY}"
    assert not any(q["path"].startswith("/_fake") for q in reqs)
    async with session.get(f"{base}/requests?route=get") as r:
        assert {q["route"] for q in await r.json()} == {"get"}
    async with session.get(f"{base}/predictions") as r:
        [summary] = await r.json()
    assert summary["id"] == p["id"] and summary["status"] == "failed" and summary["model"] == f"{BFL}/flux-schnell"
    # every poll reached the prediction but the one the injected 503 answered
    assert summary["gets"] == len(fake.requests_for("get")) - 1 and summary["done_wall"] >= summary["created_wall"]
    async with session.post(f"{base}/config", json={"cancel_status": 405, "default_outcome": {"status": "never"}}) as r:
        assert (await r.json())["cancel_status"] == 405
    assert fake.cancel_status == 405 and fake.default_outcome.status == "never"
    async with session.post(f"{base}/outcomes", json={"status": "aborted", "default": True}) as r:
        assert r.status == 200
    assert fake.default_outcome.status == "aborted"
    async with session.post(f"{base}/reset") as r:
        assert r.status == 200
    assert fake.requests == [] and fake.predictions == {}
    async with session.get(f"{base}/config") as r:
        config = await r.json()
    assert config["cancel_status"] is None and config["default_outcome"] == Outcome().to_json()


async def test_prefer_wait_holds_the_create(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    fake.queue_outcome(Outcome(queue_time=0.0, duration=0.1))
    async with session.post(
        create_url(fake), json={"input": {"prompt": "x"}}, headers={**AUTH, "Prefer": "wait=5"}
    ) as r:
        body = await r.json()
    assert body["status"] == "succeeded" and body["output"]
    fake.prefer_wait = False
    fake.queue_outcome(Outcome(queue_time=0.5, duration=0.1))  # "starting" outlasts a late answer on a busy machine
    async with session.post(create_url(fake), json={"input": {"prompt": "x"}}, headers={**AUTH, "Prefer": "wait"}) as r:
        assert (await r.json())["status"] == "starting"


async def test_standalone_process() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fakes.cometapi",
        "--port",
        "0",
        "--speed",
        "0.01",
        "--key",
        "k2",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            line = (await proc.stdout.readline()).decode()
        m = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert m, line
        base = m.group(0)
        async with aiohttp.ClientSession() as s:
            url = f"{base}/replicate/v1/models/{BFL}/flux-schnell/predictions"
            async with s.post(url, json={"input": {"prompt": "x"}}, headers={"Authorization": "Bearer k2"}) as r:
                assert r.status == 201
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# -- the models' schemas -----------------------------------------------------------------------------

PNG_URI = "data:image/png;base64,iVBORw0KGgo="


@pytest.mark.parametrize(
    ("model", "inp", "field", "words"),
    [
        ("flux-2-pro", {"input_images": [PNG_URI] * 9}, "input.input_images", "at most 8 items"),
        ("flux-2-flex", {"input_images": [PNG_URI] * 11}, "input.input_images", "at most 10 items"),
        ("flux-2-dev", {"input_images": [PNG_URI] * 5}, "input.input_images", "at most 4 items"),
        ("flux-2-pro", {"input_images": ["data:text/html;base64,PGI+"]}, "input.input_images", "data: URI of an image"),
        ("flux-2-pro", {"input_images": PNG_URI}, "input.input_images", "Expected: array"),
        ("flux-2-dev", {"resolution": "1 MP"}, "input", "Additional property resolution is not allowed"),
        ("flux-2-dev", {"safety_tolerance": 2}, "input", "Additional property safety_tolerance"),
        ("flux-2-pro", {"safety_tolerance": 6}, "input.safety_tolerance", "less than or equal to 5"),
        ("flux-2-pro", {"resolution": "3 MP"}, "input.resolution", "must be one of"),
        ("flux-2-pro", {"aspect_ratio": "custom", "width": 1000, "height": 1024}, "input.width", "multiple of 16"),
        ("flux-2-dev", {"aspect_ratio": "custom", "width": 2048, "height": 1024}, "input.width", "1440"),
        ("flux-2-pro", {"aspect_ratio": "match_input_image"}, "input.aspect_ratio", "needs an input image"),
        ("flux-2-pro", {"num_outputs": 2}, "input", "Additional property num_outputs"),
        ("flux-2-flex", {"steps": 51}, "input.steps", "less than or equal to 50"),
        ("flux-2-flex", {"guidance": 1}, "input.guidance", "greater than or equal to 1.5"),
        ("flux-pro", {"aspect_ratio": "21:9"}, "input.aspect_ratio", "must be one of"),
        ("flux-pro", {"input_image": PNG_URI}, "input", "Additional property input_image"),
        ("flux-kontext-pro", {"input_image": PNG_URI, "safety_tolerance": 4}, "input.safety_tolerance", "2"),
        ("flux-1.1-pro-ultra", {"raw": "yes"}, "input.raw", "Expected: boolean"),
    ],
)
async def test_the_fake_refuses_what_each_model_would(
    fake: FakeCometAPI, session: aiohttp.ClientSession, model: str, inp: dict[str, Any], field: str, words: str
) -> None:
    async with session.post(create_url(fake, model), json={"input": {"prompt": "x", **inp}}, headers=AUTH) as r:
        assert r.status == 422, await r.text()
        body = await r.json()
    assert any(f["field"] == field and words in f["description"] for f in body["invalid_fields"]), body
    assert fake.predictions == {}


async def test_the_fake_takes_a_full_flux_2_request_and_logs_no_progress_bar(
    stepped: FakeCometAPI, session: aiohttp.ClientSession
) -> None:
    fake = stepped
    fake.queue_outcome(Outcome(queue_time=0.0, duration=0.2))
    inp = {
        "input_images": [PNG_URI, "https://example.com/b.png", *([PNG_URI] * 6)], "aspect_ratio": "match_input_image",
        "resolution": "4 MP", "safety_tolerance": 5, "seed": 7, "output_format": "png", "output_quality": 95,
    }  # fmt: skip
    p = await create(session, fake, "flux-2-pro", **inp)
    seen = await walk(session, fake, p["id"], 0.05)
    assert seen[-1]["status"] == "succeeded"
    assert isinstance(seen[-1]["output"], str) and seen[-1]["output"].endswith("/0.png")
    during = [s["logs"] for s in seen if s["status"] == "processing"]
    assert during and all("Using 8 reference image(s)" in log and "%" not in log for log in during)
    custom = await create(session, fake, "flux-2-dev", aspect_ratio="custom", width=1024, height=768, go_fast=False)
    assert custom["status"] == "starting"


# -- chat completions and moderations (fakes/cometapi_words.py) ------------------------------------------


async def test_chat_answers_openai_shape_with_usage(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    body = {"model": "gpt-5-mini", "messages": [{"role": "user", "content": "a fox"}], "max_tokens": 200}
    async with session.post(f"{fake.base_url}/v1/chat/completions", json=body, headers=AUTH) as resp:
        assert resp.status == 200
        data = await resp.json()
    assert data["choices"][0]["message"]["role"] == "assistant"
    assert data["choices"][0]["message"]["content"].startswith("a fox")
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    [rec] = fake.requests_for("chat")
    assert rec.json == body

    fake.words.queue_reply("exactly this", usage=(10, 5))
    async with session.post(f"{fake.base_url}/v1/chat/completions", json=body, headers=AUTH) as resp:
        data = await resp.json()
    assert data["choices"][0]["message"]["content"] == "exactly this"
    assert data["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


async def test_chat_with_an_image_counts_its_tokens_and_needs_a_vision_model(
    fake: FakeCometAPI, session: aiohttp.ClientSession
) -> None:
    parts = [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
    ]
    body = {"model": "gpt-5-mini", "messages": [{"role": "user", "content": parts}]}
    async with session.post(f"{fake.base_url}/v1/chat/completions", json=body, headers=AUTH) as resp:
        data = await resp.json()
    assert data["usage"]["prompt_tokens"] > 765
    assert data["choices"][0]["message"]["content"].count("\n") == 3  # four prompts
    fake.words.vision_models = set()
    async with session.post(f"{fake.base_url}/v1/chat/completions", json=body, headers=AUTH) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "invalid_request"


async def test_chat_errors_key_model_and_injected(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    url = f"{fake.base_url}/v1/chat/completions"
    body = {"model": "gpt-5-mini", "messages": [{"role": "user", "content": "x"}]}
    async with session.post(url, json=body, headers={"Authorization": "Bearer wrong"}) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["type"] == "comet_api_error"
    async with session.post(url, json={**body, "model": "no-such-model"}, headers=AUTH) as resp:
        assert resp.status == 503
    async with session.post(url, json={"model": "gpt-5-mini"}, headers=AUTH) as resp:
        assert resp.status == 400
    fake.inject("chat", status=429, headers={"Retry-After": "1"})
    async with session.post(url, json=body, headers=AUTH) as resp:
        assert resp.status == 429
    async with session.post(url, json=body, headers=AUTH) as resp:
        assert resp.status == 200


async def test_moderation_flags_queued_and_words(fake: FakeCometAPI, session: aiohttp.ClientSession) -> None:
    url = f"{fake.base_url}/v1/moderations"
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
    body = {"model": "omni-moderation-latest", "input": [image]}
    async with session.post(url, json=body, headers=AUTH) as resp:
        [result] = (await resp.json())["results"]
    assert result["flagged"] is False
    assert result["category_applied_input_types"]["sexual"] == ["image"]
    fake.words.queue_flag({"sexual": True})
    async with session.post(url, json=body, headers=AUTH) as resp:
        [result] = (await resp.json())["results"]
    assert result["flagged"] is True and result["categories"]["sexual"] is True
    fake.words.flag_words = {"gore"}
    async with session.post(url, json={"input": "much gore"}, headers=AUTH) as resp:
        assert (await resp.json())["results"][0]["flagged"] is True
    fake.inject("moderation", status=502)
    async with session.post(url, json=body, headers=AUTH) as resp:
        assert resp.status == 502
    assert len(fake.requests_for("moderation")) == 4
