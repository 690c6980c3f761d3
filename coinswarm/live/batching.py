"""Group commit: items that arrive while a write is running go out together in the next one.

There is no timer: an item submitted to an idle writer is written at once (lowest latency),
and under load every write takes whatever queued up meanwhile (highest throughput), like a
database's group commit. A failing batch is retried item by item, so one bad item fails
alone and the others still land.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupWriter(Generic[Item, Result]):
    """Run ``write(batch) -> results`` (blocking; in a worker thread) over queued items.

    Parameters
    ----------
    write : callable
        Takes a list of items, returns one result per item, in order; raises on failure.
    max_batch : int, default 1000
        Most items per call.
    """

    def __init__(self, write: Callable[[list[Item]], Sequence[Result]], *, max_batch: int = 1000) -> None:
        self.write, self.max_batch = write, max_batch
        self._queue: list[tuple[Item, asyncio.Future]] = []
        self._task: asyncio.Task | None = None
        self.batches = 0
        self.items = 0

    async def submit(self, item: Item) -> Result:
        """Queue ``item`` and wait for its result (or its exception)."""
        return await self.enqueue(item)

    def enqueue(self, item: Item) -> asyncio.Future:
        """Queue ``item`` without waiting; the future carries its result (or its exception)."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
            self.batches += 1
            self.items += len(batch)
            try:
                results = await asyncio.to_thread(self.write, [item for item, _ in batch])
            except Exception:  # noqa: BLE001  (retried one by one: each item gets its own outcome)
                await self._one_by_one(batch)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _one_by_one(self, batch: list[tuple[Item, asyncio.Future]]) -> None:
        for item, future in batch:
            try:
                result = (await asyncio.to_thread(self.write, [item]))[0]
            except Exception as exc:  # noqa: BLE001
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
