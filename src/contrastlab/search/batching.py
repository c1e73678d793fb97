"""Micro-batching: many concurrent single requests become one call on a batch, run in a worker thread.

A request waits at most `max_wait_ms` (counted from the oldest waiting request) for others to join it, or less
when `max_batch` requests are waiting; while the worker is busy, new requests queue up and go together in the
next batch. The event loop never runs the batch function itself, so it keeps accepting requests.

When the batch function raises (or returns the wrong number of results), the batch is answered again item by item,
so that one bad item fails alone: it gets its own error, the others their results.

>>> import asyncio
>>> batcher = MicroBatcher(lambda xs: [x * x for x in xs], max_batch=8, max_wait_ms=5)
>>> async def main():
...     return await asyncio.gather(*(batcher.submit(i) for i in range(5)))
>>> asyncio.run(main())
[0, 1, 4, 9, 16]
>>> batcher.stats()                                     # five requests went in one batch
{'batches': 1, 'items': 5, 'largest_batch': 5, 'failed_batches': 0}
>>> batcher.close()
"""
from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

__all__ = ["MicroBatcher"]

log = logging.getLogger("contrastlab.search")


class MicroBatcher:
    """Collect items submitted from coroutines and hand them to `process(items) -> results` (same length and
    order) in batches of at most `max_batch`, in one worker thread (`thread_init()` runs first in that thread).
    A batch that fails is answered again one item at a time, so only the items that fail alone get an error."""

    def __init__(self, process: Callable[[list], Sequence], *, max_batch: int = 64, max_wait_ms: float = 2.0,
                 thread_init: Callable[[], None] | None = None):
        if not callable(process):
            raise TypeError(f"`process` must be callable, got {type(process).__name__}")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"`max_batch` must be a positive int, got {max_batch!r}")
        if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, (int, float)) or not 0 <= max_wait_ms < 1e4:
            raise ValueError(f"`max_wait_ms` must be a number in [0, 10000), got {max_wait_ms!r}")
        self.process = process
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="search-batch", initializer=thread_init)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._batches = self._items = self._largest = self._failed = 0

    def stats(self) -> dict:
        """How many batches ran, how many items they held in all, the largest batch, and how many batches failed
        (and were answered item by item)."""
        with self._lock:
            return {"batches": self._batches, "items": self._items, "largest_batch": self._largest,
                    "failed_batches": self._failed}

    def _bind(self) -> None:
        """Attach to the running event loop (a new loop, e.g. another test client, gets fresh state)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._pending: list[tuple[Any, asyncio.Future, float]] = []
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run())

    async def submit(self, item) -> Any:
        """Queue `item`; returns its result (or raises the batch function's exception)."""
        self._bind()
        future = self._loop.create_future()
        self._pending.append((item, future, self._loop.time()))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        loop = self._loop
        while True:
            await self._wake.wait()
            while self._pending:
                delay = self._pending[0][2] + self.max_wait - loop.time()
                if len(self._pending) < self.max_batch and delay > 0:
                    self._wake.clear()                 # set again by the next submit: re-check the batch size
                    try:
                        await asyncio.wait_for(self._wake.wait(), delay)
                    except asyncio.TimeoutError:
                        pass
                    continue
                batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
                batch = [b for b in batch if not b[1].done()]          # the client went away
                if batch:
                    await self._dispatch(loop, batch)
            self._wake.clear()

    async def _dispatch(self, loop, batch) -> None:
        items = [b[0] for b in batch]
        failed = False
        try:
            results = await loop.run_in_executor(self._executor, self._call, items)
        except Exception as e:
            if len(items) == 1:
                outcomes = [(False, e)]
            else:                       # one bad item must not fail the others: answer each alone
                failed = True
                log.warning("search: a batch of %d queries failed (%s: %s); answering each alone", len(items),
                            type(e).__name__, str(e).split("\n")[0][:200])
                outcomes = await loop.run_in_executor(self._executor, self._each_alone, items)
            for (_, future, _), (ok, value) in zip(batch, outcomes):
                if not future.done():
                    future.set_result(value) if ok else future.set_exception(value)
        else:
            for (_, future, _), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)
        with self._lock:
            self._batches += 1
            self._items += len(items)
            self._largest = max(self._largest, len(items))
            self._failed += failed

    def _call(self, items: list) -> Sequence:
        results = self.process(items)
        if len(results) != len(items):
            raise RuntimeError(f"the batch function returned {len(results)} results for {len(items)} items")
        return results

    def _each_alone(self, items: list) -> list[tuple[bool, Any]]:
        """(True, result) or (False, exception) of each item, each processed in a batch of its own."""
        outcomes = []
        for item in items:
            try:
                outcomes.append((True, self._call([item])[0]))
            except Exception as e:
                outcomes.append((False, e))
        return outcomes

    def close(self) -> None:
        """Stop the collector task and the worker thread (requests still waiting are cancelled)."""
        if self._loop is not None and not self._loop.is_closed():
            task = self._task
            self._loop.call_soon_threadsafe(task.cancel)
            for _, future, _ in self._pending:
                self._loop.call_soon_threadsafe(future.cancel)
        self._executor.shutdown(wait=False, cancel_futures=True)
