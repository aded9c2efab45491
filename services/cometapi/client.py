"""CometAPI's Replicate-style prediction endpoints over one aiohttp session.

Layers: `_send` owns the transport (URL, auth, timeouts) and the retry rules; `_raise_for_status` turns
a bad answer into a typed error; the public methods return `Prediction` objects, or for the OpenAI-compatible
routes on the same host and key (`/v1/chat/completions`, `/v1/moderations`) the plain values of words.py.

Retry rules (CometAPI and Replicate document them alike): GET and cancel are retried on timeouts, dropped
connections, 429 and 500/502/503/504/524. A create is retried only when the connection failed before
the request was sent, or on 429; anything that may have reached the server is never repeated, because a
second create is a second charge. A chat completion is paid for like a create, so it follows the same rule;
a moderation is retried like a GET.

A create may be given a `guard`, awaited before each attempt after the first (and now and then while waiting for
it): the job runner's lease fence and its Cancel and deadline. A guard that raises stops the create instead of
sending it again; its error is raised with the refusal that made the retry necessary as its cause (a 429, or a
connection never made): nothing was created.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from services.cometapi.predictions import Prediction
from services.cometapi.words import ChatAnswer, Checked, chat_answer, checked
from services.errors import (
    ApiError,
    AuthError,
    BillingError,
    RateLimited,
    Rejected,
    Unavailable,
    UncertainCreate,
)
from services.secrets import Secret, redact

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504, 524})
USER_AGENT = "flux-discord-bot/0.1 (+https://github.com/; aiohttp)"
Sleep = Callable[[float], Awaitable[None]]
# Awaited before a request is sent again (and, for a create, now and then while waiting to): raises to stop instead.
Guard = Callable[[], Awaitable[None]]
GUARD_EVERY = 0.5  # seconds between two looks of a guard while a retry waits (a Retry-After may be minutes)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8  # tries in all, for a request that may be retried
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 120.0  # a longer Retry-After is reported to the caller instead of slept

    def backoff(self, retry: int) -> float:
        """Capped exponential backoff with "equal jitter": half fixed, half random, so clients spread out."""
        ceiling = min(self.max_delay, self.base_delay * 2**retry)
        return float(ceiling / 2 + random.uniform(0, ceiling / 2))


class CometClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: Secret,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        sync_wait: int = 0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._session = session
        self._root = base_url.rstrip("/")
        self._base = self._root + "/replicate/v1"
        self._key = api_key
        self._timeout = aiohttp.ClientTimeout(
            total=connect_timeout + read_timeout, sock_connect=connect_timeout, sock_read=read_timeout
        )
        # A create in sync mode is held up to `sync_wait` seconds before its answer: its read waits that much longer
        # (timing out first would leave a paid prediction that the job never hears of).
        self._create_timeout = aiohttp.ClientTimeout(
            total=connect_timeout + read_timeout + sync_wait,
            sock_connect=connect_timeout,
            sock_read=read_timeout + sync_wait,
        )
        self._retry = retry or RetryPolicy()
        self._sync_wait = sync_wait
        self._sleep = sleep
        self.counts: Counter[str] = Counter()  # requests sent, by kind: "create", "get", "cancel", "retry"
        # Failed requests (retried or not), by kind: connect, timeout, connection, unreadable, rate_limited,
        # server_error, rejected, auth, billing, other.
        self.errors: Counter[str] = Counter()

    async def create(self, model: str, model_input: Mapping[str, object], *, guard: Guard | None = None) -> Prediction:
        """Create a prediction. `guard` is awaited before each retry (see the module's doc): raising, it stops the
        create, which certainly made nothing then."""
        owner, _, name = model.partition("/")
        headers = {"Prefer": f"wait={self._sync_wait}"} if self._sync_wait else {}
        data = await self._send(
            "POST", f"/models/{owner}/{name}/predictions", "create", body={"input": dict(model_input)},
            headers=headers, repeatable=False, guard=guard, limits=self._create_timeout,
        )  # fmt: skip
        try:
            return Prediction.from_api(data)
        except Unavailable:  # accepted (and maybe charged), but the answer names no prediction
            raise UncertainCreate(
                "The API accepted the generation but its answer named no prediction; it was not repeated, so "
                "nothing is charged twice."
            ) from None

    async def get(self, prediction_id: str, *, deadline: float | None = None) -> Prediction:
        data = await self._send("GET", f"/predictions/{_safe_id(prediction_id)}", "get", deadline=deadline)
        return Prediction.from_api(data)

    async def cancel(self, prediction_id: str) -> Prediction | None:
        """Ask the API to stop a prediction. None when the API has no cancel endpoint (404/405)."""
        try:
            data = await self._send("POST", f"/predictions/{_safe_id(prediction_id)}/cancel", "cancel")
        except ApiError as exc:
            if exc.status in (404, 405):
                return None
            raise
        return Prediction.from_api(data)

    async def chat(self, model: str, messages: list[dict[str, object]], *, max_tokens: int) -> ChatAnswer:
        """One chat completion (OpenAI's format). Paid for once it reaches the server, so never repeated then."""
        body = {"model": model, "messages": messages, "max_tokens": max_tokens}
        data = await self._send("POST", "/chat/completions", "chat", body=body, repeatable=False, root="/v1")
        return chat_answer(data)

    async def moderate(self, parts: list[dict[str, object]], *, model: str = "omni-moderation-latest") -> Checked:
        """Whether the moderation endpoint flags these input parts (text and image_url)."""
        body = {"model": model, "input": parts}
        return checked(await self._send("POST", "/moderations", "moderation", body=body, root="/v1"))

    async def _send(
        self,
        method: str,
        path: str,
        kind: str,
        *,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        repeatable: bool = True,
        deadline: float | None = None,
        root: str = "/replicate/v1",
        guard: Guard | None = None,
        limits: aiohttp.ClientTimeout | None = None,
    ) -> object:
        url = self._root + root + path
        request_headers = {
            "Authorization": f"Bearer {self._key.reveal()}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            **(headers or {}),
        }
        for attempt in range(self._retry.attempts):
            self.counts[kind] += 1
            if attempt:
                self.counts["retry"] += 1
            started = time.monotonic()
            try:
                async with self._session.request(
                    method,
                    url,
                    json=body,
                    headers=request_headers,
                    timeout=limits or self._timeout,
                    allow_redirects=False,
                ) as response:
                    status, raw = response.status, await response.read()
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                    content_type = response.headers.get("Content-Type", "")
            except aiohttp.ClientConnectorError as exc:
                # The connection was never made, so the request never left: safe to retry, even a create.
                self.errors["connect"] += 1
                failure: ApiError = Unavailable(f"Could not connect to the API ({type(exc).__name__}).")
                wait = self._retry.backoff(attempt)
            except (TimeoutError, aiohttp.ClientError) as exc:
                what = "timed out" if isinstance(exc, TimeoutError) else f"failed ({type(exc).__name__})"
                self.errors["timeout" if isinstance(exc, TimeoutError) else "connection"] += 1
                if not repeatable:
                    raise UncertainCreate(
                        f"The request to start the generation {what} after it was sent. It was not repeated, "
                        "so nothing is charged twice; check the account's predictions before trying again."
                    ) from None
                failure, wait = Unavailable(f"The API request {what}."), self._retry.backoff(attempt)
            else:
                log.debug("%s %s -> %s in %.0f ms", method, path, status, (time.monotonic() - started) * 1000)
                if 200 <= status < 300:
                    try:
                        return orjson.loads(raw)
                    except ValueError:
                        self.errors["unreadable"] += 1
                        if not repeatable:
                            raise UncertainCreate(
                                "The API accepted the generation but its answer was unreadable; it was not "
                                "repeated, so nothing is charged twice."
                            ) from None
                        failure, wait = Unavailable("The API sent an unreadable answer."), self._retry.backoff(attempt)
                else:
                    failure = _error_for(status, raw, content_type, retry_after, self._key)
                    self.errors[_error_kind(failure)] += 1
                    if not repeatable and status >= 500 and isinstance(failure, Unavailable):
                        # A gateway error or a server fault on a create says nothing of whether the prediction
                        # was made (a 524 often means it was): say so, and never send it again.
                        raise UncertainCreate(
                            f"The API answered HTTP {status} to the request to start the generation; it may have "
                            "started anyway. It was not repeated, so nothing is charged twice.",
                            status=status,
                        )
                    if not _should_retry(status, failure, repeatable):
                        raise failure
                    wait = retry_after if retry_after is not None else self._retry.backoff(attempt)
                    if retry_after is not None and retry_after > self._retry.max_retry_after:
                        raise failure
            if attempt + 1 >= self._retry.attempts:
                raise failure
            if deadline is not None and time.monotonic() + wait > deadline:
                raise failure
            log.info("%s %s: %s; retrying in %.1f s", method, path, failure, wait)
            await self._pause(wait, guard, failure)
        raise AssertionError("unreachable: the loop always returns or raises")

    async def _pause(self, seconds: float, guard: Guard | None, failure: ApiError) -> None:
        """The wait before another attempt (after `failure`, which says nothing is in the air). With a guard, it is
        asked now and then meanwhile, and once more at the end: its error, raised with `failure` as the cause, stops
        the request (a Cancel is not held up by a Retry-After of a minute)."""
        if guard is None:
            await self._sleep(seconds)
            return
        waiting = asyncio.ensure_future(self._sleep(seconds))
        try:
            while True:
                await _asked(guard, failure)
                done, _ = await asyncio.wait({waiting}, timeout=GUARD_EVERY)
                if done:
                    break
            waiting.result()  # a sleep that raises to stop (the CLI's, on Ctrl-C) stops here too
        finally:
            if not waiting.done():
                waiting.cancel()
                await asyncio.wait({waiting})
        await _asked(guard, failure)


async def _asked(guard: Guard, failure: ApiError) -> None:
    try:
        await guard()
    except Exception as stop:
        raise stop from failure


def _error_kind(failure: ApiError) -> str:
    for kind, name in (
        (RateLimited, "rate_limited"), (AuthError, "auth"), (BillingError, "billing"), (Rejected, "rejected"),
        (Unavailable, "server_error"),
    ):  # fmt: skip
        if isinstance(failure, kind):
            return name
    return "other"


def _should_retry(status: int, failure: ApiError, repeatable: bool) -> bool:
    if isinstance(failure, Rejected):  # e.g. a 500 whose code says invalid_request
        return False
    if status == 429:
        return True  # a rate-limited create was refused, not run
    return repeatable and status in RETRYABLE_STATUSES


def _error_for(status: int, raw: bytes, content_type: str, retry_after: float | None, key: Secret) -> ApiError:
    detail, code = _detail(raw, content_type, key)
    if status in (401, 403):
        return AuthError(f"The API refused the key (HTTP {status}): {detail}", status=status)
    if status == 402:
        return BillingError(f"The API account is out of credit (HTTP 402): {detail}", status=status)
    if status == 429:
        return RateLimited(f"The API is rate limiting requests: {detail}", retry_after=retry_after)
    if code == "invalid_request" or status in (400, 404, 422):
        return Rejected(f"The API rejected the request (HTTP {status}): {detail}", status=status)
    if 300 <= status < 400:
        return Rejected(f"The API answered with a redirect (HTTP {status}); check COMETAPI_BASE_URL.", status=status)
    if status >= 500:
        return Unavailable(f"The API is unavailable (HTTP {status}): {detail}", status=status)
    return ApiError(f"The API answered HTTP {status}: {detail}", status=status)


def _detail(raw: bytes, content_type: str, key: Secret) -> tuple[str, str | None]:
    """The human part of an error body: Replicate's problem+json, CometAPI's {"error": {...}}, or text.

    The key is redacted before the detail is shortened, so a key the API echoed across the cut cannot leave
    its first characters behind."""

    def shown(value: str, limit: int) -> str:
        return redact(value, [key.reveal()])[:limit]

    text = raw.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        if "html" in content_type or text.lstrip().lower().startswith(("<!doctype", "<html")):
            title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
            return (f"an HTML page ({shown(title[1].strip(), 80)})" if title else "an HTML page instead of JSON"), None
        return (shown(text, 200) or "no details"), None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            return shown(str(error.get("message") or error), 300), code if isinstance(code, str) else None
        if isinstance(error, str):
            return shown(error, 300), None
        detail = data.get("detail") or data.get("title") or data.get("message")
        if detail:
            return shown(str(detail), 300), None
    return shown(text, 200), None


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds, from either form the header may take (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _safe_id(prediction_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", prediction_id):
        raise Rejected(f"Not a prediction id: {prediction_id[:40]!r}")
    return prediction_id
