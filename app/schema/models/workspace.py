from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.schema.base import created_at_field


class Workspace(SQLModel, table=True):
    """A tenant: a team with its own users, channels and messages."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(min_length=1, max_length=100, description="The team's name.")
    created_at: datetime = created_at_field()
