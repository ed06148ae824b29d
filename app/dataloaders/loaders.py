"""DataLoaders for primary keys and for pages of children by foreign key.

One set per execution (never per WebSocket connection: a connection-wide cache would
serve rows that changed since). Each loader batches its keys into one statement and
records what it read into the execution's read set, so live queries need nothing more.
"""

from __future__ import annotations

import inspect
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import func
from sqlalchemy.orm import aliased
from sqlmodel import SQLModel, select
from sqlmodel.sql.expression import SelectOfScalar
from strawberry.dataloader import DataLoader

from app import pagination
from app.live.capture import to_scalar, tracked_columns
from app.live.readset import ReadSet
from app.pagination import Connection

Fetch = Callable[[SelectOfScalar[Any]], Awaitable[Sequence[Any]]]
PageKey = tuple[Any, int, str | None]  # (parent id, first, after)
RECORDED = "livegraph_recorded"


def pk_name(model: type[SQLModel]) -> str:
    name: str = model.__table__.primary_key.columns.keys()[0]  # type: ignore[attr-defined]
    return name


def table_name(model: type[SQLModel]) -> str:
    name: str = model.__table__.name  # type: ignore[attr-defined]
    return name


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


class ExecutionEnded(RuntimeError):
    """A loader was used after the execution that owns it was gone."""


def _weakly(fetch: Fetch) -> Callable[[], Fetch | None]:
    # The execution context owns its loaders and hands them its own bound ``rows``: held
    # strongly, that makes a cycle, and then everything the execution read (rows, their
    # ORM state, the session) waits for a full collection instead of going at once.
    if inspect.ismethod(fetch):
        return weakref.WeakMethod(fetch)
    return lambda: fetch


class Loaders:
    def __init__(self, fetch: Fetch, reads: ReadSet) -> None:
        self._fetch = _weakly(fetch)
        self._reads = reads
        self._by_pk: dict[type[SQLModel], DataLoader[Any, Any]] = {}
        self._pages: dict[tuple[type[SQLModel], str], DataLoader[PageKey, Connection[Any]]] = {}
        self._children: dict[tuple[type[SQLModel], str], DataLoader[Any, list[Any]]] = {}
        self._unique: dict[tuple[type[SQLModel], str], DataLoader[Any, Any]] = {}

    def by_pk(self, model: type[SQLModel]) -> DataLoader[Any, Any]:
        loader = self._by_pk.get(model)
        if loader is None:
            loader = DataLoader(load_fn=self._pk_batch(model))
            self._by_pk[model] = loader
        return loader

    def page_by(self, model: type[SQLModel], column: str) -> DataLoader[PageKey, Connection[Any]]:
        loader = self._pages.get((model, column))
        if loader is None:
            require_tracked(model, column)
            loader = DataLoader(load_fn=self._page_batch(model, column))
            self._pages[(model, column)] = loader
        return loader

    def children(self, model: type[SQLModel], column: str) -> DataLoader[Any, list[Any]]:
        """All rows whose ``column`` is the key, by primary key: for short bounded lists
        (a message's attachments), one statement per batch of keys."""
        loader = self._children.get((model, column))
        if loader is None:
            require_tracked(model, column)
            loader = DataLoader(load_fn=self._children_batch(model, column))
            self._children[(model, column)] = loader
        return loader

    def _children_batch(
        self, model: type[SQLModel], column_name: str
    ) -> Callable[[list[Any]], Awaitable[list[list[Any]]]]:
        table, column = table_name(model), getattr(model, column_name)
        order = getattr(model, pk_name(model))
        reads, fetch = self._reads, self._fetch

        async def load(keys: list[Any]) -> list[list[Any]]:
            for key in keys:
                reads.range(table, column_name, to_scalar(key))
            statement = select(model).where(column.in_(keys)).order_by(order)
            rows = await _alive(fetch)(recorded(statement))
            found: dict[Any, list[Any]] = defaultdict(list)
            for row in rows:
                found[getattr(row, column_name)].append(row)
            return [found[key] for key in keys]

        return load

    def by_unique(self, model: type[SQLModel], column: str) -> DataLoader[Any, Any]:
        """The one row whose unique ``column`` equals each key, or None."""
        loader = self._unique.get((model, column))
        if loader is None:
            require_tracked(model, column)
            loader = DataLoader(load_fn=self._unique_batch(model, column))
            self._unique[(model, column)] = loader
        return loader

    def _unique_batch(
        self, model: type[SQLModel], column_name: str
    ) -> Callable[[list[Any]], Awaitable[list[Any]]]:
        table, column = table_name(model), getattr(model, column_name)
        reads, fetch = self._reads, self._fetch

        async def load(keys: list[Any]) -> list[Any]:
            # A range read: the row appearing later (an insert) must re-run the query.
            for key in keys:
                reads.range(table, column_name, to_scalar(key))
            rows = await _alive(fetch)(recorded(select(model).where(column.in_(keys))))
            found = {getattr(row, column_name): row for row in rows}
            return [found.get(key) for key in keys]

        return load

    def _pk_batch(self, model: type[SQLModel]) -> Callable[[list[Any]], Awaitable[list[Any]]]:
        table, pk = table_name(model), pk_name(model)
        column = getattr(model, pk)
        # Locals, not ``self``: a loader's function referring back to the Loaders that
        # holds the loader would be a reference cycle.
        reads, fetch = self._reads, self._fetch

        async def load(keys: list[Any]) -> list[Any]:
            for key in keys:
                reads.row(table, to_scalar(key))
            rows = await _alive(fetch)(recorded(select(model).where(column.in_(keys))))
            found = {getattr(row, pk): row for row in rows}
            return [found.get(key) for key in keys]

        return load

    def _page_batch(
        self, model: type[SQLModel], column_name: str
    ) -> Callable[[list[PageKey]], Awaitable[list[Connection[Any]]]]:
        table = table_name(model)
        reads, fetch = self._reads, self._fetch

        async def load(keys: list[PageKey]) -> list[Connection[Any]]:
            groups: dict[tuple[int, str | None], list[Any]] = defaultdict(list)
            for parent, first, after in keys:
                reads.range(table, column_name, to_scalar(parent))
                groups[(first, after)].append(parent)
            pages: dict[PageKey, Connection[Any]] = {}
            for (first, after), parents in groups.items():
                statement = _children(model, column_name, parents, first, after)
                rows = await _alive(fetch)(statement)
                by_parent: dict[Any, list[Any]] = defaultdict(list)
                for row in rows:
                    by_parent[getattr(row, column_name)].append(row)
                for parent in parents:
                    pages[(parent, first, after)] = pagination.build_connection(
                        model, by_parent[parent], first
                    )
            return [pages[key] for key in keys]

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
) -> SelectOfScalar[Any]:
    """The first ``first + 1`` children of each parent, in one statement."""
    column = getattr(model, column_name)
    if len(parents) == 1:
        statement = select(model).where(column == parents[0])
        if after is not None:
            statement = statement.where(pagination.after_condition(model, after))
        statement = statement.order_by(*pagination.order_by(model)).limit(first + 1)
        return recorded(statement)
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
    return recorded(statement)
