import asyncio
import time

import pytest

from services.throttle import Coalescer


async def test_sends_at_most_once_per_interval_and_only_changes():
    sent: list[tuple[float, str]] = []

    async def send(value: str) -> None:
        sent.append((time.monotonic(), value))

    c = Coalescer(send, interval=0.2)
    for value in ["a", "a", "b", "c", "d"]:
        await c.push(value)
    assert [v for _, v in sent] == ["a"]
    await asyncio.sleep(0.3)
    assert [v for _, v in sent] == ["a", "d"]  # b and c were replaced by d
    assert sent[1][0] - sent[0][0] >= 0.19
    await c.push("d")
    await asyncio.sleep(0.25)
    assert len(sent) == 2


async def test_discard_drops_held_update():
    sent: list[str] = []

    async def send(value: str) -> None:
        sent.append(value)

    c = Coalescer(send, interval=0.1)
    await c.push("a")
    await c.push("b")
    c.discard()
    await asyncio.sleep(0.15)
    assert sent == ["a"]


async def test_error_of_a_held_send_reaches_the_next_push():
    async def send(value: str) -> None:
        if value == "b":
            raise LookupError("message deleted")

    c = Coalescer(send, interval=0.05)
    await c.push("a")
    await c.push("b")
    await asyncio.sleep(0.1)
    with pytest.raises(LookupError):
        await c.push("c")


async def test_the_interval_runs_from_the_end_of_a_send():
    """A slow send (a Discord edit under load) must not eat into the interval before the next one."""
    spans: list[tuple[float, float]] = []
    two_sent = asyncio.Event()

    async def send(value: str) -> None:
        started = time.monotonic()
        await asyncio.sleep(0.1)
        spans.append((started, time.monotonic()))
        if len(spans) == 2:
            two_sent.set()

    c = Coalescer(send, interval=0.1)
    await c.push("a")  # sent at once, and takes 0.1 s
    await c.push("b")  # held until 0.1 s after the end of the first send
    async with asyncio.timeout(2):
        await two_sent.wait()
    (_, first_end), (second_start, _) = spans
    assert second_start - first_end >= 0.1, spans
