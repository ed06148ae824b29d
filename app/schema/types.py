"""GraphQL object types generated from the SQLModel tables.

For each table: a Strawberry type named like the model, documented by the model's
docstring and field descriptions. Columns become fields (the primary key as ``ID!``,
nullability kept); private columns and the foreign keys that a relationship replaces are
left out. A many-to-one relationship becomes an object field loaded by primary key; a
one-to-many relationship becomes a keyset-paginated connection batched by foreign key.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import types
import typing
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import strawberry
from sqlalchemy import Column, ColumnElement, inspect
from sqlalchemy.orm import RelationshipDirection, RelationshipProperty
from sqlmodel import SQLModel

from app.columns import PRIVATE
from app.pagination import Connection
from app.resolver_marks import CONTEXT_ONLY, PREFETCH

_generated: dict[type[SQLModel], type] = {}
# Fields computed by a function rather than stored (``app.schema.api.computed``): a
# factory per field name, by model; registered before the type is generated.
computed_fields: dict[type[SQLModel], dict[str, Callable[[], Any]]] = {}

SCALARS: dict[type, Any] = {
    int: int,
    str: str,
    bool: bool,
    float: float,
    dt.datetime: dt.datetime,
    dt.date: dt.date,
    decimal.Decimal: decimal.Decimal,
    uuid.UUID: uuid.UUID,
}


def base_type(annotation: Any) -> Any:
    """``int | None`` -> ``int``: nullability comes from the column, not the hint."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def is_private(column: Column[Any]) -> bool:
    return bool(column.info.get(PRIVATE))


def _relationships(model: type[SQLModel]) -> list[RelationshipProperty[Any]]:
    return list(inspect(model).relationships)


def replaced_foreign_keys(model: type[SQLModel]) -> set[str]:
    names: set[str] = set()
    for rel in _relationships(model):
        if rel.direction is RelationshipDirection.MANYTOONE:
            names.update(c.name for c in rel.local_columns)
    return names


def field_annotation(model: type[SQLModel], column: Column[Any]) -> Any:
    info = model.model_fields.get(column.key)
    python = base_type(info.annotation) if info else column.type.python_type
    if isinstance(python, type) and issubclass(python, enum.Enum):
        _graphql_enum(python)
    scalar: Any = strawberry.ID if column.primary_key else SCALARS.get(python, python)
    return scalar | None if column.nullable and not column.primary_key else scalar


def _graphql_enum(python: type[enum.Enum]) -> None:
    """An enum column's type becomes a GraphQL enum of the same name, once."""
    if not hasattr(python, "__strawberry_definition__"):
        strawberry.enum(python, description=(python.__doc__ or "").strip() or None)


def description(model: type[SQLModel], name: str) -> str | None:
    info = model.model_fields.get(name)
    return info.description if info else None


def _key(column: ColumnElement[Any]) -> str:
    if column.key is None:
        raise TypeError(f"relationship column {column!r} has no attribute name")
    return column.key


def _many_to_one(rel: RelationshipProperty[Any]) -> Any:
    target = rel.mapper.class_
    (local,) = rel.local_columns
    local_key = _key(local)
    nullable = local.nullable

    # Not a coroutine: a row the execution's loaders already hold is returned as it is
    # (see ``Recording.load_ready``), and only one still to load is awaited.
    def resolve(root: Any, info: strawberry.Info) -> Any:
        key = getattr(root, local_key)
        if key is None:
            return None
        return info.context.loaders.by_pk(target).load_ready(key)

    def prefetch(context: Any, roots: list[Any]) -> Awaitable[Any] | None:
        keys = list({key for root in roots if (key := getattr(root, local_key)) is not None})
        if not keys:
            return None
        load: Awaitable[Any] = context.loaders.by_pk(target).load_many(keys)
        return load

    setattr(resolve, PREFETCH, prefetch)
    setattr(resolve, CONTEXT_ONLY, True)
    resolve.__annotations__["return"] = (
        graphql_type(target) | None if nullable else graphql_type(target)
    )
    resolve.__name__ = rel.key
    return strawberry.field(
        resolver=resolve,
        description=description(rel.parent.class_, local_key) or f"The related {target.__name__}.",
    )


def _one_to_one(rel: RelationshipProperty[Any]) -> Any:
    """A one-to-one child (a unique foreign key on the child): an object field or null."""
    target = rel.mapper.class_
    ((parent_column, child_column),) = rel.local_remote_pairs
    parent_key, child_key = _key(parent_column), _key(child_column)

    def resolve(root: Any, info: strawberry.Info) -> Any:
        return info.context.loaders.by_unique(target, child_key).load_ready(
            getattr(root, parent_key)
        )

    def prefetch(context: Any, roots: list[Any]) -> Awaitable[Any] | None:
        keys = list({getattr(root, parent_key) for root in roots})
        load: Awaitable[Any] = context.loaders.by_unique(target, child_key).load_many(keys)
        return load

    setattr(resolve, PREFETCH, prefetch)
    setattr(resolve, CONTEXT_ONLY, True)

    resolve.__annotations__["return"] = graphql_type(target) | None
    resolve.__name__ = rel.key
    return strawberry.field(
        resolver=resolve, description=rel.info.get("description") or f"Its {target.__name__}."
    )


def _one_to_many(rel: RelationshipProperty[Any]) -> Any:
    target = rel.mapper.class_
    ((parent_column, child_column),) = rel.local_remote_pairs

    async def resolve(
        root: Any,
        info: strawberry.Info,
        first: Annotated[
            int | None, strawberry.argument(description="Page size (maximum 200).")
        ] = 50,
        after: Annotated[
            str | None, strawberry.argument(description="The `endCursor` of the previous page.")
        ] = None,
    ) -> Any:
        return await info.context.page(
            target,
            first=first,
            after=after,
            where=(_key(child_column), getattr(root, _key(parent_column))),
        )

    resolve.__annotations__["return"] = Connection[graphql_type(target)]  # type: ignore[misc]
    resolve.__name__ = rel.key
    return strawberry.field(
        resolver=resolve,
        description=rel.info.get("description") or f"Its {target.__name__} items, in keyset pages.",
    )


def graphql_type(model: type[SQLModel]) -> type:
    """The generated type of a table (created on first use, relationships filled later)."""
    existing = _generated.get(model)
    if existing is not None:
        return existing
    table = model.__table__  # type: ignore[attr-defined]
    hidden = replaced_foreign_keys(model)
    namespace: dict[str, Any] = {"__annotations__": {}, "__module__": __name__}
    for column in table.columns:
        if is_private(column) or column.key in hidden:
            continue
        namespace["__annotations__"][column.key] = field_annotation(model, column)
        text = description(model, column.key)
        if column.primary_key:
            text = text or f"Unique identifier of the {model.__name__}."
        namespace[column.key] = strawberry.field(description=text)
    cls = type(model.__name__, (), namespace)
    _generated[model] = cls
    for rel in _relationships(model):
        if rel.direction is RelationshipDirection.MANYTOONE:
            field = _many_to_one(rel)
        elif rel.direction is RelationshipDirection.ONETOMANY and not rel.uselist:
            field = _one_to_one(rel)
        elif rel.direction is RelationshipDirection.ONETOMANY:
            field = _one_to_many(rel)
        else:
            continue
        setattr(cls, rel.key, field)
    for name, make_field in computed_fields.get(model, {}).items():
        setattr(cls, name, make_field())
    doc = (model.__doc__ or "").strip() or None
    strawberry.type(cls, name=model.__name__, description=doc)
    return cls


def is_generated(model: object) -> bool:
    return isinstance(model, type) and model in _generated
