"""Async engines for SQLite and PostgreSQL, chosen by URL, with the same code for both.

SQLite runs in WAL mode with one writer: writes take ``BEGIN IMMEDIATE`` on a single
pooled connection, so a read-then-write never races another writer (a deferred BEGIN
would fail with "database is locked" or lose an update), while reads use their own
connections. A read session is one deferred transaction: in WAL mode its snapshot is
taken at its first read and held until it closes.

PostgreSQL writes run READ COMMITTED with a statement timeout; write paths lock the rows
they read (``FOR UPDATE``) and the change-log clock orders commits (see
``app.live.changelog``). An execution's reads run in one REPEATABLE READ, READ ONLY
transaction: READ COMMITTED would take a new snapshot per statement, so two nesting
levels of one query could see different commits. Either way the snapshot starts at the
first read, never earlier than the session's creation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel.ext.asyncio.session import AsyncSession

from app.database import sqlite_reads
from app.database.sessions import AppSession

SQLITE_BUSY_TIMEOUT_MS = 5000
READ_POOL_SIZE = 8
# One snapshot for every statement of a read session (PostgreSQL; SQLite's deferred
# BEGIN in WAL mode already gives one).
SNAPSHOT_OPTIONS: Mapping[str, Any] = {
    "isolation_level": "REPEATABLE READ",
    "postgresql_readonly": True,
}


def _sqlite_pragmas(engine: AsyncEngine, *, immediate: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take over BEGIN from the driver so the write engine can say IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


class Database:
    """The engines of one database: a writer and readers (the same pool on PostgreSQL)."""

    def __init__(self, url: str, *, statement_timeout_ms: int = 5000) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database in ("", ":memory:"):
                raise ValueError("SQLite needs a file: readers and the writer share it")
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = create_async_engine(url, pool_size=1, max_overflow=0)
            # Reads make one call per statement to the driver's thread (see sqlite_reads).
            reader = parsed.set(drivername=f"sqlite+{sqlite_reads.DRIVER}")
            self.read_engine = create_async_engine(reader, pool_size=READ_POOL_SIZE, max_overflow=0)
            _sqlite_pragmas(self.write_engine, immediate=True)
            _sqlite_pragmas(self.read_engine, immediate=False)
            marks = sqlite_reads.mark_bounded_reads
            event.listen(self.read_engine.sync_engine, "before_cursor_execute", marks)
        elif self.dialect == "postgresql":
            engine = create_async_engine(
                url,
                pool_size=10,
                max_overflow=10,
                pool_pre_ping=True,
                connect_args={
                    "server_settings": {"statement_timeout": str(statement_timeout_ms)},
                    "timeout": 10,
                },
            )
            self.write_engine = self.read_engine = engine
        else:
            raise ValueError(f"Unsupported database URL: {parsed.drivername}")

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def write_session(self) -> AsyncSession:
        return AsyncSession(
            self.write_engine, sync_session_class=AppSession, expire_on_commit=False, autoflush=True
        )

    def read_session(self) -> AsyncSession:
        return AsyncSession(
            self.read_engine, sync_session_class=AppSession, expire_on_commit=False, autoflush=False
        )

    async def snapshot_session(self) -> AsyncSession:
        """A read session whose reads all see one snapshot, taken at its first read.

        Its connection is taken now, with the options set before its transaction begins;
        the snapshot itself starts with the first statement, on both databases.
        """
        session = self.read_session()
        if self.is_sqlite:
            return session
        try:
            await session.connection(execution_options=SNAPSHOT_OPTIONS)
        except BaseException:
            # No pooled connection may be left checked out by a session nobody holds.
            await session.close()
            raise
        return session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        session = self.read_session()
        try:
            yield session
        finally:
            await session.close()

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
