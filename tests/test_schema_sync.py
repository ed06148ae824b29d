"""The declarative schema sync, on a real SQLite file and a real PostgreSQL database.

The v1 -> v2 evolution is the one ``migrations-free/README.md`` walks through: the models
are imported from its example files, and the README must show them and the output verbatim.
"""

from __future__ import annotations

import enum
import importlib.util
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.database.sync import (
    DestructiveChangeRefused,
    SyncPlan,
    apply_sync,
    plan_sync,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "migrations-free"
README = (EXAMPLES / "README.md").read_text()


def load_example(name: str) -> ModuleType:
    # migrations-free/ is not a package (its name is not an identifier): load by path.
    spec = importlib.util.spec_from_file_location(
        f"migrations_free_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


V1 = load_example("example_v1")
V2 = load_example("example_v2")


def refused_v3() -> sa.MetaData:
    """The README's refused change: `body` dropped, `pinned` turned into a string."""

    class Base(SQLModel, registry=registry()):
        pass

    class Note(Base, table=True):
        id: int | None = Field(default=None, primary_key=True)
        title: str = Field(index=True)
        pinned: str = "no"  # was bool: a type change
        # body is gone: a dropped column

    class Tag(Base, table=True):
        id: int | None = Field(default=None, primary_key=True)
        note_id: int = Field(foreign_key="note.id", index=True)
        name: str

    class Label(Base, table=True):  # additive, but nothing is applied when refused
        id: int | None = Field(default=None, primary_key=True)

    return Base.metadata


def note_table(*columns: sa.Column[Any], extra: tuple[Any, ...] = ()) -> sa.MetaData:
    """A private `note` table: id and title, plus what a test adds."""
    metadata = sa.MetaData()
    sa.Table(
        "note",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String, nullable=False),
        *columns,
        *extra,
    )
    return metadata


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


async def snapshot(engine: AsyncEngine) -> dict[str, Any]:
    """Every table's columns (name, type, nullability) and indexes, to prove nothing moved."""

    def read(conn: sa.Connection) -> dict[str, Any]:
        inspector = sa.inspect(conn)
        return {
            table: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                sorted(str(ix["name"]) for ix in inspector.get_indexes(table)),
            )
            for table in sorted(inspector.get_table_names())
        }

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def fetch(engine: AsyncEngine, sql: str) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        return [tuple(row) for row in await conn.execute(sa.text(sql))]


async def execute(engine: AsyncEngine, sql: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text(sql))


async def v2_with_rows(engine: AsyncEngine) -> None:
    await apply_sync(engine, V2.metadata)
    await execute(engine, "INSERT INTO note (title, body, pinned) VALUES ('a', 'kept', true)")
    await execute(engine, "INSERT INTO tag (note_id, name) VALUES (1, 'x')")


def kinds(plan: SyncPlan) -> list[str]:
    return [change.kind for change in plan.changes]


# --- the walk-through -------------------------------------------------------------------


async def test_fresh_database_gets_every_table_then_plans_nothing(engine: AsyncEngine) -> None:
    applied = await apply_sync(engine, V2.metadata)

    assert kinds(applied) == ["create_table", "create_table"]
    tables = await snapshot(engine)
    assert sorted(tables) == ["note", "tag"]
    assert tables["note"][1] == ["ix_note_title"]
    assert (await plan_sync(engine, V2.metadata)).changes == ()


async def test_v1_to_v2_keeps_every_row_and_fills_the_defaults(engine: AsyncEngine) -> None:
    await apply_sync(engine, V1.metadata)
    async with AsyncSession(engine) as session:
        session.add_all([V1.Note(title="first"), V1.Note(title="second")])
        await session.commit()

    applied = await apply_sync(engine, V2.metadata)

    assert kinds(applied) == ["add_column", "add_column", "create_index", "create_table"]
    assert applied.destructive == ()
    async with AsyncSession(engine) as session:
        notes = (await session.exec(select(V2.Note).order_by(V2.Note.id))).all()
        assert [(n.id, n.title, n.body, n.pinned) for n in notes] == [
            (1, "first", None, False),
            (2, "second", None, False),
        ]
        # The model writes through the new schema too, defaults included.
        session.add(V2.Tag(note_id=1, name="idea"))
        session.add(V2.Note(title="third", body="text"))
        await session.commit()
    assert await fetch(engine, "SELECT title, pinned FROM note WHERE id = 3") == [("third", False)]
    assert (await plan_sync(engine, V2.metadata)).changes == ()


