"""The change log's head as the query cache reads it: one read per burst of callers,
and never a read that began before the caller asked."""

from __future__ import annotations

import asyncio

import pytest

from app.live.head import HeadProbe


class Log:
    """A head that each test moves, with reads it holds until released."""

    def __init__(self) -> None:
        self.version = 0
        self.gates: list[asyncio.Event] = []
        self.started = asyncio.Event()

    async def read(self) -> int:
        # What a read answers is what was committed when it began.
        seen = self.version
        gate = asyncio.Event()
        self.gates.append(gate)
        self.started.set()
        await gate.wait()
        return seen

    async def next_read(self) -> asyncio.Event:
        await self.started.wait()
        self.started.clear()
        return self.gates[-1]


async def test_callers_that_ask_together_share_one_read() -> None:
    log = Log()
    probe = HeadProbe(log.read)
    log.version = 7
    callers = [asyncio.create_task(probe.head()) for _ in range(50)]
    (await log.next_read()).set()
    assert await asyncio.gather(*callers) == [7] * 50
    assert probe.reads == 1


async def test_a_caller_never_joins_a_read_that_began_before_it_asked() -> None:
    log = Log()
    probe = HeadProbe(log.read)
    log.version = 1
    early = asyncio.create_task(probe.head())
    first = await log.next_read()
    # A write is acknowledged after that read began: whoever asks now must see it.
    log.version = 2
    late = [asyncio.create_task(probe.head()) for _ in range(3)]
    await asyncio.sleep(0)
    first.set()
    assert await early == 1
    (await asyncio.wait_for(log.next_read(), 5)).set()
    assert await asyncio.wait_for(asyncio.gather(*late), 5) == [2, 2, 2]
    assert probe.reads == 2


async def test_a_failed_read_fails_its_callers_and_the_next_read_is_fresh() -> None:
    calls = 0

    async def read() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database away")
        return 5

    probe = HeadProbe(read)
    with pytest.raises(ConnectionError):
        await probe.head()
    assert await probe.head() == 5


async def test_a_cancelled_caller_leaves_the_others_their_answer() -> None:
    log = Log()
    probe = HeadProbe(log.read)
    log.version = 3
    gone = asyncio.create_task(probe.head())
    stays = asyncio.create_task(probe.head())
    gate = await log.next_read()
    gone.cancel()
    gate.set()
    assert await stays == 3
    assert gone.cancelled()
    await probe.close()
