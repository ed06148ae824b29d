"""Durable change events: one table's committed row changes, in commit order, once each.

A subscription names a table and a filter on its tracked columns (primary key, foreign
keys, indexed columns). Every change is at a position: its change-log version and its
index within that batch. The opaque cursor of an event encodes that position.

Resuming ``after`` a cursor, with no gap and no duplicate at the seam:

1. the stream registers with the hub first, at the version the feed has applied
   (``start``): every later batch is queued for it, in version order, from now on;
2. it replays the change log from the cursor up to ``start`` (chunk by chunk, no
   connection held while the client reads);
3. then it delivers what was queued, skipping any position it has already delivered.

The feed applies every version exactly once and in order (it catches up from the log
after a missed broadcast or a broker restart), so nothing falls between 2 and 3.

A cursor whose batch is no longer in the log fails with CURSOR_EXPIRED; one that does
not decode, or names a version the log has not reached, with BAD_USER_INPUT. Each
stream's queue is bounded: a client that does not read is ended (its WebSocket closed
with 1013), never skipped over.

    AppError
    ├── BadUserInput     a malformed or unknown cursor
    ├── CursorExpired    the cursor's batch was pruned, or this process missed batches
    └── SlowEventReader  the stream's queue overflowed (RATE_LIMITED)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from app.errors import BadUserInput, CursorExpired, RateLimited
from app.live import changelog
from app.live.changes import ChangeBatch, RowChange, Scalar

if TYPE_CHECKING:
    from app.database import Database

CURSOR_PREFIX = "ev1"
REPLAY_CHUNK = 500
SHARED_LOADS = 1024
T = TypeVar("T")


class SlowEventReader(RateLimited):
    """Events arrived faster than the client read them, beyond the queue's bound."""

    def __init__(self) -> None:
        super().__init__("Slow consumer: events were not read in time; resume from the cursor")


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """Where a change is in the change log: its batch's version, its index in it."""

    version: int
    index: int

    def cursor(self) -> str:
        raw = f"{CURSOR_PREFIX}:{self.version}:{self.index}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def parse(cls, cursor: str, path: str = "after") -> Position:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raw = ""
        prefix, _, rest = raw.partition(":")
        version, _, index = rest.partition(":")
        if prefix != CURSOR_PREFIX or not (version.isdigit() and index.isdigit()):
            raise BadUserInput.field(path, "not an event cursor")
        if len(version) > 18 or len(index) > 9 or int(version) < 1:
            raise BadUserInput.field(path, "not an event cursor")
        return cls(int(version), int(index))


@dataclass(frozen=True, slots=True)
class RowEvent:
    position: Position
    change: RowChange

    @property
    def cursor(self) -> str:
        return self.position.cursor()


@dataclass(frozen=True, slots=True)
class EventFilter:
    """A table, and the values its tracked columns must hold (before or after)."""

    table: str
    where: Mapping[str, Scalar]

    def matches(self, change: RowChange) -> bool:
        if change.table != self.table:
            return False
        return any(
            values and all(values.get(k) == v for k, v in self.where.items())
            for values in (change.old, change.new)
        )

    def events(self, batch: ChangeBatch) -> list[RowEvent]:
        return [
            RowEvent(Position(batch.version, i), change)
            for i, change in enumerate(batch.changes)
            if self.matches(change)
        ]


# Why a stream must end before its next event (a revoked token), or None.
Check = Callable[[], Exception | None]


