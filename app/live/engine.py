"""The live engine of one process: feed in, invalidation, cohorts, deliveries out."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from graphql import GraphQLError
from sqlalchemy import select
from sqlmodel import col
from strawberry.types import ExecutionResult

from app.auth import EPOCH_COLUMN, EPOCH_TABLE, Viewer
from app.database import Database
from app.errors import INTERNAL, UNAUTHENTICATED
from app.live import changelog
from app.live.changes import ChangeBatch
from app.live.cohort import Cohort, CohortKey, RunOutcome, Subscriber
from app.live.feed import ChangeFeed
from app.live.index import InvalidationIndex, touches
from app.live.readset import ReadSet
from app.schema.models.user import User

log = logging.getLogger(__name__)

Execute = Callable[[Cohort, Viewer], Awaitable[tuple[ExecutionResult, ReadSet]]]
USER_SCOPED_MEMORY = 10_000
BaseKey = tuple[str, str, str | None, int]


SLOW_CONSUMER_CLOSE = 1013  # "Try Again Later": the client reconnects and resubscribes
EPOCH_CACHE_SIZE = 100_000


class LiveConnection:
    """The live operations of one WebSocket connection, for read-your-writes."""

    def __init__(self, close: Callable[[int, str], Awaitable[None]] | None = None) -> None:
        self.subscribers: set[Subscriber] = set()
        self._changed = asyncio.Event()
        self._close = close
        self._closing: asyncio.Task[None] | None = None

    def slow(self) -> None:
        """Close the connection of a client that stopped reading (once)."""
        if self._close is None or self._closing is not None:
            return
        log.warning("closing a slow consumer with %d live queries", len(self.subscribers))
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


class LiveEngine:
    def __init__(
        self,
        db: Database,
        broadcast_url: str,
        channel: str,
        max_pending: int,
        slow_consumer_timeout_s: float = 10.0,
        retention: int = 100_000,
    ) -> None:
        self._db = db
        self.feed = ChangeFeed(
            db,
            broadcast_url,
            channel,
            self._on_batch,
            max_pending=max_pending,
            on_reset=self._reset,
        )
        self.retention = retention
        self._prune_every = max(1, retention // 10)
        self._pruning: asyncio.Task[None] | None = None
        self.slow_consumer_timeout_s = slow_consumer_timeout_s
        # user id -> token epoch, from the database once, then kept by the change feed.
        self.epochs: OrderedDict[int, int] = OrderedDict()
        self._by_user: dict[int, set[Subscriber]] = {}
        # Operations known to ask who the user is: their cohorts are per user.
        self._user_scoped: OrderedDict[BaseKey, None] = OrderedDict()
        self.index: InvalidationIndex[CohortKey] = InvalidationIndex()
        self.cohorts: dict[CohortKey, Cohort] = {}
        self.executions = 0
        self._execute: Execute | None = None

    def live_count(self, viewer: Viewer) -> int:
        """Live operations this user holds in this process."""
        return len(self._by_user.get(viewer.user_id, ()))

    def stats(self) -> dict[str, int]:
        """Counters for operators and benchmarks: no identities, no query text."""
        return {
            "version": self.feed.applied_version,
            "executions": self.executions,
            "cohorts": len(self.cohorts),
            "subscribers": sum(len(c.subscribers) for c in self.cohorts.values()),
            "reconnects": self.feed.reconnects,
        }

    def bind(self, execute: Execute) -> None:
        self._execute = execute

    async def start(self) -> None:
        await self.feed.start()

    async def stop(self) -> None:
        for cohort in list(self.cohorts.values()):
            await cohort.stop()
        self.cohorts.clear()
        await self.feed.stop()

    async def committed(self, batch: ChangeBatch) -> None:
        await self.feed.committed(batch)
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

    def _on_batch(self, batch: ChangeBatch) -> None:
        for key in self.index.affected(batch.changes):
            cohort = self.cohorts.get(key)
            if cohort is not None:
                cohort.invalidate(batch.version)
        for change in batch.changes:
            if change.table == EPOCH_TABLE and EPOCH_COLUMN in change.new:
                self._epoch_moved(int(change.pk or 0), int(change.new[EPOCH_COLUMN] or 0))

    def _epoch_moved(self, user_id: int, epoch: int) -> None:
        if user_id in self.epochs or user_id in self._by_user:
            self.epochs[user_id] = epoch
        for subscriber in self._by_user.get(user_id, ()):
            subscriber.wake()

    async def current_epoch(self, user_id: int) -> int:
        """The user's token epoch: tokens with an older one are revoked."""
        epoch = self.epochs.get(user_id)
        if epoch is not None:
            self.epochs.move_to_end(user_id)
            return epoch
        async with self._db.read_engine.connect() as conn:
            value = await conn.scalar(select(col(User.token_epoch)).where(col(User.id) == user_id))
        epoch = self.epochs.setdefault(user_id, int(value or 0))
        while len(self.epochs) > EPOCH_CACHE_SIZE:
            self.epochs.popitem(last=False)
        return epoch

    async def _run(self, cohort: Cohort) -> RunOutcome:
        assert self._execute is not None, "LiveEngine.bind() was not called"
        started = self.feed.applied_version
        asked_who: list[bool] = []
        viewer = cohort.viewer.probed(lambda: asked_who.append(True))
        try:
            result, reads = await self._execute(cohort, viewer)
        except Exception as exc:
            log.exception("live query execution failed")
            error = GraphQLError("Internal server error", extensions={"code": INTERNAL})
            result, reads = ExecutionResult(data=None, errors=[error]), ReadSet()
            # Nothing recorded: retry on the next change to any table it may have read.
            del exc
        self.executions += 1
        if asked_who and cohort.key[4] == "workspace":
            self._split(cohort)
            return RunOutcome(result, reads, b"", started, discard=True)
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
        result.extensions = {**(result.extensions or {}), "live": {"version": started}}
        return RunOutcome(result, reads, _fingerprint(result), started)

    def _split(self, cohort: Cohort) -> None:
        """Give each subscriber of a workspace cohort a cohort of its own user."""
        base: BaseKey = cohort.key[:4]
        self._user_scoped[base] = None
        while len(self._user_scoped) > USER_SCOPED_MEMORY:
            self._user_scoped.popitem(last=False)
        for subscriber in list(cohort.subscribers):
            cohort.subscribers.discard(subscriber)
            target = self._cohort_for(
                base, cohort.query, cohort.variables, cohort.operation_name, subscriber.viewer
            )
            subscriber.cohort = target
            target.add(subscriber)
        self._drop(cohort)

    def _cohort_for(
        self,
        base: BaseKey,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        viewer: Viewer,
    ) -> Cohort:
        if base in self._user_scoped:
            key: CohortKey = (*base, "user", viewer.user_id)
        else:
            key = (*base, "workspace", viewer.workspace_id)
        cohort = self.cohorts.get(key)
        if cohort is None:
            cohort = Cohort(
                key, query, variables, operation_name, viewer, base[3], self._run, self._drop
            )
            self.cohorts[key] = cohort
            cohort.start()
        return cohort

    def _drop(self, cohort: Cohort) -> None:
        if self.cohorts.get(cohort.key) is cohort:
            del self.cohorts[cohort.key]
            self.index.unregister(cohort.key)
            task = asyncio.ensure_future(cohort.stop())
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

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
        base: BaseKey = (
            query,
            _variables_key(variables),
            operation_name,
            throttle_ms,
        )
        cohort = self._cohort_for(base, query, variables, operation_name, viewer)
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

    def _check(self, viewer: Viewer) -> ExecutionResult | None:
        """Authorization re-applied before each delivery, as the subscriber."""
        if viewer.expired:
            return _ended("Token expired")
        if self.epochs.get(viewer.user_id, viewer.token_epoch) > viewer.token_epoch:
            return _ended("Token revoked")
        return None


def _variables_key(variables: dict[str, Any] | None) -> str:
    try:
        return orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        # Integers beyond 64 bits (a Float variable may carry one): the slower encoder.
        return json.dumps(variables or {}, sort_keys=True, default=repr)


def _nothing() -> None:
    return None
