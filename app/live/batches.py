"""Live runs in batches: the cohorts one change invalidates re-run together.

A change usually invalidates many cohorts at once: the same list at other page sizes,
other users' views of one channel. Each asks to run in the same turn of the event loop;
those of one group (a tenant) are run as one batch over a resource the batch opens once
(one snapshot and one set of DataLoaders, see ``app.shared_reads``), so N cohorts cost
one statement per loader and nesting level instead of N, the way Hasura multiplexes
live queries. Everything per cohort stays per cohort: its viewer, read set, result and
version are its run's own.

A batch's first run goes alone, and the others once it is done (or ``LEAD_ALONE_S``
has passed): what it read (a list at its page size, its rows' authors) is in the batch's
loaders, and a run that reads nothing more (the same list at another size is the prefix
of a page read, see ``PageLoader``) runs to its end in one step instead of waiting for
each statement with the others. Those that do read more still read it together.

Bounds: a batch holds at most ``max_size`` runs (a larger group is split); a run waits
at most one turn of the event loop for its batch to be formed, and at most
``max_running`` batches run at once, the others after them in order. Each run's outcome
is its cohort's as soon as it is done, not when its whole batch is.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
# What a batch of a group shares (opened once, closed when its last run is done).
Opener = Callable[[Hashable], AbstractAsyncContextManager[Any]]
Job = Callable[[Any], Awaitable[T]]
Pending = list[tuple[Job[T], "asyncio.Future[T]"]]
# Batches running at once. One change's batches are CPU work on one thread: run side by
# side, they all finish at the end of the round, and every result goes out then; one
# or two at a time, the first batches' results go out while the later ones run (and the
# clients read them meanwhile), and a batch waiting on the database leaves the loop to
# another.
MAX_RUNNING = 2
# How long a batch's first run goes alone at most. A run reads in a few statements, but
# each of its steps waits behind the steps of the batch running beside it (a hundred
# runs' worth, some 15 ms): at 10 ms a third of the first runs were cut short. A slow
# one (a large page, a busy database) must still not hold up the others for long.
LEAD_ALONE_S = 0.05


class Batches(Generic[T]):
    def __init__(self, opener: Opener, max_size: int, max_running: int = MAX_RUNNING) -> None:
        if max_size < 1 or max_running < 1:
            raise ValueError("a batch holds at least one run, and at least one batch runs")
        self._open = opener
        self.max_size = max_size
        self._slots = asyncio.Semaphore(max_running)
        self._pending: dict[Hashable, Pending[T]] = {}
        self._flush_scheduled = False
        self._running: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.runs = 0

    def run(self, group: Hashable, job: Job[T]) -> asyncio.Future[T]:
        """``job(shared)`` in the next batch of ``group``; its result, or its exception."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        batch = self._pending.setdefault(group, [])
        batch.append((job, future))
        if len(batch) >= self.max_size:
            del self._pending[group]
            self._start(group, batch)
        elif not self._flush_scheduled:
            # Every cohort a change woke asks during this turn: the flush comes after.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, {}
        for group, batch in pending.items():
            self._start(group, batch)

    def _start(self, group: Hashable, batch: Pending[T]) -> None:
        task = asyncio.create_task(self._execute(group, batch), name="live-batch")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _execute(self, group: Hashable, batch: Pending[T]) -> None:
        async with self._slots:
            # A run whose cohort stopped waiting (cancelled) before its batch's turn came
            # is not run.
            batch = [(job, future) for job, future in batch if not future.done()]
            if batch:
                await self._run_batch(group, batch)

    async def _run_batch(self, group: Hashable, batch: Pending[T]) -> None:
        self.batches += 1
        self.runs += len(batch)
        try:
            async with self._open(group) as shared:
                runs: _Runs[T] = _Runs(shared)
                try:
                    for job, future in batch:
                        if future.done():  # its cohort stopped waiting meanwhile
                            continue
                        runs.start(job, future)
                        if len(runs.tasks) == 1 and len(batch) > 1:
                            # The first run alone: what it reads (a page at its size, its
                            # rows' authors) the others find read, and most of them then
                            # run to their end without waiting for a statement at all.
                            await asyncio.wait(runs.tasks, timeout=LEAD_ALONE_S)
                    await runs.ended()
                except asyncio.CancelledError:
                    # The batch itself is stopped: its runs stop with it, before what
                    # they read from is closed.
                    for run in runs.tasks:
                        run.cancel()
                    if runs.tasks:
                        await asyncio.wait(runs.tasks)
                    raise
        except Exception as exc:  # opening or closing the shared resource failed
            log.warning("a live batch failed", exc_info=True)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)

    def idle(self) -> bool:
        """No run waiting for its batch, and no batch running."""
        return not self._pending and not self._running

    async def join(self) -> None:
        """Wait for every batch started (shutdown: they may be reading the database)."""
        self._flush()
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)


class _Runs(Generic[T]):
    """A batch's runs: each settles its cohort's future as soon as it ends, and the
    batch waits for the last (one wake-up for the batch, not one per run)."""

    def __init__(self, shared: Any) -> None:
        self._shared = shared
        self.tasks: list[asyncio.Future[T]] = []
        self._left = 0
        self._all_ended: asyncio.Future[None] | None = None

    def start(self, job: Job[T], future: asyncio.Future[T]) -> None:
        run = asyncio.ensure_future(job(self._shared))
        # A cohort that stops waiting cancels its own run, not the batch.
        cancel = functools.partial(_cancel_if_cancelled, run)
        future.add_done_callback(cancel)
        run.add_done_callback(functools.partial(self._ended, future, cancel))
        self.tasks.append(run)
        self._left += 1

    def _ended(
        self,
        future: asyncio.Future[T],
        cancel: Callable[[asyncio.Future[T]], None],
        run: asyncio.Future[T],
    ) -> None:
        # Settled here, the future's own callback would only be one more to call.
        future.remove_done_callback(cancel)
        # Its outcome is its cohort's now: its results go out while the others finish.
        _settle(future, run)
        self._left -= 1
        if not self._left and self._all_ended is not None and not self._all_ended.done():
            self._all_ended.set_result(None)

    async def ended(self) -> None:
        """Once every run started has ended."""
        if self._left:
            self._all_ended = asyncio.get_running_loop().create_future()
            await self._all_ended


def _cancel_if_cancelled(run: asyncio.Future[Any], future: asyncio.Future[Any]) -> None:
    if future.cancelled():
        run.cancel()


def _settle(future: asyncio.Future[Any], run: asyncio.Future[Any]) -> None:
    if future.done():
        return
    if run.cancelled():
        future.cancel()
    elif (error := run.exception()) is not None:
        future.set_exception(error)
    else:
        future.set_result(run.result())
