"""The tenant table, and the mixin of every row that belongs to one workspace."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.columns import created_at_field, tenant_key


class Workspace(SQLModel, table=True):
    """A tenant: a team with its own users, channels and messages."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(min_length=1, max_length=100, description="The team's name.")
    created_at: datetime = created_at_field()


class TenantScoped(SQLModel):
    """Mixin for rows that belong to one workspace.

    ``workspace_id`` is the tenant key: every read through a tenant session is filtered
    on it and every write is checked against it (``app.tenancy``), so resolvers never
    repeat that filter.
    """

    workspace_id: int = tenant_key("workspace.id", "The workspace the row belongs to.")
