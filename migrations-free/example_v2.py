"""Version 2 of the walk-through in README.md: every change here is additive."""

from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


class Base(SQLModel, registry=registry()):
    """A registry of its own keeps the example's tables out of the app's metadata."""


class Note(Base, table=True):
    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(index=True)  # new index
    body: str | None = None  # new nullable column: existing notes get NULL
    pinned: bool = False  # new NOT NULL column: existing notes get false


class Tag(Base, table=True):  # new table
    id: int | None = Field(default=None, primary_key=True)
    note_id: int = Field(foreign_key="note.id", index=True)
    name: str


metadata = Base.metadata