async def test_readme_shows_the_example_models_and_their_output(engine: AsyncEngine) -> None:
    for name in ("example_v1", "example_v2"):
        assert (EXAMPLES / f"{name}.py").read_text() in README, f"{name}.py not in README"
    await apply_sync(engine, V1.metadata)
    await execute(engine, "INSERT INTO note (title) VALUES ('first')")
    v2_plan = await plan_sync(engine, V2.metadata)
    await apply_sync(engine, V2.metadata)
    with pytest.raises(DestructiveChangeRefused) as refused:
        await apply_sync(engine, refused_v3())

    # The README shows the embedded default's output (PostgreSQL spells `false`, not 0).
    if is_sqlite(engine):
        assert v2_plan.describe() in README
        assert str(refused.value) in README


# --- refusals ---------------------------------------------------------------------------


async def test_dropped_column_and_type_change_are_refused_and_nothing_changes(
    engine: AsyncEngine,
) -> None:
    await v2_with_rows(engine)
    before = await snapshot(engine)

    with pytest.raises(DestructiveChangeRefused) as refused:
        await apply_sync(engine, refused_v3())

    assert sorted(c.kind for c in refused.value.refused) == ["alter_type", "drop_column"]
    message = str(refused.value)
    assert "drop column note.body" in message
    assert "change type of note.pinned from BOOLEAN to VARCHAR" in message
    assert "nothing was changed" in message
    assert [c.kind for c in refused.value.plan.additive] == ["create_table"]
    assert await snapshot(engine) == before  # not even the additive new table
    assert await fetch(engine, "SELECT title, body FROM note") == [("a", "kept")]


async def test_required_column_without_default_is_refused_on_a_table_with_rows(
    engine: AsyncEngine,
) -> None:
    await apply_sync(engine, note_table())
    await execute(engine, "INSERT INTO note (title) VALUES ('a')")
    before = await snapshot(engine)
    required = note_table(sa.Column("rank", sa.Integer, nullable=False))

    with pytest.raises(DestructiveChangeRefused, match="holds rows") as refused:
        await apply_sync(engine, required, allow_destructive=True)

    assert [c.kind for c in refused.value.refused] == ["add_column"]
    assert await snapshot(engine) == before


async def test_required_column_without_default_on_an_empty_table(engine: AsyncEngine) -> None:
    await apply_sync(engine, note_table())
    required = note_table(sa.Column("rank", sa.Integer, nullable=False))

    if is_sqlite(engine):
        # SQLite's ADD COLUMN refuses NOT NULL without a default, rows or not.
        with pytest.raises(DestructiveChangeRefused, match="SQLite cannot add a NOT NULL"):
            await apply_sync(engine, required)
    else:
        assert kinds(await apply_sync(engine, required)) == ["add_column"]
        assert (await plan_sync(engine, required)).changes == ()


async def test_server_default_makes_a_required_column_additive(engine: AsyncEngine) -> None:
    await apply_sync(engine, note_table())
    await execute(engine, "INSERT INTO note (title) VALUES ('a')")
    with_default = note_table(
        sa.Column("rank", sa.Integer, nullable=False, server_default=sa.text("7")),
        sa.Column("kind", sa.String, nullable=False, default="plain"),
        sa.Column("mood", sa.Enum(Mood), nullable=False, default=Mood.busy),
    )

    plan = await apply_sync(engine, with_default)

    assert plan.destructive == ()
    rows = await fetch(engine, "SELECT title, rank, kind, mood FROM note")
    assert rows == [("a", 7, "plain", "busy")]
    assert (await plan_sync(engine, with_default)).changes == ()


