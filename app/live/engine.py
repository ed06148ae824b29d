"""The live engine of one process: feed in, invalidation, cohorts, deliveries out."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from graphql import GraphQLError
from strawberry.types import ExecutionResult

from app.auth import Scope, Viewer
from app.domain import TokenEpochs
from app.errors import INTERNAL, UNAUTHENTICATED, Forbidden, Unauthenticated
from app.live import changelog
from app.live.changes import ChangeBatch
from app.live.cohort import Cohort, CohortKey, OperationKey, RunOutcome, Subscriber
from app.live.events import EventFilter, EventHub, EventStream
from app.live.feed import ChangeFeed
from app.live.index import InvalidationIndex, touches
from app.live.readset import ReadSet
from app.live.signals import SignalHub

if TYPE_CHECKING:
    from app.database import Database

log = logging.getLogger(__name__)

# Runs a cohort's operation as ``viewer``, recording what it reads into the read set
# (kept even when the run raises part-way).
Execute = Callable[[Cohort, Viewer, ReadSet], Awaitable[ExecutionResult]]
NARROWED_MEMORY = 10_000


SLOW_CONSUMER_CLOSE = 1013  # "Try Again Later": the client reconnects and resubscribes
EPOCH_CACHE_SIZE = 100_000


class LiveConnection:
    """The live operations of one WebSocket connection, for read-your-writes."""

    def __init__(self, close: Callable[[int, str], Awaitable[None]] | None = None) -> None:
        self.subscribers: set[Subscriber] = set()
        # Subscriptions (events, signals): counted against the same per-connection bound.
        self.streams = 0
        self._changed = asyncio.Event()
        self._close = close
        self._closing: asyncio.Task[None] | None = None

    def slow(self) -> None:
        """Close the connection of a client that stopped reading (once)."""
        if self._close is None or self._closing is not None:
            return
        log.warning(
            "closing a slow consumer with %d live queries and %d subscriptions",
            len(self.subscribers),
            self.streams,
        )
        for subscriber in list(self.subscribers):
            subscriber.detach()
        # The close frame waits behind what the client has not read; the live queries
        # are already released, so nothing more accumulates meanwhile.
        self._closing = asyncio.ensure_future(self._close(SLOW_CONSUMER_CLOSE, "Slow consumer"))
        self._closing.add_done_callback(lambda t: None if t.cancelled() else t.exception())

    def notify(self) -> None:
        self._changed.set()

    def forget(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        self._changed.set()

    def pending(self, version: int) -> list[Subscriber]:
        return [s for s in self.subscribers if not (s.cohort.is_current(version) and s.caught_up)]

    async def wait_caught_up(self, version: int, timeout: float) -> bool:
        """Until every live operation here has been sent a result at or past ``version``."""
        deadline = time.monotonic() + timeout
        while self.pending(version):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return not self.pending(version)
        return True


def _fingerprint(result: ExecutionResult) -> bytes:
    errors = [e.formatted for e in result.errors or ()]
    return orjson.dumps([result.data, errors])


def _ended(message: str) -> ExecutionResult:
    return ExecutionResult(
        data=None, errors=[GraphQLError(message, extensions={"code": UNAUTHENTICATED})]
    )


class LiveLimitReached(Forbidden):
    """A live operation beyond the per-connection or per-user bound."""


class LiveEngine:
    def __init__(
        self,
        db: Database,
        broadcast_url: str,
        channel: str,
        max_pending: int,
        slow_consumer_timeout_s: float = 10.0,
        retention: int = 100_000,
        *,
        epochs: TokenEpochs | None,
        max_per_connection: int = 100,
        max_per_user: int = 500,
        event_queue_max: int = 1000,
    ) -> None:
        self._db = db
        # Where the domain keeps token epochs (revocation); followed in change events.
        self._epochs = epochs
        self.feed = ChangeFeed(
            db,
            broadcast_url,
            channel,
            self._on_batch,
            max_pending=max_pending,
            on_reset=self._reset,
            on_signal=self._on_signal,
        )
        self.retention = retention
        self.max_per_connection = max_per_connection
        self.max_per_user = max_per_user
        self._prune_every = max(1, retention // 10)
        self._pruning: asyncio.Task[None] | None = None
        self.slow_consumer_timeout_s = slow_consumer_timeout_s
        # user id -> token epoch (the highest seen): from the database once, then kept by
        # the change feed. Epochs only grow, so a stale read never lowers what is known.
        self.epochs: OrderedDict[int, int] = OrderedDict()
        self._by_user: dict[int, set[Subscriber]] = {}
        # Operations known to read a narrower identity than the workspace: their scope.
        self._narrowed: OrderedDict[OperationKey, Scope] = OrderedDict()
        self.index: InvalidationIndex[CohortKey] = InvalidationIndex()
        self.cohorts: dict[CohortKey, Cohort] = {}
        # Cohorts dropped but not yet stopped: shutdown waits for them.
        self._stopping: set[asyncio.Task[None]] = set()
        self.executions = 0
        self._execute: Execute | None = None
        self.events = EventHub(db, lambda: self.feed.applied_version)
        self.signals = SignalHub()
        self.event_queue_max = event_queue_max
        self._streams_by_user: dict[int, int] = {}

    def live_count(self, viewer: Viewer) -> int:
        """Live operations this user holds in this process."""
        return len(self._by_user.get(viewer.user_id, ())) + self._streams_by_user.get(
            viewer.user_id, 0
        )

    def stats(self) -> dict[str, int]:
        """Counters for operators and benchmarks: no identities, no query text."""
        return {
            "version": self.feed.applied_version,
            "executions": self.executions,
            "cohorts": len(self.cohorts),
            "subscribers": sum(len(c.subscribers) for c in self.cohorts.values()),
            "reconnects": self.feed.reconnects,
            "event_streams": self.events.count(),
            "signal_streams": self.signals.count(),
        }

    def bind(self, execute: Execute) -> None:
        self._execute = execute

    async def start(self) -> None:
        await self.feed.start()

    async def stop(self) -> None:
        for cohort in list(self.cohorts.values()):
            self._drop(cohort)
        # Their runs may be reading the database: it is disposed of only after this.
        while self._stopping:
            await asyncio.gather(*list(self._stopping), return_exceptions=True)
        if self._pruning is not None:
            await asyncio.gather(self._pruning, return_exceptions=True)
        await self.feed.stop()

    def committed(self, batch: ChangeBatch) -> None:
        """A batch this process committed: applied here at once (see ``ChangeFeed``)."""
        self.feed.committed(batch)
        if batch.version % self._prune_every == 0 and (
            self._pruning is None or self._pruning.done()
        ):
            self._pruning = asyncio.create_task(self._prune(), name="change-log-prune")
            self._pruning.add_done_callback(lambda t: None if t.cancelled() else t.exception())

    async def _prune(self) -> None:
        """Keep the newest ``retention`` change-log entries (the catch-up window)."""
        try:
            async with self._db.write_engine.begin() as conn:
                removed = await changelog.prune(conn, self.retention)
            log.info("pruned %d change-log entries", removed)
        except Exception:
            # A busy database: the next prune point tries again.
            log.warning("change-log pruning failed", exc_info=True)

    def _reset(self, version: int) -> None:
        for cohort in self.cohorts.values():
            cohort.invalidate(version)
        self.events.reset()

    def _on_signal(self, topic: str, payload: Any) -> None:
        self.signals.dispatch(topic, payload)

    def _on_batch(self, batch: ChangeBatch) -> None:
        self.events.dispatch(batch)
        for key in self.index.affected(batch.changes):
            cohort = self.cohorts.get(key)
            if cohort is not None:
                cohort.invalidate(batch.version)
        epochs = self._epochs
        if epochs is None:
            return
        for change in batch.changes:
            if change.table == epochs.table and epochs.column in change.new:
                self._epoch_moved(int(change.pk or 0), int(change.new[epochs.column] or 0))

    def _remember_epoch(self, user_id: int, epoch: int) -> int:
        known = max(epoch, self.epochs.get(user_id, epoch))
        self.epochs[user_id] = known
        self.epochs.move_to_end(user_id)
        while len(self.epochs) > EPOCH_CACHE_SIZE:
            self.epochs.popitem(last=False)
        return known

    def _epoch_moved(self, user_id: int, epoch: int) -> None:
        # Always kept, known user or not: a read of the epoch in flight must not put
        # back the value from before this change.
        self._remember_epoch(user_id, epoch)
        for subscriber in self._by_user.get(user_id, ()):
            subscriber.wake()
        # Event streams check their subscriber's token before each event; one waiting
        # for the next event ends now instead.
        self.events.wake_all()

    async def current_epoch(self, user_id: int) -> int:
        """The user's token epoch: tokens with an older one are revoked."""
        epoch = self.epochs.get(user_id)
        if epoch is not None:
            self.epochs.move_to_end(user_id)
            return epoch
        return self._remember_epoch(user_id, await self._read_epoch(user_id))

    async def _read_epoch(self, user_id: int) -> int:
        if self._epochs is None:
            return 0
        async with self._db.read_engine.connect() as conn:
            return await self._epochs.read(conn, user_id)

    async def _run(self, cohort: Cohort) -> RunOutcome:
        assert self._execute is not None, "LiveEngine.bind() was not called"
        started = self.feed.applied_version
        asked: list[Scope] = []
        viewer = cohort.viewer.probed(asked.append)
        reads = ReadSet()
        failed = False
        try:
            result = await self._execute(cohort, viewer, reads)
        except Exception:
            log.exception("live query execution failed")
            error = GraphQLError("Internal server error", extensions={"code": INTERNAL})
            result, failed = ExecutionResult(data=None, errors=[error]), True
        self.executions += 1
        narrower = max(asked, default=cohort.key.scope)
        if narrower > cohort.key.scope:
            self._narrow(cohort, narrower)
            return RunOutcome(result, reads, b"", started, discard=True)
        failed = failed or _internal(result)
        if failed and cohort.reads is not None:
            # Partial reads: keep listening to what the last good run read as well.
            reads = _union(cohort.reads, reads)
        if cohort.key in self.cohorts:
            self.index.register(cohort.key, reads)
            # Batches applied while we ran were matched against the old read set.
            missed = self.feed.since(started)
            if missed is None:
                cohort.invalidate(self.feed.applied_version)
            else:
                for batch in missed:
                    if touches(reads, batch.changes):
                        cohort.invalidate(batch.version)
                        break
        # Stamped with what its snapshot reflects, which may be past ``started``.
        version = max(started, _live_version(result))
        result.extensions = {**(result.extensions or {}), "live": {"version": version}}
        return RunOutcome(result, reads, _fingerprint(result), version, failed=failed)

    def _narrow(self, cohort: Cohort, scope: Scope) -> None:
        """Move each subscriber of ``cohort`` to a cohort of the narrower ``scope``."""
        operation = cohort.key.operation
        self._narrowed[operation] = scope
        self._narrowed.move_to_end(operation)
        while len(self._narrowed) > NARROWED_MEMORY:
            self._narrowed.popitem(last=False)
        for subscriber in list(cohort.subscribers):
            cohort.subscribers.discard(subscriber)
            target = self._cohort_for(operation, cohort.query, cohort.variables, subscriber.viewer)
            subscriber.cohort = target
            target.add(subscriber)
        self._drop(cohort)

    def _cohort_for(
        self,
        operation: OperationKey,
        query: str,
        variables: dict[str, Any] | None,
        viewer: Viewer,
    ) -> Cohort:
        scope = self._narrowed.get(operation, Scope.TENANT)
        key = CohortKey(operation, scope, viewer.scope_id(scope))
        cohort = self.cohorts.get(key)
        if cohort is None:
            cohort = Cohort(
                key,
                query,
                variables,
                operation.operation_name,
                Viewer.principal(scope, viewer.unprobed()),
                operation.throttle_ms,
                self._run,
                self._drop,
            )
            self.cohorts[key] = cohort
            cohort.start()
        return cohort

    def _drop(self, cohort: Cohort) -> None:
        if self.cohorts.get(cohort.key) is cohort:
            del self.cohorts[cohort.key]
            self.index.unregister(cohort.key)
            task = asyncio.ensure_future(cohort.stop())
            self._stopping.add(task)
            task.add_done_callback(self._stopped)

    def _stopped(self, task: asyncio.Task[None]) -> None:
        self._stopping.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("stopping a live cohort failed", exc_info=task.exception())

    def admit(self, viewer: Viewer, connection: LiveConnection | None) -> None:
        """Refuse a live operation or subscription beyond the bounds of its connection
        or its user."""
        if (
            connection is not None
            and len(connection.subscribers) + connection.streams >= self.max_per_connection
        ):
            raise LiveLimitReached("Too many live queries on this connection")
        if self.live_count(viewer) >= self.max_per_user:
            raise LiveLimitReached("Too many live queries for this user")

    def hold(self, viewer: Viewer, connection: LiveConnection | None) -> Callable[[], None]:
        """Admit a subscription, counted until the returned release is called (once)."""
        self.admit(viewer, connection)
        user_id = viewer.user_id
        self._streams_by_user[user_id] = self._streams_by_user.get(user_id, 0) + 1
        if connection is not None:
            connection.streams += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self._streams_by_user[user_id] - 1
            if left:
                self._streams_by_user[user_id] = left
            else:
                del self._streams_by_user[user_id]
            if connection is not None:
                connection.streams -= 1

        return release

    def open_events(
        self, viewer: Viewer, connection: LiveConnection | None, event_filter: EventFilter
    ) -> EventStream:
        """A change-event stream as ``viewer``, ended when its token is no longer valid."""

        def check() -> Exception | None:
            problem = self.token_problem(viewer)
            return None if problem is None else Unauthenticated(problem)

        return self.events.open(
            event_filter,
            max_queue=self.event_queue_max,
            check=check,
            on_overflow=connection.slow if connection is not None else None,
        )

    def subscribe(
        self,
        *,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        viewer: Viewer,
        throttle_ms: int,
        connection: LiveConnection | None,
    ) -> AsyncIterator[ExecutionResult]:
        """Join (or start) the operation's cohort; raises ``LiveLimitReached``."""
        self.admit(viewer, connection)
        operation = OperationKey(query, _variables_key(variables), operation_name, throttle_ms)
        cohort = self._cohort_for(operation, query, variables, viewer)
        notify = connection.notify if connection is not None else _nothing
        subscriber = Subscriber(
            cohort,
            viewer,
            notify,
            on_slow=connection.slow if connection is not None else None,
            slow_after_s=self.slow_consumer_timeout_s,
        )
        cohort.add(subscriber)
        self._by_user.setdefault(viewer.user_id, set()).add(subscriber)
        subscriber.on_detach(self._forget)
        if connection is not None:
            connection.subscribers.add(subscriber)
            subscriber.on_detach(connection.forget)
        return subscriber.results(self._check)

    def _forget(self, subscriber: Subscriber) -> None:
        mine = self._by_user.get(subscriber.viewer.user_id)
        if mine is not None:
            mine.discard(subscriber)
            if not mine:
                del self._by_user[subscriber.viewer.user_id]

    def revoked(self, viewer: Viewer) -> bool:
        """Whether the viewer's token was revoked since it was issued (as known here)."""
        return self.epochs.get(viewer.user_id, viewer.token_epoch) > viewer.token_epoch

    def _check(self, viewer: Viewer) -> ExecutionResult | None:
        """Authorization re-applied before each delivery, as the subscriber."""
        problem = self.token_problem(viewer)
        return None if problem is None else _ended(problem)

    def token_problem(self, viewer: Viewer) -> str | None:
        """Why the subscriber's token no longer authorizes a delivery, if it doesn't."""
        if viewer.expired:
            return "Token expired"
        if self.revoked(viewer):
            return "Token revoked"
        return None


def _internal(result: ExecutionResult) -> bool:
    """An unexpected error: what the run read before it is not the whole picture."""
    return any((e.extensions or {}).get("code") == INTERNAL for e in result.errors or ())


def _union(a: ReadSet, b: ReadSet) -> ReadSet:
    return ReadSet(a.rows | b.rows, a.ranges | b.ranges, a.tables | b.tables)


def _live_version(result: ExecutionResult) -> int:
    live = (result.extensions or {}).get("live")
    return int(live["version"]) if isinstance(live, dict) else 0


def _variables_key(variables: dict[str, Any] | None) -> str:
    try:
        return orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        # Integers beyond 64 bits (a Float variable may carry one): the slower encoder.
        return json.dumps(variables or {}, sort_keys=True, default=repr)


def _nothing() -> None:
    return None
