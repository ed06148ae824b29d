"""Declarative schema sync: the SQLModel tables are the truth, the database follows.

There are no migration files. ``plan_sync`` compares the tables of a ``MetaData`` with
what SQLAlchemy's inspector reflects from the live database and lists the differences;
``apply_sync`` makes the additive ones (new tables, new columns that have a default or
accept NULL, new indexes) in one transaction, and refuses, before touching anything,
every change that could lose data or change what stored values mean, unless the caller
allows it deliberately. ``migrations-free/README.md`` walks an example.

What counts as which:

- additive (applied on start): ``create_table``; ``add_column`` when the column is
  nullable, has a server default, or has a scalar Python default (bool, int, float,
  str, a member of the column's enum) that becomes its server default;
  ``create_index`` and ``replace_index``; ``search_index`` (a model's ``__search__``
  index created, or rebuilt when it changed: see ``app.search.index``);
  ``alter_nullable`` that drops a NOT NULL, on PostgreSQL.
- destructive (refused unless ``allow_destructive=True``): ``drop_column``,
  ``alter_type``, ``alter_nullable`` that adds a NOT NULL.
- refused even when allowed (``applicable=False``): a NOT NULL column without a default
  on a table that holds rows (it cannot be added and keep its guarantee; on SQLite, on
  any table), a new primary-key column, and on SQLite anything that alters a column in
  place (type, nullability) or drops a column SQLite cannot drop; those need a
  hand-written table rebuild.

Tables in the database that the metadata does not name are not ours and are left alone;
indexes the metadata no longer declares are left alone too (they lose no data).

Errors::

    Exception
    └── DestructiveChangeRefused   the plan holds changes sync will not make; nothing changed
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Enum,
    Float,
    Index,
    Integer,
    Interval,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Time,
    UniqueConstraint,
    Uuid,
    inspect,
    literal,
    select,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.interfaces import ReflectedColumn
from sqlalchemy.engine.reflection import Inspector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import ColumnDefault, DefaultClause
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import NullType, TypeDecorator, TypeEngine

from app.search import index as search_index

__all__ = [
    "ADD_COLUMN",
    "ALTER_NULLABLE",
    "ALTER_TYPE",
    "CREATE_INDEX",
    "CREATE_TABLE",
    "DROP_COLUMN",
    "REPLACE_INDEX",
    "SEARCH_INDEX",
    "DestructiveChangeRefused",
    "SchemaChange",
    "SyncPlan",
    "apply_sync",
    "plan_sync",
]

CREATE_TABLE = "create_table"
ADD_COLUMN = "add_column"
CREATE_INDEX = "create_index"
REPLACE_INDEX = "replace_index"
SEARCH_INDEX = "search_index"
DROP_COLUMN = "drop_column"
ALTER_TYPE = "alter_type"
ALTER_NULLABLE = "alter_nullable"

# Any constant works; it only has to be the same in every process of a deployment, so
# that servers starting together on one PostgreSQL database sync one after the other.
_PG_LOCK_KEY = 0x6C67_5379_6E63  # "lgSync"

# SQLite learnt ALTER TABLE ... DROP COLUMN in 3.35.0.
_SQLITE_DROP_COLUMN = (3, 35, 0)

_DIALECT_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}

# Python defaults that have one obvious SQL literal (and members of an Enum column's
# enum); anything else (callables, dates) has none we could choose for the user.
_SCALAR_DEFAULTS = (bool, int, float, str)


@dataclass(frozen=True)
class SchemaChange:
    """One difference between the tables and the live database.

    ``destructive`` means sync refuses it unless allowed: it could lose data, change what
    stored values mean, or (``applicable=False``) this database cannot make it at all.
    """

    kind: str
    table: str
    detail: str
    destructive: bool
    # False when apply_sync cannot make this change on this database even when allowed.
    applicable: bool = True


@dataclass(frozen=True)
class SyncPlan:
    """The differences found, in the order ``apply_sync`` makes them."""

    changes: tuple[SchemaChange, ...]

    @property
    def additive(self) -> tuple[SchemaChange, ...]:
        return tuple(c for c in self.changes if not c.destructive)

    @property
    def destructive(self) -> tuple[SchemaChange, ...]:
        return tuple(c for c in self.changes if c.destructive)

    def refused(self, *, allow_destructive: bool = False) -> tuple[SchemaChange, ...]:
        """The changes ``apply_sync`` would refuse with this permission."""
        if allow_destructive:
            return tuple(c for c in self.changes if not c.applicable)
        return self.destructive

    def describe(self) -> str:
        """A multi-line summary for the command line."""
        if not self.changes:
            return "The database matches the tables: no changes."
        lines = [
            f"{len(self.changes)} schema change(s): {len(self.additive)} additive, "
            f"{len(self.destructive)} destructive."
        ]
        lines.extend(f"  {_marker(c)} {c.detail}" for c in self.changes)
        if self.destructive:
            lines.append(_LEGEND)
        return "\n".join(lines)


_LEGEND = (
    "  (+ applied on start; - refused unless allow_destructive=True; "
    "x refused even then, for the reason given)"
)


def _marker(change: SchemaChange) -> str:
    if not change.destructive:
        return "+"
    return "-" if change.applicable else "x"


class DestructiveChangeRefused(Exception):
    """The plan holds changes sync will not make; the database was left as it was."""

    def __init__(self, plan: SyncPlan, *, allow_destructive: bool = False) -> None:
        self.plan = plan
        self.refused = plan.refused(allow_destructive=allow_destructive)
        super().__init__(self._message(allow_destructive))

    def _message(self, allow_destructive: bool) -> str:
        lines = [
            f"Schema sync refused {len(self.refused)} change(s); nothing was changed:",
            *(f"  {_marker(c)} {c.detail}" for c in self.refused),
        ]
        if allow_destructive:
            lines.append(
                "These are refused even with allow_destructive=True, for the reason given "
                "on each (see migrations-free/README.md)."
            )
        elif any(not c.applicable for c in self.refused):
            lines.append(
                "Change the model back, or allow the '-' changes deliberately with "
                "allow_destructive=True; the 'x' ones are refused even then, for the "
                "reason given (see migrations-free/README.md)."
            )
        else:
            lines.append(
                "Change the model back, or allow them deliberately with "
                "allow_destructive=True (see migrations-free/README.md)."
            )
        return "\n".join(lines)


async def plan_sync(engine: AsyncEngine, metadata: MetaData) -> SyncPlan:
    """Compare ``metadata`` with the live database; change nothing (a dry run)."""
    async with engine.connect() as conn:
        # The connection's implicit transaction is rolled back on exit: reads only.
        return await conn.run_sync(lambda sync_conn: _plan(sync_conn, metadata)[0])


async def apply_sync(
    engine: AsyncEngine, metadata: MetaData, *, allow_destructive: bool = False
) -> SyncPlan:
    """Bring the database to ``metadata`` in one transaction; return the plan it applied.

    Raises ``DestructiveChangeRefused`` before changing anything when the plan holds
    changes this call may not make. With ``allow_destructive=True`` it also drops
    columns (SQLite >= 3.35 too), and on PostgreSQL changes column types (``USING
    col::new_type``) and nullability; a change the data does not fit (a value that does
    not cast, a NULL under a new NOT NULL) fails in the database and rolls back whole.
    """
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync_conn: _apply(sync_conn, metadata, allow_destructive))


_Action = Callable[[Connection], None]
_Step = tuple[SchemaChange, _Action]


def _apply(conn: Connection, metadata: MetaData, allow_destructive: bool) -> SyncPlan:
    with conn.begin():
        _begin_write_transaction(conn)
        # Planned inside the transaction that applies it, so the plan is the database's
        # state at apply time, not a stale one.
        plan, steps = _plan(conn, metadata)
        if plan.refused(allow_destructive=allow_destructive):
            raise DestructiveChangeRefused(plan, allow_destructive=allow_destructive)
        for _change, action in steps:
            action(conn)
    return plan


def _begin_write_transaction(conn: Connection) -> None:
    dialect = conn.dialect.name
    if dialect == "sqlite":
        driver = conn.connection.driver_connection
        if not getattr(driver, "in_transaction", False):
            # The sqlite3 module (before Python 3.12's autocommit=False) opens no
            # transaction before DDL, so each ALTER would commit alone; an explicit
            # BEGIN makes the sync all-or-nothing, IMMEDIATE takes the write lock now.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":
        # Several servers starting at once would otherwise race to create one table.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def _plan(conn: Connection, metadata: MetaData) -> tuple[SyncPlan, list[_Step]]:
    inspector = inspect(conn)
    existing: dict[str | None, set[str]] = {}
    steps: list[_Step] = []
    for table in metadata.sorted_tables:
        if table.schema not in existing:
            existing[table.schema] = set(inspector.get_table_names(schema=table.schema))
        if table.name in existing[table.schema]:
            steps.extend(_diff_table(conn, inspector, table))
            if search_index.stale(conn, table):
                steps.append(_search_index(conn.dialect, table))
        else:
            steps.append(_create_table(conn.dialect, table))
            if search_index.searched_columns(table):
                steps.append(_search_index(conn.dialect, table))
    return SyncPlan(tuple(change for change, _ in steps)), steps


# --- tables -----------------------------------------------------------------------------


def _create_table(dialect: Dialect, table: Table) -> _Step:
    columns = ", ".join(_column_sql(dialect, c, _server_default_sql(dialect, c)) for c in table.c)
    detail = f"create table {table.fullname} ({columns})"
    index_names = sorted(str(ix.name) for ix in table.indexes)
    if index_names:
        detail += " with index " + ", ".join(index_names)
    change = SchemaChange(CREATE_TABLE, table.fullname, detail, destructive=False)
    # Table.create also makes its indexes and, on PostgreSQL, its enum types.
    return change, lambda conn: table.create(conn)


def _diff_table(conn: Connection, inspector: Inspector, table: Table) -> list[_Step]:
    dialect = conn.dialect
    reflected = {c["name"]: c for c in inspector.get_columns(table.name, schema=table.schema)}
    steps: list[_Step] = []
    for column in table.c:
        found = reflected.get(column.name)
        if found is None:
            steps.append(_add_column(conn, table, column))
        else:
            steps.extend(_diff_column(dialect, table, column, found))
    declared = {*(c.name for c in table.c), *search_index.owned_columns(dialect, table)}
    for name in reflected:
        if name not in declared:
            steps.append(_drop_column(dialect, inspector, table, name))
    steps.extend(_diff_indexes(dialect, inspector, table))
    return steps


def _has_rows(conn: Connection, table: Table) -> bool:
    return conn.execute(select(literal(1)).select_from(table).limit(1)).first() is not None


def _search_index(dialect: Dialect, table: Table) -> _Step:
    columns = ", ".join(search_index.searched_columns(table))
    kind = "FTS5 table" if dialect.name == "sqlite" else "tsvector column and GIN index"
    detail = f"create or rebuild search index on {table.fullname} ({columns}): {kind}"
    change = SchemaChange(SEARCH_INDEX, table.fullname, detail, destructive=False)
    return change, lambda conn: search_index.rebuild(conn, table)


# --- columns ----------------------------------------------------------------------------


def _add_column(conn: Connection, table: Table, column: Column[Any]) -> _Step:
    dialect = conn.dialect
    default = _server_default_sql(dialect, column)
    spec = _column_sql(dialect, column, default)
    detail = f"add column {table.fullname}.{spec}"

    def refused(reason: str) -> _Step:
        change = SchemaChange(
            ADD_COLUMN, table.fullname, f"{detail}: {reason}", destructive=True, applicable=False
        )
        return change, _unreachable

    if column.primary_key:
        return refused("a primary key cannot be added to an existing table")
    if not column.nullable and default is None:
        if _has_rows(conn, table):
            return refused(
                "the table holds rows and the column has no default; give it a "
                "server_default or a scalar default, or make it nullable"
            )
        if dialect.name == "sqlite":
            return refused(
                "SQLite cannot add a NOT NULL column without a default; give it a "
                "server_default or a scalar default, or make it nullable"
            )
    statement = f"ALTER TABLE {_table_sql(dialect, table)} ADD COLUMN {spec}"
    statement += "".join(_references_sql(dialect, column))
    change = SchemaChange(ADD_COLUMN, table.fullname, detail, destructive=False)
    return change, _run(statement, before=_enum_types(column))


def _diff_column(
    dialect: Dialect, table: Table, column: Column[Any], found: ReflectedColumn
) -> list[_Step]:
    steps: list[_Step] = []
    name = f"{table.fullname}.{column.name}"
    table_sql = _table_sql(dialect, table)
    column_sql = dialect.identifier_preparer.format_column(column)
    declared_family = _type_family(dialect, column.type)
    found_family = _type_family(dialect, found["type"])
    if None not in (declared_family, found_family) and declared_family != found_family:
        new_type = _type_sql(dialect, column.type)
        detail = f"change type of {name} from {_type_sql(dialect, found['type'])} to {new_type}"
        statement = (
            f"ALTER TABLE {table_sql} ALTER COLUMN {column_sql} "
            f"TYPE {new_type} USING {column_sql}::{new_type}"
        )
        steps.append(
            _alter_column(dialect, ALTER_TYPE, table, detail, statement, _enum_types(column))
        )
    if column.primary_key or bool(found["nullable"]) == bool(column.nullable):
        return steps
    if column.nullable:
        detail = f"make {name} nullable (drop NOT NULL)"
        statement = f"ALTER TABLE {table_sql} ALTER COLUMN {column_sql} DROP NOT NULL"
    else:
        detail = f"make {name} NOT NULL"
        statement = f"ALTER TABLE {table_sql} ALTER COLUMN {column_sql} SET NOT NULL"
    step = _alter_column(dialect, ALTER_NULLABLE, table, detail, statement, ())
    if column.nullable and step[0].applicable:
        # Accepting NULL where the database refused it loses nothing: additive.
        step = (SchemaChange(ALTER_NULLABLE, table.fullname, detail, destructive=False), step[1])
    steps.append(step)
    return steps


def _alter_column(
    dialect: Dialect,
    kind: str,
    table: Table,
    detail: str,
    statement: str,
    before: Sequence[Enum],
) -> _Step:
    if dialect.name != "postgresql":
        name = _DIALECT_NAMES.get(dialect.name, dialect.name)
        reason = f"{name} cannot alter a column in place; rebuild the table by hand"
        change = SchemaChange(
            kind, table.fullname, f"{detail}: {reason}", destructive=True, applicable=False
        )
        return change, _unreachable
    change = SchemaChange(kind, table.fullname, detail, destructive=True)
    return change, _run(statement, before=before)


def _drop_column(dialect: Dialect, inspector: Inspector, table: Table, name: str) -> _Step:
    detail = f"drop column {table.fullname}.{name} (its data would be lost)"
    table_sql = _table_sql(dialect, table)
    statement = f"ALTER TABLE {table_sql} DROP COLUMN {_quote(dialect, name)}"
    if dialect.name != "sqlite":
        # PostgreSQL drops the column's indexes and constraints with it, and refuses
        # (without CASCADE) when a view or another table's key depends on it.
        return SchemaChange(DROP_COLUMN, table.fullname, detail, destructive=True), _run(statement)
    reason = _sqlite_cannot_drop(dialect, inspector, table, name)
    if reason:
        change = SchemaChange(
            DROP_COLUMN, table.fullname, f"{detail}: {reason}", destructive=True, applicable=False
        )
        return change, _unreachable
    # SQLite will not drop an indexed column: its indexes go first.
    indexes = [
        ix["name"]
        for ix in inspector.get_indexes(table.name, schema=table.schema)
        if ix["name"] and name in ix["column_names"]
    ]
    drops = [f"DROP INDEX {_qualified(dialect, table.schema, ix)}" for ix in indexes]
    change = SchemaChange(DROP_COLUMN, table.fullname, detail, destructive=True)
    return change, _run(*drops, statement)


def _sqlite_cannot_drop(
    dialect: Dialect, inspector: Inspector, table: Table, name: str
) -> str | None:
    version = dialect.server_version_info or (0,)
    if tuple(version) < _SQLITE_DROP_COLUMN:
        return "SQLite before 3.35 cannot drop a column; rebuild the table by hand"
    schema = table.schema
    pk = inspector.get_pk_constraint(table.name, schema=schema)["constrained_columns"]
    uniques = inspector.get_unique_constraints(table.name, schema=schema)
    fks = inspector.get_foreign_keys(table.name, schema=schema)
    if name in pk or any(name in uc["column_names"] for uc in uniques):
        return "SQLite cannot drop a primary-key or UNIQUE column; rebuild the table by hand"
    if any(name in fk["constrained_columns"] for fk in fks):
        return "SQLite cannot drop a foreign-key column; rebuild the table by hand"
    return None


def _column_sql(dialect: Dialect, column: Column[Any], default: str | None) -> str:
    parts = [dialect.identifier_preparer.format_column(column), _type_sql(dialect, column.type)]
    if default is not None:
        parts.append(f"DEFAULT {default}")
    parts.append("NULL" if column.nullable else "NOT NULL")
    return " ".join(parts)


def _references_sql(dialect: Dialect, column: Column[Any]) -> Iterable[str]:
    # A new foreign-key column keeps its constraint: inline REFERENCES works in both
    # PostgreSQL's and SQLite's ADD COLUMN.
    preparer = dialect.identifier_preparer
    for fk in column.foreign_keys:
        target = fk.column
        clause = (
            f" REFERENCES {preparer.format_table(target.table)} ({preparer.format_column(target)})"
        )
        if fk.ondelete:
            clause += f" ON DELETE {fk.ondelete}"
        if fk.onupdate:
            clause += f" ON UPDATE {fk.onupdate}"
        yield clause


def _server_default_sql(dialect: Dialect, column: Column[Any]) -> str | None:
    """The column's server default as SQL, else its scalar Python default as a literal.

    SQLModel turns ``pinned: bool = False`` into a Python-side default only; translated
    here, existing rows get the value too and the new column can be NOT NULL. Members of
    the column's own enum translate too (``mood: Mood = Mood.calm``).
    """
    server_default = column.server_default
    if isinstance(server_default, DefaultClause):
        # A plain string is a literal value; anything else is SQL (text(), func.now()).
        arg = server_default.arg
        return _literal_sql(dialect, literal(arg) if isinstance(arg, str) else arg)
    default = column.default
    if not isinstance(default, ColumnDefault) or not default.is_scalar:
        return None
    value = default.arg
    enum_member = isinstance(value, enum.Enum) and isinstance(column.type, Enum)
    if type(value) not in _SCALAR_DEFAULTS and not enum_member:
        return None
    return _literal_sql(dialect, literal(value, type_=column.type))


def _literal_sql(dialect: Dialect, clause: ClauseElement) -> str:
    return str(clause.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _enum_types(column: Column[Any]) -> tuple[Enum, ...]:
    # A native enum is a type of its own on PostgreSQL: it must exist before a column
    # uses it (Table.create does this for new tables; ALTER TABLE does not).
    type_ = column.type
    return (type_,) if isinstance(type_, Enum) and type_.native_enum else ()


# --- types ------------------------------------------------------------------------------


def _type_family(dialect: Dialect, type_: TypeEngine[Any]) -> str | None:
    """What kind of values a column holds, ignoring spelling, length and precision.

    The declared type and the reflected one rarely have the same class (AutoString vs
    VARCHAR, DateTime vs TIMESTAMP, Float vs DOUBLE PRECISION): comparing classes would
    report changes nobody made. None means "unknown": never reported as a change.
    """
    while isinstance(type_, TypeDecorator):
        type_ = type_.load_dialect_impl(dialect)
    if isinstance(type_, NullType):
        return None
    postgres = dialect.name == "postgresql"
    # Order matters: Boolean before Integer, Float before Numeric, Uuid and JSON before
    # String-like types, Enum (a String) falls to "string".
    if isinstance(type_, Boolean):
        return "boolean"
    if isinstance(type_, Integer):
        return "integer"
    if isinstance(type_, Float):
        return "float"
    if isinstance(type_, Numeric):
        return "numeric"
    if isinstance(type_, DateTime):
        # SQLite keeps no offset and reflects none: only PostgreSQL can tell them apart.
        return "datetime_tz" if postgres and type_.timezone else "datetime"
    if isinstance(type_, Date):
        return "date"
    if isinstance(type_, Time):
        return "time"
    if isinstance(type_, Interval):
        return "interval" if postgres and type_.native else "datetime"
    if isinstance(type_, Uuid):
        # Without a native UUID the value is stored (and reflected) as CHAR(32).
        native = dialect.supports_native_uuid and type_.native_uuid
        return "uuid" if native else "string"
    if isinstance(type_, JSON):
        return "json"
    if isinstance(type_, LargeBinary):
        return "binary"
    if isinstance(type_, String):
        return "string"
    if isinstance(type_, ARRAY):
        item = _type_family(dialect, type_.item_type)
        return None if item is None else f"array[{item}]"
    try:
        spelled = type_.compile(dialect=dialect)
    except sa_exc.CompileError:
        return None
    return re.sub(r"\(.*\)", "", spelled).strip().upper()


def _type_sql(dialect: Dialect, type_: TypeEngine[Any]) -> str:
    return type_.compile(dialect=dialect)


# --- indexes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _IndexShape:
    columns: tuple[str, ...]
    unique: bool


@dataclass
class _ReflectedIndexes:
    by_name: dict[str, _IndexShape | None] = field(default_factory=dict)
    shapes: set[_IndexShape] = field(default_factory=set)

    def covers(self, wanted: _IndexShape) -> bool:
        # A unique index (or constraint) on the same columns serves a plain index too.
        return wanted in self.shapes or _IndexShape(wanted.columns, True) in self.shapes


def _reflect_indexes(inspector: Inspector, table: Table) -> _ReflectedIndexes:
    found = _ReflectedIndexes()
    for ix in inspector.get_indexes(table.name, schema=table.schema):
        names = ix["column_names"]
        shape = None
        if all(names):
            shape = _IndexShape(tuple(str(n) for n in names), bool(ix["unique"]))
            found.shapes.add(shape)
        if ix["name"]:
            found.by_name[ix["name"]] = shape
    for uc in inspector.get_unique_constraints(table.name, schema=table.schema):
        shape = _IndexShape(tuple(uc["column_names"]), True)
        found.shapes.add(shape)
        if uc["name"]:
            found.by_name[uc["name"]] = shape
    return found


def _declared_shape(index: Index) -> _IndexShape | None:
    # An index on expressions has no column list to compare: it is matched by name.
    if len(index.columns) != len(index.expressions):
        return None
    return _IndexShape(tuple(c.name for c in index.columns), bool(index.unique))


def _diff_indexes(dialect: Dialect, inspector: Inspector, table: Table) -> list[_Step]:
    found = _reflect_indexes(inspector, table)
    steps: list[_Step] = []
    for index in sorted(table.indexes, key=lambda ix: str(ix.name)):
        steps.extend(_diff_index(dialect, table, index, found))
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            steps.extend(_diff_unique(dialect, table, constraint, found))
    return steps


def _diff_index(
    dialect: Dialect, table: Table, index: Index, found: _ReflectedIndexes
) -> list[_Step]:
    shape = _declared_shape(index)
    name = str(index.name)
    if name in found.by_name:
        existing = found.by_name[name]
        if shape is None or existing is None or existing == shape:
            return []
        detail = f"replace index {name} on {table.fullname} with {_describe_shape(shape)}"
        # IF EXISTS: dropping a column (earlier in the same plan) may have taken it.
        drop = f"DROP INDEX IF EXISTS {_qualified(dialect, table.schema, name)}"
        change = SchemaChange(REPLACE_INDEX, table.fullname, detail, destructive=False)
        return [(change, _run(drop, after=lambda conn: index.create(conn)))]
    if shape is not None and found.covers(shape):
        return []
    described = _describe_shape(shape) if shape else "expressions"
    detail = f"create index {name} on {table.fullname} {described}"
    change = SchemaChange(CREATE_INDEX, table.fullname, detail, destructive=False)
    return [(change, lambda conn: index.create(conn))]


def _diff_unique(
    dialect: Dialect, table: Table, constraint: UniqueConstraint, found: _ReflectedIndexes
) -> list[_Step]:
    shape = _IndexShape(tuple(c.name for c in constraint.columns), True)
    if found.covers(shape):
        return []
    # A unique index enforces what the constraint would, and SQLite can add only that.
    name = str(constraint.name or f"uq_{table.name}_{'_'.join(shape.columns)}")
    columns = ", ".join(_quote(dialect, c) for c in shape.columns)
    statement = (
        f"CREATE UNIQUE INDEX {_quote(dialect, name)} ON {_table_sql(dialect, table)} ({columns})"
    )
    detail = f"create index {name} on {table.fullname} {_describe_shape(shape)}"
    change = SchemaChange(CREATE_INDEX, table.fullname, detail, destructive=False)
    return [(change, _run(statement))]


def _describe_shape(shape: _IndexShape) -> str:
    unique = "UNIQUE " if shape.unique else ""
    return f"{unique}({', '.join(shape.columns)})"


# --- SQL helpers ------------------------------------------------------------------------


def _run(
    *statements: str,
    before: Sequence[Enum] = (),
    after: _Action | None = None,
) -> _Action:
    def action(conn: Connection) -> None:
        for enum_type in before:
            enum_type.create(conn, checkfirst=True)
        for statement in statements:
            conn.exec_driver_sql(statement)
        if after is not None:
            after(conn)

    return action


def _unreachable(conn: Connection) -> None:
    # Inapplicable changes are refused before any action runs.
    raise AssertionError("an inapplicable schema change reached apply")


def _quote(dialect: Dialect, name: str) -> str:
    return dialect.identifier_preparer.quote(name)


def _qualified(dialect: Dialect, schema: str | None, name: str) -> str:
    quoted = _quote(dialect, name)
    return f"{_quote(dialect, schema)}.{quoted}" if schema else quoted


def _table_sql(dialect: Dialect, table: Table) -> str:
    return dialect.identifier_preparer.format_table(table)
