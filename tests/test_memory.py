"""The allocator and collector settings that keep a long-running server's RSS flat."""

from __future__ import annotations

import asyncio
import gc
import platform
import subprocess
import sys
import weakref
from collections.abc import Iterator

import pytest

from app.memory import full_collections

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
