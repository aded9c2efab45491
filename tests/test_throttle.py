import asyncio
import time

import pytest

from services.delivery.edit_budget import EditBudget
from services.delivery.throttle import Coalescer, Permit


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


async def test_coalescers_sharing_a_budget_take_turns_and_send_only_the_newest_value():
    budget: EditBudget[int] = EditBudget(1, 0.2)
    sent: list[str] = []
    arrived = asyncio.Event()

    async def send(value: str) -> None:
        sent.append(value)
        arrived.set()

    first = Coalescer(send, 0.01, InChannel(budget))
    second_gate = InChannel(budget)
    second = Coalescer(send, 0.01, second_gate)
    await first.push("first: #1")
    await second.push("second: #2")  # no slot left in the channel: held
    async with asyncio.timeout(5):
        await second_gate.in_line.wait()
    await second.push("second: #3")  # replaces the held one while it waits
    assert sent == ["first: #1"]
    arrived.clear()
    async with asyncio.timeout(5):
        await arrived.wait()
    assert sent == ["first: #1", "second: #3"]
    assert first.sends == 1 and second.sends == 1


async def test_a_discarded_update_gives_up_its_turn():
    budget: EditBudget[int] = EditBudget(1, 0.1)
    sent: list[str] = []

    async def send(value: str) -> None:
        sent.append(value)

    first = Coalescer(send, 0.01, InChannel(budget))
    second_gate = InChannel(budget)
    second = Coalescer(send, 0.01, second_gate)
    await first.push("a")
    await second.push("b")
    async with asyncio.timeout(5):
        await second_gate.in_line.wait()
    second.discard()  # its job ended: the final message replaces it
    async with asyncio.timeout(5):
        slot = await budget.take(1)  # the turn passed on (a forgotten wait would hold it for ever)
    slot.used()
    assert sent == ["a"]


class InChannel:
    """A gate putting a coalescer in line for turns in channel 1 of `budget`."""

    def __init__(self, budget: EditBudget[int]) -> None:
        self.budget = budget
        self.in_line = asyncio.Event()

    def try_enter(self) -> Permit | None:
        return self.budget.try_take(1)

    async def enter(self) -> Permit:
        self.in_line.set()  # take() joins the line before it first waits
        return await self.budget.take(1)


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


async def test_with_a_settle_time_an_update_after_the_first_send_is_held_and_then_sent():
    sent: list[str] = []
    arrived = asyncio.Event()

    async def send(value: str) -> None:
        sent.append(value)
        if value == "b":
            arrived.set()

    c = Coalescer(send, interval=0.0, settle=0.2)
    await c.push("a")
    assert sent == ["a"]  # the first one goes at once, as before
    held_at = time.monotonic()
    await c.push("b")
    assert sent == ["a"]  # the interval has passed, but the update waits out the settle time
    await asyncio.wait_for(arrived.wait(), 5)
    assert time.monotonic() - held_at >= 0.19
    assert sent == ["a", "b"]


async def test_a_final_message_within_the_settle_time_takes_the_held_updates_place():
    sent: list[str] = []
    arrived = asyncio.Event()

    async def send(value: str) -> None:
        sent.append(value)
        if value == "c":
            arrived.set()

    c = Coalescer(send, interval=0.0, settle=0.2)
    await c.push("a")
    await c.push("b")  # held for the settle time...
    c.discard()  # ...when the result replaces it
    await c.push("c")  # a later update is held and sent in turn: "b" never is
    await asyncio.wait_for(arrived.wait(), 5)
    assert sent == ["a", "c"]


async def test_an_update_pushed_without_settling_goes_as_soon_as_the_interval_allows():
    sent: list[str] = []

    async def send(value: str) -> None:
        sent.append(value)

    c = Coalescer(send, interval=0.0, settle=10.0)
    await c.push("queued #2")
    await c.push("starting", settle=False)  # e.g. a job leaving the line: shown before it is sent to the API
    assert sent == ["queued #2", "starting"]
