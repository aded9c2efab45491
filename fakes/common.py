"""What both fakes share: the request each records, the fault a test injects, waiting for a change, a manual clock.

A test reads one vocabulary whichever fake it drives: `fake.requests` holds `RecordedRequest`s, `fake.inject(...)`
returns a `Fault`, and `await fake.wait_for(predicate)` re-checks the predicate at every change of the fake's state.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class UploadedFile:
    """A ``files[N]`` part of a multipart request, bytes included."""

    field: str
    filename: str
    content_type: str | None
    data: bytes

    @property
    def index(self) -> int | None:
        match = re.fullmatch(r"files\[(\d+)\]", self.field)
        return int(match.group(1)) if match else None


@dataclass
class Fault:
    """An injected failure or delay: the answer a fake gives instead of (or after) its normal one.

    The fake Discord picks the faults whose `method` and `path_regex` match a request; the fake CometAPI keeps a
    queue of them per route instead (and leaves those two at their defaults).
    """

    status: int | None = 500  # None: answer normally, after `delay` (with `headers` added)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    times: int | None = 1  # how many requests it takes; None: every one
    hits: int = 0  # how many it took
    method: str = "*"  # "*": any
    path_regex: re.Pattern[str] | None = None  # searched in the path; None: any
    # Other shapes of answer (the fake CometAPI)
    text: str | None = None
    content_type: str | None = None
    body: bytes | None = None  # raw bytes to answer with (e.g. a broken image file)
    drop: bool = False  # close the connection without an answer, after the real handler ran
    side_effects: bool = False  # run the real handler (e.g. create the prediction) before the injected answer
    hold: float = 0.0  # status None: seconds the answer is held AFTER the request took effect (the fake Discord)
    with_files: bool | None = None  # the fake Discord: only requests that upload files (True), or none (False)
    # The fake CometAPI: the request is recorded, then held in the air (not yet handled) until the test sets this;
    # then it is answered as the rest of the fault says (status None: normally; a status: that error).
    gate: asyncio.Event | None = None

    @property
    def used_up(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def matches(self, method: str, path: str, *, files: bool = False) -> bool:
        if self.used_up or self.method not in ("*", method):
            return False
        if self.with_files is not None and self.with_files != files:
            return False
        return self.path_regex is None or self.path_regex.search(path) is not None


@dataclass
class RecordedRequest:
    """One request as a fake saw it, and what it answered."""

    method: str
    path: str  # the fake Discord: without the /api/v10 prefix, e.g. /channels/1/messages
    query: dict[str, str]
    json: Any = None
    at: float = field(default_factory=time.monotonic)  # when it arrived
    wall: float = field(default_factory=time.time)  # the same instant, as time.time()
    route: str = ""  # the fake CometAPI: create | get | cancel | file | ...; the fake Discord: the route template
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""  # the raw body (the fake CometAPI)
    files: list[UploadedFile] = field(default_factory=list)  # multipart file parts (the fake Discord)
    status: int = 0  # the answer's; 0 while it is not answered
    response: Any = None  # the answer's JSON body (the fake Discord)
    answered_at: float | None = None  # time.monotonic(), when the answer was handed back (after any delay)
    fault: Fault | None = None  # the fault that took it
    held: bool = False  # it took effect and its answer is being held (Fault.hold)
    interaction_id: int | None = None
    message_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """What the fakes' ``GET /_fake/requests`` shows of it (file parts by size, not bytes)."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "route": self.route,
            "headers": self.headers,
            "json": self.json,
            "body": self.body.decode("utf-8", "replace"),
            "files": [{"field": f.field, "filename": f.filename, "size": len(f.data)} for f in self.files],
            "at": self.at,
            "wall": self.wall,
            "answered_at": self.answered_at,
            "status": self.status,
            "interaction_id": str(self.interaction_id) if self.interaction_id else None,
            "message_id": str(self.message_id) if self.message_id else None,
        }


class Changes:
    """What waits on a fake wait for: every change of its state wakes them, so no wait polls on a timer."""

    def __init__(self, name: str) -> None:
        self.name = name  # "fake Discord", in the errors
        self.abort: BaseException | None = None  # set: every wait raises at once (the bot under test is gone)
        self._event = asyncio.Event()

    def changed(self) -> None:
        """Wake every waiter: the state changed."""
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_for(self, predicate: Callable[[], T | None], *, timeout: float = 5.0, what: str = "condition") -> T:
        """Re-check ``predicate`` at every change until it returns something true (None, False, 0 and an empty
        list are not), and return that; e.g. ``await fake.wait_for(fake.creates)``."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self.abort is not None:
                        raise RuntimeError(f"{self.name}: gave up waiting for {what}: {self.abort!r}") from self.abort
                    result = predicate()
                    if result:
                        return result
                    await self._event.wait()
        except TimeoutError:
            raise TimeoutError(f"{self.name}: timed out after {timeout}s waiting for {what}") from None


class ManualClock:
    """A monotonic clock that moves only when a test says so: the phases of a fake's predictions then last exactly
    as long as the test wants, however busy the machine (pass it as ``FakeCometAPI(clock=...)``).

    With ``per_poll``, the fake CometAPI moves it that much after answering each poll of a prediction: a client
    polling at its own pace then sees every phase longer than ``per_poll``, however late each poll comes.
    """

    def __init__(self, start: float = 1000.0, *, per_poll: float = 0.0) -> None:
        self._now = start
        self.per_poll = per_poll

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        self._now += seconds
