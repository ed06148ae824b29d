"""SQLite reads in one call to the driver's thread per statement.

aiosqlite runs each sqlite3 call on the connection's own thread, and SQLAlchemy's
adapter makes four such calls per statement (open a cursor, execute, fetch all, close
the cursor): each a hand-over between threads, which under load costs more than the
small indexed read it carries. This dialect runs the whole statement, up to its rows, in
one call. It serves the read engine only (SELECT, BEGIN, ROLLBACK on pooled readers);
writes keep the stock aiosqlite dialect. It reaches into aiosqlite the way SQLAlchemy's
own adapter does (the connection's queue and its sqlite3 connection), with the versions
pinned in pyproject.toml.

A bounded read (a statement marked ``BOUNDED``: a loader's batch by key or first page)
runs on the calling thread instead, once its transaction holds its snapshot. In WAL mode
only a read transaction's first statement can wait for another connection (it takes
the snapshot); later ones read pages and never wait, and such a statement takes about
as long as the two hand-overs between threads that it saves, each one a wait for the
GIL while the event loop is busy.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.util import EMPTY_DICT

from app.dataloaders.loaders import BOUNDED

DRIVER = "aiosqlite_onecall"

Outcome = tuple[Any, list[Any], int, int | None]


def _statement(conn: sqlite3.Connection, operation: str, parameters: Any) -> Outcome:
    cursor = conn.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _statements(conn: sqlite3.Connection, operation: str, parameters: Sequence[Any]) -> Outcome:
    cursor = conn.cursor()
    try:
        cursor.executemany(operation, parameters)
        return cursor.description, [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneCallCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor with no driver cursor behind it: each statement is one call."""

    __slots__ = ("_description", "_lastrowid", "_rowcount", "bounded")

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        # Set per statement from its execution options (``mark_bounded_reads``).
        self.bounded = False

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        return None

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._run(_statement, operation, parameters)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._run(_statements, operation, seq_of_parameters)

    async def _run(self, call: Any, operation: Any, parameters: Any) -> None:
        connection: Any = self._connection
        adapted: Any = self._adapt_connection
        database: sqlite3.Connection = connection._conn
        async with adapted._execute_mutex:
            if self.bounded and adapted.snapshot_held and database.in_transaction:
                outcome: Outcome = call(database, operation, parameters)
            else:
                outcome = await connection._execute(call, database, operation, parameters)
                # A statement after BEGIN has taken the transaction's snapshot; the next
                # BEGIN (after a ROLLBACK, which leaves no transaction) has not.
                adapted.snapshot_held = database.in_transaction and not _begins(operation)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)

    def nextset(self) -> None:
        raise NotImplementedError("sqlite3 has no next result set")


def _begins(operation: Any) -> bool:
    return isinstance(operation, str) and operation.lstrip()[:5].upper() == "BEGIN"


class OneCallConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("snapshot_held",)
    _cursor_cls = OneCallCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        # Its read transaction has taken its snapshot (a statement ran after BEGIN).
        self.snapshot_held = False


def mark_bounded_reads(
    _connection: Any,
    cursor: Any,
    _statement: str,
    _parameters: Any,
    context: Any,
    _executemany: bool,
) -> None:
    """``before_cursor_execute`` on the read engine: tell the cursor whether its
    statement is a bounded read."""
    if isinstance(cursor, OneCallCursor):
        options = context.execution_options if context is not None else EMPTY_DICT
        cursor.bounded = bool(options.get(BOUNDED))


class OneCallDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return OneCallConnection(self, adapted._connection)


class OneCallDialect(SQLiteDialect_aiosqlite):
    driver = DRIVER
    supports_server_side_cursors = False
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> AsyncAdapt_aiosqlite_dbapi:
        return OneCallDBAPI(__import__("aiosqlite"), __import__("sqlite3"))


registry.register(f"sqlite.{DRIVER}", __name__, "OneCallDialect")
