"""Wake-ups at a time for many, on one timer per event loop and clock.

Two kinds are held by the thousand, one per idle live subscription and one per open
WebSocket: the subscription's wake-up when its token expires (wall-clock time, so that
it ends then rather than at its next delivery), and the socket's next keepalive ping
(the loop's monotonic clock). A timer each (``loop.call_later``) costs about half a KiB
on uvloop (its handle, its libuv timer, a copy of the context); here each costs a small
entry in one heap, and one timer waits for the earliest.

A cancelled entry stays in the heap until its time comes or until cancelled ones are
half of it, when the heap is rebuilt without them (as asyncio does with its timers).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
import weakref
from collections.abc import Callable

log = logging.getLogger(__name__)

# Below this many entries, cancelled ones wait for their time rather than a rebuild.
COMPACT_MIN = 64


class Deadline:
    """One wake-up; ``cancel`` it when it is no longer wanted (idempotent)."""

    __slots__ = ("_callback", "_owner", "when")

    def __init__(self, when: float, callback: Callable[[], None], owner: Deadlines | None) -> None:
        self.when = when
        self._callback: Callable[[], None] | None = callback
        self._owner = owner

    def __lt__(self, other: Deadline) -> bool:
        return self.when < other.when

    @property
    def cancelled(self) -> bool:
        return self._callback is None

    def cancel(self) -> None:
        if self._callback is None:
            return
        self._callback = None
        if self._owner is not None:
            self._owner.cancelled_one()

    def fire(self) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()


class Deadlines:
    """The wake-ups of one event loop on one ``clock``, earliest first."""

    __slots__ = ("_cancelled", "_clock", "_heap", "_timer", "_timer_when")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._heap: list[Deadline] = []
        self._cancelled = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = math.inf

    def __len__(self) -> int:
        return len(self._heap) - self._cancelled

    def call_at(self, when: float, callback: Callable[[], None]) -> Deadline:
        """``callback()`` at ``when`` on this clock, or at once if it has passed."""
        if when == math.inf:
            return Deadline(when, callback, None)  # never due: nothing to wait for
        deadline = Deadline(when, callback, self)
        heapq.heappush(self._heap, deadline)
        if when < self._timer_when:
            self._schedule(when)
        return deadline

    def cancelled_one(self) -> None:
        self._cancelled += 1
        if self._cancelled * 2 > len(self._heap) >= COMPACT_MIN:
            self._heap = [d for d in self._heap if not d.cancelled]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def _schedule(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, when - self._clock()), self._fire)
        self._timer_when = when

    def _fire(self) -> None:
        self._timer, self._timer_when = None, math.inf
        now = self._clock()
        heap = self._heap
        while heap and (heap[0].cancelled or heap[0].when <= now):
            deadline = heapq.heappop(heap)
            if deadline.cancelled:
                self._cancelled -= 1
                continue
            try:
                deadline.fire()
            except Exception:
                # One subscriber's failure must not keep the others from their wake-ups.
                log.exception("a deadline's callback failed")
        if heap:
            self._schedule(heap[0].when)


# Per loop and clock. The loop is a weak key: a Deadlines holds no reference to it.
_per_loop: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[Callable[[], float], Deadlines]
] = weakref.WeakKeyDictionary()


def _deadlines(clock: Callable[[], float]) -> Deadlines:
    clocks = _per_loop.setdefault(asyncio.get_running_loop(), {})
    deadlines = clocks.get(clock)
    if deadlines is None:
        deadlines = clocks[clock] = Deadlines(clock)
    return deadlines


def call_at(when: float, callback: Callable[[], None]) -> Deadline:
    """``callback()`` at ``when`` (``time.time()`` seconds), on the running loop's timer."""
    return _deadlines(time.time).call_at(when, callback)


def call_later(delay: float, callback: Callable[[], None]) -> Deadline:
    """``callback()`` in ``delay`` seconds of the monotonic clock, on the running loop's
    timer: ``loop.call_later`` for callbacks held by the thousand."""
    return _deadlines(time.monotonic).call_at(time.monotonic() + delay, callback)
