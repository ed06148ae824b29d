"""The Strawberry schema with ``@live``: a ``Schema.stream`` override.

Every execution gets a fresh ``Ctx`` (fresh loaders, fresh read set): the context that
Strawberry hands over is the transport's (per HTTP request, or per WebSocket connection)
and only says who is asking. A ``query`` marked ``@live`` over a streaming transport
becomes a subscription to its cohort; over plain HTTP it answers once. On a WebSocket, a
mutation's result waits until that connection's live queries reflect its version.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from contextvars import ContextVar
from typing import Any, cast

import strawberry
from graphql import DocumentNode, GraphQLError
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.execution.values import get_variable_values
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.utils.await_maybe import await_maybe

from app.auth import Probe
from app.context import Ctx
from app.errors import RATE_LIMITED, AppError
from app.errors_format import format_errors
from app.live.cohort import Cohort, Route
from app.schema.cached import CachedRun
from app.schema.directive import LIVE_DIRECTIVE, find_operation, live_request, parse_cached
from app.schema.documents import parse_document, validation_errors
from app.schema.executor import LeanExecutor, is_awaitable
from app.schema.limits import ALL_RULES
from app.uncancelled import uncancelled

log = logging.getLogger(__name__)

# Set by a WebSocket transport around one operation's run, in that operation's task: how
# its live results may be written straight to the socket (``Subscriber.deliver``). A
# weak reference: every task started from that one copies the context.
ROUTE: ContextVar[weakref.ref[Route] | None] = ContextVar("live_route", default=None)

READ_YOUR_WRITES_TIMEOUT_S = 5.0
# Live documents remembered as checked (as many as the parse cache keeps).
CHECKED_DOCUMENTS = 2048
# graphql-core's answer when an operation that executes once would deliver in parts.
INCREMENTAL_REFUSED = (
    "Executing this GraphQL operation would unexpectedly produce multiple payloads"
    " (due to @defer or @stream directive)"
)


class LiveSchema(strawberry.Schema):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schema.directives = (*self._schema.directives, LIVE_DIRECTIVE)
        # Live documents that passed Strawberry's parse and validation (oldest first).
        self._checked: dict[str, DocumentNode] = {}
        # Each live cohort's operation built once: its runs are forks of it.
        self._runs: weakref.WeakKeyDictionary[Cohort, LeanExecutor] = weakref.WeakKeyDictionary()

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # ErrorCodes logs what was unexpected (with its request id); expected errors
        # (bad input, not found, ...) are answers, not incidents.
        return None

    # -- contexts ----------------------------------------------------------------------

    @staticmethod
    def _fresh(context_value: Any, cached: CachedRun | None = None) -> Ctx:
        if isinstance(context_value, Ctx):
            return context_value
        probe: Probe | None = cached.asked.append if cached is not None else None
        return cast(Ctx, context_value.new_ctx(probe))

    async def _from_cache(
        self,
        context_value: Any,
        query: str | None,
        variable_values: dict[str, Any] | None,
        root_value: Any,
        operation_name: str | None,
        allowed_operation_types: Iterable[OperationType] | None,
        operation_extensions: dict[str, Any] | None,
    ) -> tuple[CachedRun | None, ExecutionResult | None]:
        """The query cache's run for this operation (None where the cache does not
        apply), and its answer if it has one."""
        if root_value is not None or operation_extensions:
            return None, None
        cached = CachedRun.begin(
            context_value, query, variable_values, operation_name, allowed_operation_types
        )
        if cached is None:
            return None, None
        return cached, await cached.answer(self._schema)

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        cached, hit = await self._from_cache(
            context_value,
            query,
            variable_values,
            root_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )
        if hit is not None:
            return hit
        ctx = self._fresh(context_value, cached)
        try:
            result = await super().execute(
                query,
                variable_values,
                ctx,
                root_value,
                operation_name,
                allowed_operation_types,
                operation_extensions,
            )
        finally:
            if ctx is not context_value:
                await _close(ctx)
        if cached is not None:
            cached.keep(result, ctx)
        await _read_your_writes(ctx)
        _stamp_version(result, ctx)
        return result

    async def execute_live(self, cohort: Cohort, ctx: Ctx) -> ExecutionResult:
        """One run of a live cohort's operation, as ``ctx``'s viewer, into ``ctx.reads``."""
        try:
            # Read first, so that it fixes the snapshot: the change-log version this run
            # reflects, which can be past what this process has applied so far (a commit
            # in flight from another process, or from this one before it is offered).
            snapshot = await ctx.snapshot_version()
            document = self._checked.get(cohort.query)
            if document is not None:
                result = await self._execute_checked(document, cohort, ctx)
            else:
                result = await super().execute(
                    cohort.query,
                    cohort.variables,
                    ctx,
                    None,
                    cohort.operation_name,
                    (OperationType.QUERY,),
                )
                self._check_passed(cohort.query, result)
        finally:
            await _close(ctx)
        live: dict[str, Any] = {"version": snapshot}
        if ctx.valid_until != math.inf:
            # For the engine, which keeps it with the cohort and sends only the version.
            live["validUntil"] = ctx.valid_until
        result.extensions = {**(result.extensions or {}), "live": live}
        return result

    def _check_passed(self, query: str, result: ExecutionResult) -> None:
        """A document that Strawberry's run parsed and validated (it has data: a
        document refused before execution has none) runs directly from now on."""
        if result.data is None:
            return
        document = parse_cached(query)
        if document is None:
            return
        self._checked[query] = document
        while len(self._checked) > CHECKED_DOCUMENTS:
            del self._checked[next(iter(self._checked))]

    async def _execute_checked(
        self, document: DocumentNode, cohort: Cohort, ctx: Ctx
    ) -> ExecutionResult:
        """A live re-run straight on graphql-core: the document was parsed and validated
        with every rule when its first run went through Strawberry, and what the
        extensions do to a result is formatting its errors, done here as they do it.
        Strawberry's per-operation setup was a good part of a short run's cost.

        A cohort's document and variables never change: its operation is built once
        (variables coerced, fragments read) and each run is a fork of it, which also
        finds the fields that earlier runs collected and planned. Once its root fields
        are known to be plain root calls, a run answers them without graphql-core's walk
        (``LeanExecutor.execute_plainly``), which takes over on anything else."""
        template = self._runs.get(cohort)
        if template is None:
            built = LeanExecutor.build(
                self._schema,
                document,
                raw_variable_values=cohort.variables,
                operation_name=cohort.operation_name,
                is_awaitable=is_awaitable,
                operation_extensions=None,
            )
            if isinstance(built, list):  # variables the operation refuses
                return ExecutionResult(
                    data=None, errors=format_errors(built, ctx.request_id), extensions=None
                )
            assert isinstance(built, LeanExecutor), "the schema executes with LeanExecutor"
            built.share_root_calls()
            template = self._runs[cohort] = built
        roots = template.plain_roots()
        run = template.fork(ctx)
        if roots is not None:
            data = await run.execute_plainly(roots)
            if data is not None:
                return ExecutionResult(data=data, errors=None, extensions=None)
        raw = await await_maybe(run.execute_operation())
        if not isinstance(raw, GraphQLExecutionResult):
            # Incremental delivery (@defer, @stream) is refused, as graphql's execute does.
            raise GraphQLError(INCREMENTAL_REFUSED)
        return ExecutionResult(
            data=raw.data,
            # The request id is made only for a result that has errors to log with it.
            errors=format_errors(raw.errors, ctx.request_id) if raw.errors else None,
            extensions=raw.extensions,
        )

    # -- streams -----------------------------------------------------------------------

    async def subscribe(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> Any:
        # The legacy graphql-ws protocol sends every operation as a subscription.
        return await self.stream(
            query, variable_values, context_value, root_value, operation_name, operation_extensions
        )

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> Any:
        limited = await _ws_rate_limit(context_value)
        if limited is not None:
            return _once(limited)
        try:
            live = live_request(query, operation_name, variable_values)
        except AppError as exc:
            return _once(_error(exc.message, exc.extensions))
        if live is not None and query is not None:
            return self._live(
                query, variable_values, context_value, operation_name, live.throttle_ms
            )
        cached, hit = await self._from_cache(
            context_value,
            query,
            variable_values,
            root_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )
        if hit is not None:
            return _once(hit)
        ctx = self._fresh(context_value, cached)
        inner = await super().stream(
            query,
            variable_values,
            ctx,
            root_value,
            operation_name,
            operation_extensions,
            allowed_operation_types,
        )
        return self._once(inner, ctx, context_value, cached)

    async def _once(
        self, inner: AsyncIterator[Any], ctx: Ctx, transport: Any, cached: CachedRun | None
    ) -> AsyncGenerator[Any, None]:
        try:
            async for result in inner:
                if cached is not None:
                    cached.keep(result, ctx)
                await _read_your_writes(ctx)
                connection = getattr(transport, "live_connection", None)
                if ctx.version is not None and connection is not None:
                    await connection.wait_caught_up(ctx.version, READ_YOUR_WRITES_TIMEOUT_S)
                if isinstance(result, ExecutionResult):
                    _stamp_version(result, ctx)
                yield result
        finally:
            await _close(ctx)

    def _validate(self, query: str) -> list[GraphQLError]:
        """Coded validation errors, from the cache that Strawberry's own validation shares."""
        parsed = parse_document(query)
        if parsed.document is None:
            return [parsed.fresh_error()]
        return validation_errors(self._schema, query, parsed, ALL_RULES)

    def _variable_errors(
        self, query: str, operation_name: str | None, variables: dict[str, Any] | None
    ) -> list[GraphQLError]:
        """Variables that do not coerce end a live query before it joins a cohort."""
        document = parse_cached(query)
        operation = find_operation(document, operation_name) if document else None
        if operation is None:
            return []
        coerced = get_variable_values(
            self._schema, operation.variable_definitions or (), variables or {}, max_errors=10
        )
        return coerced if isinstance(coerced, list) else []

    def _live(
        self,
        query: str,
        variables: dict[str, Any] | None,
        transport: Any,
        operation_name: str | None,
        throttle_ms: int,
    ) -> AsyncIterator[ExecutionResult]:
        """The subscriber's own result iterator, handed to the transport as it is:
        no wrapping generator on the path every delivery takes."""
        errors = self._validate(query)
        if not errors:
            errors = self._variable_errors(query, operation_name, variables)
        if errors:
            return _once(PreExecutionError(data=None, errors=format_errors(errors)))
        ctx = self._fresh(transport)
        try:
            viewer = ctx.require_viewer()
        except AppError as exc:
            return _once(_error(exc.message, exc.extensions))
        services = ctx.services
        settings = services.settings
        throttle = min(
            max(throttle_ms, settings.live_throttle_default_ms), settings.live_throttle_max_ms
        )
        try:
            return services.live.subscribe(
                query=query,
                variables=variables,
                operation_name=operation_name,
                viewer=viewer,
                throttle_ms=throttle,
                connection=getattr(transport, "live_connection", None),
                route=_route(),
            )
        except AppError as exc:
            # Beyond the live operations allowed per connection or per user.
            return _once(_error(exc.message, exc.extensions))


