"""The search index a model declares, and the DDL that keeps it.

A model names its searchable text columns::

    class Message(TenantScoped, table=True):
        __search__: ClassVar[tuple[str, ...]] = ("body",)

The marker is copied onto the table (``table.info``) when the class is mapped, so the
schema sync, which sees tables only, finds it. What the sync keeps:

- SQLite: an FTS5 table ``<table>_search`` over the table's own rows (external content:
  the text is stored once), kept in step by three triggers; ranked with BM25.
- PostgreSQL: a stored generated ``tsvector`` column ``search_vector`` with a GIN index;
  ranked with ``ts_rank``. The column's comment records which columns it covers.

Both tokenize without stemming (``unicode61``, the ``simple`` configuration), so a word
finds the same rows on either database. A changed ``__search__`` rebuilds the index
(loses no data: it is derived from the table).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, bindparam, event, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapper

SEARCH_INFO = "livegraph.search"
PG_COLUMN = "search_vector"
PG_CONFIG = "simple"


@event.listens_for(Mapper, "after_mapper_constructed")
def _copy_marker(mapper: Mapper[Any], cls: type) -> None:
    columns = getattr(cls, "__search__", None)
    if columns and isinstance(mapper.local_table, Table):
        missing = [c for c in columns if c not in mapper.local_table.c]
        if missing:
            raise TypeError(f"{cls.__name__}.__search__ names no column {missing}")
        mapper.local_table.info[SEARCH_INFO] = tuple(columns)


def searched_columns(table: Table) -> tuple[str, ...]:
    """The columns a table's search index covers; empty when it has none."""
    columns: tuple[str, ...] = table.info.get(SEARCH_INFO, ())
    return columns


def fts_name(table: Table) -> str:
    return f"{table.name}_search"


def pg_index_name(table: Table) -> str:
    return f"ix_{table.name}_{PG_COLUMN}"


def _quote(dialect: Dialect, name: str) -> str:
    return dialect.identifier_preparer.quote(name)


def _pk(table: Table) -> str:
    (pk,) = table.primary_key.columns
    return str(pk.name)


# --- SQLite -----------------------------------------------------------------------------


def sqlite_ddl(dialect: Dialect, table: Table) -> dict[str, str]:
    """Every schema object of the index, by name, as SQLite stores its CREATE text."""

    def q(name: str) -> str:
        return _quote(dialect, name)

    columns = searched_columns(table)
    fts, source, pk = fts_name(table), table.name, _pk(table)
    names = ", ".join(q(c) for c in columns)
    new = ", ".join(f"new.{q(c)}" for c in columns)
    old = ", ".join(f"old.{q(c)}" for c in columns)
    insert = f"INSERT INTO {q(fts)}(rowid, {names}) VALUES (new.{q(pk)}, {new});"
    delete = (
        f"INSERT INTO {q(fts)}({q(fts)}, rowid, {names}) VALUES ('delete', old.{q(pk)}, {old});"
    )
    return {
        fts: (
            f"CREATE VIRTUAL TABLE {q(fts)} USING fts5({names}, content={q(source)}, "
            f"content_rowid={q(pk)}, tokenize='unicode61')"
        ),
        f"{fts}_ai": (
            f"CREATE TRIGGER {q(fts + '_ai')} AFTER INSERT ON {q(source)} BEGIN {insert} END"
        ),
        f"{fts}_ad": (
            f"CREATE TRIGGER {q(fts + '_ad')} AFTER DELETE ON {q(source)} BEGIN {delete} END"
        ),
        f"{fts}_au": (
            f"CREATE TRIGGER {q(fts + '_au')} AFTER UPDATE OF {names} ON {q(source)} "
            f"BEGIN {delete} {insert} END"
        ),
    }


def sqlite_stale(conn: Connection, table: Table) -> bool:
    """Whether the index is missing or differs from the declaration."""
    wanted = sqlite_ddl(conn.dialect, table)
    statement = text("SELECT name, sql FROM sqlite_master WHERE name IN :names").bindparams(
        bindparam("names", expanding=True)
    )
    rows = conn.execute(statement, {"names": list(wanted)}).all()
    return dict((str(name), str(sql)) for name, sql in rows) != wanted


