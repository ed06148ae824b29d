"""The runner: claims due jobs, runs them, records the outcome; fires cron jobs.

One runner per server process. On SQLite there is one process, and ``BEGIN IMMEDIATE``
serializes claims. On PostgreSQL any number of processes claim with
``FOR UPDATE SKIP LOCKED``: each due row goes to one claimant, the others pass it by.

Delivery guarantees, and what gives them:

- A mutation job runs exactly once. Its transaction first locks its own job row and
  marks it DONE, checking that the claim (a token per attempt) is still its own; then
  the function's writes follow. Both commit together or not at all. A runner that dies
  mid-job leaves the job RUNNING with a lease; once the lease expires another claim
  retries it, and the dead attempt, if it ever reached COMMIT, would find the claim
  changed and roll back. Internal errors are retried with exponential backoff up to
  ``max_attempts``; an expected error (``AppError``) fails the job at once.
- An action runs at most once. Its claim is committed (RUNNING) before it starts; a
  live runner extends the lease with a heartbeat; a job found RUNNING with an expired
  lease is marked FAILED, never run again.
- A cron fire is one row keyed by (cron name, fire time), unique: however many
  processes see the fire, one inserts it. Fires missed while no process ran are
  skipped, as in Convex.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson
from croniter import croniter
from sqlalchemy import and_, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from app import tenancy
from app.columns import utcnow
from app.errors import AppError
from app.jobs.context import ActionContext, JobContext
from app.scheduled.functions import CronJob, Functions, JobFunction, UnknownFunction
from app.scheduled.table import JobKind, JobStatus, ScheduledJob
from app.services import Services
from app.settings import Settings
from app.transaction import transact
from app.tx import Tx

log = logging.getLogger(__name__)
T = TypeVar("T")
Clock = Callable[[], datetime]
MAX_ERROR = 1000


class LeaseLost(Exception):
    """The job's claim is no longer this attempt's: another runner took it over."""


@dataclass(frozen=True)
class RunnerConfig:
    poll_s: float = 0.5
    lease_s: float = 30.0
    batch: int = 50
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0
    action_timeout_s: float = 30.0
    stop_timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RunnerConfig:
        return cls(
            poll_s=settings.scheduler_poll_s,
            lease_s=settings.scheduler_lease_s,
            batch=settings.scheduler_batch,
            max_attempts=settings.scheduler_max_attempts,
            backoff_base_s=settings.scheduler_backoff_base_s,
            backoff_max_s=settings.scheduler_backoff_max_s,
            action_timeout_s=settings.action_timeout_s,
        )


@dataclass(frozen=True)
class Claimed:
    """A job this runner holds: what it needs to run it, and the claim that proves it."""

    id: int
    function: str
    kind: str
    args: str
    workspace_id: int | None
    attempts: int
    claim: str


class Runner:
    def __init__(
        self,
        services: Services,
        config: RunnerConfig | None = None,
        *,
        functions: Functions | None = None,
        clock: Clock = utcnow,
        worker: str | None = None,
    ) -> None:
        self.services = services
        # The application's functions, unless given (a test's own).
        self.functions = functions or services.application.functions
        self.config = config or RunnerConfig()
        self.clock = clock
        self.worker = worker or uuid.uuid4().hex[:12]
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._cron_seen: dict[str, datetime] = {}
        self.completed = 0

    # -- life cycle -------------------------------------------------------------

    def prime_crons(self) -> None:
        """Start counting cron fires from now: fires before this are not this runner's."""
        self._cron_seen = {job.name: self._previous_fire(job) for job in self.functions.crons()}

    async def start(self) -> None:
        self.prime_crons()
        self._task = asyncio.create_task(self._loop(), name=f"job-runner-{self.worker}")
        self._task.add_done_callback(_report_crash)

    async def stop(self) -> None:
        """Stop claiming; let jobs in hand finish (bounded), then cancel the rest.

        A cancelled mutation rolls back and is retried after its lease; a cancelled
        action is marked FAILED after its lease (it may have had effects).
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.config.stop_timeout_s)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Look for due jobs now (a local commit scheduled one)."""
        self._wake.set()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            ran = 0
            try:
                await self.fire_crons()
                ran = await self.run_due()
            except Exception:
                # The loop outlives a failed pass (a database restart, say): the next
                # poll tries again. Each job's own failures are recorded on the job.
                log.exception("job runner pass failed")
            if ran >= self.config.batch:
                continue
            await self._idle(await self._until_next_due())

    async def _idle(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(seconds, 0.0))

    async def _until_next_due(self) -> float:
        poll = self.config.poll_s
        try:
            async with self.services.db.reading() as session:
                tenancy.unscoped(session.sync_session)  # the job table is no tenant's
                statement = select(func.min(col(ScheduledJob.run_at))).where(
                    col(ScheduledJob.status) == JobStatus.PENDING
                )
                next_due = (await session.exec(statement)).first()
        except Exception:
            log.exception("could not read the next due job")
            return poll
        if next_due is None:
            return poll
        return min(poll, (next_due - self.clock()).total_seconds())

    # -- one pass ---------------------------------------------------------------

    async def run_due(self) -> int:
        """Claim the due jobs (up to a batch) and run them; return how many were claimed."""
        jobs = await self.claim()
        if jobs:
            await asyncio.gather(*(self._run(job) for job in jobs))
        return len(jobs)

    async def claim(self) -> list[Claimed]:
        now = self.clock()
        config = self.config

        async def body(tx: Tx) -> list[Claimed]:
            due = or_(
                and_(
                    col(ScheduledJob.status) == JobStatus.PENDING,
                    col(ScheduledJob.run_at) <= now,
                ),
                and_(
                    col(ScheduledJob.status) == JobStatus.RUNNING,
                    col(ScheduledJob.lease_until) < now,
                ),
            )
            statement = (
                select(ScheduledJob)
                .where(due)
                .order_by(col(ScheduledJob.run_at), col(ScheduledJob.id))
                .limit(config.batch)
            )
            if tx.locks_rows:
                statement = statement.with_for_update(skip_locked=True)
            claimed: list[Claimed] = []
            for job in (await tx.session.exec(statement)).all():
                if job.status == JobStatus.RUNNING and (
                    job.kind == JobKind.ACTION or job.attempts >= config.max_attempts
                ):
                    # The attempt may have had effects: an action never runs twice.
                    _finish(job, JobStatus.FAILED, "lease expired while running", now)
                    tx.add(job)
                    continue
                job.status = JobStatus.RUNNING
                job.attempts += 1
                job.claim = uuid.uuid4().hex
                job.lease_until = now + timedelta(seconds=config.lease_s)
                tx.add(job)
                assert job.id is not None
                claimed.append(
                    Claimed(
                        job.id,
                        job.function,
                        job.kind,
                        job.args,
                        job.workspace_id,
                        job.attempts,
                        job.claim,
                    )
                )
            return claimed

        return await self.transact(body, None)

    async def _run(self, job: Claimed) -> None:
        try:
            spec = self.functions.lookup(job.function)
        except UnknownFunction:
            await self._record(job, JobStatus.FAILED, f"unknown function {job.function}")
            return
        args: dict[str, Any] = orjson.loads(job.args)
        if job.kind == JobKind.MUTATION:
            await self._run_mutation(job, spec, args)
        else:
            await self._run_action(job, spec, args)

    async def _run_mutation(self, job: Claimed, spec: JobFunction, args: dict[str, Any]) -> None:
        ctx = JobContext(self.services, job.id, job.workspace_id)

        async def body(tx: Tx) -> None:
            # First: lock our job row and record completion; the writes follow, and both
            # commit together or not at all.
            await self._complete(tx, job, JobStatus.DONE, None)
            await spec.fn(ctx, tx, **args)

        try:
            async with self._heartbeat(job):
                await self.transact(body, job.workspace_id)
            self.completed += 1
        except LeaseLost:
            log.warning("job %s: lease lost, another runner has it", job.id)
        except AppError as exc:
            # Expected errors are the function's answer; retrying would give the same.
            await self._give_up(job, spec, args, exc)
        except Exception as exc:
            # Anything else is internal (a database hiccup, a bug): retried with backoff
            # and recorded on the job, never allowed to stop the runner.
            if job.attempts >= self.config.max_attempts:
                await self._give_up(job, spec, args, exc)
            else:
                log.warning("job %s failed (attempt %d), retrying", job.id, job.attempts)
                await self._retry(job, exc)

    async def _run_action(self, job: Claimed, spec: JobFunction, args: dict[str, Any]) -> None:
        ctx = ActionContext(self.services, job.id, job.workspace_id, self)
        timeout = spec.timeout_s or self.config.action_timeout_s
        status, error = JobStatus.DONE, None
        try:
            async with self._heartbeat(job), asyncio.timeout(timeout):
                await spec.fn(ctx, **args)
            self.completed += 1
        except TimeoutError:
            status, error = JobStatus.FAILED, f"timed out after {timeout}s"
        except Exception as exc:
            # An action's failure is its outcome (a dependency is down): recorded, not
            # retried, since it may already have had effects.
            log.info("action job %s failed: %r", job.id, exc)
            status, error = JobStatus.FAILED, repr(exc)
        await self._record(job, status, error)

    # -- recording outcomes -----------------------------------------------------

    async def _complete(self, tx: Tx, job: Claimed, status: JobStatus, error: str | None) -> None:
        row = await tx.get(ScheduledJob, job.id)
        if row is None or row.status != JobStatus.RUNNING or row.claim != job.claim:
            raise LeaseLost(job.id)
        _finish(row, status, error, self.clock())
        tx.add(row)

    async def _record(self, job: Claimed, status: JobStatus, error: str | None) -> None:
        async def body(tx: Tx) -> None:
            await self._complete(tx, job, status, error)

        with contextlib.suppress(LeaseLost):
            await self.transact(body, None)

    async def _retry(self, job: Claimed, exc: BaseException) -> None:
        delay = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (job.attempts - 1))

        async def body(tx: Tx) -> None:
            row = await tx.get(ScheduledJob, job.id)
            if row is None or row.status != JobStatus.RUNNING or row.claim != job.claim:
                raise LeaseLost(job.id)
            row.status = JobStatus.PENDING
            row.run_at = self.clock() + timedelta(seconds=delay)
            row.claim = row.lease_until = None
            row.error = repr(exc)[:MAX_ERROR]
            tx.add(row)

        with contextlib.suppress(LeaseLost):
            await self.transact(body, None)

    async def _give_up(
        self, job: Claimed, spec: JobFunction, args: dict[str, Any], exc: BaseException
    ) -> None:
        error = repr(exc)
        hook = spec.on_failed
        if hook is not None:
            ctx = JobContext(self.services, job.id, job.workspace_id)

            async def body(tx: Tx) -> None:
                await self._complete(tx, job, JobStatus.FAILED, error)
                await hook(ctx, tx, **args)

            try:
                await self.transact(body, job.workspace_id)
                return
            except LeaseLost:
                return
            except Exception:
                log.exception("job %s: its on_failed hook failed", job.id)
        await self._record(job, JobStatus.FAILED, error)

    @asynccontextmanager
    async def _heartbeat(self, job: Claimed) -> AsyncIterator[None]:
        beat = asyncio.create_task(self._beat(job), name=f"job-heartbeat-{job.id}")
        try:
            yield
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _beat(self, job: Claimed) -> None:
        """Extend the lease while the job runs: only a dead runner's lease expires."""
        table = ScheduledJob.__table__  # type: ignore[attr-defined]
        while True:
            await asyncio.sleep(self.config.lease_s / 3)
            try:
                # Not a captured write: the lease is bookkeeping no live query reads.
                async with self.services.db.write_engine.begin() as conn:
                    await conn.execute(
                        update(table)
                        .where(table.c.id == job.id, table.c.claim == job.claim)
                        .values(lease_until=self.clock() + timedelta(seconds=self.config.lease_s))
                    )
            except Exception:
                log.exception("job %s: heartbeat failed", job.id)

    # -- cron -------------------------------------------------------------------

    def _previous_fire(self, job: CronJob) -> datetime:
        previous: datetime = croniter(job.schedule, self.clock()).get_prev(datetime)
        return previous

    async def fire_crons(self) -> int:
        """Insert the job of every cron fire due since the last look; return how many."""
        fired = 0
        for job in self.functions.crons():
            previous = self._previous_fire(job)
            seen = self._cron_seen.get(job.name)
            self._cron_seen[job.name] = previous
            if seen is not None and previous > seen and await self._insert_fire(job, previous):
                fired += 1
        if fired:
            self.wake()
        return fired

    async def _insert_fire(self, job: CronJob, fire: datetime) -> bool:
        row = ScheduledJob(
            function=job.function.name,
            kind=job.function.kind or JobKind.MUTATION,
            run_at=fire,
            dedupe_key=f"cron:{job.name}:{fire.isoformat()}",
        )

        async def body(tx: Tx) -> bool:
            async def insert() -> None:
                tx.add(row)
                await tx.flush()

            try:
                await tx.nested(insert)
            except IntegrityError:
                return False  # another process inserted this fire first
            return True

        inserted: bool = await self.transact(body, None)
        return inserted

    # -- transactions -------------------------------------------------------------

    async def transact(self, body: Callable[[Tx], Awaitable[T]], workspace_id: int | None) -> T:
        """One captured write transaction; its changes reach live queries after COMMIT."""
        services = self.services
        result, batch = await transact(
            services.db,
            body,
            workspace_id=workspace_id,
            retries=services.settings.transaction_retries,
        )
        if batch is not None:
            services.live.committed(batch)
        return result


def _finish(job: ScheduledJob, status: JobStatus, error: str | None, now: datetime) -> None:
    job.status = status
    job.error = error[:MAX_ERROR] if error else job.error
    job.finished_at = now
    job.lease_until = None


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("job runner stopped", exc_info=task.exception())
