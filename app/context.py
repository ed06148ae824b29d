"""What a resolver gets: the viewer, the data API, and (in a mutation) the transaction.

A ``Ctx`` lives for one execution: one HTTP request, one WebSocket operation, or one
re-run of a live query. Its reads share one read session (one consistent snapshot) and
one set of loaders, and are recorded in its read set. While a transaction of its own is
open (a mutation's), every read it makes goes through that transaction instead: a
mutation reads what it writes against, with the transaction's tenant scope and locks.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Any, TypeVar

from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app import pagination, tenancy, transaction
from app.auth import TokenService, Viewer
from app.dataloaders.loaders import Loaders, recorded, require_tracked, table_name
from app.dataloaders.recording import CURRENT_READS, READS_KEY
from app.errors import Unauthenticated
from app.ids import found, parse_id
from app.live import changelog
from app.live.capture import to_scalar
from app.live.changes import ChangeBatch, Scalar
from app.live.events import EventFilter, Position, RowEvent
from app.live.readset import ReadSet
from app.pagination import Connection
from app.search import statement as search_statement
from app.search import terms as search_terms
from app.services import Services
from app.settings import Settings
from app.shared_reads import SharedReads
from app.tx import Tx
from app.uncancelled import uncancelled

ModelT = TypeVar("ModelT", bound=SQLModel)
T = TypeVar("T")


class Ctx:
    def __init__(
        self,
        services: Services,
        viewer: Viewer | None,
        *,
        request_id: str | None = None,
        connection: Any = None,
        auth_error: Exception | None = None,
        reads: ReadSet | None = None,
        shared: SharedReads | None = None,
    ) -> None:
        self.services = services
        self.viewer = viewer
        self.auth_error = auth_error
        self._request_id = request_id
        self.connection = connection
        # Recorded as it reads; a live run passes its own, kept if the execution fails.
        self.reads = reads if reads is not None else ReadSet()
        self.version: int | None = None
        # When this execution's result stops being true whatever is written (seconds
        # since the epoch); a cached copy of it is not served after that.
        self.valid_until = math.inf
        self._session: AsyncSession | None = None
        # The write transaction running now, if any: reads go through it meanwhile.
        self._tx: Tx | None = None
        # One AsyncSession cannot run two statements at once; loaders dispatch together.
        self._lock = asyncio.Lock()
        # A live run of a batch reads the batch's snapshot, through its loaders.
        self._shared = shared
        self.loaders = Loaders(self.rows, self.reads, shared.loaders if shared else None)

    @property
    def request_id(self) -> str:
        """Names this execution in logs and in an INTERNAL error; made when first asked
        (most live runs never are)."""
        if self._request_id is None:
            self._request_id = uuid.uuid4().hex[:16]
        return self._request_id

    def holds_until(self, at: float) -> None:
        """The result holds until ``at`` at most: it carries something that expires by
        itself (a signed URL), which no change to the data would announce."""
        self.valid_until = min(self.valid_until, at)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def tokens(self) -> TokenService:
        return self.services.tokens

    def require_viewer(self) -> Viewer:
        if self.viewer is None:
            raise self.auth_error or Unauthenticated()
        if self.viewer.expired:
            raise Unauthenticated("Token expired")
        return self.viewer

    async def session(self) -> AsyncSession:
        """This execution's read session: one snapshot, from its first read until closed.

        Opened on the first read, so a live run's snapshot is never older than the
        version it recorded before executing; ``refresh_snapshot`` closes it. While
        ``transact`` runs, the transaction's session instead.
        """
        if self._tx is not None:
            return self._tx.session
        if self._shared is not None:
            return await self._shared.session()
        if self._session is None:
            session = await self.services.db.snapshot_session()
            if self.viewer is not None:
                tenancy.scope(session.sync_session, self.viewer.workspace_id)
            session.sync_session.info[READS_KEY] = self.reads
            self._session = session
        return self._session

    @property
    def shared_completions(self) -> dict[Any, Any] | None:
        """Where the executions of a batch share the parts of their results that depend
        only on their common snapshot; None for an execution of its own."""
        if self._shared is None or self._tx is not None:
            return None
        return self._shared.completions

    async def rows(
        self, statement: SelectOfScalar[Any], params: Mapping[str, Any] | None = None
    ) -> Sequence[Any]:
        """Run one SELECT on this execution's session (to its end, even if cancelled)."""
        if self._shared is not None and self._tx is None:
            CURRENT_READS.set(self.reads)
            return await self._shared.rows(statement, params)
        async with self._lock:
            return await uncancelled(self._rows(statement, params))

    async def _rows(
        self, statement: SelectOfScalar[Any], params: Mapping[str, Any] | None
    ) -> Sequence[Any]:
        session = await self.session()
        return (await session.exec(statement, params=params)).all()

    async def snapshot_version(self) -> int:
        """The change-log version this execution's snapshot reflects; read first, it
        also fixes the snapshot."""
        if self._shared is not None:
            return await self._shared.version()
        async with self._lock:
            return await uncancelled(self._snapshot_version())

    async def _snapshot_version(self) -> int:
        session = await self.session()
        return await changelog.current_version(await session.connection())

    async def get(self, model: type[ModelT], ident: object) -> ModelT | None:
        key = parse_id(ident)
        if key is None:
            return None
        row: ModelT | None = await self.loaders.by_pk(model).load(key)
        return row

    async def fetch(self, model: type[ModelT], ident: object) -> ModelT:
        return found(model, ident, await self.get(model, ident))

    async def page(
        self,
        model: type[ModelT],
        *,
        first: int | None,
        after: str | None,
        where: tuple[str, object] | None = None,
    ) -> Connection[ModelT]:
        """One page of a list, filtered on at most one indexed column (a read range)."""
        size = pagination.clamp_first(
            first, self.settings.page_size_default, self.settings.page_size_max
        )
        if where is not None:
            column, value = where
            connection: Connection[ModelT] = await self.loaders.page_by(model, column).load(
                (value, size, after)
            )
            return connection
        statement: SelectOfScalar[Any] = select(model)
        if tenancy.is_tenant_scoped(model) and self.viewer is not None:
            self.reads.range(table_name(model), tenancy.tenant_key(model), self.viewer.workspace_id)
        else:
            self.reads.table(table_name(model))
        if after is not None:
            statement = statement.where(pagination.after_condition(model, after))
        statement = statement.order_by(*pagination.order_by(model)).limit(size + 1)
        rows = await self.rows(recorded(statement))
        return pagination.build_connection(model, rows, size)

    async def search(
        self,
        model: type[ModelT],
        text: str,
        *,
        first: int | None,
        after: str | None,
        where: tuple[str, object] | None = None,
        default_size: int = 20,
    ) -> Connection[ModelT]:
        """Rows of ``model`` matching ``text`` in its ``__search__`` index, best first.

        Live like a page: it records the range it searched (the ``where`` column's value,
        else the viewer's workspace), so any change to a row there re-runs it.
        """
        size = pagination.clamp_first(first, default_size, self.settings.page_size_max)
        terms = search_terms.parse(text)
        table = table_name(model)
        condition = None
        if where is not None:
            column, value = where
            require_tracked(model, column)
            self.reads.range(table, column, to_scalar(value))
            condition = getattr(model, column) == value
        elif tenancy.is_tenant_scoped(model) and self.viewer is not None:
            self.reads.range(table, tenancy.tenant_key(model), self.viewer.workspace_id)
        else:
            self.reads.table(table)
        if after is not None:
            search_statement.decode_cursor(after)
        if not terms:
            return search_statement.empty_connection()
        statement = search_statement.search_statement(
            model,
            self.services.db.dialect,
            terms,
            size=size,
            after=after,
            where=condition,
        )
        hits = await self.rows(recorded(statement))
        return search_statement.build_connection(model, hits, size)

    @property
    def live_connection(self) -> Any:
        """The WebSocket's live operations (None over HTTP and SSE)."""
        return getattr(self.connection, "live_connection", None)

    async def events(
        self,
        model: type[SQLModel],
        where: Mapping[str, Scalar],
        *,
        after: str | None = None,
    ) -> AsyncIterator[RowEvent]:
        """The committed changes to ``model``'s rows whose tracked columns match ``where``,
        in commit order: replayed from the change log after the cursor ``after``, then
        live. For a subscription: this execution's read session is closed while it
        waits, and each event is read on a fresh snapshot."""
        for column in where:
            # Unchecked, a filter on a column that events do not carry matches nothing.
            require_tracked(model, column)
        position = None if after is None else Position.parse(after)
        viewer = self.require_viewer()
        live = self.services.live
        event_filter = EventFilter(table_name(model), dict(where))
        stream = live.open_events(viewer, self.live_connection, event_filter)
        async with aclosing(stream.events(position)) as events:
            while True:
                await self.refresh_snapshot()
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    return
                yield event

    def record_row(self, model: type[SQLModel], ident: object) -> None:
        self.reads.row(table_name(model), to_scalar(ident))

    async def transact(self, body: Callable[[Tx], Awaitable[T]], *, unscoped: bool = False) -> T:
        """Run ``body`` in one write transaction; after COMMIT, publish its changes.

        Scoped to the viewer's workspace unless ``unscoped`` (sign-up only). A write
        that has started finishes whole even if its operation is cancelled (a client
        completing it, or going away): the change is applied to this process's live
        queries at once after COMMIT; only the answer is lost.
        """
        if self._tx is not None:
            raise RuntimeError("ctx.transact inside a transaction: write through its Tx")
        workspace = None if unscoped else self.require_viewer().workspace_id
        services = self.services

        async def attempt(tx: Tx) -> T:
            # Loaders of the snapshot, or of an attempt a busy database undid, must not
            # answer: each attempt reads afresh through its own transaction.
            self._tx, self.loaders = tx, Loaders(self.rows, self.reads)
            try:
                return await body(tx)
            finally:
                self._tx, self.loaders = None, Loaders(self.rows, self.reads)

        async def write() -> tuple[T, ChangeBatch | None]:
            async with services.drain.track():
                result, batch = await transaction.transact(
                    services.db,
                    attempt,
                    workspace_id=workspace,
                    retries=self.settings.transaction_retries,
                )
                if batch is not None:
                    services.live.committed(batch)
                    if services.runner is not None and any(
                        change.table == "scheduled_job" for change in batch.changes
                    ):
                        services.runner.wake()
            return result, batch

        task = services.drain.keep(asyncio.ensure_future(write()))
        result, batch = await asyncio.shield(task)
        if batch is not None:
            self.version = batch.version
        await self.refresh_snapshot()
        return result

    async def unscoped_read(self, statement: SelectOfScalar[Any]) -> Any:
        """One read across workspaces: for sign-in, which precedes any tenant."""
        async with self.services.db.reading() as session:
            tenancy.unscoped(session.sync_session)
            return (await session.exec(statement)).first()

    async def refresh_snapshot(self) -> None:
        """After a commit: later reads in this execution must see what was written."""
        self._shared = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.loaders = Loaders(self.rows, self.reads)

    @property
    def holds_session(self) -> bool:
        """Whether this execution opened a read session of its own (a live run in a
        batch reads the batch's)."""
        return self._session is not None

    async def close(self) -> None:
        # Fresh loaders: whatever still holds this context after its execution (an
        # extension, a resolver's closure) must not hold what it loaded. A batch's shared
        # snapshot is closed by its batch.
        self._shared = None
        self.loaders = Loaders(self.rows, self.reads)
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
