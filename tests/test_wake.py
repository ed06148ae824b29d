"""``Wake``: the one-waiter flag an idle live subscription waits on."""

from __future__ import annotations

import asyncio

import pytest

from app.live.wake import Wake, WakeAlreadyAwaited


async def test_a_wake_set_before_the_wait_returns_at_once() -> None:
    wake = Wake()
    wake.set()
    async with asyncio.timeout(1):
        await wake.wait()
    assert wake.is_set()


async def test_set_wakes_the_waiter() -> None:
    wake = Wake()
    waiting = asyncio.ensure_future(wake.wait())
    await asyncio.sleep(0)
    assert not waiting.done()
    wake.set()
    async with asyncio.timeout(1):
        await waiting


async def test_clear_makes_the_next_wait_block() -> None:
    wake = Wake()
    wake.set()
    wake.clear()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await wake.wait()


async def test_a_second_waiter_is_refused() -> None:
    wake = Wake()
    first = asyncio.ensure_future(wake.wait())
    await asyncio.sleep(0)
    with pytest.raises(WakeAlreadyAwaited):
        await wake.wait()
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)


async def test_a_cancelled_wait_leaves_the_wake_usable() -> None:
    wake = Wake()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await wake.wait()
    waiting = asyncio.ensure_future(wake.wait())
    await asyncio.sleep(0)
    wake.set()
    async with asyncio.timeout(1):
        await waiting
