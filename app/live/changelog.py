"""The change log (outbox): one row per committed write transaction, gap-free versions.

A write transaction appends its captured changes here before it commits, so a change
exists if and only if its transaction committed. The version comes from a one-row clock
that the transaction advances with ``UPDATE ... RETURNING`` just before COMMIT:

- SQLite: writers are serialized by ``BEGIN IMMEDIATE`` already; the clock costs nothing.
- PostgreSQL: the clock row's lock is held from the increment to COMMIT, so the next
  writer gets the next number only once this one has committed (or rolled back, which
  undoes its increment): versions are commit-ordered and gap-free. The trade-off is that
  write transactions serialize for the short tail between taking the clock and COMMIT;
  taking it last keeps that tail to one round trip. Readers are never blocked.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import orjson
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel, col

from app.columns import UTCDateTime, utcnow
from app.live.changes import ChangeBatch, RowChange


class ChangeLogEntry(SQLModel, table=True):
    """One committed write transaction's row changes."""

    __tablename__ = "change_log"
    # Every workspace's changes in one commit order; readers filter them per tenant.
    __global__: ClassVar[bool] = True

    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    committed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    changes: str


class ChangeClock(SQLModel, table=True):
    """The single row whose counter hands out change-log versions."""

    __tablename__ = "change_clock"
    __global__: ClassVar[bool] = True

    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    version: int = 0


async def ensure_clock(conn: AsyncConnection) -> None:
    """Create the clock row if absent, starting from the log's newest version."""
    exists = await conn.scalar(select(col(ChangeClock.id)).where(col(ChangeClock.id) == 1))
    if exists is None:
        newest = await conn.scalar(select(func.max(ChangeLogEntry.version)))
        await conn.execute(
            ChangeClock.__table__.insert().values(id=1, version=newest or 0)  # type: ignore[attr-defined]
        )


async def append(conn: AsyncConnection, changes: list[RowChange]) -> ChangeBatch:
    """Advance the clock and write the batch, inside the caller's transaction."""
    version = await conn.scalar(
        update(ChangeClock)
        .where(col(ChangeClock.id) == 1)
        .values(version=col(ChangeClock.version) + 1)
        .returning(col(ChangeClock.version))
    )
    if version is None:
        raise RuntimeError("change clock row missing: run the schema sync first")
    batch = ChangeBatch(int(version), tuple(changes))
    payload = orjson.dumps([c.to_json() for c in changes]).decode()
    await conn.execute(
        ChangeLogEntry.__table__.insert().values(  # type: ignore[attr-defined]
            version=batch.version, committed_at=utcnow(), changes=payload
        )
    )
    return batch


def _to_batch(version: int, changes: str) -> ChangeBatch:
    return ChangeBatch(version, tuple(RowChange.from_json(c) for c in orjson.loads(changes)))


async def read_after(conn: AsyncConnection, version: int, limit: int = 1000) -> list[ChangeBatch]:
    """Committed batches newer than ``version``, oldest first, at most ``limit``."""
    rows = await conn.execute(
        select(col(ChangeLogEntry.version), col(ChangeLogEntry.changes))
        .where(col(ChangeLogEntry.version) > version)
        .order_by(col(ChangeLogEntry.version))
        .limit(limit)
    )
    return [_to_batch(v, c) for v, c in rows]


async def current_version(conn: AsyncConnection) -> int:
    value = await conn.scalar(select(col(ChangeClock.version)).where(col(ChangeClock.id) == 1))
    return int(value or 0)


async def oldest_version(conn: AsyncConnection) -> int | None:
    value = await conn.scalar(select(func.min(ChangeLogEntry.version)))
    return None if value is None else int(value)


async def prune(conn: AsyncConnection, keep: int) -> int:
    """Delete all but the newest ``keep`` entries; returns how many were removed."""
    newest = await current_version(conn)
    result = await conn.execute(
        delete(ChangeLogEntry).where(col(ChangeLogEntry.version) <= newest - keep)
    )
    return int(result.rowcount or 0)
