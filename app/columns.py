"""What tables share: the tenant key, timestamps, and column and table markers.

The generator in ``app.schema.types`` reads these markers off the SQLAlchemy columns,
so a model module is all a new table needs. ``app.schema.checks`` reads the table
markers (``GLOBAL``, ``INTERNAL``) when the schema is built.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import DateTime, String, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# Registers the ``__search__`` marker's copy onto tables before any model is mapped.
import app.search.index  # noqa: F401

PRIVATE = "private"
# The column that says which tenant owns a row (see ``tenant_key``).
TENANT = "tenant"
# A column whose old and new values travel in change events although no read range is
# keyed on it (e.g. the token epoch, which revokes live queries when it moves).
TRACKED = "tracked"
# A table whose rows belong to no workspace declares it (``__global__: ClassVar[bool] =
# True``): a table that is neither this nor ``TenantScoped`` is refused, so a forgotten
# mixin can never leave rows readable across workspaces. The tenant table needs no mark.
GLOBAL = "__global__"
# A table the API never serves (bookkeeping read and written through Core) declares it
# (``__internal__``): it needs no integer ``id``, by which served rows are fetched, paged
# and tracked, and may key itself as it likes.
INTERNAL = "__internal__"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware.

    SQLite keeps no offset; without this a value read back would be naive and compare
    unequal to the one written, which breaks keyset cursors.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class EnumText(TypeDecorator[enum.Enum]):
    """An enum stored as its value in a text column: no database enum type to migrate."""

    impl = String(32)
    cache_ok = True

    def __init__(self, enum_class: type[enum.Enum]) -> None:
        super().__init__()
        self.enum_class = enum_class

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return str(self.enum_class(value).value)

    def process_result_value(self, value: Any, dialect: Dialect) -> enum.Enum | None:
        return None if value is None else self.enum_class(value)


def private(*, tracked: bool = False, **kwargs: Any) -> Any:
    """A column that never appears in GraphQL output (e.g. a password hash).

    ``tracked`` puts its values in change events (see ``app.live.capture``).
    """
    return Field(sa_column_kwargs={"info": {PRIVATE: True, TRACKED: tracked}}, **kwargs)


def created_at_field(description: str = "When it was created.") -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, description=description)


def tenant_key(references: str, description: str = "The tenant the row belongs to.") -> Any:
    """The column naming the tenant that owns the row: what isolation filters on.

    ``references`` is the tenant table's key (``"workspace.id"``). A model with such a
    column is tenant-scoped: every read through a tenant session is filtered on it and
    every write checked against it (``app.tenancy``). Never exposed in GraphQL.
    """
    return Field(
        foreign_key=references,
        index=True,
        sa_column_kwargs={"info": {PRIVATE: True, TENANT: True}},
        description=description,
    )


@cache
def tenant_column(table: Table) -> str | None:
    """The name of ``table``'s tenant column (declared with ``tenant_key``), if any."""
    for column in table.columns:
        if column.info.get(TENANT):
            name: str = column.name
            return name
    return None


def model_tenant_column(model: type[SQLModel]) -> str | None:
    table = getattr(model, "__table__", None)
    return tenant_column(table) if isinstance(table, Table) else None