class EventStream:
    """One subscriber's events: the log's replay, then its bounded live queue."""

    def __init__(
        self,
        hub: EventHub,
        event_filter: EventFilter,
        *,
        max_queue: int,
        check: Check,
        on_overflow: Callable[[], None] | None,
    ) -> None:
        self._hub = hub
        self.filter = event_filter
        self._max_queue = max_queue
        self._check = check
        self._on_overflow = on_overflow
        self._queue: deque[RowEvent] = deque()
        self._wake = asyncio.Event()
        self._error: Exception | None = None
        self.start = hub.applied_version()

    def offer(self, batch: ChangeBatch) -> None:
        if self._error is not None:
            return
        self._queue.extend(self.filter.events(batch))
        if len(self._queue) > self._max_queue:
            # Released at once, not when the blocked send returns: nothing accumulates.
            self._queue.clear()
            self._hub.remove(self)
            self.fail(SlowEventReader())
            if self._on_overflow is not None:
                self._on_overflow()
        self._wake.set()

    def fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def events(self, after: Position | None) -> AsyncGenerator[RowEvent, None]:
        """Every matching event after ``after`` (or from now), in commit order."""
        try:
            # Without a cursor: what commits after the registration, nothing before.
            last = after if after is not None else Position(self.start, 2**62)
            if after is not None:
                async for event in self._hub.replay(self.filter, after, self.start):
                    self._raise_if_ended()
                    last = event.position
                    yield event
            while True:
                self._raise_if_ended()
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                event = self._queue.popleft()
                if event.position <= last:
                    continue  # already replayed from the log
                last = event.position
                yield event
        finally:
            self._hub.remove(self)

    def _raise_if_ended(self) -> None:
        if self._error is None:
            self._error = self._check()
        if self._error is not None:
            raise self._error


class EventHub:
    """The event streams of one process, fed by the change feed in version order."""

    def __init__(self, db: Database, applied_version: Callable[[], int]) -> None:
        self._db = db
        self.applied_version = applied_version
        self._by_table: dict[str, set[EventStream]] = {}
        self._shared: OrderedDict[Hashable, asyncio.Task[Any]] = OrderedDict()

    def open(
        self,
        event_filter: EventFilter,
        *,
        max_queue: int,
        check: Check,
        on_overflow: Callable[[], None] | None = None,
    ) -> EventStream:
        """Register at once: from here every applied batch reaches the stream's queue."""
        stream = EventStream(
            self, event_filter, max_queue=max_queue, check=check, on_overflow=on_overflow
        )
        self._by_table.setdefault(event_filter.table, set()).add(stream)
        return stream

    def remove(self, stream: EventStream) -> None:
        streams = self._by_table.get(stream.filter.table)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._by_table[stream.filter.table]

    def count(self) -> int:
        return sum(len(s) for s in self._by_table.values())

    def dispatch(self, batch: ChangeBatch) -> None:
        tables = {change.table for change in batch.changes}
        for table in tables:
            # A copy: a stream that overflows leaves the set as it is offered the batch.
            for stream in list(self._by_table.get(table, ())):
                stream.offer(batch)

    def reset(self) -> None:
        """This process skipped versions that were pruned: its streams missed events."""
        for streams in self._by_table.values():
            for stream in list(streams):
                stream.fail(CursorExpired("Events were missed; resume from a query"))

    def wake_all(self) -> None:
        for streams in self._by_table.values():
            for stream in streams:
                stream.wake()

    async def replay(
        self, event_filter: EventFilter, after: Position, upto: int
    ) -> AsyncIterator[RowEvent]:
        """Matching events after ``after`` up to version ``upto``, from the change log."""
        version = after.version - 1  # the cursor's own batch holds later changes too
        first = True
        while first or version < upto:
            async with self._db.read_engine.connect() as conn:
                batches = await changelog.read_after(conn, version, REPLAY_CHUNK)
                if first:
                    current = await changelog.current_version(conn)
            if first:
                if after.version > current:
                    raise BadUserInput.field("after", "no such position in the change log")
                if not batches or batches[0].version != after.version:
                    # Versions are gap-free: the cursor's batch is gone, pruned.
                    raise CursorExpired()
                first = False
            if not batches:
                return
            for batch in batches:
                if batch.version > upto:
                    return
                for event in event_filter.events(batch):
                    if event.position > after:
                        yield event
                version = batch.version

    async def shared(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """One load for every stream delivering the same event (fan-out of one change)."""
        task = self._shared.get(key)
        if task is None:
            task = asyncio.ensure_future(load())
            # A failed load is retried by the next stream, not shared.
            task.add_done_callback(lambda t: self._forget(key, t))
            self._shared[key] = task
            while len(self._shared) > SHARED_LOADS:
                self._shared.popitem(last=False)
        else:
            self._shared.move_to_end(key)
        result: T = await asyncio.shield(task)
        return result

    def _forget(self, key: Hashable, task: asyncio.Task[Any]) -> None:
        failed = task.cancelled() or task.exception() is not None
        if failed and self._shared.get(key) is task:
            del self._shared[key]
