"""The cycle collector's settings: young collections far apart, and start-up objects left out of collections.
Each check runs in a child process, whose collector it changes."""

from __future__ import annotations

from services.gc_tuning import YOUNG_THRESHOLD
from tests.helpers import run_child


def test_young_collections_wait_for_many_more_allocations():
    seen = run_child(
        """
        import gc, json
        from services.gc_tuning import tune_collector

        def collections_while_making(count):
            runs = []
            gc.callbacks.append(lambda phase, info: runs.append(info["generation"]) if phase == "start" else None)
            gc.collect()
            kept = [[] for _ in range(count)]  # containers the collector tracks
            gc.callbacks.clear()
            return len(runs) - 1  # less the explicit one

        before = collections_while_making(5000)
        older = gc.get_threshold()[1:]
        tune_collector()
        print(json.dumps({"default": before, "tuned": collections_while_making(5000),
                          "threshold": gc.get_threshold(), "older": older}))
        """
    )
    default, older = seen["default"], seen["older"]
    assert isinstance(default, int) and default >= 5  # about one every 700 allocations
    assert seen["tuned"] == 0
    assert isinstance(older, list) and seen["threshold"] == [YOUNG_THRESHOLD, *older]


def test_start_up_objects_are_left_out_once_the_garbage_is_gone():
    seen = run_child(
        """
        import gc, json, weakref
        from services.gc_tuning import freeze_startup_objects

        class Node:
            pass

        garbage = Node()
        garbage.me = garbage  # a cycle: only the collector frees it
        gone = weakref.ref(garbage)
        del garbage
        kept = [Node() for _ in range(100)]
        frozen = freeze_startup_objects()
        walked = len(gc.get_objects())  # what a collection would look at
        print(json.dumps({"garbage_freed": gone() is None, "frozen": frozen, "walked": walked,
                          "kept_walked": any(any(n is o for o in gc.get_objects()) for n in kept[:1])}))
        """
    )
    assert seen["garbage_freed"] is True
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 1000  # the modules imported so far, and more
    assert seen["kept_walked"] is False


def test_full_collections_are_paced_by_what_was_made_after_start_up():
    # A start-up heap of 300,000 objects, frozen; then 60,000 objects that live on (jobs in flight). A full
    # collection waits for a quarter as many survivors as the last one kept: 75,000 if that still counted the
    # frozen heap, so none would run here.
    seen = run_child(
        """
        import gc, json
        from services.gc_tuning import freeze_startup_objects

        start_up = [[] for _ in range(300_000)]
        gc.set_threshold(300, 10, 10)  # scaled down with the heap, so the test stays quick
        freeze_startup_objects()
        full = []
        gc.callbacks.append(lambda phase, info: full.append(1) if phase == "start" and info["generation"] == 2 else None)
        kept = [[] for _ in range(60_000)]
        gc.callbacks.clear()
        print(json.dumps({"full_collections": len(full)}))
        """
    )
    full = seen["full_collections"]
    assert isinstance(full, int) and full >= 1


def test_garbage_made_at_a_slow_pace_is_collected_within_seconds():
    # With young collections 10,000 allocations apart, a bot at a steady pace held its jobs' cyclic garbage for
    # minutes. `keep_collecting` collects it on a timer: a cycle made in an idle loop, far from the allocation
    # rule's next collection, is freed by it (waited for, with a deadline far past the period).
    seen = run_child(
        """
        import asyncio, gc, json, weakref
        from services.gc_tuning import YOUNG_THRESHOLD, keep_collecting, tune_collector

        class Node:
            pass

        async def main():
            tune_collector()
            gc.collect()
            gone = asyncio.Event()
            node = Node()
            node.me = node  # a cycle: only the collector frees it
            weakref.finalize(node, gone.set)
            del node
            waiting = {"freed_at_once": gone.is_set(), "far_from_the_rule": gc.get_count()[0] < YOUNG_THRESHOLD // 2}
            task = asyncio.create_task(keep_collecting(every=0.05))
            try:
                await asyncio.wait_for(gone.wait(), 10.0)
                waiting["freed_by_the_timer"] = True
            except TimeoutError:
                waiting["freed_by_the_timer"] = False
            task.cancel()
            return waiting

        print(json.dumps(asyncio.run(main())))
        """
    )
    assert seen == {"freed_at_once": False, "far_from_the_rule": True, "freed_by_the_timer": True}


async def test_the_bot_keeps_collecting_while_it_runs_and_stops_when_it_closes(world):
    async with world.bot() as bot:
        keeper = bot.garbage_keeper
        assert keeper.get_coro().__qualname__ == "keep_collecting" and not keeper.done()
    assert keeper.cancelled()
