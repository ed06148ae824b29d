"""Scheduled functions, actions and cron jobs: the platform's time and side-effect tools.

``tx.schedule(fn, run_after=... | run_at=..., **args)`` stores a job in the caller's
transaction; the runner (``app.jobs.runner``) runs it when due. See ``app.scheduled.functions`` for
the decorators and ``runner`` for the delivery guarantees.

Why not a job library: scheduling must be atomic with the caller's own transaction on
SQLite and on PostgreSQL. procrastinate and pgqueuer are PostgreSQL-only, and enqueue
through their own driver connections (psycopg / asyncpg), not our SQLAlchemy session;
APScheduler 3 keeps jobs through its own engine, commits them separately, and does not
support several schedulers sharing a job store; APScheduler 4 (async SQLAlchemy store,
SQLite and PostgreSQL) is a pre-release and also adds jobs in transactions of its own.
The claim follows procrastinate's ``FOR UPDATE SKIP LOCKED`` with a lease (heartbeat);
cron expressions are croniter's.
"""

from app.jobs.context import ActionContext, JobContext, Reader
from app.scheduled.functions import action, cron, internal_mutation, internal_query
from app.scheduled.table import JobStatus, ScheduledJob

__all__ = [
    "ActionContext",
    "JobContext",
    "JobStatus",
    "Reader",
    "ScheduledJob",
    "action",
    "cron",
    "internal_mutation",
    "internal_query",
]
