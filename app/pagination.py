"""Keyset pagination: opaque cursors over a stable order with the primary key last.

A model may declare ``__list_order__`` (e.g. ``("-created_at", "-id")``); the default
is the primary key ascending. A cursor encodes the sort values of the last row seen, so
the next page is one indexed range scan: no OFFSET anywhere.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson
import strawberry
from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.orm import InstrumentedAttribute
from sqlmodel import SQLModel

from app.errors import BadUserInput
from app.resolver_marks import SOURCE_ONLY

T = TypeVar("T")
ModelT = TypeVar("ModelT", bound=SQLModel)


@strawberry.type(description="Where a page ends, and whether more follow.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow this page.")
    end_cursor: str | None = strawberry.field(description="Pass as `after` for the next page.")


def _cursor(root: Edge[Any]) -> str:
    return root.position()


# It reads only its edge: the lean executor may call it directly.
setattr(_cursor, SOURCE_ONLY, True)


@strawberry.type(description="One item of a page and the cursor that points at it.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(resolver=_cursor, description="Opaque position of this item.")
    node: T = strawberry.field(description="The item.")
    # Encoded when asked for: most pages are read without each edge's cursor, and a
    # live run of a large page would otherwise encode every one of them each time.
    position: strawberry.Private[Callable[[], str]]


@strawberry.type(description="A page of items in a stable order, with keyset cursors.")
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The items of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page ends.")


@dataclass(frozen=True)
class SortKey:
    column: str
    descending: bool


@functools.cache
def sort_keys(model: type[SQLModel]) -> tuple[SortKey, ...]:
    # Cached: it runs for every row of every page (each edge's cursor), and a model
    # without ``__list_order__`` makes ``getattr`` take pydantic's slow missing path.
    declared: Sequence[str] = getattr(model, "__list_order__", ("id",))
    keys = tuple(SortKey(name.lstrip("-"), name.startswith("-")) for name in declared)
    pk = model.__table__.primary_key.columns.keys()[0]  # type: ignore[attr-defined]
    if keys[-1].column != pk:
        keys += (SortKey(pk, keys[-1].descending),)
    return keys


def _attr(model: type[SQLModel], name: str) -> InstrumentedAttribute[Any]:
    attr: InstrumentedAttribute[Any] = getattr(model, name)
    return attr


def order_by(model: type[SQLModel]) -> list[ColumnElement[Any]]:
    return [
        _attr(model, k.column).desc() if k.descending else _attr(model, k.column).asc()
        for k in sort_keys(model)
    ]


def _encode_value(value: Any) -> Any:
    return {"dt": value.isoformat()} if isinstance(value, datetime) else value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"dt"}:
        return datetime.fromisoformat(value["dt"])
    return value


def encode_cursor(model: type[SQLModel], row: SQLModel) -> str:
    values = [_encode_value(getattr(row, k.column)) for k in sort_keys(model)]
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(model: type[SQLModel], cursor: str) -> list[Any]:
    keys = sort_keys(model)
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(keys):
            raise ValueError("wrong shape")
        # A forged cursor must not reach the database as a value its columns refuse.
        if any(isinstance(v, int) and not -(2**31) <= v < 2**31 for v in values):
            raise ValueError("out of range")
        return [_decode_value(v) for v in values]
    except (ValueError, binascii.Error, orjson.JSONDecodeError, TypeError) as exc:
        raise BadUserInput.field("after", "not a cursor from this list") from exc


def after_condition(model: type[SQLModel], cursor: str) -> ColumnElement[bool]:
    """Rows strictly after the cursor in the model's order: (a, b) > (x, y), expanded."""
    keys = sort_keys(model)
    values = decode_cursor(model, cursor)
    alternatives: list[ColumnElement[bool]] = []
    for i, key in enumerate(keys):
        column = _attr(model, key.column)
        equal = [_attr(model, k.column) == v for k, v in zip(keys[:i], values[:i], strict=True)]
        beyond = column < values[i] if key.descending else column > values[i]
        alternatives.append(and_(*equal, beyond))
    return or_(*alternatives)


def clamp_first(first: int | None, default: int, maximum: int) -> int:
    if first is None:
        return default
    if first < 0:
        raise BadUserInput.field("first", "must not be negative")
    if first > maximum:
        raise BadUserInput.field("first", f"must be at most {maximum}")
    return first


def build_connection(
    model: type[ModelT],
    rows: Sequence[ModelT],
    first: int,
    edges: Sequence[Edge[ModelT]] | None = None,
) -> Connection[ModelT]:
    """Rows were fetched with ``first + 1`` so the extra one tells if more follow.

    ``edges``, when given, are those of ``rows`` already made (``build_edges``): pages
    of one list at many sizes share them, and so does whatever was completed for them.
    """
    page = list(rows[:first])
    page_edges = list(edges[:first]) if edges is not None else build_edges(model, page)
    return Connection(
        edges=page_edges,
        page_info=PageInfo(
            has_next_page=len(rows) > first,
            end_cursor=page_edges[-1].position() if page_edges else None,
        ),
    )


def build_edges(model: type[ModelT], rows: Sequence[ModelT]) -> list[Edge[ModelT]]:
    return [Edge(node=row, position=functools.partial(encode_cursor, model, row)) for row in rows]
