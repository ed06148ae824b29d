"""SQLite reads in one call to the driver's thread: the read engine's dialect.

Reads must come back as the stock aiosqlite dialect gives them (rows, column names,
errors), through one call per statement; writes keep the stock dialect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, exc, text

from app.database import Database, sqlite_reads
from app.dataloaders.loaders import BOUNDED


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}")
    async with database.write_engine.begin() as conn:
        await conn.execute(text("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)"))
        await conn.execute(text("INSERT INTO item (name) VALUES ('a'), ('b'), ('c')"))
    yield database
    await database.dispose()


async def test_reads_use_one_call_per_statement_and_writes_do_not(db: Database) -> None:
    assert db.read_engine.dialect.driver == sqlite_reads.DRIVER
    assert db.write_engine.dialect.driver == "aiosqlite"
    calls: list[str] = []
    statements: list[str] = []

    def sent(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.read_engine.sync_engine, "before_cursor_execute", sent)
    async with db.read_engine.connect() as conn:
        raw: Any = (await conn.get_raw_connection()).driver_connection
        real = raw._execute

        async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(getattr(fn, "__name__", repr(fn)))
            return await real(fn, *args, **kwargs)

        raw._execute = counted
        try:
            result = await conn.execute(
                text("SELECT id, name FROM item WHERE id > :low ORDER BY id"), {"low": 1}
            )
            rows = result.all()
        finally:
            raw._execute = real
    assert [tuple(r) for r in rows] == [(2, "b"), (3, "c")]
    assert list(result.keys()) == ["id", "name"]
    # BEGIN (the read transaction) and the SELECT: one call to the thread each, where
    # the stock adapter makes four (cursor, execute, fetch, close).
    assert statements[0] == "BEGIN" and len(statements) == 2
    assert calls == ["_statement"] * len(statements)


async def test_a_failing_read_raises_the_usual_error(db: Database) -> None:
    async with db.read_engine.connect() as conn:
        with pytest.raises(exc.OperationalError, match="no such table"):
            await conn.execute(text("SELECT * FROM missing"))
        # The connection still serves the next statement.
        assert (await conn.execute(text("SELECT count(*) FROM item"))).scalar_one() == 3


async def test_a_statement_without_rows_has_no_description(db: Database) -> None:
    async with db.read_engine.connect() as conn:
        result = await conn.execute(text("PRAGMA user_version = 0"))
        assert not result.returns_rows


async def test_a_bounded_read_runs_here_once_its_transaction_holds_a_snapshot(
    db: Database,
) -> None:
    """A statement marked bounded runs on the calling thread, but only after a statement
    of its transaction has taken the snapshot on the driver's thread (only that one can
    wait for another connection); it reads that same snapshot. Unmarked statements, and
    the first of each new transaction, still go to the thread."""
    calls: list[str] = []
    bounded = text("SELECT name FROM item WHERE id = :id").execution_options(**{BOUNDED: True})
    plain = text("SELECT count(*) FROM item")
    async with db.read_engine.connect() as conn:
        raw: Any = (await conn.get_raw_connection()).driver_connection
        real = raw._execute

        async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(args[1] if len(args) > 1 else getattr(fn, "__name__", "?"))
            return await real(fn, *args, **kwargs)

        raw._execute = counted
        try:
            first = (await conn.execute(bounded, {"id": 1})).scalar_one()
            # Committed by another connection after this transaction took its snapshot.
            async with db.write_engine.begin() as writer:
                await writer.execute(text("UPDATE item SET name = 'changed' WHERE id = 2"))
            second = (await conn.execute(bounded, {"id": 2})).scalar_one()
            count = (await conn.execute(plain)).scalar_one()
            await conn.rollback()
            fresh = (await conn.execute(bounded, {"id": 2})).scalar_one()
            again = (await conn.execute(bounded, {"id": 3})).scalar_one()
        finally:
            raw._execute = real
    assert (first, second, count, fresh, again) == ("a", "b", 3, "changed", "c")
    # BEGIN and the first bounded read on the thread; the second bounded read here; the
    # unmarked count on the thread; after the rollback, BEGIN and the first read again.
    sent = [c for c in calls if c != "rollback"]
    assert sent == [
        "BEGIN",
        "SELECT name FROM item WHERE id = ?",
        "SELECT count(*) FROM item",
        "BEGIN",
        "SELECT name FROM item WHERE id = ?",
    ], calls