def note_and_tag(*tag_columns: sa.Column[Any]) -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table("note", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("tag", metadata, sa.Column("id", sa.Integer, primary_key=True), *tag_columns)
    return metadata


async def test_a_new_foreign_key_column_keeps_its_constraint(engine: AsyncEngine) -> None:
    await apply_sync(engine, note_and_tag())
    with_note = note_and_tag(sa.Column("note_id", sa.ForeignKey("note.id"), nullable=True))

    assert kinds(await apply_sync(engine, with_note)) == ["add_column"]

    async with engine.connect() as conn:
        fks = await conn.run_sync(lambda c: sa.inspect(c).get_foreign_keys("tag"))
    assert [(fk["constrained_columns"], fk["referred_table"]) for fk in fks] == [
        (["note_id"], "note")
    ]
    assert (await plan_sync(engine, with_note)).changes == ()


# --- dry run ----------------------------------------------------------------------------


async def test_dry_run_changes_nothing(engine: AsyncEngine) -> None:
    await apply_sync(engine, V1.metadata)
    await execute(engine, "INSERT INTO note (title) VALUES ('a')")
    before = await snapshot(engine)

    plan = await plan_sync(engine, V2.metadata)

    assert len(plan.additive) == 4
    assert await snapshot(engine) == before
    assert await fetch(engine, "SELECT id, title FROM note") == [(1, "a")]


async def test_dry_run_lists_destructive_changes_without_refusing(engine: AsyncEngine) -> None:
    await v2_with_rows(engine)
    before = await snapshot(engine)

    plan = await plan_sync(engine, refused_v3())

    assert sorted(c.kind for c in plan.destructive) == ["alter_type", "drop_column"]
    assert await snapshot(engine) == before
    assert await fetch(engine, "SELECT title, body FROM note") == [("a", "kept")]


async def test_an_empty_metadata_claims_no_table(engine: AsyncEngine) -> None:
    await apply_sync(engine, V1.metadata)
    assert (await plan_sync(engine, sa.MetaData())).changes == ()


# --- allow_destructive ------------------------------------------------------------------


async def test_allow_destructive_drops_columns_even_indexed_ones(engine: AsyncEngine) -> None:
    await v2_with_rows(engine)
    without_title_and_body = sa.MetaData()
    sa.Table(
        "note",
        without_title_and_body,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("pinned", sa.Boolean, nullable=False),
    )

    with pytest.raises(DestructiveChangeRefused):
        await apply_sync(engine, without_title_and_body)
    applied = await apply_sync(engine, without_title_and_body, allow_destructive=True)

    assert kinds(applied) == ["drop_column", "drop_column"]
    assert await fetch(engine, "SELECT id, pinned FROM note") == [(1, True)]
    assert (await snapshot(engine))["note"][1] == []  # ix_note_title went with its column
    assert (await plan_sync(engine, without_title_and_body)).changes == ()


async def test_allow_destructive_changes_types_on_postgres_only(engine: AsyncEngine) -> None:
    await v2_with_rows(engine)
    before = await snapshot(engine)
    metadata = refused_v3()

    if is_sqlite(engine):
        with pytest.raises(DestructiveChangeRefused, match="cannot alter a column in place"):
            await apply_sync(engine, metadata, allow_destructive=True)
        assert await snapshot(engine) == before
        return
    applied = await apply_sync(engine, metadata, allow_destructive=True)
    assert sorted(kinds(applied)) == ["alter_type", "create_table", "drop_column"]
    assert await fetch(engine, "SELECT title, pinned FROM note") == [("a", "true")]
    assert (await plan_sync(engine, metadata)).changes == ()


async def test_nullability(engine: AsyncEngine) -> None:
    await apply_sync(engine, note_table())
    await execute(engine, "INSERT INTO note (title) VALUES ('a')")
    relaxed = sa.MetaData()
    sa.Table(
        "note",
        relaxed,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String, nullable=True),
    )

    if is_sqlite(engine):
        with pytest.raises(DestructiveChangeRefused, match="cannot alter a column in place"):
            await apply_sync(engine, relaxed, allow_destructive=True)
        return
    # Accepting NULL loses nothing: applied without being allowed. Requiring it again is not.
    assert [c.destructive for c in (await apply_sync(engine, relaxed)).changes] == [False]
    await execute(engine, "INSERT INTO note (title) VALUES (NULL)")
    with pytest.raises(DestructiveChangeRefused, match=r"make note\.title NOT NULL"):
        await apply_sync(engine, note_table())
    with pytest.raises(sa.exc.IntegrityError):  # the database refuses; the NULL row stays
        await apply_sync(engine, note_table(), allow_destructive=True)
    assert await fetch(engine, "SELECT count(*) FROM note") == [(2,)]


# --- indexes, foreign tables, atomicity -------------------------------------------------


async def test_missing_unique_constraint_becomes_a_unique_index(engine: AsyncEngine) -> None:
    await apply_sync(engine, note_table())
    unique = note_table(extra=(sa.UniqueConstraint("title", name="uq_note_title"),))

    plan = await apply_sync(engine, unique)

    assert [c.detail for c in plan.changes] == ["create index uq_note_title on note UNIQUE (title)"]
    await execute(engine, "INSERT INTO note (title) VALUES ('a')")
    with pytest.raises(sa.exc.IntegrityError):
        await execute(engine, "INSERT INTO note (title) VALUES ('a')")
    assert (await plan_sync(engine, unique)).changes == ()


