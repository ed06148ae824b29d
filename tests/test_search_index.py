"""The schema sync keeps a model's `__search__` index: created, left alone, rebuilt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from app.database.sync import SEARCH_INDEX, apply_sync, plan_sync
from app.search.statement import search_statement
from app.search.terms import parse


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


def note_model(searched: tuple[str, ...]) -> type[SQLModel]:
    class Base(SQLModel, registry=registry()):
        pass

    class Note(Base, table=True):
        __search__: ClassVar[tuple[str, ...]] = searched
        id: int | None = Field(default=None, primary_key=True)
        title: str
        body: str = ""

    return Note


async def found(engine: AsyncEngine, model: type[SQLModel], text: str) -> list[int]:
    statement = search_statement(model, engine.dialect.name, parse(text), size=10, after=None)
    async with engine.connect() as conn:
        return [row[0] for row in (await conn.execute(statement)).all()]


async def test_sync_creates_the_index_then_plans_nothing(engine: AsyncEngine) -> None:
    note = note_model(("title",))
    plan = await apply_sync(engine, note.metadata)
    assert [c.kind for c in plan.changes] == ["create_table", SEARCH_INDEX]
    assert (await plan_sync(engine, note.metadata)).changes == ()
    async with engine.begin() as conn:
        await conn.execute(sa.insert(note.__table__).values(title="alpha beta", body="gamma"))  # type: ignore[attr-defined]
    assert await found(engine, note, "beta") == [1]
    assert await found(engine, note, "gamma") == []


async def test_a_changed_declaration_rebuilds_the_index_over_existing_rows(
    engine: AsyncEngine,
) -> None:
    v1 = note_model(("title",))
    await apply_sync(engine, v1.metadata)
    async with engine.begin() as conn:
        await conn.execute(sa.insert(v1.__table__).values(title="alpha", body="gamma"))  # type: ignore[attr-defined]
    v2 = note_model(("title", "body"))
    plan = await plan_sync(engine, v2.metadata)
    assert [(c.kind, c.destructive) for c in plan.changes] == [(SEARCH_INDEX, False)]
    await apply_sync(engine, v2.metadata)
    assert await found(engine, v2, "gamma") == [1]
    assert (await plan_sync(engine, v2.metadata)).changes == ()
    # The index follows later writes too (triggers / generated column).
    async with engine.begin() as conn:
        await conn.execute(sa.update(v2.__table__).values(body="delta"))  # type: ignore[attr-defined]
    assert await found(engine, v2, "gamma") == []
    assert await found(engine, v2, "delt") == [1]


async def test_an_index_dropped_by_hand_is_created_again(engine: AsyncEngine) -> None:
    note = note_model(("title",))
    await apply_sync(engine, note.metadata)
    async with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            await conn.exec_driver_sql("DROP TRIGGER note_search_ai")
        else:
            await conn.exec_driver_sql("DROP INDEX ix_note_search_vector")
    plan = await plan_sync(engine, note.metadata)
    assert [c.kind for c in plan.changes] == [SEARCH_INDEX]
    await apply_sync(engine, note.metadata)
    assert (await plan_sync(engine, note.metadata)).changes == ()