def sqlite_rebuild(conn: Connection, table: Table) -> None:
    wanted = sqlite_ddl(conn.dialect, table)
    fts = fts_name(table)
    for name in wanted:
        if name != fts:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {_quote(conn.dialect, name)}")
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_quote(conn.dialect, fts)}")
    for statement in wanted.values():
        conn.exec_driver_sql(statement)
    # The rows already in the table: read from the content table into the index.
    q = _quote(conn.dialect, fts)
    conn.exec_driver_sql(f"INSERT INTO {q}({q}) VALUES ('rebuild')")


# --- PostgreSQL -------------------------------------------------------------------------


def pg_comment(table: Table) -> str:
    return "livegraph search: " + ", ".join(searched_columns(table))


def pg_expression(dialect: Dialect, table: Table) -> str:
    text = " || ' ' || ".join(
        f"coalesce({_quote(dialect, c)}, '')" for c in searched_columns(table)
    )
    return f"to_tsvector('{PG_CONFIG}'::regconfig, {text})"


def pg_state(conn: Connection, table: Table) -> tuple[str | None, bool]:
    """The search column's comment (None when the column is absent), and whether its
    index exists."""
    row = conn.execute(
        text(
            "SELECT col_description(a.attrelid, a.attnum) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(:table) AND a.attname = :column "
            "AND NOT a.attisdropped"
        ),
        {"table": _qualified(conn.dialect, table), "column": PG_COLUMN},
    ).first()
    index = conn.execute(
        text("SELECT 1 FROM pg_indexes WHERE indexname = :name"), {"name": pg_index_name(table)}
    ).first()
    if row is None:
        return None, index is not None
    return str(row[0] or ""), index is not None


def pg_stale(conn: Connection, table: Table) -> bool:
    comment, indexed = pg_state(conn, table)
    return comment != pg_comment(table) or not indexed


def pg_rebuild(conn: Connection, table: Table) -> None:
    dialect = conn.dialect
    target = _qualified(dialect, table)
    column = _quote(dialect, PG_COLUMN)
    comment, _ = pg_state(conn, table)
    if comment is not None and comment != pg_comment(table):
        # A generated column's expression cannot be altered: it is dropped (its index
        # with it) and computed again from the rows.
        conn.exec_driver_sql(f"ALTER TABLE {target} DROP COLUMN {column}")
        comment = None
    if comment is None:
        conn.exec_driver_sql(
            f"ALTER TABLE {target} ADD COLUMN {column} tsvector "
            f"GENERATED ALWAYS AS ({pg_expression(dialect, table)}) STORED"
        )
        literal = pg_comment(table).replace("'", "''")
        conn.exec_driver_sql(f"COMMENT ON COLUMN {target}.{column} IS '{literal}'")
    conn.exec_driver_sql(
        f"CREATE INDEX IF NOT EXISTS {_quote(dialect, pg_index_name(table))} "
        f"ON {target} USING gin ({column})"
    )


def _qualified(dialect: Dialect, table: Table) -> str:
    return dialect.identifier_preparer.format_table(table)


def owned_columns(dialect: Dialect, table: Table) -> Sequence[str]:
    """Columns the index adds to the table itself: not the model's, never dropped."""
    return (PG_COLUMN,) if dialect.name == "postgresql" and searched_columns(table) else ()


def stale(conn: Connection, table: Table) -> bool:
    if not searched_columns(table):
        return False
    if conn.dialect.name == "sqlite":
        return sqlite_stale(conn, table)
    if conn.dialect.name == "postgresql":
        return pg_stale(conn, table)
    return False


def rebuild(conn: Connection, table: Table) -> None:
    if conn.dialect.name == "sqlite":
        sqlite_rebuild(conn, table)
    elif conn.dialect.name == "postgresql":
        pg_rebuild(conn, table)
