"""The scheduled-job table: engine-owned, created by the schema sync like the change log.

A job is data: its status moves PENDING -> RUNNING -> DONE, or to CANCELLED / FAILED,
and every move is an ordinary captured write, so queries and live queries can read it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.columns import UTCDateTime, created_at_field


class JobStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


class JobKind(StrEnum):
    MUTATION = "mutation"
    ACTION = "action"


class ScheduledJob(SQLModel, table=True):
    """One scheduled run of a registered function."""

    __tablename__ = "scheduled_job"
    # Serves the claim: due PENDING jobs and expired RUNNING leases, oldest first.
    __table_args__ = (Index("ix_scheduled_job_due", "status", "run_at"),)
    # One queue for every workspace: ``workspace_id`` says whom a job runs for, and is
    # no tenant filter (a runner claims jobs of any workspace).
    __global__: ClassVar[bool] = True

    id: int | None = Field(default=None, primary_key=True)
    function: str = Field(max_length=255)
    kind: str = Field(max_length=16)
    args: str = "{}"
    status: str = Field(default=JobStatus.PENDING, max_length=16)
    run_at: datetime = Field(sa_type=UTCDateTime)
    attempts: int = 0
    # Who holds the job and until when: a claim token per attempt, so a runner that lost
    # its lease can never record the completion of an attempt that is not its own.
    claim: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The tenant its function runs for (None: across workspaces, e.g. housekeeping).
    workspace_id: int | None = None
    # A cron fire's key: unique, so one fire is inserted once however many processes try.
    dedupe_key: str | None = Field(default=None, unique=True, max_length=255)
    error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = created_at_field()
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
