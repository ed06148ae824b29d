"""The allocator and collector settings that keep a long-running server's RSS flat."""

from __future__ import annotations

import asyncio
import gc
import platform
import subprocess
import sys
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest

from app.live.batches import Batches
from app.memory import full_collections, idle_collections

# Run in a fresh process: whether malloc maps a block also depends on the free space its
# heap holds at that moment (a hole that fits is used first), which this process's tests
# leave in any state.
THRESHOLD_PROBE = """
import ctypes, ctypes.util, sys

FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS.split()]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "pinned":
    from app.memory import pin_malloc_thresholds
    assert pin_malloc_thresholds()
# Unpinned, freeing this mapped block raises the threshold to its size: every block
# below that comes from the heap from then on.
libc.free(libc.malloc(4 << 20))
before = libc.mallinfo2().hblks
block = libc.malloc(256 << 10)
print("mapped" if libc.mallinfo2().hblks > before else "heap")
libc.free(block)
"""


def medium_block_after_a_large_one(mode: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", THRESHOLD_PROBE, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_a_freed_large_block_does_not_send_medium_blocks_to_the_heap() -> None:
    assert medium_block_after_a_large_one("default") == "heap"  # what pinning prevents
    assert medium_block_after_a_large_one("pinned") == "mapped"


class Node:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def no_automatic_collection() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_automatic_collection")
async def test_cyclic_garbage_is_collected_within_the_period() -> None:
    async with full_collections(every_s=0.05):
        garbage = weakref.ref(Node())
        async with asyncio.timeout(2):
            while garbage() is not None:  # noqa: ASYNC110 - nothing signals a collection
                await asyncio.sleep(0.01)


async def test_collections_stop_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError):
        async with full_collections(every_s=0.05):
            raise RuntimeError("boom")
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "full-collections"]


@contextmanager
def young_collections() -> Iterator[list[int]]:
    """The generations of the collections made in the block."""
    made: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            made.append(info["generation"])

    gc.callbacks.append(note)
    try:
        yield made
    finally:
        gc.callbacks.remove(note)


@pytest.mark.usefixtures("no_automatic_collection")
async def test_a_young_collection_waits_for_the_process_to_be_idle() -> None:
    """Objects made between bursts are collected while nothing runs, not by the next
    burst: only once ``idle`` has held for two looks, and only with enough waiting."""
    busy = True
    kept = [[i] for i in range(5_000)]  # net new container objects
    assert gc.get_count()[0] >= 5_000
    with young_collections() as made:
        async with idle_collections(lambda: not busy, at=2_000, every_s=0.01):
            await asyncio.sleep(0.1)
            assert made == []
            busy = False
            async with asyncio.timeout(2):
                while not made:  # noqa: ASYNC110 - nothing signals a collection
                    await asyncio.sleep(0.01)
            assert made == [0]
            assert gc.get_count()[0] < 2_000
            # Below the mark, an idle process is left alone.
            await asyncio.sleep(0.1)
            assert made == [0]
    assert len(kept) == 5_000
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "idle-collections"]


async def test_live_batches_are_idle_only_with_nothing_waiting_or_running() -> None:
    release = asyncio.Event()

    @asynccontextmanager
    async def opened(_group: object) -> AsyncIterator[None]:
        yield None

    async def job(_shared: object) -> int:
        await release.wait()
        return 1

    batches: Batches[int] = Batches(opened, max_size=10)
    assert batches.idle()
    run = batches.run("tenant", job)
    assert not batches.idle()  # waiting for its batch to form
    await asyncio.sleep(0.01)
    assert not batches.idle()  # running
    release.set()
    assert await run == 1
    await batches.join()
    assert batches.idle()
