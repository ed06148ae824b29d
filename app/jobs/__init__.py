"""Scheduled functions, actions and cron jobs: the platform's time and side-effect tools.

``tx.schedule(fn, run_after=... | run_at=..., **args)`` stores a job in the caller's
transaction; the runner (``app.jobs.runner``) runs it when due. See ``functions`` for
the decorators and ``runner`` for the delivery guarantees.
"""

from app.jobs.context import ActionContext, JobContext, Reader
from app.jobs.functions import action, cron, internal_mutation, internal_query
from app.jobs.table import JobStatus, ScheduledJob

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
