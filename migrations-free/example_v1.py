"""Version 1 of the walk-through in README.md: a note has a title, nothing more."""

from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


class Base(SQLModel, registry=registry()):
    """A registry of its own keeps the example's tables out of the app's metadata."""


class Note(Base, table=True):
    id: int | None = Field(default=None, primary_key=True)
    title: str


metadata = Base.metadata
