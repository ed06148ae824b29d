"""The change feed: every process applies committed batches once, in version order.

Batches arrive two ways: straight from this process's own commits, and through the
broker (broadcaster: ``memory://`` or ``redis://``) from every process. A batch older
than what was applied is a duplicate and is dropped; a newer one than the next expected
waits in a bounded buffer while the missing versions are read from the change log.
After the broker connection drops and comes back (with backoff: broadcaster does not
reconnect by itself), the feed also catches up from the change log, so nothing is lost.

broadcaster's own queues are unbounded; the reader drains them without awaiting
anything else, and what it buffers out of order is bounded by ``max_pending``.

Publishing never holds up a mutation: a committed batch is applied here at once and
queued (bounded) for a publisher task. When the queue is full or the broker is away,
the batch is not published; the other processes read it from the change log, told by
the head announced once publishing works again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from broadcaster import Broadcast

from app.live import changelog
from app.live.changes import ChangeBatch
from app.live.head import HeadProbe
from app.live.redis_backend import RedisPubSubBackend

if TYPE_CHECKING:
    from app.database import Database

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 2.0
PUBLISH_QUEUE = 1024
RECONNECT_MIN_S = 0.05
RECONNECT_MAX_S = 5.0
RECENT_BATCHES = 2048


class ChangeFeed:
    def __init__(
        self,
        db: Database,
        broadcast_url: str,
        channel: str,
        on_batch: Callable[[ChangeBatch], None],
        *,
        max_pending: int = 10_000,
        on_reset: Callable[[int], None] | None = None,
        on_signal: Callable[[str, Any], None] | None = None,
    ) -> None:
        self._db = db
        self._on_signal = on_signal
        self._url = broadcast_url
        self._channel = channel
        self._on_batch = on_batch
        self._on_reset = on_reset
        self._max_pending = max_pending
        self.applied_version = 0
        self._pending: dict[int, ChangeBatch] = {}
        self._recent: deque[ChangeBatch] = deque(maxlen=RECENT_BATCHES)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._broadcast: Broadcast | None = None
        self._reader: asyncio.Task[None] | None = None
        self._catch_up_task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.reconnects = 0
        self._outbox: asyncio.Queue[ChangeBatch] = asyncio.Queue(PUBLISH_QUEUE)
        # A batch was not published: announce the head once publishing works again.
        self._unannounced = False
        self._publisher: asyncio.Task[None] | None = None
        self.unpublished = 0
        # In-process fan-out means one process: its commits are applied here as they
        # commit. Otherwise others commit too, heard of only through the broker.
        self._alone = broadcast_url.startswith("memory://")
        self._head = HeadProbe(self._read_head)

    async def start(self) -> None:
        async with self._db.read_engine.connect() as conn:
            self.applied_version = await changelog.current_version(conn)
        self._reader = asyncio.create_task(self._read_forever(), name="change-feed")
        self._reader.add_done_callback(_log_crash)
        self._publisher = asyncio.create_task(self._publish_forever(), name="change-publisher")
        self._publisher.add_done_callback(_log_crash)

    async def stop(self) -> None:
        await self._head.close()
        for task in (self._reader, self._catch_up_task, self._publisher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._disconnect()
        for _, waiter in self._waiters:
            waiter.cancel()

    async def wait_connected(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
            return True
        except TimeoutError:
            return False

    # -- input -------------------------------------------------------------------------

    def committed(self, batch: ChangeBatch) -> None:
        """A batch this process committed: apply it now; tell the others in the background.

        Synchronous on purpose: nothing between the commit and the local apply can be
        interrupted by the cancellation of the operation that committed.
        """
        self.offer(batch)
        try:
            self._outbox.put_nowait(batch)
        except asyncio.QueueFull:
            self._not_published(batch, "the publish queue is full")

    def _not_published(self, batch: ChangeBatch, why: object) -> None:
        self.unpublished += 1
        self._unannounced = True
        log.warning(
            "version %d not published (%s); others read it from the log", batch.version, why
        )

    async def _publish_forever(self) -> None:
        while True:
            batch = await self._outbox.get()
            broadcast = self._broadcast
            if broadcast is None:
                # The broker is down: the head announced on reconnect covers this batch.
                self._not_published(batch, "the broker is away")
                continue
            try:
                if self._unannounced:
                    self._unannounced = False
                    await self._publish(broadcast, {"head": self.applied_version})
                await self._publish(broadcast, batch.to_json())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._not_published(batch, repr(exc))

    async def _publish(self, broadcast: Broadcast, message: dict[str, Any]) -> None:
        text = orjson.dumps(message).decode()
        await asyncio.wait_for(broadcast.publish(self._channel, text), PUBLISH_TIMEOUT_S)

    async def signal(self, topic: str, payload: Any) -> bool:
        """Publish an ephemeral signal to every process, this one included: through the
        broker only, never stored. False when the broker is away (the signal is lost)."""
        broadcast = self._broadcast
        if broadcast is None:
            return False
        try:
            await self._publish(broadcast, {"sig": topic, "p": payload})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("signal not published (%r)", exc)
            return False
        return True

    def offer(self, batch: ChangeBatch) -> None:
        if batch.version <= self.applied_version:
            return
        if batch.version > self.applied_version + 1:
            if len(self._pending) >= self._max_pending:
                self._pending.clear()
            self._pending[batch.version] = batch
            self._schedule_catch_up()
            return
        self._apply(batch)
        while (following := self._pending.pop(self.applied_version + 1, None)) is not None:
            self._apply(following)

    def _apply(self, batch: ChangeBatch) -> None:
        self.applied_version = batch.version
        self._recent.append(batch)
        self._on_batch(batch)
        if self._waiters:
            still = []
            for version, waiter in self._waiters:
                if version <= self.applied_version:
                    if not waiter.done():
                        waiter.set_result(None)
                else:
                    still.append((version, waiter))
            self._waiters = still

    async def wait_applied(self, version: int, timeout: float) -> bool:
        if version <= self.applied_version:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((version, waiter))
        try:
            async with asyncio.timeout(timeout):
                await waiter
            return True
        except TimeoutError:
            return False

    @property
    def behind(self) -> bool:
        """Whether later versions are known here, waiting for a missing one to be read."""
        return bool(self._pending)

    @property
    def hearing(self) -> bool:
        """Whether every commit is heard of here now: subscribed to the broker, not
        reading missed batches from the change log, no version missing. While the broker
        is away, other processes' commits go unheard until it returns (the query cache
        answers nothing meanwhile)."""
        catching_up = self._catch_up_task is not None and not self._catch_up_task.done()
        return self._connected.is_set() and not catching_up and not self._pending

    async def heard_all(self) -> bool:
        """Whether every commit acknowledged before this call, by any process, has been
        applied here (a read of the log's head where other processes commit). If not,
        the missing ones are read from the log."""
        if not self.hearing:
            return False
        if self._alone:
            return True
        try:
            head = await self._head.head()
        except Exception as exc:  # the caller's own read will meet the same failure
            log.warning("change log head not read (%r)", exc)
            return False
        if head <= self.applied_version:
            return True
        # Acknowledged elsewhere, not delivered yet (or lost): read it from the log
        # rather than wait on the broker.
        self._schedule_catch_up()
        return False

    @property
    def head_reads(self) -> int:
        return self._head.reads

    async def _read_head(self) -> int:
        async with self._db.read_engine.connect() as conn:
            return await changelog.current_version(conn)

    def since(self, version: int) -> list[ChangeBatch] | None:
        """Batches applied after ``version``, or None if they are no longer kept."""
        if version >= self.applied_version:
            return []
        if not self._recent or self._recent[0].version > version + 1:
            return None
        return [b for b in self._recent if b.version > version]

    # -- catch-up ----------------------------------------------------------------------

    def _schedule_catch_up(self) -> None:
        if self._catch_up_task is None or self._catch_up_task.done():
            self._catch_up_task = asyncio.create_task(self._catch_up(), name="change-catch-up")
            self._catch_up_task.add_done_callback(_log_crash)

    async def _catch_up(self) -> None:
        """Read what was missed from the change log, until the log has nothing newer."""
        while True:
            async with self._db.read_engine.connect() as conn:
                batches = await changelog.read_after(conn, self.applied_version)
            first = batches[0].version if batches else min(self._pending, default=None)
            if first is not None and first > self.applied_version + 1:
                # The versions we missed were pruned from the log: what they changed is
                # unknown, so every live query re-runs from the oldest version we have.
                self._skip_to(first - 1)
            for batch in batches:
                self.offer(batch)
            if len(batches) < 1000 and not self._pending:
                return

    def _skip_to(self, version: int) -> None:
        log.error("change log pruned past %d; re-running every live query", self.applied_version)
        self.applied_version = version
        self._recent.clear()
        if self._on_reset is not None:
            self._on_reset(version)
        while (following := self._pending.pop(self.applied_version + 1, None)) is not None:
            self._apply(following)

    # -- broker ------------------------------------------------------------------------

    async def _disconnect(self) -> None:
        broadcast, self._broadcast = self._broadcast, None
        self._connected.clear()
        if broadcast is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(broadcast.disconnect(), 2.0)

    async def _read_forever(self) -> None:
        delay = RECONNECT_MIN_S
        while True:
            try:
                await self._read_once()
                delay = RECONNECT_MIN_S
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("broker connection lost (%r); reconnecting in %.2fs", exc, delay)
            await self._disconnect()
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(RECONNECT_MAX_S, delay * 2)
            self.reconnects += 1

    def _broadcast_for(self) -> Broadcast:
        if self._url.startswith(("redis://", "rediss://")):
            return Broadcast(backend=RedisPubSubBackend(self._url))
        return Broadcast(self._url)

    async def _read_once(self) -> None:
        broadcast = self._broadcast_for()
        await asyncio.wait_for(broadcast.connect(), 5.0)
        self._broadcast = broadcast
        async with broadcast.subscribe(self._channel) as subscriber:
            self._connected.set()
            # Whatever was committed while we were not listening is in the log; and
            # what we committed while the broker was away, the others have not heard
            # of: announce our head so that they catch up too.
            self._schedule_catch_up()
            self._unannounced = False
            await self._publish(broadcast, {"head": self.applied_version})
            while True:
                event = await _next_or_failure(broadcast, subscriber)
                self._receive(orjson.loads(event.message))

    def _receive(self, message: dict[str, Any]) -> None:
        if "sig" in message:
            if self._on_signal is not None:
                self._on_signal(str(message["sig"]), message.get("p"))
            return
        if "head" in message:
            if int(message["head"]) > self.applied_version:
                self._schedule_catch_up()
            return
        self.offer(ChangeBatch.from_json(message))


async def _next_or_failure(broadcast: Broadcast, subscriber: Any) -> Any:
    """The next event, or the error that killed broadcaster's listener tasks.

    broadcaster swallows a dead connection: its listener task ends and subscribers wait
    forever. Watching those tasks (private attributes) is what lets us reconnect.
    """
    listeners = [
        t
        for t in (
            getattr(broadcast, "_listener_task", None),
            getattr(getattr(broadcast, "_backend", None), "_listener", None),
        )
        if isinstance(t, asyncio.Task)
    ]
    get = asyncio.ensure_future(subscriber.get())
    # Retrieve its outcome even when abandoned (Unsubscribed on shutdown).
    get.add_done_callback(lambda f: None if f.cancelled() else f.exception())
    done, _ = await asyncio.wait([get, *listeners], return_when=asyncio.FIRST_COMPLETED)
    if get in done:
        return get.result()
    get.cancel()
    for task in listeners:
        if task.done():
            exc = task.exception() if not task.cancelled() else None
            raise ConnectionError(f"broker listener ended: {exc!r}")
    raise ConnectionError("broker listener ended")


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s crashed", task.get_name(), exc_info=task.exception())
