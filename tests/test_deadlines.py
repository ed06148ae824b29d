"""``Deadlines``: wake-ups at a wall-clock time, many on one timer per event loop."""

from __future__ import annotations

import asyncio
import logging
import math
import time

import pytest

from app import deadlines
from app.deadlines import COMPACT_MIN, Deadlines


async def test_a_deadline_fires_at_its_time() -> None:
    fired = asyncio.Event()
    start = time.time()
    Deadlines().call_at(start + 0.05, fired.set)
    async with asyncio.timeout(1):
        await fired.wait()
    assert time.time() - start >= 0.04


async def test_a_deadline_already_past_fires_at_once() -> None:
    fired = asyncio.Event()
    Deadlines().call_at(time.time() - 10, fired.set)
    async with asyncio.timeout(0.5):
        await fired.wait()


async def test_deadlines_fire_earliest_first_whatever_the_order_they_were_set() -> None:
    order: list[int] = []
    done = asyncio.Event()
    clock = Deadlines()
    now = time.time()
    clock.call_at(now + 0.09, lambda: (order.append(3), done.set()))
    clock.call_at(now + 0.03, lambda: order.append(1))
    clock.call_at(now + 0.06, lambda: order.append(2))
    async with asyncio.timeout(1):
        await done.wait()
    assert order == [1, 2, 3]
    assert len(clock) == 0


async def test_a_cancelled_deadline_does_not_fire() -> None:
    fired: list[str] = []
    clock = Deadlines()
    now = time.time()
    clock.call_at(now + 0.02, lambda: fired.append("cancelled")).cancel()
    clock.call_at(now + 0.04, lambda: fired.append("kept"))
    await asyncio.sleep(0.15)
    assert fired == ["kept"]


async def test_cancelled_deadlines_do_not_accumulate() -> None:
    """Subscriptions that come and go long before their tokens expire leave no entries."""
    clock = Deadlines()
    later = time.time() + 3600
    kept = clock.call_at(later, lambda: None)
    for _ in range(10 * COMPACT_MIN):
        clock.call_at(later, lambda: None).cancel()
    assert len(clock) == 1
    assert len(clock._heap) < 2 * COMPACT_MIN
    kept.cancel()


async def test_a_deadline_that_never_comes_holds_nothing() -> None:
    clock = Deadlines()
    clock.call_at(math.inf, lambda: None)
    assert len(clock) == 0


async def test_a_failing_callback_does_not_keep_the_others_from_firing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fail() -> None:
        raise RuntimeError("boom")

    fired = asyncio.Event()
    clock = Deadlines()
    now = time.time()
    clock.call_at(now + 0.01, fail)
    clock.call_at(now + 0.01, fired.set)
    with caplog.at_level(logging.ERROR, logger="app.deadlines"):
        async with asyncio.timeout(1):
            await fired.wait()
    assert "a deadline's callback failed" in caplog.text


async def test_the_running_loop_keeps_a_heap_per_clock() -> None:
    at_time, later = asyncio.Event(), asyncio.Event()
    deadlines.call_at(time.time() + 0.01, at_time.set)
    deadlines.call_later(0.01, later.set)
    async with asyncio.timeout(1):
        await at_time.wait()
        await later.wait()
    clocks = deadlines._per_loop[asyncio.get_running_loop()]
    assert set(clocks) == {time.time, time.monotonic}


async def test_a_monotonic_deadline_fires_after_its_delay() -> None:
    fired = asyncio.Event()
    start = time.monotonic()
    Deadlines(time.monotonic).call_at(start + 0.05, fired.set)
    async with asyncio.timeout(1):
        await fired.wait()
    assert time.monotonic() - start >= 0.04
