from __future__ import annotations

from sqlmodel import Field, SQLModel

from app.columns import tenant_key


class Org(SQLModel, table=True):
    """An organisation: the tenant. Its members see its notes and nobody else's."""

    __tablename__ = "notes_org"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(min_length=1, max_length=100, description="The organisation's name.")


class InOrg(SQLModel):
    """Mixin of the rows that belong to one organisation."""

    org_id: int = tenant_key("notes_org.id", "The organisation the row belongs to.")
