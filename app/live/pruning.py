"""Keeping the change log to its catch-up window: pruned every tenth of the window."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from app.live import changelog

if TYPE_CHECKING:
    from app.database import Database

log = logging.getLogger(__name__)


class ChangeLogPruner:
    def __init__(self, db: Database, retention: int) -> None:
        self._db = db
        self.retention = retention
        self._every = max(1, retention // 10)
        self._task: asyncio.Task[None] | None = None

    def committed(self, version: int) -> None:
        """After this process committed ``version``: prune at each prune point, one
        prune at a time."""
        if version % self._every == 0 and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._prune(), name="change-log-prune")
            self._task.add_done_callback(lambda t: None if t.cancelled() else t.exception())

    async def _prune(self) -> None:
        """Keep the newest ``retention`` change-log entries (the catch-up window)."""
        try:
            async with self._db.write_engine.begin() as conn:
                removed = await changelog.prune(conn, self.retention)
            log.info("pruned %d change-log entries", removed)
        except Exception:
            # A busy database: the next prune point tries again.
            log.warning("change-log pruning failed", exc_info=True)

    async def stop(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
