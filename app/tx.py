"""``Tx``: what a mutation writes through, inside its one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Column, PrimaryKeyConstraint, UniqueConstraint, and_
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.database.errors import is_unique_violation
from app.dataloaders.loaders import pk_name
from app.errors import AppError
from app.ids import ModelT, found, parse_id
from app.live import capture

# ``Tx.insert``'s answer to a unique value already taken: raise this error, or answer
# with the row that holds the value.
OnConflict = AppError | Literal["return_existing"]


class Tx:
    """The write transaction of one mutation: tenant-scoped, captured, all or nothing."""

    def __init__(self, session: AsyncSession, *, lock_rows: bool) -> None:
        self.session = session
        self._lock_rows = lock_rows

    @property
    def locks_rows(self) -> bool:
        return self._lock_rows

    async def schedule(
        self,
        fn: Callable[..., Any],
        *,
        run_after: float | timedelta | None = None,
        run_at: datetime | None = None,
        **args: Any,
    ) -> int:
        """Run an internal mutation or action later; the job commits with this transaction.

        The place for side effects: a mutation's body may run again on a busy database,
        but a job scheduled here is stored once, and only if the mutation commits.

        ``run_after`` is a delay (seconds or a timedelta), ``run_at`` an aware datetime;
        ``args`` are JSON values. Returns the job's id.
        """
        from app.scheduled import store

        return await store.schedule(self, fn, run_after=run_after, run_at=run_at, args=args)

    async def cancel_scheduled(self, job_id: int) -> bool:
        """Cancel a job that has not started yet; False if it already started or ended."""
        from app.scheduled import store

        return await store.cancel(self, job_id)

    async def get(self, model: type[ModelT], ident: object) -> ModelT | None:
        """A row to change: locked on PostgreSQL (SQLite's writer lock covers it)."""
        key = parse_id(ident)
        if key is None:
            return None
        statement = select(model).where(getattr(model, pk_name(model)) == key)
        if self._lock_rows:
            statement = statement.with_for_update()
        row: ModelT | None = (await self.session.exec(statement)).first()
        return row

    async def fetch(self, model: type[ModelT], ident: object) -> ModelT:
        return found(model, ident, await self.get(model, ident))

    async def first(self, statement: SelectOfScalar[Any]) -> Any:
        return (await self.session.exec(statement)).first()

    def add(self, row: SQLModel) -> None:
        self.session.add(row)

    async def delete(self, row: SQLModel) -> None:
        await self.session.delete(row)

    async def flush(self) -> None:
        await self.session.flush()

    async def insert(self, row: ModelT, *, on_conflict: OnConflict | None = None) -> ModelT:
        """Insert ``row`` now (it has its id after); answer with it, or as ``on_conflict``
        says when a unique value of ``row`` is already taken.

        With ``on_conflict``, the insert runs in a savepoint: on a taken value only the
        insert is undone (and its captured change), and the transaction goes on. With an
        error such as ``Conflict("...")``, that error is raised; with
        ``"return_existing"``, the row holding the value is returned instead of ``row``
        (an idempotent retry). Any other integrity error, or any without ``on_conflict``,
        propagates and undoes the whole transaction.
        """
        if on_conflict is None:
            await self._add_now(row)
            return row
        try:
            await self.nested(lambda: self._add_now(row))
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            if isinstance(on_conflict, AppError):
                raise on_conflict from exc
            for statement in _holders(row):
                existing: ModelT | None = await self.first(statement)
                if existing is not None:
                    return existing
            raise
        return row

    async def _add_now(self, row: SQLModel) -> None:
        self.add(row)
        await self.flush()

    async def nested(self, body: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``body`` in a savepoint: a failure rolls back only what it did."""
        point = capture.mark(self.session.sync_session)
        try:
            async with self.session.begin_nested():
                return await body()
        except BaseException:
            # Rows the savepoint wrote are gone: so must be their captured changes.
            capture.rollback_to(self.session.sync_session, point)
            raise


def _holders(row: SQLModel) -> Iterator[SelectOfScalar[Any]]:
    """For each unique key of ``row``'s table that ``row`` has values for, a statement
    finding the row that holds them (a key with a NULL in it never conflicts)."""
    model = type(row)
    table = model.__table__  # type: ignore[attr-defined]
    keys: list[list[Column[Any]]] = [
        list(constraint.columns)
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint | PrimaryKeyConstraint)
    ]
    keys += [list(index.columns) for index in table.indexes if index.unique]
    for columns in keys:
        values = [getattr(row, column.key) for column in columns]
        if columns and all(value is not None for value in values):
            conditions = [
                getattr(model, column.key) == value
                for column, value in zip(columns, values, strict=True)
            ]
            yield select(model).where(and_(*conditions))
