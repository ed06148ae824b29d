"""DataLoaders for primary keys and for pages of children by foreign key.

One set per snapshot: an execution's own, or one shared by the live runs of a batch
(never per WebSocket connection: a connection-wide cache would serve rows that changed
since). Each loader batches its keys into one statement; each execution records what it
asked for into its own read set, so live queries need nothing more.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Integer, bindparam, func
from sqlalchemy.orm import aliased
from sqlmodel import SQLModel, select
from sqlmodel.sql.expression import SelectOfScalar
from strawberry.dataloader import DataLoader

from app import pagination
from app.live.capture import to_scalar, tracked_columns
from app.live.readset import ReadSet
from app.pagination import Connection
from app.tenancy import PREPARED

PageKey = tuple[Any, int, str | None]  # (parent id, first, after)
RECORDED = "livegraph_recorded"


class Fetch(Protocol):
    def __call__(
        self, statement: SelectOfScalar[Any], params: Mapping[str, Any] | None = None, /
    ) -> Awaitable[Sequence[Any]]: ...


K = TypeVar("K")
V = TypeVar("V")


def pk_name(model: type[SQLModel]) -> str:
    name: str = model.__table__.primary_key.columns.keys()[0]  # type: ignore[attr-defined]
    return name


def table_name(model: type[SQLModel]) -> str:
    # Asked for every loader an execution uses: a model's class attribute goes through
    # SQLModel's metaclass, a dict does not.
    try:
        return _table_names[model]
    except KeyError:
        name: str = model.__table__.name  # type: ignore[attr-defined]
        _table_names[model] = name
        return name


_table_names: dict[type[SQLModel], str] = {}


class UntrackedColumn(TypeError):
    """A list filtered on a column that change events do not carry: it could never
    update live, so it is refused rather than silently left stale."""


def require_tracked(model: type[SQLModel], column: str) -> None:
    # The schema build refuses the filters it can read in resolver source
    # (``app.schema.checks``); this catches, when called, those it cannot see.
    table = model.__table__  # type: ignore[attr-defined]
    if column not in table.columns:
        raise UntrackedColumn(f"{model.__name__} has no column {column!r}")
    if column not in tracked_columns(table):
        raise UntrackedColumn(
            f"{model.__name__}.{column} is not tracked, so a list filtered on it would never "
            f"update live: declare it with Field(index=True), as a foreign key, or as "
            f"private(tracked=True)"
        )


def recorded(statement: SelectOfScalar[Any]) -> SelectOfScalar[Any]:
    """Mark a statement whose reads the caller recorded itself (no table fallback)."""
    return statement.execution_options(**{RECORDED: True})


# The execution option of a bounded read: a batch by key, or one page. SQLite's read
# dialect may run such a statement on the calling thread (``app.database.sqlite_reads``).
BOUNDED = "livegraph_bounded_read"


def _prepared(
    kind: str, model: type[SQLModel], column_name: str, build: Callable[[], SelectOfScalar[Any]]
) -> SelectOfScalar[Any]:
    """A loader's statement for ``model`` and ``column_name``, built once, with bound
    parameters for what differs between its runs: building it again for every load
    was a good part of a short read."""
    key = (kind, model, column_name)
    statement = _statements.get(key)
    if statement is None:
        # Bounded (by key, or one page): SQLite may run it on the calling thread.
        options = {PREPARED: True, BOUNDED: True}
        statement = _statements[key] = recorded(build()).execution_options(**options)
    return statement


_statements: dict[tuple[str, type[SQLModel], str], SelectOfScalar[Any]] = {}


class ExecutionEnded(RuntimeError):
    """A loader was used after the execution that owns it was gone."""


def _weakly(fetch: Fetch) -> Callable[[], Fetch | None]:
    # The execution context owns its loaders and hands them its own bound ``rows``: held
    # strongly, that makes a cycle, and then everything the execution read (rows, their
    # ORM state, the session) waits for a full collection instead of going at once.
    if inspect.ismethod(fetch):
        return weakref.WeakMethod(fetch)
    return lambda: fetch


class LoaderSet:
    """The DataLoaders of one snapshot: they batch keys into statements and cache rows.

    One per execution, or one shared by the live runs of a batch (same tenant, same
    snapshot): then the keys of all of them go into one statement per loader and level.
    A set records nothing itself: each execution records what it asked for (``Loaders``).
    """

    def __init__(self, fetch: Fetch, *, pages_from_reads: bool = False) -> None:
        """``pages_from_reads``: a page that one already read holds is made from its
        rows (``PageLoader``); for a snapshot that nothing writes to (a live batch's),
        where a page read later could not differ."""
        self._fetch = _weakly(fetch)
        self._pages_from_reads = pages_from_reads
        self._by_pk: dict[type[SQLModel], DataLoader[Any, Any]] = {}
        self._pages: dict[tuple[type[SQLModel], str], DataLoader[PageKey, Connection[Any]]] = {}
        self._children: dict[tuple[type[SQLModel], str], DataLoader[Any, list[Any]]] = {}
        self._unique: dict[tuple[type[SQLModel], str], DataLoader[Any, Any]] = {}

    def by_pk(self, model: type[SQLModel]) -> DataLoader[Any, Any]:
        loader = self._by_pk.get(model)
        if loader is None:
            loader = DataLoader(load_fn=_unique_batch(model, pk_name(model), self._fetch))
            self._by_pk[model] = loader
        return loader

    def page_by(self, model: type[SQLModel], column: str) -> DataLoader[PageKey, Connection[Any]]:
        loader = self._pages.get((model, column))
        if loader is None:
            require_tracked(model, column)
            loader = (
                PageLoader(model, column, self._fetch)
                if self._pages_from_reads
                else DataLoader(load_fn=_page_batch(model, column, self._fetch))
            )
            self._pages[(model, column)] = loader
        return loader

    def children(self, model: type[SQLModel], column: str) -> DataLoader[Any, list[Any]]:
        loader = self._children.get((model, column))
        if loader is None:
            require_tracked(model, column)
            loader = DataLoader(load_fn=_children_batch(model, column, self._fetch))
            self._children[(model, column)] = loader
        return loader

    def by_unique(self, model: type[SQLModel], column: str) -> DataLoader[Any, Any]:
        loader = self._unique.get((model, column))
        if loader is None:
            require_tracked(model, column)
            loader = DataLoader(load_fn=_unique_batch(model, column, self._fetch))
            self._unique[(model, column)] = loader
        return loader


class Recording(Generic[K, V]):
    """A loader as one execution sees it: records each key's read, then loads it."""

    __slots__ = ("_loader", "_record")

    def __init__(self, loader: DataLoader[K, V], record: Callable[[K], None]) -> None:
        self._loader = loader
        self._record = record

    def load(self, key: K) -> Awaitable[V]:
        self._record(key)
        return self._loader.load(key)

    def load_ready(self, key: K) -> V | Awaitable[V]:
        """The value itself when the loader already holds it, else its awaitable.

        For resolvers: graphql-core completes a plain value on the spot, but an
        awaitable costs a coroutine and a task per item of a list. The live runs of a
        batch share their loaders, so all but the first find each row loaded.
        """
        future = self.load(key)
        if (
            isinstance(future, asyncio.Future)
            and future.done()
            and not future.cancelled()
            and future.exception() is None
        ):
            value: V = future.result()
            return value
        return future

    def load_many(self, keys: Iterable[K]) -> Awaitable[list[V]]:
        keys = list(keys)
        for key in keys:
            self._record(key)
        return self._loader.load_many(keys)

    def prime(self, key: K, value: V) -> None:
        self._loader.prime(key, value)


class Loaders:
    """One execution's loaders: what it loads is recorded in its read set, precisely
    (a row by key, a range by foreign key), and loaded through its ``LoaderSet``."""

    def __init__(self, fetch: Fetch, reads: ReadSet, shared: LoaderSet | None = None) -> None:
        self._set = shared if shared is not None else LoaderSet(fetch)
        self._reads = reads
        # Each loader as this execution records it, made once: resolvers ask for one
        # per item of a list (each message's author).
        self._made: dict[tuple[str, type[SQLModel], str], Recording[Any, Any]] = {}

    def by_pk(self, model: type[SQLModel]) -> Recording[Any, Any]:
        key = ("pk", model, "")
        made = self._made.get(key)
        if made is None:
            table, reads = table_name(model), self._reads
            loader = self._set.by_pk(model)
            made = self._made[key] = Recording(loader, lambda k: reads.row(table, to_scalar(k)))
        return made

    def page_by(self, model: type[SQLModel], column: str) -> Recording[PageKey, Connection[Any]]:
        key = ("page", model, column)
        made = self._made.get(key)
        if made is None:
            loader = self._set.page_by(model, column)
            table, reads = table_name(model), self._reads
            made = self._made[key] = Recording(
                loader, lambda k: reads.range(table, column, to_scalar(k[0]))
            )
        return made

    def children(self, model: type[SQLModel], column: str) -> Recording[Any, list[Any]]:
        """All rows whose ``column`` is the key, by primary key: for short bounded lists
        (a message's attachments), one statement per batch of keys."""
        key = ("children", model, column)
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = self._ranged(self._set.children(model, column), model, column)
        return made

    def by_unique(self, model: type[SQLModel], column: str) -> Recording[Any, Any]:
        """The one row whose unique ``column`` equals each key, or None."""
        # A range read: the row appearing later (an insert) must re-run the query.
        key = ("unique", model, column)
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = self._ranged(self._set.by_unique(model, column), model, column)
        return made

    def _ranged(
        self, loader: DataLoader[K, V], model: type[SQLModel], column: str
    ) -> Recording[K, V]:
        table, reads = table_name(model), self._reads
        return Recording(loader, lambda key: reads.range(table, column, to_scalar(key)))


def _children_batch(
    model: type[SQLModel], column_name: str, fetch: Callable[[], Fetch | None]
) -> Callable[[list[Any]], Awaitable[list[list[Any]]]]:
    column = getattr(model, column_name)
    order = getattr(model, pk_name(model))

    async def load(keys: list[Any]) -> list[list[Any]]:
        statement = select(model).where(column.in_(keys)).order_by(order)
        rows = await _alive(fetch)(recorded(statement))
        found: dict[Any, list[Any]] = defaultdict(list)
        for row in rows:
            found[getattr(row, column_name)].append(row)
        return [found[key] for key in keys]

    return load


def _unique_batch(
    model: type[SQLModel], column_name: str, fetch: Callable[[], Fetch | None]
) -> Callable[[list[Any]], Awaitable[list[Any]]]:
    """The one row whose ``column_name`` is each key, or None (a primary key's too)."""
    column = getattr(model, column_name)
    statement = _prepared(
        "unique",
        model,
        column_name,
        lambda: select(model).where(column.in_(bindparam("keys", expanding=True))),
    )

    async def load(keys: list[Any]) -> list[Any]:
        rows = await _alive(fetch)(statement, {"keys": keys})
        found = {getattr(row, column_name): row for row in rows}
        return [found.get(key) for key in keys]

    return load


class _ReadPage:
    """The rows one statement read of a parent's list (after one cursor): the first
    ``first + 1``, and their edges. Every page of that list and cursor up to ``first``
    rows is their prefix, and so is every page once the whole list was read."""

    __slots__ = ("edges", "first", "rows", "whole")

    def __init__(self, model: type[SQLModel], rows: list[Any], first: int) -> None:
        self.rows = rows
        self.first = first
        self.edges = pagination.build_edges(model, rows)
        # The one page of every size at least the list's.
        self.whole: Connection[Any] | None = None

    def holds(self, first: int) -> bool:
        return first <= self.first or len(self.rows) <= self.first

    def page(self, model: type[SQLModel], first: int) -> Connection[Any] | None:
        """The page of ``first`` rows, or None when these rows do not hold it."""
        if not self.holds(first):
            return None
        if first < len(self.rows):
            return pagination.build_connection(model, self.rows[: first + 1], first, self.edges)
        if self.whole is None:
            self.whole = pagination.build_connection(model, self.rows, first, self.edges)
        return self.whole


# What a snapshot's page loader has read: by (parent, cursor).
ReadPages = dict[tuple[Any, str | None], _ReadPage]


class PageLoader(DataLoader[PageKey, Connection[Any]]):
    """Pages of children by parent. A page that one already read holds (a smaller page
    of the same list and cursor, or any once the whole list was read) is made from its
    rows at once, without a statement or a wait: the runs of a live batch ask the same
    list at many sizes, and those after the first find it read."""

    def __init__(
        self, model: type[SQLModel], column_name: str, fetch: Callable[[], Fetch | None]
    ) -> None:
        self._model = model
        self._read: ReadPages = {}
        super().__init__(load_fn=_page_batch(model, column_name, fetch, self._read))

    def load(self, key: PageKey) -> Awaitable[Connection[Any]]:
        parent, first, after = key
        read = self._read.get((parent, after))
        if read is not None and self.cache and self.cache_map.get(key) is None:
            page = read.page(self._model, first)
            if page is not None:
                future: asyncio.Future[Connection[Any]] = self.loop.create_future()
                future.set_result(page)
                self.cache_map.set(key, future)
                return future
        return super().load(key)


def _page_batch(
    model: type[SQLModel],
    column_name: str,
    fetch: Callable[[], Fetch | None],
    kept: ReadPages | None = None,
) -> Callable[[list[PageKey]], Awaitable[list[Connection[Any]]]]:
    """The pages of a batch of keys. What is read is kept in ``kept`` when given (a
    ``PageLoader``'s, whose snapshot nothing writes to); otherwise each batch reads
    afresh (a transaction may have written since the last)."""

    async def load(keys: list[PageKey]) -> list[Connection[Any]]:
        read_pages: ReadPages = kept if kept is not None else {}
        # One statement per cursor, not per page size: the largest page of each parent
        # is read once and the smaller ones are its prefixes (live runs of a batch ask
        # the same list at many sizes).
        largest: dict[str | None, dict[Any, int]] = defaultdict(dict)
        for parent, first, after in keys:
            sizes = largest[after]
            sizes[parent] = max(first, sizes.get(parent, 0))
        for after, sizes in largest.items():
            parents, most = list(sizes), max(sizes.values())
            statement, params = _children(model, column_name, parents, most, after)
            rows = await _alive(fetch)(statement, params)
            by_parent: dict[Any, list[Any]] = defaultdict(list)
            for row in rows:
                by_parent[getattr(row, column_name)].append(row)
            for parent in parents:
                known = read_pages.get((parent, after))
                # Pages already made from what was read before stay the ones given.
                if known is None or not known.holds(most):
                    read_pages[(parent, after)] = _ReadPage(model, by_parent[parent], most)
        pages: list[Connection[Any]] = []
        for parent, first, after in keys:
            page = read_pages[(parent, after)].page(model, first)
            assert page is not None, "the statement read the largest page of each parent"
            pages.append(page)
        return pages

    return load


def _alive(fetch: Callable[[], Fetch | None]) -> Fetch:
    target = fetch()
    if target is None:
        raise ExecutionEnded("the execution these loaders belong to has ended")
    return target


def _children(
    model: type[SQLModel],
    column_name: str,
    parents: Sequence[Any],
    first: int,
    after: str | None,
) -> tuple[SelectOfScalar[Any], Mapping[str, Any] | None]:
    """The first ``first + 1`` children of each parent, in one statement, and its
    parameters."""
    column = getattr(model, column_name)
    if len(parents) == 1:
        if after is None:
            # The first page of one parent: what a plain query asks for.
            first_page = _prepared(
                "first page",
                model,
                column_name,
                lambda: (
                    select(model)
                    .where(column == bindparam("parent"))
                    .order_by(*pagination.order_by(model))
                    .limit(bindparam("limit", type_=Integer))
                ),
            )
            return first_page, {"parent": parents[0], "limit": first + 1}
        statement = select(model).where(column == parents[0])
        statement = statement.where(pagination.after_condition(model, after))
        statement = statement.order_by(*pagination.order_by(model)).limit(first + 1)
        return recorded(statement), None
    rank = (
        func.row_number()
        .over(partition_by=column, order_by=pagination.order_by(model))
        .label("rank")
    )
    inner = select(model, rank).where(column.in_(parents))
    if after is not None:
        inner = inner.where(pagination.after_condition(model, after))
    ranked = inner.subquery()
    row = aliased(model, ranked)
    statement = select(row).where(ranked.c.rank <= first + 1).order_by(ranked.c.rank)
    return recorded(statement), None
