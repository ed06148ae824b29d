"""Ephemeral signals (typing, and the like): through the broker to every process, never
stored. A subscriber's queue is bounded; one that overflows ends the subscription (its
WebSocket closed with 1013), as for events: a signal is never skipped without a word.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from app.live.events import SlowEventReader


class SignalStream:
    def __init__(
        self, hub: SignalHub, topic: str, max_queue: int, on_overflow: Callable[[], None] | None
    ) -> None:
        self._hub = hub
        self.topic = topic
        self._max_queue = max_queue
        self._on_overflow = on_overflow
        self._queue: deque[Any] = deque()
        self._wake = asyncio.Event()
        self._error: Exception | None = None

    def offer(self, payload: Any) -> None:
        if self._error is not None:
            return
        self._queue.append(payload)
        if len(self._queue) > self._max_queue:
            self._queue.clear()
            self._hub.remove(self)
            self._error = SlowEventReader()
            if self._on_overflow is not None:
                self._on_overflow()
        self._wake.set()

    async def next(self, timeout: float | None) -> Any | None:
        """The next signal, or None after ``timeout`` seconds without one."""
        while not self._queue:
            if self._error is not None:
                raise self._error
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return None
        if self._error is not None:
            raise self._error
        return self._queue.popleft()


class SignalHub:
    def __init__(self) -> None:
        self._by_topic: dict[str, set[SignalStream]] = {}

    def count(self) -> int:
        return sum(len(s) for s in self._by_topic.values())

    @asynccontextmanager
    async def subscribe(
        self, topic: str, *, max_queue: int, on_overflow: Callable[[], None] | None = None
    ) -> AsyncIterator[SignalStream]:
        """A stream registered while the block runs."""
        stream = SignalStream(self, topic, max_queue, on_overflow)
        self._by_topic.setdefault(topic, set()).add(stream)
        try:
            yield stream
        finally:
            self.remove(stream)

    def remove(self, stream: SignalStream) -> None:
        streams = self._by_topic.get(stream.topic)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._by_topic[stream.topic]

    def dispatch(self, topic: str, payload: Any) -> None:
        for stream in list(self._by_topic.get(topic, ())):
            stream.offer(payload)
