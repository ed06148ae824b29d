"""What a GraphQL ``ID`` identifies: a primary key, or nothing (never an error)."""

from __future__ import annotations

from typing import TypeVar

from sqlmodel import SQLModel

from app.errors import NotFound

ModelT = TypeVar("ModelT", bound=SQLModel)

# Primary keys are INTEGER columns: PostgreSQL refuses a larger bound parameter outright.
MAX_ID = 2**31 - 1


def parse_id(value: object) -> int | None:
    """A GraphQL ``ID`` as a primary key; anything else identifies nothing."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 < value <= MAX_ID else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        number = int(value)
        return number if 0 < number <= MAX_ID else None
    return None


def found(model: type[ModelT], ident: object, row: ModelT | None) -> ModelT:
    """The row, or NOT_FOUND: absent and in another workspace look the same."""
    if row is None:
        raise NotFound(model.__name__, ident)
    return row
