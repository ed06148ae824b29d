from __future__ import annotations

from datetime import datetime

from sqlmodel import Field

from app.columns import created_at_field
from examples.notes.models.org import InOrg


class Note(InOrg, table=True):
    """A note, shared with the whole organisation."""

    __tablename__ = "notes_note"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(min_length=1, max_length=200, description="What the note says.")
    author_id: int = Field(foreign_key="notes_member.id", index=True, description="Who wrote it.")
    created_at: datetime = created_at_field()
