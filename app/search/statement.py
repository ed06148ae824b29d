"""The ranked, keyset-paginated search over a model's index.

Best match first, the newest row first among equal scores. Scores are made "lower is
better" on both databases (BM25 is already negative; ``ts_rank`` is negated), so one
cursor form serves both: ``[score, id]`` of the last row. A score depends only on the
indexed rows, so a cursor stays valid while they do not change.

The statement selects the model's entity: the tenant filter of ``app.tenancy`` applies
to it as to every read, and the index itself is only asked which row ids match.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Double, Table, and_, cast, column, func, literal_column, or_
from sqlalchemy import table as table_clause
from sqlmodel import SQLModel, select
from sqlmodel.sql.expression import SelectOfScalar

from app.errors import BadUserInput
from app.pagination import Connection, Edge, PageInfo
from app.search.index import PG_COLUMN, PG_CONFIG, fts_name, searched_columns
from app.search.terms import Terms

Hit = tuple[Any, float]


class NoSearchIndex(TypeError):
    """The model declares no ``__search__`` columns."""


def _table(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    if not searched_columns(table):
        raise NoSearchIndex(f"{model.__name__} declares no __search__ columns")
    return table


def _hits_sqlite(table: Table, terms: Terms) -> Any:
    fts = fts_name(table)
    index = table_clause(fts, column("rowid"), column(fts))
    score = func.bm25(literal_column(f'"{fts}"')).label("score")
    return (
        select(index.c.rowid.label("id"), score)
        .where(index.c[fts].op("MATCH")(terms.fts5()))
        .subquery("hits")
    )


def _hits_postgresql(table: Table, terms: Terms) -> Any:
    (pk,) = table.primary_key.columns
    vector = table.c[PG_COLUMN] if PG_COLUMN in table.c else column(PG_COLUMN)
    query = func.to_tsquery(literal_column(f"'{PG_CONFIG}'::regconfig"), terms.tsquery())
    score = cast(-func.ts_rank(vector, query), Double).label("score")
    source = table_clause(table.name, column(pk.name), column(PG_COLUMN), schema=table.schema)
    return (
        select(source.c[pk.name].label("id"), score)
        .where(source.c[PG_COLUMN].op("@@")(query))
        .subquery("hits")
    )


def search_statement(
    model: type[SQLModel],
    dialect: str,
    terms: Terms,
    *,
    size: int,
    after: str | None,
    where: ColumnElement[bool] | None = None,
) -> SelectOfScalar[Any]:
    """The first ``size + 1`` hits after the cursor: ``(row, score)`` pairs."""
    table = _table(model)
    hits = _hits_sqlite(table, terms) if dialect == "sqlite" else _hits_postgresql(table, terms)
    (pk,) = table.primary_key.columns
    ident = getattr(model, pk.name)
    statement: Any = select(model, hits.c.score).join(hits, hits.c.id == ident)
    if where is not None:
        statement = statement.where(where)
    if after is not None:
        score, last = decode_cursor(after)
        statement = statement.where(
            or_(hits.c.score > score, and_(hits.c.score == score, ident < last))
        )
    result: SelectOfScalar[Any] = statement.order_by(hits.c.score, ident.desc()).limit(size + 1)
    return result


def encode_cursor(score: float, ident: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([score, ident])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        score, ident = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise ValueError("score")
        if isinstance(ident, bool) or not isinstance(ident, int):
            raise ValueError("id")
        # A forged cursor must not reach the database as a value its columns refuse.
        if not math.isfinite(score) or not -(2**31) <= ident < 2**31:
            raise ValueError("out of range")
        return float(score), ident
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise BadUserInput.field("after", "not a cursor from this search") from exc


def build_connection(model: type[SQLModel], hits: Sequence[Hit], size: int) -> Connection[Any]:
    pk = _table(model).primary_key.columns.keys()[0]
    page = hits[:size]
    edges = [
        Edge(node=row, position=functools.partial(encode_cursor, float(s), getattr(row, pk)))
        for row, s in page
    ]
    end = edges[-1].position() if edges else None
    return Connection(
        edges=edges, page_info=PageInfo(has_next_page=len(hits) > size, end_cursor=end)
    )


def empty_connection() -> Connection[Any]:
    return Connection(edges=[], page_info=PageInfo(has_next_page=False, end_cursor=None))
