"""Scheduling and cancelling inside the caller's transaction: atomic with its writes.

The job row is an ordinary captured insert in the mutation's own transaction, so a
mutation that rolls back schedules nothing, and one that commits has its job stored
before anyone hears of the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlmodel import select

from app.columns import utcnow
from app.scheduled.functions import function_of
from app.scheduled.table import JobStatus, ScheduledJob
from app.tenancy import TENANT_KEY

if TYPE_CHECKING:
    from app.tx import Tx


def due_time(
    run_after: float | timedelta | None, run_at: datetime | None, now: datetime
) -> datetime:
    if (run_after is None) == (run_at is None):
        raise TypeError("give exactly one of run_after or run_at")
    if run_at is not None:
        if run_at.tzinfo is None:
            raise TypeError("run_at must be timezone-aware")
        return run_at
    delay = run_after if isinstance(run_after, timedelta) else timedelta(seconds=run_after or 0)
    if delay < timedelta(0):
        raise TypeError("run_after must not be negative")
    return now + delay


def encode_args(args: Mapping[str, Any]) -> str:
    try:
        return orjson.dumps(dict(args)).decode()
    except TypeError as exc:
        raise TypeError(f"job arguments must be JSON values: {exc}") from None


async def schedule(
    tx: Tx,
    fn: Callable[..., Any],
    *,
    run_after: float | timedelta | None,
    run_at: datetime | None,
    args: Mapping[str, Any],
) -> int:
    spec = function_of(fn)
    if spec.kind is None:
        raise TypeError(f"{spec.name} is a query: only mutations and actions are scheduled")
    tenant = tx.session.sync_session.info.get(TENANT_KEY)
    job = ScheduledJob(
        function=spec.name,
        kind=spec.kind,
        args=encode_args(args),
        run_at=due_time(run_after, run_at, utcnow()),
        workspace_id=tenant if isinstance(tenant, int) else None,
    )
    tx.add(job)
    await tx.flush()
    assert job.id is not None
    return job.id


async def cancel(tx: Tx, job_id: int) -> bool:
    """Cancel a job that has not started; False if it started, finished or is gone.

    A job being claimed or run right now is skipped, not waited for: waiting here while
    holding the caller's own row locks could deadlock with the job's transaction, which
    locks the job first. Such a job sees the caller's committed state when it runs.
    """
    statement = select(ScheduledJob).where(
        ScheduledJob.id == job_id, ScheduledJob.status == JobStatus.PENDING
    )
    if tx.locks_rows:
        statement = statement.with_for_update(skip_locked=True)
    job: ScheduledJob | None = await tx.first(statement)
    if job is None:
        return False
    job.status = JobStatus.CANCELLED
    job.finished_at = utcnow()
    tx.add(job)
    return True
