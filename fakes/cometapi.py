"""A fake CometAPI (Replicate-style predictions for FLUX models), as an aiohttp server on 127.0.0.1.

It follows CometAPI's documented behaviour: create/get/cancel predictions, statuses that advance with the clock,
realistic logs, per-model output shapes, CometAPI and Replicate error bodies, and output files served by
the fake itself. Tests drive it from Python; a benchmark or a person drives it over HTTP under /_fake/.

    fake = FakeCometAPI(api_key="test-key", speed=0.02, seed=0, image_size=20_000)
    await fake.start()                      # fake.base_url == "http://127.0.0.1:PORT"; the API base
    fake.queue_outcome(Outcome(status="failed", error="NSFW content detected"), times=1)
    fake.inject("get", status=503, headers={"Retry-After": "1"})
    fake.inject("cancel", status=None, gate=gate)   # held in the air until gate.set(), then answered normally
    fake.requests, fake.creates(), fake.predictions[pred_id].done_at_wall, fake.file_bytes(url)
    await fake.wait_for(fake.creates)       # re-checked at every request until it returns something truthy
    fake.check_input_images = True          # fetch/decode input images like the API; see cometapi_inputs.py
    fake.words.queue_reply("..."), fake.requests_for("chat")   # chat and moderations: cometapi_words.py
    await fake.close()

Routes: POST /replicate/v1/models/{owner}/{name}/predictions, GET /replicate/v1/predictions/{id},
POST /replicate/v1/predictions/{id}/cancel, POST /v1/chat/completions, POST /v1/moderations (bearer key
checked; see fakes/cometapi_words.py), GET /files/{id}/{n}.{ext} (no key), and
the keyless controls POST /_fake/outcomes, POST /_fake/inject, GET /_fake/requests[?route=],
GET /_fake/predictions, POST /_fake/reset, GET|POST /_fake/config.

Timing: a prediction is "starting" for its queue time, then shows Outcome.unknown_status (if any), then
"processing" for its duration, then its outcome. Defaults at speed 1.0: queue 0-0.5 s; flux-schnell 1-2 s,
flux-dev 3-6 s, the pro, ultra and kontext models 5-15 s, flux-2-pro 7-30 s, flux-2-flex 12-38 s, flux-2-dev
3-12 s; all multiplied by ``speed``, drawn from random.Random(seed). Outcome times are used as given. File
formats: see fakes/cometapi_images.py.

Inputs are checked against each model's schema (fakes/cometapi_models.py: types, ranges, choices, how
many reference images, multiples for custom sizes, match_input_image only with an image); a create the model
would refuse gets Replicate's 422 with ``invalid_fields``, and no prediction is made.

    python -m fakes.cometapi --port 8787 [--key KEY] [--speed 1.0] [--seed 0] [--image-size BYTES]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import random
import signal
import string
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from fakes.cometapi_images import FileBody, ImageFactory
from fakes.cometapi_inputs import look_at_inputs
from fakes.cometapi_models import (
    MODELS,
    NOT_IMAGE_HTML,
    QUEUE_RANGE,
    FakePrediction,
    ModelSpec,
    Outcome,
    comet_error,
    phrase,
    problem,
    validate_input,
)
from fakes.cometapi_words import FakeWords
from fakes.common import Changes, Fault, ManualClock, RecordedRequest

__all__ = ["DEFAULT_IMAGE_SIZES", "MODELS", "FakeCometAPI", "FakePrediction", "Fault", "Outcome", "RecordedRequest"]

T = TypeVar("T")

ROUTES = ("create", "get", "cancel", "file", "chat", "moderation")
DEFAULT_IMAGE_SIZES = {"png": 1_400_000, "jpg": 400_000, "webp": 120_000}
_ID_CHARS = string.ascii_lowercase + string.digits
_STREAM_CHUNK = 256 * 1024
_STREAM_ABOVE = 4 * 1024 * 1024  # bigger files are streamed from their parts


_REC = web.RequestKey("fake_rec", RecordedRequest)
Answer = Callable[[dict[str, str]], Awaitable[web.StreamResponse]]
Act = Callable[[web.Request], Answer]


class FakeCometAPI:
    """The fake server. See the module docstring and tests/test_fake_cometapi.py for use."""

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        speed: float = 1.0,
        seed: int = 0,
        image_size: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_key = api_key
        # What the predictions' phases are timed by; a test may pass a ManualClock (fakes/common.py) to step
        # through them. Under a ManualClock a "Prefer: wait" create answers at once with what is true then.
        self.clock = clock
        self.speed = speed
        self.seed = seed
        self.image_size = image_size  # bytes of every output file; None: DEFAULT_IMAGE_SIZES per format
        self.requests: list[RecordedRequest] = []
        self.predictions: dict[str, FakePrediction] = {}
        self.default_outcome = Outcome()
        self.cancel_status: int | None = None  # 404 or 405: the cancel route answers that (not supported)
        self.prefer_wait = True  # honour "Prefer: wait[=N]" on create as Replicate does
        # Fetch (URL) or decode (data: URI) every input image on create, as the API does, failing the prediction
        # when one is unusable; what it got goes in prediction.extra["inputs"]. Off by default: many tests
        # send made-up URLs that no server answers.
        self.check_input_images = False
        self.words = FakeWords()  # what chat completions and moderations answer
        self.base_url = ""
        self._rng = random.Random(seed)
        self._outcomes: deque[list[Any]] = deque()  # [Outcome, times left]
        self._faults: dict[str, deque[Fault]] = {r: deque() for r in ROUTES}  # each route's, first one first
        self._images = ImageFactory(seed)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.changes = Changes("fake CometAPI")  # what wait_for() waits on

    # -- life -----------------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(middlewares=[self._record_middleware], client_max_size=64 * 1024 * 1024)
        r = app.router
        r.add_post(
            "/replicate/v1/models/{owner}/{name}/predictions", self._route("create", self._create), name="create"
        )
        r.add_get("/replicate/v1/predictions/{id}", self._route("get", self._get), name="get", allow_head=False)
        r.add_post("/replicate/v1/predictions/{id}/cancel", self._route("cancel", self._cancel), name="cancel")
        r.add_get("/files/{id}/{filename}", self._route("file", self._file), name="file", allow_head=False)
        r.add_post("/v1/chat/completions", self._route("chat", self._words(self.words.chat)), name="chat")
        r.add_post("/v1/moderations", self._route("moderation", self._words(self.words.moderation)), name="moderation")
        r.add_post("/_fake/outcomes", self._ctl_outcomes)
        r.add_post("/_fake/inject", self._ctl_inject)
        r.add_get("/_fake/requests", self._ctl_requests)
        r.add_get("/_fake/predictions", self._ctl_predictions)
        r.add_post("/_fake/reset", self._ctl_reset)
        r.add_get("/_fake/config", self._ctl_config)
        r.add_post("/_fake/config", self._ctl_config)
        self._closing = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        return self.base_url

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeCometAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- controls -------------------------------------------------------------------------------------

    def queue_outcome(self, outcome: Outcome, times: int = 1) -> None:
        """The next ``times`` created predictions end like this (FIFO), then ``default_outcome`` again."""
        if times < 1:
            raise ValueError("times must be at least 1")
        self._outcomes.append([outcome, times])

    def inject(
        self,
        route: str,
        *,
        status: int | None = 500,
        json: Any | None = None,
        text: str | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        drop: bool = False,
        times: int = 1,
        side_effects: bool = False,
        body: bytes | None = None,
        gate: asyncio.Event | None = None,
    ) -> Fault:
        """Override the next ``times`` answers on ``route`` (create, get, cancel, file).

        status=None answers normally (after ``delay``, with ``headers`` added). ``drop`` closes the
        connection without an answer after the real handler ran (so a dropped create DID create).
        ``side_effects`` runs the real handler before sending the injected status. ``body``: these raw bytes.
        ``gate``: each request it takes is recorded, then held in the air, not yet handled, until the test sets
        the event (``await fake.wait_for(lambda: fake.requests_for(route))`` tells it arrived); then it is
        handled and answered as above. A test acts while the request is in the air, with no sleep.
        """
        if route not in ROUTES:
            raise ValueError(f"route must be one of {ROUTES}, not {route!r}")
        if times < 1:
            raise ValueError("times must be at least 1")
        if gate is not None and not isinstance(gate, asyncio.Event):
            raise TypeError("gate must be an asyncio.Event (set from Python; not over HTTP)")
        fault = Fault(
            status=status,
            json=json,
            headers=dict(headers or {}),
            delay=delay,
            times=times,
            text=text,
            content_type=content_type,
            body=body,
            drop=drop,
            side_effects=side_effects,
            gate=gate,
        )
        self._faults[route].append(fault)
        return fault

    def reset(self) -> None:
        """Forget requests, predictions, queued outcomes and injections; restore default switches."""
        self.requests.clear()
        self.predictions.clear()
        self._outcomes.clear()
        for q in self._faults.values():
            q.clear()
        self.default_outcome = Outcome()
        self.cancel_status = None
        self.prefer_wait = True
        self.check_input_images = False
        self.words.reset()
        self._rng = random.Random(self.seed)

    def pending_faults(self) -> list[Fault]:
        """The injected faults that have not yet taken all the requests they were meant to."""
        return [fault for queue in self._faults.values() for fault in queue]

    def creates(self) -> list[RecordedRequest]:
        return self.requests_for("create")

    def requests_for(self, route: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.route == route]

    async def wait_for(self, predicate: Callable[[], T | None], *, timeout: float = 5.0, what: str = "condition") -> T:
        """Re-check ``predicate`` whenever a request arrives or is answered, until it returns something true
        (an empty list is not); e.g. ``await fake.wait_for(fake.creates)`` (see `Changes.wait_for`)."""
        return await self.changes.wait_for(predicate, timeout=timeout, what=what)

    def _changed(self) -> None:
        self.changes.changed()

    def file_bytes(self, url: str) -> bytes:
        """The bytes the fake serves (or embeds, for a data: URI) at ``url``."""
        if url.startswith("data:"):
            return base64.b64decode(url.split(",", 1)[1])
        parts = urlsplit(url).path.split("/")
        if len(parts) != 4 or parts[1] != "files":
            raise KeyError(url)
        pred = self.predictions[parts[2]]
        n = self._file_index(pred, parts[3])
        if n is None:
            raise KeyError(url)
        if pred.outcome.not_image:
            return NOT_IMAGE_HTML.encode()
        return self._image_body(pred, n).to_bytes()

    # -- plumbing -------------------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)

    async def _wait_gate(self, gate: asyncio.Event) -> None:
        """Hold a request until the test opens its gate (or the fake closes: it is not held past its life)."""
        opened = asyncio.ensure_future(gate.wait())
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({opened, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (opened, closing):
                waiter.cancel()
            await asyncio.gather(opened, closing, return_exceptions=True)

    @web.middleware
    async def _record_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.path.startswith("/_fake/"):
            body = await request.read()
            parsed: Any = None
            if body:
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
            rec = RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                json=parsed,
                route=request.match_info.route.name or "other",
                body=body,
            )
            self.requests.append(rec)
            request[_REC] = rec
            self._changed()
        try:
            return await handler(request)
        finally:
            self._changed()

    def _take(self, q: deque[list[Any]]) -> Any:
        if not q:
            return None
        entry = q[0]
        entry[1] -= 1
        if entry[1] <= 0:
            q.popleft()
        return entry[0]

    @staticmethod
    def _take_fault(queue: deque[Fault]) -> Fault | None:
        if not queue:
            return None
        fault = queue[0]
        fault.hits += 1
        if fault.used_up:
            queue.popleft()
        return fault

    def _route(self, route: str, act: Act) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            inj = self._take_fault(self._faults[route])
            if inj is None:
                return await act(request)({})
            if inj.gate is not None:
                await self._wait_gate(inj.gate)
            answer = act(request) if (inj.drop or inj.status is None or inj.side_effects) else None
            await self._sleep(inj.delay)
            if inj.drop:
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=500)  # never reaches the client: the connection is gone
            if inj.status is None:
                assert answer is not None
                return await answer(dict(inj.headers or {}))
            return self._injected(inj)

        return handler

    @staticmethod
    def _injected(inj: Fault) -> web.Response:
        status = inj.status or 500
        headers = dict(inj.headers or {})
        if inj.body is not None:
            headers.setdefault("Content-Type", inj.content_type or "application/octet-stream")
            return web.Response(status=status, body=inj.body, headers=headers)
        if inj.text is not None:
            headers.setdefault("Content-Type", inj.content_type or "text/plain; charset=utf-8")
            return web.Response(status=status, body=inj.text.encode(), headers=headers)
        if inj.json is not None:
            return web.json_response(
                inj.json, status=status, headers=headers, content_type=inj.content_type or "application/json"
            )
        if status == 429:
            wait = headers.get("Retry-After", "1")
            wait = wait if wait.isdigit() else "1"
            return problem(
                429,
                "Request was throttled",
                f"Request was throttled. Your rate limit resets in ~{wait}s.",
                headers=headers,
            )
        return comet_error(status, phrase(status), "upstream_error" if status >= 500 else "bad_request", headers)

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token.strip() == self.api_key

    @staticmethod
    def _unauthorized() -> web.Response:
        return comet_error(401, "invalid token", "invalid_token")

    def _render(self, pred: FakePrediction, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        now = self.clock()
        data_uris = None
        if pred.outcome.output_shape == "data_uri" and pred.status_at(now) == "succeeded":
            data_uris = [self._image_body(pred, n).to_bytes() for n in range(pred.num_outputs)]
        return web.json_response(pred.to_json(self.base_url, now, data_uris), status=status, headers=headers)

    @staticmethod
    def _fixed(response: web.StreamResponse) -> Answer:
        async def answer(headers: dict[str, str]) -> web.StreamResponse:
            response.headers.update(headers)
            return response

        return answer

    # -- API routes -----------------------------------------------------------------------------------

    def _next_outcome(self) -> Outcome:
        outcome: Outcome | None = self._take(self._outcomes)
        return outcome if outcome is not None else self.default_outcome

    def _create(self, request: web.Request) -> Answer:
        if not self._authorized(request):
            return self._fixed(self._unauthorized())
        owner, name = request.match_info["owner"], request.match_info["name"]
        spec = MODELS.get(f"{owner}/{name}")
        if spec is None:
            return self._fixed(comet_error(404, f"model {owner}/{name} not found", "model_not_found"))
        rec = request[_REC]
        if rec.json is None and rec.body:
            return self._fixed(problem(400, "Invalid JSON", "The request body is not valid JSON."))
        body = rec.json if isinstance(rec.json, dict) else {}
        inp = body.get("input")
        if not isinstance(inp, dict):
            fields = [{"type": "required", "field": "(root)", "description": "input is required"}]
            return self._fixed(problem(422, "Input validation failed", "- (root): input is required\n", fields))
        invalid = validate_input(spec, inp)
        if invalid:
            detail = "".join(f"- {f['field']}: {f['description']}\n" for f in invalid)
            return self._fixed(problem(422, "Input validation failed", detail, invalid))
        pred = self._new_prediction(spec, f"{owner}/{name}", inp)
        wait = self._prefer_wait_seconds(request) if self.prefer_wait else None

        async def answer(headers: dict[str, str]) -> web.StreamResponse:
            if self.check_input_images:
                await self._check_input_images(pred)
            if wait is not None and self.clock is time.monotonic:
                end = pred.end_offset
                until = wait if end is None else min(wait, end)
                await self._sleep(pred.created + until - self.clock())
            return self._render(pred, 201, headers)

        return answer

    @staticmethod
    async def _check_input_images(pred: FakePrediction) -> None:
        seen = await look_at_inputs(pred.input)
        pred.extra["inputs"] = [each.as_json() for each in seen]
        problems = [each.problem for each in seen if each.problem]
        if problems:
            pred.outcome = replace(pred.outcome, status="failed", error=problems[0])

    @staticmethod
    def _prefer_wait_seconds(request: web.Request) -> float | None:
        for item in request.headers.get("Prefer", "").split(","):
            key, _, value = item.strip().partition("=")
            if key.strip().lower() == "wait":
                try:
                    seconds = float(value) if value else 60.0
                except ValueError:
                    return None
                return max(1.0, min(60.0, seconds))
        return None

    def _new_prediction(self, spec: ModelSpec, model: str, inp: dict[str, Any]) -> FakePrediction:
        outcome = self._next_outcome()
        rng = self._rng
        pred_id = "".join(rng.choice(_ID_CHARS) for _ in range(26))
        seed = inp["seed"] if isinstance(inp.get("seed"), int) else rng.randrange(2**16)
        queue = outcome.queue_time if outcome.queue_time is not None else rng.uniform(*QUEUE_RANGE) * self.speed
        duration = outcome.duration if outcome.duration is not None else rng.uniform(*spec.duration) * self.speed
        unknown = 0.0
        if outcome.unknown_status:
            unknown = outcome.unknown_status_time if outcome.unknown_status_time is not None else self.speed
        ext = inp.get("output_format") or spec.default_format
        steps = None
        if spec.steps is not None:
            steps = inp.get("num_inference_steps") or spec.steps[2]
        pred = FakePrediction(
            id=pred_id,
            model=model,
            input=inp,
            outcome=outcome,
            spec=spec,
            seed=seed,
            created=self.clock(),
            clock=self.clock,
            created_wall=time.time(),
            queue_time=queue,
            unknown_time=unknown,
            duration=duration,
            num_outputs=int(inp.get("num_outputs") or 1) if spec.max_outputs > 1 else 1,
            ext=ext,
            steps=steps,
            file_size=outcome.file_size or self.image_size or DEFAULT_IMAGE_SIZES[ext],
            stream_id="".join(rng.choice(_ID_CHARS) for _ in range(52)),
        )
        self.predictions[pred_id] = pred
        return pred

    def _get(self, request: web.Request) -> Answer:
        if not self._authorized(request):
            return self._fixed(self._unauthorized())
        pred = self.predictions.get(request.match_info["id"])
        if pred is None:
            return self._fixed(problem(404, "Not found", "The requested resource could not be found."))
        pred.gets += 1

        async def answer(headers: dict[str, str]) -> web.StreamResponse:
            response = self._render(pred, 200, headers)
            if isinstance(self.clock, ManualClock):
                self.clock.advance(self.clock.per_poll)
            return response

        return answer

    def _cancel(self, request: web.Request) -> Answer:
        pred = self.predictions.get(request.match_info["id"])
        if pred is not None:
            pred.cancel_requested = True
        if self.cancel_status == 405:
            return self._fixed(web.Response(status=405, text="405: Method Not Allowed", headers={"Allow": "GET"}))
        if self.cancel_status is not None:
            return self._fixed(comet_error(self.cancel_status, f"Invalid URL (POST {request.path})", ""))
        if not self._authorized(request):
            return self._fixed(self._unauthorized())
        if pred is None:
            return self._fixed(problem(404, "Not found", "The requested resource could not be found."))
        if not pred.is_terminal():
            pred.canceled_after = pred.elapsed()

        async def answer(headers: dict[str, str]) -> web.StreamResponse:
            return self._render(pred, 200, headers)

        return answer

    def _words(self, answer: Callable[[Any], web.Response]) -> Act:
        """A chat or moderation route: the key checked, then the body answered by `self.words`."""

        def act(request: web.Request) -> Answer:
            if not self._authorized(request):
                return self._fixed(self._unauthorized())
            rec = request[_REC]
            if rec.json is None and rec.body:
                return self._fixed(comet_error(400, "invalid JSON body", "invalid_request"))
            return self._fixed(answer(rec.json))

        return act

    @staticmethod
    def _file_index(pred: FakePrediction, filename: str) -> int | None:
        stem, _, ext = filename.partition(".")
        if ext != pred.ext or not stem.isdigit() or int(stem) >= pred.num_outputs:
            return None
        return int(stem)

    def _image_body(self, pred: FakePrediction, n: int) -> FileBody:
        prompt = str(pred.input.get("prompt", ""))
        return self._images.body(pred.ext, f"{pred.id}/{n}", f"{pred.seed} {n} {prompt}", pred.file_size)

    def _file(self, request: web.Request) -> Answer:
        pred = self.predictions.get(request.match_info["id"])
        n = None if pred is None else self._file_index(pred, request.match_info["filename"])

        async def answer(headers: dict[str, str]) -> web.StreamResponse:
            if pred is None or n is None or pred.status != "succeeded" or pred.outcome.data_removed:
                return web.Response(status=404, text="Not Found", headers=headers)
            outcome = pred.outcome
            if outcome.file_status is not None:
                return web.Response(status=outcome.file_status, text=phrase(outcome.file_status), headers=headers)
            if outcome.not_image:
                return web.Response(
                    text=NOT_IMAGE_HTML, headers=headers, content_type=outcome.file_content_type or "text/html"
                )
            body = self._image_body(pred, n)
            ctype = outcome.file_content_type or body.content_type
            if body.size <= _STREAM_ABOVE:
                return web.Response(body=body.to_bytes(), headers={**headers, "Content-Type": ctype})
            resp = web.StreamResponse(headers={**headers, "Content-Type": ctype})
            resp.content_length = body.size
            await resp.prepare(request)
            for chunk in body.chunks(_STREAM_CHUNK):
                await resp.write(chunk)
            await resp.write_eof()
            return resp

        return answer

    # -- HTTP control routes --------------------------------------------------------------------------

    @staticmethod
    async def _json_body(request: web.Request) -> dict[str, Any]:
        try:
            data = await request.json() if request.can_read_body else {}
        except ValueError as exc:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": f"invalid JSON: {exc}"}), content_type="application/json"
            ) from exc
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "expected a JSON object"}), content_type="application/json"
            )
        return data

    @staticmethod
    def _bad(message: str) -> web.Response:
        return web.json_response({"error": message}, status=400)

    async def _ctl_outcomes(self, request: web.Request) -> web.Response:
        data = await self._json_body(request)
        times = data.pop("times", 1)
        as_default = bool(data.pop("default", False))
        try:
            outcome = Outcome.from_json(data)
            if as_default:
                self.default_outcome = outcome
            else:
                self.queue_outcome(outcome, int(times))
        except (TypeError, ValueError) as exc:
            return self._bad(str(exc))
        return web.json_response({"ok": True, "queued": sum(t for _, t in self._outcomes)})

    async def _ctl_inject(self, request: web.Request) -> web.Response:
        data = await self._json_body(request)
        try:
            self.inject(data.pop("route", ""), **data)
        except (TypeError, ValueError) as exc:
            return self._bad(str(exc))
        return web.json_response({"ok": True})

    async def _ctl_requests(self, request: web.Request) -> web.Response:
        route = request.query.get("route")
        items = self.requests if route is None else self.requests_for(route)
        return web.json_response([r.to_json() for r in items])

    async def _ctl_predictions(self, request: web.Request) -> web.Response:
        return web.json_response([p.summary() for p in self.predictions.values()])

    async def _ctl_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _ctl_config(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            data = await self._json_body(request)
            allowed = {
                "api_key",
                "speed",
                "image_size",
                "cancel_status",
                "prefer_wait",
                "check_input_images",
                "default_outcome",
            }
            if set(data) - allowed:
                return self._bad(f"unknown settings: {sorted(set(data) - allowed)}; allowed: {sorted(allowed)}")
            try:
                if "default_outcome" in data:
                    self.default_outcome = Outcome.from_json(data.pop("default_outcome") or {})
            except (TypeError, ValueError) as exc:
                return self._bad(str(exc))
            for key, value in data.items():
                setattr(self, key, value)
        return web.json_response(
            {
                "api_key": self.api_key,
                "speed": self.speed,
                "image_size": self.image_size,
                "cancel_status": self.cancel_status,
                "prefer_wait": self.prefer_wait,
                "check_input_images": self.check_input_images,
                "default_outcome": self.default_outcome.to_json(),
                "base_url": self.base_url,
            }
        )


# -- standalone -------------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeCometAPI(args.key, speed=args.speed, seed=args.seed, image_size=args.image_size)
    await fake.start(args.host, args.port)
    try:
        print(f"Fake CometAPI on {fake.base_url}  (key {args.key!r}, speed {args.speed}, seed {args.seed})")
        print(
            f"  API base: {fake.base_url}   control: {fake.base_url}/_fake/{{outcomes,inject,requests,"
            "predictions,reset,config}"
        )
        print("Ctrl-C (or SIGTERM) to stop.", flush=True)
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
    finally:
        await fake.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fakes.cometapi", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--key", default="test-key", help="the API key it accepts (default test-key)")
    parser.add_argument("--speed", type=float, default=1.0, help="multiplies every default duration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=None, help="bytes of each output file")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
