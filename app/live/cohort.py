"""Cohorts and subscribers: one execution per identical live query, many deliveries.

A cohort is the set of live subscriptions with the same document, variables, operation
name, throttle and viewer. It runs when invalidated; invalidations that arrive while it
is queued or running fold into one more run. A result equal to the last is not sent.

Each subscriber holds only a pointer to the newest result it has not sent: a slow
consumer skips superseded results instead of queueing them, so memory stays bounded.
A subscriber that takes patches is sent the patch from the result it was sent last, or,
when it skipped one, the full result again (``app/live/patches.py``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from strawberry.types import ExecutionResult

from app import deadlines
from app.auth import Scope, Viewer
from app.live import frames
from app.live.readset import ReadSet
from app.live.wake import Wake

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.05
RETRY_MAX_S = 30.0
# How long stopping a cohort waits for its run in flight before cancelling it.
STOP_GRACE_S = 2.0


class OperationKey(NamedTuple):
    """What makes two live operations the same, whoever sends them."""

    query: str
    variables: str  # canonical JSON
    operation_name: str | None
    throttle_ms: int


class CohortKey(NamedTuple):
    """An operation at a scope: who may share its one execution (see ``Scope``)."""

    operation: OperationKey
    scope: Scope
    scope_id: Hashable


@dataclass
class RunOutcome:
    result: ExecutionResult
    reads: ReadSet
    fingerprint: bytes
    started_at_version: int
    # The run read an identity narrower than its cohort's scope: its result must not be
    # delivered; the engine has moved every subscriber to a narrower cohort.
    discard: bool = False
    # The run failed unexpectedly (an exception, or an INTERNAL error): what it read is
    # partial, so the cohort keeps its previous reads and result, and runs again later.
    failed: bool = False
    # Seconds since the epoch after which its result is wrong whatever changes (a signed
    # URL that expires); infinite for most.
    valid_until: float = math.inf
    # ``result.data`` as JSON, if the runner encoded it already.
    data_json: bytes | None = None


Runner = Callable[["Cohort"], Awaitable[RunOutcome]]
# Authorization re-applied before each delivery: an ending result, or None to go on.
Check = Callable[[Viewer], ExecutionResult | None]
# Writes one live operation's data message, holding the given payload, to its socket at
# once; False, writing nothing, when it cannot without waiting (or the operation ended).
Route = Callable[[str], bool]


class Cohort:
    def __init__(
        self,
        key: CohortKey,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        viewer: Viewer,
        throttle_ms: int,
        runner: Runner,
        on_empty: Callable[[Cohort], None],
    ) -> None:
        self.key = key
        self.query = query
        self.variables = variables
        self.operation_name = operation_name
        # Who it runs as: the principal of its scope, which never expires (each
        # subscriber's own token is checked before each delivery).
        self.viewer = viewer
        self.throttle_s = throttle_ms / 1000
        self._runner = runner
        self._on_empty = on_empty
        self.subscribers: set[Subscriber] = set()
        self.result: ExecutionResult | None = None
        self.fingerprint: bytes | None = None
        self.seq = 0
        self.runs = 0
        self.version = 0
        self.running = False
        # What the last completed run read: kept when a later run fails part-way.
        self.reads: ReadSet | None = None
        # When the last completed run's result stops being true by itself.
        self.valid_until = math.inf
        self.failures = 0
        self._retry: asyncio.TimerHandle | None = None
        self._stopped = False
        # The oldest invalidating version not yet covered by a completed run, if any.
        self.pending_since: int | None = 0
        self._late_since: int | None = None
        self._dirty = asyncio.Event()
        self._dirty.set()
        self._last_run = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="live-cohort")
        self._task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("live cohort crashed", exc_info=task.exception())
            for subscriber in list(self.subscribers):
                subscriber.fail()

    async def stop(self) -> None:
        # The flag ends the loop even if a run in flight swallows the cancellation.
        self._stopped = True
        if self._retry is not None:
            self._retry.cancel()
        if self._task is not None:
            if self.running:
                # Let a run in flight finish rather than cancel it half-way: graphql-core
                # would leave coroutines it made never awaited, holding the execution.
                await asyncio.wait([self._task], timeout=STOP_GRACE_S)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        frames.forget(self.result)

    def invalidate(self, version: int) -> None:
        if self.running:
            self._late_since = version if self._late_since is None else self._late_since
        elif self.pending_since is None:
            self.pending_since = version
        self._dirty.set()

    def is_current(self, version: int) -> bool:
        """No invalidation at or before ``version`` is waiting for a run."""
        return (self.pending_since is None or self.pending_since > version) and (
            self._late_since is None or self._late_since > version
        )

    def add(self, subscriber: Subscriber) -> None:
        self.subscribers.add(subscriber)
        if self.result is not None:
            subscriber.wake()

    def remove(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        if not self.subscribers:
            self._on_empty(self)

    async def _loop(self) -> None:
        while not self._stopped:
            await self._dirty.wait()
            if self.throttle_s:
                wait = self._last_run + self.throttle_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            self._dirty.clear()
            await self._run_once()

    async def _run_once(self) -> None:
        self.running = True
        self._late_since = None
        try:
            outcome = await self._runner(self)
        finally:
            self.running = False
        self._last_run = time.monotonic()
        self.runs += 1
        if outcome.discard or self._stopped:
            return
        if outcome.failed:
            self._failed(outcome)
            return
        self.failures = 0
        self.reads = outcome.reads
        self.valid_until = outcome.valid_until
        self.version = outcome.started_at_version
        self.pending_since = self._late_since
        self._late_since = None
        if outcome.fingerprint != self.fingerprint:
            self.fingerprint = outcome.fingerprint
            previous = self.result
            # The patch is made once here for all who take patches, and only if one does.
            patched = any(subscriber.patches for subscriber in self.subscribers)
            frames.remember(outcome.result, previous if patched else None, outcome.data_json)
            frames.forget(previous)
            self.result = outcome.result
            self.seq += 1
            for subscriber in self.subscribers:
                subscriber.deliver()
        for subscriber in self.subscribers:
            subscriber.settled()

    def _failed(self, outcome: RunOutcome) -> None:
        """Keep what was delivered and stay pending; run again after a bounded backoff.

        A first run that fails has nothing to keep: its error is delivered, so the
        client is not left waiting, and replaced by the first result that succeeds.
        """
        if self._late_since is not None:
            self.pending_since = min(self.pending_since or self._late_since, self._late_since)
        self._late_since = None
        if self.result is None:
            self.fingerprint = outcome.fingerprint
            self.result = outcome.result
            self.seq += 1
            for subscriber in self.subscribers:
                subscriber.wake()
        delay = min(RETRY_MAX_S, RETRY_MIN_S * 2**self.failures)
        self.failures += 1
        log.warning("live query run failed; retrying in %.2fs", delay)
        self._retry = asyncio.get_running_loop().call_later(delay, self._dirty.set)


class SubscriberState(enum.Enum):
    ACTIVE = "active"
    ENDED = "ended"


class Subscriber:
    """One live operation of one client; yields its cohort's newest results."""

    # One per live subscription, thousands per process: slots, not a dict each.
    __slots__ = (
        "_check",
        "_failed",
        "_notify",
        "_on_detach",
        "_on_slow",
        "_revision",
        "_sent_serial",
        "_slow_after_s",
        "_wake",
        "cohort",
        "patches",
        "route",
        "sent_seq",
        "state",
        "viewer",
        "waiting_since",
    )

    def __init__(
        self,
        cohort: Cohort,
        viewer: Viewer,
        notify: Callable[[], None],
        on_slow: Callable[[], None] | None = None,
        slow_after_s: float = 10.0,
        patches: bool = False,
        route: Route | None = None,
    ) -> None:
        self.cohort = cohort
        self.patches = patches
        self.route = route
        # Authorization re-applied before each delivery (given to ``results``).
        self._check: Check | None = None
        # A patch subscriber's last result sent (its prepared serial) and its revision.
        self._sent_serial: int | None = None
        self._revision = 0
        self.viewer = viewer
        self._on_slow = on_slow
        self._slow_after_s = slow_after_s
        self.sent_seq = 0
        self.state = SubscriberState.ACTIVE
        self._notify = notify
        self._wake = Wake()
        self._failed = False
        self.waiting_since: float | None = None
        self._on_detach: list[Callable[[Subscriber], None]] = []

    def on_detach(self, callback: Callable[[Subscriber], None]) -> None:
        self._on_detach.append(callback)

    def detach(self) -> None:
        """Leave the cohort and release everything held for this subscriber (idempotent).

        Called when the operation ends, and for a slow consumer while its last send is
        still blocked: what it holds is freed at once, not when the socket unblocks.
        """
        if self.state is SubscriberState.ENDED:
            return
        self.state = SubscriberState.ENDED
        self.cohort.remove(self)
        for callback in self._on_detach:
            callback(self)
        self._notify()

    def wake(self) -> None:
        # A newer result while the last one is still being sent: if that send has been
        # stuck too long, the client is not reading and the connection is closed.
        since = self.waiting_since
        stuck = since is not None and time.monotonic() - since > self._slow_after_s
        if stuck and self._on_slow is not None:
            self._on_slow()
        self._wake.set()

    def deliver(self) -> None:
        """The cohort has a new result: written to the socket here and now when it can
        be, else sent by this subscriber's own task through the transport."""
        if self.route is None or not self._write_now():
            self.wake()

    def _write_now(self) -> bool:
        """Send the cohort's result past the transport's per-message layers, as the
        task would have sent it, if nothing needs the task: not the first result (the
        transport checks that one), no send of this operation in flight (which keeps
        the operation's order and the slow-consumer clock), the token still good and a
        prepared payload to send. The route refuses when the socket would make it wait."""
        check = self._check
        if (
            self.sent_seq == 0
            or self.waiting_since is not None
            or self._failed
            or self.state is SubscriberState.ENDED
            or check is None
            or self.route is None
        ):
            return False
        result = self.cohort.result
        prepared = frames.prepared(result) if result is not None else None
        if prepared is None or not prepared.extensions or check(self.viewer) is not None:
            return False
        if not self.patches:
            if not self.route(prepared.payload):
                return False
        else:
            follows = prepared.base is not None and prepared.base == self._sent_serial
            revision = self._revision + 1 if follows else 1
            if not self.route(frames.Delivery(prepared, revision).payload()):
                return False
            self._revision = revision
            self._sent_serial = prepared.serial
        self.sent_seq = self.cohort.seq
        return True

    def settled(self) -> None:
        self._notify()

    def fail(self) -> None:
        self._failed = True
        self._wake.set()

    @property
    def ended(self) -> bool:
        # A property, not an inline comparison: detach() may run while we are suspended.
        return self.state is SubscriberState.ENDED

    @property
    def caught_up(self) -> bool:
        return self.sent_seq >= self.cohort.seq

    async def results(self, check: Check) -> AsyncIterator[ExecutionResult]:
        """Newest results until the client completes, or ``check`` ends it (auth)."""
        self._check = check
        # One wake-up at the token's expiry instead of a timeout on every wait: this loop
        # runs once per delivery per subscriber, the hottest path of a fan-out. On the
        # loop's shared timer, not one each: every idle subscription holds its own.
        expiry = deadlines.call_at(self.viewer.expires_at, self.wake)
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                ending = check(self.viewer)
                if ending is not None:
                    yield ending
                    return
                if self._failed:
                    raise RuntimeError("live query failed")
                if self.ended:
                    return
                result = self.cohort.result
                if result is None or self.cohort.seq <= self.sent_seq:
                    continue
                seq = self.cohort.seq
                self.waiting_since = time.monotonic()
                yield self._patched(result) if self.patches else result
                # Resumed: the transport has sent the result.
                self.waiting_since = None
                self.sent_seq = seq
                if self.ended:
                    return
                self._notify()
        finally:
            expiry.cancel()
            self.detach()

    def _patched(self, result: ExecutionResult) -> ExecutionResult:
        """The patch from the result this subscriber was sent last or, when it skipped
        one (or was sent none), the full result at revision 1."""
        prepared = frames.prepared(result)
        if prepared is None:
            # Errors, sent as they are. The cohort's next result has no patch from this
            # one, so it goes in full.
            return result
        if prepared.base is not None and prepared.base == self._sent_serial:
            self._revision += 1
        else:
            self._revision = 1
        self._sent_serial = prepared.serial
        delivery = frames.Delivery(prepared, self._revision)
        # The transport puts ``data`` in the message payload as it is; the view's
        # encoder writes out the payload that the delivery stands for.
        return ExecutionResult(data=cast(dict[str, Any], delivery), errors=None)
