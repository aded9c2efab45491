import asyncio

import pytest

from services.jobs.fairqueue import FairLimiter


async def test_round_robin_between_users_and_positions():
    limiter = FairLimiter(1)
    assert limiter.try_acquire()
    a1, a2, a3 = limiter.enqueue(1), limiter.enqueue(1), limiter.enqueue(1)
    b1 = limiter.enqueue(2)
    c1 = limiter.enqueue(3)
    assert [limiter.position(1, w) for w in (a1, a2, a3)] == [1, 4, 5]
    assert limiter.position(2, b1) == 2
    assert limiter.position(3, c1) == 3
    order = []
    for _ in range(5):
        limiter.release()
        await asyncio.sleep(0)
        for name, w in (("a1", a1), ("a2", a2), ("a3", a3), ("b1", b1), ("c1", c1)):
            if w.done() and name not in order:
                order.append(name)
    assert order == ["a1", "b1", "c1", "a2", "a3"]
    assert limiter.position(1, a3) is None


async def test_capacity_is_never_exceeded_and_cancel_frees_the_place():
    limiter = FairLimiter(2)
    running = peak = 0
    started = []

    async def job(user: int, n: int):
        nonlocal running, peak
        async with limiter.slot(user):
            started.append((user, n))
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    tasks = [asyncio.create_task(job(u, n)) for n in range(5) for u in (1, 2, 3)]
    await asyncio.sleep(0)
    tasks[-1].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[-1], asyncio.CancelledError)
    assert peak == 2
    assert len(started) == 14
    assert limiter.in_use == 0
    assert limiter.waiting == 0


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        FairLimiter(0)


async def test_the_places_in_line_are_the_order_the_slots_are_handed_out():
    limiter = FairLimiter(1)
    assert limiter.try_acquire()
    users = [1, 1, 1, 2, 3, 3, 2, 4, 1, 3]
    waiters = [(user, limiter.enqueue(user)) for user in users]
    served: list[asyncio.Future[None]] = []
    for _ in users:
        places = {limiter.position(user, waiter) or 0: waiter for user, waiter in waiters if not waiter.done()}
        assert sorted(places) == list(range(1, len(places) + 1))  # 1, 2, 3... with no gap and no tie
        limiter.release()  # the slot goes to the next in line
        (newly,) = [w for _, w in waiters if w.done() and w not in served]
        assert newly is places[1]  # the one that was first in line
        served.append(newly)
    limiter.abandon(1, waiters[0][1])  # already served: gives its slot back
