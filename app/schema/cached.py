"""Plain queries through the result cache (``app.live.querycache``): a hit, or a kept run.

The transport has authenticated the request before the cache is asked (over HTTP the
token is decoded and its epoch checked on every request; a WebSocket authenticates at
connect), and the rate limits have counted it. A hit is served only to a viewer whose
token has neither expired nor been revoked since, and never while this process knows it
is behind the change log. A miss runs as usual, as a probed viewer: the identity it
reads decides how widely its result is shared, as for a live cohort.

Before a miss runs, a live cohort may answer it: a current cohort of the same operation
but for ``@live`` (``app.schema.plain``), at the scope that the operation is known to
read, is this viewer's own answer. Its result is kept as the run's would be, so the next
ask is a plain hit.

Where other processes commit to the same database, neither is served until this
process has applied every commit acknowledged before the query came (the log's head,
read once per burst of queries: ``app.live.head``): a write answered by one process is
in every later read on any other, as it is without the cache.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

import orjson
from graphql import GraphQLSchema
from graphql import OperationType as GraphQLOperationType
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from app.auth import Scope, Viewer
from app.live.querycache import CachedData, CacheKey, Entry, QueryCache, operation_digest
from app.live.readset import ReadSet
from app.schema.directive import operation_type
from app.schema.documents import parse_document, validation_errors
from app.schema.limits import ALL_RULES
from app.schema.plain import plain_digest

if TYPE_CHECKING:
    from app.context import Ctx
    from app.live.engine import LiveEngine


class CachedRun:
    """One plain query as a viewer: its cached result, or a run whose result is kept."""

    __slots__ = (
        "asked",
        "cache",
        "generation",
        "live",
        "operation",
        "operation_name",
        "query",
        "started",
        "variables",
        "viewer",
    )

    def __init__(
        self,
        cache: QueryCache,
        live: LiveEngine,
        operation: bytes,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        viewer: Viewer,
    ) -> None:
        self.cache = cache
        self.live = live
        self.operation = operation
        self.query = query
        self.variables = variables
        self.operation_name = operation_name
        self.viewer = viewer
        # Batches applied from here on may have been missed by the run's snapshot.
        self.started = live.feed.applied_version
        self.generation = cache.generation
        self.asked: list[Scope] = []

    @classmethod
    def begin(
        cls,
        transport: Any,
        query: str | None,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        allowed: Iterable[OperationType] | None = None,
    ) -> CachedRun | None:
        """The cache's part in this operation, or None where it has none: no cache, no
        valid viewer, an operation known to read the token, or not a transport's."""
        current_viewer = getattr(transport, "current_viewer", None)
        if current_viewer is None or not query or not isinstance(query, str):
            return None
        if operation_name is not None and not isinstance(operation_name, str):
            return None  # Strawberry answers that one
        if allowed is not None and OperationType.QUERY not in allowed:
            return None
        live = transport.services.live
        cache: QueryCache | None = live.query_cache
        if cache is None or not live.feed.hearing:
            return None
        viewer: Viewer | None = current_viewer()
        if viewer is None:
            return None
        operation = operation_digest(query, variables, operation_name)
        if operation is None or cache.scope(operation) is Scope.TOKEN:
            return None
        return cls(cache, live, operation, query, variables, operation_name, viewer)

    def _key(self, scope: Scope) -> CacheKey:
        return (self.operation, scope, self.viewer.scope_id(scope))

    async def answer(self, schema: GraphQLSchema) -> ExecutionResult | None:
        """The kept result or, failing that, a current live cohort's: only once every
        write acknowledged before this query, here or by another process, is applied
        here, since an entry is current only as of the batches applied."""
        if not await self.live.feed.heard_all():
            return None
        hit = self.hit()
        return hit if hit is not None else self.from_cohort(schema)

    def hit(self) -> ExecutionResult | None:
        """The kept result, if there is one: parse, validation and execution skipped."""
        entry = self.cache.get(self._key(self.cache.scope(self.operation)), time.time())
        if entry is None:
            return None
        return _served(entry)

    def from_cohort(self, schema: GraphQLSchema) -> ExecutionResult | None:
        """A current live cohort's result for this operation, kept as this query's."""
        if not self.live.plain_operations:
            return None  # no live operation to compare with: nothing to digest
        form = plain_digest(self.query, self.variables, self.operation_name)
        if form is None:
            return None
        now = time.time()
        cohort = self.live.current_cohort(form, self.viewer, self.cache.scope(self.operation), now)
        if cohort is None or cohort.result is None or cohort.reads is None:
            return None
        # The cohort's document was valid with ``@live``; without it, it may not be (a
        # variable that only ``@live`` used), nor is this one's ``@live`` checked yet.
        parsed = parse_document(self.query)
        if parsed.document is None or validation_errors(schema, self.query, parsed, ALL_RULES):
            return None
        try:
            body = orjson.dumps(cohort.result.data)
        except orjson.JSONEncodeError:
            return None
        scope = cohort.key.scope
        self.cache.narrow(self.operation, scope)
        entry = Entry(body, _copy(cohort.reads), cohort.version, cohort.valid_until)
        # Current: every batch applied here has been matched against its reads.
        self.cache.put(self._key(scope), entry, (), self.generation)
        self.cache.cohort_hit()
        return _served(entry)

    def keep(self, result: object, ctx: Ctx) -> None:
        """Keep the run's result, before anyone else sees it, if it may be shared: a query
        that answered without errors, wrote nothing, and read no more than the user."""
        if operation_type(self.query, self.operation_name) is not GraphQLOperationType.QUERY:
            return
        self.cache.missed()
        if (
            type(result) is not ExecutionResult
            or result.errors
            or result.extensions
            or not isinstance(result.data, dict)
            or ctx.version is not None
            or ctx.viewer is None
        ):
            return
        self.cache.narrow(self.operation, max(self.asked, default=Scope.TENANT))
        scope = self.cache.scope(self.operation)
        if scope is Scope.TOKEN:
            return
        try:
            body = orjson.dumps(result.data)
        except orjson.JSONEncodeError:
            return  # not JSON that orjson writes (a lone surrogate): not kept
        entry = Entry(body, _copy(ctx.reads), self.started, ctx.valid_until)
        missed = self.live.feed.since(self.started)
        self.cache.put(self._key(scope), entry, missed, self.generation)


def _served(entry: Entry) -> ExecutionResult:
    # Not a dict: a read-only view whose JSON the view's encoder writes as it is.
    return ExecutionResult(data=cast(dict[str, Any], CachedData(entry)), errors=None)


def _copy(reads: ReadSet) -> ReadSet:
    # The cache's index must unregister exactly what it registered.
    return ReadSet(set(reads.rows), set(reads.ranges), set(reads.tables))
