"""The live engine of one process: feed in, invalidation, cohorts, deliveries out."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from graphql import GraphQLError
from strawberry.types import ExecutionResult

from app.auth import Scope, Viewer
from app.domain import TokenEpochs
from app.errors import INTERNAL, UNAUTHENTICATED, Unauthenticated
from app.live.batches import Batches, Opener
from app.live.changes import ChangeBatch
from app.live.cohort import Cohort, CohortKey, OperationKey, Route, RunOutcome, Subscriber
from app.live.connection import Admission, LiveConnection
from app.live.encoding import SharedJSON
from app.live.events import EventFilter, EventHub, EventStream
from app.live.feed import ChangeFeed
from app.live.index import InvalidationIndex, touches
from app.live.plain import PlainOperations
from app.live.pruning import ChangeLogPruner
from app.live.querycache import QueryCache
from app.live.readset import ReadSet
from app.live.revocation import Revocation
from app.live.signals import SignalHub

if TYPE_CHECKING:
    from app.database import Database

log = logging.getLogger(__name__)

# Runs a cohort's operation as ``viewer``, recording what it reads into the read set
# (kept even when the run raises part-way), over what its batch shares (``Opener``).
Execute = Callable[[Cohort, Viewer, ReadSet, Any], Awaitable[ExecutionResult]]
# The digest of an operation's plain form (its document without ``@live``, its variables
# and operation name), or None if it has none: made by the schema, which parses.
PlainDigest = Callable[[str, dict[str, Any] | None, str | None], bytes | None]
NARROWED_MEMORY = 10_000


def _encoded(result: ExecutionResult, encoder: SharedJSON) -> tuple[bytes, bytes]:
    """What tells a result from the last (its fingerprint), and its data's JSON: the
    data is encoded once, for both and for its prepared payload (``frames.remember``).
    JSON holds no NUL byte, so a result with errors never collides with one without."""
    data = encoder.dumps(result.data)
    if not result.errors:
        return data, data
    return data + b"\0" + orjson.dumps([e.formatted for e in result.errors]), data


def _ended(message: str) -> ExecutionResult:
    return ExecutionResult(
        data=None, errors=[GraphQLError(message, extensions={"code": UNAUTHENTICATED})]
    )


class LiveEngine:
    """Cohorts of live queries: started on the first subscriber, re-run when a change
    touches what they read, stopped with the last subscriber."""

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
        batch_max: int = 500,
        query_cache_max_bytes: int | None = None,
    ) -> None:
        self.feed = ChangeFeed(
            db,
            broadcast_url,
            channel,
            self._on_batch,
            max_pending=max_pending,
            on_reset=self._reset,
            on_signal=self._on_signal,
        )
        self.pruner = ChangeLogPruner(db, retention)
        self.admission = Admission(max_per_connection, max_per_user)
        self.revocation = Revocation(db, epochs, self._epoch_moved)
        self.slow_consumer_timeout_s = slow_consumer_timeout_s
        # Operations known to read a narrower identity than the workspace: their scope.
        self._narrowed: OrderedDict[OperationKey, Scope] = OrderedDict()
        self.index: InvalidationIndex[CohortKey] = InvalidationIndex()
        self.cohorts: dict[CohortKey, Cohort] = {}
        # Cohorts dropped but not yet stopped: shutdown waits for them.
        self._stopping: set[asyncio.Task[None]] = set()
        self.executions = 0
        self._execute: Execute | None = None
        self._batches: Batches[ExecutionResult] | None = None
        self.batch_max = batch_max
        self.events = EventHub(db, lambda: self.feed.applied_version)
        self.signals = SignalHub()
        self.event_queue_max = event_queue_max
        # Plain query results, evicted as batches are applied (None: not cached).
        self.query_cache = (
            QueryCache(query_cache_max_bytes) if query_cache_max_bytes is not None else None
        )
        # Live operations by their plain form, whose current cohorts answer plain queries.
        self.plain_operations = PlainOperations()
        self._plain_digest: PlainDigest | None = None
        # No cohort answers a plain query until this version is applied here (a write
        # answered before it was applied here may have touched any of them).
        self._plain_after = 0
        # The JSON of results' parts that a batch's runs share, made once for all.
        self._json = SharedJSON()

    def stats(self) -> dict[str, int]:
        """Counters for operators and benchmarks: no identities, no query text."""
        cache = self.query_cache.stats() if self.query_cache is not None else {}
        return {
            "version": self.feed.applied_version,
            "executions": self.executions,
            "cohorts": len(self.cohorts),
            "subscribers": sum(len(c.subscribers) for c in self.cohorts.values()),
            "batches": self._batches.batches if self._batches else 0,
            "reconnects": self.feed.reconnects,
            "change_head_reads": self.feed.head_reads,
            "event_streams": self.events.count(),
            "signal_streams": self.signals.count(),
            **cache,
        }

    def bind(
        self, execute: Execute, opener: Opener | None = None, plain: PlainDigest | None = None
    ) -> None:
        """How a cohort runs, what the runs of one tenant's batch share, and how its
        operation's plain form is digested (both kept when only the execution is bound
        again)."""
        self._execute = execute
        if opener is not None:
            self._batches = Batches(opener, self.batch_max)
        if plain is not None:
            self._plain_digest = plain

    def idle(self) -> bool:
        """No live run is waiting for its batch or running."""
        return self._batches is None or self._batches.idle()

    async def start(self) -> None:
        await self.feed.start()

    async def stop(self) -> None:
        for cohort in list(self.cohorts.values()):
            self._drop(cohort)
        # Their runs may be reading the database: it is disposed of only after this.
        while self._stopping:
            await asyncio.gather(*list(self._stopping), return_exceptions=True)
        if self._batches is not None:
            await self._batches.join()
        await self.pruner.stop()
        await self.feed.stop()

    def committed(self, batch: ChangeBatch) -> None:
        """A batch this process committed: applied here at once (see ``ChangeFeed``)."""
        self.feed.committed(batch)
        self.pruner.committed(batch.version)

    def _reset(self, version: int) -> None:
        self.drop_cached_results()
        for cohort in self.cohorts.values():
            cohort.invalidate(version)
        self.events.reset()

    def drop_cached_results(self, until: int = 0) -> None:
        """Forget every cached query result, and those of the runs on their way; answer
        no plain query from a cohort until version ``until`` is applied here."""
        if self.query_cache is not None:
            self.query_cache.clear()
        self._plain_after = max(self._plain_after, until)

    def current_cohort(
        self, form: bytes, viewer: Viewer, scope: Scope, now: float
    ) -> Cohort | None:
        """A cohort whose result answers ``viewer``'s plain query of plain form ``form``
        as its own run would, if one is current: one of ``viewer``'s at the scope that
        the operation is known to read (at least ``scope``), never at the token's."""
        applied = self.feed.applied_version
        if applied < self._plain_after:
            return None
        for operation in self.plain_operations.operations(form):
            needed = max(scope, self._narrowed.get(operation, Scope.TENANT))
            if needed is Scope.TOKEN:
                continue
            cohort = self.cohorts.get(CohortKey(operation, needed, viewer.scope_id(needed)))
            if cohort is not None and _answers(cohort, applied, now):
                return cohort
        return None

    def _on_signal(self, topic: str, payload: Any) -> None:
        self.signals.dispatch(topic, payload)

    def _on_batch(self, batch: ChangeBatch) -> None:
        # Synchronously, as the batch is applied: once its version is applied here, no
        # cached result that it touches is left to serve.
        self._json.clear()
        if self.query_cache is not None:
            self.query_cache.evict(batch.changes)
        self.events.dispatch(batch)
        for key in self.index.affected(batch.changes):
            cohort = self.cohorts.get(key)
            if cohort is not None:
                cohort.invalidate(batch.version)
        self.revocation.follow(batch)

    def _epoch_moved(self, user_id: int) -> None:
        for subscriber in self.admission.subscribers_of(user_id):
            subscriber.wake()
        # Event streams check their subscriber's token before each event; one waiting
        # for the next event ends now instead.
        self.events.wake_all()

    async def _run(self, cohort: Cohort) -> RunOutcome:
        execute, batches = self._execute, self._batches
        assert execute is not None and batches is not None, "LiveEngine.bind() was not called"
        started = self.feed.applied_version
        asked: list[Scope] = []
        viewer = cohort.viewer.probed(asked.append)
        reads = ReadSet()
        failed = False
        try:
            result = await batches.run(
                cohort.viewer.workspace_id,
                lambda shared: execute(cohort, viewer, reads, shared),
            )
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
        valid_until = _valid_until(result)
        result.extensions = {**(result.extensions or {}), "live": {"version": version}}
        fingerprint, data = _encoded(result, self._json)
        return RunOutcome(
            result,
            reads,
            fingerprint,
            version,
            failed=failed,
            valid_until=valid_until,
            data_json=data,
        )

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
            plain = self._plain_digest
            if plain is not None:
                self.plain_operations.started(
                    operation, lambda: plain(query, variables, operation.operation_name)
                )
            cohort.start()
        return cohort

    def _drop(self, cohort: Cohort) -> None:
        if self.cohorts.get(cohort.key) is cohort:
            del self.cohorts[cohort.key]
            self.index.unregister(cohort.key)
            self.plain_operations.stopped(cohort.key.operation)
            task = asyncio.ensure_future(cohort.stop())
            self._stopping.add(task)
            task.add_done_callback(self._stopped)

    def _stopped(self, task: asyncio.Task[None]) -> None:
        self._stopping.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("stopping a live cohort failed", exc_info=task.exception())

    def open_events(
        self, viewer: Viewer, connection: LiveConnection | None, event_filter: EventFilter
    ) -> EventStream:
        """A change-event stream as ``viewer``, ended when its token is no longer valid."""

        def check() -> Exception | None:
            problem = self.revocation.token_problem(viewer)
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
        route: Route | None = None,
    ) -> AsyncIterator[ExecutionResult]:
        """Join (or start) the operation's cohort; raises ``LiveLimitReached``.
        ``route``, if the transport has one, writes this operation's results straight
        to its socket when it can (``Subscriber.deliver``)."""
        self.admission.admit(viewer, connection)
        operation = OperationKey(query, _variables_key(variables), operation_name, throttle_ms)
        cohort = self._cohort_for(operation, query, variables, viewer)
        notify = connection.notify if connection is not None else _nothing
        subscriber = Subscriber(
            cohort,
            viewer,
            notify,
            on_slow=connection.slow if connection is not None else None,
            slow_after_s=self.slow_consumer_timeout_s,
            patches=connection is not None and connection.patches,
            route=route,
        )
        cohort.add(subscriber)
        self.admission.track(subscriber, connection)
        return subscriber.results(self._check)

    def _check(self, viewer: Viewer) -> ExecutionResult | None:
        """Authorization re-applied before each delivery, as the subscriber."""
        problem = self.revocation.token_problem(viewer)
        return None if problem is None else _ended(problem)


