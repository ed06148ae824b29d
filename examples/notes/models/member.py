from __future__ import annotations

from sqlmodel import Field

from examples.notes.models.org import InOrg


class Member(InOrg, table=True):
    """Someone in an organisation."""

    __tablename__ = "notes_member"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(min_length=1, max_length=100, description="How the member is shown.")
