"""Natural batching: items that arrive while a batch is being handled go together in the next.

By default there is no timer: an item queued on an idle :class:`Batcher` is handled at once
(lowest latency), and under load every batch takes whatever queued up meanwhile (highest
throughput), like a database's group commit. ``linger`` (seconds) makes an idle batcher wait
that long for company before it starts, like PostgreSQL's ``commit_delay`` or Kafka's
``linger.ms``: a stream of items that each arrive alone then shares one batch (one
transaction) per ``linger`` instead of paying one each. Two users: :class:`GroupWriter` (the
applier's group commit) and :class:`coinswarm.adapters.framing.Coalescer` (frames of stream
messages).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Queue items; ``handle(batch) -> results`` (one per item, in order) runs on whatever queued.

    A batch whose ``handle`` raises hands the exception to each of its items.

    Parameters
    ----------
    handle : coroutine function
        Takes a list of items, returns one result per item.
    max_batch : int, default 1000
        Most items per call.
    linger : float, default 0
        Seconds an idle batcher waits after the first item before handling the batch.
    """

    def __init__(self, handle: Callable[[list[Item]], Awaitable[Sequence[Result]]], *,
                 max_batch: int = 1000, linger: float = 0.0) -> None:
        self.handle, self.max_batch, self.linger = handle, max_batch, linger
        self._queue: list[tuple[Item, asyncio.Future]] = []
        self._task: asyncio.Task | None = None
        self.batches = 0
        self.items = 0

    async def submit(self, item: Item) -> Result:
        """Queue ``item`` and wait for its result (or its exception)."""
        return await self.enqueue(item)

    def enqueue(self, item: Item) -> asyncio.Future:
        """Queue ``item`` without waiting; the future carries its result (or its exception), so
        a caller can queue many and await them together, with no task per item."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        if self.linger > 0:
            await asyncio.sleep(self.linger)
        while self._queue:
            batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
            self.batches += 1
            self.items += len(batch)
            try:
                results = await self.handle([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001  (handed to every waiting caller)
                results = [exc] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


class GroupWriter(Batcher[Item, Result]):
    """Group commit: ``write(batch) -> results`` (blocking; in a worker thread) over queued items.

    A failing batch is retried item by item, so one bad item fails alone and the others
    still land.

    Parameters
    ----------
    write : callable
        Takes a list of items, returns one result per item, in order; raises on failure.
    max_batch : int, default 1000
        Most items per call.
    linger : float, default 0
        Seconds an idle writer waits after the first item before writing (see :class:`Batcher`).
    """

    def __init__(self, write: Callable[[list[Item]], Sequence[Result]], *, max_batch: int = 1000,
                 linger: float = 0.0) -> None:
        super().__init__(self._write, max_batch=max_batch, linger=linger)
        self.write = write

    async def _write(self, batch: list[Item]) -> list:
        try:
            return list(await asyncio.to_thread(self.write, batch))
        except Exception:  # noqa: BLE001  (retried one by one: each item gets its own outcome)
            return [await self._write_one(item) for item in batch]

    async def _write_one(self, item: Item):
        try:
            return (await asyncio.to_thread(self.write, [item]))[0]
        except Exception as exc:  # noqa: BLE001
            return exc
