"""The one transaction helper every mutation runs in.

It commits whole or rolls back whole. Row changes captured during the transaction are
appended to the change log inside it, so they exist if and only if it commits. A busy
SQLite database or a PostgreSQL serialization failure / deadlock is retried a bounded
number of times with jittered backoff, then reported as a structured CONFLICT error.
A retry runs the whole body again in a fresh transaction: only database writes are
undone, so side effects belong in actions scheduled with ``tx.schedule``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from app import tenancy
from app.database import Database
from app.database.errors import is_retryable
from app.errors import Conflict
from app.live import changelog
from app.live.capture import CAPTURE_KEY, take_changes
from app.live.changes import ChangeBatch
from app.tx import Tx

log = logging.getLogger(__name__)
T = TypeVar("T")

BACKOFF_BASE_S = 0.01
BACKOFF_MAX_S = 0.5


async def transact(
    db: Database,
    body: Callable[[Tx], Awaitable[T]],
    *,
    workspace_id: int | None,
    retries: int,
) -> tuple[T, ChangeBatch | None]:
    """Run ``body`` in one write transaction; return its result and committed batch."""
    for attempt in range(retries + 1):
        session = db.write_session()
        sync = session.sync_session
        sync.info[CAPTURE_KEY] = True
        if workspace_id is None:
            tenancy.unscoped(sync)
        else:
            tenancy.scope(sync, workspace_id)
        try:
            async with session.begin():
                result = await body(Tx(session, lock_rows=not db.is_sqlite))
                await session.flush()
                changes = take_changes(sync)
                batch = (
                    await changelog.append(await session.connection(), changes) if changes else None
                )
            return result, batch
        except (OperationalError, DBAPIError) as exc:
            if not is_retryable(exc) or attempt == retries:
                if is_retryable(exc):
                    raise Conflict("The database is busy; try again", retryable=True) from exc
                raise
            delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt) * (0.5 + random.random())
            log.info("retrying a busy transaction (attempt %d) in %.3fs", attempt + 1, delay)
            await asyncio.sleep(delay)
        finally:
            await session.close()
    raise AssertionError("unreachable")
