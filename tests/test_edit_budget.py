"""The per-channel budget of message edits (services/edit_budget.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.delivery.edit_budget import EditBudget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_channel_gives_limit_slots_per_window_and_other_channels_are_apart():
    clock = Clock()
    budget: EditBudget[int] = EditBudget(2, 5.0, clock=clock)
    for slot in (budget.try_take(1), budget.try_take(1)):
        assert slot is not None
        slot.used()
    assert budget.try_take(1) is None
    assert budget.try_take(2) is not None  # another channel has its own budget
    clock.now += 4.9
    assert budget.try_take(1) is None
    clock.now += 0.2
    assert budget.try_take(1) is not None


def test_a_slot_counts_until_its_send_ends_then_for_a_whole_window():
    clock = Clock()
    budget: EditBudget[int] = EditBudget(1, 5.0, clock=clock)
    slot = budget.try_take(7)
    assert slot is not None
    clock.now += 60  # a slow send: still counts
    assert budget.try_take(7) is None
    slot.used()
    clock.now += 4.9
    assert budget.try_take(7) is None
    clock.now += 0.2
    assert budget.try_take(7) is not None


def test_an_unused_slot_is_given_back_at_once():
    budget: EditBudget[int] = EditBudget(1, 5.0, clock=Clock())
    slot = budget.try_take(7)
    assert slot is not None
    slot.unused()
    assert budget.in_use(7) == 0
    assert budget.try_take(7) is not None


def test_spending_never_waits_and_counts_against_the_progress_edits():
    clock = Clock()
    budget: EditBudget[int] = EditBudget(2, 5.0, clock=clock)
    spent = [budget.spend(7) for _ in range(3)]  # results: over the limit if need be
    for slot in spent:
        slot.used()
    assert budget.in_use(7) == 3
    assert budget.try_take(7) is None  # the progress edits make room for them
    clock.now += 5.1
    assert budget.try_take(7) is not None


async def test_waiters_take_turns_in_order_and_stay_within_the_limit():
    budget: EditBudget[int] = EditBudget(2, 0.2)
    granted: list[tuple[str, float]] = []

    async def edit(name: str) -> None:
        with await budget.take(7):
            granted.append((name, time.monotonic()))

    async with asyncio.timeout(5):
        await asyncio.gather(*(edit(name) for name in "abcdef"))
    assert [name for name, _ in granted] == list("abcdef")
    times = [at for _, at in granted]
    # any two slots `limit` apart are a whole window apart
    assert all(later - earlier >= 0.2 for earlier, later in zip(times, times[2:], strict=False))


async def test_a_cancelled_wait_passes_its_turn_on():
    budget: EditBudget[int] = EditBudget(1, 0.1)
    first = budget.try_take(7)
    assert first is not None
    gone = asyncio.create_task(budget.take(7))
    nxt = asyncio.create_task(budget.take(7))
    await asyncio.sleep(0)  # both are in line
    gone.cancel()
    first.used()
    async with asyncio.timeout(5):
        await nxt
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert budget.in_use(7) == 1  # the next one's: the cancelled wait holds none (it would count for ever)


async def test_a_slot_granted_to_a_wait_cancelled_meanwhile_is_given_back():
    budget: EditBudget[int] = EditBudget(1, 0.1)
    first = budget.try_take(7)
    assert first is not None
    waiting = asyncio.create_task(budget.take(7))
    await asyncio.sleep(0)
    first.unused()  # the slot goes to the waiter at once...
    waiting.cancel()  # ...which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert budget.in_use(7) == 0
