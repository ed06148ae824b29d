from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, Relationship

from app.columns import created_at_field
from app.schema.models.workspace import TenantScoped

if TYPE_CHECKING:
    from app.schema.models.message import Message


class Channel(TenantScoped, table=True):
    """A conversation in a workspace that its members post messages to."""

    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(min_length=1, max_length=80, description="Unique within the workspace.")
    created_at: datetime = created_at_field()
    messages: list["Message"] = Relationship(
        back_populates="channel",
        sa_relationship_kwargs={
            "lazy": "raise",
            "info": {"description": "The channel's messages, newest first."},
        },
    )