def _internal(result: ExecutionResult) -> bool:
    """An unexpected error: what the run read before it is not the whole picture."""
    return any((e.extensions or {}).get("code") == INTERNAL for e in result.errors or ())


def _union(a: ReadSet, b: ReadSet) -> ReadSet:
    return ReadSet(a.rows | b.rows, a.ranges | b.ranges, a.tables | b.tables)


def _live_version(result: ExecutionResult) -> int:
    live = (result.extensions or {}).get("live")
    return int(live["version"]) if isinstance(live, dict) else 0


def _valid_until(result: ExecutionResult) -> float:
    """When the run's result stops being true whatever is written (a signed URL it
    carries expires); infinite for most."""
    live = (result.extensions or {}).get("live")
    return float(live.get("validUntil", math.inf)) if isinstance(live, dict) else math.inf


def _answers(cohort: Cohort, applied: int, now: float) -> bool:
    """The cohort's result is what a plain run would answer now: it reflects every
    change applied here, has no errors, and holds until after ``now``."""
    result = cohort.result
    return (
        result is not None
        and not cohort.running
        and cohort.is_current(applied)
        and cohort.reads is not None
        and cohort.valid_until > now
        and not result.errors
        and isinstance(result.data, dict)
        and (result.extensions or {}).keys() <= {"live"}
    )


def _variables_key(variables: dict[str, Any] | None) -> str:
    try:
        return orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        # Integers beyond 64 bits (a Float variable may carry one): the slower encoder.
        return json.dumps(variables or {}, sort_keys=True, default=repr)


def _nothing() -> None:
    return None