def _route() -> Route | None:
    route = ROUTE.get()
    return route() if route is not None else None


async def _ws_rate_limit(transport: Any) -> ExecutionResult | None:
    """Operations on a WebSocket, per connection and per user."""
    connection = getattr(transport, "live_connection", None)
    if connection is None:
        return None
    limits = transport.services.rate_limits
    wait = await limits.hit(limits.rules.ws_connection, "connection", transport.request_id)
    viewer = transport.viewer
    if wait is None and viewer is not None:
        wait = await limits.hit(limits.rules.ws_user, "user", str(viewer.user_id))
    if wait is None:
        return None
    return _error(
        "Too many operations on this connection; slow down",
        {"code": RATE_LIMITED, "retryAfter": round(wait, 3)},
    )


async def _close(ctx: Ctx) -> None:
    """Close an execution's read session even if the operation is being cancelled.

    A client completing an operation as it finishes cancels its task; a cancelled
    close would abandon the pooled connection mid-rollback. The close is shielded and
    the cancellation re-raised once it is done. Without a session of its own there is
    nothing to wait for: the live runs of a batch close without a task each.
    """
    if ctx.holds_session:
        await uncancelled(_close_quietly(ctx))
    else:
        await ctx.close()


async def _close_quietly(ctx: Ctx) -> None:
    """A close that fails (a session cancelled mid-connect cannot close cleanly; the
    pool discards its connection) must not replace the error or cancellation that is
    unwinding the execution: a swallowed cancellation keeps a stopped task running."""
    try:
        await ctx.close()
    except Exception:
        log.warning("closing an execution's read session failed", exc_info=True)


async def _once(result: ExecutionResult) -> AsyncGenerator[ExecutionResult, None]:
    yield result


def _error(message: str, extensions: dict[str, Any]) -> ExecutionResult:
    return ExecutionResult(data=None, errors=[GraphQLError(message, extensions=extensions)])


async def _read_your_writes(ctx: Ctx) -> None:
    """A write's answer waits until this process has applied its version (one before it
    may still be on its way from another process): until then, neither do the live
    queries here know they are behind, nor has the query cache dropped what it touched."""
    if ctx.version is None:
        return
    live = ctx.services.live
    if not await live.feed.wait_applied(ctx.version, READ_YOUR_WRITES_TIMEOUT_S):
        # The writer's next read must not be answered from before its write.
        live.drop_cached_results(ctx.version)


def _stamp_version(result: ExecutionResult, ctx: Ctx) -> None:
    if ctx.version is not None:
        result.extensions = {**(result.extensions or {}), "version": ctx.version}
