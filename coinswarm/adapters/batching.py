"""Natural batching: items that arrive while a batch is being handled go together in the next.

By default there is no timer: an item queued on an idle :class:`Batcher` is handled at once
(lowest latency), and under load every batch takes whatever queued up meanwhile (highest
throughput), like a database's group commit. ``linger`` (seconds) makes an idle batcher wait
that long for company before it starts, like PostgreSQL's ``commit_delay`` or Kafka's
``linger.ms``: a stream of items that each arrive alone then shares one batch (one
transaction) per ``linger`` instead of paying one each. Two users: :class:`GroupWriter` (the
applier's group commit) and :class:`coinswarm.adapters.framing.Coalescer` (frames of stream
messages).

Also here: :func:`bounded` and :func:`stop_task`, the bounded waits every long-running task
of the bus, the nodes and the applier is stopped with.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from coinswarm.errors import ConfigError

Item = TypeVar("Item")
Result = TypeVar("Result")


async def bounded(awaitable: Awaitable[Any], timeout: float, what: str, *, quiet: bool = False) -> Any:
    """``await awaitable`` for at most ``timeout`` seconds: its result, or :class:`TimeoutError`
    (None with ``quiet``) once the time is up, the work cancelled and not awaited.

    Unlike :func:`asyncio.wait_for` (which on Python 3.11 can swallow a cancel that lands as
    the inner work completes, and which waits for cancelled work to finish), this returns on
    time whatever the work does, and a cancel of the caller always propagates."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    finally:
        if not task.done():
            task.cancel()
            task.add_done_callback(_consume)
    if done:
        return task.result()
    if quiet:
        return None
    raise TimeoutError(f"{what} did not finish within {timeout:g} s")


def _consume(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" noise


def run_with_deadline(main: Awaitable[Any], timeout: float, grace: float = 10.0) -> Any:
    """``asyncio.run(main)`` that cannot hang: :class:`TimeoutError` if ``main`` has not finished
    after ``timeout`` seconds (it is cancelled first), and a teardown bounded by ``grace``
    seconds per step (left-over tasks cancelled, the default executor shut down) where
    :func:`asyncio.run` would wait for tasks that ignore their cancel."""
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(_as_coroutine(main))
        loop.run_until_complete(asyncio.wait({task}, timeout=timeout))
        if not task.done():
            task.cancel()
            loop.run_until_complete(asyncio.wait({task}, timeout=grace))
            raise TimeoutError(f"did not finish within {timeout:g} s")
        return task.result()
    finally:
        rest = asyncio.all_tasks(loop)
        for left in rest:
            left.cancel()
        if rest:
            loop.run_until_complete(asyncio.wait(rest, timeout=grace))
        loop.run_until_complete(asyncio.wait({loop.create_task(loop.shutdown_asyncgens()),
                                              loop.create_task(loop.shutdown_default_executor())}, timeout=grace))
        loop.close()


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


async def stop_task(task: asyncio.Task | None, timeout: float = 5.0, tick: float = 0.5) -> bool:
    """Cancel ``task`` and wait up to ``timeout`` seconds for it to end, cancelling it again every
    ``tick`` (a cancel can be swallowed; the task's own stop flag is the other half). True if
    it ended; False if it is still running (it is left behind, never waited for forever)."""
    if task is None or task.done():
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not task.done() and loop.time() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=min(tick, max(0.0, deadline - loop.time())))
    if task.done():
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()
        return True
    return False


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
    weigh : callable, optional
        The weight of an item (bytes, say); with ``max_weight``, a batch holds items while
        their total weight stays within it (an item heavier than that goes alone).
    max_weight : int, optional
        Most total weight per call (None: no limit).
    """

    def __init__(self, handle: Callable[[list[Item]], Awaitable[Sequence[Result]]], *,
                 max_batch: int = 1000, linger: float = 0.0, weigh: Callable[[Item], int] | None = None,
                 max_weight: int | None = None) -> None:
        if max_batch < 1 or (max_weight is not None and (weigh is None or max_weight < 1)):
            raise ConfigError(f"max_batch must be >= 1 (got {max_batch}) and max_weight >= 1 with a weigh "
                             f"function (got {max_weight})")
        self.handle, self.max_batch, self.linger = handle, max_batch, linger
        self.weigh, self.max_weight = weigh, max_weight
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

    def _next_batch(self) -> list[tuple[Item, asyncio.Future]]:
        """The head of the queue: at most ``max_batch`` items and ``max_weight`` (at least one)."""
        count = min(self.max_batch, len(self._queue))
        if self.max_weight is not None:
            total = 0
            for k in range(count):
                total += self.weigh(self._queue[k][0])
                if total > self.max_weight and k > 0:
                    count = k
                    break
        batch, self._queue = self._queue[:count], self._queue[count:]
        return batch

    async def _drain(self) -> None:
        if self.linger > 0:
            await asyncio.sleep(self.linger)
        while self._queue:
            batch = self._next_batch()
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
