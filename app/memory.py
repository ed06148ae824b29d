"""A long-running server's memory: the allocator and the cyclic collector, set at start.

Under a steady load nothing the server holds grows, yet its RSS used to rise about 2 MiB
a minute, outside what tracemalloc sees, for two reasons:

- glibc's malloc raises its mmap threshold to the size of each mapped block it frees
  (the "dynamic mmap threshold" of mallopt(3)). Under load it stood near 1 MiB, so every
  block from 128 KiB up to that size came from the heap, where freed ones leave holes
  the next ones do not fit: the main arena grew while the bytes in use did not, and
  ``malloc_trim`` won back nothing lasting. Pinned thresholds turn the adjustment off:
  such blocks are mapped and unmapped whole.
- Cyclic garbage (graphql-core execution contexts, SQLAlchemy statements, the tracebacks
  of cancelled tasks) that outlives two young collections waits for a full one, which
  ``tune_collector`` makes rare (about one an hour under load). A full collection at
  least every ``FULL_COLLECTION_EVERY_S`` bounds what can pile up meanwhile. It pauses
  the event loop in proportion to the objects alive (start-up's are frozen out): 20-90 ms
  under the soak's load, about 40 ms per 100,000 objects on two busy cores. A full
  collection used to come anyway, later, with all that had piled up.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import platform
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

# mallopt(3) parameters, and glibc's own defaults for them (before any adjustment).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MALLOC_THRESHOLD_BYTES = 128 * 1024
FULL_COLLECTION_EVERY_S = 60.0
# Net new container objects between young collections (CPython's default is 700).
YOUNG_COLLECTION_EVERY = 200_000
# A young collection is made early, while the process is idle, once this many have
# accumulated (``idle_collections``); looked at this often.
IDLE_COLLECTION_AT = YOUNG_COLLECTION_EVERY // 4
IDLE_CHECK_EVERY_S = 0.05


def pin_malloc_thresholds() -> bool:
    """Fix glibc's mmap and trim thresholds at their defaults; False on another libc."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    # Setting either turns off the dynamic adjustment of both; set both, because start-up
    # (imports, the first requests) has already raised them.
    return bool(
        libc.mallopt(M_MMAP_THRESHOLD, MALLOC_THRESHOLD_BYTES)
        and libc.mallopt(M_TRIM_THRESHOLD, MALLOC_THRESHOLD_BYTES)
    )


def tune_collector() -> None:
    """Keep start-up's objects out of the collector's scans; make full collections rare."""
    # What start-up built lives as long as the process: keep it out of the cyclic
    # collector's scans, so full collections stay short under many live queries.
    gc.collect()
    gc.freeze()
    # Live subscriptions are many long-lived objects: a full collection walking all of
    # them stalls every delivery. Older collections become rare, and
    # ``full_collections`` bounds how rare. The middle generation is rare too: while a
    # change re-runs a thousand cohorts, what their executions hold survives the young
    # collections, and scanning it again every million allocations took about a third
    # of the burst (2.4 s against 1.6 s with no collection; 1.9 s like this).
    # A young collection scans what is alive of the objects made since the last, about
    # half a microsecond each. A round of 1,000 live runs has some 100,000 alive at once
    # and frees them when it ends (its executions leave no cycles, see
    # ``app.schema.executor._helpers``): with room for them, a round runs without a
    # collection, where a threshold of 50,000 cost one of 40-70 ms in each.
    gc.set_threshold(YOUNG_COLLECTION_EVERY, 1_000, 100)


@asynccontextmanager
async def full_collections(every_s: float = FULL_COLLECTION_EVERY_S) -> AsyncIterator[None]:
    """A full collection every ``every_s`` while the block runs."""
    async with _running(_collect_every(every_s), "full-collections"):
        yield


async def _collect_every(every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        gc.collect()


@asynccontextmanager
async def idle_collections(
    idle: Callable[[], bool],
    at: int = IDLE_COLLECTION_AT,
    every_s: float = IDLE_CHECK_EVERY_S,
) -> AsyncIterator[None]:
    """While the block runs, a young collection whenever ``idle()`` has held for two
    looks in a row and at least ``at`` net objects wait for one.

    Long-lived objects made between bursts (a thousand clients connecting and
    subscribing made some 160,000) are otherwise scanned by the young collection that
    the next burst's allocations set off: 40-70 ms in the middle of re-running the live
    queries a change touched, the first round after a wave of connections. Made while
    nothing runs, the collection delays no one."""
    async with _running(_collect_when_idle(idle, at, every_s), "idle-collections"):
        yield


@asynccontextmanager
async def _running(work: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """``work`` in a task of its own while the block runs, stopped when it ends."""
    task = asyncio.create_task(work, name=name)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _collect_when_idle(idle: Callable[[], bool], at: int, every_s: float) -> None:
    quiet = False
    while True:
        await asyncio.sleep(every_s)
        was_quiet, quiet = quiet, idle()
        if was_quiet and quiet and gc.get_count()[0] >= at:
            gc.collect(0)