async def test_changed_index_is_replaced(engine: AsyncEngine) -> None:
    on_title = note_table(extra=(sa.Index("ix_note_lookup", "title"),))
    on_title_and_id = note_table(extra=(sa.Index("ix_note_lookup", "title", "id"),))
    await apply_sync(engine, on_title)

    plan = await apply_sync(engine, on_title_and_id)

    assert kinds(plan) == ["replace_index"]
    assert (await plan_sync(engine, on_title_and_id)).changes == ()


async def test_tables_that_are_not_ours_are_left_alone(engine: AsyncEngine) -> None:
    await execute(engine, "CREATE TABLE legacy (id INTEGER PRIMARY KEY, data TEXT)")
    await execute(engine, "INSERT INTO legacy (id, data) VALUES (1, 'old')")

    applied = await apply_sync(engine, V2.metadata)

    assert all(change.table != "legacy" for change in applied.changes)
    assert await fetch(engine, "SELECT data FROM legacy") == [("old",)]


async def test_a_failing_change_rolls_the_whole_sync_back(engine: AsyncEngine) -> None:
    await assert_a_failing_change_rolls_back(engine)


async def assert_a_failing_change_rolls_back(engine: AsyncEngine) -> None:
    await apply_sync(engine, note_table())
    await execute(engine, "INSERT INTO note (title) VALUES ('same'), ('same')")
    before = await snapshot(engine)
    # Additive, but the duplicate titles make the unique index fail after the column is added.
    both = note_table(
        sa.Column("body", sa.Text, nullable=True),
        extra=(sa.UniqueConstraint("title", name="uq_note_title"),),
    )

    with pytest.raises(sa.exc.IntegrityError):
        await apply_sync(engine, both)

    assert await snapshot(engine) == before  # the new column was rolled back with it


async def test_sync_is_atomic_on_an_engine_that_begins_its_own_transactions(
    tmp_path: Path,
) -> None:
    # The server's SQLite engines take BEGIN over from the driver (isolation_level=None,
    # BEGIN IMMEDIATE on the "begin" event): sync must join that transaction, not nest one.
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'own-begin.db'}")

    @sa.event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.cursor().execute("PRAGMA foreign_keys=ON")

    @sa.event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        await assert_a_failing_change_rolls_back(engine)
        assert kinds(await apply_sync(engine, V2.metadata)) == [
            "add_column",
            "add_column",
            "create_index",
            "create_table",
        ]
    finally:
        await engine.dispose()


# --- types ------------------------------------------------------------------------------


class Mood(enum.Enum):
    calm = "calm"
    busy = "busy"


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    impl = sa.DateTime(timezone=True)
    cache_ok = True


class RichBase(SQLModel, registry=registry()):
    """Every kind of column a table here is likely to declare, on a private registry."""


class Parent(RichBase, table=True):
    id: int | None = Field(default=None, primary_key=True)


class Everything(RichBase, table=True):
    __table_args__ = (
        sa.UniqueConstraint("name", "parent_id"),
        sa.Index("ix_everything_pair", "count", "ratio"),
    )
    id: int | None = Field(default=None, primary_key=True)
    parent_id: int | None = Field(default=None, foreign_key="parent.id", index=True)
    name: str = Field(max_length=40)
    code: str = Field(unique=True, index=True)
    note: str | None = Field(default=None, sa_type=sa.Text)
    flag: bool = False
    count: int = 0
    big: int = Field(default=0, sa_type=sa.BigInteger)
    small: int = Field(default=0, sa_type=sa.SmallInteger)
    ratio: float = 0.5
    price: Decimal = Field(default=Decimal("0"), max_digits=10, decimal_places=2)
    naive: datetime | None = None
    aware: datetime | None = Field(default=None, sa_type=UTCDateTime)
    day: date | None = None
    moment: time | None = None
    uid: uuid.UUID = Field(default_factory=uuid.uuid4)
    mood: Mood = Mood.calm
    blob: bytes | None = None
    doc: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)


async def test_a_freshly_created_schema_plans_no_changes(engine: AsyncEngine) -> None:
    """Declared and reflected types differ in spelling, never in family: no false changes."""
    async with engine.begin() as conn:
        await conn.run_sync(RichBase.metadata.create_all)

    assert (await plan_sync(engine, RichBase.metadata)).describe() == (
        "The database matches the tables: no changes."
    )
