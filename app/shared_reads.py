"""One snapshot read by many executions at once: the live runs of a batch.

The cohorts one change invalidates re-run together (``app.live.batches``). Those of one
tenant share this: one read session (one snapshot, one change-log version) and one
``LoaderSet``, so the keys all of them ask for go into one statement per loader and
nesting level, the way Hasura multiplexes many live queries into one SQL statement.
Everything that must stay per run does: each execution has its own ``Ctx``, viewer and
read set; statements the loaders did not record are recorded to the execution that runs
them (``CURRENT_READS``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app import tenancy
from app.database import Database
from app.dataloaders.loaders import LoaderSet
from app.dataloaders.recording import READS_KEY, SHARED
from app.live import changelog
from app.uncancelled import uncancelled


class SharedReads:
    """A tenant's snapshot and loaders, for the executions of one batch."""

    def __init__(self, db: Database, workspace_id: int) -> None:
        self._db = db
        self._workspace_id = workspace_id
        self._session: AsyncSession | None = None
        # One AsyncSession cannot run two statements at once; executions take turns.
        self._lock = asyncio.Lock()
        self._version: int | None = None
        self.loaders = LoaderSet(self.rows, pages_from_reads=True)
        # Completed parts of results that depend only on this snapshot, by what they
        # complete: filled and reused by the executions (``app.schema.executor``).
        self.completions: dict[Any, Any] = {}

    async def session(self) -> AsyncSession:
        if self._session is None:
            session = await self._db.snapshot_session()
            tenancy.scope(session.sync_session, self._workspace_id)
            session.sync_session.info[READS_KEY] = SHARED
            self._session = session
        return self._session

    async def rows(
        self, statement: SelectOfScalar[Any], params: Mapping[str, Any] | None = None
    ) -> Sequence[Any]:
        async with self._lock:
            return await uncancelled(self._rows(statement, params))

    async def _rows(
        self, statement: SelectOfScalar[Any], params: Mapping[str, Any] | None
    ) -> Sequence[Any]:
        session = await self.session()
        return (await session.exec(statement, params=params)).all()

    async def version(self) -> int:
        """The change-log version of the snapshot; read first, it also fixes it."""
        if self._version is not None:
            # Every run of the batch asks; only the first waits for the read.
            return self._version
        async with self._lock:
            if self._version is None:
                self._version = await uncancelled(self._read_version())
            return self._version

    async def _read_version(self) -> int:
        session = await self.session()
        return await changelog.current_version(await session.connection())

    async def close(self) -> None:
        self.loaders = LoaderSet(self.rows, pages_from_reads=True)
        self.completions = {}
        if self._session is not None:
            session, self._session = self._session, None
            await uncancelled(session.close())
