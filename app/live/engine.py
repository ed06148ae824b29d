"""The live engine of one process: feed in, invalidation, cohorts, deliveries out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from graphql import GraphQLError
from strawberry.types import ExecutionResult

from app.auth import Viewer
from app.database import Database
from app.errors import INTERNAL, UNAUTHENTICATED
from app.live.changes import ChangeBatch
from app.live.cohort import Cohort, CohortKey, RunOutcome, Subscriber
from app.live.feed import ChangeFeed
from app.live.index import InvalidationIndex, touches
from app.live.readset import ReadSet

log = logging.getLogger(__name__)

Execute = Callable[[Cohort], Awaitable[tuple[ExecutionResult, ReadSet]]]


class LiveConnection:
    """The live operations of one WebSocket connection, for read-your-writes."""

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        self._changed = asyncio.Event()

    def notify(self) -> None:
        self._changed.set()

    def pending(self, version: int) -> list[Subscriber]:
        return [
            s for s in self.subscribers if not (s.cohort.is_current(version) and s.caught_up)
        ]

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
    def __init__(self, db: Database, broadcast_url: str, channel: str, max_pending: int) -> None:
        self.feed = ChangeFeed(db, broadcast_url, channel, self._on_batch, max_pending=max_pending)
        self.index: InvalidationIndex[CohortKey] = InvalidationIndex()
        self.cohorts: dict[CohortKey, Cohort] = {}
        self.executions = 0
        self._execute: Execute | None = None

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

    def _on_batch(self, batch: ChangeBatch) -> None:
        for key in self.index.affected(batch.changes):
            cohort = self.cohorts.get(key)
            if cohort is not None:
                cohort.invalidate(batch.version)

    async def _run(self, cohort: Cohort) -> RunOutcome:
        assert self._execute is not None, "LiveEngine.bind() was not called"
        started = self.feed.applied_version
        try:
            result, reads = await self._execute(cohort)
        except Exception as exc:  # noqa: BLE001 - one failed run must not end the cohort
            log.exception("live query execution failed")
            error = GraphQLError("Internal server error", extensions={"code": INTERNAL})
            result, reads = ExecutionResult(data=None, errors=[error]), ReadSet()
            # Nothing recorded: retry on the next change to any table it may have read.
            del exc
        self.executions += 1
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
        key: CohortKey = (
            query,
            orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS).decode(),
            operation_name,
            viewer.user_id,
            throttle_ms,
        )
        cohort = self.cohorts.get(key)
        if cohort is None:
            cohort = Cohort(
                key, query, variables, operation_name, viewer, throttle_ms, self._run, self._drop
            )
            self.cohorts[key] = cohort
            cohort.start()
        notify = connection.notify if connection is not None else _nothing
        subscriber = Subscriber(cohort, viewer, notify)
        cohort.add(subscriber)
        if connection is not None:
            connection.subscribers.add(subscriber)
        return self._deliver(subscriber, connection)

    async def _deliver(
        self, subscriber: Subscriber, connection: LiveConnection | None
    ) -> AsyncIterator[ExecutionResult]:
        try:
            async for result in subscriber.results(self._check):
                yield result
        finally:
            if connection is not None:
                connection.subscribers.discard(subscriber)
                connection.notify()

    def _check(self, viewer: Viewer) -> ExecutionResult | None:
        """Authorization re-applied before each delivery, as the subscriber."""
        if viewer.expired:
            return _ended("Token expired")
        return None


def _nothing() -> None:
    return None
