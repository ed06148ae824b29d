"""``Tx``: what a mutation writes through, inside its one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.dataloaders.loaders import pk_name
from app.ids import ModelT, found, parse_id
from app.live import capture


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

        ``run_after`` is a delay (seconds or a timedelta), ``run_at`` an aware datetime;
        ``args`` are JSON values. Returns the job's id.
        """
        from app.jobs import store

        return await store.schedule(self, fn, run_after=run_after, run_at=run_at, args=args)

    async def cancel_scheduled(self, job_id: int) -> bool:
        """Cancel a job that has not started yet; False if it already started or ended."""
        from app.jobs import store

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
