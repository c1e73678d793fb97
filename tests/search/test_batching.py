"""MicroBatcher: concurrent submissions are grouped and answered in order; a failing batch is answered item by item,
so that only the bad item fails."""
from __future__ import annotations

import asyncio
import threading

import pytest

from contrastlab.search.batching import MicroBatcher


def run(coro):
    return asyncio.run(coro)


def test_concurrent_items_are_grouped_up_to_max_batch_and_answered_in_order():
    seen = []

    def process(items):
        seen.append(list(items))
        return [f"r{x}" for x in items]

    batcher = MicroBatcher(process, max_batch=4, max_wait_ms=50)

    async def main():
        return await asyncio.gather(*(batcher.submit(i) for i in range(10)))

    assert run(main()) == [f"r{i}" for i in range(10)]
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batcher.stats() == {"batches": 3, "items": 10, "largest_batch": 4, "failed_batches": 0}
    batcher.close()


def test_items_that_arrive_while_the_worker_is_busy_go_in_the_next_batch_together():
    gate = threading.Event()
    sizes = []

    def process(items):
        sizes.append(len(items))
        if len(sizes) == 1:
            assert gate.wait(10)
        return [x + 100 for x in items]

    batcher = MicroBatcher(process, max_batch=64, max_wait_ms=0)

    async def main():
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)                  # the first batch (one item) is now in the worker, blocked
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 6)]
        for _ in range(5):
            await asyncio.sleep(0)
        gate.set()
        return await asyncio.gather(first, *rest)

    assert run(main()) == [100, 101, 102, 103, 104, 105]
    assert sizes == [1, 5]
    batcher.close()


def test_a_failing_batch_is_answered_item_by_item_so_only_the_bad_item_fails():
    calls = []

    def process(items):
        calls.append(list(items))
        if "bad" in items:
            raise KeyError("boom")
        return [x * 2 for x in items]

    batcher = MicroBatcher(process, max_batch=4, max_wait_ms=9000)     # a batch forms when 4 items wait

    async def main():
        return await asyncio.gather(*(batcher.submit(x) for x in (1, "bad", 3, 4)), return_exceptions=True)

    answers = run(main())
    assert answers[0] == 2 and answers[2] == 6 and answers[3] == 8
    assert isinstance(answers[1], KeyError)
    assert calls == [[1, "bad", 3, 4], [1], ["bad"], [3], [4]]
    assert batcher.stats() == {"batches": 1, "items": 4, "largest_batch": 4, "failed_batches": 1}
    async def again():                                                  # the batcher goes on
        return await asyncio.gather(*(batcher.submit(x) for x in (5, 6, 7, 8)))

    assert run(again()) == [10, 12, 14, 16]
    batcher.close()


def test_a_lone_item_that_fails_gets_its_error_and_every_item_failing_alone_gets_its_own():
    def process(items):
        if any(x < 0 for x in items):
            raise ValueError(f"negative: {[x for x in items if x < 0]}")
        return items

    batcher = MicroBatcher(process, max_batch=2, max_wait_ms=9000)

    async def main():
        return await asyncio.gather(batcher.submit(-1), batcher.submit(-2), return_exceptions=True)

    errors = run(main())
    assert [str(e) for e in errors] == ["negative: [-1]", "negative: [-2]"]
    batcher.close()


def test_a_wrong_number_of_results_is_an_error_of_the_items_that_get_no_result():
    batcher = MicroBatcher(lambda items: [x for x in items if x != 2], max_batch=2, max_wait_ms=9000)

    async def main():
        return await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)

    one, two = run(main())
    assert one == 1
    assert isinstance(two, RuntimeError) and "returned 0 results for 1 items" in str(two)
    batcher.close()


def test_a_new_event_loop_gets_a_working_batcher():
    batcher = MicroBatcher(lambda items: [-x for x in items])
    assert run(batcher.submit(3)) == -3
    assert run(batcher.submit(4)) == -4
    batcher.close()


@pytest.mark.parametrize("kwargs, message", [
    ({"max_batch": 0}, "`max_batch` must be a positive int, got 0"),
    ({"max_batch": 2.0}, "`max_batch` must be a positive int, got 2.0"),
    ({"max_wait_ms": -1}, "`max_wait_ms` must be a number in [0, 10000), got -1"),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError) as e:
        MicroBatcher(lambda x: x, **kwargs)
    assert message in str(e.value)
    with pytest.raises(TypeError, match="`process` must be callable"):
        MicroBatcher(None)
