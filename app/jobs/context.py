"""What a job's function gets: the services, its job, and (for actions) ways to write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app import tenancy
from app.dataloaders.loaders import pk_name
from app.ids import parse_id
from app.scheduled.functions import function_of
from app.scheduled.table import JobKind
from app.services import Services
from app.settings import Settings
from app.tx import Tx

if TYPE_CHECKING:
    from app.jobs.runner import Runner

ModelT = TypeVar("ModelT", bound=SQLModel)


class JobContext:
    """The context of an internal mutation or query run for a job."""

    def __init__(self, services: Services, job_id: int | None, workspace_id: int | None) -> None:
        self.services = services
        self.job_id = job_id
        self.workspace_id = workspace_id

    @property
    def settings(self) -> Settings:
        return self.services.settings


class Reader:
    """Reads on one snapshot, scoped to the job's workspace: what internal queries get."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, model: type[ModelT], ident: object) -> ModelT | None:
        key = parse_id(ident)
        if key is None:
            return None
        row: ModelT | None = await self.first(
            select(model).where(getattr(model, pk_name(model)) == key)
        )
        return row

    async def first(self, statement: SelectOfScalar[Any]) -> Any:
        return (await self.session.exec(statement)).first()

    async def all(self, statement: SelectOfScalar[Any]) -> Sequence[Any]:
        return (await self.session.exec(statement)).all()


class ActionContext(JobContext):
    """An action's context: no transaction of its own; it writes through mutations."""

    def __init__(
        self, services: Services, job_id: int | None, workspace_id: int | None, runner: Runner
    ) -> None:
        super().__init__(services, job_id, workspace_id)
        self._runner = runner

    async def run_mutation(self, fn: Callable[..., Awaitable[Any]], **args: Any) -> Any:
        """Run an internal mutation now, in its own transaction; return its result."""
        spec = function_of(fn)
        if spec.kind is not JobKind.MUTATION:
            raise TypeError(f"{spec.name} is not an internal mutation")
        ctx = JobContext(self.services, self.job_id, self.workspace_id)

        async def body(tx: Tx) -> Any:
            return await spec.fn(ctx, tx, **args)

        return await self._runner.transact(body, self.workspace_id)

    async def run_query(self, fn: Callable[..., Awaitable[Any]], **args: Any) -> Any:
        """Run an internal query on a fresh snapshot of the job's workspace."""
        spec = function_of(fn)
        if spec.kind is not None:
            raise TypeError(f"{spec.name} is not an internal query")
        session = await self.services.db.snapshot_session()
        try:
            if self.workspace_id is None:
                tenancy.unscoped(session.sync_session)
            else:
                tenancy.scope(session.sync_session, self.workspace_id)
            ctx = JobContext(self.services, self.job_id, self.workspace_id)
            return await spec.fn(ctx, Reader(session), **args)
        finally:
            await session.close()
